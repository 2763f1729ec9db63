"""Real carriers for flow tests: quickstart's two carriers with every door open, and a runner-like driver."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import numpy as np

from carrier_sim.population.columns import Population
from carrier_sim.runner.carriers import RunningCarrier, start_carriers
from carrier_sim.runner.doors import CarrierServices, services_of, start_doors
from carrier_sim.runner.flows.base import DoorAddress, FlowContext, PhoneFlow
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Distribution, Flow
from carrier_sim.smsc.store import StoredMessage

ROOT = Path(__file__).resolve().parents[4]
PHONES = 40
NO_CONDITIONS = ("population.conditions.absent=0", "population.conditions.roaming=0",
                 "population.conditions.barred=0")


@contextlib.asynccontextmanager
async def carriers_running(*overrides: str) -> AsyncIterator[tuple[FlowContext, list[PhoneFlow]]]:
    """Quickstart's two carriers with their doors, PHONES phones, and a context whose MTs reach ``flows``."""
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml",
                             [f"population.phones={PHONES}", *NO_CONDITIONS, *overrides])
    population = Population(scenario)
    flows: list[PhoneFlow] = []

    def listener(index: int) -> Callable[[StoredMessage, float], None]:
        def delivered(message: StoredMessage, now: float) -> None:
            row = population.row_of_msisdn(int(message.destination_addr))
            for flow in flows:
                flow.on_mt(row, message, now)

        return delivered

    running = await start_carriers(scenario, ("identity", "secret"), population.msisdn, population.carrier,
                                   population.condition, listener)
    doors = await start_doors(running, scenario)
    ctx = FlowContext(scenario.seed, population, running, time.time, lambda *_: False)
    for door in doors:
        ctx.doors.setdefault(door.name, {})[door.carrier] = DoorAddress(door.host, door.port)
    try:
        yield ctx, flows
    finally:
        for door in reversed(doors):
            await door.stop()
        for carrier in running:
            await carrier.server.shutdown()


async def drive(flow: PhoneFlow, until: Callable[[], bool], timeout: float = 20.0) -> None:
    """Run the flow's workers and tick it as the runner would until ``until()`` or ``timeout``."""
    async with asyncio.TaskGroup() as tasks:
        serving = tasks.create_task(flow.serve())
        deadline = time.monotonic() + timeout
        last_expire = time.time()
        while not until() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
            now = time.time()
            flow.tick(now)
            if now - last_expire >= 1.0:
                flow.expire(now)
                last_expire = now
        serving.cancel()


def offline(phones: int = 60) -> FlowContext:
    """A context for driving a flow's columns by hand: quickstart's phones, no carrier running, a clock at 0."""
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", [f"population.phones={phones}"])
    return FlowContext(scenario.seed, Population(scenario), [], lambda: 0.0, lambda *_: False)


def services(running: RunningCarrier) -> CarrierServices:
    """The services of a running carrier's doors (they must be open)."""
    found = services_of(running)
    assert found is not None
    return found


def spec(name: str, think: float = 0.05) -> Flow:
    """A flow of that name with a fixed think time."""
    return Flow(name, think_time=Distribution("fixed", value=think))  # type: ignore[arg-type]


def everyone(ctx: FlowContext) -> np.ndarray:
    """Every row of the context's population."""
    return np.arange(len(ctx.population), dtype=np.int64)
