"""The display is for people, never the run's evidence: a display that fails (when chosen, started, redrawn or
stopped), a stdout or stderr the run was started without (``>&-``, ``2>&-``) or whose reader went away (``2>&1 |
head -1``) costs the run neither its reports nor its verdicts' exit code. Before, the progress line's failure was
re-raised as the run ended: a traceback, exit 3 (or 1 when even that could not be printed) and no report, after a
full run.

Each run is a real ``carrier-sim run`` process. Those with a failing display replace ``choose_display`` in the
runner's command by a stub that raises where told, so they test the command's guarantee whatever the dashboard
itself does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.carrier_sim.runner.test_command import TINY

ROOT = Path(__file__).resolve().parents[3]

# ``python -c STUB WHERE carrier-sim-args...``: carrier-sim with a display that raises WHERE ("choose", "start",
# "refresh", "pulse", "stop"; "pipe": BrokenPipeError from stop, as a progress line whose reader went away).
STUB = """
import sys
import carrier_sim.runner.command as command
from carrier_sim.cli import main

where = sys.argv[1]

class Broken:
    def __init__(self):
        self.stopped = 0
    def fail(self, at):
        if at == where:
            raise RuntimeError(f"display stub fails at {at}")
        if where == "pipe" and at == "stop":
            raise BrokenPipeError(32, "Broken pipe")
    async def start(self, state, controls):
        self.fail("start")
    def refresh(self):
        self.fail("refresh")
    def pulse(self):
        self.fail("pulse")
    async def stop(self):
        self.stopped += 1
        print("stub stopped", file=sys.stderr)
        self.fail("stop")

def choose_display(**kwargs):
    if where == "choose":
        raise AttributeError("'NoneType' object has no attribute 'isatty'")
    display = Broken()
    if where == "refresh":  # the runner redraws through pulse(); the dashboard's keys call refresh()
        display.pulse = display.refresh
    return display

command.choose_display = choose_display
sys.exit(main(sys.argv[2:]))
"""


def _tiny(tmp_path: Path) -> list[str]:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY, encoding="utf-8")
    return ["run", str(scenario), "--json", str(tmp_path / "report.json"), "--junit", str(tmp_path / "junit.xml")]


def _assert_reports(tmp_path: Path, code: int) -> None:
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert (report["verdict"], report["exit_code"], report["harness_errors"]) == ("pass", 0, []), report
    assert code == report["exit_code"]
    assert ET.parse(tmp_path / "junit.xml").getroot().find(".//testcase") is not None


@pytest.mark.parametrize("where", ["choose", "start", "refresh", "stop", "pipe"])
def test_a_display_that_fails_costs_neither_the_reports_nor_the_exit_code(tmp_path: Path, where: str) -> None:
    done = subprocess.run([sys.executable, "-c", STUB, where, *_tiny(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    _assert_reports(tmp_path, done.returncode)
    assert "Traceback" not in done.stderr, done.stderr
    if where != "pipe":  # a reader gone is no failure to tell anyone about (and the message would go to it)
        assert "carrier-sim run: the display failed when" in done.stderr, done.stderr
    # The verdicts are printed as ever.
    assert "pass   ok:" in done.stdout, done.stdout
    # A display switched off is still stopped, once, to give the terminal back.
    assert done.stderr.count("stub stopped") == (0 if where == "choose" else 1), done.stderr


@pytest.mark.parametrize("closed", [1, 2], ids=["stdout", "stderr"])
@pytest.mark.parametrize("dashboard", [True, False], ids=["dashboard", "no-dashboard"])
def test_a_run_started_without_stdout_or_stderr_writes_its_reports(tmp_path: Path, closed: int,
                                                                   dashboard: bool) -> None:
    # ``>&-`` made choosing the display fail (AttributeError, exit 3); ``2>&-`` made the progress line fail as the
    # run ended (AttributeError from refresh, exit 3): no report either time.
    other = subprocess.PIPE
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", *_tiny(tmp_path), *([] if dashboard else ["--no-dashboard"])],
        cwd=ROOT, stdout=other if closed == 2 else None, stderr=other if closed == 1 else None,
        preexec_fn=lambda: os.close(closed), text=True, timeout=120, check=False)
    _assert_reports(tmp_path, done.returncode)
    shown = done.stdout if closed == 2 else done.stderr
    assert "Traceback" not in shown, shown
    if closed == 2:
        assert "pass   ok:" in done.stdout, done.stdout


def test_a_reader_that_goes_away_costs_neither_the_reports_nor_the_exit_code(tmp_path: Path) -> None:
    # ``carrier-sim run ... 2>&1 | head -1``: the progress line and the verdicts go to a pipe closed after one line.
    runner = subprocess.Popen([sys.executable, "-m", "carrier_sim.cli", *_tiny(tmp_path), "--no-dashboard"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert runner.stdout is not None
        first = runner.stdout.readline()
        runner.stdout.close()
        code = runner.wait(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    assert first, "nothing was written before the reader went away"
    _assert_reports(tmp_path, code)
