"""``carrier-sim run FILE [--set ...] [--seed N] [--junit FILE] [--json FILE] [--pcap FILE] [--workers N]
[--ray ADDRESS] [--no-dashboard] [--allow-inconclusive]``.

Exit codes: 0 every check passed, 1 a check failed (or was inconclusive), 2 the scenario or the command line is
invalid, 3 the harness itself failed (it could not start a carrier or the system under test, could not generate
the asked-for load, or could not write an output) or the run was interrupted by SIGINT/SIGTERM (stopped as the
dashboard's ``q`` does, reports written).

With ``--workers 1`` the run is one shard in this process's loop; with more, one process per shard
(:mod:`carrier_sim.runner.shards`) and this process only merges, shows and reports. With ``--ray ADDRESS`` the
shards are Ray actors instead (:mod:`carrier_sim.runner.ray_shards`), on this machine (``local``) or a cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
import traceback
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from carrier_sim.capture.pcap import write_streams
from carrier_sim.dashboard.live import CarrierStatus, Controls, DashboardState, choose_display, running
from carrier_sim.dashboard.rates import RateWindow
from carrier_sim.metrics.checks import EXIT_ERROR, CheckVerdict, evaluate, overall
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.report.json_report import build_report, write_report
from carrier_sim.report.junit import write_junit
from carrier_sim.runner.ray_shards import ray_missing, run_ray_shards, start_timeout
from carrier_sim.runner.run import Controls as RunControls
from carrier_sim.runner.run import SutStarter
from carrier_sim.runner.shards import ShardOutcome, Snapshot, run_in_clock, run_shard, run_shards
from carrier_sim.runner.sut import ready_timeout
from carrier_sim.scenario.loader import ScenarioError, load_scenario
from carrier_sim.scenario.model import METRICS, SEED_MAX, Scenario
from carrier_sim.scenario.plan import plan_totals

__all__ = ["provisional", "run_command", "unsupported_features"]


def run_command(
    path: Path,
    overrides: Sequence[str] = (),
    *,
    seed: int | None = None,
    junit: Path | None = None,
    json_path: Path | None = None,
    pcap: Path | None = None,
    no_dashboard: bool = False,
    workers: int = 1,
    ray: str | None = None,
    allow_inconclusive: bool = False,
) -> int:
    """Run a scenario file; the process exit code. ``ray`` is a Ray address (or ``local``) to run the shards on.
    ``allow_inconclusive`` lets inconclusive checks pass (exploratory runs); a CI gate keeps the default."""
    if seed is not None:
        if not 0 <= seed <= SEED_MAX:
            # Said here, naming the flag: through the loader it would be blamed on a --set nobody typed.
            print(f"carrier-sim run: --seed {seed}: a seed is 0..{SEED_MAX}", file=sys.stderr)
            return 2
        overrides = [*overrides, f"seed={seed}"]
    try:
        scenario = load_scenario(path, overrides)
    except ScenarioError as err:
        print(err, file=sys.stderr)
        return 2
    unwritable = [f"{flag} {out}: {why}" for flag, out in (("--junit", junit), ("--json", json_path), ("--pcap", pcap))
                  if out is not None and (why := unwritable_reason(out)) is not None]
    if unwritable:
        # Found now, not after a run of many minutes whose reports would then be lost.
        for reason in unwritable:
            print(f"carrier-sim run: {reason}", file=sys.stderr)
        return 2
    unsupported = unsupported_features(scenario, workers, ray)
    if unsupported:
        for reason in unsupported:
            print(f"{path}: {reason}", file=sys.stderr)
        return 2
    try:
        return run_in_clock(scenario, lambda clock, starter: _run(scenario, junit, json_path, pcap, no_dashboard,
                                                                  workers, clock, starter, ray,
                                                                  strict=not allow_inconclusive))
    except Exception:  # a defect of the harness itself: say so with exit 3, never pass it off as a failed check
        traceback.print_exc()
        print("error  harness: the runner itself failed (traceback above)", file=sys.stderr)
        return EXIT_ERROR


def unwritable_reason(path: Path) -> str | None:
    """Why a report could not be written to ``path`` (None when it can): a directory there, or a parent that is
    missing, not a directory or not writable."""
    if path.is_dir():
        return "is a directory"
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.exists():
        return f"directory {parent} does not exist"
    if not parent.is_dir():
        return f"{parent} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    return None


def unsupported_features(scenario: Scenario, workers: int = 1, ray: str | None = None) -> list[str]:
    """What a valid scenario (with these options) asks that this runner cannot do: refused up front, never
    silently ignored."""
    problems = []
    try:
        # Every run waits for its system under test (bundled, in-process or external) this long.
        ready_timeout()
    except ValueError as err:
        problems.append(str(err))
    if ray is not None:
        missing = ray_missing()
        if missing:
            problems.append(missing)
        try:
            start_timeout()
        except ValueError as err:
            problems.append(str(err))
        if scenario.system_under_test.kind == "external":
            problems.append("--ray runs each shard's carriers on whichever node Ray picks, on free ports, which an "
                            "external system under test cannot follow; run it without --ray")
    if workers < 1:
        problems.append(f"--workers {workers}: at least one worker is needed")
    if workers > 1 or ray is not None:
        if scenario.system_under_test.kind == "external" and ray is None:
            problems.append("--workers N > 1 runs one set of carriers per shard on free ports, which an external "
                            "system under test cannot follow; run it with --workers 1")
        fixed = [c.name for c in scenario.carriers if c.smsc.port or c.smsc.tls_port
                 or any(d is not None and d.port for d in (c.doors.rcs, c.doors.smtp, c.doors.camara))]
        if fixed:
            problems.append(f"--workers N > 1 and --ray need port 0 (any free port) for every SMSC and door, since "
                            f"each shard runs its own carriers; fixed ports on: {', '.join(fixed)}")
    return problems


def provisional(verdicts: list[CheckVerdict], metrics: RunMetrics) -> list[CheckVerdict]:
    """Live verdicts for people, which never fail what the rest of the run can still make pass: a flow's success
    ratio that fails only because phones are still mid-flow (it would hold if they all completed), and a count
    that must rise above a bound and has not yet (counts only grow), are shown inconclusive, not failed. The final
    verdicts never go through this."""
    out = []
    for v in verdicts:
        if v.verdict == "fail" and v.op in (">=", ">") and METRICS.get(v.metric) == "count":
            v = dataclasses.replace(v, verdict="inconc", reason=f"{v.reason}; not yet (the run goes on)")
            out.append(v)
            continue
        flow, _, stat = v.metric.rpartition(".")
        if v.verdict == "fail" and stat == "success_ratio" and v.op in (">=", ">"):
            started = metrics.counter(f"{flow}.started")
            done, failed = metrics.counter(f"{flow}.completed"), metrics.counter(f"{flow}.failed")
            in_flight = started - done - failed
            best = (done + in_flight) / started if started else 0.0
            if in_flight > 0 and (best >= v.threshold if v.op == ">=" else best > v.threshold):
                v = dataclasses.replace(v, verdict="inconc", reason=f"{v.reason}; {in_flight} phones still in flight")
        out.append(v)
    return out


class _Progress:
    """Turns shard snapshots into the dashboard's state: rates from counts, phase from the plan."""

    def __init__(self, scenario: Scenario, state: DashboardState, controls: Controls) -> None:
        self.scenario = scenario
        self.state = state
        self.controls = controls
        # Each phone arrives at most once: every phase's declared rate is thinned by the population (plan says so).
        self._carried = plan_totals(scenario)["carried_share"] or 1.0
        # Rates over the dashboard's window, not one 0.25 s snapshot (which jumps with every burst) nor the run's
        # average (which lags every ramp and every key press): arrivals, and each carrier's submitted messages.
        self._arrivals = RateWindow()
        self._submitted: dict[str, RateWindow] = {}
        self._seen_errors = 0
        self._seen_events = 0
        self._failures: dict[str, int] = {}  # "<flow>.failed.<reason>" -> the count last reported

    def __call__(self, snap: Snapshot) -> None:
        state, controls = self.state, self.controls
        elapsed = snap.elapsed
        state.elapsed = elapsed
        # The phase and its rate follow the plan's time, which a pause stops and the rate multiplier speeds.
        plan = snap.plan_time
        t = 0.0
        for phase in self.scenario.load.phases:
            if plan < t + phase.duration:
                state.phase = phase.name
                frac = (plan - t) / phase.duration if phase.duration else 0.0
                rate = phase.rate_from + (phase.rate_to - phase.rate_from) * frac
                if self.scenario.load.model == "closed":
                    state.target_rate = None  # a number of phones kept busy, not a rate: nothing to aim at
                else:
                    state.target_rate = 0.0 if controls.paused else rate * self._carried * controls.rate_multiplier
                break
            t += phase.duration
        else:
            state.phase = "draining"
            state.target_rate = 0.0
        self._arrivals.add(elapsed, snap.achieved)
        state.achieved_rate = self._arrivals.rate or 0.0
        state.funnel = dict(snap.funnel)
        carriers = {}
        for name, c in snap.carriers.items():
            window = self._submitted.setdefault(name, RateWindow())
            window.add(elapsed, c.submitted)
            carriers[name] = CarrierStatus(binds=c.binds, throughput=window.rate or 0.0, window_used=c.window_used,
                                           window_size=c.window_size, throttles=c.throttles, receipts=c.receipts)
        state.carriers = carriers
        for error in snap.errors[self._seen_errors:]:
            state.add_error(error)
        self._seen_errors = max(self._seen_errors, len(snap.errors))
        for line in snap.events[self._seen_events:]:
            state.add_event(line)  # a scenario event is no error: shown beside them, not counted
        self._seen_events = max(self._seen_events, len(snap.events))
        if snap.metrics is not None:
            metrics = RunMetrics.from_bytes(snap.metrics)
            state.observe(metrics, self.scenario.checks)
            state.checks = provisional(state.checks, metrics)
            for message, new in self._new_failures(metrics):
                state.add_error(message, count=new)  # one line for many phones: the count is the phones

    def _new_failures(self, metrics: RunMetrics) -> list[tuple[str, int]]:
        """The phones' failures since the last metrics, one line per flow and reason ("activation: 37 phones
        failed: http_503 (120 in all)") with the number of phones it stands for. From the merged counters, so every
        shard's failures show, at a cost per reason rather than per phone."""
        lines: list[tuple[str, int]] = []
        for name, total in sorted(metrics.counters.items()):
            flow, sep, reason = name.partition(".failed.")
            if not sep:
                continue
            new = total - self._failures.get(name, 0)
            if new > 0:
                self._failures[name] = total
                lines.append((f"{flow}: {new} phone{'s' if new > 1 else ''} failed: {reason} ({total} in all)", new))
        return lines


def _sum_stats(outcomes: list[ShardOutcome]) -> dict[str, dict[str, Any]]:
    """Per-carrier SMSC counters summed over shards; the ports of every shard's SMSC."""
    carriers: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        for name, entry in outcome.carriers.items():
            mine = carriers.setdefault(name, {"smsc": {}, "ports": []})
            mine["ports"].append(entry["port"])
            for key, value in entry["smsc"].items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    mine["smsc"][key] = mine["smsc"].get(key, 0) + value
                else:
                    mine["smsc"].setdefault(key, value)
    for entry in carriers.values():
        if len(entry["ports"]) == 1:
            entry["port"] = entry.pop("ports")[0]
    return carriers


async def _run(scenario: Scenario, junit: Path | None, json_path: Path | None, pcap: Path | None,
               no_dashboard: bool, workers: int, clock: Callable[[], float], sut_starter: SutStarter | None,
               ray: str | None = None, *, strict: bool = True) -> int:
    controls = Controls()
    state = DashboardState(scenario=scenario.name)
    display = choose_display(no_dashboard=no_dashboard, stdout=sys.stdout)
    progress = _Progress(scenario, state, controls)
    interrupted: list[_Interruption] = []
    began = clock()
    async with running(display, state, controls), _stop_on_signals(controls, interrupted, clock, began):
        if ray is not None:
            outcomes = await run_ray_shards(scenario, workers, controls, progress, address=ray,
                                            capture=pcap is not None)
        elif workers == 1:
            run_controls = RunControls()

            def on_snapshot(snap: Snapshot) -> None:
                run_controls.stop_requested = controls.stop_requested
                run_controls.paused = controls.paused
                run_controls.rate_multiplier = controls.rate_multiplier
                progress(snap)

            outcomes = [await run_shard(scenario, 0, 1, controls=run_controls, on_snapshot=on_snapshot,
                                        capture=pcap is not None, clock=clock, sut_starter=sut_starter)]
        else:
            outcomes = await run_shards(scenario, workers, controls, progress, capture=pcap is not None)
    if controls.stop_requested and not interrupted:
        # A person stopped the run early (the dashboard's q): as for a signal, the checks judged a run cut short
        # and the phones still mid-flow count as unfinished, so the verdict must not read as the SUT's.
        interrupted.append(_Interruption(
            "the dashboard's q", f"stopped from the dashboard (q) {max(o.duration for o in outcomes):.1f} s into the "
                                 f"run; the reports cover the run until then"))
    metrics = RunMetrics.merged(RunMetrics.from_bytes(o.metrics) for o in outcomes)
    harness_errors = [e for o in outcomes for e in o.harness_errors] + [i.message for i in interrupted]
    # The interruption itself, not its harness-error text, tells the checks why they go unjudged.
    verdicts = evaluate(scenario.checks, metrics, harness_ok=not harness_errors,
                        interrupted=interrupted[0].by if interrupted else None)

    def report_with(errors: list[str]) -> dict[str, object]:
        report = build_report(
            scenario=scenario.name, seed=scenario.seed, checks=verdicts, metrics=metrics,
            started_at=min(o.started_at for o in outcomes), duration=max(o.duration for o in outcomes),
            conformance=[s for o in outcomes for s in o.conformance], carriers=_sum_stats(outcomes),
            load=scenario.load,
            # How far the runner's own loop fell behind (the worst shard): near TICK, it measured the system under
            # test; towards the 1 s harness-error threshold, it was also measuring itself.
            tick_p99=max(o.tick_p99 for o in outcomes),
            harness_errors=errors,
            strict=strict,
        )
        if workers > 1:
            report["workers"] = workers
        if ray is not None:
            report["ray"] = ray
        return report

    # The pcap first, then JUnit, then JSON: an output that could not be written is a harness error the outputs
    # written after it carry, so the reports do not say "pass" beside an exit code of 3. (The JSON goes last: if
    # it alone is lost, its absence says so.)
    writers: list[tuple[Path | None, Callable[[Path, dict[str, object]], object]]] = [
        (pcap, lambda p, _: write_streams(p, [s for o in outcomes for s in o.pcap_streams])),
        (junit, write_junit),
        (json_path, write_report),
    ]
    lost: list[str] = []
    for out, write in writers:
        if out is None:
            continue
        try:
            write(out, report_with(harness_errors + lost))
        except OSError as err:  # checked before the run, but a disk can fill: each output on its own
            lost.append(f"could not write {out}: {err}")
    for v in verdicts:
        print(f"{v.verdict:6} {v.name}: {v.reason}")
    for error in harness_errors:
        print(f"error  harness: {error}")
    for error in lost:
        print(f"error  harness: {error}", file=sys.stderr)
    code = overall(verdicts, strict=strict)
    return EXIT_ERROR if harness_errors or lost else code


@dataclasses.dataclass(frozen=True, slots=True)
class _Interruption:
    """What cut a run short: ``by`` for the checks' reasons (``"SIGINT"``), ``message`` for ``harness_errors``."""

    by: str
    message: str


@contextlib.asynccontextmanager
async def _stop_on_signals(controls: Controls, interrupted: list[_Interruption], clock: Callable[[], float],
                           began: float) -> AsyncIterator[None]:
    """SIGINT or SIGTERM (Ctrl-C, a CI job's timeout or cancel) stops the run as the dashboard's ``q`` does, so
    the reports are still written; the run is then a harness error (exit 3), because checks judged on a run cut
    short say nothing about the plan. A second signal is not caught: it ends the process at once."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def stop(sig: signal.Signals) -> None:
        controls.stop_requested = True
        interrupted.append(_Interruption(sig.name, f"interrupted by {sig.name} {clock() - began:.1f} s into the run; "
                                                   f"the reports cover the run until then"))
        for each in signals:
            loop.remove_signal_handler(each)

    installed = []
    for sig in signals:
        try:
            loop.add_signal_handler(sig, stop, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or a loop without signal support
            continue
        installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
