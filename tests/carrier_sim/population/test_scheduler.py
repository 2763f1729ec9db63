"""The due queue pops exactly the due phones, in time order, touching only what is due; the clocks are
deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from carrier_sim.population.randomness import CounterRng, Stream
from carrier_sim.population.scheduler import DueQueue, VirtualClock, WallClock
from carrier_sim.scenario.model import Distribution

ROWS = 40


class DueQueueMachine(RuleBasedStateMachine):
    """The queue against a dict model: row -> due time; a pop returns the rows with time <= now, by (time, row)."""

    @initialize(resolution=st.sampled_from([0.01, 0.05, 1.0, 7.5]))
    def start(self, resolution: float) -> None:
        self.column = np.full(ROWS, np.inf)
        self.queue = DueQueue(self.column, resolution)
        self.model: dict[int, float] = {}
        self.now = 0.0

    @rule(rows=st.lists(st.integers(0, ROWS - 1), max_size=10),
          delays=st.lists(st.floats(-1.0, 30.0, allow_nan=False), min_size=1, max_size=10))
    def set_due(self, rows: list[int], delays: list[float]) -> None:
        times = [self.now + delays[k % len(delays)] for k in range(len(rows))]
        self.queue.set_due(np.asarray(rows, dtype=np.int64), np.asarray(times))
        for r, t in zip(rows, times, strict=True):
            self.model[r] = t  # the last write wins, as in the column

    @rule(rows=st.lists(st.integers(0, ROWS - 1), min_size=1, max_size=5), delay=st.floats(0.0, 5.0))
    def set_due_scalar_time(self, rows: list[int], delay: float) -> None:
        self.queue.set_due(np.asarray(rows), self.now + delay)
        for r in rows:
            self.model[r] = self.now + delay

    @rule(rows=st.lists(st.integers(0, ROWS - 1), max_size=5))
    def cancel(self, rows: list[int]) -> None:
        self.queue.cancel(np.asarray(rows, dtype=np.int64))
        for r in rows:
            self.model.pop(r, None)

    @rule(rows=st.lists(st.integers(0, ROWS - 1), max_size=5))
    def set_to_infinity(self, rows: list[int]) -> None:
        self.queue.set_due(np.asarray(rows, dtype=np.int64), math.inf)
        for r in rows:
            self.model.pop(r, None)

    @rule(step=st.floats(0.0, 10.0))
    def pop(self, step: float) -> None:
        self.now += step
        rows, times = self.queue.pop_due_with_times(self.now)
        expected = sorted((t, r) for r, t in self.model.items() if t <= self.now)
        assert [(float(t), int(r)) for t, r in zip(times, rows, strict=True)] == expected
        for _, r in expected:
            del self.model[r]

    @rule()
    def next_time(self) -> None:
        assert self.queue.next_time() == min(self.model.values(), default=math.inf)

    @invariant()
    def column_matches_model(self) -> None:
        if hasattr(self, "model"):
            expected = np.full(ROWS, np.inf)
            for r, t in self.model.items():
                expected[r] = t
            assert np.array_equal(self.column, expected)


TestDueQueue = DueQueueMachine.TestCase
TestDueQueue.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)


def test_pops_touch_only_due_entries() -> None:
    n = 1_000_000
    column = np.full(n, np.inf)
    queue = DueQueue(column, resolution=0.05)
    times = CounterRng(1).uniform(np.arange(n), Stream.USER) * 100.0  # spread over 100 s
    queue.set_due(np.arange(n), times)

    # a tick with ~500 phones due must not look at the other million
    before = queue.touched
    popped = queue.pop_due(0.05)
    assert len(popped) == int(np.sum(times <= 0.05))
    assert queue.touched - before <= 2 * len(popped) + 1000  # due ones + at most one bucket put back

    # a whole run of 50 ms ticks: each entry is looked at about once
    total = len(popped)
    for k in range(2, 2001):
        total += len(queue.pop_due(k * 0.05))
    assert total == n
    assert queue.touched <= 2 * n
    assert len(queue) == 0
    assert queue.next_time() == math.inf


def test_rescheduled_and_cancelled_phones_are_not_popped_at_their_old_time() -> None:
    column = np.full(10, np.inf)
    queue = DueQueue(column, resolution=1.0)
    queue.set_due(np.arange(10), 5.0)
    queue.set_due(np.asarray([1, 2]), 50.0)
    queue.cancel(np.asarray([3]))
    queue.set_due(np.asarray([4]), 5.0)  # set again to the same time: still popped once
    assert queue.pop_due(5.0).tolist() == [0, 4, 5, 6, 7, 8, 9]
    assert np.isinf(column[[0, 3, 4]]).all()
    assert queue.next_time() == 50.0
    assert queue.pop_due(49.0).size == 0
    assert queue.pop_due(50.0).tolist() == [1, 2]


def test_pops_are_in_time_order_then_row_order() -> None:
    column = np.full(6, np.inf)
    queue = DueQueue(column, resolution=10.0)
    queue.set_due(np.asarray([5, 4, 3]), np.asarray([3.0, 1.0, 3.0]))
    queue.set_due(np.asarray([0, 1, 2]), np.asarray([2.0, 3.0, 0.5]))
    rows, times = queue.pop_due_with_times(3.0)
    assert rows.tolist() == [2, 4, 0, 1, 3, 5]
    assert times.tolist() == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]


def test_far_future_times_and_popping_everything() -> None:
    column = np.full(4, np.inf)
    queue = DueQueue(column, resolution=0.05)
    rows = np.asarray([0, 1, 2, 3])
    queue.set_due(rows, np.asarray([1e300, -1e300, 1.0, 1e18]))
    rows[:] = 0  # the caller reusing its buffer does not disturb the queue
    assert queue.pop_due(2.0).tolist() == [1, 2]
    assert queue.next_time() == 1e18
    assert queue.pop_due(math.inf).tolist() == [3, 0]


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError, match="NaN"):
        DueQueue(np.full(2, np.inf)).set_due(np.asarray([0]), math.nan)
    with pytest.raises(ValueError, match="positive"):
        DueQueue(np.full(2, np.inf), resolution=0.0)


def _virtual_run(seed: int, batches: int) -> list[tuple[float, list[int]]]:
    """A small simulation in virtual time, event by event: 300 phones, each re-scheduling itself with an
    exponential think time; the initial schedule is written in ``batches`` pieces in a scrambled order."""
    n, horizon = 300, 20.0
    rng = CounterRng(seed)
    queue = DueQueue(np.full(n, np.inf), resolution=0.05)
    clock = VirtualClock()
    start = rng.uniform(np.arange(n), Stream.ARRIVAL_TIME) * 10.0
    for chunk in np.array_split(np.argsort(rng.bits(np.arange(n), Stream.USER)), batches):
        queue.set_due(chunk, start[chunk])
    draws = np.zeros(n, dtype=np.int64)
    log: list[tuple[float, list[int]]] = []
    think = Distribution("exponential", mean=1.0)
    while True:
        now = clock.advance_to_next(queue, limit=horizon)
        rows = queue.pop_due(now)
        if rows.size == 0:  # the next event lies past the horizon
            break
        log.append((now, rows.tolist()))
        queue.set_due(rows, now + rng.sample(think, rows, Stream.THINK, draws[rows]))
        draws[rows] += 1
    return log


def test_virtual_runs_are_deterministic_whatever_the_write_order() -> None:
    one = _virtual_run(seed=9, batches=1)
    assert len(one) > 1000  # events, one pop each
    assert one == _virtual_run(seed=9, batches=1)
    assert one == _virtual_run(seed=9, batches=17)
    assert one != _virtual_run(seed=10, batches=1)
    times = [t for t, _ in one]
    assert times == sorted(times)
    assert times[-1] <= 20.0


def test_virtual_clock_moves_forward_only() -> None:
    clock = VirtualClock(5.0)
    assert clock.advance(1.5) == 6.5
    assert clock.advance_to(6.5) == 6.5
    with pytest.raises(ValueError, match="back"):
        clock.advance_to(6.0)
    with pytest.raises(ValueError, match="back"):
        clock.advance_to(math.nan)
    queue = DueQueue(np.full(3, np.inf))
    assert clock.advance_to_next(queue) == 6.5  # nothing due: stays
    assert clock.advance_to_next(queue, limit=8.0) == 8.0
    queue.set_due(np.asarray([0]), 3.0)  # overdue: the clock does not go back for it
    assert clock.advance_to_next(queue) == 8.0
    queue.set_due(np.asarray([0]), 12.0)
    assert clock.advance_to_next(queue) == 12.0


def test_wall_clock_reads_its_source_relative_to_its_origin() -> None:
    ticks = iter([100.0, 100.25, 101.0, 103.0])
    clock = WallClock(lambda: next(ticks))
    assert clock.now() == 0.25
    assert clock.until(2.0) == 1.0
    assert clock.until(1.0) == 0.0
    assert WallClock(lambda: 7.0, origin=2.0).now() == 5.0
