"""An asyncio event loop on a virtual clock: runs a whole program faster than real time, deterministically.

Theory of operation
-------------------
``BaseEventLoop._run_once`` asks its selector to wait for I/O until the next timer is due (``timeout``), or not
at all (``timeout == 0``) when callbacks are ready. :class:`VirtualEventLoop` hands it a selector wrapper that
first polls the real selector without blocking. If that finds I/O, the I/O is returned and the clock stands
still. If it finds nothing and nothing is ready, nothing inside the process can happen before the next timer:
every peer lives in this loop, and a write to a loopback socket is readable by the other end as soon as
``send()`` returns. So instead of sleeping, the clock jumps by ``timeout`` and the timer fires at once.
``loop.time()`` returns that virtual clock (seconds, starting at ``start``, e.g. the wall time at which the run
began, so that timestamps look like epoch seconds). With no timer at all (``timeout is None``) only something
from outside can wake the loop, so the selector blocks for real, as a normal loop would.

Threads break the "idle means nothing can happen" test: work running in another thread finishes later in real
time, and jumping the clock meanwhile would let timeouts fire that the real program would never have seen. The
loop therefore counts the futures of :meth:`run_in_executor` (``asyncio.to_thread`` and the default resolver's
``getaddrinfo`` go through it) and, while any is outstanding, does real blocking selects -- the executor wakes
the loop through its self-pipe when it finishes -- without moving the clock: to the program, thread work takes
no virtual time. Threads started any other way (``call_soon_threadsafe`` from a thread of one's own, a Rust
runtime's threads, a subprocess) are invisible here and must not be used under a virtual clock.

Determinism. With only in-process peers, the order of events depends on the program and the timers alone, so two
runs of the same program observe identical ``loop.time()`` values. Two things this depends on: the peers use IP
literals (``127.0.0.1``, so no resolver thread: asyncio and aiohttp skip resolution for them) and no executor
work whose duration the program measures.

Why not ``looptime`` (PyPI, maintained): it was tried first. Its loop fits as a whole program's loop, but while
executor work is outstanding it advances the virtual clock in step with real time (so thread work costs virtual
time and runs stop being reproducible), and before every jump it spins 42 no-op loop iterations, each a select
system call, which a runner ticking every 20 ms pays on every tick. The behaviour wanted here is the small
selector wrapper below.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import os
import selectors
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, TypeVar, TypeVarTuple

__all__ = ["VirtualEventLoop", "is_virtual", "run_clock", "run_virtual"]

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

#: Real seconds a blocking select waits at most while executor work is outstanding, before looking again. The
#: executor's completion wakes the loop by itself; the cap only bounds how long a missed wake-up could cost.
_EXECUTOR_POLL = 0.1

_SelectResult = list[tuple[selectors.SelectorKey, int]]


class _VirtualSelector(selectors.BaseSelector):
    """Delegates to a real selector; turns an idle wait into a jump of the loop's virtual clock."""

    def __init__(self, real: selectors.BaseSelector) -> None:
        self.real = real
        self.loop: VirtualEventLoop | None = None

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self.real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self.real.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self.real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self.real.get_map()

    def close(self) -> None:
        self.real.close()

    def select(self, timeout: float | None = None) -> _SelectResult:
        ready = self.real.select(0)
        if ready or timeout == 0:
            return ready  # I/O to handle, or callbacks ready: the clock stands still
        loop = self.loop
        if loop is not None and loop.executor_busy():
            # Work in a thread will wake us through the self-pipe when it ends; the clock waits for it.
            return self.real.select(_EXECUTOR_POLL)
        if loop is None or timeout is None:
            # No timer: only the outside world can wake us, so block for real, as a normal loop would.
            return self.real.select(timeout)
        # Give a deferred loopback delivery (the kernel's softirq thread, under load) one chance to land before
        # time moves on: yielding the CPU lets it run, and the second poll costs a microsecond.
        os.sched_yield()
        ready = self.real.select(0)
        if ready:
            return ready
        loop.advance(timeout)
        return []


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose :meth:`time` is virtual and jumps over idle waits (module docstring).

    ``start`` is the virtual time the loop begins at (default: the wall time now). ``jumps`` and ``skipped``
    say how often and by how many virtual seconds the clock jumped; ``executor_calls`` how much work went to
    threads (each a stretch in which the clock had to wait for real time).
    """

    _clock_resolution: float  # set by BaseEventLoop.__init__; typeshed does not declare it

    def __init__(self, start: float | None = None) -> None:
        selector = _VirtualSelector(selectors.DefaultSelector())
        self._now = time.time() if start is None else float(start)
        self._executor_futures: set[asyncio.Future[Any]] = set()
        self.jumps = 0
        self.skipped = 0.0
        self.executor_calls = 0
        super().__init__(selector)
        selector.loop = self
        # BaseEventLoop runs a timer once ``when < time() + _clock_resolution``. Its default, the monotonic
        # clock's 1 ns, is below the spacing of floats at epoch magnitudes (about 240 ns near 1.8e9), so after a
        # jump that lands exactly on ``when`` the sum rounds back to ``when`` and the timer never runs. A
        # resolution of a few float spacings at the largest time this loop is likely to reach restores it.
        horizon = abs(self._now) * 2 + 1e6
        self._clock_resolution = max(self._clock_resolution, 4 * math.ulp(horizon))

    def time(self) -> float:
        """The virtual clock, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward (the selector does this when the loop is idle)."""
        if seconds > 0:
            self._now += seconds
            self.jumps += 1
            self.skipped += seconds

    def run_in_executor(
        self, executor: concurrent.futures.Executor | None, func: Callable[[*Ts], T], *args: *Ts
    ) -> asyncio.Future[T]:
        """As asyncio's, and the future is tracked: the clock does not move while it is outstanding."""
        future = super().run_in_executor(executor, func, *args)
        self.executor_calls += 1
        self._executor_futures.add(future)
        future.add_done_callback(self._executor_futures.discard)
        return future

    def executor_busy(self) -> bool:
        """True while executor work started through :meth:`run_in_executor` has not been collected."""
        # A future is done (set by the loop's own callback) before its done-callbacks run: look at done().
        return any(not f.done() for f in self._executor_futures)


def run_virtual(main: Coroutine[Any, Any, T], *, start: float | None = None, debug: bool | None = None) -> T:
    """Run ``main`` to completion in a new :class:`VirtualEventLoop`, like :func:`asyncio.run`.

    ``start``: the virtual time at the start (default: the wall time now).
    """
    with asyncio.Runner(debug=debug, loop_factory=lambda: VirtualEventLoop(start)) as runner:
        return runner.run(main)


def is_virtual(loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Whether ``loop`` (default: the running loop) keeps virtual time."""
    return isinstance(loop if loop is not None else asyncio.get_running_loop(), VirtualEventLoop)


def run_clock(loop: asyncio.AbstractEventLoop | None = None) -> Callable[[], float]:
    """The clock a run's parties should stamp events with: the virtual loop's clock under a virtual loop, the
    wall clock (``time.time``, epoch seconds) otherwise -- a normal loop's ``time()`` is monotonic, not epoch."""
    target = loop if loop is not None else asyncio.get_running_loop()
    return target.time if isinstance(target, VirtualEventLoop) else time.time
