"""Tests for carrier_sim.smpp.receipt: dialect round trips, tolerant parsing, ids, TLVs and the request bits."""

from __future__ import annotations

from datetime import datetime

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import (
    InvalidOptionalParameterValue,
    InvalidParameterLength,
    LocalProtocolError,
    PeerProtocolError,
)
from carrier_sim.smpp.receipt import (
    DECIMAL_12,
    ESM_CLASS_CONVERSATION_ABORT,
    ESM_CLASS_INTERMEDIATE_NOTIFICATION,
    ESM_CLASS_SME_DELIVERY_ACK,
    ESM_CLASS_SME_MANUAL_ACK,
    ESM_CLASS_SMSC_DELIVERY_RECEIPT,
    KANNEL_LIKE,
    MIXED_ID_BASES,
    PRESETS,
    REGISTERED_DELIVERY_INTERMEDIATE,
    SPEC_V34,
    TERSE,
    IdBase,
    IdFormat,
    InvalidReceipt,
    MessageState,
    NetworkErrorCode,
    NetworkType,
    Receipt,
    ReceiptDialect,
    ReceiptField,
    format_receipt,
    ids_match,
    is_receipt,
    parse_receipt,
    receipt_tlv_values,
    receipt_wanted,
)

# ------------------------------------------------------------------------------------------------------------
# Strategies

dialects = st.sampled_from(PRESETS)
# Appendix B dates are YYMMDDhhmm[ss] read back as 20YY, naive (SMSC local time).
dates = st.none() | st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23, 59, 59))
counts = st.none() | st.integers(min_value=0, max_value=999)
# Ids a receipt can carry: printable ASCII without blanks or ':'.
free_ids = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=":"),
                   min_size=1, max_size=20)


@st.composite
def receipts(draw: st.DrawFn, dialect: ReceiptDialect) -> Receipt:
    number_id = dialect.submit_id.render(draw(st.integers(min_value=0, max_value=2**40)))
    return Receipt(
        message_id=draw(st.just(number_id) | free_ids),
        submitted=draw(counts),
        delivered=draw(counts),
        submit_date=draw(dates),
        done_date=draw(dates),
        stat=draw(st.sampled_from(MessageState)),
        err=draw(st.from_regex(r"[0-9]{0,4}", fullmatch=True)),
        text=draw(st.none() | st.text(max_size=40)),
    )


def _truncate(value: datetime | None, dialect: ReceiptDialect) -> datetime | None:
    if value is None:
        return None
    return value.replace(second=value.second if dialect.date_digits == 12 else 0, microsecond=0)


# ------------------------------------------------------------------------------------------------------------
# Round trips


@given(st.data())
def test_parse_format_recovers_what_the_dialect_carries(data: st.DataObject) -> None:
    dialect = data.draw(dialects)
    receipt = data.draw(receipts(dialect))
    text = format_receipt(receipt, dialect)
    assert text.isascii()
    assert text.isprintable()
    parsed = parse_receipt(text)

    assert parsed.message_id == dialect.id_in_receipt(receipt.message_id)
    assert ids_match(parsed.message_id, receipt.message_id)
    assert parsed.submitted == (receipt.submitted if dialect.counts else None)
    assert parsed.delivered == (receipt.delivered if dialect.counts else None)
    assert parsed.submit_date == _truncate(receipt.submit_date, dialect)
    assert parsed.done_date == _truncate(receipt.done_date, dialect)
    assert parsed.stat is receipt.stat
    assert parsed.err == receipt.err.rjust(dialect.err_width, "0")
    if dialect.include_text and receipt.text is not None:
        assert parsed.text is not None
        assert len(parsed.text) <= dialect.text_length
        excerpt = receipt.text[: dialect.text_length]
        assert parsed.text == "".join(c if " " <= c <= "~" else "?" for c in excerpt).strip()
    else:
        assert parsed.text is None


@given(dialects, st.integers(min_value=0, max_value=2**64))
def test_dialect_ids_match_their_submit_resp_ids(dialect: ReceiptDialect, number: int) -> None:
    issued = dialect.submit_id.render(number)
    assert ids_match(dialect.id_in_receipt(issued), issued)
    assert dialect.submit_id.read(issued) == number


@given(dialects, st.data())
def test_fields_follow_the_dialect_order(dialect: ReceiptDialect, data: st.DataObject) -> None:
    text = format_receipt(data.draw(receipts(dialect)), dialect)
    head = text.split(f" {dialect.text_label}:")[0]
    positions = [head.find(f"{key}:") for key in dialect.order]
    present = [p for p in positions if p >= 0]
    assert present == sorted(present)
    assert positions[dialect.order.index(ReceiptField.ID)] == 0


# ------------------------------------------------------------------------------------------------------------
# Robustness: anything in, a Receipt or InvalidReceipt out

_FRAGMENTS = [
    "id:", "ID:", "sub:", "dlvrd:", "submit date:", "done\ndate:", "submit_date:", "stat:", "Stat :", "err:",
    "text:", "Text:", " ", "  ", "\t", ":", "001", "0", "1601010100", "160101010059", "1613011200", "9999999999",
    "DELIVRD", "undeliv", "DELIVERED", "BOGUS", "0x1F", "abc", "é", "\x00", "²", "٣", "1_0", "+5", "ſtat:",
    "9" * 5000,
]


@given(st.text() | st.lists(st.sampled_from(_FRAGMENTS), max_size=30).map("".join))
@example("id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E Text: .")
@example("id:1 sub:" + "9" * 5000 + " stat:DELIVRD")
def test_parse_never_raises_anything_but_invalid_receipt(text: str) -> None:
    outcome: Receipt | InvalidReceipt
    try:
        outcome = parse_receipt(text)
    except InvalidReceipt as exc:
        outcome = exc
    if isinstance(outcome, InvalidReceipt):
        assert outcome.command_status is CommandStatus.ESME_RX_P_APPN
    else:
        assert outcome.message_id


def test_invalid_receipt_is_a_peer_protocol_error() -> None:
    assert issubclass(InvalidReceipt, PeerProtocolError)


# ------------------------------------------------------------------------------------------------------------
# Real-world-looking receipts, one per variant


def test_spec_dialect_text_verbatim() -> None:
    text = ("id:00000A3F1C sub:001 dlvrd:001 submit date:2405171405 done date:2405171406 stat:DELIVRD "
            "err:000 Text:Your login code is 4")
    assert parse_receipt(text) == Receipt(
        "00000A3F1C", 1, 1, datetime(2024, 5, 17, 14, 5), datetime(2024, 5, 17, 14, 6),
        MessageState.DELIVERED, "000", "Your login code is 4",
    )
    assert format_receipt(parse_receipt(text), SPEC_V34) == text


def test_decimal_id_lowercase_text() -> None:
    parsed = parse_receipt(
        "id:4127730551 sub:001 dlvrd:000 submit date:2311020917 done date:2311030917 stat:EXPIRED err:027 text:none"
    )
    assert parsed.message_id == "4127730551"
    assert parsed.stat is MessageState.EXPIRED
    assert parsed.err == "027"
    assert parsed.err_code == 27
    assert parsed.text == "none"


def test_twelve_digit_dates_and_capital_text() -> None:
    parsed = parse_receipt(
        "id:88120093 sub:001 dlvrd:001 submit date:240229235958 done date:240301000003 stat:DELIVRD err:000 "
        "Text:Leap day test"
    )
    assert parsed.submit_date == datetime(2024, 2, 29, 23, 59, 58)
    assert parsed.done_date == datetime(2024, 3, 1, 0, 0, 3)
    assert parsed.text == "Leap day test"


def test_no_counts_four_digit_err_hex_id() -> None:
    parsed = parse_receipt("id:7f3a09bc submit date:2401150800 done date:2401150801 stat:UNDELIV err:0075")
    assert parsed.submitted is None
    assert parsed.delivered is None
    assert parsed.message_id == "7f3a09bc"
    assert parsed.stat is MessageState.UNDELIVERABLE
    assert parsed.err == "0075"
    assert parsed.text is None


def test_stat_and_err_before_dates() -> None:
    parsed = parse_receipt("id:0000003E8 stat:REJECTD err:0011 submit date:240601120000 done date:240601120001")
    assert parsed.stat is MessageState.REJECTED
    assert parsed.done_date == datetime(2024, 6, 1, 12, 0, 1)


def test_extra_blanks_line_breaks_and_key_case() -> None:
    parsed = parse_receipt(
        "ID:  1234567890   Sub:001  DLVRD : 001\r\nsubmit  date: 2402101030 done\ndate:2402101031 "
        "STAT : delivrd  err:000   TEXT:   hello   "
    )
    assert parsed.message_id == "1234567890"
    assert parsed.delivered == 1
    assert parsed.submit_date == datetime(2024, 2, 10, 10, 30)
    assert parsed.done_date == datetime(2024, 2, 10, 10, 31)
    assert parsed.stat is MessageState.DELIVERED
    assert parsed.text == "hello"


def test_text_with_colons_and_key_like_words() -> None:
    parsed = parse_receipt("id:55 sub:001 dlvrd:001 stat:DELIVRD err:000 text:Code: 1234 stat:REJECTD id:9")
    assert parsed.message_id == "55"
    assert parsed.stat is MessageState.DELIVERED
    assert parsed.text == "Code: 1234 stat:REJECTD id:9"


def test_empty_done_date_while_accepted() -> None:
    parsed = parse_receipt(
        "id:0000029095 sub:001 dlvrd:000 submit date:2111250349 done date: stat:ACCEPTD err:000 text:"
    )
    assert parsed.done_date is None
    assert parsed.stat is MessageState.ACCEPTED
    assert parsed.text == ""


def test_full_state_names_and_trailing_nul() -> None:
    assert parse_receipt("id:1 stat:DELIVERED\x00").stat is MessageState.DELIVERED
    assert parse_receipt("id:1 stat:UNDELIVERED").stat is MessageState.UNDELIVERABLE
    assert parse_receipt("id:1 stat:ENROUTE").stat is MessageState.ENROUTE
    assert parse_receipt("id:1 stat:SKIPPED").stat is MessageState.SKIPPED


def test_unknown_trailing_fields_are_ignored() -> None:
    parsed = parse_receipt("id:77 sub:001 dlvrd:001 stat:DELIVRD err:000 mcc:234 mnc:15")
    assert parsed.err == "000"
    assert parsed.message_id == "77"


def test_msgid_is_not_id() -> None:
    with pytest.raises(InvalidReceipt):
        parse_receipt("msgid:77 stat:DELIVRD")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "id:123",
        "stat:DELIVRD err:000",
        "id: stat:DELIVRD",
        "id:1 stat:",
        "id:1 stat:SENT",
        "id:1 sub:abc stat:DELIVRD",
        "id:1 dlvrd:-1 stat:DELIVRD",
        "id:1 submit date:1613011200 stat:DELIVRD",
        "id:1 done date:24010112 stat:DELIVRD",
        "id:1 done date:2402301200 stat:DELIVRD",
        "id:1 done date:240101126061 stat:DELIVRD",
        "id:1 submit date:２４０１０１１２００ stat:DELIVRD",
        "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E Text: . .",
    ],
)
def test_garbage_raises_invalid_receipt(text: str) -> None:
    with pytest.raises(InvalidReceipt):
        parse_receipt(text)


# ------------------------------------------------------------------------------------------------------------
# Writing


def test_format_spec_example_shape() -> None:
    receipt = Receipt("A3F1C", 1, 1, datetime(2024, 5, 17, 14, 5, 59), None, MessageState.UNDELIVERABLE, "75",
                      "x" * 30)
    assert format_receipt(receipt, SPEC_V34) == (
        "id:00000A3F1C sub:001 dlvrd:001 submit date:2405171405 stat:UNDELIV err:075 Text:" + "x" * 20
    )


def test_format_mixed_bases_writes_decimal_for_hex_submit_id() -> None:
    receipt = Receipt("39f99dd5", 1, 0, None, None, MessageState.EXPIRED, "0")
    assert format_receipt(receipt, MIXED_ID_BASES) == "id:0972660181 sub:001 dlvrd:000 stat:EXPIRED err:000"


def test_format_terse_order() -> None:
    receipt = Receipt("1F", 1, 1, datetime(2024, 1, 2, 3, 4, 5), datetime(2024, 1, 2, 3, 4, 6),
                      MessageState.DELIVERED, "", "ignored")
    assert format_receipt(receipt, TERSE) == (
        "id:0000001F stat:DELIVRD err:0000 submit date:240102030405 done date:240102030406"
    )


def test_format_kannel_and_decimal12_labels() -> None:
    receipt = Receipt("42", None, None, None, None, MessageState.DELETED, "000", "héllo\nthere")
    assert format_receipt(receipt, KANNEL_LIKE) == "id:42 stat:DELETED err:000 text:h?llo?there"
    assert format_receipt(receipt, DECIMAL_12) == "id:42 stat:DELETED err:000 Text:h?llo?there"


def test_non_numeric_ids_are_written_unchanged() -> None:
    uuid = "16fd2706-8baf-433b-82eb-8c7fada847da"
    receipt = Receipt(uuid, None, None, None, None, MessageState.DELIVERED, "000")
    for dialect in PRESETS:
        assert parse_receipt(format_receipt(receipt, dialect)).message_id == uuid


@pytest.mark.parametrize(
    "receipt",
    [
        Receipt("has space", None, None, None, None, MessageState.DELIVERED, "000"),
        Receipt("a:b", None, None, None, None, MessageState.DELIVERED, "000"),
        Receipt("", None, None, None, None, MessageState.DELIVERED, "000"),
        Receipt("ïd", None, None, None, None, MessageState.DELIVERED, "000"),
        Receipt("x" * 65, None, None, None, None, MessageState.DELIVERED, "000"),
        Receipt("1", -1, None, None, None, MessageState.DELIVERED, "000"),
        Receipt("1", None, None, datetime(1999, 12, 31), None, MessageState.DELIVERED, "000"),
        Receipt("1", None, None, None, None, MessageState.DELIVERED, "0 0"),
    ],
)
def test_unwritable_receipts_raise_local_protocol_error(receipt: Receipt) -> None:
    with pytest.raises(LocalProtocolError):
        format_receipt(receipt, KANNEL_LIKE)


def test_dialect_validation() -> None:
    with pytest.raises(LocalProtocolError):
        ReceiptDialect("bad", order=(ReceiptField.ID, ReceiptField.STAT))
    with pytest.raises(LocalProtocolError):
        ReceiptDialect("bad", order=(ReceiptField.ID,) * 7)
    with pytest.raises(LocalProtocolError):
        IdFormat(width=65)
    with pytest.raises(LocalProtocolError):
        IdFormat().render(-1)


def test_preset_names_are_unique() -> None:
    assert len({d.name for d in PRESETS}) == len(PRESETS)


# ------------------------------------------------------------------------------------------------------------
# Message ids


@pytest.mark.parametrize(
    ("receipt_id", "submit_id", "expected"),
    [
        ("972660181", "39f99dd5", True),
        ("0972660181", "39F99DD5", True),
        ("0000029095", "29095", True),
        ("00B8BE19", "B8BE19", True),
        ("b8be19", "B8BE19", True),
        ("16fd2706-8baf-433b-82eb-8c7fada847da", "16fd2706-8baf-433b-82eb-8c7fada847da", True),
        ("16fd2706-8baf-433b-82eb-8c7fada847da", "16FD2706-8BAF-433B-82EB-8C7FADA847DA", False),
        ("972660182", "39f99dd5", False),
        ("", "", False),
        ("1", "", False),
        ("+5", "5", False),
        ("1_0", "10", False),
    ],
)
def test_ids_match(receipt_id: str, submit_id: str, expected: bool) -> None:
    assert ids_match(receipt_id, submit_id) is expected
    assert ids_match(submit_id, receipt_id) is expected


@given(st.text(max_size=70), st.text(max_size=70))
def test_ids_match_total_and_symmetric(a: str, b: str) -> None:
    assert ids_match(a, b) is ids_match(b, a)


@given(st.integers(min_value=0, max_value=2**128), st.sampled_from(IdBase), st.booleans(),
       st.integers(min_value=0, max_value=40))
def test_id_format_render_read(number: int, base: IdBase, upper: bool, width: int) -> None:
    fmt = IdFormat(base, upper, width)
    rendered = fmt.render(number)
    assert len(rendered) >= width
    assert fmt.read(rendered) == number


# ------------------------------------------------------------------------------------------------------------
# MessageState


def test_stat_words_both_ways() -> None:
    words = {
        MessageState.ENROUTE: "ENROUTE",
        MessageState.DELIVERED: "DELIVRD",
        MessageState.EXPIRED: "EXPIRED",
        MessageState.DELETED: "DELETED",
        MessageState.UNDELIVERABLE: "UNDELIV",
        MessageState.ACCEPTED: "ACCEPTD",
        MessageState.UNKNOWN: "UNKNOWN",
        MessageState.REJECTED: "REJECTD",
        MessageState.SKIPPED: "SKIPPED",
    }
    assert [int(s) for s in MessageState] == list(range(1, 10))
    for state, word in words.items():
        assert state.stat == word
        assert len(word) == 7
        assert MessageState.from_stat(word) is state
        assert MessageState.from_stat(word.lower()) is state


def test_message_state_from_tlv() -> None:
    assert MessageState.from_tlv(2) is MessageState.DELIVERED
    for bad in (0, 10, 255, -1):
        with pytest.raises(InvalidOptionalParameterValue):
            MessageState.from_tlv(bad)


# ------------------------------------------------------------------------------------------------------------
# registered_delivery and esm_class

_SUCCESS = {MessageState.DELIVERED, MessageState.ACCEPTED}
_FINAL = [s for s in MessageState if s is not MessageState.ENROUTE]


@pytest.mark.parametrize("state", _FINAL)
@pytest.mark.parametrize("selection", [0, 1, 2, 3])
@pytest.mark.parametrize("other_bits", [0x00, 0x0C, 0x10, 0xEC])
def test_receipt_wanted_truth_table(state: MessageState, selection: int, other_bits: int) -> None:
    success = state in _SUCCESS
    expected = {0: False, 1: True, 2: not success, 3: success}[selection]
    assert receipt_wanted(selection | other_bits, state, intermediate=False) is expected


@pytest.mark.parametrize("state", list(MessageState))
@pytest.mark.parametrize(
    ("registered_delivery", "expected"),
    # SMPP 3.4 section 5.2.17: bit 4 (0x10) asks for intermediate notification; bits 0-3 and 5-7 do not.
    [(0x00, False), (0x01, False), (0x02, False), (0x03, False), (0x0C, False), (0xE3, False),
     (0x10, True), (0x11, True), (0x13, True), (0x1F, True), (0xF0, True)],
)
def test_intermediate_notification_follows_bit_4_only(
    state: MessageState, registered_delivery: int, expected: bool
) -> None:
    assert REGISTERED_DELIVERY_INTERMEDIATE == 0x10  # the public constant is the spec's bit
    assert receipt_wanted(registered_delivery, state, intermediate=True) is expected


def test_final_receipt_for_enroute_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        receipt_wanted(0x01, MessageState.ENROUTE, intermediate=False)


@pytest.mark.parametrize(
    ("esm_class", "expected"),
    [
        (0x00, False),
        (ESM_CLASS_SMSC_DELIVERY_RECEIPT, True),
        (ESM_CLASS_INTERMEDIATE_NOTIFICATION, True),
        (ESM_CLASS_SME_DELIVERY_ACK, False),
        (ESM_CLASS_SME_MANUAL_ACK, False),
        (ESM_CLASS_CONVERSATION_ABORT, False),
        (0x04 | 0x40 | 0x80 | 0x03, True),  # UDHI, reply path and messaging mode bits do not matter
        (0x0C, False),  # a reserved code, not "receipt plus ack"
        (0x24, False),
    ],
)
def test_is_receipt(esm_class: int, expected: bool) -> None:
    assert is_receipt(esm_class) is expected


# ------------------------------------------------------------------------------------------------------------
# TLVs


def test_network_error_code_bytes() -> None:
    code = NetworkErrorCode(NetworkType.GSM, 0x0022)
    assert code.to_bytes() == b"\x03\x00\x22"
    assert NetworkErrorCode.from_bytes(b"\x03\x00\x22") == code
    assert code.known_type is NetworkType.GSM
    assert NetworkErrorCode(0xC8, 1).known_type is None


@given(st.integers(min_value=0, max_value=0xFF), st.integers(min_value=0, max_value=0xFFFF))
def test_network_error_code_round_trip(network_type: int, error_code: int) -> None:
    code = NetworkErrorCode(network_type, error_code)
    data = code.to_bytes()
    assert len(data) == 3
    assert NetworkErrorCode.from_bytes(data) == code


@given(st.binary().filter(lambda b: len(b) != 3))
def test_network_error_code_wrong_length(data: bytes) -> None:
    with pytest.raises(InvalidParameterLength) as info:
        NetworkErrorCode.from_bytes(data)
    assert info.value.command_status is CommandStatus.ESME_RINVPARLEN


@pytest.mark.parametrize(("network_type", "error_code"), [(-1, 0), (256, 0), (3, -1), (3, 0x10000)])
def test_network_error_code_out_of_range(network_type: int, error_code: int) -> None:
    with pytest.raises(LocalProtocolError):
        NetworkErrorCode(network_type, error_code)


def test_network_types_match_spec() -> None:
    assert {t.name: int(t) for t in NetworkType} == {
        "ANSI_136_ACCESS_DENIED_REASON": 1,
        "IS_95_ACCESS_DENIED_REASON": 2,
        "GSM": 3,
        "ANSI_136_CAUSE_CODE": 4,
        "IS_95_CAUSE_CODE": 5,
        "ANSI_41_ERROR": 6,
        "SMPP_ERROR": 7,
        "MESSAGE_CENTER_SPECIFIC": 8,
    }


def test_receipt_tlv_values() -> None:
    receipt = Receipt("39f99dd5", 1, 0, None, None, MessageState.UNDELIVERABLE, "001")
    assert receipt_tlv_values(receipt, None) == {"receipted_message_id": "39f99dd5", "message_state": 5}
    code = NetworkErrorCode(NetworkType.GSM, 27)
    values = receipt_tlv_values(receipt, code)
    assert values["network_error_code"] == code
    assert values["message_state"] == 5
    # receipted_message_id is the submit_sm_resp id even where the dialect re-writes it in the text.
    assert format_receipt(receipt, MIXED_ID_BASES).startswith("id:0972660181 ")
