"""What the standalone ``carrier-sim smsc`` writes when it stops: its verdicts as JSON (``--json``) and JUnit
(``--junit``), for a CI job that runs its own ESME against the emulated SMSC.

The JSON is the control API's ``GET /stats`` document (:func:`stats_document`: counters, binds and every session's
conformance verdicts) with the SMSC's overall verdict and when it ran; the JUnit holds one testcase per session
check, named as a scenario run's ``smpp-conformance`` suite names them (:func:`carrier_sim.report.junit.junit_xml`
renders both), so a fail is a ``<failure>`` and a check the session never exercised is ``<skipped>``. An SMSC no
ESME connected to tested nothing: its JUnit is one failing testcase saying so, not an empty file a CI gate reading
the counts would pass.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

from carrier_sim.smsc.centre import Smsc

__all__ = ["NO_SESSION_REASON", "SMSC_REPORT_VERSION", "overall_session_verdict", "smsc_junit_document",
           "smsc_report", "stats_document"]

#: Version of the standalone report's shape (docs/smsc.md); changes when a field changes meaning or goes away.
SMSC_REPORT_VERSION: Final = 1

_RANK: Final = {"pass": 0, "inconc": 1, "fail": 2}

#: Why the JSON's ``verdict`` is ``inconc`` with no sessions, and the message of the JUnit failure that says so.
NO_SESSION_REASON: Final = "no ESME connected: nothing was tested"


def stats_document(smsc: Smsc) -> dict[str, object]:
    """Counters, the number of bound sessions and every session's verdicts: ``GET /stats``'s body."""
    return {
        "smsc": smsc.config.name,
        "stats": smsc.stats.to_json(),
        "bound": len([c for c in smsc.connections.values() if c.account is not None]),
        "sessions": smsc.verdicts(),
    }


def overall_session_verdict(sessions: list[dict[str, object]]) -> str:
    """The worst verdict of any session's checks: ``fail``, else ``inconc``, else ``pass``. No session at all is
    ``inconc``: no ESME bound, so nothing was tested."""
    worst = "inconc" if not sessions else "pass"
    for session in sessions:
        checks = session.get("checks")
        for check in checks if isinstance(checks, list) else ():
            verdict = str(check.get("verdict")) if isinstance(check, Mapping) else "fail"
            # A verdict this module does not know is never taken for a pass.
            if _RANK.get(verdict, 2) > _RANK[worst]:
                worst = verdict if verdict in _RANK else "fail"
    return worst


def smsc_report(smsc: Smsc, *, started_at: float, duration: float) -> dict[str, object]:
    """The standalone SMSC's JSON report: :func:`stats_document` plus ``verdict``, ``started_at``, ``duration``."""
    doc = stats_document(smsc)
    sessions = doc["sessions"]
    assert isinstance(sessions, list)
    return {
        "schema_version": SMSC_REPORT_VERSION,
        "verdict": overall_session_verdict(sessions),
        "started_at": datetime.fromtimestamp(started_at, UTC).isoformat().replace("+00:00", "Z"),
        "duration": duration if math.isfinite(duration) else None,
        **doc,
    }


def smsc_junit_document(report: Mapping[str, object]) -> dict[str, object]:
    """The :func:`smsc_report` in the shape :func:`~carrier_sim.report.junit.junit_xml` renders: the sessions as
    conformance entries of the SMSC (their ``carrier``), and no ``seed`` (the SMSC has none).

    With no session at all, no conformance suite: one inconclusive check instead (:data:`NO_SESSION_REASON`), a
    ``<failure type="inconc">`` as a strict scenario run renders its inconclusive checks, so the counts show the
    ``inconc`` the JSON's verdict says. With sessions, no ``checks`` key, so no empty ``checks`` suite."""
    name = str(report.get("smsc"))
    sessions = report.get("sessions")
    conformance = ([{"carrier": name, **s} for s in sessions if isinstance(s, Mapping)]
                   if isinstance(sessions, list) else [])
    document: dict[str, object] = {
        "scenario": f"smsc {name}",
        "verdict": report.get("verdict"),
        "exit_code": 0,  # the command exits 0 whatever its verdicts (docs/smsc.md); the failures are in the file
        "strict": True,  # an inconclusive "nothing connected" fails: a gate must not pass an SMSC nobody tested
        "started_at": report.get("started_at"),
        "duration": report.get("duration"),
        "conformance": conformance,
    }
    if not conformance:
        document["checks"] = [{"name": "ESME connected", "verdict": "inconc", "reason": NO_SESSION_REASON}]
    return document
