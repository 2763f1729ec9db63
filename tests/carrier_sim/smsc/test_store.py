"""The message store on its own: replace_if_present's index, submit_multi groups over retention, and the
schedule (what due() yields, and a heap that stays the size of what is scheduled whatever a peer sends)."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.receipt import MessageState
from carrier_sim.smpp.tlv import NetworkErrorCode
from carrier_sim.smsc.store import MessageStore, StoredMessage, StoreError

#: The heap may hold this many entries per scheduled message, plus HEAP_SLACK (the store's compaction threshold).
HEAP_FACTOR = 2
HEAP_SLACK = 32


def message(destination: str = "447700900001", system_id: str = "esme", group_id: int = 0,
            data: bytes = b"x") -> StoredMessage:
    """A message from 12345 due at 10 and valid until 100."""
    return StoredMessage(0, system_id, "", "12345", destination, data, 0, 0, 0, 0.0, 10.0, 100.0,
                         group_id=group_id)


def test_a_message_a_submit_multi_replaced_leaves_its_group_when_it_is_forgotten() -> None:
    store = MessageStore(retention=5.0)
    alone = store.submit(message())
    group = store.issue_id()
    replaced = store.submit(message(group_id=group, data=b"new"), replace_if_present=True)
    assert replaced is alone
    assert alone.group_id == 0  # keeps the id the ESME got for it
    assert store.query(group, "", system_id="esme") == [alone]
    assert store.query(alone.message_id, "", system_id="esme") == [alone]
    store.finish(alone, MessageState.DELIVERED, 20.0)
    store.finish(store.submit(message("447700900002")), MessageState.DELIVERED, 30.0)  # past the retention
    for mid in (group, alone.message_id):
        with pytest.raises(StoreError) as refused:
            store.query(mid, "", system_id="esme")
        assert refused.value.status == CommandStatus.ESME_RQUERYFAIL


def test_replace_if_present_takes_the_newest_pending_message_of_the_key() -> None:
    store = MessageStore()
    older = store.submit(message(data=b"older"))
    newer = store.submit(message(data=b"newer"))
    assert store.submit(message(data=b"new"), replace_if_present=True) is newer
    store.finish(newer, MessageState.DELETED, 1.0)
    assert store.submit(message(data=b"newest"), replace_if_present=True) is older
    store.finish(older, MessageState.DELETED, 1.0)
    fresh = store.submit(message(data=b"fresh"), replace_if_present=True)
    assert fresh.message_id not in (older.message_id, newer.message_id)


def heap_bounded(store: MessageStore, live: int) -> bool:
    """Whether the schedule heap is within the bound for ``live`` scheduled messages."""
    return len(store._schedule) <= HEAP_FACTOR * live + HEAP_SLACK


def test_replace_if_present_resubmitted_with_a_moving_schedule_keeps_the_heap_bounded() -> None:
    # The reviewer's scenario: a peer resubmits with replace_if_present_flag=1 and a schedule one day ahead of a
    # clock that moves on, so every submit_sm gives the one pending message a new time.
    store = MessageStore(capacity=10)
    day = 86_400.0
    first = store.submit(message())
    for i in range(20_000):
        now = 1_000.0 + i * 0.001
        replaced = store.submit(StoredMessage(0, "esme", "", "12345", "447700900001", b"x", 0, 0, 0, now,
                                              now + day, now + 2 * day), replace_if_present=True)
        assert replaced is first
        assert heap_bounded(store, live=1), len(store._schedule)
    assert store.pending_count == 1
    last = first.deliver_at
    assert list(store.due(last - 0.0005)) == []
    assert list(store.due(last)) == [first]  # once, at the last schedule given
    assert list(store.due(last + day)) == []


def test_replace_if_present_with_the_same_schedule_adds_no_heap_entry() -> None:
    store = MessageStore()
    first = store.submit(message())
    for _ in range(1_000):
        assert store.submit(message(data=b"again"), replace_if_present=True) is first
    assert len(store._schedule) == 1
    assert list(store.due(10.0)) == [first]  # once, not once per resubmission


def test_replace_sm_many_times_keeps_the_heap_bounded() -> None:
    store = MessageStore()
    target = store.submit(message())
    others = [store.submit(message(f"4477009{n:05}")) for n in range(10)]
    for i in range(20_000):
        store.replace(target.message_id, "", b"y", 50.0 + (i % 7) * 0.5, None, 0, system_id="esme", now=0.0)
        assert heap_bounded(store, live=11), len(store._schedule)
    assert list(store.due(100.0)) == [*others, target]  # due at 10 all of them, then the target at 53


def test_cancelling_scheduled_messages_shrinks_the_heap() -> None:
    store = MessageStore()
    messages = [store.submit(message(f"4477009{n:05}")) for n in range(1_000)]
    for m in messages[:-1]:
        store.cancel(0.0, m.message_id, "", system_id="esme")
        assert heap_bounded(store, live=store.pending_count)
    assert list(store.due(10.0)) == [messages[-1]]


def test_a_held_message_is_off_the_schedule_even_at_a_time_it_had_before() -> None:
    store = MessageStore()
    m = store.submit(message())
    store.retry(m, 20.0)
    store.hold(m, 10.0)  # its stale entry at 10 is no schedule: the visited network delivers it
    assert list(store.due(30.0)) == []
    assert store.next_deadline is None


@dataclass
class Model:
    """What the reference model knows of one message."""

    destination: str
    deliver_at: float
    expire_at: float
    pending: bool = True
    scheduled: bool = True
    held: bool = False
    retrying: bool = False


DESTINATIONS = ("447700900001", "447700900002", "447700900003")
offsets = st.integers(0, 6).map(float)


class ScheduleMachine(RuleBasedStateMachine):
    """Random submit (with and without replace_if_present), replace_sm, cancel_sm, retry, hold, finish and due()
    over an advancing clock, against a model in which a scheduled message is simply due at its time: due(now)
    yields the scheduled messages due by ``now`` in (time, id) order, each once, and the heap stays bounded."""

    def __init__(self) -> None:
        super().__init__()
        self.store = MessageStore(retention=20.0)
        self.now = 0.0
        self.model: dict[int, Model] = {}

    # -- helpers -------------------------------------------------------------------------------------------

    def pending(self) -> list[int]:
        return sorted(mid for mid, m in self.model.items() if m.pending)

    def pick(self, index: int) -> int:
        ids = self.pending()
        return ids[index % len(ids)]

    def live(self) -> int:
        return sum(m.pending and m.scheduled for m in self.model.values())

    def expected_next(self, now: float) -> int | None:
        due = [(m.deliver_at, mid) for mid, m in self.model.items() if m.pending and m.scheduled
               and m.deliver_at <= now]
        return min(due)[1] if due else None

    def model_retry(self, mid: int, at: float) -> None:
        self.store.retry(self.store_message(mid), at)
        m = self.model[mid]
        m.deliver_at, m.scheduled, m.held, m.retrying = at, True, False, True

    def model_hold(self, mid: int, until: float) -> None:
        self.store.hold(self.store_message(mid), until)
        m = self.model[mid]
        m.deliver_at, m.scheduled, m.held = until, False, True

    def model_finish(self, mid: int) -> None:
        self.store.finish(self.store_message(mid), MessageState.DELIVERED, self.now)
        self.model[mid].pending = self.model[mid].scheduled = False

    def store_message(self, mid: int) -> StoredMessage:
        found = self.store.get(mid)
        assert found is not None
        return found

    # -- rules ---------------------------------------------------------------------------------------------

    @rule(destination=st.sampled_from(DESTINATIONS), offset=offsets, validity=st.integers(0, 10),
          replace_if_present=st.booleans())
    def submit(self, destination: str, offset: float, validity: int, replace_if_present: bool) -> None:
        at = self.now + offset
        stored = self.store.submit(StoredMessage(0, "esme", "", "12345", destination, b"x", 0, 0, 0, self.now, at,
                                                 at + validity), replace_if_present=replace_if_present)
        same_key = [mid for mid in self.pending() if self.model[mid].destination == destination]
        if replace_if_present and same_key:
            assert stored.message_id == same_key[-1]
            m = self.model[stored.message_id]
            m.deliver_at, m.expire_at, m.scheduled, m.held, m.retrying = at, at + validity, True, False, False
        else:
            assert stored.message_id not in self.model
            self.model[stored.message_id] = Model(destination, at, at + validity)

    @rule(destination=st.sampled_from(DESTINATIONS), schedules=st.lists(offsets, min_size=1, max_size=60))
    def resubmit_many(self, destination: str, schedules: list[float]) -> None:
        """A peer's burst of replace_if_present submissions to one destination (what grew the heap unbounded)."""
        for offset in schedules:
            self.submit(destination, offset, 10, replace_if_present=True)
            assert heap_bounded(self.store, self.live()), (len(self.store._schedule), self.live())

    @rule(index=st.integers(0, 1_000), schedule=st.none() | offsets, validity=st.none() | st.integers(0, 10))
    def replace(self, index: int, schedule: float | None, validity: int | None) -> None:
        mid = index % (max(self.model, default=0) + 2)  # any id: pending, final, forgotten or never issued
        m = self.model.get(mid)
        deliver_at = None if schedule is None else self.now + schedule
        expire_at = None if validity is None else self.now + validity
        if m is None or not m.pending:
            with pytest.raises(StoreError) as refused:
                self.store.replace(mid, "", b"y", deliver_at, expire_at, 0, system_id="esme", now=self.now)
            assert refused.value.status == CommandStatus.ESME_RREPLACEFAIL
            return
        if deliver_at is not None:
            due = deliver_at
        elif m.retrying or m.held:
            due = self.now
        else:
            due = m.deliver_at
        if (m.expire_at if expire_at is None else expire_at) < due:
            with pytest.raises(StoreError) as refused:
                self.store.replace(mid, "", b"y", deliver_at, expire_at, 0, system_id="esme", now=self.now)
            assert refused.value.status == CommandStatus.ESME_RINVEXPIRY
            return
        assert self.store.replace(mid, "", b"y", deliver_at, expire_at, 0, system_id="esme", now=self.now) == [
            self.store_message(mid)]
        if expire_at is not None:
            m.expire_at = expire_at
        if deliver_at is not None:
            m.deliver_at, m.scheduled, m.held, m.retrying = deliver_at, True, False, False
        elif expire_at is not None and expire_at < m.deliver_at and not m.held:
            m.deliver_at, m.scheduled = expire_at, True

    @rule(index=st.integers(0, 1_000))
    def cancel_by_id(self, index: int) -> None:
        mid = index % (max(self.model, default=0) + 2)
        m = self.model.get(mid)
        if m is None or not m.pending:
            with pytest.raises(StoreError) as refused:
                self.store.cancel(self.now, mid, "", system_id="esme")
            assert refused.value.status == CommandStatus.ESME_RCANCELFAIL
            return
        assert [c.message_id for c in self.store.cancel(self.now, mid, "", system_id="esme")] == [mid]
        m.pending = m.scheduled = False

    @rule(destination=st.sampled_from(DESTINATIONS))
    def cancel_by_destination(self, destination: str) -> None:
        targets = [mid for mid in self.pending() if self.model[mid].destination == destination]
        if not targets:
            with pytest.raises(StoreError):
                self.store.cancel(self.now, None, "12345", destination, system_id="esme")
            return
        cancelled = self.store.cancel(self.now, None, "12345", destination, system_id="esme")
        assert sorted(c.message_id for c in cancelled) == targets
        for mid in targets:
            self.model[mid].pending = self.model[mid].scheduled = False

    @precondition(lambda self: self.pending())
    @rule(index=st.integers(0, 1_000), offset=offsets)
    def retry(self, index: int, offset: float) -> None:
        self.model_retry(self.pick(index), self.now + offset)

    @precondition(lambda self: self.pending())
    @rule(index=st.integers(0, 1_000), offset=offsets)
    def hold(self, index: int, offset: float) -> None:
        self.model_hold(self.pick(index), self.now + offset)

    @precondition(lambda self: self.pending())
    @rule(index=st.integers(0, 1_000))
    def finish(self, index: int) -> None:
        self.model_finish(self.pick(index))

    @rule(step=st.integers(0, 4).map(float))
    def advance(self, step: float) -> None:
        self.now += step

    @rule()
    def due_all(self) -> None:
        expected = sorted((m.deliver_at, mid) for mid, m in self.model.items()
                          if m.pending and m.scheduled and m.deliver_at <= self.now)
        assert [m.message_id for m in self.store.due(self.now)] == [mid for _, mid in expected]
        for _, mid in expected:
            self.model[mid].scheduled = False

    @rule(actions=st.lists(st.tuples(st.sampled_from(("finish", "retry", "hold", "replace", "leave")), offsets),
                           max_size=8))
    def due_acting_on_each(self, actions: list[tuple[str, float]]) -> None:
        """Consume due() one message at a time, acting on each before the next (a retry or a new schedule may
        be due at once, within the same iteration); stop when the actions run out, leaving the rest due."""
        due = self.store.due(self.now)
        for action, offset in actions:
            expected = self.expected_next(self.now)
            got = next(due, None)
            assert (got and got.message_id) == expected
            if got is None:
                return
            mid = got.message_id
            self.model[mid].scheduled = False
            if action == "finish":
                self.model_finish(mid)
            elif action == "retry":
                self.model_retry(mid, self.now + offset)
            elif action == "hold":
                self.model_hold(mid, self.now + offset)
            elif action == "replace":
                self.replace(mid, offset, 20)

    @rule()
    def next_deadline(self) -> None:
        times = [m.deliver_at for m in self.model.values() if m.pending and m.scheduled]
        assert self.store.next_deadline == (min(times) if times else None)

    @invariant()
    def heap_is_bounded(self) -> None:
        assert heap_bounded(self.store, self.live()), (len(self.store._schedule), self.live())

    @invariant()
    def pending_agrees(self) -> None:
        assert self.store.pending_count == len(self.pending())


ScheduleMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=60, deadline=None)
TestScheduleMachine = ScheduleMachine.TestCase


def test_finished_messages_retained_for_query_sm_are_not_left_for_the_collector_to_traverse() -> None:
    # A busy SMSC's store is mostly finished messages kept for late query_sm: as records, each full collection
    # traversed every one of them (tens of ms at 90,000). Kept as tuples of atomic values, the collector stops
    # tracking them, so the objects it tracks do not grow with the retained messages.
    store = MessageStore(retention=3600.0)
    gc.collect()
    before = len(gc.get_objects())
    for n in range(5_000):
        stored = store.submit(message(f"4477009{n:05d}"))
        store.finish(stored, MessageState.DELIVERED, 20.0)
    gc.collect()
    assert len(store) == 5_000
    assert len(gc.get_objects()) - before < 500


def test_a_finished_message_reads_back_as_it_was_and_a_copy_changes_nothing() -> None:
    store = MessageStore()
    stored = store.submit(message())
    store.finish(stored, MessageState.UNDELIVERABLE, 20.0, NetworkErrorCode(3, 0x0102))
    again = store.get(stored.message_id)
    assert again == stored
    assert again is not None
    assert again.error == NetworkErrorCode(3, 0x0102)
    assert again.state is MessageState.UNDELIVERABLE
    assert store.query(stored.message_id, "12345", system_id="esme") == [stored]
    again.state = MessageState.DELIVERED
    assert store.get(stored.message_id) == stored  # the store keeps what it was told by finish, not the copy
    assert store.pending_count == 0
    assert len(store) == 1
    # Finished again (the same record): the retained copy follows, the message keeps its single place.
    store.finish(stored, MessageState.DELETED, 25.0)
    assert store.get(stored.message_id) == stored
    assert store.pending_count == 0
    assert len(store) == 1
    with pytest.raises(StoreError) as refused:
        store.cancel(30.0, stored.message_id, "12345", system_id="esme")
    assert refused.value.status == CommandStatus.ESME_RCANCELFAIL
