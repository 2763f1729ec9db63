"""The run's end stops every part -- the system under test, the doors, the carriers -- even when one part's stop
raises, and what raised becomes a harness error of a run that still returns its results (and so its reports)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import NoReturn

import pytest

from carrier_sim.population.columns import Population
from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.runner.flows.base import DoorAddress
from carrier_sim.runner.inprocess_sut import InProcessSut, start_inprocess_sut
from carrier_sim.runner.run import Controls, RunResult, _shutdown, run_scenario
from carrier_sim.runner.shards import _arrivals, shard_bounds_of
from carrier_sim.runner.sut import SystemUnderTest
from carrier_sim.runner.virtual_loop import run_virtual
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Scenario
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import Pdu

ROOT = Path(__file__).resolve().parents[3]


async def test_every_part_is_stopped_even_when_some_stops_raise() -> None:
    stopped: list[str] = []

    def part(name: str, error: Exception | None = None) -> object:
        async def stop() -> None:
            stopped.append(name)
            if error is not None:
                raise error

        return stop

    sut = SimpleNamespace(stop=part("sut", ExceptionGroup("unhandled errors in a TaskGroup", [
        RuntimeError("gateway crashed"), ValueError("and another")])))
    doors = [SimpleNamespace(name="rcs", carrier="carrier-a", stop=part("rcs")),
             SimpleNamespace(name="smtp", carrier="carrier-a", stop=part("smtp", OSError("socket gone")))]
    running = [SimpleNamespace(carrier=SimpleNamespace(name=name), server=SimpleNamespace(shutdown=part(name)))
               for name in ("carrier-a", "carrier-b")]
    errors = await _shutdown(running, sut, doors)  # type: ignore[arg-type]
    assert stopped == ["sut", "smtp", "rcs", "carrier-a", "carrier-b"]
    assert errors == [
        "the system under test did not stop cleanly: RuntimeError: gateway crashed; ValueError: and another",
        "carrier-a's smtp door did not stop cleanly: OSError: socket gone",
    ]


def _scenario() -> Scenario:
    return load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "clock=virtual", "population.phones=200", "load.phases=[{name: steady, duration: 20, rate: 5}]",
        "events=[]", "checks=[]"])


def test_a_gateway_crash_is_logged_when_it_happens_and_the_run_still_ends_with_its_results(
        caplog: pytest.LogCaptureFixture) -> None:
    scenario = _scenario()
    cores: list[InProcessSut] = []
    seen_at: list[float] = []
    broken: list[float] = []
    shut: list[str] = []

    async def start(scenario: Scenario, carriers: list[RunningCarrier], workdir: Path,
                    doors: dict[str, dict[str, DoorAddress]]) -> SystemUnderTest:
        core = await start_inprocess_sut(scenario, carriers, workdir, doors)
        cores.append(core)
        for c in carriers:
            # Watch the SMSCs' shutdown: the parts after the failing one must still be stopped.
            real = c.server.shutdown

            async def shutdown(grace: float = 2.0, real: object = real, name: str = c.carrier.name) -> None:
                shut.append(name)
                await real(grace)  # type: ignore[operator]

            c.server.shutdown = shutdown  # type: ignore[method-assign]
        return core

    def boom(_now: float) -> NoReturn:
        raise RuntimeError("housekeeping broke")

    def on_tick(result: RunResult, elapsed: float) -> None:
        gateway = cores[0].gateways["carrier-a"]
        if elapsed >= 3 and gateway.failure is None and not seen_at and not broken:
            gateway._reassembler.expire = boom  # type: ignore[method-assign,assignment]
            # Housekeeping sweeps only while a segment is held: half of a two-part MO.
            gateway._inbound(Pdu.make(CommandId.deliver_sm, 1, source_addr="447700900001", esm_class=0x40,
                                      destination_addr="447786205094", short_message=bytes([5, 0, 3, 7, 2, 1]) + b"a"))
            broken.append(elapsed)
        if gateway.failure is not None and not seen_at:
            seen_at.append(elapsed)
        controls.stop_requested = elapsed >= 8

    controls = Controls()

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
        arrivals, concurrency = _arrivals(scenario, population)
        return await run_scenario(scenario, population, (arrivals.indices - population.start, arrivals.times),
                                  controls=controls, on_tick=on_tick, concurrency=concurrency, clock=loop.time,
                                  sut_starter=start)

    with caplog.at_level(logging.ERROR, logger="carrier_sim.runner.inprocess_sut"):
        result = run_virtual(main(), start=1_800_000_000.0)
    # Seen within a second or so of the crash, not only at the run's end.
    assert seen_at
    assert seen_at[0] < 5, seen_at
    assert any("carrier-a: gateway stopped on an error" in r.getMessage() for r in caplog.records)
    assert result.harness_errors == ["the system under test did not stop cleanly: RuntimeError: housekeeping broke"]
    assert shut == ["carrier-a", "carrier-b"]
    # The other gateway, the store and the API were stopped as well.
    assert cores[0].gateways["carrier-b"].bound.is_set() is False
