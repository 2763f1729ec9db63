"""``carrier-sim run`` end to end: real carriers, the bundled identity core, exit codes, reports, pcap.

A harness that cannot fail is worthless, so beside a passing run there are runs against a deliberately broken
system under test (one that refuses every authenticate) that must fail the right check, an invalid scenario
(exit 2) and a system under test that never shows up (exit 3).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from carrier_sim.runner.run import TICK
from carrier_sim.testing.processes import descendants, running
from tests.interop.conftest import require_module

ROOT = Path(__file__).resolve().parents[3]

SCENARIO = """
name: tiny
seed: 7
clock: wall
carriers:
  - name: carrier-a
    mcc: "234"
    mnc: "15"
    country: GB
    numbering: ["447700900000-447700900999"]
    gateway: "447786205094"
    smsc:
      port: 0
      window: 20
      accounts: [{system_id: identity, password: secret}]
      dialect: kannel-like
  - name: carrier-b
    mcc: "262"
    mnc: "01"
    country: DE
    numbering: ["4915550000000-4915550000999"]
    gateway: "4915550100000"
    smsc:
      port: 0
      window: 20
      interface_version: "5.0"
      accounts: [{system_id: identity, password: secret}]
      dialect: mixed-id-bases
population:
  phones: 200
  mix: {carrier-a: 0.5, carrier-b: 0.5}
  conditions: {absent: 0.0, barred: 0.0, roaming: 0.0}
system_under_test:
  kind: bundled
  system_id: identity
  password: secret
  limits: {reg_per_prefix: [100000.0, 100000.0], auth_per_prefix: [100000.0, 100000.0]}
load:
  model: open
  phases:
    - {name: steady, duration: 3, rate: 60}
flows:
  - {name: activation, weight: 1.0, think_time: {distribution: fixed, value: 0.05}}
events:
  - {at: 2.5, type: sim_swap, share: 0.1}
checks:
  - {name: phones activate, metric: activation.success_ratio, op: ">=", value: 0.99}
  - {name: SMPP conformance, metric: smpp.conformance.fail, op: "==", value: 0}
  - {name: load generated, metric: load.achieved_ratio, op: ">=", value: 0.95}
"""


def _run(tmp_path: Path, text: str, *extra: str, env: dict[str, str] | None = None,
         ) -> tuple[subprocess.CompletedProcess[str], Path, Path]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(text, encoding="utf-8")
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    process = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "run", str(scenario), "--no-dashboard", "--json", str(report),
         "--junit", str(junit), *extra],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False, env={**os.environ, **(env or {})},
    )
    return process, report, junit


def test_passing_run_writes_reports_and_a_pcap(tmp_path: Path) -> None:
    pcap = tmp_path / "run.pcap"
    # A port-out of another share of the phones beside the SIM swap: both revoke through the SUT's events API.
    text = SCENARIO.replace("  - {at: 2.5, type: sim_swap, share: 0.1}",
                            "  - {at: 2.5, type: sim_swap, share: 0.1}\n  - {at: 2.6, type: port_out, share: 0.2}")
    process, report_path, junit_path = _run(tmp_path, text, "--pcap", str(pcap))
    assert process.returncode == 0, process.stdout + process.stderr
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "pass"
    assert report["metrics"]["counters"]["activation.completed"] == report["metrics"]["counters"]["load.arrived"]
    assert {c["name"] for c in report["checks"]} == {"phones activate", "SMPP conformance", "load generated"}
    assert report["conformance"], "per-session SMPP verdicts are part of the report"
    # The runner's own loop kept its 20 ms tick (a run whose p99 passes 1 s is a harness error instead).
    assert TICK * 0.9 <= report["load"]["tick_p99"] < 1.0
    # Rates over the load phase: 60/s declared and offered (no thinning: 200 phones for 180 arrivals).
    assert report["load"]["declared"] == pytest.approx(60.0)
    assert 0.5 * 60 < report["load"]["achieved"] <= report["load"]["target"] < 1.5 * 60
    # The SIM swap and the port-out revoked real bindings through the SUT's API: every phone they hit (the
    # port-out does not pick a phone the SIM swap already cost its binding, which would have nothing to revoke).
    counters = report["metrics"]["counters"]
    assert counters["events.applied"] == counters["events.revoked"] >= 1
    suites = ET.parse(junit_path).getroot()
    cases = suites.findall(".//testcase")
    assert any(c.get("name") == "phones activate" for c in cases)
    assert any((c.get("classname") or "").startswith("smpp.") for c in cases)
    assert pcap.stat().st_size > 1000


def test_broken_sut_fails_the_right_check(tmp_path: Path) -> None:
    # A system under test whose velocity limit refuses almost every authenticate: activations fail, and the
    # success-ratio check must say so (exit 1), while the SMPP conformance check still passes.
    broken = SCENARIO.replace(
        "limits: {reg_per_prefix: [100000.0, 100000.0], auth_per_prefix: [100000.0, 100000.0]}",
        "limits: {reg_per_prefix: [100000.0, 100000.0], auth_per_carrier: [0.1, 1.0]}",
    )
    process, report_path, _ = _run(tmp_path, broken)
    assert process.returncode == 1, process.stdout + process.stderr
    checks = {c["name"]: c["verdict"] for c in json.loads(report_path.read_text())["checks"]}
    assert checks["phones activate"] == "fail"
    assert checks["SMPP conformance"] == "pass"


def test_an_inconclusive_check_fails_the_run_unless_allowed(tmp_path: Path) -> None:
    # No phone arrives, so the activation checks have nothing to judge: a CI gate must not pass on that.
    text = SCENARIO.replace("{name: steady, duration: 3, rate: 60}", "{name: steady, duration: 3, rate: 0}")
    process, report_path, _ = _run(tmp_path / "strict", text)
    assert process.returncode == 1, process.stdout + process.stderr
    report = json.loads(report_path.read_text())
    assert (report["verdict"], report["strict"]) == ("inconc", True)
    assert {c["name"]: c["verdict"] for c in report["checks"]}["phones activate"] == "inconc"
    process, report_path, _ = _run(tmp_path / "lenient", text, "--allow-inconclusive")
    assert process.returncode == 0, process.stdout + process.stderr
    report = json.loads(report_path.read_text())
    assert (report["verdict"], report["exit_code"], report["strict"]) == ("pass", 0, False)


def test_invalid_scenario_exits_2_with_positions(tmp_path: Path) -> None:
    process, _, _ = _run(tmp_path, SCENARIO.replace("op: \">=\", value: 0.99", "op: \">=\", valu: 0.99"))
    assert process.returncode == 2
    assert "tiny.yaml:" in process.stderr
    assert "valu" in process.stderr


def _external(text: str) -> str:
    """``text`` with an external system under test that nobody runs, and fixed free ports for its SMSCs (an
    external system binds to ports it is told in advance)."""
    for port in _free_ports(2):
        text = text.replace("      port: 0\n      window: 20", f"      port: {port}\n      window: 20", 1)
    return text.replace("kind: bundled", "kind: external\n  api: \"http://127.0.0.1:9\"").replace(
        "  limits: {reg_per_prefix: [100000.0, 100000.0], auth_per_prefix: [100000.0, 100000.0]}\n", "")


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_external_sut_that_never_binds_is_a_harness_error(tmp_path: Path) -> None:
    external = _external(SCENARIO)
    process, report_path, junit_path = _run(tmp_path, external, env={"CARRIER_SIM_SUT_TIMEOUT": "2"})
    assert process.returncode == 3, process.stdout + process.stderr
    assert "did not bind" in process.stdout + process.stderr
    # The reports CI reads say the same as the exit code, and why: not a pass, not only unmeasured checks.
    report = json.loads(report_path.read_text())
    assert (report["verdict"], report["exit_code"]) == ("error", 3)
    assert any("did not bind" in e for e in report["harness_errors"])
    root = ET.parse(junit_path).getroot()
    (harness,) = [s for s in root.iter("testsuite") if s.get("name") == "harness"]
    messages = [e.get("message", "") for e in harness.iter("error")]
    assert messages
    assert any("did not bind" in m for m in messages)
    assert int(root.get("errors", "0")) >= len(messages)


def test_virtual_clock_with_an_external_sut_is_refused_not_ignored(tmp_path: Path) -> None:
    external = _external(SCENARIO).replace("clock: wall", "clock: virtual")
    process, _, _ = _run(tmp_path, external)
    assert process.returncode == 2
    assert "tiny.yaml:" in process.stderr  # where it is written: validate says the same
    assert "cannot follow virtual time" in process.stderr


def _comparable(report: dict[str, Any]) -> tuple[dict[str, int], dict[str, Any]]:
    # Sessions and binds are per shard by construction (each shard has its own SMSCs); everything phones did is not.
    counters = {k: v for k, v in report["metrics"]["counters"].items()
                if not k.startswith(("smpp.binds", "smpp.conformance"))}
    return counters, report["metrics"]["latency"]


def test_virtual_runs_are_deterministic_and_do_not_depend_on_the_shards(tmp_path: Path) -> None:
    virtual = SCENARIO.replace("clock: wall", "clock: virtual").replace(
        "    - {name: steady, duration: 3, rate: 60}", "    - {name: steady, duration: 600, rate: 0.3}").replace(
        "  - {at: 2.5, type: sim_swap, share: 0.1}", "  - {at: 400, type: sim_swap, share: 0.1}").replace(
        "think_time: {distribution: fixed, value: 0.05}",
        "think_time: {distribution: lognormal, median: 6, sigma: 0.4}")
    started = time.perf_counter()
    first, report_first, _ = _run(tmp_path / "a", virtual)
    elapsed = time.perf_counter() - started
    second, report_second, _ = _run(tmp_path / "b", virtual)
    sharded, report_sharded, _ = _run(tmp_path / "c", virtual, "--workers", "2")
    for process in (first, second, sharded):
        assert process.returncode == 0, process.stdout + process.stderr
    a, b, c = (json.loads(p.read_text()) for p in (report_first, report_second, report_sharded))
    # Ten minutes of load and think times of tens of seconds pass in virtual time, not on the wall clock.
    assert a["duration"] >= 600
    assert elapsed < a["duration"]
    assert a["metrics"]["latency"]["activation"]["p50"] > 5
    # The same seed gives the same run: every counter and every latency.
    assert _comparable(a) == _comparable(b)
    # Two shards: the same phones did the same things at the same (virtual) times.
    _assert_same_phone_results(a, c)
    assert _comparable(a)[0]["events.revoked"] > 0


def _assert_same_phone_results(a: dict[str, Any], b: dict[str, Any]) -> None:
    counters_a, latency_a = _comparable(a)
    counters_b, latency_b = _comparable(b)
    assert counters_a == counters_b
    for name, summary in latency_a.items():
        for stat in ("count", "min", "max", "p50", "p99"):
            assert latency_b[name][stat] == pytest.approx(summary[stat], rel=1e-9), (name, stat)


def test_ray_actors_run_the_same_shards_as_local_processes(tmp_path: Path) -> None:
    require_module("ray")  # test extras; skips without Ray, fails under REQUIRE_INTEROP=1
    virtual = SCENARIO.replace("clock: wall", "clock: virtual").replace(
        "think_time: {distribution: fixed, value: 0.05}",
        "think_time: {distribution: lognormal, median: 0.5, sigma: 0.4}")
    local, report_local, _ = _run(tmp_path / "local", virtual, "--workers", "2")
    remote, report_remote, junit_remote = _run(tmp_path / "ray", virtual, "--workers", "2", "--ray", "local")
    assert local.returncode == 0, local.stdout + local.stderr
    assert remote.returncode == 0, remote.stdout + remote.stderr
    a, b = (json.loads(p.read_text()) for p in (report_local, report_remote))
    assert b["ray"] == "local"
    assert b["workers"] == 2
    # The same phones did the same things at the same virtual times, whichever engine ran the two shards.
    _assert_same_phone_results(a, b)
    assert _comparable(b)[0]["activation.completed"] > 100
    # Per-session conformance verdicts came back from the actors too.
    assert len(b["conformance"]) == len(a["conformance"]) > 0
    assert ET.parse(junit_remote).getroot().findall(".//testcase")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_a_runner_killed_outright_leaves_no_shard_or_identity_core_behind(tmp_path: Path) -> None:
    long = SCENARIO.replace("    - {name: steady, duration: 3, rate: 60}",
                            "    - {name: steady, duration: 300, rate: 2}")
    scenario = tmp_path / "long.yaml"
    scenario.write_text(long, encoding="utf-8")
    runner = subprocess.Popen([sys.executable, "-m", "carrier_sim.cli", "run", str(scenario), "--no-dashboard",
                               "--workers", "2"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        family: set[int] = set()
        while time.monotonic() < deadline:
            family = descendants(runner.pid)
            if sum("identity_core.cli" in _cmdline(p) for p in family) == 2:
                break
            time.sleep(0.2)
        else:
            raise AssertionError(f"two shards with an identity core each never came up: {family}")
    finally:
        runner.kill()  # SIGKILL: no chance to stop anything itself
        runner.wait()
    # Each shard sees it was re-parented, stops its run and its identity core, and exits.
    deadline = time.monotonic() + 60
    while any(running(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = {p: _cmdline(p) for p in family if running(p)}
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, left


CLOSED = SCENARIO.replace("model: open", "model: closed").replace(
    "    - {name: steady, duration: 3, rate: 60}", "    - {name: soak, duration: 3, concurrency: 10}")


def test_closed_model_keeps_a_fixed_number_of_phones_in_flight(tmp_path: Path) -> None:
    # Enough phones for 3 s of 10 in flight (each runs its flow once; an activation takes ~0.1-0.2 s here).
    process, report_path, _ = _run(tmp_path, CLOSED.replace("phones: 200", "phones: 1900"))
    assert process.returncode == 0, process.stdout + process.stderr
    counters = json.loads(report_path.read_text())["metrics"]["counters"]
    # Phones join as others finish: far more than 10 run in 3 s, never more than the population.
    assert 10 < counters["activation.started"] < 1900
    assert counters["activation.completed"] == counters["activation.started"]


def test_a_closed_loop_that_runs_out_of_phones_is_a_harness_error(tmp_path: Path) -> None:
    # 20 phones cannot keep 10 in flight for 3 s: once a 600 s closed run of 200 phones idled after 5 s and passed.
    process, report_path, _ = _run(tmp_path, CLOSED.replace("phones: 200", "phones: 20"))
    assert process.returncode == 3, process.stdout + process.stderr
    report = json.loads(report_path.read_text())
    assert any("the closed loop ran out of phones" in error for error in report["harness_errors"]), report


def test_renewal_flow_renews_certificates_beside_activation(tmp_path: Path) -> None:
    mixed = SCENARIO.replace(
        "  - {name: activation, weight: 1.0, think_time: {distribution: fixed, value: 0.05}}",
        "  - {name: activation, weight: 1.0, think_time: {distribution: fixed, value: 0.05}}\n"
        "  - {name: renewal, weight: 1.0, think_time: {distribution: fixed, value: 1.1}}",
    ).replace("value: 0.99}",
              "value: 0.99}\n  - {name: renewals, metric: renewal.success_ratio, op: \">=\", value: 0.99}")
    process, report_path, _ = _run(tmp_path, mixed)
    assert process.returncode == 0, process.stdout + process.stderr
    counters = json.loads(report_path.read_text())["metrics"]["counters"]
    assert counters["renewal.started"] > 20
    assert counters["activation.started"] > 20
    assert counters["renewal.completed"] == counters["renewal.started"]
    # Every renewal registered twice: two REG-REQs per phone reached the SMSCs.
    assert counters["renewal.stage.reg_req_sent"] == 2 * counters["renewal.started"]
    assert counters["activation.started"] + counters["renewal.started"] == counters["load.arrived"]


def test_workers_split_the_phones_and_merge_the_results(tmp_path: Path) -> None:
    quiet = SCENARIO.replace("events:\n  - {at: 2.5, type: sim_swap, share: 0.1}\n", "")
    one, report_one, _ = _run(tmp_path, quiet)
    first = json.loads(report_one.read_text())
    two, report_two, _ = _run(tmp_path, quiet, "--workers", "2")
    assert one.returncode == 0, two.stdout + two.stderr
    assert two.returncode == 0, two.stdout + two.stderr
    second = json.loads(report_two.read_text())
    assert second["workers"] == 2
    assert TICK * 0.9 <= second["load"]["tick_p99"] < 1.0
    # Each shard ran its own SMSC per carrier; the report lists both ports.
    assert all(len(c["ports"]) == 2 for c in second["carriers"].values())
    # The same phones arrived and activated, whichever way they were split.
    for name in ("load.planned", "load.arrived", "activation.started", "activation.completed"):
        assert first["metrics"]["counters"][name] == second["metrics"]["counters"][name], name
    completed = second["metrics"]["counters"]["activation.completed"]
    assert second["metrics"]["latency"]["activation"]["count"] == completed


@pytest.mark.parametrize("shards", [("--workers", "2"), ("--ray", "local")], ids=["workers", "ray"])
def test_shards_refuse_what_they_cannot_share(tmp_path: Path, shards: tuple[str, str]) -> None:
    process, _, _ = _run(tmp_path, _external(SCENARIO), *shards)
    assert process.returncode == 2
    assert "external system under test" in process.stderr
    assert shards[0] in process.stderr
    fixed = SCENARIO.replace("      port: 0\n      window: 20\n      accounts",
                             "      port: 27750\n      window: 20\n      accounts", 1)
    process, _, _ = _run(tmp_path, fixed, *shards)
    assert process.returncode == 2
    assert "fixed ports on: carrier-a" in process.stderr


def test_sim_swap_via_the_network_api_fails_when_the_sut_cannot_ask_the_carrier(tmp_path: Path) -> None:
    # Every carrier's SIM Swap API is down (its CAMARA door answers 503 to every call), so the bundled identity
    # core cannot ask it: every risk check is answered 503, and the checks that need swaps detected must fail
    # (exit 1), not pass vacuously. (A scenario with no CAMARA door at all is refused by validate.)
    down = "    doors: {camara: {unavailable: 1.0}}\n"
    blind = SCENARIO.replace("  - {at: 2.5, type: sim_swap, share: 0.1}",
                             "  - {at: 2.5, type: sim_swap, share: 0.1, via: network_api}").replace(
        "      dialect: kannel-like\n", "      dialect: kannel-like\n" + down).replace(
        "      dialect: mixed-id-bases\n", "      dialect: mixed-id-bases\n" + down).replace(
        "checks:\n", "checks:\n"
        "  - {name: swaps found, metric: events.revocation_ratio, op: \">=\", value: 0.99}\n"
        "  - {name: risk checks answered, metric: risk_checks.unavailable, op: \"==\", value: 0}\n")
    process, report_path, _ = _run(tmp_path, blind)
    assert process.returncode == 1, process.stdout + process.stderr
    report = json.loads(report_path.read_text())
    checks = {c["name"]: c["verdict"] for c in report["checks"]}
    assert checks["swaps found"] == "fail"
    assert checks["risk checks answered"] == "fail"
    assert checks["phones activate"] == "pass"
    counters = report["metrics"]["counters"]
    # Every swapped phone and every phone of the control group (about as many, drawn per phone) went unanswered.
    assert counters["risk_checks.unavailable"] > counters["events.applied"] > 0


#: ``python -c FULL_DISK carrier-sim-args...``: carrier-sim with every pcap write failing as a full disk does.
FULL_DISK = """
import errno, sys
from carrier_sim.capture import pcap as pcap_module
from carrier_sim.cli import main

def write(self, frames):
    raise OSError(errno.ENOSPC, "No space left on device")

pcap_module.PcapFile.write = write
sys.exit(main(sys.argv[1:]))
"""


def test_an_output_that_cannot_be_written_is_a_harness_error_in_the_other_reports(tmp_path: Path) -> None:
    # A pcap that passes the check before the run and fails on write (ENOSPC), as on a full disk: the JSON and
    # JUnit written after it must not say "pass" beside the process's exit code 3. (A hook, not /dev/full: a
    # device is refused before the run, and tests never point at device files.)
    scenario, pcap = tmp_path / "tiny.yaml", tmp_path / "run.pcap"
    scenario.write_text(SCENARIO, encoding="utf-8")
    report_path, junit_path = tmp_path / "report.json", tmp_path / "junit.xml"
    process = subprocess.run(
        [sys.executable, "-c", FULL_DISK, "run", str(scenario), "--no-dashboard", "--json", str(report_path),
         "--junit", str(junit_path), "--pcap", str(pcap)],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False)
    assert process.returncode == 3, process.stdout + process.stderr
    report = json.loads(report_path.read_text())
    assert (report["verdict"], report["exit_code"]) == ("error", 3)
    assert any(f"could not write {pcap}" in e and "No space left" in e for e in report["harness_errors"])
    suites = ET.parse(junit_path).getroot()
    assert any(f"could not write {pcap}" in (e.get("message") or "") for e in suites.iter("error"))
    assert not pcap.exists()  # and no cut-off pcap at its path


@pytest.mark.parametrize(("sig", "workers", "group"), [
    (signal.SIGTERM, "1", False),
    (signal.SIGHUP, "1", False),  # a closed terminal (a dropped ssh, tmux kill-session): its default killed the run
    (signal.SIGINT, "2", True),
    (signal.SIGTERM, "2", True),  # GNU timeout, a CI job's cancel: SIGTERM to the group, shards included
    (signal.SIGHUP, "2", True),  # the terminal closed: the hangup reaches every process of the group
])
def test_a_signal_stops_the_run_with_reports_and_exit_3(tmp_path: Path, sig: signal.Signals, workers: str,
                                                        group: bool) -> None:
    # A CI job's timeout sends SIGTERM; Ctrl-C sends SIGINT to the whole process group (shards and SUTs included).
    long = SCENARIO.replace("    - {name: steady, duration: 3, rate: 60}",
                            "    - {name: steady, duration: 300, rate: 5}")
    scenario = tmp_path / "long.yaml"
    scenario.write_text(long, encoding="utf-8")
    report_path, junit_path = tmp_path / "report.json", tmp_path / "junit.xml"
    output = (tmp_path / "stdout.txt").open("w+")  # a file, not a pipe nobody reads while the run goes on
    runner = subprocess.Popen(
        [sys.executable, "-m", "carrier_sim.cli", "run", str(scenario), "--no-dashboard", "--workers", workers,
         "--json", str(report_path), "--junit", str(junit_path)],
        cwd=ROOT, stdout=output, stderr=subprocess.PIPE, text=True, start_new_session=True)
    family: set[int] = set()
    progress = []
    try:
        assert runner.stderr is not None
        # The progress line (on stderr, every 5 s) says when phones have activated: signal then, mid-run.
        for line in runner.stderr:
            progress.append(line)
            if re.search(r" done=[1-9]", line):
                break
        else:
            raise AssertionError(f"the run ended before any phone activated: {progress}")
        family = descendants(runner.pid)
        assert sum("identity_core.cli" in _cmdline(p) for p in family) == int(workers), family
        if group:
            os.killpg(runner.pid, sig)  # as a terminal's Ctrl-C or `timeout`: every process of the group
        else:
            runner.send_signal(sig)
        _, err = runner.communicate(timeout=90)
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
        output.seek(0)
        out = output.read()
        output.close()
    assert runner.returncode == 3, out + err
    assert "Traceback" not in err, err
    report = json.loads(report_path.read_text())
    assert report["exit_code"] == 3
    assert any(e.startswith(f"interrupted by {sig.name}") for e in report["harness_errors"]), report["harness_errors"]
    # Every check says the run was cut short -- in the JSON, the JUnit and the terminal -- not that the harness
    # failed to measure: a CI reader must not go looking for a broken harness.
    unjudged = f"not judged: the run was interrupted ({sig.name}) before its end"
    assert [(c["verdict"], c["reason"]) for c in report["checks"]] == [("error", unjudged)] * 3, report["checks"]
    checks_suite = ET.parse(junit_path).getroot().find(".//testsuite[@name='checks']")
    assert checks_suite is not None
    assert [e.get("message") for e in checks_suite.iter("error")] == [unjudged] * 3
    assert out.count(f"error  phones activate: {unjudged}") == 1, out
    assert "failed to measure" not in out + err
    # What ran until the signal is in the report, and nothing was left running.
    assert report["metrics"]["counters"]["activation.completed"] > 0, report["metrics"]["counters"]
    assert ET.parse(junit_path).getroot().find(".//testsuite[@name='harness']") is not None
    deadline = time.monotonic() + 30
    while any(running(p) for p in family) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not {p for p in family if running(p)}


def test_a_virtual_run_prints_progress_at_a_persons_pace_not_per_plan_seconds(tmp_path: Path) -> None:
    # An hour of sparse plan passes in seconds. The progress line kept a timer of 5 plan seconds: 720 lines, and a
    # loop woken for each; driven by the run's snapshots, it writes one per 5 real seconds, and the last line.
    virtual = SCENARIO.replace("clock: wall", "clock: virtual").replace(
        "    - {name: steady, duration: 3, rate: 60}", "    - {name: steady, duration: 3600, rate: 0.03}").replace(
        "  - {at: 2.5, type: sim_swap, share: 0.1}", "  - {at: 1800, type: sim_swap, share: 0.1}")
    process, report_path, _ = _run(tmp_path, virtual)
    assert process.returncode == 0, process.stdout + process.stderr
    report = json.loads(report_path.read_text())
    assert report["duration"] >= 3600
    lines = [line for line in process.stderr.splitlines() if line.startswith("[")]
    assert 2 <= len(lines) < 60, lines  # the first and the last, and one per 5 s of the run's real time
    assert lines[-1].startswith("[ 60m")
    assert "checks=pass:3,fail:0" in lines[-1]
