"""The standalone SMSC's report: its overall verdict, and the JUnit shape it hands to junit_xml."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from carrier_sim.report.junit import junit_xml
from carrier_sim.report.smsc_report import NO_SESSION_REASON, overall_session_verdict, smsc_junit_document, smsc_report
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig


def _session(*verdicts: str) -> dict[str, object]:
    return {"peer": "127.0.0.1:1", "system_id": "e", "checks": [{"check": f"c{i}", "verdict": v, "reason": ""}
                                                                 for i, v in enumerate(verdicts)]}


@pytest.mark.parametrize(("sessions", "verdict"), [
    ([], "inconc"),
    ([_session("pass", "pass")], "pass"),
    ([_session("pass", "inconc")], "inconc"),
    ([_session("pass"), _session("inconc", "fail")], "fail"),
    ([_session("pass", "bogus")], "fail"),  # an unknown verdict is never taken for a pass
    ([{"peer": "x", "system_id": "e", "checks": ["not a mapping"]}], "fail"),
])
def test_the_overall_verdict_is_the_worst_check(sessions: list[dict[str, object]], verdict: str) -> None:
    assert overall_session_verdict(sessions) == verdict


def _properties(suite: ET.Element) -> dict[str | None, str | None]:
    return {p.get("name"): p.get("value") for p in suite.iter("property")}


def test_an_smsc_nobody_bound_to_reports_inconc_and_junit_fails_saying_nothing_was_tested() -> None:
    report = smsc_report(Smsc(SmscConfig(accounts=(Account("e", "p"),))), started_at=0.0, duration=1.5)
    assert report["verdict"] == "inconc"
    assert report["started_at"] == "1970-01-01T00:00:00Z"
    assert report["sessions"] == []
    root = ET.fromstring(junit_xml(smsc_junit_document(report)))
    # A gate reading the counts must not pass what the JSON calls inconc: one failing testcase, no empty suite.
    assert (root.get("tests"), root.get("failures"), root.get("errors")) == ("1", "1", "0")
    (suite,) = root.findall("testsuite")
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("skipped")) == (
        "checks", "1", "1", "0")
    assert suite.get("time") == "1.500"
    (case,) = suite.findall("testcase")
    outcomes = [child for child in case if child.tag != "system-out"]
    assert [(o.tag, o.get("type"), o.get("message")) for o in outcomes] == [
        ("failure", "inconc", NO_SESSION_REASON)]
    assert NO_SESSION_REASON == "no ESME connected: nothing was tested"
    # No hint at `carrier-sim run --allow-inconclusive`: the SMSC command has no such option.
    assert outcomes[0].text == NO_SESSION_REASON
    assert _properties(suite) == {"scenario": "smsc smsc", "verdict": "inconc", "exit_code": "0"}


def test_sessions_become_conformance_testcases_of_the_smsc() -> None:
    report = {"smsc": "acme", "verdict": "fail", "started_at": "2026-11-24T00:00:00Z", "duration": 2.0,
              "sessions": [_session("pass", "fail")]}
    root = ET.fromstring(junit_xml(smsc_junit_document(report)))
    cases = root.findall("testsuite[@name='smpp-conformance']/testcase")
    assert [(c.get("classname"), c.get("name"), c.find("failure") is not None) for c in cases] == [
        ("smpp.acme.e", "c0", False), ("smpp.acme.e", "c1", True)]


def test_with_sessions_there_is_no_empty_checks_suite_and_no_null_seed() -> None:
    report = {"smsc": "acme", "verdict": "pass", "started_at": "2026-11-24T00:00:00Z", "duration": 2.0,
              "sessions": [_session("pass", "inconc")]}
    root = ET.fromstring(junit_xml(smsc_junit_document(report)))
    suites = root.findall("testsuite")
    assert [s.get("name") for s in suites] == ["smpp-conformance"]
    assert not any(p.get("value") == "None" for p in root.iter("property"))
    assert _properties(suites[0]) == {"scenario": "smsc acme", "verdict": "pass", "exit_code": "0"}
    # The run's time goes to the suite standing for it, counted once.
    assert (root.get("time"), suites[0].get("time")) == ("2.000", "2.000")
    assert (root.get("tests"), root.get("failures")) == ("2", "0")
