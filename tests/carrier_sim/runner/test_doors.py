"""The carrier doors' own parts: the relay that carries the mail gateway's outgoing mail, and the hand-off of a
gateway's MTs to the SMSC."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from carrier_sim.mail import GatewayConfig, MailGateway
from carrier_sim.mail.translate import trim_to_segments
from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.runner.doors import MailRelay, MtHandoff
from carrier_sim.scenario.model import Carrier
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.store import StoredMessage, StoreError
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry
from tests.carrier_sim.runner.flows.carriers_harness import carriers_running, services


class Exchanger:
    """A real SMTP server on this loop that keeps each envelope sender and message."""

    def __init__(self) -> None:
        self.senders: list[str | None] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        self.senders.append(envelope.mail_from)
        return "250 OK"


def notice() -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Mail Delivery System <MAILER-DAEMON@mail.sms.carrier-a.example>"
    message["To"] = "carol@x.example"
    message["Subject"] = "Undelivered SMS"
    message.set_content("not delivered\n")
    return message


async def test_relay_sends_with_the_envelope_sender_it_is_given() -> None:
    exchanger = Exchanger()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(exchanger, hostname="mx.x.example", loop=loop), "127.0.0.1", 0)
    relay = MailRelay("mail.sms.carrier-a.example")
    relay.exchangers["x.example"] = server.sockets[0].getsockname()[:2]
    try:
        # A failure notice: RFC 5321 section 6.1's null reverse-path, never MAILER-DAEMON as the sender.
        await relay.send(notice(), "")
        await relay.send(notice(), "447700900123@sms.carrier-a.example")
        await relay.send(notice())  # no envelope sender given: the message's From
    finally:
        relay.close()
        server.close()
        await server.wait_closed()
    # aiosmtpd keeps the null reverse-path as "<>", as it was on the wire.
    assert exchanger.senders == ["<>", "447700900123@sms.carrier-a.example", "MAILER-DAEMON@mail.sms.carrier-a.example"]
    assert relay.sent == 3


def absent_carrier(capacity: int) -> RunningCarrier:
    """A carrier whose SMSC holds at most ``capacity`` pending MTs and whose subscribers are all absent, so every
    MT stays pending (retried) and takes room in the store."""
    smsc = Smsc(SmscConfig(store_capacity=capacity, absent_retry=60.0), SubscriberRegistry(Condition.ABSENT))
    carrier = cast(Carrier, SimpleNamespace(name="carrier-a"))
    return RunningCarrier(carrier, SmscServer(smsc, clock=lambda: 1000.0), "127.0.0.1", 0, 0)


async def test_mail_mt_stores_every_segment_or_none() -> None:
    running = absent_carrier(capacity=2)
    handoff = MtHandoff(running, clock=lambda: 1000.0)
    config = GatewayConfig(domains=("sms.carrier-a.example",))
    one = trim_to_segments("short", config).segments
    two = trim_to_segments("x" * 250, config).segments
    assert (len(one), len(two)) == (1, 2)
    handoff.mail_mt("447700900123", one)
    with pytest.raises(StoreError) as caught:
        handoff.mail_mt("447700900123", two)  # room for one of its two segments: neither is stored
    assert caught.value.status is CommandStatus.ESME_RMSGQFUL
    assert running.smsc.store.pending_count == 1
    assert handoff.sent == 1


async def test_mail_mt_comes_from_mail_or_the_short_code(monkeypatch: pytest.MonkeyPatch) -> None:
    running = absent_carrier(capacity=10)
    sources: list[str] = []
    originate = running.smsc.originate_mt

    def spy(source: str, *args: Any, **kwargs: Any) -> StoredMessage:
        sources.append(source)
        return originate(source, *args, **kwargs)

    monkeypatch.setattr(running.smsc, "originate_mt", spy)
    handoff = MtHandoff(running, clock=lambda: 1000.0)
    segments = trim_to_segments("hi", GatewayConfig(domains=("sms.carrier-a.example",))).segments
    handoff.mail_mt("447700900123", segments)
    # With a short code, the phone's reply goes to it, and the gateway routes it to the mail's sender.
    handoff.mail_mt("447700900123", segments, source="6245")
    assert sources == ["mail", "6245"]


async def test_a_refused_mail_leaves_nothing_for_the_retry_to_duplicate() -> None:
    running = absent_carrier(capacity=1)
    handoff = MtHandoff(running, clock=lambda: 1000.0)
    gateway = MailGateway(GatewayConfig(domains=("sms.carrier-a.example",)), send_mt=handoff.mail_mt,
                          known_subscriber=lambda _: True)
    async with gateway:
        host, port = gateway.address

        def send_twice() -> list[int]:
            codes = []
            for _ in range(2):  # the client's retry after a 451
                with smtplib.SMTP(host, port, timeout=10) as client:
                    try:
                        client.sendmail("c@x.example", ["447700900123@sms.carrier-a.example"], b"\r\n" + b"x" * 250)
                        codes.append(250)
                    except smtplib.SMTPDataError as refused:
                        codes.append(refused.smtp_code)
            return codes

        assert await asyncio.to_thread(send_twice) == [451, 451]
    assert running.smsc.store.pending_count == 0


async def test_a_scenario_max_recipients_reaches_the_gateway() -> None:
    # doors.smtp.max_recipients reaches the gateway start_doors builds: past it, RCPT gets 452 4.5.3 on the wire.
    async with carriers_running("carriers.0.doors.smtp.max_recipients=2") as (ctx, _):
        gateways = [services(carrier).mail_gateway for carrier in ctx.carriers]
        assert [gateway.config.max_recipients for gateway in gateways if gateway is not None] == [2, 100]
        first = gateways[0]
        assert first is not None
        host, port = first.address
        domain = first.config.sms_domain
        rows = np.flatnonzero(ctx.carrier_of == 0)[:3]
        recipients = [f"{int(ctx.msisdns[row])}@{domain}" for row in rows]

        def rcpt_all() -> list[tuple[int, bytes]]:
            with smtplib.SMTP(host, port, timeout=10) as client:
                client.ehlo()
                client.mail("carol@x.example")
                return [client.rcpt(recipient) for recipient in recipients]

        replies = await asyncio.to_thread(rcpt_all)
    assert [code for code, _ in replies] == [250, 250, 452]
    assert replies[2][1].startswith(b"4.5.3 ")
