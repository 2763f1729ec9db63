"""Hypothesis strategies for SMPP PDUs, generated from the PDU and TLV tables (never listed by hand).

Requires the ``hypothesis`` package (the ``test`` extra). ``pdus()`` draws any legal PDU of any command;
``pdus(CommandId.submit_sm)`` one command's PDUs. Legal means what our encoder writes: TLV values only of the
lengths their row allows (``TlvSpec.allows``: ms_validity is 1 or 4 octets, never 2 or 3), and never a non-empty
short_message beside a message_payload TLV (SMPP 3.4 4.4.1, 5.3.2.32).
"""

from __future__ import annotations

from functools import partial

from hypothesis import strategies as st

from carrier_sim.smpp.constants import SEQUENCE_MAX, CommandId
from carrier_sim.smpp.pdu import DistributionList, ParamValue, Pdu, SmeAddress, UnsuccessSme
from carrier_sim.smpp.pdu_table import PDU_TABLE, Field, FieldKind, PduSpec
from carrier_sim.smpp.tlv import (
    TLV_BY_NAME,
    TLV_BY_TAG,
    BroadcastAreaIdentifier,
    BroadcastContentType,
    BroadcastFrequencyInterval,
    NetworkErrorCode,
    TlvKind,
    TlvSpec,
    TlvValue,
)

__all__ = ["cstrings", "pdus", "sequence_numbers", "smpp_times", "tlv_octets", "tlv_values", "tlvs"]

sequence_numbers = st.integers(min_value=1, max_value=SEQUENCE_MAX)
_MESSAGE_PAYLOAD = TLV_BY_NAME["message_payload"].tag


def cstrings(max_size: int, alphabet: str | None = None) -> st.SearchStrategy[str]:
    """Latin-1 text without NUL that fits a C-Octet String of ``max_size`` octets (NUL included)."""
    chars = st.characters(min_codepoint=1, max_codepoint=255) if alphabet is None else st.sampled_from(alphabet)
    return st.text(chars, max_size=max(0, max_size - 1))


def smpp_times() -> st.SearchStrategy[str]:
    """Absolute (``+``/``-`` with quarter-hour offset) or relative (``R``) SMPP times, or NULL (SMPP 3.4 7.1)."""
    absolute = st.builds(
        lambda y, mo, d, h, mi, s, t, n, p: f"{y:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}{t}{n:02}{p}",
        st.integers(0, 99), st.integers(1, 12), st.integers(1, 28), st.integers(0, 23), st.integers(0, 59),
        st.integers(0, 59), st.integers(0, 9), st.integers(0, 48), st.sampled_from("+-"),
    )
    relative = st.builds(
        lambda y, mo, d, h, mi, s: f"{y:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}000R",
        st.integers(0, 99), st.integers(0, 11), st.integers(0, 30), st.integers(0, 23), st.integers(0, 59),
        st.integers(0, 59),
    )
    return st.one_of(st.just(""), absolute, relative)


def _field(f: Field) -> st.SearchStrategy[ParamValue]:
    if f.kind is FieldKind.INT1:
        return st.integers(0, 255)
    if f.kind is FieldKind.INT4:
        return st.integers(0, 0xFFFFFFFF)
    if f.kind is FieldKind.COCTET:
        return cstrings(f.max_size)
    if f.kind is FieldKind.TIME:
        return smpp_times()
    if f.kind is FieldKind.OCTETS:
        return st.binary(max_size=f.max_size)
    if f.kind is FieldKind.DEST_ADDRESSES:
        entry = st.one_of(
            st.builds(SmeAddress, st.integers(0, 255), st.integers(0, 255), cstrings(21)),
            st.builds(DistributionList, cstrings(21)),
        )
        return st.lists(entry, max_size=8).map(tuple)
    entry_u = st.builds(
        UnsuccessSme, st.integers(0, 255), st.integers(0, 255), cstrings(21), st.integers(0, 0xFFFFFFFF)
    )
    return st.lists(entry_u, max_size=8).map(tuple)


def tlv_octets(spec: TlvSpec, *, min_size: int = 0, max_size: int = 300) -> st.SearchStrategy[bytes]:
    """Values of an Octet String TLV of a length its row allows, and within ``min_size..max_size`` (a cap that
    keeps the 64K message_payload small; both must leave at least one allowed length)."""
    lo, hi = max(spec.min_length, min_size), min(spec.max_length, max_size)
    if spec.lengths is None:
        return st.binary(min_size=lo, max_size=hi)
    # Only the listed lengths: ms_validity's 1 or 4, not the 2 or 3 between them.
    sizes = sorted(n for n in spec.lengths if lo <= n <= hi)
    return st.sampled_from(sizes).flatmap(lambda n: st.binary(min_size=n, max_size=n))


def tlv_values(spec: TlvSpec) -> st.SearchStrategy[TlvValue]:
    """Legal values of one standard TLV."""
    kind = spec.kind
    if kind is TlvKind.INT1:
        return st.integers(0, 0xFF)
    if kind is TlvKind.INT2:
        return st.integers(0, 0xFFFF)
    if kind is TlvKind.INT4:
        return st.integers(0, 0xFFFFFFFF)
    if kind is TlvKind.COCTET:
        return cstrings(spec.max_length)
    if kind is TlvKind.OCTET:
        return tlv_octets(spec)
    if kind is TlvKind.NETWORK_ERROR:
        return st.builds(NetworkErrorCode, st.integers(0, 255), st.integers(0, 0xFFFF))
    if kind is TlvKind.CONTENT_TYPE:
        return st.builds(BroadcastContentType, st.integers(0, 255), st.integers(0, 0xFFFF))
    if kind is TlvKind.FREQUENCY:
        return st.builds(BroadcastFrequencyInterval, st.integers(0, 255), st.integers(0, 0xFFFF))
    return st.builds(BroadcastAreaIdentifier, st.integers(0, 255), st.binary(max_size=100))


_known_tlv = st.sampled_from(sorted(TLV_BY_TAG)).flatmap(
    lambda tag: tlv_values(TLV_BY_TAG[tag]).map(lambda v: (tag, v))
)
# Vendor-specific (SMPP 3.4 5.3.2: 0x1400-0x3FFF) and other unknown tags travel as raw bytes.
_unknown_tlv = st.tuples(
    st.integers(0, 0xFFFF).filter(lambda t: t not in TLV_BY_TAG), st.binary(max_size=64)
).map(lambda tv: (tv[0], tv[1]))


def tlvs(max_size: int = 6) -> st.SearchStrategy[tuple[tuple[int, TlvValue], ...]]:
    """An ordered TLV area mixing standard and unknown tags."""
    return st.lists(st.one_of(_known_tlv, _unknown_tlv), max_size=max_size).map(tuple)


def _tagged(tag: int, value: TlvValue) -> tuple[int, TlvValue]:
    return (tag, value)


def _with_required(spec: PduSpec) -> st.SearchStrategy[tuple[tuple[int, TlvValue], ...]]:
    required = [TLV_BY_NAME[name] for name in spec.required_tlvs]
    head = st.tuples(*(tlv_values(t).map(partial(_tagged, t.tag)) for t in required))
    return st.tuples(head, tlvs()).map(lambda ht: tuple(ht[0]) + ht[1])


def _pdu(spec: PduSpec) -> st.SearchStrategy[Pdu]:
    params = st.fixed_dictionaries({f.name: _field(f) for f in spec.fields})
    tlv_area: st.SearchStrategy[tuple[tuple[int, TlvValue], ...]]
    if not spec.tlvs_allowed:
        tlv_area = st.just(())
    elif spec.required_tlvs:
        tlv_area = _with_required(spec)
    else:
        tlv_area = tlvs()
    # Responses may carry an error status; a request's status is always 0 (SMPP 3.4 3.2).
    status = st.integers(0, 0x112) if spec.command_id.is_response else st.just(0)
    build = _build_exclusive if spec.payload_excludes_short_message else _build
    return st.builds(partial(build, spec.command_id), sequence_numbers, status, params, tlv_area)


def _build(
    command_id: CommandId,
    seq: int,
    status: int,
    params: dict[str, ParamValue],
    tlv_area: tuple[tuple[int, TlvValue], ...],
) -> Pdu:
    return Pdu(command_id, seq, status, dict(params), tlv_area)


def _build_exclusive(
    command_id: CommandId,
    seq: int,
    status: int,
    params: dict[str, ParamValue],
    tlv_area: tuple[tuple[int, TlvValue], ...],
) -> Pdu:
    # With message_payload, short_message stays empty (SMPP 3.4 4.4.1: "Both fields should not be used
    # simultaneously"); the encoder refuses anything else.
    if any(tag == _MESSAGE_PAYLOAD for tag, _ in tlv_area):
        params = {**params, "short_message": b""}
    return _build(command_id, seq, status, params, tlv_area)


def pdus(*command_ids: CommandId) -> st.SearchStrategy[Pdu]:
    """Legal PDUs of the given commands (all commands when none are given)."""
    chosen = command_ids or tuple(CommandId)
    return st.one_of(*(_pdu(PDU_TABLE[c]) for c in chosen))
