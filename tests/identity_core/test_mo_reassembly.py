"""Concatenated MO reassembly: UDH (8- and 16-bit references) and SAR TLVs, any order, duplicates, bounds."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_core.mo_reassembly import (
    DIGEST_COST,
    ESM_CLASS_UDHI,
    GROUP_OVERHEAD,
    SEGMENT_OVERHEAD,
    TLV_SAR_MSG_REF_NUM,
    TLV_SAR_SEGMENT_SEQNUM,
    TLV_SAR_TOTAL_SEGMENTS,
    Concatenation,
    InvalidSegment,
    MoReassembler,
    ReferenceKind,
    Segment,
    parse_segment,
)


def udh8(reference: int, total: int, sequence: int, body: bytes) -> bytes:
    return bytes([5, 0x00, 3, reference, total, sequence]) + body


def udh16(reference: int, total: int, sequence: int, body: bytes) -> bytes:
    return bytes([6, 0x08, 4, reference >> 8, reference & 0xFF, total, sequence]) + body


def sar(reference: int, total: int, sequence: int) -> dict[int, bytes]:
    return {TLV_SAR_MSG_REF_NUM: reference.to_bytes(2, "big"), TLV_SAR_TOTAL_SEGMENTS: bytes([total]),
            TLV_SAR_SEGMENT_SEQNUM: bytes([sequence])}


# -- parsing ------------------------------------------------------------------------------------------------


def test_udh_8_bit_reference() -> None:
    segment = parse_segment(udh8(0x2A, 3, 2, b"middle"), ESM_CLASS_UDHI, 0)
    assert segment == Segment(b"middle", 0, Concatenation(ReferenceKind.UDH8, 0x2A, 3, 2))


def test_udh_16_bit_reference_beside_another_element() -> None:
    # A port-addressing element (IEI 0x05) before the concatenation element: both are read, only 0x08 kept.
    data = bytes([12, 0x05, 4, 0x0B, 0x84, 0x23, 0xF0, 0x08, 4, 0x12, 0x34, 2, 1]) + b"first"
    segment = parse_segment(data, ESM_CLASS_UDHI | 0x03, 8)
    assert segment == Segment(b"first", 8, Concatenation(ReferenceKind.UDH16, 0x1234, 2, 1))


def test_sar_tlvs() -> None:
    segment = parse_segment(b"plain", 0, 0, sar(0xBEEF, 4, 4))
    assert segment.concatenation == Concatenation(ReferenceKind.SAR, 0xBEEF, 4, 4)
    assert segment.body == b"plain"


def test_udh_wins_over_sar() -> None:
    segment = parse_segment(udh8(7, 2, 1, b"x"), ESM_CLASS_UDHI, 0, sar(9, 3, 3))
    assert segment.concatenation == Concatenation(ReferenceKind.UDH8, 7, 2, 1)


def test_without_udhi_the_octets_are_all_text() -> None:
    data = udh8(1, 2, 1, b"x")
    assert parse_segment(data, 0, 0) == Segment(data, 0, None)


@pytest.mark.parametrize(("total", "sequence"), [(0, 0), (2, 0), (2, 3), (1, 1)])
def test_meaningless_concatenation_reads_as_a_whole_message(total: int, sequence: int) -> None:
    # TS 23.040 9.2.3.24.1: a zero or out-of-range value makes the receiver ignore the element.
    assert parse_segment(udh8(1, total, sequence, b"x"), ESM_CLASS_UDHI, 0).concatenation is None


@pytest.mark.parametrize(
    ("data", "tlvs"),
    [
        (b"", {}),  # UDHI with nothing
        (bytes([9, 0x00, 3, 1, 2, 1]), {}),  # UDHL past the end
        (bytes([3, 0x00, 3, 1]), {}),  # element past the UDH
        (bytes([4, 0x00, 2, 1, 2]) + b"x", {}),  # IEI 0x00 with 2 octets
        (bytes([5, 0x08, 3, 1, 2, 1]) + b"x", {}),  # IEI 0x08 with 3 octets
    ],
)
def test_broken_udh_is_refused(data: bytes, tlvs: dict[int, bytes]) -> None:
    with pytest.raises(InvalidSegment):
        parse_segment(data, ESM_CLASS_UDHI, 0, tlvs)


@pytest.mark.parametrize(("total", "sequence"), [(0, 0), (0, 1), (3, 0), (3, 4)])
def test_sar_out_of_range_is_refused_not_read_as_a_whole_message(total: int, sequence: int) -> None:
    # SMPP 3.4 5.3.2.23/24: 1..255, seqnum within the total. Read as a whole message, a fragment of a long MO
    # would be handed on as all of it; the UDH rule (ignore the element) is TS 23.040's, not SMPP's.
    with pytest.raises(InvalidSegment, match="out of range"):
        parse_segment(b"fragment", 0, 0, sar(5, total, sequence))


def test_sar_of_one_segment_is_a_whole_message() -> None:
    assert parse_segment(b"whole", 0, 0, sar(5, 1, 1)).concatenation is None


def test_partial_or_mis_sized_sar_is_refused() -> None:
    with pytest.raises(InvalidSegment):
        parse_segment(b"x", 0, 0, {TLV_SAR_MSG_REF_NUM: b"\x00\x01"})
    with pytest.raises(InvalidSegment):
        parse_segment(b"x", 0, 0, {**sar(1, 2, 1), TLV_SAR_MSG_REF_NUM: b"\x01"})


# -- reassembly ---------------------------------------------------------------------------------------------


def segments_of(body: bytes, total: int, reference: int, kind: ReferenceKind) -> list[Segment]:
    size = -(-len(body) // total) if body else 0
    pieces = [body[i * size : (i + 1) * size] for i in range(total)]
    return [Segment(piece, 0, Concatenation(kind, reference, total, n + 1)) for n, piece in enumerate(pieces)]


def test_a_whole_message_passes_straight_through() -> None:
    reassembler = MoReassembler()
    whole = reassembler.add("a", Segment(b"hello", 3, None), 0.0)
    assert whole is not None
    assert (whole.body, whole.parts) == (b"hello", ((3, b"hello"),))
    assert reassembler.pending_groups == 0


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(min_size=0, max_size=600),
    total=st.integers(min_value=2, max_value=8),
    reference=st.integers(min_value=0, max_value=0xFFFF),
    kind=st.sampled_from(ReferenceKind),
    data=st.data(),
)
def test_any_order_with_duplicates_gives_the_message_once(body: bytes, total: int, reference: int,
                                                          kind: ReferenceKind, data: st.DataObject) -> None:
    segments = segments_of(body, total, reference, kind)
    # Every segment at least once, some several times, in any order.
    extra = data.draw(st.lists(st.sampled_from(segments), max_size=6))
    arrival = data.draw(st.permutations(segments + extra))
    reassembler = MoReassembler(timeout=60.0)
    results = [reassembler.add(("447700900123", GATEWAY_DEST), s, float(i)) for i, s in enumerate(arrival)]
    done = [r for r in results if r is not None]
    assert len(done) == 1
    assert done[0].body == body
    assert len(done[0].parts) == total
    assert reassembler.duplicates == len(extra)
    assert reassembler.pending_groups == 0
    assert reassembler.pending_bytes == 0


GATEWAY_DEST = "447700900000"


@settings(max_examples=100, deadline=None)
@given(messages=st.lists(st.binary(min_size=1, max_size=200), min_size=2, max_size=5), data=st.data())
def test_interleaved_messages_from_one_sender_do_not_mix(messages: list[bytes], data: st.DataObject) -> None:
    streams = [segments_of(body, 3, ref, ReferenceKind.UDH8) for ref, body in enumerate(messages)]
    arrival = data.draw(st.permutations([s for stream in streams for s in stream]))
    reassembler = MoReassembler()
    done = [r.body for r in (reassembler.add("sender", s, 0.0) for s in arrival) if r is not None]
    assert sorted(done) == sorted(messages)


def test_same_reference_from_two_senders_or_two_kinds_stays_apart() -> None:
    reassembler = MoReassembler()
    a = segments_of(b"AAAA", 2, 5, ReferenceKind.UDH8)
    b = segments_of(b"BBBB", 2, 5, ReferenceKind.UDH8)
    c = segments_of(b"CCCC", 2, 5, ReferenceKind.SAR)
    assert reassembler.add("alice", a[0], 0) is None
    assert reassembler.add("bob", b[1], 0) is None
    assert reassembler.add("alice", c[0], 0) is None
    assert reassembler.pending_groups == 3
    whole = reassembler.add("alice", a[1], 0)
    assert whole is not None
    assert whole.body == b"AAAA"
    assert whole.origin == "alice"


def test_a_late_duplicate_after_completion_opens_no_group() -> None:
    reassembler = MoReassembler(timeout=10.0)
    parts = segments_of(b"abcdef", 2, 1, ReferenceKind.UDH8)
    assert reassembler.add("s", parts[0], 0.0) is None
    assert reassembler.add("s", parts[1], 1.0) is not None
    # A late copy with the very octets of a part already handed on is a duplicate (a resend): dropped.
    assert reassembler.add("s", parts[0], 2.0) is None
    assert reassembler.pending_groups == 0
    assert reassembler.duplicates == 1
    # After the timeout the reference may be reused for a new message, with any text.
    reassembler.expire(12.0)
    assert reassembler.add("s", parts[0], 13.0) is None
    assert reassembler.pending_groups == 1


def test_a_reference_reused_after_completion_for_other_text_is_a_new_message() -> None:
    # Within the timeout too: a segment with other octets than the completed part of its number is not a
    # duplicate. The old rule dropped the new message's part 1 and then its part 2 as duplicates.
    reassembler = MoReassembler(timeout=120.0)
    first = segments_of(b"t=aaaaaaaa;r=1;", 2, 7, ReferenceKind.UDH8)
    second = segments_of(b"t=bbbbbbbb;r=2;", 2, 7, ReferenceKind.UDH8)
    assert reassembler.add("s", first[0], 0.0) is None
    assert reassembler.add("s", first[1], 0.1) is not None
    assert reassembler.add("s", second[0], 60.0) is None
    whole = reassembler.add("s", second[1], 60.1)
    assert whole is not None
    assert whole.body == b"t=bbbbbbbb;r=2;"
    assert reassembler.duplicates == 0


def test_a_reference_reused_while_pending_gives_up_the_old_group_and_makes_no_chimera() -> None:
    # Message A's part 2 is lost; message B reuses A's reference and total. B's part 1 differs from A's part 1:
    # A is given up (reported as superseded: an incomplete message) and B assembled from B's parts only.
    reassembler = MoReassembler(timeout=120.0)
    a = Segment(b"REG-REQ?t=" + b"a" * 64 + b";", 0, Concatenation(ReferenceKind.UDH8, 7, 2, 1))
    b1 = Segment(b"REG-REQ?t=" + b"b" * 64 + b";", 0, Concatenation(ReferenceKind.UDH8, 7, 2, 1))
    b2 = Segment(b"r=2;", 0, Concatenation(ReferenceKind.UDH8, 7, 2, 2))
    assert reassembler.add("s", a, 0.0) is None
    assert reassembler.add("s", b1, 50.0) is None
    assert reassembler.pending_groups == 1
    assert reassembler.pending_bytes == len(b1.body)
    whole = reassembler.add("s", b2, 50.1)
    assert whole is not None
    assert whole.body == b1.body + b2.body
    assert reassembler.duplicates == 0
    assert reassembler.superseded == 1
    [gone] = reassembler.expire(50.2)
    assert (gone.origin, gone.received, gone.total, gone.evicted, gone.superseded) == ("s", 1, 2, False, True)


def test_an_identical_segment_while_pending_stays_a_duplicate() -> None:
    reassembler = MoReassembler()
    parts = segments_of(b"abcdef", 2, 3, ReferenceKind.SAR)
    assert reassembler.add("s", parts[0], 0.0) is None
    assert reassembler.add("s", parts[0], 1.0) is None
    assert (reassembler.duplicates, reassembler.superseded) == (1, 0)
    assert reassembler.add("s", parts[1], 2.0) is not None


def test_an_incomplete_message_times_out() -> None:
    reassembler = MoReassembler(timeout=5.0)
    parts = segments_of(b"abcdefghi", 3, 9, ReferenceKind.UDH16)
    reassembler.add("s", parts[0], 100.0)
    reassembler.add("s", parts[2], 101.0)
    assert reassembler.next_deadline == 105.0
    assert reassembler.expire(104.9) == []
    [gone] = reassembler.expire(105.0)
    assert (gone.origin, gone.received, gone.total, gone.evicted) == ("s", 2, 3, False)
    assert reassembler.pending_groups == 0
    assert reassembler.pending_bytes == 0
    assert reassembler.expired == 1
    # The missing segment arriving now starts a new group rather than completing the dropped one.
    assert reassembler.add("s", parts[1], 106.0) is None


def test_segments_disagreeing_on_the_total_are_given_up_once_per_total() -> None:
    # Documented behaviour (module docstring): groups are keyed by the total, so one broken message whose
    # segments say 2 and 3 is two groups, reported incomplete twice.
    reassembler = MoReassembler(timeout=10.0)
    assert reassembler.add("s", Segment(b"a", 0, Concatenation(ReferenceKind.UDH8, 9, 2, 1)), 0.0) is None
    assert reassembler.add("s", Segment(b"b", 0, Concatenation(ReferenceKind.UDH8, 9, 3, 2)), 0.0) is None
    assert [gone.total for gone in reassembler.expire(20.0)] == [2, 3]


def test_group_bound_evicts_the_oldest() -> None:
    reassembler = MoReassembler(max_groups=3)
    for ref in range(5):
        reassembler.add(f"s{ref}", segments_of(b"xxyy", 2, ref, ReferenceKind.UDH8)[0], float(ref))
    assert reassembler.pending_groups == 3
    assert reassembler.evicted == 2
    evicted = reassembler.expire(0.0)
    assert [(e.origin, e.evicted) for e in evicted] == [("s0", True), ("s1", True)]


def test_byte_bound_evicts_the_oldest_but_keeps_the_newest() -> None:
    limit = GROUP_OVERHEAD + SEGMENT_OVERHEAD + 250
    reassembler = MoReassembler(max_bytes=limit)
    for ref in range(4):  # first halves of 200 octets each, with their overheads: two never fit in the limit
        reassembler.add(f"s{ref}", segments_of(bytes(400), 2, ref, ReferenceKind.UDH8)[0], float(ref))
        assert reassembler.charged_bytes <= limit
    assert reassembler.pending_groups == 1
    assert reassembler.evicted == 3
    # The survivor still completes.
    whole = reassembler.add("s3", segments_of(bytes(400), 2, 3, ReferenceKind.UDH8)[1], 5.0)
    assert whole is not None
    assert whole.body == bytes(400)


def test_byte_bound_holds_when_the_growing_group_is_the_oldest() -> None:
    # Room for two groups of one segment each and 100 body octets: a's second segment passes it.
    limit = 2 * GROUP_OVERHEAD + 2 * SEGMENT_OVERHEAD + 100
    reassembler = MoReassembler(max_bytes=limit)
    reassembler.add("a", Segment(b"a" * 50, 0, Concatenation(ReferenceKind.UDH8, 1, 3, 1)), 0.0)
    reassembler.add("b", Segment(b"b" * 40, 0, Concatenation(ReferenceKind.UDH8, 1, 3, 1)), 1.0)
    # "a" is the oldest and grows past the bound: "b" goes, not the bound.
    assert reassembler.pending_groups == 2
    reassembler.add("a", Segment(b"a" * 50, 0, Concatenation(ReferenceKind.UDH8, 1, 3, 2)), 2.0)
    assert reassembler.charged_bytes <= limit
    assert reassembler.pending_groups == 1
    assert [(e.origin, e.evicted) for e in reassembler.expire(2.0)] == [("b", True)]


def test_segments_with_empty_bodies_still_count_against_the_byte_bound() -> None:
    # Counted by body octets alone, empty segments cost nothing: max_groups groups of 254 held parts each (about
    # 230 MiB at the gateway's 10,000 groups) fitted in any max_bytes.
    limit = 1024 * 1024
    reassembler = MoReassembler(max_groups=10_000, max_bytes=limit)
    for reference in range(200):
        for sequence in range(1, 255):  # 254 of 255 parts: never complete
            segment = Segment(b"", 0, Concatenation(ReferenceKind.UDH16, reference, 255, sequence))
            assert reassembler.add("flood", segment, 0.0) is None
            assert reassembler.charged_bytes <= limit
    assert reassembler.pending_bytes == 0
    held = reassembler.pending_groups
    assert held * (GROUP_OVERHEAD + 254 * SEGMENT_OVERHEAD) <= limit
    assert reassembler.evicted == 200 - held > 0
    # What was charged is given back as the groups go.
    reassembler.expire(1e9)
    assert (reassembler.pending_groups, reassembler.charged_bytes) == (0, 0)


def test_completed_messages_remembered_for_late_duplicates_count_against_the_byte_bound() -> None:
    # _done keeps each completed message's 16-octet digests for late duplicates: up to max_groups x 255 of them,
    # uncounted, was another ~210 MiB. They count now, and are forgotten first, oldest first.
    limit = 64 * 1024
    reassembler = MoReassembler(max_groups=10_000, max_bytes=limit)
    per_message = GROUP_OVERHEAD + 255 * DIGEST_COST
    for reference in range(100):
        for sequence in range(1, 256):
            segment = Segment(b"", 0, Concatenation(ReferenceKind.UDH16, reference, 255, sequence))
            reassembler.add("sender", segment, 0.0)
            assert reassembler.charged_bytes <= limit
    assert reassembler.charged_bytes == (limit // per_message) * per_message
    # The newest completion is still remembered (a late copy is a duplicate), the oldest no longer.
    last = Segment(b"", 0, Concatenation(ReferenceKind.UDH16, 99, 255, 1))
    assert reassembler.add("sender", last, 1.0) is None
    assert reassembler.duplicates == 1
    first = Segment(b"", 0, Concatenation(ReferenceKind.UDH16, 0, 255, 1))
    assert reassembler.add("sender", first, 1.0) is None
    assert (reassembler.duplicates, reassembler.pending_groups) == (1, 1)
    reassembler.expire(1e9)
    assert reassembler.charged_bytes == 0


def _charge_of(reassembler: MoReassembler) -> int:
    """charged_bytes recomputed from what the reassembler holds."""
    pending = sum(GROUP_OVERHEAD + group.size + len(group.parts) * SEGMENT_OVERHEAD
                  for group in reassembler._groups.values())
    done = sum(GROUP_OVERHEAD + len(digests) * DIGEST_COST for _, digests in reassembler._done.values())
    return pending + done


@settings(max_examples=200)
@given(
    arrivals=st.lists(st.tuples(st.integers(0, 3), st.integers(2, 4), st.integers(1, 4), st.binary(max_size=40),
                                st.floats(0, 30)), max_size=60),
    max_groups=st.integers(1, 5),
    max_bytes=st.integers(1, 3 * GROUP_OVERHEAD + 8 * SEGMENT_OVERHEAD),
)
def test_the_charge_is_what_is_held_and_stays_within_the_bound(
        arrivals: list[tuple[int, int, int, bytes, float]], max_groups: int, max_bytes: int) -> None:
    reassembler = MoReassembler(timeout=10.0, max_groups=max_groups, max_bytes=max_bytes)
    now = 0.0
    for reference, total, sequence, body, step in arrivals:
        now += step
        if sequence <= total:
            reassembler.add("s", Segment(body, 0, Concatenation(ReferenceKind.UDH8, reference, total, sequence)), now)
        else:
            reassembler.expire(now)
        assert reassembler.charged_bytes == _charge_of(reassembler)
        # Over the bound only by the one group still growing, never by completions or a second group.
        assert reassembler.charged_bytes <= max_bytes or (reassembler.pending_groups == 1 and not reassembler._done)
    reassembler.expire(now + 11.0)  # past every timeout, float rounding included
    assert reassembler.charged_bytes == 0


def test_parts_of_different_codings_are_kept_with_their_coding() -> None:
    reassembler = MoReassembler()
    first = Segment(b"ab", 0, Concatenation(ReferenceKind.UDH8, 1, 2, 1))
    second = Segment("é".encode("utf-16-be"), 8, Concatenation(ReferenceKind.UDH8, 1, 2, 2))
    assert reassembler.add("s", second, 0) is None
    whole = reassembler.add("s", first, 0)
    assert whole is not None
    assert whole.parts == ((0, b"ab"), (8, b"\x00\xe9"))


def test_bounds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        MoReassembler(timeout=0)
