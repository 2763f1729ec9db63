"""Which phones are due: a time wheel over the ``next_due`` column that touches only due phones, and the clocks
(virtual and wall) that say what "now" is. Pure objects: the runner owns the loop, the sleeping and the sockets.

Theory of operation
-------------------
A million phones, tens of thousands due every 50 ms tick: scanning ``next_due <= now`` each tick costs O(N) and
would be most of the run. Instead :class:`DueQueue` keeps, beside the column, a *wheel* of buckets ``resolution``
seconds wide, keyed by ``ceil(t / resolution)``. Each bucket is a list of chunks — the (rows, times) arrays of
one :meth:`~DueQueue.set_due` call that fell into it — and a heap of bucket keys gives the earliest bucket in
O(log buckets). ``pop_due(now)`` takes whole buckets off the heap up to ``now``'s bucket, keeps the entries with
``t <= now`` and puts the boundary bucket's later entries back. Work per pop is proportional to the entries it
looks at, never to N; the ``touched`` counter lets tests check that.

The column is the truth, the wheel is an index into it. Rescheduling a phone does not search the wheel for its old
entry (that would be O(bucket)); the old entry stays and is recognised as stale when popped, because it no longer
matches the column (``next_due[row] != t``). Cancelling is writing ``inf``. Duplicate live entries (the same
phone set to the same time twice) collapse when popped, so a pop never returns a row twice. Popping a phone
writes ``inf`` to its ``next_due``: nothing is due for it until its handler says so.

Determinism: ``pop_due`` returns rows ordered by (due time, row), independent of the order of ``set_due`` calls.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["Clock", "DueQueue", "VirtualClock", "WallClock"]

_Chunk = tuple[NDArray[np.int64], NDArray[np.float64]]
# Bucket keys are clipped here so that a far-future (but finite) due time cannot overflow int64 into a negative key.
_KEY_LIMIT = float(2**62)


class DueQueue:
    """Due-time index over a ``next_due`` column (shared with the population, written only through this queue).

    ``resolution`` is the bucket width in seconds: about the runner's tick, so that a pop takes whole buckets and
    splits at most one.
    """

    def __init__(self, next_due: NDArray[np.float64], resolution: float = 0.05) -> None:
        if not resolution > 0:
            raise ValueError("resolution must be positive")
        self.next_due = next_due
        self.resolution = resolution
        self._buckets: dict[int, list[_Chunk]] = {}
        self._heap: list[int] = []
        self._entries = 0
        self._next_cache: float | None = None
        #: Entries examined by pops and next_time() since construction (due, stale, and boundary entries put back):
        #: the measure of the queue's work, for tests and benchmarks.
        self.touched = 0

    def __len__(self) -> int:
        """Entries held, stale ones included (an upper bound on the phones with something due)."""
        return self._entries

    # -- writing ------------------------------------------------------------------------------------------------

    def _add(self, key: int, rows: NDArray[np.int64], times: NDArray[np.float64]) -> None:
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [(rows, times)]
            heapq.heappush(self._heap, key)
        else:
            bucket.append((rows, times))
        self._entries += len(rows)

    def _enqueue(self, rows: NDArray[np.int64], times: NDArray[np.float64]) -> None:
        if not rows.size:
            return
        keys = np.ceil(np.clip(times / self.resolution, -_KEY_LIMIT, _KEY_LIMIT)).astype(np.int64)
        first, last = int(keys.min()), int(keys.max())
        if first == last:  # the common case: a batch of phones woken for one moment, or a short spread
            self._add(first, rows, times)
            return
        # Any sort will do: order inside a bucket does not matter, pops sort what they return.
        order = np.argsort(keys)
        keys, rows, times = keys[order], rows[order], times[order]
        cuts = np.flatnonzero(np.diff(keys)) + 1
        # Copies, not views: a view keeps the whole batch alive until its last bucket is popped, which with
        # long-tailed think times held ~200 MB of dead batches in the 1M-phone benchmark.
        for lo, hi in zip(np.concatenate(([0], cuts)), np.concatenate((cuts, [len(keys)])), strict=True):
            self._add(int(keys[lo]), rows[lo:hi].copy(), times[lo:hi].copy())

    def set_due(self, rows: ArrayLike, t: ArrayLike) -> None:
        """Phones ``rows`` are next due at ``t`` (a scalar for all, or one time each); ``inf`` means nothing due.

        Batch calls: one call for many phones costs about as much as one call for one."""
        # A copy: the wheel keeps these arrays, and the caller may reuse its buffer.
        r = np.array(rows, dtype=np.int64, ndmin=1)
        times = np.array(np.broadcast_to(np.asarray(t, dtype=np.float64), r.shape), dtype=np.float64)
        if np.isnan(times).any():
            raise ValueError("a due time cannot be NaN")
        self.next_due[r] = times
        finite = np.isfinite(times)
        if not finite.all():
            r, times = r[finite], times[finite]
        self._enqueue(r, times)
        self._next_cache = None

    def cancel(self, rows: ArrayLike) -> None:
        """Nothing is due for ``rows`` any more (their wheel entries become stale)."""
        self.next_due[np.asarray(rows, dtype=np.int64)] = np.inf
        self._next_cache = None

    # -- reading ------------------------------------------------------------------------------------------------

    def _take_bucket(self, key: int) -> _Chunk | None:
        chunks = self._buckets.pop(key, None)
        if chunks is None:
            return None
        if len(chunks) == 1:
            rows, times = chunks[0]
        else:
            rows = np.concatenate([c[0] for c in chunks])
            times = np.concatenate([c[1] for c in chunks])
        self._entries -= len(rows)
        self.touched += len(rows)
        return rows, times

    def pop_due_with_times(self, now: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
        """Take every phone due at or before ``now``: (rows, due times), ordered by time then row. Their
        ``next_due`` becomes ``inf``."""
        # Keys are ceil(t / resolution), monotone in t, so everything due (t <= now) has a key <= now's key; and a
        # runner that pops at tick ends (now = k * resolution) takes whole buckets with nothing to put back.
        # Clipped like the keys (clipping is monotone too) so that pop_due(inf) simply takes everything.
        limit = math.ceil(min(max(now / self.resolution, -_KEY_LIMIT), _KEY_LIMIT))
        got_rows: list[NDArray[np.int64]] = []
        got_times: list[NDArray[np.float64]] = []
        while self._heap and self._heap[0] <= limit:
            taken = self._take_bucket(heapq.heappop(self._heap))
            if taken is not None:
                got_rows.append(taken[0])
                got_times.append(taken[1])
        if not got_rows:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64)
        rows = np.concatenate(got_rows) if len(got_rows) > 1 else got_rows[0]
        times = np.concatenate(got_times) if len(got_times) > 1 else got_times[0]

        # Only the last bucket can hold entries after `now`: put them back.
        due = times <= now
        if not due.all():
            self._enqueue(rows[~due], times[~due])
            rows, times = rows[due], times[due]
        live = self.next_due[rows] == times
        if not live.all():
            rows, times = rows[live], times[live]
        order = np.argsort(times)
        rows, times = rows[order], times[order]
        if rows.size > 1 and bool((times[1:] == times[:-1]).any()):
            # Ties (phones set to one time together): an unstable sort left them in any order, sort by row too.
            # Rare with drawn times, so the common case pays for one argsort, not a two-key lexsort.
            order = np.lexsort((rows, times))
            rows, times = rows[order], times[order]
        if rows.size > 1:
            # (row, time) pairs repeat only when a phone was set twice to the same time; sorted, they are adjacent
            fresh = np.empty(rows.size, dtype=bool)
            fresh[0] = True
            np.not_equal(rows[1:], rows[:-1], out=fresh[1:])
            fresh[1:] |= times[1:] != times[:-1]
            if not fresh.all():
                rows, times = rows[fresh], times[fresh]
        self.next_due[rows] = np.inf
        self._next_cache = None
        return rows, times

    def pop_due(self, now: float) -> NDArray[np.int64]:
        """Take every phone due at or before ``now``: their rows, in (due time, row) order; their ``next_due``
        becomes ``inf``."""
        return self.pop_due_with_times(now)[0]

    def next_time(self) -> float:
        """The earliest due time held, ``inf`` when nothing is due. Drops stale buckets it walks past, so repeated
        calls are cheap (the answer is cached until the next write)."""
        if self._next_cache is not None:
            return self._next_cache
        while self._heap:
            key = self._heap[0]
            taken = self._take_bucket(key)
            if taken is None:
                heapq.heappop(self._heap)
                continue
            rows, times = taken
            live = self.next_due[rows] == times
            if not live.any():
                heapq.heappop(self._heap)
                continue
            rows, times = rows[live], times[live]
            # put the compacted bucket back under the same key (still on the heap)
            self._buckets[key] = [(rows, times)]
            self._entries += len(rows)
            self._next_cache = float(times.min())
            return self._next_cache
        self._next_cache = math.inf
        return self._next_cache


class Clock(Protocol):
    """What the runner and the carriers ask for the time: seconds since the run started."""

    def now(self) -> float:
        """Seconds since the run started."""
        ...


class VirtualClock:
    """Simulated time: moves only when told to, so a run's outcome is a function of its inputs alone."""

    __slots__ = ("_now",)

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        """The current simulated time."""
        return self._now

    def advance_to(self, t: float) -> float:
        """Move to ``t``; time never runs backwards (ValueError), and a no-op move is fine."""
        if math.isnan(t) or t < self._now:
            raise ValueError(f"cannot move a clock back from {self._now} to {t}")
        self._now = float(t)
        return self._now

    def advance(self, dt: float) -> float:
        """Move forward by ``dt`` seconds."""
        return self.advance_to(self._now + dt)

    def advance_to_next(self, queue: DueQueue, limit: float = math.inf) -> float:
        """Jump to the queue's next due time, no later than ``limit`` and never backwards (an overdue queue leaves
        the clock where it is). Returns the new time; stays put when nothing is due and ``limit`` is infinite."""
        target = min(queue.next_time(), limit)
        if math.isinf(target):
            return self._now
        return self.advance_to(max(target, self._now))


class WallClock:
    """Real time, measured by a monotonic ``source`` the runner passes in (``time.monotonic``), so this module
    stays free of the ``time`` import and a test can pass a fake."""

    __slots__ = ("_origin", "_source")

    def __init__(self, source: Callable[[], float], origin: float | None = None) -> None:
        self._source = source
        self._origin = source() if origin is None else origin

    def now(self) -> float:
        """Seconds since the clock's origin (by default, its construction)."""
        return self._source() - self._origin

    def until(self, t: float) -> float:
        """How long to sleep before ``t`` (0 if it has passed): what the runner hands to ``asyncio.sleep``."""
        return max(0.0, t - self.now())
