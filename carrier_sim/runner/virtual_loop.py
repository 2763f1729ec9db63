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

Idle ticks. A program that ticks (the runner advances its phones every 20 ms) never leaves the loop idle for
long, so the clock crawls through a quiet hour a tick at a time. :meth:`VirtualEventLoop.idle_sleep` lets such a
ticker sleep to the next moment it knows it has work, and wakes it at its next tick after anything else in the loop
stirs (I/O, a ready callback, another timer): whatever that did gets the tick it would have had. A ticker that
only skips ticks in which nothing else happened computes what it would have computed, over far fewer ticks.

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
        loop = self.loop
        ready = self.real.select(0)
        if ready or timeout == 0:
            if loop is not None:
                loop.stirred()
            return ready  # I/O to handle, or callbacks ready: the clock stands still
        if loop is not None and loop.executor_busy():
            # Work in a thread will wake us through the self-pipe when it ends; the clock waits for it.
            loop.stirred()
            return self.real.select(_EXECUTOR_POLL)
        if loop is None or timeout is None:
            # No timer: only the outside world can wake us, so block for real, as a normal loop would.
            return self.real.select(timeout)
        # Give a deferred loopback delivery (the kernel's softirq thread, under load) one chance to land before
        # time moves on: yielding the CPU lets it run, and the second poll costs a microsecond.
        os.sched_yield()
        ready = self.real.select(0)
        if ready:
            loop.stirred()
            return ready
        loop.advance(timeout)
        loop.jumped()
        return []


class _IdleSleep:
    """The state of one :meth:`VirtualEventLoop.idle_sleep`."""

    __slots__ = ("handle", "stirred", "waiter", "wake_after")

    def __init__(self, waiter: asyncio.Future[bool], handle: asyncio.TimerHandle,
                 wake_after: Callable[[float], float]) -> None:
        self.waiter = waiter
        self.handle = handle
        self.wake_after = wake_after
        self.stirred = False


def _wake(waiter: asyncio.Future[bool], quiet: bool) -> None:
    if not waiter.done():
        waiter.set_result(quiet)


class VirtualEventLoop(asyncio.SelectorEventLoop):
    """A selector event loop whose :meth:`time` is virtual and jumps over idle waits (module docstring).

    ``start`` is the virtual time the loop begins at (default: the wall time now). ``jumps`` and ``skipped``
    say how often and by how many virtual seconds the clock jumped; ``executor_calls`` how much work went to
    threads (each a stretch in which the clock had to wait for real time).
    """

    _clock_resolution: float  # set by BaseEventLoop.__init__; typeshed does not declare it

    def __init__(self, start: float | None = None) -> None:
        selector = _VirtualSelector(selectors.DefaultSelector())
        # Default: the wall time's whole second (see shards.run_in_clock: aiohttp's whole-second timers).
        self._now = float(int(time.time())) if start is None else float(start)
        self._executor_futures: set[asyncio.Future[Any]] = set()
        self.jumps = 0
        self.skipped = 0.0
        self.executor_calls = 0
        self._idle: _IdleSleep | None = None
        super().__init__(selector)
        selector.loop = self
        self._resolve()

    def _resolve(self) -> None:
        # BaseEventLoop runs a timer once ``when < time() + _clock_resolution``. Its default, the monotonic
        # clock's 1 ns, is below the spacing of floats at epoch magnitudes (about 240 ns near 1.8e9), so after a
        # jump that lands exactly on ``when`` the sum rounds back to ``when`` and the timer never runs. One float
        # spacing at the clock's value makes the sum the very next float: a timer runs once ``when <= time()``,
        # never before. (A fixed few spacings ran timers up to 8 spacings early, stamped with the earlier time,
        # which shifted the runner's tick lattice by that much depending on what else was due.)
        self._clock_resolution = math.ulp(self._now)

    def time(self) -> float:
        """The virtual clock, in seconds."""
        return self._now

    def advance(self, seconds: float) -> None:
        """Move the virtual clock forward (the selector does this when the loop is idle)."""
        if seconds > 0:
            self._now += seconds
            self._resolve()
            self.jumps += 1
            self.skipped += seconds

    async def idle_sleep(self, until: float, wake_after: Callable[[float], float]) -> bool:
        """Sleep until virtual time ``until``, unless anything else in the loop stirs first: I/O arrives, another
        callback is ready to run, or another timer comes due. Then wake at ``wake_after(t)`` instead, ``t`` being
        the first such moment: a ticker passes the next moment of its own lattice after ``t``, so that it looks after
        whatever stirred at the tick it would have had anyway. True when the whole sleep passed quietly.

        For a loop that ticks (a runner's scheduler): it can skip its idle ticks, as long as everything that could
        give it work while it sleeps does so through the loop. One sleeper at a time."""
        if self._idle is not None:
            raise RuntimeError("another idle_sleep is already waiting")
        waiter: asyncio.Future[bool] = self.create_future()
        self._idle = _IdleSleep(waiter, self.call_at(until, _wake, waiter, True), wake_after)
        try:
            return await waiter
        finally:
            idle, self._idle = self._idle, None
            if idle is not None:
                idle.handle.cancel()

    def stirred(self) -> None:
        """Something other than an idle sleeper's own timer is about to run (the selector calls this): an idle
        sleeper wakes at its ``wake_after(now)``, if that is sooner than it meant to, unless it was told already."""
        idle = self._idle
        if idle is None or idle.stirred or idle.waiter.done():
            return
        idle.stirred = True
        when = idle.wake_after(self._now)
        if when < idle.handle.when():
            idle.handle.cancel()
            idle.handle = self.call_at(when, _wake, idle.waiter, False)

    def jumped(self) -> None:
        """The clock just jumped to the earliest timer: if that is not the idle sleeper's own, it stirred."""
        idle = self._idle
        if idle is not None and self._now < idle.handle.when():
            self.stirred()

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
