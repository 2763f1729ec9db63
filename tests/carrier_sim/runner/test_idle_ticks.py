"""Under a virtual clock the runner skips the ticks in which nothing can happen, and sees exactly what it would
have seen ticking through them: the same phones do the same things at the same virtual moments.

The reference is the same run with skipping switched off (``_idle_ticks`` answering 0), which ticks every 20 ms
as the runner always did."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.population.columns import Population
from carrier_sim.runner import run as run_module
from carrier_sim.runner.flows.base import FlowCounters
from carrier_sim.runner.inprocess_sut import start_inprocess_sut
from carrier_sim.runner.run import TICK, Controls, RunResult, _idle_ticks, _Lattice, run_scenario
from carrier_sim.runner.shards import _arrivals, shard_bounds_of
from carrier_sim.runner.virtual_loop import run_virtual
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[3]
START = 1_800_000_000.0


def _sparse(*overrides: str) -> Scenario:
    # Half an hour of sparse arrivals: long quiet stretches between phones, renewals due minutes later, a few
    # absent phones whose REG-REQ times out, and a SIM swap told to the SUT mid-run.
    return load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "clock=virtual", "population.phones=200",
        "population.conditions={absent: 0.05, barred: 0.02, roaming: 0.0}",
        "load.phases=[{name: quiet, duration: 1200, rate: 0.1}]",
        "flows=[{name: activation, weight: 0.5, think_time: {distribution: lognormal, median: 2, sigma: 0.5}},"
        " {name: renewal, weight: 0.3, think_time: {distribution: lognormal, median: 60, sigma: 0.5}},"
        " {name: mo_mt, weight: 0.2, think_time: {distribution: lognormal, median: 5, sigma: 0.5}}]",
        "events=[{at: 600, type: sim_swap, share: 0.2}]", "checks=[]", *overrides])


def _run(scenario: Scenario, keys: Callable[[Controls], Coroutine[Any, Any, None]] | None = None) -> RunResult:
    """Run ``scenario`` in virtual time; ``keys`` changes the controls meanwhile, as a person would."""
    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
        arrivals, concurrency = _arrivals(scenario, population)
        controls = Controls()
        presses = asyncio.create_task(keys(controls)) if keys is not None else None
        try:
            return await run_scenario(scenario, population, (arrivals.indices - population.start, arrivals.times),
                                      controls=controls, concurrency=concurrency, clock=loop.time,
                                      sut_starter=start_inprocess_sut)
        finally:
            if presses is not None:
                presses.cancel()

    return run_virtual(main(), start=START)


def _assert_same_phones(a: RunResult, b: RunResult) -> None:
    assert [f.name for f in a.flows] == [f.name for f in b.flows]
    for fa, fb in zip(a.flows, b.flows, strict=True):
        assert fa.counters == fb.counters, fa.name
        la, lb = fa.latencies(), fb.latencies()
        assert la.keys() == lb.keys()
        for name in la:
            assert np.array_equal(la[name], lb[name]), (fa.name, name)
        assert np.array_equal(fa.t_started, fb.t_started, equal_nan=True)
        assert np.array_equal(fa.t_done, fb.t_done, equal_nan=True)
    assert a.events_log == b.events_log
    assert (a.events_targets, a.events_revoked) == (b.events_targets, b.events_revoked)
    assert (a.planned_arrivals, a.achieved_arrivals, a.on_time_arrivals) == (
        b.planned_arrivals, b.achieved_arrivals, b.on_time_arrivals)


@pytest.mark.parametrize("model", ["open", "closed"])
def test_skipping_idle_ticks_changes_nothing_the_phones_did(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    overrides = () if model == "open" else (
        "load={model: closed, phases: [{name: few, duration: 900, concurrency: 2}]}",)
    scenario = _sparse(*overrides)
    skipped = _run(scenario)
    monkeypatch.setattr(run_module, "_idle_ticks", lambda *args: 0)
    ticked = _run(scenario)
    assert ticked.ticks_skipped == 0
    _assert_same_phones(skipped, ticked)
    # Something happened: phones of every flow finished, some failed, the swap hit phones.
    for flow in skipped.flows:
        assert flow.counters.completed > 0, flow.name
    assert sum(f.counters.failed for f in skipped.flows) > 0
    assert skipped.events_targets > 0
    # Over the same lattice of ticks, of which the skipping run ran only a few.
    assert skipped.ticks + skipped.ticks_skipped == pytest.approx(ticked.ticks, abs=2)
    assert skipped.ticks * 5 < ticked.ticks
    assert not skipped.harness_errors
    assert not ticked.harness_errors


def _doors(flow: str, *overrides: str) -> Scenario:
    # carrier-doors.yaml made sparse and cut to one flow over real HTTP or SMTP: a phone every 10 s, think times of
    # seconds, some absent phones (their MT or OTP SMS never comes: "no_mt", "no_otp_sms" after 30 s) and barred
    # ones (refused by the RCS door).
    return load_scenario(ROOT / "scenarios" / "carrier-doors.yaml", [
        "clock=virtual", "population.phones=200",
        "population.conditions={absent: 0.1, barred: 0.05, roaming: 0.0}",
        "load.phases=[{name: quiet, duration: 600, rate: 0.1}]",
        f"flows=[{{name: {flow}, think_time: {{distribution: lognormal, median: 15, sigma: 0.5}}}}]",
        "events=[]", "checks=[]", *overrides])


@pytest.mark.parametrize("model", ["open", "closed"])
@pytest.mark.parametrize("flow", ["email", "rcs_cellular", "rcs_otp"])
def test_flows_over_http_and_smtp_skip_idle_ticks_and_change_nothing(flow: str, model: str,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Their phones wait for answers from sockets (the RCS door, the SMTP door, the flow's inbox) and for MTs; the
    # loop wakes the runner for those, the flows' quiet_until says when a phone times out or is done thinking.
    overrides = () if model == "open" else (
        "load={model: closed, phases: [{name: few, duration: 500, concurrency: 1}]}",)
    scenario = _doors(flow, *overrides)
    # When each failure happened, by the run's clock: a timeout a skip carried past its moment fails the same
    # phones for the same reason, later, which neither the counters nor the latencies would show.
    failures: list[tuple[str, int, float]] = []
    fail = FlowCounters.fail

    def recorded(self: FlowCounters, reason: str, n: int = 1) -> None:
        failures.append((reason, n, asyncio.get_running_loop().time()))
        fail(self, reason, n)

    monkeypatch.setattr(FlowCounters, "fail", recorded)
    skipped = _run(scenario)
    skipped_failures, failures[:] = failures[:], []
    monkeypatch.setattr(run_module, "_idle_ticks", lambda *args: 0)
    ticked = _run(scenario)
    assert ticked.ticks_skipped == 0
    _assert_same_phones(skipped, ticked)
    assert skipped_failures == failures
    (phones,) = skipped.flows
    assert phones.counters.completed > 0
    # Absent phones timed out waiting for their MT or OTP SMS (a cellular phone only waits for HTTP answers, which
    # the door gives at once: barred ones are refused).
    assert {"email": "no_mt", "rcs_cellular": "forbidden", "rcs_otp": "no_otp_sms"}[flow] in phones.counters.failures
    assert skipped.ticks + skipped.ticks_skipped == pytest.approx(ticked.ticks, abs=2)
    assert skipped.ticks * 5 < ticked.ticks
    assert not skipped.harness_errors
    assert not ticked.harness_errors


def test_an_smsc_outage_ends_at_the_same_tick_when_the_runner_skips(monkeypatch: pytest.MonkeyPatch) -> None:
    # The outage polls the plan's time on the tick's own lattice: a runner that skipped while it ran woke a tick
    # after each poll, saw every other tick, and the SMSC listened again 20 ms late -- a gateway rebinding in those
    # 20 ms found nothing and waited seconds more, so phones failed that had not.
    listened: list[float] = []
    listen = SmscServer.listen

    async def recorded(self: SmscServer, *args: Any, **kwargs: Any) -> tuple[str, int]:
        listened.append(asyncio.get_running_loop().time())
        return await listen(self, *args, **kwargs)

    monkeypatch.setattr(SmscServer, "listen", recorded)
    scenario = _sparse("load.phases=[{name: quiet, duration: 300, rate: 0.2}]",
                       "flows=[{name: mo_mt, think_time: {distribution: lognormal, median: 5, sigma: 0.5}}]",
                       "events=[{at: 100, type: smsc_outage, carrier: carrier-a, duration: 20}]")
    skipped = _run(scenario)
    skipped_listens, listened[:] = listened[:], []
    monkeypatch.setattr(run_module, "_idle_ticks", lambda *args: 0)
    ticked = _run(scenario)
    assert skipped_listens == listened
    assert len(listened) == 3  # two carriers start, and carrier-a again after its outage
    _assert_same_phones(skipped, ticked)
    assert "event smsc_outage over: carrier-a's SMSC listens again" in skipped.events_log


def test_a_key_pressed_while_the_runner_sleeps_changes_only_the_ticks_after_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # The person's keys wake the loop; the ticks skipped before the press keep the rate and pause in force then.
    async def keys(controls: Controls) -> None:
        await asyncio.sleep(100.005)
        controls.rate_multiplier = 4.0
        await asyncio.sleep(50.0)
        controls.paused = True
        await asyncio.sleep(5.0)
        controls.paused = False
        controls.rate_multiplier = 1.0

    scenario = _sparse()
    skipped = _run(scenario, keys)
    monkeypatch.setattr(run_module, "_idle_ticks", lambda *args: 0)
    ticked = _run(scenario, keys)
    _assert_same_phones(skipped, ticked)
    assert skipped.plan_time == ticked.plan_time
    assert skipped.ticks * 3 < ticked.ticks


def test_a_paused_run_does_not_skip() -> None:
    # The plan stands still while paused: nothing in it comes due, but a key may start it again at any tick.
    assert _idle_ticks(100.0, 5.0, 0.0, [50.0], []) == 0


def test_the_skip_stops_a_tick_short_of_the_next_work() -> None:
    now = 0.0  # (at epoch magnitudes a float's rounding may cost a tick: the skip then stops a tick earlier)
    # An arrival 1 s of plan ahead at twice the rate is 0.5 s of clock ahead: 25 ticks, of which 24 are idle.
    assert _idle_ticks(now, 10.0, 2.0, [11.0], []) == 24
    # A flow's phone due sooner than that wins; one due within two ticks leaves nothing to skip.
    assert _idle_ticks(now, 10.0, 2.0, [11.0], [now + 0.1]) == 4
    assert _idle_ticks(now, 10.0, 1.0, [11.0], [now + 0.03]) == 0
    # Moments of the plan already passed are ignored; nothing ahead at all means no skip (the loop is ending).
    assert _idle_ticks(now, 10.0, 1.0, [9.0], []) == 0
    # A long quiet stretch is skipped in bounded steps.
    assert _idle_ticks(now, 10.0, 1.0, [10_000.0], []) == run_module.MAX_SKIP


def test_the_lattice_is_the_one_asyncio_sleep_walks() -> None:
    lattice = _Lattice(START)
    at = START
    for _ in range(300):
        at += TICK
    assert lattice.advance(300) == at
    assert lattice.steps == 300
    # The first tick strictly after a moment, and its number.
    assert lattice.after(START + 0.05) == START + TICK + TICK + TICK
    assert lattice.steps == 3
    assert lattice.after(START) == START + TICK
    assert lattice.skipped() == []
    lattice.advance(3)
    assert lattice.skipped() == [START + TICK, START + TICK + TICK]
