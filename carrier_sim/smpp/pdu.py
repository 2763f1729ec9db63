"""The PDU value: header, mandatory fields by spec name, TLVs in wire order.

A :class:`Pdu` is plain data. Mandatory fields live in ``params`` keyed by their spec names (see
:mod:`carrier_sim.smpp.pdu_table`); the length and count fields (sm_length, number_of_dests, no_unsuccess) are
not stored because the codec derives them, so a Pdu can never disagree with itself. TLVs are an ordered tuple
of ``(tag, value)`` so that unknown and vendor-specific ones survive byte-exact and in order.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError
from carrier_sim.smpp.pdu_table import PDU_TABLE, FieldKind, PduSpec
from carrier_sim.smpp.tlv import TLV_BY_TAG, TlvValue, tag_of

__all__ = [
    "DistributionList",
    "ParamValue",
    "Pdu",
    "SmeAddress",
    "UnsuccessSme",
    "default_params",
]


@dataclass(frozen=True, slots=True)
class SmeAddress:
    """A dest_address entry with dest_flag 1 (SME address), SMPP 3.4 section 4.5.1.1."""

    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str


@dataclass(frozen=True, slots=True)
class DistributionList:
    """A dest_address entry with dest_flag 2 (distribution list name), SMPP 3.4 section 4.5.1.2."""

    dl_name: str


@dataclass(frozen=True, slots=True)
class UnsuccessSme:
    """One entry of submit_multi_resp's unsuccess_sme list, SMPP 3.4 section 4.5.2.1."""

    dest_addr_ton: int
    dest_addr_npi: int
    destination_addr: str
    error_status_code: int


ParamValue = int | str | bytes | tuple[SmeAddress | DistributionList, ...] | tuple[UnsuccessSme, ...]


_DEFAULTS: dict[FieldKind, ParamValue] = {
    FieldKind.INT1: 0,
    FieldKind.INT4: 0,
    FieldKind.COCTET: "",
    FieldKind.TIME: "",
    FieldKind.OCTETS: b"",
    FieldKind.DEST_ADDRESSES: (),
    FieldKind.UNSUCCESS_SMES: (),
}


def _null_params(spec: PduSpec) -> dict[str, ParamValue]:
    return {f.name: _DEFAULTS[f.kind] for f in spec.fields}


#: One NULL body per command, built once; handed out only as copies (the values are immutable, so a shallow
#: copy is a full one).
_NULL_PARAMS: dict[int, dict[str, ParamValue]] = {command: _null_params(spec) for command, spec in PDU_TABLE.items()}


def default_params(spec: PduSpec) -> dict[str, ParamValue]:
    """Every mandatory field of a PDU at its NULL/zero value (a fresh dict the caller may change)."""
    null = _NULL_PARAMS.get(spec.command_id)
    if null is None or PDU_TABLE.get(spec.command_id) is not spec:  # a row built outside the table
        return _null_params(spec)
    return null.copy()


@dataclass(slots=True)
class Pdu:
    """One SMPP PDU.

    Build one with :meth:`Pdu.make`, which fills unnamed fields with their NULL values and checks names, so a
    typo is a :class:`LocalProtocolError` rather than a silently missing field.
    """

    command_id: CommandId
    sequence_number: int
    command_status: int = CommandStatus.ESME_ROK
    params: dict[str, ParamValue] = field(default_factory=dict)
    tlvs: tuple[tuple[int, TlvValue], ...] = ()

    @classmethod
    def make(
        cls,
        command_id: CommandId,
        sequence_number: int,
        command_status: int = CommandStatus.ESME_ROK,
        *,
        tlvs: Mapping[str | int, TlvValue] | tuple[tuple[int, TlvValue], ...] = (),
        **params: Any,
    ) -> Pdu:
        """A PDU with the given fields (by spec name) and TLVs (by spec name or tag); others at NULL."""
        return cls.build(command_id, sequence_number, command_status, tlvs, params)

    @classmethod
    def build(
        cls,
        command_id: CommandId,
        sequence_number: int,
        command_status: int,
        tlvs: Mapping[str | int, TlvValue] | tuple[tuple[int, TlvValue], ...],
        params: dict[str, Any],
    ) -> Pdu:
        """:meth:`make` with the fields already in a dict (``params`` is read, never kept): for callers that build
        one PDU per message, which need not pack and unpack keyword arguments."""
        null = _NULL_PARAMS.get(command_id)
        values = default_params(PDU_TABLE[command_id]) if null is None else null.copy()
        if params:
            size = len(values)
            values.update(params)
            if len(values) != size:  # a name that is not a field of the command added a key
                known = default_params(PDU_TABLE[command_id])
                for name in params:
                    if name not in known:
                        raise LocalProtocolError(f"{command_id.name} has no field {name!r}")
        if not tlvs:
            pairs: tuple[tuple[int, TlvValue], ...] = ()
        else:
            # type() first: an isinstance check against the Mapping ABC is slow, and tuples are the common case;
            # a tag given as a plain int is what tag_of would return, without the call.
            items = tlvs if type(tlvs) is tuple else tlvs.items() if isinstance(tlvs, Mapping) else tlvs
            pairs = tuple([(k if type(k) is int else tag_of(k), v) for k, v in items])
        return cls(command_id, sequence_number, int(command_status), values, pairs)

    @property
    def spec(self) -> PduSpec:
        """The table row describing this PDU's body."""
        return PDU_TABLE[self.command_id]

    def __getitem__(self, name: str) -> ParamValue:
        return self.params[name]

    def tlv(self, name_or_tag: str | int, default: TlvValue | None = None) -> TlvValue | None:
        """The value of the first TLV with this name or tag, or ``default``."""
        tag = name_or_tag if type(name_or_tag) is int else tag_of(name_or_tag)
        for t, value in self.tlvs:
            if t == tag:
                return value
        return default

    def tlv_names(self) -> list[str]:
        """The TLVs present, by spec name (``0x1400``-style hex for unknown tags), in wire order."""
        return [TLV_BY_TAG[t].name if t in TLV_BY_TAG else f"0x{t:04x}" for t, _ in self.tlvs]

    def response(self, command_status: int = CommandStatus.ESME_ROK, **params: Any) -> Pdu:
        """The response PDU that answers this request, echoing its sequence_number."""
        resp = self.command_id.response
        if resp is None:
            raise LocalProtocolError(f"{self.command_id.name} has no response")
        return Pdu.build(resp, self.sequence_number, command_status, (), params)

    def with_sequence(self, sequence_number: int) -> Pdu:
        """A copy with another sequence number (the session assigns them)."""
        # What dataclasses.replace does, without its per-call introspection of the fields.
        return Pdu(self.command_id, sequence_number, self.command_status, self.params, self.tlvs)

    def __repr__(self) -> str:
        shown = {k: v for k, v in self.params.items() if v not in ("", 0, b"", ())}
        status = "" if not self.command_status else f" status=0x{self.command_status:08x}"
        tlvs = f" tlvs={self.tlv_names()}" if self.tlvs else ""
        return f"<Pdu {self.command_id.name} seq={self.sequence_number}{status} {shown}{tlvs}>"
