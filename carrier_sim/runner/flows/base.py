"""What every phone flow is, and what the runner hands it.

Theory of operation
-------------------
A flow is one kind of thing phones do (activate, renew, exchange SMS, provision RCS, mail) for *every* phone the
population assigned to it (``Population.flow``), held as columns indexed by row -- no object or task per phone.
The runner calls it only at events:

* :meth:`PhoneFlow.arrive` -- phones start the flow (the load's arrivals, already filtered to this flow);
* :meth:`PhoneFlow.on_mt` -- the phone's carrier delivered an MT to one of this flow's phones;
* :meth:`PhoneFlow.tick` -- every runner tick: work whose time has come (think times over, retries);
* :meth:`PhoneFlow.expire` -- about once a second: phones that waited too long fail;
* :meth:`PhoneFlow.serve` -- started once, cancelled at the end: the flow's fixed pool of workers for whatever
  crosses a socket to the system under test or a carrier's door (HTTP, SMTP). Phones queue row numbers for it;
  a worker takes them with :func:`next_row`, which also ends the worker once it has been cancelled.

A flow reports a funnel (how many phones reached each step, for the dashboard), its counters (started,
completed, failed by reason) and its latencies, all under its own name: ``<flow>.started``,
``<flow>.latency.p99`` and so on.
"""

from __future__ import annotations

import abc
import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import numpy.typing as npt

from carrier_sim.scenario.model import Flow
from carrier_sim.smsc.store import StoredMessage

if TYPE_CHECKING:
    import aiohttp

    from carrier_sim.population.columns import Population
    from carrier_sim.runner.carriers import RunningCarrier

__all__ = ["NEAR_DUE", "AwaitingAnswer", "DoorAddress", "FlowContext", "FlowCounters", "PhoneFlow", "SendMo",
           "next_row"]

#: Work due sooner than this leaves the runner no whole tick to skip (its tick is 20 ms): a flow answering
#: :meth:`PhoneFlow.quiet_until` can return such a moment at once, without scanning its columns for timeouts.
NEAR_DUE = 0.05

#: (carrier index, source MSISDN, destination address, text, now) -> whether the carrier accepted the MO.
SendMo = Callable[[int, str, str, str, float], bool]


async def next_row(queue: asyncio.Queue[int]) -> int:
    """The next phone ``queue`` holds, for a worker's loop; raises CancelledError once the worker was cancelled.

    Why the check: Python 3.11's ``asyncio.wait_for`` -- which aiosmtplib awaits for every SMTP reply -- returns the
    result instead of raising when the task's cancellation and that result arrive in the same loop iteration
    (CPython gh-86296, fixed in 3.12). The cancellation is lost, and a worker that went back to waiting on its
    queue would wait forever, and with it the run's end (:meth:`PhoneFlow.serve`'s task group). The request for it
    stays counted in ``Task.cancelling()``, so the next turn of the loop honours it here.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
    return await queue.get()


class AwaitingAnswer:
    """Phones waiting for an answer, in the order they started waiting, so that the oldest still waiting (the
    first to time out) is found without a scan of the shard's columns (375 us a tick at a million phones).

    A phone waits while ``state[row] == waiting`` and ``since[row]`` is the moment it was queued at; an entry
    whose phone has moved on (answered, failed, or waiting again from a later moment) is stale and dropped when it
    reaches the head. Entries are added in time order (at the runner's ticks)."""

    def __init__(self, state: npt.NDArray[np.int8], since: npt.NDArray[np.float64], waiting: int) -> None:
        self._state, self._since, self._waiting = state, since, waiting
        self._queue: deque[tuple[float, int]] = deque()

    def add(self, at: float, row: int) -> None:
        """Phone ``row`` starts waiting at ``at`` (no earlier than the last one added)."""
        self._queue.append((at, row))

    def oldest(self) -> float | None:
        """When the phone waiting longest started waiting; None when none waits."""
        queue, state, since = self._queue, self._state, self._since
        while queue:
            at, row = queue[0]
            if state[row] == self._waiting and since[row] == at:
                return at
            queue.popleft()
        return None

    def expire(self, before: float, failed: int) -> int:
        """Phones waiting since before ``before`` are set to ``failed``; how many."""
        queue, state, since = self._queue, self._state, self._since
        late = 0
        while queue and queue[0][0] < before:
            at, row = queue.popleft()
            if state[row] == self._waiting and since[row] == at:
                state[row] = failed
                late += 1
        return late


def first_timeout(queues: Iterable[AwaitingAnswer], timeout: float, wake: float) -> float:
    """``wake``, or the moment the phone waiting longest in any of ``queues`` times out if that comes first (a
    flow's :meth:`PhoneFlow.quiet_until` over its waiting states)."""
    for awaiting in queues:
        oldest = awaiting.oldest()
        if oldest is not None:
            wake = min(wake, oldest + timeout)
    return wake


@dataclass(frozen=True, slots=True)
class DoorAddress:
    """Where one carrier door listens."""

    host: str
    port: int


@dataclass
class FlowCounters:
    """A flow's funnel and outcome counts. ``stages`` is the funnel in flow order (name -> phones that got there)."""

    started: int = 0
    completed: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    stages: dict[str, int] = field(default_factory=dict)

    def fail(self, reason: str, n: int = 1) -> None:
        """Count ``n`` phones failing for ``reason``."""
        self.failed += n
        self.failures[reason] = self.failures.get(reason, 0) + n

    def reached(self, stage: str, n: int = 1) -> None:
        """Count ``n`` phones reaching funnel ``stage``."""
        self.stages[stage] = self.stages.get(stage, 0) + n

    @property
    def in_flight(self) -> int:
        """Phones started and not yet completed or failed."""
        return self.started - self.completed - self.failed


@dataclass
class FlowContext:
    """What the runner gives every flow: the shard's phones, the carriers and their doors, the clock, the SUT."""

    seed: int
    population: Population
    carriers: list[RunningCarrier]
    clock: Callable[[], float]
    send_mo: SendMo
    #: door name ("rcs", "smtp", "camara") -> carrier name -> address; only doors the scenario declares.
    doors: dict[str, dict[str, DoorAddress]] = field(default_factory=dict)
    #: The system under test's HTTP API and server bearer token, and the run's shared HTTP client; set by the
    #: runner before :meth:`PhoneFlow.serve` starts.
    sut_api: str = ""
    sut_token: str = ""
    http: aiohttp.ClientSession | None = None

    @property
    def index(self) -> npt.NDArray[np.int64]:
        """Global phone index of each row (the shard's rows start at ``population.start``)."""
        return self.population.index

    @property
    def msisdns(self) -> npt.NDArray[np.int64]:
        """Each row's MSISDN."""
        return self.population.msisdn

    @property
    def carrier_of(self) -> npt.NDArray[np.int16]:
        """Each row's carrier (position in ``scenario.carriers``)."""
        return self.population.carrier

    def door(self, name: str, carrier: int) -> DoorAddress | None:
        """Where row-carrier ``carrier``'s door ``name`` listens, None when it has none."""
        return self.doors.get(name, {}).get(self.carriers[carrier].carrier.name)


class PhoneFlow(abc.ABC):
    """One flow over the shard's phones (see the module docstring for when the runner calls what)."""

    #: The flow's name as scenario files spell it; also the prefix of its metrics.
    name: ClassVar[str]
    #: Funnel stages in order, for the dashboard (subclasses list theirs).
    stage_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, ctx: FlowContext, spec: Flow) -> None:
        self.ctx = ctx
        self.spec = spec
        self.counters = FlowCounters(stages=dict.fromkeys(self.stage_names, 0))
        n = len(ctx.population)
        #: When each phone started the flow and when it completed it (NaN: not yet / never).
        self.t_started = np.full(n, np.nan)
        self.t_done = np.full(n, np.nan)

    def think(self, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        """Think times of ``rows`` drawn from the flow's distribution, from each phone's own stream."""
        from carrier_sim.population.randomness import Stream

        return self.ctx.population.draw(self.spec.think_time, rows, Stream.THINK)

    @abc.abstractmethod
    def arrive(self, rows: npt.NDArray[np.int64], now: float) -> None:
        """Phones ``rows`` start the flow."""

    def on_mt(self, row: int, message: StoredMessage, now: float) -> None:  # noqa: B027 - optional hook
        """An MT reached phone ``row`` (default: the flow expects none and ignores it)."""

    def tick(self, now: float) -> None:  # noqa: B027 - optional hook
        """Start whatever is due at ``now``."""

    def expire(self, now: float) -> None:  # noqa: B027 - optional hook
        """Fail phones that have waited too long."""

    def quiet_until(self, now: float) -> float:
        """The earliest moment at which :meth:`tick` or :meth:`expire` could have work without anything arriving
        meanwhile (an MT, an HTTP answer, a mail), ``inf`` for never. Under a virtual clock the runner sleeps
        through the ticks before it, and anything arriving wakes it (see ``VirtualEventLoop.idle_sleep``).

        The default, ``now``, never lets it skip a tick: a flow opts in by knowing its own deadlines."""
        return now

    async def serve(self) -> None:
        """The flow's workers; runs until cancelled (default: the flow needs none)."""
        await asyncio.Event().wait()

    @property
    def in_flight(self) -> int:
        """Phones between arrival and a final outcome."""
        return self.counters.in_flight

    def latencies(self) -> dict[str, npt.NDArray[np.float64]]:
        """Latency samples by histogram name: by default the flow's whole duration, under its own name."""
        done = ~np.isnan(self.t_done)
        return {self.name: (self.t_done[done] - self.t_started[done]).astype(np.float64)}

    def finish(self) -> None:
        """The run is over: phones still in flight count as failed (``unfinished``)."""
        left = self.counters.in_flight
        if left > 0:
            self.counters.fail("unfinished", left)
