"""Stopping shards: the runner keeps its signal handlers under --ray, and a shard that does not answer a stop
request is killed after a grace period instead of holding the reports back for ever. These use fakes (a fake
``ray`` module, a shard process that ignores the stop), so they need neither Ray nor a real run."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner import ray_shards, shards
from carrier_sim.runner.run import Controls
from carrier_sim.runner.shards import ShardOutcome
from carrier_sim.scenario.loader import load_scenario
from tests.carrier_sim.runner.test_shards import ROOT

QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"


def _runner_handler(signum: int, frame: Any) -> None:
    """Stands for the handler ``carrier-sim run`` installs (asyncio's, which turns the signal into a stop)."""


def _rays_handler(signum: int, frame: Any) -> None:
    """Stands for Ray's handler, which calls sys.exit(signum)."""
    raise SystemExit(signum)


@pytest.fixture
def runner_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    for sig in saved:
        signal.signal(sig, _runner_handler)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


class _AfterInit(Exception):
    """Raised by the fake Ray right after a successful init, to end the run there."""


def _fake_ray(init_fails: bool) -> types.SimpleNamespace:
    def init(**kwargs: Any) -> None:
        # What ray.init does to the process: its own handlers for both signals.
        signal.signal(signal.SIGTERM, _rays_handler)
        signal.signal(signal.SIGINT, _rays_handler)
        if init_fails:
            raise RuntimeError("no room")

    def remote(**kwargs: Any) -> Any:
        raise _AfterInit

    return types.SimpleNamespace(is_initialized=lambda: False, init=init, remote=remote, shutdown=lambda: None)


@pytest.mark.parametrize("init_fails", [False, True])
async def test_ray_init_leaves_the_runners_signal_handlers_in_place(
        runner_handlers: None, monkeypatch: pytest.MonkeyPatch, init_fails: bool) -> None:
    # Ray's handlers replaced the runner's: a SIGTERM under --ray exited 15 with no reports (docs/report.md
    # promises reports and exit 3).
    monkeypatch.setitem(sys.modules, "ray", _fake_ray(init_fails))
    scenario = load_scenario(QUICKSTART, ["population.phones=30"])
    if init_fails:
        (outcome,) = await ray_shards.run_ray_shards(scenario, 1, Controls(), lambda s: None)
        assert "could not be reached or started" in outcome.harness_errors[0]
    else:
        with pytest.raises(_AfterInit):
            await ray_shards.run_ray_shards(scenario, 1, Controls(), lambda s: None)
    assert signal.getsignal(signal.SIGTERM) is _runner_handler
    assert signal.getsignal(signal.SIGINT) is _runner_handler


def _stubborn_child(scenario: Any, shard: int, count: int, capture: bool, shared: Any, out: Any,
                    runner: int) -> None:
    """Stands for shards._child in a spawned process: shard 0 never answers (stuck in a call that does not
    return), the others report as soon as the stop reaches them, as a real shard does."""
    if shard == 0:
        time.sleep(3600)
    while not shared[0]:  # shards._STOP
        time.sleep(0.05)
    out.put(("outcome", ShardOutcome(shard, RunMetrics().to_bytes(), [], {}, [], time.time(), 0.0)))


async def test_a_shard_that_ignores_the_stop_is_killed_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # The parent waited for ever for a shard that did not answer a stop: no reports, no exit.
    monkeypatch.setattr(shards, "_child", _stubborn_child)
    # Long enough for the spawned processes to start and shard 1 to answer on a loaded machine, short for a test.
    monkeypatch.setattr(shards, "STOP_GRACE", 5.0)
    scenario = load_scenario(QUICKSTART, ["population.phones=30"])
    controls = Controls()
    controls.stop_requested = True
    started = time.monotonic()
    outcomes = await asyncio.wait_for(shards.run_shards(scenario, 2, controls, lambda s: None), 60)
    assert time.monotonic() - started < 30
    by_shard = {o.shard: o for o in outcomes}
    assert by_shard[1].harness_errors == []
    assert by_shard[0].harness_errors == ["shard 0 did not stop within 5 s of the stop request"]


class _Ref:
    def __init__(self, value: Callable[[], Any]) -> None:
        self.value = value


class _FakeActor:
    """A shard actor of the fake Ray below: shard 0 never ends its run, the others end once told to stop."""

    def __init__(self, shard_of: list[int], killed: list[int], on_run: Callable[[], None]) -> None:
        self.on_run = on_run
        self.shard = len(shard_of)
        shard_of.append(self.shard)
        self.stop = False
        self.killed = killed
        self.ready = types.SimpleNamespace(remote=lambda: _Ref(lambda: None))
        self.run = types.SimpleNamespace(remote=self._run)
        self.steer = types.SimpleNamespace(remote=self._steer)

    def _run(self, scenario: Any, shard: int, count: int, capture: bool) -> _Ref:
        self.on_run()
        ref = _Ref(lambda: ShardOutcome(shard, RunMetrics().to_bytes(), [], {}, [], time.time(), 0.0))
        ref.done = lambda: self.shard != 0 and self.stop  # type: ignore[attr-defined]
        return ref

    def _steer(self, stop: bool, paused: bool, rate: float) -> _Ref:
        self.stop = self.stop or stop
        return _Ref(lambda: None)


def _fake_running_ray(killed: list[int], on_run: Callable[[], None]) -> types.SimpleNamespace:
    shard_of: list[int] = []

    def wait(refs: list[_Ref], num_returns: int, timeout: float) -> tuple[list[_Ref], list[_Ref]]:
        time.sleep(0.01)
        done = [r for r in refs if getattr(r, "done", lambda: True)()]
        return done, [r for r in refs if r not in done]

    def remote(**options: Any) -> Callable[[Any], Any]:
        return lambda cls: types.SimpleNamespace(remote=lambda: _FakeActor(shard_of, killed, on_run))

    return types.SimpleNamespace(
        is_initialized=lambda: True, remote=remote, wait=wait,
        get=lambda ref, timeout=None: ref.value(), kill=lambda actor: killed.append(actor.shard))


async def test_a_ray_shard_that_ignores_the_stop_is_killed_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    # The parent polled for ever a shard that did not answer a stop: no reports, no exit.
    killed: list[int] = []
    controls = Controls()
    # The stop comes once the shards run (a stop before they all started ends the run another way).
    monkeypatch.setitem(sys.modules, "ray", _fake_running_ray(killed, lambda: setattr(controls, "stop_requested",
                                                                                       True)))
    monkeypatch.setattr(ray_shards, "STOP_GRACE", 0.5)
    scenario = load_scenario(QUICKSTART, ["population.phones=30"])
    outcomes = await asyncio.wait_for(ray_shards.run_ray_shards(scenario, 2, controls, lambda s: None), 30)
    assert [o.shard for o in outcomes] == [0, 1]
    assert outcomes[0].harness_errors == ["shard 0 did not stop within 0.5 s of the stop request"]
    assert outcomes[1].harness_errors == []
    assert 0 in killed
