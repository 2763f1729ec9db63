"""REG-REQ / REG-RESP: nothing that arrives makes the parser raise; valid messages round trip; each refusal."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_core.proofs import PROOF_HEX_LENGTH, ProofSigner
from identity_core.refusals import Refusal, RefusalReason
from identity_core.reg_protocol import (
    MAX_MESSAGE_LENGTH,
    MAX_REG_REQ_LENGTH,
    MAX_REG_RESP_LENGTH,
    RegRequest,
    RegResponse,
    format_reg_req,
    format_reg_resp,
    parse_reg_req,
    parse_reg_resp,
)

TOKEN = "0123456789abcdef" * 4
MAX_ID = 2**63 - 1

tokens = st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64)
request_ids = st.integers(1, MAX_ID)
e164s = st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True)
# Characters the grammar uses, plus near misses, so that generated text gets past the first checks.
GRAMMAR_ALPHABET = "REGSPQ-?v=;tnrs0123456789abcdefABCDEFxX+ \t\r\n_\u0663\u00e9\x00"


def assert_parsed_or_refused(result: object) -> None:
    assert isinstance(result, RegRequest | Refusal)
    if isinstance(result, Refusal):
        assert result.reason in {RefusalReason.MALFORMED, RefusalReason.UNKNOWN_VERSION}
    else:
        # Whatever was accepted is canonical: lower-case 64 hex digits, an id in range.
        assert len(result.push_token) == 64
        assert result.push_token == result.push_token.lower()
        assert 1 <= result.request_id <= MAX_ID
        assert result.version == 3


# ----------------------------------------------------------------------------------------------- never raises


@settings(max_examples=3000)
@given(st.binary(max_size=400))
def test_any_octets_give_a_request_or_a_refusal(data: bytes) -> None:
    assert_parsed_or_refused(parse_reg_req(data))
    assert isinstance(parse_reg_resp(data), RegResponse | Refusal)


@settings(max_examples=3000)
@given(st.text(max_size=400))
def test_any_text_gives_a_request_or_a_refusal(text: str) -> None:
    assert_parsed_or_refused(parse_reg_req(text))
    assert isinstance(parse_reg_resp(text), RegResponse | Refusal)


@settings(max_examples=3000)
@given(st.text(alphabet=GRAMMAR_ALPHABET, max_size=170).map(lambda tail: "REG-REQ?v=3;" + tail))
def test_text_after_a_valid_start_gives_a_request_or_a_refusal(text: str) -> None:
    assert_parsed_or_refused(parse_reg_req(text))


@settings(max_examples=2000)
@given(tokens, request_ids, st.data())
def test_mutated_valid_messages_give_a_request_or_a_refusal(token: str, request_id: int, data: st.DataObject) -> None:
    text = format_reg_req(token, request_id)
    index = data.draw(st.integers(0, len(text)))
    replacement = data.draw(st.text(alphabet=GRAMMAR_ALPHABET, max_size=3))
    cut = data.draw(st.integers(0, 3))
    mutated = text[:index] + replacement + text[index + cut :]
    result = parse_reg_req(mutated)
    assert_parsed_or_refused(result)
    if isinstance(result, RegRequest):
        # Anything still accepted re-encodes to a message that parses to the same request.
        assert parse_reg_req(format_reg_req(result.push_token, result.request_id)) == result


@pytest.mark.parametrize("value", [None, 3, 3.0, ["REG-REQ?"], object()])
def test_values_of_the_wrong_type_are_refused_not_raised(value: object) -> None:
    result = parse_reg_req(value)  # type: ignore[arg-type]
    assert isinstance(result, Refusal)
    assert result.reason is RefusalReason.MALFORMED


def test_octet_like_inputs_are_accepted() -> None:
    text = format_reg_req(TOKEN, 7).encode()
    expected = RegRequest(3, TOKEN, 7)
    assert parse_reg_req(text) == expected
    assert parse_reg_req(bytearray(text)) == expected
    assert parse_reg_req(memoryview(text)) == expected


# ------------------------------------------------------------------------------------------------- round trips


@given(tokens, request_ids)
def test_reg_req_round_trips_with_the_token_lower_cased(token: str, request_id: int) -> None:
    text = format_reg_req(token, request_id)
    assert len(text) <= MAX_REG_REQ_LENGTH
    assert parse_reg_req(text) == RegRequest(version=3, push_token=token.lower(), request_id=request_id)
    assert parse_reg_req(text.encode("ascii")) == parse_reg_req(text)


@given(tokens, request_ids, st.booleans(), st.booleans(), st.sampled_from(["", " ", "\r\n", "\t ", "\r"]))
def test_reg_req_variants_the_grammar_allows(
    token: str, request_id: int, swap: bool, trailing: bool, space: str
) -> None:
    fields = [f"t={token}", f"r={request_id}"]
    if swap:
        fields.reverse()
    text = space + "REG-REQ?v=3;" + ";".join(fields) + (";" if trailing else "") + space
    assert parse_reg_req(text) == RegRequest(3, token.lower(), request_id)


def test_reg_req_example_from_the_issue() -> None:
    token = "A" * 32 + "b" * 32
    assert parse_reg_req(f"REG-REQ?v=3;t={token};r=42;") == RegRequest(3, "a" * 32 + "b" * 32, 42)
    assert parse_reg_req(f"REG-REQ?v=3;t={token};r=42") == RegRequest(3, "a" * 32 + "b" * 32, 42)


def test_request_id_bounds() -> None:
    assert parse_reg_req(f"REG-REQ?v=3;t={TOKEN};r=1") == RegRequest(3, TOKEN, 1)
    assert parse_reg_req(f"REG-REQ?v=3;t={TOKEN};r={MAX_ID}") == RegRequest(3, TOKEN, MAX_ID)
    for bad in ("0", str(MAX_ID + 1), "99999999999999999999"):
        assert isinstance(parse_reg_req(f"REG-REQ?v=3;t={TOKEN};r={bad}"), Refusal)


@given(request_ids, e164s, st.text(alphabet="0123456789abcdefABCDEF", min_size=1, max_size=50).map(lambda s: s * 2))
def test_reg_resp_round_trips(request_id: int, e164: str, proof_hex: str) -> None:
    text = format_reg_resp(request_id, e164, proof_hex)
    assert parse_reg_resp(text) == RegResponse(3, request_id, e164, proof_hex.lower())


def test_reg_resp_fields_may_come_in_any_order() -> None:
    text = "REG-RESP?v=3;s=ABCD;n=+447700900123;r=9;\r\n"
    assert parse_reg_resp(text) == RegResponse(3, 9, "+447700900123", "abcd")


# ---------------------------------------------------------------------------------------------- REG-RESP size

GSM7_BASIC_SAFE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+-=?;")


def test_worst_case_reg_resp_fits_one_gsm7_sms() -> None:
    signer = ProofSigner(b"k" * 32, ttl=600)
    number = "+" + "9" * 15  # the longest E.164 number
    proof = signer.issue(number, TOKEN, MAX_ID, now=4_000_000_000.0)
    assert len(proof.hex) == PROOF_HEX_LENGTH == 60
    text = format_reg_resp(MAX_ID, number, proof.hex)
    assert len(text) == MAX_REG_RESP_LENGTH == 116
    assert len(text) <= MAX_MESSAGE_LENGTH == 160
    # Every character is in the GSM 03.38 default alphabet and none needs the escape table (which costs two).
    assert set(text) <= GSM7_BASIC_SAFE


def test_longest_reg_req_is_counted_right() -> None:
    assert len(format_reg_req(TOKEN, MAX_ID)) == MAX_REG_REQ_LENGTH == 101


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        ((0, "+447700900123", "ab"), "request_id"),
        ((MAX_ID + 1, "+447700900123", "ab"), "request_id"),
        ((True, "+447700900123", "ab"), "request_id"),
        ((1, "447700900123", "ab"), "E.164"),
        ((1, "+0447700900123", "ab"), "E.164"),
        ((1, "+1234567890123456", "ab"), "E.164"),
        ((1, "+447700900123", "abc"), "hex"),
        ((1, "+447700900123", "zz"), "hex"),
        ((1, "+447700900123", "ab" * 70), "one SMS"),
    ],
)
def test_format_reg_resp_rejects_values_that_cannot_be_ours(args: tuple[int, str, str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        format_reg_resp(*args)


def test_format_reg_req_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="64 hex"):
        format_reg_req("ab", 1)
    with pytest.raises(ValueError, match="request_id"):
        format_reg_req(TOKEN, 0)


# ----------------------------------------------------------------------------------------- examples of refusal

T = TOKEN
REFUSALS = [
    # (message, reason, a word the detail must contain)
    ("", RefusalReason.MALFORMED, "start"),
    ("hello", RefusalReason.MALFORMED, "start"),
    (f"reg-req?v=3;t={T};r=1", RefusalReason.MALFORMED, "start"),
    (f"REG-REQ v=3;t={T};r=1", RefusalReason.MALFORMED, "start"),
    (f"REG-REQ?V=3;t={T};r=1", RefusalReason.MALFORMED, "first field"),
    (f"REG-REQ?t={T};v=3;r=1", RefusalReason.MALFORMED, "first field"),
    (f"REG-REQ?v3;t={T};r=1", RefusalReason.MALFORMED, "first field"),
    (f"REG-REQ?v=03;t={T};r=1", RefusalReason.MALFORMED, "v must"),
    (f"REG-REQ?v=+3;t={T};r=1", RefusalReason.MALFORMED, "v must"),
    (f"REG-REQ?v=\u0663;t={T};r=1", RefusalReason.MALFORMED, "ASCII"),
    (f"REG-REQ?v=;t={T};r=1", RefusalReason.MALFORMED, "v must"),
    (f"REG-REQ?v=2;t={T};r=1", RefusalReason.UNKNOWN_VERSION, "version 2"),
    (f"REG-REQ?v=4;t={T};r=1", RefusalReason.UNKNOWN_VERSION, "version 4"),
    ("REG-REQ?v=4;anything;goes;here", RefusalReason.UNKNOWN_VERSION, "version 4"),
    ("REG-REQ?v=0", RefusalReason.UNKNOWN_VERSION, "version 0"),
    (f"REG-REQ?v=3;t={T}", RefusalReason.MALFORMED, "missing"),
    ("REG-REQ?v=3;r=1", RefusalReason.MALFORMED, "missing"),
    ("REG-REQ?v=3", RefusalReason.MALFORMED, "missing"),
    ("REG-REQ?v=3;", RefusalReason.MALFORMED, "missing"),
    (f"REG-REQ?v=3;t={T};r=1;r=2", RefusalReason.MALFORMED, "repeated"),
    (f"REG-REQ?v=3;t={T};t={T};r=1", RefusalReason.MALFORMED, "repeated"),
    (f"REG-REQ?v=3;v=3;t={T};r=1", RefusalReason.MALFORMED, "repeated"),
    (f"REG-REQ?v=3;t={T};r=1;x=1", RefusalReason.MALFORMED, "unknown key"),
    (f"REG-REQ?v=3;T={T};r=1", RefusalReason.MALFORMED, "unknown key"),
    (f"REG-REQ?v=3;t={T};;r=1", RefusalReason.MALFORMED, "empty"),
    (f"REG-REQ?v=3;t={T};r=1;;", RefusalReason.MALFORMED, "empty"),
    (f"REG-REQ?v=3;t={T};r", RefusalReason.MALFORMED, "key=value"),
    (f"REG-REQ?v=3;t={T[:-1]};r=1", RefusalReason.MALFORMED, "64 hex"),
    (f"REG-REQ?v=3;t={T}0;r=1", RefusalReason.MALFORMED, "64 hex"),
    (f"REG-REQ?v=3;t={T[:-1]}g;r=1", RefusalReason.MALFORMED, "64 hex"),
    (f"REG-REQ?v=3;t= {T[1:]};r=1", RefusalReason.MALFORMED, "64 hex"),
    (f"REG-REQ?v=3;t={T};r=0", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r=01", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r=+1", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r=-1", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r=1_0", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r= 1", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r=0x10", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r=9223372036854775808", RefusalReason.MALFORMED, "r must"),
    (f"REG-REQ?v=3;t={T};r=\u0661", RefusalReason.MALFORMED, "ASCII"),
    (f"REG-REQ?v=3; t={T};r=1", RefusalReason.MALFORMED, "unknown key"),
    (f"REG-REQ?v=3;t={T};r=1\n;", RefusalReason.MALFORMED, "r must"),
    ("REG-REQ?v=3;t=" + T + ";r=1" + " " * 200, RefusalReason.MALFORMED, "longer"),
]


@pytest.mark.parametrize(("message", "reason", "word"), REFUSALS)
def test_each_refusal(message: str, reason: RefusalReason, word: str) -> None:
    result = parse_reg_req(message)
    assert isinstance(result, Refusal), result
    assert result.reason is reason
    assert word in result.detail


@pytest.mark.parametrize(
    ("data", "word"),
    [
        (f"REG-REQ?v=3;t={T};r=1".encode() + b"\xff", "non-ASCII octet at offset 82"),
        ("REG-REQ?v=3;t=é".encode(), "non-ASCII"),
        (b"\x00" * 161, "longer than 160 octets"),
        (b"REG-REQ?v=3;t=" + b"a" * 10_000_000, "longer than 160 octets"),
    ],
)
def test_octet_refusals(data: bytes, word: str) -> None:
    result = parse_reg_req(data)
    assert isinstance(result, Refusal)
    assert result.reason is RefusalReason.MALFORMED
    assert word in result.detail


@pytest.mark.parametrize(
    "text",
    [
        "REG-RESP?v=3;r=1;n=447700900123;s=ab",
        "REG-RESP?v=3;r=1;n=+447700900123;s=abc",
        "REG-RESP?v=3;r=1;n=+447700900123;s=",
        "REG-RESP?v=3;r=1;n=+447700900123",
        "REG-RESP?v=3;r=0;n=+447700900123;s=ab",
        "REG-RESP?v=3;r=1;n=+447700900123;s=ab;t=1",
        "REG-RESP?v=3;r=1;r=1;n=+447700900123;s=ab",
        "REG-REQ?v=3;r=1;n=+447700900123;s=ab",
    ],
)
def test_reg_resp_refusals(text: str) -> None:
    result = parse_reg_resp(text)
    assert isinstance(result, Refusal)
    assert result.reason is RefusalReason.MALFORMED


@settings(max_examples=1000)
@given(st.text(alphabet=GRAMMAR_ALPHABET, max_size=60).map(lambda tail: "REG-RESP?v=3;" + tail))
def test_reg_resp_near_misses_are_malformed_or_stable(text: str) -> None:
    result = parse_reg_resp(text)
    if isinstance(result, Refusal):
        assert result.reason is RefusalReason.MALFORMED
    else:
        assert parse_reg_resp(format_reg_resp(result.request_id, result.e164, result.proof_hex)) == result


def test_reg_resp_unknown_version() -> None:
    result = parse_reg_resp("REG-RESP?v=4;r=1;n=+447700900123;s=ab")
    assert isinstance(result, Refusal)
    assert result.reason is RefusalReason.UNKNOWN_VERSION
