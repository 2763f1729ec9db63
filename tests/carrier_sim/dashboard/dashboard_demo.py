"""A synthetic run for the dashboard tests: a state that changes over time, shown by the display a run would pick.

Run in a terminal it shows the live dashboard and obeys its keys until ``q``; with stdout piped it writes the plain
progress line. Either way it ends with one line the tests read::

    stopped rate=1.2 paused=False view=3

Options: ``--seconds N`` stops by itself after N seconds (besides ``q``; always bounded, default 60),
``--interval S`` sets the plain progress interval, ``--crash-after S`` raises inside the display's block to prove
the terminal is restored even then.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time

from carrier_sim.dashboard.live import CarrierStatus, Controls, DashboardState, choose_display, running
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.scenario.model import Check

CHECKS = (
    Check("activation p99 under 2 s", "activation.latency.p99", "<", 2.0),
    Check("nearly all activations succeed", "activation.success_ratio", ">=", 0.99),
    Check("no SMPP conformance failures", "smpp.conformance.fail", "==", 0),
    Check("authentication measured", "authenticate.latency.p50", "<", 1.0),
)
BASE_RATE = 50.0


def _advance(state: DashboardState, controls: Controls, metrics: RunMetrics, tick: int) -> None:
    """One tick of a pretend run: arrivals at the controlled rate (none while paused), flows progressing."""
    state.target_rate = BASE_RATE * controls.rate_multiplier
    arrivals = 0 if controls.paused else max(1, round(state.target_rate / 10))
    state.achieved_rate = 0.0 if controls.paused else state.target_rate * 0.97
    funnel = state.funnel
    funnel["arrived"] += arrivals
    for step, previous in (("reg_req_sent", "arrived"), ("reg_resp_received", "reg_req_sent"),
                           ("authenticated", "reg_resp_received")):
        funnel[step] = min(funnel[previous], funnel[step] + arrivals)
    funnel["failed"] = funnel["authenticated"] // 50
    funnel["done"] = funnel["authenticated"] - funnel["failed"]
    metrics.count("activation.started", arrivals)
    metrics.count("activation.completed", max(0, funnel["done"] - metrics.counter("activation.completed")))
    if arrivals:
        metrics.record_latency("activation", [0.2 + 0.05 * math.sin(tick + i) for i in range(arrivals)])
    state.phase = "ramp" if tick < 50 else "steady"
    for i, carrier in enumerate(state.carriers.values()):
        carrier.throughput = state.achieved_rate / (i + 2)
        carrier.window_used = (tick + i) % (carrier.window_size + 1)
        carrier.receipts += arrivals
    if tick % 15 == 0:
        state.add_error(f"tick {tick}: submit_sm_resp ESME_RTHROTTLED from acme")
        next(iter(state.carriers.values())).throttles += 1
    state.observe(metrics, CHECKS)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--interval", type=float, default=5.0)
    parser.add_argument("--crash-after", type=float, default=None)
    args = parser.parse_args()

    state = DashboardState(
        scenario="dashboard-demo",
        carriers={"acme": CarrierStatus(binds=2, window_size=10), "zeta": CarrierStatus(binds=1, window_size=5)},
    )
    controls = Controls()
    metrics = RunMetrics()
    display = choose_display(interval=args.interval)
    started = time.monotonic()
    try:
        async with running(display, state, controls):
            tick = 0
            while not controls.stop_requested and time.monotonic() - started < args.seconds:
                if args.crash_after is not None and time.monotonic() - started > args.crash_after:
                    raise RuntimeError("demo crash on purpose")
                state.elapsed = time.monotonic() - started
                _advance(state, controls, metrics, tick)
                tick += 1
                await asyncio.sleep(0.1)
    finally:
        # After the display is gone (terminal restored), so the line lands on the plain screen.
        print(f"stopped rate={controls.rate_multiplier} paused={controls.paused} view={controls.view}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
