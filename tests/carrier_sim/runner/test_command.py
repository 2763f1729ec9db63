"""Pieces of ``carrier-sim run`` that need no run: the dashboard's provisional verdicts."""

from __future__ import annotations

from carrier_sim.metrics.checks import evaluate
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.command import provisional
from carrier_sim.scenario.model import Check

CHECK = Check("phones activate", "activation.success_ratio", ">=", 0.99)


def _metrics(started: int, completed: int, failed: int) -> RunMetrics:
    metrics = RunMetrics()
    metrics.count("activation.started", started)
    metrics.count("activation.completed", completed)
    metrics.count("activation.failed", failed)
    return metrics


def test_a_ratio_failing_only_for_phones_in_flight_is_inconclusive_while_running() -> None:
    metrics = _metrics(100, 60, 0)
    (live,) = provisional(evaluate([CHECK], metrics), metrics)
    assert live.verdict == "inconc"
    assert "40 phones still in flight" in live.reason


def test_a_ratio_that_cannot_recover_still_fails_live() -> None:
    metrics = _metrics(100, 60, 30)  # even if the last 10 complete: 0.7
    (live,) = provisional(evaluate([CHECK], metrics), metrics)
    assert live.verdict == "fail"


def test_passing_and_other_checks_are_left_alone() -> None:
    metrics = _metrics(100, 100, 0)
    latency = Check("count", "activation.failed", "==", 0)
    verdicts = evaluate([CHECK, latency], metrics)
    assert provisional(verdicts, metrics) == verdicts
