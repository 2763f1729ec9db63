"""A run's measurements, as the checks and the reports read them: counters and latencies from every flow,
carrier and event of a :class:`~carrier_sim.runner.run.RunResult`."""

from __future__ import annotations

from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.run import RunResult, flow_latencies

__all__ = ["run_metrics"]


def run_metrics(result: RunResult, *, live: bool = False) -> RunMetrics:
    """The run's (or the shard's) metrics; ``live``: judge the load against what was due so far."""
    metrics = RunMetrics()
    # While running, the load is judged against what was due so far, not against the whole plan.
    metrics.count("load.planned", result.planned_by_now if live else result.planned_arrivals)
    metrics.count("load.arrived", result.achieved_arrivals)
    metrics.count("load.on_time", result.on_time_arrivals)
    for flow in result.flows:
        counters = flow.counters
        metrics.count(f"{flow.name}.started", counters.started, flow=flow.name)
        metrics.count(f"{flow.name}.completed", counters.completed, flow=flow.name)
        metrics.count(f"{flow.name}.failed", counters.failed, flow=flow.name)
        for reason, n in counters.failures.items():
            metrics.count(f"{flow.name}.failed.{reason}", n, flow=flow.name)
        for stage, n in counters.stages.items():
            metrics.count(f"{flow.name}.stage.{stage}", n, flow=flow.name)
    for carrier in result.carriers:
        name = carrier.carrier.name
        stats = carrier.smsc.stats
        metrics.count("mo.sent", stats.mo_sent, carrier=name)
        metrics.count("mt.delivered", stats.delivered, carrier=name)
        metrics.count("mt.undeliverable", stats.undeliverable, carrier=name)
        metrics.count("receipts.sent", stats.receipts_sent, carrier=name)
        metrics.count("smpp.throttled", stats.throttled, carrier=name)
        metrics.count("smpp.binds", stats.binds, carrier=name)
    for session in result.conformance:
        metrics.record_conformance([session], carrier=str(session["carrier"]))
    invalid = sum(f.counters.failures.get("document_invalid", 0) for f in result.flows if f.name.startswith("rcs"))
    metrics.count("rcs.documents_invalid", invalid)
    metrics.count("events.applied", result.events_targets)
    metrics.count("events.revoked", result.events_revoked)
    for outcome, n in result.risk_checks.items():
        metrics.count(f"risk_checks.{outcome}", n)
    for name, values in flow_latencies(result.flows).items():
        if len(values):
            metrics.record_latency(name, values)
    return metrics
