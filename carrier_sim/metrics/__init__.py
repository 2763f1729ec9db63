"""The run's measurements and the checks judged on them.

:mod:`carrier_sim.metrics.registry` holds counters and mergeable latency histograms (:class:`RunMetrics`);
:mod:`carrier_sim.metrics.checks` turns a scenario's checks into verdicts and the run's exit code.
"""

from carrier_sim.metrics.checks import (
    EXIT_ERROR,
    EXIT_FAIL,
    EXIT_PASS,
    CheckVerdict,
    evaluate,
    overall,
    overall_verdict,
)
from carrier_sim.metrics.registry import (
    DEFAULT_RELATIVE_ACCURACY,
    PERCENTILES,
    RATIOS,
    LatencyHistogram,
    MetricsFormatError,
    RunMetrics,
    UnknownMetricError,
)

__all__ = [
    "DEFAULT_RELATIVE_ACCURACY",
    "EXIT_ERROR",
    "EXIT_FAIL",
    "EXIT_PASS",
    "PERCENTILES",
    "RATIOS",
    "CheckVerdict",
    "LatencyHistogram",
    "MetricsFormatError",
    "RunMetrics",
    "UnknownMetricError",
    "evaluate",
    "overall",
    "overall_verdict",
]
