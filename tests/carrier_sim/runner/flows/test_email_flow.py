"""The email flow against real carriers: mail over SMTP to their gateways, MTs at the phones, replies as mail."""

from __future__ import annotations

import asyncio
import time
from email.message import EmailMessage

import aiosmtplib
import numpy as np
import pytest

from carrier_sim.mail import GatewayConfig
from carrier_sim.mail.translate import mail_to_sms
from carrier_sim.runner.flows import FLOW_TYPES
from carrier_sim.runner.flows.base import NEAR_DUE
from carrier_sim.runner.flows.email import INBOX_DOMAIN, SENDER, EmailFlow, Step, mail_text, mt_text, reply_text
from carrier_sim.smpp.reassembly import ConcatScheme, Part
from carrier_sim.smsc.store import StoredMessage
from carrier_sim.smsc.subscribers import Condition
from tests.carrier_sim.runner.flows.carriers_harness import (
    PHONES,
    carriers_running,
    drive,
    everyone,
    offline,
    services,
    spec,
)


def test_the_flow_is_registered() -> None:
    assert FLOW_TYPES["email"] is EmailFlow


def test_mails_are_one_or_two_segments_of_gsm_text() -> None:
    assert len(mail_text(1, 0)) <= 160 < len(mail_text(1, 1)) <= 2 * 153
    assert mail_text(1, 5) == mail_text(1, 5) != mail_text(2, 5)
    # As SMS, with the sender in front (the default gateway's " / "), still one segment and two.
    assert len(mt_text(1, 0, " / ")) <= 160 < len(mt_text(1, 1, " / ")) <= 2 * 153


def test_the_mt_text_is_what_the_gateway_makes_of_the_mail() -> None:
    message = EmailMessage()
    message["From"] = SENDER
    message.set_content(mail_text(3, 7) + "\n")
    for separator in (" / ", "\n", None):
        config = GatewayConfig(domains=("sms.example",), sender_separator=separator)
        assert mail_to_sms(message, config).text == mt_text(3, 7, separator)
    assert mt_text(3, 7, " / ") == f"sender@{INBOX_DOMAIN} / {mail_text(3, 7)}"


async def test_mail_reaches_the_phone_and_its_reply_reaches_the_inbox() -> None:
    async with carriers_running() as (ctx, flows):
        flow = EmailFlow(ctx, spec("email"))
        flows.append(flow)
        flow.arrive(everyone(ctx), time.time())
        await drive(flow, lambda: flow.in_flight == 0)
        relays = [services(c).mail_relay for c in ctx.carriers]
        flow.finish()
    assert flow.counters.failures == {}
    assert flow.counters.completed == flow.counters.started == PHONES
    assert flow.counters.stages == dict.fromkeys(flow.stage_names, PHONES)
    assert sum(relay.sent for relay in relays if relay is not None) == PHONES
    latencies = flow.latencies()["email"]
    assert len(latencies) == PHONES
    assert (latencies >= 0).all()


async def test_without_replies_the_mt_completes_the_phone() -> None:
    async with carriers_running() as (ctx, flows):
        flow = EmailFlow(ctx, spec("email"), reply=False)
        flows.append(flow)
        flow.arrive(everyone(ctx)[:10], time.time())
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.completed == 10
    assert flow.counters.stages["reply_sent"] == 0


async def test_a_scenario_short_code_is_the_source_of_the_mail_mts() -> None:
    # doors.smtp.short_code reaches the gateway: its SMS come from the short code, where a phone's reply goes.
    sources: list[str] = []
    async with carriers_running("carriers.0.doors.smtp.short_code='6245'") as (ctx, flows):
        assert [services(c).mail_gateway.config.short_code for c in ctx.carriers] == ["6245", None]
        flow = EmailFlow(ctx, spec("email"), reply=False)

        class Spy(EmailFlow):
            def on_mt(self, row: int, message: StoredMessage, now: float) -> None:
                sources.append(f"{int(ctx.carrier_of[row])}:{message.source_addr}")

        flows.extend([flow, Spy(ctx, spec("email"), reply=False)])
        flow.arrive(everyone(ctx)[:10], time.time())
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.completed == 10
    assert set(sources) == {"0:6245", "1:mail"}, sources


async def test_an_unknown_subscriber_is_refused_at_rcpt() -> None:
    async with carriers_running() as (ctx, flows):
        flow = EmailFlow(ctx, spec("email"))
        flows.append(flow)
        for row in (0, 1):
            ctx.carriers[int(ctx.carrier_of[row])].smsc.subscribers.set(str(int(ctx.msisdns[row])), Condition.UNKNOWN)
        flow.arrive(everyone(ctx)[:6], time.time())
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.failures == {"smtp_550": 2}
    assert flow.counters.completed == 4


async def test_a_garbled_mt_and_a_garbled_reply_fail_the_phone() -> None:
    async with carriers_running() as (ctx, flows):
        flow = EmailFlow(ctx, spec("email"))
        flows.append(flow)
        # Phone 0's carrier hands it another phone's text; phone 1's reply comes back altered.
        real = flow.on_mt

        def on_mt(row: int, message: StoredMessage, now: float) -> None:
            if row == 0:
                message = StoredMessage(**{**{f: getattr(message, f) for f in message.__slots__},
                                           "data": message.data.replace(b"mail 0", b"mail 9")})
            real(row, message, now)

        flow.on_mt = on_mt  # type: ignore[method-assign]
        flow.arrive(np.array([0, 2], dtype=np.int64), time.time())
        await drive(flow, lambda: flow.in_flight == 0)
    assert flow.counters.failures == {"mt_text_mismatch": 1}
    assert flow.counters.completed == 1


async def test_the_inbox_is_real_smtp_and_judges_what_it_gets() -> None:
    async with carriers_running() as (ctx, flows):
        flow = EmailFlow(ctx, spec("email"))
        flows.append(flow)
        flow.counters.started = 2
        for row in (0, 1):
            flow.state[row] = Step.REPLY_SENT
            flow.t_step[row] = time.time()
        async with asyncio.TaskGroup() as tasks:
            serving = tasks.create_task(flow.serve())
            while flow.inbox is None:
                await asyncio.sleep(0.01)
            host, port = flow.inbox
            for row, text in ((0, reply_text(ctx.seed, 0)), (1, "not what phone 1 sent")):
                await aiosmtplib.send(f"From: {int(ctx.msisdns[row])}@sms.example\r\n\r\n{text}\r\n",
                                      sender="x@sms.example", recipients=[f"p{row}@{INBOX_DOMAIN}"],
                                      hostname=host, port=port, start_tls=False, local_hostname="test")
            serving.cancel()
    assert flow.counters.completed == 1
    assert flow.counters.failures == {"mail_text_mismatch": 1}


async def test_the_workers_stop_when_cancelled_as_a_relay_reply_lands() -> None:
    """The run's end cancels serve(); a replier whose SMTP reply lands in that same loop iteration must still stop.

    aiosmtplib waits for replies with asyncio.wait_for, which on Python 3.11 then swallows the cancellation; the
    replier used to go back to its empty queue and the run never ended (an intermittent hang of this file).
    """
    async with carriers_running() as (ctx, flows):
        flow = EmailFlow(ctx, spec("email"))
        flows.append(flow)
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = asyncio.Event()

        async def deliver_mo(source: str, destination: str, text: str) -> None:
            waiting.set()
            await asyncio.wait_for(reply, 5)  # as the relay's aiosmtplib client waits for its 250

        gateway = services(ctx.carriers[int(ctx.carrier_of[0])]).mail_gateway
        assert gateway is not None
        gateway.deliver_mo = deliver_mo  # type: ignore[method-assign,assignment]
        serving = asyncio.create_task(flow.serve())
        flow.counters.started = 1
        flow.state[0] = Step.REPLY_SENT
        flow.reply_queue.put_nowait(0)
        await asyncio.wait_for(waiting.wait(), 5)
        await asyncio.sleep(0)
        reply.set_result(None)
        serving.cancel()
        await asyncio.wait({serving}, timeout=5)
        assert serving.cancelled()


#: The states an email phone waits in, and what it fails of when it waits too long.
_WAITS = {Step.MAIL_QUEUED: "smtp_timeout", Step.SENDING: "smtp_timeout", Step.ACCEPTED: "no_mt",
          Step.REPLY_SENT: "no_mail"}


@pytest.mark.parametrize("seed", range(5))
def test_timeouts_from_the_queues_of_waiting_phones_match_a_scan_of_the_columns(seed: int) -> None:
    # quiet_until and expire take the first phone to time out from the head of a queue per waiting state instead
    # of scanning every phone's columns; whatever the phones go through, they must find what the scan finds.
    rng = np.random.default_rng(seed)
    flow = EmailFlow(offline(), spec("email"), timeout=5.0)
    n = len(flow.state)
    now = 0.0
    for _ in range(400):
        now += float(rng.exponential(0.4))
        action = rng.random()
        if action < 0.2:
            late: dict[str, int] = {}
            for state, reason in _WAITS.items():
                count = int(np.count_nonzero((flow.state == state) & (flow.t_step < now - flow.timeout)))
                late[reason] = late.get(reason, 0) + count
            before = dict(flow.counters.failures)
            flow.expire(now)
            failed = {r: c - before.get(r, 0) for r, c in flow.counters.failures.items() if c != before.get(r, 0)}
            assert failed == {r: c for r, c in late.items() if c}
        elif action < 0.3:
            row = int(rng.integers(n))
            flow._set(row, Step.THINKING, now)
            flow.due.set_due([row], now + float(rng.exponential(2.0)))
        else:
            flow._set(int(rng.integers(n)), Step(int(rng.integers(len(Step)))), now)
        flow.tick(now)
        waiting = np.isin(flow.state, list(_WAITS))
        expected = min(flow.due.next_time(),
                       float(flow.t_step[waiting].min()) + flow.timeout if waiting.any() else np.inf)
        if flow.due.next_time() - now >= NEAR_DUE:
            assert flow.quiet_until(now) == expected


def test_a_part_the_reassembler_holds_bounds_the_quiet() -> None:
    # The reassembler drops a part at expire's first sweep past its deadline; a skip beyond it would keep the part
    # and could complete a message the unskipped run had dropped.
    flow = EmailFlow(offline(), spec("email"), timeout=5.0)
    assert flow.quiet_until(0.0) == np.inf
    flow.reassembler.add(Part("1", "2", ConcatScheme.UDH_8, 7, 2, 1, 0, b"half"), 1.0)
    assert flow.quiet_until(2.0) == 6.0
    flow.expire(6.0)
    assert flow.quiet_until(6.0) == np.inf
