"""The oracle's tally of ordinary events against the long way, check by check, on arbitrary messages."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.oracle import Oracle

_TLVS = st.lists(
    st.sampled_from([
        ("message_payload", b"hello"),
        ("sar_msg_ref_num", 7),
        ("sar_total_segments", 2),
        ("sar_segment_seqnum", 1),
        ("sar_segment_seqnum", 3),  # past the total: a tie the receiver ignores
        ("user_message_reference", 0x1234),
        ("callback_num", b"\x01\x01447700900000"),
    ]),
    max_size=3,
)
_SHORT = st.one_of(
    st.binary(max_size=200),
    st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)),
    st.binary(max_size=180).map(lambda b: b"\x05\x00\x03\x01\x02\x01" + b),
    # Concatenated parts around the segment limits (153/152 septets, 134/133 octets), 8- and 16-bit references.
    st.tuples(st.sampled_from([b"\x05\x00\x03\x01\x02\x01", b"\x06\x08\x04\x00\x01\x02\x01",
                               b"\x05\x00\x03\x01\x00\x00", b"\x05\x00\x03\x01\x02\x03"]),
              st.integers(min_value=125, max_value=165)).map(lambda h: h[0] + b"a" * h[1]),
)


def _verdicts(oracle: Oracle) -> list[dict[str, object]]:
    return [r.to_json() | {"first": r.first_violation} for r in oracle.results()]


@settings(max_examples=400)
@given(
    short=_SHORT,
    esm_class=st.sampled_from([0, 0x40, 0x03, 0x43]),
    data_coding=st.sampled_from([0, 1, 2, 3, 4, 8, 0xF0, 0xF4, 0x11]),
    tlvs=_TLVS,
    command=st.sampled_from([CommandId.submit_sm, CommandId.data_sm]),
)
def test_tally_matches_each_check(short: bytes, esm_class: int, data_coding: int,
                                  tlvs: list[tuple[str, object]], command: CommandId) -> None:
    fields: dict[str, object] = {"esm_class": esm_class, "data_coding": data_coding}
    if command is CommandId.submit_sm:
        fields["short_message"] = short
    pdu = Pdu.make(command, 3, tlvs=tuple(tlvs), **fields)  # type: ignore[arg-type]
    fast, slow = Oracle(), Oracle()
    fast._judge_message(pdu)
    slow._judge_message_each(pdu)
    assert _verdicts(fast) == _verdicts(slow)


@given(
    answer=st.sampled_from([CommandId.deliver_sm_resp, CommandId.generic_nack, CommandId.data_sm_resp,
                            CommandId.enquire_link_resp]),
    status=st.sampled_from([CommandStatus.ESME_ROK, CommandStatus.ESME_RINVCMDID, CommandStatus.ESME_RSYSERR]),
    request=st.sampled_from([CommandId.deliver_sm, CommandId.enquire_link, CommandId.data_sm]),
    round_trip=st.floats(min_value=0, max_value=60),
    outstanding=st.integers(min_value=0, max_value=20),
)
def test_responses_and_requests_fold_into_the_same_verdicts(answer: CommandId, status: CommandStatus,
                                                            request: CommandId, round_trip: float,
                                                            outstanding: int) -> None:
    oracle = Oracle(window=10, response_timeout=30.0)
    oracle.response_matched(Pdu.make(request, 5), Pdu.make(answer, 5, status), round_trip)
    oracle.request_received(Pdu.make(CommandId.query_sm, 6), 1.0, outstanding)
    results = {r.name: r for r in oracle.results()}
    nack = answer is CommandId.generic_nack
    # A generic_nack answers no well-formed request of ours; one with status 0 is itself malformed.
    assert results["response_echo"].violations == (0 if answer is request.response else 1)
    assert results["response_echo"].exercised == 1
    assert results["response_time"].violations == (1 if round_trip > 30.0 else 0)
    assert results["response_time"].exercised == 1
    assert results["enquire_link"].exercised == (1 if request is CommandId.enquire_link else 0)
    # An enquire_link_resp carries ESME_ROK (SMPP 3.4 4.11.2): any other status fails the check, as a nack does.
    assert results["enquire_link"].violations == (
        1 if request is CommandId.enquire_link and (nack or status != CommandStatus.ESME_ROK) else 0)
    assert oracle.enquire_links_answered == (1 if request is CommandId.enquire_link else 0)
    assert results["wellformed"].violations == (1 if nack and status == CommandStatus.ESME_ROK else 0)
    assert results["wellformed"].exercised == (2 if nack and status == CommandStatus.ESME_ROK else 1)
    for name in ("state", "window"):
        assert results[name].exercised == 1
    assert results["window"].violations == (1 if outstanding > 10 else 0)
    # Reading twice folds nothing twice.
    assert [r.exercised for r in oracle.results()] == [r.exercised for r in results.values()]


def test_a_flood_over_the_window_is_judged_without_walking_the_owed_list_per_request() -> None:
    # A peer that floods without waiting for answers: every request past the window fails it, with how many were
    # outstanding. The owed list was walked again for each of them (quadratic: 0.5 ms a request at 8,000 in one
    # read, which held up a SIGTERM by seconds); the requests of one read are found over the window together.
    smsc = Smsc(SmscConfig(accounts=(Account("e", "pw"),), window=10, peer_window=10))
    conn = smsc.connect("p", 1e9)
    conn.receive_data(encode(Pdu.make(CommandId.bind_transceiver, 1, system_id="e", password="pw",
                                      interface_version=0x34)), 1e9)
    walks = 0
    owed = conn.oracle.owed
    assert owed is not None

    def counted() -> Sequence[tuple[int, CommandId]]:
        nonlocal walks
        walks += 1
        return owed()

    conn.oracle.owed = counted
    conn.receive_data(b"".join(encode(Pdu.make(CommandId.submit_sm, seq, destination_addr="447700900001",
                                               short_message=b"hi")) for seq in range(2, 1002)), 1e9)
    window = conn.oracle.results_by_name["window"]
    assert (window.violations, window.exercised) == (990, 1000)
    assert window.first_violation == "11 requests outstanding, window 10 (at submit_sm seq 12)"
    assert walks <= 11
