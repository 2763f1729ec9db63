"""SMSC faults in a sharded virtual run: every phone meets the same faults whatever --workers is.

The SMSC keys each fault and receipt-delay draw by the message it is about (carrier_sim.smsc.draws), so the
per-phone counters of scenarios/carrier-faults.yaml (generic_nack, lost and duplicate receipts, delayed responses)
come out the same with one shard and with two. Latencies are not compared: the byte-shaping faults (split and
coalesced writes, in carrier_sim/net/) shift the PDUs of whatever a write carried by microseconds, and what a
write carries depends on the shard's traffic.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def _counters(tmp_path: Path, *extra: str) -> dict[str, Any]:
    tmp_path.mkdir(parents=True, exist_ok=True)
    report = tmp_path / "report.json"
    process = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "run", str(ROOT / "scenarios" / "carrier-faults.yaml"),
         "--no-dashboard", "--set", "clock=virtual", "--set", "population.phones=800", "--json", str(report),
         *extra],
        capture_output=True, text=True, timeout=240, cwd=ROOT, check=False, env=dict(os.environ),
    )
    assert process.returncode in (0, 1), process.stdout + process.stderr  # 1: a check failed, still a report
    data = json.loads(report.read_text())
    # Sessions and binds are per shard by construction (each shard has its own SMSCs); what phones did is not.
    counters = {k: v for k, v in data["metrics"]["counters"].items()
                if not k.startswith(("smpp.binds", "smpp.conformance"))}
    smsc = {name: {k: v for k, v in carrier["smsc"].items() if k not in ("binds", "connections")}
            for name, carrier in data["carriers"].items()}
    return {"counters": counters, "smsc": smsc}


def test_carrier_faults_give_the_same_per_phone_results_whatever_the_shards(tmp_path: Path) -> None:
    one = _counters(tmp_path / "one")
    two = _counters(tmp_path / "two", "--workers", "2")
    assert one == two
    counters = one["counters"]
    assert counters["activation.completed"] > 0
    assert counters["receipts.sent"] > 0
