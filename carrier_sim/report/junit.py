"""The run's verdicts as JUnit XML, the format every CI system renders.

Rendered from the JSON report (:func:`carrier_sim.report.json_report.build_report`), so both always agree:

- suite ``checks``: one ``<testcase>`` per scenario check, classname ``checks.<scenario>``; absent only when the
  report has no ``checks`` key at all (the standalone SMSC's document, once an ESME connected): a scenario without
  checks still gets the suite;
- suite ``smpp-conformance``: one ``<testcase>`` per oracle check per SMPP session, classname
  ``smpp.<carrier>.<system_id>``, with ``#1``, ``#2``... after it when several sessions share that name (in the
  report's order), and the peer's address in ``<system-out>``. The peer is not in the name: its port is ephemeral,
  and a name that changes every run breaks CI test history. Dots inside the carrier or system_id become ``_`` (CI
  viewers split classnames on dots into a package tree), and so does ``#``, so the ordinal stays unambiguous; a
  session that never bound (no system_id) is ``_``;
- suite ``harness`` (only when the runner itself failed): one ``<testcase>`` per harness error, each an
  ``<error>`` whose message is the cause, so a CI page shows why the run is exit 3 rather than only checks that
  could not be measured;
- the root ``<testsuites>`` totals ``tests``, ``failures`` and ``errors`` over the suites; ``skipped`` is on each
  suite only, as the common JUnit XSD allows it nowhere else;
- time: the root and the first suite (``checks``, or ``smpp-conformance`` where there is no ``checks``) carry the
  run's duration, the other suites 0, so a tool that sums suites counts the run once; ``timestamp`` is the run's
  start in UTC as the common JUnit XSD types it (``2025-01-02T03:04:05``: no fraction, no zone designator);
- ``fail`` is a ``<failure>``, ``error`` an ``<error>``, each with the reason as its ``message``. ``inconc`` is a
  ``<failure type="inconc">`` in suite ``checks`` when the run was strict (the default, where it makes the process
  exit 1: a CI view must show a failing test on a red job, and a gate reading the counts must not pass a run that
  tested nothing), and a ``<skipped>`` under ``--allow-inconclusive`` (the report's ``strict`` is false) and in
  suite ``smpp-conformance`` (the oracle's verdicts do not enter the exit code). Each suite carries the
  properties ``scenario``, ``seed``, ``verdict`` and ``exit_code``, those the report has (a missing or null one is
  left out rather than written as ``None``).

Reasons may quote what a peer sent. XML 1.0 cannot hold most control characters at all, so they are replaced by
U+FFFD before serialising: the file must stay well-formed whatever the system under test did.
"""

from __future__ import annotations

import math
import os
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final

from carrier_sim.metrics.checks import format_value
from carrier_sim.report.json_report import write_atomically

__all__ = ["junit_element", "junit_xml", "write_junit"]

#: Characters XML 1.0 does not allow anywhere in a document (section 2.2, production [2] "Char").
_NOT_XML_CHAR: Final = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

#: The element each non-passing verdict becomes.
_OUTCOME_TAG: Final[Mapping[str, str]] = {"fail": "failure", "error": "error", "inconc": "skipped"}

#: Why an inconclusive check is a failure (the body of its ``<failure>``).
_INCONC_FAILS: Final = ("inconclusive counts as failing (strict mode, the default): the run tested nothing this "
                        "check is about; carrier-sim run --allow-inconclusive lets it pass")


def _clean(text: object) -> str:
    return _NOT_XML_CHAR.sub("\ufffd", str(text))


def _class_part(text: object) -> str:
    return _clean(text).replace(".", "_") or "_"


def _session_classnames(sessions: Sequence[Mapping[str, object]]) -> list[str]:
    """Each session's classname: ``smpp.<carrier>.<system_id>``, numbered ``#1``, ``#2``... in report order when
    several sessions share it. Sessions are counted by the classname itself (after ``_`` replaced the dots), not by
    the raw pair, so carriers ``a.b`` and ``a_b`` cannot yield two testcases of the same name."""
    def part(value: object) -> str:
        return _class_part(value or "").replace("#", "_")

    bases = [f"smpp.{part(session.get('carrier'))}.{part(session.get('system_id'))}" for session in sessions]
    totals = Counter(bases)
    seen: Counter[str] = Counter()
    names = []
    for base in bases:
        seen[base] += 1
        names.append(f"{base}#{seen[base]}" if totals[base] > 1 else base)
    return names


class _Suite:
    """Builds one ``<testsuite>``, keeping the counts its attributes need."""

    def __init__(self, name: str, properties: Mapping[str, object], timestamp: str | None, *,
                 inconc_fails: bool = False) -> None:
        self.element = ET.Element("testsuite", name=name)
        if timestamp is not None:
            self.element.set("timestamp", timestamp)
        props = ET.SubElement(self.element, "properties")
        for key, value in properties.items():
            # A null (the standalone SMSC has no seed) is left out: value="None" is Python leaking into the file.
            if value is not None:
                ET.SubElement(props, "property", name=key, value=_clean(value))
        self.counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        self.inconc_fails = inconc_fails

    def case(self, classname: str, name: str, verdict: str, reason: str, detail: str = "", *,
             inconc_note: str = _INCONC_FAILS) -> None:
        """Add a testcase with the verdict's outcome element; ``inconc_note`` ends the body of an inconclusive
        verdict's ``<failure>`` (why it fails), when there is one."""
        case = ET.SubElement(self.element, "testcase", classname=_clean(classname), name=_clean(name), time="0")
        self.counts["tests"] += 1
        tag = "failure" if verdict == "inconc" and self.inconc_fails else _OUTCOME_TAG.get(verdict)
        if tag is not None:
            outcome = ET.SubElement(case, tag, message=_clean(reason), type=verdict)
            if tag != "skipped":
                text = detail or reason
                if verdict == "inconc" and inconc_note:
                    text += f"\n{inconc_note}"
                outcome.text = _clean(text)
            self.counts[{"failure": "failures", "error": "errors", "skipped": "skipped"}[tag]] += 1
        elif verdict != "pass":
            # A verdict this format does not know is never shown as a pass.
            ET.SubElement(case, "error", message=_clean(f"unknown verdict {verdict!r}: {reason}"), type="unknown")
            self.counts["errors"] += 1
        if detail:
            ET.SubElement(case, "system-out").text = _clean(detail)

    def finish(self, time: float) -> ET.Element:
        """Set the count attributes (and the time) and return the element."""
        for key, value in self.counts.items():
            self.element.set(key, str(value))
        self.element.set("time", f"{time:.3f}")
        return self.element


def junit_element(report: Mapping[str, object]) -> ET.Element:
    """The ``<testsuites>`` element for a JSON report (see the module docstring)."""
    scenario = str(report["scenario"])
    duration = report.get("duration")
    time = float(duration) if isinstance(duration, int | float) and not isinstance(duration, bool) else 0.0
    # The common JUnit XSD's time is digits and a point, no sign: a negative (a clock stepped back) or
    # non-finite duration failed validation of the whole file; it is written as 0.
    if not math.isfinite(time) or time <= 0.0:  # <=: -0.0 too, which formats as "-0.000"
        time = 0.0
    timestamp = _xsd_timestamp(report.get("started_at"))
    properties = {k: report.get(k) for k in ("scenario", "seed", "verdict", "exit_code")}

    # One run, several views of it: the suites do not run one after another, so each carrying the run's duration made
    # tools that total the suites (Jenkins' junit plugin sums the suites' time attributes) count it two or three
    # times. The run's time goes to the root and to the suite that stands for the run -- ``checks``, the verdicts
    # judged over the whole run -- and 0 to the others, so summing the suites and reading the root both give the
    # run's duration once. Splitting it into shares would invent timings nothing measured. Where there is no
    # ``checks`` suite (the standalone SMSC's sessions), the first suite stands for the run instead.
    suites: list[ET.Element] = []
    if "checks" in report:
        checks = _Suite("checks", properties, timestamp, inconc_fails=_inconc_fails(report))
        for check in _list_of_mappings(report.get("checks")):
            observed = check.get("observed")
            # A check without a metric is not a scenario check (the standalone SMSC's "an ESME connected"): no
            # comparison to spell out, and no `carrier-sim run --allow-inconclusive` that could let it pass.
            metric = check.get("metric")
            unit = str(check.get("unit") or "")
            detail = "" if metric is None else (
                f"{metric} {check.get('op')} {_figure(check.get('threshold'), unit)}: observed "
                f"{_figure(observed, unit, with_unit=True)}"
                f"{'; defined at ' + str(check['where']) if check.get('where') else ''}"
            )
            checks.case(f"checks.{_class_part(scenario)}", str(check.get("name")), str(check.get("verdict")),
                        str(check.get("reason", "")), detail, inconc_note="" if metric is None else _INCONC_FAILS)
        suites.append(checks.finish(time))

    sessions = _list_of_mappings(report.get("conformance"))
    if sessions:
        smpp = _Suite("smpp-conformance", properties, timestamp)
        for session, classname in zip(sessions, _session_classnames(sessions), strict=True):
            for result in _list_of_mappings(session.get("checks")):
                detail = (f"peer={session.get('peer')} system_id={session.get('system_id')} "
                          f"exercised={result.get('exercised')} violations={result.get('violations')}")
                smpp.case(classname, str(result.get("check")), str(result.get("verdict")),
                          str(result.get("reason", "")), detail)
        suites.append(smpp.finish(0.0 if suites else time))

    errors = report.get("harness_errors")
    if isinstance(errors, Sequence) and not isinstance(errors, str) and errors:
        harness = _Suite("harness", properties, timestamp)
        for i, error in enumerate(errors, 1):
            harness.case(f"harness.{_class_part(scenario)}", f"harness error {i}", "error", str(error))
        suites.append(harness.finish(0.0 if suites else time))

    root = ET.Element("testsuites", name=f"carrier-sim: {_clean(scenario)}")
    # No ``skipped`` total here: the common JUnit XSD (Jenkins xunit-plugin's junit-10.xsd) allows it on
    # ``<testsuite>`` only, and a strict validator refuses the whole file over it. Readers total the suites' own.
    for key in ("tests", "failures", "errors"):
        root.set(key, str(sum(int(s.get(key, "0")) for s in suites)))
    root.set("time", f"{time:.3f}")
    root.extend(suites)
    return root


def _figure(value: object, unit: str, *, with_unit: bool = False) -> str:
    """A threshold or an observed value as the check's reason writes it (:func:`format_value`: ``1234567``, not
    ``1234567.0``; ``0.913883 s``, not ``0.9138827457526327``), with its unit after an observed value."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    text = format_value(float(value), unit)
    return f"{text} {unit}" if with_unit and unit and not text.endswith(f" {unit}") else text


def _xsd_timestamp(started_at: object) -> str | None:
    """The report's ``started_at`` (ISO 8601, ``Z``, microseconds) as the JUnit XSD's ``timestamp`` wants it: UTC,
    seconds, no zone designator (the pattern ``[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}``). None, and
    no attribute, when there is no readable start: an empty or malformed timestamp fails schema validation."""
    if not isinstance(started_at, str):
        return None
    try:
        moment = datetime.fromisoformat(started_at)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    # Truncated, not rounded: the run had started by that second.
    return moment.replace(microsecond=0).isoformat()


def _inconc_fails(report: Mapping[str, object]) -> bool:
    """Whether the run counted its inconclusive checks as failures (strict mode): the report's ``strict``.

    A report written before ``strict`` was recorded betrays the mode only through its verdict: a strict run with an
    inconclusive check (and nothing worse) ends ``inconc``, exit 1; with ``--allow-inconclusive`` the same run ends
    ``pass``, exit 0. A run that also failed or errored ends ``fail``/``error`` either way, so there the mode cannot
    be told; it is taken to be the default, strict -- the job is red anyway, and marking the inconclusive check as
    a failure too shows everything a later run must fix to turn green."""
    strict = report.get("strict")
    if isinstance(strict, bool):
        return strict
    return not (report.get("verdict") == "pass" and report.get("exit_code") == 0)


def _list_of_mappings(value: object) -> list[Mapping[str, object]]:
    if not isinstance(value, Sequence) or isinstance(value, str):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def junit_xml(report: Mapping[str, object]) -> str:
    """The JUnit XML document (UTF-8 declared) for a JSON report."""
    root = junit_element(report)
    ET.indent(root)
    # write_atomically writes UTF-8, which is what the declaration promises.
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(path: str | os.PathLike[str], report: Mapping[str, object]) -> None:
    """Write the JUnit XML for a JSON report to ``path`` (atomically)."""
    write_atomically(path, junit_xml(report))
