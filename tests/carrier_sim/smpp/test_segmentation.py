"""Segmentation: capacities per coding and mode, headers, character boundaries, limits."""

from __future__ import annotations

from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import DataCoding, decode_text, text_alphabet
from carrier_sim.smpp.errors import TextCodingError
from carrier_sim.smpp.segmentation import (
    SarInfo,
    Segment,
    SegmentationError,
    SegmentationMode,
    TooManySegments,
    segment_capacity,
    split_message,
    split_text,
)
from carrier_sim.smpp.udh import Concatenation, PortAddressing, split_udh

GSM = DataCoding.SMSC_DEFAULT
UCS2 = DataCoding.UCS2
BINARY = DataCoding.BINARY
CONCAT_8 = SegmentationMode.UDH_CONCAT_8
CONCAT_16 = SegmentationMode.UDH_CONCAT_16
SAR = SegmentationMode.SAR
PAYLOAD = SegmentationMode.PAYLOAD


def _user_data(segment: Segment) -> bytes:
    if segment.esm_class_udhi:
        return split_udh(segment.short_message)[1]
    return segment.short_message


@pytest.mark.parametrize(
    ("data_coding", "unit", "single", "concat_8", "concat_16"),
    [
        (GSM, "a", 160, 153, 152),
        (UCS2, "ж", 70, 67, 66),
        (DataCoding.LATIN_1, "é", 140, 134, 133),
    ],
)
def test_capacities(data_coding: int, unit: str, single: int, concat_8: int, concat_16: int) -> None:
    assert len(split_text(unit * single, data_coding, CONCAT_8)) == 1
    for mode, per_part in ((CONCAT_8, concat_8), (CONCAT_16, concat_16), (SAR, single)):
        parts = split_text(unit * (single + 1), data_coding, mode)
        assert [len(decode_text(_user_data(part), data_coding)) for part in parts] == [
            per_part,
            single + 1 - per_part,
        ]


@pytest.mark.parametrize(
    ("data_coding", "header", "capacity"),
    [
        (GSM, 0, 160),
        (GSM, 6, 153),
        (GSM, 7, 152),
        (GSM, 12, 146),
        (UCS2, 6, 134),
        (BINARY, 7, 133),
        (0xF4, 0, 140),
    ],
)
def test_segment_capacity(data_coding: int, header: int, capacity: int) -> None:
    assert segment_capacity(data_coding, header) == capacity


def test_binary_capacities() -> None:
    assert len(split_message(bytes(140), BINARY, CONCAT_8)) == 1
    assert [len(_user_data(part)) for part in split_message(bytes(141), BINARY, CONCAT_8)] == [134, 7]
    assert [len(_user_data(part)) for part in split_message(bytes(141), BINARY, CONCAT_16)] == [133, 8]


def test_single_segment_has_no_header_and_no_sar() -> None:
    for mode in (CONCAT_8, CONCAT_16, SAR):
        assert split_text("hello", GSM, mode, reference=9) == [Segment(b"hello", GSM)]
    assert split_text("", UCS2, CONCAT_8) == [Segment(b"", UCS2)]


def test_concat_8_headers() -> None:
    parts = split_text("x" * 300, GSM, CONCAT_8, reference=0xCC)
    assert [part.short_message[:6].hex() for part in parts] == ["050003cc0201", "050003cc0202"]
    assert all(part.esm_class_udhi and part.sar is None and part.message_payload is None for part in parts)


def test_concat_16_headers() -> None:
    parts = split_text("x" * 300, GSM, CONCAT_16, reference=0xABCD)
    assert [part.short_message[:7].hex() for part in parts] == ["060804abcd0201", "060804abcd0202"]


def test_sar_parts_carry_tlv_values_and_no_header() -> None:
    parts = split_text("y" * 400, GSM, SAR, reference=0x1234)
    assert [part.sar for part in parts] == [
        SarInfo(0x1234, 3, 1),
        SarInfo(0x1234, 3, 2),
        SarInfo(0x1234, 3, 3),
    ]
    assert [part.short_message for part in parts] == [b"y" * 160, b"y" * 160, b"y" * 80]
    assert not any(part.esm_class_udhi for part in parts)


def test_payload_mode_is_one_pdu() -> None:
    text = "z" * 1000
    assert split_text(text, GSM, PAYLOAD) == [Segment(b"", GSM, message_payload=b"z" * 1000)]


def test_escape_sequence_is_not_split() -> None:
    parts = split_text("a" * 152 + "€" + "b" * 10, GSM, CONCAT_8)
    assert [_user_data(part) for part in parts] == [b"a" * 152, bytes.fromhex("1b65") + b"b" * 10]


def test_surrogate_pair_is_not_split() -> None:
    parts = split_text("a" * 66 + "😀" + "b" * 4, UCS2, CONCAT_8)
    assert [decode_text(_user_data(part), UCS2) for part in parts] == ["a" * 66, "😀bbbb"]


def test_ports_single_and_multipart() -> None:
    ports = PortAddressing(2948, 9200)
    (single,) = split_message(b"\x01" * 130, BINARY, CONCAT_8, ports=ports)
    assert single.esm_class_udhi
    assert single.short_message[:7].hex() == "0605040b8423f0"
    parts = split_message(b"\x01" * 200, BINARY, CONCAT_8, reference=7, ports=ports)
    assert [part.short_message[:12].hex() for part in parts] == [
        "0b05040b8423f00003070201",
        "0b05040b8423f00003070202",
    ]
    assert [len(_user_data(part)) for part in parts] == [128, 72]
    sar_parts = split_message(b"\x01" * 200, BINARY, SAR, reference=7, ports=ports)
    assert [len(_user_data(part)) for part in sar_parts] == [133, 67]
    assert all(part.esm_class_udhi and part.sar is not None for part in sar_parts)
    (payload,) = split_message(b"\x01" * 200, BINARY, PAYLOAD, ports=ports)
    assert payload.esm_class_udhi
    assert payload.message_payload == bytes.fromhex("0605040b8423f0") + b"\x01" * 200


def test_ports_reduce_gsm_capacity_in_septets() -> None:
    parts = split_text("a" * 200, GSM, CONCAT_8, ports=PortAddressing(1, 2, 8))
    # UDHL, a 4-octet port IE and a 5-octet concatenation IE: 10 octets = 12 septets, leaving 148.
    assert [len(_user_data(part)) for part in parts] == [148, 52]


def test_at_most_255_segments() -> None:
    assert len(split_text("a" * (255 * 153), GSM, CONCAT_8)) == 255
    with pytest.raises(TooManySegments):
        split_text("a" * (255 * 153 + 1), GSM, CONCAT_8)
    with pytest.raises(TooManySegments):
        split_message(bytes(255 * 140 + 1), BINARY, SAR)
    with pytest.raises(TooManySegments):
        split_message(bytes(0x10000), BINARY, PAYLOAD)


@pytest.mark.parametrize(
    ("mode", "reference"), [(CONCAT_8, 256), (CONCAT_16, 0x10000), (SAR, 0x10000), (CONCAT_8, -1)]
)
def test_reference_out_of_range(mode: SegmentationMode, reference: int) -> None:
    with pytest.raises(SegmentationError):
        split_text("a", GSM, mode, reference=reference)


def test_text_the_coding_cannot_hold() -> None:
    with pytest.raises(TextCodingError):
        split_text("日本", GSM, CONCAT_8)
    with pytest.raises(TextCodingError):
        split_text("abc", BINARY, CONCAT_8)


def _wide_text(data_coding: int) -> st.SearchStrategy[str]:
    """Texts long enough to need several parts, mixing one- and two-unit characters so cuts fall anywhere."""
    if data_coding == GSM:
        alphabet = st.sampled_from("abc €{}[]\\|^~\f@Δ")
    elif data_coding == UCS2:
        alphabet = st.one_of(
            st.characters(max_codepoint=0x7F), st.characters(min_codepoint=0x1F300, max_codepoint=0x1F6FF)
        )
    else:
        alphabet = st.characters(max_codepoint=0xFF)
    return st.text(alphabet=alphabet, min_size=0, max_size=700)


@given(
    st.sampled_from([GSM, UCS2, DataCoding.LATIN_1]).flatmap(
        lambda dc: st.tuples(st.just(dc), _wide_text(dc))
    ),
    st.sampled_from([CONCAT_8, CONCAT_16, SAR]),
    st.one_of(
        st.none(),
        st.builds(PortAddressing, st.integers(0, 255), st.integers(0, 255), st.sampled_from([8, 16])),
    ),
)
def test_segments_fit_and_split_only_between_characters(
    coded: tuple[int, str], mode: SegmentationMode, ports: PortAddressing | None
) -> None:
    data_coding, text = coded
    parts = split_text(text, data_coding, mode, reference=1, ports=ports)
    pieces = []
    for part in parts:
        user_data = _user_data(part)
        header_octets = len(part.short_message) - len(user_data)
        if text_alphabet(data_coding) is GSM:
            assert (gsm7.header_septets(header_octets) if header_octets else 0) + len(user_data) <= 160
        else:
            assert len(part.short_message) <= 140
        # Each part decodes on its own: no escape sequence or surrogate pair was cut.
        pieces.append(decode_text(user_data, data_coding))
        if len(parts) > 1 and mode is not SAR:
            assert split_udh(part.short_message)[0].concatenation is not None
    assert "".join(pieces) == text
    if len(parts) == 1:
        assert parts[0].sar is None
        assert split_udh(parts[0].short_message)[0].concatenation is None if parts[0].esm_class_udhi else True


@given(st.binary(max_size=1000), st.sampled_from([CONCAT_8, CONCAT_16, SAR]), st.integers(0, 255))
def test_binary_parts_concatenate_back(payload: bytes, mode: SegmentationMode, reference: int) -> None:
    parts = split_message(payload, BINARY, mode, reference=reference)
    assert b"".join(_user_data(part) for part in parts) == payload
    assert all(len(part.short_message) <= 140 for part in parts)
    if len(parts) > 1 and mode is not SAR:
        concat = [split_udh(part.short_message)[0].concatenation for part in parts]
        bits: Literal[8, 16] = 8 if mode is CONCAT_8 else 16
        assert concat == [Concatenation(reference, len(parts), n, bits) for n in range(1, len(parts) + 1)]
