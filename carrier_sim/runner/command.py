"""``carrier-sim run FILE [--set ...] [--seed N] [--junit FILE] [--json FILE] [--pcap FILE] [--no-dashboard]``.

Exit codes: 0 every check passed, 1 a check failed (or was inconclusive), 2 the scenario or the command line is
invalid, 3 the harness itself failed (it could not start a carrier or the system under test, or could not
generate the asked-for load).
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from carrier_sim.capture.pcap import PcapFile
from carrier_sim.dashboard.live import CarrierStatus, Controls, DashboardState, choose_display, running
from carrier_sim.metrics.checks import EXIT_ERROR, evaluate, overall
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.population.arrivals import Arrivals, ConcurrencyProfile, RateProfile, open_arrivals
from carrier_sim.population.columns import Population
from carrier_sim.population.randomness import Stream
from carrier_sim.report.json_report import build_report, tag_sessions, write_report
from carrier_sim.report.junit import write_junit
from carrier_sim.runner.run import Controls as RunControls
from carrier_sim.runner.run import RunResult, flow_latencies, run_scenario
from carrier_sim.scenario.loader import ScenarioError, load_scenario
from carrier_sim.scenario.model import Scenario

__all__ = ["run_command"]


def _metrics(result: RunResult, *, live: bool = False) -> RunMetrics:
    metrics = RunMetrics()
    counters = result.flow.counters
    # While running, the load is judged against what was due so far, not against the whole plan.
    metrics.count("load.planned", result.planned_by_now if live else result.planned_arrivals)
    metrics.count("load.arrived", result.achieved_arrivals)
    metrics.count("activation.started", counters.arrived)
    metrics.count("activation.completed", counters.done)
    metrics.count("activation.failed", counters.failed)
    for reason, n in counters.failures.items():
        metrics.count(f"activation.failed.{reason}", n)
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
    metrics.count("events.applied", result.events_targets)
    metrics.count("events.revoked", result.events_revoked)
    for name, values in flow_latencies(result.flow).items():
        if len(values):
            metrics.record_latency(name, values)
    return metrics


def _pcap(path: Path, result: RunResult) -> None:
    with PcapFile(path) as pcap:
        for client, server, chunks in result.pcap_streams:
            c_host, c_port = client.rsplit(":", 1)
            s_host, s_port = server.rsplit(":", 1)
            first = chunks[0][2] if chunks else 0.0
            conv = pcap.conversation((c_host, int(c_port)), (s_host, int(s_port)), first)
            for kind, data, when in chunks:
                if kind == "in":
                    conv.client_sends(data, when)
                elif kind == "out":
                    conv.server_sends(data, when)
            if conv.is_open:
                conv.close(chunks[-1][2] if chunks else first)


def run_command(
    path: Path,
    overrides: Sequence[str] = (),
    *,
    seed: int | None = None,
    junit: Path | None = None,
    json_path: Path | None = None,
    pcap: Path | None = None,
    no_dashboard: bool = False,
) -> int:
    """Run a scenario file; the process exit code."""
    try:
        scenario = load_scenario(path, overrides)
    except ScenarioError as err:
        print(err, file=sys.stderr)
        return 2
    if seed is not None:
        scenario = dataclasses.replace(scenario, seed=seed)
    unsupported = unsupported_features(scenario)
    if unsupported:
        for reason in unsupported:
            print(f"{path}: {reason}", file=sys.stderr)
        return 2
    return asyncio.run(_run(scenario, junit, json_path, pcap, no_dashboard))


def unsupported_features(scenario: Scenario) -> list[str]:
    """What a valid scenario asks that this runner cannot do yet: refused up front, never silently ignored."""
    problems = []
    if scenario.clock == "virtual":
        problems.append("clock: virtual is not supported by the runner yet; use clock: wall")
    for flow in scenario.flows:
        if flow.name != "activation":
            problems.append(f"flows: {flow.name} is not supported by the runner yet; only activation runs")
    return problems


async def _run(scenario: Scenario, junit: Path | None, json_path: Path | None, pcap: Path | None,
               no_dashboard: bool) -> int:
    population = Population(scenario)
    concurrency: Callable[[float], int] | None = None
    if scenario.load.model == "closed":
        profile = ConcurrencyProfile.from_scenario(scenario)
        order = ConcurrencyProfile.entry_order(population.rng, 0, len(population))
        arrivals = Arrivals(order, np.zeros(len(order)))
        concurrency = profile.in_flight
    else:
        arrivals = open_arrivals(RateProfile.from_load(scenario.load), population.rng, len(population))
    think_dist = scenario.flows[0].think_time if scenario.flows else None

    def think(rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float64]:
        if think_dist is None:
            return np.zeros(len(rows))
        return population.draw(think_dist, rows, Stream.THINK)

    controls = Controls()
    run_controls = RunControls()
    state = DashboardState(scenario=scenario.name)
    display = choose_display(no_dashboard=no_dashboard, stdout=sys.stdout)
    phases = scenario.load.phases

    def on_tick(result: RunResult, elapsed: float) -> None:
        run_controls.stop_requested = controls.stop_requested
        run_controls.paused = controls.paused
        run_controls.rate_multiplier = controls.rate_multiplier
        c = result.flow.counters
        state.elapsed = elapsed
        t = 0.0
        for phase in phases:
            if elapsed < t + phase.duration:
                state.phase = phase.name
                frac = (elapsed - t) / phase.duration if phase.duration else 0.0
                rate = phase.rate_from + (phase.rate_to - phase.rate_from) * frac
                state.target_rate = rate * controls.rate_multiplier
                break
            t += phase.duration
        else:
            state.phase = "draining"
            state.target_rate = 0.0
        state.achieved_rate = result.achieved_arrivals / elapsed if elapsed > 0 else 0.0
        state.funnel = {"arrived": c.arrived, "reg_req_sent": c.reg_sent, "reg_resp_received": c.reg_resp,
                        "authenticated": c.auth_sent, "done": c.done, "failed": c.failed}
        previous = last_submitted.copy()
        span = max(1e-6, elapsed - last_elapsed[0])
        state.carriers = {}
        for rc in result.carriers:
            name = rc.carrier.name
            submitted = rc.smsc.stats.submitted
            last_submitted[name] = submitted
            state.carriers[name] = CarrierStatus(
                binds=sum(1 for conn in rc.smsc.connections.values() if conn.account is not None),
                throughput=(submitted - previous.get(name, 0)) / span,
                window_used=sum(conn.session.outstanding for conn in rc.smsc.connections.values()),
                window_size=rc.smsc.config.window * max(1, len(rc.smsc.connections)),
                throttles=rc.smsc.stats.throttled,
                receipts=rc.smsc.stats.receipts_sent,
            )
        last_elapsed[0] = elapsed
        if int(elapsed) != last_second[0]:
            last_second[0] = int(elapsed)
            state.observe(_metrics(result, live=True), scenario.checks)

    last_submitted: dict[str, int] = {}
    last_elapsed = [0.0]
    last_second = [-1]

    async with running(display, state, controls):
        result = await run_scenario(
            scenario, population, (arrivals.indices, arrivals.times), think, controls=run_controls, on_tick=on_tick,
            capture=pcap is not None, concurrency=concurrency,
        )
    metrics = _metrics(result)
    harness_ok = not result.harness_errors
    verdicts = evaluate(scenario.checks, metrics, harness_ok=harness_ok)
    conformance = [s for c in result.carriers for s in tag_sessions(c.carrier.name, c.smsc.verdicts())]
    report = build_report(
        scenario=scenario.name, seed=scenario.seed, checks=verdicts, metrics=metrics,
        started_at=result.started_at, duration=result.duration, conformance=conformance,
        carriers={c.carrier.name: {"smsc": c.smsc.stats.to_json(), "port": c.port} for c in result.carriers},
    )
    if result.harness_errors:
        report["harness_errors"] = result.harness_errors
    if json_path is not None:
        write_report(json_path, report)
    if junit is not None:
        write_junit(junit, report)
    if pcap is not None:
        _pcap(pcap, result)
    for v in verdicts:
        print(f"{v.verdict:6} {v.name}: {v.reason}")
    for error in result.harness_errors:
        print(f"error  harness: {error}")
    code = overall(verdicts)
    return EXIT_ERROR if result.harness_errors else code
