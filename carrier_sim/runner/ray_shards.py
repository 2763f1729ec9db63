"""Shards as Ray actors: the same shards as :func:`~carrier_sim.runner.shards.run_shards`, on a Ray cluster.

Theory of operation
-------------------
A shard is self-contained (its carriers, its bundled system under test, its loop; see
:mod:`carrier_sim.runner.shards`), so spreading shards over machines needs no protocol of its own: each shard
becomes one Ray actor that runs :func:`~carrier_sim.runner.shards.run_shard` to its end and returns the same
:class:`~carrier_sim.runner.shards.ShardOutcome` a local process would. The parent merges outcomes and snapshots
exactly as it does for local processes, so reports, checks and the dashboard do not know which engine ran them.

An actor is a threaded Ray actor with two threads: one runs the shard (``run``, blocking for the whole run), the
other answers the parent's polls (``steer``): the parent hands over the dashboard's controls (stop, pause, rate)
and takes the shard's latest snapshot. Controls are plain attributes that the shard's loop reads once per tick,
which is all the synchronisation they need.

Each shard asks Ray for the CPUs it uses (:func:`cpus_per_shard`: two with a bundled identity core beside it,
else one), with the SPREAD strategy so that shards land on different machines where Ray can. A cluster without
room for every shard would leave actors pending for ever; :func:`start_timeout` turns that into a harness error
naming the cause. The bundled identity core is a child process of the shard's actor: a shard that ends stops
it, and one whose actor is killed outright leaves it to notice (``identity-core serve --parent-pid``).

Ray is optional (``pip install 'carrier-sim[cluster]'``); without it ``--ray`` is refused as an invalid command
line, never silently run on local processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.run import Controls
from carrier_sim.runner.shards import (
    STOP_GRACE,  # the same grace as local shards get, once a stop is requested or the run is left early
    ShardOutcome,
    Snapshot,
    merge_snapshots,
    remember,
    run_in_clock,
    run_shard,
)
from carrier_sim.scenario.model import Scenario

__all__ = ["LOCAL", "START_TIMEOUT", "ShardActor", "cpus_per_shard", "ray_missing", "run_ray_shards",
           "start_timeout"]

#: ``--ray local``: start a Ray instance on this machine for the run (and stop it after).
LOCAL = "local"
#: Seconds every shard actor has to start before the run is abandoned as a harness error, unless the
#: environment's CARRIER_SIM_RAY_START_TIMEOUT says otherwise (:func:`start_timeout`).
START_TIMEOUT = 120.0
#: Seconds between two polls of the shards (controls out, snapshots in).
POLL_INTERVAL = 0.25


def start_timeout() -> float:
    """CARRIER_SIM_RAY_START_TIMEOUT, else :data:`START_TIMEOUT`; ValueError for anything but a positive number
    (``carrier-sim run`` refuses it as an invalid command line before anything starts)."""
    raw = os.environ.get("CARRIER_SIM_RAY_START_TIMEOUT")
    if raw is None:
        return START_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise ValueError(f"CARRIER_SIM_RAY_START_TIMEOUT={raw!r}: expected a positive number of seconds")
    return value


def cpus_per_shard(scenario: Scenario) -> int:
    """CPUs a shard asks Ray for: two when it runs a bundled identity core beside itself as a process (the core
    needs as much CPU as the runner, docs/performance.md), else one (an in-process SUT in virtual time)."""
    bundled_process = scenario.system_under_test.kind == "bundled" and scenario.clock != "virtual"
    return 2 if bundled_process else 1


def ray_missing() -> str | None:
    """Why ``--ray`` cannot be used here, or None when Ray is importable."""
    try:
        import ray  # noqa: F401
    except ImportError as err:
        return f"--ray needs Ray, which is not installed ({err}); pip install 'carrier-sim[cluster]'"
    return None


class ShardActor:
    """One shard, run inside a Ray actor (wrapped by ``ray.remote`` in :func:`run_ray_shards`)."""

    def __init__(self) -> None:
        self._controls = Controls()
        self._latest: Snapshot | None = None
        self._lock = threading.Lock()

    def ready(self) -> None:
        """Answered once the actor runs: the parent waits on it to know that Ray found the shard a place."""

    def run(self, scenario: Scenario, shard: int, shards: int, capture: bool) -> ShardOutcome:
        """Run shard ``shard`` of ``shards`` to its end."""

        def on_snapshot(snapshot: Snapshot) -> None:
            with self._lock:
                # A snapshot with metrics the parent has not taken yet keeps them when a newer one replaces it.
                untaken = {} if self._latest is None else {shard: self._latest}
                remember(untaken, snapshot)
                self._latest = untaken[shard]

        return run_in_clock(scenario, lambda clock, starter: run_shard(
            scenario, shard, shards, controls=self._controls, on_snapshot=on_snapshot, capture=capture, clock=clock,
            sut_starter=starter))

    def steer(self, stop: bool, paused: bool, rate_multiplier: float) -> Snapshot | None:
        """Take the parent's controls; return the newest snapshot not yet taken."""
        self._controls.stop_requested = stop
        self._controls.paused = paused
        self._controls.rate_multiplier = rate_multiplier
        with self._lock:
            latest, self._latest = self._latest, None
        return latest


#: A terminal control sequence (colour, bold): Ray paints its tracebacks with them.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]")


def _reason(err: BaseException) -> str:
    """``Type: message`` of what made a shard fail, for the harness errors of the console, JSON and JUnit.

    A RayTaskError's text is the shard's whole remote traceback, coloured with terminal escapes; the exception
    the shard raised (its ``cause``) says the same in one line. Escapes are stripped whatever the error."""
    cause = getattr(err, "cause", None)
    shown = cause if isinstance(cause, BaseException) else err
    return _ANSI_ESCAPE.sub("", f"{type(shown).__name__}: {shown}")


def _failed(shard: int, reason: str) -> ShardOutcome:
    # A failure of the whole run (no cluster, no room) is reported once, as shard 0's, not once per shard.
    return ShardOutcome(shard, RunMetrics().to_bytes(), [], {}, [reason], time.time(), 0.0)


async def run_ray_shards(
    scenario: Scenario,
    shards: int,
    controls: Any,
    on_snapshot: Callable[[Snapshot], None],
    *,
    address: str = LOCAL,
    capture: bool = False,
) -> list[ShardOutcome]:
    """Run ``shards`` shards as Ray actors to their end, like :func:`~carrier_sim.runner.shards.run_shards`.

    ``address`` is :data:`LOCAL` (a Ray instance on this machine, started and stopped here) or a Ray address
    (``auto``, ``HOST:PORT``, ``ray://HOST:PORT``) of a running cluster whose nodes have carrier-sim installed. A
    Ray already initialised in this process (tests) is used as it is and left running."""
    # Untyped on purpose: Ray's stubs do not cover actor options (max_concurrency) that Ray itself accepts.
    ray: Any = importlib.import_module("ray")
    loop = asyncio.get_running_loop()
    local = address == LOCAL
    # In a thread, so that it takes real time even when this loop runs on the virtual clock.
    unreachable = None if local else await loop.run_in_executor(None, _unreachable, address)
    if unreachable:
        return [_failed(0, unreachable)]
    cpus = cpus_per_shard(scenario)
    started_here = not ray.is_initialized()
    if started_here:
        # Shards oversubscribe a small machine the way --workers N does with local processes; a cluster has the
        # CPUs it has.
        try:
            with _keeping_signal_handlers():
                ray.init(address=None if local else address,
                         num_cpus=max(shards * cpus, os.cpu_count() or 1) if local else None,
                         include_dashboard=False, log_to_driver=False, configure_logging=False)
        except Exception as err:  # no cluster at that address, or Ray could not start here: the harness failed
            return [_failed(0, f"Ray at {address!r} could not be reached or started: {type(err).__name__}: {err}")]
    # SPREAD: Ray's default packs actors onto the driver's node first; shards want machines of their own.
    remote = ray.remote(num_cpus=cpus, max_concurrency=2, scheduling_strategy="SPREAD")(ShardActor)
    actors = [remote.remote() for _ in range(shards)]
    outcomes: dict[int, ShardOutcome] = {}
    runs: dict[Any, int] = {}
    try:
        waiting = [actor.ready.remote() for actor in actors]
        timeout = start_timeout()
        deadline = time.monotonic() + timeout
        # In short waits, so that the dashboard's `q` is heard while Ray looks for room.
        while waiting and time.monotonic() < deadline and not controls.stop_requested:
            _, waiting = await loop.run_in_executor(None, functools.partial(
                ray.wait, waiting, num_returns=len(waiting), timeout=POLL_INTERVAL))
        if waiting:
            if controls.stop_requested:
                return [_failed(0, "stopped before Ray had started every shard")]
            reason = (f"Ray started {shards - len(waiting)} of {shards} shard actors within {timeout:.0f} s; "
                      f"each takes {cpus} CPU{'s' if cpus > 1 else ''} on one node and the cluster has "
                      f"{ray.cluster_resources().get('CPU', 0):.0f} in all")
            return [_failed(0, reason)]
        runs.update({actor.run.remote(scenario, k, shards, capture): k for k, actor in enumerate(actors)})
        latest: dict[int, Snapshot] = {}
        stop_deadline: float | None = None
        while runs:
            # A shard stuck in a call that never returns would hold the reports back for ever: once a stop is
            # requested the shards get STOP_GRACE to end their runs, then the rest are named and killed (below).
            if controls.stop_requested and stop_deadline is None:
                stop_deadline = time.monotonic() + STOP_GRACE
            if stop_deadline is not None and time.monotonic() >= stop_deadline:
                for k in runs.values():
                    outcomes[k] = _failed(k, f"shard {k} did not stop within {STOP_GRACE:g} s of the stop request")
                    ray.kill(actors[k])
                runs.clear()  # already given their grace: the cleanup below must not wait for them again
                break
            # Paced by Ray's wait in a thread, not by asyncio.sleep: under --set clock=virtual this loop is a
            # virtual-time loop, where a sleep would pass at once.
            done, _ = await loop.run_in_executor(
                None, functools.partial(ray.wait, list(runs), num_returns=len(runs), timeout=POLL_INTERVAL))
            for ref in done:
                k = runs.pop(ref)
                try:
                    outcomes[k] = await loop.run_in_executor(None, ray.get, ref)
                except Exception as err:  # the shard raised, or its actor died: a harness error of that shard
                    outcomes[k] = _failed(k, f"shard {k} failed: {_reason(err)}")
            steering = {k: actors[k].steer.remote(bool(controls.stop_requested), bool(controls.paused),
                                                  float(controls.rate_multiplier)) for k in runs.values()}
            if steering:
                snapshots = await loop.run_in_executor(None, _gather_snapshots, ray, steering)
                for snapshot in snapshots.values():
                    remember(latest, snapshot)
                if snapshots:
                    on_snapshot(merge_snapshots(latest))
    finally:
        if runs:
            # Left early (cancelled, or a bug above): ask the shards to stop and give them the time local shard
            # processes get, so that each stops its bundled identity core rather than orphan it when killed.
            for k in runs.values():
                actors[k].steer.remote(True, False, 1.0)
            await loop.run_in_executor(None, functools.partial(ray.wait, list(runs), num_returns=len(runs),
                                                               timeout=STOP_GRACE))
        for actor in actors:
            ray.kill(actor)
        if started_here:
            ray.shutdown()
    return [outcomes[k] for k in sorted(outcomes)]


@contextlib.contextmanager
def _keeping_signal_handlers() -> Iterator[None]:
    """Put SIGTERM's and SIGINT's handlers back as they were once the block ends (in the main thread only, the
    one thread Python lets set handlers).

    ``ray.init`` installs handlers of its own that call ``sys.exit(signum)``; they replaced the runner's
    (``carrier-sim run`` turns SIGTERM and SIGINT into a stop request, docs/report.md), so a SIGTERM under --ray
    ended the process with 15 and no reports instead of stopping the shards and reporting with exit 3."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            if handler is not None:  # None: installed outside Python, which getsignal cannot hand back
                signal.signal(sig, handler)


def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` or ``ray://HOST:PORT`` address, or None (and for ``auto``).

    Checked before ``ray.init`` because Ray retries an address where nothing listens for many minutes, printing
    warnings, before it gives up: a typo in ``--ray`` would look like a hung run. Blocking: call it in a thread."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None  # "auto" or a form Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as err:
        return f"no Ray cluster answers at {address!r}: {type(err).__name__}: {err}"
    return None


def _gather_snapshots(ray: Any, steering: dict[int, Any]) -> dict[int, Snapshot]:
    found: dict[int, Snapshot] = {}
    for k, ref in steering.items():
        try:
            snapshot = ray.get(ref, timeout=10)
        except Exception:  # a dying actor: its run's result says why, the dashboard just misses one refresh
            continue
        if snapshot is not None:
            found[k] = snapshot
    return found
