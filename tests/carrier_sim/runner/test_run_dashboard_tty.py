"""``carrier-sim run`` on a real terminal (tmux): the dashboard shows the run, ``p`` pauses arrivals, ``q`` stops
gracefully, the reports are still written and the run is a harness error (cut short: exit 3)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path

import pytest

from tests.carrier_sim.dashboard.test_dashboard_tty import Tmux
from tests.carrier_sim.runner.test_run_command import SCENARIO
from tests.interop.conftest import require_executable

ROOT = Path(__file__).resolve().parents[3]


def test_run_dashboard_pause_and_graceful_quit(tmp_path: Path) -> None:
    tmux_path = require_executable("tmux")
    long_run = SCENARIO.replace("{name: steady, duration: 3, rate: 60}", "{name: steady, duration: 60, rate: 3}")
    long_run = long_run.replace("{at: 2.5, type: sim_swap, share: 0.1}", "{at: 50, type: sim_swap, share: 0.1}")
    scenario = tmp_path / "tty.yaml"
    scenario.write_text(long_run, encoding="utf-8")
    report = tmp_path / "report.json"
    marker = tmp_path / "exit-code"
    command = (
        f"cd {shlex.quote(str(ROOT))} && env -u COLUMNS -u LINES PYTHONPATH={shlex.quote(str(ROOT))} "
        f"LANG=C.UTF-8 LC_ALL=C.UTF-8 {shlex.quote(sys.executable)} -m carrier_sim.cli run "
        f"{shlex.quote(str(scenario))} --json {shlex.quote(str(report))}; echo $? > {shlex.quote(str(marker))}; "
        "sleep 30"
    )
    tmux = Tmux(tmux_path, command)
    try:
        screen = tmux.wait_for("the dashboard with arrivals", lambda s: "Funnel" in s and "steady" in s)
        assert "tiny" in screen
        tmux.keys("p")
        tmux.wait_for("paused", lambda s: "paused" in s.lower())
        tmux.keys("3")
        tmux.wait_for("the checks view", lambda s: "phones activate" in s)
        tmux.keys("q")
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        if not marker.exists():
            pytest.fail("the run did not stop after q; screen:\n" + tmux.screen())
    finally:
        tmux.close()
    doc = json.loads(report.read_text())  # reports are written even when stopped early
    assert doc["scenario"] == "tiny"
    # Stopped early: a run cut short says so (exit 3) instead of passing its phones still mid-flow off as the
    # system under test's failures.
    assert marker.read_text().strip() == "3"
    assert any(e.startswith("stopped from the dashboard (q)") for e in doc["harness_errors"]), doc["harness_errors"]
    # The checks say they went unjudged because of the q, not that the harness failed to measure them.
    unjudged = "not judged: the run was interrupted (the dashboard's q) before its end"
    assert [(c["verdict"], c["reason"]) for c in doc["checks"]] == [("error", unjudged)] * 3, doc["checks"]
