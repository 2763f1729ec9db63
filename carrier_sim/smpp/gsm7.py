"""The GSM 7-bit default alphabet and its extension table (3GPP TS 23.038 section 6.2.1).

Theory: SMPP carries data_coding 0 as *unpacked* septets on most SMSCs — one septet value (0x00..0x7F) per
octet of ``short_message`` — and the SMSC packs them eight-into-seven only on the air interface. So the codec
here has two layers that callers combine as they need:

* :func:`encode` / :func:`decode` map text to unpacked septets and back. Characters of the extension table
  (TS 23.038 section 6.2.1.1) take two septets: the escape 0x1B followed by the extension code.
* :func:`pack` / :func:`unpack` move septets to and from the packed octet stream of TP-UD, with ``fill_bits``
  so that text following a User Data Header starts on a septet boundary (TS 23.040 section 9.2.3.24).

Errors: text that has no GSM representation is our caller's problem (:class:`TextCodingError`, a
:class:`LocalProtocolError`); septets a peer sent that are not valid are the peer's
(:class:`InvalidSeptets`, answered with ESME_RINVDCS).
"""

from __future__ import annotations

import codecs
from typing import Final

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError, MessageLengthError, PeerProtocolError, TextCodingError

__all__ = [
    "ESCAPE",
    "InvalidSeptets",
    "count_septets",
    "decode",
    "encode",
    "fill_bits_for_header",
    "header_septets",
    "is_gsm7",
    "pack",
    "unpack",
]

#: Escape to the extension table (TS 23.038 section 6.2.1, code 0x1B of the default alphabet).
ESCAPE: Final = 0x1B

# TS 23.038 section 6.2.1, the default alphabet in code order. 0x1B is the escape and never a character of
# its own; the NUL placeholder at that position is excluded from the encoding map below.
_BASIC: Final = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x00ÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)

# TS 23.038 section 6.2.1.1, the default alphabet extension table. 0x0A is the page break (form feed);
# 0x0D (CR2) and 0x1B (SS2) are controls with no character and are left out.
_EXTENSION: Final[dict[int, str]] = {
    0x0A: "\f",
    0x14: "^",
    0x28: "{",
    0x29: "}",
    0x2F: "\\",
    0x3C: "[",
    0x3D: "~",
    0x3E: "]",
    0x40: "|",
    0x65: "€",
}

_ENCODE: Final[dict[str, bytes]] = {
    **{char: bytes([code]) for code, char in enumerate(_BASIC) if code != ESCAPE},
    **{char: bytes([ESCAPE, code]) for code, char in _EXTENSION.items()},
}


#: Every character :func:`encode` accepts (for :func:`is_gsm7`).
_GSM_CHARS: Final = frozenset(_ENCODE)

# The fast paths hand the common case -- basic-alphabet characters only -- to the C charmap codec and leave
# everything else (extension characters, errors) to the reference loops below, so that results and errors are
# the loops' own. 0x1B, the escape, is no character: "\ufffe" marks it undefined for decoding, and for encoding
# U+FFFE (not GSM) would come out as 0x1B, which is why a 0x1B in the encoder's output sends it to the loop.
_DECODE_TABLE: Final = _BASIC[:ESCAPE] + "\ufffe" + _BASIC[ESCAPE + 1 :]
_ENCODE_MAP: Final = codecs.charmap_build(_DECODE_TABLE)
_charmap_decode = codecs.charmap_decode
_ASCII_TO_SEPTET: Final = bytes(
    _ENCODE[chr(code)][0] if len(_ENCODE.get(chr(code), b"")) == 1 else ESCAPE for code in range(256)
)
_charmap_encode = codecs.charmap_encode


class InvalidSeptets(PeerProtocolError):
    """Septets from the peer are not GSM 7-bit text: a value above 0x7F, or a trailing lone escape."""

    command_status = CommandStatus.ESME_RINVDCS


def encode(text: str) -> bytes:
    """Encode ``text`` as unpacked septets, one per octet; extension characters become ``0x1B`` + code.

    Raises :class:`TextCodingError` naming the first character the alphabet cannot hold.
    """
    try:
        # ASCII text (receipts, most MT): a byte-for-byte translation; ASCII characters outside the basic
        # alphabet (extension characters such as '{', and '`' which GSM lacks) translate to 0x1B.
        fast = text.encode("ascii").translate(_ASCII_TO_SEPTET)
    except UnicodeEncodeError:
        try:
            fast = _charmap_encode(text, "strict", _ENCODE_MAP)[0]
        except UnicodeEncodeError:
            return _encode_reference(text)
    return fast if ESCAPE not in fast else _encode_reference(text)


def _encode_reference(text: str) -> bytes:
    """:func:`encode` character by character: extension characters, and the error for a non-GSM one."""
    out = bytearray()
    for index, char in enumerate(text):
        code = _ENCODE.get(char)
        if code is None:
            raise TextCodingError(
                f"{char!r} (U+{ord(char):04X}) at index {index} is not in the GSM 7-bit default alphabet"
            )
        out += code
    return bytes(out)


def decode(septets: bytes) -> str:
    """Decode unpacked septets (one per octet) to text.

    Follows the receiving-entity rules of TS 23.038 section 6.2.1.1: an escape followed by a code the
    extension table does not define shows the default-alphabet character of that code, and escape-escape
    (reserved for a further extension table) shows a space. So decoding is not injective, but
    ``decode(encode(t)) == t`` for every GSM text ``t``.

    Raises :class:`InvalidSeptets` for an octet above 0x7F or a trailing lone escape.
    """
    if isinstance(septets, bytes | bytearray) and septets.isascii() and ESCAPE not in septets:
        text: str = _charmap_decode(septets, "strict", _DECODE_TABLE)[0]
        return text
    return _decode_reference(septets)


def _decode_reference(septets: bytes) -> str:
    """:func:`decode` septet by septet: escapes, and the error for an invalid septet."""
    chars: list[str] = []
    index = 0
    length = len(septets)
    while index < length:
        code = septets[index]
        if code > 0x7F:
            raise InvalidSeptets(f"octet 0x{code:02X} at offset {index} is not a septet")
        if code != ESCAPE:
            chars.append(_BASIC[code])
            index += 1
            continue
        if index + 1 >= length:
            raise InvalidSeptets(f"escape 0x1B at offset {index} ends the text without an extension code")
        ext = septets[index + 1]
        if ext > 0x7F:
            raise InvalidSeptets(f"octet 0x{ext:02X} at offset {index + 1} is not a septet")
        if ext in _EXTENSION:
            chars.append(_EXTENSION[ext])
        elif ext == ESCAPE:
            # TS 23.038 6.2.1.1 note 1: "a receiving entity shall display a space until another extension
            # table is defined".
            chars.append(" ")
        else:
            # TS 23.038 6.2.1.1: "the MS shall display the character shown in the main GSM 7 bit default
            # alphabet table".
            chars.append(_BASIC[ext])
        index += 2
    return "".join(chars)


def is_gsm7(text: str) -> bool:
    """True if every character of ``text`` is in the default alphabet or its extension table."""
    return _GSM_CHARS.issuperset(text)


def count_septets(text: str) -> int:
    """Septets ``text`` takes in GSM 7-bit, extension characters counting two.

    Raises :class:`TextCodingError` if the text is not GSM 7-bit.
    """
    return len(encode(text))


def header_septets(header_octets: int) -> int:
    """Septets a User Data Header of ``header_octets`` octets (UDHL included) occupies, fill bits included.

    TS 23.040 section 9.2.3.24: with 7-bit data the header is followed by fill bits up to the next septet
    boundary, and TP-UDL counts the header plus fill as septets — so a 6-octet concatenation header takes 7
    septets of the 160 (leaving 153), a 7-octet one takes 8 (leaving 152).
    """
    if header_octets < 0:
        raise LocalProtocolError(f"header length {header_octets} is negative")
    return -(-header_octets * 8 // 7)


def fill_bits_for_header(header_octets: int) -> int:
    """Fill bits (0..6) between a ``header_octets``-octet UDH and the packed septets that follow it."""
    return header_septets(header_octets) * 7 - header_octets * 8


def _check_fill_bits(fill_bits: int) -> None:
    if not 0 <= fill_bits <= 6:
        raise LocalProtocolError(f"fill_bits must be 0..6, not {fill_bits}")


def pack(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack unpacked septets into octets, least significant bit first (TS 23.038 section 6.1.2.1.1).

    ``fill_bits`` zero bits precede the first septet, as after a User Data Header (see
    :func:`fill_bits_for_header`); the octets returned start with the octet holding those fill bits. Spare
    bits at the end are zero: SMS carries the septet count in TP-UDL, so they cannot be mistaken for '@'.
    Packing nothing gives nothing, whatever the fill.
    """
    _check_fill_bits(fill_bits)
    out = bytearray()
    if not septets:
        return bytes(out)
    buffer = 0
    bits = fill_bits
    for index, septet in enumerate(septets):
        if septet > 0x7F:
            raise TextCodingError(f"value 0x{septet:02X} at offset {index} is not a septet")
        buffer |= septet << bits
        bits += 7
        while bits >= 8:
            out.append(buffer & 0xFF)
            buffer >>= 8
            bits -= 8
    if bits:
        out.append(buffer)
    return bytes(out)


def unpack(octets: bytes, septet_count: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack packed octets into septets, one per octet, skipping ``fill_bits`` leading bits.

    ``septet_count`` is TP-UDL less the header's septets; without it every whole septet the octets hold is
    returned, which for 8n-1 septets includes a trailing 0x00 ('@') made of padding — pass the count.
    Raises :class:`MessageLengthError` if the octets hold fewer than ``septet_count`` septets.
    """
    _check_fill_bits(fill_bits)
    available = max(len(octets) * 8 - fill_bits, 0) // 7
    if septet_count is None:
        septet_count = available
    elif septet_count < 0:
        raise LocalProtocolError(f"septet_count {septet_count} is negative")
    elif septet_count > available:
        raise MessageLengthError(
            f"{len(octets)} octets with {fill_bits} fill bits hold {available} septets, not {septet_count}"
        )
    out = bytearray()
    buffer = 0
    bits = 0
    position = 0
    skip = fill_bits
    while len(out) < septet_count:
        while bits < 7 + skip:
            buffer |= octets[position] << bits
            position += 1
            bits += 8
        buffer >>= skip
        bits -= skip
        skip = 0
        out.append(buffer & 0x7F)
        buffer >>= 7
        bits -= 7
    return bytes(out)
