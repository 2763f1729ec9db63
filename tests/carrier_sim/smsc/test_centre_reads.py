"""The SMSC's verdicts on a peer depend on the bytes it sent and when, not on how TCP cut them into reads.

Each test feeds raw octets to a :class:`~carrier_sim.smsc.centre.SmscConnection` as the asyncio server would: one
``receive_data`` per read, the SMSC's timers run when due, and the same stream cut in different places must be
judged the same.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.framing import decode_stream
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig, SmscConnection
from carrier_sim.smsc.faults import FaultPlan

C = CommandId
T0 = 1_700_000_000.0


def _smsc(**config: object) -> Smsc:
    # One token a second and a burst of one: every submit after the first is answered ESME_RTHROTTLED.
    return Smsc(SmscConfig(accounts=(Account("esme", "pw", bind_throughput=1.0),), **config))  # type: ignore[arg-type]


def _bound(smsc: Smsc, now: float = T0) -> SmscConnection:
    conn = smsc.connect("test:1", now)
    conn.receive_data(encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw",
                                      interface_version=0x34)), now)
    conn.data_to_send()
    return conn


def _submits(count: int, first: int = 2) -> bytes:
    return b"".join(encode(Pdu.make(C.submit_sm, first + i, source_addr="12345", destination_addr="447700900001",
                                    short_message=b"x")) for i in range(count))


def _pdus(data: bytes) -> list[Pdu]:
    frames = list(decode_stream(data))
    pdus = [frame for frame in frames if isinstance(frame, Pdu)]
    assert len(pdus) == len(frames)  # every frame decoded
    return pdus


def _feed(smsc: Smsc, conn: SmscConnection, reads: Sequence[bytes], now: float) -> list[Pdu]:
    """Each read in turn at ``now`` (timers run as the server runs them); what the SMSC answered."""
    out = b""
    for data in reads:
        conn.receive_data(data, now)
        deadline = smsc.next_deadline
        while deadline is not None and deadline <= now:
            smsc.handle_timers(now)
            deadline = smsc.next_deadline
        out += conn.data_to_send()
    return _pdus(out)


def _cut(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _per_pdu(data: bytes) -> list[bytes]:
    return [encode(pdu) for pdu in _pdus(data)]


def _judged(reads: Sequence[bytes], **config: object) -> tuple[list[dict[str, object]], list[tuple[int, int]]]:
    smsc = _smsc(**config)
    conn = _bound(smsc)
    answers = _feed(smsc, conn, reads, T0 + 0.001)
    return conn.verdicts(), [(p.sequence_number, p.command_status) for p in answers]


def test_a_pipelined_burst_of_throttled_submits_is_judged_the_same_in_one_read_and_in_one_read_per_pdu() -> None:
    # Eight submits written back to back within the agreed window of 10: the first is accepted, seven are
    # throttled, and none is a submit the peer sent after it could have read a throttle. Before, the allowance
    # came from the most requests ever seen outstanding at once: 8 when the bytes came in one read, 1 when they
    # came one PDU a read -- and that peer failed throttle_backoff.
    stream = _submits(8)
    whole, whole_answers = _judged([stream])
    split, split_answers = _judged(_per_pdu(stream))
    assert whole_answers == split_answers
    assert [status for _, status in whole_answers] == [0] + [CommandStatus.ESME_RTHROTTLED] * 7
    assert whole == split
    assert next(c for c in split if c["check"] == "throttle_backoff")["verdict"] == "inconc"  # never judged yet


@settings(max_examples=60, deadline=None)
@given(count=st.integers(min_value=1, max_value=10), cuts=st.lists(st.integers(min_value=0), max_size=12))
def test_any_cut_of_a_stream_within_the_window_gets_the_same_verdicts(count: int, cuts: list[int]) -> None:
    stream = _submits(count)
    assert _judged(_cut(stream, cuts)) == _judged([stream])


def test_more_submits_after_a_throttle_than_the_window_explains_fail_however_they_were_read() -> None:
    # Eleven at one instant after the first: ten follow the throttled one, more than the 9 a window of 10 lets a
    # peer send before it reads the throttle. (The window check itself rightly differs: in one read, all twelve
    # were on the wire before any response was, so the peer had twelve outstanding.)
    stream = _submits(12)
    for reads in ([stream], _per_pdu(stream), _cut(stream, [100, 101, 500])):
        checks, _ = _judged(reads)
        backoff = next(c for c in checks if c["check"] == "throttle_backoff")
        assert backoff["verdict"] == "fail"
        assert "10 submit(s) within 0.0 ms of ESME_RTHROTTLED, more than the 9 a window of 10 lets a peer send " \
               "before it reads the throttle" in str(backoff["reason"])


def test_a_throttle_held_back_by_a_delay_is_timed_from_when_it_is_written() -> None:
    # delay_response: every submit's response goes out a second late. Twelve submits 10 ms after the throttle was
    # decided cannot have been sent after reading it -- it is not on the wire yet.
    smsc = _smsc(peer_window=20, faults=FaultPlan(delay_response=1.0, response_delay=1.0))
    conn = _bound(smsc)
    _feed(smsc, conn, [_submits(2)], T0)
    _feed(smsc, conn, [_submits(12, first=4)], T0 + 0.01)
    backoff = next(c for c in conn.verdicts() if c["check"] == "throttle_backoff")
    assert backoff["verdict"] == "inconc"


def _window(conn: SmscConnection) -> dict[str, object]:
    return next(c for c in conn.verdicts() if c["check"] == "window")


def test_the_window_reason_names_the_request_that_went_over_not_the_first_handled() -> None:
    # Eleven submits in one read with a window of 10: seq 2..11 fit, seq 12 went over. All eleven are owed before
    # the first is handled, so the count seen then is the last one's; before, the reason blamed seq 2.
    smsc = _smsc()
    conn = _bound(smsc)
    _feed(smsc, conn, [_submits(11)], T0)
    window = _window(conn)
    assert (window["verdict"], window["violations"], window["exercised"]) == ("fail", 1, 11)
    assert str(window["reason"]).endswith("first: 11 requests outstanding, window 10 (at submit_sm seq 12)")


def test_each_request_past_the_window_is_one_violation_however_slowly_it_is_answered() -> None:
    # Twelve in one read: seq 12 and 13 went over (11 and 12 outstanding). With every response held back a
    # second, each request handled still saw all twelve owed: before, all twelve were counted as violations.
    for faults in (FaultPlan(), FaultPlan(delay_response=1.0, response_delay=1.0)):
        smsc = _smsc(faults=faults)
        conn = _bound(smsc)
        _feed(smsc, conn, [_submits(12)], T0)
        window = _window(conn)
        assert (window["violations"], window["exercised"]) == (2, 12)
        assert str(window["reason"]).endswith("first: 11 requests outstanding, window 10 (at submit_sm seq 12)")


def test_requests_over_the_window_are_named_alike_in_one_read_and_in_one_read_per_pdu() -> None:
    # Held-back responses keep every request owed, so in one read per PDU too the eleventh goes over.
    reasons = []
    for reads in ([_submits(11)], _per_pdu(_submits(11))):
        smsc = _smsc(faults=FaultPlan(delay_response=1.0, response_delay=1.0))
        conn = _bound(smsc)
        _feed(smsc, conn, reads, T0)
        reasons.append(_window(conn)["reason"])
    assert reasons[0] == reasons[1] == "1 violation(s) in 11; first: 11 requests outstanding, window 10 " \
                                        "(at submit_sm seq 12)"


def test_a_response_the_session_writes_itself_can_overtake_earlier_answers_of_its_read() -> None:
    # docs/smsc.md: enquire_link_resp, a generic_nack, an error response to an undecodable PDU go out as their
    # request is read; the submit_sm_resp of the read's earlier requests once the whole read is handled. SMPP lets
    # responses come in any order. Only an untrustworthy command_length waits behind the earlier answers.
    def answers(tail: bytes) -> list[tuple[CommandId, int]]:
        smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"),)))
        return [(p.command_id, p.sequence_number) for p in _feed(smsc, _bound(smsc), [_submits(2) + tail], T0)]

    overtaken = [(C.submit_sm_resp, 2), (C.submit_sm_resp, 3)]
    assert answers(encode(Pdu.make(C.enquire_link, 9))) == [(C.enquire_link_resp, 9), *overtaken]
    assert answers(struct.pack(">IIII", 16, 0x77, 0, 9)) == [(C.generic_nack, 9), *overtaken]  # unknown command
    assert answers(struct.pack(">IIII", 18, 4, 0, 9) + b"\x01\x02") == [(C.submit_sm_resp, 9), *overtaken]
    assert answers(struct.pack(">IIII", 8, 4, 0, 9)) == [*overtaken, (C.generic_nack, 9)]  # command_length 8
