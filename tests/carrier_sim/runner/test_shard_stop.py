"""Stopping shards: the runner keeps its signal handlers under --ray, and a shard that does not answer a stop
request is killed after a grace period instead of holding the reports back for ever. These use fakes (a fake
``ray`` module, a shard process that ignores the stop), so they need neither Ray nor a real run."""

from __future__ import annotations

import signal
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from carrier_sim.runner import ray_shards
from carrier_sim.runner.run import Controls
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
