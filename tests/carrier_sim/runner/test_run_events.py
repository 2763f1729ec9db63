"""A scenario's SIM swaps and port-outs against a slow or hung system under test: the run's loop keeps ticking while
the SUT is told, a stop ends the run at once with its results, and the counts say what the SUT answered.

Virtual time, with the in-process identity core behind a proxy that holds back what an event asks of it (the
phones' own calls pass straight through), so that 30 s HTTP timeouts take no wall time."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from carrier_sim.population.columns import Population
from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.runner.flows.base import DoorAddress
from carrier_sim.runner.inprocess_sut import InProcessSut, start_inprocess_sut
from carrier_sim.runner.run import EVENT_CALLS, Controls, RunResult, run_scenario
from carrier_sim.runner.shards import _arrivals, shard_bounds_of
from carrier_sim.runner.sut import SystemUnderTest
from carrier_sim.runner.virtual_loop import run_virtual
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[3]
START = 1_800_000_000.0


def _scenario(event: str) -> Scenario:
    return load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "clock=virtual", "population.phones=400", "load.phases=[{name: steady, duration: 20, rate: 10}]",
        f"events=[{event}]", "checks=[]"])


def _is_event_call(request: web.Request) -> bool:
    return request.path == "/v1/events" or request.path.endswith("/risk-check")


@dataclass
class Proxy(SystemUnderTest):
    """The in-process core behind a proxy: ``hold`` decides what becomes of each call an event makes."""

    core: InProcessSut | None = None
    runner: web.AppRunner | None = None
    #: Event calls received, and how many were waiting at most at once.
    received: list[float] = field(default_factory=list)
    waiting: int = 0
    most_waiting: int = 0

    async def stop(self, timeout: float = 15.0) -> int | None:
        if self.runner is not None:
            await self.runner.cleanup()
        return await self.core.stop(timeout) if self.core is not None else None


def proxied(hold: Callable[[], Awaitable[None]], made: list[Proxy]) -> Callable[
        [Scenario, list[RunningCarrier], Path, dict[str, dict[str, DoorAddress]]], Awaitable[SystemUnderTest]]:
    """A SutStarter: the in-process core, with ``hold()`` awaited before each of an event's calls passes."""
    async def start(scenario: Scenario, carriers: list[RunningCarrier], workdir: Path,
                    doors: dict[str, dict[str, DoorAddress]]) -> SystemUnderTest:
        core = await start_inprocess_sut(scenario, carriers, workdir, doors)
        proxy = Proxy("", core.token, core=core)
        client = aiohttp.ClientSession()

        async def forward(request: web.Request) -> web.StreamResponse:
            if _is_event_call(request):
                proxy.received.append(asyncio.get_running_loop().time())
                proxy.waiting += 1
                proxy.most_waiting = max(proxy.most_waiting, proxy.waiting)
                try:
                    await hold()
                finally:
                    proxy.waiting -= 1
            headers = {k: v for k, v in request.headers.items() if k in ("Authorization", "Content-Type")}
            async with client.request(request.method, core.api + request.path_qs, headers=headers,
                                      data=await request.read()) as answer:
                return web.Response(status=answer.status, body=await answer.read(),
                                    headers={"Content-Type": answer.headers.get("Content-Type", "text/plain")})

        async def close_client(_app: web.Application) -> None:
            await client.close()

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", forward)
        app.on_cleanup.append(close_client)
        proxy.runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await proxy.runner.setup()
        site = web.TCPSite(proxy.runner, "127.0.0.1", 0)
        await site.start()
        host, port = proxy.runner.addresses[0][:2]
        proxy.api = f"http://{host}:{port}"
        made.append(proxy)
        return proxy

    return start


def _run(scenario: Scenario, hold: Callable[[], Awaitable[None]], controls: Controls,
         on_tick: Callable[[RunResult, float], None] | None = None) -> tuple[RunResult, Proxy, float]:
    """Run ``scenario`` in virtual time; the result, the proxy, and the virtual time the run ended at."""
    made: list[Proxy] = []

    async def main() -> tuple[RunResult, float]:
        loop = asyncio.get_running_loop()
        population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
        arrivals, concurrency = _arrivals(scenario, population)
        result = await run_scenario(scenario, population, (arrivals.indices - population.start, arrivals.times),
                                    controls=controls, on_tick=on_tick, concurrency=concurrency, clock=loop.time,
                                    sut_starter=proxied(hold, made))
        return result, loop.time()

    result, ended = run_virtual(main(), start=START)
    return result, made[0], ended


@pytest.mark.parametrize("event", [
    "{at: 6, type: sim_swap, share: 0.5}",
    "{at: 6, type: port_out, share: 0.5}",
    "{at: 6, type: sim_swap, share: 0.5, via: network_api}",
])
def test_a_stop_while_the_sut_hangs_on_an_event_ends_the_run_at_once_with_its_results(event: str) -> None:
    controls = Controls()

    async def never_answer() -> None:
        # A hung SUT, and a person pressing Ctrl-C (what the signal handler does) while it hangs.
        controls.stop_requested = True
        await asyncio.Event().wait()

    result, proxy, ended = _run(_scenario(event), never_answer, controls)
    assert proxy.received
    # Virtual seconds: the old loop awaited each phone's call in turn, 30 s (the client's timeout) apiece.
    after_stop = ended - proxy.received[0]
    assert after_stop < 5, after_stop
    # The run still reports: its event line says the SUT was cut short, and nothing unanswered was judged.
    (line,) = result.events_log
    found = re.fullmatch(r"event \w+: (\d+) phones hit, 0 bindings revoked \((\d+) of its (\d+) calls to the "
                         r"system under test unfinished when the run ended\)", line)
    assert found, line
    hit, unfinished, calls = (int(n) for n in found.groups())
    assert hit > 0
    assert unfinished == calls >= hit
    assert result.events_targets == result.events_revoked == 0
    assert sum(result.risk_checks.values()) == 0
    assert not result.harness_errors


def test_the_loop_keeps_ticking_while_a_slow_sut_is_told_and_the_counts_are_whole() -> None:
    ticks_while_telling: list[float] = []
    proxy_of: list[Proxy] = []

    async def slowly() -> None:
        await asyncio.sleep(2.0)

    def on_tick(result: RunResult, elapsed: float) -> None:
        if proxy_of and proxy_of[0].waiting:
            ticks_while_telling.append(elapsed)

    scenario = _scenario("{at: 8, type: sim_swap, share: 0.8}")
    made: list[Proxy] = []
    controls = Controls()

    async def main() -> RunResult:
        loop = asyncio.get_running_loop()
        population = Population(scenario, *shard_bounds_of(scenario, 0, 1))
        arrivals, concurrency = _arrivals(scenario, population)
        starter = proxied(slowly, made)

        async def start(*args: object) -> SystemUnderTest:
            sut = await starter(*args)  # type: ignore[arg-type]
            proxy_of.extend(made)
            return sut

        return await run_scenario(scenario, population, (arrivals.indices - population.start, arrivals.times),
                                  controls=controls, on_tick=on_tick, concurrency=concurrency, clock=loop.time,
                                  sut_starter=start)

    result = run_virtual(main(), start=START)
    proxy = made[0]
    (line,) = result.events_log
    found = re.fullmatch(r"event sim_swap: (\d+) phones hit, (\d+) bindings revoked", line)
    assert found, line
    hit, revoked = (int(n) for n in found.groups())
    assert hit > EVENT_CALLS  # enough phones to need more than one batch
    assert len(proxy.received) == hit
    # Every phone's call done and counted: the SUT revoked each binding it was told of.
    assert result.events_targets == result.events_revoked == revoked == hit
    # The calls went EVENT_CALLS at a time, and the loop ticked on meanwhile (arrivals, timers, the dashboard).
    assert proxy.most_waiting == EVENT_CALLS
    assert len(ticks_while_telling) > 50
    assert result.achieved_arrivals == result.planned_arrivals
    assert not result.harness_errors


def test_a_later_swap_waits_for_the_sut_to_be_asked_about_the_earlier_ones_controls() -> None:
    """Two SIM swaps through the network API, the second due while the SUT is still asked about the first: the
    second picks its phones only after, so it cannot swap the first's control phones before their risk checks (a
    correct SUT would then be charged with false alarms)."""
    async def slowly() -> None:
        await asyncio.sleep(2.0)

    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml", [
        "clock=virtual", "population.phones=400", "load.phases=[{name: steady, duration: 20, rate: 20}]",
        "events=[{at: 6, type: sim_swap, share: 0.3, via: network_api},"
        " {at: 7, type: sim_swap, share: 0.3, via: network_api}]", "checks=[]"])
    result, proxy, _ = _run(scenario, slowly, Controls())
    assert len(result.events_log) == 2, result.events_log
    # Every control phone asked about while still untouched: none a false alarm, none an answer the SUT could not
    # give (the second event revoking a phone the first was about to ask about made 8 of them "unavailable").
    assert "false_alarms" not in result.risk_checks, result.risk_checks
    assert "unavailable" not in result.risk_checks, result.risk_checks
    assert result.risk_checks.get("untrusted", 0) == result.events_revoked > 0
    # The first event's calls took several 2 s rounds: the second's came after them all.
    assert len(proxy.received) > 2 * EVENT_CALLS
