"""Checks judged against metrics: every comparison, inconclusive and error verdicts, and exit codes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from carrier_sim.metrics.checks import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_PASS,
    CheckVerdict,
    evaluate,
    format_value,
    overall,
    overall_verdict,
)
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.scenario.model import Check


def _metrics() -> RunMetrics:
    metrics = RunMetrics()
    metrics.count("activation.started", 10)
    metrics.count("activation.completed", 8)
    metrics.record_latency("activation", np.full(50, 0.25))
    return metrics


# (op, threshold, expected verdict) against activation.started == 10.
CASES = [
    ("<", 11, "pass"), ("<", 10, "fail"),
    ("<=", 10, "pass"), ("<=", 9, "fail"),
    (">", 9, "pass"), (">", 10, "fail"),
    (">=", 10, "pass"), (">=", 11, "fail"),
    ("==", 10, "pass"), ("==", 11, "fail"),
    ("!=", 11, "pass"), ("!=", 10, "fail"),
]


@pytest.mark.parametrize(("op", "threshold", "expected"), CASES)
def test_every_operator(op: str, threshold: float, expected: str) -> None:
    check = Check("started", "activation.started", op, threshold)  # type: ignore[arg-type]
    [verdict] = evaluate([check], _metrics())
    assert verdict.verdict == expected
    assert verdict.observed == 10.0
    assert verdict.threshold == threshold
    assert verdict.unit == "count"
    assert ("holds" in verdict.reason) == (expected == "pass")
    assert f"{op} {threshold}" in verdict.reason


def test_latency_and_ratio_checks_with_reasons() -> None:
    verdicts = evaluate(
        [
            Check("fast", "activation.latency.p99", "<", 0.5),
            Check("slow", "activation.latency.p50", "<", 0.1),
            Check("ratio", "activation.success_ratio", ">=", 0.9),
        ],
        _metrics(),
    )
    assert [v.verdict for v in verdicts] == ["pass", "fail", "fail"]
    assert verdicts[1].reason == "observed 0.25 s, expected < 0.1 s"
    assert verdicts[2].observed == pytest.approx(0.8)


def test_no_samples_is_inconclusive() -> None:
    verdicts = evaluate(
        [Check("auth", "authenticate.latency.p99", "<", 1.0), Check("rev", "events.revocation_ratio", ">", 0.5)],
        _metrics(),
    )
    assert [v.verdict for v in verdicts] == ["inconc", "inconc"]
    assert all(v.observed is None and "no value" in v.reason for v in verdicts)


def test_harness_failure_is_an_error_for_its_family_only() -> None:
    checks = [Check("a", "activation.started", ">", 0), Check("s", "smpp.binds", ">=", 0)]
    assert [v.verdict for v in evaluate(checks, _metrics(), harness_ok=False)] == ["error", "error"]
    partial = evaluate(checks, _metrics(), harness_ok={"smpp": False})
    assert [v.verdict for v in partial] == ["pass", "error"]
    assert "failed to measure smpp" in partial[1].reason


def test_an_interrupted_run_is_not_judged_rather_than_unmeasured() -> None:
    # The runner also reports an interruption as a harness error (harness_ok False): the reason must still name
    # the interruption, since nothing failed to measure.
    checks = [Check("a", "activation.started", ">", 0), Check("s", "smpp.binds", ">=", 0)]
    verdicts = evaluate(checks, _metrics(), harness_ok=False, interrupted="SIGINT")
    assert [v.verdict for v in verdicts] == ["error", "error"]
    assert [v.observed for v in verdicts] == [None, None]
    assert {v.reason for v in verdicts} == {"not judged: the run was interrupted (SIGINT) before its end"}
    assert overall(verdicts) == EXIT_ERROR


class _Exploding:
    def metric_value(self, name: str) -> float | None:
        raise RuntimeError(f"shard lost while reading {name}")


class _Nan:
    def metric_value(self, name: str) -> float | None:
        return float("nan")


def test_a_metric_that_raises_or_is_nan_is_an_error() -> None:
    [raised] = evaluate([Check("x", "mo.sent", ">", 0)], _Exploding())
    assert raised.verdict == "error"
    assert "RuntimeError: shard lost" in raised.reason
    [nan] = evaluate([Check("x", "mo.sent", ">", 0)], _Nan())
    assert nan.verdict == "error"
    # An unknown metric (UnknownMetricError from the registry) is an error, not a silent 0.
    [unknown] = evaluate([Check("x", "mo.snet", "==", 0)], RunMetrics())
    assert unknown.verdict == "error"


def _v(verdict: str) -> CheckVerdict:
    return CheckVerdict("c", "mo.sent", ">", 0, None, verdict, "")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("verdicts", "code", "name"),
    [
        ([], EXIT_PASS, "pass"),
        (["pass", "pass"], EXIT_PASS, "pass"),
        (["pass", "fail"], EXIT_FAIL, "fail"),
        (["pass", "inconc"], EXIT_FAIL, "inconc"),
        (["inconc", "fail"], EXIT_FAIL, "fail"),
        (["fail", "error"], EXIT_ERROR, "error"),
        (["pass", "error", "inconc"], EXIT_ERROR, "error"),
    ],
)
def test_exit_codes(verdicts: list[str], code: int, name: str) -> None:
    judged = [_v(v) for v in verdicts]
    assert overall(judged) == code
    assert overall_verdict(judged) == name


def test_lenient_mode_lets_inconclusive_pass() -> None:
    judged = [_v("pass"), _v("inconc")]
    assert overall(judged, strict=False) == EXIT_PASS
    assert overall([*judged, _v("fail")], strict=False) == EXIT_FAIL


def test_verdict_json() -> None:
    [verdict] = evaluate([Check("started", "activation.started", ">", 1, where="s.yaml:3:5")], _metrics())
    doc = json.loads(json.dumps(verdict.to_json()))
    assert doc == {
        "name": "started", "metric": "activation.started", "op": ">", "threshold": 1, "observed": 10.0,
        "unit": "count", "verdict": "pass", "reason": "observed 10, > 1 holds", "where": "s.yaml:3:5",
    }


@pytest.mark.parametrize(("value", "unit", "shown"), [
    (1234566.0, "count", "1234566"),
    (1234567.4, "count", "1234567"),  # a threshold between counts: to the unit, not 1.23457e+06
    (999999.7, "ratio", "1000000"),
    (1234567.0, "s", "1234567 s"),
    (0.9138827457526327, "s", "0.913883 s"),
    (0.0, "count", "0"),
    (0.75, "ratio", "0.75"),
])
def test_values_are_shown_exactly_to_the_unit_from_a_million_up(value: float, unit: str, shown: str) -> None:
    """Six significant digits in exponent form made 1234566 and 1234567 both read 1.23457e+06."""
    assert format_value(value, unit) == shown
