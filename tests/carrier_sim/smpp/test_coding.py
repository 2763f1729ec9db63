"""data_coding: alphabets, text encode/decode per coding, coding choice, typed errors on bad octets."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import (
    DataCoding,
    UndecodableText,
    UnsupportedTextCoding,
    choose_coding,
    decode_text,
    encode_text,
    is_binary_coding,
    text_alphabet,
)
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import PeerProtocolError, SmppError, TextCodingError

gsm_text = st.text(alphabet=st.sampled_from(sorted(chr(c) for c in range(0x2100) if gsm7.is_gsm7(chr(c)))))


def test_smpp_values() -> None:
    named = (DataCoding.SMSC_DEFAULT, DataCoding.IA5, DataCoding.OCTET_UNSPECIFIED, DataCoding.LATIN_1)
    assert [int(value) for value in named] == [0, 1, 2, 3]
    assert [int(value) for value in (DataCoding.BINARY, DataCoding.UCS2, DataCoding.KS_C_5601)] == [
        4,
        8,
        0x0E,
    ]


@pytest.mark.parametrize(
    ("data_coding", "alphabet"),
    [
        (0x00, DataCoding.SMSC_DEFAULT),
        (0x08, DataCoding.UCS2),
        (0x0B, None),
        (0x40, None),
        (0xC3, DataCoding.SMSC_DEFAULT),
        (0xD8, DataCoding.SMSC_DEFAULT),
        (0xE1, DataCoding.UCS2),
        (0xF0, DataCoding.SMSC_DEFAULT),
        (0xF3, DataCoding.SMSC_DEFAULT),
        (0xF4, DataCoding.BINARY),
        (0xF7, DataCoding.BINARY),
    ],
)
def test_text_alphabet(data_coding: int, alphabet: DataCoding | None) -> None:
    assert text_alphabet(data_coding) is alphabet


def test_binary_codings() -> None:
    assert [dc for dc in range(256) if is_binary_coding(dc)] == [
        2,
        4,
        *range(0xF4, 0xF8),
        *range(0xFC, 0x100),
    ]


@pytest.mark.parametrize(
    ("text", "data_coding", "hex_octets"),
    [
        ("hi€", DataCoding.SMSC_DEFAULT, "68691b65"),
        ("hi", DataCoding.IA5, "6869"),
        ("café", DataCoding.LATIN_1, "636166e9"),
        ("Жж", DataCoding.CYRILLIC, "b6d6"),
        ("שלום", DataCoding.LATIN_HEBREW, "f9ece5ed"),
        ("hé", DataCoding.UCS2, "006800e9"),
        ("😀", DataCoding.UCS2, "d83dde00"),
        ("x😀", 0xE0, "0078d83dde00"),
        ("€", 0xF1, "1b65"),
    ],
)
def test_known_encodings(text: str, data_coding: int, hex_octets: str) -> None:
    assert encode_text(text, data_coding).hex() == hex_octets
    assert decode_text(bytes.fromhex(hex_octets), data_coding) == text


@pytest.mark.parametrize(
    ("hex_octets", "data_coding"),
    [
        ("00", DataCoding.UCS2),  # odd length
        ("006100", DataCoding.UCS2),
        ("d83d", DataCoding.UCS2),  # high surrogate with nothing after it
        ("d83d0061", DataCoding.UCS2),  # high surrogate followed by a non-surrogate
        ("de00", DataCoding.UCS2),  # low surrogate alone
        ("80", DataCoding.SMSC_DEFAULT),  # not a septet
        ("611b", DataCoding.SMSC_DEFAULT),  # escape with nothing after it
        ("80", DataCoding.IA5),
        ("a1", DataCoding.LATIN_HEBREW),  # undefined in ISO-8859-8
    ],
)
def test_invalid_octets_are_peer_errors_with_rinvdcs(hex_octets: str, data_coding: int) -> None:
    with pytest.raises(UndecodableText) as caught:
        decode_text(bytes.fromhex(hex_octets), data_coding)
    assert isinstance(caught.value, PeerProtocolError)
    assert not isinstance(caught.value, UnsupportedTextCoding)
    assert caught.value.command_status is CommandStatus.ESME_RINVDCS


@pytest.mark.parametrize("data_coding", [2, 4, 0xF4, 0x05, 0x09, 0x0A, 0x0B, 0x0D, 0x0E, 0x80])
def test_binary_and_unsupported_codings_are_not_decoded_as_text(data_coding: int) -> None:
    with pytest.raises(UnsupportedTextCoding) as caught:
        decode_text(b"abc", data_coding)
    assert caught.value.command_status is CommandStatus.ESME_RINVDCS
    with pytest.raises(TextCodingError):
        encode_text("abc", data_coding)


@pytest.mark.parametrize(
    ("text", "data_coding"),
    [
        ("ç", DataCoding.SMSC_DEFAULT),
        ("é", DataCoding.IA5),
        ("€", DataCoding.LATIN_1),
        ("\ud83d", DataCoding.UCS2),  # a lone surrogate has no UTF-16 encoding
    ],
)
def test_unrepresentable_text_is_a_local_error(text: str, data_coding: int) -> None:
    with pytest.raises(TextCodingError):
        encode_text(text, data_coding)


@pytest.mark.parametrize(
    ("text", "plain", "with_latin1"),
    [
        ("", DataCoding.SMSC_DEFAULT, DataCoding.SMSC_DEFAULT),
        ("hello {world} €", DataCoding.SMSC_DEFAULT, DataCoding.SMSC_DEFAULT),
        ("ça va", DataCoding.UCS2, DataCoding.LATIN_1),
        ("Ça va", DataCoding.SMSC_DEFAULT, DataCoding.SMSC_DEFAULT),
        ("naïve", DataCoding.UCS2, DataCoding.LATIN_1),
        ("€ and á", DataCoding.UCS2, DataCoding.UCS2),  # € is not in Latin-1
        ("Привет", DataCoding.UCS2, DataCoding.UCS2),
        ("👍", DataCoding.UCS2, DataCoding.UCS2),
    ],
)
def test_choose_coding(text: str, plain: DataCoding, with_latin1: DataCoding) -> None:
    assert choose_coding(text) is plain
    assert choose_coding(text, allow_latin1=True) is with_latin1


@given(st.text(), st.booleans())
def test_chosen_coding_round_trips_any_text(text: str, allow_latin1: bool) -> None:
    coding = choose_coding(text, allow_latin1=allow_latin1)
    assert decode_text(encode_text(text, coding), coding) == text


@given(st.text())
def test_ucs2_round_trips_any_text_including_astral(text: str) -> None:
    encoded = encode_text(text, DataCoding.UCS2)
    assert len(encoded) == 2 * sum(2 if ord(char) > 0xFFFF else 1 for char in text)
    assert decode_text(encoded, DataCoding.UCS2) == text


@given(st.text(alphabet=st.characters(max_codepoint=0xFF)))
def test_latin1_round_trips_latin1_text(text: str) -> None:
    assert decode_text(encode_text(text, DataCoding.LATIN_1), DataCoding.LATIN_1) == text


@given(gsm_text)
def test_gsm7_round_trips_gsm_text(text: str) -> None:
    assert choose_coding(text) is DataCoding.SMSC_DEFAULT
    assert decode_text(encode_text(text, DataCoding.SMSC_DEFAULT), DataCoding.SMSC_DEFAULT) == text


@given(st.binary(), st.integers(min_value=0, max_value=0xFF))
def test_arbitrary_octets_decode_or_raise_only_typed_errors(data: bytes, data_coding: int) -> None:
    try:
        decode_text(data, data_coding)
    except SmppError as exc:
        caught: SmppError | None = exc
    else:
        caught = None
    assert caught is None or isinstance(caught, UndecodableText)
