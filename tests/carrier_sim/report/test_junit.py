"""JUnit XML: well-formed, parsed back, one testcase per check and per session check, outcomes and properties."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from carrier_sim.metrics.checks import evaluate
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.report.json_report import build_report, tag_sessions
from carrier_sim.report.junit import junit_xml, write_junit
from carrier_sim.scenario.model import Check

SESSIONS = [
    {"peer": "127.0.0.1:40000", "system_id": "identity", "checks": [
        {"check": "window", "verdict": "pass", "reason": "held 3 time(s)", "exercised": 3, "violations": 0},
        {"check": "udhi", "verdict": "inconc", "reason": "never exercised", "exercised": 0, "violations": 0},
        # A reason quoting raw peer bytes, control characters included: must not break the XML.
        {"check": "data_coding", "verdict": "fail", "reason": "bad octets \x00\x1b[2J <&>\"", "exercised": 2,
         "violations": 1}]},
    {"peer": "::1:40001", "system_id": "other", "checks": [
        {"check": "window", "verdict": "pass", "reason": "held 1 time(s)", "exercised": 1, "violations": 0}]},
]

CHECKS = [
    Check("started", "activation.started", ">", 0),
    Check("fast", "activation.latency.p99", "<", 0.1, where="s.yaml:9:7"),
    Check("auth", "authenticate.latency.p99", "<", 1.0),
    Check("typo", "activation.strated", ">", 0),
]


def _report() -> dict[str, object]:
    metrics = RunMetrics()
    metrics.count("activation.started", 10)
    metrics.record_latency("activation", np.full(10, 0.5))
    return build_report(
        scenario="activation.smoke", seed=7, checks=evaluate(CHECKS, metrics), metrics=metrics,
        started_at=datetime(2025, 1, 1, tzinfo=UTC), duration=12.5, conformance=tag_sessions("acme.eu", SESSIONS),
    )


def _parse() -> ET.Element:
    text = junit_xml(_report())
    assert text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    # expat rejects any ill-formed document (including forbidden control characters): parsing is the test.
    return ET.fromstring(text.encode("utf-8"))


def test_suites_counts_and_properties() -> None:
    root = _parse()
    assert root.tag == "testsuites"
    assert root.get("name") == "carrier-sim: activation.smoke"
    # The run is strict (build_report's default, recorded in the report), so "auth" (inconc) fails.
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("8", "3", "1")
    checks, smpp = root.findall("testsuite")
    assert (checks.get("name"), smpp.get("name")) == ("checks", "smpp-conformance")
    assert (checks.get("tests"), checks.get("failures"), checks.get("errors"), checks.get("skipped")) == (
        "4", "2", "1", "0")
    assert checks.get("time") == "12.500"
    assert checks.get("timestamp") == "2025-01-01T00:00:00"
    for suite in (checks, smpp):
        props = {p.get("name"): p.get("value") for p in suite.iter("property")}
        assert props == {"scenario": "activation.smoke", "seed": "7", "verdict": "error", "exit_code": "3"}


#: The attributes Jenkins xunit-plugin's junit-10.xsd (the common JUnit schema) declares on each element; a strict
#: validator refuses a file with any other. Checked by hand: the project has no XSD validator among its dependencies.
XSD_ATTRIBUTES = {
    "testsuites": {"name", "time", "tests", "failures", "errors"},
    "testsuite": {"name", "tests", "failures", "errors", "group", "time", "skipped", "timestamp", "hostname", "id",
                  "package", "file", "log", "url"},
    "testcase": {"name", "time", "classname", "group"},
}


def test_every_element_carries_only_the_attributes_the_junit_xsd_allows() -> None:
    metrics = RunMetrics()
    report = build_report(
        scenario="s", seed=1, checks=evaluate(CHECKS, metrics), metrics=metrics, started_at=0.0, duration=1.0,
        conformance=tag_sessions("acme", SESSIONS), harness_errors=["shard 1 died"])
    root = ET.fromstring(junit_xml(report).encode("utf-8"))
    # Exactly these on the root: in particular no ``skipped``, which the XSD allows on <testsuite> only.
    assert set(root.attrib) == XSD_ATTRIBUTES["testsuites"]
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["checks", "smpp-conformance", "harness"]
    for suite in suites:
        assert set(suite.attrib) <= XSD_ATTRIBUTES["testsuite"], suite.get("name")
        for case in suite.iter("testcase"):
            assert set(case.attrib) <= XSD_ATTRIBUTES["testcase"]
    # The skipped count the root no longer carries is still in the suites.
    assert sum(int(s.get("skipped", "0")) for s in suites) == 1


def test_one_testcase_per_check_with_outcomes() -> None:
    checks = _parse().find("testsuite[@name='checks']")
    assert checks is not None
    cases = {c.get("name"): c for c in checks.iter("testcase")}
    assert list(cases) == ["started", "fast", "auth", "typo"]
    assert {c.get("classname") for c in cases.values()} == {"checks.activation_smoke"}
    assert list(cases["started"]) == [cases["started"].find("system-out")]  # a pass has no outcome element
    failure = cases["fast"].find("failure")
    assert failure is not None
    assert failure.get("message") == "observed 0.5 s, expected < 0.1 s"
    assert "defined at s.yaml:9:7" in (failure.text or "")
    inconc = cases["auth"].find("failure")
    assert inconc is not None
    assert inconc.get("type") == "inconc"
    assert "no value" in (inconc.get("message") or "")
    error = cases["typo"].find("error")
    assert error is not None
    assert "UnknownMetricError" in (error.get("message") or "")


def test_conformance_sessions_are_testcases_by_carrier_and_system_id() -> None:
    smpp = _parse().find("testsuite[@name='smpp-conformance']")
    assert smpp is not None
    cases = [(c.get("classname"), c.get("name")) for c in smpp.iter("testcase")]
    assert cases == [
        ("smpp.acme_eu.identity", "window"),
        ("smpp.acme_eu.identity", "udhi"),
        ("smpp.acme_eu.identity", "data_coding"),
        ("smpp.acme_eu.other", "window"),
    ]
    bad = smpp.find("testcase[@name='data_coding']/failure")
    assert bad is not None
    assert bad.get("message") == "bad octets \ufffd\ufffd[2J <&>\""
    out = smpp.find("testcase[@name='data_coding']/system-out")
    assert out is not None
    assert out.text == "peer=127.0.0.1:40000 system_id=identity exercised=2 violations=1"
    assert smpp.find("testcase[@name='udhi']/skipped") is not None


def test_harness_errors_are_error_testcases_with_their_cause() -> None:
    metrics = RunMetrics()
    metrics.count("activation.started", 10)
    report = build_report(
        scenario="s", seed=1, checks=evaluate([Check("started", "activation.started", ">", 0)], metrics),
        metrics=metrics, started_at=0.0, duration=1.0,
        harness_errors=["carrier-a: SMSC could not listen", "shard 1 died \x00"])
    root = ET.fromstring(junit_xml(report).encode("utf-8"))
    harness = root.find("testsuite[@name='harness']")
    assert harness is not None
    errors = [case.find("error") for case in harness.iter("testcase")]
    assert [e.get("message") for e in errors if e is not None] == [
        "carrier-a: SMSC could not listen", "shard 1 died \ufffd"]
    assert (harness.get("tests"), harness.get("errors")) == ("2", "2")
    assert (root.get("tests"), root.get("errors")) == ("3", "2")
    props = {p.get("name"): p.get("value") for p in harness.iter("property")}
    assert (props["verdict"], props["exit_code"]) == ("error", "3")
    # Without harness errors there is no such suite.
    assert _parse().find("testsuite[@name='harness']") is None


def test_no_sessions_no_conformance_suite(tmp_path: Path) -> None:
    doc = _report()
    doc["conformance"] = []
    target = tmp_path / "junit.xml"
    write_junit(target, doc)
    root = ET.parse(target).getroot()
    assert [s.get("name") for s in root.findall("testsuite")] == ["checks"]
    assert root.get("tests") == "4"


def _checks_only(strict: bool) -> dict[str, object]:
    """A run whose checks pass or are inconclusive, nothing worse, with one inconclusive SMPP oracle check."""
    metrics = RunMetrics()
    metrics.count("activation.started", 10)
    return build_report(
        scenario="s", seed=1, checks=evaluate(CHECKS[:1] + CHECKS[2:3], metrics), metrics=metrics, started_at=0.0,
        duration=1.0, conformance=tag_sessions("acme", SESSIONS[:1]), strict=strict)


def _outcomes(suite: ET.Element) -> dict[str | None, list[str]]:
    return {c.get("name"): [child.tag for child in c if child.tag != "system-out"] for c in suite.iter("testcase")}


def test_inconclusive_check_is_a_failure_when_the_run_is_strict() -> None:
    report = _checks_only(strict=True)
    assert (report["verdict"], report["exit_code"]) == ("inconc", 1)
    root = ET.fromstring(junit_xml(report).encode("utf-8"))
    checks = root.find("testsuite[@name='checks']")
    assert checks is not None
    assert _outcomes(checks) == {"started": [], "auth": ["failure"]}
    failure = checks.find("testcase[@name='auth']/failure")
    assert failure is not None
    assert failure.get("type") == "inconc"
    assert "no value" in (failure.get("message") or "")
    assert "--allow-inconclusive" in (failure.text or "")
    assert (checks.get("tests"), checks.get("failures"), checks.get("errors"), checks.get("skipped")) == (
        "2", "1", "0", "0")
    # The oracle's inconclusive verdicts do not enter the exit code: still skipped, strict or not.
    smpp = root.find("testsuite[@name='smpp-conformance']")
    assert smpp is not None
    assert _outcomes(smpp)["udhi"] == ["skipped"]
    assert (smpp.get("failures"), smpp.get("skipped")) == ("1", "1")
    # A gate reading the root's counts sees the failure the exit code reports.
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "2", "0")


def test_inconclusive_check_is_skipped_when_the_run_allows_it() -> None:
    report = _checks_only(strict=False)
    assert (report["verdict"], report["exit_code"]) == ("pass", 0)
    root = ET.fromstring(junit_xml(report).encode("utf-8"))
    checks = root.find("testsuite[@name='checks']")
    assert checks is not None
    assert _outcomes(checks) == {"started": [], "auth": ["skipped"]}
    assert (checks.get("failures"), checks.get("skipped")) == ("0", "1")
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("5", "1", "0")


def _failing_with_inconclusive(strict: bool) -> dict[str, object]:
    """A run with a failed check beside an inconclusive one: ``fail``, exit 1, whichever the mode."""
    metrics = RunMetrics()
    metrics.count("activation.started", 10)
    failing = Check("none started", "activation.started", "==", 0)
    return build_report(scenario="s", seed=1, checks=evaluate([failing, CHECKS[2]], metrics), metrics=metrics,
                        started_at=0.0, duration=1.0, strict=strict)


def test_the_recorded_mode_decides_even_when_the_verdict_cannot_tell_it() -> None:
    # Both runs end fail/1, so only the report's "strict" says whether "auth" (inconc) counts against the run.
    allowed = _failing_with_inconclusive(strict=False)
    assert (allowed["verdict"], allowed["exit_code"], allowed["strict"]) == ("fail", 1, False)
    checks = ET.fromstring(junit_xml(allowed).encode("utf-8")).find("testsuite[@name='checks']")
    assert checks is not None
    assert _outcomes(checks) == {"none started": ["failure"], "auth": ["skipped"]}
    strict = ET.fromstring(junit_xml(_failing_with_inconclusive(strict=True)).encode("utf-8"))
    checks = strict.find("testsuite[@name='checks']")
    assert checks is not None
    assert _outcomes(checks) == {"none started": ["failure"], "auth": ["failure"]}


def test_a_report_without_the_mode_has_it_inferred_from_its_verdict() -> None:
    # Reports written before "strict" was recorded: a pass with an inconclusive check was --allow-inconclusive;
    # anything else is taken as strict, the default.
    def outcomes(report: dict[str, object]) -> dict[str | None, list[str]]:
        del report["strict"]
        checks = ET.fromstring(junit_xml(report).encode("utf-8")).find("testsuite[@name='checks']")
        assert checks is not None
        return _outcomes(checks)

    assert outcomes(_checks_only(strict=False))["auth"] == ["skipped"]
    assert outcomes(_checks_only(strict=True))["auth"] == ["failure"]
    assert outcomes(_failing_with_inconclusive(strict=False))["auth"] == ["failure"]


def _sessions_report(sessions: list[dict[str, object]]) -> dict[str, object]:
    return build_report(scenario="s", seed=1, checks=[], metrics=RunMetrics(), started_at=0.0, duration=1.0,
                        conformance=sessions)


def _session(carrier: str, peer: str, system_id: str | None) -> dict[str, object]:
    return {"carrier": carrier, "peer": peer, "system_id": system_id, "checks": [
        {"check": "window", "verdict": "pass", "reason": "held", "exercised": 1, "violations": 0}]}


def _case_names(report: dict[str, object]) -> list[tuple[str | None, str | None]]:
    smpp = ET.fromstring(junit_xml(report).encode("utf-8")).find("testsuite[@name='smpp-conformance']")
    assert smpp is not None
    return [(c.get("classname"), c.get("name")) for c in smpp.iter("testcase")]


def test_conformance_names_do_not_change_with_the_peers_ephemeral_ports() -> None:
    def run(port: int) -> dict[str, object]:
        return _sessions_report([_session("carrier-a", f"127.0.0.1:{port}", "identity"),
                                 _session("carrier-a", f"127.0.0.1:{port + 1}", "identity"),
                                 _session("carrier-b", f"127.0.0.1:{port + 2}", "identity")])

    names = _case_names(run(48826))
    assert names == _case_names(run(51234))
    # Two sessions of one system_id on one carrier are numbered in report order; a lone one is not.
    assert names == [("smpp.carrier-a.identity#1", "window"), ("smpp.carrier-a.identity#2", "window"),
                     ("smpp.carrier-b.identity", "window")]
    # The address is still there, out of the name.
    root = ET.fromstring(junit_xml(run(48826)).encode("utf-8"))
    outs = [case.findtext("system-out") for case in root.iter("testcase")]
    assert [out.split()[0] if out else None for out in outs] == [
        "peer=127.0.0.1:48826", "peer=127.0.0.1:48827", "peer=127.0.0.1:48828"]


def test_conformance_names_stay_unique_when_sanitising_merges_them() -> None:
    names = _case_names(_sessions_report([
        _session("a.b", "p:1", "id.x"),
        _session("a_b", "p:2", "id_x"),   # the same classname once dots become _
        _session("a_b", "p:3", "id#2"),   # a system_id that looks like an ordinal
        _session("a_b", "p:4", None),     # never bound
        _session("a_b", "p:5", ""),
    ]))
    assert len(set(names)) == len(names)
    assert [classname for classname, _ in names] == [
        "smpp.a_b.id_x#1", "smpp.a_b.id_x#2", "smpp.a_b.id_2", "smpp.a_b._#1", "smpp.a_b._#2"]


def test_the_runs_duration_is_counted_once() -> None:
    metrics = RunMetrics()
    report = build_report(scenario="s", seed=1, checks=[], metrics=metrics, started_at=0.0, duration=12.5,
                          conformance=tag_sessions("acme", SESSIONS), harness_errors=["shard 1 died"])
    root = ET.fromstring(junit_xml(report).encode("utf-8"))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["checks", "smpp-conformance", "harness"]
    assert root.get("time") == "12.500"
    # The suite that stands for the run carries its time; the others are views of the same run.
    assert [s.get("time") for s in suites] == ["12.500", "0.000", "0.000"]
    assert sum(float(s.get("time") or "nan") for s in suites) == float(root.get("time") or "nan")


# The JUnit XSD's timestamp (ISO8601_DATETIME_PATTERN): no fraction, no zone designator.
_XSD_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}")


def test_timestamp_is_the_xsds_format_in_utc() -> None:
    started = datetime(2025, 1, 1, 1, 2, 3, 456789, tzinfo=timezone(timedelta(hours=2)))
    report = build_report(scenario="s", seed=1, checks=[], metrics=RunMetrics(), started_at=started, duration=1.0,
                          conformance=tag_sessions("acme", SESSIONS))
    assert report["started_at"] == "2024-12-31T23:02:03.456789Z"  # what the JSON report says
    root = ET.fromstring(junit_xml(report).encode("utf-8"))
    stamps = [s.get("timestamp") for s in root.findall("testsuite")]
    assert stamps == ["2024-12-31T23:02:03", "2024-12-31T23:02:03"]
    assert all(_XSD_TIMESTAMP.fullmatch(stamp or "") for stamp in stamps)
    # No readable start: no attribute rather than one that fails validation.
    for bad in (None, "", "yesterday"):
        report["started_at"] = bad
        root = ET.fromstring(junit_xml(report).encode("utf-8"))
        assert all("timestamp" not in s.attrib for s in root.findall("testsuite"))


def test_the_detail_writes_thresholds_and_observations_as_the_reason_does() -> None:
    """str(float) wrote "mo.sent >= 1234567.0: observed 1234566.0 count" and "observed 0.9138827457526327 s"."""
    metrics = RunMetrics()
    metrics.count("mo.sent", 1234566)
    metrics.record_latency("activation", [0.9138827457526327])
    checks = [Check("a million MOs", "mo.sent", ">=", 1234567.0), Check("slow", "activation.latency.p99", "<", 0.5),
              Check("none failed", "activation.failed", "==", 0)]
    report = build_report(scenario="s", seed=1, checks=evaluate(checks, metrics), metrics=metrics, started_at=0.0,
                          duration=1.0)
    root = ET.fromstring(junit_xml(report))
    details = [case.findtext("system-out") for case in root.iter("testcase")]
    assert details == ["mo.sent >= 1234567: observed 1234566 count",
                       "activation.latency.p99 < 0.5 s: observed 0.913883 s",
                       "activation.failed == 0: observed 0 count"]


#: The JUnit XSD's SUREFIRE_TIME: digits (in groups of three with commas, optionally) and a fraction; no sign.
_XSD_TIME = re.compile(r"(([0-9]{0,3},)*[0-9]{3}|[0-9]{0,3})*(\.[0-9]*)?")


@pytest.mark.parametrize("duration", [-0.5, -0.0004, -0.0, math.inf, -math.inf, math.nan, 0.0, 2.5])
def test_every_time_is_one_the_junit_xsd_accepts(duration: float) -> None:
    """time="-0.500" (a clock stepped back under the run) made junit-10.xsd refuse the whole file."""
    report = _report()
    report["duration"] = duration  # as a report built elsewhere, or before build_report clamped it, may hold
    root = ET.fromstring(junit_xml(report))
    times = [root.get("time"), *(suite.get("time") for suite in root.iter("testsuite"))]
    assert all(time is not None and _XSD_TIME.fullmatch(time) for time in times), times
    assert root.get("time") == ("2.500" if duration == 2.5 else "0.000")
