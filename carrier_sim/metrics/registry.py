"""The run's measurements: counters and latency histograms that merge exactly across shard processes.

Theory of operation
-------------------
Every shard keeps one :class:`RunMetrics`. Counters are integers keyed by name, kept as a run total and, when the
caller says so, again under a carrier and/or a flow. Latencies go into DDSketch histograms (the ``ddsketch``
package, Datadog's reference Python implementation): a sketch is a set of logarithmic buckets, so two sketches
built with the same relative accuracy merge by adding bucket counts, and the merged sketch is *the same sketch*
one process would have built from all the samples. That is why the runner ships whole registries between
processes (:meth:`RunMetrics.to_bytes` / :meth:`RunMetrics.from_bytes`, or plain pickling, which Ray does) and
merges them with :meth:`RunMetrics.merge` — never percentiles, which cannot be combined.

A quantile read from a sketch is within ``relative_accuracy`` (1 % by default) of the true sample quantile, taken
by nearest rank (:meth:`LatencyHistogram.quantile`: the sample of rank ``ceil(q * n)``, never one below the tail on a
small run). Count, sum, minimum and maximum are kept exactly beside the sketch.

Metric names
------------
:meth:`RunMetrics.metric_value` resolves the names a scenario's checks may use
(:data:`carrier_sim.scenario.model.METRICS`):

- ``<family>.latency.pNN`` — quantile 0.NN of histogram ``<family>`` (``p50``, ``p90``, ``p99``, ``p999`` = 0.999);
  also ``.min``, ``.max``, ``.mean``, ``.count``. ``None`` when the histogram has no samples.
- ratios (:data:`RATIOS`): ``activation.success_ratio`` = ``activation.completed`` / ``activation.started``,
  ``events.revocation_ratio`` = ``events.revoked`` / ``events.applied`` (phones a SIM swap or port-out hit),
  ``load.achieved_ratio`` = ``load.on_time`` / ``load.planned`` (arrivals that went out within
  :data:`carrier_sim.runner.run.LATE_ARRIVAL` of their planned moment / arrivals the plan called for: a runner
  too busy to keep its schedule shows here, not only in latencies). ``None`` when the denominator is zero: a
  ratio of nothing is undefined, not 0 or 1.
- anything else is a counter; a counter of :data:`METRICS` nobody incremented is 0 (nothing happened is a
  measurement), while a name neither in METRICS nor ever counted raises :class:`UnknownMetricError`.
"""

from __future__ import annotations

import math
import pickle
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt
from ddsketch import DDSketch, LogarithmicMapping

from carrier_sim.scenario.model import FLOW_NAMES, METRICS

__all__ = [
    "DEFAULT_RELATIVE_ACCURACY",
    "PERCENTILES",
    "RATIOS",
    "LatencyHistogram",
    "MetricsFormatError",
    "RunMetrics",
    "UnknownMetricError",
]

#: Relative error of every quantile a histogram reports (DDSketch's alpha).
DEFAULT_RELATIVE_ACCURACY: Final = 0.01

#: The percentiles a snapshot reports for each histogram: label -> quantile.
PERCENTILES: Final[Mapping[str, float]] = {"p50": 0.50, "p90": 0.90, "p99": 0.99, "p99.9": 0.999}

#: Ratio metrics: name -> (numerator counter, denominator counter).
RATIOS: Final[Mapping[str, tuple[str, str]]] = {
    **{f"{flow}.success_ratio": (f"{flow}.completed", f"{flow}.started") for flow in FLOW_NAMES},
    "events.revocation_ratio": ("events.revoked", "events.applied"),
    "load.achieved_ratio": ("load.on_time", "load.planned"),
}

#: Marks the bytes of :meth:`RunMetrics.to_bytes`, so a stray file is refused before it is unpickled as
#: something else; the trailing number is the format version.
_MAGIC: Final = b"carrier-sim-metrics/1\n"

_LATENCY_NAME: Final = re.compile(r"^(?P<family>.+)\.latency\.(?P<stat>p[1-9][0-9]*|min|max|mean|count)$")


class UnknownMetricError(KeyError):
    """A metric name that is neither a ratio, a latency statistic nor a counter name the registry accepts."""


class MetricsFormatError(ValueError):
    """Bytes given to :meth:`RunMetrics.from_bytes` that are not a serialised registry of this format."""


def _new_sketch(relative_accuracy: float) -> DDSketch:
    # The unbounded dense store: its size grows with log(max/min), about 1 100 buckets for 1 µs .. 1 h at 1 %, and
    # unlike the collapsing stores it never folds buckets, so merging stays exact.
    return DDSketch(relative_accuracy)


@dataclass(slots=True)
class LatencyHistogram:
    """One latency distribution in seconds: a DDSketch for quantiles, with exact count, sum, min and max."""

    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    count: int = 0
    total: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    sketch: DDSketch = field(init=False, repr=False)
    _mapping: LogarithmicMapping = field(init=False, repr=False)
    _log2_multiplier: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.sketch = _new_sketch(self.relative_accuracy)
        # A mapping equal to the sketch's own, used only through its public key()/value(), for the numpy path.
        self._mapping = LogarithmicMapping(self.relative_accuracy)
        # DDSketch's logarithmic mapping: key(v) = ceil(log_gamma(v)) = ceil(log2(v) * ln 2 / ln gamma), with
        # gamma = (1 + a) / (1 - a). Recomputed here from the same definition so numpy can key a whole array.
        alpha = self.relative_accuracy
        self._log2_multiplier = math.log(2.0) / math.log1p(2.0 * alpha / (1.0 - alpha))

    def record(self, seconds: float) -> None:
        """Add one sample. Raises ValueError for a negative or non-finite latency (a harness bug, not data)."""
        value = float(seconds)
        if not math.isfinite(value) or value < 0.0:
            raise ValueError(f"a latency must be finite and >= 0 seconds, got {seconds!r}")
        self.sketch.add(value)
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def record_many(self, seconds: npt.ArrayLike) -> None:
        """Add every sample of an array at numpy speed (one sketch update per distinct bucket, not per sample)."""
        values = np.asarray(seconds, dtype=np.float64).ravel()
        if values.size == 0:
            return
        if not bool(np.all(np.isfinite(values))) or bool(np.any(values < 0.0)):
            raise ValueError("latencies must be finite and >= 0 seconds")
        positive = values > self._mapping.min_possible
        zeros = int(values.size - np.count_nonzero(positive))
        if zeros:
            self.sketch.add(0.0, float(zeros))
        if zeros != values.size:
            keys = np.ceil(np.log2(values[positive]) * self._log2_multiplier).astype(np.int64)
            unique, counts = np.unique(keys, return_counts=True)
            for key, n in zip(unique.tolist(), counts.tolist(), strict=True):
                # The bucket's representative value lies strictly inside the bucket, so the sketch files it under
                # the same key: the same buckets as n scalar adds, at a cost per bucket. The sketch's own sum,
                # min and max are then approximate, which is why this class keeps the exact ones itself.
                self.sketch.add(self._mapping.value(key), float(n))
        self.count += int(values.size)
        self.total += float(values.sum())
        self.minimum = min(self.minimum, float(values.min()))
        self.maximum = max(self.maximum, float(values.max()))

    def merge(self, other: LatencyHistogram) -> None:
        """Add ``other``'s samples to this histogram (exact: bucket counts add)."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge histograms of relative accuracy {self.relative_accuracy} and {other.relative_accuracy}"
            )
        self.sketch.merge(other.sketch)
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)

    def quantile(self, q: float) -> float | None:
        """The nearest-rank value at quantile ``q`` (0..1), within the relative accuracy; None without samples.

        Nearest rank: the smallest sample that at least ``q`` of the samples are at or below, the one of rank
        ``ceil(q * n)`` (1-based) among ``n``. DDSketch's own definition takes rank ``q * (n - 1)`` rounded down,
        which below 100 samples never reaches the slowest one for p99 (below 1000 for p99.9): 39 phones at 0.5 s
        and one at 5 s read p99 = 0.5 s, and a check ``p99 <= 1`` passed with 2.5 % of the phones at 5 s."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"a quantile is within 0..1, got {q}")
        n = self.count
        if n == 0:
            return None
        # Rounded first so that 0.99 x 100 (a float a hair above 99) is rank 99, not 100.
        index = max(1, math.ceil(round(q * n, 6))) - 1  # 0-based
        # The extremes are kept exactly; between them the sketch answers for the sample at ``index``. Asked for
        # quantile (index + 0.5) / (n - 1), it takes the first bucket whose running count passes index + 0.5, so
        # the one holding sample ``index``: half a rank of margin against the float's rounding either way.
        if index == 0:
            return self.minimum
        if index == n - 1:
            return self.maximum
        value = self.sketch.get_quantile_value((index + 0.5) / (n - 1))
        if value is None:
            return None
        # The sketch answers with a bucket's representative value, which may lie just outside the samples' range;
        # clamping to the exact extremes keeps p0/p100 (and every quantile) within what was observed.
        return min(max(float(value), self.minimum), self.maximum)

    @property
    def mean(self) -> float | None:
        """The exact mean, or None without samples."""
        return self.total / self.count if self.count else None

    def summary(self) -> dict[str, float | int | None]:
        """JSON-ready: count, min, max, mean and the :data:`PERCENTILES`."""
        out: dict[str, float | int | None] = {
            "count": self.count,
            "min": self.minimum if self.count else None,
            "max": self.maximum if self.count else None,
            "mean": self.mean,
        }
        for label, q in PERCENTILES.items():
            out[label] = self.quantile(q)
        return out

    def statistic(self, stat: str) -> float | None:
        """``pNN`` (quantile 0.NN), ``min``, ``max``, ``mean`` or ``count``; None when there are no samples."""
        if stat == "count":
            return float(self.count)
        if self.count == 0:
            return None
        if stat == "min":
            return self.minimum
        if stat == "max":
            return self.maximum
        if stat == "mean":
            return self.mean
        if stat.startswith("p") and stat[1:].isdigit():
            # "p99" is 0.99 and "p999" 0.999: the digits are the quantile's decimals.
            return self.quantile(float("0." + stat[1:]))
        raise UnknownMetricError(stat)


def _counter_dict(counter: Counter[str]) -> dict[str, int]:
    return dict(sorted(counter.items()))


@dataclass(slots=True)
class RunMetrics:
    """Counters and latency histograms of one run (or one shard of it). See the module docstring."""

    relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY
    counters: Counter[str] = field(default_factory=Counter)
    carrier_counters: dict[str, Counter[str]] = field(default_factory=dict)
    flow_counters: dict[str, Counter[str]] = field(default_factory=dict)
    histograms: dict[str, LatencyHistogram] = field(default_factory=dict)
    carrier_histograms: dict[str, dict[str, LatencyHistogram]] = field(default_factory=dict)

    # -- recording --------------------------------------------------------------------------------------------

    def count(self, name: str, n: int = 1, *, carrier: str | None = None, flow: str | None = None) -> None:
        """Add ``n`` to counter ``name``: to the run total, and also under ``carrier`` and/or ``flow`` if given."""
        if n < 0:
            # Counters only grow; a negative step would make merged shards disagree with a single run's order.
            raise ValueError(f"a counter step is >= 0, got {n}")
        self.counters[name] += n
        if carrier is not None:
            self.carrier_counters.setdefault(carrier, Counter())[name] += n
        if flow is not None:
            self.flow_counters.setdefault(flow, Counter())[name] += n

    def record_latency(self, name: str, seconds: float | npt.ArrayLike, carrier: str | None = None) -> None:
        """Record latency samples (seconds) in histogram ``name``, and under ``carrier`` too if given.

        ``seconds`` is one number or an array of them (numpy arrays take the vectorised path)."""
        targets = [self._histogram(self.histograms, name)]
        if carrier is not None:
            targets.append(self._histogram(self.carrier_histograms.setdefault(carrier, {}), name))
        if np.ndim(seconds) == 0:
            value = float(np.asarray(seconds, dtype=np.float64))
            for hist in targets:
                hist.record(value)
        else:
            array = np.asarray(seconds, dtype=np.float64)
            for hist in targets:
                hist.record_many(array)

    def record_conformance(self, sessions: Iterable[Mapping[str, object]], carrier: str | None = None) -> None:
        """Count an SMSC's per-session oracle verdicts (``Smsc.verdicts()``) into ``smpp.conformance.<verdict>``.

        Call it once per SMSC with its final verdicts: every (session, check) adds one to pass, fail or inconc. An
        entry that stands for many sessions (the SMSC's summary of those it no longer keeps one by one) carries
        per-verdict counts under ``"verdicts"``; they are added instead of one."""
        for session in sessions:
            checks = session.get("checks", ())
            if not isinstance(checks, Iterable):
                raise TypeError(f"a session's checks are a list, got {type(checks).__name__}")
            for check in checks:
                if not isinstance(check, Mapping):
                    raise TypeError(f"a check result is a mapping, got {type(check).__name__}")
                verdict = check.get("verdict")
                if verdict not in ("pass", "fail", "inconc"):
                    raise ValueError(f"unknown conformance verdict {verdict!r}")
                tally = check.get("verdicts")
                if isinstance(tally, Mapping):
                    for name in ("pass", "fail", "inconc"):
                        n = tally.get(name, 0)
                        if not isinstance(n, int) or n < 0:
                            raise ValueError(f"a {name} count is a non-negative integer, got {n!r}")
                        if n:
                            self.count(f"smpp.conformance.{name}", n, carrier=carrier)
                    continue
                self.count(f"smpp.conformance.{verdict}", carrier=carrier)

    def _histogram(self, table: dict[str, LatencyHistogram], name: str) -> LatencyHistogram:
        hist = table.get(name)
        if hist is None:
            hist = table[name] = LatencyHistogram(self.relative_accuracy)
        return hist

    # -- reading ----------------------------------------------------------------------------------------------

    def counter(self, name: str, *, carrier: str | None = None, flow: str | None = None) -> int:
        """A counter's value: the run total, or the share counted under ``carrier`` or ``flow``."""
        if carrier is not None and flow is not None:
            raise ValueError("counters are kept per carrier or per flow, not per pair")
        if carrier is not None:
            return self.carrier_counters.get(carrier, Counter())[name]
        if flow is not None:
            return self.flow_counters.get(flow, Counter())[name]
        return self.counters[name]

    def histogram(self, name: str, carrier: str | None = None) -> LatencyHistogram | None:
        """Histogram ``name`` (run-wide or for ``carrier``), or None if nothing was recorded in it."""
        table = self.histograms if carrier is None else self.carrier_histograms.get(carrier, {})
        return table.get(name)

    def quantile(self, name: str, q: float, carrier: str | None = None) -> float | None:
        """Quantile ``q`` of histogram ``name``, None without samples."""
        hist = self.histogram(name, carrier)
        return None if hist is None else hist.quantile(q)

    def metric_value(self, name: str) -> float | None:
        """The value of a check's metric (see the module docstring); None when it is undefined (no samples, a
        ratio of zero). Raises :class:`UnknownMetricError` for a latency statistic it cannot read."""
        ratio = RATIOS.get(name)
        if ratio is not None:
            numerator, denominator = ratio
            below = self.counters[denominator]
            return self.counters[numerator] / below if below else None
        match = _LATENCY_NAME.match(name)
        if match is not None:
            hist = self.histograms.get(match["family"])
            if hist is None:
                return 0.0 if match["stat"] == "count" else None
            return hist.statistic(match["stat"])
        # A counter nobody incremented reads 0 only when the name is a known metric: an unknown name with no counts
        # is far likelier a typo than a measurement, and must not pass a check as "0 happened".
        if name in METRICS or name in self.counters:
            return float(self.counters[name])
        raise UnknownMetricError(name)

    # -- shards -----------------------------------------------------------------------------------------------

    def merge(self, other: RunMetrics) -> RunMetrics:
        """Add ``other`` (another shard) into this registry; returns self. Exact for counters and histograms."""
        if other.relative_accuracy != self.relative_accuracy:
            raise ValueError(
                f"cannot merge registries of relative accuracy {self.relative_accuracy} and {other.relative_accuracy}"
            )
        self.counters.update(other.counters)
        for carrier, counts in other.carrier_counters.items():
            self.carrier_counters.setdefault(carrier, Counter()).update(counts)
        for flow, counts in other.flow_counters.items():
            self.flow_counters.setdefault(flow, Counter()).update(counts)
        for name, hist in other.histograms.items():
            self._histogram(self.histograms, name).merge(hist)
        for carrier, table in other.carrier_histograms.items():
            mine = self.carrier_histograms.setdefault(carrier, {})
            for name, hist in table.items():
                self._histogram(mine, name).merge(hist)
        return self

    @classmethod
    def merged(cls, shards: Iterable[RunMetrics], relative_accuracy: float = DEFAULT_RELATIVE_ACCURACY) -> RunMetrics:
        """A new registry holding every shard's counts."""
        total = cls(relative_accuracy)
        for shard in shards:
            total.merge(shard)
        return total

    def to_bytes(self) -> bytes:
        """Serialise for another process (:meth:`from_bytes`). Pickle-based: exchange only between the run's own
        processes, never load bytes from an untrusted source."""
        return _MAGIC + pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_bytes(cls, data: bytes) -> RunMetrics:
        """The registry :meth:`to_bytes` wrote. Raises :class:`MetricsFormatError` for anything else."""
        if not data.startswith(_MAGIC):
            raise MetricsFormatError("not a carrier-sim metrics registry (missing or different format header)")
        try:
            obj = pickle.loads(data[len(_MAGIC):])
        except Exception as err:
            raise MetricsFormatError(f"corrupt metrics registry: {err}") from err
        if not isinstance(obj, cls):
            raise MetricsFormatError(f"expected a RunMetrics, got {type(obj).__name__}")
        return obj

    # -- reporting --------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, object]:
        """A JSON-ready view: totals, per carrier, per flow, latency summaries and every check metric's value.

        Shape (documented in docs/report.md)::

            {"relative_accuracy": 0.01,
             "counters": {name: int},
             "latency": {name: {"count", "min", "max", "mean", "p50", "p90", "p99", "p99.9"}},
             "carriers": {carrier: {"counters": {...}, "latency": {...}}},
             "flows": {flow: {"counters": {...}}},
             "values": {metric name: float | null}}  # every name in scenario.model.METRICS
        """
        carriers: dict[str, object] = {}
        for carrier in sorted(set(self.carrier_counters) | set(self.carrier_histograms)):
            carriers[carrier] = {
                "counters": _counter_dict(self.carrier_counters.get(carrier, Counter())),
                "latency": {
                    name: hist.summary() for name, hist in sorted(self.carrier_histograms.get(carrier, {}).items())
                },
            }
        return {
            "relative_accuracy": self.relative_accuracy,
            "counters": _counter_dict(self.counters),
            "latency": {name: hist.summary() for name, hist in sorted(self.histograms.items())},
            "carriers": carriers,
            "flows": {flow: {"counters": _counter_dict(c)} for flow, c in sorted(self.flow_counters.items())},
            "values": {name: self.metric_value(name) for name in METRICS},
        }
