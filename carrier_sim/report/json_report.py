"""The run's JSON report: everything CI and people read after a run, in one documented document.

The schema is described in docs/report.md; :data:`SCHEMA_VERSION` changes whenever a field changes meaning or goes
away (adding a field does not change it). The JUnit XML (:mod:`carrier_sim.report.junit`) is rendered from this same
document, so the two can never disagree.

Floats that JSON cannot carry (NaN, infinities) are written as ``null``, and a lone UTF-16 surrogate in a string
(what Python makes of a file name that is not UTF-8, ``t\\udcff.yaml``) as U+FFFD, as the JUnit writer does: a
report must always be written, and a strict JSON reader must always be able to read it (I-JSON, RFC 7493 section
2.1, forbids lone surrogates, and strict UTF-8 decoders refuse them).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, cast

from carrier_sim.metrics.checks import EXIT_ERROR, CheckVerdict, overall, overall_verdict
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.outputs import open_beside, resolve_output
from carrier_sim.scenario.model import Load

__all__ = [
    "REPORT_KEYS",
    "SCHEMA_VERSION",
    "build_report",
    "dumps_report",
    "tag_sessions",
    "validate_report",
    "write_atomically",
    "write_report",
]

#: Version of the report's shape (see docs/report.md).
SCHEMA_VERSION: Final = 1

#: Every top-level key of a report, with the JSON types its value may have.
REPORT_KEYS: Final[Mapping[str, tuple[type, ...]]] = {
    "schema_version": (int,),
    "scenario": (str,),
    "seed": (int,),
    "verdict": (str,),
    "exit_code": (int,),
    "strict": (bool,),
    "checks": (list,),
    "metrics": (dict,),
    "carriers": (dict,),
    "conformance": (list,),
    "load": (dict,),
    "started_at": (str,),
    # null when the duration is not a finite number (the module docstring): still a report, and a valid one.
    "duration": (int, float, type(None)),
    "harness_errors": (list,),
}

#: Keys added to this schema version after it first shipped: a report written before them is valid without them.
_ADDED_KEYS: Final = frozenset({"strict"})

_VERDICTS: Final = frozenset({"pass", "fail", "inconc", "error"})
_CHECK_KEYS: Final = ("name", "metric", "op", "threshold", "observed", "unit", "verdict", "reason", "where")
_SESSION_KEYS: Final = ("carrier", "peer", "system_id", "checks")


def tag_sessions(carrier: str, sessions: Iterable[Mapping[str, object]]) -> list[dict[str, object]]:
    """An SMSC's ``verdicts()`` as report ``conformance`` entries: each session with its carrier's name."""
    return [{"carrier": carrier, **session} for session in sessions]


def _iso(moment: datetime | float) -> str:
    if not isinstance(moment, datetime):
        moment = datetime.fromtimestamp(moment, UTC)
    elif moment.tzinfo is None:
        # A naive time is taken as UTC rather than the machine's zone, so reports from CI machines compare.
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


#: A lone UTF-16 surrogate: half of a pair and no character, which json.dumps would write as an escape.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _text(value: str) -> str:
    return _SURROGATE.sub("\ufffd", value)


def _finite(value: object) -> object:
    """``value`` with every non-finite float replaced by None (JSON has no NaN or infinity) and every lone
    surrogate in a string or key by U+FFFD, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, Mapping):
        return {_text(str(k)): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _load_rates(load: Load | None, metrics: RunMetrics) -> tuple[float | None, float | None, float | None]:
    """(target, achieved, declared) arrival rates per second over the load phases.

    The window is the phases' total duration, not the run's: after the last phase no arrival is planned, and the
    drain that follows would dilute both rates alike, hiding late arrivals behind ``target == achieved``.
    ``target`` is what this run planned (each phone arrives at most once, so it is the declared load thinned to
    the population), ``achieved`` what went out on time (within the runner's 0.25 s), ``declared`` what the
    phases ask for before thinning (``None`` for the closed model, which declares concurrency, not a rate)."""
    if load is None:
        return None, None, None
    window = sum(p.duration for p in load.phases)
    if window <= 0:
        return None, None, None
    declared = (
        sum((p.rate_from + p.rate_to) / 2.0 * p.duration for p in load.phases) / window
        if load.model == "open" else None
    )
    return metrics.counter("load.planned") / window, metrics.counter("load.on_time") / window, declared


def build_report(
    *,
    scenario: str,
    seed: int,
    checks: Sequence[CheckVerdict],
    metrics: RunMetrics,
    started_at: datetime | float,
    duration: float,
    carriers: Mapping[str, Mapping[str, object]] | None = None,
    conformance: Sequence[Mapping[str, object]] = (),
    load: Load | None = None,
    load_target: float | None = None,
    load_achieved: float | None = None,
    tick_p99: float | None = None,
    harness_errors: Sequence[str] = (),
    strict: bool = True,
) -> dict[str, object]:
    """Assemble the report of a run.

    ``carriers`` adds what the runner knows about each carrier (SMSC statistics, binds...) to the per-carrier
    counters and latencies the metrics hold. ``conformance`` is the SMSCs' per-session verdicts, each with a
    ``carrier`` (:func:`tag_sessions`). ``load`` is the scenario's load: the report's ``load.target`` is then the
    ``load.planned`` counter (the run's arrivals after thinning to the population) and ``load.achieved`` the
    ``load.on_time`` counter, each over the load phases' total duration (not the run's ``duration``, which includes
    the drain), and ``load.declared`` the rate the phases declare before thinning (open model; else ``None``).
    ``load_target``/``load_achieved``, arrival rates per second, override the derived figures; without ``load``
    all three are ``None`` (unknown) unless given. ``tick_p99``, the
    p99 of the runner's tick interval in seconds, is added to ``load`` when given. ``harness_errors`` are the
    runner's own failures (an SMSC that could not start, a system under test that never bound, a loop that fell
    behind): any of them makes the run's verdict ``error`` and its exit code 3 whatever the checks say, because a
    verdict measured by a broken harness means nothing. ``strict`` is the exit-code policy of
    :func:`carrier_sim.metrics.checks.overall` (inconclusive fails), recorded as the report's ``strict``."""
    snapshot = metrics.snapshot()
    per_carrier = cast(dict[str, Mapping[str, object]], snapshot["carriers"])
    carrier_doc: dict[str, dict[str, object]] = {name: dict(doc) for name, doc in per_carrier.items()}
    for name, extra in (carriers or {}).items():
        carrier_doc.setdefault(name, {"counters": {}, "latency": {}}).update(extra)
    target, achieved, declared = _load_rates(load, metrics)
    load_doc: dict[str, object] = {
        "target": target if load_target is None else load_target,
        "achieved": achieved if load_achieved is None else load_achieved,
    }
    load_doc["declared"] = declared
    if tick_p99 is not None:
        load_doc["tick_p99"] = tick_p99
    doc: dict[str, object] = {
        "schema_version": SCHEMA_VERSION,
        "scenario": scenario,
        "seed": seed,
        "verdict": "error" if harness_errors else overall_verdict(checks, strict=strict),
        "exit_code": EXIT_ERROR if harness_errors else overall(checks, strict=strict),
        # Recorded, not left to be inferred from verdict and exit code: a run that failed anyway ends the same
        # either way, and the JUnit writer needs the policy to render its inconclusive checks.
        "strict": strict,
        "checks": [c.to_json() for c in checks],
        "metrics": snapshot,
        "carriers": dict(sorted(carrier_doc.items())),
        "conformance": [dict(session) for session in conformance],
        "load": load_doc,
        "started_at": _iso(started_at),
        # Never negative: a run takes no less than no time, and a clock stepped back under it must not give a
        # report (and a JUnit time) that readers refuse. A non-finite one becomes null below.
        "duration": max(0.0, duration) if math.isfinite(duration) else duration,
        "harness_errors": [str(e) for e in harness_errors],
    }
    return cast(dict[str, object], _finite(doc))


def validate_report(doc: object) -> list[str]:
    """What is wrong with a report's shape (empty when it is a valid report of :data:`SCHEMA_VERSION`)."""
    if not isinstance(doc, Mapping):
        return ["a report is a JSON object"]
    problems: list[str] = []
    for key, types in REPORT_KEYS.items():
        if key not in doc:
            if key not in _ADDED_KEYS:
                problems.append(f"missing {key!r}")
        # bool is an int to Python, not to JSON: true is no seed.
        elif not isinstance(doc[key], types) or (isinstance(doc[key], bool) and bool not in types):
            problems.append(f"{key!r} is {type(doc[key]).__name__}, expected {'/'.join(t.__name__ for t in types)}")
    if problems:
        return problems
    if doc["schema_version"] != SCHEMA_VERSION:
        problems.append(f"schema_version {doc['schema_version']} is not {SCHEMA_VERSION}")
    if doc["verdict"] not in _VERDICTS:
        problems.append(f"verdict {doc['verdict']!r} is not one of {sorted(_VERDICTS)}")
    for i, check in enumerate(doc["checks"]):
        if not isinstance(check, Mapping) or any(k not in check for k in _CHECK_KEYS):
            problems.append(f"checks[{i}] lacks one of {_CHECK_KEYS}")
        elif check["verdict"] not in _VERDICTS:
            problems.append(f"checks[{i}] verdict {check['verdict']!r} is unknown")
    for i, session in enumerate(doc["conformance"]):
        if not isinstance(session, Mapping) or any(k not in session for k in _SESSION_KEYS):
            problems.append(f"conformance[{i}] lacks one of {_SESSION_KEYS}")
        elif not isinstance(session["checks"], list):
            problems.append(f"conformance[{i}].checks is not a list")
    load = doc["load"]
    if not isinstance(load, Mapping) or not {"target", "achieved"} <= set(load):
        problems.append("load lacks target/achieved")
    return problems


def dumps_report(doc: Mapping[str, object]) -> str:
    """The report as JSON text (strict: no NaN), indented for people and diff tools."""
    return json.dumps(_finite(doc), indent=2, allow_nan=False) + "\n"


def write_atomically(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename, so a reader (or a run killed mid-write)
    never sees half a report.

    A symbolic link is followed: the file it points to is replaced and the link stays (a rename onto the link
    would have replaced the link itself and left its target stale). An existing target that is not a regular file
    (a directory, a FIFO, a socket, a device) is refused with an :class:`OSError`
    (:class:`~carrier_sim.outputs.NotAnOutputFile`) rather than replaced by a file."""
    target = resolve_output(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    out, tmp = open_beside(target)
    try:
        with out:
            out.write(text.encode("utf-8"))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_report(path: str | os.PathLike[str], doc: Mapping[str, object]) -> None:
    """Write the JSON report to ``path`` (atomically)."""
    write_atomically(path, dumps_report(doc))
