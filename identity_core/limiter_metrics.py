"""The velocity limiter's own figures, in ``/metrics``: prefix blocks started and in force, and lossy evictions.

Refusals are already counted where they happen (``identity_refusals_total{stage,reason}``, one per refused
request); what that cannot show is how many *prefixes* were found pumping and how many are blocked right now,
which is what an operator looks at when a range goes quiet. Like :mod:`identity_core.gateway_metrics`, the
collector reads the limiter's plain integers at scrape time instead of mirroring each change into a Counter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from identity_core.limits import VelocityLimiter

__all__ = ["LimiterCollector"]

_BLOCKS = ("identity_prefix_blocks", "Prefixes blocked for pumping REG-REQ traffic (blocks started)")
_BLOCKED = ("identity_prefix_blocked", "Prefixes blocked at the time of the scrape")
_EVICTIONS = ("identity_pump_counter_evictions",
              "Pump counters dropped at the max_entries cap while they still counted (a limit too small)")
# Exported apart from the pump counters': a bucket dropped before it refilled resets one number's (or prefix's,
# or carrier's) limit early, which under a flood of distinct numbers is the sign that max_entries is too small.
_BUCKET_EVICTIONS = ("identity_bucket_evictions",
                     "Velocity-limit buckets dropped at the max_entries cap before they had refilled (a limit reset "
                     "early: max_entries too small)")


class LimiterCollector(Collector):
    """Yields the limiter's block counter, its blocks in force at ``clock()``, and its lossy evictions (pump
    counters and buckets apart)."""

    def __init__(self, limiter: VelocityLimiter, clock: Callable[[], float]) -> None:
        self._limiter = limiter
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        limiter = self._limiter
        blocks = CounterMetricFamily(*_BLOCKS)
        blocks.add_metric([], limiter.blocks_started)
        blocked = GaugeMetricFamily(*_BLOCKED)
        blocked.add_metric([], len(limiter.blocked_prefixes(self._clock())))
        evictions = CounterMetricFamily(*_EVICTIONS)
        evictions.add_metric([], limiter.lossy_counter_evictions)
        bucket_evictions = CounterMetricFamily(*_BUCKET_EVICTIONS)
        bucket_evictions.add_metric([], limiter.lossy_bucket_evictions)
        yield from (blocks, blocked, evictions, bucket_evictions)

    def describe(self) -> Iterator[Metric]:
        # Names only: registering the collector must not read the limiter.
        yield from (
            CounterMetricFamily(*_BLOCKS),
            GaugeMetricFamily(*_BLOCKED),
            CounterMetricFamily(*_EVICTIONS),
            CounterMetricFamily(*_BUCKET_EVICTIONS),
        )
