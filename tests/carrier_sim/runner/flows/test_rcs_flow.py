"""The RCS flows against real carriers: SMSCs listening, RCS doors over HTTP, OTPs through the SMSC's MT path."""

from __future__ import annotations

import time

import numpy as np
import pytest
from aiohttp import web

from carrier_sim.rcs.app import ENRICHMENT_HEADER
from carrier_sim.rcs.document import CONTENT_TYPE
from carrier_sim.rcs.provisioning import SubscriberState
from carrier_sim.runner.flows import FLOW_TYPES
from carrier_sim.runner.flows.base import NEAR_DUE, DoorAddress
from carrier_sim.runner.flows.rcs import (
    DOCUMENT_INVALID,
    NOT_CELLULAR,
    RcsCellularFlow,
    RcsOtpFlow,
    _Cellular,
    _Otp,
)
from carrier_sim.smpp.reassembly import ConcatScheme, Part
from tests.carrier_sim.runner.flows.carriers_harness import (
    PHONES,
    carriers_running,
    drive,
    everyone,
    offline,
    services,
    spec,
)


def test_the_flows_are_registered() -> None:
    assert FLOW_TYPES["rcs_cellular"] is RcsCellularFlow
    assert FLOW_TYPES["rcs_otp"] is RcsOtpFlow


async def test_cellular_phones_get_a_document_then_are_told_they_are_up_to_date() -> None:
    async with carriers_running() as (ctx, flows):
        flow = RcsCellularFlow(ctx, spec("rcs_cellular"))
        flows.append(flow)
        flow.arrive(everyone(ctx), time.time())
        await drive(flow, lambda: flow.in_flight == 0)
        flow.finish()
    assert flow.counters.failures == {}
    assert flow.counters.completed == flow.counters.started == PHONES
    assert flow.counters.stages == dict.fromkeys(flow.stage_names, PHONES)
    assert (flow.vers > 0).all()
    assert all(len(str(token)) > 0 for token in flow.token)
    assert len(flow.latencies()["rcs_cellular"]) == PHONES
    assert flow.documents_invalid == 0


async def test_barred_and_swapped_sims_are_forbidden() -> None:
    async with carriers_running("population.conditions.barred=0.1") as (ctx, flows):
        barred = int((ctx.population.condition == 2).sum())
        assert barred > 0
        flow = RcsCellularFlow(ctx, spec("rcs_cellular"))
        flows.append(flow)
        # A phone whose SIM was swapped presents an IMSI the carrier's HSS does not know.
        swapped = int(np.nonzero(ctx.population.condition != 2)[0][0])
        ctx.population.sim[swapped] = 1
        flow.arrive(everyone(ctx), time.time())
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.failures == {"forbidden": barred + 1}
    assert flow.counters.completed == PHONES - barred - 1


async def test_a_new_configuration_between_the_requests_is_not_up_to_date() -> None:
    async with carriers_running() as (ctx, flows):
        flow = RcsCellularFlow(ctx, spec("rcs_cellular", think=0.3))
        flows.append(flow)
        flow.arrive(np.array([0, 1], dtype=np.int64), time.time())
        await drive(flow, lambda: flow.counters.stages["configured"] == 2)
        provisioner = services(ctx.carriers[int(ctx.carrier_of[0])]).provisioner
        assert provisioner is not None
        provisioner.request_reconfiguration(f"+{int(ctx.msisdns[0])}")
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.failures == {"not_up_to_date": 1}
    assert flow.counters.completed == 1


async def test_an_invalid_document_is_a_failure_of_its_own() -> None:
    async def broken(request: web.Request) -> web.Response:
        # A full answer without TOKEN and with a parm outside any characteristic.
        body = (b'<wap-provisioningdoc version="1.1"><characteristic type="VERS"><parm name="version" value="3"/>'
                b'<parm name="validity" value="60"/></characteristic><parm name="stray" value="x"/>'
                b'<characteristic type="APPLICATION"><parm name="AppID" value="ap2001"/>'
                b'<parm name="Name" value="IMS"/></characteristic></wap-provisioningdoc>')
        return web.Response(body=body, content_type=CONTENT_TYPE)

    app = web.Application()
    app.router.add_get("/", broken)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        async with carriers_running() as (ctx, _flows):
            flow = RcsCellularFlow(ctx, spec("rcs_cellular"))
            for name in ctx.doors["rcs"]:
                ctx.doors["rcs"][name] = DoorAddress(host, port)
            flow.arrive(np.array([0, 1, 2], dtype=np.int64), time.time())
            await drive(flow, lambda: flow.in_flight == 0)
    finally:
        await runner.cleanup()
    assert flow.counters.failures == {DOCUMENT_INVALID: 3}
    assert flow.documents_invalid == 3
    assert any("TOKEN" in error for error in flow.document_errors)
    assert any("outside a characteristic" in error for error in flow.document_errors)


async def test_otp_phones_read_the_port_addressed_sms_and_get_a_document() -> None:
    async with carriers_running() as (ctx, flows):
        flow = RcsOtpFlow(ctx, spec("rcs_otp"))
        flows.append(flow)
        flow.arrive(everyone(ctx), time.time())
        await drive(flow, lambda: flow.in_flight == 0)
        handed_off = sum(services(c).handoff.sent for c in ctx.carriers)
    assert flow.counters.failures == {}
    assert flow.counters.completed == PHONES
    assert handed_off == PHONES
    assert flow.counters.stages == dict.fromkeys(flow.stage_names, PHONES)
    assert (flow.vers > 0).all()
    assert not flow.cookies
    assert not flow.otps


async def test_a_tampered_otp_is_rejected_and_a_barred_number_gets_none() -> None:
    async with carriers_running("population.conditions.barred=0.1") as (ctx, flows):
        barred = int((ctx.population.condition == 2).sum())
        flow = RcsOtpFlow(ctx, spec("rcs_otp", think=0.5))
        flows.append(flow)
        flow.arrive(everyone(ctx), time.time())
        await drive(flow, lambda: flow.counters.stages["otp_pending"] + flow.counters.failed == PHONES
                    and len(flow.otps) == PHONES - barred)
        tampered = [row for row in flow.otps if flow.state[row] == _Otp.THINKING][:3]
        assert len(tampered) == 3
        for row in tampered:
            flow.otps[row] = str((int(flow.otps[row]) + 1) % 10 ** len(flow.otps[row])).zfill(len(flow.otps[row]))
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.failures == {"forbidden": barred, "otp_rejected": 3}
    assert flow.counters.completed == PHONES - barred - 3


@pytest.mark.parametrize("kind", [RcsCellularFlow, RcsOtpFlow])
async def test_phones_still_waiting_at_the_end_are_unfinished(kind: type[RcsCellularFlow | RcsOtpFlow]) -> None:
    async with carriers_running() as (ctx, _):
        flow = kind(ctx, spec(kind.name))
        flow.arrive(np.array([0, 1], dtype=np.int64), time.time())
        flow.finish()  # the workers never ran
    assert flow.counters.failures == {"unfinished": 2}
    assert flow.in_flight == 0


async def test_a_special_version_in_place_of_a_configuration_names_its_meaning() -> None:
    async with carriers_running() as (ctx, flows):
        flow = RcsCellularFlow(ctx, spec("rcs_cellular"))
        flows.append(flow)
        for row, state in ((0, SubscriberState.DISABLED), (1, SubscriberState.RESET_FORBID)):
            provisioner = services(ctx.carriers[int(ctx.carrier_of[row])]).provisioner
            assert provisioner is not None
            provisioner.set_state(f"+{int(ctx.msisdns[row])}", state)
        flow.arrive(np.array([0, 1, 2], dtype=np.int64), time.time())
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.failures == {"rcs_disable": 1, "rcs_reset_forbid": 1}
    assert flow.documents_invalid == 0


async def _serve(app: web.Application) -> tuple[web.AppRunner, DoorAddress]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, DoorAddress(host, port)


async def test_a_cellular_phone_starts_with_the_bare_enriched_request_and_511_means_not_cellular() -> None:
    seen: list[tuple[str, str | None]] = []

    async def not_cellular(request: web.Request) -> web.Response:
        # A server that does not see the mobile network's enrichment: 511 to the bare request (RCC.14).
        seen.append((request.query_string, request.headers.get(ENRICHMENT_HEADER)))
        return web.Response(status=511 if not request.query_string else 403)

    app = web.Application()
    app.router.add_get("/", not_cellular)
    runner, door = await _serve(app)
    try:
        async with carriers_running() as (ctx, _flows):
            flow = RcsCellularFlow(ctx, spec("rcs_cellular"))
            for name in ctx.doors["rcs"]:
                ctx.doors["rcs"][name] = door
            flow.arrive(np.array([0, 1], dtype=np.int64), time.time())
            await drive(flow, lambda: flow.in_flight == 0)
            numbers = {str(int(ctx.msisdns[row])) for row in (0, 1)}
    finally:
        await runner.cleanup()
    assert flow.counters.failures == {NOT_CELLULAR: 2}
    assert {query for query, _ in seen} == {""}
    assert {enriched for _, enriched in seen} == numbers


async def test_the_otp_phone_sends_imsi_on_wifi_and_answers_with_the_otp_alone() -> None:
    async with carriers_running() as (ctx, _flows):
        flow = RcsOtpFlow(ctx, spec("rcs_otp"))
        first = flow._params(0)
        flow.state[0] = _Otp.ANSWER_SENT
        flow.otps[0] = "123456"
        second = flow._params(0)
    # As rcsjta and Samsung on Wi-Fi: IMSI and an empty token too; the server must not take the IMSI's word.
    assert first["IMSI"] == ctx.population.imsi_of(0)
    assert first["token"] == ""
    assert first["vers"] == "0"
    assert second == {"OTP": "123456"}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", [RcsCellularFlow, RcsOtpFlow])
def test_timeouts_from_the_queues_of_waiting_phones_match_a_scan_of_the_columns(
        kind: type[RcsCellularFlow | RcsOtpFlow], seed: int) -> None:
    # quiet_until and expire take the first phone to time out from the head of a queue per waiting state instead
    # of scanning every phone's columns; whatever the phones go through, they must find what the scan finds.
    rng = np.random.default_rng(seed)
    flow = kind(offline(), spec(kind.name), answer_timeout=5.0)
    states: type[_Cellular | _Otp] = _Cellular if kind is RcsCellularFlow else _Otp
    n = len(flow.state)
    now = 0.0
    for _ in range(400):
        now += float(rng.exponential(0.4))
        action = rng.random()
        if action < 0.2:
            late: dict[str, int] = {}
            for state in flow._waiting:
                count = int(np.count_nonzero((flow.state == state) & (flow.t_step < now - flow.answer_timeout)))
                reason = flow._timeout_reason(state)
                late[reason] = late.get(reason, 0) + count
            before = dict(flow.counters.failures)
            flow.expire(now)
            failed = {r: c - before.get(r, 0) for r, c in flow.counters.failures.items() if c != before.get(r, 0)}
            assert failed == {r: c for r, c in late.items() if c}
        elif action < 0.3:
            flow._think_then(int(rng.integers(n)), states.THINKING, now)
        else:
            flow._set(int(rng.integers(n)), int(rng.integers(len(states))), now)
        flow.tick(now)
        waiting = np.isin(flow.state, flow._waiting)
        expected = min(flow.due.next_time(),
                       float(flow.t_step[waiting].min()) + flow.answer_timeout if waiting.any() else np.inf)
        if flow.due.next_time() - now >= NEAR_DUE:
            assert flow.quiet_until(now) == expected


def test_a_part_the_otp_reassembler_holds_bounds_the_quiet() -> None:
    # As for the email flow: a skip past the moment expire drops a held part could complete a later OTP SMS the
    # unskipped run would not have.
    flow = RcsOtpFlow(offline(), spec("rcs_otp"), answer_timeout=5.0)
    assert flow.quiet_until(0.0) == np.inf
    flow.reassembler.add(Part("1", "2", ConcatScheme.UDH_8, 7, 2, 1, 8, b"half"), 1.0)
    assert flow.quiet_until(2.0) == 6.0
    flow.expire(6.0)
    assert flow.quiet_until(6.0) == np.inf
