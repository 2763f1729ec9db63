"""Encoder and decoder of whole PDUs, driven by :data:`~carrier_sim.smpp.pdu_table.PDU_TABLE`.

``encode(pdu) -> bytes`` and ``decode(frame) -> Pdu`` walk a PDU's row of the table; there is no per-command
code. Decoding never raises anything but :class:`~carrier_sim.smpp.errors.SmppError` subclasses, each carrying
the command_status the peer should see and, since the 16-octet header is read first, the offending
sequence_number and command_id.

Decoding rules worth stating (SMPP 3.4 section 3.1 and 4):
- command_length must equal the frame's size; the body must be consumed exactly (ESME_RINVCMDLEN otherwise).
- A C-Octet String must end with NUL within its maximum size (the field's own status, e.g. ESME_RINVSRCADR).
- A time field is NULL or exactly 16 characters plus NUL (ESME_RINVSCHED / ESME_RINVEXPIRY).
- sm_length may not exceed 254 nor the bytes left (ESME_RINVMSGLEN).
- A response carrying a non-zero command_status may come without body ("the body is not returned if the
  command_status field contains a non-zero value", SMPP 3.4 4.4.2); its fields then read as NULL.
- TLVs: a truncated tag/length/value is ESME_RINVOPTPARSTREAM, a length the tag forbids ESME_RINVPARLEN, a
  TLV where the PDU allows none ESME_ROPTPARNOTALLWD, a required one missing ESME_RMISSINGOPTPARAM.
"""

from __future__ import annotations

import struct
from typing import cast

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import (
    InvalidCommandId,
    InvalidCommandLength,
    InvalidField,
    InvalidOptionalParameterStream,
    LocalProtocolError,
    MessageLengthError,
    MissingOptionalParameter,
    SmppError,
)
from carrier_sim.smpp.pdu import (
    DistributionList,
    ParamValue,
    Pdu,
    SmeAddress,
    UnsuccessSme,
    default_params,
)
from carrier_sim.smpp.pdu_table import PDU_TABLE, Field, FieldKind, PduSpec
from carrier_sim.smpp.tlv import TLV_BY_NAME, TlvValue, decode_tlv_value, encode_tlv_value

__all__ = ["HEADER", "HEADER_SIZE", "decode", "decode_header", "encode"]

#: command_length, command_id, command_status, sequence_number — four big-endian unsigned 32-bit integers.
HEADER = struct.Struct(">IIII")
HEADER_SIZE = 16
_TLV_HEAD = struct.Struct(">HH")
_ERROR_STATUS = struct.Struct(">I")


def decode_header(frame: bytes | bytearray | memoryview) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) of a frame of at least 16 octets."""
    return cast(tuple[int, int, int, int], HEADER.unpack_from(frame, 0))


# ---------------------------------------------------------------------------------------------------- decode


class _Reader:
    """A cursor over a PDU body; every overrun becomes the status of the field being read."""

    __slots__ = ("buf", "end", "pos")

    def __init__(self, buf: bytes, pos: int, end: int) -> None:
        self.buf = buf
        self.pos = pos
        self.end = end

    def int1(self, f: Field) -> int:
        if self.pos >= self.end:
            raise InvalidCommandLength(f"body ends before {f.name}")
        v = self.buf[self.pos]
        self.pos += 1
        return v

    def int4(self, f: Field) -> int:
        if self.pos + 4 > self.end:
            raise InvalidCommandLength(f"body ends before {f.name}")
        (v,) = _ERROR_STATUS.unpack_from(self.buf, self.pos)
        self.pos += 4
        return int(v)

    def cstring(self, f: Field) -> str:
        if self.pos >= self.end:
            raise InvalidCommandLength(f"body ends before {f.name}")
        limit = min(self.end, self.pos + f.max_size)
        nul = self.buf.find(0, self.pos, limit)
        if nul < 0:
            raise InvalidField(
                f"{f.name} has no NUL within its {f.max_size} octets", command_status=f.error
            )
        value = self.buf[self.pos : nul].decode("latin-1")
        self.pos = nul + 1
        return value

    def time(self, f: Field) -> str:
        value = self.cstring(f)
        # SMPP 3.4 7.1: "either a NULL ... or a 16 character string" (YYMMDDhhmmsstnnp).
        if value and len(value) != 16:
            raise InvalidField(f"{f.name} must be NULL or 16 characters, got {len(value)}", command_status=f.error)
        return value

    def octets(self, f: Field, length: int) -> bytes:
        if length > f.max_size:
            raise MessageLengthError(f"{f.length_field}={length} exceeds {f.max_size}", command_status=f.error)
        if self.pos + length > self.end:
            raise MessageLengthError(
                f"{f.length_field}={length} but only {self.end - self.pos} octets follow", command_status=f.error
            )
        value = self.buf[self.pos : self.pos + length]
        self.pos += length
        return value


_ADDR_FIELDS = (
    Field("dest_addr_ton", FieldKind.INT1, 1, CommandStatus.ESME_RINVDSTTON),
    Field("dest_addr_npi", FieldKind.INT1, 1, CommandStatus.ESME_RINVDSTNPI),
    Field("destination_addr", FieldKind.COCTET, 21, CommandStatus.ESME_RINVDSTADR),
)
_DEST_FLAG = Field("dest_flag", FieldKind.INT1, 1, CommandStatus.ESME_RINVDESTFLAG)
_DL_NAME = Field("dl_name", FieldKind.COCTET, 21, CommandStatus.ESME_RINVDLNAME)
_ERROR_CODE = Field("error_status_code", FieldKind.INT4, 4)


def _read_dest_addresses(r: _Reader, count: int, f: Field) -> tuple[SmeAddress | DistributionList, ...]:
    if count > f.max_size:
        raise InvalidField(f"number_of_dests={count} exceeds {f.max_size}", command_status=f.error)
    out: list[SmeAddress | DistributionList] = []
    for _ in range(count):
        flag = r.int1(_DEST_FLAG)
        if flag == 1:
            out.append(SmeAddress(r.int1(_ADDR_FIELDS[0]), r.int1(_ADDR_FIELDS[1]), r.cstring(_ADDR_FIELDS[2])))
        elif flag == 2:
            out.append(DistributionList(r.cstring(_DL_NAME)))
        else:
            raise InvalidField(f"dest_flag {flag} is neither 1 nor 2", command_status=_DEST_FLAG.error)
    return tuple(out)


def _read_unsuccess(r: _Reader, count: int) -> tuple[UnsuccessSme, ...]:
    return tuple(
        UnsuccessSme(
            r.int1(_ADDR_FIELDS[0]), r.int1(_ADDR_FIELDS[1]), r.cstring(_ADDR_FIELDS[2]), r.int4(_ERROR_CODE)
        )
        for _ in range(count)
    )


def _read_fields(spec: PduSpec, r: _Reader) -> dict[str, ParamValue]:
    params: dict[str, ParamValue] = {}
    for f in spec.fields:
        kind = f.kind
        if kind is FieldKind.INT1:
            params[f.name] = r.int1(f)
        elif kind is FieldKind.COCTET:
            params[f.name] = r.cstring(f)
        elif kind is FieldKind.TIME:
            params[f.name] = r.time(f)
        elif kind is FieldKind.OCTETS:
            length = r.int1(Field(f.length_field or "", FieldKind.INT1, 1, f.error))
            params[f.name] = r.octets(f, length)
        elif kind is FieldKind.DEST_ADDRESSES:
            count = r.int1(Field(f.length_field or "", FieldKind.INT1, 1, f.error))
            params[f.name] = _read_dest_addresses(r, count, f)
        elif kind is FieldKind.UNSUCCESS_SMES:
            count = r.int1(Field(f.length_field or "", FieldKind.INT1, 1, f.error))
            params[f.name] = _read_unsuccess(r, count)
        else:  # FieldKind.INT4 appears only inside lists
            params[f.name] = r.int4(f)
    return params


def _read_tlvs(buf: bytes, pos: int, end: int) -> tuple[tuple[int, TlvValue], ...]:
    out: list[tuple[int, TlvValue]] = []
    while pos < end:
        if pos + 4 > end:
            raise InvalidOptionalParameterStream(f"{end - pos} stray octet(s) where a TLV header should be")
        tag, length = _TLV_HEAD.unpack_from(buf, pos)
        pos += 4
        if pos + length > end:
            raise InvalidOptionalParameterStream(
                f"TLV 0x{tag:04x} claims {length} octets but {end - pos} remain"
            )
        out.append((tag, decode_tlv_value(tag, buf[pos : pos + length])))
        pos += length
    return tuple(out)


def decode(frame: bytes | bytearray | memoryview) -> Pdu:
    """Decode one whole PDU (header included). Raises only SmppError subclasses."""
    buf = bytes(frame)
    if len(buf) < HEADER_SIZE:
        raise InvalidCommandLength(f"a PDU needs at least 16 octets, got {len(buf)}")
    command_length, command_id, command_status, sequence_number = HEADER.unpack_from(buf, 0)
    try:
        if command_length != len(buf):
            raise InvalidCommandLength(f"command_length {command_length} but the frame has {len(buf)} octets")
        spec = PDU_TABLE.get(command_id)
        if spec is None:
            raise InvalidCommandId(f"unknown command_id 0x{command_id:08x}")
        if command_length == HEADER_SIZE and command_status != 0 and spec.command_id.is_response:
            params = default_params(spec)
            tlvs: tuple[tuple[int, TlvValue], ...] = ()
        else:
            reader = _Reader(buf, HEADER_SIZE, command_length)
            params = _read_fields(spec, reader)
            if reader.pos < command_length:
                if not spec.tlvs_allowed:
                    raise InvalidCommandLength(
                        f"{command_length - reader.pos} octet(s) after the last field of {spec.command_id.name}"
                    )
                tlvs = _read_tlvs(buf, reader.pos, command_length)
            else:
                tlvs = ()
            _check_required(spec, tlvs, command_status)
    except SmppError as err:
        raise err.with_header(sequence_number=sequence_number, command_id=command_id) from None
    return Pdu(spec.command_id, sequence_number, command_status, params, tlvs)


def _check_required(spec: PduSpec, tlvs: tuple[tuple[int, TlvValue], ...], command_status: int) -> None:
    if not spec.required_tlvs or command_status != 0:
        return
    present = {tag for tag, _ in tlvs}
    for name in spec.required_tlvs:
        if TLV_BY_NAME[name].tag not in present:
            raise MissingOptionalParameter(f"{spec.command_id.name} requires the {name} TLV")


# ---------------------------------------------------------------------------------------------------- encode


def _put_cstring(out: bytearray, f: Field | str, value: object, max_size: int) -> None:
    name = f.name if isinstance(f, Field) else f
    if not isinstance(value, str):
        raise LocalProtocolError(f"{name} needs a str, got {type(value).__name__}")
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raise LocalProtocolError(f"{name} must be Latin-1 text") from None
    if b"\x00" in raw or len(raw) + 1 > max_size:
        raise LocalProtocolError(f"{name} must hold at most {max_size - 1} octets without NUL")
    out += raw
    out.append(0)


def _put_int(out: bytearray, name: str, value: object, size: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < 1 << (8 * size):
        raise LocalProtocolError(f"{name} needs an int of {size} octet(s), got {value!r}")
    out += value.to_bytes(size, "big")


def _put_field(out: bytearray, f: Field, value: ParamValue) -> None:
    kind = f.kind
    if kind is FieldKind.INT1:
        _put_int(out, f.name, value, 1)
    elif kind is FieldKind.COCTET:
        _put_cstring(out, f, value, f.max_size)
    elif kind is FieldKind.TIME:
        if isinstance(value, str) and value and len(value) != 16:
            raise LocalProtocolError(f"{f.name} must be empty or 16 characters")
        _put_cstring(out, f, value, f.max_size)
    elif kind is FieldKind.OCTETS:
        if not isinstance(value, bytes | bytearray) or len(value) > f.max_size:
            raise LocalProtocolError(f"{f.name} needs at most {f.max_size} octets")
        out.append(len(value))
        out += value
    elif kind is FieldKind.DEST_ADDRESSES:
        if not isinstance(value, tuple) or len(value) > f.max_size:
            raise LocalProtocolError(f"{f.name} needs a tuple of at most {f.max_size} addresses")
        out.append(len(value))
        for entry in value:
            if isinstance(entry, SmeAddress):
                out.append(1)
                _put_int(out, "dest_addr_ton", entry.dest_addr_ton, 1)
                _put_int(out, "dest_addr_npi", entry.dest_addr_npi, 1)
                _put_cstring(out, "destination_addr", entry.destination_addr, 21)
            elif isinstance(entry, DistributionList):
                out.append(2)
                _put_cstring(out, "dl_name", entry.dl_name, 21)
            else:
                raise LocalProtocolError(f"{f.name} entries are SmeAddress or DistributionList")
    elif kind is FieldKind.UNSUCCESS_SMES:
        if not isinstance(value, tuple) or len(value) > f.max_size:
            raise LocalProtocolError(f"{f.name} needs a tuple of at most {f.max_size} entries")
        out.append(len(value))
        for entry in value:
            if not isinstance(entry, UnsuccessSme):
                raise LocalProtocolError(f"{f.name} entries are UnsuccessSme")
            _put_int(out, "dest_addr_ton", entry.dest_addr_ton, 1)
            _put_int(out, "dest_addr_npi", entry.dest_addr_npi, 1)
            _put_cstring(out, "destination_addr", entry.destination_addr, 21)
            _put_int(out, "error_status_code", entry.error_status_code, 4)
    else:
        _put_int(out, f.name, value, 4)


def encode(pdu: Pdu) -> bytes:
    """The wire bytes of a PDU. Raises LocalProtocolError if the PDU could not be legal on the wire."""
    spec = PDU_TABLE.get(pdu.command_id)
    if spec is None:
        raise LocalProtocolError(f"unknown command_id {pdu.command_id!r}")
    if not 0 <= pdu.sequence_number <= 0xFFFFFFFF or not 0 <= pdu.command_status <= 0xFFFFFFFF:
        raise LocalProtocolError("sequence_number and command_status are unsigned 32-bit integers")
    out = bytearray(HEADER_SIZE)
    body_omitted = (
        pdu.command_status != 0
        and spec.command_id.is_response
        and not pdu.tlvs
        and pdu.params == default_params(spec)
    )
    if not body_omitted:
        params = pdu.params
        for f in spec.fields:
            try:
                value = params[f.name]
            except KeyError:
                raise LocalProtocolError(f"{spec.command_id.name} lacks field {f.name}") from None
            _put_field(out, f, value)
        if pdu.tlvs and not spec.tlvs_allowed:
            raise LocalProtocolError(f"{spec.command_id.name} carries no TLVs")
        for tag, tlv_value in pdu.tlvs:
            raw = encode_tlv_value(tag, tlv_value)
            out += _TLV_HEAD.pack(tag, len(raw))
            out += raw
    HEADER.pack_into(out, 0, len(out), pdu.command_id, pdu.command_status, pdu.sequence_number)
    return bytes(out)


