"""The dashboard's keys reach the runner: a pause stops arrivals (closed model too), the rate multiplier scales
them, phases and events keep the plan's time, and a closed model keeps exactly its concurrency in flight.

Virtual time with the identity core in the same loop, so each run takes a second of wall time however many
seconds it plans."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from carrier_sim.runner.run import Controls, SutStarter
from carrier_sim.runner.shards import ShardOutcome, Snapshot, run_in_clock, run_shard
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[3]


def _scenario(*overrides: str) -> Scenario:
    return load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "clock=virtual", "population.phones=400", "events=[]", "checks=[]", *overrides])


def _run(scenario: Scenario, steer: Callable[[Snapshot, Controls], None]) -> tuple[ShardOutcome, list[Snapshot]]:
    controls = Controls()
    seen: list[Snapshot] = []

    def on_snapshot(snap: Snapshot) -> None:
        seen.append(snap)
        steer(snap, controls)

    async def main(clock: Callable[[], float], starter: SutStarter | None) -> ShardOutcome:
        return await run_shard(scenario, 0, 1, controls=controls, on_snapshot=on_snapshot, clock=clock,
                               sut_starter=starter)

    return run_in_clock(scenario, main), seen


def _in_flight(snap: Snapshot) -> int:
    return snap.funnel.get("arrived", 0) - snap.funnel.get("done", 0) - snap.funnel.get("failed", 0)


def test_closed_model_holds_exactly_its_concurrency_and_a_pause_stops_it() -> None:
    # Phones enough for 20 s of plan at 10 in flight (each runs its flow once): fewer is a harness error.
    scenario = _scenario("load={model: closed, phases: [{name: soak, duration: 30, concurrency: 10}]}",
                         "population.phones=4000")

    def steer(snap: Snapshot, controls: Controls) -> None:
        controls.paused = 10.0 <= snap.elapsed < 20.0
        controls.stop_requested = snap.elapsed >= 40.0

    outcome, seen = _run(scenario, steer)
    assert not outcome.harness_errors
    running = [s for s in seen if 2.0 <= s.elapsed < 10.0]
    assert running
    assert max(_in_flight(s) for s in running) == 10
    assert all(_in_flight(s) <= 10 for s in seen)
    paused = [s for s in seen if 10.5 <= s.elapsed < 20.0]
    # Paused: nobody new joins (those in flight finish), and the plan's clock stands still.
    assert len({s.achieved for s in paused}) == 1
    assert max(s.plan_time for s in paused) - min(s.plan_time for s in paused) < 0.1
    assert max(s.achieved for s in seen) > paused[-1].achieved  # and resumes after


def test_open_model_pause_and_rate_multiplier() -> None:
    scenario = _scenario("load.phases=[{name: steady, duration: 60, rate: 5}]")

    def steer(snap: Snapshot, controls: Controls) -> None:
        controls.paused = 10.0 <= snap.elapsed < 20.0
        controls.rate_multiplier = 2.0 if snap.elapsed >= 20.0 else 1.0
        controls.stop_requested = snap.elapsed >= 30.0

    _, seen = _run(scenario, steer)

    def arrivals(start: float, stop: float) -> int:
        at = [s for s in seen if start <= s.elapsed <= stop]
        return at[-1].achieved - at[0].achieved

    assert 40 <= arrivals(0.0, 10.0) <= 60  # 5/s
    assert arrivals(10.5, 19.5) == 0  # paused
    assert 80 <= arrivals(20.5, 29.5) <= 110  # 10/s with the multiplier at 2
    # The plan advanced 10 s before the pause and 2 x ~10 s after it.
    assert 28.0 <= seen[-1].plan_time <= 32.0


def test_events_keep_the_plans_time() -> None:
    # A SIM swap planned at 15 s: with a 10 s pause from 5 s, it must come at 25 s of wall (virtual) time.
    scenario = _scenario("load.phases=[{name: steady, duration: 40, rate: 5}]",
                         "events=[{at: 15, type: sim_swap, share: 0.5}]")
    applied: list[float] = []

    def steer(snap: Snapshot, controls: Controls) -> None:
        controls.paused = 5.0 <= snap.elapsed < 15.0
        controls.stop_requested = snap.elapsed >= 30.0
        # By its line, which every snapshot carries: metrics come once a real second in a virtual run.
        if not applied and snap.events:
            applied.append(snap.elapsed)

    _, seen = _run(scenario, steer)
    assert applied
    assert 24.0 <= applied[0] <= 27.0
    # The dashboard hears of it: one line saying what the event did.
    (line,) = seen[-1].events
    hit, revoked = (int(n) for n in re.fullmatch(r"event sim_swap: (\d+) phones hit, (\d+) bindings revoked",
                                                 line).groups())  # type: ignore[union-attr]
    assert hit == revoked > 0


def test_an_outage_lasts_its_duration_of_plan_time() -> None:
    # Down at 5 s of the plan for 5 s; a pause from 6 s to 16 s of wall time must stretch it to ~20 s, as it moves
    # every other moment of the plan (the outage once slept 5 s of loop time and ended mid-pause at ~10 s).
    scenario = _scenario("load.phases=[{name: steady, duration: 40, rate: 5}]",
                         "events=[{at: 5, type: smsc_outage, carrier: carrier-a, duration: 5}]")
    over: list[float] = []

    def steer(snap: Snapshot, controls: Controls) -> None:
        controls.paused = 6.0 <= snap.elapsed < 16.0
        controls.stop_requested = snap.elapsed >= 25.0
        if not over and any("smsc_outage over" in line for line in snap.events):
            over.append(snap.elapsed)

    _run(scenario, steer)
    assert over
    assert 19.0 <= over[0] <= 22.0
