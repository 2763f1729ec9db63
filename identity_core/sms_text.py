"""SMS text as it travels over SMPP: data_coding to text and back, for the identity core's carrier gateway.

Theory: SMPP 3.4 section 5.2.19 gives data_coding its own low values; the high groups are those of the GSM
Data Coding Scheme (3GPP TS 23.038 section 4). :func:`text_alphabet` reduces any data_coding to the alphabet
that decides how octets become text. Data coding 0 (the "SMSC default alphabet") is taken as GSM 7-bit,
*unpacked* — one septet per octet — which is how SMSCs put it on SMPP (they pack eight-into-seven only on the
air interface).

The identity core does not import the emulator's codec (the service must reach carriers only over the wire, as a
customer's would), and the GSM table is data from TS 23.038 rather than logic, so it is written out here.

Binary data codings (2, 4, 8-bit data in the TS 23.038 groups) and compressed text are refused with
:class:`UndecodableText`: a registration request is text, and guessing at octets would only let garbage in.
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "GSM7_ESCAPE",
    "MAX_SINGLE_GSM7_SEPTETS",
    "MAX_SINGLE_UCS2_OCTETS",
    "Alphabet",
    "UndecodableText",
    "decode_text",
    "encode_gsm7",
    "encode_mt_text",
    "is_gsm7",
    "text_alphabet",
]

#: Escape to the extension table (TS 23.038 section 6.2.1, code 0x1B of the default alphabet).
GSM7_ESCAPE: Final = 0x1B
#: What one SMS holds without concatenation (TS 23.040 section 9.2.3.16: 140 octets of TP-UD).
MAX_SINGLE_GSM7_SEPTETS: Final = 160
MAX_SINGLE_UCS2_OCTETS: Final = 140

# TS 23.038 section 6.2.1, the default alphabet in code order. 0x1B is the escape, never a character of its own.
_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# TS 23.038 section 6.2.1.1, the extension table (0x0A is the page break).
_EXTENSION: Final[dict[int, str]] = {
    0x0A: "\f", 0x14: "^", 0x28: "{", 0x29: "}", 0x2F: "\\",
    0x3C: "[", 0x3D: "~", 0x3E: "]", 0x40: "|", 0x65: "€",
}
_ENCODE: Final[dict[str, bytes]] = {
    **{char: bytes([code]) for code, char in enumerate(_BASIC) if code != GSM7_ESCAPE},
    **{char: bytes([GSM7_ESCAPE, code]) for code, char in _EXTENSION.items()},
}
# One table lookup per octet is the hot path of MO decoding (tens of thousands per second), hence the tuple.
_DECODE_BASIC: Final[tuple[str, ...]] = tuple(_BASIC)


class UndecodableText(ValueError):
    """Octets that are not text in the data_coding the peer named (or a binary/compressed data_coding)."""


class Alphabet(enum.Enum):
    """What a data_coding means for turning octets into text."""

    GSM7 = "gsm7"
    ASCII = "ascii"
    LATIN_1 = "latin-1"
    CYRILLIC = "iso8859-5"
    HEBREW = "iso8859-8"
    UCS2 = "utf-16-be"
    BINARY = "binary"
    UNSUPPORTED = "unsupported"


# SMPP 3.4 section 5.2.19, the SMPP-specific low values.
_LOW: Final[dict[int, Alphabet]] = {
    0x00: Alphabet.GSM7,
    0x01: Alphabet.ASCII,
    0x02: Alphabet.BINARY,
    0x03: Alphabet.LATIN_1,
    0x04: Alphabet.BINARY,
    0x06: Alphabet.CYRILLIC,
    0x07: Alphabet.HEBREW,
    0x08: Alphabet.UCS2,
}


def text_alphabet(data_coding: int) -> Alphabet:
    """The alphabet a data_coding names (TS 23.038 section 4 for the coding groups above 0x0F)."""
    if data_coding in _LOW:
        return _LOW[data_coding]
    if data_coding <= 0x0F:
        return Alphabet.UNSUPPORTED  # JIS, pictogram, ISO-2022-JP, Kanji, KS C 5601: not text we read
    group = data_coding >> 4
    if group <= 0x3:
        # General data coding 00xx: bit 5 = compressed, bits 3..2 = alphabet (TS 23.038 section 4).
        if data_coding & 0x20:
            return Alphabet.UNSUPPORTED
        return (Alphabet.GSM7, Alphabet.BINARY, Alphabet.UCS2, Alphabet.UNSUPPORTED)[(data_coding >> 2) & 0x3]
    if group in (0xC, 0xD):
        return Alphabet.GSM7  # message waiting indication, discard/store message, default alphabet
    if group == 0xE:
        return Alphabet.UCS2  # message waiting indication, store message, UCS2
    if group == 0xF:
        return Alphabet.BINARY if data_coding & 0x04 else Alphabet.GSM7  # data coding/message class
    return Alphabet.UNSUPPORTED  # 0x40..0xBF: reserved or automatic deletion groups with compression


def decode_gsm7(septets: bytes) -> str:
    """Unpacked GSM 7-bit septets to text; an escape before an undefined extension code reads as the base
    character, as TS 23.038 section 6.2.1.1 asks of a receiver."""
    out: list[str] = []
    escaped = False
    for octet in septets:
        if octet > 0x7F:
            raise UndecodableText(f"octet 0x{octet:02X} is not a GSM 7-bit septet")
        if escaped:
            escaped = False
            out.append(_EXTENSION.get(octet, _DECODE_BASIC[octet]) if octet != GSM7_ESCAPE else " ")
        elif octet == GSM7_ESCAPE:
            escaped = True
        else:
            out.append(_DECODE_BASIC[octet])
    # A trailing lone escape carries no character; dropping it is what handsets display.
    return "".join(out)


def decode_text(data: bytes, data_coding: int) -> str:
    """Octets of short_message/message_payload to text per data_coding; :class:`UndecodableText` otherwise."""
    alphabet = text_alphabet(data_coding)
    if alphabet is Alphabet.GSM7:
        return decode_gsm7(data)
    if alphabet in (Alphabet.BINARY, Alphabet.UNSUPPORTED):
        raise UndecodableText(f"data_coding 0x{data_coding:02X} is {alphabet.value}, not text")
    if alphabet is Alphabet.UCS2 and len(data) % 2:
        raise UndecodableText("UCS-2 text of odd length")
    try:
        # UTF-16-BE rather than strict UCS-2: handsets send emoji as surrogate pairs; "strict" refuses a lone
        # surrogate, which no text can hold.
        return data.decode(alphabet.value, errors="strict")
    except UnicodeDecodeError as err:
        raise UndecodableText(f"not {alphabet.value}: {err.reason}") from None


def is_gsm7(text: str) -> bool:
    """True when every character of ``text`` has a GSM 7-bit default alphabet (or extension) code."""
    return all(char in _ENCODE for char in text)


def encode_gsm7(text: str) -> bytes:
    """Text to unpacked GSM 7-bit septets; ValueError for a character the alphabet lacks."""
    try:
        return b"".join(_ENCODE[char] for char in text)
    except KeyError as err:
        raise ValueError(f"{err.args[0]!r} has no GSM 7-bit code") from None


def encode_mt_text(text: str) -> tuple[int, bytes, bool]:
    """(data_coding, octets, fits_one_sms) for an MT: GSM 7-bit when every character has a code, else UCS-2.

    ``fits_one_sms`` tells the caller whether the octets fit one short_message or must travel in
    message_payload (and be segmented by the SMSC).
    """
    if is_gsm7(text):
        data = encode_gsm7(text)
        return 0x00, data, len(data) <= MAX_SINGLE_GSM7_SEPTETS
    data = text.encode("utf-16-be", errors="strict")
    return 0x08, data, len(data) <= MAX_SINGLE_UCS2_OCTETS
