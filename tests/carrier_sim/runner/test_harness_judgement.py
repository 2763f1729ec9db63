"""The runner judges itself: a run that could not keep its schedule, whose loop stalled, or whose own HTTP workers
queued the phones is a harness error, not a measurement of the system under test."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.run import LATE_ARRIVAL, ON_TIME_SHARE, WORKER_WAIT, judge_harness
from carrier_sim.runner.shards import Snapshot, run_shard
from carrier_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]


def test_a_sound_run_has_nothing_to_say() -> None:
    assert judge_harness(planned=1000, on_time=1000, tick_p99=0.021, worker_wait_p99=0.004) == []
    assert judge_harness(planned=0, on_time=0, tick_p99=None, worker_wait_p99=None) == []
    # Exactly the share asked for is enough.
    assert judge_harness(planned=100, on_time=round(100 * ON_TIME_SHARE), tick_p99=None, worker_wait_p99=None) == []


@pytest.mark.parametrize(
    ("kwargs", "cause"),
    [
        ({"planned": 1000, "on_time": 949}, "949 of 1000 planned arrivals"),
        ({"tick_p99": 1.2}, "loop fell behind"),
        ({"worker_wait_p99": WORKER_WAIT + 0.01}, "HTTP workers were the bottleneck"),
    ],
)
def test_each_way_of_measuring_itself_is_named(kwargs: dict[str, float], cause: str) -> None:
    sound: dict[str, float | int | None] = {"planned": 1000, "on_time": 1000, "tick_p99": 0.02,
                                            "worker_wait_p99": 0.01}
    (error,) = judge_harness(**(sound | kwargs))  # type: ignore[arg-type]
    assert cause in error


async def test_a_runner_too_busy_to_keep_its_schedule_says_so(tmp_path: Path) -> None:
    """A wall-clock run whose loop is blocked 0.4 s of every 0.25 s snapshot interval: arrivals go out late
    (up to 0.4 s), which the run must count and report as its own failure, not pass off as the SUT's latency."""
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "population.phones=300", "load.phases=[{name: steady, duration: 3, rate: 100}]", "events=[]"])

    def busy(_: Snapshot) -> None:
        time.sleep(0.4)  # the runner doing something else than keeping its tick, as an overloaded one does

    outcome = await run_shard(scenario, 0, 1, on_snapshot=busy)
    metrics = RunMetrics.from_bytes(outcome.metrics)
    planned, on_time = metrics.counter("load.planned"), metrics.counter("load.on_time")
    assert metrics.counter("load.arrived") == planned == 300  # every arrival went out, but late
    assert on_time < planned * ON_TIME_SHARE
    ratio = metrics.metric_value("load.achieved_ratio")
    assert ratio is not None
    assert ratio < ON_TIME_SHARE
    assert any(f"within {LATE_ARRIVAL} s of their planned moment" in e for e in outcome.harness_errors), \
        outcome.harness_errors
