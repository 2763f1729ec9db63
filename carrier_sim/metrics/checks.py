"""A scenario's checks, judged against the run's metrics, and the exit code a CI job sees.

Each :class:`~carrier_sim.scenario.model.Check` says ``metric op value``. Judging one gives a :class:`CheckVerdict`:

- ``pass``: the metric has a value and the comparison holds;
- ``fail``: the metric has a value and the comparison does not hold;
- ``inconc``: the metric has no value — no samples in a latency histogram, a ratio whose denominator is zero. The
  run did not exercise what the check is about, so nothing can be said either way;
- ``error``: the harness could not measure — the runner reported the metric's family unmeasured (``harness_ok``),
  the metric could not be computed (it raised), or it came out NaN — or the run was cut short (``interrupted``: a
  signal, the dashboard's ``q``), so its checks were not judged: what was measured until then says nothing about
  the plan, and a reason blaming the harness's measuring would send a CI reader hunting a fault that is not there.

Exit-code policy (:func:`overall`)
----------------------------------
``0`` every check passed; ``1`` a check failed **or was inconclusive**; ``3`` the harness failed to measure
(any ``error``; it wins over failures, since a verdict measured by a broken harness means nothing). ``2`` is left to
command-line usage and scenario-file errors. An inconclusive check fails the exit code by default because a CI
conformance gate must not pass by having tested nothing (a run that carried no traffic would otherwise be green);
``strict=False`` (the CLI's ``--allow-inconclusive``, for exploratory runs) lets inconc through. A scenario with no
checks asserts nothing and exits 0. The SMPP oracle's per-session verdicts do not enter the exit code directly — many
of them are legitimately ``inconc`` (a session that never sent a UDH has nothing to say about UDHI) — but a scenario
gates on them through checks such as ``smpp.conformance.fail == 0``.

``==`` and ``!=`` compare exactly: they are meant for counts.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal, Protocol

from carrier_sim.scenario.model import METRICS, Check

__all__ = [
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_PASS",
    "OPERATORS",
    "CheckVerdict",
    "MetricSource",
    "VerdictName",
    "evaluate",
    "format_value",
    "overall",
    "overall_verdict",
]

#: Exit codes of a judged run (see the module docstring).
EXIT_PASS: Final = 0
EXIT_FAIL: Final = 1
EXIT_ERROR: Final = 3

VerdictName = Literal["pass", "fail", "inconc", "error"]

#: Each comparison a check may state, as the function that decides it.
OPERATORS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
}


class MetricSource(Protocol):
    """What checks read: :class:`carrier_sim.metrics.registry.RunMetrics` or any stand-in."""

    def metric_value(self, name: str) -> float | None:
        """The metric's value, None when undefined; may raise when it cannot be computed."""
        ...


@dataclass(frozen=True, slots=True)
class CheckVerdict:
    """How one check ended: what was observed against what threshold, and why."""

    name: str
    metric: str
    op: str
    threshold: float
    observed: float | None
    verdict: VerdictName
    reason: str
    unit: str = ""
    where: str = ""

    def to_json(self) -> dict[str, object]:
        """JSON-ready (the report's ``checks`` entries)."""
        return {
            "name": self.name,
            "metric": self.metric,
            "op": self.op,
            "threshold": self.threshold,
            "observed": self.observed,
            "unit": self.unit,
            "verdict": self.verdict,
            "reason": self.reason,
            "where": self.where,
        }


def format_value(value: float, unit: str) -> str:
    """A value for people: counts as integers, seconds and ratios to 6 significant digits, never in exponent form
    from a million up (``1.23457e+06`` and ``1.23457e+06`` read as equal when they are 1234566 and 1234567: there
    the value is shown to the unit)."""
    if unit == "count" and float(value).is_integer():
        return str(int(value))
    text = f"{value:.6g}"
    if "e+" in text:
        text = f"{value:.0f}"
    return f"{text} {unit}" if unit in ("s",) else text


def _family(metric: str) -> str:
    return metric.split(".", 1)[0]


def _harness_measured(harness_ok: bool | Mapping[str, bool], metric: str) -> bool:
    if isinstance(harness_ok, bool):
        return harness_ok
    # Families the runner did not mention were not reported broken.
    return harness_ok.get(_family(metric), True)


def _judge(check: Check, metrics: MetricSource, harness_ok: bool | Mapping[str, bool],
           interrupted: str | None) -> CheckVerdict:
    unit = METRICS.get(check.metric, "")

    def verdict(observed: float | None, name: VerdictName, reason: str) -> CheckVerdict:
        return CheckVerdict(check.name, check.metric, check.op, check.value, observed, name, reason, unit, check.where)

    compare = OPERATORS.get(check.op)
    if compare is None:
        return verdict(None, "error", f"unknown comparison {check.op!r}")
    if interrupted is not None:
        # Before harness_ok: stopping a run can also break what it measures (a Ctrl-C reaches the system under
        # test too), and the interruption is then the cause a reader needs, not its symptoms.
        return verdict(None, "error", f"not judged: the run was interrupted ({interrupted}) before its end")
    if not _harness_measured(harness_ok, check.metric):
        return verdict(None, "error", f"the harness failed to measure {_family(check.metric)} metrics")
    try:
        observed = metrics.metric_value(check.metric)
    except Exception as err:  # any failure to compute is the harness's: reported as error, never raised
        return verdict(None, "error", f"{check.metric} could not be computed: {type(err).__name__}: {err}")
    if observed is None:
        return verdict(None, "inconc", f"{check.metric} has no value (no samples, or a ratio of zero events)")
    if math.isnan(observed):
        return verdict(None, "error", f"{check.metric} came out NaN")
    shown = format_value(observed, unit)
    wanted = f"{check.op} {format_value(check.value, unit)}"
    if compare(observed, check.value):
        return verdict(observed, "pass", f"observed {shown}, {wanted} holds")
    return verdict(observed, "fail", f"observed {shown}, expected {wanted}")


def evaluate(
    checks: Iterable[Check],
    metrics: MetricSource,
    harness_ok: bool | Mapping[str, bool] = True,
    *,
    interrupted: str | None = None,
) -> list[CheckVerdict]:
    """Judge every check, in order. ``harness_ok`` is False when the harness failed to measure at all, or maps a
    metric family (the name up to the first dot: ``activation``, ``smpp``...) to False when only that family is
    unmeasured; either turns the affected checks into ``error``. ``interrupted`` names what cut the run short
    (``"SIGINT"``, ``"the dashboard's q"``): every check is then ``error``, "not judged", whatever the metrics or
    ``harness_ok`` say. Never raises for a metric's failure."""
    return [_judge(check, metrics, harness_ok, interrupted) for check in checks]


def overall_verdict(verdicts: Sequence[CheckVerdict], *, strict: bool = True) -> VerdictName:
    """The run's verdict: error, else fail, else inconc, else pass. With ``strict`` (the default) an inconclusive
    check makes the run ``inconc``; without, it counts as passed."""
    kinds = {v.verdict for v in verdicts}
    if "error" in kinds:
        return "error"
    if "fail" in kinds:
        return "fail"
    if strict and "inconc" in kinds:
        return "inconc"
    return "pass"


#: The exit code of each overall verdict: inconc exits as a failure (see the module docstring).
_EXIT_CODES: Final[Mapping[VerdictName, int]] = {
    "pass": EXIT_PASS,
    "fail": EXIT_FAIL,
    "inconc": EXIT_FAIL,
    "error": EXIT_ERROR,
}


def overall(verdicts: Sequence[CheckVerdict], *, strict: bool = True) -> int:
    """The process exit code for these verdicts: 0 pass, 1 fail or inconclusive, 3 harness error."""
    return _EXIT_CODES[overall_verdict(verdicts, strict=strict)]
