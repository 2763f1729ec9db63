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

Each shard asks Ray for one CPU, so Ray places at most one shard per CPU of the cluster. A cluster without room
for every shard would leave actors pending for ever; :data:`START_TIMEOUT` turns that into a harness error
naming the cause. Ray is optional (``pip install 'carrier-sim[cluster]'``); without it ``--ray`` is refused as an
invalid command line, never silently run on local processes.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.run import Controls
from carrier_sim.runner.shards import ShardOutcome, Snapshot, merge_snapshots, run_in_clock, run_shard
from carrier_sim.scenario.model import Scenario

__all__ = ["LOCAL", "START_TIMEOUT", "ShardActor", "ray_missing", "run_ray_shards"]

#: ``--ray local``: start a Ray instance on this machine for the run (and stop it after).
LOCAL = "local"
#: Seconds every shard actor has to start before the run is abandoned as a harness error.
START_TIMEOUT = float(os.environ.get("CARRIER_SIM_RAY_START_TIMEOUT", "120"))
#: Seconds between two polls of the shards (controls out, snapshots in).
POLL_INTERVAL = 0.25
#: Seconds shards get to stop when the run is left early, before their actors are killed.
STOP_GRACE = 30.0


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

    def ready(self) -> str:
        """Answered once the actor runs: the node it landed on (for the run's log)."""
        return os.uname().nodename

    def run(self, scenario: Scenario, shard: int, shards: int, capture: bool) -> ShardOutcome:
        """Run shard ``shard`` of ``shards`` to its end."""

        def on_snapshot(snapshot: Snapshot) -> None:
            with self._lock:
                self._latest = snapshot

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
    local = address == LOCAL
    unreachable = None if local else await _unreachable(address)
    if unreachable:
        return [_failed(0, unreachable)]
    started_here = not ray.is_initialized()
    if started_here:
        # Shards oversubscribe a small machine the way --workers N does with local processes; a cluster has the
        # CPUs it has.
        try:
            ray.init(address=None if local else address,
                     num_cpus=max(shards, os.cpu_count() or 1) if local else None,
                     include_dashboard=False, log_to_driver=False, configure_logging=False)
        except Exception as err:  # no cluster at that address, or Ray could not start here: the harness failed
            return [_failed(0, f"Ray at {address!r} could not be reached or started: {type(err).__name__}: {err}")]
    loop = asyncio.get_running_loop()
    remote = ray.remote(num_cpus=1, max_concurrency=2)(ShardActor)
    actors = [remote.remote() for _ in range(shards)]
    outcomes: dict[int, ShardOutcome] = {}
    runs: dict[Any, int] = {}
    try:
        ready = [actor.ready.remote() for actor in actors]
        placed, pending = await loop.run_in_executor(
            None, lambda: ray.wait(ready, num_returns=len(ready), timeout=START_TIMEOUT))
        if pending:
            reason = (f"Ray started {len(placed)} of {shards} shard actors within {START_TIMEOUT:.0f} s; each takes "
                      f"one CPU and the cluster has {ray.cluster_resources().get('CPU', 0):.0f}")
            return [_failed(0, reason)]
        runs.update({actor.run.remote(scenario, k, shards, capture): k for k, actor in enumerate(actors)})
        latest: dict[int, Snapshot] = {}
        while runs:
            # Paced by Ray's wait in a thread, not by asyncio.sleep: under --set clock=virtual this loop is a
            # virtual-time loop, where a sleep would pass at once.
            done, _ = await loop.run_in_executor(
                None, functools.partial(ray.wait, list(runs), num_returns=len(runs), timeout=POLL_INTERVAL))
            for ref in done:
                k = runs.pop(ref)
                try:
                    outcomes[k] = await loop.run_in_executor(None, ray.get, ref)
                except Exception as err:  # the shard raised, or its actor died: a harness error of that shard
                    outcomes[k] = _failed(k, f"shard {k} failed: {type(err).__name__}: {err}")
            steering = {k: actors[k].steer.remote(bool(controls.stop_requested), bool(controls.paused),
                                                  float(controls.rate_multiplier)) for k in runs.values()}
            if steering:
                snapshots = await loop.run_in_executor(None, _gather_snapshots, ray, steering)
                latest.update(snapshots)
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


async def _unreachable(address: str, timeout: float = 5.0) -> str | None:
    """Why nothing answers at a ``HOST:PORT`` or ``ray://HOST:PORT`` address, or None (and for ``auto``).

    Checked before ``ray.init`` because Ray retries an address where nothing listens for many minutes, printing
    warnings, before it gives up: a typo in ``--ray`` would look like a hung run."""
    target = address.removeprefix("ray://")
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit():
        return None  # "auto" or a form Ray resolves itself
    try:
        async with asyncio.timeout(timeout):
            _, writer = await asyncio.open_connection(host.strip("[]"), int(port))
    except (OSError, TimeoutError) as err:
        return f"no Ray cluster answers at {address!r}: {type(err).__name__}: {err}"
    writer.close()
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
