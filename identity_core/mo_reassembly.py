"""Reassembling concatenated MO messages: UDH (IEI 0x00 and 0x08) and SAR TLVs, in any order, within bounds.

Theory of operation. A long MO reaches the ESME as several deliver_sm, each carrying one segment and the
concatenation triple (reference, total, sequence) in one of two places:

* a User Data Header at the start of short_message, announced by esm_class bit 6 (UDHI, 0x40; SMPP 3.4
  section 5.2.12), holding information element 0x00 (8-bit reference) or 0x08 (16-bit reference)
  (3GPP TS 23.040 sections 9.2.3.24.1 and 9.2.3.24.8);
* the SAR TLVs sar_msg_ref_num (0x020C, 2 octets), sar_total_segments (0x020E, 1 octet) and
  sar_segment_seqnum (0x020F, 1 octet) (SMPP 3.4 sections 5.3.2.22-24), with plain short_message.

:func:`parse_segment` reads one deliver_sm's octets into a :class:`Segment`; :class:`MoReassembler` collects
segments and returns the whole message once every sequence number 1..total is in, whatever order the segments
came in (SMSCs deliver over several binds and retry, so order is not guaranteed). It is pure: time enters as
``now`` and nothing here reads a clock, so the same code runs against a socket or in a test with a fake clock.

What a well-behaved reassembler must survive, and how:

* duplicates (an SMSC resending a segment whose deliver_sm_resp it did not see): the first copy is kept, later
  ones are counted and dropped -- also after the message completed, for ``timeout`` seconds, so that a late
  duplicate does not open a group that can never complete. A duplicate is a segment of a sequence number already
  held *with the same octets* (data_coding and body; a digest of them once the message completed);
* a reference reused for another message (a handset's 8-bit counter wraps after 256 long messages, and a phone
  retrying a REG-REQ may reuse it at once): a segment whose sequence number is held with *different* octets is a
  new message. A pending group is given up (reported by :meth:`MoReassembler.expire` as ``superseded``, so it
  counts as incomplete) and a new group started with the segment; a completed message is forgotten and a new
  group opened. Without this the new message's part 1 was dropped as a duplicate and its part 2 completed the
  old group: one message made of two. A reused reference whose new segment carries the very octets of the old
  one (the same text sent twice) cannot be told from a resend and is taken as a duplicate, as is a different
  segment of a sequence number not yet held (nothing distinguishes it from the missing part of the old message);
* a segment that never comes: the group is dropped ``timeout`` seconds after its first segment and reported
  by :meth:`MoReassembler.expire`;
* a flood of first segments (a misbehaving SMSC, or a sender trying to exhaust memory): at most
  ``max_groups`` groups and ``max_bytes`` octets are held; past either, the oldest group other than the one just
  added to is evicted (checked on every segment, so a long message still growing cannot push the total over).
  The octets charged are what holding costs, not only the text: each segment also costs
  :data:`SEGMENT_OVERHEAD`, each group or remembered completion :data:`GROUP_OVERHEAD`, and each part of a
  completed message its digest's :data:`DIGEST_COST` (``charged_bytes``). Counting bodies alone let segments with
  empty bodies cost nothing, so ``max_groups`` groups of 254 empty parts, plus as many completions, were held:
  some 440 MiB against a 16 MiB ``max_bytes``. Completions are forgotten first when the bound is passed (they
  only catch late duplicates), then the oldest groups.

Groups are keyed by the message's origin (the caller's choice: source and destination addresses), the kind of
reference (8-bit UDH, 16-bit UDH and SAR references are different counters on the handset) and the total, so
that one sender's concurrent long messages, and a reference reused for a message of another length, never mix.
The cost of keying by total: segments of one message that disagree on the total (a broken SMSC or handset) fall
into one group per total, none of which can complete, and each is reported when it times out -- so such a message
counts once per distinct total among the given-up groups (``mo_incomplete`` in the gateway). Telling them apart
from two real messages would need an index by reference alone for a fault no conforming sender makes.
"""

from __future__ import annotations

import enum
import hashlib
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final

__all__ = [
    "DIGEST_COST",
    "ESM_CLASS_UDHI",
    "GROUP_OVERHEAD",
    "SEGMENT_OVERHEAD",
    "TLV_SAR_MSG_REF_NUM",
    "TLV_SAR_SEGMENT_SEQNUM",
    "TLV_SAR_TOTAL_SEGMENTS",
    "Concatenation",
    "ExpiredGroup",
    "InvalidSegment",
    "MoReassembler",
    "ReassembledMessage",
    "ReferenceKind",
    "Segment",
    "parse_segment",
    "split_udh",
]

ESM_CLASS_UDHI = 0x40
TLV_SAR_MSG_REF_NUM = 0x020C
TLV_SAR_TOTAL_SEGMENTS = 0x020E
TLV_SAR_SEGMENT_SEQNUM = 0x020F

_IEI_CONCAT_8 = 0x00
_IEI_CONCAT_16 = 0x08

# What holding costs beyond body octets, charged against max_bytes. Fixed figures rounded up from tracemalloc on
# CPython 3.11 (64-bit), so that the bound holds whatever the bodies: a held part's dict slot and (data_coding,
# body) tuple came to about 90 octets; a group's _Group, key, parts dict and OrderedDict entry to a few hundred; a
# completed part's 16-octet digest and its slot to about 85.
#: Octets charged per held segment on top of its body.
SEGMENT_OVERHEAD: Final = 128
#: Octets charged per incomplete group, and per completed message remembered for late duplicates.
GROUP_OVERHEAD: Final = 512
#: Octets charged per part of a completed message remembered for late duplicates (its digest).
DIGEST_COST: Final = 96


class InvalidSegment(ValueError):
    """A deliver_sm whose concatenation information cannot be read (the peer's fault)."""


class ReferenceKind(enum.Enum):
    """Where the concatenation reference came from: each is its own counter on the sending handset."""

    UDH8 = "udh8"
    UDH16 = "udh16"
    SAR = "sar"


@dataclass(frozen=True, slots=True)
class Concatenation:
    """One segment's place in its message."""

    kind: ReferenceKind
    reference: int
    total: int
    sequence: int


@dataclass(frozen=True, slots=True)
class Segment:
    """One deliver_sm's message octets with the UDH removed, and its concatenation (None: a whole message)."""

    body: bytes
    data_coding: int
    concatenation: Concatenation | None


def split_udh(short_message: bytes) -> tuple[dict[int, bytes], bytes]:
    """(information elements by IEI, body) of a short_message that starts with a User Data Header.

    TS 23.040 section 9.2.3.24: octet 0 is UDHL, then IEI, IEDL, IED... repeated. A repeated IEI keeps its last
    value, as the specification says a receiver should for most elements.
    """
    if not short_message:
        raise InvalidSegment("UDHI set but short_message is empty")
    udhl = short_message[0]
    if udhl + 1 > len(short_message):
        raise InvalidSegment(f"UDHL {udhl} runs past the {len(short_message)}-octet short_message")
    header, body = short_message[1 : udhl + 1], short_message[udhl + 1 :]
    elements: dict[int, bytes] = {}
    pos = 0
    while pos < len(header):
        if pos + 2 > len(header):
            raise InvalidSegment("information element header cut short")
        iei, length = header[pos], header[pos + 1]
        if pos + 2 + length > len(header):
            raise InvalidSegment(f"information element 0x{iei:02X} runs past the UDH")
        elements[iei] = header[pos + 2 : pos + 2 + length]
        pos += 2 + length
    return elements, body


def _checked(kind: ReferenceKind, reference: int, total: int, sequence: int) -> Concatenation | None:
    if total == 0 or sequence == 0 or sequence > total:
        # TS 23.040 9.2.3.24.1: "If the value is zero or exceeds the maximum number of messages, the receiving
        # entity shall ignore the entire information element" -- the segment is then read as a message alone.
        return None
    if total == 1:
        return None  # a "series" of one is simply a message
    return Concatenation(kind, reference, total, sequence)


def parse_segment(short_message: bytes, esm_class: int, data_coding: int,
                  tlvs: Mapping[int, bytes] | None = None) -> Segment:
    """Read one deliver_sm: UDH concatenation (when UDHI is set) wins over the SAR TLVs, as handsets set one
    or the other and a UDH is what the handset itself wrote."""
    concatenation: Concatenation | None = None
    body = short_message
    if esm_class & ESM_CLASS_UDHI:
        elements, body = split_udh(short_message)
        if _IEI_CONCAT_16 in elements:
            ied = elements[_IEI_CONCAT_16]
            if len(ied) != 4:
                raise InvalidSegment(f"IEI 0x08 has {len(ied)} octets, not 4")
            concatenation = _checked(ReferenceKind.UDH16, int.from_bytes(ied[:2], "big"), ied[2], ied[3])
        elif _IEI_CONCAT_8 in elements:
            ied = elements[_IEI_CONCAT_8]
            if len(ied) != 3:
                raise InvalidSegment(f"IEI 0x00 has {len(ied)} octets, not 3")
            concatenation = _checked(ReferenceKind.UDH8, ied[0], ied[1], ied[2])
    if concatenation is None and tlvs:
        ref, total, seq = (tlvs.get(TLV_SAR_MSG_REF_NUM), tlvs.get(TLV_SAR_TOTAL_SEGMENTS),
                           tlvs.get(TLV_SAR_SEGMENT_SEQNUM))
        present = [t is not None for t in (ref, total, seq)]
        if any(present) and not all(present):
            # SMPP 3.4 5.3.2.22: the three travel together; one alone cannot place the segment.
            raise InvalidSegment("sar_msg_ref_num, sar_total_segments and sar_segment_seqnum must all be present")
        if ref is not None and total is not None and seq is not None:
            if len(ref) != 2 or len(total) != 1 or len(seq) != 1:
                raise InvalidSegment("SAR TLV of the wrong length")
            if total[0] == 0 or seq[0] == 0 or seq[0] > total[0]:
                # SMPP 3.4 5.3.2.23/24 allow 1..255 with the seqnum within the total. Unlike a UDH element (which
                # TS 23.040 says to ignore), SMPP gives no rule to read it as a whole message, and doing so would
                # hand on one fragment of a long message as if it were all of it: refused, counted as invalid.
                raise InvalidSegment(f"SAR segment {seq[0]} of {total[0]} is out of range (1..total, total >= 1)")
            concatenation = _checked(ReferenceKind.SAR, int.from_bytes(ref, "big"), total[0], seq[0])
    return Segment(body, data_coding, concatenation)


@dataclass(frozen=True, slots=True)
class ReassembledMessage:
    """A whole message: the segments' bodies in sequence order, with their data_codings."""

    origin: Hashable
    parts: tuple[tuple[int, bytes], ...]  # (data_coding, body) per segment, sequence 1..total

    @property
    def body(self) -> bytes:
        """All bodies joined (meaningful when every part has the same data_coding, as handsets send them)."""
        return b"".join(body for _, body in self.parts)


@dataclass(frozen=True, slots=True)
class ExpiredGroup:
    """A message given up on: timed out, or evicted to stay within the memory bound."""

    origin: Hashable
    received: int
    total: int
    evicted: bool
    #: Given up because a segment with other octets took a sequence number it held: the reference was reused.
    superseded: bool = False


@dataclass(slots=True)
class _Group:
    origin: Hashable
    first_at: float
    total: int
    parts: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    size: int = 0


_Key = tuple[Hashable, ReferenceKind, int, int]


def _digest(data_coding: int, body: bytes) -> bytes:
    # What a completed message remembers of each part to tell a resend from a new message reusing the reference:
    # 16 octets rather than the body, so that max_groups completions cost kilobytes, not the messages' size.
    return hashlib.blake2b(bytes([data_coding & 0xFF]) + body, digest_size=16).digest()


class MoReassembler:
    """Collects segments until their message is whole. See the module docstring for the rules."""

    def __init__(self, timeout: float = 60.0, max_groups: int = 10_000, max_bytes: int = 16 * 1024 * 1024) -> None:
        if timeout <= 0 or max_groups < 1 or max_bytes < 1:
            raise ValueError("timeout, max_groups and max_bytes must be positive")
        self.timeout = timeout
        self.max_groups = max_groups
        self.max_bytes = max_bytes
        self.duplicates = 0
        self.expired = 0
        self.evicted = 0
        self.superseded = 0
        self._groups: OrderedDict[_Key, _Group] = OrderedDict()  # oldest first: expiry and eviction order
        # Completed messages, for late duplicates: when, and each sequence number's _digest.
        self._done: OrderedDict[_Key, tuple[float, dict[int, bytes]]] = OrderedDict()
        self._bytes = 0  # body octets of the pending groups
        self._charged = 0  # what max_bytes bounds: see charged_bytes
        self._evictions: list[ExpiredGroup] = []

    @property
    def pending_groups(self) -> int:
        """Messages waiting for segments."""
        return len(self._groups)

    @property
    def pending_bytes(self) -> int:
        """Body octets held for them."""
        return self._bytes

    @property
    def charged_bytes(self) -> int:
        """What ``max_bytes`` bounds: the pending bodies, plus a fixed overhead per held segment and group, plus
        every remembered completion and its digests (see the module docstring)."""
        return self._charged

    @property
    def next_deadline(self) -> float | None:
        """When the oldest incomplete message (or remembered completion) times out."""
        times = [g.first_at + self.timeout for g in self._groups.values()][:1]
        times += [at + self.timeout for at, _ in self._done.values()][:1]
        return min(times) if times else None

    def add(self, origin: Hashable, segment: Segment, now: float) -> ReassembledMessage | None:
        """Add one segment; the whole message when this segment completes it, else None."""
        concat = segment.concatenation
        if concat is None:
            return ReassembledMessage(origin, ((segment.data_coding, segment.body),))
        key: _Key = (origin, concat.kind, concat.reference, concat.total)
        done = self._done.get(key)
        if done is not None and concat.sequence in done[1]:
            if done[1][concat.sequence] == _digest(segment.data_coding, segment.body):
                self.duplicates += 1  # a late copy of a segment of a message already handed on
                return None
            self._forget_done(key)  # other octets: a new message reusing the reference (module docstring)
        group = self._groups.get(key)
        if group is not None and concat.sequence in group.parts:
            if group.parts[concat.sequence] == (segment.data_coding, segment.body):
                self.duplicates += 1
                return None
            # Other octets for a sequence number the group holds: the reference was reused for a new message. The
            # old one cannot complete any more (its remaining parts are indistinguishable from the new one's).
            self._drop_group(key)
            self.superseded += 1
            self._evictions.append(ExpiredGroup(group.origin, len(group.parts), group.total, evicted=False,
                                                superseded=True))
            group = None
        if group is None:
            group = _Group(origin, now, concat.total)
            self._groups[key] = group
            self._charged += GROUP_OVERHEAD
        group.parts[concat.sequence] = (segment.data_coding, segment.body)
        group.size += len(segment.body)
        self._bytes += len(segment.body)
        self._charged += len(segment.body) + SEGMENT_OVERHEAD
        if len(group.parts) == group.total:
            self._drop_group(key)
            if key in self._done:
                self._forget_done(key)
            self._done[key] = (now, {seq: _digest(*part) for seq, part in group.parts.items()})
            self._charged += GROUP_OVERHEAD + group.total * DIGEST_COST
            if len(self._done) > self.max_groups:
                self._forget_done(next(iter(self._done)))
            self._enforce_bounds(keep=key)
            return ReassembledMessage(origin, tuple(group.parts[i] for i in range(1, group.total + 1)))
        self._enforce_bounds(keep=key)
        return None

    def _drop_group(self, key: _Key) -> _Group:
        group = self._groups.pop(key)
        self._bytes -= group.size
        self._charged -= GROUP_OVERHEAD + group.size + len(group.parts) * SEGMENT_OVERHEAD
        return group

    def _forget_done(self, key: _Key) -> None:
        _, digests = self._done.pop(key)
        self._charged -= GROUP_OVERHEAD + len(digests) * DIGEST_COST

    def _enforce_bounds(self, keep: _Key) -> None:
        while len(self._groups) > self.max_groups or self._charged > self.max_bytes:
            if len(self._groups) <= self.max_groups and self._done:
                # Over max_bytes: remembered completions go first, oldest first. They only turn a late duplicate
                # into a counted duplicate rather than a group that times out; a pending group is a message.
                self._forget_done(next(iter(self._done)))
                continue
            if len(self._groups) <= 1:
                break
            # The oldest group other than the one just added to: that one may be the oldest itself (a long message
            # still growing), and stopping at it would leave the bound unenforced. It is skipped rather than
            # evicted because it alone can exceed the bound only by being bigger than the bound: 255 segments of
            # up to 64 KiB each (message_payload) is about 16 MiB, the default max_bytes.
            oldest = next(key for key in self._groups if key != keep)
            group = self._drop_group(oldest)
            self.evicted += 1
            self._evictions.append(ExpiredGroup(group.origin, len(group.parts), group.total, evicted=True))

    def expire(self, now: float) -> list[ExpiredGroup]:
        """Drop messages whose first segment is ``timeout`` old; returns them and any evicted or superseded since
        the last call."""
        out, self._evictions = self._evictions, []
        limit = now - self.timeout
        while self._groups:
            key, group = next(iter(self._groups.items()))
            if group.first_at > limit:
                break
            self._drop_group(key)
            self.expired += 1
            out.append(ExpiredGroup(group.origin, len(group.parts), group.total, evicted=False))
        while self._done:
            key, (at, _) = next(iter(self._done.items()))
            if at > limit:
                break
            self._forget_done(key)
        return out
