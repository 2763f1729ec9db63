"""scapy layers for SMPP, so that captures of the emulator's traffic can be dissected and built in Python.

scapy ships no SMPP layer. :class:`SMPP` is the 16-octet header (command_length, command_id, command_status,
sequence_number); the body follows as its payload, in a layer generated per command from
:data:`carrier_sim.smpp.pdu_table.PDU_TABLE` — field names and order come from the project's one table, never
from a list written here, so the dissector cannot drift from the codec. The TLV area is a list of
:class:`SMPPTLV` named from :data:`carrier_sim.smpp.tlv.TLV_BY_TAG`.

TCP is a stream: one segment may carry several PDUs. :meth:`SMPP.extract_padding` cuts the body at
command_length, and whatever follows is dissected as the next :class:`SMPP` when it holds a whole PDU, so a
segment reads as ``TCP / SMPP / body / SMPP / body ...`` (iterate with :func:`pdu_layers`). An incomplete tail
stays :class:`~scapy.packet.Padding`, which is also what scapy's ``TCPSession`` needs to keep it for the next
segment (see :meth:`SMPP.tcp_reassemble`).

These layers show what is on the wire; they do not validate it. To judge bytes, use :meth:`SMPP.to_pdu`, which
hands the PDU's octets to :func:`carrier_sim.smpp.codec.decode`, the single source of truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, cast

from scapy.fields import (
    AnyField,
    ByteEnumField,
    ByteField,
    ConditionalField,
    FieldLenField,
    IntEnumField,
    IntField,
    PacketListField,
    StrLenField,
    StrNullField,
    XShortEnumField,
)
from scapy.layers.inet import TCP
from scapy.packet import NoPayload, Packet, Padding, bind_layers

from carrier_sim.smpp.codec import HEADER_SIZE, decode, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.pdu_table import PDU_TABLE, FieldKind, PduSpec
from carrier_sim.smpp.pdu_table import Field as TableField
from carrier_sim.smpp.tlv import TLV_BY_TAG

__all__ = [
    "BODY_LAYERS",
    "SMPP",
    "SMPPTLV",
    "SMPP_PORT",
    "SMPPBody",
    "SMPPDestAddress",
    "SMPPUnsuccessSme",
    "pdu_layers",
]

#: The IANA-registered SMPP port; the layers are bound to it in both directions.
SMPP_PORT = 2775

_COMMAND_NAMES: dict[int, str] = {c.value: c.name for c in CommandId}
_STATUS_NAMES: dict[int, str] = {s.value: s.name for s in CommandStatus}
_TLV_NAMES: dict[int, str] = {tag: spec.name for tag, spec in TLV_BY_TAG.items()}


def _whole_pdu_at(data: bytes) -> bool:
    """True when ``data`` starts with a complete PDU (a sane command_length and that many octets)."""
    if len(data) < HEADER_SIZE:
        return False
    length = int.from_bytes(data[:4], "big")
    return HEADER_SIZE <= length <= len(data)


class SMPP(Packet):
    """The SMPP header (SMPP 3.4 section 3.2); the body is its payload.

    command_length may be left as None when building: it is then computed from the body that follows (and
    only that body — a following :class:`SMPP` in the same chain is the next PDU, not part of this one).
    """

    name = "SMPP"
    fields_desc: ClassVar[list[AnyField]] = [
        IntField("command_length", None),
        IntEnumField("command_id", CommandId.generic_nack.value, _COMMAND_NAMES),
        IntEnumField("command_status", CommandStatus.ESME_ROK.value, _STATUS_NAMES),
        IntField("sequence_number", 1),
    ]

    def _next_pdu(self) -> SMPP | None:
        """The next PDU of the chain (the PDU that follows this one's body in the same segment), if any."""
        layer = self.payload
        while not isinstance(layer, NoPayload):
            if isinstance(layer, SMPP):
                return layer
            layer = layer.payload
        return None

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        """Fill command_length with header + own body, excluding any following PDU."""
        if self.command_length is None:
            following = self._next_pdu()
            body_length = len(pay) - (len(bytes(following)) if following is not None else 0)
            pkt = (HEADER_SIZE + body_length).to_bytes(4, "big") + pkt[4:]
        return pkt + pay

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        """Split the octets after the header into this PDU's body and whatever follows it."""
        length = cast(int, self.command_length)
        body_length = max(length - HEADER_SIZE, 0)
        return s[:body_length], s[body_length:]

    def dissect(self, s: bytes) -> None:
        """Dissect header and body, then the next PDU of the segment if it is whole.

        scapy would turn everything after command_length into Padding; a TCP segment routinely holds several
        PDUs (a window of submit_sm, a burst of deliver_sm), so a whole PDU is dissected as SMPP instead.
        """
        s = self.pre_dissect(s)
        s = self.do_dissect(s)
        s = self.post_dissect(s)
        body, rest = self.extract_padding(s)
        self.do_dissect_payload(body)
        if rest:
            following: Packet = SMPP(rest) if _whole_pdu_at(rest) else Padding(rest)
            self.add_payload(following)

    def pdu_bytes(self) -> bytes:
        """This PDU's octets (header and body, without the PDUs that follow it in the chain)."""
        raw = bytes(self)
        return raw[: int.from_bytes(raw[:4], "big")]

    def to_pdu(self) -> Pdu:
        """This PDU decoded by the project's codec (raises its SmppError subclasses on bad bytes)."""
        return decode(self.pdu_bytes())

    @classmethod
    def from_pdu(cls, pdu: Pdu) -> SMPP:
        """The layer stack of a PDU encoded by the project's codec."""
        return cls(encode(pdu))

    @classmethod
    def tcp_reassemble(cls, data: bytes, metadata: dict[str, Any], session: dict[str, Any]) -> SMPP | None:
        """Hook for ``scapy.sessions.TCPSession``: a packet once the first PDU in ``data`` is complete.

        Returning None asks for more data; ``tcp_min_len`` tells the session how much to wait for.
        """
        if len(data) < HEADER_SIZE:
            return None
        length = int.from_bytes(data[:4], "big")
        if length < HEADER_SIZE:
            # Not SMPP framing; dissect what there is rather than wait forever for a length that cannot come.
            return cls(data)
        if len(data) < length:
            metadata["tcp_min_len"] = length
            return None
        return cls(data)


class SMPPBody(Packet):
    """Base class of the per-command body layers generated from the PDU table."""

    name = "SMPP body"


class SMPPTLV(Packet):
    """One optional parameter: tag, length, value (SMPP 3.4 section 3.2.4.1)."""

    name = "SMPP TLV"
    fields_desc: ClassVar[list[AnyField]] = [
        XShortEnumField("tag", 0, _TLV_NAMES),
        FieldLenField("length", None, length_of="value", fmt="H"),
        StrLenField("value", b"", length_from=lambda pkt: pkt.length),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        """A TLV ends at its value; the rest of the area belongs to the next TLV."""
        return b"", s


def _is_sme(pkt: Packet) -> bool:
    return bool(pkt.dest_flag == 1)


def _is_dl(pkt: Packet) -> bool:
    return bool(pkt.dest_flag == 2)


class SMPPDestAddress(Packet):
    """One dest_address of submit_multi: an SME address (dest_flag 1) or a distribution list (dest_flag 2).

    SMPP 3.4 section 4.5.1.1/4.5.1.2.
    """

    name = "SMPP dest_address"
    fields_desc: ClassVar[list[AnyField]] = [
        ByteEnumField("dest_flag", 1, {1: "SME_Address", 2: "Distribution_List"}),
        ConditionalField(ByteField("dest_addr_ton", 0), _is_sme),
        ConditionalField(ByteField("dest_addr_npi", 0), _is_sme),
        ConditionalField(StrNullField("destination_addr", b""), _is_sme),
        ConditionalField(StrNullField("dl_name", b""), _is_dl),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        """An entry ends at its last field; the rest belongs to the next entry."""
        return b"", s


class SMPPUnsuccessSme(Packet):
    """One unsuccess_sme of submit_multi_resp (SMPP 3.4 section 4.5.2.1)."""

    name = "SMPP unsuccess_sme"
    fields_desc: ClassVar[list[AnyField]] = [
        ByteField("dest_addr_ton", 0),
        ByteField("dest_addr_npi", 0),
        StrNullField("destination_addr", b""),
        IntEnumField("error_status_code", 0, _STATUS_NAMES),
    ]

    def extract_padding(self, s: bytes) -> tuple[bytes, bytes]:
        """An entry ends at its last field; the rest belongs to the next entry."""
        return b"", s


def _length_from(length_field: str) -> Callable[[Packet], int]:
    return lambda pkt: cast(int, pkt.getfieldval(length_field))


def _scapy_fields(field: TableField) -> list[AnyField]:
    """The scapy fields of one table field (a counted field brings its length or count field first)."""
    kind = field.kind
    if kind is FieldKind.INT1:
        return [ByteField(field.name, 0)]
    if kind is FieldKind.INT4:
        return [IntField(field.name, 0)]
    if kind in (FieldKind.COCTET, FieldKind.TIME):
        return [StrNullField(field.name, b"")]
    counter = field.length_field
    assert counter is not None, f"{field.name} is counted by a length field in the table"
    if kind is FieldKind.OCTETS:
        return [
            FieldLenField(counter, None, length_of=field.name, fmt="B"),
            StrLenField(field.name, b"", length_from=_length_from(counter)),
        ]
    entry = SMPPDestAddress if kind is FieldKind.DEST_ADDRESSES else SMPPUnsuccessSme
    return [
        FieldLenField(counter, None, count_of=field.name, fmt="B"),
        PacketListField(field.name, [], entry, count_from=_length_from(counter)),
    ]


def _body_layer(spec: PduSpec) -> type[SMPPBody]:
    fields: list[AnyField] = [f for table_field in spec.fields for f in _scapy_fields(table_field)]
    if spec.tlvs_allowed:
        # No count: the TLV area runs to the end of the body, which SMPP.extract_padding has already cut.
        fields.append(PacketListField("tlvs", [], SMPPTLV))
    name = spec.command_id.name
    layer = type(f"SMPP_{name}", (SMPPBody,), {"name": f"SMPP {name}", "fields_desc": fields})
    return cast(type[SMPPBody], layer)


#: The body layer of every command, generated from the PDU table.
BODY_LAYERS: Mapping[CommandId, type[SMPPBody]] = {
    spec.command_id: _body_layer(spec) for spec in PDU_TABLE.values()
}


def pdu_layers(packet: Packet) -> Iterator[SMPP]:
    """Every SMPP PDU in a dissected packet (a segment may hold several), in wire order."""
    layer = packet
    while not isinstance(layer, NoPayload):
        if isinstance(layer, SMPP):
            yield layer
        layer = layer.payload


for _command_id, _layer in BODY_LAYERS.items():
    # Both directions: dissection picks the body by command_id, and SMPP()/SMPP_submit_sm() sets command_id.
    bind_layers(SMPP, _layer, command_id=_command_id.value)
bind_layers(TCP, SMPP, sport=SMPP_PORT)
bind_layers(TCP, SMPP, dport=SMPP_PORT)
