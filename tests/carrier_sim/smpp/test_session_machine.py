"""An ESME session and an SMSC session talking to each other under Hypothesis.

The two sessions are joined by in-memory byte pipes that deliver in randomly sized chunks; a fake clock advances
by rule. Each side plays a small application: it answers what it is owed (in any order, sometimes with an error),
the SMSC accepts or refuses binds. When one side closes, the transport is modelled too: once its last bytes are
delivered, the other side learns the connection is gone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from carrier_sim.smpp.constants import SEQUENCE_MAX, CommandId, CommandStatus, InterfaceVersion
from carrier_sim.smpp.errors import InvalidState
from carrier_sim.smpp.events import (
    BindAccepted,
    BindRejected,
    BindRequested,
    CloseReason,
    EnquireLinkSent,
    Event,
    InactivityTimedOut,
    PduReceived,
    PduRejected,
    ResponseReceived,
    ResponseTimedOut,
    SessionClosed,
)
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session import SESSION_MANAGEMENT, Session, SessionConfig, UnexpectedResponse
from carrier_sim.smpp.session_table import Role, SessionState

C = CommandId
S = SessionState
PENDING, ANSWERED, TIMED_OUT, ABANDONED = "pending", "answered", "timed out", "abandoned"


@dataclass
class Tracked:
    """One request a side sent, and what became of it."""

    pdu: Pdu
    outcome: str = PENDING


@dataclass
class Side:
    """One session plus the application around it and the pipe leaving it."""

    name: str
    session: Session
    outbox: bytearray = field(default_factory=bytearray)
    requests: dict[int, Tracked] = field(default_factory=dict)  # keyed by id() of the Pdu the session returned
    owed: list[Pdu] = field(default_factory=list)
    timeouts: int = 0
    lost_connection: bool = False


_MESSAGE_ID = {C.submit_sm, C.data_sm, C.deliver_sm}


class TwoPeers(RuleBasedStateMachine):
    """ESME <-> SMSC through chunked in-memory pipes."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.started = False
        self.pending_bind: Pdu | None = None

    # ------------------------------------------------------------------------------------------ set-up

    @initialize(
        version=st.sampled_from([InterfaceVersion.V34, InterfaceVersion.V50]),
        window=st.integers(1, 4),
        esme_seq=st.sampled_from([1, SEQUENCE_MAX - 2]),
        smsc_seq=st.sampled_from([1, SEQUENCE_MAX]),
        response_timeout=st.sampled_from([None, None, 90.0]),
        enquire_link_interval=st.sampled_from([None, 25.0]),
        bound_as=st.sampled_from([None, C.bind_transmitter, C.bind_receiver, C.bind_transceiver, C.bind_transceiver]),
    )
    def start(
        self,
        version: InterfaceVersion,
        window: int,
        esme_seq: int,
        smsc_seq: int,
        response_timeout: float | None,
        enquire_link_interval: float | None,
        bound_as: CommandId | None,
    ) -> None:
        def config(role: Role, seq: int) -> SessionConfig:
            return SessionConfig(
                role,
                version,
                window=window,
                session_init_timeout=None,
                inactivity_timeout=None,
                enquire_link_interval=enquire_link_interval,
                response_timeout=response_timeout,
                initial_sequence_number=seq,
            )

        self.window = window
        self.configs = (config(Role.ESME, esme_seq), config(Role.SMSC, smsc_seq))
        self.connect()
        self.started = True
        if bound_as is not None:  # most runs should spend their steps bound: do the handshake up front
            self.bind(bound_as)
            self.transfer(True, 1000)
            self.decide_bind(True)
            self.transfer(False, 1000)
            assert self.esme.session.state.is_bound

    def connect(self) -> None:
        self.esme = Side("esme", Session(self.configs[0], now=self.now))
        self.smsc = Side("smsc", Session(self.configs[1], now=self.now))
        self.pending_bind = None

    def peer(self, side: Side) -> Side:
        return self.smsc if side is self.esme else self.esme

    def side(self, from_esme: bool) -> Side:
        return self.esme if from_esme else self.smsc

    # ------------------------------------------------------------------------------------------ bookkeeping

    def track(self, side: Side, pdu: Pdu) -> None:
        if pdu.command_id.response is not None:
            assert id(pdu) not in side.requests
            side.requests[id(pdu)] = Tracked(pdu)

    def resolve(self, side: Side, request: Pdu, outcome: str) -> None:
        tracked = side.requests[id(request)]
        assert tracked.outcome == PENDING, f"{side.name}: {request} was already {tracked.outcome}, now {outcome}"
        tracked.outcome = outcome

    def handle(self, side: Side, events: list[Event]) -> None:
        session = side.session
        for event in events:
            match event:
                case ResponseReceived(request=request) | BindAccepted(request=request) | BindRejected(
                    request=request
                ):
                    self.resolve(side, request, ANSWERED)
                case ResponseTimedOut(request=request):
                    self.resolve(side, request, TIMED_OUT)
                    side.timeouts += 1
                case SessionClosed(reason=reason, unanswered=unanswered):
                    for request in unanswered:
                        self.resolve(side, request, ABANDONED)
                    assert not unanswered or self.any_timeouts() or reason is CloseReason.CONNECTION_LOST, event
                    side.owed.clear()
                    if side is self.smsc:
                        self.pending_bind = None
                case PduReceived(pdu=pdu, auto_answered=auto):
                    if not auto and pdu.command_id.response is not None:
                        side.owed.append(pdu)
                case BindRequested(request=request):
                    assert side is self.smsc
                    assert self.pending_bind is None
                    self.pending_bind = request
                case EnquireLinkSent(request=request):
                    self.track(side, request)
                case InactivityTimedOut(unbind=unbind):
                    if unbind is not None:
                        self.track(side, unbind)
                case PduRejected(pdu=pdu, error=error):
                    if isinstance(error, UnexpectedResponse):
                        # Only a response arriving after its request timed out may find nothing to match.
                        assert pdu is not None
                        assert any(
                            t.outcome == TIMED_OUT and t.pdu.sequence_number == pdu.sequence_number
                            for t in side.requests.values()
                        ), event
                    else:
                        # The only misplaced PDUs are those that raced an unbind, or followed a timeout.
                        assert isinstance(error, InvalidState), event
                        assert session.state in (S.UNBOUND, S.CLOSED) or self.any_timeouts(), event
                case _:
                    pass
        side.outbox += session.data_to_send()

    def any_timeouts(self) -> bool:
        return self.esme.timeouts > 0 or self.smsc.timeouts > 0

    def settle(self) -> None:
        """Service what is due, flush both sessions; when a closed side's last bytes are delivered, the other loses
        the connection."""
        for side in (self.esme, self.smsc):
            # As the I/O layer does after every event: a session due now (events held, frames that waited behind a
            # bind that has its answer) is serviced at once.
            deadline = side.session.next_deadline
            if deadline is not None and deadline <= self.now and not side.session.closed:
                self.handle(side, side.session.handle_timers(self.now))
        for side in (self.esme, self.smsc):
            side.outbox += side.session.data_to_send()
        for side in (self.esme, self.smsc):
            other = self.peer(side)
            if side.session.closed and not side.outbox and not other.session.closed:
                other.lost_connection = True
                self.handle(other, other.session.close(CloseReason.CONNECTION_LOST))

    def send(self, side: Side, pdu: Pdu) -> None:
        sent = side.session.send(pdu, self.now)
        self.track(side, sent)
        self.settle()

    # ------------------------------------------------------------------------------------------ rules

    def can(self, side: Side, command: CommandId) -> bool:
        return self.started and side.session.can_send(command)

    def either_can(self, command: CommandId) -> bool:
        return self.started and (self.esme.session.can_send(command) or self.smsc.session.can_send(command))

    def pick(self, from_esme: bool, command: CommandId) -> Side:
        side = self.side(from_esme)
        return side if side.session.can_send(command) else self.peer(side)

    @precondition(lambda self: self.can(self.esme, C.bind_receiver))
    @rule(kind=st.sampled_from([C.bind_transmitter, C.bind_receiver, C.bind_transceiver]))
    def bind(self, kind: CommandId) -> None:
        if not self.esme.session.can_send(kind):
            kind = C.bind_receiver  # after an outbind only some binds are allowed
        sent = self.esme.session.bind(kind, system_id="esme", password="pw", now=self.now)
        self.track(self.esme, sent)
        self.settle()

    @precondition(lambda self: self.started and self.pending_bind is not None)
    @rule(accept=st.booleans())
    def decide_bind(self, accept: bool) -> None:
        request = self.pending_bind
        assert request is not None
        self.pending_bind = None
        if accept:
            self.smsc.session.accept_bind(request, system_id="smsc", now=self.now)
        else:
            self.smsc.session.reject_bind(request, CommandStatus.ESME_RINVPASWD, now=self.now)
        self.settle()

    @precondition(lambda self: self.can(self.esme, C.submit_sm))
    @rule(text=st.binary(max_size=20))
    def submit_sm(self, text: bytes) -> None:
        self.send(self.esme, Pdu.make(C.submit_sm, 0, destination_addr="31611111111", short_message=text))

    @precondition(lambda self: self.can(self.smsc, C.deliver_sm))
    @rule(text=st.binary(max_size=20))
    def deliver_sm(self, text: bytes) -> None:
        self.send(self.smsc, Pdu.make(C.deliver_sm, 0, source_addr="31611111111", short_message=text))

    @precondition(lambda self: self.either_can(C.data_sm))
    @rule(from_esme=st.booleans())
    def data_sm(self, from_esme: bool) -> None:
        self.send(self.pick(from_esme, C.data_sm), Pdu.make(C.data_sm, 0, destination_addr="31611111111"))

    @precondition(lambda self: self.either_can(C.enquire_link) and self.esme.session.state is not S.OPEN)
    @rule(from_esme=st.booleans())
    def enquire_link(self, from_esme: bool) -> None:
        self.send(self.pick(from_esme, C.enquire_link), Pdu.make(C.enquire_link, 0))

    @precondition(lambda self: self.either_can(C.unbind))
    @rule(from_esme=st.booleans())
    def unbind(self, from_esme: bool) -> None:
        self.send(self.pick(from_esme, C.unbind), Pdu.make(C.unbind, 0))

    @precondition(lambda self: self.started and bool(self.esme.owed or self.smsc.owed))
    @rule(from_esme=st.booleans(), index=st.integers(0, 10), ok=st.booleans())
    def answer(self, from_esme: bool, index: int, ok: bool) -> None:
        side = self.side(from_esme)
        if not side.owed:
            side = self.peer(side)
        request = side.owed.pop(index % len(side.owed))
        fields: dict[str, Any] = {"message_id": "m"} if ok and request.command_id in _MESSAGE_ID else {}
        status = CommandStatus.ESME_ROK if ok else CommandStatus.ESME_RSYSERR
        side.session.respond(request, status, now=self.now, **fields)
        self.settle()

    @precondition(lambda self: self.started and bool(self.esme.outbox or self.smsc.outbox))
    @rule(from_esme=st.booleans(), size=st.integers(1, 80))
    def transfer(self, from_esme: bool, size: int) -> None:
        side = self.side(from_esme)
        if not side.outbox:
            side = self.peer(side)
        chunk = bytes(side.outbox[:size])
        del side.outbox[:size]
        receiver = self.peer(side)
        self.handle(receiver, receiver.session.receive_data(chunk, self.now))
        self.settle()

    @precondition(lambda self: self.started)
    @rule(dt=st.floats(0.5, 15.0))
    def advance_clock(self, dt: float) -> None:
        self.now += dt
        for side in (self.esme, self.smsc):
            deadline = side.session.next_deadline
            events = side.session.handle_timers(self.now)
            if deadline is None or deadline > self.now:
                assert events == [], (side.name, deadline, self.now, events)
            self.handle(side, events)
        self.settle()

    @precondition(
        lambda self: self.started and self.esme.session.closed and self.smsc.session.closed
        and not self.esme.outbox and not self.smsc.outbox
    )
    @rule()
    def reconnect(self) -> None:
        """Both ends hung up: check the finished connection, then open a new one."""
        self.check_resolved()
        self.connect()

    # ------------------------------------------------------------------------------------------ invariants

    @invariant()
    def windows_hold(self) -> None:
        if not self.started:
            return
        for side in (self.esme, self.smsc):
            session = side.session
            assert 0 <= session.outstanding <= self.window
            assert session.window_free == self.window - session.outstanding
            pending = [t.pdu for t in side.requests.values() if t.outcome == PENDING]
            windowed = [p for p in pending if p.command_id not in SESSION_MANAGEMENT]
            assert session.outstanding == len(windowed)
            # The session's view of what is in flight is exactly the application's.
            assert {id(p) for p in session.outstanding_requests} == {id(p) for p in pending}
            seqs = [p.sequence_number for p in session.outstanding_requests]
            assert len(seqs) == len(set(seqs)), "sequence numbers unique among outstanding requests"
            assert all(1 <= s <= SEQUENCE_MAX for s in seqs)
            # What the peer sees of our window: it never owes us more than we may have in flight, unless we
            # stopped waiting for something (a timeout frees our window while the peer still holds the request).
            if side.timeouts == 0:
                assert self.peer(side).session.peer_outstanding <= self.window

    @invariant()
    def both_sides_agree_when_quiet(self) -> None:
        if not self.started or self.esme.outbox or self.smsc.outbox or self.pending_bind is not None:
            return
        if self.any_timeouts():
            return  # a side that gave up on a bind or unbind may rightly disagree
        assert self.esme.session.state is self.smsc.session.state, (self.esme.session, self.smsc.session)

    def teardown(self) -> None:
        """Let the applications answer everything and the pipes drain: every request must then be resolved."""
        if not self.started:
            return
        for _ in range(1000):
            if self.pending_bind is not None:
                self.decide_bind(True)
            elif self.esme.owed or self.smsc.owed:
                self.answer(bool(self.esme.owed), 0, True)
            elif self.esme.outbox or self.smsc.outbox:
                self.transfer(bool(self.esme.outbox), 1000)
            else:
                break
        self.check_resolved()

    def check_resolved(self) -> None:
        """Every request got exactly one outcome; without a timeout, that outcome is a response."""
        for side in (self.esme, self.smsc):
            unresolved = [t.pdu for t in side.requests.values() if t.outcome == PENDING]
            assert unresolved == [], (side.name, unresolved)
            if not self.any_timeouts():
                # Nothing given up on, so nothing lost: every request got exactly one response.
                assert all(t.outcome == ANSWERED for t in side.requests.values()), side.name


TwoPeers.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_two_peers = TwoPeers.TestCase
