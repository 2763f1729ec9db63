"""Reassembling concatenated messages from their parts, in whatever order and number the parts arrive.

Theory: a long message arrives as parts tied by a reference number, a total and a sequence number — in a
concatenation IE of the User Data Header (8- or 16-bit reference, 3GPP TS 23.040 sections 9.2.3.24.1 and
9.2.3.24.8) or in the SMPP SAR TLVs (SMPP 3.4 sections 5.3.2.22-24). A :class:`Reassembler` collects parts
under a :class:`MessageKey` — source address, destination address, scheme and reference — until all
``total`` are in, then emits :class:`MessageReassembled` with the user data concatenated in sequence order.

What the network does to parts, and what the reassembler does about it:

* out of order: parts are kept by sequence number;
* duplicated (a resend after a lost response): ignored and counted, also for a short while after the
  message completed, so a late resend does not start a phantom message;
* lost: a message not complete ``timeout`` seconds after its first part is abandoned by :meth:`expire`;
* flooding: at most ``max_pending`` messages wait; a new one evicts the oldest, reported as abandoned.

Time is the caller's: every call takes ``now`` (non-decreasing), and :attr:`Reassembler.next_deadline` says
when to call :meth:`Reassembler.expire` next. A part that contradicts its message (another total or
data_coding under the same key) raises :class:`InconsistentSegment` and leaves the message as it was.
"""

from __future__ import annotations

import enum
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Final, NamedTuple

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import InvalidOptionalParameterValue, LocalProtocolError, PeerProtocolError
from carrier_sim.smpp.segmentation import SarInfo
from carrier_sim.smpp.udh import Iei, Udh, split_user_data

__all__ = [
    "AbandonReason",
    "ConcatScheme",
    "DuplicatePartIgnored",
    "InconsistentSegment",
    "MessageAbandoned",
    "MessageKey",
    "MessageReassembled",
    "Part",
    "PartStored",
    "Reassembler",
    "ReassemblyEvent",
    "part_from_pdu",
]


class ConcatScheme(enum.Enum):
    """Which mechanism ties the parts together; parts of different schemes never join."""

    UDH_8 = "udh_8"
    UDH_16 = "udh_16"
    SAR = "sar"


_REFERENCE_LIMIT: Final = {ConcatScheme.UDH_8: 0xFF, ConcatScheme.UDH_16: 0xFFFF, ConcatScheme.SAR: 0xFFFF}


class InconsistentSegment(PeerProtocolError):
    """A part contradicts its own numbering or the parts already held under its key.

    ESME_RSUBMITFAIL for parts tied by a UDH; parts tied by SAR TLVs carry ESME_RINVOPTPARAMVAL, since the
    offending values are TLVs.
    """

    command_status = CommandStatus.ESME_RSUBMITFAIL


class MessageKey(NamedTuple):
    """What identifies one concatenated message among the parts in flight."""

    source_addr: str
    destination_addr: str
    scheme: ConcatScheme
    reference: int


@dataclass(frozen=True, slots=True)
class Part:
    """One received part: its place in the message and its user data (header already removed).

    ``udh`` is the part's User Data Header, if it had one, for the IEs beside concatenation (ports...).
    """

    source_addr: str
    destination_addr: str
    scheme: ConcatScheme
    reference: int
    total: int
    sequence: int
    data_coding: int
    payload: bytes
    udh: Udh | None = None

    def __post_init__(self) -> None:
        limit = _REFERENCE_LIMIT[self.scheme]
        problem = None
        if not 0 <= self.reference <= limit:
            problem = f"reference {self.reference} is out of range 0..{limit}"
        elif not 1 <= self.total <= 255:
            problem = f"total {self.total} is out of range 1..255"
        elif not 1 <= self.sequence <= self.total:
            problem = f"sequence {self.sequence} is out of range 1..{self.total}"
        if problem is not None:
            raise _inconsistent(self.scheme, problem)

    @property
    def key(self) -> MessageKey:
        """The key of the message this part belongs to."""
        return MessageKey(self.source_addr, self.destination_addr, self.scheme, self.reference)


def _inconsistent(scheme: ConcatScheme, message: str) -> InconsistentSegment:
    if scheme is ConcatScheme.SAR:
        return InconsistentSegment(message, command_status=CommandStatus.ESME_RINVOPTPARAMVAL)
    return InconsistentSegment(message)


def part_from_pdu(
    source_addr: str,
    destination_addr: str,
    *,
    esm_class: int,
    short_message: bytes,
    data_coding: int,
    sar: SarInfo | None = None,
) -> Part | None:
    """The part a submit_sm / deliver_sm carries, or None if it is a whole message.

    SAR TLVs, when present, tie the part (SMPP 3.4 section 5.3.2.22: they are used "instead of" a UDH);
    the UDH, if any, stays with the part. Otherwise a concatenation IE in the UDH does, unless TS 23.040
    says to ignore it (then the PDU is a whole message). Raises
    :class:`~carrier_sim.smpp.udh.InvalidUserDataHeader` for a malformed header and
    :class:`~carrier_sim.smpp.errors.InvalidOptionalParameterValue` for SAR values out of range.
    """
    udh, payload = split_user_data(short_message, esm_class)
    if sar is not None:
        if not (
            0 <= sar.msg_ref_num <= 0xFFFF
            and 1 <= sar.total_segments <= 255
            and 1 <= sar.segment_seqnum <= sar.total_segments
        ):
            raise InvalidOptionalParameterValue(
                f"SAR values ref {sar.msg_ref_num}, total {sar.total_segments}, seqnum {sar.segment_seqnum} "
                "are out of range (SMPP 3.4 sections 5.3.2.22-24)"
            )
        return Part(
            source_addr,
            destination_addr,
            ConcatScheme.SAR,
            sar.msg_ref_num,
            sar.total_segments,
            sar.segment_seqnum,
            data_coding,
            short_message if udh is None else payload,
            udh,
        )
    if udh is None:
        return None
    concat = udh.concatenation
    if concat is None:
        return None
    scheme = ConcatScheme.UDH_8 if concat.reference_bits == 8 else ConcatScheme.UDH_16
    return Part(
        source_addr,
        destination_addr,
        scheme,
        concat.reference,
        concat.total,
        concat.sequence,
        data_coding,
        payload,
        udh,
    )


class AbandonReason(enum.Enum):
    """Why a partial message was given up."""

    EXPIRED = "expired"
    EVICTED = "evicted"


@dataclass(frozen=True, slots=True)
class PartStored:
    """A new part was kept; the message still misses ``total - received`` parts."""

    key: MessageKey
    sequence: int
    received: int
    total: int


@dataclass(frozen=True, slots=True)
class DuplicatePartIgnored:
    """A part already held (or of a message just completed) arrived again and was dropped.

    ``conflicting`` is true when its user data differs from the copy held; the first copy wins.
    """

    key: MessageKey
    sequence: int
    conflicting: bool


@dataclass(frozen=True, slots=True)
class MessageReassembled:
    """Every part is in: ``payload`` is their user data in sequence order.

    ``udh`` is part 1's header without its concatenation IEs (None if nothing else was in it), so that port
    addressing and the like survive reassembly.
    """

    key: MessageKey
    total: int
    data_coding: int
    payload: bytes
    udh: Udh | None


@dataclass(frozen=True, slots=True)
class MessageAbandoned:
    """A partial message given up, with the parts that did arrive (sequence number, user data)."""

    key: MessageKey
    reason: AbandonReason
    total: int
    data_coding: int
    parts: tuple[tuple[int, bytes], ...]
    first_received_at: float

    @property
    def missing(self) -> tuple[int, ...]:
        """Sequence numbers that never arrived."""
        held = {sequence for sequence, _ in self.parts}
        return tuple(sequence for sequence in range(1, self.total + 1) if sequence not in held)


ReassemblyEvent = PartStored | DuplicatePartIgnored | MessageReassembled | MessageAbandoned


@dataclass(slots=True)
class _Pending:
    total: int
    data_coding: int
    first_received_at: float
    deadline: float
    parts: dict[int, Part] = field(default_factory=dict)


class Reassembler:
    """Collects parts into messages; pure, bounded, driven by the caller's clock.

    ``timeout``: seconds from a message's first part until it is abandoned (and for which a completed
    message's parts are still recognised as duplicates). ``max_pending``: most partial messages held, and
    most completed messages remembered for duplicate detection.
    """

    def __init__(self, *, timeout: float = 300.0, max_pending: int = 10_000) -> None:
        if not timeout > 0:
            raise LocalProtocolError(f"timeout must be positive, not {timeout}")
        if max_pending < 1:
            raise LocalProtocolError(f"max_pending must be at least 1, not {max_pending}")
        self._timeout = timeout
        self._max_pending = max_pending
        # Insertion order is first-part order, hence deadline order while `now` does not go backwards.
        self._pending: OrderedDict[MessageKey, _Pending] = OrderedDict()
        self._completed: OrderedDict[MessageKey, _Pending] = OrderedDict()
        self._duplicates = 0
        self._reassembled = 0
        self._abandoned = 0

    @property
    def pending_count(self) -> int:
        """Partial messages held."""
        return len(self._pending)

    @property
    def duplicates_ignored(self) -> int:
        """Duplicate parts dropped since creation."""
        return self._duplicates

    @property
    def messages_reassembled(self) -> int:
        """Messages completed since creation (single-part ones included)."""
        return self._reassembled

    @property
    def messages_abandoned(self) -> int:
        """Partial messages expired or evicted since creation."""
        return self._abandoned

    @property
    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work to do, or None if nothing is held."""
        deadlines = [
            next(iter(table.values())).deadline for table in (self._pending, self._completed) if table
        ]
        return min(deadlines) if deadlines else None

    def add(self, part: Part, now: float) -> list[ReassemblyEvent]:
        """Take one part; returns what happened, in order (an eviction first, if this part caused one).

        Raises :class:`InconsistentSegment` if the part's total or data_coding differs from the message
        already held under its key; nothing held changes then.
        """
        key = part.key
        done = self._completed.get(key)
        if done is not None:
            held = done.parts.get(part.sequence)
            if done.total == part.total and held is not None and held.payload == part.payload:
                self._duplicates += 1
                return [DuplicatePartIgnored(key, part.sequence, conflicting=False)]
            # Not a resend of the finished message: the reference has been reused for a new one.
            del self._completed[key]

        events: list[ReassemblyEvent] = []
        pending = self._pending.get(key)
        if pending is None:
            if part.total == 1:
                self._reassembled += 1
                self._remember(key, _Pending(1, part.data_coding, now, now + self._timeout, {1: part}))
                return [self._finish(key, 1, part.data_coding, {1: part})]
            if len(self._pending) >= self._max_pending:
                old_key, old = self._pending.popitem(last=False)
                events.append(self._abandon(old_key, old, AbandonReason.EVICTED))
            pending = _Pending(part.total, part.data_coding, now, now + self._timeout)
            self._pending[key] = pending
        else:
            if part.total != pending.total:
                raise _inconsistent(
                    part.scheme,
                    f"part {part.sequence} says {part.total} parts, earlier parts said {pending.total}",
                )
            if part.data_coding != pending.data_coding:
                raise _inconsistent(
                    part.scheme,
                    f"part {part.sequence} has data_coding 0x{part.data_coding:02X}, earlier parts had "
                    f"0x{pending.data_coding:02X}",
                )
            held = pending.parts.get(part.sequence)
            if held is not None:
                self._duplicates += 1
                events.append(DuplicatePartIgnored(key, part.sequence, held.payload != part.payload))
                return events

        pending.parts[part.sequence] = part
        if len(pending.parts) < pending.total:
            events.append(PartStored(key, part.sequence, len(pending.parts), pending.total))
            return events
        del self._pending[key]
        self._reassembled += 1
        self._remember(
            key, _Pending(pending.total, pending.data_coding, now, now + self._timeout, pending.parts)
        )
        events.append(self._finish(key, pending.total, pending.data_coding, pending.parts))
        return events

    def expire(self, now: float) -> list[MessageAbandoned]:
        """Abandon every partial message whose deadline is at or before ``now``; forget old completions."""
        abandoned: list[MessageAbandoned] = []
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                break
            del self._pending[key]
            abandoned.append(self._abandon(key, pending, AbandonReason.EXPIRED))
        while self._completed and next(iter(self._completed.values())).deadline <= now:
            self._completed.popitem(last=False)
        return abandoned

    def _remember(self, key: MessageKey, done: _Pending) -> None:
        self._completed.pop(key, None)
        self._completed[key] = done
        while len(self._completed) > self._max_pending:
            self._completed.popitem(last=False)

    def _finish(
        self, key: MessageKey, total: int, data_coding: int, parts: dict[int, Part]
    ) -> MessageReassembled:
        payload = b"".join(parts[sequence].payload for sequence in range(1, total + 1))
        first_udh = parts[1].udh
        rest = first_udh.without(Iei.CONCATENATED_8BIT, Iei.CONCATENATED_16BIT) if first_udh else None
        return MessageReassembled(key, total, data_coding, payload, rest if rest and rest.elements else None)

    def _abandon(self, key: MessageKey, pending: _Pending, reason: AbandonReason) -> MessageAbandoned:
        self._abandoned += 1
        parts = tuple(sorted((sequence, part.payload) for sequence, part in pending.parts.items()))
        return MessageAbandoned(
            key, reason, pending.total, pending.data_coding, parts, pending.first_received_at
        )
