"""The codec's fast path against its general (reference) path: same bytes, same Pdu, same error, on any input.

``encode``/``decode`` try the plan compiled from the table first and fall back to the field-by-field walk for
anything unusual. These properties hold the two to each other: for legal PDUs the outputs must match exactly
(and the fast path must actually take them, or it would be dead weight); for illegal values and for arbitrary
or corrupted frames the public functions must give exactly what the general path gives, down to the error's
type, command_status, message, sequence_number and command_id.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import (
    _PLANS,
    HEADER,
    _decode_fast,
    _decode_general,
    _encode_fast,
    _encode_general,
    _put_field,
    _read_fields,
    _Reader,
    decode,
    encode,
)
from carrier_sim.smpp.coding import DataCoding
from carrier_sim.smpp.constants import CommandId, CommandStatus, InterfaceVersion
from carrier_sim.smpp.errors import LocalProtocolError, SmppError
from carrier_sim.smpp.pdu import DistributionList, Pdu, SmeAddress, UnsuccessSme, default_params
from carrier_sim.smpp.pdu_table import PDU_TABLE, Field, FieldKind
from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smpp.tlv import TLV_BY_NAME, TLV_BY_TAG, BroadcastAreaIdentifier, NetworkErrorCode
from carrier_sim.testing.smpp_strategies import pdus

_FUZZ = settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _shape(value: object) -> object:
    """A value with its exact type, so that ``1 == True`` or ``b"" == bytearray()`` cannot hide a difference."""
    if isinstance(value, tuple):
        return (type(value), tuple(_shape(v) for v in value))
    return (type(value), value)


def _pdu_shape(pdu: Pdu) -> object:
    return (
        _shape(pdu.command_id),
        _shape(pdu.sequence_number),
        _shape(pdu.command_status),
        [(name, _shape(value)) for name, value in pdu.params.items()],  # field order included
        _shape(pdu.tlvs),
    )


def _outcome(fn: Callable[[Any], object], arg: object) -> tuple[object, ...]:
    """What a call gives: its result, or everything observable about the error it raises."""
    try:
        result = fn(arg)
    except SmppError as err:
        return (
            "error",
            type(err),
            err.command_status,
            err.sequence_number,
            err.command_id,
            err.message,
            str(err),
        )
    except Exception as err:  # the general path's own non-SMPP errors (e.g. struct.error) must survive too
        return ("error", type(err), str(err))
    if isinstance(result, Pdu):
        return ("pdu", _pdu_shape(result))
    return ("value", _shape(result))


def _body_omitted(pdu: Pdu) -> bool:
    return (
        pdu.command_status != 0
        and pdu.command_id.is_response
        and not pdu.tlvs
        and pdu.params == default_params(PDU_TABLE[pdu.command_id])
    )


# ------------------------------------------------------------------------------------------------ legal PDUs


@settings(max_examples=1000, deadline=None)
@given(pdus())
def test_fast_and_general_agree_on_legal_pdus(pdu: Pdu) -> None:
    wire = _encode_general(pdu)
    fast_wire = _encode_fast(pdu)
    if _body_omitted(pdu):
        assert fast_wire is None
    else:
        # The fast path must take every legal PDU, or it silently stops being fast.
        assert fast_wire == wire
    assert encode(pdu) == wire

    reference = _decode_general(wire)
    fast = _decode_fast(wire)
    if len(wire) == 16 and pdu.command_status != 0 and pdu.command_id.is_response:
        assert fast is None
    else:
        assert fast is not None
        assert _pdu_shape(fast) == _pdu_shape(reference)
    assert _pdu_shape(decode(wire)) == _pdu_shape(reference)
    assert _pdu_shape(decode(bytearray(wire))) == _pdu_shape(reference)
    assert _pdu_shape(decode(memoryview(wire))) == _pdu_shape(reference)


def _bench_like_pdus() -> list[Pdu]:
    return [
        Pdu.make(
            CommandId.submit_sm,
            7,
            source_addr_ton=5,
            source_addr="VerifySvc",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="447700900123",
            validity_period="000000001000000R",
            registered_delivery=1,
            short_message=b"Your code is 482913",
            tlvs={"user_message_reference": 0x1234, "callback_num": b"\x01\x01447700900000"},
        ),
        Pdu.make(
            CommandId.deliver_sm,
            8,
            esm_class=0x04,
            short_message=b"id:1 stat:DELIVRD",
            tlvs={
                "receipted_message_id": "9f3c2a7e",
                "message_state": 2,
                "network_error_code": NetworkErrorCode(3, 0),
                "broadcast_area_identifier": BroadcastAreaIdentifier(0, b"area"),
                0x1402: b"\x00\xff",
            },
        ),
        Pdu.make(
            CommandId.submit_multi,
            9,
            dest_address=(SmeAddress(1, 1, "447700900003"), DistributionList("friends")),
            short_message=b"x",
        ),
        Pdu.make(
            CommandId.submit_multi_resp,
            9,
            message_id="abc",
            unsuccess_sme=(UnsuccessSme(1, 1, "447700900003", CommandStatus.ESME_RINVDSTADR),),
        ),
        Pdu.make(CommandId.submit_sm_resp, 10, CommandStatus.ESME_RTHROTTLED, message_id="m1"),
        # IntEnum members where the spec has integers: judged like ints, not sent the long way round.
        Pdu.make(CommandId.bind_transceiver, 12, system_id="esme", interface_version=InterfaceVersion.V34),
        Pdu.make(
            CommandId.bind_transceiver_resp, 12, system_id="smsc", tlvs={"sc_interface_version": InterfaceVersion.V34}
        ),
        Pdu.make(
            CommandId.deliver_sm,
            13,
            data_coding=DataCoding.UCS2,
            short_message="é".encode("utf-16-be"),
            tlvs={"message_state": MessageState.DELIVERED},
        ),
        Pdu.make(CommandId.enquire_link, 11),
    ]


@pytest.mark.parametrize("pdu", _bench_like_pdus(), ids=lambda p: p.command_id.name)
def test_everyday_pdus_take_the_fast_path(pdu: Pdu) -> None:
    wire = _encode_fast(pdu)
    assert wire is not None
    assert wire == _encode_general(pdu)
    back = _decode_fast(wire)
    assert back is not None
    assert _pdu_shape(back) == _pdu_shape(_decode_general(wire))


# ------------------------------------------------------------------------------------------------ bad values

_Small = enum.IntEnum("_Small", {"ONE": 1, "TWO": 2})


class _Str(str):
    pass


class _Bytes(bytes):
    pass


class _Liar(int):
    """An int whose comparisons lie: the fast path must judge it by the same comparisons the general path uses."""

    verdict = True

    def __lt__(self, other: object) -> bool:
        return self.verdict

    def __le__(self, other: object) -> bool:
        return self.verdict

    def __gt__(self, other: object) -> bool:
        return self.verdict

    def __ge__(self, other: object) -> bool:
        return self.verdict


class _Denier(_Liar):
    verdict = False


_ODD_VALUES: list[object] = [
    True,
    False,
    -1,
    256,
    0xFFFF,
    0x10000,
    0xFFFFFFFF,
    1 << 32,
    1.0,
    None,
    _Small.ONE,
    _Small.TWO,
    CommandStatus.ESME_RINVDSTADR,
    CommandStatus.ESME_RTHROTTLED,
    _Liar(3),
    _Liar(300),
    _Liar(-1),
    _Denier(3),
    "",
    "x" * 16,
    "1234567890123456",
    "000000001000000R",
    "x" * 17,
    "x" * 300,
    "caf\u00e9",
    "\u20ac",
    "a\x00b",
    _Str("abc"),
    b"",
    b"abc",
    b"x" * 255,
    bytearray(b"abc"),
    _Bytes(b"abc"),
    (),
    (SmeAddress(1, 1, "447700900003"),),
    (SmeAddress(True, 1, "x"),),
    (DistributionList("x" * 21),),
    (UnsuccessSme(1, 1, "x", 1 << 32),),
    ("not an address",),
    NetworkErrorCode(3, 0),
    BroadcastAreaIdentifier(0, b"a"),
]
_odd_values = st.one_of(
    st.sampled_from(_ODD_VALUES),
    st.integers(-3, 1 << 33),
    st.text(max_size=70),
    st.binary(max_size=300),
)
_odd_tags = st.one_of(
    st.sampled_from(sorted(TLV_BY_TAG)),
    st.sampled_from([5.0, True, -1, 0x10000, "message_state", None, 0x1402]),
    st.integers(0, 0xFFFF),
)


@_FUZZ
@given(pdus(), st.data())
def test_fast_and_general_agree_on_illegal_values(pdu: Pdu, data: st.DataObject) -> None:
    """A field, a TLV or the header replaced by something odd: same bytes, or the very same error."""
    what = data.draw(st.sampled_from(["field", "field", "tlv_value", "tlv_tag", "header", "tlvs_where_none"]))
    # Deliberately ill-typed: these are the values a careless caller could put in a Pdu.
    params: dict[str, Any] = dict(pdu.params)
    tlvs: list[tuple[Any, Any]] = list(pdu.tlvs)
    seq: Any = pdu.sequence_number
    status: Any = pdu.command_status
    if what == "field" and params:
        params[data.draw(st.sampled_from(sorted(params)))] = data.draw(_odd_values)
    elif what == "field":
        status = data.draw(_odd_values)
    elif what in ("tlv_value", "tlv_tag") and tlvs:
        i = data.draw(st.integers(0, len(tlvs) - 1))
        tag, value = tlvs[i]
        tlvs[i] = (tag, data.draw(_odd_values)) if what == "tlv_value" else (data.draw(_odd_tags), value)
    elif what == "header":
        seq = data.draw(st.one_of(st.just(seq), st.sampled_from(_ODD_VALUES[:12])))
        status = data.draw(st.one_of(st.just(status), st.sampled_from(_ODD_VALUES[:12])))
    else:
        tlvs.append((data.draw(_odd_tags), data.draw(_odd_values)))
    odd = Pdu(pdu.command_id, seq, status, params, tuple(tlvs))
    expected = _outcome(_encode_general, odd)
    assert _outcome(encode, odd) == expected
    fast = _encode_fast(odd)
    if fast is not None:
        assert expected == ("value", _shape(fast))


@settings(max_examples=300, deadline=None)
@given(pdus(), st.data())
def test_missing_field_gives_the_same_error(pdu: Pdu, data: st.DataObject) -> None:
    params = dict(pdu.params)
    if params:
        del params[data.draw(st.sampled_from(sorted(params)))]
    odd = Pdu(pdu.command_id, pdu.sequence_number, pdu.command_status, params, pdu.tlvs)
    assert _outcome(encode, odd) == _outcome(_encode_general, odd)


# ------------------------------------------------------------------------------------------------ bad frames


def _same_decode(frame: bytes) -> None:
    expected = _outcome(_decode_general, frame)
    assert _outcome(decode, frame) == expected
    fast = _decode_fast(frame)
    if fast is not None:
        assert expected == ("pdu", _pdu_shape(fast))


@_FUZZ
@given(st.binary(max_size=300))
def test_arbitrary_bytes_decode_alike(data: bytes) -> None:
    _same_decode(data)


@_FUZZ
@given(
    st.sampled_from(sorted(PDU_TABLE)),
    st.one_of(st.just(0), st.integers(0, 0xFFFFFFFF)),
    st.integers(0, 0xFFFFFFFF),
    st.binary(max_size=200),
)
def test_honest_header_random_body_decodes_alike(command_id: int, status: int, seq: int, body: bytes) -> None:
    """A header the decoder accepts, so that the body's garbage reaches the field and TLV readers."""
    _same_decode(HEADER.pack(16 + len(body), command_id, status, seq) + body)


@_FUZZ
@given(pdus(), st.data())
def test_corrupted_pdus_decode_alike(pdu: Pdu, data: st.DataObject) -> None:
    wire = bytearray(_encode_general(pdu))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.sampled_from([0, 1, 16, 17, 0x7F, 0xFF, data.draw(st.integers(0, 255))]))
    if data.draw(st.booleans()):
        wire = wire[: data.draw(st.integers(0, len(wire)))] + data.draw(st.binary(max_size=8))
    if data.draw(st.booleans()) and len(wire) >= 16:
        wire[0:4] = len(wire).to_bytes(4, "big")  # keep command_length honest: the body is what is judged
    _same_decode(bytes(wire))


@_FUZZ
@given(pdus(), st.lists(st.tuples(_odd_tags.filter(lambda t: type(t) is int and 0 <= t <= 0xFFFF),
                                  st.integers(0, 20), st.binary(max_size=20)), max_size=3), st.integers(0, 3))
def test_tlv_area_garbage_decodes_alike(pdu: Pdu, extra: list[tuple[int, int, bytes]], trim: int) -> None:
    """Hand-made TLVs with lengths that lie, C-Octet Strings without NUL, integers of the wrong size."""
    area = b"".join(tag.to_bytes(2, "big") + length.to_bytes(2, "big") + value for tag, length, value in extra)
    wire = _encode_general(pdu) + area
    wire = wire[: max(16, len(wire) - trim)]
    _same_decode(HEADER.pack(len(wire), pdu.command_id, pdu.command_status, pdu.sequence_number) + wire[16:])


# ------------------------------------------------------------------------------------------------ table walks
#
# Random draws rarely land on the one field and the one boundary a fast step could get wrong, so these walk
# the tables instead: every field of every PDU, every TLV tag, each at and around its limits.


def _boundary_values(kind: FieldKind, max_size: int) -> list[object]:
    if kind in (FieldKind.COCTET, FieldKind.TIME):
        return ["x" * k for k in (0, 1, 15, 16, 17, max(0, max_size - 2), max_size - 1, max_size, max_size + 1)]
    if kind is FieldKind.OCTETS:
        return [b"x" * k for k in (0, max_size - 1, max_size, max_size + 1)]
    if kind in (FieldKind.INT1, FieldKind.INT4):
        return [0, 255, 256, 0xFFFFFFFF, 1 << 32]
    return []


def _encode_alike(pdu: Pdu) -> None:
    expected = _outcome(_encode_general, pdu)
    assert _outcome(encode, pdu) == expected, pdu
    fast = _encode_fast(pdu)
    if fast is not None:
        assert expected == ("value", _shape(fast)), pdu


@pytest.mark.parametrize("command_id", sorted(PDU_TABLE), ids=lambda c: CommandId(c).name)
def test_every_field_at_its_limits_encodes_alike(command_id: int) -> None:
    spec = PDU_TABLE[command_id]
    for status in (0, CommandStatus.ESME_RSYSERR.value):
        for f in spec.fields:
            for value in [*_ODD_VALUES, *_boundary_values(f.kind, f.max_size)]:
                params = default_params(spec)
                params[f.name] = value  # type: ignore[assignment]
                _encode_alike(Pdu(spec.command_id, 1, status, params))


def _gaps(tag: int) -> set[int]:
    """Lengths between a TLV's bounds that its row still refuses (ms_validity: 2 and 3, between 1 and 4)."""
    spec = TLV_BY_TAG.get(tag)
    if spec is None:
        return set()
    return {k for k in range(spec.min_length, min(spec.max_length, 300) + 1) if not spec.allows(k)}


def _tlv_values_around(tag: int) -> list[object]:
    spec = TLV_BY_TAG.get(tag)
    lo, hi = (0, 0xFFFF) if spec is None else (spec.min_length, spec.max_length)
    sizes = sorted({max(0, lo - 1), lo, hi, hi + 1, 0x10000, *_gaps(tag)} - {-1})
    values: list[object] = [b"x" * k for k in sizes]
    values += ["x" * k for k in sorted({max(0, lo - 2), max(0, lo - 1), max(0, hi - 1), hi, hi + 1})]
    values += [(1 << (8 * k)) - 1 for k in (1, 2, 4)] + [1 << (8 * k) for k in (1, 2, 4)]
    return values


@pytest.mark.parametrize("tag", [*sorted(TLV_BY_TAG), 0x1402, 0x0000, 0xFFFF], ids=lambda t: f"0x{t:04x}")
def test_every_tlv_at_its_limits_encodes_alike(tag: int) -> None:
    for command_id in (CommandId.deliver_sm, CommandId.query_sm):  # TLVs allowed, and not
        spec = PDU_TABLE[command_id]
        for value in [*_ODD_VALUES, *_tlv_values_around(tag)]:
            for tlvs in (((tag, value),), ((0x0427, 2), (tag, value), (0x1402, b"v"))):
                _encode_alike(Pdu(command_id, 1, 0, default_params(spec), tlvs))  # type: ignore[arg-type]


def _raw_tlv_values(tag: int) -> list[bytes]:
    spec = TLV_BY_TAG.get(tag)
    lo, hi = (0, 40) if spec is None else (spec.min_length, min(spec.max_length, 300))
    out: list[bytes] = []
    for k in sorted({max(0, lo - 1), lo, lo + 1, 3, hi - 1, hi, hi + 1, *_gaps(tag)} - {-1}):
        out += [b"\x00" * k, b"x" * k, b"x" * max(0, k - 1) + b"\x00"]
        if k >= 2:
            out += [b"\x00" + b"x" * (k - 2) + b"\x00", b"x" * (k - 2) + b"\x00\x00", b"\xff" * k]
    return out


@pytest.mark.parametrize("tag", [*sorted(TLV_BY_TAG), 0x1402, 0x0000, 0xFFFF], ids=lambda t: f"0x{t:04x}")
def test_every_tlv_with_odd_octets_decodes_alike(tag: int) -> None:
    for command_id in (CommandId.deliver_sm, CommandId.broadcast_sm, CommandId.query_sm):
        body = _encode_general(Pdu.make(command_id, 1))[16:]
        for raw in _raw_tlv_values(tag):
            area = tag.to_bytes(2, "big") + len(raw).to_bytes(2, "big") + raw
            for tail in (b"", area[:-1], area[:3]):
                frame_body = body + area + tail
                _same_decode(HEADER.pack(16 + len(frame_body), command_id, 0, 77) + frame_body)


def _field_variants(f: Field) -> list[bytes]:
    """Wire forms of one mandatory field, legal and not, around its limits."""
    if f.kind in (FieldKind.COCTET, FieldKind.TIME):
        m = f.max_size
        lengths = sorted({0, 1, 15, 16, 17, max(0, m - 2), m - 1, m, m + 1})
        return [b"x" * k + b"\x00" for k in lengths] + [b"x" * m, b"\xe9" * (m - 1) + b"\x00", b""]
    if f.kind is FieldKind.OCTETS:
        return [bytes([k]) + b"y" * k for k in (0, 1, f.max_size)] + [b"\xff" + b"y" * 255, b"\x05yy", b""]
    if f.kind is FieldKind.DEST_ADDRESSES:
        return [b"\x00", b"\x01\x01\x01\x01abc\x00", b"\x02\x02dl\x00", b"\x01\x03", b"\xff", b""]
    if f.kind is FieldKind.UNSUCCESS_SMES:
        return [b"\x00", b"\x01\x01\x01abc\x00\x00\x00\x00\x08", b"\x01\x01\x01abc\x00\x00", b""]
    return [b"\x00", b"\xff", b""]


@pytest.mark.parametrize("command_id", sorted(PDU_TABLE), ids=lambda c: CommandId(c).name)
def test_every_field_at_its_limits_decodes_alike(command_id: int) -> None:
    """Each field in turn replaced by each variant, the others NULL; then every truncation of the body."""
    spec = PDU_TABLE[command_id]
    nulls = [_field_variants(f)[0] if f.kind not in (FieldKind.INT4,) else b"\x00" * 4 for f in spec.fields]
    for status in (0, CommandStatus.ESME_RTHROTTLED.value):
        for i, f in enumerate(spec.fields):
            for variant in _field_variants(f):
                for tail in (b"", b"\x04\x27\x00\x01\x02"):  # nothing, or a message_state TLV
                    body = b"".join(nulls[:i]) + variant + b"".join(nulls[i + 1 :]) + tail
                    _same_decode(HEADER.pack(16 + len(body), command_id, status, 5) + body)
        body = b"".join(nulls) + b"\x04\x27\x00\x01\x02"
        for cut in range(len(body) + 1):
            _same_decode(HEADER.pack(16 + cut, command_id, status, 5) + body[:cut])


def test_ms_validity_gap_is_walked() -> None:
    """The table walks above must reach the lengths the fast steps' ``lo..hi`` test alone would let through."""
    tag = TLV_BY_NAME["ms_validity"].tag
    assert _gaps(tag) == {2, 3}
    assert {len(v) for v in _tlv_values_around(tag) if isinstance(v, bytes)} >= {2, 3}
    assert {len(raw) for raw in _raw_tlv_values(tag)} >= {2, 3}


# ---------------------------------------------------------------------------- short_message with message_payload

_EXCLUSIVE_ROWS = sorted(c for c, spec in PDU_TABLE.items() if spec.payload_excludes_short_message)


@_FUZZ
@given(st.sampled_from(_EXCLUSIVE_ROWS).flatmap(lambda c: pdus(CommandId(c))), st.data())
def test_short_message_with_message_payload_is_refused_alike(pdu: Pdu, data: st.DataObject) -> None:
    """Both set: the general path refuses, and the fast path must give up rather than write it."""
    short = data.draw(st.one_of(st.just(b""), st.binary(min_size=1, max_size=254), st.just(bytearray(b"x"))))
    payload = data.draw(st.one_of(st.binary(max_size=300), st.sampled_from(_ODD_VALUES)))
    tlvs = list(pdu.tlvs)
    tlvs.insert(data.draw(st.integers(0, len(tlvs))), (TLV_BY_NAME["message_payload"].tag, payload))
    odd = Pdu(pdu.command_id, pdu.sequence_number, pdu.command_status, {**pdu.params, "short_message": short},
              tuple(tlvs))
    expected = _outcome(_encode_general, odd)
    if short and type(payload) is bytes:
        assert expected[:2] == ("error", LocalProtocolError)
    assert _outcome(encode, odd) == expected
    fast = _encode_fast(odd)
    if fast is not None:
        assert expected == ("value", _shape(fast))


# ------------------------------------------------------------------------------------------------ compiled rows


@settings(max_examples=500, deadline=None)
@given(pdus())
def test_compiled_row_functions_agree_with_the_field_walkers(pdu: Pdu) -> None:
    """Each row's generated encoder and decoder against the general path's per-field writer and reader."""
    plan = _PLANS[pdu.command_id]
    spec = PDU_TABLE[pdu.command_id]
    expected = bytearray(16)
    for f in spec.fields:
        _put_field(expected, f, pdu.params[f.name])
    compiled = bytearray(16)
    assert plan.encode_body(pdu.params, compiled) is True
    assert compiled == expected
    frame = bytes(expected)
    reader = _Reader(frame, 16, len(frame))
    reference = _read_fields(spec, reader)
    decoded = plan.decode_body(frame, len(frame))
    assert decoded is not None
    params, pos = decoded
    assert pos == reader.pos == len(frame)
    assert list(params.items()) == list(reference.items())  # same fields, same values, same order
