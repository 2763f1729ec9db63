"""A SIGINT or SIGTERM that lands while ``carrier-sim run`` writes its outputs (the pcap takes seconds to minutes:
a CI job's timeout often lands there) is recorded as an interruption (exit 3, the reports say so) and costs at most
the pcap: the JSON and JUnit are written first and complete, and a cut-off pcap never sits at its path.

The signals are sent from inside the pcap writer (a hook around ``PcapFile.write`` in the run's own process), at
its second frame, so they land while the pcap is being written on every run, however fast the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from scapy.utils import rdpcap

ROOT = Path(__file__).resolve().parents[3]

# ``python -c HOOK SIGNALS NOTES PACE carrier-sim-args...`` runs carrier-sim in this process after wrapping
# PcapFile.write: at the pcap's second frame it notes which files the output directory holds, then sends itself
# SIGNALS (comma-separated, in order; distinct signals, so the kernel cannot merge them). With PACE "pace" the
# later frames then come 0.05 s apart (up to 10 s), which leaves the loop ample time to see a signal meant to
# abandon the pcap before the file could be finished. Once the write returns it notes how many frames went through.
HOOK = """
import json, os, signal, sys, time
from pathlib import Path
from carrier_sim.capture import pcap as pcap_module
from carrier_sim.cli import main

signals = [signal.Signals[name] for name in sys.argv[1].split(",")]
notes = Path(sys.argv[2])
pace = sys.argv[3] == "pace"
real = pcap_module.PcapFile.write

def write(self, frames):
    count = 0
    def paced():
        nonlocal count
        for index, frame in enumerate(frames):
            if index == 1:
                notes.write_text(json.dumps(sorted(p.name for p in notes.parent.iterdir())))
                for sig in signals:
                    os.kill(os.getpid(), sig)
            elif index > 1 and pace and index < 200:
                time.sleep(0.05)
            count += 1
            yield frame
    real(self, paced())
    (notes.parent / "frames.txt").write_text(str(count))

pcap_module.PcapFile.write = write
sys.exit(main(sys.argv[4:]))
"""


def _run(tmp_path: Path, signals: str, pace: bool) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path / "out"
    out.mkdir()
    notes = tmp_path / "out" / "notes.json"
    process = subprocess.run(
        [sys.executable, "-c", HOOK, signals, str(notes), "pace" if pace else "-",
         "run", str(ROOT / "scenarios" / "quickstart.yaml"), "--no-dashboard",
         "--set", "clock=virtual", "--set", "population.phones=200", "--set", "events=[]",
         "--set", "load.phases=[{name: steady, duration: 10, rate: 10}]",
         "--json", str(out / "report.json"), "--junit", str(out / "junit.xml"), "--pcap", str(out / "wire.pcap")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    return process, out


def _assert_reports_say(out: Path, *errors: str) -> dict[str, object]:
    report: dict[str, object] = json.loads((out / "report.json").read_text(encoding="utf-8"))
    assert (report["verdict"], report["exit_code"]) == ("error", 3)
    harness = report["harness_errors"]
    assert isinstance(harness, list)
    for error in errors:
        assert any(e.startswith(error) for e in harness), harness
    root = ET.parse(out / "junit.xml").getroot()
    messages = [e.get("message") or "" for e in root.iter("error")]
    for error in errors:
        assert any(m.startswith(error) for m in messages), messages
    assert root.find(".//testsuite[@name='checks']") is not None
    return report


def test_a_signal_while_the_pcap_is_written_is_recorded_and_the_pcap_finished(tmp_path: Path) -> None:
    process, out = _run(tmp_path, "SIGTERM", pace=False)
    assert process.returncode == 3, process.stdout + process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    # The JSON and JUnit were already complete when the pcap began, and the pcap was not at its path yet.
    seen = json.loads((out / "notes.json").read_text(encoding="utf-8"))
    assert {"report.json", "junit.xml"} <= set(seen), seen
    assert "wire.pcap" not in seen, seen
    report = _assert_reports_say(out, "interrupted by SIGTERM after the run")
    # The run had ended: its checks judged all of it, not "not judged".
    checks = report["checks"]
    assert isinstance(checks, list)
    assert checks
    assert all(c["verdict"] == "pass" for c in checks), checks
    # One signal finishes the pcap: every frame, at its path, and no temporary file left beside it.
    assert len(rdpcap(str(out / "wire.pcap"))) == int((out / "frames.txt").read_text()) > 1
    assert sorted(p.name for p in out.iterdir()) == ["frames.txt", "junit.xml", "notes.json", "report.json",
                                                     "wire.pcap"]
    assert "error  harness: interrupted by SIGTERM after the run" in process.stdout


def test_a_second_signal_abandons_the_pcap_but_not_the_reports(tmp_path: Path) -> None:
    process, out = _run(tmp_path, "SIGINT,SIGTERM", pace=True)
    assert process.returncode == 3, process.stdout + process.stderr
    assert "Traceback" not in process.stderr, process.stderr
    assert "KeyboardInterrupt" not in process.stderr, process.stderr
    # Sent in this order, but from another thread than the loop's: which one the loop sees first is the kernel's
    # choice. Either way one is the interruption and the other abandons the pcap.
    first = "SIGTERM" if "SIGINT again" in process.stderr else "SIGINT"
    abandoned = f"{out / 'wire.pcap'} not written: abandoned on a second signal"
    _assert_reports_say(out, f"interrupted by {first} after the run", abandoned)
    # Nothing at the pcap's path, no temporary file beside it, and stderr says why.
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "notes.json", "report.json"]
    assert f"error  harness: {abandoned}" in process.stderr, process.stderr
    assert "again: the pcap is abandoned" in process.stderr, process.stderr
