"""Shards: the population split into contiguous index ranges, each run by its own process, results merged.

Theory of operation
-------------------
A shard is a complete run of a slice of the phones: its own carriers (SMSCs and doors on free ports), its own
bundled system under test, its own loop. Everything a phone does depends only on (scenario seed, phone index):
its number and carrier (the numbering plan), its flow, its arrival time (:func:`open_arrivals` over the shard's
indices is the same set with the same times whatever the split), its think times and push token. So splitting
does not change what any phone does -- only how many phones share a process, and therefore the CPU.

A shard reports a :class:`ShardOutcome`: its metrics as a :class:`RunMetrics` (counters and DDSketch histograms,
which merge exactly), its SMPP sessions' conformance verdicts, per-carrier SMSC counters, harness errors and, for
``--pcap``, the bytes it saw. While running it sends :class:`Snapshot` s (funnel, carriers, a metrics registry
once a second) for the dashboard. The parent process (:func:`run_shards`) starts one ``spawn`` process per
shard, forwards the dashboard's controls through shared memory, merges snapshots for the display, and merges the
outcomes into one report. ``--workers 1`` runs the one shard in the parent's own loop (:func:`run_shard`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import multiprocessing.resource_tracker
import multiprocessing.sharedctypes
import os
import queue as queue_module
import signal
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.population.arrivals import Arrivals, ConcurrencyProfile, RateProfile, open_arrivals
from carrier_sim.population.columns import Population, shard_bounds
from carrier_sim.population.scheduler import WallClock
from carrier_sim.report.json_report import tag_sessions
from carrier_sim.runner.inprocess_sut import start_inprocess_sut
from carrier_sim.runner.run import Controls, RunResult, SutStarter, run_scenario
from carrier_sim.runner.summary import run_metrics
from carrier_sim.runner.virtual_loop import is_virtual, run_clock, run_virtual
from carrier_sim.scenario.model import Scenario

__all__ = [
    "CarrierSnapshot", "ShardOutcome", "Snapshot", "merge_snapshots", "remember", "run_in_clock", "run_shard",
    "run_shards", "runner_gone", "steady_wall_clock", "watch_parent",
]

T = TypeVar("T")

#: Seconds between two snapshots a shard sends its parent (the dashboard's refresh is about this).
SNAPSHOT_INTERVAL = 0.25
#: Seconds shards get to end their runs once a stop is requested (the dashboard's `q`, SIGINT, SIGTERM) before
#: the ones that have not reported are killed and named as harness errors: a shard stuck in a call that never
#: returns must not hold the reports back for ever.
STOP_GRACE = 30.0


@dataclass(slots=True)
class CarrierSnapshot:
    """One carrier of one shard, for the dashboard (counts, not rates: the parent computes rates)."""

    binds: int = 0
    submitted: int = 0
    window_used: int = 0
    window_size: int = 0
    throttles: int = 0
    receipts: int = 0


@dataclass(slots=True)
class Snapshot:
    """A shard's progress at one moment."""

    shard: int
    elapsed: float
    achieved: int
    planned_by_now: int
    funnel: dict[str, int] = field(default_factory=dict)
    carriers: dict[str, CarrierSnapshot] = field(default_factory=dict)
    #: ``RunMetrics.to_bytes()`` of the shard so far, about once a second (None in between).
    metrics: bytes | None = None
    errors: list[str] = field(default_factory=list)
    #: What the scenario's events did so far, a line each (RunResult.events_log).
    events: list[str] = field(default_factory=list)
    #: Seconds of the load plan consumed (pauses and the rate multiplier applied): what phase the run is in.
    plan_time: float = 0.0
    #: In a merged snapshot (:func:`merge_snapshots`), each shard's own ``errors`` and ``events``; empty in a
    #: shard's snapshot, whose lists are its own (:meth:`lines`).
    errors_by_shard: dict[int, list[str]] = field(default_factory=dict)
    events_by_shard: dict[int, list[str]] = field(default_factory=dict)

    def lines(self) -> tuple[dict[int, list[str]], dict[int, list[str]]]:
        """(errors, events) shard by shard. Each shard's lists only grow, so a reader keeps its place in each
        shard's: a place in the merged concatenation moves whenever an earlier shard adds a line, which showed an
        old line again and never the new one."""
        if self.errors_by_shard or self.events_by_shard:
            return self.errors_by_shard, self.events_by_shard
        return {self.shard: self.errors}, {self.shard: self.events}


@dataclass(slots=True)
class ShardOutcome:
    """What one shard reports at its end (picklable: it crosses a process boundary)."""

    shard: int
    metrics: bytes
    conformance: list[dict[str, Any]]
    carriers: dict[str, dict[str, Any]]
    harness_errors: list[str]
    started_at: float
    duration: float
    #: p99 of the runner's tick interval, seconds (nominal TICK; see run.py's harness check).
    tick_p99: float = 0.0
    pcap_streams: list[tuple[str, str, list[tuple[str, bytes, float]]]] = field(default_factory=list)


def funnel_of(result: RunResult) -> dict[str, int]:
    """The dashboard's funnel: phones arrived, every flow's stages (prefixed by the flow when the run has more
    than one), phones done and failed over all flows."""
    flows = result.flows
    funnel: dict[str, int] = {"arrived": sum(f.counters.started for f in flows)}
    several = len(flows) > 1
    for flow in flows:
        for stage, n in flow.counters.stages.items():
            if stage != "done":
                funnel[f"{flow.name}: {stage}" if several else stage] = n
    funnel["done"] = sum(f.counters.completed for f in flows)
    funnel["failed"] = sum(f.counters.failed for f in flows)
    return funnel


def _snapshot(shard: int, result: RunResult, elapsed: float, with_metrics: bool) -> Snapshot:
    carriers = {}
    for rc in result.carriers:
        smsc = rc.smsc
        carriers[rc.carrier.name] = CarrierSnapshot(
            binds=sum(1 for conn in smsc.connections.values() if conn.account is not None),
            submitted=smsc.stats.submitted,
            window_used=sum(conn.session.outstanding for conn in smsc.connections.values()),
            window_size=smsc.config.window * max(1, len(smsc.connections)),
            throttles=smsc.stats.throttled,
            receipts=smsc.stats.receipts_sent,
        )
    metrics = run_metrics(result, live=True).to_bytes() if with_metrics else None
    return Snapshot(shard, elapsed, result.achieved_arrivals, result.planned_by_now, funnel_of(result), carriers,
                    metrics, list(result.harness_errors), list(result.events_log), result.plan_time)


def remember(latest: dict[int, Snapshot], snapshot: Snapshot) -> None:
    """Keep ``snapshot`` as its shard's newest, with the metrics of that shard's last snapshot that had any.

    Shards attach metrics to one snapshot a second; merging only the newest snapshots would show the metrics of
    whichever shards happened to send them last, and the dashboard's counters and checks would flicker."""
    previous = latest.get(snapshot.shard)
    if snapshot.metrics is None and previous is not None and previous.metrics is not None:
        snapshot = dataclasses.replace(snapshot, metrics=previous.metrics)
    latest[snapshot.shard] = snapshot


def merge_snapshots(latest: dict[int, Snapshot]) -> Snapshot:
    """One snapshot of the whole run from the latest snapshot of each shard (metrics merged exactly)."""
    total = Snapshot(-1, 0.0, 0, 0)
    registries = []
    for snap in latest.values():
        total.elapsed = max(total.elapsed, snap.elapsed)
        total.plan_time = max(total.plan_time, snap.plan_time)
        total.achieved += snap.achieved
        total.planned_by_now += snap.planned_by_now
        for step, n in snap.funnel.items():
            total.funnel[step] = total.funnel.get(step, 0) + n
        for name, c in snap.carriers.items():
            mine = total.carriers.setdefault(name, CarrierSnapshot())
            for f in dataclasses.fields(CarrierSnapshot):
                setattr(mine, f.name, getattr(mine, f.name) + getattr(c, f.name))
        if snap.metrics is not None:
            registries.append(RunMetrics.from_bytes(snap.metrics))
        total.errors.extend(snap.errors)
        total.events.extend(snap.events)
        total.errors_by_shard[snap.shard] = snap.errors
        total.events_by_shard[snap.shard] = snap.events
    if registries:
        total.metrics = RunMetrics.merged(registries).to_bytes()
    return total


def _arrivals(scenario: Scenario, population: Population) -> tuple[Arrivals, Callable[[float], int] | None]:
    start, stop = population.start, population.stop
    if scenario.load.model == "closed":
        profile = ConcurrencyProfile.from_scenario(scenario)
        order = ConcurrencyProfile.entry_order(population.rng, start, stop)

        def concurrency(t: float) -> int:
            return profile.in_flight(t, start, stop)

        return Arrivals(order, np.zeros(len(order))), concurrency
    phones = population.plan.size
    return open_arrivals(RateProfile.from_load(scenario.load), population.rng, phones, start, stop), None


async def run_shard(
    scenario: Scenario,
    shard: int,
    shards: int,
    *,
    controls: Controls | None = None,
    on_snapshot: Callable[[Snapshot], None] | None = None,
    capture: bool = False,
    clock: Callable[[], float] = time.time,
    sut_starter: SutStarter | None = None,
) -> ShardOutcome:
    """Run shard ``shard`` of ``shards`` in the current loop; ``on_snapshot`` gets progress every
    :data:`SNAPSHOT_INTERVAL` seconds of the run's time (at its ticks), with metrics once a second: of the run's
    time, or of real time when the loop keeps virtual time, where the plan's seconds fly by and metrics per plan
    second (~0.4 ms each) cost more than a quiet run's ticks."""
    population = Population(scenario, *shard_bounds_of(scenario, shard, shards))
    arrivals, concurrency = _arrivals(scenario, population)
    rows = arrivals.indices - population.start
    last = [-SNAPSHOT_INTERVAL, -1.0]
    real_time = is_virtual()

    def on_tick(result: RunResult, elapsed: float) -> None:
        if on_snapshot is None or elapsed - last[0] < SNAPSHOT_INTERVAL:
            return
        last[0] = elapsed
        second = int(time.monotonic() if real_time else elapsed)
        with_metrics = second != last[1]
        if with_metrics:
            last[1] = second
        on_snapshot(_snapshot(shard, result, elapsed, with_metrics))

    result = await run_scenario(scenario, population, (rows, arrivals.times), controls=controls, on_tick=on_tick,
                                capture=capture, concurrency=concurrency, clock=clock, sut_starter=sut_starter)
    if on_snapshot is not None:
        on_snapshot(_snapshot(shard, result, result.duration, True))
    return ShardOutcome(
        shard=shard,
        metrics=run_metrics(result).to_bytes(),
        conformance=[s for c in result.carriers for s in tag_sessions(c.carrier.name, c.smsc.verdicts())],
        carriers={c.carrier.name: {"smsc": c.smsc.stats.to_json(), "port": c.port} for c in result.carriers},
        harness_errors=list(result.harness_errors),
        started_at=result.started_at,
        duration=result.duration,
        tick_p99=result.tick_lag_p99,
        pcap_streams=result.pcap_streams,
    )


def shard_bounds_of(scenario: Scenario, shard: int, shards: int) -> tuple[int, int]:
    """The global index range ``[start, stop)`` of shard ``shard`` of ``shards``."""
    phones = Population(scenario, 0, 0).plan.size
    return shard_bounds(phones, shards)[shard]


# -- processes ---------------------------------------------------------------------------------------------------

_STOP, _PAUSED, _RATE = 0, 1, 2


#: Seconds between two looks of a shard process for its runner (:func:`watch_parent`).
PARENT_POLL = 0.5
#: Seconds an orphaned shard has to stop its run and its identity core on its own before it exits outright.
ORPHAN_GRACE = 10.0
#: The exit status of a shard process that exited outright because its runner was gone.
EXIT_ORPHANED = 3


def runner_gone(runner: int) -> bool:
    """Whether the runner that started this shard process has ended.

    In a process multiprocessing spawned, by the spawning process's sentinel (a pipe the runner holds open until it
    ends): that follows the runner itself whatever sits between them -- a launcher that forks instead of exec'ing
    (a site wrapper script, PyInstaller's bootloader, ``multiprocessing.set_executable``) makes the launcher the
    parent, and a parent-pid test then called a healthy shard orphaned. Elsewhere (a plain fork), by whether this
    process's parent is still ``runner``."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        return not parent.is_alive()
    return os.getppid() != runner


def watch_parent(runner: int, on_orphaned: Callable[[], None], *, poll: float = PARENT_POLL,
                 grace: float = ORPHAN_GRACE) -> threading.Thread:
    """Start a daemon thread that looks every ``poll`` seconds whether the runner is gone (:func:`runner_gone`).
    Once it is (the runner was killed), it calls ``on_orphaned`` (ask for a graceful stop), waits ``grace``
    seconds, and ends the process with :data:`EXIT_ORPHANED` if it is still there.

    A thread of its own, from the first moment of the shard, because the run's own check (in its snapshots) is
    never reached by a shard stuck elsewhere: starting up, or at exit joining a queue's feeder thread blocked on a
    pipe nobody reads. Such orphans were seen in a futex wait minutes later, ignoring SIGTERM (which a shard only
    notes, to stop its run). ``os._exit``, not ``sys.exit``: the point is not to wait for what is stuck."""
    def watch() -> None:
        while not runner_gone(runner):
            time.sleep(poll)
        on_orphaned()
        time.sleep(grace)
        os._exit(EXIT_ORPHANED)

    thread = threading.Thread(target=watch, name="carrier-sim-parent-watch", daemon=True)
    thread.start()
    return thread


def _child(scenario: Scenario, shard: int, shards: int, capture: bool, shared: Any, out: Any, runner: int) -> None:
    """A shard process: run the shard, stream snapshots and the outcome to the parent through ``out``."""
    controls = Controls()

    def orphaned() -> None:
        controls.stop_requested = True
        # Nobody reads the queue any more: its feeder thread must not hold this process's exit for ever.
        out.cancel_join_thread()

    watch_parent(runner, orphaned)
    # Ctrl-C reaches the whole foreground process group; the parent turns it into a stop request that every shard
    # hears through ``shared``, so that each ends its run and reports instead of dying mid-way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM too reaches every shard when it goes to the whole group (GNU timeout, a CI job's cancel, killpg): its
    # default action killed each shard before it reported, and the run's reports held nothing. Like a stop request,
    # it now ends the shard's run with its results.
    terminated: list[int] = []
    signal.signal(signal.SIGTERM, lambda signum, _frame: terminated.append(signum))
    # SIGHUP (the terminal closed: a dropped ssh, tmux kill-session) reaches the whole group too, and the runner
    # treats it as SIGTERM: so does the shard -- unless it was started ignoring it (nohup), as the runner leaves it.
    if signal.getsignal(signal.SIGHUP) is not signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda signum, _frame: terminated.append(signum))

    def on_snapshot(snapshot: Snapshot) -> None:
        # A runner killed outright cannot tell its shards to stop; a new parent (this process was re-parented)
        # says it is gone, and stopping is what lets the shard stop its bundled identity core.
        controls.stop_requested = bool(shared[_STOP]) or bool(terminated) or runner_gone(runner)
        controls.paused = bool(shared[_PAUSED])
        controls.rate_multiplier = float(shared[_RATE])
        out.put(("snapshot", snapshot))

    try:
        outcome = run_in_clock(scenario, lambda clock, starter: run_shard(
            scenario, shard, shards, controls=controls, on_snapshot=on_snapshot, capture=capture, clock=clock,
            sut_starter=starter))
    except BaseException as err:  # the parent must hear of any death, not wait for a result forever
        out.put(("failed", shard, f"shard {shard} failed: {type(err).__name__}: {err}"))
        raise
    if runner_gone(runner):
        # Nobody reads the queue any more, and sibling shards hold its read end open: a put could block this
        # process's exit for ever once the pipe is full.
        out.cancel_join_thread()
        return
    out.put(("outcome", outcome))


def steady_wall_clock() -> Callable[[], float]:
    """Epoch seconds that never go backwards: ``time.time()`` read once, then advanced by ``time.monotonic()``.

    The runner stamps phones with this clock and a flow's latency is the difference of two stamps. Read straight
    from ``time.time``, a system clock stepped back mid-run (an NTP step, a VM resumed) made that difference
    negative, the metrics registry refused it inside the runner's own tick, and the run died with no reports.
    Anchoring at the epoch keeps stamps comparable with the SUT's and other shards' (to within the step)."""
    epoch = time.time()
    elapsed = WallClock(time.monotonic)
    return lambda: epoch + elapsed.now()


def run_in_clock(scenario: Scenario, main: Callable[[Callable[[], float], SutStarter | None],
                                                Coroutine[Any, Any, T]]) -> T:
    """Run ``main(clock, sut_starter)`` to its end on the scenario's clock: ``asyncio.run`` and the wall clock
    (the bundled SUT a subprocess), or a virtual-time loop whose clock jumps to the next deadline whenever every
    party is idle (the bundled SUT then runs in the same loop, :func:`start_inprocess_sut`, since a subprocess
    would not follow virtual time)."""
    if scenario.clock != "virtual":
        return asyncio.run(main(steady_wall_clock(), None))

    async def virtual() -> T:
        return await main(run_clock(), start_inprocess_sut)

    # A whole second: aiohttp rounds its timers of 5 s and more up to whole seconds of loop.time(), so with the
    # wall clock's fraction as the start they fell at other offsets into the run each time (and shifted its ticks).
    return run_virtual(virtual(), start=float(int(time.time())))


def _start_resource_tracker_deaf_to_hangups() -> None:
    """Start multiprocessing's resource tracker (the queue's semaphores register with it) ignoring SIGHUP.

    The tracker ignores SIGINT and SIGTERM, not SIGHUP: a closed terminal's hangup, which reaches the whole process
    group, killed it, and its relaunch printed a traceback per semaphore while the run stopped. An ignored signal
    stays ignored across the exec that starts it; a tracker already running is left as it is."""
    try:
        previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except ValueError:  # not the main thread: signals cannot be changed here
        return
    try:
        multiprocessing.resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


async def run_shards(
    scenario: Scenario,
    shards: int,
    controls: Any,
    on_snapshot: Callable[[Snapshot], None],
    *,
    capture: bool = False,
) -> list[ShardOutcome]:
    """Run ``shards`` shard processes to their end; ``controls`` (stop_requested, paused, rate_multiplier) is
    read continuously and forwarded; ``on_snapshot`` gets the merged progress of all shards."""
    context = multiprocessing.get_context("spawn")
    _start_resource_tracker_deaf_to_hangups()
    shared = context.Array("d", [0.0, 0.0, 1.0], lock=False)
    out = context.Queue()
    processes = [context.Process(target=_child, args=(scenario, k, shards, capture, shared, out, os.getpid()),
                                 name=f"carrier-sim-shard-{k}", daemon=True) for k in range(shards)]
    for process in processes:
        process.start()
    latest: dict[int, Snapshot] = {}
    outcomes: dict[int, ShardOutcome] = {}
    failures: dict[int, str] = {}
    loop = asyncio.get_running_loop()
    stop_deadline: float | None = None
    try:
        while len(outcomes) + len(failures) < shards:
            if controls.stop_requested and stop_deadline is None:
                stop_deadline = time.monotonic() + STOP_GRACE
            if stop_deadline is not None and time.monotonic() >= stop_deadline:
                for k, process in enumerate(processes):
                    if k not in outcomes and k not in failures:
                        failures[k] = f"shard {k} did not stop within {STOP_GRACE:g} s of the stop request"
                        process.kill()
                break
            shared[_STOP] = float(controls.stop_requested)
            shared[_PAUSED] = float(controls.paused)
            shared[_RATE] = float(controls.rate_multiplier)
            try:
                message = await loop.run_in_executor(None, out.get, True, 0.2)
            except queue_module.Empty:
                for k, process in enumerate(processes):
                    if k not in outcomes and k not in failures and not process.is_alive() and out.empty():
                        failures[k] = f"shard {k} exited with {process.exitcode} without a result"
                continue
            if message[0] == "snapshot":
                remember(latest, message[1])
                on_snapshot(merge_snapshots(latest))
            elif message[0] == "outcome":
                outcomes[message[1].shard] = message[1]
            else:
                failures[message[1]] = message[2]
    finally:
        for process in processes:
            process.join(timeout=STOP_GRACE)
            if process.is_alive():
                process.kill()
                process.join()
        with contextlib.suppress(Exception):
            out.close()
    result = [outcomes[k] for k in sorted(outcomes)]
    for k, reason in sorted(failures.items()):
        result.append(ShardOutcome(k, RunMetrics().to_bytes(), [], {}, [reason], time.time(), 0.0))
    return result
