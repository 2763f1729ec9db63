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
  command_status field contains a non-zero value", SMPP 3.4 4.4.2); its fields then read as NULL. One with
  command_status 0 and no body is ResponseBodyMissing (ESME_RINVCMDLEN), which the session forgives (see there).
- TLVs: a truncated tag/length/value is ESME_RINVOPTPARSTREAM, a length the tag forbids ESME_RINVPARLEN, a
  required one missing ESME_RMISSINGOPTPARAM. Octets after the body of a PDU that takes no TLVs at all (an
  enquire_link, a bind_transmitter_resp error) are ESME_RINVCMDLEN: the command_length disagrees with the body. No
  per-PDU list of permitted tags is kept (3.4 lists them per PDU), so ESME_ROPTPARNOTALLWD is never raised: a
  TLV outside its PDU's list is kept, as an unknown one is (5.3: a receiver ignores what it does not support).
- A non-empty short_message together with the message_payload TLV is decoded as sent, not refused, although our
  encoder refuses to write it (see ``_check_payload_exclusive``). The rule is about what a message means, not
  about how its octets are laid out: such a PDU parses unambiguously, and the SMSC must see it whole to judge the
  peer (its oracle's ``payload_exclusive`` check fails the session) and still answer it as it answers today
  (submit_sm_resp ESME_ROK, the message_payload taken as the text). A decode error here would instead become a
  generic_nack and a ``wellformed`` failure, hiding which rule the peer broke.

Two paths, one behaviour. The *general* path (``_encode_general``, ``_decode_general``) walks a PDU's row of the
table field by field and is the reference: it alone raises, so its errors define what every bad PDU or frame gets.
The *fast* path (``_encode_fast``, ``_decode_fast``) runs first. At import each row of the table is compiled once
into a plan: a straight-line encoder and decoder function generated from the row's fields (no per-field dispatch at
run time, the params dict built as one literal), in which a run of consecutive 1-octet integers becomes one
``struct`` pack/unpack, a C-Octet String is a ``bytes.find`` and a Latin-1 decode inline; the 1/2/4-octet integer
TLVs get ready-made packers and a tag -> length lookup. A fast step only ever *accepts* what the general path would
accept with the same result; whenever it meets anything else (a value of an unexpected type, a bound crossed, an
error response without body, any exception) it gives up and returns None, and the general path starts again from the
first octet. So an error is always the general path's own error: same type, command_status, message, sequence_number
and command_id. tests/carrier_sim/smpp/test_codec_fastpath.py checks the two paths against each other with
Hypothesis.

Memos. What an ESME sends, and what an SMSC sends back, repeats from message to message except for the addresses,
the text and the ids: a submit_sm's or deliver_sm's esm_class .. sm_default_msg_id (times included), and the TLVs
an ESME attaches to every message. The compiled functions therefore remember such a stretch of fixed fields (the
encoder by the fields' values, when every one is exactly an int or a str; the decoder by the stretch's octets), and
the fast decoder remembers a short TLV area by its octets. Only what the fast path itself produced with success is
remembered, and the remembered values are immutable, so a memo never changes an outcome: it only skips work.
tests/carrier_sim/smpp/test_codec_memo.py checks this, with inputs that meet a remembered entry in a new setting.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple, TypeGuard, cast

from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import (
    InvalidCommandId,
    InvalidCommandLength,
    InvalidField,
    InvalidOptionalParameterStream,
    LocalProtocolError,
    MessageLengthError,
    MissingOptionalParameter,
    ResponseBodyMissing,
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
from carrier_sim.smpp.tlv import (
    TLV_BY_NAME,
    TLV_BY_TAG,
    TlvKind,
    TlvSpec,
    TlvValue,
    decode_tlv_value,
    encode_tlv_value,
)

__all__ = ["HEADER", "HEADER_SIZE", "decode", "decode_fast", "decode_header", "encode", "encode_into"]

#: command_length, command_id, command_status, sequence_number — four big-endian unsigned 32-bit integers.
HEADER = struct.Struct(">IIII")
HEADER_SIZE = 16
_TLV_HEAD = struct.Struct(">HH")
_ERROR_STATUS = struct.Struct(">I")
_MESSAGE_PAYLOAD = TLV_BY_NAME["message_payload"].tag


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


def _length_field(f: Field) -> Field:
    """The 1-octet field that carries ``f``'s length or count (sm_length, number_of_dests, no_unsuccess)."""
    return Field(f.length_field or "", FieldKind.INT1, 1, f.error)


#: Built once from the table rather than once per decoded field.
_LENGTH_FIELDS: dict[Field, Field] = {
    f: _length_field(f) for spec in PDU_TABLE.values() for f in spec.fields if f.length_field is not None
}


def _read_field(f: Field, r: _Reader) -> ParamValue:
    kind = f.kind
    if kind is FieldKind.INT1:
        return r.int1(f)
    if kind is FieldKind.COCTET:
        return r.cstring(f)
    if kind is FieldKind.TIME:
        return r.time(f)
    if kind is FieldKind.OCTETS:
        return r.octets(f, r.int1(_LENGTH_FIELDS[f]))
    if kind is FieldKind.DEST_ADDRESSES:
        return _read_dest_addresses(r, r.int1(_LENGTH_FIELDS[f]), f)
    if kind is FieldKind.UNSUCCESS_SMES:
        return _read_unsuccess(r, r.int1(_LENGTH_FIELDS[f]))
    return r.int4(f)  # FieldKind.INT4 appears only inside lists


def _read_fields(spec: PduSpec, r: _Reader) -> dict[str, ParamValue]:
    return {f.name: _read_field(f, r) for f in spec.fields}


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


def _decode_general(frame: bytes | bytearray | memoryview) -> Pdu:
    """The reference decoder: field by field through :class:`_Reader`; the only decoder that raises."""
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
        elif command_length == HEADER_SIZE and spec.command_id.is_response and spec.fields:
            # Not the body 4.4.2 allows to omit (that needs a non-zero status), but a common way to acknowledge:
            # a typed error the session recovers from (it answers the request) and reports.
            raise ResponseBodyMissing(f"command_status 0 but no body ({spec.fields[0].name} missing)")
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


def _encode_general(pdu: Pdu) -> bytes:
    """The reference encoder: field by field through :func:`_put_field`; the only encoder that raises."""
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
        if pdu.tlvs and spec.payload_excludes_short_message:
            _check_payload_exclusive(spec, params["short_message"], pdu.tlvs)
    HEADER.pack_into(out, 0, len(out), pdu.command_id, pdu.command_status, pdu.sequence_number)
    return bytes(out)


def _check_payload_exclusive(spec: PduSpec, short_message: ParamValue, tlvs: tuple[tuple[int, TlvValue], ...]) -> None:
    """Refuse a non-empty short_message beside a message_payload TLV (``short_message`` is already known to be
    octets: ``_put_field`` wrote it).

    SMPP 3.4 4.4.1 (submit_sm, message_payload): "The short message data should be inserted in either the
    short_message or message_payload fields. Both fields should not be used simultaneously. The sm_length field
    should be set to zero if using the message_payload parameter." (message_payload itself: 5.3.2.32.)
    Peers that do it anyway are judged by the SMSC's oracle; nothing we send may be one of them. The decoder
    accepts such PDUs on purpose (see the module docstring).
    """
    assert isinstance(short_message, bytes | bytearray)
    if len(short_message) and any(tag == _MESSAGE_PAYLOAD for tag, _ in tlvs):
        raise LocalProtocolError(
            f"{spec.command_id.name} carries both short_message ({len(short_message)} octets) and message_payload; "
            "with message_payload, short_message must be empty (SMPP 3.4 4.4.1, 5.3.2.32)"
        )


# ---------------------------------------------------------------------------------------------------- fast path
#
# A plan is a PDU's row of PDU_TABLE compiled once, at import, into an encoder and a decoder function of its own
# (generated Python text, see _compile_encoder and _compile_decoder); nothing here names a command. The TLV tables
# below are likewise compiled from TLV_BY_TAG.

_INT1, _CSTR, _TIME, _OCTETS, _GENERAL = range(5)

_FAST_KINDS = {FieldKind.INT1: _INT1, FieldKind.COCTET: _CSTR, FieldKind.TIME: _TIME, FieldKind.OCTETS: _OCTETS}


class _Plan(NamedTuple):
    command_id: CommandId
    tlvs_allowed: bool
    is_response: bool
    #: The NULL body an error response may omit (compared with, never handed out: it is shared).
    defaults: dict[str, ParamValue]
    has_required_tlvs: bool
    #: A message_payload TLV requires an empty short_message (see _check_payload_exclusive).
    payload_excludes_short_message: bool
    spec: PduSpec
    #: ``encode_body(params, out) -> True | None``: the row's fields compiled into one function.
    encode_body: Any
    #: ``decode_body(buf, n) -> (params, pos) | None``: likewise.
    decode_body: Any


def _runs(spec: PduSpec) -> list[Field | tuple[Field, ...]]:
    """The row's fields, each run of two or more consecutive INT1 fields grouped into a tuple."""
    out: list[Field | tuple[Field, ...]] = []
    run: list[Field] = []
    for f in (*spec.fields, None):
        if f is not None and f.kind is FieldKind.INT1:
            run.append(f)
            continue
        if len(run) > 1:
            out.append(tuple(run))
        else:
            out.extend(run)
        run = []
        if f is not None:
            out.append(f)
    return out


def _is_wire_int(value: object, limit: int) -> TypeGuard[int]:
    """The general path's test of an integer field (``_put_int``), for the int subclasses (IntEnum members such as
    DataCoding or MessageState) that the fast path's ``type(value) is int`` turns away. struct and bytearray then
    write the same octets as ``int.to_bytes`` would."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < limit


#: A stretch of at least this many consecutive fixed fields (see :func:`_is_fixed`) is encoded through a memo:
#: esm_class .. sm_default_msg_id of a deliver_sm receipt or a submit_sm repeat from message to message.
_MEMO_MIN_FIELDS = 4
#: Entries per memo before it is emptied (a bound on memory, not a tuned figure).
_MEMO_SIZE = 512


#: A C-Octet String at least this long names a party or a message (an address, a message_id, a system_id...):
#: it changes from message to message, and a memo keyed by it would mostly miss.
_VARYING_SIZE = 9


def _is_fixed(item: Field | tuple[Field, ...]) -> bool:
    """A field (or run of 1-octet integers) whose value an ESME or an SMSC sends alike in message after message:
    integers, times and short strings such as service_type."""
    if isinstance(item, tuple):
        return True
    op = _FAST_KINDS.get(item.kind, _GENERAL)
    return op in (_INT1, _TIME) or (op == _CSTR and item.max_size < _VARYING_SIZE)


def _segments(spec: PduSpec) -> list[list[tuple[int, Field | tuple[Field, ...]]]]:
    """The row's :func:`_runs`, numbered, in maximal stretches of fixed fields and single other fields."""
    out: list[list[tuple[int, Field | tuple[Field, ...]]]] = []
    for i, item in enumerate(_runs(spec)):
        if _is_fixed(item) and out and _is_fixed(out[-1][-1][1]):
            out[-1].append((i, item))
        else:
            out.append([(i, item)])
    return out


def _encode_lines(i: int, item: Field | tuple[Field, ...], env: dict[str, Any], pad: str) -> list[str]:
    """The encoder's statements for one of :func:`_runs`' items, whose values are already in ``v{i}`` (a field)
    or ``v{i}_{k}`` (a run of 1-octet integers)."""
    lines: list[str] = []
    if isinstance(item, tuple):
        vs = [f"v{i}_{k}" for k in range(len(item))]
        # struct would take True or a numpy integer too, which the general path refuses.
        all_int = " and ".join(f"type({v}) is int" for v in vs)
        all_wire = " and ".join(f"_is_wire_int({v}, 0x100)" for v in vs)
        lines.append(f"if not ({all_int}) and not ({all_wire}):")
        lines.append("    return None")
        env[f"pack{i}"] = struct.Struct(">" + "B" * len(item)).pack
        lines.append(f"out += pack{i}({', '.join(vs)})")  # struct.error outside 0..255
        return [pad + line for line in lines]
    v = f"v{i}"
    op = _FAST_KINDS.get(item.kind, _GENERAL)
    if op == _INT1:
        lines.append(f"if type({v}) is not int and not _is_wire_int({v}, 0x100):")
        lines.append("    return None")
        lines.append(f"out.append({v})")  # ValueError outside 0..255
    elif op in (_CSTR, _TIME):
        lines.append(f"if type({v}) is not str:")
        lines.append("    return None")
        lines.append(f"raw = {v}.encode('latin-1')")
        time_check = "(raw and len(raw) != 16) or " if op == _TIME else ""
        lines.append(f"if {time_check}len(raw) >= {item.max_size!r} or b'\\x00' in raw:")
        lines.append("    return None")
        lines.append("out += raw")
        lines.append("out.append(0)")
    elif op == _OCTETS:
        lines.append(f"if not isinstance({v}, bytes | bytearray) or len({v}) > {item.max_size!r}:")
        lines.append("    return None")
        lines.append(f"out.append(len({v}))")
        lines.append(f"out += {v}")
    else:
        env[f"field{i}"] = item
        lines.append(f"_put_field(out, field{i}, {v})")
    return [pad + line for line in lines]


def _compile_encoder(spec: PduSpec) -> Any:
    """``encode_body(params, out)``: True once the mandatory fields are in ``out``, None to give up.

    A long stretch of fixed fields goes through a memo keyed by the fields' values, used only when every value
    is exactly an int or a str: then equal keys are equal values of the same types, which the code below encodes
    to the same octets (an int subclass such as bool, equal to 1 and hashing alike, must not find 1's octets; it
    takes the uncached code, which refuses it as before). Only octets the uncached code wrote are remembered.
    """
    env: dict[str, Any] = {"_is_wire_int": _is_wire_int, "_put_field": _put_field}
    lines = ["def encode_body(params, out):"]
    for segment in _segments(spec):
        names: list[str] = []
        types: list[str] = []
        for i, item in segment:
            for k, f in enumerate(item) if isinstance(item, tuple) else [(None, item)]:
                v = f"v{i}" if k is None else f"v{i}_{k}"
                lines.append(f"    {v} = params[{f.name!r}]")
                names.append(v)
                types.append(f"type({v}) is {'int' if f.kind is FieldKind.INT1 else 'str'}")
        if len(names) < _MEMO_MIN_FIELDS or not _is_fixed(segment[0][1]):
            for i, item in segment:
                lines += _encode_lines(i, item, env, "    ")
            continue
        m = segment[0][0]
        env[f"memo{m}"] = {}
        lines.append(f"    exact = {' and '.join(types)}")
        lines.append(f"    key = ({', '.join(names)},)")
        lines.append(f"    seg = memo{m}.get(key) if exact else None")
        lines.append("    if seg is not None:")
        lines.append("        out += seg")
        lines.append("    else:")
        lines.append("        mark = len(out)")
        for i, item in segment:
            lines += _encode_lines(i, item, env, "        ")
        lines.append("        if exact:")
        lines.append(f"            if len(memo{m}) >= {_MEMO_SIZE}:")
        lines.append(f"                memo{m}.clear()")
        lines.append(f"            memo{m}[key] = bytes(out[mark:])")
    lines.append("    return True")
    exec("\n".join(lines), env)  # the text is built from the row's fields only
    return env["encode_body"]


def _decode_lines(i: int, item: Field | tuple[Field, ...], env: dict[str, Any], pad: str) -> list[str]:
    """The decoder's statements for one of :func:`_runs`' items, leaving its value(s) in ``v{i}`` or ``v{i}_{k}``
    and ``pos`` after it."""
    lines: list[str] = []
    if isinstance(item, tuple):
        vs = [f"v{i}_{k}" for k in range(len(item))]
        env[f"unpack{i}"] = struct.Struct(">" + "B" * len(item)).unpack_from
        lines.append(f"if pos + {len(item)} > n:")
        lines.append("    return None")
        lines.append(f"{', '.join(vs)}, = unpack{i}(buf, pos)")
        lines.append(f"pos += {len(item)}")
        return [pad + line for line in lines]
    v = f"v{i}"
    op = _FAST_KINDS.get(item.kind, _GENERAL)
    if op == _CSTR:
        # find() stops at the end of buf, which is the end of the PDU
        lines.append(f"nul = find(0, pos, pos + {item.max_size!r})")
        lines.append("if nul < 0:")
        lines.append("    return None")
        lines.append(f"{v} = buf[pos:nul].decode('latin-1')")
        lines.append("pos = nul + 1")
    elif op == _INT1:
        lines.append(f"{v} = buf[pos]")  # IndexError past the end
        lines.append("pos += 1")
    elif op == _TIME:
        lines.append(f"nul = find(0, pos, pos + {item.max_size!r})")
        lines.append("if nul < 0 or (nul != pos and nul - pos != 16):")
        lines.append("    return None")
        lines.append(f"{v} = buf[pos:nul].decode('latin-1')")
        lines.append("pos = nul + 1")
    elif op == _OCTETS:
        lines.append("length = buf[pos]")  # IndexError past the end
        lines.append("pos += 1")
        lines.append("end = pos + length")
        lines.append(f"if length > {item.max_size!r} or end > n:")
        lines.append("    return None")
        lines.append(f"{v} = buf[pos:end]")
        lines.append("pos = end")
    else:
        env[f"field{i}"] = item
        lines.append("reader = _Reader(buf, pos, n)")
        lines.append(f"{v} = _read_field(field{i}, reader)")
        lines.append("pos = reader.pos")
    return [pad + line for line in lines]


def _compile_decoder(spec: PduSpec) -> Any:
    """``decode_body(buf, n)``: (params, position after the last field), or None to give up. ``n`` is len(buf),
    which is the end of the PDU.

    A long stretch of fixed fields (as in :func:`_compile_encoder`) goes through a memo keyed by the stretch's
    octets: the octets a decode consumed with success, and the values it read from them. Each field delimits
    itself (a NUL, a fixed size), so wherever octets equal to a remembered stretch start, decoding them reads the
    same values and ends at the same place; nothing past the stretch is looked at. The next PDU is tried at the
    length of the last stretch decoded.
    """
    env: dict[str, Any] = {"_Reader": _Reader, "_read_field": _read_field}
    lines = ["def decode_body(buf, n):", "    find = buf.find", "    pos = 16"]
    names: list[str] = []
    values: list[str] = []
    for segment in _segments(spec):
        seg_values: list[str] = []
        for i, item in segment:
            if isinstance(item, tuple):
                names += [f.name for f in item]
                seg_values += [f"v{i}_{k}" for k in range(len(item))]
            else:
                names.append(item.name)
                seg_values.append(f"v{i}")
        values += seg_values
        if len(seg_values) < _MEMO_MIN_FIELDS or not _is_fixed(segment[0][1]):
            for i, item in segment:
                lines += _decode_lines(i, item, env, "    ")
            continue
        m = segment[0][0]
        env[f"memo{m}"] = {}
        env[f"size{m}"] = [0]  # the last stretch's length: a list, so that the function can change it
        # Advance by the matched key's own length, not by size: near the end of the buffer the slice comes out
        # shorter than size and may equal a shorter remembered stretch (a flaky CI failure found this: a
        # broadcast_sm ending in its fixed fields was read 32 octets past its end).
        lines.append(f"    key = buf[pos:pos + size{m}[0]]")
        lines.append(f"    got = memo{m}.get(key)")
        lines.append("    if got is not None:")
        lines.append(f"        {', '.join(seg_values)}, = got")
        lines.append("        pos += len(key)")
        lines.append("    else:")
        lines.append("        mark = pos")
        for i, item in segment:
            lines += _decode_lines(i, item, env, "        ")
        lines.append(f"        if len(memo{m}) >= {_MEMO_SIZE}:")
        lines.append(f"            memo{m}.clear()")
        lines.append(f"        memo{m}[buf[mark:pos]] = ({', '.join(seg_values)},)")
        lines.append(f"        size{m}[0] = pos - mark")
    params = ", ".join(f"{name!r}: {v}" for name, v in zip(names, values, strict=True))
    lines.append(f"    return {{{params}}}, pos")
    exec("\n".join(lines), env)  # the text is built from the row's fields only
    return env["decode_body"]


_PLANS: dict[int, _Plan] = {
    command_id: _Plan(
        spec.command_id,
        spec.tlvs_allowed,
        spec.command_id.is_response,
        default_params(spec),
        bool(spec.required_tlvs),
        spec.payload_excludes_short_message,
        spec,
        _compile_encoder(spec),
        _compile_decoder(spec),
    )
    for command_id, spec in PDU_TABLE.items()
}

_T_INT, _T_OCTET, _T_COCTET, _T_OTHER = range(4)
_INT_TLV_KINDS = frozenset({TlvKind.INT1, TlvKind.INT2, TlvKind.INT4})
#: The general encoder writes an integer TLV as ``min_length`` big-endian octets.
_INT_TLV_FORMATS = {1: ">HHB", 2: ">HHH", 4: ">HHI"}


def _tlv_step(spec: TlvSpec) -> tuple[int, int, int, Any]:
    """``(kind, min_length, max_length, pack(tag, length, value) of a whole integer TLV or None)``.

    A row the fast path could get wrong (an integer of odd size, a C-Octet String that may be empty, allowed
    lengths with a gap such as ms_validity's 1 or 4) is left to tlv.py's own codec. The fast steps below test
    only ``lo <= length <= hi``, so a row with ``spec.lengths`` must never get one: tlv.py's ``TlvSpec.allows``
    stays the one place that knows the gap.
    """
    kind = _T_OTHER
    if spec.lengths is not None:
        return (kind, spec.min_length, spec.max_length, None)
    if spec.kind in _INT_TLV_KINDS and spec.min_length in _INT_TLV_FORMATS:
        return (_T_INT, spec.min_length, spec.max_length, struct.Struct(_INT_TLV_FORMATS[spec.min_length]).pack)
    if spec.kind is TlvKind.OCTET:
        kind = _T_OCTET
    elif spec.kind is TlvKind.COCTET and spec.min_length >= 1:
        kind = _T_COCTET
    return (kind, spec.min_length, spec.max_length, None)


#: Every standard tag; a tag missing here is unknown and travels as raw bytes.
_TLV_STEPS = {tag: _tlv_step(spec) for tag, spec in TLV_BY_TAG.items()}


def _encode_fast(pdu: Pdu) -> bytes | None:
    """The wire bytes of an ordinary PDU, or None to leave the PDU (and any error it earns) to the general path."""
    out = bytearray()
    return bytes(out) if _encode_fast_into(pdu, out) else None


_HEADER_SPACE = bytes(HEADER_SIZE)


def _encode_fast_into(pdu: Pdu, out: bytearray) -> bool:
    """Append the wire bytes of an ordinary PDU to ``out`` and say True; or leave ``out`` as it was and say False,
    leaving the PDU (and any error it earns) to the general path."""
    start = len(out)
    try:
        plan = _PLANS.get(pdu.command_id)
        if plan is None:
            return False
        sequence_number = pdu.sequence_number
        command_status = pdu.command_status
        if not 0 <= sequence_number <= 0xFFFFFFFF or not 0 <= command_status <= 0xFFFFFFFF:
            return False
        tlvs = pdu.tlvs
        params = pdu.params
        if command_status != 0 and plan.is_response and not tlvs and params == plan.defaults:
            return False  # the body is omitted (SMPP 3.4 4.4.2)
        out += _HEADER_SPACE
        if plan.encode_body(params, out) is None:
            del out[start:]
            return False
        if tlvs:
            if not plan.tlvs_allowed:
                del out[start:]
                return False
            head = _TLV_HEAD.pack
            tlv_step = _TLV_STEPS.get
            for tag, tlv_value in tlvs:
                step = tlv_step(tag)
                if step is None:  # unknown tag: raw bytes
                    if type(tlv_value) is not bytes or len(tlv_value) > 0xFFFF:
                        del out[start:]
                        return False
                    out += head(tag, len(tlv_value))  # struct.error for a tag that is no 2-octet integer
                    out += tlv_value
                    continue
                kind, lo, hi, pack = step
                if kind == _T_INT:
                    if type(tlv_value) is not int and not _is_wire_int(tlv_value, 1 << (8 * lo)):
                        del out[start:]
                        return False
                    out += pack(tag, lo, tlv_value)  # struct.error outside the integer's range
                elif kind == _T_OCTET:
                    if type(tlv_value) is not bytes or not lo <= len(tlv_value) <= hi:
                        del out[start:]
                        return False
                    # _check_payload_exclusive's refusal; encode_body has made short_message octets.
                    if (
                        tag == _MESSAGE_PAYLOAD
                        and plan.payload_excludes_short_message
                        and len(cast(bytes, params["short_message"]))
                    ):
                        del out[start:]
                        return False
                    out += head(tag, len(tlv_value))
                    out += tlv_value
                elif kind == _T_COCTET:
                    if type(tlv_value) is not str:
                        del out[start:]
                        return False
                    raw = tlv_value.encode("latin-1")
                    if not lo <= len(raw) + 1 <= hi or b"\x00" in raw:
                        del out[start:]
                        return False
                    out += head(tag, len(raw) + 1)
                    out += raw
                    out.append(0)
                else:
                    raw = encode_tlv_value(tag, tlv_value)
                    out += head(tag, len(raw))
                    out += raw
        HEADER.pack_into(out, start, len(out) - start, pdu.command_id, command_status, sequence_number)
    except Exception:  # any doubt at all: the general path decides, and raises what it raises
        del out[start:]
        return False
    return True


#: The TLV area of a frame, when short, -> what the walk below read from it. An ESME sends the same optional
#: parameters (user_message_reference, callback_num, ...) with message after message; the walk depends on the
#: area's octets alone, and its values are immutable, so equal octets may share one tuple. A message_payload
#: area is longer than this and is walked every time.
_TLV_MEMO: dict[bytes, tuple[tuple[int, TlvValue], ...]] = {}
_TLV_MEMO_OCTETS = 64


def _decode_fast(buf: bytes) -> Pdu | None:
    """The PDU in a well-formed frame, or None to leave the frame (and any error it earns) to the general path."""
    n = len(buf)
    if n < HEADER_SIZE:
        return None
    try:
        command_length, command_id, command_status, sequence_number = HEADER.unpack_from(buf, 0)
        if command_length != n:
            return None
        plan = _PLANS.get(command_id)
        if plan is None or (n == HEADER_SIZE and command_status != 0 and plan.is_response):
            return None
        body = plan.decode_body(buf, n)
        if body is None:
            return None
        params, pos = body
        find = buf.find
        tlvs: tuple[tuple[int, TlvValue], ...] = ()
        if pos < n:
            if not plan.tlvs_allowed:
                return None
            tail = buf[pos:] if n - pos <= _TLV_MEMO_OCTETS else None
            known = _TLV_MEMO.get(tail) if tail is not None else None
            if known is not None:
                if plan.has_required_tlvs:
                    _check_required(plan.spec, known, command_status)
                return Pdu(plan.command_id, sequence_number, command_status, params, known)
            found: list[tuple[int, TlvValue]] = []
            head = _TLV_HEAD.unpack_from
            tlv_step = _TLV_STEPS.get
            while pos < n:
                if pos + 4 > n:
                    return None
                tag, length = head(buf, pos)
                pos += 4
                end = pos + length
                if end > n:
                    return None
                step = tlv_step(tag)
                if step is None:  # unknown tag: raw bytes
                    found.append((tag, buf[pos:end]))
                else:
                    kind, lo, hi, _ = step
                    if not lo <= length <= hi:
                        return None
                    if kind == _T_INT:
                        found.append((tag, int.from_bytes(buf[pos:end], "big")))
                    elif kind == _T_OCTET:
                        found.append((tag, buf[pos:end]))
                    elif kind == _T_COCTET:
                        if buf[end - 1] != 0 or find(0, pos, end - 1) >= 0:
                            return None
                        found.append((tag, buf[pos : end - 1].decode("latin-1")))
                    else:
                        found.append((tag, decode_tlv_value(tag, buf[pos:end])))
                pos = end
            tlvs = tuple(found)
            if tail is not None:
                if len(_TLV_MEMO) >= _MEMO_SIZE:
                    _TLV_MEMO.clear()
                _TLV_MEMO[tail] = tlvs
        if plan.has_required_tlvs:
            _check_required(plan.spec, tlvs, command_status)
    except Exception:  # any doubt at all: the general path decides, and raises what it raises
        return None
    return Pdu(plan.command_id, sequence_number, command_status, params, tlvs)


# ---------------------------------------------------------------------------------------------------- API


def encode(pdu: Pdu) -> bytes:
    """The wire bytes of a PDU. Raises LocalProtocolError if the PDU could not be legal on the wire."""
    wire = _encode_fast(pdu)
    return wire if wire is not None else _encode_general(pdu)


def encode_into(pdu: Pdu, out: bytearray) -> None:
    """``out += encode(pdu)``, without the intermediate bytes. Raises as :func:`encode` does, leaving ``out`` as
    it was."""
    if not _encode_fast_into(pdu, out):
        out += _encode_general(pdu)


def decode_fast(frame: bytes) -> Pdu | None:
    """The PDU in a well-formed frame, as :func:`decode` gives it, or None where only the general decoder can say
    (it may still decode the frame, or raise). Never raises. For a caller with a fast path of its own that leaves
    anything unusual to the general one."""
    return _decode_fast(frame)


def decode(frame: bytes | bytearray | memoryview) -> Pdu:
    """Decode one whole PDU (header included). Raises only SmppError subclasses."""
    buf = bytes(frame)
    pdu = _decode_fast(buf)
    return pdu if pdu is not None else _decode_general(buf)
