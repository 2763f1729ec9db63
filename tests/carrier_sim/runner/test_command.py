"""Pieces of ``carrier-sim run`` that need no run: the dashboard's provisional verdicts, refusals up front."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from scapy.packet import Packet

from carrier_sim.capture.pcap import CaptureAbandoned, PcapFile, write_streams
from carrier_sim.dashboard.live import Controls as DashboardControls
from carrier_sim.dashboard.live import DashboardState, progress_line
from carrier_sim.metrics.checks import evaluate
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.command import (
    _Progress,
    _Signals,
    max_local_workers,
    provisional,
    ray_address_problem,
    run_command,
    unsupported_features,
    unwritable_reason,
)
from carrier_sim.runner.shards import CarrierSnapshot, Snapshot, merge_snapshots, remember
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Check
from carrier_sim.signals import ECHO_WINDOW, Echoes

ROOT = Path(__file__).resolve().parents[3]

#: A scenario that runs in about a second (virtual time, 20 phones): the reviewer's base.yaml.
TINY = """
name: tiny
seed: 1
clock: virtual
carriers:
  - name: carrier-a
    mcc: "234"
    mnc: "15"
    country: GB
    numbering: ["447700900000-447700900099"]
    gateway: "447786205094"
    smsc:
      accounts: [{system_id: identity, password: secret}]
population:
  phones: 20
load:
  phases:
    - {name: steady, duration: 2, rate: 10}
flows:
  - {name: activation, weight: 1.0}
checks:
  - {name: ok, metric: activation.success_ratio, op: ">=", value: 0.5}
"""


def _run_tiny(tmp_path: Path, *flags: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``carrier-sim run`` of :data:`TINY` in a process of its own (killed after ``timeout``)."""
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY, encoding="utf-8")
    return subprocess.run([sys.executable, "-m", "carrier_sim.cli", "run", str(scenario), "--no-dashboard", *flags],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT, check=False)

CHECK = Check("phones activate", "activation.success_ratio", ">=", 0.99)


def _metrics(started: int, completed: int, failed: int) -> RunMetrics:
    metrics = RunMetrics()
    metrics.count("activation.started", started)
    metrics.count("activation.completed", completed)
    metrics.count("activation.failed", failed)
    return metrics


def test_the_last_progress_line_tallies_the_final_verdicts_not_the_live_ones(tmp_path: Path) -> None:
    """A count that must rise is "not yet" (inconc) while the run goes on; the line written once the run is over
    showed it so (fail:0) while the verdicts printed after it, the JSON and the exit code said fail."""
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY + '  - {name: throttling happened, metric: smpp.throttled, op: ">", value: 0}\n',
                        encoding="utf-8")
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "carrier_sim.cli", "run", str(scenario), "--no-dashboard",
                           "--json", str(report)], capture_output=True, text=True, timeout=120, cwd=ROOT, check=False)
    assert done.returncode == 1, done.stderr
    assert "fail   throttling happened" in done.stdout
    assert json.loads(report.read_text(encoding="utf-8"))["verdict"] == "fail"
    last = [line for line in done.stderr.splitlines() if line.startswith("[")][-1]
    assert "checks=pass:1,fail:1,inconc:0,error:0 " in last, done.stderr


def test_a_stdout_nobody_reads_leaves_the_exit_code_the_reports_give(tmp_path: Path) -> None:
    # `run ... | true`: printing the verdicts raised BrokenPipeError, and the run ended as a harness error (exit 3,
    # a traceback) while its JSON report said exit_code 0.
    scenario, report, err = tmp_path / "tiny.yaml", tmp_path / "report.json", tmp_path / "stderr"
    scenario.write_text(TINY, encoding="utf-8")
    with err.open("wb") as stderr:
        run = subprocess.Popen([sys.executable, "-m", "carrier_sim.cli", "run", str(scenario), "--no-dashboard",
                                "--json", str(report)], stdout=subprocess.PIPE, stderr=stderr, cwd=ROOT)
        assert run.stdout is not None
        run.stdout.close()  # the reader is gone before anything is printed
        code = run.wait(timeout=120)
    text = err.read_text(encoding="utf-8")
    assert "Traceback" not in text
    assert "Exception ignored" not in text
    assert json.loads(report.read_text(encoding="utf-8"))["exit_code"] == 0
    assert code == 0, text


def test_a_ratio_failing_only_for_phones_in_flight_is_inconclusive_while_running() -> None:
    metrics = _metrics(100, 60, 0)
    (live,) = provisional(evaluate([CHECK], metrics), metrics)
    assert live.verdict == "inconc"
    assert "40 phones still in flight" in live.reason


def test_a_ratio_that_cannot_recover_still_fails_live() -> None:
    metrics = _metrics(100, 60, 30)  # even if the last 10 complete: 0.7
    (live,) = provisional(evaluate([CHECK], metrics), metrics)
    assert live.verdict == "fail"


def test_passing_and_other_checks_are_left_alone() -> None:
    metrics = _metrics(100, 100, 0)
    latency = Check("count", "activation.failed", "==", 0)
    verdicts = evaluate([CHECK, latency], metrics)
    assert provisional(verdicts, metrics) == verdicts


def test_unwritable_report_paths_are_named(tmp_path: Path) -> None:
    assert unwritable_reason(tmp_path / "report.json") is None
    assert unwritable_reason(Path("report.json")) is None  # the working directory
    assert unwritable_reason(tmp_path) == "is a directory"
    assert "does not exist" in str(unwritable_reason(tmp_path / "missing" / "report.json"))
    (tmp_path / "file").write_text("x")
    assert "is not a directory" in str(unwritable_reason(tmp_path / "file" / "report.json"))


def test_an_output_path_that_is_a_fifo_socket_or_device_is_named_and_a_link_is_followed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert unwritable_reason(fifo) == ("is not a regular file (a FIFO): outputs are written to a new file renamed "
                                       "into place, never into a pipe or device; name a regular file")
    with socket.socket(socket.AF_UNIX) as sock:
        monkeypatch.chdir(tmp_path)  # a short relative name: AF_UNIX paths are limited to about 100 octets
        sock.bind("sock")
        assert "is not a regular file (a socket)" in str(unwritable_reason(Path("sock")))
    link = tmp_path / "link"
    link.symlink_to(fifo)
    assert str(unwritable_reason(link)).startswith(f"links to {fifo}, which is not a regular file (a FIFO)")
    # A link to a regular file, or to a file not made yet, is fine: the file it leads to is written.
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "to_file").symlink_to(tmp_path / "real.json")
    (tmp_path / "to_new").symlink_to(tmp_path / "new.json")
    assert unwritable_reason(tmp_path / "to_file") is None
    assert unwritable_reason(tmp_path / "to_new") is None
    (tmp_path / "to_nowhere").symlink_to(tmp_path / "missing" / "r.json")
    assert unwritable_reason(tmp_path / "to_nowhere") == (
        f"links to {tmp_path / 'missing' / 'r.json'}, which is in directory {tmp_path / 'missing'}, which does not "
        f"exist")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    assert "cannot be examined" in str(unwritable_reason(tmp_path / "loop"))


def test_outputs_to_a_symlink_and_a_fifo_the_reviewers_case(tmp_path: Path) -> None:
    # `--json out/link.json --junit out/pipe` exited 0 and left both as regular files: the link's target stale,
    # the FIFO's reader waiting for ever. The FIFO is now refused before the run; the link alone is followed.
    out = tmp_path / "out"
    out.mkdir()
    (out / "link.json").symlink_to(out / "real.json")
    os.mkfifo(out / "pipe")
    refused = _run_tiny(tmp_path, "--json", str(out / "link.json"), "--junit", str(out / "pipe"))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"--junit {out / 'pipe'}: is not a regular file (a FIFO)" in refused.stderr
    assert stat.S_ISFIFO((out / "pipe").lstat().st_mode)
    assert not (out / "real.json").exists()  # refused before the run: nothing written anywhere
    done = _run_tiny(tmp_path, "--json", str(out / "link.json"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert (out / "link.json").is_symlink()
    assert json.loads((out / "real.json").read_text())["verdict"] == "pass"


def test_a_pcap_to_a_fifo_is_refused_before_the_run_not_a_hang_after_it(tmp_path: Path) -> None:
    # The run passed, then blocked for ever opening the FIFO to write the pcap (nobody reading it). On a hang the
    # process is killed at the timeout and the test fails.
    fifo = tmp_path / "p.pcap"
    os.mkfifo(fifo)
    refused = _run_tiny(tmp_path, "--pcap", str(fifo), timeout=60)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert f"--pcap {fifo}: is not a regular file (a FIFO)" in refused.stderr
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def _refuse_to_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make starting a run fail the test: what is refused up front must never reach run_in_clock, which starts
    every run (one shard here, many, or Ray's)."""
    def started(*_args: object, **_kwargs: object) -> int:
        pytest.fail("the run was started; it should have been refused before")

    monkeypatch.setattr("carrier_sim.runner.command.run_in_clock", started)


@pytest.mark.parametrize("flag", ["--json", "--junit", "--pcap"])
def test_a_report_path_that_cannot_be_written_is_refused_before_the_run(
        tmp_path: Path, flag: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "missing" / "out"
    option = {"--json": "json_path", "--junit": "junit", "--pcap": "pcap"}[flag]
    _refuse_to_start(monkeypatch)
    code = run_command(ROOT / "scenarios" / "quickstart.yaml", **{option: bad})  # type: ignore[arg-type]
    assert code == 2
    assert f"{flag} {bad}: directory {bad.parent} does not exist" in capsys.readouterr().err


def test_outputs_onto_each_other_or_onto_the_scenario_are_refused_before_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # `--json o1 --junit o1` left the JSON where CI reads the JUnit XML; `--json victim.yaml` replaced the scenario
    # itself with its report. Both exited 0. A link onto either, or a file the scenario includes, is the same.
    monkeypatch.chdir(tmp_path)
    Path("common.yaml").write_text("clock: virtual\n", encoding="utf-8")
    scenario = Path("tiny.yaml")
    scenario.write_text("include: common.yaml\n" + TINY, encoding="utf-8")
    Path("to_scenario").symlink_to("tiny.yaml")
    Path("sub").mkdir()
    _refuse_to_start(monkeypatch)
    assert run_command(scenario, json_path=Path("o1"), junit=Path("o1"), pcap=Path("sub/../o1")) == 2
    err = capsys.readouterr().err
    assert "carrier-sim run: --junit o1 and --json o1 are one file; give each output a file of its own" in err
    assert "carrier-sim run: --junit o1 and --pcap sub/../o1 are one file" in err
    assert "carrier-sim run: --json o1 and --pcap sub/../o1 are one file" in err
    assert run_command(scenario, json_path=Path("to_scenario"), junit=Path("./common.yaml")) == 2
    err = capsys.readouterr().err
    assert ("carrier-sim run: --json to_scenario is the scenario file (tiny.yaml); an output would replace it"
            in err)
    assert (f"carrier-sim run: --junit common.yaml is a file the scenario includes ({tmp_path / 'common.yaml'}); "
            "an output would replace it") in err
    assert scenario.read_text(encoding="utf-8").startswith("include: common.yaml")
    # A hard link is another name: the output replaces that name only, and the scenario keeps its content.
    os.link(scenario, "hard.yaml")
    monkeypatch.setattr("carrier_sim.runner.command.run_in_clock", lambda *_args, **_kwargs: 0)
    assert run_command(scenario, json_path=Path("hard.yaml"), junit=Path("o2")) == 0


# ------------------------------------------------------------ a later signal says what becomes of the pcap

#: One captured connection: a few frames, so the writer has frames to ask about abandoning between.
STREAM = ("10.0.0.1:40000", "10.0.0.2:2775", [("open", b"", 1.0), ("in", b"hello", 2.0), ("out", b"hi", 3.0)])


def _signals_after_the_run() -> _Signals:
    # Each signal a second after the one before: requests of their own, never a copy of the last (Echoes).
    signals = _Signals(DashboardControls(), lambda: 0.0, 0.0, pcap=True,
                       echoes=Echoes(itertools.count(0.0, 1.0).__next__))
    signals.run_over = True
    signals(signal.SIGTERM)  # the first one after the run: the outputs are finished
    return signals


def test_one_signal_delivered_twice_at_once_is_one_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # GNU timeout sends its SIGTERM to the command, then to its process group, which holds the command: the copy
    # abandoned the pcap a CI job's timeout was meant to keep.
    path = tmp_path / "run.pcap"
    signals = _Signals(DashboardControls(), lambda: 0.0, 0.0, pcap=True)
    signals(signal.SIGTERM)  # stops the run
    signals(signal.SIGTERM)  # its copy, microseconds later
    assert signals.controls.stop_requested
    assert len(signals.interrupted) == 1
    write_streams(path, [STREAM], stop=signals.abandon_pcap)
    assert path.exists()
    assert "again" not in capsys.readouterr().err
    time.sleep(ECHO_WINDOW)
    signals(signal.SIGTERM)  # a request of its own: a second signal, which would have abandoned the pcap
    assert "SIGTERM again: the pcap was already written and is kept" in capsys.readouterr().err


def test_a_signal_once_the_pcap_is_written_says_it_is_kept(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # It said "the pcap is abandoned (nothing is left at its path)" with the complete pcap at its path.
    path = tmp_path / "run.pcap"
    signals = _signals_after_the_run()
    write_streams(path, [STREAM], stop=signals.abandon_pcap)
    signals(signal.SIGTERM)  # while the reports are written again or the verdicts printed
    err = capsys.readouterr().err
    assert "SIGTERM again: the pcap was already written and is kept" in err
    assert "abandoned" not in err
    assert path.exists()


def test_a_signal_while_the_complete_pcap_is_closed_says_it_is_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # The writer asks between frames only: a signal while the finished file is flushed and renamed does not stop
    # it, so "abandoned" would be untrue there too.
    path = tmp_path / "run.pcap"
    signals = _signals_after_the_run()
    close = PcapFile.close

    def close_after_a_signal(pcap: PcapFile) -> None:
        signals(signal.SIGTERM)
        close(pcap)

    monkeypatch.setattr(PcapFile, "close", close_after_a_signal)
    write_streams(path, [STREAM], stop=signals.abandon_pcap)
    err = capsys.readouterr().err
    assert "SIGTERM again: the pcap was already written and is kept" in err
    assert "abandoned" not in err
    assert path.exists()


def test_a_signal_while_the_pcap_is_written_abandons_it_and_says_so(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.pcap"
    signals = _signals_after_the_run()
    write = PcapFile.write

    def write_with_a_signal_after_the_first_frame(pcap: PcapFile, frames: Iterable[Packet]) -> None:
        def frames_then_signal() -> Iterator[Packet]:
            for n, frame in enumerate(frames):
                if n == 1:
                    signals(signal.SIGTERM)
                yield frame
        write(pcap, frames_then_signal())

    monkeypatch.setattr(PcapFile, "write", write_with_a_signal_after_the_first_frame)
    with pytest.raises(CaptureAbandoned):
        write_streams(path, [STREAM], stop=signals.abandon_pcap)
    assert "SIGTERM again: the pcap is abandoned (nothing is left at its path)" in capsys.readouterr().err
    assert sorted(tmp_path.iterdir()) == []  # nor its temporary file


def test_a_signal_before_the_pcap_is_begun_abandons_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "run.pcap"
    signals = _signals_after_the_run()
    signals(signal.SIGTERM)  # while the JSON and JUnit reports are written, before the pcap
    signals(signal.SIGINT)  # a third: said once, the pcap's fate does not change
    with pytest.raises(CaptureAbandoned):
        write_streams(path, [STREAM], stop=signals.abandon_pcap)
    err = capsys.readouterr().err
    assert err.count("the pcap is abandoned (nothing is left at its path)") == 1
    assert "SIGINT again: already stopping" in err
    assert not path.exists()


@pytest.mark.parametrize("seed", [-1, 2**63])
def test_seed_option_has_the_schemas_bounds(seed: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_command(ROOT / "scenarios" / "quickstart.yaml", seed=seed) == 2
    assert capsys.readouterr().err == f"carrier-sim run: --seed {seed}: a seed is 0..{2**63 - 1}\n"


def _progress(*overrides: str) -> tuple[_Progress, DashboardState, DashboardControls]:
    phases = "[{name: one, duration: 10, rate: 100}, {name: two, duration: 10, rate: 50}]"
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", [f"load.phases={phases}", *overrides])
    state, controls = DashboardState(scenario=scenario.name), DashboardControls()
    return _Progress(scenario, state, controls), state, controls


def _snap(elapsed: float, plan_time: float, achieved: int, failures: dict[str, int] | None = None) -> Snapshot:
    metrics = None
    if failures is not None:
        registry = RunMetrics()
        for name, n in failures.items():
            registry.count(name, n)
        metrics = registry.to_bytes()
    return Snapshot(0, elapsed, achieved, achieved, metrics=metrics, plan_time=plan_time)


def test_the_dashboard_follows_the_plans_time_and_a_recent_rate() -> None:
    progress, state, controls = _progress()
    progress(_snap(0.0, 0.0, 0))
    progress(_snap(9.0, 9.0, 900))
    assert (state.phase, state.target_rate) == ("one", 100.0)
    # Paused from 9 s: wall time goes on, the plan's does not; the target is nothing.
    controls.paused = True
    progress(_snap(14.0, 9.0, 900))
    assert (state.phase, state.target_rate) == ("one", 0.0)
    # The achieved rate is of the last few seconds (nothing arrived), not the run's average (900 / 14).
    assert state.achieved_rate == 0.0
    controls.paused = False
    controls.rate_multiplier = 2.0
    progress(_snap(19.0, 19.0, 1400))
    assert (state.phase, state.target_rate) == ("two", 100.0)  # 50/s planned, doubled
    assert state.achieved_rate == 100.0


def test_the_target_rate_is_the_one_the_population_thins_the_plan_to() -> None:
    # 1,500 arrivals declared for 750 phones: each arrives once, so every phase runs at half its declared rate.
    progress, state, _ = _progress("population.phones=750")
    progress(_snap(0.0, 0.0, 0))
    progress(_snap(5.0, 5.0, 250))
    assert (state.phase, state.target_rate) == ("one", 50.0)
    progress(_snap(15.0, 15.0, 500))
    assert (state.phase, state.target_rate) == ("two", 25.0)


def test_a_closed_model_has_no_target_rate_to_show() -> None:
    phases = "[{name: busy, duration: 10, concurrency: 20}]"
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", [f"load.phases={phases}", "load.model=closed"])
    state, controls = DashboardState(scenario=scenario.name), DashboardControls()
    progress = _Progress(scenario, state, controls)
    progress(_snap(0.0, 0.0, 0))
    progress(_snap(5.0, 5.0, 130))
    assert (state.phase, state.target_rate) == ("busy", None)
    assert "rate=" in progress_line(state, controls)
    assert "/-/s" in progress_line(state, controls)


def test_a_count_that_must_still_rise_is_inconclusive_while_running_not_failed() -> None:
    # Counts only grow: "smpp.throttled > 0" at 0 after one second can still pass by the end.
    metrics = RunMetrics()
    rising = Check("throttling happened", "smpp.throttled", ">", 0)
    capped = Check("no failures", "activation.failed", "==", 0)
    metrics.count("activation.failed", 2)
    live = provisional(evaluate([rising, capped], metrics), metrics)
    assert [v.verdict for v in live] == ["inconc", "fail"]  # a count over its == bound cannot come back
    assert "not yet" in live[0].reason


def test_event_lines_reach_the_recent_panel_once_each() -> None:
    progress, state, _ = _progress()
    snap = _snap(1.0, 1.0, 10)
    snap.events = ["event smsc_outage: carrier-a's SMSC down for 5 s"]
    progress(snap)
    later = _snap(2.0, 2.0, 20)
    later.events = [*snap.events, "event smsc_outage over: carrier-a's SMSC listens again"]
    progress(later)
    assert [message for _, message in state.errors] == later.events


def test_each_shards_new_errors_and_events_are_shown_once_in_order_with_several_workers() -> None:
    """--workers N: the merged snapshot lists shard 0's lines, then shard 1's... A single count of the lines seen
    showed shard 1's old error again when shard 0 had a new one, and never shard 0's new one."""
    progress, state, _ = _progress()
    latest: dict[int, Snapshot] = {}

    def send(shard: int, errors: list[str], events: tuple[str, ...] = ()) -> None:
        remember(latest, Snapshot(shard, 1.0, 0, 0, errors=errors, events=list(events)))
        progress(merge_snapshots(latest))

    send(0, ["A1"])
    send(1, ["B1"], ("event B",))
    send(0, ["A1", "A2"], ("event A",))
    send(1, ["B1", "B2", "B3"], ("event B",))
    send(0, ["A1", "A2", "A3"], ("event A", "event A'"))
    send(1, ["B1", "B2", "B3"], ("event B",))  # nothing new
    assert [message for _, message in state.errors] == [
        "A1", "B1", "event B", "A2", "event A", "B2", "B3", "A3", "event A'"]
    assert state.error_count == 6


def test_phone_failures_reach_the_recent_errors_once_each() -> None:
    progress, state, _ = _progress()
    progress(_snap(1.0, 1.0, 10, {"activation.failed.http_503": 3, "activation.failed": 3}))
    progress(_snap(2.0, 2.0, 20, {"activation.failed.http_503": 3, "activation.failed": 3}))
    progress(_snap(3.0, 3.0, 30, {"activation.failed.http_503": 5, "activation.failed.no_reg_resp": 1,
                                  "activation.failed": 6}))
    assert [message for _, message in state.errors] == [
        "activation: 3 phones failed: http_503 (3 in all)",
        "activation: 2 phones failed: http_503 (5 in all)",
        "activation: 1 phone failed: no_reg_resp (1 in all)",
    ]


def test_event_lines_are_shown_but_not_counted_as_errors() -> None:
    progress, state, _ = _progress()
    snap = _snap(1.0, 1.0, 10, {"activation.failed.http_503": 3, "activation.failed": 3})
    snap.events = ["event sim_swap: 12 phones"]
    snap.errors = ["carrier-a: bind lost"]
    progress(snap)
    assert len(state.errors) == 3
    # One harness error, and one line standing for 3 failed phones: 4 errors; the event is none.
    assert state.error_count == 4


def _carrier_snap(elapsed: float, sent: dict[str, int]) -> Snapshot:
    snap = _snap(elapsed, elapsed, 0)
    snap.carriers = {name: CarrierSnapshot(binds=1, submitted=n) for name, n in sent.items()}
    return snap


def test_a_carriers_msg_rate_is_over_the_last_seconds_not_one_snapshot() -> None:
    progress, state, _ = _progress()
    bursts = [0, 200, 0, 100]  # per 0.25 s snapshot: 0, 800, 0, 400 msg/s over one; 300 msg/s on average
    sent = 0
    progress(_carrier_snap(0.0, {"acme": 0}))
    shown = []
    for tick in range(1, 41):
        sent += bursts[(tick - 1) % 4]
        progress(_carrier_snap(0.25 * tick, {"acme": sent}))
        shown.append(state.carriers["acme"].throughput)
    # The first snapshots use the history there is: 0 in 0.25 s, 200 in 0.5 s, 200 in 0.75 s, 300 in 1 s.
    assert shown[:4] == [0.0, pytest.approx(400.0), pytest.approx(200 / 0.75), pytest.approx(300.0)]
    # Past the window every figure is of the last ~2.5 s, never one burst's 0 or 800.
    assert all(250.0 <= rate <= 350.0 for rate in shown[12:]), shown[12:]


def test_a_carrier_first_seen_late_is_rated_from_when_it_appeared() -> None:
    progress, state, _ = _progress()
    progress(_carrier_snap(1.0, {"acme": 100}))
    progress(_carrier_snap(2.0, {"acme": 200, "zeta": 50}))
    assert state.carriers["acme"].throughput == pytest.approx(100.0)
    assert state.carriers["zeta"].throughput == 0.0  # one sample: no rate yet, not 50 over an unknown span
    progress(_carrier_snap(3.0, {"acme": 300, "zeta": 150}))
    assert state.carriers["zeta"].throughput == pytest.approx(100.0)


def test_more_workers_than_phones_is_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY, encoding="utf-8")
    two = load_scenario(scenario, ["population.phones=2"])
    assert unsupported_features(two, 2) == []
    assert unsupported_features(two, 3) == ["--workers 3: more shards than the population's 2 phones; at most 2"]
    _refuse_to_start(monkeypatch)
    assert run_command(scenario, ["population.phones=2"], workers=3, no_dashboard=True) == 2
    assert "--workers 3: more shards than the population's 2 phones; at most 2" in capsys.readouterr().err


def test_local_workers_are_bounded_by_the_cpus_but_ray_workers_are_not(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # --workers 100000 started one ~76 MB process per shard until the machine fell over.
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY, encoding="utf-8")
    many = load_scenario(scenario, ["population.phones=100"])
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert max_local_workers() == 8  # at least 8, even on one CPU
    assert unsupported_features(many, 8) == []
    assert unsupported_features(many, 9) == [
        "--workers 9: at most 8 local shard processes on this machine (4 per CPU, at least 8); use --ray for more"]
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    assert max_local_workers() == 16
    assert unsupported_features(many, 16) == []
    assert "at most 16 local shard processes" in unsupported_features(many, 17)[0]
    # On Ray the cluster's CPUs bound the shards (Ray queues the actors it cannot place), not this machine's.
    assert not any("local shard processes" in p for p in unsupported_features(many, 100, ray="local"))
    assert unsupported_features(many, 100_000)[0].startswith("--workers 100000: more shards than the population's")


@pytest.mark.parametrize("address", ["local", "auto", "10.0.0.5:6379", "head.example:6379", "ray://head:10001",
                                     "ray://[2001:db8::1]:10001", "[::1]:6379"])
def test_the_documented_ray_addresses_are_accepted(address: str) -> None:
    assert ray_address_problem(address) is None


@pytest.mark.parametrize("address", ["", " ", "ray://", "head", "head:", ":6379", "head:0", "head:65536",
                                     "head:63 79", "http://head:6379", "ray://head:port", "he ad:6379"])
def test_an_invalid_ray_address_is_refused_up_front_with_exit_2(
        address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `--ray ''` went to ray.init and came back as a harness error (exit 3, "Invalid address format").
    reason = f"--ray {address!r}: not a Ray address; give local, auto, HOST:PORT or ray://HOST:PORT"
    assert ray_address_problem(address) == reason
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY, encoding="utf-8")
    assert run_command(scenario, ray=address, no_dashboard=True) == 2
    assert reason in capsys.readouterr().err
