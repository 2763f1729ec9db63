"""A SIGINT or SIGTERM that lands while ``carrier-sim run`` starts -- reading the scenario, importing the runner,
starting its loop -- ends the run as one during the run does: exit 3, and reports that say so. Python's default
raised KeyboardInterrupt wherever the process was (a traceback, exit 130, no report), and SIGTERM's killed it.

The signals are sent from inside the run's own process, by a hook around the scenario loader or the runner's
entry, so they land at that moment on every run, however fast the machine.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from carrier_sim.runner.command import run_command
from carrier_sim.signals import StartupSignals
from tests.carrier_sim.runner.test_command import TINY

ROOT = Path(__file__).resolve().parents[3]

# ``python -c HOOK WHERE SIGNALS carrier-sim-args...`` runs carrier-sim in this process, sending itself SIGNALS
# (comma-separated, in order) as the scenario is loaded (WHERE "load") or as the runner is entered, the scenario
# checked and the outputs found writable (WHERE "start"). It then prints whether scapy was imported.
HOOK = """
import os, signal, sys
import carrier_sim.runner.shards as shards
import carrier_sim.scenario.loader as loader
from carrier_sim.cli import main

where, names = sys.argv[1], sys.argv[2].split(",")

def hit(real):
    def hook(*args, **kwargs):
        for name in names:
            os.kill(os.getpid(), signal.Signals[name])
        return real(*args, **kwargs)
    return hook

if where == "load":
    loader.load_scenario = hit(loader.load_scenario)
else:
    shards.run_in_clock = hit(shards.run_in_clock)
code = main(sys.argv[3:])
print("scapy imported:", "scapy" in sys.modules)
sys.exit(code)
"""


def _run(tmp_path: Path, where: str, signals: str, *flags: str) -> subprocess.CompletedProcess[str]:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY, encoding="utf-8")
    return subprocess.run(
        [sys.executable, "-c", HOOK, where, signals, "run", str(scenario), "--no-dashboard",
         "--json", str(tmp_path / "report.json"), "--junit", str(tmp_path / "junit.xml"), *flags],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("where", ["load", "start"])
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_the_run_starts_stops_it_with_reports_and_exit_3(
        tmp_path: Path, where: str, sig: signal.Signals) -> None:
    done = _run(tmp_path, where, sig.name)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert (report["verdict"], report["exit_code"]) == ("error", 3)
    assert report["harness_errors"] == [
        f"interrupted by {sig.name} while the run was starting; the reports cover the run until then"]
    [check] = report["checks"]
    assert check["verdict"] == "error"
    assert check["reason"] == f"not judged: the run was interrupted ({sig.name}) before its end"
    messages = [e.get("message") or "" for e in ET.parse(tmp_path / "junit.xml").getroot().iter("error")]
    assert any(m.startswith(f"interrupted by {sig.name} while the run was starting") for m in messages), messages
    # scapy (the pcap writer's) is not imported by a run that writes no pcap.
    assert "scapy imported: False" in done.stdout


def test_a_second_signal_while_the_run_starts_abandons_the_pcap_not_the_reports(tmp_path: Path) -> None:
    done = _run(tmp_path, "load", "SIGINT,SIGTERM", "--pcap", str(tmp_path / "wire.pcap"))
    assert done.returncode == 3, done.stdout + done.stderr
    assert "SIGTERM again: the pcap is abandoned" in done.stderr
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["harness_errors"][0].startswith("interrupted by SIGINT while the run was starting")
    assert any(e.endswith("not written: abandoned on a second signal (nothing left at that path)")
               for e in report["harness_errors"])
    assert not (tmp_path / "wire.pcap").exists()


def test_the_command_does_not_import_the_runner_before_it_handles_signals() -> None:
    # What `carrier-sim run` imports before run_command is called, it imports with Python's default handling of
    # SIGINT and SIGTERM: the runner (aiohttp, the carriers), Ray and scapy come after.
    probe = ("import sys; import carrier_sim.cli, carrier_sim.runner.command; "
             "print(sorted(m for m in sys.modules if m.split('.')[0] in ('scapy', 'aiohttp', 'ray') "
             "or m.startswith(('carrier_sim.runner.run', 'carrier_sim.runner.shards', 'carrier_sim.capture.'))))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=True)
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("text", [TINY, "name: bad\n"], ids=["run", "invalid-scenario"])
def test_run_command_gives_back_the_handlers_from_before_the_console_scripts_keeper(
        tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Under the console script the handlers run's own keeper replaces are StartupSignals' keeper's: given back,
    # SIGINT and SIGTERM were kept for no one once the command was over (the real script: test_console.py).
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(text, encoding="utf-8")
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        startup = StartupSignals()
        startup.install()
        code = run_command(scenario, no_dashboard=True, startup=startup)
        assert code == (0 if text == TINY else 2), capsys.readouterr()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)
