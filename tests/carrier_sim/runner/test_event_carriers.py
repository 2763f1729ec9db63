"""A SIM swap via the network API names no carrier: it hits only phones of carriers with a CAMARA door.

Only a carrier's CAMARA SIM Swap API can tell the SUT of such a swap; a phone of a carrier without one, asked
about, gets the SUT's honest "not configured" answer, and the run used to blame the SUT for it."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from carrier_sim.population.columns import Population
from carrier_sim.runner.flows.activation import ActivationFlow, Step
from carrier_sim.runner.flows.base import FlowContext
from carrier_sim.runner.inprocess_sut import start_inprocess_sut
from carrier_sim.runner.run import RunResult, event_carriers, pick_for_event, run_scenario
from carrier_sim.runner.shards import _arrivals, shard_bounds_of
from carrier_sim.runner.virtual_loop import run_virtual
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Distribution, Doors, Event, Flow, Scenario

ROOT = Path(__file__).resolve().parents[3]
SPEC = Flow("activation", think_time=Distribution("fixed", value=1.0))
# carrier-doors.yaml's second carrier (doors-b) without its CAMARA door: the reviewer's partial-camara scenario.
DOORS_B_CAMARA = "      camara: {port: 0}\n"


def _partial_camara(tmp_path: Path, overrides: list[str]) -> Scenario:
    text = (ROOT / "scenarios" / "carrier-doors.yaml").read_text()
    assert text.count(DOORS_B_CAMARA) == 1
    path = tmp_path / "partial-camara.yaml"
    path.write_text(text.replace(DOORS_B_CAMARA, ""))
    scenario = load_scenario(path, overrides)
    assert [c.doors.camara is not None for c in scenario.carriers] == [True, False]
    return scenario


class _Running:
    def __init__(self, carrier: object) -> None:
        self.carrier = carrier
        self.smsc = object()


def _activated_flow(scenario: Scenario) -> ActivationFlow:
    population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
    ctx = FlowContext(scenario.seed, population, [_Running(c) for c in scenario.carriers],  # type: ignore[misc]
                      lambda: 0.0, lambda *_: True)
    flow = ActivationFlow(ctx, SPEC)
    flow.state[:] = Step.DONE
    return flow


def test_a_network_api_swap_naming_no_carrier_picks_only_carriers_with_a_camara_door(tmp_path: Path) -> None:
    scenario = _partial_camara(tmp_path, ["population.phones=4000"])
    carriers = scenario.carriers
    network = Event(at=1, kind="sim_swap", share=0.2, via="network_api")
    assert event_carriers(network, carriers) == frozenset({0})
    flow = _activated_flow(scenario)
    hit, control = pick_for_event([flow], event_carriers(network, carriers), 0, 0.2)
    assert hit
    assert control
    assert {int(flow.ctx.carrier_of[row]) for _, row in hit + control} == {0}
    # Told through the events API, or a port-out, any carrier's phones may be hit; a named carrier is that one.
    for other in (Event(at=1, kind="sim_swap", share=0.2), Event(at=1, kind="port_out", share=0.2)):
        assert event_carriers(other, carriers) is None
        picked = pick_for_event([flow], event_carriers(other, carriers), 0, 0.2)[0]
        assert {int(flow.ctx.carrier_of[row]) for _, row in picked} == {0, 1}
    named = Event(at=1, kind="sim_swap", share=0.2, carrier="doors-b")
    assert event_carriers(named, carriers) == 1
    # Every carrier with a door: the same phones as no restriction at all.
    both = [carriers[0], dataclasses.replace(carriers[1], doors=Doors(camara=carriers[0].doors.camara))]
    assert event_carriers(network, both) == frozenset({0, 1})
    assert pick_for_event([flow], frozenset({0, 1}), 0, 0.2) == pick_for_event([flow], None, 0, 0.2)


def test_the_partial_camara_scenario_passes_its_sim_swap_checks(tmp_path: Path) -> None:
    # The reviewer's repro, shrunk: before, about half the swapped phones were doors-b's, whose risk checks came
    # back "no verdict" (the SUT has no SIM Swap API for doors-b), failing both SIM-swap checks.
    scenario = _partial_camara(tmp_path, [
        "clock=virtual", "population.phones=300", "load.phases=[{name: steady, duration: 6, rate: 50}]",
        "flows=[{name: activation, weight: 1.0}]", "events=[{at: 4, type: sim_swap, share: 0.2, via: network_api}]",
        "checks=[]"])

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
        arrivals, concurrency = _arrivals(scenario, population)
        return await run_scenario(scenario, population, (arrivals.indices - population.start, arrivals.times),
                                  concurrency=concurrency, clock=loop.time, sut_starter=start_inprocess_sut)

    result = run_virtual(main(), start=1_800_000_000.0)
    assert not result.harness_errors
    assert result.events_targets > 0
    assert result.events_revoked == result.events_targets
    assert result.risk_checks.get("unavailable", 0) == 0
    assert result.risk_checks.get("false_alarms", 0) == 0
