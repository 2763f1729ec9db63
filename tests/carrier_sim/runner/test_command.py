"""Pieces of ``carrier-sim run`` that need no run: the dashboard's provisional verdicts, refusals up front."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from carrier_sim.metrics.checks import evaluate
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.command import provisional, run_command, unwritable_reason
from carrier_sim.scenario.model import Check

ROOT = Path(__file__).resolve().parents[3]

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


def test_unwritable_report_paths_are_named(tmp_path: Path) -> None:
    assert unwritable_reason(tmp_path / "report.json") is None
    assert unwritable_reason(Path("report.json")) is None  # the working directory
    assert unwritable_reason(tmp_path) == "is a directory"
    assert "does not exist" in str(unwritable_reason(tmp_path / "missing" / "report.json"))
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in str(unwritable_reason(tmp_path / "file" / "report.json"))


@pytest.mark.parametrize("flag", ["--json", "--junit", "--pcap"])
def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(
        tmp_path: Path, flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "missing" / "out"
    option = {"--json": "json_path", "--junit": "junit", "--pcap": "pcap"}[flag]
    started = time.monotonic()
    code = run_command(ROOT / "scenarios" / "quickstart.yaml", **{option: bad})  # type: ignore[arg-type]
    assert code == 2
    assert time.monotonic() - started < 10  # refused, not run: the quickstart takes far longer
    assert f"{flag} {bad}: directory {bad.parent} does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_seed_option_has_the_schemas_bounds(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(ROOT / "scenarios" / "quickstart.yaml", seed=seed) == 2
    assert "seed" in capsys.readouterr().err
