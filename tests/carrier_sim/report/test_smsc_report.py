"""The standalone SMSC's report: its overall verdict, and the JUnit shape it hands to junit_xml."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from carrier_sim.report.junit import junit_xml
from carrier_sim.report.smsc_report import overall_session_verdict, smsc_junit_document, smsc_report
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


def test_an_smsc_nobody_bound_to_reports_inconc_and_an_empty_conformance_suite() -> None:
    report = smsc_report(Smsc(SmscConfig(accounts=(Account("e", "p"),))), started_at=0.0, duration=1.5)
    assert report["verdict"] == "inconc"
    assert report["started_at"] == "1970-01-01T00:00:00Z"
    assert report["sessions"] == []
    root = ET.fromstring(junit_xml(smsc_junit_document(report)))
    assert root.get("tests") == "0"
    assert root.find("testsuite[@name='smpp-conformance']") is None


def test_sessions_become_conformance_testcases_of_the_smsc() -> None:
    report = {"smsc": "acme", "verdict": "fail", "started_at": "2026-11-24T00:00:00Z", "duration": 2.0,
              "sessions": [_session("pass", "fail")]}
    root = ET.fromstring(junit_xml(smsc_junit_document(report)))
    cases = root.findall("testsuite[@name='smpp-conformance']/testcase")
    assert [(c.get("classname"), c.get("name"), c.find("failure") is not None) for c in cases] == [
        ("smpp.acme.e", "c0", False), ("smpp.acme.e", "c1", True)]
