"""An smsc_outage and the run's end: a stop (or the end of the load) does not wait out the rest of the outage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from carrier_sim.population.columns import Population
from carrier_sim.runner.inprocess_sut import start_inprocess_sut
from carrier_sim.runner.run import Controls, RunResult, _outage, run_scenario
from carrier_sim.runner.shards import _arrivals, shard_bounds_of
from carrier_sim.runner.virtual_loop import run_virtual
from carrier_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]


def test_a_stop_during_an_outage_ends_the_run_at_once_with_the_outage_logged() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "clock=virtual", "population.phones=200", "load.phases=[{name: steady, duration: 20, rate: 5}]",
        "events=[{at: 1, type: smsc_outage, carrier: carrier-a, duration: 600}]"])

    async def main() -> tuple[float, RunResult]:
        loop = asyncio.get_running_loop()
        population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
        arrivals, concurrency = _arrivals(scenario, population)
        controls = Controls()
        asked: list[float] = []

        def on_tick(_result: RunResult, elapsed: float) -> None:
            if elapsed >= 3 and not asked:
                controls.stop_requested = True  # what a SIGINT, a SIGTERM or the dashboard's q do
                asked.append(loop.time())

        result = await run_scenario(scenario, population, (arrivals.indices - population.start, arrivals.times),
                                    controls=controls, on_tick=on_tick, concurrency=concurrency,
                                    clock=loop.time, sut_starter=start_inprocess_sut)
        return loop.time() - asked[0], result

    after_stop, result = run_virtual(main(), start=1_800_000_000.0)
    # Virtual seconds: the old run slept out the 600 s outage before it returned.
    assert after_stop < 60, after_stop
    assert result.events_log == ["event smsc_outage: carrier-a's SMSC down for 600 s",
                                 "event smsc_outage: carrier-a's SMSC still down when the run ended"]
    assert not any("listen again" in e for e in result.harness_errors)


async def test_a_port_taken_during_the_outage_is_a_harness_error_not_an_exception() -> None:
    class Server:
        async def stop_listening(self, *, abort_connections: bool = False) -> None:
            return None

        async def listen(self, host: str, port: int) -> tuple[str, int]:
            raise OSError(98, "Address already in use")

    carrier = SimpleNamespace(carrier=SimpleNamespace(name="carrier-a"), server=Server(), host="127.0.0.1", port=2775)
    result = SimpleNamespace(events_log=[], harness_errors=[], plan_time=0.0)

    async def tick() -> None:  # the run's tick advances the plan the outage's end is measured in
        await asyncio.sleep(0.05)
        result.plan_time = 1.0

    await asyncio.gather(_outage(carrier, 0.01, result), tick())  # type: ignore[arg-type]
    assert result.harness_errors == ["carrier-a's SMSC could not listen again on port 2775 after its outage: "
                                     "[Errno 98] Address already in use"]
    assert result.events_log == ["event smsc_outage: carrier-a's SMSC down for 0.01 s"]
