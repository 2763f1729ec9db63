"""The run: start carriers and the system under test, drive the phones through the load, judge, report.

Theory of operation. One asyncio loop owns everything in this process: the carriers' SMSC servers (real SMPP
sockets to the system under test), the phones (columns advanced by a 20 ms tick that touches only due phones),
a fixed pool of HTTP workers for the phones' authenticate calls, the scenario's events, and the dashboard. The
tick also measures the harness itself: if arrivals fall behind the plan, ``load.achieved_ratio`` says so and the
``harness.load`` verdict fails instead of the run silently measuring its own slowness.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import numpy.typing as npt

from carrier_sim.runner.carriers import RunningCarrier, start_carriers
from carrier_sim.runner.phones import ActivationFlow, Step, push_token
from carrier_sim.runner.sut import SutError, SystemUnderTest, start_sut
from carrier_sim.scenario.model import Scenario
from carrier_sim.smsc.store import StoredMessage

__all__ = ["Controls", "RunResult", "flow_latencies", "run_scenario"]

TICK = 0.02
HTTP_WORKERS = 64


@dataclass
class Controls:
    """What a person (the dashboard's keys) can change while the run goes on."""

    stop_requested: bool = False
    paused: bool = False
    rate_multiplier: float = 1.0


@dataclass
class RunResult:
    """Everything the reports need."""

    scenario: Scenario
    flow: ActivationFlow
    carriers: list[RunningCarrier]
    planned_arrivals: int
    achieved_arrivals: int
    started_at: float
    duration: float
    harness_errors: list[str] = field(default_factory=list)
    events_revoked: int = 0
    planned_by_now: int = 0
    tick_lag_p99: float = 0.0
    events_targets: int = 0
    conformance: list[dict[str, Any]] = field(default_factory=list)
    pcap_streams: list[tuple[str, str, list[tuple[str, bytes, float]]]] = field(default_factory=list)


class _Tap:
    """Keeps every SMPP byte of a carrier's connections, for --pcap."""

    def __init__(self) -> None:
        self.streams: dict[int, tuple[str, str, list[tuple[str, bytes, float]]]] = {}

    def __call__(self, cid: int, kind: str, data: bytes, now: float) -> None:
        if kind == "open":
            client, server = data.decode().split("|")
            self.streams[cid] = (client, server, [])
        elif cid in self.streams:
            self.streams[cid][2].append((kind, data, now))


async def run_scenario(
    scenario: Scenario,
    population: Any,
    arrivals: tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]],
    think: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.float64]],
    *,
    controls: Controls | None = None,
    on_tick: Callable[[RunResult, float], None] | None = None,
    capture: bool = False,
    workdir: Path | None = None,
    reg_timeout: float = 10.0,
    concurrency: Callable[[float], int] | None = None,
) -> RunResult:
    """Run a scenario to its end (or until ``controls.stop_requested``); never raises for a SUT failure —
    harness problems land in ``RunResult.harness_errors``.

    Open model: ``arrivals`` are (phone, time) sorted by time. Closed model: ``concurrency(t)`` is how many phones
    should be mid-flow at plan time t, and ``arrivals`` gives the order in which phones join (times unused)."""
    controls = controls or Controls()
    msisdns: npt.NDArray[np.int64] = population.msisdn
    carrier_of: npt.NDArray[np.int8] = population.carrier
    conditions: npt.NDArray[np.int8] = population.condition
    running: list[RunningCarrier] = []
    flow_holder: list[ActivationFlow] = []

    def listener(index: int) -> Callable[[StoredMessage, float], None]:
        def delivered(message: StoredMessage, now: float) -> None:
            if flow_holder:
                flow_holder[0].on_mt(message, now)

        return delivered

    def send_mo(carrier: int, source: str, text: str, now: float) -> bool:
        target = running[carrier]
        ok = target.smsc.inject_mo(source, target.carrier.gateway, text, now)
        return ok

    flow = ActivationFlow(scenario.seed, msisdns, carrier_of, think, send_mo, reg_timeout=reg_timeout)
    flow_holder.append(flow)
    arrival_idx, arrival_t = arrivals
    result = RunResult(scenario, flow, running, len(arrival_idx), 0, time.time(), 0.0)
    sut_account = (scenario.system_under_test.system_id, scenario.system_under_test.password)
    taps: list[_Tap] = []
    sut: SystemUnderTest | None = None
    with contextlib.ExitStack() as stack:
        tmp = workdir or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="carrier-sim-")))
        try:
            running.extend(await start_carriers(scenario, sut_account, msisdns, carrier_of, conditions, listener))
            if capture:
                for c in running:
                    tap = _Tap()
                    c.server.tap = tap
                    taps.append(tap)
            sut = await start_sut(scenario, running, tmp)
        except (SutError, OSError) as err:
            result.harness_errors.append(str(err))
            await _shutdown(running, sut)
            return result
        try:
            await _drive(scenario, flow, running, sut, arrival_idx, arrival_t, controls, result, on_tick, concurrency)
        finally:
            await _shutdown(running, sut)
    result.duration = time.time() - result.started_at
    for c in running:
        for session in c.smsc.verdicts():
            result.conformance.append({"carrier": c.carrier.name, **session})
    for tap in taps:
        result.pcap_streams.extend(tap.streams.values())
    return result


def flow_latencies(flow: ActivationFlow) -> dict[str, npt.NDArray[np.float64]]:
    """Per-phone latencies of the phones that got that far: whole activation, REG-REQ to REG-RESP, authenticate."""
    ok = flow.state == Step.DONE
    responded = ~np.isnan(flow.t_resp)
    return {
        "activation": (flow.t_done[ok] - flow.t_arrived[ok]).astype(np.float64),
        "reg_resp": (flow.t_resp[responded] - flow.t_arrived[responded]).astype(np.float64),
        "authenticate": (flow.t_done[ok] - flow.t_auth[ok]).astype(np.float64),
    }


async def _shutdown(running: list[RunningCarrier], sut: SystemUnderTest | None) -> None:
    if sut is not None:
        await sut.stop()
    for c in running:
        await c.server.shutdown()


async def _drive(
    scenario: Scenario,
    flow: ActivationFlow,
    running: list[RunningCarrier],
    sut: SystemUnderTest,
    arrival_idx: npt.NDArray[np.int64],
    arrival_t: npt.NDArray[np.float64],
    controls: Controls,
    result: RunResult,
    on_tick: Callable[[RunResult, float], None] | None,
    concurrency: Callable[[float], int] | None = None,
) -> None:
    end_of_load = sum(p.duration for p in scenario.load.phases)
    events = sorted(scenario.events, key=lambda e: e.at)
    started = time.time()
    lags: list[float] = []
    virtual = 0.0  # seconds of the plan consumed, slowed by pauses and scaled by the rate multiplier
    cursor = 0
    last = started
    last_expire = started
    connector = aiohttp.TCPConnector(limit=HTTP_WORKERS)
    async with aiohttp.ClientSession(sut.api, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def worker() -> None:
            while True:
                i = await flow.auth_queue.get()
                body = {"phone_number": f"+{int(flow.msisdns[i])}", "push_token": push_token(flow.seed, i),
                        "signature": flow.proofs.get(i, "")}
                try:
                    async with http.post("/v1/phone-numbers/authenticate", json=body) as response:
                        ok = response.status == 200
                        reason = "" if ok else f"http_{response.status}"
                        await response.read()
                except (aiohttp.ClientError, TimeoutError) as err:
                    ok, reason = False, f"http_error_{type(err).__name__}"
                flow.authenticated(i, ok, reason, time.time())

        async with asyncio.TaskGroup() as tasks:
            workers = [tasks.create_task(worker()) for _ in range(HTTP_WORKERS)]
            try:
                while not controls.stop_requested:
                    await asyncio.sleep(TICK)
                    now = time.time()
                    step = now - last
                    last = now
                    if not controls.paused:
                        virtual += step * controls.rate_multiplier
                    if concurrency is None:
                        upto = int(np.searchsorted(arrival_t, virtual, side="right"))
                    else:
                        # Closed model: top the phones mid-flow up to the phase's concurrency.
                        upto = min(len(arrival_idx), cursor + max(0, concurrency(virtual) - flow.in_flight))
                    if upto > cursor:
                        flow.arrive(arrival_idx[cursor:upto], now)
                        for c in running:
                            c.server.service()
                        cursor = upto
                    result.achieved_arrivals = cursor
                    result.planned_by_now = upto
                    lags.append(step)
                    flow.tick(now)
                    if now - last_expire >= 1.0:
                        flow.expire(now)
                        last_expire = now
                    while events and events[0].at <= now - started:
                        await _apply_event(events.pop(0), flow, running, sut, http, result, tasks)
                    if on_tick is not None:
                        on_tick(result, now - started)
                    all_in = concurrency is not None or cursor >= len(arrival_idx)
                    if virtual >= end_of_load and all_in and flow.in_flight == 0:
                        break
                    if virtual >= end_of_load + 30.0:
                        break  # drain grace over: whatever is still in flight counts as failed
            finally:
                for w in workers:
                    w.cancel()
    lost = np.nonzero((flow.state >= Step.REG_SENT) & (flow.state <= Step.AUTH_SENT))[0]
    if len(lost):
        flow.state[lost] = Step.FAILED
        flow.counters.fail("unfinished", len(lost))
    if concurrency is not None:
        result.planned_arrivals = cursor  # a closed loop plans exactly what it keeps in flight
        planned_by_now = cursor
    else:
        planned_by_now = int(np.searchsorted(arrival_t, min(virtual, end_of_load), side="right"))
    if planned_by_now and cursor < planned_by_now * 0.95:
        result.harness_errors.append(f"the runner generated {cursor} of {planned_by_now} planned arrivals")
    if lags:
        # Arrivals due in a late tick go out together: counts stay right but the load is no longer the planned
        # shape. A loop that fell this far behind was measuring itself, not the system under test.
        result.tick_lag_p99 = float(np.quantile(np.asarray(lags), 0.99))
        if result.tick_lag_p99 > 1.0:
            result.harness_errors.append(
                f"the runner's loop fell behind: 1 % of its {TICK * 1000:.0f} ms ticks took over "
                f"{result.tick_lag_p99:.2f} s, so arrivals went out in bursts")


async def _apply_event(event: Any, flow: ActivationFlow, running: list[RunningCarrier], sut: SystemUnderTest,
                       http: aiohttp.ClientSession, result: RunResult, tasks: asyncio.TaskGroup) -> None:
    if event.kind in ("sim_swap", "port_out"):
        done = np.nonzero(flow.state == Step.DONE)[0]
        count = round(len(done) * event.share)
        chosen = done[:count]
        result.events_targets += len(chosen)
        headers = {"Authorization": f"Bearer {sut.token}"}
        for i in chosen.tolist():
            body = {"type": event.kind, "phone_number": f"+{int(flow.msisdns[i])}"}
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with http.post("/v1/events", json=body, headers=headers) as response:
                    if response.status == 202 and (await response.json()).get("revoked"):
                        result.events_revoked += 1
    elif event.kind == "smsc_outage":
        for c in running:
            if event.carrier in (None, c.carrier.name):
                tasks.create_task(_outage(c, event.duration))


async def _outage(carrier: RunningCarrier, duration: float) -> None:
    """Drop every connection and stop listening for ``duration`` seconds, then listen again on the same port."""
    await carrier.server.stop_listening(abort_connections=True)
    await asyncio.sleep(duration)
    await carrier.server.listen(carrier.host, carrier.port)
