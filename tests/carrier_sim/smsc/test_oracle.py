"""The oracle's message-content checks, one verdict at a time: what passes, what fails, and the arithmetic of
one SMS (140 octets of user data, a UDH included; 7-bit text packed as septets)."""

from __future__ import annotations

from typing import Any

import pytest

from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.events import CloseReason
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.oracle import Oracle

CONCAT = b"\x05\x00\x03\x2a\x02\x01"  # UDHL 5, IEI 0 (8-bit concatenation), reference 42, part 1 of 2
PORTS = b"\x06\x05\x04\x0b\x84\x23\xf0"  # UDHL 6, IEI 5 (16-bit application ports): not concatenation
SPECIAL = b"\x04\x01\x02\x00\x00"  # UDHL 4, IEI 1 (special SMS indication): not concatenation
UDHI = 0x40


def verdicts(**fields: Any) -> dict[str, str]:
    """The content checks' verdicts after one submit_sm with these fields."""
    oracle = Oracle()
    oracle.request_received(Pdu.make(CommandId.submit_sm, 1, source_addr="1", destination_addr="2", **fields),
                            0.0, 1)
    return {r.name: r.verdict.value for r in oracle.results()
            if r.name in ("payload_exclusive", "udhi", "concatenation", "data_coding")}


def test_an_ordinary_message_passes_every_content_check() -> None:
    assert verdicts(short_message=b"Hello") == {
        "payload_exclusive": "pass", "udhi": "pass", "concatenation": "pass", "data_coding": "pass"}


def test_short_message_and_message_payload_together_fail_payload_exclusive() -> None:
    assert verdicts(short_message=b"Hi", tlvs={"message_payload": b"Hi"})["payload_exclusive"] == "fail"
    assert verdicts(tlvs={"message_payload": b"Hi"})["payload_exclusive"] == "pass"


@pytest.mark.parametrize(("short", "coding", "verdict"), [
    (b"\x00H\x00i", 8, "pass"), (b"\x00H\x00", 8, "fail"),  # UCS-2 is whole 16-bit units
    (b"caf\xe9", 3, "pass"), (b"\x80\x81", 0, "fail"),  # octets above 0x7F are no GSM septets
])
def test_data_coding_judges_the_octets_against_the_alphabet(short: bytes, coding: int, verdict: str) -> None:
    assert verdicts(short_message=short, data_coding=coding)["data_coding"] == verdict


@pytest.mark.parametrize(("short", "esm_class", "verdict"), [
    (CONCAT + b"part one", UDHI, "pass"),
    (CONCAT + b"part one", 0, "fail"),  # a concatenation UDH with UDHI forgotten
    (b"\x09\x00\x03", UDHI, "fail"),  # UDHI set, but the header claims more octets than there are
])
def test_udhi_must_match_the_payload(short: bytes, esm_class: int, verdict: str) -> None:
    assert verdicts(short_message=short, esm_class=esm_class)["udhi"] == verdict


@pytest.mark.parametrize(("short", "esm_class", "coding", "verdict"), [
    (b"a" * 160, 0, 0, "pass"), (b"a" * 161, 0, 0, "fail"),  # 160 septets without a UDH
    (b"a" * 140, 0, 4, "pass"), (b"a" * 141, 0, 4, "fail"),  # 140 octets of 8-bit data
    (b"\x00a" * 70, 0, 8, "pass"), (b"\x00a" * 71, 0, 8, "fail"),  # 70 UCS-2 characters
    # Behind a 7-octet port UDH: 160 - ceil(56 / 7) = 152 septets; 140 - 7 = 133 octets.
    (PORTS + b"a" * 152, UDHI, 0, "pass"), (PORTS + b"a" * 153, UDHI, 0, "fail"),
    (PORTS + b"a" * 133, UDHI, 4, "pass"), (PORTS + b"a" * 134, UDHI, 4, "fail"),
    # Behind a 5-octet UDH: 160 - ceil(40 / 7) = 154 septets, one fill bit.
    (SPECIAL + b"a" * 154, UDHI, 0, "pass"), (SPECIAL + b"a" * 155, UDHI, 0, "fail"),
])
def test_text_over_one_segment_needs_concatenation(short: bytes, esm_class: int, coding: int, verdict: str) -> None:
    assert verdicts(short_message=short, esm_class=esm_class, data_coding=coding)["concatenation"] == verdict


def test_a_hang_up_on_our_unbind_fails_unbind_once_and_requests_left_unanswered_fail_response_time() -> None:
    # smpp34 closes on an SMSC's unbind without unbind_resp: that is the unbind check's failure, not also a
    # response_time one; a deliver_sm left unanswered at the same moment is response_time's.
    oracle = Oracle()
    oracle.unbound(False, [Pdu.make(CommandId.unbind, 7)])
    by_name = oracle.results_by_name
    assert (by_name["unbind"].verdict.value, by_name["response_time"].verdict.value) == ("fail", "inconc")
    oracle = Oracle()
    oracle.unbound(False, [Pdu.make(CommandId.unbind, 7), Pdu.make(CommandId.deliver_sm, 6, source_addr="1",
                                                                    destination_addr="2")])
    result = oracle.results_by_name["response_time"]
    assert (result.verdict.value, result.violations) == ("fail", 1)
    assert "deliver_sm seq 6" in (result.first_violation or "")


@pytest.mark.parametrize(("coding", "octets"), [(0x0E, "안녕하세요".encode("euc-kr")),
                                                (0x05, "こんにちは".encode("shift_jis")),
                                                (0x0A, "こんにちは".encode("iso2022_jp"))])
def test_a_defined_coding_the_emulator_cannot_read_is_not_judged_a_violation(coding: int, octets: bytes) -> None:
    # SMPP 3.4 5.2.19 defines JIS, ISO-2022-JP, KS C 5601...: valid on the wire, only not decoded here.
    assert verdicts(data_coding=coding, short_message=octets)["data_coding"] != "fail"


def test_a_reserved_coding_is_still_a_violation() -> None:
    assert verdicts(data_coding=0x0B, short_message=b"hi")["data_coding"] == "fail"


@pytest.mark.parametrize(("coding", "length", "verdict"), [(0xF0, 160, "pass"), (0xF0, 161, "fail"),
                                                            (0xC0, 160, "pass"), (0xF4, 141, "fail")])
def test_gsm_7bit_named_by_a_high_group_coding_fits_160_septets(coding: int, length: int, verdict: str) -> None:
    # 0xF0: GSM 7-bit, class 0 (a "flash" SMS), TS 23.038 section 4; 0xF4 is 8-bit data: 140 octets.
    assert verdicts(data_coding=coding, short_message=b"a" * length)["concatenation"] == verdict


def test_a_16_bit_concatenation_header_without_udhi_fails_udhi() -> None:
    # 06 08 04: UDHL 6, IEI 8 (16-bit reference concatenation), length 4, reference 0x0001, 2 parts, part 1.
    assert verdicts(short_message=b"\x06\x08\x04\x00\x01\x02\x01hello")["udhi"] == "fail"


def test_a_surrogate_pair_split_across_segments_says_so() -> None:
    text = ("a" * 66).encode("utf-16-be") + "😀".encode("utf-16-be")[:2]  # 134 octets, the emoji cut in half
    oracle = Oracle()
    oracle.request_received(Pdu.make(CommandId.submit_sm, 1, source_addr="1", destination_addr="2",
                                     esm_class=UDHI, data_coding=8, short_message=CONCAT + text), 0.0, 1)
    result = oracle.results_by_name["data_coding"]
    assert result.verdict.value == "fail"
    assert "surrogate pair is split across segments" in (result.first_violation or "")


CONCAT_16 = b"\x06\x08\x04\x01\x2a\x02\x01"  # UDHL 6, IEI 8 (16-bit reference 0x012a), part 1 of 2: 7 octets
SAR = {"sar_msg_ref_num": 7, "sar_total_segments": 2, "sar_segment_seqnum": 1}


@pytest.mark.parametrize(("fields", "verdict"), [
    # A concatenated message's part is one SMS: 160 septets less its UDH's 7 septets (6 octets and a fill bit).
    ({"short_message": CONCAT + b"a" * 153, "esm_class": UDHI}, "pass"),
    ({"short_message": CONCAT + b"a" * 154, "esm_class": UDHI}, "fail"),
    ({"short_message": CONCAT + b"a" * 160, "esm_class": UDHI}, "fail"),
    # 16-bit reference: 7 octets, 8 septets off.
    ({"short_message": CONCAT_16 + b"a" * 152, "esm_class": UDHI}, "pass"),
    ({"short_message": CONCAT_16 + b"a" * 153, "esm_class": UDHI}, "fail"),
    # UCS-2: 140 - 6 = 134 octets, 67 characters.
    ({"short_message": CONCAT + b"\x00a" * 67, "esm_class": UDHI, "data_coding": 8}, "pass"),
    ({"short_message": CONCAT + b"\x00a" * 70, "esm_class": UDHI, "data_coding": 8}, "fail"),
    # 8-bit data behind a concatenation and a port IE (12 octets): 128 octets.
    ({"short_message": b"\x0b\x00\x03\x01\x02\x01\x05\x04\x0b\x84\x23\xf0" + b"a" * 128, "esm_class": UDHI,
      "data_coding": 4}, "pass"),
    ({"short_message": b"\x0b\x00\x03\x01\x02\x01\x05\x04\x0b\x84\x23\xf0" + b"a" * 129, "esm_class": UDHI,
      "data_coding": 4}, "fail"),
    # A part tied by SAR TLVs carries no UDH: one SMS, as carrier_sim.smpp.segmentation fills it.
    ({"short_message": b"a" * 160, "tlvs": SAR}, "pass"),
    ({"short_message": b"a" * 161, "tlvs": SAR}, "fail"),
    ({"short_message": b"a" * 200, "tlvs": SAR}, "fail"),
    ({"short_message": b"\x00a" * 70, "data_coding": 8, "tlvs": SAR}, "pass"),
    ({"short_message": b"\x00a" * 71, "data_coding": 8, "tlvs": SAR}, "fail"),
    # message_payload alone is exempt: the SMSC splits it.
    ({"tlvs": {"message_payload": b"a" * 300}}, "pass"),
    ({"tlvs": {"message_payload": CONCAT + b"a" * 300}, "esm_class": UDHI}, "pass"),
])
def test_each_segment_of_a_concatenated_message_fits_one_sms_beside_its_udh(fields: dict[str, Any],
                                                                             verdict: str) -> None:
    assert verdicts(**fields)["concatenation"] == verdict


def _first(check: str, **fields: Any) -> str:
    oracle = Oracle()
    oracle.request_received(Pdu.make(CommandId.submit_sm, 1, source_addr="1", destination_addr="2", **fields),
                            0.0, 1)
    return oracle.results_by_name[check].first_violation or ""


def test_an_oversized_segment_says_which_limit_and_by_how_much() -> None:
    assert _first("concatenation", short_message=CONCAT + b"a" * 160, esm_class=UDHI) == (
        "160 septets in a concatenated message's segment: 7 over the limit of 153 septets "
        "(160 less a 6-octet UDH)")
    assert _first("concatenation", short_message=CONCAT + b"\x00a" * 70, esm_class=UDHI, data_coding=8) == (
        "140 octets in a concatenated message's segment: 6 over the limit of 134 octets "
        "(140 less a 6-octet UDH: 67 UCS-2 characters)")
    assert _first("concatenation", short_message=b"a" * 200, tlvs=SAR) == (
        "200 septets in a concatenated message's segment: 40 over the limit of 160 septets (one SMS)")
    assert _first("concatenation", short_message=b"a" * 161) == (
        "161 septets in one segment without concatenation: 1 over the limit of 160 septets (one SMS)")


@pytest.mark.parametrize(("fields", "reason"), [
    # TS 23.040 9.2.3.24.1: 0 parts, part 0, or a part past the total -- the receiver ignores the IE.
    ({"short_message": b"\x05\x00\x03\x01\x00\x00hi", "esm_class": UDHI}, "numbers this part 0 of 0"),
    ({"short_message": b"\x05\x00\x03\x01\x02\x00hi", "esm_class": UDHI}, "numbers this part 0 of 2"),
    ({"short_message": b"\x05\x00\x03\x01\x02\x03hi", "esm_class": UDHI}, "numbers this part 3 of 2"),
    ({"short_message": b"\x06\x08\x04\x01\x2a\x02\x03hi", "esm_class": UDHI}, "numbers this part 3 of 2"),
    # Of two concatenation IEs the last counts (9.2.3.24).
    ({"short_message": b"\x0a\x00\x03\x01\x02\x01\x00\x03\x01\x02\x05hi", "esm_class": UDHI},
     "numbers this part 5 of 2"),
    # The same for SAR TLVs (SMPP 3.4 5.3.2.22-24), and a reference without the other two.
    ({"short_message": b"hi", "tlvs": {"sar_msg_ref_num": 7, "sar_total_segments": 2, "sar_segment_seqnum": 3}},
     "number this part 3 of 2"),
    ({"short_message": b"hi", "tlvs": {"sar_msg_ref_num": 7, "sar_total_segments": 0, "sar_segment_seqnum": 0}},
     "number this part 0 of 0"),
    ({"short_message": b"hi", "tlvs": {"sar_msg_ref_num": 7}}, "without both sar_total_segments"),
])
def test_a_concatenation_the_receiver_must_ignore_fails_concatenation(fields: dict[str, Any], reason: str) -> None:
    assert verdicts(**fields) == {"payload_exclusive": "pass", "udhi": "pass", "concatenation": "fail",
                                  "data_coding": "pass"}
    assert reason in _first("concatenation", **fields)


def test_a_valid_last_concatenation_ie_is_used_whatever_came_before_it() -> None:
    short = b"\x0a\x00\x03\x01\x02\x05\x00\x03\x01\x02\x01hi"  # part 5 of 2, then part 1 of 2: the last counts
    assert verdicts(short_message=short, esm_class=UDHI)["concatenation"] == "pass"


DELIVER = Pdu.make(CommandId.deliver_sm, 6, source_addr="1", destination_addr="2")


def _unbind_and_response_time(oracle: Oracle) -> tuple[str, str, str]:
    by_name = oracle.results_by_name
    return by_name["unbind"].verdict.value, by_name["unbind"].reason, by_name["response_time"].verdict.value


def test_a_session_the_smsc_closes_at_shutdown_before_the_response_timeout_is_not_judged() -> None:
    # The SMSC's unbind and a deliver_sm left unanswered when the 2 s shutdown grace ran out: the peer had up to
    # 30 s to answer each. Before: "connection dropped without unbind", and response_time failed.
    oracle = Oracle(response_timeout=30.0)
    oracle.unbound(False, [Pdu.make(CommandId.unbind, 7), DELIVER], shutdown_grace=2.0)
    assert _unbind_and_response_time(oracle) == (
        "inconc", "not judged: our unbind not answered within the 2 s shutdown grace, shorter than response_timeout "
                  "(30 s), when the SMSC closed the connection", "inconc")
    # The peer had unbound itself, and the SMSC was still waiting for its deliver_sm_resp.
    oracle = Oracle(response_timeout=30.0)
    oracle.unbound(True, [DELIVER], shutdown_grace=2.0)
    assert _unbind_and_response_time(oracle) == (
        "inconc", "not judged: 1 of our requests not answered within the 2 s shutdown grace, shorter than "
                  "response_timeout (30 s), when the SMSC closed the connection", "inconc")


def test_a_shutdown_grace_no_shorter_than_the_response_timeout_fails_what_was_left_unanswered() -> None:
    oracle = Oracle(response_timeout=2.0)
    oracle.unbound(False, [Pdu.make(CommandId.unbind, 7), DELIVER], shutdown_grace=2.0)
    assert _unbind_and_response_time(oracle) == (
        "fail", "1 violation(s) in 1; first: our unbind not answered within the 2 s shutdown grace (response_timeout "
                "2 s); the SMSC closed the connection", "fail")


def test_the_unbind_reason_says_who_closed_the_connection_and_why() -> None:
    oracle = Oracle(response_timeout=30.0)
    oracle.unbound(False, [], closed=CloseReason.RESPONSE_TIMEOUT)
    assert oracle.results_by_name["unbind"].first_violation == (
        "our unbind not answered within response_timeout (30 s); the SMSC closed the connection")
    oracle = Oracle()
    oracle.unbound(False, [], closed=CloseReason.FRAMING_ERROR)
    assert "the SMSC closed the connection on a command_length it could not trust" in (
        oracle.results_by_name["unbind"].first_violation or "")
    oracle = Oracle()
    oracle.unbound(False, [], closed=CloseReason.CONNECTION_LOST)
    assert oracle.results_by_name["unbind"].first_violation == "connection dropped without unbind"
