"""The population machinery at the size of a real run: a million phones built, arrived and stepped through 60 s of
virtual time in 50 ms ticks.

Not a test: it prints figures and asserts nothing about speed (design.md: "tests never assert on wall-clock
speed"). What it measures, each stage timed on its own:

* ``build``: :class:`~carrier_sim.population.Population` for all phones (carrier, MSISDN, condition, flow and
  push-seed columns from the numbering plan and the counter-based generator);
* ``arrivals``: the open model's arrival times for the load below (ramp 0 -> 20k/s over 20 s, then 20k/s for
  40 s: an expected 1M arrivals, every phone arriving once) and writing them all into the due queue;
* ``msisdn lookup``: 20k MSISDN -> row lookups, the first including the one-off sort of the column, then the
  analytic plan lookup for the same numbers;
* ``run``: 1200 ticks of 50 ms. Each tick pops the phones due, advances their state, draws each one's think time
  (exponential, mean 2 s) from its own stream and schedules it again -- a stand-in for a flow step, so that the
  figure is the machinery's cost per event, not a flow's. By the end every phone is in flight, so a tick carries
  ~25k due phones (1M phones / 2 s think time x 50 ms). The split between ``pop_due``, the draws and
  ``set_due`` is printed beside the total.

Peak RSS is the process's high-water mark from ``resource.getrusage`` (the interpreter and numpy included).

Usage (from the repository root)::

    PYTHONPATH=. python bench/population.py [--phones 1000000] [--seconds 60] [--tick 0.05] [--seed 1]
"""

from __future__ import annotations

import argparse
import platform
import resource
import time

import numpy as np

from carrier_sim.population import DueQueue, Population, RateProfile, Stream, VirtualClock, open_arrivals
from carrier_sim.scenario import model


def _scenario(phones: int, seconds: float, seed: int) -> model.Scenario:
    ramp = min(20.0, seconds / 3)
    rate = phones / (ramp / 2 + (seconds - ramp))  # so that the expected arrivals equal the population
    carriers = (
        model.Carrier("carrier-a", "001", "01", "GB", (model.NumberRange(447700000000, 447709999999),),
                      model.Smsc(), "447700900000"),
        model.Carrier("carrier-b", "001", "001", "US", (model.NumberRange(12015550000, 12025549999),),
                      model.Smsc(), "12015550100"),
        model.Carrier("carrier-c", "999", "99", "DE", (model.NumberRange(4915100000000, 4915109999999),),
                      model.Smsc(), "4915100000000"),
    )
    return model.Scenario(
        name="bench-population",
        seed=seed,
        clock="virtual",
        carriers=carriers,
        population=model.Population(phones, {"carrier-a": 0.5, "carrier-b": 0.3, "carrier-c": 0.2},
                                    absent=0.05, barred=0.01, roaming=0.1),
        system_under_test=model.SystemUnderTest(),
        load=model.Load("open", (model.Phase("ramp", ramp, 0.0, rate),
                                 model.Phase("hold", seconds - ramp, rate, rate))),
        flows=(model.Flow("activation", 1.0, model.Distribution("exponential", mean=2.0)),),
    )


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if platform.system() == "Darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tick", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"rss at start: {_peak_rss_mib():.0f} MiB")
    scenario = _scenario(args.phones, args.seconds, args.seed)

    t0 = time.perf_counter()
    pop = Population(scenario)
    t_build = time.perf_counter() - t0
    print(f"build          {t_build:7.3f} s  {args.phones:,} phones "
          f"(carriers {np.bincount(pop.carrier).tolist()}, conditions {np.bincount(pop.condition).tolist()}); "
          f"peak RSS {_peak_rss_mib():.0f} MiB")

    t0 = time.perf_counter()
    arrivals = open_arrivals(RateProfile.from_load(scenario.load), pop.rng, pop.plan.size)
    t_arr = time.perf_counter() - t0
    queue = DueQueue(pop.next_due, resolution=args.tick)
    t0 = time.perf_counter()
    queue.set_due(pop.rows_of(arrivals.indices), arrivals.times)
    t_enq = time.perf_counter() - t0
    print(f"arrivals       {t_arr:7.3f} s  {len(arrivals.indices):,} arrivals "
          f"(expected {RateProfile.from_load(scenario.load).total:,.0f}); enqueue {t_enq:.3f} s; "
          f"peak RSS {_peak_rss_mib():.0f} MiB")

    probe = pop.msisdn[pop.rng.bits(np.arange(20_000), Stream.USER) % np.uint64(len(pop))]
    t0 = time.perf_counter()
    pop.row_of_msisdn(probe)
    t_first = time.perf_counter() - t0
    t0 = time.perf_counter()
    rows = pop.row_of_msisdn(probe)
    t_again = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = pop.plan.index_of_msisdn(probe)
    t_plan = time.perf_counter() - t0
    if not (np.array_equal(pop.msisdn[rows], probe) and np.array_equal(index, rows)):
        raise SystemExit("MSISDN lookups disagree: the figures below would be meaningless")
    print(f"msisdn lookup  20k numbers: {t_first * 1e3:.1f} ms first (sorts the column), "
          f"{t_again * 1e3:.1f} ms after; analytic plan lookup {t_plan * 1e3:.1f} ms")

    clock = VirtualClock()
    think = scenario.flows[0].think_time
    ticks = round(args.seconds / args.tick)
    events = 0
    biggest = 0
    t_pop = t_draw = t_set = 0.0
    touched_before = queue.touched
    t_run0 = time.perf_counter()
    for k in range(1, ticks + 1):
        now = clock.advance_to(k * args.tick)
        a = time.perf_counter()
        due = queue.pop_due(now)
        b = time.perf_counter()
        if due.size:
            fresh = due[pop.state[due] == 0]
            pop.started_at[fresh] = now
            pop.state[due] = 1
            pop.step_at[due] = now
            pop.attempts[due] += 1
            delay = pop.draw(think, due, Stream.THINK)
        c = time.perf_counter()
        if due.size:
            queue.set_due(due, now + delay)
        d = time.perf_counter()
        t_pop += b - a
        t_draw += c - b
        t_set += d - c
        events += due.size
        biggest = max(biggest, due.size)
    t_run = time.perf_counter() - t_run0
    print(f"run            {t_run:7.3f} s  {ticks} ticks of {args.tick * 1e3:.0f} ms = {args.seconds:.0f} s virtual; "
          f"{events:,} due phones popped (mean {events / ticks:,.0f}/tick, max {biggest:,}/tick); "
          f"{events / t_run:,.0f} events/s")
    print(f"               pop_due {t_pop:.3f} s, column updates + draws {t_draw:.3f} s, set_due {t_set:.3f} s; "
          f"{(t_pop + t_set) / max(events, 1) * 1e9:.0f} ns of queue work per event; "
          f"entries touched {queue.touched - touched_before:,} ({(queue.touched - touched_before) / max(events, 1):.2f}"
          f" per event)")
    print(f"in flight at the end: {int(np.isfinite(pop.next_due).sum()):,}; queue holds {len(queue):,} entries")
    print(f"total          {t_build + t_arr + t_enq + t_run:7.3f} s; peak RSS {_peak_rss_mib():.0f} MiB")


if __name__ == "__main__":
    main()
