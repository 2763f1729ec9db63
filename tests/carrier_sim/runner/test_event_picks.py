"""Which phones a SIM swap or a port-out hits depends on the phones alone, never on how the run is sharded."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from carrier_sim.population.columns import Population
from carrier_sim.population.randomness import Stream
from carrier_sim.runner.flows.activation import ActivationFlow, Step
from carrier_sim.runner.flows.base import FlowContext
from carrier_sim.runner.run import _at_carrier, pick_for_event
from carrier_sim.runner.shards import shard_bounds_of
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Distribution, Flow, Scenario

ROOT = Path(__file__).resolve().parents[3]
SPEC = Flow("activation", think_time=Distribution("fixed", value=1.0))


class _NoDoors:
    pass


class _Running:
    def __init__(self, carrier: object) -> None:
        self.carrier = carrier
        self.smsc = _NoDoors()  # services_of() finds none


def _shard_flows(scenario: Scenario, shards: int) -> list[ActivationFlow]:
    """One activation flow per shard, in which every phone whose global index is not a multiple of 3 is
    activated (DONE) or renewing (RENEW_WAIT), the rest still waiting for their REG-RESP (REG_SENT)."""
    flows = []
    for k in range(shards):
        population = Population(scenario, *shard_bounds_of(scenario, k, shards))
        ctx = FlowContext(scenario.seed, population, [_Running(c) for c in scenario.carriers],  # type: ignore[misc]
                          lambda: 0.0, lambda *_: True)
        flow = ActivationFlow(ctx, SPEC)
        index = population.index
        flow.state[index % 3 == 1] = Step.DONE
        flow.state[index % 3 == 2] = Step.RENEW_WAIT
        flow.state[index % 3 == 0] = Step.REG_SENT
        flows.append(flow)
    return flows


def _global(picked: list[tuple[ActivationFlow, int]]) -> list[int]:
    return sorted(int(flow.ctx.population.index[row]) for flow, row in picked)


def test_a_sharded_run_hits_exactly_the_phones_a_single_process_would() -> None:
    # 1,061 phones: a count rounded per shard (the old way) would differ between 1, 2 and 3 shards.
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["population.phones=1061"])
    single = [pick_for_event(_shard_flows(scenario, 1), None, 0, 0.1)]
    for shards in (2, 3):
        flows = _shard_flows(scenario, shards)
        parts = [pick_for_event([flow], None, 0, 0.1) for flow in flows]
        hit = _global([p for part in parts for p in part[0]])
        control = _global([p for part in parts for p in part[1]])
        assert hit == _global(single[0][0])
        assert control == _global(single[0][1])


def test_only_activated_phones_of_the_named_carrier_are_hit_at_about_the_share() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["population.phones=20000"])
    (flow,) = _shard_flows(scenario, 1)
    activated = (flow.state == Step.DONE) | (flow.state == Step.RENEW_WAIT)
    hit, control = pick_for_event([flow], None, 0, 0.1)
    rows = np.array([row for _, row in hit])
    assert activated[rows].all()
    # Binomial(13,333, 0.1): mean 1,333, sd 35; six sd either side.
    assert abs(len(hit) - activated.sum() * 0.1) < 6 * 35
    assert abs(len(control) - len(hit)) < 8 * 35
    assert not {r for _, r in hit} & {r for _, r in control}
    carrier_b = pick_for_event([flow], 1, 0, 0.1)[0]
    assert carrier_b
    assert all(int(flow.ctx.carrier_of[row]) == 1 for _, row in carrier_b)
    # Another event draws anew: not the same phones again.
    other = pick_for_event([flow], None, 1, 0.1)[0]
    assert _global(other) != _global(hit)


def test_the_draw_is_the_phones_own_event_stream() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["population.phones=500"])
    (flow,) = _shard_flows(scenario, 1)
    population = flow.ctx.population
    hit = _global(pick_for_event([flow], None, 2, 0.3)[0])
    activated = population.index[(flow.state == Step.DONE) | (flow.state == Step.RENEW_WAIT)]
    expected = activated[population.rng.uniform(activated, Stream.EVENT, 2) < 0.3]
    assert hit == sorted(int(i) for i in expected)


def _certificate(exp: float) -> str:
    claims = base64.urlsafe_b64encode(json.dumps({"exp": exp}).encode()).decode().rstrip("=")
    return f"e30.{claims}.c2ln"


def test_a_phone_an_event_hit_is_not_picked_again_until_it_holds_a_new_certificate() -> None:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", ["population.phones=2000"])
    (flow,) = _shard_flows(scenario, 1)
    running = [_Running(c) for c in scenario.carriers]
    hit, _ = pick_for_event([flow], None, 0, 0.3)
    _at_carrier("sim_swap", hit, running, 0.0)  # type: ignore[arg-type]
    swapped = {row for _, row in hit}
    assert flow.revoked[sorted(swapped)].all()
    assert int(flow.revoked.sum()) == len(swapped)
    # The next event finds them holding no certificate: neither hit again (the SUT has nothing left to revoke)
    # nor in the control group (whose phones the SUT must still trust).
    again, control = pick_for_event([flow], None, 1, 0.5)
    assert again
    assert control
    assert not swapped & {row for _, row in again + control}
    # A swapped phone that renews (its next round registers from the new SIM) holds a certificate again.
    renewing = next(row for row in sorted(swapped) if flow.state[row] == Step.RENEW_WAIT)
    flow.authenticated(renewing, _certificate(4e9), "", 1.0)
    assert not flow.revoked[renewing]
    everyone = {row for _, row in pick_for_event([flow], None, 2, 1.0)[0]}
    assert renewing in everyone
    assert not (swapped - {renewing}) & everyone
