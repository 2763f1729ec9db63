"""The SMSC's decisions, with no sockets: an ESME-role Session talks to Smsc connections in virtual time.

:class:`World` plays the I/O layer of :mod:`carrier_sim.net.smsc_server` with a clock the test moves: after
every action it runs the SMSC's due timers and shuttles bytes both ways until nothing moves. Each ESME is a real
:class:`~carrier_sim.smpp.session.Session` in the ESME role, so every PDU crosses the codec in both directions and
the SMSC's session state machine sees exactly what a socket would carry.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.coding import decode_text, encode_text
from carrier_sim.smpp.constants import CommandId, CommandStatus, InterfaceVersion
from carrier_sim.smpp.events import (
    BindAccepted,
    BindRejected,
    CloseReason,
    Event,
    PduReceived,
    PduRejected,
    ResponseReceived,
    ResponseTimedOut,
    UnbindRequested,
)
from carrier_sim.smpp.framing import decode_stream
from carrier_sim.smpp.pdu import DistributionList, Pdu, SmeAddress, UnsuccessSme
from carrier_sim.smpp.receipt import (
    DECIMAL_12,
    KANNEL_LIKE,
    MIXED_ID_BASES,
    PRESETS,
    SPEC_V34,
    TERSE,
    MessageState,
    ReceiptDialect,
    parse_receipt,
)
from carrier_sim.smpp.segmentation import TooManySegments
from carrier_sim.smpp.session import Session, SessionConfig
from carrier_sim.smpp.session_table import Role
from carrier_sim.smpp.tlv import (
    TLV_BY_NAME,
    BroadcastAreaIdentifier,
    BroadcastContentType,
    BroadcastFrequencyInterval,
    NetworkErrorCode,
)
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc.accounts import Account, BindKind, MoDelivery
from carrier_sim.smsc.centre import DelayDistribution, Smsc, SmscConfig, SmscConnection
from carrier_sim.smsc.draws import Draw, KeyedDraws, subject_word
from carrier_sim.smsc.faults import FaultPlan
from carrier_sim.smsc.store import StoredMessage
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry

C = CommandId
S = CommandStatus

#: 2023-11-14 22:13:20 UTC. Receipts and query_sm print real dates, so virtual time starts at a real instant.
T0 = 1_700_000_000.0
#: "in 10 seconds" as a relative SMPP time (SMPP 3.4 7.1.1.2: YYMMDDhhmmss t nn R).
IN_10_S = "000000000010000R"
IN_15_S = "000000000015000R"

SOURCE = "12345"
REACHABLE = "447700900001"
OTHER = "447700900002"
ABSENT = "447700900100"
UNKNOWN = "447700900200"
BARRED = "447700900300"

ESM_RECEIPT = 0x04
ESM_UDHI = 0x40


def stamp(t: float, digits: int = 10) -> str:
    """A receipt date (YYMMDDhhmm or YYMMDDhhmmss) of virtual time ``t``, in UTC as the SMSC writes them."""
    return datetime.fromtimestamp(t, UTC).strftime("%y%m%d%H%M%S")[:digits]


# ---------------------------------------------------------------------------------------------------- harness


def esm_class(pdu: Pdu) -> int:
    """A PDU's esm_class."""
    value = pdu["esm_class"]
    assert isinstance(value, int)
    return value


@dataclass
class Peer:
    """One ESME: an ESME-role session wired to one SMSC connection; records what it saw, and when."""

    world: World
    name: str
    conn: SmscConnection
    session: Session
    events: list[tuple[float, Event]] = field(default_factory=list)
    #: command_status the ESME answers deliver_sm/data_sm with (a busy ESME refuses with a non-zero one).
    answer_status: int = S.ESME_ROK
    #: False: an ESME that reads deliver_sm/data_sm and never answers them.
    answers: bool = True

    # -- actions -------------------------------------------------------------------------------------------

    def bind(self, system_id: str, password: str = "pw", command: CommandId = C.bind_transceiver,
             **fields: Any) -> Pdu:
        """Bind and return the bind response (accepted or not)."""
        sent = self.session.bind(command, system_id=system_id, password=password, now=self.world.now, **fields)
        self.world.pump()
        for _, event in reversed(self.events):
            if isinstance(event, BindAccepted | BindRejected) and event.request.sequence_number == sent.sequence_number:
                return event.response
        raise AssertionError(f"no answer to {sent!r}")

    def send(self, pdu: Pdu) -> Pdu:
        """Send a request (the session numbers it); return it as sent."""
        sent = self.session.send(pdu, self.world.now)
        self.world.pump()
        return sent

    def request(self, pdu: Pdu) -> Pdu | None:
        """Send a request; its response if one came back at once."""
        return self.response_to(self.send(pdu))

    def submit(self, destination: str = REACHABLE, text: bytes = b"Hello", **fields: Any) -> Pdu | None:
        """submit_sm from SOURCE (unless given) asking for receipts (unless told otherwise)."""
        fields.setdefault("source_addr", SOURCE)
        fields.setdefault("registered_delivery", 1)
        return self.request(Pdu.make(C.submit_sm, 0, destination_addr=destination, short_message=text, **fields))

    def submit_id(self, destination: str = REACHABLE, text: bytes = b"Hello", **fields: Any) -> str:
        """submit_sm that must be accepted; its message_id."""
        response = self.submit(destination, text, **fields)
        assert response is not None, "no submit_sm_resp"
        assert response.command_status == S.ESME_ROK, S(response.command_status).name
        return str(response["message_id"])

    def unbind(self) -> None:
        """ESME-initiated unbind."""
        self.session.unbind(now=self.world.now)
        self.world.pump()

    # -- what was seen -------------------------------------------------------------------------------------

    def response_to(self, sent: Pdu) -> Pdu | None:
        """The response that answered ``sent``, if any arrived."""
        for _, event in self.events:
            if isinstance(event, ResponseReceived) and event.request.sequence_number == sent.sequence_number:
                return event.response
        return None

    def received(self) -> list[Pdu]:
        """Every deliver_sm / data_sm the SMSC sent us, in order."""
        return [e.pdu for _, e in self.events if isinstance(e, PduReceived)
                and e.pdu.command_id in (C.deliver_sm, C.data_sm)]

    def received_at(self) -> list[tuple[float, Pdu]]:
        """(time, pdu) of every deliver_sm / data_sm."""
        return [(t, e.pdu) for t, e in self.events if isinstance(e, PduReceived)
                and e.pdu.command_id in (C.deliver_sm, C.data_sm)]

    def receipts(self) -> list[Pdu]:
        """The received PDUs that are SMSC delivery receipts."""
        return [p for p in self.received() if esm_class(p) & 0x3C == ESM_RECEIPT]

    def mo(self) -> list[Pdu]:
        """The received PDUs that are not receipts (mobile-originated messages)."""
        return [p for p in self.received() if esm_class(p) & 0x3C == 0]

    def verdicts(self) -> dict[str, str]:
        """The SMSC oracle's verdict per check for this session."""
        return {str(v["check"]): str(v["verdict"]) for v in self.conn.verdicts()}


class World:
    """One Smsc, its ESMEs, and a virtual clock; plays the I/O layer (timers, then flush) after every action."""

    def __init__(self, config: SmscConfig, subscribers: SubscriberRegistry | None = None) -> None:
        self.now = T0
        self.smsc = Smsc(config, subscribers, mt_listener=self._delivered)
        self.peers: list[Peer] = []
        self.deliveries: list[tuple[float, StoredMessage]] = []

    def _delivered(self, message: StoredMessage, now: float) -> None:
        self.deliveries.append((now, message))

    def connect(self, name: str = "esme") -> Peer:
        """A new TCP connection with an ESME session on it (no timers of its own but the response timer)."""
        conn = self.smsc.connect(name, self.now)
        session = Session(
            SessionConfig(role=Role.ESME, enquire_link_interval=None, session_init_timeout=None, response_timeout=30.0),
            now=self.now,
        )
        peer = Peer(self, name, conn, session)
        self.peers.append(peer)
        return peer

    def pump(self) -> None:
        """Run what is due now and move bytes both ways until nothing moves."""
        for _ in range(10_000):
            moved = False
            deadline = self.smsc.next_deadline
            if deadline is not None and deadline <= self.now:
                self.smsc.handle_timers(self.now)
            for peer in self.peers:
                moved |= self._shuttle(peer)
            self.smsc.dirty_connections()
            if not moved:
                return
        raise AssertionError("the SMSC and its ESMEs never went quiet")

    def _shuttle(self, peer: Peer) -> bool:
        moved = False
        esme_deadline = peer.session.next_deadline
        if esme_deadline is not None and esme_deadline <= self.now:
            for event in peer.session.handle_timers(self.now):
                peer.events.append((self.now, event))
            moved = True
        inbound = peer.conn.data_to_send()
        if inbound and not peer.session.closed:
            moved = True
            for event in peer.session.receive_data(inbound, self.now):
                peer.events.append((self.now, event))
                if (isinstance(event, PduReceived) and not event.auto_answered and peer.answers
                        and event.pdu.command_id in (C.deliver_sm, C.data_sm)):
                    peer.session.respond(event.pdu, peer.answer_status, now=self.now)
        outbound = peer.session.data_to_send()
        if outbound and not peer.conn.closed:
            moved = True
            peer.conn.receive_data(outbound, self.now)
        if peer.conn.closed and not peer.session.closed:
            # The SMSC hung up: what the ESME's transport would report.
            for event in peer.session.close(CloseReason.CONNECTION_LOST):
                peer.events.append((self.now, event))
            moved = True
        return moved

    def advance(self, seconds: float) -> None:
        """Move the clock forward, stopping at every deadline on the way (SMSC's and ESMEs')."""
        until = self.now + seconds
        for _ in range(100_000):
            deadlines = [d for d in (self.smsc.next_deadline, *(p.session.next_deadline for p in self.peers))
                         if d is not None]
            due = min(deadlines, default=None)
            if due is None or due > until:
                break
            self.now = max(self.now, due)
            self.pump()
        else:
            raise AssertionError("deadlines never stopped coming")
        self.now = until
        self.pump()

    def jump(self, seconds: float) -> None:
        """Move the clock forward in one step and only then run what is due (a coarse scheduler's tick)."""
        self.now += seconds
        self.pump()


def world(accounts: tuple[Account, ...] = (Account("esme", "pw"),), subscribers: SubscriberRegistry | None = None,
          **config: Any) -> World:
    """A World around an SMSC with these accounts and configuration."""
    return World(SmscConfig(accounts=accounts, **config), subscribers)


def bound(w: World, system_id: str = "esme", command: CommandId = C.bind_transceiver, name: str = "esme",
          **fields: Any) -> Peer:
    """A new ESME bound (must succeed) as ``system_id``."""
    peer = w.connect(name)
    response = peer.bind(system_id, command=command, **fields)
    assert response.command_status == S.ESME_ROK, S(response.command_status).name
    return peer


def subscribers() -> SubscriberRegistry:
    """REACHABLE and OTHER reachable, and one subscriber per failure condition."""
    registry = SubscriberRegistry()
    registry.update([(ABSENT, Condition.ABSENT), (UNKNOWN, Condition.UNKNOWN), (BARRED, Condition.BARRED)])
    return registry


def receipt_fields(pdu: Pdu) -> dict[str, str]:
    """The key:value pairs of a receipt's text (text last, kept whole)."""
    payload = pdu.tlv("message_payload")
    raw = payload if isinstance(payload, bytes) else pdu.params.get("short_message", b"")
    assert isinstance(raw, bytes)
    text = raw.decode("ascii")
    head, _, excerpt = text.partition(" text:") if " text:" in text else text.partition(" Text:")
    out = dict(re.findall(r"(id|sub|dlvrd|submit date|done date|stat|err):(\S*)", head))
    if excerpt or "text:" in text.lower():
        out["text"] = excerpt
    return out


# ---------------------------------------------------------------------------------------------------- binding


@pytest.mark.parametrize(
    ("account", "system_id", "password", "command", "status", "retry"),
    [
        (Account("esme", "pw"), "nobody", "pw", C.bind_transceiver, S.ESME_RINVSYSID, C.bind_transceiver),
        (Account("esme", "pw"), "esme", "wrong", C.bind_transceiver, S.ESME_RINVPASWD, C.bind_transceiver),
        (Account("esme", "pw"), "esme", "", C.bind_transmitter, S.ESME_RINVPASWD, C.bind_transmitter),
        (Account("esme", "pw", bind_kinds=frozenset({BindKind.TRANSMITTER})), "esme", "pw", C.bind_receiver,
         S.ESME_RBINDFAIL, C.bind_transmitter),
        (Account("esme", "pw", bind_kinds=frozenset({BindKind.RECEIVER})), "esme", "pw", C.bind_transceiver,
         S.ESME_RBINDFAIL, C.bind_receiver),
    ],
    ids=["unknown-system-id", "wrong-password", "empty-password", "kind-not-allowed-rx", "kind-not-allowed-trx"],
)
def test_bind_refusals_carry_the_status_of_the_cause(account: Account, system_id: str, password: str,
                                                     command: CommandId, status: CommandStatus,
                                                     retry: CommandId) -> None:
    w = world((account,))
    peer = w.connect()
    response = peer.bind(system_id, password, command)
    assert response.command_id is command.response
    assert response.command_status == status
    assert w.smsc.stats.bind_failures == 1
    assert w.smsc.stats.binds == 0
    assert w.smsc.accounts.binds("esme") == 0
    assert peer.conn.account is None
    # Refused is not closed: the same connection may bind again, this time as the account allows.
    again = peer.bind(account.system_id, account.password, retry)
    assert again.command_status == S.ESME_ROK
    assert w.smsc.stats.binds == 1


def test_bind_accepted_names_the_smsc_and_its_interface_version() -> None:
    w = world(name="carrier-x")
    peer = w.connect()
    response = peer.bind("esme")
    assert response.command_id is C.bind_transceiver_resp
    assert response["system_id"] == "carrier-x"
    assert response.tlv("sc_interface_version") == 0x34
    assert w.smsc.accounts.binds("esme") == 1


def test_max_binds_refuses_one_bind_too_many_and_frees_the_slot_on_unbind() -> None:
    w = world((Account("esme", "pw", max_binds=2),))
    first = bound(w, name="first")
    bound(w, name="second")
    third = w.connect("third")
    assert third.bind("esme").command_status == S.ESME_RBINDFAIL
    assert w.smsc.accounts.binds("esme") == 2
    first.unbind()
    assert first.conn.closed
    assert w.smsc.accounts.binds("esme") == 1
    assert third.bind("esme").command_status == S.ESME_ROK
    assert w.smsc.accounts.binds("esme") == 2


def test_second_bind_on_a_bound_session_is_already_bound() -> None:
    w = world()
    peer = bound(w)
    # Our ESME session refuses to send it (a local protocol error), so the bytes go on the wire by hand.
    peer.conn.receive_data(encode(Pdu.make(C.bind_transmitter, 99, system_id="esme", password="pw",
                                           interface_version=0x34)), w.now)
    answer = decode(peer.conn.data_to_send())
    assert answer.command_id is C.bind_transmitter_resp
    assert answer.sequence_number == 99
    assert answer.command_status == S.ESME_RALYBND
    assert peer.conn.session.state.is_bound
    assert w.smsc.accounts.binds("esme") == 1  # the refused bind took no slot
    assert peer.verdicts()["state"] == "fail"


def test_a_request_that_crosses_the_smscs_own_unbind_is_refused_but_not_held_against_the_esme() -> None:
    w = world()
    peer = bound(w)
    w.smsc.unbind_all(w.now)  # a shutdown: the unbind is on its way, the ESME has not read it yet
    crossing = peer.send(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=REACHABLE,
                                  short_message=b"sent while bound"))
    answer = peer.response_to(crossing)
    assert answer is not None
    assert answer.command_status == S.ESME_RINVBNDSTS  # refused: the SMSC is no longer bound
    assert peer.conn.closed
    [(_, _, checks)] = w.smsc.finished_sessions
    verdicts = {str(c["check"]): str(c["verdict"]) for c in checks}
    assert (verdicts["state"], verdicts["unbind"]) == ("pass", "pass")  # SMPP 3.4 2.3: it was bound then
    assert w.smsc.stats.submitted == 0


def test_what_was_illegal_before_the_smscs_unbind_still_fails_state_while_it_crosses() -> None:
    w = world()
    peer = bound(w)
    w.smsc.unbind_all(w.now)
    # Our ESME session refuses to send it (a local protocol error), so the bytes go on the wire by hand.
    peer.conn.receive_data(encode(Pdu.make(C.bind_transmitter, 99, system_id="esme", password="pw",
                                           interface_version=0x34)), w.now)
    assert peer.verdicts()["state"] == "fail"


def test_a_command_the_bound_version_lacks_fails_wellformed_not_response_echo() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound(w)  # SMPP 3.4, which has no broadcast_sm (5.0 4.6)
    peer.conn.receive_data(encode(Pdu.make(C.broadcast_sm, 77, source_addr=SOURCE, message_id="", tlvs={
        "broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
        "broadcast_content_type": BroadcastContentType(0, 0), "broadcast_rep_num": 1,
        "broadcast_frequency_interval": BroadcastFrequencyInterval(8, 5)})), w.now)
    answer = decode(peer.conn.data_to_send())
    assert (answer.command_id, answer.sequence_number, answer.command_status) == (
        C.generic_nack, 77, S.ESME_RINVCMDID)
    verdicts = peer.verdicts()
    assert (verdicts["wellformed"], verdicts["response_echo"]) == ("fail", "inconc")


@pytest.mark.parametrize("seq", [0, 0x80000000, 0xFFFFFFFF])
def test_a_request_sequence_number_outside_the_spec_range_is_answered_but_fails_wellformed(seq: int) -> None:
    # SMPP 3.4 3.2: requests number 0x00000001..0x7FFFFFFF. A peer that wraps at 2^32 sends the rest; it was passed.
    w = world()
    peer = bound(w)
    peer.conn.receive_data(encode(Pdu.make(C.submit_sm, seq, source_addr=SOURCE, destination_addr=REACHABLE,
                                           short_message=b"Hello")), w.now)
    answer = decode(peer.conn.data_to_send())
    assert (answer.command_id, answer.sequence_number, answer.command_status) == (C.submit_sm_resp, seq, S.ESME_ROK)
    result = next(v for v in peer.conn.verdicts() if v["check"] == "wellformed")
    assert result["verdict"] == "fail"
    assert f"{seq:#010x}" in str(result["reason"])


def test_the_edges_of_the_sequence_number_range_hold_wellformed() -> None:
    w = world()
    peer = bound(w)
    for seq in (1, 0x7FFFFFFF):
        peer.conn.receive_data(encode(Pdu.make(C.enquire_link, seq)), w.now)
        assert decode(peer.conn.data_to_send()).sequence_number == seq
    assert peer.verdicts()["wellformed"] == "pass"


# ---------------------------------------------------------------------------------------------------- MT checks


def test_source_allow_list_refuses_other_sources_with_invalid_source_address() -> None:
    w = world((Account("esme", "pw", source_allow=(r"1234\d", "BRAND")),))
    peer = bound(w)
    refused = peer.submit(source_addr="99999")
    assert refused is not None
    assert refused.command_status == S.ESME_RINVSRCADR
    assert peer.submit_id(source_addr="12340")
    assert peer.submit_id(source_addr="BRAND")
    assert peer.submit(source_addr="BRANDX").command_status == S.ESME_RINVSRCADR  # type: ignore[union-attr]
    assert w.smsc.stats.rejected == 2
    assert w.smsc.stats.submitted == 2


def test_submit_on_a_receiver_bind_is_an_invalid_bind_status() -> None:
    w = world()
    peer = w.connect()
    assert peer.bind("esme", command=C.bind_receiver).command_status == S.ESME_ROK
    peer.conn.receive_data(encode(Pdu.make(C.submit_sm, 7, source_addr=SOURCE, destination_addr=REACHABLE,
                                           short_message=b"x")), w.now)
    answer = decode(peer.conn.data_to_send())
    assert (answer.command_id, answer.sequence_number, answer.command_status) == (
        C.submit_sm_resp, 7, S.ESME_RINVBNDSTS)
    assert w.smsc.stats.submitted == 0


def test_bind_throughput_throttles_each_bind_separately() -> None:
    w = world((Account("esme", "pw", bind_throughput=1.0),))
    a = bound(w, name="a")
    b = bound(w, name="b")
    assert a.submit_id()
    throttled = a.submit()
    assert throttled is not None
    assert throttled.command_status == S.ESME_RTHROTTLED
    # The other bind has its own bucket.
    assert b.submit_id()
    # One token per second comes back.
    w.advance(1.0)
    assert a.submit_id()
    assert w.smsc.stats.throttled == 1


def test_throttle_backoff_fails_for_an_esme_that_resubmits_at_once() -> None:
    w = world((Account("esme", "pw", bind_throughput=1.0),), throttle_backoff=0.05)
    eager = bound(w, name="eager")
    assert eager.submit_id()
    assert eager.submit().command_status == S.ESME_RTHROTTLED  # type: ignore[union-attr]
    # Resubmitting at once, one by one: the first 9 could have left before the throttle was read (a peer with
    # the agreed window of 10 may write them before it reads anything; the wire cannot tell), the 10th cannot.
    for _ in range(9):
        assert eager.submit().command_status == S.ESME_RTHROTTLED  # type: ignore[union-attr]  # 0 ms later
    assert eager.verdicts()["throttle_backoff"] == "inconc"
    assert eager.submit().command_status == S.ESME_RTHROTTLED  # type: ignore[union-attr]
    assert eager.verdicts()["throttle_backoff"] == "fail"
    reason = next(v["reason"] for v in eager.conn.verdicts() if v["check"] == "throttle_backoff")
    assert "10 submit(s) within 0.0 ms of ESME_RTHROTTLED" in str(reason)

    patient = bound(w, name="patient")
    assert patient.submit_id()
    assert patient.submit().command_status == S.ESME_RTHROTTLED  # type: ignore[union-attr]
    w.advance(1.0)
    assert patient.submit_id()
    assert patient.verdicts()["throttle_backoff"] == "pass"


def test_throttle_backoff_excuses_what_a_pipelining_esme_already_had_in_flight() -> None:
    w = world((Account("esme", "pw", bind_throughput=1.0),), throttle_backoff=0.05)
    piped = bound(w, name="piped")
    pdu = Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=REACHABLE, short_message=b"x")
    # Four submits written before any response is read: the SMSC sees a window of 4 in use.
    for _ in range(4):
        piped.session.send(pdu, w.now)
    w.pump()
    statuses = [e.response.command_status for _, e in piped.events if isinstance(e, ResponseReceived)]
    assert statuses == [S.ESME_ROK, S.ESME_RTHROTTLED, S.ESME_RTHROTTLED, S.ESME_RTHROTTLED]
    assert piped.verdicts()["throttle_backoff"] == "inconc"  # in flight before the throttle: not judged yet
    w.advance(1.0)
    assert piped.submit_id()
    assert piped.verdicts()["throttle_backoff"] == "pass"
    # Throttled again; having read the throttles it sends more at once: more submits within the back-off than
    # the agreed window (10) lets it send before it reads the throttle is a violation.
    for rounds in range(3):
        for _ in range(4):
            piped.session.send(pdu, w.now)
        w.pump()
        assert piped.verdicts()["throttle_backoff"] == ("pass" if rounds < 2 else "fail")  # 3, 7, then 11 after


def test_system_throughput_is_shared_by_every_bind_of_the_system_id() -> None:
    w = world((Account("esme", "pw", throughput=1.0),))
    a = bound(w, name="a")
    b = bound(w, name="b")
    assert a.submit_id()
    assert b.submit().command_status == S.ESME_RTHROTTLED  # type: ignore[union-attr]


def test_full_store_answers_message_queue_full_until_a_message_leaves() -> None:
    w = world(store_capacity=1)
    peer = bound(w)
    assert peer.submit_id(schedule_delivery_time=IN_10_S)
    full = peer.submit(OTHER)
    assert full is not None
    assert full.command_status == S.ESME_RMSGQFUL
    w.advance(10.0)
    assert len(w.deliveries) == 1
    assert peer.submit_id(OTHER)


@pytest.mark.parametrize(
    ("field_name", "value", "status"),
    [
        ("schedule_delivery_time", "991399999999999+", S.ESME_RINVSCHED),
        ("validity_period", "99999999999999AR", S.ESME_RINVEXPIRY),
        # A Latin-1 superscript one (0xB9) passes str.isdigit(), not int(): once raised out of the SMSC.
        ("schedule_delivery_time", "\u00b950101120000000+", S.ESME_RINVSCHED),
        ("validity_period", "\u00b950101120000000+", S.ESME_RINVEXPIRY),
    ],
)
def test_unreadable_times_are_refused_with_the_field_status(field_name: str, value: str,
                                                            status: CommandStatus) -> None:
    w = world()
    peer = bound(w)
    fields: dict[str, Any] = {field_name: value}
    response = peer.submit(REACHABLE, b"Hello", **fields)
    assert response is not None
    assert response.command_status == status


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"schedule_delivery_time": "991231235959999+"}, S.ESME_RINVSCHED),
        ({"validity_period": "991301000000000+"}, S.ESME_RINVEXPIRY),
        ({"schedule_delivery_time": "000000000010000R", "validity_period": "000000000000000R"}, S.ESME_RINVEXPIRY),
    ],
    ids=["bad-schedule", "bad-validity", "validity-before-schedule"],
)
def test_submit_multi_with_bad_times_is_refused_whole_with_the_field_status(fields: dict[str, Any],
                                                                             status: CommandStatus) -> None:
    # The times are the submission's: the status submit_sm gets, not ESME_RSUBMITFAIL with an empty body.
    w = world()
    peer = bound(w)
    single = peer.submit(REACHABLE, b"x", **fields)
    multi = peer.request(Pdu.make(C.submit_multi, 0, source_addr=SOURCE, short_message=b"x",
                                  dest_address=(SmeAddress(1, 1, REACHABLE), SmeAddress(1, 1, OTHER)), **fields))
    assert single is not None
    assert multi is not None
    assert (single.command_status, multi.command_status) == (status, status)
    assert multi.command_id is C.submit_multi_resp
    assert w.smsc.store.pending_count == 0
    assert w.smsc.stats.rejected == 2


def test_validity_ending_before_the_schedule_is_an_invalid_expiry() -> None:
    w = world()
    peer = bound(w)
    response = peer.submit(schedule_delivery_time=IN_15_S, validity_period=IN_10_S)
    assert response is not None
    assert response.command_status == S.ESME_RINVEXPIRY


# ---------------------------------------------------------------------------------------------------- time


def test_scheduled_delivery_waits_and_so_does_its_receipt() -> None:
    w = world()
    peer = bound(w)
    mid = peer.submit_id(schedule_delivery_time=IN_10_S)
    w.advance(9.9)
    assert w.deliveries == []
    assert peer.receipts() == []
    w.advance(0.1)
    assert [t for t, _ in w.deliveries] == [T0 + 10]
    [(at, receipt)] = [(t, p) for t, p in peer.received_at() if esm_class(p) == ESM_RECEIPT]
    assert at == T0 + 10
    fields = receipt_fields(receipt)
    assert fields["id"] == mid
    assert fields["stat"] == "DELIVRD"
    assert fields["submit date"] == stamp(T0)
    assert fields["done date"] == stamp(T0 + 10)


def test_receipt_delay_is_the_configured_dlr_delay() -> None:
    w = world(dlr_delay=DelayDistribution(3.0, 3.0))
    peer = bound(w)
    peer.submit_id()
    assert len(w.deliveries) == 1
    w.advance(2.9)
    assert peer.receipts() == []
    w.advance(0.1)
    assert [t for t, p in peer.received_at()] == [T0 + 3]


@pytest.mark.parametrize("delay", [DelayDistribution(kind="exponential", mean=2.0),
                                   DelayDistribution(kind="lognormal", median=1.5, sigma=0.8)])
def test_an_exponential_or_lognormal_receipt_delay_is_its_keyed_draw(delay: DelayDistribution) -> None:
    w = world(seed=3, dlr_delay=delay)
    peer = bound(w)
    peer.submit_id()
    peer.submit_id()
    w.advance(200.0)
    word = subject_word("447700900001")
    expected = sorted(T0 + delay.at(KeyedDraws(3).uniform(Draw.RECEIPT_DELAY, word, n)) for n in (0, 1))
    assert sorted(t for t, _ in peer.received_at()) == pytest.approx(expected)
    assert expected[0] > T0  # a delay, not the 0 s such a distribution once became


@pytest.mark.parametrize("kwargs", [
    {"window": 0}, {"peer_window": -1}, {"store_capacity": 0}, {"enquire_link_misses": -1}, {"window": 2.5},
    {"window": True}, {"response_timeout": -1.0}, {"session_init_timeout": math.nan},
    {"default_validity": math.inf}, {"absent_retry": -0.5}, {"hold_mo": "1"},
])
def test_a_config_built_in_code_is_checked_as_the_loaders_check_it(kwargs: dict[str, Any]) -> None:
    [name] = kwargs
    with pytest.raises(ValueError, match=f"^{name}: "):
        SmscConfig(**kwargs)


@pytest.mark.parametrize("kwargs", [
    {"low": -1.0}, {"high": math.nan}, {"kind": "exponential", "mean": -2.0},
    {"kind": "lognormal", "median": 1.0, "sigma": math.inf}, {"kind": "gamma"},
])
def test_a_delay_distribution_refuses_negative_or_non_finite_seconds(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="delay distribution"):
        DelayDistribution(**kwargs)


def test_the_smallest_legal_config_is_accepted() -> None:
    config = SmscConfig(window=1, peer_window=1, store_capacity=1, enquire_link_misses=0, response_timeout=0.0,
                        inactivity_timeout=0, dlr_delay=DelayDistribution(kind="exponential", mean=0.0))
    assert (config.window, config.inactivity_timeout) == (1, 0)


def test_delay_quantiles_are_the_distributions() -> None:
    assert DelayDistribution(1.0, 3.0).at(0.25) == 1.5
    assert DelayDistribution(2.0, 2.0).at(0.9) == 2.0
    exponential = DelayDistribution(kind="exponential", mean=2.0)
    assert exponential.at(0.5) == pytest.approx(2.0 * math.log(2))  # the median of an exponential
    assert exponential.at(1 - math.exp(-1)) == pytest.approx(2.0)
    lognormal = DelayDistribution(kind="lognormal", median=1.5, sigma=0.8)
    assert lognormal.at(0.5) == pytest.approx(1.5)
    assert lognormal.at(0.8413447460685429) == pytest.approx(1.5 * math.exp(0.8))  # one sigma up
    assert [d.always_zero for d in (DelayDistribution(), exponential, lognormal,
                                    DelayDistribution(kind="exponential"))] == [True, False, False, True]
    rng = random.Random(1)
    samples = sorted(exponential.sample(rng) for _ in range(2001))
    assert 1.2 < samples[1000] < 1.6  # the sample median near 2 ln 2 = 1.39


def test_a_message_whose_delivery_comes_after_its_validity_expires_with_a_receipt() -> None:
    # Scheduled at +10 s, valid until +15 s, and the SMSC does not get to it before +20 s (a coarse tick).
    w = world()
    peer = bound(w)
    mid = peer.submit_id(schedule_delivery_time=IN_10_S, validity_period=IN_15_S)
    w.jump(20.0)
    assert w.deliveries == []
    assert w.smsc.stats.expired == 1
    [receipt] = peer.receipts()
    assert receipt_fields(receipt)["stat"] == "EXPIRED"
    assert receipt_fields(receipt)["id"] == mid
    assert receipt.tlv("message_state") == MessageState.EXPIRED
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert query is not None
    assert query["message_state"] == MessageState.EXPIRED


# ---------------------------------------------------------------------------------------------------- store ops


def test_query_sm_reports_the_real_state_before_and_after_delivery() -> None:
    w = world()
    peer = bound(w)
    mid = peer.submit_id(schedule_delivery_time=IN_10_S)
    before = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert before is not None
    assert before.command_status == S.ESME_ROK
    assert (before["message_id"], before["message_state"], before["final_date"], before["error_code"]) == (
        mid, MessageState.ENROUTE, "", 0)
    w.advance(10.0)
    after = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert after is not None
    assert (after["message_state"], after["final_date"], after["error_code"]) == (
        MessageState.DELIVERED, "231114221330000+", 0)


def test_query_sm_for_a_failed_message_carries_the_network_error() -> None:
    w = world(subscribers=subscribers())
    peer = bound(w)
    mid = peer.submit_id(ABSENT)
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert query is not None
    assert (query["message_state"], query["error_code"]) == (MessageState.UNDELIVERABLE, 27)


@pytest.mark.parametrize(
    ("message_id", "source", "status"),
    [("999", SOURCE, S.ESME_RQUERYFAIL), ("not-an-id", SOURCE, S.ESME_RINVMSGID), ("1", "55555", S.ESME_RQUERYFAIL)],
    ids=["unknown-id", "malformed-id", "other-source"],
)
def test_query_sm_refusals(message_id: str, source: str, status: CommandStatus) -> None:
    w = world()
    peer = bound(w)
    assert peer.submit_id(schedule_delivery_time=IN_10_S) == "1"
    response = peer.request(Pdu.make(C.query_sm, 0, message_id=message_id, source_addr=source))
    assert response is not None
    assert response.command_status == status


def test_cancel_sm_deletes_a_scheduled_message() -> None:
    w = world()
    peer = bound(w)
    mid = peer.submit_id(schedule_delivery_time=IN_10_S)
    cancel = peer.request(Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert query is not None
    assert query["message_state"] == MessageState.DELETED
    w.advance(20.0)
    assert w.deliveries == []
    again = peer.request(Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE))
    assert again is not None
    assert again.command_status == S.ESME_RCANCELFAIL


def test_cancel_sm_without_id_cancels_every_pending_match() -> None:
    w = world()
    peer = bound(w)
    first = peer.submit_id(REACHABLE, schedule_delivery_time=IN_10_S)
    second = peer.submit_id(OTHER, schedule_delivery_time=IN_10_S)
    cancel = peer.request(Pdu.make(C.cancel_sm, 0, source_addr=SOURCE, destination_addr=OTHER))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    w.advance(10.0)
    assert [m.destination_addr for _, m in w.deliveries] == [REACHABLE]
    assert w.smsc.store.get(int(second)).state is MessageState.DELETED  # type: ignore[union-attr]
    assert w.smsc.store.get(int(first)).state is MessageState.DELIVERED  # type: ignore[union-attr]


def test_cancel_sm_without_id_needs_a_destination_address() -> None:
    w = world()
    peer = bound(w)
    peer.submit_id(schedule_delivery_time=IN_10_S)
    cancel = peer.request(Pdu.make(C.cancel_sm, 0, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_RINVDSTADR
    w.advance(10.0)
    assert len(w.deliveries) == 1


def test_cancel_sm_by_id_verifies_the_destination_address_when_given() -> None:
    w = world()
    peer = bound(w)
    mid = peer.submit_id(REACHABLE, schedule_delivery_time=IN_10_S)
    wrong = peer.request(Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE, destination_addr=OTHER))
    assert wrong is not None
    assert wrong.command_status == S.ESME_RCANCELFAIL
    right = peer.request(Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE, destination_addr=REACHABLE))
    assert right is not None
    assert right.command_status == S.ESME_ROK


def test_query_cancel_and_replace_reach_only_the_asking_accounts_messages() -> None:
    w = world(accounts=(Account("a", "pw"), Account("b", "pw")))
    owner = bound(w, "a", name="a")
    other = bound(w, "b", name="b")
    mid = owner.submit_id(schedule_delivery_time=IN_10_S)
    requests = [
        (Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE), S.ESME_RQUERYFAIL),
        (Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE), S.ESME_RCANCELFAIL),
        (Pdu.make(C.cancel_sm, 0, source_addr=SOURCE, destination_addr=REACHABLE), S.ESME_RCANCELFAIL),
        (Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, short_message=b"hijacked"),
         S.ESME_RREPLACEFAIL),
    ]
    for request, status in requests:
        answer = other.request(request)
        assert answer is not None
        assert (answer.command_id, answer.command_status) == (request.command_id.response, status)
    mine = owner.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert mine is not None
    assert (mine.command_status, mine["message_state"]) == (S.ESME_ROK, MessageState.ENROUTE)
    w.advance(10.0)
    assert [m.data for _, m in w.deliveries] == [b"Hello"]


def test_replace_sm_changes_text_and_schedule_of_a_pending_message() -> None:
    w = world()
    peer = bound(w)
    mid = peer.submit_id(text=b"old text", schedule_delivery_time=IN_10_S)
    replace = peer.request(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE,
                                    schedule_delivery_time=IN_15_S, registered_delivery=1,
                                    short_message=b"new text"))
    assert replace is not None
    assert replace.command_status == S.ESME_ROK
    w.advance(10.0)
    assert w.deliveries == []
    w.advance(5.0)
    [(at, message)] = w.deliveries
    assert at == T0 + 15
    assert message.data == b"new text"
    [receipt] = peer.receipts()
    assert receipt_fields(receipt)["text"] == "new text"
    too_late = peer.request(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, short_message=b"x"))
    assert too_late is not None
    assert too_late.command_status == S.ESME_RREPLACEFAIL


def test_replace_sm_refuses_a_validity_ending_before_the_schedule_as_submit_sm_does() -> None:
    # SMPP 3.4 4.10.1 / 7.1.1: the same times, the same ESME_RINVEXPIRY as test_validity_ending_before_the_...
    w = world()
    peer = bound(w)
    scheduled = peer.submit_id(text=b"old text", schedule_delivery_time="000000000020000R")
    limited = peer.submit_id(OTHER, b"old text", schedule_delivery_time=IN_10_S, validity_period=IN_15_S)
    for mid, fields in ((scheduled, {"validity_period": "000000000001000R"}),  # ends before the old schedule
                        (limited, {"schedule_delivery_time": "000000000020000R"}),  # starts after the old validity
                        (limited, {"schedule_delivery_time": IN_15_S, "validity_period": IN_10_S})):
        answer = peer.request(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, short_message=b"new",
                                       **fields))
        assert answer is not None
        assert answer.command_status == S.ESME_RINVEXPIRY, fields
    w.advance(30.0)
    assert sorted((t - T0, m.data) for t, m in w.deliveries) == [(10.0, b"old text"), (20.0, b"old text")]


def test_a_retried_message_whose_validity_replace_sm_shortens_expires_at_the_new_end() -> None:
    w = world(subscribers=subscribers(), absent_retry=60.0)
    peer = bound(w)
    mid = peer.submit_id(ABSENT)  # absent: tried now, next at 60 s
    w.advance(1.0)
    replace = peer.request(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, registered_delivery=1,
                                    validity_period=IN_10_S, short_message=b"new text"))
    assert replace is not None
    assert replace.command_status == S.ESME_ROK
    w.advance(9.9)
    assert query_state(peer, mid) == MessageState.ENROUTE
    w.advance(0.2)
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert query is not None
    assert (query["message_state"], query["final_date"]) == (MessageState.EXPIRED, stamp(T0 + 11, 12) + "000+")
    [(at, receipt)] = peer.received_at()
    assert (at, receipt_fields(receipt)["stat"]) == (T0 + 11, "EXPIRED")
    w.advance(120.0)
    assert (w.smsc.stats.expired, len(peer.receipts())) == (1, 1)


def test_replace_sm_of_an_unknown_message_fails() -> None:
    w = world()
    peer = bound(w)
    response = peer.request(Pdu.make(C.replace_sm, 0, message_id="42", source_addr=SOURCE, short_message=b"x"))
    assert response is not None
    assert response.command_status == S.ESME_RREPLACEFAIL


def test_replace_if_present_flag_replaces_the_pending_message_in_place() -> None:
    w = world()
    peer = bound(w)
    first = peer.submit_id(text=b"first", schedule_delivery_time=IN_10_S)
    replaced = peer.submit_id(text=b"second", schedule_delivery_time=IN_15_S, replace_if_present_flag=1)
    assert replaced == first
    added = peer.submit_id(text=b"third", schedule_delivery_time=IN_10_S, replace_if_present_flag=0)
    assert added != first
    assert w.smsc.store.pending_count == 2
    w.advance(20.0)
    assert sorted((t - T0, m.data) for t, m in w.deliveries) == [(10.0, b"third"), (15.0, b"second")]


def test_replace_if_present_flag_replaces_only_the_submitting_accounts_message() -> None:
    # SMPP 3.4 5.2.18 matches source, destination and service_type; another account's pending message with the
    # same three is not one this account can see, so it must not be overwritten either.
    w = world(accounts=(Account("a", "pw"), Account("b", "pw")))
    owner = bound(w, "a", name="a")
    other = bound(w, "b", name="b")
    mine = owner.submit_id(text=b"owner's", schedule_delivery_time=IN_10_S)
    theirs = other.submit_id(text=b"other's", schedule_delivery_time=IN_10_S, replace_if_present_flag=1)
    assert theirs != mine
    query = other.request(Pdu.make(C.query_sm, 0, message_id=theirs, source_addr=SOURCE))
    assert query is not None
    assert query.command_status == S.ESME_ROK
    w.advance(10.0)
    assert sorted((m.system_id, m.data) for _, m in w.deliveries) == [("a", b"owner's"), ("b", b"other's")]


def test_replace_if_present_flag_finds_an_older_pending_message_once_a_newer_one_is_final() -> None:
    w = world()
    peer = bound(w)
    older = peer.submit_id(text=b"older", schedule_delivery_time=IN_15_S)
    newer = peer.submit_id(text=b"newer", schedule_delivery_time="000000000005000R")
    w.advance(5.0)
    assert [m.data for _, m in w.deliveries] == [b"newer"]
    replaced = peer.submit_id(text=b"replacement", schedule_delivery_time=IN_15_S, replace_if_present_flag=1)
    assert replaced == older != newer
    assert w.smsc.store.pending_count == 1
    w.advance(20.0)
    assert [m.data for _, m in w.deliveries] == [b"newer", b"replacement"]


def submit_multi_id(peer: Peer, *destinations: str, **fields: Any) -> str:
    """submit_multi from SOURCE to ``destinations`` that must be accepted; its message_id."""
    answer = peer.request(Pdu.make(C.submit_multi, 0, source_addr=SOURCE, short_message=fields.pop("text", b"x"),
                                   dest_address=tuple(SmeAddress(1, 1, d) for d in destinations), **fields))
    assert answer is not None
    assert answer.command_status == S.ESME_ROK, S(answer.command_status).name
    return str(answer["message_id"])


def test_replace_if_present_flag_on_a_submit_multi_destination_answers_the_id_the_esme_knows() -> None:
    w = world()
    peer = bound(w)
    group = submit_multi_id(peer, REACHABLE, OTHER, schedule_delivery_time=IN_10_S)
    replaced = peer.submit_id(OTHER, b"again", schedule_delivery_time=IN_10_S, replace_if_present_flag=1)
    assert replaced == group  # not the destination's own record number, which query_sm refuses
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=replaced, source_addr=SOURCE))
    assert query is not None
    assert (query.command_status, query["message_state"]) == (S.ESME_ROK, MessageState.ENROUTE)
    w.advance(10.0)
    assert sorted((m.destination_addr, m.data) for _, m in w.deliveries) == [(REACHABLE, b"x"), (OTHER, b"again")]


def test_a_submit_multi_that_replaces_pending_messages_reaches_them_through_its_id() -> None:
    w = world()
    peer = bound(w)
    alone = peer.submit_id(REACHABLE, b"alone", schedule_delivery_time=IN_10_S)
    group = submit_multi_id(peer, REACHABLE, OTHER, text=b"multi", schedule_delivery_time=IN_10_S,
                            replace_if_present_flag=1)
    assert group != alone
    assert w.smsc.store.pending_count == 2  # REACHABLE's message was replaced, not joined by another
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=group, source_addr=SOURCE))
    assert query is not None
    assert (query.command_status, query["message_state"]) == (S.ESME_ROK, MessageState.ENROUTE)
    only_replaced = submit_multi_id(peer, REACHABLE, text=b"multi again", schedule_delivery_time=IN_10_S,
                                    replace_if_present_flag=1)
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=only_replaced, source_addr=SOURCE))
    assert query is not None
    assert query.command_status == S.ESME_ROK  # a group of one replaced message is still a group
    cancel = peer.request(Pdu.make(C.cancel_sm, 0, message_id=group, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    for mid in (alone, group, only_replaced):
        assert query_state(peer, mid) == MessageState.DELETED
    w.advance(20.0)
    assert w.deliveries == []


def test_submit_multi_reports_distribution_lists_as_unsuccessful() -> None:
    w = world()
    peer = bound(w)
    response = peer.request(Pdu.make(
        C.submit_multi, 0, source_addr=SOURCE, short_message=b"to many", registered_delivery=1,
        dest_address=(SmeAddress(1, 1, REACHABLE), DistributionList("friends"), SmeAddress(1, 1, OTHER)),
    ))
    assert response is not None
    assert response.command_id is C.submit_multi_resp
    assert response.command_status == S.ESME_ROK
    assert response["message_id"] == "1"
    assert response["unsuccess_sme"] == (UnsuccessSme(0, 0, "friends", S.ESME_RINVDLNAME),)
    assert sorted(m.destination_addr for _, m in w.deliveries) == [REACHABLE, OTHER]
    assert len(peer.receipts()) == 2


def test_every_submit_multi_receipt_carries_the_one_id_the_esme_got() -> None:
    w = world(subscribers=subscribers())
    peer = bound(w)
    first = peer.submit_id(OTHER)
    response = peer.request(Pdu.make(
        C.submit_multi, 0, source_addr=SOURCE, short_message=b"to many", registered_delivery=1,
        dest_address=(SmeAddress(1, 1, REACHABLE), SmeAddress(1, 1, BARRED), SmeAddress(1, 1, OTHER)),
    ))
    assert response is not None
    assert response.command_status == S.ESME_ROK
    group = str(response["message_id"])
    assert group != first
    receipts = peer.receipts()[1:]  # after the submit_sm's own
    assert sorted(str(p["source_addr"]) for p in receipts) == sorted([REACHABLE, BARRED, OTHER])
    assert [p.tlv("receipted_message_id") for p in receipts] == [group] * 3
    assert [receipt_fields(p)["id"] for p in receipts] == [group] * 3
    after = peer.submit_id()
    assert after not in (first, group)  # the group's id is not handed out again


def test_query_sm_of_a_submit_multi_id_reports_all_its_destinations() -> None:
    w = world(subscribers=subscribers())
    peer = bound(w)

    def query(message_id: str) -> Pdu:
        answer = peer.request(Pdu.make(C.query_sm, 0, message_id=message_id, source_addr=SOURCE))
        assert answer is not None
        return answer

    def submit_multi(*destinations: str, **fields: Any) -> str:
        answer = peer.request(Pdu.make(C.submit_multi, 0, source_addr=SOURCE, short_message=b"x",
                                       dest_address=tuple(SmeAddress(1, 1, d) for d in destinations), **fields))
        assert answer is not None
        assert answer.command_status == S.ESME_ROK
        return str(answer["message_id"])

    scheduled = submit_multi(REACHABLE, OTHER, schedule_delivery_time=IN_10_S)
    assert query(scheduled)["message_state"] == MessageState.ENROUTE
    w.advance(10.0)
    assert query(scheduled)["message_state"] == MessageState.DELIVERED
    mixed = submit_multi(REACHABLE, BARRED, ABSENT)
    answer = query(mixed)
    # The first destination not delivered speaks for the group: barred, MAP error 13.
    assert (answer["message_state"], answer["error_code"]) == (MessageState.REJECTED, 13)
    # The members' own record numbers were never given to the ESME: they are not message ids.
    assert query(str(int(mixed) + 1)).command_status == S.ESME_RQUERYFAIL


def test_cancel_sm_of_a_submit_multi_id_cancels_every_destination() -> None:
    w = world()
    peer = bound(w)
    response = peer.request(Pdu.make(C.submit_multi, 0, source_addr=SOURCE, short_message=b"x",
                                     schedule_delivery_time=IN_10_S,
                                     dest_address=(SmeAddress(1, 1, REACHABLE), SmeAddress(1, 1, OTHER))))
    assert response is not None
    group = str(response["message_id"])
    cancel = peer.request(Pdu.make(C.cancel_sm, 0, message_id=group, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    w.advance(20.0)
    assert w.deliveries == []
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=group, source_addr=SOURCE))
    assert query is not None
    assert query["message_state"] == MessageState.DELETED
    again = peer.request(Pdu.make(C.cancel_sm, 0, message_id=group, source_addr=SOURCE))
    assert again is not None
    assert again.command_status == S.ESME_RCANCELFAIL


def test_submit_multi_with_no_deliverable_destination_fails() -> None:
    w = world()
    peer = bound(w)
    response = peer.request(Pdu.make(C.submit_multi, 0, source_addr=SOURCE, short_message=b"x",
                                     dest_address=(DistributionList("friends"),)))
    assert response is not None
    assert response.command_status == S.ESME_RSUBMITFAIL
    assert w.deliveries == []


# ---------------------------------------------------------------------------------------------------- receipts


@pytest.mark.parametrize(
    ("registered_delivery", "expected"),
    [(0, []), (1, [(REACHABLE, "DELIVRD"), (BARRED, "REJECTD")]), (2, [(BARRED, "REJECTD")])],
    ids=["none", "success-or-failure", "failure-only"],
)
def test_receipts_follow_registered_delivery(registered_delivery: int, expected: list[tuple[str, str]]) -> None:
    w = world(subscribers=subscribers())
    peer = bound(w)
    peer.submit_id(REACHABLE, registered_delivery=registered_delivery)
    peer.submit_id(BARRED, registered_delivery=registered_delivery)
    got = [(str(p["source_addr"]), receipt_fields(p)["stat"]) for p in peer.receipts()]
    assert got == expected
    assert len(w.deliveries) == 1  # the barred one never reached the phone


@pytest.mark.parametrize("registered_delivery", [1, 2], ids=["every-outcome", "failures"])
def test_a_message_the_esme_cancelled_gets_no_receipt(registered_delivery: int) -> None:
    # docs/smsc.md: the one final outcome registered_delivery does not report -- the ESME caused it, and
    # cancel_sm_resp already told it (as on most real SMSCs).
    w = world()
    peer = bound(w)
    mid = peer.submit_id(schedule_delivery_time=IN_10_S, registered_delivery=registered_delivery)
    cancel = peer.request(Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    w.advance(60.0)
    assert peer.received() == []
    assert query_state(peer, mid) == MessageState.DELETED


@pytest.mark.parametrize(
    ("destination", "stat", "state", "err"),
    [(ABSENT, "UNDELIV", MessageState.UNDELIVERABLE, 27), (UNKNOWN, "UNDELIV", MessageState.UNDELIVERABLE, 1),
     (BARRED, "REJECTD", MessageState.REJECTED, 13)],
    ids=["absent", "unknown", "barred"],
)
def test_failed_deliveries_report_state_and_network_error(destination: str, stat: str, state: MessageState,
                                                          err: int) -> None:
    w = world(subscribers=subscribers())
    peer = bound(w)
    mid = peer.submit_id(destination, text=b"Your code is 123456")
    [receipt] = peer.receipts()
    fields = receipt_fields(receipt)
    assert fields == {"id": mid, "sub": "001", "dlvrd": "000", "submit date": stamp(T0), "done date": stamp(T0),
                      "stat": stat, "err": f"{err:03d}", "text": "Your code is 123456"}
    assert receipt.tlv("message_state") == state
    assert receipt.tlv("network_error_code") == NetworkErrorCode(3, err)
    assert receipt.tlv("receipted_message_id") == mid
    # The receipt comes from the subscriber and goes to the submitter.
    assert (receipt["source_addr"], receipt["destination_addr"]) == (destination, SOURCE)
    assert w.deliveries == []
    assert w.smsc.stats.undeliverable == 1


def test_a_delivered_receipt_carries_no_network_error() -> None:
    w = world()
    peer = bound(w)
    mid = peer.submit_id(text=b"Hello")
    [receipt] = peer.receipts()
    assert receipt["esm_class"] == ESM_RECEIPT
    assert receipt.tlv("network_error_code") is None
    assert receipt.tlv("message_state") == MessageState.DELIVERED
    assert receipt.tlv("receipted_message_id") == mid
    assert receipt_fields(receipt)["dlvrd"] == "001"
    assert w.smsc.stats.receipts_sent == 1
    assert w.smsc.stats.receipts_acked == 1


def test_receipt_excerpt_leaves_out_the_user_data_header() -> None:
    # A concatenated part: UDH (8-bit reference 0x2A, part 1 of 2) then GSM 7-bit text. SMPP 3.4 Appendix B: the
    # receipt's text is "the first 20 characters of the short message" -- the header is not characters of it.
    w = world()
    peer = bound(w)
    udh = bytes([5, 0, 3, 0x2A, 2, 1])
    peer.submit_id(text=udh + b"Your code is 123456 and more", esm_class=ESM_UDHI)
    [receipt] = peer.receipts()
    assert receipt_fields(receipt)["text"] == "Your code is 123456 "


def test_receipt_text_reads_as_written_in_the_data_coding_it_declares() -> None:
    # data_coding 0 is the SMSC default alphabet, which this SMSC takes as GSM 7-bit everywhere else (its MO, its
    # oracle's data_coding check). '$', '@' and '_' are where ASCII and GSM 7-bit disagree: an ESME decoding the
    # receipt as declared must still read the excerpt the SMSC meant.
    w = world()
    peer = bound(w)
    peer.submit_id(text=encode_text("Pay 5$ @shop_now", 0))
    [receipt] = peer.receipts()
    declared = int(receipt["data_coding"])  # type: ignore[arg-type]
    text = decode_text(bytes(receipt["short_message"]), declared)  # type: ignore[arg-type]
    assert text.endswith(" text:Pay 5$ @shop_now"), (declared, text)


def test_an_intermediate_notification_follows_the_submit_sm_resp_on_the_wire() -> None:
    smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"),)))
    conn = smsc.connect("raw", T0)
    conn.receive_data(encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw",
                                      interface_version=0x34)), T0)
    conn.data_to_send()
    # registered_delivery 0x11: every final outcome and (bit 4) an intermediate notification; scheduled, so the
    # message is still en route when the notification is written.
    conn.receive_data(encode(Pdu.make(C.submit_sm, 2, source_addr=SOURCE, destination_addr=REACHABLE,
                                      registered_delivery=0x11, short_message=b"x",
                                      schedule_delivery_time=IN_10_S)), T0)
    wire = decode_stream(conn.data_to_send())
    assert [type(p) is Pdu and p.command_id for p in wire] == [C.submit_sm_resp, C.deliver_sm]
    response, notification = wire
    assert isinstance(response, Pdu)
    assert isinstance(notification, Pdu)
    assert esm_class(notification) == 0x20
    assert notification.tlv("receipted_message_id") == response["message_id"]


def test_receipts_wait_for_a_receiver_bind_of_the_submitting_system_id() -> None:
    w = world()
    transmitter = bound(w, command=C.bind_transmitter, name="tx")
    mid = transmitter.submit_id()
    assert transmitter.received() == []
    assert len(w.deliveries) == 1
    receiver = bound(w, command=C.bind_receiver, name="rx")
    [receipt] = receiver.receipts()
    assert receipt.tlv("receipted_message_id") == mid
    # Counted as sent when it went, once, and acknowledged: acked never exceeds sent.
    assert (w.smsc.stats.receipts_sent, w.smsc.stats.receipts_acked) == (1, 1)


def test_a_receipt_held_again_after_a_refusal_is_not_counted_twice() -> None:
    w = world()
    peer = bound(w)
    peer.answer_status = S.ESME_RX_T_APPN
    peer.submit_id()
    assert w.smsc.stats.receipts_sent == 1
    peer.answer_status = S.ESME_ROK
    w.advance(1.0)  # the resend: a retry, not a second receipt
    assert (w.smsc.stats.receipts_sent, w.smsc.stats.receipts_retried, w.smsc.stats.receipts_acked) == (1, 1, 1)


def test_a_transmitter_bind_leaves_the_held_receipts_for_the_next_receiver() -> None:
    w = world()
    transmitter = bound(w, command=C.bind_transmitter, name="tx")
    mid = transmitter.submit_id()
    another = bound(w, command=C.bind_transmitter, name="tx2")  # cannot take receipts: must not take them away
    assert another.received() == []
    receiver = bound(w, command=C.bind_receiver, name="rx")
    [receipt] = receiver.receipts()
    assert receipt.tlv("receipted_message_id") == mid


def test_a_refused_receipt_is_sent_again_a_second_later() -> None:
    w = world()
    peer = bound(w)
    peer.answer_status = S.ESME_RX_T_APPN
    peer.submit_id()
    assert len(peer.receipts()) == 1
    peer.answer_status = S.ESME_ROK
    w.advance(1.0)
    receipts = [(t - T0, p.tlv("receipted_message_id")) for t, p in peer.received_at()]
    assert receipts == [(0.0, "1"), (1.0, "1")]
    assert w.smsc.stats.receipts_acked == 1


def test_a_receipt_refused_for_good_is_dropped_and_counted() -> None:
    w = world()
    peer = bound(w)
    peer.answer_status = S.ESME_RX_P_APPN  # SMPP 3.4 5.1.3: a permanent application error
    peer.submit_id()
    w.advance(600.0)
    assert len(peer.receipts()) == 1
    assert (w.smsc.stats.receipts_refused, w.smsc.stats.receipts_retried, w.smsc.stats.receipts_acked) == (1, 0, 0)


def test_a_receipt_refused_for_now_is_retried_with_back_off_then_given_up() -> None:
    w = world()
    peer = bound(w)
    peer.answer_status = S.ESME_RTHROTTLED
    peer.submit_id()
    w.advance(3600.0)
    times = [t - T0 for t, p in peer.received_at()]
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0]
    assert (w.smsc.stats.receipts_retried, w.smsc.stats.receipts_refused) == (8, 1)


def test_an_accepted_retry_ends_the_back_off() -> None:
    w = world()
    peer = bound(w)
    peer.answer_status = S.ESME_RMSGQFUL
    peer.submit_id()
    w.advance(2.0)
    peer.answer_status = S.ESME_ROK
    w.advance(600.0)
    assert [t - T0 for t, p in peer.received_at()] == [0.0, 1.0, 3.0]
    assert (w.smsc.stats.receipts_retried, w.smsc.stats.receipts_acked, w.smsc.stats.receipts_refused) == (2, 1, 0)
    peer.answer_status = S.ESME_RTHROTTLED
    peer.submit_id()  # a new receipt starts its own back-off at 1 s
    w.advance(1.0)
    assert [t - w.now for t, p in peer.received_at()[-2:]] == [-1.0, 0.0]


@pytest.mark.parametrize("dialect", PRESETS, ids=[d.name for d in PRESETS])
def test_receipt_dialects_write_ids_and_dates_their_way(dialect: ReceiptDialect) -> None:
    expected = {  # message 26 = 0x1A: (submit_sm_resp id, receipt id:, date digits)
        SPEC_V34.name: ("000000001A", "000000001A", 10),
        KANNEL_LIKE.name: ("26", "26", 10),
        MIXED_ID_BASES.name: ("1a", "0000000026", 10),
        DECIMAL_12.name: ("26", "26", 12),
        TERSE.name: ("0000001A", "0000001A", 12),
    }[dialect.name]
    w = world(dialect=dialect)
    peer = bound(w)
    for _ in range(25):
        peer.submit_id(registered_delivery=0)
    mid = peer.submit_id()
    assert mid == expected[0]
    [receipt] = peer.receipts()
    text = bytes(receipt["short_message"]).decode("ascii")  # type: ignore[arg-type]
    assert text.startswith(f"id:{expected[1]} ")
    assert receipt.tlv("receipted_message_id") == expected[0]
    parsed = parse_receipt(text)
    assert parsed.message_id == expected[1]
    assert parsed.stat is MessageState.DELIVERED
    assert re.search(rf"done date:{stamp(T0, expected[2])}(\s|$)", text)
    # query_sm takes the id as submit_sm_resp wrote it.
    query = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert query is not None
    assert query["message_state"] == MessageState.DELIVERED


# ---------------------------------------------------------------------------------------------------- SMPP 3.3


def bound_as(w: World, version: InterfaceVersion, system_id: str = "esme", name: str = "esme") -> Peer:
    """A new ESME bound as ``system_id`` declaring interface_version ``version``."""
    peer = w.connect(name)
    peer.session = Session(SessionConfig(role=Role.ESME, interface_version=version,
                                         enquire_link_interval=None, session_init_timeout=None,
                                         response_timeout=30.0), now=w.now)
    assert peer.bind(system_id).command_status == S.ESME_ROK
    assert peer.conn.session.version is version
    return peer


def bound_v33(w: World, system_id: str = "esme", name: str = "esme") -> Peer:
    """A new ESME bound as ``system_id`` declaring SMPP 3.3 (interface_version 0x33)."""
    return bound_as(w, InterfaceVersion.V33, system_id, name)


@pytest.mark.parametrize("delivery", [MoDelivery.DELIVER_SM, MoDelivery.DATA_SM])
def test_a_33_bind_gets_receipts_and_mo_without_optional_parameters(delivery: MoDelivery) -> None:
    w = world(accounts=(Account("esme", "pw", mo_delivery=delivery),), subscribers=subscribers())
    peer = bound_v33(w)
    peer.submit_id(BARRED)
    assert w.smsc.inject_mo(REACHABLE, SOURCE, "STOP", w.now)
    w.pump()
    [receipt] = peer.receipts()
    [mo] = peer.mo()
    # SMPP 3.3 has no optional parameters and no data_sm: the receipt's text is all it gets.
    assert [(p.command_id, p.tlvs) for p in (receipt, mo)] == [(C.deliver_sm, ()), (C.deliver_sm, ())]
    assert receipt_fields(receipt)["stat"] == "REJECTD"
    assert mo["short_message"] == b"STOP"
    assert w.smsc.stats.receipts_acked == 1


def test_a_request_with_tlvs_on_a_33_bind_fails_wellformed_not_response_echo() -> None:
    w = world()
    peer = bound_v33(w)
    peer.conn.receive_data(encode(Pdu.make(C.submit_sm, 9, source_addr=SOURCE, destination_addr=REACHABLE,
                                           short_message=b"x", tlvs={"user_message_reference": 1})), w.now)
    answer = decode(peer.conn.data_to_send())
    assert (answer.sequence_number, answer.command_status) == (9, S.ESME_RINVCMDLEN)
    verdicts = peer.verdicts()
    # SMPP 3.3 has no optional parameters: malformed input, and response_echo is about responses only.
    assert (verdicts["wellformed"], verdicts["response_echo"]) == ("fail", "inconc")


def test_a_33_bind_gets_no_optional_parameters_in_responses() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v33(w)
    response = peer.submit()
    assert response is not None
    assert response.command_status == S.ESME_ROK
    assert response.tlvs == ()


def test_data_sm_lives_for_its_qos_time_to_live() -> None:
    # data_sm has no validity_period: SMPP 3.4 5.3.2.16 qos_time_to_live, "Time to live as a relative time in
    # seconds from submission", is its lifetime. Once ignored: the message lived default_validity (48 h), retried.
    w = world(subscribers=subscribers(), absent_retry=20.0)
    peer = bound(w)

    def data_sm(**tlvs: object) -> str:
        answer = peer.request(Pdu.make(C.data_sm, 0, source_addr=SOURCE, destination_addr=ABSENT, registered_delivery=1,
                                       tlvs={"message_payload": b"ttl", **tlvs}))  # type: ignore[arg-type]
        assert answer is not None
        assert answer.command_status == S.ESME_ROK
        return str(answer["message_id"])

    def state(mid: str) -> object:
        answer = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
        assert answer is not None
        return answer["message_state"]

    short = data_sm(qos_time_to_live=30)
    default = data_sm()
    # Tried at 0 s and 20 s; a try at 40 s would be past the 30 s it may live, so it expires at the second.
    w.advance(19)
    assert (state(short), state(default)) == (MessageState.ENROUTE, MessageState.ENROUTE)
    w.advance(2)
    assert (state(short), state(default)) == (MessageState.EXPIRED, MessageState.ENROUTE)
    assert [(f["id"], f["stat"]) for f in map(receipt_fields, peer.receipts())] == [(short, "EXPIRED")]


# ---------------------------------------------------------------------------------------------------- broadcast


def bound_v50(w: World, system_id: str = "esme", name: str = "esme") -> Peer:
    """A new ESME bound as ``system_id`` with SMPP 5.0 (the broadcast family needs it)."""
    return bound_as(w, InterfaceVersion.V50, system_id, name)


def broadcast(peer: Peer, source: str = SOURCE, service_type: str = "", **extra: object) -> Pdu:
    """A broadcast_sm from SOURCE (unless told) to area "abc", with these TLVs beside the usual; its response."""
    tlvs: dict[str, object] = {
        "broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
        "broadcast_content_type": BroadcastContentType(0, 0), "broadcast_rep_num": 1,
        "broadcast_frequency_interval": BroadcastFrequencyInterval(8, 5), "message_payload": b"hi", **extra}
    answer = peer.request(Pdu.make(C.broadcast_sm, 0, source_addr=source, service_type=service_type, message_id="",
                                   tlvs=tlvs))  # type: ignore[arg-type]
    assert answer is not None
    return answer


def test_broadcast_sm_is_tracked_queried_and_cancelled_under_an_id_no_sms_shares() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    before = peer.submit_id()
    accepted = broadcast(peer)
    assert (accepted.command_id, accepted.command_status) == (C.broadcast_sm_resp, S.ESME_ROK)
    mid = str(accepted["message_id"])
    after = peer.submit_id()
    assert len({before, mid, after}) == 3
    sms_query = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert sms_query is not None
    assert sms_query.command_status == S.ESME_RQUERYFAIL  # a broadcast is not an SMS

    def query() -> Pdu:
        answer = peer.request(Pdu.make(C.query_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
        assert answer is not None
        assert answer.command_status == S.ESME_ROK
        return answer

    first = query()
    assert (first["message_id"], first.tlv("message_state")) == (mid, MessageState.ENROUTE)
    assert first.tlv("broadcast_area_identifier") == BroadcastAreaIdentifier(0, b"abc")
    cancel = peer.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    assert query().tlv("message_state") == MessageState.DELETED
    again = peer.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
    assert again is not None
    assert again.command_status == S.ESME_RBCASTCANCELFAIL


def test_cancel_broadcast_sm_without_message_id_cancels_every_running_match_of_the_account() -> None:
    # SMPP 5.0 4.6.2: a NULL message_id cancels every outstanding broadcast with the source_addr (and the
    # service_type, when given).
    w = world(accounts=(Account("a", "pw"), Account("b", "pw")), interface_version=InterfaceVersion.V50)
    owner = bound_v50(w, "a", "a")
    other = bound_v50(w, "b", "b")
    plain = str(broadcast(owner)["message_id"])
    cmt = str(broadcast(owner, service_type="CMT")["message_id"])
    elsewhere = str(broadcast(owner, source="999")["message_id"])
    theirs = str(broadcast(other)["message_id"])

    def cancel(service_type: str = "") -> int:
        answer = owner.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id="", source_addr=SOURCE,
                                        service_type=service_type))
        assert answer is not None
        return answer.command_status

    def states() -> dict[str, object]:
        out = {}
        for peer, mid in ((owner, plain), (owner, cmt), (owner, elsewhere), (other, theirs)):
            answer = peer.request(Pdu.make(C.query_broadcast_sm, 0, message_id=mid))  # from any source
            assert answer is not None
            assert answer.command_status == S.ESME_ROK
            out[mid] = answer.tlv("message_state")
        return out

    assert cancel("CMT") == S.ESME_ROK
    assert states() == {plain: MessageState.ENROUTE, cmt: MessageState.DELETED, elsewhere: MessageState.ENROUTE,
                        theirs: MessageState.ENROUTE}
    assert cancel() == S.ESME_ROK
    assert states() == {plain: MessageState.DELETED, cmt: MessageState.DELETED, elsewhere: MessageState.ENROUTE,
                        theirs: MessageState.ENROUTE}
    assert cancel() == S.ESME_RBCASTCANCELFAIL  # nothing outstanding matches any more


def test_cancel_broadcast_sm_without_message_id_narrows_by_content_type_and_user_message_reference() -> None:
    # SMPP 5.0 4.6.2.1: the optional broadcast_content_type and user_message_reference name which of the source's
    # broadcasts to cancel; once ignored, so one reference cancelled them all.
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    first = str(broadcast(peer, user_message_reference=1)["message_id"])
    second = str(broadcast(peer, user_message_reference=2)["message_id"])
    gsm = str(broadcast(peer, broadcast_content_type=BroadcastContentType(1, 0x0001))["message_id"])

    def cancel(**tlvs: object) -> int:
        answer = peer.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id="", source_addr=SOURCE,
                                       tlvs=tlvs))  # type: ignore[arg-type]
        assert answer is not None
        return answer.command_status

    def states() -> list[object]:
        out = []
        for mid in (first, second, gsm):
            answer = peer.request(Pdu.make(C.query_broadcast_sm, 0, message_id=mid))
            assert answer is not None
            out.append(answer.tlv("message_state"))
        return out

    assert cancel(user_message_reference=3) == S.ESME_RBCASTCANCELFAIL
    assert cancel(user_message_reference=2) == S.ESME_ROK
    assert states() == [MessageState.ENROUTE, MessageState.DELETED, MessageState.ENROUTE]
    assert cancel(broadcast_content_type=BroadcastContentType(1, 0x0001)) == S.ESME_ROK
    assert states() == [MessageState.ENROUTE, MessageState.DELETED, MessageState.DELETED]
    assert cancel() == S.ESME_ROK
    assert states() == [MessageState.DELETED, MessageState.DELETED, MessageState.DELETED]


def test_query_and_cancel_broadcast_sm_reach_only_the_asking_accounts_broadcasts() -> None:
    w = world(accounts=(Account("a", "pw"), Account("b", "pw")), interface_version=InterfaceVersion.V50)
    owner = bound_v50(w, "a", "a")
    other = bound_v50(w, "b", "b")
    mid = str(broadcast(owner)["message_id"])
    for command, status in ((C.query_broadcast_sm, S.ESME_RBCASTQUERYFAIL),
                            (C.cancel_broadcast_sm, S.ESME_RBCASTCANCELFAIL)):
        answer = other.request(Pdu.make(command, 0, message_id=mid, source_addr=SOURCE))
        assert answer is not None
        assert answer.command_status == status
    wrong_source = owner.request(Pdu.make(C.query_broadcast_sm, 0, message_id=mid, source_addr="999"))
    assert wrong_source is not None
    assert wrong_source.command_status == S.ESME_RBCASTQUERYFAIL
    mine = owner.request(Pdu.make(C.query_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
    assert mine is not None
    assert (mine.command_status, mine.tlv("message_state")) == (S.ESME_ROK, MessageState.ENROUTE)


def query_broadcast(peer: Peer, message_id: str = "", **tlvs: object) -> Pdu:
    """query_broadcast_sm from SOURCE for ``message_id`` (or, NULL, by the TLVs given); its response."""
    answer = peer.request(Pdu.make(C.query_broadcast_sm, 0, message_id=message_id, source_addr=SOURCE,
                                   tlvs=tlvs))  # type: ignore[arg-type]
    assert answer is not None
    return answer


def test_query_broadcast_sm_resp_names_every_area_with_its_own_success_rate() -> None:
    # SMPP 5.0 4.6.3.2: broadcast_area_identifier and broadcast_area_success for each area of the broadcast_sm;
    # once only the first area was kept, and a dict of the TLVs would have merged the repeats anyway.
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    area_tag = TLV_BY_NAME["broadcast_area_identifier"].tag
    north, south = BroadcastAreaIdentifier(0, b"north"), BroadcastAreaIdentifier(0, b"south")
    tlvs = tuple((TLV_BY_NAME[name].tag, value) for name, value in (
        ("broadcast_area_identifier", north), ("broadcast_area_identifier", south),
        ("broadcast_content_type", BroadcastContentType(0, 0)), ("broadcast_rep_num", 1),
        ("broadcast_frequency_interval", BroadcastFrequencyInterval(8, 5)), ("message_payload", b"hi")))
    accepted = peer.request(Pdu.make(C.broadcast_sm, 0, source_addr=SOURCE, message_id="", tlvs=tlvs))
    assert accepted is not None
    assert accepted.command_status == S.ESME_ROK
    answer = query_broadcast(peer, str(accepted["message_id"]))
    assert answer.command_status == S.ESME_ROK
    assert [(name, value) for name, (tag, value) in zip(answer.tlv_names(), answer.tlvs, strict=True)
            if tag != TLV_BY_NAME["message_state"].tag] == [
        ("broadcast_area_identifier", north), ("broadcast_area_success", 100),
        ("broadcast_area_identifier", south), ("broadcast_area_success", 100)]
    assert [v for t, v in answer.tlvs if t == area_tag] == [north, south]


def replacing(peer: Peer, message_id: str = "", text: bytes = b"new text", **tlvs: object) -> Pdu:
    """broadcast_sm with replace_if_present_flag=1 to area "xyz"; its response."""
    body: dict[str, object] = {
        "broadcast_area_identifier": BroadcastAreaIdentifier(0, b"xyz"),
        "broadcast_content_type": BroadcastContentType(0, 0), "broadcast_rep_num": 1,
        "broadcast_frequency_interval": BroadcastFrequencyInterval(8, 5), "message_payload": text, **tlvs}
    answer = peer.request(Pdu.make(C.broadcast_sm, 0, source_addr=SOURCE, message_id=message_id,
                                   replace_if_present_flag=1, tlvs=body))  # type: ignore[arg-type]
    assert answer is not None
    return answer


def test_broadcast_sm_with_replace_if_present_flag_replaces_the_broadcast_its_message_id_names() -> None:
    # SMPP 5.0 4.6.1: message_id and replace_if_present_flag=1 replace "an existing message which has (1) MC
    # message ID matching the ID supplied in the message_id field"; once a second broadcast ran beside the first.
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    mid = str(broadcast(peer)["message_id"])
    replaced = replacing(peer, mid)
    assert (replaced.command_status, replaced["message_id"]) == (S.ESME_ROK, mid)
    answer = query_broadcast(peer, mid)
    assert answer.tlv("message_state") == MessageState.ENROUTE
    assert answer.tlv("broadcast_area_identifier") == BroadcastAreaIdentifier(0, b"xyz")
    assert [b.message_id for b in w.smsc._broadcasts.values()] == [int(mid)]  # no second broadcast
    # Without the flag a message_id is not a replacement: a new broadcast.
    plain = peer.request(Pdu.make(C.broadcast_sm, 0, source_addr=SOURCE, message_id=mid, tlvs={
        "broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
        "broadcast_content_type": BroadcastContentType(0, 0), "broadcast_rep_num": 1,
        "broadcast_frequency_interval": BroadcastFrequencyInterval(8, 5)}))
    assert plain is not None
    assert plain.command_status == S.ESME_ROK
    assert plain["message_id"] != mid


def test_a_broadcast_replace_naming_no_running_broadcast_fails_and_broadcasts_nothing() -> None:
    w = world(accounts=(Account("a", "pw"), Account("b", "pw")), interface_version=InterfaceVersion.V50)
    owner = bound_v50(w, "a", "a")
    other = bound_v50(w, "b", "b")
    mid = str(broadcast(owner)["message_id"])
    assert replacing(other, mid).command_status == S.ESME_RBCASTFAIL  # another account's
    assert replacing(owner, "999").command_status == S.ESME_RBCASTFAIL  # unknown
    cancel = owner.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    assert replacing(owner, mid).command_status == S.ESME_RBCASTFAIL  # no longer running
    assert query_broadcast(owner, mid).tlv("message_state") == MessageState.DELETED
    assert len(w.smsc._broadcasts) == 1


def test_broadcast_sm_with_replace_if_present_flag_replaces_the_latest_running_one_with_its_reference() -> None:
    # SMPP 5.0 4.6.1: "(2) or ESME assigned message reference number supplied in the user_message_reference
    # field"; a reference no running broadcast has is not present, and the broadcast_sm is a new one.
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    older = str(broadcast(peer, user_message_reference=7)["message_id"])
    newer = str(broadcast(peer, user_message_reference=7)["message_id"])
    replaced = replacing(peer, user_message_reference=7)
    assert (replaced.command_status, replaced["message_id"]) == (S.ESME_ROK, newer)
    assert query_broadcast(peer, newer).tlv("broadcast_area_identifier") == BroadcastAreaIdentifier(0, b"xyz")
    assert query_broadcast(peer, older).tlv("broadcast_area_identifier") == BroadcastAreaIdentifier(0, b"abc")
    fresh = replacing(peer, user_message_reference=8)
    assert fresh.command_status == S.ESME_ROK
    assert fresh["message_id"] not in (older, newer)


def test_a_replaced_broadcast_ends_at_its_new_validity_not_its_old_one() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    accepted = peer.request(Pdu.make(C.broadcast_sm, 0, source_addr=SOURCE, message_id="", validity_period=IN_10_S,
                                     tlvs={"broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
                                           "broadcast_content_type": BroadcastContentType(0, 0),
                                           "broadcast_rep_num": 1,
                                           "broadcast_frequency_interval": BroadcastFrequencyInterval(8, 5)}))
    assert accepted is not None
    mid = str(accepted["message_id"])
    assert replacing(peer, mid, broadcast_rep_num=6).command_status == S.ESME_ROK  # NULL validity: 6 x 5 s
    w.advance(20)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.ENROUTE
    w.advance(15)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.EXPIRED


def test_query_broadcast_sm_by_user_message_reference_reports_the_latest_broadcast_with_it() -> None:
    # SMPP 5.0 4.6.3.1: a NULL message_id and the user_message_reference TLV; "the most recently submitted message"
    # with it, among the bound system_id's; once always ESME_RBCASTQUERYFAIL.
    w = world(accounts=(Account("a", "pw"), Account("b", "pw")), interface_version=InterfaceVersion.V50)
    owner = bound_v50(w, "a", "a")
    other = bound_v50(w, "b", "b")
    broadcast(owner, user_message_reference=42)
    latest = str(broadcast(owner, user_message_reference=42)["message_id"])
    broadcast(owner, user_message_reference=43)
    broadcast(other, user_message_reference=42)  # another account's, and newer
    answer = query_broadcast(owner, user_message_reference=42)
    assert (answer.command_status, answer["message_id"]) == (S.ESME_ROK, latest)
    assert (answer.tlv("message_state"), answer.tlv("user_message_reference")) == (MessageState.ENROUTE, 42)
    assert query_broadcast(owner, user_message_reference=44).command_status == S.ESME_RBCASTQUERYFAIL
    assert query_broadcast(owner).command_status == S.ESME_RBCASTQUERYFAIL  # neither id nor reference


@pytest.mark.parametrize(("repetitions", "interval", "lifetime"), [
    (2, BroadcastFrequencyInterval(0x08, 5), 10.0),  # 2 x 5 seconds
    (3, BroadcastFrequencyInterval(0x09, 2), 360.0),  # 3 x 2 minutes
    (1, BroadcastFrequencyInterval(0x0B, 1), 86400.0),  # one day
    (4, BroadcastFrequencyInterval(0x00, 0), 4 * 1.883),  # as frequently as possible: a CBCH cycle each
])
def test_a_broadcast_with_null_validity_lives_its_repetitions_times_their_interval(
        repetitions: int, interval: BroadcastFrequencyInterval, lifetime: float) -> None:
    # SMPP 5.0 4.6.1 validity_period: "Set to NULL to specify that a 'broadcast_rep_num' parameter and a
    # 'broadcast_frequency_interval' parameter have been specified from which a default value should be derived";
    # once default_validity (48 h) whatever they said.
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    mid = str(broadcast(peer, broadcast_rep_num=repetitions, broadcast_frequency_interval=interval)["message_id"])
    w.advance(lifetime - 0.5)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.ENROUTE
    w.advance(1.0)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.EXPIRED


def test_a_broadcast_with_null_validity_counts_from_its_schedule() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    accepted = peer.request(Pdu.make(
        C.broadcast_sm, 0, source_addr=SOURCE, message_id="", schedule_delivery_time=IN_10_S,
        tlvs={"broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
              "broadcast_content_type": BroadcastContentType(0, 0), "broadcast_rep_num": 2,
              "broadcast_frequency_interval": BroadcastFrequencyInterval(0x08, 5)}))
    assert accepted is not None
    mid = str(accepted["message_id"])
    w.advance(19)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.ENROUTE
    w.advance(2)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.EXPIRED


def test_a_broadcast_with_null_validity_and_no_repetition_count_runs_until_cancelled() -> None:
    # SMPP 5.0 broadcast_rep_num: 0 with no validity_period: "the broadcasts should be repeated indefinitely".
    w = world(interface_version=InterfaceVersion.V50, default_validity=60.0)
    peer = bound_v50(w)
    mid = str(broadcast(peer, broadcast_rep_num=0)["message_id"])
    w.advance(3600)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.ENROUTE


def test_an_immediate_broadcast_with_null_validity_lives_one_interval() -> None:
    # SMPP 5.0 broadcast_rep_num: with priority_flag 1 (Immediate Broadcast) it is "ignored if supplied".
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    accepted = peer.request(Pdu.make(
        C.broadcast_sm, 0, source_addr=SOURCE, message_id="", priority_flag=1,
        tlvs={"broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
              "broadcast_content_type": BroadcastContentType(0, 0), "broadcast_rep_num": 50,
              "broadcast_frequency_interval": BroadcastFrequencyInterval(0x08, 5)}))
    assert accepted is not None
    mid = str(accepted["message_id"])
    w.advance(6)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.EXPIRED


@pytest.mark.parametrize(("tlvs", "status"), [
    ({"broadcast_area_identifier": BroadcastAreaIdentifier(7, b"abc")}, S.ESME_RINVBCASTAREAFMT),
    ({"broadcast_area_identifier": BroadcastAreaIdentifier(0, b"")}, S.ESME_RINVBCASTALIAS_NAME),
    ({"broadcast_frequency_interval": BroadcastFrequencyInterval(0x05, 5)}, S.ESME_RINVBCASTFREQINT),
    ({"broadcast_frequency_interval": BroadcastFrequencyInterval(0x09, 0)}, S.ESME_RINVBCASTFREQINT),
    ({"broadcast_content_type": BroadcastContentType(9, 0)}, S.ESME_RINVBCASTCNTTYPE),
    ({"broadcast_message_class": 9}, S.ESME_RINVBCASTMSGCLASS),
    ({"broadcast_channel_indicator": 2}, S.ESME_RINVBCASTCHANIND),
])
def test_broadcast_sm_with_a_value_smpp_50_does_not_define_gets_its_dedicated_status(
        tlvs: dict[str, object], status: CommandStatus) -> None:
    # SMPP 5.0 4.8.4 defines these values and 4.7.6 a status for each kind of bad one; once all answered ESME_ROK.
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    assert broadcast(peer, **tlvs).command_status == status
    assert not w.smsc._broadcasts  # nothing accepted
    for fine in ({"broadcast_area_identifier": BroadcastAreaIdentifier(2, b"\x00" * 8)},
                 {"broadcast_frequency_interval": BroadcastFrequencyInterval(0x00, 0)},
                 {"broadcast_content_type": BroadcastContentType(3, 0x0033)},
                 {"broadcast_message_class": 3}, {"broadcast_channel_indicator": 1}):
        assert broadcast(peer, **fine).command_status == S.ESME_ROK


# ---------------------------------------------------------------------------------------------------- MO


def mo_world() -> tuple[World, Peer, Peer, Peer]:
    """Three receiver binds: a short code by account route, long numbers by address_range, and a default."""
    w = world((Account("shortcode", "pw", routes=("12345",)), Account("longnum", "pw"), Account("fallback", "pw")))
    short = bound(w, "shortcode", C.bind_receiver, name="short")
    long_ = bound(w, "longnum", C.bind_receiver, name="long", address_range=r"4477009\d{5}")
    fallback = bound(w, "fallback", C.bind_transceiver, name="fallback")
    return w, short, long_, fallback


def test_account_routes_are_numbers_or_full_matches() -> None:
    account = Account("a", "pw", routes=("12345", r"^4477\d+", "1.3"))
    assert account.routes_to("12345")
    assert not account.routes_to("123456")  # a plain number is equal or nothing
    assert account.routes_to("447712")
    assert not account.routes_to("5447712")  # an expression matches the whole destination
    assert account.routes_to("123")
    assert account.routes_to("1x3")  # "." makes it an expression
    assert not Account("b", "pw").routes_to("12345")


@pytest.mark.parametrize(
    ("destination", "taker"),
    [("12345", 0), ("447700912345", 1), ("999", 2), ("447700812345", 2)],
    ids=["account-route", "address-range", "default-route", "range-mismatch-falls-back"],
)
def test_mo_is_routed_by_account_routes_then_address_range_then_default(destination: str, taker: int) -> None:
    w, *peers = mo_world()
    assert w.smsc.inject_mo("447700900777", destination, "Hi there", w.now)
    w.pump()
    for index, peer in enumerate(peers):
        got = peer.mo()
        if index != taker:
            assert got == [], peer.name
            continue
        [pdu] = got
        assert (pdu["source_addr"], pdu["destination_addr"], pdu["short_message"], pdu["data_coding"]) == (
            "447700900777", destination, b"Hi there", 0)
        assert pdu["source_addr_ton"] == 1
    assert w.smsc.stats.mo_sent == 1


#: Destinations for the address_range tests: numbers, a short code, letters and Latin-1 (an alphanumeric address).
RANGE_DESTINATIONS = ("447700912345", "4477", "447", "12345", "1234", "5447700912345", "44780", "abc", "ABC",
                      "é", "4477é", "")


@pytest.mark.parametrize("address_range", [
    "^4477", "4477.*", "^4477.*", "[0-9]{5}", r"4477009\d{5}", "4477|4478.*", "(?i)abc", "[^5].*", "é.*",
    "4477[0-9]*$", r"\d{3,}", "447[", "12(345",
])
def test_an_ordinary_address_range_routes_what_pythons_fullmatch_took(address_range: str) -> None:
    # The semantics every bind had with re: a full match of the destination; a pattern re refuses ("447[") is the
    # literal address.
    try:
        expected = re.compile(address_range)
    except re.error:
        expected = re.compile(re.escape(address_range))
    w = world((Account("ranged", "pw"), Account("other", "pw")))
    ranged = bound(w, "ranged", C.bind_receiver, name="ranged", address_range=address_range)
    bound(w, "other", C.bind_transmitter, name="other")
    for destination in RANGE_DESTINATIONS:
        takers = w.smsc.route_mo(destination)
        assert takers == ([ranged.conn] if expected.fullmatch(destination) else []), destination


def test_an_empty_address_range_is_a_default_route_for_any_destination() -> None:
    w = world()
    peer = bound(w, command=C.bind_receiver, address_range="")
    assert peer.conn.address_range is None
    assert all(w.smsc.route_mo(d) == [peer.conn] for d in RANGE_DESTINATIONS)


@pytest.mark.parametrize("address_range", ["(.*.*.*)*x", "(a+)+b", r"(\d+)+x", "(.*)*.*x", "(4|44)*x"])
def test_a_catastrophic_address_range_routes_in_linear_time(address_range: str) -> None:
    # Under backtracking re, "(.*.*.*)*x" took ~10 s for one 12-digit MO (every session stalled meanwhile), and
    # doubles per digit. The guarantee is RE2's (linear in the destination's length, by construction), so the
    # test checks that RE2 is what matches, not how long a match takes (tests never assert on speed).
    w = world((Account("evil", "pw"), Account("good", "pw")))
    evil = bound(w, "evil", C.bind_receiver, name="evil", address_range=address_range)
    good = bound(w, "good", name="good")
    assert evil.conn.address_range is not None
    assert not isinstance(evil.conn.address_range, re.Pattern)
    assert type(evil.conn.address_range).__module__.startswith("re2")
    for destination in ("447700900123", "4477009001234567", "a" * 20):
        assert w.smsc.route_mo(destination) == [good.conn], destination  # no match: the default route takes it
    assert w.smsc.inject_mo("447700900123", "447700900123", "hi", w.now)
    w.pump()
    assert [p["destination_addr"] for p in good.mo()] == ["447700900123"]


@pytest.mark.parametrize(("address_range", "command"), [
    (r"(\d)\1", C.bind_receiver),  # a backreference: RE2 has none
    ("4477(?=1)", C.bind_transceiver),  # lookaround
    ("(?<!5)4477", C.bind_receiver),
    ("4477.*+", C.bind_receiver),  # possessive (Python 3.11)
    (r"4477\Z", C.bind_receiver),
    (r"\w+", C.bind_receiver),  # Unicode in re ("é" is a word character), ASCII in RE2
    (r"[\s4]+", C.bind_receiver),
    (r"4477\b", C.bind_receiver),
    ("[[:digit:]]+", C.bind_receiver),  # a POSIX class in RE2, the set ":digt[" then "]+" in re
    ("4{,3}", C.bind_receiver),  # 0..3 fours in re, literal text in RE2
    ("4{1001}", C.bind_receiver),  # beyond RE2's repetition limit
])
def test_an_address_range_re2_cannot_run_as_re_does_refuses_the_bind(address_range: str, command: CommandId) -> None:
    w = world((Account("esme", "pw", max_binds=1),))
    peer = w.connect()
    response = peer.bind("esme", command=command, address_range=address_range)
    assert (response.command_id, response.command_status) == (command.response, S.ESME_RBINDFAIL)
    assert (w.smsc.stats.bind_failures, w.smsc.stats.binds, w.smsc.accounts.binds("esme")) == (1, 0, 0)
    assert peer.conn.account is None
    # The slot it did not take is free, and the connection may bind again with a range the SMSC runs.
    assert peer.bind("esme", command=command, address_range="4477.*").command_status == S.ESME_ROK
    assert w.smsc.route_mo("447712") == [peer.conn]


def test_a_transmitter_binds_whatever_its_address_range_since_it_takes_no_mo() -> None:
    w = world()
    peer = bound(w, command=C.bind_transmitter, address_range=r"(\d)\1")
    assert peer.conn.address_range is None


def test_mo_without_a_receiver_is_unroutable() -> None:
    w = world()
    bound(w, command=C.bind_transmitter)
    assert w.smsc.inject_mo("447700900777", "12345", "Hi", w.now) is False
    assert w.smsc.stats.mo_unroutable == 1


def test_long_unicode_mo_arrives_concatenated() -> None:
    w = world()
    peer = bound(w)
    text = "Привет, мир! " * 10  # 130 UCS-2 characters: two parts
    assert w.smsc.inject_mo("447700900777", "12345", text, w.now)
    w.pump()
    parts = peer.mo()
    assert len(parts) == 2
    bodies = []
    for number, pdu in enumerate(parts, start=1):
        assert pdu["esm_class"] == ESM_UDHI
        assert pdu["data_coding"] == 8
        udh, body = split_udh(bytes(pdu["short_message"]))  # type: ignore[arg-type]
        concat = udh.concatenation
        assert concat is not None
        assert (concat.total, concat.sequence) == (2, number)
        bodies.append(body)
    assert b"".join(bodies).decode("utf-16-be") == text


def test_data_sm_accounts_get_mo_and_receipts_as_data_sm() -> None:
    w = world((Account("esme", "pw", mo_delivery=MoDelivery.DATA_SM),))
    peer = bound(w)
    mid = peer.submit_id(text=b"Hello")
    assert w.smsc.inject_mo("447700900777", "12345", "Reply", w.now)
    w.pump()
    receipt, mo = peer.received()
    assert receipt.command_id is C.data_sm
    assert receipt["esm_class"] == ESM_RECEIPT
    assert receipt.tlv("receipted_message_id") == mid
    assert receipt_fields(receipt)["stat"] == "DELIVRD"
    assert mo.command_id is C.data_sm
    assert mo["esm_class"] == 0
    assert mo.tlv("message_payload") == b"Reply"
    assert (mo["source_addr"], mo["destination_addr"]) == ("447700900777", "12345")


# ---------------------------------------------------------------------------------------------------- faults


def test_generic_nack_fault_answers_every_request_with_a_system_error() -> None:
    w = world(faults=FaultPlan(generic_nack=1.0))
    peer = bound(w)
    response = peer.submit()
    assert response is not None
    assert response.command_id is C.generic_nack
    assert response.command_status == S.ESME_RSYSERR
    assert w.smsc.stats.submitted == 0
    assert w.deliveries == []


def test_drop_response_fault_stores_the_message_but_never_answers() -> None:
    w = world(faults=FaultPlan(drop_response=1.0))
    peer = bound(w)
    sent = peer.send(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=REACHABLE,
                              short_message=b"Hello", registered_delivery=1))
    assert peer.response_to(sent) is None
    assert len(w.deliveries) == 1  # accepted all the same
    w.advance(30.0)
    assert any(isinstance(e, ResponseTimedOut) and e.request.sequence_number == sent.sequence_number
               for _, e in peer.events)
    assert peer.conn.session.peer_outstanding == 0  # the SMSC does not owe it forever


def test_delay_response_fault_holds_the_response_back() -> None:
    w = world(faults=FaultPlan(delay_response=1.0, response_delay=2.0))
    peer = bound(w)
    sent = peer.send(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=REACHABLE, short_message=b"x"))
    w.advance(1.9)
    assert peer.response_to(sent) is None
    w.advance(0.1)
    response = peer.response_to(sent)
    assert response is not None
    assert response.command_status == S.ESME_ROK
    [when] = [t for t, e in peer.events if isinstance(e, ResponseReceived)]
    assert when == T0 + 2


def test_duplicate_receipt_fault_sends_the_same_receipt_twice() -> None:
    w = world(faults=FaultPlan(duplicate_receipt=1.0))
    peer = bound(w)
    mid = peer.submit_id()
    first, second = peer.receipts()
    assert first.tlv("receipted_message_id") == second.tlv("receipted_message_id") == mid
    assert first["short_message"] == second["short_message"]
    assert len(w.deliveries) == 1


def test_lost_receipt_fault_delivers_but_never_reports() -> None:
    w = world(faults=FaultPlan(lost_receipt=1.0))
    peer = bound(w)
    peer.submit_id()
    w.advance(60.0)
    assert peer.receipts() == []
    assert len(w.deliveries) == 1
    assert w.smsc.stats.receipts_sent == 0


def test_late_receipt_fault_adds_its_delay() -> None:
    w = world(faults=FaultPlan(late_receipt=1.0, late_receipt_delay=30.0), dlr_delay=DelayDistribution(1.0, 1.0))
    peer = bound(w)
    peer.submit_id()
    w.advance(30.9)
    assert peer.receipts() == []
    w.advance(0.1)
    assert [t - T0 for t, _ in peer.received_at()] == [31.0]


def test_receipt_before_response_fault_lets_the_receipt_overtake_the_submit_sm_resp() -> None:
    w = world(faults=FaultPlan(receipt_before_response=1.0), dlr_delay=DelayDistribution(5.0, 5.0))
    peer = bound(w)
    mid = peer.submit_id()
    order = [(type(e).__name__, e.pdu.command_id if isinstance(e, PduReceived) else e.response.command_id)
             for _, e in peer.events if isinstance(e, PduReceived | ResponseReceived)]
    assert order[-2:] == [("PduReceived", C.deliver_sm), ("ResponseReceived", C.submit_sm_resp)]
    [receipt] = peer.receipts()
    assert receipt.tlv("receipted_message_id") == mid
    w.advance(10.0)
    assert len(peer.receipts()) == 1  # immediate, and only once


def test_unbind_with_full_window_fault_waits_for_the_smscs_window_to_fill() -> None:
    w = world(window=2, faults=FaultPlan(unbind_with_full_window=1.0))
    peer = bound(w)
    for _ in range(5):
        peer.submit_id()  # each receipt goes, and is answered, before the next: the window never fills
    assert len(peer.receipts()) == 5
    assert not any(isinstance(e, UnbindRequested) for _, e in peer.events)
    assert peer.conn.receives


def test_unbind_with_full_window_fault_unbinds_when_the_smscs_window_is_full() -> None:
    w = world(window=2, faults=FaultPlan(unbind_with_full_window=1.0))
    peer = bound(w)
    ids = {peer.submit_id(schedule_delivery_time=IN_10_S) for _ in range(3)}
    w.advance(10.0)  # three receipts due at once: two fill the window, the third waits
    assert len(peer.receipts()) == 2
    [unbind_at] = [t for t, e in peer.events if isinstance(e, UnbindRequested)]
    assert unbind_at == w.now
    assert peer.conn.closed
    assert peer.verdicts()["unbind"] == "pass"  # the ESME answered what was in flight, then the unbind
    again = bound(w, name="again")
    w.pump()
    receipts = peer.receipts() + again.receipts()
    assert {r.tlv("receipted_message_id") for r in receipts} == ids  # nothing lost: the third came after
    assert w.smsc.stats.receipts_acked == 3


def test_unbind_with_full_window_fault_draws_once_per_filling(monkeypatch: pytest.MonkeyPatch) -> None:
    # So unlikely it never strikes: what is counted is how often the fault is drawn.
    w = world(window=1, faults=FaultPlan(unbind_with_full_window=1e-12))
    peer = bound(w)
    draws = 0
    real = KeyedDraws.uniform

    def counted(self: KeyedDraws, kind: Draw, word: int, n: int) -> float:
        nonlocal draws
        draws += kind is Draw.UNBIND_WITH_FULL_WINDOW
        return real(self, kind, word, n)

    monkeypatch.setattr(KeyedDraws, "uniform", counted)
    for _ in range(3):
        peer.submit_id(schedule_delivery_time=IN_10_S)
    w.advance(10.0)
    # Window 1, three receipts at once: it fills when the first goes (the second waits) and again when the
    # second goes (the third waits): two fillings, one draw each, however often pump found it full.
    assert draws == 2
    assert len(peer.receipts()) == 3


def test_tcp_reset_fault_asks_the_io_layer_for_a_reset() -> None:
    w = world(faults=FaultPlan(tcp_reset=1.0))
    peer = bound(w)
    assert not peer.conn.reset_requested
    peer.submit_id()
    assert peer.conn.reset_requested


# ------------------------------------------------------------------------------------- requests never answered


def silent_esme_with_mo(count: int) -> tuple[World, Peer]:
    """An ESME that binds and never answers, and ``count`` MO sent its way (the SMSC's window: 10 in flight)."""
    w = world()
    peer = bound(w)
    peer.answers = False
    for n in range(count):
        assert w.smsc.inject_mo("447700900001", "12345", f"mo {n}", w.now)
    w.pump()
    assert len(peer.mo()) == min(count, 10)
    return w, peer


def check(peer: Peer, name: str) -> dict[str, object]:
    """One check's JSON verdict for the peer's session."""
    [found] = [v for v in peer.conn.verdicts() if v["check"] == name]
    return found


def test_requests_unanswered_when_the_esme_drops_the_connection_fail_response_time() -> None:
    w, peer = silent_esme_with_mo(50)
    peer.conn.connection_lost(w.now)
    w.pump()
    response_time = check(peer, "response_time")
    assert response_time["verdict"] == "fail"
    assert (response_time["exercised"], response_time["violations"]) == (10, 10)
    assert "10 request(s) never answered before the session ended (deliver_sm seq 1, deliver_sm seq 2, " \
           "deliver_sm seq 3, ...)" in str(response_time["reason"])
    assert check(peer, "unbind")["verdict"] == "fail"
    # What the silent ESME never did stays unjudged: it sent no request and answered none.
    assert check(peer, "window")["verdict"] == "inconc"
    assert check(peer, "response_echo")["verdict"] == "inconc"


def test_requests_unanswered_at_a_clean_unbind_fail_response_time_too() -> None:
    w, peer = silent_esme_with_mo(3)
    peer.unbind()  # the ESME's own unbind, with the SMSC's deliver_sm still unanswered
    peer.conn.connection_lost(w.now)  # then it hangs up, as the unbind handshake allows
    w.pump()
    assert check(peer, "response_time")["verdict"] == "fail"
    assert check(peer, "response_time")["violations"] == 3
    assert "unbind with 3 of our requests unanswered" in str(check(peer, "unbind")["reason"])


def test_requests_timed_out_then_dropped_are_counted_once() -> None:
    w, peer = silent_esme_with_mo(12)
    w.advance(30.0)  # the ten in flight time out (judged then), the last two go out and wait
    timed_out = check(peer, "response_time")["violations"]
    assert timed_out == 10
    peer.conn.connection_lost(w.now)
    w.pump()
    assert check(peer, "response_time")["violations"] == 12


def test_an_smsc_made_reset_judges_nothing_left_unanswered() -> None:
    w, peer = silent_esme_with_mo(5)
    peer.conn.reset_requested = True  # an outage, a tcp_reset fault: the SMSC's doing, not the ESME's
    peer.conn.connection_lost(w.now)
    w.pump()
    assert check(peer, "response_time")["verdict"] == "inconc"


def fault_trace(seed: int) -> list[tuple[float, str, int, int, bytes]]:
    """What one ESME sees over 20 submissions to an SMSC with several faults at once."""
    w = world(seed=seed, dlr_delay=DelayDistribution(0.5, 3.0),
              faults=FaultPlan(generic_nack=0.2, delay_response=0.3, response_delay=1.0, duplicate_receipt=0.4,
                               lost_receipt=0.3, late_receipt=0.2, late_receipt_delay=5.0))
    peer = bound(w)
    for n in range(20):
        peer.send(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=REACHABLE,
                           short_message=f"message {n}".encode(), registered_delivery=1))
        w.advance(0.25)
    w.advance(20.0)
    trace: list[tuple[float, str, int, int, bytes]] = []
    for t, event in peer.events:
        if isinstance(event, ResponseReceived):
            pdu = event.response
        elif isinstance(event, PduReceived):
            pdu = event.pdu
        else:
            continue
        trace.append((round(t - T0, 6), pdu.command_id.name, pdu.command_status, pdu.sequence_number,
                      bytes(pdu.params.get("short_message", b""))))  # type: ignore[arg-type]
    return trace


def test_faults_are_deterministic_under_a_seed() -> None:
    first = fault_trace(7)
    assert first == fault_trace(7)
    commands = [c for _, c, _, _, _ in first]
    # The plan really misbehaved: nacks, and receipts neither one per accepted message nor at fixed times.
    assert "generic_nack" in commands
    accepted = sum(1 for _, c, status, _, _ in first if c == "submit_sm_resp" and status == 0)
    receipts = commands.count("deliver_sm")
    assert accepted + commands.count("generic_nack") == 20
    assert receipts != accepted
    assert fault_trace(8) != first


Outcome = tuple[str, float, tuple[float, ...]]


def per_message_outcomes(order: list[tuple[str, int]], noise_every: int, seed: int = 7) -> dict[str, Outcome]:
    """Submit ``order`` ((destination, k): the k-th message to it), a quarter second apart, with a message to a
    destination of no interest after every ``noise_every``; then, per message text: how it was answered, after
    how long, and when its receipts came (seconds after the submit)."""
    w = world(seed=seed, window=100, dlr_delay=DelayDistribution(0.5, 3.0),
              faults=FaultPlan(generic_nack=0.2, delay_response=0.3, response_delay=1.0, duplicate_receipt=0.3,
                               lost_receipt=0.2, late_receipt=0.2, late_receipt_delay=5.0))
    peer = bound(w)
    sent: dict[int, tuple[str, float]] = {}  # seq -> (text, when)
    for count, (destination, k) in enumerate(order):
        for dest, text in [(destination, f"{destination} #{k}")] + (
                [(f"4477009{count:05d}", f"noise {count}")] if count % noise_every == 0 else []):
            pdu = peer.send(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=dest,
                                     short_message=text.encode(), registered_delivery=1))
            sent[pdu.sequence_number] = (text, w.now)
        w.advance(0.25)
    w.advance(60.0)
    outcomes: dict[str, Outcome] = {}
    text_of_id: dict[str, tuple[str, float]] = {}
    for t, event in peer.events:
        if isinstance(event, ResponseReceived) and event.request.sequence_number in sent:
            text, at = sent[event.request.sequence_number]
            outcomes[text] = (event.response.command_id.name, round(t - at, 9), ())
            if event.response.command_id is C.submit_sm_resp:
                text_of_id[str(event.response["message_id"])] = (text, at)
    for t, event in peer.events:
        if isinstance(event, PduReceived) and event.pdu.command_id is C.deliver_sm:
            text, at = text_of_id[str(event.pdu.tlv("receipted_message_id"))]
            answer, after, receipts = outcomes[text]
            outcomes[text] = (answer, after, (*receipts, round(t - at, 9)))
    return {text: outcome for text, outcome in outcomes.items() if not text.startswith("noise")}


def test_fault_and_delay_draws_depend_on_the_message_not_on_the_order_of_traffic() -> None:
    # What a sharded run does to one SMSC's traffic: the same phones' messages, in another order, among others.
    messages = [(f"4477009{100 + d:05d}", k) for k in range(3) for d in range(20)]
    reordered = sorted(messages, key=lambda m: (m[1], -int(m[0])))  # each phone's own messages stay in order
    first = per_message_outcomes(messages, noise_every=100)
    second = per_message_outcomes(reordered, noise_every=3)
    assert len(first) == 60
    assert first == second
    # The plan really misbehaved, and not the same way for every message.
    answers = [answer for answer, _, _ in first.values()]
    assert "generic_nack" in answers
    assert "submit_sm_resp" in answers
    assert {after for _, after, _ in first.values()} >= {0.0, 1.0}  # some responses held back
    copies = {len(receipts) for answer, _, receipts in first.values() if answer == "submit_sm_resp"}
    assert copies == {0, 1, 2}  # lost, one, duplicated
    # Another seed, other decisions.
    assert per_message_outcomes(messages, noise_every=100, seed=8) != first


def test_mo_refused_for_now_is_retried_and_refused_for_good_is_counted() -> None:
    w = world()
    busy = bound(w, name="busy")
    busy.answer_status = S.ESME_RMSGQFUL
    assert w.smsc.inject_mo("447700900001", "12345", "first", w.now)
    w.pump()
    assert len(busy.mo()) == 1
    assert w.smsc.stats.mo_retried == 1
    busy.answer_status = S.ESME_ROK
    w.advance(1.5)
    assert [bytes(p["short_message"]) for p in busy.mo()] == [b"first", b"first"]  # type: ignore[arg-type]
    assert w.smsc.stats.mo_refused == 0
    busy.answer_status = S.ESME_RX_P_APPN
    assert w.smsc.inject_mo("447700900001", "12345", "second", w.now)
    w.pump()
    w.advance(5.0)
    assert w.smsc.stats.mo_refused == 1
    assert len(busy.mo()) == 3  # refused for good: not sent again


def test_mo_with_no_bind_is_held_until_one_binds_when_configured() -> None:
    w = world(hold_mo=60.0)
    assert w.smsc.inject_mo("447700900001", "12345", "while you were away", w.now)
    assert w.smsc.stats.mo_held == 1
    w.advance(5.0)
    late = bound(w, name="late")
    w.pump()
    assert [bytes(p["short_message"]) for p in late.mo()] == [b"while you were away"]  # type: ignore[arg-type]
    assert w.smsc.stats.mo_received == 1
    assert w.smsc.stats.mo_sent == 1


def test_an_mo_too_long_to_segment_is_refused_before_it_is_held() -> None:
    w = world(hold_mo=60.0)
    with pytest.raises(TooManySegments):
        w.smsc.inject_mo("447700900001", "12345", "a" * 40_000, w.now)
    with pytest.raises(TooManySegments):
        w.smsc.inject_mo("447700900001", "12345", bytes(256 * 140), w.now, data_coding=4)
    stats = w.smsc.stats
    assert (stats.mo_received, stats.mo_held, stats.mo_unroutable) == (0, 0, 0)


@pytest.mark.parametrize("text", ["{" * 40_000, "a" * 40_000], ids=["over-a-message-payload", "over-255-parts"])
def test_an_mo_for_a_data_sm_bind_is_refused_as_a_held_one_is(text: str) -> None:
    # The data_sm went out of mo_pdus unchecked: inject_mo said yes, and the codec refused 80,000 octets of
    # message_payload on the way out (unsendable). A retry or a held MO may go to a deliver_sm or SMPP 3.3 bind,
    # so one MO is refused as soon as 255 deliver_sm parts could not carry it, whoever takes it first.
    w = world((Account("esme", "pw", mo_delivery=MoDelivery.DATA_SM),))
    peer = bound(w)
    with pytest.raises(TooManySegments):
        w.smsc.inject_mo("447700900001", "12345", text, w.now)
    with pytest.raises(TooManySegments):
        w.smsc.mo_pdus(Account("esme", "pw", mo_delivery=MoDelivery.DATA_SM), "447700900001", "12345", text)
    w.pump()
    assert peer.mo() == []
    stats = w.smsc.stats
    assert (stats.mo_received, stats.mo_sent, stats.unsendable) == (0, 0, 0)
    # The longest one that is taken goes as one data_sm.
    longest = "a" * (255 * 153)
    assert w.smsc.inject_mo("447700900001", "12345", longest, w.now)
    w.pump()
    [mo] = peer.mo()
    assert (mo.command_id, mo.tlv("message_payload")) == (C.data_sm, longest.encode())


@pytest.mark.parametrize("hold_mo", [0.0, 60.0], ids=["retried-to-it", "held-for-it"])
def test_a_long_data_sm_mo_that_ends_up_on_a_33_bind_arrives_whole(hold_mo: float) -> None:
    # A data_sm made for a 3.4 bind and refused "try later" (or left when the bind went) is sent again to whichever
    # bind routes it then: on an SMPP 3.3 bind it became one deliver_sm cut at 254 octets.
    w = world((Account("dsm", "pw", mo_delivery=MoDelivery.DATA_SM),), hold_mo=hold_mo)
    first = bound(w, "dsm", name="first")
    first.answer_status = S.ESME_RX_T_APPN
    text = "".join(f"part {n:03d}, " for n in range(40))  # 400 GSM characters: 3 parts of 153
    assert w.smsc.inject_mo("447700900001", "12345", text, w.now)
    w.pump()
    [refused] = first.mo()
    assert refused.command_id is C.data_sm
    first.conn.connection_lost(w.now)
    w.pump()
    if hold_mo:
        w.advance(2.0)  # the retry finds no bind: held
        assert w.smsc.stats.mo_held == 1
    old = bound_v33(w, "dsm", name="old")
    w.advance(2.0)
    parts = old.mo()
    assert [p.command_id for p in parts] == [C.deliver_sm] * 3
    bodies = []
    for number, pdu in enumerate(parts, start=1):
        assert (pdu["esm_class"], pdu["data_coding"], pdu.tlvs) == (ESM_UDHI, 0, ())
        assert (pdu["source_addr"], pdu["destination_addr"]) == ("447700900001", "12345")
        udh, body = split_udh(bytes(pdu["short_message"]))  # type: ignore[arg-type]
        assert udh.concatenation is not None
        assert (udh.concatenation.total, udh.concatenation.sequence) == (3, number)
        bodies.append(body)
    assert decode_text(b"".join(bodies), 0) == text
    assert w.smsc.stats.unsendable == 0
    assert not w.smsc._mo_tries  # the refused data_sm's count is not kept for ever


def test_a_held_mo_a_bind_cannot_take_is_dropped_alone_and_the_bind_stays(monkeypatch: pytest.MonkeyPatch) -> None:
    w = world(hold_mo=60.0)
    for text in ("before", "poison", "after"):
        assert w.smsc.inject_mo("447700900001", "12345", text, w.now)
    # inject_mo refuses what cannot be split before holding it; this stands for whatever else a bind could not
    # write when it comes to take the held MO.
    real_mo_pdus = w.smsc.mo_pdus

    def mo_pdus(account: Account, source: str, destination: str, text: str | bytes, *args: Any,
                **kwargs: Any) -> list[Pdu]:
        if text == "poison":
            raise TooManySegments("cannot be written for this bind")
        return real_mo_pdus(account, source, destination, text, *args, **kwargs)

    monkeypatch.setattr(w.smsc, "mo_pdus", mo_pdus)
    late = bound(w, name="late")
    w.pump()
    assert [bytes(p["short_message"]) for p in late.mo()] == [b"before", b"after"]  # type: ignore[arg-type]
    assert not late.conn.closed
    stats = w.smsc.stats
    assert (stats.mo_received, stats.mo_sent, stats.unsendable, stats.mo_unroutable) == (3, 2, 1, 0)


def test_an_mo_whose_bind_dies_before_answering_is_held_for_the_next_bind() -> None:
    w = world(hold_mo=60.0)
    first = bound(w, name="first")
    first.answer_status = S.ESME_RX_T_APPN  # "try again later": the SMSC retries in a second
    assert w.smsc.inject_mo("447700900001", "12345", "caught in an outage", w.now)
    w.pump()
    first.conn.connection_lost(w.now)  # the bind is gone when the retry comes
    w.pump()
    w.advance(5.0)
    assert w.smsc.stats.mo_unroutable == 0
    assert w.smsc.stats.mo_held == 1
    late = bound(w, name="late")
    w.pump()
    assert [bytes(p["short_message"]) for p in late.mo()] == [b"caught in an outage"]  # type: ignore[arg-type]


def test_mo_with_no_bind_is_refused_by_default() -> None:
    w = world()
    assert not w.smsc.inject_mo("447700900001", "12345", "nobody home", w.now)
    assert w.smsc.stats.mo_unroutable == 1


def test_mo_refused_for_now_is_retried_with_the_receipts_back_off_then_given_up() -> None:
    w = world()
    busy = bound(w, name="busy")
    busy.answer_status = S.ESME_RTHROTTLED
    assert w.smsc.inject_mo("447700900001", "12345", "again", w.now)
    w.pump()
    w.advance(3600.0)
    times = [t - T0 for t, p in busy.received_at()]
    assert times == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0, 183.0]
    stats = w.smsc.stats
    assert (stats.mo_retried, stats.mo_given_up, stats.mo_refused) == (8, 1, 0)
    assert "mo_given_up" in stats.to_json()


def test_an_accepted_mo_retry_ends_its_back_off_and_the_next_mo_starts_afresh() -> None:
    w = world()
    busy = bound(w, name="busy")
    busy.answer_status = S.ESME_RMSGQFUL
    assert w.smsc.inject_mo("447700900001", "12345", "first", w.now)
    w.pump()
    w.advance(2.0)
    busy.answer_status = S.ESME_ROK
    w.advance(600.0)
    assert [t - T0 for t, p in busy.received_at()] == [0.0, 1.0, 3.0]
    assert (w.smsc.stats.mo_retried, w.smsc.stats.mo_given_up) == (2, 0)
    assert not w.smsc._mo_tries  # nothing held for an MO that is done
    busy.answer_status = S.ESME_RTHROTTLED
    assert w.smsc.inject_mo("447700900001", "12345", "second", w.now)
    w.pump()
    w.advance(1.0)
    assert [t - w.now for t, p in busy.received_at()[-2:]] == [-1.0, 0.0]



def test_a_cancelled_broadcast_is_forgotten_after_the_stores_retention() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    mid = str(broadcast(peer)["message_id"])
    cancel = peer.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    w.jump(w.smsc.store.retention - 1.0)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.DELETED  # still within retention
    w.jump(2.0)
    assert query_broadcast(peer, mid).command_status == S.ESME_RBCASTQUERYFAIL
    assert mid not in {str(m) for m in w.smsc._broadcasts}


def test_a_broadcast_expires_at_its_validity_and_is_then_forgotten() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    answer = peer.request(Pdu.make(C.broadcast_sm, 0, source_addr=SOURCE, message_id="", validity_period=IN_10_S,
                                   tlvs={"broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
                                         "broadcast_content_type": BroadcastContentType(0, 0),
                                         "broadcast_rep_num": 1,
                                         "broadcast_frequency_interval": BroadcastFrequencyInterval(8, 5),
                                         "message_payload": b"hi"}))
    assert answer is not None
    mid = str(answer["message_id"])
    w.jump(5.0)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.ENROUTE
    w.jump(10.0)
    assert query_broadcast(peer, mid).tlv("message_state") == MessageState.EXPIRED
    cancel = peer.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_RBCASTCANCELFAIL  # over: nothing to cancel
    w.jump(w.smsc.store.retention)
    assert query_broadcast(peer, mid).command_status == S.ESME_RBCASTQUERYFAIL


def test_broadcasts_kept_stay_bounded_over_a_long_run() -> None:
    w = world(interface_version=InterfaceVersion.V50, default_validity=60.0)
    peer = bound_v50(w)
    for _ in range(200):
        broadcast(peer)
        w.jump(30.0)  # 6000 s in all: many validity periods and retentions
    kept = len(w.smsc._broadcasts)
    # At most the last validity period (60 s) plus the retention (600 s) of broadcasts, one every 30 s.
    assert kept <= (60.0 + w.smsc.store.retention) / 30.0 + 1


def test_running_broadcasts_count_against_store_capacity() -> None:
    w = world(interface_version=InterfaceVersion.V50, store_capacity=3)
    peer = bound_v50(w)
    mids = [str(broadcast(peer)["message_id"]) for _ in range(3)]
    full = broadcast(peer)
    assert (full.command_id, full.command_status) == (C.broadcast_sm_resp, S.ESME_RMSGQFUL)
    assert len(w.smsc._broadcasts) == 3
    # A cancelled broadcast no longer runs (it is kept for query_broadcast_sm only): its place is free again.
    cancel = peer.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id=mids[0], source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    assert broadcast(peer).command_status == S.ESME_ROK
    assert broadcast(peer).command_status == S.ESME_RMSGQFUL
    # So is an expired one's, at the end of its validity.
    w.jump(w.smsc.config.default_validity + 1.0)
    assert broadcast(peer).command_status == S.ESME_ROK
    # The messages' own capacity is untouched by broadcasts.
    assert peer.submit() is not None


def test_broadcast_and_cancel_pairs_keep_the_expiry_heap_bounded_and_expiry_correct() -> None:
    w = world(interface_version=InterfaceVersion.V50)
    peer = bound_v50(w)
    # Two that run through it all, one expiring in the middle of the pairs and one after them.
    early = str(broadcast_with_validity(peer, "000000000500000R")["message_id"])  # 5 min
    late = str(broadcast_with_validity(peer, "000001000000000R")["message_id"])  # 1 day
    for i in range(2000):
        mid = str(broadcast_with_validity(peer, "990000000000000R")["message_id"])
        cancel = peer.request(Pdu.make(C.cancel_broadcast_sm, 0, message_id=mid, source_addr=SOURCE))
        assert cancel is not None
        assert cancel.command_status == S.ESME_ROK, i
        w.jump(1.0)
        assert len(w.smsc._broadcast_expiry) <= 64 + 3 * 2
        if i in (100, 400):  # before and after its 300 s (within the retention after)
            state = query_broadcast(peer, early).tlv("message_state")
            assert state == (MessageState.ENROUTE if i == 100 else MessageState.EXPIRED)
    assert len(w.smsc._broadcasts) <= w.smsc.store.retention + 3  # final ones are kept for the retention only
    assert query_broadcast(peer, late).tlv("message_state") == MessageState.ENROUTE
    w.jump(86400.0 - 2000.0 + 10.0)  # just past its day (and within the retention that follows)
    assert query_broadcast(peer, late).tlv("message_state") == MessageState.EXPIRED


def broadcast_with_validity(peer: Peer, validity: str) -> Pdu:
    """A broadcast_sm from SOURCE with this validity_period; its response (must be accepted)."""
    answer = peer.request(Pdu.make(C.broadcast_sm, 0, source_addr=SOURCE, message_id="", validity_period=validity,
                                   tlvs={"broadcast_area_identifier": BroadcastAreaIdentifier(0, b"abc"),
                                         "broadcast_content_type": BroadcastContentType(0, 0),
                                         "broadcast_rep_num": 1,
                                         "broadcast_frequency_interval": BroadcastFrequencyInterval(8, 5)}))
    assert answer is not None
    assert answer.command_status == S.ESME_ROK, S(answer.command_status).name
    return answer


# ---------------------------------------------------------------------------------------------------- dead links


def deaf(w: World, name: str = "deaf") -> Peer:
    """A bound ESME that reads enquire_link and never answers it (a hung application on a live socket)."""
    peer = w.connect(name)
    peer.session = Session(SessionConfig(role=Role.ESME, enquire_link_interval=None, session_init_timeout=None,
                                         response_timeout=None, auto_answer_enquire_link=False), now=w.now)
    assert peer.bind("esme").command_status == S.ESME_ROK
    return peer


def enquire_links(peer: Peer) -> list[float]:
    """When the SMSC's enquire_link reached the peer."""
    return [t - T0 for t, e in peer.events if isinstance(e, PduReceived) and e.pdu.command_id is C.enquire_link]


def test_a_peer_that_never_answers_enquire_link_is_unbound_then_closed() -> None:
    w = world(accounts=(Account("esme", "pw", max_binds=1),), enquire_link_interval=10.0, response_timeout=5.0)
    peer = deaf(w)
    w.advance(29.0)  # enquire_link every 10 s of silence, each missed 5 s later: two misses, still bound
    assert enquire_links(peer) == [10.0, 20.0]
    assert peer.conn.receives
    w.advance(7.0)  # the third, at 30, missed at 35
    assert enquire_links(peer) == [10.0, 20.0, 30.0]
    assert [t - T0 for t, e in peer.events if isinstance(e, UnbindRequested)] == [35.0]
    assert not peer.conn.receives  # unbinding: no MO or receipt goes its way now
    assert not peer.conn.closed
    assert not w.smsc.inject_mo("447700900001", "12345", "anyone?", w.now)
    assert w.smsc.stats.dead_links == 1
    w.advance(5.0)  # the unbind goes unanswered too (the deaf ESME does not answer it): closed
    assert peer.conn.closed
    assert w.smsc.accounts.binds("esme") == 0
    [(_, system_id, checks)] = w.smsc.finished_sessions
    verdicts = {str(c["check"]): str(c["verdict"]) for c in checks}
    assert system_id == "esme"
    assert (verdicts["enquire_link"], verdicts["unbind"]) == ("fail", "fail")
    bound(w, name="replacement")  # the max_binds slot is free again


def test_an_answered_enquire_link_starts_the_count_again() -> None:
    w = world(enquire_link_interval=10.0, response_timeout=5.0, enquire_link_misses=2)
    peer = deaf(w)
    w.advance(15.0)  # enquire_link at 10, missed at 15
    peer.session.config = SessionConfig(role=Role.ESME, enquire_link_interval=None, session_init_timeout=None,
                                        response_timeout=None, auto_answer_enquire_link=True)
    w.advance(10.0)  # the one at 20 is answered
    peer.session.config = SessionConfig(role=Role.ESME, enquire_link_interval=None, session_init_timeout=None,
                                        response_timeout=None, auto_answer_enquire_link=False)
    w.advance(12.0)  # the one at 30 is missed at 35: one since the answer, not two in a row
    assert enquire_links(peer) == [10.0, 20.0, 30.0]
    assert w.smsc.stats.dead_links == 0
    assert peer.conn.receives
    w.advance(10.0)  # the one at 40 is missed at 45: two in a row
    assert w.smsc.stats.dead_links == 1
    assert not peer.conn.receives


def test_enquire_link_misses_zero_never_gives_up() -> None:
    w = world(enquire_link_interval=10.0, response_timeout=5.0, enquire_link_misses=0)
    peer = deaf(w)
    w.advance(300.0)
    assert len(enquire_links(peer)) > 10
    assert peer.conn.receives
    assert peer.verdicts()["enquire_link"] == "fail"


# ---------------------------------------------------------------------------------------------------- roaming

ROAMING = "447700900400"


def roaming_world(**config: Any) -> World:
    """A World whose ROAMING subscriber is in a visited network (REACHABLE and OTHER at home)."""
    registry = SubscriberRegistry()
    registry.set(ROAMING, Condition.ROAMING)
    return world(subscribers=registry, **config)


def query_state(peer: Peer, mid: str) -> int:
    """query_sm's message_state for ``mid``."""
    response = peer.request(Pdu.make(C.query_sm, 0, message_id=mid, source_addr=SOURCE))
    assert response is not None
    assert response.command_status == S.ESME_ROK
    state = response["message_state"]
    assert isinstance(state, int)
    return state


def test_a_roaming_subscribers_mt_and_receipt_wait_for_the_visited_network_and_a_home_ones_do_not() -> None:
    w = roaming_world(roaming_delay=DelayDistribution(3.0, 3.0))
    peer = bound(w)
    home = peer.submit_id(REACHABLE)
    away = peer.submit_id(ROAMING)
    assert [(t, m.destination_addr) for t, m in w.deliveries] == [(T0, REACHABLE)]
    assert [p.tlv("receipted_message_id") for p in peer.receipts()] == [home]
    w.advance(2.9)
    assert len(w.deliveries) == 1
    assert len(peer.receipts()) == 1
    assert query_state(peer, away) == MessageState.ENROUTE
    assert w.smsc.stats.delivered == 1
    w.advance(0.1)
    assert [(t, m.destination_addr) for t, m in w.deliveries] == [(T0, REACHABLE), (T0 + 3, ROAMING)]
    [(at, receipt)] = [(t, p) for t, p in peer.received_at() if p.tlv("receipted_message_id") == away]
    assert at == T0 + 3
    fields = receipt_fields(receipt)
    assert (fields["stat"], fields["err"]) == ("DELIVRD", "000")
    assert fields["done date"] == stamp(T0 + 3)
    assert receipt.tlv("network_error_code") is None
    assert query_state(peer, away) == MessageState.DELIVERED
    assert w.smsc.stats.delivered == 2


def test_the_roaming_delay_is_the_keyed_draw_for_the_destination_and_its_ordinal() -> None:
    w = roaming_world(seed=11, roaming_delay=DelayDistribution(0.5, 2.0))
    peer = bound(w)
    peer.submit_id(ROAMING, b"first")
    peer.submit_id(ROAMING, b"second")
    w.advance(5.0)
    draws = KeyedDraws(11)
    word = subject_word(ROAMING)
    expected = sorted(T0 + draws.between(Draw.ROAMING_DELAY, word, n, 0.5, 2.0) for n in (0, 1))
    assert sorted(t for t, _ in w.deliveries) == expected
    assert expected[0] != expected[1]  # each message its own draw
    # The dlr_delay (0 here) follows the delivery: the receipt goes when the message reaches the handset.
    assert sorted(t for t, _ in peer.received_at()) == expected


def roaming_delays(messages: list[tuple[str, str]], gaps: float, seed: int = 5) -> dict[str, float]:
    """Submit ``messages`` ((destination, text)) ``gaps`` seconds apart to an SMSC where every destination
    roams; each text's delivery delay after its submit."""
    registry = SubscriberRegistry(default=Condition.ROAMING)
    w = world(subscribers=registry, seed=seed, window=100, roaming_delay=DelayDistribution(0.5, 2.0))
    peer = bound(w)
    submitted: dict[bytes, float] = {}
    for destination, text in messages:
        submitted[text.encode()] = w.now
        peer.submit_id(destination, text.encode())
        w.advance(gaps)
    w.advance(10.0)
    return {m.data.decode(): round(t - submitted[m.data], 9) for t, m in w.deliveries}


def test_a_phones_roaming_delays_do_not_depend_on_the_traffic_its_smsc_carries_besides() -> None:
    # One SMSC carrying a phone among many, and another (a shard's) carrying it alone, at another pace.
    phone = "447700900500"
    mine = [(phone, f"mine {k}") for k in range(3)]
    crowd = [(f"4477009{600 + d:05d}", f"crowd {d} {k}") for k in range(3) for d in range(5)]
    together = roaming_delays([m for k in range(3) for m in [mine[k], *crowd[5 * k:5 * k + 5]]], gaps=0.1)
    alone = roaming_delays(mine, gaps=0.7)
    assert {text: after for text, after in together.items() if text.startswith("mine")} == alone
    assert len(set(alone.values())) == 3
    assert all(0.5 <= after < 2.0 for after in together.values())


def test_a_roaming_mt_cancelled_while_it_waits_is_never_delivered() -> None:
    w = roaming_world(roaming_delay=DelayDistribution(3.0, 3.0))
    peer = bound(w)
    mid = peer.submit_id(ROAMING)
    w.advance(1.0)
    cancel = peer.request(Pdu.make(C.cancel_sm, 0, message_id=mid, source_addr=SOURCE))
    assert cancel is not None
    assert cancel.command_status == S.ESME_ROK
    w.advance(10.0)
    assert w.deliveries == []
    assert peer.receipts() == []
    assert query_state(peer, mid) == MessageState.DELETED
    assert w.smsc.stats.delivered == 0


def test_a_roaming_mt_whose_validity_ends_while_it_waits_expires_then() -> None:
    w = roaming_world(roaming_delay=DelayDistribution(30.0, 30.0))
    peer = bound(w)
    mid = peer.submit_id(ROAMING, validity_period=IN_10_S)
    w.advance(9.9)
    assert query_state(peer, mid) == MessageState.ENROUTE
    w.advance(0.1)
    [(at, receipt)] = peer.received_at()
    assert at == T0 + 10
    assert receipt_fields(receipt)["stat"] == "EXPIRED"
    assert query_state(peer, mid) == MessageState.EXPIRED
    w.advance(60.0)
    assert w.deliveries == []
    assert (w.smsc.stats.expired, w.smsc.stats.delivered) == (1, 0)


def test_a_roaming_mt_whose_validity_replace_sm_extends_while_it_waits_is_delivered() -> None:
    w = roaming_world(roaming_delay=DelayDistribution(12.0, 12.0))
    peer = bound(w)
    mid = peer.submit_id(ROAMING, b"old text", validity_period=IN_10_S)
    w.advance(5.0)
    replace = peer.request(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, registered_delivery=1,
                                    validity_period=IN_15_S, short_message=b"new text"))
    assert replace is not None
    assert replace.command_status == S.ESME_ROK
    w.advance(6.9)
    assert w.deliveries == []
    assert query_state(peer, mid) == MessageState.ENROUTE
    w.advance(0.1)
    [(at, message)] = w.deliveries
    assert (at, message.data) == (T0 + 12, b"new text")
    [receipt] = peer.receipts()
    assert receipt_fields(receipt)["stat"] == "DELIVRD"


def test_a_roaming_mt_whose_validity_replace_sm_shortens_while_it_waits_expires_at_the_new_end() -> None:
    w = roaming_world(roaming_delay=DelayDistribution(30.0, 30.0))
    peer = bound(w)
    mid = peer.submit_id(ROAMING, b"old text")  # the default validity: two days
    w.advance(2.0)
    replace = peer.request(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, registered_delivery=1,
                                    validity_period="000000000005000R", short_message=b"new text"))
    assert replace is not None
    assert replace.command_status == S.ESME_ROK
    w.advance(4.9)
    assert query_state(peer, mid) == MessageState.ENROUTE
    assert peer.receipts() == []
    w.advance(0.1)
    [(at, receipt)] = peer.received_at()
    assert at == T0 + 7
    assert receipt_fields(receipt)["stat"] == "EXPIRED"
    w.advance(60.0)
    assert w.deliveries == []
    assert len(peer.receipts()) == 1
    assert (w.smsc.stats.expired, w.smsc.stats.delivered) == (1, 0)


def test_a_roaming_mt_given_a_new_schedule_while_it_waits_is_handed_over_again_then() -> None:
    w = roaming_world(roaming_delay=DelayDistribution(3.0, 3.0))
    peer = bound(w)
    mid = peer.submit_id(ROAMING)
    w.advance(1.0)
    replace = peer.request(Pdu.make(C.replace_sm, 0, message_id=mid, source_addr=SOURCE, registered_delivery=1,
                                    schedule_delivery_time=IN_10_S, short_message=b"later"))
    assert replace is not None
    assert replace.command_status == S.ESME_ROK
    w.advance(20.0)
    assert [(t, m.data) for t, m in w.deliveries] == [(T0 + 1 + 10 + 3, b"later")]
    assert len(peer.receipts()) == 1


def test_a_registry_that_lists_nobody_keeps_its_default_condition() -> None:
    # An empty registry is falsy (len 0): it must not be swapped for an all-reachable one.
    w = world(subscribers=SubscriberRegistry(default=Condition.ABSENT))
    peer = bound(w)
    mid = peer.submit_id(REACHABLE)
    assert w.deliveries == []
    assert query_state(peer, mid) == MessageState.UNDELIVERABLE


@pytest.mark.parametrize("one_read", [True, False], ids=["one read", "two reads"])
def test_a_submit_read_with_a_fatal_length_behind_it_is_answered_however_tcp_cut_the_bytes(one_read: bool) -> None:
    # The session used to close before the SMSC could answer a submit_sm read in the same chunk as the corrupt
    # command_length; in two chunks it was answered. Now both: the answer, then the generic_nack, then the close.
    w = world(subscribers=subscribers())
    peer = bound(w)
    sent = peer.session.send(Pdu.make(C.submit_sm, 0, source_addr=SOURCE, destination_addr=REACHABLE,
                                      short_message=b"hi"), w.now)
    good = peer.session.data_to_send()
    bad = (0xFFFFFFFF).to_bytes(4, "big")
    for chunk in ([good + bad] if one_read else [good, bad]):
        peer.conn.receive_data(chunk, w.now)
        w.pump()
    answers = [e.response for _, e in peer.events if isinstance(e, ResponseReceived) and e.request == sent]
    assert [(r.command_id, r.command_status) for r in answers] == [(C.submit_sm_resp, S.ESME_ROK)]
    nacks = [e.pdu for _, e in peer.events if isinstance(e, PduRejected) and e.pdu is not None]
    assert [(p.command_id, p.command_status) for p in nacks] == [(C.generic_nack, S.ESME_RINVCMDLEN)]
    assert peer.conn.closed
    assert peer.session.closed


def test_a_receipt_acknowledged_without_a_response_body_is_not_resent_but_fails_wellformed() -> None:
    # Many ESMEs acknowledge a deliver_sm with a bare 16-octet deliver_sm_resp ESME_ROK (SMPP 3.4 4.4.2 omits
    # the body only with a non-zero status). It was a decode error: the receipt timed out and was sent again.
    w = world()
    peer = bound(w)
    peer.answers = False  # the test answers, in its own way
    peer.submit_id()
    w.advance(1.0)
    [receipt] = peer.receipts()
    bare = (16).to_bytes(4, "big") + C.deliver_sm_resp.to_bytes(4, "big") + bytes(4)
    peer.conn.receive_data(bare + receipt.sequence_number.to_bytes(4, "big"), w.now)
    w.pump()
    w.advance(600.0)
    assert len(peer.receipts()) == 1  # not resent
    assert (w.smsc.stats.receipts_sent, w.smsc.stats.receipts_acked) == (1, 1)
    verdicts = {str(v["check"]): v for v in peer.conn.verdicts()}
    assert verdicts["wellformed"]["verdict"] == "fail"
    assert "no body" in str(verdicts["wellformed"]["reason"])
    assert verdicts["response_time"]["verdict"] == "pass"


# ---------------------------------------------------------------------------------------------------- retention


def garbage_session(smsc: Smsc, name: str) -> None:
    """A peer that sends one undecodable PDU and hangs up: its session fails wellformed."""
    conn = smsc.connect(name, T0)
    conn.receive_data(b"\x00\x00\x00\x10garbage-garbage", T0)
    conn.connection_lost(T0)
    smsc.dirty_connections()


def test_finished_sessions_are_bounded_and_the_dropped_are_still_counted() -> None:
    w = world()
    smsc = w.smsc
    smsc.kept_sessions, smsc.kept_failed_sessions = 3, 2
    for i in range(10):
        garbage_session(smsc, f"bad{i}")
    clean = bound(w, name="clean")
    clean.unbind()
    kept = smsc.finished_sessions
    # The first two failures whole, then the last three sessions; the other six only counted.
    assert [peer for peer, _, _ in kept] == ["bad0", "bad1", "bad8", "bad9", "clean"]
    assert smsc.dropped_sessions.sessions == 6
    sessions = smsc.verdicts()
    summary = sessions[0]
    assert (summary["sessions"], summary["system_id"]) == (6, None)
    raw = summary["checks"]
    assert isinstance(raw, list)
    checks = {c["check"]: c for c in raw}
    assert checks["wellformed"]["verdict"] == "fail"
    assert checks["wellformed"]["violations"] == 6
    assert "6 fail" in checks["wellformed"]["reason"]
    assert "first fail: bad2 " in checks["wellformed"]["reason"]
    assert checks["window"]["verdict"] == "inconc"  # never exercised by any of them
    assert len(sessions) == 1 + 5


def test_a_connect_garbage_hang_up_loop_keeps_memory_bounded() -> None:
    w = world()
    w.smsc.kept_sessions, w.smsc.kept_failed_sessions = 50, 20
    for i in range(500):
        garbage_session(w.smsc, f"p{i}")
    assert len(w.smsc.finished_sessions) == 70
    assert len(w.smsc.verdicts()) == 71
    assert w.smsc.dropped_sessions.sessions == 430
