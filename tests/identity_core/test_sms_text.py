"""SMS text codings of the identity core: GSM 7-bit (with the extension table), Latin-1, UCS-2, refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity_core.sms_text import (
    Alphabet,
    UndecodableText,
    decode_text,
    encode_gsm7,
    encode_mt_text,
    is_gsm7,
    text_alphabet,
)

GSM_CHARS = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§"
             "¿abcdefghijklmnopqrstuvwxyzäöñüà\f^{}\\[~]|€")


def test_gsm7_basic_and_extension_octets() -> None:
    assert encode_gsm7("@A€{") == bytes([0x00, 0x41, 0x1B, 0x65, 0x1B, 0x28])
    assert decode_text(bytes([0x00, 0x41, 0x1B, 0x65, 0x1B, 0x28]), 0) == "@A€{"
    assert decode_text(b"REG-REQ?v=1", 0) == "REG-REQ?v=1"


@given(st.text(alphabet=GSM_CHARS, max_size=200))
def test_gsm7_round_trip(text: str) -> None:
    assert is_gsm7(text)
    assert decode_text(encode_gsm7(text), 0) == text


def test_gsm7_escape_before_an_undefined_code_reads_as_the_base_character() -> None:
    assert decode_text(bytes([0x1B, 0x41]), 0) == "A"
    assert decode_text(bytes([0x41, 0x1B]), 0) == "A"  # a trailing lone escape carries nothing


def test_gsm7_refuses_octets_above_0x7f() -> None:
    with pytest.raises(UndecodableText):
        decode_text(b"\x80", 0)


@pytest.mark.parametrize(
    ("data", "coding", "text"),
    [
        ("Zoë".encode("latin-1"), 3, "Zoë"),
        (b"plain", 1, "plain"),
        ("Пётр 🙂".encode("utf-16-be"), 8, "Пётр 🙂"),
        ("Пётр".encode("iso8859-5"), 6, "Пётр"),
        (b"hi", 0xF0, "hi"),  # TS 23.038 group 0xF, default alphabet, class 0
        ("ok".encode("utf-16-be"), 0x18, "ok"),  # general data coding, UCS2
    ],
)
def test_other_alphabets(data: bytes, coding: int, text: str) -> None:
    assert decode_text(data, coding) == text


@pytest.mark.parametrize(
    ("data", "coding"),
    [
        (b"\x01\x02", 2),  # binary
        (b"\x01\x02", 4),  # binary
        (b"\x01\x02", 0xF4),  # 8-bit data, class 0
        (b"\x01\x02", 0x24),  # compressed
        (b"\x00", 8),  # odd-length UCS-2
        (b"\xd8\x00", 8),  # lone surrogate
        (b"x", 0x05),  # JIS
    ],
)
def test_refusals(data: bytes, coding: int) -> None:
    with pytest.raises(UndecodableText):
        decode_text(data, coding)


def test_alphabet_groups() -> None:
    assert text_alphabet(0xC0) is Alphabet.GSM7
    assert text_alphabet(0xE0) is Alphabet.UCS2
    assert text_alphabet(0x50) is Alphabet.UNSUPPORTED


def test_mt_coding_choice() -> None:
    assert encode_mt_text("REG-RESP?ok=1") == (0, b"REG-RESP?ok=1", True)
    assert encode_mt_text("€" * 80) == (0, bytes([0x1B, 0x65]) * 80, True)  # 160 septets: fits
    assert encode_mt_text("€" * 81)[2] is False
    coding, data, fits = encode_mt_text("Ж" * 70)
    assert (coding, data.decode("utf-16-be"), fits) == (8, "Ж" * 70, True)
    assert encode_mt_text("Ж" * 71)[2] is False
    with pytest.raises(ValueError, match="GSM"):
        encode_gsm7("Ж")
