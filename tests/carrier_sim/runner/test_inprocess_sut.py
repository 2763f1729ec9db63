"""The in-process identity core against the emulated carriers: REG-REQ by SMS, REG-RESP back by SMS, then
authenticate over HTTP -- on a normal loop, and the same round trip in virtual time, where a 600 s think time
passes at once."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

import aiohttp
import numpy as np
import pytest

from carrier_sim.runner.carriers import RunningCarrier, start_carriers
from carrier_sim.runner.flows.activation import push_token
from carrier_sim.runner.inprocess_sut import EsmeGateway, InProcessSut, start_inprocess_sut
from carrier_sim.runner.sut import SutError
from carrier_sim.runner.virtual_loop import VirtualEventLoop, run_clock, run_virtual
from carrier_sim.scenario.loader import load_scenario
from carrier_sim.scenario.model import Scenario
from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.coding import decode_text
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.store import StoredMessage
from identity_core.backoff import ThrottlePause
from identity_core.cli import EXPIRY_SWEEP_INTERVAL
from identity_core.gateway import CarrierLink, GatewayUnavailable, MoMessage

ROOT = Path(__file__).resolve().parents[3]
# One phone per carrier of the quickstart scenario: carrier-a (GB, kannel-like receipts) and carrier-b (DE,
# receipts whose ids are written in another base than the submit_sm_resp's).
PHONES = np.array([447700900001, 4915550000001], dtype=np.int64)
CARRIER_OF = np.array([0, 1], dtype=np.int8)
CONDITIONS = np.array([0, 0], dtype=np.int8)


def quickstart() -> Scenario:
    return load_scenario(ROOT / "scenarios" / "quickstart.yaml")


@dataclass
class Handsets:
    """What the phones received: MT texts by number."""

    inbox: dict[str, list[str]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def listener(self, index: int) -> Callable[[StoredMessage, float], None]:
        def delivered(message: StoredMessage, now: float) -> None:
            self.inbox.setdefault(message.destination_addr, []).append(decode_text(message.data, message.data_coding))
            self.arrived.set()

        return delivered

    async def next_mt(self, number: str) -> str:
        while not self.inbox.get(number):
            self.arrived.clear()
            await self.arrived.wait()
        return self.inbox[number].pop(0)



async def start(scenario: Scenario, handsets: Handsets) -> list[RunningCarrier]:
    sut = scenario.system_under_test
    # The SMSCs keep the run's clock, virtual or wall, as run_scenario gives them.
    return await start_carriers(scenario, (sut.system_id, sut.password), PHONES, CARRIER_OF,
                                CONDITIONS, handsets.listener, run_clock())


async def activate(think: float, check_receipts: bool = True) -> dict[str, object]:
    """Both phones: REG-REQ, REG-RESP, ``think`` seconds, authenticate; what was observed, with loop times."""
    loop = asyncio.get_running_loop()
    clock = run_clock()
    scenario = quickstart()
    handsets = Handsets()
    running = await start(scenario, handsets)
    sut: InProcessSut | None = None
    observed: dict[str, object] = {}
    try:
        sut = await start_inprocess_sut(scenario, running)
        observed["bound_at"] = loop.time()
        async with aiohttp.ClientSession(sut.api, timeout=aiohttp.ClientTimeout(total=30)) as http:
            for i, number in enumerate(PHONES.tolist()):
                carrier = running[int(CARRIER_OF[i])]
                token = push_token(scenario.seed, i)
                assert carrier.smsc.inject_mo(str(number), carrier.carrier.gateway,
                                              f"REG-REQ?v=3;t={token};r={i + 1};", clock())
                carrier.server.service()
                sent_at = loop.time()
                async with asyncio.timeout(10):
                    reply = await handsets.next_mt(str(number))
                observed[f"reg_resp_after_{i}"] = loop.time() - sent_at
                assert reply.startswith("REG-RESP?")
                fields = dict(part.split("=", 1) for part in reply[len("REG-RESP?"):].split(";") if "=" in part)
                assert fields["r"] == str(i + 1)
                before_think = loop.time()
                await asyncio.sleep(think)
                observed[f"thought_{i}"] = loop.time() - before_think
                body = {"phone_number": f"+{number}", "push_token": token, "signature": fields["s"]}
                async with http.post("/v1/phone-numbers/authenticate", json=body) as response:
                    observed[f"auth_status_{i}"] = response.status
                    await response.read()
                async with http.get(f"/v1/phone-numbers/+{number}",
                                    headers={"Authorization": f"Bearer {sut.token}"}) as response:
                    observed[f"state_{i}"] = (await response.json()).get("state")
            async with asyncio.timeout(10):  # the receipts of both REG-RESP (delays up to 0.5 s)
                while check_receipts and sum(g.receipts_matched for g in sut.gateways.values()) < len(PHONES):
                    await asyncio.sleep(0.05)
        observed["metrics"] = {name: g.metrics() for name, g in sut.gateways.items()}
        assert sut.service is not None
        observed["activations"] = sut.service.metrics.activations._value.get()
    finally:
        if sut is not None:
            await sut.stop()
        for carrier in running:
            await carrier.server.shutdown()
    # The SMSCs' oracle judged the in-process ESME through a whole session, unbind included.
    observed["verdicts"] = {(str(check["check"]), str(check["verdict"])) for carrier in running
                            for session in carrier.smsc.verdicts()
                            for check in cast(list[dict[str, object]], session["checks"])}
    return observed


def check(observed: dict[str, object], think: float) -> None:
    for i in range(len(PHONES)):
        assert observed[f"auth_status_{i}"] == 200
        assert observed[f"state_{i}"] == "active"
        assert observed[f"thought_{i}"] == pytest.approx(think, abs=0.05)
    assert observed["activations"] == len(PHONES)
    verdicts = observed["verdicts"]
    assert isinstance(verdicts, set)
    assert ("unbind", "pass") in verdicts  # a clean unbind at stop
    assert not {check for check, verdict in verdicts if verdict == "fail"}
    metrics = observed["metrics"]
    assert isinstance(metrics, dict)
    for per_carrier in metrics.values():
        assert per_carrier["binds"] == 1
        assert per_carrier["mo_received"] == 1
        assert per_carrier["mt_sent"] == 1
        assert per_carrier["receipts_matched"] == 1
        assert per_carrier["receipts_unmatched"] == 0


async def test_the_round_trip_on_a_normal_loop() -> None:
    check(await activate(think=0.1), think=0.1)


def test_the_round_trip_in_virtual_time_where_minutes_of_thinking_take_no_time() -> None:
    wall = time.monotonic()
    observed = run_virtual(activate(think=590.0), start=1_800_000_000.0)
    check(observed, think=590.0)
    assert observed["thought_0"] == 590.0  # exactly: the clock jumped
    assert observed["bound_at"] == 1_800_000_000.0  # binding took no virtual time: loopback I/O only
    assert observed["reg_resp_after_0"] == 0.0
    # Not a speed test: twenty minutes of think time in real time would take twenty minutes.
    assert time.monotonic() - wall < 300


def test_in_virtual_time_a_proof_expires_after_its_600_s() -> None:
    """The service keeps the virtual clock: a phone that thinks for the proof's whole validity is refused."""
    observed = run_virtual(activate(think=600.0, check_receipts=False), start=1_800_000_000.0)
    assert [observed[f"auth_status_{i}"] for i in range(len(PHONES))] == [401, 401]
    assert observed["activations"] == 0


def test_two_virtual_runs_see_the_same_times() -> None:
    first = run_virtual(activate(think=30.0), start=1_800_000_000.0)
    second = run_virtual(activate(think=30.0), start=1_800_000_000.0)
    timing = [k for k in first if k.startswith(("reg_resp_after", "thought", "bound_at"))]
    assert [first[k] for k in timing] == [second[k] for k in timing]


def test_a_refused_bind_is_a_sut_error_after_the_timeout_in_virtual_time() -> None:
    async def main() -> tuple[str, float, int]:
        loop = asyncio.get_running_loop()
        scenario = quickstart()
        running = await start(scenario, Handsets())
        wrong = dataclasses.replace(scenario.system_under_test, password="wrongpw")
        started = loop.time()
        try:
            with pytest.raises(SutError, match="did not bind") as caught:
                await start_inprocess_sut(dataclasses.replace(scenario, system_under_test=wrong), running,
                                          timeout=45.0)
            failures = sum(c.smsc.stats.binds for c in running)
        finally:
            for carrier in running:
                await carrier.server.shutdown()
        return str(caught.value), loop.time() - started, failures

    message, waited, binds = run_virtual(main(), start=1_800_000_000.0)
    assert "carrier-a (EsmeError: bind refused: ESME_RINVPASWD)" in message
    assert waited == pytest.approx(45.0, abs=6.0)  # the timeout, then the gateways' unbind grace
    assert binds == 0


async def test_limits_the_service_cannot_take_are_a_sut_error() -> None:
    scenario = quickstart()
    sut = dataclasses.replace(scenario.system_under_test, limits={"reg_per_planet": [1.0, 1.0]})
    with pytest.raises(SutError, match="reg_per_planet"):
        await start_inprocess_sut(dataclasses.replace(scenario, system_under_test=sut), [])


def test_the_gateway_rebinds_after_an_smsc_outage_in_virtual_time() -> None:
    """An smsc_outage (connections reset, no listener for 20 s): the gateway backs off, rebinds, and a REG-REQ
    held by the SMSC meanwhile is answered."""

    async def main() -> tuple[float, dict[str, int], str]:
        loop = asyncio.get_running_loop()
        scenario = quickstart()
        handsets = Handsets()
        running = await start(scenario, handsets)
        sut = await start_inprocess_sut(scenario, running)
        carrier = running[0]
        try:
            await carrier.server.stop_listening(abort_connections=True)
            await asyncio.sleep(1)  # the reset connections are gone from the SMSC's routing
            number = str(int(PHONES[0]))
            # Sent during the outage: the SMSC holds it (hold_mo) until a bind routes it.
            assert carrier.smsc.inject_mo(number, carrier.carrier.gateway,
                                          f"REG-REQ?v=3;t={push_token(scenario.seed, 0)};r=1;", loop.time())
            await asyncio.sleep(19)
            down_until = loop.time()
            await carrier.server.listen(carrier.host, carrier.port)
            async with asyncio.timeout(120):
                reply = await handsets.next_mt(number)
            return loop.time() - down_until, sut.gateways[carrier.carrier.name].metrics(), reply
        finally:
            await sut.stop()
            for c in running:
                await c.server.shutdown()

    waited, metrics, reply = run_virtual(main(), start=1_800_000_000.0)
    assert reply.startswith("REG-RESP?")
    assert metrics["reconnects"] == 1
    assert metrics["binds"] == 2
    assert metrics["connect_failures"] >= 1  # it knocked while nobody listened, backing off
    assert waited <= 31.0  # no pause passes reconnect_max (30 s), jitter included; then a bind and one MO


def test_the_in_process_core_sweeps_expiries_as_identity_core_serve_does() -> None:
    """A pending binding whose proof ran out is written down as expired by the periodic sweep, on the run's
    (virtual) clock, not only read as expired."""
    async def main() -> tuple[str, str]:
        loop = asyncio.get_running_loop()
        scenario = quickstart()
        running = await start(scenario, Handsets())
        sut = await start_inprocess_sut(scenario, running)
        try:
            assert sut.store is not None
            now = loop.time()
            await sut.store.record_pending(e164="+447700900001", push_token="ab" * 32, request_id=1,
                                           carrier="carrier-a", proof_id=b"p" * 16, expires_at=now + 5, now=now)
            before = await sut.store.get("+447700900001")
            await asyncio.sleep(EXPIRY_SWEEP_INTERVAL + 6)
            after = await sut.store.get("+447700900001")
        finally:
            await sut.stop()
            for carrier in running:
                await carrier.server.shutdown()
        assert before is not None
        assert after is not None
        return before.state.value, after.state.value

    assert run_virtual(main(), start=1_800_000_000.0) == ("pending", "expired")


def _esme_gateway(on_mo: Callable[[MoMessage], Awaitable[None]], **overrides: Any) -> EsmeGateway:
    # Port 9 (discard): nothing answers, so a started gateway only backs off and retries.
    link = CarrierLink(name="carrier-a", smsc_host="127.0.0.1", smsc_port=9, system_id="identity",
                       password="secret", gateway="447786205094", country="GB", **overrides)
    return EsmeGateway(link, on_mo, clock=time.monotonic)


async def test_a_worker_ends_when_cancelled_even_if_its_handler_swallowed_the_cancellation() -> None:
    # Python 3.11's wait_for returns the result and drops the cancellation when both land in one loop iteration
    # (gh-86296); a worker that went back to queue.get() would then hold stop() forever.
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    handled: list[MoMessage] = []

    async def on_mo(mo: MoMessage) -> None:
        handled.append(mo)
        await asyncio.wait_for(reply, 5)

    gateway = _esme_gateway(on_mo)
    gateway._queue.put_nowait(MoMessage(carrier="carrier-a", source="447700900001", source_ton=1, source_npi=1,
                                        sender="+447700900001", destination="447786205094", text="REG-REQ?x",
                                        received_at=time.time()))
    task = asyncio.create_task(gateway._work())
    async with asyncio.timeout(5):
        while not handled:
            await asyncio.sleep(0)
    await asyncio.sleep(0)  # the worker now waits inside wait_for
    reply.set_result("answered")
    task.cancel()  # in the same loop iteration as the reply
    await asyncio.wait({task}, timeout=2)
    if not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=2)
        pytest.fail("the worker went back to its queue after it was cancelled")
    assert task.cancelled()


async def test_a_gateway_crash_is_logged_when_it_happens_and_stop_still_raises_it(
        caplog: pytest.LogCaptureFixture) -> None:
    gateway = _esme_gateway(lambda _mo: asyncio.sleep(0), reassembly_timeout=0.04)

    def boom(_now: float) -> NoReturn:
        raise RuntimeError("housekeeping broke")

    gateway._reassembler.expire = boom  # type: ignore[method-assign,assignment]
    with caplog.at_level(logging.ERROR, logger="carrier_sim.runner.inprocess_sut"):
        await gateway.start()
        # Housekeeping sweeps only while a segment is held: half of a two-part MO.
        gateway._inbound(Pdu.make(CommandId.deliver_sm, 1, source_addr="447700900001", esm_class=0x40,
                                  destination_addr="447786205094", short_message=bytes([5, 0, 3, 7, 2, 1]) + b"a"))
        async with asyncio.timeout(5):
            while gateway.failure is None:
                await asyncio.sleep(0.01)
        assert any("carrier-a: gateway stopped on an error" in r.getMessage() for r in caplog.records)
    with pytest.raises(ExceptionGroup) as raised:
        await gateway.stop(grace=1.0)
    assert raised.group_contains(RuntimeError, match="housekeeping broke")


async def test_stop_stops_every_gateway_and_the_store_even_when_one_gateway_raises() -> None:
    stopped: list[str] = []

    class Part:
        def __init__(self, name: str, error: Exception | None = None) -> None:
            self.name, self.error = name, error

        async def stop(self, grace: float = 5.0) -> None:
            stopped.append(self.name)
            if self.error is not None:
                raise self.error

        async def close(self) -> None:
            stopped.append(self.name)

    sut = InProcessSut("", "token", gateways={"carrier-a": Part("a", RuntimeError("crashed")),  # type: ignore[dict-item]
                                              "carrier-b": Part("b")},  # type: ignore[dict-item]
                       store=Part("store"))  # type: ignore[arg-type]
    with pytest.raises(RuntimeError, match="crashed"):
        await sut.stop()
    assert stopped == ["a", "b", "store"]


async def test_a_full_queue_keeps_reading_stopped_when_the_esmes_own_backpressure_lifts() -> None:
    # The gateway stops reading when its workers are behind, the ESME when its peer does not read; neither may
    # read on behind the other's back. The gateway used to pause the transport itself: with the ESME's pause
    # already in place that did nothing, and the ESME's buffer draining then read on into a full queue.
    from carrier_sim.net.esme import Esme
    from carrier_sim.net.smsc_server import SmscServer
    from carrier_sim.smpp.constants import CommandId
    from carrier_sim.smpp.pdu import Pdu
    from carrier_sim.smsc.accounts import Account
    from carrier_sim.smsc.centre import Smsc, SmscConfig

    server = SmscServer(Smsc(SmscConfig(accounts=(Account("identity", "secret"),))))
    host, port = await server.listen("127.0.0.1", 0)

    async def on_mo(mo: MoMessage) -> None:
        del mo

    gateway = _esme_gateway(on_mo, queue_size=2)
    esme = await Esme.connect(host, port)
    try:
        await esme.bind("identity", "secret")
        transport = esme.transport
        assert transport is not None
        gateway._esme = esme
        esme.pause_writing()  # the SMSC stopped reading our answers: the ESME stops reading
        assert not transport.is_reading()
        for n in range(2):  # the workers are behind: the queue fills
            gateway._on_pdu(Pdu.make(CommandId.deliver_sm, n + 1, source_addr=f"44770090000{n}",
                                     destination_addr="447786205094", short_message=b"REG-REQ?x"))
        assert gateway.queue_full == 1
        esme.resume_writing()  # the ESME's buffer drained, but the queue is still full
        assert not transport.is_reading()
        for _ in range(2):  # the workers catch up
            gateway._queue.get_nowait()
        gateway._queue.task_done()
        gateway._queue.task_done()
        esme.resume_reading()  # what _work does once the queue is down to half
        assert transport.is_reading()
    finally:
        await esme.unbind()
        await server.shutdown(grace=0.5)


def test_housekeeping_sets_no_timer_while_no_segment_is_held_and_still_expires_one() -> None:
    # It woke every second of the run's clock to expire nothing: in a virtual run, a loop wake-up (and a runner
    # tick) per plan second for the length of the plan.
    async def main() -> tuple[int, int, int]:
        loop = asyncio.get_running_loop()
        gateway = EsmeGateway(CarrierLink(name="carrier-a", smsc_host="127.0.0.1", smsc_port=9, system_id="identity",
                                          password="secret", gateway="447786205094", country="GB",
                                          reassembly_timeout=8.0),
                              lambda _mo: asyncio.sleep(0), clock=loop.time)
        housekeeping = asyncio.create_task(gateway._housekeep())
        before = cast(VirtualEventLoop, loop).jumps
        await asyncio.sleep(3600)
        idle_jumps = cast(VirtualEventLoop, loop).jumps - before  # the test's own sleep is one
        first_of_two = bytes([5, 0, 3, 7, 2, 1]) + b"the first half"  # UDH: 8-bit reference 7, part 1 of 2
        part = Pdu.make(CommandId.deliver_sm, 1, source_addr="447700900001", destination_addr="447786205094",
                        esm_class=0x40, short_message=first_of_two)
        held = gateway._inbound(part)
        await asyncio.sleep(8.0 + 2.0 + 0.1)  # the reassembly timeout, and a sweep period or two
        housekeeping.cancel()
        return idle_jumps, int(held is None), gateway.mo_incomplete

    assert run_virtual(main(), start=1_800_000_000.0) == (1, 1, 1)


def _raw_smsc(on_submit: Callable[[int], Pdu | None]) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter],
                                                                     Awaitable[None]]:
    """An SMSC written PDU by PDU, for answers our SMSC never gives: it binds anyone, answers enquire_link, and
    answers each submit_sm with what ``on_submit`` makes of its sequence number (None: no answer at all)."""
    async def smsc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                header = await reader.readexactly(16)
                length, command_id, _, sequence = struct.unpack(">IIII", header)
                await reader.readexactly(length - 16)
                if command_id == CommandId.bind_transceiver:
                    writer.write(encode(Pdu.make(CommandId.bind_transceiver_resp, sequence, system_id="smsc")))
                elif command_id == CommandId.enquire_link:
                    writer.write(encode(Pdu.make(CommandId.enquire_link_resp, sequence)))
                elif command_id == CommandId.submit_sm and (answer := on_submit(sequence)) is not None:
                    writer.write(encode(answer))

    return smsc


def test_a_submit_left_unanswered_on_a_live_session_is_not_sent_again_on_it() -> None:
    # An SMSC that binds, answers enquire_link and never answers submit_sm (a dropped-response fault). The gateway
    # resent the MT on the same session every 50-75 ms until send_timeout: one copy per resend reached the phone.
    async def main() -> tuple[int, str]:
        submits = 0

        def unanswered(sequence: int) -> None:
            nonlocal submits
            submits += 1

        server = await asyncio.start_server(_raw_smsc(unanswered), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = CarrierLink(name="carrier-a", smsc_host="127.0.0.1", smsc_port=port, system_id="identity",
                           password="secret", gateway="447786205094", country="GB", response_timeout=2.0,
                           send_timeout=60.0)
        gateway = EsmeGateway(link, lambda _mo: asyncio.sleep(0), clock=asyncio.get_running_loop().time)
        await gateway.start()
        try:
            with pytest.raises(GatewayUnavailable) as raised:
                await gateway.send_mt("+447700900001", "REG-RESP?r=1;s=x;")
        finally:
            await gateway.stop(grace=1.0)
            server.close()
        return submits, str(raised.value)

    submits, error = run_virtual(main(), start=1_800_000_000.0)
    assert submits == 1
    assert "no submit accepted within 60" in error


def test_throttle_pauses_follow_identity_cores_schedule_and_never_exceed_throttle_max() -> None:
    # The in-process gateway kept its own copy of identity-core's back-off, without the cap identity-core's got:
    # with throttle_max 1 s its jittered pauses reached 1.5 s. It now takes them from identity_core.backoff.
    throttles = 12

    async def main() -> list[float]:
        loop = asyncio.get_running_loop()
        arrivals: list[float] = []

        def throttled_then_accepted(sequence: int) -> Pdu:
            arrivals.append(loop.time())
            status = CommandStatus.ESME_RTHROTTLED if len(arrivals) <= throttles else CommandStatus.ESME_ROK
            return Pdu.make(CommandId.submit_sm_resp, sequence, command_status=status, message_id=f"m{len(arrivals)}")

        server = await asyncio.start_server(_raw_smsc(throttled_then_accepted), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        link = CarrierLink(name="carrier-a", smsc_host="127.0.0.1", smsc_port=port, system_id="identity",
                           password="secret", gateway="447786205094", country="GB", throttle_initial=0.05,
                           throttle_max=1.0)
        gateway = EsmeGateway(link, lambda _mo: asyncio.sleep(0), clock=loop.time, rng=random.Random(7))
        await gateway.start()
        try:
            assert await gateway.send_mt("+447700900001", "REG-RESP?r=1;s=x;") == f"m{throttles + 1}"
        finally:
            await gateway.stop(grace=1.0)
            server.close()
        return [later - earlier for earlier, later in itertools.pairwise(arrivals)]

    gaps = run_virtual(main(), start=1_800_000_000.0)
    rng, pause, now = random.Random(7), ThrottlePause(0.05, 1.0), 0.0
    expected = []
    for _ in range(throttles):
        pause.throttled(now, now, rng)
        expected.append(pause.until - now)
        now = pause.until
    assert gaps == pytest.approx(expected, abs=1e-6)
    assert max(gaps) <= 1.0 + 1e-6
    assert gaps[0] >= 0.05
