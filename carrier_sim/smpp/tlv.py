"""The table of every standard SMPP 3.4 and 5.0 TLV (optional parameter), and its value codec.

A TLV is tag (2 octets), length (2 octets) and value. Each standard tag has a typed value here: an ``int`` for
the spec's "Integer" TLVs, a ``str`` for "C-Octet String" ones (NUL written by the codec), ``bytes`` for
"Octet String" ones, and small named tuples for the few composite values (network_error_code,
broadcast_content_type, broadcast_frequency_interval, broadcast_area_identifier). Tags the table does not know
(vendor-specific 0x1400-0x3FFF, reserved ones, future ones) are kept as raw ``bytes`` so that a PDU relayed
through the emulator is byte-exact, in the order it arrived.

Sources: SMPP 3.4 section 5.3.2 (TLV definitions) and SMPP 5.0 section 4.8.4 (table 4-60 tag values).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import (
    InvalidOptionalParameterValue,
    InvalidParameterLength,
    LocalProtocolError,
)

__all__ = [
    "TLV_BY_NAME",
    "TLV_BY_TAG",
    "BroadcastAreaIdentifier",
    "BroadcastContentType",
    "BroadcastFrequencyInterval",
    "FrequencyUnit",
    "NetworkErrorCode",
    "NetworkType",
    "TlvKind",
    "TlvSpec",
    "TlvValue",
    "check_broadcast_values",
    "decode_tlv_value",
    "encode_tlv_value",
    "tag_of",
]


class NetworkType(enum.IntEnum):
    """Network type octet of network_error_code (SMPP 3.4 section 5.3.2.31); 9..255 are reserved."""

    ANSI_136_ACCESS_DENIED_REASON = 1
    IS_95_ACCESS_DENIED_REASON = 2
    GSM = 3
    ANSI_136_CAUSE_CODE = 4
    IS_95_CAUSE_CODE = 5
    ANSI_41_ERROR = 6
    SMPP_ERROR = 7
    MESSAGE_CENTER_SPECIFIC = 8


@dataclass(frozen=True, slots=True)
class NetworkErrorCode:
    """The network_error_code TLV value (SMPP 3.4 section 5.3.2.31): "Network Type" (1 octet) followed by
    "Error Code" (2 octets, big-endian like every SMPP integer).

    ``network_type`` is kept as a plain int so that reserved or vendor values read from the wire survive a relay;
    :attr:`known_type` names it when it is defined.
    """

    network_type: int
    error_code: int

    #: Fixed TLV length: "Length 3" in section 5.3.2.31.
    LENGTH: ClassVar[int] = 3

    def __post_init__(self) -> None:
        if not 0 <= self.network_type <= 0xFF or not 0 <= self.error_code <= 0xFFFF:
            raise LocalProtocolError(
                f"network_error_code ({self.network_type}, {self.error_code}) does not fit 1 + 2 octets"
            )

    @property
    def known_type(self) -> NetworkType | None:
        """The network type as a :class:`NetworkType`, or None for a reserved value."""
        try:
            return NetworkType(self.network_type)
        except ValueError:
            return None

    def to_bytes(self) -> bytes:
        """The 3-octet TLV value."""
        return bytes((self.network_type,)) + self.error_code.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> NetworkErrorCode:
        """Read the 3-octet TLV value; any other length raises InvalidParameterLength (ESME_RINVPARLEN)."""
        if len(data) != cls.LENGTH:
            raise InvalidParameterLength(f"network_error_code is {len(data)} octets, must be {cls.LENGTH}")
        return cls(data[0], int.from_bytes(data[1:3], "big"))


class BroadcastContentType(NamedTuple):
    """broadcast_content_type (SMPP 5.0 4.8.4.8): network type (0 generic, 1 GSM, 2 TDMA, 3 CDMA) and a
    2-octet content type."""

    network_type: int
    content_type: int


class BroadcastFrequencyInterval(NamedTuple):
    """broadcast_frequency_interval (SMPP 5.0 4.8.4.11): time unit (0x00 as frequently as possible,
    0x08 seconds, 0x09 minutes, ...) and a 2-octet number of units."""

    unit: int
    value: int


class FrequencyUnit(enum.IntEnum):
    """The time unit of broadcast_frequency_interval (SMPP 5.0 4.8.4.11); 0x01..0x07 and 0x0F..0xFF are not
    defined."""

    AS_FREQUENTLY_AS_POSSIBLE = 0x00
    SECONDS = 0x08
    MINUTES = 0x09
    HOURS = 0x0A
    DAYS = 0x0B
    WEEKS = 0x0C
    MONTHS = 0x0D
    YEARS = 0x0E


class BroadcastAreaIdentifier(NamedTuple):
    """broadcast_area_identifier (SMPP 5.0 4.8.4.4): area format (0 alias/name, 1 ellipsoid arc, 2 polygon)
    and the area's octets."""

    area_format: int
    area: bytes


TlvValue = int | str | bytes | NetworkErrorCode | BroadcastContentType | BroadcastFrequencyInterval | (
    BroadcastAreaIdentifier
)


class TlvKind(enum.Enum):
    """How a TLV's value is laid out on the wire."""

    INT1 = "Integer 1"
    INT2 = "Integer 2"
    INT4 = "Integer 4"
    COCTET = "C-Octet String"
    OCTET = "Octet String"
    NETWORK_ERROR = "network_error_code"
    CONTENT_TYPE = "broadcast_content_type"
    FREQUENCY = "broadcast_frequency_interval"
    AREA = "broadcast_area_identifier"


@dataclass(frozen=True, slots=True)
class TlvSpec:
    """One row of the TLV table: tag, spec name, value layout and allowed value lengths (octets).

    A value's length lies in ``min_length..max_length``; ``lengths``, when set, names the only lengths allowed
    inside that range, for the TLV whose legal lengths have a gap (ms_validity: 1 or 4, never 2 or 3). Ask
    :meth:`allows` rather than comparing with the bounds, so that the gap is never forgotten.
    """

    tag: int
    name: str
    kind: TlvKind
    min_length: int
    max_length: int
    version: str = "3.4"
    lengths: frozenset[int] | None = None

    def __post_init__(self) -> None:
        if self.lengths is not None and (
            not self.lengths or min(self.lengths) != self.min_length or max(self.lengths) != self.max_length
        ):
            raise ValueError(f"{self.name}: lengths {sorted(self.lengths)} must span min_length..max_length")

    def allows(self, length: int) -> bool:
        """Whether a value of ``length`` octets is legal for this TLV."""
        if self.lengths is not None:
            return length in self.lengths
        return self.min_length <= length <= self.max_length

    @property
    def lengths_text(self) -> str:
        """The allowed lengths as the reference page and error messages write them: ``3``, ``0..255``, ``1 or 4``."""
        if self.lengths is not None:
            *head, last = (str(n) for n in sorted(self.lengths))
            return f"{', '.join(head)} or {last}" if head else last
        if self.min_length == self.max_length:
            return str(self.min_length)
        return f"{self.min_length}..{self.max_length}"


def _int(tag: int, name: str, size: int, version: str = "3.4") -> TlvSpec:
    kind = {1: TlvKind.INT1, 2: TlvKind.INT2, 4: TlvKind.INT4}[size]
    return TlvSpec(tag, name, kind, size, size, version)


def _octets(tag: int, name: str, lo: int, hi: int, version: str = "3.4") -> TlvSpec:
    return TlvSpec(tag, name, TlvKind.OCTET, lo, hi, version)


def _cstr(tag: int, name: str, hi: int, version: str = "3.4") -> TlvSpec:
    # A C-Octet String value holds at least its terminating NUL.
    return TlvSpec(tag, name, TlvKind.COCTET, 1, hi, version)


_TABLE: tuple[TlvSpec, ...] = (
    _int(0x0005, "dest_addr_subunit", 1),
    _int(0x0006, "dest_network_type", 1),
    _int(0x0007, "dest_bearer_type", 1),
    _int(0x0008, "dest_telematics_id", 2),
    _int(0x000D, "source_addr_subunit", 1),
    _int(0x000E, "source_network_type", 1),
    _int(0x000F, "source_bearer_type", 1),
    _int(0x0010, "source_telematics_id", 1),
    _int(0x0017, "qos_time_to_live", 4),
    _int(0x0019, "payload_type", 1),
    _cstr(0x001D, "additional_status_info_text", 256),
    _cstr(0x001E, "receipted_message_id", 65),
    _int(0x0030, "ms_msg_wait_facilities", 1),
    _int(0x0201, "privacy_indicator", 1),
    _octets(0x0202, "source_subaddress", 2, 23),
    _octets(0x0203, "dest_subaddress", 2, 23),
    _int(0x0204, "user_message_reference", 2),
    _int(0x0205, "user_response_code", 1),
    _int(0x020A, "source_port", 2),
    _int(0x020B, "destination_port", 2),
    _int(0x020C, "sar_msg_ref_num", 2),
    _int(0x020D, "language_indicator", 1),
    _int(0x020E, "sar_total_segments", 1),
    _int(0x020F, "sar_segment_seqnum", 1),
    _int(0x0210, "sc_interface_version", 1),
    _int(0x0302, "callback_num_pres_ind", 1),
    _octets(0x0303, "callback_num_atag", 0, 65),
    _int(0x0304, "number_of_messages", 1),
    _octets(0x0381, "callback_num", 4, 19),
    _int(0x0420, "dpf_result", 1),
    _int(0x0421, "set_dpf", 1),
    _int(0x0422, "ms_availability_status", 1),
    TlvSpec(0x0423, "network_error_code", TlvKind.NETWORK_ERROR, 3, 3),
    # message_payload may carry up to 64K octets (SMPP 3.4 5.3.2.32).
    _octets(0x0424, "message_payload", 0, 0xFFFF),
    _int(0x0425, "delivery_failure_reason", 1),
    _int(0x0426, "more_messages_to_send", 1),
    _int(0x0427, "message_state", 1),
    _int(0x0428, "congestion_state", 1, "5.0"),
    _int(0x0501, "ussd_service_op", 1),
    _int(0x0600, "broadcast_channel_indicator", 1, "5.0"),
    TlvSpec(0x0601, "broadcast_content_type", TlvKind.CONTENT_TYPE, 3, 3, "5.0"),
    _octets(0x0602, "broadcast_content_type_info", 0, 255, "5.0"),
    _int(0x0603, "broadcast_message_class", 1, "5.0"),
    _int(0x0604, "broadcast_rep_num", 2, "5.0"),
    TlvSpec(0x0605, "broadcast_frequency_interval", TlvKind.FREQUENCY, 3, 3, "5.0"),
    TlvSpec(0x0606, "broadcast_area_identifier", TlvKind.AREA, 1, 101, "5.0"),
    _int(0x0607, "broadcast_error_status", 4, "5.0"),
    _int(0x0608, "broadcast_area_success", 1, "5.0"),
    _cstr(0x0609, "broadcast_end_time", 17, "5.0"),
    _octets(0x060A, "broadcast_service_group", 0, 255, "5.0"),
    _octets(0x060B, "billing_identification", 0, 1024, "5.0"),
    _cstr(0x060D, "source_network_id", 65, "5.0"),
    _cstr(0x060E, "dest_network_id", 65, "5.0"),
    _octets(0x060F, "source_node_id", 6, 6, "5.0"),
    _octets(0x0610, "dest_node_id", 6, 6, "5.0"),
    _int(0x0611, "dest_addr_np_resolution", 1, "5.0"),
    _octets(0x0612, "dest_addr_np_information", 10, 10, "5.0"),
    _octets(0x0613, "dest_addr_np_country", 5, 5, "5.0"),
    _int(0x1201, "display_time", 1),
    _int(0x1203, "sms_signal", 2),
    # SMPP 3.4 5.3.2.27: "validity behaviour", 1 octet. SMPP 5.0 4.8.4.40 may add "validity information":
    # "units of time" (1 octet) and "number of time units" (2 octets). So 1 or 4 octets: 2 or 3 is neither form.
    TlvSpec(0x1204, "ms_validity", TlvKind.OCTET, 1, 4, lengths=frozenset({1, 4})),
    # SMPP 3.4 gives alert_on_message_delivery no value; SMPP 5.0 allows an optional 1-octet one.
    _octets(0x130C, "alert_on_message_delivery", 0, 1),
    _int(0x1380, "its_reply_type", 1),
    _octets(0x1383, "its_session_info", 2, 2),
)

TLV_BY_TAG: Mapping[int, TlvSpec] = {spec.tag: spec for spec in _TABLE}
TLV_BY_NAME: Mapping[str, TlvSpec] = {spec.name: spec for spec in _TABLE}


def tag_of(name_or_tag: str | int) -> int:
    """The numeric tag for a spec name (or a tag given as a number, returned unchanged)."""
    if isinstance(name_or_tag, int):
        return name_or_tag
    try:
        return TLV_BY_NAME[name_or_tag].tag
    except KeyError:
        raise LocalProtocolError(f"no standard TLV is named {name_or_tag!r}") from None


def decode_tlv_value(tag: int, raw: bytes) -> TlvValue:
    """The typed value of a TLV; raw bytes for a tag the table does not know.

    Raises InvalidParameterLength when the length is not one the tag allows (ESME_RINVPARLEN) and
    InvalidOptionalParameterValue when the octets cannot be the value (ESME_RINVOPTPARAMVAL).
    """
    spec = TLV_BY_TAG.get(tag)
    if spec is None:
        return raw
    n = len(raw)
    if not spec.allows(n):
        raise InvalidParameterLength(f"{spec.name} has length {n}, allowed {spec.lengths_text}")
    kind = spec.kind
    if kind is TlvKind.INT1 or kind is TlvKind.INT2 or kind is TlvKind.INT4:
        return int.from_bytes(raw, "big")
    if kind is TlvKind.OCTET:
        return raw
    if kind is TlvKind.COCTET:
        if raw[-1] != 0 or 0 in raw[:-1]:
            raise InvalidOptionalParameterValue(f"{spec.name} is not a NUL-terminated C-Octet String")
        return raw[:-1].decode("latin-1")
    if kind is TlvKind.NETWORK_ERROR:
        return NetworkErrorCode.from_bytes(raw)
    if kind is TlvKind.CONTENT_TYPE:
        return BroadcastContentType(raw[0], int.from_bytes(raw[1:3], "big"))
    if kind is TlvKind.FREQUENCY:
        return BroadcastFrequencyInterval(raw[0], int.from_bytes(raw[1:3], "big"))
    return BroadcastAreaIdentifier(raw[0], raw[1:])


_FREQUENCY_UNITS: frozenset[int] = frozenset(FrequencyUnit)

#: SMPP 5.0 4.8.4: what each broadcast TLV's value may be, and the command_status (5.0 4.7.6) that
#: answers one outside it -- one row per check, in the order they are made. The codec decodes any value (a relay
#: must pass on what it is given); whether to refuse an undefined one is the receiver's decision, which
#: :func:`check_broadcast_values` makes for an SMSC. The 2-octet content type of broadcast_content_type is not
#: checked: operators assign values of their own there, and published tables of it disagree.
_BROADCAST_VALUE_RULES: Mapping[int, tuple[tuple[Callable[[TlvValue], bool], CommandStatus, str], ...]] = {
    # 4.8.4.4 broadcast_area_identifier: format 0x00 alias/name, 0x01 ellipsoid arc, 0x02 polygon.
    TLV_BY_NAME["broadcast_area_identifier"].tag: (
        (lambda v: isinstance(v, BroadcastAreaIdentifier) and v.area_format in (0, 1, 2),
         CommandStatus.ESME_RINVBCASTAREAFMT, "broadcast_area_identifier format is not 0, 1 or 2"),
        # An alias/name area with no name names no area.
        (lambda v: isinstance(v, BroadcastAreaIdentifier) and (v.area_format != 0 or bool(v.area)),
         CommandStatus.ESME_RINVBCASTALIAS_NAME, "broadcast_area_identifier alias/name is empty"),
    ),
    # 4.8.4.11 broadcast_frequency_interval: a defined unit, and (our choice, as an SMSC that must schedule the
    # repetitions would) at least one of it: "every 0 minutes" is no interval; 0x00 says "as often as possible".
    TLV_BY_NAME["broadcast_frequency_interval"].tag: (
        (lambda v: isinstance(v, BroadcastFrequencyInterval) and v.unit in _FREQUENCY_UNITS,
         CommandStatus.ESME_RINVBCASTFREQINT, "broadcast_frequency_interval unit is not defined"),
        (lambda v: isinstance(v, BroadcastFrequencyInterval)
         and (v.unit == FrequencyUnit.AS_FREQUENTLY_AS_POSSIBLE or v.value > 0),
         CommandStatus.ESME_RINVBCASTFREQINT, "broadcast_frequency_interval is 0 units"),
    ),
    # 4.8.4.8 broadcast_content_type: network type 0 generic, 1 GSM, 2 TDMA, 3 CDMA.
    TLV_BY_NAME["broadcast_content_type"].tag: (
        (lambda v: isinstance(v, BroadcastContentType) and v.network_type in (0, 1, 2, 3),
         CommandStatus.ESME_RINVBCASTCNTTYPE, "broadcast_content_type network type is not 0..3"),
    ),
    # 4.8.4.12 broadcast_message_class: 0x00 no class, 0x01..0x03 classes 1..3.
    TLV_BY_NAME["broadcast_message_class"].tag: (
        (lambda v: v in (0, 1, 2, 3), CommandStatus.ESME_RINVBCASTMSGCLASS, "broadcast_message_class is not 0..3"),
    ),
    # 4.8.4.7 broadcast_channel_indicator: 0 basic, 1 extended.
    TLV_BY_NAME["broadcast_channel_indicator"].tag: (
        (lambda v: v in (0, 1), CommandStatus.ESME_RINVBCASTCHANIND, "broadcast_channel_indicator is not 0 or 1"),
    ),
}


def check_broadcast_values(tlvs: Iterable[tuple[int, TlvValue]]) -> None:
    """Raise InvalidOptionalParameterValue, carrying the dedicated SMPP 5.0 command_status (ESME_RINVBCASTAREAFMT,
    ESME_RINVBCASTFREQINT, ...), for the first broadcast TLV among ``tlvs`` whose value SMPP 5.0 4.8.4 does not
    define. Other TLVs pass unlooked-at."""
    for tag, value in tlvs:
        for defined, status, reason in _BROADCAST_VALUE_RULES.get(tag, ()):
            if not defined(value):
                raise InvalidOptionalParameterValue(f"{reason}: {value!r}", command_status=status)


def _fits(value: int, size: int, name: str) -> bytes:
    if not 0 <= value < 1 << (8 * size):
        raise LocalProtocolError(f"{name}={value} does not fit {size} octet(s)")
    return value.to_bytes(size, "big")


def encode_tlv_value(tag: int, value: TlvValue) -> bytes:
    """The value octets of a TLV (without tag and length). Raises LocalProtocolError on a value of the wrong
    type or size, so that nothing illegal reaches the wire."""
    spec = TLV_BY_TAG.get(tag)
    if spec is None:
        if not isinstance(value, bytes):
            raise LocalProtocolError(f"unknown TLV 0x{tag:04x} needs a bytes value")
        raw = value
    else:
        raw = _encode_known(spec, value)
    if spec is not None and not spec.allows(len(raw)):
        raise LocalProtocolError(f"{spec.name} value is {len(raw)} octets, allowed {spec.lengths_text}")
    if len(raw) > 0xFFFF:
        raise LocalProtocolError(f"TLV 0x{tag:04x} value exceeds 65535 octets")
    return raw


def _encode_known(spec: TlvSpec, value: TlvValue) -> bytes:
    kind = spec.kind
    if kind in (TlvKind.INT1, TlvKind.INT2, TlvKind.INT4):
        if not isinstance(value, int) or isinstance(value, bool | tuple):
            raise LocalProtocolError(f"{spec.name} needs an int")
        return _fits(value, spec.min_length, spec.name)
    if kind is TlvKind.OCTET:
        if not isinstance(value, bytes):
            raise LocalProtocolError(f"{spec.name} needs bytes")
        return value
    if kind is TlvKind.COCTET:
        if not isinstance(value, str) or "\x00" in value:
            raise LocalProtocolError(f"{spec.name} needs a str without NUL")
        try:
            return value.encode("latin-1") + b"\x00"
        except UnicodeEncodeError:
            raise LocalProtocolError(f"{spec.name} must be Latin-1 text") from None
    if kind is TlvKind.AREA:
        if not isinstance(value, BroadcastAreaIdentifier):
            raise LocalProtocolError(f"{spec.name} needs a BroadcastAreaIdentifier")
        return _fits(value.area_format, 1, spec.name) + value.area
    if kind is TlvKind.NETWORK_ERROR:
        if not isinstance(value, NetworkErrorCode):
            raise LocalProtocolError(f"{spec.name} needs a NetworkErrorCode")
        return value.to_bytes()
    expected = {
        TlvKind.CONTENT_TYPE: BroadcastContentType,
        TlvKind.FREQUENCY: BroadcastFrequencyInterval,
    }[kind]
    if not isinstance(value, expected):
        raise LocalProtocolError(f"{spec.name} needs a {expected.__name__}")
    first, second = value
    assert isinstance(first, int)
    assert isinstance(second, int)
    return _fits(first, 1, spec.name) + _fits(second, 2, spec.name)


