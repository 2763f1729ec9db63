"""Splitting a long message into SMS segments, the way an ESME or an SMSC does before sending.

Theory: one SMS carries 140 octets of user data, or 160 septets of GSM 7-bit text (3GPP TS 23.040 section
9.2.3.16). A longer message travels as parts tied together in one of three ways, all offered here:

* :attr:`SegmentationMode.UDH_CONCAT_8` / :attr:`~SegmentationMode.UDH_CONCAT_16`: a concatenation IE in a
  User Data Header at the front of each part (TS 23.040 section 9.2.3.24.1 / .8). The header eats into the
  140 octets: 6 octets (8-bit reference) or 7 (16-bit); with GSM 7-bit it is counted in septets, fill bits
  included (7 or 8), leaving 153 or 152 characters.
* :attr:`SegmentationMode.SAR`: the SMPP 3.4 TLVs sar_msg_ref_num, sar_total_segments and
  sar_segment_seqnum (section 5.3.2.22-24) tie the parts; there is no header, so each part has the whole
  capacity for text. The SMSC builds the over-the-air header itself.
* :attr:`SegmentationMode.PAYLOAD`: one PDU with the whole message in message_payload (section 5.3.2.32);
  the SMSC splits it.

Parts are cut at character boundaries: TS 23.040 9.2.3.24.1 "A character represented by an
escape-sequence shall not be split in the middle" and "A UCS2 character shall not be split in the middle"
— for UTF-16 that includes both halves of a surrogate pair. GSM 7-bit octets here are unpacked septets (see
:mod:`carrier_sim.smpp.gsm7`), so a part's short_message is header octets plus one octet per septet.

Everything is pure: the caller supplies the reference number (a counter or a seeded draw of its own).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final, Literal

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import DataCoding, encode_text, text_alphabet
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError
from carrier_sim.smpp.udh import Concatenation, InformationElement, PortAddressing, Udh

__all__ = [
    "MAX_MESSAGE_PAYLOAD_OCTETS",
    "MAX_SEGMENTS",
    "MAX_USER_DATA_OCTETS",
    "MAX_USER_DATA_SEPTETS",
    "SarInfo",
    "Segment",
    "SegmentationError",
    "SegmentationMode",
    "TooManySegments",
    "segment_capacity",
    "split_message",
    "split_text",
]

#: TS 23.040 section 9.2.3.16: TP-User-Data holds up to 140 octets ...
MAX_USER_DATA_OCTETS: Final = 140
#: ... or 160 septets of GSM 7-bit data.
MAX_USER_DATA_SEPTETS: Final = 160
#: The concatenation IE's maximum number is one octet, and so are sar_total_segments' values (1..255).
MAX_SEGMENTS: Final = 255
#: message_payload's length is a TLV's 16-bit length field (SMPP 3.4 section 5.3.2.32).
MAX_MESSAGE_PAYLOAD_OCTETS: Final = 0xFFFF


class SegmentationMode(enum.Enum):
    """How the parts of a long message are tied together."""

    UDH_CONCAT_8 = "udh_concat_8"
    UDH_CONCAT_16 = "udh_concat_16"
    SAR = "sar"
    PAYLOAD = "payload"


class SegmentationError(LocalProtocolError):
    """We were asked for a segmentation SMPP cannot carry (bad reference, message too long)."""


class TooManySegments(SegmentationError):
    """The message needs more than 255 parts, or more than 65535 octets of message_payload."""

    command_status = CommandStatus.ESME_RINVMSGLEN


@dataclass(frozen=True, slots=True)
class SarInfo:
    """Values of the SAR TLVs (SMPP 3.4 sections 5.3.2.22-24).

    ``msg_ref_num`` is 0..65535, ``total_segments`` 1..255, ``segment_seqnum`` 1..``total_segments``. Not
    validated here, because values read from a peer must be judged where the peer's PDU is (see
    :mod:`carrier_sim.smpp.reassembly`); :func:`split_message` only builds valid ones.
    """

    msg_ref_num: int
    total_segments: int
    segment_seqnum: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One PDU's worth of a message: the fields a submit_sm / deliver_sm / data_sm needs from segmentation.

    ``short_message``: header octets (when ``esm_class_udhi``) then user data; empty in PAYLOAD mode.
    ``data_coding``: as given to the splitter, the same on every part.
    ``esm_class_udhi``: the caller must OR 0x40 into esm_class when true.
    ``sar``: the SAR TLV values, in SAR mode with more than one part; otherwise None.
    ``message_payload``: the message_payload TLV value in PAYLOAD mode (header included when
    ``esm_class_udhi``); otherwise None.
    """

    short_message: bytes
    data_coding: int
    esm_class_udhi: bool = False
    sar: SarInfo | None = None
    message_payload: bytes | None = None


def segment_capacity(data_coding: int, header_octets: int = 0) -> int:
    """User data one part holds beside a header of ``header_octets`` (UDHL included; 0 for no header).

    In septets for GSM 7-bit (one octet each, unpacked), in octets otherwise. For UCS-2 the octet figure may
    be odd; parts are still cut between characters.
    """
    if text_alphabet(data_coding) is DataCoding.SMSC_DEFAULT:
        return MAX_USER_DATA_SEPTETS - (gsm7.header_septets(header_octets) if header_octets else 0)
    return MAX_USER_DATA_OCTETS - header_octets


def split_text(
    text: str,
    data_coding: int,
    mode: SegmentationMode,
    *,
    reference: int = 0,
    ports: PortAddressing | None = None,
) -> list[Segment]:
    """Encode ``text`` in ``data_coding`` (:func:`~carrier_sim.smpp.coding.encode_text`) and split it.

    Raises :class:`~carrier_sim.smpp.errors.TextCodingError` if the text does not fit the coding, and
    what :func:`split_message` raises.
    """
    return split_message(encode_text(text, data_coding), data_coding, mode, reference=reference, ports=ports)


def split_message(
    data: bytes,
    data_coding: int,
    mode: SegmentationMode,
    *,
    reference: int = 0,
    ports: PortAddressing | None = None,
) -> list[Segment]:
    """Split encoded user data (text octets in ``data_coding``, or binary) into segments.

    A message that fits one part gives one segment with no concatenation header and no SAR TLVs (in
    PAYLOAD mode, always one segment carrying message_payload). ``ports`` adds an application port
    addressing IE to every part's header, beside the concatenation IE, and the capacity shrinks to match.
    ``reference`` is the concatenation reference (0..255 for UDH_CONCAT_8, 0..65535 otherwise).

    Raises :class:`SegmentationError` for a reference out of range and :class:`TooManySegments` past 255
    parts (or 65535 octets of message_payload).
    """
    limit = 0xFF if mode is SegmentationMode.UDH_CONCAT_8 else 0xFFFF
    if not 0 <= reference <= limit:
        raise SegmentationError(f"reference {reference} is out of range 0..{limit} for {mode.name}")
    port_elements: tuple[InformationElement, ...] = (ports.to_element(),) if ports is not None else ()
    bits: Literal[8, 16] = 8 if mode is SegmentationMode.UDH_CONCAT_8 else 16

    if mode is SegmentationMode.PAYLOAD:
        payload = (Udh(port_elements).to_bytes() if port_elements else b"") + data
        if len(payload) > MAX_MESSAGE_PAYLOAD_OCTETS:
            raise TooManySegments(
                f"message_payload of {len(payload)} octets exceeds {MAX_MESSAGE_PAYLOAD_OCTETS}"
            )
        return [Segment(b"", data_coding, bool(port_elements), None, payload)]

    port_header = Udh(port_elements).to_bytes() if port_elements else b""
    if len(data) <= segment_capacity(data_coding, len(port_header)):
        return [Segment(port_header + data, data_coding, bool(port_elements))]

    if mode is SegmentationMode.SAR:
        capacity = segment_capacity(data_coding, len(port_header))
    else:
        # The concatenation IE's size does not depend on its values; measure it with a placeholder.
        concat_octets = len(Concatenation(0, 1, 1, bits).to_element().to_bytes())
        header_octets = (len(port_header) or 1) + concat_octets
        capacity = segment_capacity(data_coding, header_octets)
    if len(data) > MAX_SEGMENTS * capacity:
        raise TooManySegments(f"{len(data)} units need more than {MAX_SEGMENTS} parts of {capacity}")
    chunks = list(_chunks(data, _unit_lengths(data, data_coding), capacity))
    if len(chunks) > MAX_SEGMENTS:
        raise TooManySegments(
            f"message needs {len(chunks)} parts; at most {MAX_SEGMENTS} can be tied together"
        )

    total = len(chunks)
    segments: list[Segment] = []
    for sequence, chunk in enumerate(chunks, start=1):
        if mode is SegmentationMode.SAR:
            sar = SarInfo(reference, total, sequence)
            segments.append(Segment(port_header + chunk, data_coding, bool(port_elements), sar))
        else:
            concat = Concatenation(reference, total, sequence, bits)
            header = Udh((*port_elements, concat.to_element())).to_bytes()
            segments.append(Segment(header + chunk, data_coding, True))
    return segments


def _unit_lengths(data: bytes, data_coding: int) -> list[int] | None:
    """Lengths of the indivisible units of ``data``, or None when every octet is one."""
    alphabet = text_alphabet(data_coding)
    lengths: list[int] = []
    index = 0
    size = len(data)
    if alphabet is DataCoding.SMSC_DEFAULT:
        while index < size:
            # An escape and the extension code after it are one character (TS 23.038 6.2.1.1).
            step = 2 if data[index] == gsm7.ESCAPE and index + 1 < size else 1
            lengths.append(step)
            index += step
        return lengths
    if alphabet is DataCoding.UCS2:
        while index < size:
            step = min(2, size - index)
            if (
                step == 2
                and 0xD8 <= data[index] <= 0xDB
                and index + 3 < size
                and 0xDC <= data[index + 2] <= 0xDF
            ):
                step = 4  # a high surrogate and the low surrogate after it are one character
            lengths.append(step)
            index += step
        return lengths
    return None


def _chunks(data: bytes, units: list[int] | None, capacity: int) -> Iterator[bytes]:
    """Greedy cuts of at most ``capacity`` octets, only between units."""
    if units is None:
        for start in range(0, len(data), capacity):
            yield data[start : start + capacity]
        return
    start = 0
    end = 0
    for length in units:
        if end + length - start > capacity:
            yield data[start:end]
            start = end
        end += length
    if end > start:
        yield data[start:end]
