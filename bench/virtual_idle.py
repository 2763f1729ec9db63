"""A sparse scenario in virtual time, with the runner skipping its idle ticks and without: ticks run, CPU spent.

Not a test: it prints figures and asserts nothing about speed. The scenario is ``scenarios/quickstart.yaml`` made
sparse: ``--phones`` phones arriving over ``--hours`` hours of plan (activation, renewal and mo_mt flows, a few
absent phones), run by ``run_scenario`` in a virtual loop with the in-process identity core, as a single-shard
``carrier-sim run`` runs it but without the progress line (whose timers wake the loop every 5 virtual seconds, and
whose per-second metrics snapshot is a cost of its own). "ticked" is the same run with ``_idle_ticks`` answering 0,
i.e. the runner as it was before it skipped: a tick every 20 ms of the plan.

Both runs must see the same phones do the same things; the script checks that (counters and every latency
sample) and says so. Repetitions alternate between the two (``--repeat``, medians printed) so that a noisy
neighbour hits both alike; tick counts are exact.

Usage (from the repository root)::

    PYTHONPATH=. python bench/virtual_idle.py [--hours 1] [--phones 200] [--population N] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from carrier_sim.population.columns import Population
from carrier_sim.runner import run as run_module
from carrier_sim.runner.inprocess_sut import start_inprocess_sut
from carrier_sim.runner.run import Controls, RunResult, run_scenario
from carrier_sim.runner.shards import _arrivals, shard_bounds_of
from carrier_sim.runner.virtual_loop import run_virtual
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[1]
START = 1_800_000_000.0


def sparse(hours: float, phones: int, population: int | None = None) -> Scenario:
    """quickstart.yaml made sparse: about ``phones`` arrivals spread over ``hours`` hours, out of a population of
    ``population`` phones (default ``phones``; larger makes the shard's columns larger than what arrives)."""
    duration = hours * 3600
    size = population or phones
    numbering = []
    if size > 10_000:  # quickstart's blocks hold 10,000 numbers each; fictional blocks of a million instead
        numbering = ['carriers.0.numbering=["447700000000-447700999999"]',
                     'carriers.1.numbering=["4915551000000-4915551999999"]']
    return load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "clock=virtual", f"population.phones={size}", *numbering,
        "population.conditions={absent: 0.05, barred: 0.0, roaming: 0.0}",
        f"load.phases=[{{name: quiet, duration: {duration:g}, rate: {0.9 * phones / duration!r}}}]",
        "flows=[{name: activation, weight: 0.5, think_time: {distribution: lognormal, median: 2, sigma: 0.5}},"
        " {name: renewal, weight: 0.3, think_time: {distribution: lognormal, median: 600, sigma: 0.5}},"
        " {name: mo_mt, weight: 0.2, think_time: {distribution: lognormal, median: 5, sigma: 0.5}}]",
        "checks=[]"])


def once(scenario: Scenario) -> tuple[RunResult, float]:
    """One run; its result and the CPU seconds it took."""
    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
        arrivals, concurrency = _arrivals(scenario, population)
        return await run_scenario(scenario, population, (arrivals.indices - population.start, arrivals.times),
                                  controls=Controls(), concurrency=concurrency, clock=loop.time,
                                  sut_starter=start_inprocess_sut)

    started = time.process_time()
    result = run_virtual(main(), start=START)
    return result, time.process_time() - started


def same_phones(a: RunResult, b: RunResult) -> bool:
    """Whether both runs' phones did the same things at the same moments."""
    for fa, fb in zip(a.flows, b.flows, strict=True):
        if fa.counters != fb.counters:
            return False
        la, lb = fa.latencies(), fb.latencies()
        if la.keys() != lb.keys() or not all(np.array_equal(la[k], lb[k]) for k in la):
            return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=1.0)
    parser.add_argument("--phones", type=int, default=200)
    parser.add_argument("--population", type=int, default=None,
                        help="phones in the shard (default --phones): up to 2,000,000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    scenario = sparse(args.hours, args.phones, args.population)
    skipping_idle = run_module._idle_ticks
    cpu: dict[str, list[float]] = {"skipping": [], "ticked": []}
    results: dict[str, RunResult] = {}
    for _ in range(args.repeat):
        for name in ("skipping", "ticked"):
            run_module._idle_ticks = skipping_idle if name == "skipping" else (lambda *_: 0)
            results[name], spent = once(scenario)
            cpu[name].append(spent)
    run_module._idle_ticks = skipping_idle
    done = sum(f.counters.completed for f in results["skipping"].flows)
    print(f"{args.hours:g} h of plan, {args.phones} phones ({done} completed a flow); medians of {args.repeat}")
    for name in ("skipping", "ticked"):
        r = results[name]
        print(f"  {name:8} ticks run {r.ticks:>9,} (skipped {r.ticks_skipped:,}); "
              f"CPU {statistics.median(cpu[name]):.2f} s (min {min(cpu[name]):.2f}, max {max(cpu[name]):.2f})")
    ratio = statistics.median(cpu["ticked"]) / statistics.median(cpu["skipping"])
    print(f"  ticked / skipping CPU: {ratio:.1f}x; same phones, same moments: "
          f"{same_phones(results['skipping'], results['ticked'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
