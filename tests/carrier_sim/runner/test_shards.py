"""Shard bookkeeping that needs no processes: index ranges and merged progress."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.run import SutStarter
from carrier_sim.runner.shards import (
    CarrierSnapshot,
    Snapshot,
    merge_snapshots,
    remember,
    run_in_clock,
    shard_bounds_of,
)
from carrier_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]


def test_shards_cover_the_population_once() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["population.phones=1001"])
    bounds = [shard_bounds_of(scenario, k, 3) for k in range(3)]
    assert bounds[0][0] == 0
    assert bounds[-1][1] == 1001
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))


def _snapshot(shard: int, arrived: int, done: int, latency: float) -> Snapshot:
    metrics = RunMetrics()
    metrics.count("activation.completed", done)
    metrics.record_latency("activation", [latency] * done)
    return Snapshot(shard, elapsed=2.0 + shard, achieved=arrived, planned_by_now=arrived,
                    funnel={"arrived": arrived, "done": done, "failed": 0},
                    carriers={"a": CarrierSnapshot(binds=1, submitted=done, window_size=10)},
                    metrics=metrics.to_bytes(), errors=[f"shard {shard} error"])


def test_merged_progress_adds_shards_and_merges_histograms_exactly() -> None:
    total = merge_snapshots({0: _snapshot(0, 10, 4, 0.5), 1: _snapshot(1, 20, 6, 1.5)})
    assert total.elapsed == 3.0
    assert total.achieved == 30
    assert total.funnel == {"arrived": 30, "done": 10, "failed": 0}
    assert total.carriers["a"] == CarrierSnapshot(binds=2, submitted=10, window_size=20)
    assert total.errors == ["shard 0 error", "shard 1 error"]
    # Each shard's own lines too, so that a reader keeps its place per shard (the concatenation shifts).
    assert total.lines() == ({0: ["shard 0 error"], 1: ["shard 1 error"]}, {0: [], 1: []})
    assert Snapshot(3, 1.0, 0, 0, errors=["e"], events=["v"]).lines() == ({3: ["e"]}, {3: ["v"]})
    assert total.metrics is not None
    merged = RunMetrics.from_bytes(total.metrics)
    assert merged.counter("activation.completed") == 10
    histogram = merged.histogram("activation")
    assert histogram is not None
    assert histogram.count == 10
    assert merged.quantile("activation", 0.3) == RunMetrics.merged(
        [RunMetrics.from_bytes(_snapshot(k, 1, n, v).metrics or b"") for k, n, v in ((0, 4, 0.5), (1, 6, 1.5))]
    ).quantile("activation", 0.3)


def test_a_shard_without_metrics_yet_does_not_hide_the_others() -> None:
    quiet = Snapshot(1, 0.5, 0, 0)
    total = merge_snapshots({0: _snapshot(0, 5, 5, 0.2), 1: quiet})
    assert total.metrics is not None
    assert RunMetrics.from_bytes(total.metrics).counter("activation.completed") == 5


def test_a_snapshot_without_metrics_keeps_its_shards_last_metrics() -> None:
    # Shards attach metrics once a second: the merge must not drop a shard's counters between two of those.
    latest: dict[int, Snapshot] = {}
    remember(latest, _snapshot(0, 10, 4, 0.5))
    remember(latest, _snapshot(1, 20, 6, 1.5))
    remember(latest, Snapshot(1, elapsed=3.5, achieved=25, planned_by_now=25))
    assert latest[1].achieved == 25
    total = merge_snapshots(latest)
    assert total.achieved == 35
    assert total.metrics is not None
    assert RunMetrics.from_bytes(total.metrics).counter("activation.completed") == 10
    # Newer metrics do replace older ones.
    remember(latest, _snapshot(0, 30, 9, 0.5))
    assert RunMetrics.from_bytes(merge_snapshots(latest).metrics or b"").counter("activation.completed") == 15


def test_the_wall_clock_run_never_goes_backwards_when_the_system_clock_steps_back(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Stamps read from time.time() went back with the system clock: a negative latency, which the metrics
    # registry refuses inside the runner's tick (exit 3, no reports).
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["clock=wall"])
    system = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: system[0])

    async def main(clock: Callable[[], float], starter: SutStarter | None) -> list[float]:
        stamps = [clock()]
        for _ in range(3):
            system[0] -= 5.0  # an NTP step back between two stamps
            await asyncio.sleep(0.01)
            stamps.append(clock())
        return stamps

    stamps = run_in_clock(scenario, main)
    assert all(b >= a for a, b in itertools.pairwise(stamps)), stamps
    assert abs(stamps[0] - 1_800_000_000.0) < 1.0  # still epoch seconds, as the SMSCs and the SUT expect


# ``python -c ORPHAN PIDFILE``: forks a grandchild that ignores SIGTERM, starts watch_parent and then waits for ever
# on a lock (a futex wait, as the orphaned shards the reviewer found), after writing its pid to PIDFILE. The
# process itself then waits to be killed: its grandchild becomes an orphan.
ORPHAN = """
import os, signal, sys, threading, time
if os.fork():
    time.sleep(120)
    os._exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
from carrier_sim.runner.shards import watch_parent
orphaned = threading.Event()
watch_parent(os.getppid(), orphaned.set, poll=0.05, grace=0.5)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(os.getpid()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
threading.Event().wait()
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie waiting for a reaper does not)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def test_a_shard_whose_runner_is_killed_exits_even_when_stuck(tmp_path: Path) -> None:
    # An orphaned shard stuck in a futex wait (start-up, or a queue's feeder thread at exit) survived for minutes,
    # ignoring SIGTERM: the run's own check of its parent, in its snapshots, is never reached there.
    pidfile = tmp_path / "grandchild.pid"
    runner = subprocess.Popen([sys.executable, "-c", ORPHAN, str(pidfile)], cwd=ROOT)
    pid = 0
    try:
        deadline = time.monotonic() + 30
        while not pidfile.exists():
            assert time.monotonic() < deadline, "the stuck shard never started"
            assert runner.poll() is None
            time.sleep(0.05)
        pid = int(pidfile.read_text())
        runner.kill()  # the runner SIGKILLed: nothing can tell its shard to stop
        runner.wait()
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(pid), "the orphaned shard is still running"
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)


# A runner whose shard interpreter is started through a launcher that forks instead of exec'ing (a site wrapper
# script, PyInstaller's bootloader, multiprocessing.set_executable): the shard's parent is the launcher, not the
# runner. Prints what the shard saw, then the shard's exit code.
LAUNCHED = """
import multiprocessing, os, sys, time
from carrier_sim.runner.shards import runner_gone, watch_parent

def shard(runner, q):
    watch_parent(runner, lambda: q.put("orphaned"), poll=0.05, grace=0.5)
    time.sleep(1.5)
    q.put(f"gone={runner_gone(runner)} parent_is_runner={os.getppid() == runner}")

if __name__ == "__main__":
    ctx = multiprocessing.get_context("spawn")
    ctx.set_executable(sys.argv[1])
    q = ctx.Queue()
    p = ctx.Process(target=shard, args=(os.getpid(), q))
    p.start()
    p.join(30)
    while not q.empty():
        print(q.get())
    print("exit", p.exitcode)
"""


def test_a_shard_started_through_a_launcher_is_not_taken_for_an_orphan(tmp_path: Path) -> None:
    # Its parent is the launcher, so a parent-pid test called it orphaned within one poll and ended it 10 s
    # later (exit 3) while the runner was alive; the runner's own sentinel says the truth.
    launcher = tmp_path / "python-launcher.sh"
    launcher.write_text(f'#!/bin/sh\n"{sys.executable}" "$@"\n')  # no exec: the shell stays the parent
    launcher.chmod(0o755)
    script = tmp_path / "launched.py"
    script.write_text(LAUNCHED)
    done = subprocess.run([sys.executable, str(script), str(launcher)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.splitlines() == ["gone=False parent_is_runner=False", "exit 0"], done.stdout + done.stderr
