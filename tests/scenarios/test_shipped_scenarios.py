"""The scenarios the project ships are valid, and the fault scenario passes end to end against the bundled SUT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from carrier_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted((ROOT / "scenarios").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenario_is_valid(path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "carrier_sim.cli", "validate", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def test_shipped_scenarios_include_the_required_ones() -> None:
    assert {"quickstart.yaml", "activation.yaml", "activation-storm.yaml", "carrier-faults.yaml",
            "carrier-doors.yaml"} <= {
        p.name for p in SHIPPED}


@pytest.mark.parametrize("name", ["carrier-faults.yaml", "quickstart.yaml", "carrier-doors.yaml", "activation.yaml"])
def test_shipped_scenario_passes(name: str, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "run", str(ROOT / "scenarios" / name), "--no-dashboard",
         "--json", str(report)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(report.read_text())
    assert doc["verdict"] == "pass"
    # Every check the scenario declares is in the report, once, in order -- so the all() below is not vacuous.
    declared = load_scenario(ROOT / "scenarios" / name).checks
    assert len(declared) > 0
    assert [c["name"] for c in doc["checks"]] == [c.name for c in declared]
    assert all(c["verdict"] == "pass" for c in doc["checks"])
