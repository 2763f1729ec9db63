"""``carrier-sim run FILE [--set ...] [--seed N] [--junit FILE] [--json FILE] [--pcap FILE] [--workers N]
[--ray ADDRESS] [--no-dashboard] [--allow-inconclusive]``.

Exit codes: 0 every check passed, 1 a check failed (or was inconclusive), 2 the scenario or the command line is
invalid, 3 the harness itself failed (it could not start a carrier or the system under test, could not generate
the asked-for load, or could not write an output) or the run was interrupted by SIGINT, SIGTERM or SIGHUP (stopped
as the dashboard's ``q`` does, reports written; a signal while the run starts or while the outputs are written is
recorded the same way, and a second one abandons the pcap but not the JSON and JUnit reports, which are written
first). SIGHUP is a closed terminal (a dropped ssh, ``tmux kill-session``): its default action killed the run with
no report.

The display (dashboard or progress line) is for people, never the run's evidence: one that fails -- to start, to
redraw or to stop; a stdout or stderr closed (``>&-``) or read by someone who went away (``2>&1 | head -1``) -- is
said on stderr (when there is one) and switched off, and the run goes on and writes its reports. It changes no
exit code: the run's verdicts and harness errors decide it, as the reports say. Nor does a stdout or stderr that
can no longer be written when the verdicts are printed (:func:`_print_results`); the reports are written by then.

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
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from carrier_sim.dashboard.live import CarrierStatus, Controls, DashboardState, Display, choose_display, running
from carrier_sim.dashboard.rates import RateWindow
from carrier_sim.metrics.checks import EXIT_ERROR, CheckVerdict, evaluate, overall
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.outputs import DIRECTORY, AbandonRequest, NotAnOutputFile, clashes, resolve_output
from carrier_sim.report.json_report import build_report, write_report
from carrier_sim.report.junit import write_junit
from carrier_sim.scenario.model import METRICS, SEED_MAX, Scenario
from carrier_sim.scenario.plan import plan_totals
from carrier_sim.signals import Echoes, StartupSignals

# The scenario loader and the runner (aiohttp, the carriers, the identity core: most of a second of start-up) are
# imported where used, once run_command has taken SIGINT and SIGTERM over (:class:`_EarlySignals`): until then a
# signal could only end the process with a KeyboardInterrupt traceback (or SIGTERM's default action) and no report.
if TYPE_CHECKING:
    from carrier_sim.runner.run import SutStarter
    from carrier_sim.runner.shards import ShardOutcome, Snapshot

T = TypeVar("T")

#: What stops a run as the dashboard's ``q`` does (:class:`_Signals`): Ctrl-C, a CI job's timeout or cancel, and a
#: closed terminal.
STOP_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _stop_signals(previous: Mapping[signal.Signals, Any]) -> tuple[signal.Signals, ...]:
    """The :data:`STOP_SIGNALS` this run handles, given the handlers the process had (``previous``, else the
    current ones): all but a SIGHUP the process was started ignoring -- ``nohup carrier-sim run`` asked to outlive
    its terminal. (An ignored SIGINT is still handled: a script's ``command &`` ignores it without asking.)"""
    def ignored(sig: signal.Signals) -> bool:
        return (previous[sig] if sig in previous else signal.getsignal(sig)) is signal.SIG_IGN

    return tuple(sig for sig in STOP_SIGNALS if not (sig is signal.SIGHUP and ignored(sig)))

__all__ = [
    "LOCAL_WORKERS_MIN",
    "LOCAL_WORKERS_PER_CPU",
    "STOP_SIGNALS",
    "max_local_workers",
    "provisional",
    "ray_address_problem",
    "run_command",
    "unsupported_features",
    "unwritable_reason",
]


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
    startup: StartupSignals | None = None,
) -> int:
    """Run a scenario file; the process exit code. ``ray`` is a Ray address (or ``local``) to run the shards on.
    ``allow_inconclusive`` lets inconclusive checks pass (exploratory runs); a CI gate keeps the default.

    SIGINT and SIGTERM are handled from the moment it is called: one that comes while the scenario is read and
    checked stops the run before it starts, and the reports say so (exit 3, as for a signal during the run). So is
    one of ``startup``, kept by the console script while the command was loading (:mod:`carrier_sim.console`).
    SIGHUP (a closed terminal) is handled as SIGTERM is."""
    _fill_closed_std_fds()
    early = _EarlySignals()
    # Under the console script the handlers it replaces are StartupSignals' keeper: what goes back when the command
    # is done is what the process had before that keeper, else no one would act on a signal from then on.
    early.install(startup.original if startup is not None else {})
    if startup is not None:
        early.received[:0] = startup.take()  # they came first
    try:
        return _command(path, overrides, seed=seed, junit=junit, json_path=json_path, pcap=pcap,
                        no_dashboard=no_dashboard, workers=workers, ray=ray, allow_inconclusive=allow_inconclusive,
                        early=early)
    finally:
        early.restore()


def _command(path: Path, overrides: Sequence[str], *, seed: int | None, junit: Path | None, json_path: Path | None,
             pcap: Path | None, no_dashboard: bool, workers: int, ray: str | None, allow_inconclusive: bool,
             early: _EarlySignals) -> int:
    from carrier_sim.scenario.loader import ScenarioError, load_scenario

    if seed is not None:
        if not 0 <= seed <= SEED_MAX:
            # Said here, naming the flag: through the loader it would be blamed on a --set nobody typed.
            _say(f"carrier-sim run: --seed {seed}: a seed is 0..{SEED_MAX}")
            return 2
        overrides = [*overrides, f"seed={seed}"]
    try:
        scenario = load_scenario(path, overrides)
    except ScenarioError as err:
        _say(str(err))
        return 2
    outputs = [(flag, out) for flag, out in (("--junit", junit), ("--json", json_path), ("--pcap", pcap))
               if out is not None]
    unwritable = [f"{flag} {out}: {why}" for flag, out in outputs if (why := unwritable_reason(out)) is not None]
    # An output onto another, or onto the scenario or a file it includes (a link to one counts), replaced what the
    # run was told to write, or the scenario itself, and the run still passed.
    inputs = [("the scenario file", path)] + [("a file the scenario includes", file) for file in scenario.files[1:]]
    unwritable += clashes(outputs, inputs)
    if unwritable:
        # Found now, not after a run of many minutes whose reports would then be lost.
        for reason in unwritable:
            _say(f"carrier-sim run: {reason}")
        return 2
    unsupported = unsupported_features(scenario, workers, ray)
    if unsupported:
        for reason in unsupported:
            _say(f"{path}: {reason}")
        return 2
    try:
        if early.received:
            # Nothing has started: there is no run to stop, and none is started only to be stopped.
            return asyncio.run(_not_started(scenario, early, junit, json_path, pcap, workers, ray,
                                            strict=not allow_inconclusive))
        return run_in_clock(scenario, lambda clock, starter: _run(scenario, junit, json_path, pcap, no_dashboard,
                                                                  workers, clock, starter, ray,
                                                                  strict=not allow_inconclusive, early=early))
    except Exception:  # a defect of the harness itself: say so with exit 3, never pass it off as a failed check
        _say(traceback.format_exc().rstrip("\n"))
        _say("error  harness: the runner itself failed (traceback above)")
        return EXIT_ERROR


def run_in_clock(scenario: Scenario, main: Callable[[Callable[[], float], SutStarter | None],
                                                Coroutine[Any, Any, T]]) -> T:
    """:func:`carrier_sim.runner.shards.run_in_clock`, imported when a run starts (module comment above)."""
    from carrier_sim.runner.shards import run_in_clock as run

    return run(scenario, main)


def unwritable_reason(path: Path) -> str | None:
    """Why a report could not be written to ``path`` (None when it can): a directory there, a FIFO, socket or device
    there, or a parent that is missing, not a directory or not writable.

    Outputs are written to a temporary file renamed onto the path (:func:`write_atomically`), after following a
    symbolic link (:func:`~carrier_sim.outputs.resolve_output`, which the writers call again), so the checks are
    made on where the link leads. A FIFO or device is refused, not written into: opening a FIFO for writing blocks
    until a reader comes (a run that passed, then hung for ever), and a rename would replace it with a regular
    file."""
    # Said when the path is a link: "is a directory" about a path the user knows as a file would puzzle.
    linked = os.path.islink(path)
    try:
        real = resolve_output(path)
    except NotAnOutputFile as refused:
        via = f"links to {refused.filename}, which " if linked else ""
        advice = "" if refused.kind == DIRECTORY else "; name a regular file"
        return f"{via}{refused.strerror}{advice}"
    except OSError as err:  # a loop of links, a directory on the way that cannot be searched
        return f"cannot be examined: {err.strerror}"
    via = f"links to {real}, which " if linked else ""
    # Checked where the file will be made, named as the user wrote it unless the path is a link.
    parent, shown = real.parent, real.parent if via else (path.parent if str(path.parent) else Path("."))
    if not parent.exists():
        return f"{via}is in directory {shown}, which does not exist" if via else f"directory {shown} does not exist"
    if not parent.is_dir():
        return f"{shown} is not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {shown} is not writable"
    return None


def ray_address_problem(address: str) -> str | None:
    """Why ``address`` is not a ``--ray`` address (None when it is): ``local`` (a Ray started here), ``auto`` (the
    cluster this machine is a node of), ``HOST:PORT`` or ``ray://HOST:PORT`` (Ray Client), HOST possibly an
    ``[IPv6]`` literal, PORT 1..65535 — the forms docs/scenarios.md gives. Checked before the run: Ray's own
    refusal came only once the run had begun, as a harness error (exit 3) for what is a bad flag."""
    if address in ("local", "auto"):
        return None
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if (sep and host and port.isascii() and port.isdigit() and 0 < int(port) < 65536
            and not any(c.isspace() or c in "/[]@?#" for c in host)):
        return None
    return f"--ray {address!r}: not a Ray address; give local, auto, HOST:PORT or ray://HOST:PORT"


#: Local shard processes allowed per CPU (``--workers`` without ``--ray``), and the bound on a small machine.
LOCAL_WORKERS_PER_CPU = 4
LOCAL_WORKERS_MIN = 8


def max_local_workers() -> int:
    """The largest ``--workers`` run as local processes on this machine: :data:`LOCAL_WORKERS_PER_CPU` per CPU,
    at least :data:`LOCAL_WORKERS_MIN`. More shards than CPUs only share them; this bound keeps a typo from
    starting processes until memory runs out."""
    return max(LOCAL_WORKERS_MIN, LOCAL_WORKERS_PER_CPU * (os.cpu_count() or 1))


def unsupported_features(scenario: Scenario, workers: int = 1, ray: str | None = None) -> list[str]:
    """What a valid scenario (with these options) asks that this runner cannot do: refused up front, never
    silently ignored."""
    from carrier_sim.runner.ray_shards import ray_missing, start_timeout
    from carrier_sim.runner.sut import ready_timeout

    problems = []
    try:
        # Every run waits for its system under test (bundled, in-process or external) this long.
        ready_timeout()
    except ValueError as err:
        problems.append(str(err))
    if ray is not None:
        if (bad := ray_address_problem(ray)) is not None:
            problems.append(bad)
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
    phones = scenario.population.phones
    if workers > max(phones, 1):
        # A shard without phones is a whole process (carriers, identity core) that does nothing.
        problems.append(f"--workers {workers}: more shards than the population's {phones} phones; at most {phones}")
    if ray is None and workers > max_local_workers():
        # Each local shard is a full Python process (about 75 MB, its own carriers and identity core): --workers
        # 100000 started processes until the machine fell over.
        problems.append(f"--workers {workers}: at most {max_local_workers()} local shard processes on this machine "
                        f"({LOCAL_WORKERS_PER_CPU} per CPU, at least {LOCAL_WORKERS_MIN}); use --ray for more")
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
        # Lines already shown, per shard: one count into the shards' concatenated lists went wrong as soon as an
        # earlier shard added a line (see Snapshot.lines).
        self._seen_errors: dict[int, int] = {}
        self._seen_events: dict[int, int] = {}
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
        errors, events = snap.lines()
        for error in _new_lines(errors, self._seen_errors):
            state.add_error(error)
        for line in _new_lines(events, self._seen_events):
            state.add_event(line)  # a scenario event is no error: shown beside them, not counted
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


def _new_lines(by_shard: dict[int, list[str]], seen: dict[int, int]) -> list[str]:
    """The lines of each shard past those ``seen`` (updated), shard after shard, each shard's in its order."""
    new: list[str] = []
    for shard, lines in sorted(by_shard.items()):
        done = seen.get(shard, 0)
        new += lines[done:]
        seen[shard] = max(done, len(lines))
    return new


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
               ray: str | None = None, *, strict: bool = True, early: _EarlySignals | None = None) -> int:
    from carrier_sim.runner.ray_shards import run_ray_shards
    from carrier_sim.runner.run import Controls as RunControls
    from carrier_sim.runner.shards import run_shard, run_shards

    controls = Controls()
    state = DashboardState(scenario=scenario.name)
    # One shard in this process's virtual loop: the display must not keep timers of its own there (see
    # carrier_sim.dashboard.live), and redraws at the snapshots instead.
    driven = scenario.clock == "virtual" and workers == 1 and ray is None
    display = _GuardedDisplay.chosen(no_dashboard=no_dashboard, driven=driven)
    progress = _Progress(scenario, state, controls)
    signals = _Signals(controls, clock, clock(), pcap=pcap is not None)
    # Handled until the last output is written, not only while the shards run: a CI job's timeout often lands
    # while the pcap is being built, and the default action there killed the process before any report existed.
    async with _stop_on_signals(signals, early):
        async with running(display, state, controls):
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
                    display.pulse()

                outcomes = [await run_shard(scenario, 0, 1, controls=run_controls, on_snapshot=on_snapshot,
                                            capture=pcap is not None, clock=clock, sut_starter=sut_starter)]
            else:
                outcomes = await run_shards(scenario, workers, controls, progress, capture=pcap is not None)
            signals.run_over = True
            judged = _judge(scenario, outcomes, signals)
            # The display writes its last line (draws its last frame) as it stops: it must tally the verdicts the run
            # ends with, which the printed verdicts, the reports and the exit code give, not the live ones that show
            # a count still to rise as "not yet (the run goes on)".
            state.checks = judged.verdicts
        return await _report(scenario, outcomes, signals, judged, junit, json_path, pcap, workers, ray,
                             strict=strict)


async def _not_started(scenario: Scenario, early: _EarlySignals, junit: Path | None, json_path: Path | None,
                       pcap: Path | None, workers: int, ray: str | None, *, strict: bool) -> int:
    """The outputs of a run a signal stopped before it started (:class:`_EarlySignals`): nothing measured, every
    check unjudged, the signal a harness error (exit 3), as for a run stopped at its first moment."""
    from carrier_sim.runner.shards import ShardOutcome

    signals = _Signals(Controls(), time.monotonic, time.monotonic(), pcap=pcap is not None)
    async with _stop_on_signals(signals, early):
        signals.run_over = True  # later signals come while the outputs are written
        nothing = ShardOutcome(shard=0, metrics=RunMetrics().to_bytes(), conformance=[], carriers={},
                               harness_errors=[], started_at=time.time(), duration=0.0)
        judged = _judge(scenario, [nothing], signals)
        return await _report(scenario, [nothing], signals, judged, junit, json_path, pcap, workers, ray,
                             strict=strict)


@dataclasses.dataclass(frozen=True, slots=True)
class _Judged:
    """The run's judgement: its merged metrics, the shards' harness errors, the checks' final verdicts."""

    metrics: RunMetrics
    shard_errors: list[str]
    verdicts: list[CheckVerdict]


def _judge(scenario: Scenario, outcomes: list[ShardOutcome], signals: _Signals) -> _Judged:
    """Judge the checks over the whole run (a run cut short by ``q`` or a signal leaves them unjudged)."""
    controls = signals.controls
    if controls.stop_requested and not signals.stopped:
        # A person stopped the run early (the dashboard's q): as for a signal, the checks judged a run cut short
        # and the phones still mid-flow count as unfinished, so the verdict must not read as the SUT's.
        signals.interrupted.append(_Interruption(
            "the dashboard's q", f"stopped from the dashboard (q) {max(o.duration for o in outcomes):.1f} s into the "
                                 f"run; the reports cover the run until then"))
    metrics = RunMetrics.merged(RunMetrics.from_bytes(o.metrics) for o in outcomes)
    shard_errors = [e for o in outcomes for e in o.harness_errors]
    stopped = signals.stopped
    # The interruption itself, not its harness-error text, tells the checks why they go unjudged. A signal that
    # comes once the run is over changes no verdict (they judge the whole run) but is still a harness error.
    verdicts = evaluate(scenario.checks, metrics, harness_ok=not (shard_errors or stopped),
                        interrupted=stopped[0].by if stopped else None)
    return _Judged(metrics, shard_errors, verdicts)


async def _report(scenario: Scenario, outcomes: list[ShardOutcome], signals: _Signals, judged: _Judged,
                  junit: Path | None, json_path: Path | None, pcap: Path | None, workers: int, ray: str | None, *,
                  strict: bool) -> int:
    """Write the outputs and print the verdicts; the exit code. Runs with the signals still handled
    (:class:`_Signals`), and every write in a thread, so a signal is seen while an output is written."""
    metrics, shard_errors, verdicts = judged.metrics, judged.shard_errors, judged.verdicts
    lost: list[str] = []

    def harness_errors() -> list[str]:
        # Read afresh for every write: a signal or a lost output may have added to them since the last one.
        return shard_errors + [i.message for i in signals.interrupted] + lost

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

    # The JUnit and the JSON first (milliseconds), the pcap last (seconds to minutes of scapy): a CI job's
    # timeout or a second Ctrl-C then costs at most the pcap, never the verdicts. An output that could not be
    # written, and a signal that came while writing, are harness errors the reports must carry, so the reports
    # are written again until they say everything (errors only grow, so their count tells a stale copy). The
    # JSON goes after the JUnit: if it alone is lost, its absence says so.
    reports: list[tuple[Path, Callable[[Path, dict[str, object]], None]]] = [
        (out, write) for out, write in ((junit, write_junit), (json_path, write_report)) if out is not None]
    carried: dict[Path, int] = {}  # report -> how many harness errors its copy on disk carries
    failed: set[Path] = set()

    def stale() -> list[tuple[Path, Callable[[Path, dict[str, object]], None]]]:
        return [(out, write) for out, write in reports
                if out not in failed and carried.get(out) != len(harness_errors())]

    async def write_reports() -> None:
        for out, write in stale():
            errors = harness_errors()
            try:
                await asyncio.to_thread(write, out, report_with(errors))
                carried[out] = len(errors)
            except OSError as err:  # checked before the run, but a disk can fill: each output on its own
                failed.add(out)
                lost.append(f"could not write {out}: {err}")

    await write_reports()
    if pcap is not None:
        # scapy, the pcap writer's: imported only when a pcap is asked for (a quarter of a second of start-up, while
        # a signal could only kill the process).
        from carrier_sim.capture.pcap import CaptureAbandoned, write_streams

        streams = [s for o in outcomes for s in o.pcap_streams]
        try:
            await asyncio.to_thread(write_streams, pcap, streams, stop=signals.abandon_pcap)
        except CaptureAbandoned:
            lost.append(f"{pcap} not written: abandoned on a second signal (nothing left at that path)")
        except OSError as err:
            lost.append(f"could not write {pcap}: {err}")
    # Bounded: each pass takes milliseconds, so only a storm of signals could make another one stale.
    for _ in range(8):
        if not stale():
            break
        await write_reports()
    lines = [f"{v.verdict:6} {v.name}: {v.reason}" for v in verdicts]
    lines += [f"error  harness: {error}" for error in harness_errors() if error not in lost]
    _print_results(lines)
    for error in lost:
        _say(f"error  harness: {error}")
    code = overall(verdicts, strict=strict)
    return EXIT_ERROR if harness_errors() else code


def _say(message: str) -> None:
    """Write ``message`` on stderr, which may be missing (``2>&-``: None) or read by no one any more (``2>&1 |
    head -1``): what is said there is for people, and never costs the run its reports or its exit code. A stderr
    that cannot be written is pointed at the null device, as :func:`_print_results` does for stdout."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(message + "\n")
        stream.flush()
    except OSError:
        _to_devnull(stream)
    except ValueError:  # closed from Python
        pass


def _to_devnull(stream: TextIO) -> None:
    """Point ``stream``'s file descriptor at the null device: Python's documentation advises it (the signal module,
    "Note on SIGPIPE") for a stream whose reader has gone, since the interpreter flushes stdout and stderr once
    more at exit, and that flush would fail as well (exit 120). What is still buffered then goes nowhere."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, stream.fileno())
        finally:
            os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no file descriptor behind it: nothing is flushed to one at exit
        pass


def _fill_closed_std_fds() -> None:
    """A stdout or stderr the process was started without (``>&-``, ``2>&-``; Python then has None for it) gets
    the null device on its file descriptor, if that is still free: otherwise the next file opened -- a report's
    temporary file, a socket -- takes descriptor 1 or 2, and the bundled identity core and the shard processes,
    which inherit it as their stdout or stderr, would write into it. ``sys.stdout`` and ``sys.stderr`` stay None:
    nothing is printed there, as the user asked."""
    for fd, stream in ((1, sys.stdout), (2, sys.stderr)):
        if stream is not None:
            continue
        try:
            os.fstat(fd)
            continue  # taken since start-up by something else: left alone
        except OSError:
            pass
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            continue
        if devnull != fd:
            os.dup2(devnull, fd)
            os.close(devnull)


class _GuardedDisplay:
    """The run's display (:func:`~carrier_sim.dashboard.live.choose_display`), kept from costing the run anything:
    a display that raises -- when chosen, started, redrawn, pulsed or stopped -- is said on stderr and switched off
    (stopped once, to give the terminal back), and the run goes on, to its reports and its verdicts' exit code.
    Before, a progress line that could not be written (stderr closed, or its reader gone) raised from ``stop()``
    at the end of the run, and the run ended with a traceback, exit 3 and none of its reports."""

    def __init__(self, display: Display | None) -> None:
        self._display = display
        self._failed_display: Display | None = None  # switched off while redrawing: stopped with the run

    @classmethod
    def chosen(cls, *, no_dashboard: bool, driven: bool) -> _GuardedDisplay:
        """The display ``choose_display`` picks for this process's stdout; none if it cannot pick one."""
        if sys.stdout is None:
            return cls(None)  # started without one (>&-): nothing to draw on, and no terminal to look at
        try:
            return cls(choose_display(no_dashboard=no_dashboard, stdout=sys.stdout, driven=driven))
        except Exception as err:  # any failure of the display is the display's, never the run's
            guarded = cls(None)
            guarded._say_failed("chosen", err)
            return guarded

    @staticmethod
    def _say_failed(when: str, err: BaseException) -> None:
        _say(f"carrier-sim run: the display failed when {when} ({type(err).__name__}: {err}); the run goes on "
             f"without it, and its reports are written")

    async def start(self, state: DashboardState, controls: Controls) -> None:
        display = self._display
        if display is None:
            return
        try:
            await display.start(state, controls)
        except Exception as err:
            self._display = None
            self._say_failed("started", err)
            with contextlib.suppress(Exception):
                await display.stop()  # whatever it did set up (the alternate screen, raw keys) is undone

    def refresh(self) -> None:
        display = self._display
        if display is not None:
            self._guard(display, display.refresh)

    def pulse(self) -> None:
        display = self._display
        if display is not None:
            self._guard(display, display.pulse)

    def _guard(self, display: Display, redraw: Callable[[], None]) -> None:
        try:
            redraw()
        except Exception as err:
            self._display, self._failed_display = None, display
            self._say_failed("redrawing", err)

    async def stop(self) -> None:
        display, failed = self._display, self._failed_display
        self._display = self._failed_display = None
        if failed is not None:
            with contextlib.suppress(Exception):
                await failed.stop()  # said already: now only the terminal is given back
        if display is not None:
            try:
                await display.stop()
            except Exception as err:
                self._say_failed("stopped", err)


def _print_results(lines: Sequence[str]) -> None:
    """Print ``lines`` on stdout, which its reader may have closed (``run ... | head -1``, ``| true``): the reports
    are written by now and say what the exit code is, so a stdout nobody reads any more must not make the run a
    harness error (exit 3, a traceback) while they say 0. As Python's documentation advises (the signal module,
    "Note on SIGPIPE"), stdout is then pointed at the null device: the interpreter flushes it once more at exit,
    and that flush would fail as well (exit 120)."""
    stream = sys.stdout
    if stream is None:  # started without one (>&-): nothing to print on
        return
    try:
        for line in lines:
            stream.write(line + "\n")
        stream.flush()
    except OSError:  # BrokenPipeError, or any other reason stdout can no longer be written
        _to_devnull(stream)
    except ValueError:  # closed from Python
        pass


@dataclasses.dataclass(frozen=True, slots=True)
class _Interruption:
    """What cut a run short: ``by`` for the checks' reasons (``"SIGINT"``), ``message`` for ``harness_errors``.
    ``mid_run`` is False for a signal that came once the run was over, while its outputs were being written."""

    by: str
    message: str
    mid_run: bool = True


class _Signals:
    """What SIGINT, SIGTERM and SIGHUP (Ctrl-C, a CI job's timeout or cancel, a closed terminal) have asked of a
    run, from its start until its last output is written.

    The first signal during the run stops it as the dashboard's ``q`` does, so the reports are still written; the
    run is then a harness error (exit 3), because checks judged on a run cut short say nothing about the plan. The
    first signal after the run, while the outputs are written, changes no verdict (they judged the whole run) but
    is recorded the same way (exit 3, the reports say so), and the outputs are finished, the pcap included: it is
    the rest of the run's evidence and takes seconds. Any later signal abandons the pcap (not started, or its
    temporary file removed: never a cut-off pcap at the path) unless it is already complete, which it then says;
    the JSON and JUnit reports are still written, which takes milliseconds. No signal ends the process at once any
    more: that only ever lost the reports (with a KeyboardInterrupt traceback); SIGKILL remains for a run that
    must die now.
    """

    def __init__(self, controls: Controls, clock: Callable[[], float], began: float, *, pcap: bool,
                 echoes: Echoes | None = None) -> None:
        self.controls = controls
        self.interrupted: list[_Interruption] = []
        self.run_over = False
        # Asked from the loop, read by the thread that writes the pcap between frames; it tells whether the pcap
        # was still being written (abandoned) or already complete (kept).
        self.abandon_pcap = AbandonRequest()
        self._pcap_asked = False
        self._clock = clock
        self._began = began
        self._pcap = pcap
        self._seen = 0
        #: Tells a signal's copy (GNU timeout's to the process group) from a new request: see carrier_sim.signals.
        self._echoes = echoes if echoes is not None else Echoes()

    @property
    def stopped(self) -> list[_Interruption]:
        """The interruptions that cut the run itself short (a signal or ``q`` before its end)."""
        return [i for i in self.interrupted if i.mid_run]

    def before_start(self, sig: signal.Signals) -> None:
        """A signal that came before the run began (:class:`_EarlySignals`): the first stops the run at once, as
        one during the run does; any later one is as any later signal."""
        if self._echoes.echo(sig):
            return  # the same request delivered twice (timeout's process group): see carrier_sim.signals
        if self._seen:
            self._act(sig)
            return
        self._seen += 1
        self.controls.stop_requested = True
        self.interrupted.append(_Interruption(
            sig.name, f"interrupted by {sig.name} while the run was starting; the reports cover the run until then"))

    def __call__(self, sig: signal.Signals) -> None:
        if self._echoes.echo(sig):
            return  # the same request delivered twice (timeout's process group): see carrier_sim.signals
        self._act(sig)

    def _act(self, sig: signal.Signals) -> None:
        self._seen += 1
        if self._seen > 1:
            if self._pcap and not self._pcap_asked:
                self._pcap_asked = True
                if self.abandon_pcap.ask():
                    _say(f"carrier-sim run: {sig.name} again: the pcap is abandoned (nothing is left at its "
                         f"path); the JSON and JUnit reports are still written")
                else:  # the signal came once the pcap was complete (renamed into place, or being renamed)
                    _say(f"carrier-sim run: {sig.name} again: the pcap was already written and is kept; the "
                         f"JSON and JUnit reports are still written")
            else:
                _say(f"carrier-sim run: {sig.name} again: already stopping; the reports are still written")
            return
        if not self.run_over:
            self.controls.stop_requested = True
            elapsed = self._clock() - self._began
            self.interrupted.append(_Interruption(
                sig.name, f"interrupted by {sig.name} {elapsed:.1f} s into the run; the reports cover the run until "
                          f"then"))
            return
        self.interrupted.append(_Interruption(
            sig.name, f"interrupted by {sig.name} after the run, while its outputs were being written: the run "
                      f"had ended and its checks judge all of it", mid_run=False))
        more = "; another signal abandons the pcap" if self._pcap else ""
        _say(f"carrier-sim run: {sig.name}: the run is over, finishing its outputs{more}")


class _EarlySignals:
    """SIGINT, SIGTERM and SIGHUP (:data:`STOP_SIGNALS`) from the moment ``carrier-sim run`` is called until the
    run's loop handles them (:func:`_stop_on_signals`): each is kept, and then handed to :class:`_Signals` -- or,
    if it came before the run was started, the run is not started (:func:`_not_started`). Python's default for
    SIGINT raised KeyboardInterrupt wherever the process was (importing, reading the scenario, starting the loop),
    which ended it with a traceback, exit 130 and no report; SIGTERM's ended it at once (143), SIGHUP's too (129)."""

    def __init__(self) -> None:
        self.received: list[signal.Signals] = []
        self._previous: dict[signal.Signals, Any] = {}
        #: The signals the run handles (:func:`_stop_signals`), from :meth:`install` on.
        self.handled: tuple[signal.Signals, ...] = STOP_SIGNALS

    def install(self, previous: Mapping[signal.Signals, Any] | None = None) -> None:
        """Keep the :data:`STOP_SIGNALS` from now on. ``previous``: the handlers to give back (:meth:`hand_over`,
        :meth:`restore`) instead of the ones replaced now, for a signal it names."""
        self.handled = _stop_signals(previous if previous is not None else {})
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may set handlers; a caller elsewhere keeps its own
        for sig in self.handled:
            replaced = signal.signal(sig, self._keep)
            self._previous[sig] = previous[sig] if previous is not None and sig in previous else replaced

    def _keep(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signal.Signals(signum))

    def hand_over(self, installed: Sequence[signal.Signals]) -> list[signal.Signals]:
        """The signals kept so far, now that the loop handles those of ``installed`` (which replaced this
        object's handlers); any other is given back its previous handler, as before this object existed."""
        for sig in [s for s in self._previous if s not in installed]:
            signal.signal(sig, self._previous.pop(sig))
        received, self.received = self.received, []
        return received

    def restore(self) -> None:
        """Give every signal still taken over its previous handler back."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()


@contextlib.asynccontextmanager
async def _stop_on_signals(signals: _Signals, early: _EarlySignals | None = None) -> AsyncIterator[None]:
    """SIGINT, SIGTERM and SIGHUP (:data:`STOP_SIGNALS`) go to ``signals`` (:class:`_Signals`) while the block
    runs, those ``early`` kept before it (from the start of the command) first."""
    loop = asyncio.get_running_loop()
    installed = []
    for sig in early.handled if early is not None else _stop_signals({}):
        try:
            loop.add_signal_handler(sig, signals, sig)
        except (NotImplementedError, RuntimeError):  # not the main thread, or a loop without signal support
            continue
        installed.append(sig)
    # After the loop's handlers are in place, so that no signal falls between the two.
    for sig in early.hand_over(installed) if early is not None else ():
        signals.before_start(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
