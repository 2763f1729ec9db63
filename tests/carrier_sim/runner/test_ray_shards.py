"""Shards as Ray actors on a local Ray instance: what the parent gets back when shards fail or cannot be placed,
and how ``--ray`` is refused when Ray is missing. The end-to-end equality with local processes is in
test_run_command.py."""

from __future__ import annotations

import dataclasses
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner import ray_shards
from carrier_sim.runner.command import run_command
from carrier_sim.runner.run import Controls
from carrier_sim.runner.shards import Snapshot
from carrier_sim.scenario.loader import load_scenario
from tests.interop.conftest import require_module

# Ray is installed with the test extras (pip install 'carrier-sim[test]'): a skip on a developer machine without it,
# a failure under REQUIRE_INTEROP=1 (CI), so these tests cannot pass by not running.
ray: Any = require_module("ray")

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    # Four CPUs whatever the machine (the placement test below relies on the count): two wall-clock shards with
    # their identity cores fit, five virtual ones do not.
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


async def test_a_cluster_without_room_for_every_shard_is_a_harness_error(
        local_ray: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARRIER_SIM_RAY_START_TIMEOUT", "5")
    # Virtual time: the identity core runs inside each shard, so a shard takes one CPU (two with the wall clock).
    scenario = load_scenario(QUICKSTART, ["population.phones=30", "clock=virtual"])
    assert ray_shards.cpus_per_shard(scenario) == 1
    assert ray_shards.cpus_per_shard(load_scenario(QUICKSTART, [])) == 2
    snapshots: list[Snapshot] = []
    outcomes = await ray_shards.run_ray_shards(scenario, 5, Controls(), snapshots.append)
    # One harness error for the run, not one per shard.
    (outcome,) = outcomes
    (error,) = outcome.harness_errors
    assert "4 of 5 shard actors within 5 s" in error
    assert "each takes 1 CPU on one node and the cluster has 4 in all" in error
    assert not snapshots  # nothing ran
    assert ray.is_initialized(), "a Ray the caller started is left running"


async def test_a_shard_that_cannot_start_its_carriers_reports_it(local_ray: None) -> None:
    # A port already taken: the shard's SMSC cannot listen, and the parent must hear why instead of waiting.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        scenario = load_scenario(QUICKSTART, ["population.phones=30", "load.phases.ramp.duration=1",
                                              "load.phases.steady.duration=1"])
        first = dataclasses.replace(scenario.carriers[0],
                                    smsc=dataclasses.replace(scenario.carriers[0].smsc, port=port))
        broken = dataclasses.replace(scenario, carriers=(first, *scenario.carriers[1:]))
        outcomes = await ray_shards.run_ray_shards(broken, 1, Controls(), lambda s: None)
    assert len(outcomes) == 1
    (error,) = outcomes[0].harness_errors
    assert f"'127.0.0.1', {port}" in error
    assert "address already in use" in error


async def test_the_dashboard_controls_reach_the_shards(local_ray: None) -> None:
    # `q` on the dashboard sets stop_requested; the actors must hear it and end their runs early with results.
    # Wall clock: the 30 s of load cannot be over before the first poll, whatever the machine's speed.
    scenario = load_scenario(QUICKSTART, ["population.phones=2000"])
    controls = Controls()
    seen: list[Snapshot] = []

    def on_snapshot(snapshot: Snapshot) -> None:
        seen.append(snapshot)
        if snapshot.achieved > 0:  # once phones are arriving, so that "stopped early" has something to show
            controls.stop_requested = True

    outcomes = await ray_shards.run_ray_shards(scenario, 2, controls, on_snapshot)
    assert [o.shard for o in outcomes] == [0, 1]
    assert seen
    metrics = RunMetrics.merged(RunMetrics.from_bytes(o.metrics) for o in outcomes)
    # Stopped early: the phones that arrived are fewer than planned (2,000 over 30 s).
    assert 0 < metrics.counter("load.arrived") < 2000
    assert all(not o.harness_errors for o in outcomes)


def test_an_address_where_no_cluster_answers_fails_at_once(capsys: pytest.CaptureFixture[str]) -> None:
    # Ray itself would retry such an address for minutes; the runner says so within seconds instead (exit 3).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, never listening: connections are refused
        started = time.monotonic()
        code = run_command(QUICKSTART, ["population.phones=30"], ray=f"127.0.0.1:{port}", no_dashboard=True)
    assert code == 3
    assert time.monotonic() - started < 30
    assert f"no Ray cluster answers at '127.0.0.1:{port}'" in capsys.readouterr().out


def test_a_bad_start_timeout_is_an_invalid_command_line(monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("2m", "0", "-5", "nan", "inf"):
        monkeypatch.setenv("CARRIER_SIM_RAY_START_TIMEOUT", bad)
        assert run_command(QUICKSTART, ["population.phones=30"], ray="local", no_dashboard=True) == 2, bad
        assert "CARRIER_SIM_RAY_START_TIMEOUT" in capsys.readouterr().err
    # Without --ray the variable is not read at all.
    assert run_command(QUICKSTART, ["population.phones=30", "clock=virtual"], no_dashboard=True) == 0


def test_ray_missing_is_an_invalid_command_line(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # what an import of an absent package does
    assert ray_shards.ray_missing() is not None
    assert run_command(QUICKSTART, ["population.phones=30"], ray="local", no_dashboard=True) == 2
    assert "carrier-sim[cluster]" in capsys.readouterr().err


def test_a_shard_failure_reads_as_one_line_without_terminal_escapes() -> None:
    # The harness error held Ray's whole coloured traceback, escapes and all, in the console, JSON and JUnit.
    cause = OSError(98, "address already in use")
    traceback = "\x1b[36mray::ShardActor.run()\x1b[39m (pid=1)\n  File \"x.py\", line 1\nOSError: boom"
    err = ray.exceptions.RayTaskError("run", traceback, cause)
    assert ray_shards._reason(err) == "OSError: [Errno 98] address already in use"

    class Painted(Exception):
        """An error with no cause whose text is coloured."""

    assert ray_shards._reason(Painted("\x1b[31mshard died\x1b[0m\x1b[1m!\x1b[22m")) == "Painted: shard died!"
