"""The run: start carriers and the system under test, drive the phones through the load, judge, report.

Theory of operation. One asyncio loop owns everything in this process: the carriers' SMSC servers (real SMPP
sockets to the system under test), the phones (columns advanced by a 20 ms tick that touches only due phones),
a fixed pool of HTTP workers for the phones' authenticate calls, the scenario's events, and the dashboard. Under a
virtual clock the tick skips the ticks in which nothing can happen (:func:`_idle_ticks`, and
``VirtualEventLoop.idle_sleep`` for what wakes it early), on the lattice it would have ticked on. The
tick also measures the harness itself, so that a run never silently measures its own slowness:

- every arrival is stamped with how late it went out against its planned moment; ``load.on_time`` counts those out
  within :data:`LATE_ARRIVAL`, ``load.achieved_ratio`` is that count over the arrivals planned, and a run that got
  fewer than :data:`ON_TIME_SHARE` of its arrivals out on time is a harness error (exit 3);
- in the closed model, a loop that runs out of phones (each runs its flow once) while its phase still asks for
  more in flight is a harness error once over 1 - :data:`ON_TIME_SHARE` of the asked-for phone-seconds (the
  phase's concurrency integrated over its time) went missing for want of phones;
- a loop whose ticks stretch past 1 s (p99) is a harness error: arrivals went out in bursts;
- phones that waited for one of the runner's own HTTP workers longer than :data:`WORKER_WAIT` (p99) are a harness
  error: real phones do not queue for each other, so activation latency would include the harness's queue.

A SIM swap or port-out happens at the carriers within the tick that reaches it; telling the system under test (or
asking its risk check) takes one HTTP call per phone, up to 30 s each against a SUT that hangs. Those calls run in
a task of the run, :data:`EVENT_CALLS` at a time, so that the loop keeps ticking meanwhile and a stop ends them
with the rest of the run. A phone counts in ``events_targets`` (and its revocation in ``events_revoked``) once its
call is done: a run that ended mid-event judges the SUT on the calls it answered, and the event's line in
``events_log`` says how many were left.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

from carrier_sim.camara import UnknownNumber
from carrier_sim.capture.tap import StreamTap
from carrier_sim.population.columns import Population
from carrier_sim.population.randomness import Stream
from carrier_sim.runner.carriers import RunningCarrier, start_carriers
from carrier_sim.runner.doors import Door, services_of, start_doors
from carrier_sim.runner.flows import FLOW_TYPES, FlowContext, PhoneFlow
from carrier_sim.runner.flows.activation import ActivationFlow, Step
from carrier_sim.runner.flows.base import NEAR_DUE, DoorAddress, next_row
from carrier_sim.runner.sut import SutError, SystemUnderTest, start_sut
from carrier_sim.runner.virtual_loop import VirtualEventLoop
from carrier_sim.scenario.model import Carrier, Event, Scenario
from carrier_sim.smsc.store import StoredMessage

__all__ = ["Controls", "RunResult", "SutStarter", "build_flows", "event_carriers", "flow_latencies", "judge_harness",
           "pick_for_event", "run_scenario"]

TICK = 0.02
#: HTTP connections the run's client keeps at most (every flow's workers share one client).
HTTP_CONNECTIONS = 512
#: Seconds after the load's end that phones still in flight may take to finish before they count as failed.
DRAIN_GRACE = 30.0
#: An arrival that goes out more than this many seconds after its planned moment was not generated as asked.
LATE_ARRIVAL = 0.25
#: The share of planned arrivals that must go out on time, else the run is a harness error.
ON_TIME_SHARE = 0.95
#: The p99 of the wait for a free runner HTTP worker above which the run is a harness error, in seconds.
WORKER_WAIT = 1.0
#: Calls to the system under test one event keeps in flight at most (one per phone it hit).
EVENT_CALLS = 16

#: Starts the system under test once the carriers and their doors listen.
SutStarter = Callable[[Scenario, list[RunningCarrier], Path, dict[str, dict[str, DoorAddress]]],
                      Awaitable[SystemUnderTest]]


@dataclass
class Controls:
    """What a person (the dashboard's keys) can change while the run goes on."""

    stop_requested: bool = False
    paused: bool = False
    rate_multiplier: float = 1.0


@dataclass
class RunResult:
    """Everything the reports need."""

    scenario: Scenario
    flows: list[PhoneFlow]
    carriers: list[RunningCarrier]
    planned_arrivals: int
    achieved_arrivals: int
    started_at: float
    duration: float
    harness_errors: list[str] = field(default_factory=list)
    #: What the scenario's events did, a line each, for people watching (the dashboard's recent panel).
    events_log: list[str] = field(default_factory=list)
    events_revoked: int = 0
    planned_by_now: int = 0
    on_time_arrivals: int = 0
    #: Seconds of the load plan consumed so far: wall (or virtual) time, minus pauses, scaled by the rate multiplier.
    plan_time: float = 0.0
    tick_lag_p99: float = 0.0
    #: Ticks the loop ran, and those a virtual clock skipped because nothing could happen in them.
    ticks: int = 0
    ticks_skipped: int = 0
    #: SMSC outages under way (the loop ticks through them without skipping).
    outages: int = 0
    events_targets: int = 0
    risk_checks: dict[str, int] = field(default_factory=dict)
    conformance: list[dict[str, Any]] = field(default_factory=list)
    pcap_streams: list[tuple[str, str, list[tuple[str, bytes, float]]]] = field(default_factory=list)

    @property
    def in_flight(self) -> int:
        """Phones mid-flow, over every flow."""
        return sum(f.in_flight for f in self.flows)


def build_flows(ctx: FlowContext, scenario: Scenario, reg_timeout: float) -> list[PhoneFlow]:
    """One flow object per flow the scenario declares, in declaration order (``Population.flow`` indexes them)."""
    flows: list[PhoneFlow] = []
    for spec in scenario.flows:
        kind = FLOW_TYPES[spec.name]
        if issubclass(kind, ActivationFlow):
            flows.append(kind(ctx, spec, reg_timeout=reg_timeout))
        else:
            flows.append(kind(ctx, spec))
    return flows


async def run_scenario(
    scenario: Scenario,
    population: Population,
    arrivals: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
    *,
    controls: Controls | None = None,
    on_tick: Callable[[RunResult, float], None] | None = None,
    capture: bool = False,
    workdir: Path | None = None,
    reg_timeout: float = 10.0,
    concurrency: Callable[[float], int] | None = None,
    clock: Callable[[], float] = time.time,
    sut_starter: SutStarter | None = None,
) -> RunResult:
    """Run a scenario (or one shard of it: ``population`` holds the shard's phones) to its end, or until
    ``controls.stop_requested``; never raises for a SUT failure -- harness problems land in
    ``RunResult.harness_errors``.

    Open model: ``arrivals`` are (row, time) sorted by time. Closed model: ``concurrency(t)`` is how many phones
    should be mid-flow at plan time t, and ``arrivals`` gives the order in which phones join (times unused).
    ``clock`` is the run's notion of now (the wall clock, or a virtual loop's); ``sut_starter`` starts the system
    under test (default: :func:`~carrier_sim.runner.sut.start_sut`, a subprocess or an external service)."""
    controls = controls or Controls()
    running: list[RunningCarrier] = []
    flow_of: npt.NDArray[np.int8] = population.flow

    def listener(index: int) -> Callable[[StoredMessage, float], None]:
        def delivered(message: StoredMessage, now: float) -> None:
            try:
                number = int(message.destination_addr)
            except ValueError:
                return
            row = population.row_of_msisdn(number)
            if row >= 0 and flows:
                flows[int(flow_of[row])].on_mt(row, message, now)

        return delivered

    def send_mo(carrier: int, source: str, destination: str, text: str, now: float) -> bool:
        return running[carrier].smsc.inject_mo(source, destination, text, now)

    ctx = FlowContext(scenario.seed, population, running, clock, send_mo)
    flows = build_flows(ctx, scenario, reg_timeout)
    arrival_idx, arrival_t = arrivals
    result = RunResult(scenario, flows, running, len(arrival_idx), 0, clock(), 0.0)
    sut_account = (scenario.system_under_test.system_id, scenario.system_under_test.password)
    taps: list[StreamTap] = []
    sut: SystemUnderTest | None = None
    doors: list[Door] = []
    with contextlib.ExitStack() as stack:
        tmp = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carrier-sim-")))
        try:
            running.extend(await start_carriers(scenario, sut_account, population.msisdn, population.carrier,
                                                population.condition, listener, clock))
            if capture:
                for c in running:
                    tap = StreamTap()
                    c.server.tap = tap
                    taps.append(tap)
            doors.extend(await start_doors(running, scenario, clock=clock))
            for door in doors:
                ctx.doors.setdefault(door.name, {})[door.carrier] = DoorAddress(door.host, door.port)
            sut = await (sut_starter or start_sut)(scenario, running, tmp, ctx.doors)
        except (SutError, OSError) as err:
            result.harness_errors.append(str(err))
            result.harness_errors.extend(await _shutdown(running, sut, doors))
            return result
        try:
            await _drive(scenario, ctx, flows, running, sut, arrival_idx, arrival_t, controls, result, on_tick,
                         concurrency)
        finally:
            result.harness_errors.extend(await _shutdown(running, sut, doors))
    result.duration = clock() - result.started_at
    for c in running:
        for session in c.smsc.verdicts():
            result.conformance.append({"carrier": c.carrier.name, **session})
    for tap in taps:
        result.pcap_streams.extend(tap.streams.values())
    return result


def flow_latencies(flows: list[PhoneFlow]) -> dict[str, npt.NDArray[np.float64]]:
    """Per-phone latency samples by histogram name, over every flow (the same name from two flows is merged)."""
    merged: dict[str, list[npt.NDArray[np.float64]]] = {}
    for flow in flows:
        for name, values in flow.latencies().items():
            merged.setdefault(name, []).append(values)
    return {name: np.concatenate(parts) for name, parts in merged.items()}


async def _shutdown(running: list[RunningCarrier], sut: SystemUnderTest | None, doors: list[Door]) -> list[str]:
    """Stop the system under test, then the doors, then the carriers: every one of them, even when another's stop
    raises; why a stop failed, a line each, for the run's harness errors. An exception out of here would leave the
    remaining parts running and end the run without its reports."""
    errors: list[str] = []

    async def stopped(what: str, stop: Awaitable[object]) -> None:
        try:
            await stop
        except Exception as err:  # whatever it is, the next part must still be stopped
            errors.append(f"{what} did not stop cleanly: {_reason(err)}")

    if sut is not None:
        await stopped("the system under test", sut.stop())
    for door in reversed(doors):
        await stopped(f"{door.carrier}'s {door.name} door", door.stop())
    for c in running:
        await stopped(f"{c.carrier.name}'s SMSC", c.server.shutdown())
    return errors


def _reason(err: BaseException) -> str:
    # A task group's crash says only "unhandled errors in a TaskGroup": name what it holds instead.
    if isinstance(err, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in err.exceptions)
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


async def _drive(
    scenario: Scenario,
    ctx: FlowContext,
    flows: list[PhoneFlow],
    running: list[RunningCarrier],
    sut: SystemUnderTest,
    arrival_idx: npt.NDArray[np.int64],
    arrival_t: npt.NDArray[np.float64],
    controls: Controls,
    result: RunResult,
    on_tick: Callable[[RunResult, float], None] | None,
    concurrency: Callable[[float], int] | None,
) -> None:
    clock = ctx.clock
    flow_of = ctx.population.flow
    end_of_load = sum(p.duration for p in scenario.load.phases)
    # Each with its position in the file: the per-phone draw that picks an event's phones is keyed by it.
    events = sorted(enumerate(scenario.events), key=lambda e: e[1].at)
    started = clock()
    lags: list[float] = []
    virtual = 0.0  # seconds of the plan consumed, slowed by pauses and scaled by the rate multiplier
    cursor = 0
    last = started
    last_expire = started
    telling: set[asyncio.Task[None]] = set()  # events whose calls to the SUT are still going
    # Closed model: phone-seconds in flight the phases asked for, those missing because no phone was left to send,
    # and the plan moment the loop first ran dry. A top-up is otherwise always on time, so this is how a closed
    # run notices it is not generating its load.
    asked = short = 0.0
    ran_dry_at: float | None = None
    # Under a virtual clock, ticks in which nothing can happen are skipped (see _idle_ticks); plan moments at which
    # the closed model's concurrency may change bound a skip as arrivals do.
    idle_loop = asyncio.get_running_loop()
    skipping = idle_loop if isinstance(idle_loop, VirtualEventLoop) else None
    phase_ends = [float(t) for t in np.cumsum([p.duration for p in scenario.load.phases])]
    skip = 0

    def plan_step(step: float, paused: bool, multiplier: float) -> int:
        """Move the plan on by one tick of ``step`` seconds; how many phones have joined by its end (the open
        model's arrivals due, the closed model's top-up)."""
        nonlocal virtual, asked, short, ran_dry_at
        if not paused:
            virtual += step * multiplier
        result.plan_time = virtual
        if concurrency is None:
            return cursor  # the caller that needs the arrivals due looks them up (arrivals_due)
        if paused:
            return cursor  # paused: no phone joins, in the closed model as in the open one
        # Closed model: top the phones mid-flow up to the phase's concurrency.
        target = concurrency(virtual)
        wanted = cursor + max(0, target - result.in_flight)
        upto = min(len(arrival_idx), wanted)
        if virtual < end_of_load:
            advanced = step * multiplier
            asked += target * advanced
            if wanted > upto:
                short += (wanted - upto) * advanced
                if ran_dry_at is None:
                    ran_dry_at = virtual
        return upto

    connector = aiohttp.TCPConnector(limit=HTTP_CONNECTIONS)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        ctx.http, ctx.sut_api, ctx.sut_token = http, sut.api, sut.token
        async with asyncio.TaskGroup() as tasks:
            workers = [tasks.create_task(flow.serve()) for flow in flows]
            try:
                while not controls.stop_requested:
                    if skipping is not None and skip:
                        # On the lattice an unskipped loop ticks on (each tick TICK after the one before, as
                        # asyncio.sleep sets it), so that a skipping run sees the same moments as one that is not.
                        lattice = _Lattice(last)
                        paused, multiplier = controls.paused, controls.rate_multiplier
                        await skipping.idle_sleep(lattice.advance(skip + 1), lattice.after)
                        result.ticks_skipped += lattice.steps - 1
                        for moment in lattice.skipped():
                            # What those ticks would have done: move the plan on, under the controls in force
                            # before whatever woke the loop (a key press changes only the ticks after it)...
                            plan_step(moment - last, paused, multiplier)
                            last = moment
                            # ... and run the once-a-second expiry sweep, which found nothing (a skip ends before
                            # the first timeout, see quiet_until) but sets the phase of the next one.
                            if moment - last_expire >= 1.0:
                                last_expire = moment
                    else:
                        await asyncio.sleep(TICK)
                    result.ticks += 1
                    now = clock()
                    step = now - last
                    last = now
                    upto = plan_step(step, controls.paused, controls.rate_multiplier)
                    if concurrency is None:
                        upto = int(np.searchsorted(arrival_t, virtual, side="right"))
                    if upto > cursor:
                        if concurrency is None:
                            # Each arrival's plan moment passed (virtual - t) plan seconds ago, i.e. that many
                            # wall seconds over the rate multiplier: a late tick shows here as late arrivals.
                            late = (virtual - arrival_t[cursor:upto]) / max(controls.rate_multiplier, 1e-9)
                            result.on_time_arrivals += int(np.count_nonzero(late <= LATE_ARRIVAL))
                        else:
                            result.on_time_arrivals += upto - cursor  # a top-up is due now, and goes out now
                        rows = arrival_idx[cursor:upto]
                        kinds = flow_of[rows]
                        for k, flow in enumerate(flows):
                            mine = rows[kinds == k]
                            if len(mine):
                                flow.arrive(mine, now)
                        cursor = upto
                    result.achieved_arrivals = cursor
                    result.planned_by_now = upto
                    # Virtual time stands still while the loop works, so every tick it runs is on time; a skip is
                    # the ticks it left out, each as long as any other.
                    lags.append(TICK if skip else step)
                    for flow in flows:
                        flow.tick(now)
                    # Phones hand MOs to the SMSCs in process (arrivals, and later steps in ticks); the SMSC only
                    # writes them to its sessions when serviced.
                    for c in running:
                        c.server.service()
                    if now - last_expire >= 1.0:
                        for flow in flows:
                            flow.expire(now)
                        last_expire = now
                    # Events keep the plan's time, as arrivals do: a pause or a faster rate moves them alike.
                    # One SIM swap or port-out at a time: an event picks its phones only once the SUT has been told
                    # of the one before, else it could swap the earlier event's control phones before the SUT is
                    # asked about them (a correct SUT then charged with false alarms). Outages need no wait.
                    while events and events[0][1].at <= virtual and not (
                            telling and events[0][1].kind != "smsc_outage"):
                        number, event = events.pop(0)
                        told = _apply_event(number, event, flows, running, sut, http, result, tasks, workers, clock)
                        if told is not None:
                            telling.add(told)
                            told.add_done_callback(telling.discard)
                    if on_tick is not None:
                        on_tick(result, now - started)
                    all_in = concurrency is not None or cursor >= len(arrival_idx)
                    # An event the SUT is still being told of is part of the load: the run waits for it as for the
                    # phones in flight (up to the drain grace), as it did when events were told inline.
                    if virtual >= end_of_load and all_in and result.in_flight == 0 and not telling:
                        break
                    if virtual >= end_of_load + DRAIN_GRACE:
                        break  # drain grace over: whatever is still in flight counts as failed
                    skip = 0
                    # An outage polls the plan's time every tick: it needs every tick (see _outage).
                    if skipping is not None and not controls.paused and not telling and not result.outages:
                        plan = [end_of_load, end_of_load + DRAIN_GRACE]
                        due: list[float] = []
                        if concurrency is None and cursor < len(arrival_t) and (
                                float(arrival_t[cursor]) - virtual < NEAR_DUE * controls.rate_multiplier):
                            due.append(now)  # an arrival a tick or two away: nothing to skip, no flow to ask
                        else:
                            for flow in flows:
                                due.append(flow.quiet_until(now))
                                if due[-1] - now < NEAR_DUE:
                                    break  # no whole tick to skip: the other flows need not be asked either
                        if events:
                            plan.append(events[0][1].at)
                        if concurrency is None:
                            if cursor < len(arrival_t):
                                plan.append(float(arrival_t[cursor]))
                        elif cursor < len(arrival_idx) and concurrency(virtual) > result.in_flight:
                            due.append(now)  # a top-up is owed now
                        else:
                            plan.extend(phase_ends)  # where the concurrency asked for may change
                        skip = _idle_ticks(now, virtual, controls.rate_multiplier, plan, due)
            finally:
                for w in workers:
                    w.cancel()
    for flow in flows:
        flow.finish()
    if concurrency is not None:
        result.planned_arrivals = cursor  # a closed loop plans exactly what it keeps in flight
        planned_by_now = cursor
    else:
        planned_by_now = int(np.searchsorted(arrival_t, min(virtual, end_of_load), side="right"))
    if lags:
        result.tick_lag_p99 = float(np.quantile(np.asarray(lags), 0.99))
    waits = flow_latencies(flows).get("auth_queue")
    result.harness_errors.extend(judge_harness(
        planned=planned_by_now, on_time=result.on_time_arrivals, tick_p99=result.tick_lag_p99 if lags else None,
        worker_wait_p99=float(np.quantile(waits, 0.99)) if waits is not None and len(waits) else None,
        closed_short=short / asked if asked > 0 else 0.0, ran_dry_at=ran_dry_at))


#: Ticks one idle sleep skips at most: placing its wake-up on the lattice costs a float addition per tick.
MAX_SKIP = 500


def _idle_ticks(now: float, virtual: float, multiplier: float, plan: list[float], clock: list[float]) -> int:
    """How many ticks the loop may skip under a virtual clock before its next work (0: none).

    ``plan``: moments of the load plan at which a tick has work (an arrival, an event, the load's end); those not
    ahead of ``virtual`` are ignored. ``clock``: moments on the run's clock (the flows' next due phone or timeout).
    The last tick before the work comes at most one tick early, as on the unskipped lattice, and the tick after
    it does the work."""
    wake = min(clock, default=math.inf)
    if multiplier > 0:
        for moment in plan:
            if moment > virtual:
                wake = min(wake, now + (moment - virtual) / multiplier)
    elif any(moment > virtual for moment in plan):
        return 0  # the plan stands still: nothing in it comes due, but a key press may start it again
    if math.isinf(wake):
        return 0  # nothing left to wait for: the loop's exits are a tick away
    return max(0, min(MAX_SKIP, math.floor((wake - now) / TICK) - 1))


class _Lattice:
    """The moments an unskipped tick loop wakes at from ``start``: each ``TICK`` after the one before, rounded as
    ``loop.time() + TICK`` rounds (no multiplication, which rounds differently)."""

    def __init__(self, start: float) -> None:
        self.start = start
        self.steps = 0

    def advance(self, ticks: int) -> float:
        """The moment ``ticks`` ticks after ``start``."""
        at = self.start
        for _ in range(ticks):
            at += TICK
        self.steps = ticks
        return at

    def skipped(self) -> list[float]:
        """The ticks between ``start`` and the one ``steps`` names, both excluded."""
        moments, at = [], self.start
        for _ in range(self.steps - 1):
            at += TICK
            moments.append(at)
        return moments

    def after(self, moment: float) -> float:
        """The first tick strictly after ``moment``; ``steps`` becomes its number."""
        at, steps = self.start, 0
        while at <= moment:
            at += TICK
            steps += 1
        self.steps = steps
        return at


def judge_harness(*, planned: int, on_time: int, tick_p99: float | None, worker_wait_p99: float | None,
                  closed_short: float = 0.0, ran_dry_at: float | None = None) -> list[str]:
    """Why the runner measured itself rather than the system under test, if it did (empty when it did not).

    ``planned``: arrivals due by the end; ``on_time``: those that went out within :data:`LATE_ARRIVAL` of their
    planned moment; ``tick_p99``: p99 of the loop's tick interval; ``worker_wait_p99``: p99 of the phones' wait for
    a free runner HTTP worker (``None``: nothing measured); ``closed_short``: in the closed model, the share of the
    asked-for phone-seconds in flight that went missing because no phone was left, ``ran_dry_at`` the plan moment
    that first happened."""
    errors: list[str] = []
    if planned and on_time < planned * ON_TIME_SHARE:
        errors.append(f"the runner could not generate the asked-for load: {on_time} of {planned} planned arrivals "
                      f"went out within {LATE_ARRIVAL} s of their planned moment")
    if closed_short > 1 - ON_TIME_SHARE:
        errors.append(f"the runner could not generate the asked-for load: the closed loop ran out of phones at "
                      f"{ran_dry_at or 0.0:.1f} s of the plan (each phone runs its flow once), so "
                      f"{closed_short:.0%} of the asked-for concurrency over time was never in flight; the population "
                      "needs about concurrency x duration / flow time phones")
    if tick_p99 is not None and tick_p99 > 1.0:
        # Arrivals due in a late tick go out together: counts stay right but the load is no longer the planned
        # shape. A loop that fell this far behind was measuring itself, not the system under test.
        errors.append(f"the runner's loop fell behind: 1 % of its {TICK * 1000:.0f} ms ticks took over "
                      f"{tick_p99:.2f} s, so arrivals went out in bursts")
    if worker_wait_p99 is not None and worker_wait_p99 > WORKER_WAIT:
        errors.append(f"the runner's HTTP workers were the bottleneck: 1 % of phones waited over "
                      f"{worker_wait_p99:.2f} s for a free worker before their authenticate went out, so activation "
                      f"latency includes the harness's own queue")
    return errors

def pick_for_event(flows: list[PhoneFlow], carrier: int | frozenset[int] | None, number: int, share: float,
                   ) -> tuple[list[tuple[ActivationFlow, int]], list[tuple[ActivationFlow, int]]]:
    """The phones event ``number`` (its position in the scenario's ``events``) hits, and a control group of as many
    expected untouched ones, as (flow, row) pairs among the phones holding a certificate right now (issued, and not
    since revoked by an earlier event), optionally of one carrier (an index) or of some carriers (a set of indices)
    only (see :func:`event_carriers`).

    Each activated phone draws one uniform ``u`` from its own counter-based stream (scenario seed, global index,
    event number): it is hit when ``u < share`` and in the control group when ``share <= u < 2 share``. A phone's
    fate so depends on nothing but itself, and a sharded run hits exactly the phones a single process would (a
    count taken per shard would round once per shard, and "the first N" would be each shard's first N)."""
    hit: list[tuple[ActivationFlow, int]] = []
    control: list[tuple[ActivationFlow, int]] = []
    for flow in flows:
        if not isinstance(flow, ActivationFlow):
            continue
        done = ((flow.state == Step.DONE) | (flow.state == Step.RENEW_WAIT)) & ~flow.revoked
        if isinstance(carrier, int):
            done &= flow.ctx.carrier_of == carrier
        elif carrier is not None:
            done &= np.isin(flow.ctx.carrier_of, sorted(carrier))
        rows = np.nonzero(done)[0]
        population = flow.ctx.population
        u = population.rng.uniform(population.index[rows], Stream.EVENT, number)
        hit.extend((flow, int(row)) for row in rows[u < share])
        control.extend((flow, int(row)) for row in rows[(u >= share) & (u < 2 * share)])
    return hit, control


def event_carriers(event: Event, carriers: Sequence[Carrier]) -> int | frozenset[int] | None:
    """The carriers whose phones ``event`` may hit, for :func:`pick_for_event`: the named carrier's index; else,
    for a SIM swap via the network API, the indices of the carriers with a CAMARA door; else None (every carrier).

    Via the network API only a carrier's CAMARA SIM Swap API can tell the SUT of the swap. A phone of a carrier
    without one would be asked about with nothing to find it out by: the SUT rightly answers "not configured",
    and the run would blame it for the scenario's own gap. The loader refuses the event when no carrier has one.
    """
    if event.carrier is not None:
        return next((i for i, c in enumerate(carriers) if c.name == event.carrier), None)
    if event.kind == "sim_swap" and event.via == "network_api":
        return frozenset(i for i, c in enumerate(carriers) if c.doors.camara is not None)
    return None


def _apply_event(number: int, event: Event, flows: list[PhoneFlow], running: list[RunningCarrier],
                 sut: SystemUnderTest, http: aiohttp.ClientSession, result: RunResult, tasks: asyncio.TaskGroup,
                 background: list[asyncio.Task[None]], clock: Callable[[], float]) -> asyncio.Task[None] | None:
    """Apply event ``number`` now; what takes longer runs in a task of ``tasks``, listed in ``background`` (which the
    run's end cancels). For a SIM swap or port-out that task tells the SUT, and is returned."""
    if event.kind == "smsc_outage":
        for c in running:
            if event.carrier in (None, c.carrier.name):
                # Among the tasks the run's end cancels: a stop must not wait out the rest of the outage.
                outage = tasks.create_task(_outage(c, event.duration, result))
                # Counted from now, not from the task's first step: the tick that started it must not skip.
                result.outages += 1
                outage.add_done_callback(lambda _: _outage_over(result))
                background.append(outage)
        return None
    carrier = event_carriers(event, [c.carrier for c in running])
    chosen, control = pick_for_event(flows, carrier, number, event.share)
    # At the carriers at once, and the phones marked revoked, so that a later event cannot pick them again even
    # while the SUT is still being told of this one.
    _at_carrier(event.kind, chosen, running, clock())
    telling = tasks.create_task(_tell_sut(event, chosen, control, sut, http, result),
                                name=f"event {number}: {event.kind}")
    background.append(telling)
    return telling


@dataclass
class _Told:
    """How far one event's calls to the SUT got, for its line in ``events_log``."""

    calls: int
    done: int = 0
    revoked: int = 0


async def _tell_sut(event: Event, chosen: list[tuple[ActivationFlow, int]], control: list[tuple[ActivationFlow, int]],
                    sut: SystemUnderTest, http: aiohttp.ClientSession, result: RunResult) -> None:
    """Tell the SUT of a SIM swap or port-out the carriers already made (or ask its risk check, for a swap via the
    network API), :data:`EVENT_CALLS` calls at a time; then, or when the run's end cancels it, the event's line."""
    asking = event.kind == "sim_swap" and event.via == "network_api"
    # Asking: the swapped phones, then as many untouched ones (see _ask_risk_check).
    calls = [(True, phone) for phone in chosen] + ([(False, phone) for phone in control] if asking else [])
    told = _Told(len(calls))

    async def call(index: int) -> None:
        swapped, (flow, row) = calls[index]
        if asking:
            await _ask_risk_check(flow, row, swapped, sut, http, result, told)
        else:
            await _tell_one(event.kind, flow, row, sut, http, result, told)
        told.done += 1

    try:
        await _in_batch(len(calls), call, EVENT_CALLS)
    finally:
        where = f" on {event.carrier}" if event.carrier else ""
        line = f"event {event.kind}{where}: {len(chosen)} phones hit, {told.revoked} bindings revoked"
        if told.done < told.calls:
            line += (f" ({told.calls - told.done} of its {told.calls} calls to the system under test unfinished "
                     f"when the run ended)")
        result.events_log.append(line)


async def _in_batch(count: int, call: Callable[[int], Awaitable[None]], at_once: int) -> None:
    """``call(0)`` to ``call(count - 1)``, at most ``at_once`` at a time; cancelled, it cancels the calls going."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(index)

    async def worker() -> None:
        while not queue.empty():
            # next_row, not get_nowait: a cancellation Python 3.11 lost on the way must still end the batch.
            await call(await next_row(queue))

    async with asyncio.TaskGroup() as group:
        for _ in range(min(at_once, count)):
            group.create_task(worker())


async def _tell_one(kind: str, flow: ActivationFlow, row: int, sut: SystemUnderTest, http: aiohttp.ClientSession,
                    result: RunResult, told: _Told) -> None:
    """Tell the SUT one phone's SIM swap or port-out; the phone counts in ``events_targets`` once the call is done,
    answered or not (a SUT that fails to answer failed to revoke)."""
    body = {"type": kind, "phone_number": f"+{int(flow.ctx.msisdns[row])}"}
    with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
        async with http.post(f"{sut.api}/v1/events", json=body,
                             headers={"Authorization": f"Bearer {sut.token}"}) as response:
            answer = await response.json() if response.status == 202 else None
            if isinstance(answer, dict) and answer.get("revoked"):
                result.events_revoked += 1
                told.revoked += 1
    result.events_targets += 1


def _at_carrier(kind: str, chosen: list[tuple[ActivationFlow, int]], running: list[RunningCarrier],
                now: float) -> None:
    """What a SIM swap or a port-out is at the carrier, whoever is told: the phone's SIM generation moves on (its
    IMSI changes) and the carrier's RCS and CAMARA doors learn it; a ported-out number leaves the CAMARA registry."""
    when = datetime.fromtimestamp(now, UTC)
    for flow, row in chosen:
        # Whoever tells the SUT, its binding is forfeit: a later event must not count this phone again (the SUT
        # would rightly answer "nothing to revoke"), nor put it in a control group expected to be trusted.
        flow.revoked[row] = True
        services = services_of(running[int(flow.ctx.carrier_of[row])])
        msisdn = f"+{int(flow.ctx.msisdns[row])}"
        population = flow.ctx.population
        if kind == "sim_swap":
            population.sim[row] += 1
        if services is None:
            continue
        with contextlib.suppress(UnknownNumber, KeyError):
            if services.camara is not None:
                (services.camara.sim_swap if kind == "sim_swap" else services.camara.port_out)(msisdn, when)
            if kind == "sim_swap" and services.provisioner is not None:
                services.provisioner.change_sim(msisdn, population.imsi_of(row))


async def _ask_risk_check(flow: ActivationFlow, row: int, swapped: bool, sut: SystemUnderTest,
                          http: aiohttp.ClientSession, result: RunResult, told: _Told) -> None:
    """A SIM swap the SUT was not told about: the runner, as a relying party about to trust a binding for a
    high-risk action, asks the SUT's risk check for a ``swapped`` phone (it must come back untrusted, its binding
    revoked; it counts in ``events_targets`` once asked) or an untouched one (it must come back trusted: a false
    alarm locks a real user out)."""
    counts = result.risk_checks
    url = f"{sut.api}/v1/phone-numbers/+{int(flow.ctx.msisdns[row])}/risk-check"
    try:
        async with http.post(url, json={"action": "scenario"},
                             headers={"Authorization": f"Bearer {sut.token}"}) as response:
            answer = await response.json(content_type=None) if response.status == 200 else None
    except (aiohttp.ClientError, TimeoutError, ValueError):
        answer = None
    if swapped:
        result.events_targets += 1
    if not isinstance(answer, dict) or "trusted" not in answer:
        counts["unavailable"] = counts.get("unavailable", 0) + 1
    elif not answer["trusted"]:
        counts["untrusted"] = counts.get("untrusted", 0) + 1
        if swapped:
            result.events_revoked += 1
            told.revoked += 1
        else:
            counts["false_alarms"] = counts.get("false_alarms", 0) + 1
    else:
        counts["trusted"] = counts.get("trusted", 0) + 1


def _outage_over(result: RunResult) -> None:
    result.outages -= 1


async def _outage(carrier: RunningCarrier, duration: float, result: RunResult) -> None:
    """Drop every connection and stop listening for ``duration`` seconds of the plan, then listen again on the same
    port.

    Plan seconds, as the event's ``at`` is: a pause stretches the outage and a faster rate shortens it, as they do
    the load around it (the tick advances ``result.plan_time``, which this polls on the tick's own lattice, so the
    tick must not skip while an outage runs: ``result.outages``). Cancelled by the run's end (the SMSC is shut down
    next, so it stays down); a port taken meanwhile is a harness error of the run, not an exception that would end
    it without reports."""
    name, log = carrier.carrier.name, result.events_log
    await carrier.server.stop_listening(abort_connections=True)
    log.append(f"event smsc_outage: {name}'s SMSC down for {duration:g} s")
    until = result.plan_time + duration
    try:
        while result.plan_time < until:
            await asyncio.sleep(TICK)
    except asyncio.CancelledError:
        log.append(f"event smsc_outage: {name}'s SMSC still down when the run ended")
        raise
    try:
        await carrier.server.listen(carrier.host, carrier.port)
    except OSError as err:
        result.harness_errors.append(f"{name}'s SMSC could not listen again on port {carrier.port} after its "
                                     f"outage: {err}")
        return
    log.append(f"event smsc_outage over: {name}'s SMSC listens again")
