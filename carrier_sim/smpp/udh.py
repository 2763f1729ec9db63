"""User Data Header: the information elements at the start of short_message (3GPP TS 23.040 section 9.2.3.24).

Theory: when esm_class has the UDHI bit (0x40, SMPP 3.4 section 5.2.12) set, short_message starts with a
User Data Header — UDHL, one octet giving the length of what follows, then information elements, each an
IEI octet, a length octet and that many octets of data. :class:`Udh` keeps the elements byte-exact and in
order, unknown IEIs included, so that a header read from one peer can be forwarded to another unchanged.
Typed views (:class:`Concatenation`, :class:`PortAddressing`) are derived on demand.

A handset receiving a malformed header ignores it (TS 23.040 section 9.2.3.24: "the whole User Data Header
shall be ignored"); an SMSC judging an ESME is stricter, so a header whose lengths do not add up, or a known
IE with the wrong length, raises :class:`InvalidUserDataHeader`. Values the spec tells the receiver to
ignore (a concatenation with 0 parts, or a sequence number beyond the total) are ignored, not errors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final, Literal

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError, PeerProtocolError

__all__ = [
    "ESM_CLASS_UDHI",
    "Concatenation",
    "Iei",
    "InformationElement",
    "InvalidUserDataHeader",
    "PortAddressing",
    "Udh",
    "split_udh",
    "split_user_data",
]

#: esm_class bit 6: "UDHI Indicator (only relevant for MT short messages)" (SMPP 3.4 section 5.2.12).
ESM_CLASS_UDHI: Final = 0x40


class Iei(enum.IntEnum):
    """Information Element Identifiers of TS 23.040 section 9.2.3.24 that this emulator names."""

    CONCATENATED_8BIT = 0x00
    SPECIAL_SMS_MESSAGE_INDICATION = 0x01
    APPLICATION_PORT_8BIT = 0x04
    APPLICATION_PORT_16BIT = 0x05
    SMSC_CONTROL_PARAMETERS = 0x06
    UDH_SOURCE_INDICATOR = 0x07
    CONCATENATED_16BIT = 0x08
    WIRELESS_CONTROL_MESSAGE_PROTOCOL = 0x09
    NATIONAL_LANGUAGE_SINGLE_SHIFT = 0x24
    NATIONAL_LANGUAGE_LOCKING_SHIFT = 0x25


# IEs whose data has one fixed length (TS 23.040 sections 9.2.3.24.1, .3, .4, .8).
_FIXED_LENGTH: Final[dict[int, int]] = {
    Iei.CONCATENATED_8BIT: 3,
    Iei.APPLICATION_PORT_8BIT: 2,
    Iei.APPLICATION_PORT_16BIT: 4,
    Iei.CONCATENATED_16BIT: 4,
}


class InvalidUserDataHeader(PeerProtocolError):
    """The UDH in short_message is malformed: UDHL or an IE length runs past its end, or a known IE is
    mis-sized.

    Answered with ESME_RINVMSGLEN: the lengths inside short_message disagree with its length.
    """

    command_status = CommandStatus.ESME_RINVMSGLEN


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One information element: its identifier and its data, exactly as on the wire."""

    iei: int
    data: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.iei <= 0xFF:
            raise LocalProtocolError(f"IEI {self.iei} does not fit an octet")
        if len(self.data) > 0xFF:
            raise LocalProtocolError(f"IE 0x{self.iei:02X} data of {len(self.data)} octets exceeds 255")

    def to_bytes(self) -> bytes:
        """IEI, length and data."""
        return bytes((self.iei, len(self.data))) + self.data


@dataclass(frozen=True, slots=True)
class Concatenation:
    """Concatenated short message IE (TS 23.040 sections 9.2.3.24.1 and 9.2.3.24.8).

    ``reference`` is the same for every part of one message; ``total`` is the number of parts (1..255);
    ``sequence`` is this part's number, from 1. ``reference_bits`` is 8 (IEI 0x00) or 16 (IEI 0x08).
    """

    reference: int
    total: int
    sequence: int
    reference_bits: Literal[8, 16] = 8

    def __post_init__(self) -> None:
        if not 0 <= self.reference < (1 << self.reference_bits):
            raise LocalProtocolError(f"reference {self.reference} does not fit {self.reference_bits} bits")
        if not 1 <= self.total <= 255:
            raise LocalProtocolError(f"total {self.total} is not 1..255")
        if not 1 <= self.sequence <= self.total:
            raise LocalProtocolError(f"sequence {self.sequence} is not 1..{self.total}")

    @classmethod
    def from_element(cls, element: InformationElement) -> Concatenation | None:
        """Read a concatenation IE; None if the spec says to ignore it.

        TS 23.040 9.2.3.24.1: for the maximum number "If the value is zero then the receiving entity shall
        ignore the whole Information Element"; for the sequence number "If the value is zero or greater than
        the value in octet 2 then the receiving entity shall ignore the whole Information Element".
        """
        if element.iei == Iei.CONCATENATED_8BIT:
            _check_length(element)
            reference, total, sequence = element.data
            bits: Literal[8, 16] = 8
        elif element.iei == Iei.CONCATENATED_16BIT:
            _check_length(element)
            reference = int.from_bytes(element.data[0:2], "big")
            total, sequence = element.data[2], element.data[3]
            bits = 16
        else:
            raise LocalProtocolError(f"IE 0x{element.iei:02X} is not a concatenation IE")
        if total == 0 or not 1 <= sequence <= total:
            return None
        return cls(reference, total, sequence, bits)

    def to_element(self) -> InformationElement:
        """The IE that carries this concatenation."""
        if self.reference_bits == 8:
            return InformationElement(
                Iei.CONCATENATED_8BIT, bytes((self.reference, self.total, self.sequence))
            )
        return InformationElement(
            Iei.CONCATENATED_16BIT, self.reference.to_bytes(2, "big") + bytes((self.total, self.sequence))
        )


@dataclass(frozen=True, slots=True)
class PortAddressing:
    """Application port addressing IE (TS 23.040 sections 9.2.3.24.3 8-bit and 9.2.3.24.4 16-bit).

    The wire order is destination port first, then originator port.
    """

    destination_port: int
    source_port: int
    port_bits: Literal[8, 16] = 16

    def __post_init__(self) -> None:
        limit = 1 << self.port_bits
        if not (0 <= self.destination_port < limit and 0 <= self.source_port < limit):
            raise LocalProtocolError(
                f"ports {self.destination_port}/{self.source_port} do not fit {self.port_bits} bits"
            )

    @classmethod
    def from_element(cls, element: InformationElement) -> PortAddressing:
        """Read a port addressing IE (IEI 0x04 or 0x05)."""
        if element.iei == Iei.APPLICATION_PORT_8BIT:
            _check_length(element)
            return cls(element.data[0], element.data[1], 8)
        if element.iei == Iei.APPLICATION_PORT_16BIT:
            _check_length(element)
            return cls(int.from_bytes(element.data[0:2], "big"), int.from_bytes(element.data[2:4], "big"), 16)
        raise LocalProtocolError(f"IE 0x{element.iei:02X} is not a port addressing IE")

    def to_element(self) -> InformationElement:
        """The IE that carries these ports."""
        if self.port_bits == 8:
            return InformationElement(
                Iei.APPLICATION_PORT_8BIT, bytes((self.destination_port, self.source_port))
            )
        return InformationElement(
            Iei.APPLICATION_PORT_16BIT,
            self.destination_port.to_bytes(2, "big") + self.source_port.to_bytes(2, "big"),
        )


def _check_length(element: InformationElement) -> None:
    expected = _FIXED_LENGTH.get(element.iei)
    if expected is not None and len(element.data) != expected:
        raise InvalidUserDataHeader(
            f"IE 0x{element.iei:02X} has {len(element.data)} octets of data, TS 23.040 requires {expected}"
        )


_CONCATENATION_IEIS: Final = frozenset({Iei.CONCATENATED_8BIT, Iei.CONCATENATED_16BIT})
_PORT_IEIS: Final = frozenset({Iei.APPLICATION_PORT_8BIT, Iei.APPLICATION_PORT_16BIT})


@dataclass(frozen=True, slots=True)
class Udh:
    """A User Data Header: information elements in wire order."""

    elements: tuple[InformationElement, ...] = ()

    @classmethod
    def of(cls, *parts: InformationElement | Concatenation | PortAddressing) -> Udh:
        """Build a header from elements or typed IEs, in the order given."""
        return cls(
            tuple(part if isinstance(part, InformationElement) else part.to_element() for part in parts)
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Udh:
        """Parse a complete header (UDHL octet included) that must span all of ``data``."""
        udh, rest = split_udh(data)
        if rest:
            raise InvalidUserDataHeader(f"UDHL {data[0]} leaves {len(rest)} octets after the header")
        return udh

    def to_bytes(self) -> bytes:
        """UDHL followed by every element."""
        body = b"".join(element.to_bytes() for element in self.elements)
        if len(body) > 0xFF:
            raise LocalProtocolError(f"UDH of {len(body)} octets does not fit UDHL")
        return bytes((len(body),)) + body

    @property
    def octet_length(self) -> int:
        """Octets the header takes in short_message, UDHL included."""
        return 1 + sum(2 + len(element.data) for element in self.elements)

    def find_all(self, iei: int) -> tuple[InformationElement, ...]:
        """Every element with identifier ``iei``, in order."""
        return tuple(element for element in self.elements if element.iei == iei)

    def without(self, *ieis: int) -> Udh:
        """This header less every element whose identifier is in ``ieis``."""
        return Udh(tuple(element for element in self.elements if element.iei not in ieis))

    @property
    def concatenation(self) -> Concatenation | None:
        """The concatenation IE (8- or 16-bit reference), or None if absent or to be ignored.

        TS 23.040 9.2.3.24: "In the event that IEs determined as not repeatable are duplicated, the last
        occurrence of the IE shall be used".
        """
        for element in reversed(self.elements):
            if element.iei in _CONCATENATION_IEIS:
                return Concatenation.from_element(element)
        return None

    @property
    def port_addressing(self) -> PortAddressing | None:
        """The application port addressing IE (8- or 16-bit), last occurrence, or None."""
        for element in reversed(self.elements):
            if element.iei in _PORT_IEIS:
                return PortAddressing.from_element(element)
        return None


def split_udh(short_message: bytes) -> tuple[Udh, bytes]:
    """Split a short_message whose UDHI bit is set into its header and the user data after it.

    Raises :class:`InvalidUserDataHeader` if there is no UDHL octet, if UDHL or an IE length runs past the
    end, or if an IE of fixed size (concatenation, port addressing) has another length.
    """
    if not short_message:
        raise InvalidUserDataHeader("UDHI is set but short_message is empty: no UDHL octet")
    end = 1 + short_message[0]
    if end > len(short_message):
        raise InvalidUserDataHeader(
            f"UDHL {short_message[0]} runs past the {len(short_message) - 1} octets after it"
        )
    elements: list[InformationElement] = []
    position = 1
    while position < end:
        if position + 2 > end:
            raise InvalidUserDataHeader(f"IE at offset {position} has no room for its IEI and length in UDHL")
        iei, length = short_message[position], short_message[position + 1]
        data_end = position + 2 + length
        if data_end > end:
            raise InvalidUserDataHeader(
                f"IE 0x{iei:02X} at offset {position} declares {length} octets, past the UDH end at {end}"
            )
        element = InformationElement(iei, short_message[position + 2 : data_end])
        _check_length(element)
        elements.append(element)
        position = data_end
    return Udh(tuple(elements)), short_message[end:]


def split_user_data(short_message: bytes, esm_class: int) -> tuple[Udh | None, bytes]:
    """Header (None unless esm_class has UDHI) and user data of a short_message."""
    if esm_class & ESM_CLASS_UDHI:
        return split_udh(short_message)
    return None, short_message
