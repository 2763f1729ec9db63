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
sys.path.insert(0, str(ROOT / "bench"))

from proc_cpu import CpuSampler, CpuTotals  # noqa: E402 - bench/ is not a package

#: smpp34's tokio threads in the identity core (its Rust core: framing, and handing each event to Python).
TOKIO_THREAD = "tokio-rt-worker"


def _kind(cmdline: str) -> str:
    return "identity core" if "identity_core.cli" in cmdline else "runner"


def _print_cpu(cpu: CpuTotals, completed: int) -> None:
    """CPU per completed activation, by process, and what a million in 60 s would need at that cost."""
    if not completed:
        return
    runner, core, tokio = cpu.of("runner"), cpu.of("identity core"), cpu.of("identity core", TOKIO_THREAD)
    per = 1e6 / completed
    print(f"CPU per completed activation: runner {runner * per:,.0f} us, identity core {core * per:,.0f} us "
          f"(smpp34's tokio threads {tokio * per:,.0f} us of it); whole run {runner + core:,.1f} CPU s")
    print(f"at that cost a million activations in 60 s need {(runner + core) / completed * 1e6 / 60:.1f} cores")


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
        with subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            sampler = CpuSampler(proc.pid, _kind).start()
            stdout, stderr = proc.communicate()
            cpu = sampler.stop()
        wall = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        if not report.exists():
            print(stdout[-2000:], stderr[-2000:])
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
    _print_cpu(cpu, completed)
    print(f"verdict {doc['verdict']} (exit {proc.returncode})")
    for error in doc.get("harness_errors", ()):
        # The runner judged itself overloaded (or broken): the figures above measure the harness too.
        print(f"harness error: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
