"""GSM 7-bit default alphabet: TS 23.038 vectors and properties of encode/decode and pack/unpack."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError, MessageLengthError, PeerProtocolError, TextCodingError

GSM_CHARS = sorted(chr(code) for code in range(0x2100) if gsm7.is_gsm7(chr(code)))
EXTENSION_CHARS = "\f^{}\\[~]|€"

gsm_text = st.text(alphabet=st.sampled_from(GSM_CHARS))
septets = st.binary().map(lambda data: bytes(octet & 0x7F for octet in data))


def _reference_pack(values: bytes, fill_bits: int) -> bytes:
    """An independent bit-list packer: LSB-first septets after ``fill_bits`` zero bits."""
    bits = [0] * fill_bits
    for value in values:
        bits.extend((value >> shift) & 1 for shift in range(7))
    bits.extend([0] * (-len(bits) % 8))
    return bytes(
        sum(bit << shift for shift, bit in enumerate(bits[i : i + 8])) for i in range(0, len(bits), 8)
    )


def test_alphabet_has_128_basic_and_10_extension_characters() -> None:
    assert len(GSM_CHARS) == 127 + len(EXTENSION_CHARS)
    assert all(gsm7.count_septets(char) == 2 for char in EXTENSION_CHARS)


@pytest.mark.parametrize(
    ("text", "septets_hex"),
    [
        ("@", "00"),
        ("£$¥", "010203"),
        ("Δ", "10"),  # U+0394 GREEK CAPITAL LETTER DELTA
        ("Ω", "15"),  # U+03A9 GREEK CAPITAL LETTER OMEGA
        ("ÆæßÉ", "1c1d1e1f"),
        ("¤", "24"),
        ("¡§¿à", "405f607f"),
        ("€", "1b65"),
        ("\f", "1b0a"),
        ("{}[]~|\\^", "1b281b291b3c1b3e1b3d1b401b2f1b14"),
    ],
)
def test_known_septets(text: str, septets_hex: str) -> None:
    assert gsm7.encode(text).hex() == septets_hex
    assert gsm7.decode(bytes.fromhex(septets_hex)) == text


def test_hellohello_packs_to_the_classic_vector() -> None:
    assert gsm7.pack(gsm7.encode("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    assert gsm7.decode(gsm7.unpack(bytes.fromhex("E8329BFD4697D9EC37"))) == "hellohello"


def test_unknown_extension_code_shows_the_basic_character() -> None:
    # TS 23.038 6.2.1.1: a code absent from the extension table displays as the default-alphabet character.
    assert gsm7.decode(bytes.fromhex("1b41")) == "A"
    assert gsm7.decode(bytes.fromhex("1b1b")) == " "


@pytest.mark.parametrize("data", [b"\x80", b"a\xff", b"\x1b", b"ab\x1b", b"\x1b\x80"])
def test_invalid_septets_are_peer_errors(data: bytes) -> None:
    with pytest.raises(gsm7.InvalidSeptets) as caught:
        gsm7.decode(data)
    assert isinstance(caught.value, PeerProtocolError)
    assert caught.value.command_status is CommandStatus.ESME_RINVDCS


@pytest.mark.parametrize("text", ["ç", "á", "日本", "😀", "`"])
def test_non_gsm_text_is_refused(text: str) -> None:
    assert not gsm7.is_gsm7(text)
    with pytest.raises(TextCodingError):
        gsm7.encode(text)


def test_count_septets() -> None:
    assert gsm7.count_septets("") == 0
    assert gsm7.count_septets("hello") == 5
    assert gsm7.count_septets("{€}") == 6


@pytest.mark.parametrize(
    ("octets", "septets", "fill"), [(6, 7, 1), (7, 8, 0), (5, 6, 2), (12, 14, 2), (1, 2, 6)]
)
def test_header_septets_and_fill_bits(octets: int, septets: int, fill: int) -> None:
    assert gsm7.header_septets(octets) == septets
    assert gsm7.fill_bits_for_header(octets) == fill


def test_pack_after_concatenation_header_starts_on_septet_boundary() -> None:
    header = bytes.fromhex("050003cc0201")
    fill = gsm7.fill_bits_for_header(len(header))
    user_data = header + gsm7.pack(gsm7.encode("hi"), fill)
    # The whole TP-UD, unpacked as septets from its start, has the text at septet 7 (after 7 header septets).
    assert gsm7.unpack(user_data, 9)[7:] == gsm7.encode("hi")


def test_pack_edges() -> None:
    assert gsm7.pack(b"", 3) == b""
    with pytest.raises(LocalProtocolError):
        gsm7.pack(b"a", 7)
    with pytest.raises(TextCodingError):
        gsm7.pack(b"\x80")
    with pytest.raises(MessageLengthError):
        gsm7.unpack(b"\x00", 2)
    with pytest.raises(LocalProtocolError):
        gsm7.unpack(b"\x00", -1)


def test_unpack_without_count_shows_padding_of_8n_minus_1_septets() -> None:
    packed = gsm7.pack(b"abcdefg")
    assert len(packed) == 7
    assert gsm7.unpack(packed) == b"abcdefg\x00"
    assert gsm7.unpack(packed, 7) == b"abcdefg"


@given(gsm_text)
def test_encode_decode_round_trip(text: str) -> None:
    encoded = gsm7.encode(text)
    assert all(value <= 0x7F for value in encoded)
    assert gsm7.count_septets(text) == len(encoded)
    assert gsm7.decode(encoded) == text


@given(septets, st.integers(min_value=0, max_value=6))
def test_pack_unpack_round_trip_for_any_fill(values: bytes, fill: int) -> None:
    packed = gsm7.pack(values, fill)
    assert packed == (_reference_pack(values, fill) if values else b"")
    assert len(packed) == (-(-(fill + 7 * len(values)) // 8) if values else 0)
    assert gsm7.unpack(packed, len(values), fill) == values


@given(st.binary())
def test_decoding_arbitrary_octets_gives_text_or_typed_error(data: bytes) -> None:
    try:
        text = gsm7.decode(data)
    except gsm7.InvalidSeptets:
        return
    assert gsm7.is_gsm7(text)


@given(st.binary(), st.integers(min_value=0, max_value=6))
def test_unpacking_arbitrary_octets_gives_septets(data: bytes, fill: int) -> None:
    values = gsm7.unpack(data, fill_bits=fill)
    assert all(value <= 0x7F for value in values)
    assert len(values) == max(len(data) * 8 - fill, 0) // 7
