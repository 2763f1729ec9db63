"""The JSON report: shape, verdict and exit code, load derivation, strict JSON, atomic writing (links followed,
FIFOs and devices refused)."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from carrier_sim.metrics.checks import evaluate
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.report.json_report import (
    REPORT_KEYS,
    SCHEMA_VERSION,
    build_report,
    dumps_report,
    tag_sessions,
    validate_report,
    write_report,
)
from carrier_sim.scenario.model import Check, Load, Phase

SESSIONS = [
    {"peer": "127.0.0.1:40000", "system_id": "identity", "checks": [
        {"check": "window", "verdict": "pass", "reason": "held 3 time(s)", "exercised": 3, "violations": 0},
        {"check": "udhi", "verdict": "inconc", "reason": "never exercised", "exercised": 0, "violations": 0}]},
]


def _report(checks: list[Check], **kwargs: object) -> dict[str, object]:
    metrics = RunMetrics()
    metrics.count("activation.started", 100, carrier="acme")
    metrics.count("activation.completed", 97, carrier="acme")
    metrics.count("load.planned", 1000)
    metrics.count("load.arrived", 900)
    metrics.count("load.on_time", 800)
    metrics.record_latency("activation", np.linspace(0.1, 1.0, 100), carrier="acme")
    params: dict[str, object] = {
        "scenario": "activation",
        "seed": 42,
        "checks": evaluate(checks, metrics),
        "metrics": metrics,
        "started_at": datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        "duration": 10.0,
        "carriers": {"acme": {"binds": 2}, "zeta": {"binds": 0}},
        "conformance": tag_sessions("acme", SESSIONS),
    }
    params.update(kwargs)
    return build_report(**params)  # type: ignore[arg-type]


@pytest.mark.parametrize("load", [{"tick_p99": 0.02}, {"target": {}}, {}])
def test_a_load_section_without_target_and_achieved_is_a_problem(load: object) -> None:
    doc = json.loads(dumps_report(_report([Check("ok", "activation.success_ratio", ">=", 0.95)])))
    doc["load"] = load
    assert validate_report(doc) == ["load lacks target/achieved"]


def test_report_has_every_documented_key_and_validates() -> None:
    doc = json.loads(dumps_report(_report([Check("ok", "activation.success_ratio", ">=", 0.95)])))
    assert set(doc) == set(REPORT_KEYS)
    assert validate_report(doc) == []
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["scenario"] == "activation"
    assert doc["seed"] == 42
    assert doc["verdict"] == "pass"
    assert doc["exit_code"] == 0
    assert doc["strict"] is True  # the default policy, recorded
    assert _report([], strict=False)["strict"] is False
    assert doc["started_at"] == "2025-01-02T03:04:05Z"
    assert doc["duration"] == 10.0
    assert doc["checks"][0]["observed"] == pytest.approx(0.97)
    # Metrics' per-carrier figures and the runner's extras meet under the carrier's name.
    assert doc["carriers"]["acme"]["binds"] == 2
    assert doc["carriers"]["acme"]["counters"]["activation.started"] == 100
    assert doc["carriers"]["zeta"] == {"counters": {}, "latency": {}, "binds": 0}
    assert doc["conformance"][0]["carrier"] == "acme"
    assert doc["conformance"][0]["checks"][1]["verdict"] == "inconc"
    assert doc["metrics"]["latency"]["activation"]["count"] == 100
    # Without the scenario's load the rates are unknown, not counters over the run's duration.
    assert doc["load"] == {"target": None, "achieved": None, "declared": None}


ROOT = Path(__file__).resolve().parents[3]


def test_the_documented_keys_are_the_reports() -> None:
    # docs/report.md's table of top-level keys lacked the two ``carrier-sim run`` adds to a sharded run's report
    # (carrier_sim/runner/command.py): ``workers`` with --workers N > 1, ``ray`` with --ray.
    text = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
    section = text.split("## JSON report", 1)[1].split("\n###", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
    assert len(documented) == len(set(documented))
    assert set(documented) == set(REPORT_KEYS) | {"workers", "ray"}


# 8 s of load phases declaring 630 arrivals (150 in the ramp, 480 steady), in a run of 10 s with its drain.
LOAD = Load("open", (Phase("ramp", 2.0, 50.0, 100.0), Phase("steady", 6.0, 80.0, 80.0)))


def test_load_rates_are_over_the_load_phases_and_achieved_counts_only_on_time_arrivals() -> None:
    # Every arrival went out (arrived == planned) but 2 of 600 late: the old counters-over-the-duration gave
    # target == achieved; now achieved falls short of target exactly as load.achieved_ratio does.
    metrics = RunMetrics()
    for name, n in (("load.planned", 600), ("load.arrived", 600), ("load.on_time", 598)):
        metrics.count(name, n)
    doc = build_report(scenario="s", seed=1, checks=[], metrics=metrics, started_at=0.0, duration=10.0, load=LOAD)
    assert doc["load"] == {"target": 75.0, "achieved": pytest.approx(598 / 8), "declared": pytest.approx(630 / 8)}
    assert validate_report(json.loads(dumps_report(doc))) == []


def test_a_load_thinned_to_the_population_shows_as_target_below_declared() -> None:
    # 600 phones for 630 declared arrivals: each phone arrives once, so the run plans 600 (75/s, not 78.75/s).
    doc = _report([], load=LOAD)
    assert doc["load"] == {"target": 125.0, "achieved": 100.0, "declared": pytest.approx(78.75)}  # 1000, 800 / 8 s
    closed = Load("closed", (Phase("warm", 4.0, concurrency=10), Phase("soak", 6.0, concurrency=50)))
    assert _report([], load=closed)["load"] == {"target": 100.0, "achieved": 80.0, "declared": None}


@pytest.mark.parametrize(
    ("check", "verdict", "code"),
    [
        (Check("ratio", "activation.success_ratio", ">=", 0.99), "fail", 1),
        (Check("auth", "authenticate.latency.p99", "<", 1.0), "inconc", 1),
        (Check("typo", "activation.strated", ">", 0), "error", 3),
    ],
)
def test_verdict_and_exit_code_follow_the_checks(check: Check, verdict: str, code: int) -> None:
    doc = _report([Check("ok", "activation.started", ">", 0), check])
    assert (doc["verdict"], doc["exit_code"]) == (verdict, code)


def test_a_harness_error_makes_the_run_an_error_whatever_the_checks_say() -> None:
    passing = [Check("ok", "activation.started", ">", 0)]
    assert _report(passing)["harness_errors"] == []
    doc = _report(passing, harness_errors=["carrier-a: the system under test did not bind"])
    assert (doc["verdict"], doc["exit_code"]) == ("error", 3)
    assert doc["harness_errors"] == ["carrier-a: the system under test did not bind"]
    checks = doc["checks"]
    assert isinstance(checks, list)
    assert checks[0]["verdict"] == "pass"  # the checks themselves are reported as measured
    assert validate_report(json.loads(dumps_report(doc))) == []


def test_explicit_load_and_epoch_start() -> None:
    doc = _report([], load=LOAD, load_target=50.0, load_achieved=49.5, started_at=0.0)
    assert doc["load"] == {"target": 50.0, "achieved": 49.5, "declared": pytest.approx(78.75)}
    assert doc["started_at"] == "1970-01-01T00:00:00Z"


def test_the_runners_tick_p99_joins_the_load_when_known() -> None:
    doc = _report([], load_target=50.0, load_achieved=49.5, tick_p99=0.07)
    assert doc["load"] == {"target": 50.0, "achieved": 49.5, "declared": None, "tick_p99": 0.07}


def test_non_finite_numbers_become_null_so_the_report_is_strict_json() -> None:
    doc = _report([], load_target=math.inf, duration=math.nan)
    text = dumps_report(doc)
    parsed = json.loads(text)  # json.loads would accept NaN; the check below is that none was written
    assert "NaN" not in text
    assert "Infinity" not in text
    assert parsed["load"]["target"] is None
    assert parsed["duration"] is None
    # The report build_report writes is valid: null is what a duration that is no finite number becomes.
    assert validate_report(parsed) == []


def test_a_lone_surrogate_is_written_as_the_replacement_character(tmp_path: Path) -> None:
    # A scenario file name that is not UTF-8 reaches Python as "t\\udcff.yaml"; the report carried the escape
    # "\\udcff", a lone surrogate I-JSON (RFC 7493) forbids and strict readers refuse. JUnit writes U+FFFD too.
    check = Check("ok", "activation.success_ratio", ">=", 0.95, where="t\udcff.yaml:22:5")
    doc = _report([check], harness_errors=["could not write t\udcff.json"])
    doc["carriers"] = {"c\ud800": {"k\udfff": "v\udcff"}}
    text = dumps_report(doc)
    assert "\\ud" not in text.lower()
    parsed = json.loads(text)
    assert parsed["checks"][0]["where"] == "t\ufffd.yaml:22:5"
    assert parsed["harness_errors"] == ["could not write t\ufffd.json"]
    assert parsed["carriers"] == {"c\ufffd": {"k\ufffd": "v\ufffd"}}
    write_report(tmp_path / "r.json", doc)
    (tmp_path / "r.json").read_bytes().decode("utf-8", errors="strict")


def test_validate_report_names_problems() -> None:
    assert validate_report([]) == ["a report is a JSON object"]
    doc = json.loads(dumps_report(_report([])))
    del doc["seed"]
    doc["verdict"] = "maybe"
    assert validate_report(doc) == ["missing 'seed'"]
    doc["seed"] = True  # a bool is not a seed
    assert validate_report(doc) == ["'seed' is bool, expected int"]
    doc["seed"] = 1
    assert validate_report(doc) == ["verdict 'maybe' is not one of ['error', 'fail', 'inconc', 'pass']"]
    doc["verdict"] = "pass"
    doc["strict"] = 1  # JSON's true, not a number
    assert validate_report(doc) == ["'strict' is int, expected bool"]
    del doc["strict"]  # a report written before the policy was recorded is still a valid version 1 report
    assert validate_report(doc) == []


def test_write_report_is_atomic_and_readable(tmp_path: Path) -> None:
    target = tmp_path / "out" / "report.json"
    doc = _report([Check("ok", "activation.started", ">", 0)])
    write_report(target, doc)
    assert json.loads(target.read_text(encoding="utf-8")) == json.loads(dumps_report(doc))
    assert [p.name for p in target.parent.iterdir()] == ["report.json"]  # no temporary left behind


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_report_gets_the_mode_the_umask_gives_new_files(tmp_path: Path, umask: int, mode: int) -> None:
    # Not mkstemp's owner-only 0600: a CI job often uploads the report as another user.
    target = tmp_path / "report.json"
    before = os.umask(umask)
    try:
        write_report(target, _report([Check("ok", "activation.started", ">", 0)]))
    finally:
        os.umask(before)
    assert stat.S_IMODE(target.stat().st_mode) == mode


def test_a_report_written_to_a_symlink_replaces_the_file_it_leads_to(tmp_path: Path) -> None:
    # A rename onto the link replaced the link with a file and left its target stale: CI's artifact path (a link
    # to where a dashboard reads) went on showing the previous run.
    real = tmp_path / "real.json"
    real.write_text("the previous run's report")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    doc = _report([Check("ok", "activation.started", ">", 0)])
    write_report(link, doc)
    assert link.is_symlink()
    assert link.resolve() == real
    assert json.loads(real.read_text(encoding="utf-8")) == json.loads(dumps_report(doc))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.json", "real.json"]  # no temporary left behind
    # A link to a file not made yet is followed too: the file appears where it leads.
    dangling = tmp_path / "dangling.json"
    dangling.symlink_to(tmp_path / "later.json")
    write_report(dangling, doc)
    assert dangling.is_symlink()
    assert json.loads((tmp_path / "later.json").read_text(encoding="utf-8"))


def test_a_report_is_never_renamed_over_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(fifo)
    for target in (fifo, link):
        with pytest.raises(OSError, match=r"not a regular file \(a FIFO\)"):
            write_report(target, _report([]))
    assert stat.S_ISFIFO(fifo.stat().st_mode)  # still the pipe: nothing replaced it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "pipe"]


@pytest.mark.parametrize("duration", [math.inf, -math.inf, math.nan, -0.5, -0.0, 0.0, 2.5])
def test_a_report_with_any_duration_validates_and_is_never_negative(duration: float) -> None:
    """A non-finite duration was written as null, which validate_report refused as not a number; a negative one (a
    clock stepped back) was written as is."""
    doc = json.loads(dumps_report(_report([], duration=duration)))
    assert validate_report(doc) == []
    if math.isfinite(duration):
        assert doc["duration"] == max(0.0, duration)
        assert math.copysign(1.0, doc["duration"]) == 1.0  # not -0.0 either
    else:
        assert doc["duration"] is None
