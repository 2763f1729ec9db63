"""data_coding: which alphabet the octets of short_message or message_payload are in, and text to and from it.

Theory: SMPP 3.4 section 5.2.19 gives data_coding its own low values (0..14), unlike the GSM Data Coding
Scheme of 3GPP TS 23.038 section 4; the high groups (0xC0..0xFF: message waiting indication and message
class) are passed through from TS 23.038, where they also name an alphabet. :func:`text_alphabet` reduces
any data_coding to the alphabet that decides how octets become text.

This emulator's SMSC default alphabet (data_coding 0) is GSM 7-bit, unpacked: one septet per octet. IA5 is
strict 7-bit ASCII. UCS-2 is read and written as UTF-16-BE, so text beyond the Basic Multilingual Plane
(emoji) travels as surrogate pairs, as every handset of the last decade sends it.

Errors, by whose fault they are:

* :class:`TextCodingError` (local): we were asked to encode text the data_coding cannot hold, or to encode
  into a binary or unsupported data_coding.
* :class:`UndecodableText` (peer, ESME_RINVDCS): octets the peer sent are not valid in the data_coding it
  named — odd-length or unpaired-surrogate UCS-2, octets above 0x7F in GSM 7-bit or IA5, undefined
  ISO-8859-8 positions.
* :class:`UnsupportedTextCoding` (peer, ESME_RINVDCS, a subclass of :class:`UndecodableText`): the peer's
  data_coding is binary (2, 4, or a message-class value with 8-bit data), reserved, or an alphabet this
  emulator does not decode (JIS, pictograms, KS C 5601...). Binary octets are not text; read them as bytes.
"""

from __future__ import annotations

import enum
from typing import Final

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import PeerProtocolError, TextCodingError

__all__ = [
    "DataCoding",
    "UndecodableText",
    "UnsupportedTextCoding",
    "choose_coding",
    "decode_text",
    "encode_text",
    "is_binary_coding",
    "text_alphabet",
]


class DataCoding(enum.IntEnum):
    """data_coding values of SMPP 3.4 section 5.2.19 (the low, SMPP-specific range)."""

    SMSC_DEFAULT = 0x00
    IA5 = 0x01
    OCTET_UNSPECIFIED = 0x02
    LATIN_1 = 0x03
    BINARY = 0x04
    JIS = 0x05
    CYRILLIC = 0x06
    LATIN_HEBREW = 0x07
    UCS2 = 0x08
    PICTOGRAM = 0x09
    ISO_2022_JP = 0x0A
    EXTENDED_KANJI_JIS = 0x0D
    KS_C_5601 = 0x0E


class UndecodableText(PeerProtocolError):
    """Octets from the peer are not valid text in the data_coding it named."""

    command_status = CommandStatus.ESME_RINVDCS


class UnsupportedTextCoding(UndecodableText):
    """The peer's data_coding is binary, reserved, or an alphabet this emulator does not decode as text."""


# Codecs of the single-octet and UTF-16 alphabets; GSM 7-bit is handled by carrier_sim.smpp.gsm7. Only
# stateless codecs belong here: segmentation relies on the encoding of a text being the concatenation of
# the encodings of its characters.
_CODECS: Final[dict[DataCoding, str]] = {
    DataCoding.IA5: "ascii",
    DataCoding.LATIN_1: "latin-1",
    DataCoding.CYRILLIC: "iso8859-5",
    DataCoding.LATIN_HEBREW: "iso8859-8",
    DataCoding.UCS2: "utf-16-be",
}

_BINARY: Final = frozenset({DataCoding.OCTET_UNSPECIFIED, DataCoding.BINARY})


def text_alphabet(data_coding: int) -> DataCoding | None:
    """The alphabet ``data_coding`` names, or None for a reserved value.

    SMPP 3.4 section 5.2.19 passes the high groups through from TS 23.038 section 4:

    * 0xC0..0xCF "Message Waiting Indication Group: Discard Message" and 0xD0..0xDF "... Store Message": GSM
      7 bit default alphabet;
    * 0xE0..0xEF "Message Waiting Indication Group: Store Message": uncompressed UCS2;
    * 0xF0..0xFF "Data coding/message class": bit 2 clear is the GSM 7 bit default alphabet, set is 8 bit
      data.
    """
    if 0xC0 <= data_coding <= 0xDF:
        return DataCoding.SMSC_DEFAULT
    if 0xE0 <= data_coding <= 0xEF:
        return DataCoding.UCS2
    if 0xF0 <= data_coding <= 0xFF:
        return DataCoding.BINARY if data_coding & 0x04 else DataCoding.SMSC_DEFAULT
    try:
        return DataCoding(data_coding)
    except ValueError:
        return None


def is_binary_coding(data_coding: int) -> bool:
    """True if ``data_coding`` says the octets are 8-bit data rather than text."""
    return text_alphabet(data_coding) in _BINARY


def encode_text(text: str, data_coding: int) -> bytes:
    """Encode ``text`` in ``data_coding``: GSM 7-bit unpacked, IA5, Latin-1, Cyrillic, Hebrew or UCS-2.

    Raises :class:`TextCodingError` if the text does not fit the alphabet, or if ``data_coding`` is binary,
    reserved or not supported for text.
    """
    alphabet = text_alphabet(data_coding)
    if alphabet is DataCoding.SMSC_DEFAULT:
        return gsm7.encode(text)
    codec = _CODECS.get(alphabet) if alphabet is not None else None
    if codec is None:
        raise TextCodingError(f"data_coding 0x{data_coding:02X} is not a text coding this emulator encodes")
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        char = exc.object[exc.start]
        raise TextCodingError(
            f"{char!r} (U+{ord(char):04X}) at index {exc.start} cannot be encoded in data_coding "
            f"0x{data_coding:02X} ({alphabet.name if alphabet is not None else 'reserved'})"
        ) from exc


def decode_text(data: bytes, data_coding: int) -> str:
    """Decode octets the peer sent in ``data_coding`` to text.

    Raises :class:`UnsupportedTextCoding` for binary, reserved or unsupported codings and
    :class:`UndecodableText` for octets invalid in the coding; both carry ESME_RINVDCS.
    """
    alphabet = text_alphabet(data_coding)
    if alphabet is DataCoding.SMSC_DEFAULT:
        try:
            return gsm7.decode(data)
        except gsm7.InvalidSeptets as exc:
            raise UndecodableText(exc.message) from exc
    codec = _CODECS.get(alphabet) if alphabet is not None else None
    if codec is None:
        what = "binary" if alphabet in _BINARY else "not a text coding this emulator decodes"
        raise UnsupportedTextCoding(f"data_coding 0x{data_coding:02X} is {what}")
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise UndecodableText(
            f"octets {exc.start}..{exc.end - 1} are not valid in data_coding 0x{data_coding:02X}: "
            f"{exc.reason}"
        ) from exc


def choose_coding(text: str, *, allow_latin1: bool = False) -> DataCoding:
    """The data_coding a sender would pick for ``text``: GSM 7-bit if it fits, else UCS-2.

    Latin-1 is chosen for text outside GSM 7-bit only when ``allow_latin1`` is set: many handsets cannot
    display data_coding 3, so the SMSC must know its route takes it. The result may still fail to encode
    (a lone surrogate fits no coding); :func:`encode_text` reports that.
    """
    if gsm7.is_gsm7(text):
        return DataCoding.SMSC_DEFAULT
    if allow_latin1 and all(ord(char) <= 0xFF for char in text):
        return DataCoding.LATIN_1
    return DataCoding.UCS2
