"""The SMSC's message store: what was accepted, its state, and the operations on it.

Semantics from SMPP 3.4:
- submit_sm stores a message and issues a message_id (4.4.2); with replace_if_present_flag=1 a still pending
  message with the same source address, destination address and service_type is replaced instead (5.2.18) -- one
  of the submitting system_id's own, like everything below that reaches a stored message. Of several such
  pending messages, the newest is replaced. The ESME is told the id it knows the replaced message by (its
  group's, for a submit_multi destination). A submit_multi destination that replaces a pending message leaves
  that message its own id (its receipt reports that) and makes it one of the submit_multi's group as well, so
  that query/cancel/replace on the group's id reach every destination the submit_multi named.
- submit_multi answers one message_id for all its destinations (4.5.2). Each destination is a record of its own
  (its own schedule, state and receipt), all of them members of a *group* whose id is the one the ESME got; the
  members carry it in ``group_id``, their receipts report it, and query/cancel/replace on it act on the group.
  Group ids come from the same sequence as message ids, so the two never collide.
- query_sm reports the stored message's real state and final date (4.8).
- query_sm, cancel_sm and replace_sm reach only messages of the asking system_id: another account's message is
  as unknown as one never submitted.
- cancel_sm cancels a pending message by message_id, or every pending message matching source, destination
  and service_type when message_id is NULL (4.9); a delivered or unknown message is ESME_RCANCELFAIL.
- replace_sm replaces a pending message's text, schedule and validity (4.10); ESME_RREPLACEFAIL otherwise. As for
  submit_sm, a validity that would end before the schedule is ESME_RINVEXPIRY (4.10.1 / 7.1.1).
- A full store answers ESME_RMSGQFUL (5.1.3).

Messages are kept in compact slotted records while pending. A finished one is kept for ``retention`` seconds for
late query_sm, as a plain tuple of its fields (:func:`_fossil`) rather than the record: the store of a busy SMSC
is mostly such finished messages, and a tuple of ints, floats and strings is one the cyclic garbage collector
stops tracking, while every record it holds is traversed by each full collection -- at 90,000 retained messages
a full collection took ~50 ms and the collector ~10 % of the SMSC's CPU. They are dropped after ``retention``
seconds, so that a million-message run holds only what is in flight plus a short tail.

The schedule is a heap of ``(deliver_at, message_id)`` entries that are never removed from the middle: a new
schedule pushes a new entry and leaves the old one stale. An entry is live while its message is pending, not held
and still due at that time; identical live entries (a message scheduled away and back) are taken together when
they reach the top, so a message comes out of :meth:`MessageStore.due` once per schedule. A peer can make entries
stale as fast as it can send (replace_if_present, replace_sm, cancel_sm of scheduled messages), so the heap is
rebuilt from its live entries whenever it holds more than ``_COMPACT_FACTOR`` entries per scheduled message (plus a
little slack): its size stays proportional to what is really scheduled, at an amortised O(1) extra per operation.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smpp.tlv import NetworkErrorCode

__all__ = ["MessageStore", "StoreError", "StoredMessage"]

#: The schedule heap is rebuilt once it holds more than ``_COMPACT_FACTOR`` entries per scheduled message plus
#: ``_COMPACT_SLACK``: the slack keeps a small store from rebuilding on every other operation, the factor makes a
#: rebuild (O(live)) follow at least O(live) operations that made entries stale.
_COMPACT_FACTOR = 2
_COMPACT_SLACK = 32


class StoreError(Exception):
    """An operation the store refuses, with the command_status the ESME receives."""

    def __init__(self, status: CommandStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(slots=True)
class StoredMessage:
    """One accepted message and what became of it."""

    message_id: int
    system_id: str
    service_type: str
    source_addr: str
    destination_addr: str
    data: bytes
    data_coding: int
    esm_class: int
    registered_delivery: int
    submitted_at: float
    deliver_at: float
    expire_at: float
    state: MessageState = MessageState.ENROUTE
    final_at: float | None = None
    error: NetworkErrorCode | None = None
    source_ton: int = 0
    source_npi: int = 0
    dest_ton: int = 0
    dest_npi: int = 0
    #: The id of the submit_multi this message is one destination of; 0 for a message submitted alone.
    group_id: int = 0

    @property
    def pending(self) -> bool:
        """Still waiting for delivery (may be cancelled or replaced)."""
        return self.state is MessageState.ENROUTE

    @property
    def reported_id(self) -> int:
        """The message_id the ESME was given for this message (its group's, for a submit_multi destination)."""
        return self.group_id or self.message_id


#: A finished message as the store retains it: StoredMessage's fields in their order, but its state as an int and
#: its error as two ints (-1, -1 for none), so that every item is an atomic value (see the module docstring).
_Fossil = tuple[Any, ...]
def _fossil(message: StoredMessage) -> _Fossil:
    error = message.error
    return (
        message.message_id, message.system_id, message.service_type, message.source_addr, message.destination_addr,
        message.data, message.data_coding, message.esm_class, message.registered_delivery, message.submitted_at,
        message.deliver_at, message.expire_at, int(message.state), message.final_at,
        -1 if error is None else error.network_type, -1 if error is None else error.error_code,
        message.source_ton, message.source_npi, message.dest_ton, message.dest_npi, message.group_id,
    )


def _revive(fossil: _Fossil) -> StoredMessage:
    """The record a fossil was made of (an equal one: a new object)."""
    (message_id, system_id, service_type, source_addr, destination_addr, data, data_coding, esm_class,
     registered_delivery, submitted_at, deliver_at, expire_at, state, final_at, network_type, error_code,
     source_ton, source_npi, dest_ton, dest_npi, group_id) = fossil
    error = None if network_type < 0 else NetworkErrorCode(network_type, error_code)
    return StoredMessage(message_id, system_id, service_type, source_addr, destination_addr, data, data_coding,
                         esm_class, registered_delivery, submitted_at, deliver_at, expire_at, MessageState(state),
                         final_at, error, source_ton, source_npi, dest_ton, dest_npi, group_id)


class MessageStore:
    """Messages by id, a schedule of pending deliveries, and bounded retention of finished ones."""

    def __init__(self, capacity: int = 1_000_000, retention: float = 600.0, first_id: int = 1) -> None:
        self.capacity = capacity
        self.retention = retention
        self._next_id = first_id
        #: Pending messages (and the rare finished one still a member of a retained submit_multi group: see
        #: finish), by id.
        self._messages: dict[int, StoredMessage] = {}
        #: Finished messages within their retention, by id, as fossils (see the module docstring).
        self._fossils: dict[int, _Fossil] = {}
        self._schedule: list[tuple[float, int]] = []
        #: message id -> message, for messages known to have a live entry in the schedule heap: counts what is
        #: scheduled (for compaction) and lets a schedule that changes nothing skip its push. May miss a message
        #: that is scheduled (one next_deadline reported, whose caller may pop its entry): it then gets a push
        #: that only duplicates its entry, and the count is low, which compacts sooner, never later.
        self._scheduled: dict[int, StoredMessage] = {}
        self._finished: OrderedDict[int, float] = OrderedDict()
        #: The time of _finished's first entry (None when empty): finish() calls _forget only once it is due.
        self._first_finished_at: float | None = None
        #: (system_id, source_addr, destination_addr, service_type) -> the ids of its pending messages, oldest
        #: first: one int for the usual single one, an insertion-ordered dict (a set that keeps order) when there
        #: are more -- not a list, whose removals would cost O(n) each when thousands wait for one absent phone
        #: (what replace_if_present_flag looks for, 5.2.18).
        self._pending_key: dict[tuple[str, str, str, str], int | dict[int, None]] = {}
        #: submit_multi group id -> its members still retained (and messages a member replaced, see the docstring).
        self._groups: dict[int, list[StoredMessage]] = {}
        #: message id -> the groups it was added to by replacing a destination of theirs (besides its own).
        self._also_in: dict[int, list[int]] = {}
        #: Ids of pending messages off the schedule because their caller delivers them itself (see :meth:`hold`).
        self._held: set[int] = set()
        #: Ids of pending messages waiting for another attempt (see :meth:`retry`): their schedule is behind them.
        self._retrying: set[int] = set()

    def __len__(self) -> int:
        return len(self._messages) + len(self._fossils)

    @property
    def pending_count(self) -> int:
        """Messages not yet final."""
        return len(self._messages) + len(self._fossils) - len(self._finished)

    def get(self, message_id: int) -> StoredMessage | None:
        """A stored message (pending, or finished within the retention time). A finished one comes back as a new
        record equal to what it was when it finished: changing it changes nothing in the store."""
        message = self._messages.get(message_id)
        if message is None:
            fossil = self._fossils.get(message_id)
            if fossil is not None:
                return _revive(fossil)
        return message

    def issue_id(self) -> int:
        """An id from the message id sequence that no stored message will get: a submit_multi group's id (pass it
        as the members' ``group_id``) or a broadcast_sm's."""
        issued = self._next_id
        self._next_id += 1
        return issued

    def submit(self, message: StoredMessage, replace_if_present: bool = False) -> StoredMessage:
        """Store a message (its message_id is assigned here) and schedule it; ESME_RMSGQFUL when full. A message
        with a ``group_id`` (from :meth:`issue_id`) joins that submit_multi group."""
        # 5.2.18 names source, destination and service_type; the system_id is there too because one account's
        # submission must not overwrite another's message (which it could neither query nor cancel).
        key = (message.system_id, message.source_addr, message.destination_addr, message.service_type)
        index = self._pending_key
        ids = index.get(key)
        if replace_if_present and ids is not None:
            existing = self._messages[ids if isinstance(ids, int) else next(reversed(ids))]
            existing.data = message.data
            existing.data_coding = message.data_coding
            existing.esm_class = message.esm_class
            existing.registered_delivery = message.registered_delivery
            existing.expire_at = message.expire_at
            self._reschedule(existing, message.deliver_at)
            group_id = message.group_id
            if group_id and existing.group_id != group_id and existing not in self._groups.get(group_id, ()):
                self._groups.setdefault(group_id, []).append(existing)
                self._also_in.setdefault(existing.message_id, []).append(group_id)
            return existing
        if self.pending_count >= self.capacity:
            raise StoreError(CommandStatus.ESME_RMSGQFUL, f"message store full ({self.capacity} pending)")
        mid = message.message_id = self._next_id
        self._next_id += 1
        self._messages[mid] = message
        if ids is None:
            index[key] = mid
        elif isinstance(ids, int):
            index[key] = {ids: None, mid: None}
        else:
            ids[mid] = None
        if message.group_id:
            self._groups.setdefault(message.group_id, []).append(message)
        self._schedule_at(message, message.deliver_at)
        return message

    def retry(self, message: StoredMessage, deliver_at: float) -> None:
        """Try a pending message again later (an absent subscriber)."""
        self._reschedule(message, deliver_at)
        self._retrying.add(message.message_id)

    def hold(self, message: StoredMessage, until: float) -> None:
        """Take a pending message off the schedule: its caller delivers it at ``until`` itself (a roaming
        subscriber's, which the visited network has). It stays pending -- queryable, cancellable, replaceable -- and
        a new schedule (replace_sm, replace_if_present) puts it back on the schedule; ``deliver_at`` says which
        holds (``until``, while the hold does)."""
        message.deliver_at = until
        self._held.add(message.message_id)
        # What the schedule still holds for it is stale from now on, even an entry that happens to be at ``until``.
        if self._scheduled.pop(message.message_id, None) is not None:
            self._compact_if_sparse()

    def held(self, message: StoredMessage) -> bool:
        """Whether ``message`` is pending under a :meth:`hold` (its caller, not the schedule, delivers it)."""
        return message.message_id in self._held and message.pending

    def _reschedule(self, message: StoredMessage, deliver_at: float) -> None:
        if self._held:
            self._held.discard(message.message_id)
        if self._retrying:
            self._retrying.discard(message.message_id)
        if message.deliver_at == deliver_at and self._scheduled.get(message.message_id) is message:
            return  # already due then, its entry live: another would only be a stale one waiting for that time
        self._schedule_at(message, deliver_at)

    def _schedule_at(self, message: StoredMessage, deliver_at: float) -> None:
        """Put ``message`` on the schedule at ``deliver_at`` (any entry it had goes stale)."""
        message.deliver_at = deliver_at
        self._scheduled[message.message_id] = message
        heapq.heappush(self._schedule, (deliver_at, message.message_id))
        self._compact_if_sparse()

    def _compact_if_sparse(self) -> None:
        """Rebuild the heap from its live entries once stale ones have come to outnumber them."""
        schedule = self._schedule
        scheduled = self._scheduled
        if len(schedule) <= _COMPACT_FACTOR * len(scheduled) + _COMPACT_SLACK:
            return
        messages = self._messages
        held = self._held
        enroute = MessageState.ENROUTE
        live: dict[int, StoredMessage] = {}
        for at, mid in schedule:
            msg = messages.get(mid)
            if msg is not None and msg.state is enroute and msg.deliver_at == at and mid not in held:
                live[mid] = msg  # one per message: its live entries are identical
        # In place, list and dict alike: due() may be iterating over them. The live entries keep their (deliver_at,
        # message_id) order, so what due() yields does not depend on when this runs.
        schedule[:] = [(msg.deliver_at, mid) for mid, msg in live.items()]
        heapq.heapify(schedule)
        scheduled.clear()
        scheduled.update(live)

    @property
    def next_deadline(self) -> float | None:
        """When the earliest scheduled delivery is due (reporting it takes nothing: :meth:`due` still yields it)."""
        # Leaves the reported delivery as the heap's one top entry, so that popping it takes the delivery exactly
        # as due() would (the fast-path test checks due() against this loop plus a pop).
        schedule = self._schedule
        while schedule:
            entry = schedule[0]
            at, mid = entry
            msg = self._messages.get(mid)
            if msg is not None and msg.pending and msg.deliver_at == at and mid not in self._held:
                while (len(schedule) > 1 and schedule[1] == entry) or (len(schedule) > 2 and schedule[2] == entry):
                    heapq.heappop(schedule)  # a copy of it: any copy has copies up to the top, so one is a child
                # Its entry is exposed to a pop we do not see: a new schedule at the same time must push again.
                if self._scheduled.pop(mid, None) is not None:
                    self._compact_if_sparse()  # keeps the top where it is, but counts it again
                    self._scheduled.pop(mid, None)
                return at
            heapq.heappop(schedule)  # stale entry: cancelled, replaced, held or finished
        return None

    def due(self, now: float) -> Iterator[StoredMessage]:
        """Pending messages whose delivery time has come, in time order (each yielded once)."""
        # next_deadline, inline: this runs for every message.
        schedule = self._schedule
        messages = self._messages
        held = self._held
        scheduled = self._scheduled
        enroute = MessageState.ENROUTE
        while schedule:
            entry = schedule[0]
            at, mid = entry
            msg = messages.get(mid)
            if msg is None or msg.state is not enroute or msg.deliver_at != at or (held and mid in held):
                heapq.heappop(schedule)  # stale entry: cancelled, replaced, held or finished
                continue
            if at > now:
                return
            heapq.heappop(schedule)
            while schedule and schedule[0] == entry:
                heapq.heappop(schedule)  # copies of it (scheduled away and back): it is due once
            # Off the schedule until the caller retries, holds or replaces it.
            if scheduled.pop(mid, None) is not None and (
                len(schedule) > _COMPACT_FACTOR * len(scheduled) + _COMPACT_SLACK
            ):
                self._compact_if_sparse()
            yield msg

    def finish(
        self, message: StoredMessage, state: MessageState, now: float, error: NetworkErrorCode | None = None
    ) -> None:
        """Record a final state; the message stays queryable for ``retention`` seconds."""
        message.state = state
        message.final_at = now
        message.error = error
        key = (message.system_id, message.source_addr, message.destination_addr, message.service_type)
        index = self._pending_key
        ids = index.get(key)
        mid = message.message_id
        if ids == mid:
            del index[key]
        elif isinstance(ids, dict) and mid in ids:
            del ids[mid]
            if len(ids) == 1:
                index[key] = next(iter(ids))
        finished = self._finished
        if mid in finished:  # finished again: the entry keeps its place with a new time
            finished[mid] = now
            self._first_finished_at = next(iter(finished.values()))
        else:
            if not finished:
                self._first_finished_at = now
            finished[mid] = now
        if self._held:
            self._held.discard(message.message_id)
        if self._retrying:
            self._retrying.discard(mid)
        if self._scheduled.pop(mid, None) is not None:
            self._compact_if_sparse()
        if not message.group_id and mid not in self._also_in:
            # Retained as a fossil. A submit_multi member stays a record: its group's list holds it, and query,
            # cancel and replace on the group reach it there.
            self._messages.pop(mid, None)
            self._fossils[mid] = _fossil(message)
        first = self._first_finished_at
        if first is not None and first <= now - self.retention:  # else _forget would stop at the first entry
            self._forget(now)

    def _forget(self, now: float) -> None:
        horizon = now - self.retention
        while self._finished:
            mid, at = next(iter(self._finished.items()))
            if at > horizon:
                break
            self._finished.popitem(last=False)
            self._first_finished_at = next(iter(self._finished.values()), None)
            if self._fossils.pop(mid, None) is not None:
                continue  # neither a group member nor added to a group: in no group
            gone = self._messages.pop(mid, None)
            if gone is not None:
                if gone.group_id:
                    self._leave(gone.group_id, gone)
                if self._also_in:
                    for group_id in self._also_in.pop(mid, ()):
                        self._leave(group_id, gone)

    def _leave(self, group_id: int, message: StoredMessage) -> None:
        members = self._groups.get(group_id)
        if members is not None:
            members.remove(message)
            if not members:
                del self._groups[group_id]

    def _find(self, message_id: int, source_addr: str, system_id: str, status: CommandStatus) -> list[StoredMessage]:
        """The message ``system_id`` knows as ``message_id``: one record, or every retained member of a group."""
        group = self._groups.get(message_id)
        if group is not None:
            found = list(group)
        else:
            message = self.get(message_id)
            found = [message] if message is not None and not message.group_id else []
        # 4.8.1 / 4.9.1: source_addr must match the original message's when given. Another account's message is
        # refused exactly like an unknown one, so message ids cannot be probed across accounts.
        if not found or found[0].system_id != system_id or (source_addr and source_addr != found[0].source_addr):
            raise StoreError(status, f"no message {message_id} from {source_addr or 'any source'}")
        return found

    def query(self, message_id: int, source_addr: str, *, system_id: str) -> list[StoredMessage]:
        """query_sm: the message, or a submit_multi's members (ESME_RQUERYFAIL when unknown to ``system_id``)."""
        return self._find(message_id, source_addr, system_id, CommandStatus.ESME_RQUERYFAIL)

    def cancel(
        self,
        now: float,
        message_id: int | None,
        source_addr: str,
        destination_addr: str = "",
        service_type: str = "",
        *,
        system_id: str,
    ) -> list[StoredMessage]:
        """cancel_sm of ``system_id``'s messages: by id (every pending member of a submit_multi, or the one with
        ``destination_addr`` when given), or every pending message matching source/destination/service_type
        (4.9.1; the caller makes sure destination_addr is given then)."""
        if message_id is not None:
            found = self._find(message_id, source_addr, system_id, CommandStatus.ESME_RCANCELFAIL)
            # 4.9.1: destination_addr "is used for verification purposes, and must match that supplied in the
            # original message submission request" (one of a submit_multi's destinations).
            targets = [m for m in found
                       if m.pending and (not destination_addr or m.destination_addr == destination_addr)]
            if not targets:
                raise StoreError(CommandStatus.ESME_RCANCELFAIL,
                                 f"message {message_id} has nothing pending to {destination_addr or 'any destination'}")
        else:
            targets = [
                m
                for m in self._messages.values()
                if m.pending
                and m.system_id == system_id
                and m.source_addr == source_addr
                and (not destination_addr or m.destination_addr == destination_addr)
                and (not service_type or m.service_type == service_type)
            ]
            if not targets:
                raise StoreError(CommandStatus.ESME_RCANCELFAIL, "no pending message matches")
        for message in targets:
            self.finish(message, MessageState.DELETED, now)
        return targets

    def replace(
        self,
        message_id: int,
        source_addr: str,
        data: bytes,
        deliver_at: float | None,
        expire_at: float | None,
        registered_delivery: int,
        *,
        system_id: str,
        now: float,
    ) -> list[StoredMessage]:
        """replace_sm: new text, schedule, validity and registered_delivery for a pending message of
        ``system_id`` (every pending member of a submit_multi). ESME_RINVEXPIRY, changing nothing, when the
        validity in force afterwards would end before the schedule in force afterwards. A validity that now ends
        before a message's next attempt (an absent subscriber's retry) brings the attempt forward to its end,
        where the message expires on time rather than at the retry."""
        found = self._find(message_id, source_addr, system_id, CommandStatus.ESME_RREPLACEFAIL)
        targets = [m for m in found if m.pending]
        if not targets:
            raise StoreError(CommandStatus.ESME_RREPLACEFAIL, f"message {message_id} is already final")
        for message in targets:
            if deliver_at is not None:
                due = deliver_at
            elif message.message_id in self._retrying or self.held(message):
                due = now  # it came due already: what is ahead of it is a retry or the visited network, no schedule
            else:
                due = message.deliver_at
            end = message.expire_at if expire_at is None else expire_at
            # 4.10.1 gives replace_sm the schedule_delivery_time and validity_period of submit_sm, whose 7.1.1
            # times are refused ESME_RINVEXPIRY when the validity ends before delivery is even due to start.
            if end < due:
                raise StoreError(CommandStatus.ESME_RINVEXPIRY,
                                 f"message {message_id}: validity_period ends before schedule_delivery_time")
        for message in targets:
            message.data = data
            message.registered_delivery = registered_delivery
            if expire_at is not None:
                message.expire_at = expire_at
            if deliver_at is not None:
                self._reschedule(message, deliver_at)
            elif expire_at is not None and expire_at < message.deliver_at and not self.held(message):
                # A retry due after the new end (the check above lets nothing else be): due at the end instead,
                # where the due path expires it. (A held message's caller watches its validity itself.)
                self._schedule_at(message, expire_at)
        return targets
