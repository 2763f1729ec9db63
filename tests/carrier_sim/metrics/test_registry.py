"""RunMetrics: counters, DDSketch histograms that merge exactly across shards, metric names, snapshots."""

from __future__ import annotations

import itertools
import json
import math
import pickle
from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.metrics.registry import (
    PERCENTILES,
    LatencyHistogram,
    MetricsFormatError,
    RunMetrics,
    UnknownMetricError,
)
from carrier_sim.scenario.model import METRICS

ALPHA = 0.01


def _samples(n: int = 20_000, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    # Heavy-ish tail like real latencies: lognormal around 120 ms.
    return rng.lognormal(mean=math.log(0.12), sigma=0.8, size=n)


def _nearest_rank(samples: Sequence[float] | np.ndarray, q: float) -> float:
    """The sample of rank ceil(q * n) (1-based; the first for q = 0), q taken as the decimal it was written as."""
    ordered = sorted(float(v) for v in samples)
    return ordered[max(1, math.ceil(Fraction(repr(q)) * len(ordered))) - 1]


def _assert_within_alpha(got: float | None, samples: Sequence[float] | np.ndarray, q: float) -> None:
    assert got is not None
    exact = _nearest_rank(samples, q)
    assert exact * (1 - ALPHA) - 1e-12 <= got <= exact * (1 + ALPHA) + 1e-12, (q, got, exact)


def test_percentiles_are_within_relative_accuracy() -> None:
    samples = _samples()
    metrics = RunMetrics(ALPHA)
    metrics.record_latency("activation", samples)
    for q in PERCENTILES.values():
        _assert_within_alpha(metrics.quantile("activation", q), samples, q)
    hist = metrics.histogram("activation")
    assert hist is not None
    assert hist.count == samples.size
    assert hist.minimum == pytest.approx(samples.min())
    assert hist.maximum == pytest.approx(samples.max())
    assert hist.mean == pytest.approx(samples.mean())


def test_merging_shards_equals_one_registry() -> None:
    samples = _samples()
    single = RunMetrics(ALPHA)
    for value in samples[:2000]:
        single.record_latency("activation", float(value), carrier="acme")
    single.record_latency("activation", samples[2000:], carrier="acme")
    single.count("activation.started", samples.size, carrier="acme", flow="activation")

    # Four shards, split unevenly, some fed one sample at a time and some with arrays, shipped as bytes.
    bounds = [0, 1000, 2000, 9000, samples.size]
    shards = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        shard = RunMetrics(ALPHA)
        if i % 2:
            shard.record_latency("activation", samples[lo:hi], carrier="acme")
        else:
            for value in samples[lo:hi]:
                shard.record_latency("activation", float(value), carrier="acme")
        shard.count("activation.started", hi - lo, carrier="acme", flow="activation")
        shards.append(RunMetrics.from_bytes(shard.to_bytes()))
    merged = RunMetrics.merged(shards, ALPHA)

    for q in (*PERCENTILES.values(), 0.0, 0.25, 0.75, 1.0):
        # Same buckets, same counts: merging is exact, so the quantiles are identical, not merely close.
        assert merged.quantile("activation", q) == single.quantile("activation", q)
        assert merged.quantile("activation", q, carrier="acme") == single.quantile("activation", q, carrier="acme")
        _assert_within_alpha(merged.quantile("activation", q), samples, q)
    assert merged.counter("activation.started") == samples.size
    assert merged.counter("activation.started", carrier="acme") == samples.size
    assert merged.counter("activation.started", flow="activation") == samples.size
    merged_summary, single_summary = merged.histogram("activation"), single.histogram("activation")
    assert merged_summary is not None
    assert single_summary is not None
    # Sums differ only by float addition order.
    assert merged_summary.summary() == pytest.approx(single_summary.summary())


def test_vectorised_path_fills_the_same_buckets_as_the_scalar_path() -> None:
    samples = np.concatenate([_samples(5000), [0.0, 0.0, 1e-9, 3600.0]])
    scalar = LatencyHistogram(ALPHA)
    for value in samples:
        scalar.record(float(value))
    vector = LatencyHistogram(ALPHA)
    vector.record_many(samples)
    for q in np.linspace(0, 1, 101):
        assert vector.quantile(float(q)) == scalar.quantile(float(q))
    assert vector.count == scalar.count
    assert vector.total == pytest.approx(scalar.total)


@pytest.mark.parametrize("bad", [-0.001, math.nan, math.inf])
def test_bad_latencies_are_refused(bad: float) -> None:
    metrics = RunMetrics()
    with pytest.raises(ValueError, match="latenc"):
        metrics.record_latency("activation", bad)
    with pytest.raises(ValueError, match="latenc"):
        metrics.record_latency("activation", np.array([0.1, bad]))


def test_merge_refuses_different_accuracy() -> None:
    with pytest.raises(ValueError, match="relative accuracy"):
        RunMetrics(0.01).merge(RunMetrics(0.02))


def test_counters_refuse_negative_steps_and_split_by_carrier_and_flow() -> None:
    metrics = RunMetrics()
    metrics.count("mo.sent", 3, carrier="acme", flow="mo_mt")
    metrics.count("mo.sent", 2, carrier="zeta")
    metrics.count("mo.sent")
    assert metrics.counter("mo.sent") == 6
    assert metrics.counter("mo.sent", carrier="acme") == 3
    assert metrics.counter("mo.sent", carrier="zeta") == 2
    assert metrics.counter("mo.sent", flow="mo_mt") == 3
    assert metrics.counter("mo.sent", carrier="nobody") == 0
    with pytest.raises(ValueError, match=">= 0"):
        metrics.count("mo.sent", -1)
    with pytest.raises(ValueError, match="not per pair"):
        metrics.counter("mo.sent", carrier="acme", flow="mo_mt")


def test_metric_values_resolve_every_check_metric() -> None:
    metrics = RunMetrics()
    # Before anything happened: counts are 0, ratios and percentiles undefined.
    for name, unit in METRICS.items():
        value = metrics.metric_value(name)
        if unit == "count":
            assert value == 0.0, name
        else:
            assert value is None, name

    metrics.count("activation.started", 10)
    metrics.count("activation.completed", 9)
    metrics.count("events.applied", 4)
    metrics.count("events.revoked", 3)
    metrics.count("load.planned", 200)
    metrics.count("load.arrived", 180)
    metrics.count("load.on_time", 150)  # 30 went out late: the ratio judges the schedule kept, not the count
    metrics.record_latency("activation", np.full(100, 0.5))
    metrics.record_latency("reg_resp", np.full(10, 0.2))
    metrics.record_latency("authenticate", 0.05)
    assert metrics.metric_value("activation.success_ratio") == pytest.approx(0.9)
    assert metrics.metric_value("events.revocation_ratio") == pytest.approx(0.75)
    assert metrics.metric_value("load.achieved_ratio") == pytest.approx(0.75)
    for stat in ("p50", "p90", "p99", "p999"):
        # Every sample is 0.5: clamped to the observed extremes, the sketch answers exactly.
        assert metrics.metric_value(f"activation.latency.{stat}") == 0.5
    assert metrics.metric_value("reg_resp.latency.p99") == pytest.approx(0.2)
    assert metrics.metric_value("authenticate.latency.p50") == pytest.approx(0.05)
    assert metrics.metric_value("activation.latency.count") == 100.0
    assert metrics.metric_value("activation.latency.max") == 0.5
    assert metrics.metric_value("activation.started") == 10.0
    with pytest.raises(UnknownMetricError):
        metrics.metric_value("activation.strated")  # a typo is not "0 happened"


def test_p999_reads_the_tail_not_p99() -> None:
    metrics = RunMetrics()
    # 997 fast, 3 very slow: p99 (the 990th of 1000) is fast, p99.9 (the 999th) is slow.
    metrics.record_latency("activation", np.concatenate([np.full(997, 0.1), np.full(3, 9.0)]))
    assert metrics.metric_value("activation.latency.p99") == pytest.approx(0.1, rel=ALPHA)
    assert metrics.metric_value("activation.latency.p999") == pytest.approx(9.0, rel=ALPHA)


def test_p99_of_a_small_run_does_not_hide_its_slowest_phones() -> None:
    """DDSketch's own rank, q * (n - 1) rounded down, never reached the slowest sample below 100 samples: 39 phones
    at 0.5 s and one at 5 s read p99 = p99.9 = 0.5 s, and "p99 <= 1" passed with 2.5 % of the phones at 5 s."""
    metrics = RunMetrics()
    metrics.record_latency("activation", [0.5] * 39 + [5.0])
    assert metrics.metric_value("activation.latency.p99") == 5.0
    assert metrics.metric_value("activation.latency.p999") == 5.0
    assert metrics.metric_value("activation.latency.p50") == pytest.approx(0.5, rel=ALPHA)
    metrics = RunMetrics()
    metrics.record_latency("activation", [0.5] * 100 + [5.0])  # 1 in 101: the 100th is fast, the 101st slow
    assert metrics.metric_value("activation.latency.p99") == pytest.approx(0.5, rel=ALPHA)
    assert metrics.metric_value("activation.latency.p999") == 5.0


@given(samples=st.lists(st.one_of(st.just(0.0), st.floats(1e-4, 100.0)), min_size=1, max_size=300),
       thousandths=st.integers(0, 1000), split=st.integers(0, 300))
def test_every_quantile_is_the_nearest_rank_sample_within_the_relative_accuracy(
        samples: list[float], thousandths: int, split: int) -> None:
    q = thousandths / 1000
    whole = LatencyHistogram(ALPHA)
    whole.record_many(samples)
    _assert_within_alpha(whole.quantile(q), samples, q)
    # Shards merged answer the same (the buckets add exactly).
    first, second = LatencyHistogram(ALPHA), LatencyHistogram(ALPHA)
    for value in samples[:split]:
        first.record(value)
    second.record_many(samples[split:])
    first.merge(second)
    assert first.quantile(q) == whole.quantile(q)


def test_record_conformance_counts_each_session_check() -> None:
    sessions = [
        {"peer": "127.0.0.1:5000", "system_id": "id", "checks": [
            {"check": "window", "verdict": "pass"}, {"check": "udhi", "verdict": "inconc"},
            {"check": "unbind", "verdict": "fail"}]},
        {"peer": "127.0.0.1:5001", "system_id": "id", "checks": [{"check": "window", "verdict": "pass"}]},
    ]
    metrics = RunMetrics()
    metrics.record_conformance(sessions, carrier="acme")
    assert metrics.metric_value("smpp.conformance.pass") == 2.0
    assert metrics.metric_value("smpp.conformance.fail") == 1.0
    assert metrics.metric_value("smpp.conformance.inconc") == 1.0
    assert metrics.counter("smpp.conformance.pass", carrier="acme") == 2
    with pytest.raises(ValueError, match="unknown conformance verdict"):
        metrics.record_conformance([{"checks": [{"verdict": "maybe"}]}])


def test_record_conformance_counts_every_session_an_smsc_summarised() -> None:
    # An SMSC keeps a bounded number of ended sessions one by one and sums the rest into one entry; counted as one
    # session, 1,000 dropped sessions would have added 1 to smpp.conformance.* instead of 1,000.
    from carrier_sim.smsc.accounts import Account
    from carrier_sim.smsc.centre import Smsc, SmscConfig

    smsc = Smsc(SmscConfig(accounts=(Account("id", "pw"),)))
    smsc.kept_sessions = smsc.kept_failed_sessions = 2
    for n in range(9):  # each sends one bad PDU and hangs up: a few checks judged per session
        conn = smsc.connect(f"peer-{n}", 1.0)
        conn.receive_data(b"\x00\x00\x00\x10garbage-garbage", 1.0)
        conn.connection_lost(1.0)
    verdicts = smsc.verdicts()
    assert verdicts[0]["sessions"] == 5  # 9 ended, 4 kept one by one
    summarised = RunMetrics()
    summarised.record_conformance(verdicts, carrier="acme")
    kept_all = Smsc(SmscConfig(accounts=(Account("id", "pw"),)))
    for n in range(9):
        conn = kept_all.connect(f"peer-{n}", 1.0)
        conn.receive_data(b"\x00\x00\x00\x10garbage-garbage", 1.0)
        conn.connection_lost(1.0)
    one_by_one = RunMetrics()
    one_by_one.record_conformance(kept_all.verdicts(), carrier="acme")
    for verdict in ("pass", "fail", "inconc"):
        name = f"smpp.conformance.{verdict}"
        assert summarised.counter(name, carrier="acme") == one_by_one.counter(name, carrier="acme"), verdict
    assert one_by_one.counter("smpp.conformance.fail") >= 9
    with pytest.raises(ValueError, match="non-negative integer"):
        RunMetrics().record_conformance([{"checks": [{"verdict": "pass", "verdicts": {"pass": -1}}]}])


def test_snapshot_is_json_and_complete() -> None:
    metrics = RunMetrics()
    metrics.count("activation.started", 5, carrier="acme", flow="activation")
    metrics.record_latency("activation", np.array([0.1, 0.2, 0.3]), carrier="acme")
    snap = json.loads(json.dumps(metrics.snapshot(), allow_nan=False))
    assert snap["counters"] == {"activation.started": 5}
    assert snap["carriers"]["acme"]["counters"] == {"activation.started": 5}
    assert snap["flows"] == {"activation": {"counters": {"activation.started": 5}}}
    latency = snap["latency"]["activation"]
    assert set(latency) == {"count", "min", "max", "mean", "p50", "p90", "p99", "p99.9"}
    assert latency["count"] == 3
    assert latency["p50"] == pytest.approx(0.2, rel=ALPHA)
    assert snap["carriers"]["acme"]["latency"]["activation"]["count"] == 3
    assert set(snap["values"]) == set(METRICS)
    assert snap["values"]["activation.success_ratio"] == 0.0  # 0 of 5 completed: defined, and 0
    assert snap["values"]["load.achieved_ratio"] is None  # nothing planned: undefined


def test_empty_histogram_summary_has_no_infinities() -> None:
    summary = LatencyHistogram().summary()
    assert summary["count"] == 0
    assert all(v is None for k, v in summary.items() if k != "count")
    json.dumps(summary, allow_nan=False)


def test_from_bytes_refuses_foreign_bytes() -> None:
    with pytest.raises(MetricsFormatError, match="header"):
        RunMetrics.from_bytes(pickle.dumps(RunMetrics()))
    with pytest.raises(MetricsFormatError, match="corrupt"):
        RunMetrics.from_bytes(RunMetrics().to_bytes()[:-5])


def test_plain_pickle_round_trips_for_ray() -> None:
    metrics = RunMetrics()
    metrics.record_latency("activation", np.array([0.1, 0.4]))
    copy = pickle.loads(pickle.dumps(metrics))
    assert copy.snapshot() == metrics.snapshot()
