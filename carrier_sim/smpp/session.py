"""A sans-I/O SMPP session, for either end of the bind: bytes in, events out; PDUs in, bytes out.

Theory of operation
-------------------
A :class:`Session` is one SMPP connection seen from one side (``SessionConfig.role``: ESME or SMSC). It owns no
socket, clock or task. The I/O layer feeds it what the network delivered (``receive_data(data, now)``), sends
what it asks for (``data_to_send()``), tells it the time when a deadline passes (``handle_timers(now)``,
scheduled from ``next_deadline``), and acts on the events it returns (:mod:`carrier_sim.smpp.events`). The
application puts PDUs on the wire through ``send`` and the conveniences beside it (``bind``, ``respond``,
``accept_bind``, ``unbind``...).

State lives in :class:`SessionState` and moves only by the data in :mod:`carrier_sim.smpp.session_table`:
``SESSION_TABLE`` says whether a command may flow in a direction in a state (SMPP 3.4 table 2-1, SMPP 5.0
operation matrix), ``TRANSITIONS`` where binds, outbinds and unbinds lead. Three rules follow from it:

- *Sending* a PDU the table forbids raises :class:`~carrier_sim.smpp.errors.LocalProtocolError` (carrying the
  status the peer would have answered) and writes nothing: the caller has a bug, the wire stays clean.
- *Receiving* a PDU the table forbids never raises. The session answers it — a request with its ``*_resp``
  carrying the verdict (ESME_RINVBNDSTS, ESME_RALYBND), a request that has no ``*_resp`` (outbind,
  alert_notification) or a command unknown to the interface version with a ``generic_nack`` — and reports a
  :class:`PduRejected`. Responses the version knows are never answered (a generic_nack in reply to a response
  invites a loop of nacks, and the peer has no request to match it against); a stray or mismatched response is
  only reported. A command_id the version does not know gets a generic_nack whatever its response bit.
- Bytes that do not decode are answered the same way (3.4 section 4.3): an unknown command_id with a
  generic_nack ESME_RINVCMDID, a body error with the command's ``*_resp`` carrying the decoder's status, echoing
  the sequence_number. A command_length that cannot be trusted ends the stream: generic_nack ESME_RINVCMDLEN
  (sequence_number 0 when the header was incomplete) and CLOSED. Requests decoded before the bad frame are
  still answered, whether they came in the same read or an earlier one: the session reads no further, and the
  nack and the close wait until the next ``handle_timers`` (due at once), behind the owner's answers.

Requests we send are *in flight* until the response with the same sequence_number and the matching command (or a
generic_nack with that sequence_number) arrives, or until response_timeout passes. Requests the peer sent are
*owed* until the application answers them. Both are counted for window accounting: ``window`` bounds what we have
in flight, and ``peer_outstanding`` lets an oracle judge whether the peer respects its own window. The session
management operations (bind, unbind, enquire_link) are left out of both counts, so that a full window can still
be probed and torn down.

A bind whose response timer fires (ESME) closes the session with ``CloseReason.BIND_TIMEOUT``: a late
bind_resp ESME_ROK would otherwise leave the SMSC bound and us not; the I/O layer hangs up and retries on a new
connection.

The unbind handshake: sending unbind moves a bound session to UNBOUND; it closes when the unbind_resp (or a
generic_nack) arrives. Receiving unbind also moves it to UNBOUND; the session queues the unbind_resp once both
directions are drained — every request the peer is owed answered, every request of ours answered or timed out —
because the peer hangs up on the unbind_resp, and then closes. Operations in flight in either direction may
complete in UNBOUND (responses flow there; of new requests only 5.0's enquire_link), so an unbind loses nothing
unless a response timer gives up. Two unbinds that cross are each answered ESME_ROK; the session closes when
both halves are done. After sending unbind the session refuses new requests, even the enquire_link 5.0 would
allow in UNBOUND: the peer hangs up as soon as it has answered, and the request would be lost.

Events that an application call causes (the close after a deferred unbind_resp) cannot be returned by that call;
they are held, ``next_deadline`` reports them as due, and the next ``handle_timers`` or ``receive_data`` returns
them first.

``now`` is any monotonic clock in seconds (wall or virtual) and must not go backwards.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from carrier_sim.smpp.codec import HEADER, HEADER_SIZE, decode, encode_into
from carrier_sim.smpp.constants import SEQUENCE_MAX, CommandId, CommandStatus, InterfaceVersion
from carrier_sim.smpp.errors import (
    InvalidCommandId,
    InvalidCommandLength,
    InvalidState,
    LocalProtocolError,
    PeerProtocolError,
    ResponseBodyMissing,
    SmppError,
)
from carrier_sim.smpp.events import (
    BindAccepted,
    BindRejected,
    BindRequested,
    CloseReason,
    EnquireLinkSent,
    Event,
    InactivityTimedOut,
    LateResponseReceived,
    OutbindReceived,
    PduReceived,
    PduRejected,
    ResponseReceived,
    ResponseTimedOut,
    SessionClosed,
    SessionInitTimedOut,
    UnbindRequested,
)
from carrier_sim.smpp.framing import DEFAULT_MAX_COMMAND_LENGTH, FrameError, Framer
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session_table import TRANSITIONS, Direction, Role, SessionState, verdict_table
from carrier_sim.smpp.tlv import TlvValue, tag_of

__all__ = [
    "BIND_COMMANDS",
    "SESSION_MANAGEMENT",
    "Direction",
    "Role",
    "Session",
    "SessionConfig",
    "SessionState",
    "UnexpectedResponse",
]

C = CommandId
S = SessionState
ROK = CommandStatus.ESME_ROK

#: The three bind requests.
BIND_COMMANDS: frozenset[CommandId] = frozenset({C.bind_transmitter, C.bind_receiver, C.bind_transceiver})
#: Requests that do not count against a window: they keep the session alive or end it, so a full window of
#: message operations must not block them.
SESSION_MANAGEMENT: frozenset[CommandId] = BIND_COMMANDS | {C.unbind, C.enquire_link}
#: Timed-out requests remembered, so that a late response is told from a response to nothing.
_TIMED_OUT_KEPT = 1024

_KEEPALIVE = frozenset({C.enquire_link, C.enquire_link_resp})
_RECEIVE = Direction.RECEIVE
_V33 = InterfaceVersion.V33
_SEND = Direction.SEND
#: Requests that count against a window: those with a response, but for session management.
_WINDOWED: frozenset[CommandId] = frozenset(
    c for c in CommandId if not c.is_response and c.response is not None and c not in SESSION_MANAGEMENT
)
#: Commands that appear in TRANSITIONS: any other leaves the state as it is, without a look-up (hashing a
#: (SessionState, CommandId) key runs Enum.__hash__ in Python).
_MOVING: frozenset[CommandId] = frozenset(command for _, command in TRANSITIONS)

Tlvs = Mapping[str | int, TlvValue] | tuple[tuple[int, TlvValue], ...]


class UnexpectedResponse(PeerProtocolError):
    """A response arrived that answers none of our in-flight requests (unknown sequence_number, or the
    sequence_number of a request of another command). Reported, never answered: no command_status goes with it."""

    status_on_the_wire = False


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Everything a session is told once. Times are seconds; ``None`` switches a timer off.

    SMPP 3.4 section 7.2 names the four timers: session_init_timeout (the SMSC closes a connection that has not
    bound in time), enquire_link_interval (idle time after which we send an enquire_link), inactivity_timeout
    (time without any traffic but enquire_link after which a bound session unbinds, an unbound one closes) and
    response_timeout (time a request may stay unanswered).
    """

    role: Role
    interface_version: InterfaceVersion = InterfaceVersion.V34
    window: int = 10
    max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH
    session_init_timeout: float | None = 30.0
    enquire_link_interval: float | None = 60.0
    inactivity_timeout: float | None = None
    response_timeout: float | None = 30.0
    auto_answer_enquire_link: bool = True
    #: First sequence number to use (tests and emulated misbehaviour start near the wrap).
    initial_sequence_number: int = 1

    def __post_init__(self) -> None:
        if self.window < 1:
            raise ValueError("window must be at least 1")
        if not 1 <= self.initial_sequence_number <= SEQUENCE_MAX:
            raise ValueError(f"initial_sequence_number must lie in 1..{SEQUENCE_MAX}")
        for name in ("session_init_timeout", "enquire_link_interval", "inactivity_timeout", "response_timeout"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive or None")


@dataclass(slots=True)
class _InFlight:
    request: Pdu
    sent_at: float
    deadline: float | None


def _next_sequence(seq: int) -> int:
    # SMPP 3.4 section 3.2: sequence_number runs 0x00000001..0x7FFFFFFF; after the top we wrap back to 1.
    return 1 if seq >= SEQUENCE_MAX else seq + 1


def _negotiated(ours: InterfaceVersion, theirs: int) -> InterfaceVersion:
    """The version both ends speak: the lower one (3.4 section 5.2.4: 0x00-0x33 means "3.3 or earlier")."""
    version = min(int(ours), theirs)
    if version >= InterfaceVersion.V50:
        return InterfaceVersion.V50
    if version >= InterfaceVersion.V34:
        return InterfaceVersion.V34
    return InterfaceVersion.V33


class Session:
    """One SMPP session, ESME or SMSC side. See the module docstring for the theory of operation."""

    def __init__(self, config: SessionConfig, *, now: float) -> None:
        self.config = config
        self._state = S.OPEN
        self._version = config.interface_version
        self._framer = Framer(config.max_command_length)
        self._outgoing = bytearray()
        self._next_seq = config.initial_sequence_number
        self._in_flight: dict[int, _InFlight] = {}
        self._in_flight_windowed = 0
        # next_deadline and the enquire_link timer would otherwise walk every request in flight on each call:
        # while _in_flight_sorted holds, its deadlines are in insertion order (each request got a deadline no
        # earlier than those before it; removals keep the order), so the first one is the earliest.
        self._in_flight_sorted = True
        self._last_deadline: float | None = None
        self._enquire_links_in_flight = 0
        self._verdicts = verdict_table(self._version, config.role)
        # (sequence_number, command) -> how many such requests await our answer; only positive counts are kept.
        self._owed: dict[tuple[int, CommandId], int] = {}
        self._owed_windowed = 0
        self._opened_at = now
        self._now = now
        self._last_traffic = now  # any PDU either way: the enquire_link timer
        self._last_activity = now  # any PDU but enquire_link and its resp: the inactivity timer
        self._bind_in_flight: int | None = None  # ESME: sequence_number of our bind
        self._bind_owed: Pdu | None = None  # SMSC: the bind awaiting accept_bind / reject_bind
        self._unbind_in_flight: int | None = None  # sequence_number of our unbind
        self._unbind_owed: Pdu | None = None  # the peer's unbind, answered once nothing is in flight either way
        self._held: list[Event] = []
        # A fatal command_length read behind requests still awaiting our answer: the generic_nack and the close
        # wait for the next handle_timers / receive_data (due at once), so that those answers go out first.
        self._fatal: InvalidCommandLength | None = None
        # SMSC: frames that arrived behind a bind stay in the framer until the bind is decided (see receive_data).
        self._reading_paused = False
        # Requests whose response timer fired, by sequence_number, with when they were sent (the newest
        # _TIMED_OUT_KEPT): a response that comes after all is late, not a reply to nothing.
        self._timed_out: OrderedDict[int, tuple[Pdu, float]] = OrderedDict()

    # ------------------------------------------------------------------------------------------------ state

    @property
    def role(self) -> Role:
        """ESME or SMSC."""
        return self.config.role

    @property
    def state(self) -> SessionState:
        """The current session state."""
        return self._state

    @property
    def closed(self) -> bool:
        """True once the session reached CLOSED; the I/O layer then flushes ``data_to_send`` and hangs up."""
        return self._state is S.CLOSED

    @property
    def version(self) -> InterfaceVersion:
        """The interface version in force: the configured one, lowered to the peer's once a bind succeeds."""
        return self._version

    @property
    def outstanding(self) -> int:
        """Our requests in flight that count against the window."""
        return self._in_flight_windowed

    @property
    def window_free(self) -> int:
        """How many more windowed requests may be sent now."""
        return max(0, self.config.window - self._in_flight_windowed)

    @property
    def outstanding_requests(self) -> tuple[Pdu, ...]:
        """Every request of ours awaiting its response (session management included), oldest first."""
        return tuple(f.request for f in self._in_flight.values())

    @property
    def peer_outstanding(self) -> int:
        """The peer's windowed requests we have not answered yet (to judge the peer's window)."""
        return self._owed_windowed

    @property
    def owed_requests(self) -> int:
        """Every request of the peer awaiting our answer (session management included)."""
        return sum(self._owed.values())

    def owed_windowed(self) -> list[tuple[int, CommandId]]:
        """The peer's windowed requests awaiting our answer, as (sequence_number, command), oldest first: those
        :attr:`peer_outstanding` counts, in the order they arrived (a key the peer repeated, as often as it is
        owed, where it first arrived). What an oracle needs to tell which of several requests decoded from one
        read went over the peer's window: all are owed before the first is handled."""
        return [key for key, count in self._owed.items() if key[1] in _WINDOWED for _ in range(count)]

    def can_send(self, command: CommandId) -> bool:
        """Whether ``send`` would accept a request of this command now (state, window, pending handshakes).

        For a response, only whether the state allows it; the response must also answer an owed request.
        """
        if command.is_response:
            return self._state is not S.CLOSED and self._verdict(Direction.SEND, command) is ROK
        return self._request_refusal(command) is None

    def send_if_allowed(self, pdu: Pdu, now: float, body: bytes | None = None) -> Pdu | None:
        """``send(pdu, now) if can_send(pdu.command_id) else None``, deciding only once: for a queue of requests
        that waits while the window is full.

        ``body``, for a request: the octets after the header that encoding ``pdu`` gives, written by a caller
        that knows them cheaper than the codec (the SMSC's receipts, :mod:`carrier_sim.smsc.receipt_wire`). The
        caller vouches that they are ``encode(pdu)[16:]``; everything else is as without it."""
        command = pdu.command_id
        if command.is_response:
            return self.send(pdu, now) if self.can_send(command) else None
        if self._request_refusal(command) is not None:
            return None
        self._tick(now)
        return self._send_request(pdu, now, allowed=True, body=body)

    # ------------------------------------------------------------------------------------------------ bytes

    def data_to_send(self) -> bytes:
        """Drain and return the bytes waiting to go on the wire."""
        data = bytes(self._outgoing)
        self._outgoing.clear()
        return data

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes from the network; return what they meant. Never raises for anything the peer sent.

        After CLOSED, further bytes are ignored (the peer may still be talking when we hang up).
        """
        self._tick(now)
        events = self._take_held()
        if self._state is S.CLOSED:
            return events
        if self._fatal is not None:
            self._framing_failed(self._fatal, events)  # what follows corrupt data is not read
            return events
        try:
            self._framer.feed(data)
        except InvalidCommandLength as err:
            self._framing_failed(err, events)
            return events
        if self._reading_paused and self._bind_owed is None:
            self._reading_paused = False  # the bind has its answer: read on, the frames behind it first
        if not self._reading_paused:
            self._read_frames(now, events)
        return events

    def _read_frames(self, now: float, events: list[Event]) -> None:
        """Decode and handle the framer's whole frames until it runs dry, the session closes, or a bind awaits its
        decision. Frames behind a bind wait for it: what a PDU pipelined after a bind_transceiver means (allowed,
        or ESME_RINVBNDSTS) depends on the answer, which the owner gives after this call, and the bind_resp must
        go out before their responses -- whatever the TCP segments were (h11 pauses likewise after a request
        until its response is written)."""
        try:
            for item in self._framer.pdus():
                # _note_traffic, inline: this runs for every PDU.
                self._last_traffic = now
                if isinstance(item, FrameError):
                    self._last_activity = now
                    self._on_frame_error(item.error, now, events)
                else:
                    if item.command_id not in _KEEPALIVE:
                        self._last_activity = now
                    self._on_pdu(item, now, events)
                if self._state is S.CLOSED:  # e.g. an unbind answered: what follows it is not ours to read
                    break
                if self._bind_owed is not None:
                    # Only if something came behind the bind: else there is nothing to hold back.
                    self._reading_paused = self._framer.buffered > 0
                    break
        except InvalidCommandLength as err:
            if self._owed:
                # Requests decoded before the bad frame (this read or earlier) would die unanswered with the
                # session, yet split across two reads they are answered: the outcome must not depend on how TCP
                # cut the bytes. Read no further (the framer is broken) and hold the nack and the close until the
                # owner has answered them; next_deadline is due at once.
                self._fatal = err
            else:
                self._framing_failed(err, events)

    def _framing_failed(self, err: InvalidCommandLength, events: list[Event]) -> None:
        # 3.4 section 4.3: "If the receiving SMPP entity, on decoding an SMPP PDU, detects an invalid
        # command_length (either too short or too long), it should assume that the data is corrupt. In such
        # cases a generic_nack PDU must be returned". Where the next frame starts is unknown: the stream ends.
        self._fatal = None
        nack = Pdu.make(C.generic_nack, err.sequence_number or 0, err.command_status)
        self._queue(nack)
        events.append(PduRejected(None, err, nack))
        self._close(CloseReason.FRAMING_ERROR, events)

    # ------------------------------------------------------------------------------------------------ steady reads

    @property
    def steady(self) -> bool:
        """True when the session is bound and nothing is pending -- no bind or unbind under way in either direction,
        no events held, no fatal framing error, reading not paused, no request of the peer awaiting our answer:
        the condition for :meth:`steady_frames`."""
        return not (
            not self._state.is_bound
            or self._held
            or self._fatal is not None
            or self._reading_paused
            or self._owed
            or self._bind_owed is not None
            or self._bind_in_flight is not None
            or self._unbind_owed is not None
            or self._unbind_in_flight is not None
        )

    def steady_frames(self, data: bytes, now: float) -> list[bytes] | None:
        """For an owner's fast path over ordinary traffic, while :attr:`steady`: feed ``data`` and return the whole
        frames buffered, oldest first, *without reading them* (a partial frame stays buffered). None when a
        command_length that cannot be trusted follows them: only reading reports it, in its place.

        The owner then calls exactly one of :meth:`take_steady_frames` (it handles every frame returned itself, as
        :meth:`receive_data` and the owner together would have) and ``receive_data(b"", now)`` (the session reads
        them as usual, as if ``data`` had been fed to it there) -- the latter always after None.
        """
        if not self.steady:
            raise LocalProtocolError("steady_frames outside a steady session: use receive_data")
        self._tick(now)
        self._framer.feed(data)
        peeked = self._framer.peek_frames()
        return None if peeked is None else peeked[0]

    def accepts(self, command: CommandId) -> bool:
        """Whether the session state table lets the peer send ``command`` now (else it is refused, or ignored)."""
        state = self._state
        return state is not S.CLOSED and self._verdicts[state, _RECEIVE, command] is ROK

    def in_flight_request(self, sequence_number: int) -> tuple[Pdu, float] | None:
        """Our request with this sequence_number awaiting its response, and when it was sent; None if none is."""
        flight = self._in_flight.get(sequence_number)
        return None if flight is None else (flight.request, flight.sent_at)

    def take_steady_frames(self, octets: int, now: float, responses: list[int]) -> list[tuple[Pdu, float]]:
        """The owner handled the first ``octets`` of the frames :meth:`steady_frames` returned, none of them a
        keep-alive: each a request with a response, which it answers at once through :meth:`send_steady_responses`
        (so the session owes nothing for them), or a response to one of our message operations, whose sequence
        numbers are ``responses`` (each one in flight, once; see :meth:`in_flight_request`). Takes the octets and
        lands those requests, as reading them would; returns each landed request with when it was sent, in order."""
        in_flight = self._in_flight
        for seq in responses:  # checked before anything changes
            flight = in_flight.get(seq)
            if flight is None or flight.request.command_id not in _WINDOWED:
                raise LocalProtocolError(f"no message operation with sequence_number {seq} is in flight")
        if len(set(responses)) != len(responses):
            raise LocalProtocolError("a sequence_number answered twice")
        self._framer.skip(octets)
        if octets:
            self._last_traffic = self._last_activity = now  # _note_traffic, for frames that are no keep-alive
        landed: list[tuple[Pdu, float]] = []
        for seq in responses:
            flight = in_flight.pop(seq)  # _land, for a message operation
            self._in_flight_windowed -= 1
            landed.append((flight.request, flight.sent_at))
        return landed

    def send_steady_responses(self, octets: bytes | bytearray, now: float) -> None:
        """Put on the wire responses the owner wrote itself to requests taken with :meth:`take_steady_frames`, in
        order; the owner vouches that they are well formed and that the state table allows them (``can_send``)."""
        self._outgoing += octets
        self._last_traffic = self._last_activity = now

    # ------------------------------------------------------------------------------------------------ sending

    def send(self, pdu: Pdu, now: float) -> Pdu:
        """Put a PDU on the wire; return it as sent.

        A request gets the next sequence number (its own is ignored) and a response deadline; a response must
        answer a request the peer is owed (same sequence_number, matching command; a generic_nack may answer
        any, or none). Raises LocalProtocolError — writing nothing — if the state, the window or a pending
        handshake forbids the PDU, or if it cannot be encoded.
        """
        self._tick(now)
        if pdu.command_id.is_response:
            return self._send_response(pdu, now)
        return self._send_request(pdu, now)

    def bind(
        self,
        command: CommandId,
        *,
        system_id: str,
        password: str,
        now: float,
        system_type: str = "",
        addr_ton: int = 0,
        addr_npi: int = 0,
        address_range: str = "",
        tlvs: Tlvs = (),
    ) -> Pdu:
        """ESME: send bind_transmitter, bind_receiver or bind_transceiver with our interface_version."""
        if command not in BIND_COMMANDS:
            raise LocalProtocolError(f"{command.name} is not a bind")
        pdu = Pdu.make(
            command,
            0,
            tlvs=tlvs,
            system_id=system_id,
            password=password,
            system_type=system_type,
            interface_version=int(self.config.interface_version),
            addr_ton=addr_ton,
            addr_npi=addr_npi,
            address_range=address_range,
        )
        return self.send(pdu, now)

    def outbind(self, *, system_id: str, password: str, now: float) -> Pdu:
        """SMSC: ask the ESME at the other end to bind (3.4 section 2.2.1)."""
        return self.send(Pdu.make(C.outbind, 0, system_id=system_id, password=password), now)

    def unbind(self, *, now: float) -> Pdu:
        """Start the unbind handshake."""
        return self.send(Pdu.make(C.unbind, 0), now)

    def enquire_link(self, *, now: float) -> Pdu:
        """Send an enquire_link."""
        return self.send(Pdu.make(C.enquire_link, 0), now)

    def respond(
        self,
        request: Pdu,
        status: int = ROK,
        *,
        now: float,
        tlvs: Tlvs = (),
        **fields: Any,
    ) -> Pdu:
        """Answer a request the peer is owed with its ``*_resp``. With a non-zero status and no fields, the body
        is omitted (3.4 section 4.4.2: "The submit_sm_resp PDU Body is not returned if the command_status field
        contains a non-zero value")."""
        response = request.command_id.response
        if response is None:
            raise LocalProtocolError(f"{request.command_id.name} has no response")
        return self.send(Pdu.make(response, request.sequence_number, status, tlvs=tlvs, **fields), now)

    def accept_bind(self, request: Pdu, *, system_id: str, now: float, tlvs: Tlvs = ()) -> Pdu:
        """SMSC: accept a bind reported by BindRequested; the session becomes bound.

        3.4 section 5.3.2.25: sc_interface_version "is used to indicate the SMPP version supported by the
        SMSC. It is returned in the bind response PDUs". It is added unless the ESME declared 3.3 or earlier
        (interface_version 0x00-0x33, section 5.2.4), which knows no TLVs.
        """
        response = request.command_id.response
        if request.command_id not in BIND_COMMANDS or response is None:
            raise LocalProtocolError(f"{request.command_id.name} is not a bind")
        pairs = tlvs.items() if isinstance(tlvs, Mapping) else tlvs
        items = [(tag_of(key), value) for key, value in pairs]
        declared = request.params.get("interface_version", 0)
        if isinstance(declared, int) and declared >= InterfaceVersion.V34:
            items.append((tag_of("sc_interface_version"), int(self.config.interface_version)))
        pdu = Pdu.make(response, request.sequence_number, ROK, tlvs=tuple(items), system_id=system_id)
        return self.send(pdu, now)

    def reject_bind(self, request: Pdu, status: int, *, now: float) -> Pdu:
        """SMSC: refuse a bind reported by BindRequested (e.g. ESME_RINVPASWD); the session stays unbound."""
        if status == ROK:
            raise LocalProtocolError("reject_bind needs a non-zero command_status")
        if request.command_id not in BIND_COMMANDS:
            raise LocalProtocolError(f"{request.command_id.name} is not a bind")
        return self.respond(request, status, now=now)

    def abandon(self, request: Pdu) -> None:
        """Never answer a request the peer is owed: an emulated SMSC dropping a response on purpose.

        The peer's response timer will fire; our own bookkeeping (the unbind handshake waits until nothing is
        owed) must not wait for an answer that will never be written.
        """
        key = (request.sequence_number, request.command_id)
        if self._owed.get(key, 0) <= 0:
            raise LocalProtocolError(f"no {request.command_id.name} with sequence_number "
                                     f"{request.sequence_number} awaits an answer")
        self._settle_owed(key)
        self._answer_unbind_when_clear(self._held)

    def close(self, reason: CloseReason = CloseReason.LOCAL) -> list[Event]:
        """Mark the session CLOSED (the transport went away, or our caller hangs up). Idempotent."""
        events = self._take_held()
        if self._state is not S.CLOSED:
            self._fatal = None
            self._close(reason, events)
        return events

    # ------------------------------------------------------------------------------------------------ timers

    @property
    def next_deadline(self) -> float | None:
        """When ``handle_timers`` should next be called, or None if no timer runs."""
        if self._held or self._fatal is not None or (self._reading_paused and self._bind_owed is None):
            return self._now
        deadlines = [d for d in self._timer_deadlines() if d is not None]
        in_flight = self._earliest_in_flight_deadline()
        if in_flight is not None:
            deadlines.append(in_flight)
        return min(deadlines) if deadlines else None

    def _earliest_in_flight_deadline(self) -> float | None:
        if not self._in_flight:
            return None
        if self._in_flight_sorted:
            return next(iter(self._in_flight.values())).deadline  # None: no response timer runs
        in_flight = [f.deadline for f in self._in_flight.values() if f.deadline is not None]
        return min(in_flight) if in_flight else None

    def handle_timers(self, now: float) -> list[Event]:
        """Fire every timer due at ``now`` (SMPP 3.4 section 7.2) and return what happened."""
        self._tick(now)
        events = self._take_held()
        if self._state is S.CLOSED:
            return events
        if self._fatal is not None:
            # The requests read before the corrupt frame had their chance to be answered: now the nack, and the
            # stream ends.
            self._framing_failed(self._fatal, events)
            return events
        if self._reading_paused and self._bind_owed is None:
            # The bind that paused reading has its answer: the frames that came behind it are read now.
            self._reading_paused = False
            self._read_frames(now, events)
            if self.closed:
                return events
        init_at, inactive_at, _ = self._timer_deadlines()
        if init_at is not None and now >= init_at:
            # 7.2 session_init_timer: "If the timeout expires, the SMSC should close the network connection."
            events.append(SessionInitTimedOut())
            self._close(CloseReason.SESSION_INIT_TIMEOUT, events)
            return events
        # 7.2 response_timer: "the time lapse allowed between an SMPP request and the corresponding SMPP response".
        link_lost = False
        for seq, flight in list(self._in_flight.items()):
            if flight.deadline is not None and now >= flight.deadline:
                self._land(seq)
                events.append(ResponseTimedOut(flight.request))
                self._timed_out[seq] = (flight.request, flight.sent_at)
                if len(self._timed_out) > _TIMED_OUT_KEPT:
                    self._timed_out.popitem(last=False)
                link_lost = link_lost or flight.request.command_id is C.enquire_link
                if flight.request.command_id is C.unbind:
                    self._close(CloseReason.RESPONSE_TIMEOUT, events)
                    return events
                if flight.request.command_id in BIND_COMMANDS:
                    # The SMSC may have bound and its bind_resp be late: were we to stay OPEN, its end would be
                    # bound and ours not, for good (a retried bind gets ESME_RALYBND; deliver_sm to us are refused
                    # ESME_RINVBNDSTS and lost). Hang up, as common stacks do; a retry uses a fresh connection,
                    # and the SMSC's end of this one goes with it.
                    self._close(CloseReason.BIND_TIMEOUT, events)
                    return events
        self._answer_unbind_when_clear(events)
        if self.closed:
            return events
        if inactive_at is not None and now >= inactive_at:
            # 7.2 inactivity_timer: "The resulting behaviour is to either close the session or issue an unbind".
            if self._state.is_bound:
                events.append(InactivityTimedOut(self._send_request(Pdu.make(C.unbind, 0), now)))
            else:
                events.append(InactivityTimedOut(None))
                self._close(CloseReason.INACTIVITY, events)
                return events
        _, _, enquire_at = self._timer_deadlines()
        # Not in the same call as an enquire_link's timeout: the owner hears of the miss first and may unbind
        # (then no enquire_link may follow); if it does not, next_deadline is already due and the next call sends.
        if enquire_at is not None and now >= enquire_at and not link_lost:
            # 7.2 enquire_link_timer: "the time lapse allowed between operations after which an SMPP entity
            # should interrogate whether its peer still has an active session".
            events.append(EnquireLinkSent(self._send_request(Pdu.make(C.enquire_link, 0), now)))
        return events

    def _timer_deadlines(self) -> tuple[float | None, float | None, float | None]:
        """(session init, inactivity, enquire_link) deadlines in the current state; None where not running."""
        cfg = self.config
        if self._state is S.CLOSED:
            return None, None, None
        init_at = None
        if cfg.session_init_timeout is not None and self._state in (S.OPEN, S.OUTBOUND):
            init_at = self._opened_at + cfg.session_init_timeout
        inactive_at = None
        if cfg.inactivity_timeout is not None and (self._state.is_bound or self._state is S.UNBOUND):
            inactive_at = self._last_activity + cfg.inactivity_timeout
        enquire_at = None
        if (
            cfg.enquire_link_interval is not None
            and self._request_refusal(C.enquire_link) is None
            and not self._enquire_links_in_flight
        ):
            enquire_at = self._last_traffic + cfg.enquire_link_interval
        return init_at, inactive_at, enquire_at

    # ------------------------------------------------------------------------------------------------ send paths

    def _verdict(self, direction: Direction, command: CommandId) -> CommandStatus:
        state = self._state
        if state is S.CLOSED:
            return CommandStatus.ESME_RINVBNDSTS
        return self._verdicts[state, direction, command]

    def _request_refusal(self, command: CommandId) -> LocalProtocolError | None:
        state = self._state  # _verdict, inline: this runs for every request
        status = CommandStatus.ESME_RINVBNDSTS if state is S.CLOSED else self._verdicts[state, _SEND, command]
        if status is not ROK:
            return LocalProtocolError(
                f"an {self.role.value} may not send {command.name} in {self._state.value} "
                f"(SMPP {self._version.name} session state table)",
                command_id=command,
                command_status=status,
            )
        if command in BIND_COMMANDS and self._bind_in_flight is not None:
            return LocalProtocolError("a bind is already awaiting its response", command_id=command,
                                      command_status=CommandStatus.ESME_RINVBNDSTS)
        if self._unbind_in_flight is not None:
            # Even where the table allows a request in UNBOUND (5.0: enquire_link), none may follow our own
            # unbind: the peer hangs up once it has answered the unbind, and the request would be lost.
            return LocalProtocolError("our unbind is awaiting its response: no new requests", command_id=command,
                                      command_status=CommandStatus.ESME_RINVBNDSTS)
        if command in _WINDOWED and self._in_flight_windowed >= self.config.window:
            return LocalProtocolError(
                f"window of {self.config.window} outstanding requests is full; wait for a response",
                command_id=command,
                command_status=CommandStatus.ESME_RTHROTTLED,
            )
        return None

    def _send_request(self, pdu: Pdu, now: float, allowed: bool = False, body: bytes | None = None) -> Pdu:
        command = pdu.command_id
        refusal = None if allowed else self._request_refusal(command)
        if refusal is not None:
            raise refusal
        if pdu.command_status != ROK:
            # 3.4 section 3.2: command_status "is relevant only in the SMPP response message ... set to NULL" in a
            # request.
            raise LocalProtocolError(f"a request's command_status must be 0, not {pdu.command_status}")
        if pdu.tlvs and self._version is _V33:
            raise LocalProtocolError(f"{command.name} with optional parameters to an SMPP 3.3 peer, which has none",
                                     command_id=command)
        seq = self._next_seq
        while seq in self._in_flight:  # after a wrap, never reuse a number still in flight
            seq = _next_sequence(seq)
        sent = pdu.with_sequence(seq)
        if body is None:
            # _queue: raises LocalProtocolError before anything changes if it cannot be encoded.
            encode_into(sent, self._outgoing)
        else:
            outgoing = self._outgoing
            outgoing += HEADER.pack(HEADER_SIZE + len(body), command, 0, seq)
            outgoing += body
        self._next_seq = 1 if seq >= SEQUENCE_MAX else seq + 1  # _next_sequence
        self._last_traffic = now  # _note_traffic
        if command not in _KEEPALIVE:
            self._last_activity = now
        if command.response is not None:
            timeout = self.config.response_timeout
            deadline = None if timeout is None else now + timeout
            if not self._in_flight:
                self._in_flight_sorted = True
            elif deadline is not None and (self._last_deadline is None or deadline < self._last_deadline):
                self._in_flight_sorted = False
            self._last_deadline = deadline
            self._in_flight[seq] = _InFlight(sent, now, deadline)
            if command in _WINDOWED:
                self._in_flight_windowed += 1
            elif command is C.enquire_link:
                self._enquire_links_in_flight += 1
        if command in BIND_COMMANDS:
            self._bind_in_flight = seq
        elif command is C.unbind:
            self._unbind_in_flight = seq
        if command in _MOVING:  # _move, inline: this runs for every request
            self._state = TRANSITIONS.get((self._state, command), self._state)
        return sent

    def _send_response(self, pdu: Pdu, now: float) -> Pdu:
        command = pdu.command_id
        state = self._state  # _verdict, inline: this runs for every response
        status = CommandStatus.ESME_RINVBNDSTS if state is S.CLOSED else self._verdicts[state, _SEND, command]
        if status is not ROK:
            raise LocalProtocolError(
                f"an {self.role.value} may not send {command.name} in {self._state.value}",
                command_id=command, command_status=status,
            )
        if pdu.tlvs and self._version is _V33:
            raise LocalProtocolError(f"{command.name} with optional parameters to an SMPP 3.3 peer, which has none",
                                     command_id=command)
        # _owed_key, inline for a response to its own request: this runs for every response.
        request = command.request
        key: tuple[int, CommandId] | None
        if command is not C.generic_nack and request is not None and (pdu.sequence_number, request) in self._owed:
            key = (pdu.sequence_number, request)
        else:
            key = self._owed_key(pdu)
        if key is None and command is not C.generic_nack:
            raise LocalProtocolError(
                f"no {command.request.name if command.request else '?'} with sequence_number "
                f"{pdu.sequence_number} awaits an answer",
                command_id=command,
            )
        encode_into(pdu, self._outgoing)  # _queue
        self._last_traffic = now  # _note_traffic
        if command not in _KEEPALIVE:
            self._last_activity = now
        if key is not None:
            # _settle_owed, inline: this runs for every response.
            owed = self._owed
            count = owed[key] - 1
            if count:
                owed[key] = count
            else:
                del owed[key]
            if key[1] in _WINDOWED:
                self._owed_windowed -= 1
            elif key[1] in BIND_COMMANDS:
                self._bind_settled(pdu)
        if self._unbind_owed is not None:
            self._answer_unbind_when_clear(self._held)
        return pdu

    def _owed_key(self, response: Pdu) -> tuple[int, CommandId] | None:
        seq = response.sequence_number
        if response.command_id is C.generic_nack:
            return next((key for key in self._owed if key[0] == seq), None)
        request = response.command_id.request
        if request is None or (seq, request) not in self._owed:
            return None
        return seq, request

    def _settle_owed(self, key: tuple[int, CommandId]) -> None:
        count = self._owed[key] - 1
        if count:
            self._owed[key] = count
        else:
            del self._owed[key]
        if key[1] in _WINDOWED:
            self._owed_windowed -= 1

    def _bind_settled(self, response: Pdu) -> None:
        """SMSC: our answer to the pending bind went out."""
        request = self._bind_owed
        self._bind_owed = None
        if request is not None and response.command_id is not C.generic_nack and response.command_status == ROK:
            declared = request.params.get("interface_version", 0)
            self._set_version(_negotiated(self.config.interface_version, declared if isinstance(declared, int) else 0))
            self._move(response.command_id)

    # ------------------------------------------------------------------------------------------------ receive paths

    def _on_frame_error(self, error: SmppError, now: float, events: list[Event]) -> None:
        """A well-framed PDU that did not decode (3.4 section 4.3 for the header, the command's status for the
        body)."""
        command: CommandId | None
        try:
            command = CommandId(error.command_id) if error.command_id is not None else None
        except ValueError:
            command = None
        if isinstance(error, ResponseBodyMissing) and command is not None and command.is_response:
            # A *_resp ESME_ROK without body: reported (the peer broke 4.4.2), yet it answers its request. Refused,
            # the request would time out and be sent again -- a receipt delivered twice for one acknowledged.
            pdu = Pdu.make(command, error.sequence_number or 0)
            events.append(PduRejected(pdu, error, None))
            self._on_pdu(pdu, now, events)
            return
        if command is not None and self._verdict(Direction.RECEIVE, command) is CommandStatus.ESME_RINVCMDID:
            command = None  # a command this interface version does not have
        if command is None and not isinstance(error, InvalidCommandId):
            error = InvalidCommandId(error.message, sequence_number=error.sequence_number,
                                     command_id=error.command_id)
        reply = self._reply_for(command, error.sequence_number or 0, error.command_status)
        if reply is not None:
            self._queue(reply)
        events.append(PduRejected(None, error, reply))

    @staticmethod
    def _reply_for(command: CommandId | None, seq: int, status: int) -> Pdu | None:
        """How SMPP answers a refused PDU: its *_resp, else a generic_nack; a response gets nothing."""
        if command is not None and command.is_response:
            return None
        response = None if command is None else command.response
        if response is None:
            return Pdu.make(C.generic_nack, seq, status)
        return Pdu.make(response, seq, status)

    def _reject(self, pdu: Pdu, error: SmppError, events: list[Event]) -> None:
        reply = self._reply_for(pdu.command_id, pdu.sequence_number, error.command_status)
        if reply is not None:
            self._queue(reply)
        events.append(PduRejected(pdu, error, reply))

    def _on_pdu(self, pdu: Pdu, now: float, events: list[Event]) -> None:
        command = pdu.command_id
        state = self._state  # _verdict, inline: this runs for every PDU
        status = CommandStatus.ESME_RINVBNDSTS if state is S.CLOSED else self._verdicts[state, _RECEIVE, command]
        if status is CommandStatus.ESME_RINVCMDID:
            # 3.4 section 4.3: "If an unknown or invalid command_id is received, a generic_nack PDU must also be
            # returned to the originator" — unknown, here, to the interface version in force.
            error: SmppError = InvalidCommandId(
                f"{command.name} does not exist in SMPP {self._version.name}",
                sequence_number=pdu.sequence_number, command_id=command,
            )
            nack = Pdu.make(C.generic_nack, pdu.sequence_number, status)
            self._queue(nack)
            events.append(PduRejected(pdu, error, nack))
            return
        if status is not ROK:
            if command.is_response and command is not C.generic_nack:
                flight = self._in_flight.get(pdu.sequence_number)
                if flight is not None and command.request is not flight.request.command_id:
                    # A response the peer's role never sends here (an ESME's submit_sm_resp) that carries the
                    # sequence_number of one of our requests in flight (our deliver_sm): an answer to that request
                    # of the wrong command, which _on_response reports as such -- not a state error.
                    self._on_response(pdu, now, events)
                    return
            error = InvalidState(
                f"an {self.role.peer.value} may not send {command.name} to an {self.role.value} in "
                f"{self._state.value}",
                sequence_number=pdu.sequence_number, command_id=command, command_status=status,
            )
            self._reject(pdu, error, events)
            return
        if pdu.tlvs and self._version is _V33 and not command.is_response:
            # SMPP 3.3 has fixed bodies: optional parameters came with 3.4 (5.2.4 / 5.3.2.25: interface_version
            # 0x33 and below is a peer without them), so octets after the last mandatory field overrun the body.
            # (A response keeps its request's fate: refusing it could only leave the request unanswered.)
            self._reject(pdu, InvalidCommandLength(
                f"{command.name} carries optional parameters, which SMPP 3.3 does not have",
                sequence_number=pdu.sequence_number, command_id=command), events)
            return
        if command.is_response:
            self._on_response(pdu, now, events)
        elif command in _ON_REQUEST:
            _ON_REQUEST[command](self, pdu, events)
        elif command in _WINDOWED:
            # _on_operation and _owe, inline for the common case: this runs for every message.
            key = (pdu.sequence_number, command)
            owed = self._owed
            owed[key] = owed.get(key, 0) + 1
            self._owed_windowed += 1
            events.append(PduReceived(pdu))
        else:
            self._on_operation(pdu, events)

    def _owe(self, pdu: Pdu) -> None:
        if pdu.command_id.response is None:
            return
        key = (pdu.sequence_number, pdu.command_id)
        self._owed[key] = self._owed.get(key, 0) + 1
        if pdu.command_id in _WINDOWED:
            self._owed_windowed += 1

    def _on_operation(self, pdu: Pdu, events: list[Event]) -> None:
        self._owe(pdu)
        events.append(PduReceived(pdu))

    def _on_enquire_link(self, pdu: Pdu, events: list[Event]) -> None:
        if self.config.auto_answer_enquire_link:
            self._queue(pdu.response())
            events.append(PduReceived(pdu, auto_answered=True))
        else:
            self._on_operation(pdu, events)

    def _on_bind(self, pdu: Pdu, events: list[Event]) -> None:
        if self._bind_owed is not None:
            self._reject(pdu, InvalidState("a bind is already being decided", sequence_number=pdu.sequence_number,
                                           command_id=pdu.command_id), events)
            return
        self._owe(pdu)
        self._bind_owed = pdu
        events.append(BindRequested(pdu))

    def _on_outbind(self, pdu: Pdu, events: list[Event]) -> None:
        self._move(pdu.command_id)
        events.append(OutbindReceived(pdu))

    def _on_unbind(self, pdu: Pdu, events: list[Event]) -> None:
        if self._unbind_owed is not None:
            self._reject(pdu, InvalidState("an unbind is already being answered",
                                           sequence_number=pdu.sequence_number, command_id=pdu.command_id), events)
            return
        self._move(pdu.command_id)
        self._unbind_owed = pdu
        events.append(UnbindRequested(pdu))
        self._answer_unbind_when_clear(events)

    def _on_response(self, pdu: Pdu, now: float, events: list[Event]) -> None:
        seq = pdu.sequence_number
        flight = self._in_flight.get(seq)
        if flight is None:
            late = self._timed_out.pop(seq, None) if self._timed_out else None
            if late is not None and (pdu.command_id is C.generic_nack or pdu.command_id.request is late[0].command_id):
                events.append(LateResponseReceived(late[0], pdu, now - late[1]))
                return
            events.append(PduRejected(pdu, UnexpectedResponse(
                "no request of ours with this sequence_number awaits a response",
                sequence_number=seq, command_id=pdu.command_id), None))
            return
        request = flight.request
        if pdu.command_id is not C.generic_nack and pdu.command_id.request is not request.command_id:
            expected = request.command_id.response
            assert expected is not None  # only a request with a response is ever in flight
            events.append(PduRejected(pdu, UnexpectedResponse(
                f"our request with this sequence_number is a {request.command_id.name}, answered by a "
                f"{expected.name}, not a {pdu.command_id.name}", sequence_number=seq, command_id=pdu.command_id),
                None))
            return
        if request.command_id in _WINDOWED:
            # _land, inline for a message operation: this runs for every response.
            del self._in_flight[seq]
            self._in_flight_windowed -= 1
            events.append(ResponseReceived(request, pdu, now - flight.sent_at))
            if self._unbind_owed is not None:
                self._answer_unbind_when_clear(events)
            return
        self._land(seq)
        if request.command_id in BIND_COMMANDS:
            self._on_bind_response(request, pdu, events)
            return
        events.append(ResponseReceived(request, pdu, now - flight.sent_at))
        if request.command_id is C.unbind:
            if self._in_flight and self._state is S.UNBOUND and self._unbind_owed is None:
                self._read_responses_behind_unbind(now, events)
            self._finish_unbind_when_clear(events)
        else:
            self._answer_unbind_when_clear(events)

    def _on_bind_response(self, request: Pdu, response: Pdu, events: list[Event]) -> None:
        if response.command_id is C.generic_nack or response.command_status != ROK:
            events.append(BindRejected(request, response))
            return
        declared = response.tlv("sc_interface_version")
        if isinstance(declared, int):
            self._set_version(_negotiated(self.config.interface_version, declared))
        self._move(response.command_id)
        events.append(BindAccepted(request, response, self._state))

    def _land(self, seq: int) -> None:
        """Our request ``seq`` is no longer in flight (answered or timed out)."""
        flight = self._in_flight.pop(seq)
        command = flight.request.command_id
        if command in _WINDOWED:
            self._in_flight_windowed -= 1
        elif command is C.enquire_link:
            self._enquire_links_in_flight -= 1
        if seq == self._bind_in_flight:
            self._bind_in_flight = None
        if seq == self._unbind_in_flight:
            self._unbind_in_flight = None

    # ------------------------------------------------------------------------------------------------ unbind

    def _read_responses_behind_unbind(self, now: float, events: list[Event]) -> None:
        """Our unbind is answered and the session is about to close: first take the responses to our other
        requests that already arrived behind the unbind_resp. A peer may answer unbind at once and a deliver_sm
        a moment later, in the same segment; dropped, its ESME_ROK would report the deliver_sm unanswered and
        the receipt be sent again -- a duplicate of one acknowledged. Anything else behind the unbind_resp (3.4
        section 2.3: after it the peer may hang up) stays unread: the session closes."""
        while self._in_flight:
            try:
                frame = self._framer.next_frame()
            except InvalidCommandLength:
                return
            if frame is None:
                return
            try:
                pdu = decode(frame)
            except SmppError:
                return
            if not pdu.command_id.is_response or pdu.sequence_number not in self._in_flight:
                return
            self._on_response(pdu, now, events)

    def _answer_unbind_when_clear(self, events: list[Event]) -> None:
        """Queue the unbind_resp once both directions are drained: every other request the peer sent has its
        answer on the wire, and every request of ours (but our own crossing unbind) has its answer or timed out.
        The peer tears the connection down on the unbind_resp; nothing still in flight would survive that."""
        if self._unbind_owed is None or self._owed:
            return
        if any(seq != self._unbind_in_flight for seq in self._in_flight):
            return
        self._queue(self._unbind_owed.response())
        self._unbind_owed = None
        self._finish_unbind_when_clear(events)

    def _finish_unbind_when_clear(self, events: list[Event]) -> None:
        """Close once neither half of an unbind handshake is pending."""
        if self._state is S.UNBOUND and self._unbind_owed is None and self._unbind_in_flight is None:
            self._move(C.unbind_resp)
            self._closed(CloseReason.UNBOUND, events)

    # ------------------------------------------------------------------------------------------------ plumbing

    def _set_version(self, version: InterfaceVersion) -> None:
        self._version = version
        self._verdicts = verdict_table(version, self.config.role)

    def _move(self, command: CommandId) -> None:
        if command in _MOVING:
            self._state = TRANSITIONS.get((self._state, command), self._state)

    def _close(self, reason: CloseReason, events: list[Event]) -> None:
        self._state = S.CLOSED
        self._closed(reason, events)

    def _closed(self, reason: CloseReason, events: list[Event]) -> None:
        events.append(SessionClosed(reason, self.outstanding_requests))
        self._in_flight.clear()
        self._in_flight_windowed = 0
        self._enquire_links_in_flight = 0
        self._owed.clear()
        self._owed_windowed = 0
        self._bind_in_flight = self._unbind_in_flight = None
        self._bind_owed = self._unbind_owed = None

    def _queue(self, pdu: Pdu) -> None:
        encode_into(pdu, self._outgoing)

    def _note_traffic(self, command: CommandId | None, now: float) -> None:
        self._last_traffic = now
        if command not in _KEEPALIVE:
            self._last_activity = now

    def _tick(self, now: float) -> None:
        if now > self._now:  # max(self._now, now), without the call
            self._now = now

    def _take_held(self) -> list[Event]:
        events, self._held = self._held, []
        return events

    def __repr__(self) -> str:
        return (
            f"<Session {self.role.value} {self._state.value} v{self._version.name} in_flight={len(self._in_flight)}"
            f" owed={self.owed_requests}>"
        )


_ON_REQUEST: dict[CommandId, Callable[[Session, Pdu, list[Event]], None]] = {
    C.bind_transmitter: Session._on_bind,
    C.bind_receiver: Session._on_bind,
    C.bind_transceiver: Session._on_bind,
    C.outbind: Session._on_outbind,
    C.unbind: Session._on_unbind,
    C.enquire_link: Session._on_enquire_link,
}
