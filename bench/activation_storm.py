"""Activation storm benchmark: runs scenarios/activation-storm.yaml scaled to N phones and prints figures.

    python bench/activation_storm.py --phones 100000 [--workers 2]

The load is scaled with the population (the shipped file asks a million phones in 60 s). It prints the
activations per second achieved, the completion ratio and latency percentiles from the run's JSON report, and
the peak RSS of the runner and of the identity core (the bundled SUT is a child process).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    """Run once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--phones", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="shard processes (each with its own identity core)")
    args = parser.parse_args()
    scale = args.phones / 1_000_000
    overrides = [
        f"population.phones={args.phones}",
        f"load.phases.ramp.rate.from={max(1.0, 1000 * scale)}",
        f"load.phases.ramp.rate.to={18000 * scale}",
        f"load.phases.storm.rate={18000 * scale}",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        command = [sys.executable, "-m", "carrier_sim.cli", "run", str(ROOT / "scenarios" / "activation-storm.yaml"),
                   "--no-dashboard", "--json", str(report), "--workers", str(args.workers)]
        for o in overrides:
            command += ["--set", o]
        started = time.perf_counter()
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
        wall = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if not report.exists():
            print(done.stdout[-2000:], done.stderr[-2000:])
            return 3
        doc = json.loads(report.read_text())
    counters = doc["metrics"]["counters"]
    latency = doc["metrics"]["latency"].get("activation", {})
    completed = counters.get("activation.completed", 0)
    print(f"machine: {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    arrived = counters.get("load.arrived", 0)
    planned = counters.get("load.planned", 0)
    print(f"workers {args.workers}  phones {args.phones:,}  planned {planned:,}  arrived {arrived:,}")
    rate = completed / doc["duration"]
    print(f"completed {completed:,} ({completed / max(1, arrived):.3%}) in a run of {doc['duration']:.1f} s "
          f"(wall {wall:.1f} s incl. start/stop) -> {rate:,.0f} activations/s")
    print("activation latency: " + ", ".join(f"{k} {v:.3f} s" for k, v in latency.items() if isinstance(v, float)))
    print(f"peak RSS of the largest child process (runner or identity-core): {children.ru_maxrss / 1024:.0f} MiB")
    print(f"verdict {doc['verdict']} (exit {done.returncode})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
