"""The email-to-SMS gateway over real SMTP: smtplib (in a thread) and raw sockets against aiosmtpd on this loop.

Each test runs the gateway on the test's own event loop (no aiosmtpd ``Controller`` thread) and checks what the
client is told and what reached the fake SMSC (``send_mt``) or the outside world (``send_mail``).
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from typing import TypeVar, cast

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from carrier_sim.mail.gateway import MailGateway
from carrier_sim.mail.translate import GatewayConfig, MoNotForMail, Overflow, parse_message
from carrier_sim.smpp.coding import DataCoding, decode_text
from carrier_sim.smpp.segmentation import Segment
from carrier_sim.smpp.udh import split_user_data

DOMAIN = "sms.carrier-a.example"
ALICE = "447700900123"
BOB = "447700900456"
STRANGER = "447700900999"

T = TypeVar("T")


def error_bytes(value: object) -> bytes:
    """smtplib's exceptions carry the reply text as bytes (typeshed says str)."""
    assert isinstance(value, bytes)
    return value


@dataclass
class Smsc:
    """A fake SMSC: records MTs, refuses the MSISDNs in ``down``, takes ``delay`` seconds over each submit."""

    sent: list[tuple[str, list[Segment]]] = field(default_factory=list)
    down: set[str] = field(default_factory=set)
    delay: float = 0.0

    async def send_mt(self, msisdn: str, segments: list[Segment]) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        if msisdn in self.down:
            raise ConnectionError("SMSC refused the submit")
        self.sent.append((msisdn, segments))


@dataclass
class Outbox:
    """The outside world's mail: what was sent, and with which envelope sender ("" is MAIL FROM:<>)."""

    messages: list[EmailMessage] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)

    async def send_mail(self, message: EmailMessage, mail_from: str) -> None:
        self.messages.append(message)
        self.senders.append(mail_from)


def config(**overrides: object) -> GatewayConfig:
    settings: dict[str, object] = {
        "domains": (DOMAIN,),
        "retired_domains": ("pager.carrier-a.example",),
        "short_code": "6245",
        "hostname": "mail.carrier-a.example",
    }
    settings.update(overrides)
    return GatewayConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
def smsc() -> Smsc:
    return Smsc()


@pytest.fixture
def outbox() -> Outbox:
    return Outbox()


@pytest.fixture
async def gateway(smsc: Smsc, outbox: Outbox) -> AsyncIterator[MailGateway]:
    gateway = MailGateway(
        config(), send_mt=smsc.send_mt, known_subscriber={ALICE, BOB}.__contains__, send_mail=outbox.send_mail
    )
    async with gateway:
        yield gateway


def text_of(segments: list[Segment]) -> str:
    parts = []
    for segment in segments:
        _, data = split_user_data(segment.short_message, 0x40 if segment.esm_class_udhi else 0)
        parts.append(decode_text(data, segment.data_coding))
    return "".join(parts)


def make_mail(subject: str, body: str, to: str = f"{ALICE}@{DOMAIN}") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "carol@example.net"
    message["To"] = to
    message["Subject"] = subject
    message.set_content(body)
    return message


async def in_client(gateway: MailGateway, work: Callable[[smtplib.SMTP], T]) -> T:
    """Run ``work`` with a connected smtplib client in a thread, so the gateway keeps running on this loop."""
    host, port = gateway.address

    def run() -> T:
        with smtplib.SMTP(host, port, timeout=10) as client:
            return work(client)

    return await asyncio.to_thread(run)


class Raw:
    """A raw SMTP conversation, for what no polite client would send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def reply(self) -> str:
        lines = []
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 5)).decode("ascii", "replace")
            lines.append(line.rstrip("\r\n"))
            if len(line) < 4 or line[3] != "-":
                return "\n".join(lines)

    async def say(self, data: bytes) -> str:
        self.writer.write(data)
        await self.writer.drain()
        return await self.reply()


async def raw(gateway: MailGateway) -> Raw:
    reader, writer = await asyncio.open_connection(*gateway.address)
    conversation = Raw(reader, writer)
    assert (await conversation.reply()).startswith("220 mail.carrier-a.example")
    return conversation


# -- mail to SMS --------------------------------------------------------------------------------------------


async def test_long_mail_becomes_concatenated_gsm_segments(gateway: MailGateway, smsc: Smsc) -> None:
    body = "Your code is 123456. " * 12  # 252 characters: two GSM parts
    refused = await in_client(gateway, lambda c: c.send_message(make_mail("Code", body)))
    assert refused == {}
    [(msisdn, segments)] = smsc.sent
    assert msisdn == ALICE
    assert len(segments) == 2
    assert {segment.data_coding for segment in segments} == {DataCoding.SMSC_DEFAULT}
    assert all(segment.esm_class_udhi for segment in segments)
    assert text_of(segments) == "carol@example.net / Code: " + body.strip()


async def test_non_gsm_mail_goes_as_ucs2(gateway: MailGateway, smsc: Smsc) -> None:
    body = "Ваш код 123456 — не сообщайте его никому. " * 2
    await in_client(gateway, lambda c: c.send_message(make_mail("Код", body)))
    [(_, segments)] = smsc.sent
    assert {segment.data_coding for segment in segments} == {DataCoding.UCS2}
    assert len(segments) == 2
    assert text_of(segments) == "carol@example.net / Код: " + body.strip()


async def test_plus_prefix_and_data_reply(gateway: MailGateway, smsc: Smsc) -> None:
    def send(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        client.mail("carol@example.net")
        assert client.rcpt(f"+{ALICE}@{DOMAIN}")[0] == 250
        return client.data(make_mail("hi", "there").as_bytes())

    code, text = await in_client(gateway, send)
    assert code == 250
    assert text.startswith(b"2.6.0")
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


async def test_too_long_refused_at_data_when_configured(smsc: Smsc) -> None:
    gateway = MailGateway(
        config(max_segments=1, overflow=Overflow.REFUSE), send_mt=smsc.send_mt, known_subscriber=lambda _: True
    )
    async with gateway:
        with pytest.raises(smtplib.SMTPDataError) as caught:
            await in_client(gateway, lambda c: c.send_message(make_mail("s", "x" * 200)))
    assert caught.value.smtp_code == 552
    assert error_bytes(caught.value.smtp_error).startswith(b"5.3.4")
    assert smsc.sent == []


async def test_sync_send_mt_is_accepted() -> None:
    sent: list[str] = []
    gateway = MailGateway(config(), send_mt=lambda msisdn, _: sent.append(msisdn), known_subscriber=lambda _: True)
    async with gateway:
        await in_client(gateway, lambda c: c.send_message(make_mail("s", "b")))
    assert sent == [ALICE]


# -- refusals -----------------------------------------------------------------------------------------------


async def test_unknown_subscriber_is_refused_at_rcpt(gateway: MailGateway, smsc: Smsc) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as caught:
        await in_client(gateway, lambda c: c.send_message(make_mail("s", "b", to=f"{STRANGER}@{DOMAIN}")))
    code, text = caught.value.recipients[f"{STRANGER}@{DOMAIN}"]
    assert (code, text.split()[0]) == (550, b"5.1.1")
    assert smsc.sent == []


@pytest.mark.parametrize(
    ("address", "code", "enhanced"),
    [
        (f"{ALICE}@pager.carrier-a.example", 550, b"5.1.2"),
        (f"{ALICE}@sms.carrier-b.example", 550, b"5.7.1"),
        # A well-formed address that names no number: no such mailbox (550), not a syntax error (501).
        (f"alice@{DOMAIN}", 550, b"5.1.1"),
        (f"abuse@{DOMAIN}", 550, b"5.1.1"),
        ("alice", 501, b"5.1.3"),
        ("", 501, b"5.1.3"),
        # What aiosmtpd's address parser refuses never reaches handle_RCPT: its own 553 (docs/email-to-sms.md).
        (f"@{DOMAIN}", 553, b"5.1.3"),
        (f"{ALICE}@", 553, b"5.1.3"),
        (f"{ALICE}@{DOMAIN}.", 553, b"5.1.3"),
    ],
)
async def test_bad_domains_and_local_parts(gateway: MailGateway, address: str, code: int, enhanced: bytes) -> None:
    def send(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        client.mail("carol@example.net")
        return client.rcpt(address)

    reply = await in_client(gateway, send)
    assert isinstance(reply, tuple)
    assert reply[0] == code
    assert reply[1].startswith(enhanced)


async def test_retired_gateway_greets_with_521(smsc: Smsc) -> None:
    gateway = MailGateway(config(retired=True), send_mt=smsc.send_mt, known_subscriber=lambda _: True)
    async with gateway:
        with pytest.raises(smtplib.SMTPConnectError) as caught:
            await in_client(gateway, lambda c: None)
    assert caught.value.smtp_code == 521
    assert error_bytes(caught.value.smtp_error).startswith(b"5.3.2")


async def test_mixed_recipients(gateway: MailGateway, smsc: Smsc) -> None:
    recipients = [
        f"{ALICE}@{DOMAIN}",
        f"{STRANGER}@{DOMAIN}",
        f"{BOB}@{DOMAIN}",
        f"{ALICE}@pager.carrier-a.example",
    ]

    def send(client: smtplib.SMTP) -> object:
        return client.sendmail("carol@example.net", recipients, make_mail("s", "hello all").as_bytes())

    refused = await in_client(gateway, send)
    assert isinstance(refused, dict)
    assert {address: (code, text.split()[0]) for address, (code, text) in refused.items()} == {
        f"{STRANGER}@{DOMAIN}": (550, b"5.1.1"),
        f"{ALICE}@pager.carrier-a.example": (550, b"5.1.2"),
    }
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE, BOB]
    assert smsc.sent[0][1] == smsc.sent[1][1]


async def test_postmaster_is_accepted_and_never_becomes_sms(smsc: Smsc) -> None:
    postmaster: list[EmailMessage] = []
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber={ALICE}.__contains__,
                          postmaster=postmaster.append)
    async with gateway:
        for address in ["postmaster", "Postmaster", f"POSTMASTER@{DOMAIN}", "postmaster@mail.carrier-a.example"]:
            def send(client: smtplib.SMTP, address: str = address) -> tuple[int, bytes]:
                client.ehlo()
                client.mail("carol@example.net")
                assert client.rcpt(address)[0] == 250
                return client.data(b"Subject: abuse report\r\n\r\nyour gateway ...")

            code, text = await in_client(gateway, send)
            assert (code, text[:5]) == (250, b"2.0.0")
        # With a subscriber too: the subscriber gets the SMS, the postmaster the mail.
        await in_client(gateway, lambda c: c.sendmail(
            "carol@example.net", [f"postmaster@{DOMAIN}", f"{ALICE}@{DOMAIN}"], b"Subject: both\r\n\r\nhi"))
    assert [message["Subject"] for message in postmaster] == ["abuse report"] * 4 + ["both"]
    assert [(msisdn, text_of(segments)) for msisdn, segments in smsc.sent] == [(ALICE, "carol@example.net / both: hi")]


async def test_recipients_past_the_limit_get_452_and_the_rest_go_in_another_transaction(smsc: Smsc) -> None:
    # RFC 5321 section 4.5.3.1.8: at least 100 accepted; the excess answered 452 4.5.3 (4.5.3.1.10). There was
    # no limit: 5,000 RCPTs were accepted and one DATA became 5,000 MTs.
    numbers = [f"4477009{i:05d}" for i in range(105)]
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)

    def send(client: smtplib.SMTP) -> tuple[list[tuple[int, bytes]], tuple[int, bytes], tuple[int, bytes]]:
        client.ehlo()
        client.mail("carol@example.net")
        replies = [client.rcpt(f"{msisdn}@{DOMAIN}") for msisdn in numbers]
        first = client.data(b"Subject: s\r\n\r\nhi")
        # The limit is per transaction: the client sends the refused ones in the next.
        client.mail("carol@example.net")
        for msisdn in numbers[100:]:
            assert client.rcpt(f"{msisdn}@{DOMAIN}")[0] == 250
        return replies, first, client.data(b"Subject: s\r\n\r\nhi")

    async with gateway:
        replies, first, second = await in_client(gateway, send)
    assert {code for code, _ in replies[:100]} == {250}
    assert replies[100:] == [(452, b"4.5.3 Too many recipients")] * 5
    assert first == (250, b"2.6.0 queued as SMS: 1 segment(s) to 100 subscriber(s)")
    assert second == (250, b"2.6.0 queued as SMS: 1 segment(s) to 5 subscriber(s)")
    assert [msisdn for msisdn, _ in smsc.sent] == numbers


async def test_only_accepted_recipients_count_towards_the_limit(smsc: Smsc) -> None:
    gateway = MailGateway(config(max_recipients=2), send_mt=smsc.send_mt, known_subscriber={ALICE, BOB}.__contains__)

    def send(client: smtplib.SMTP) -> list[int]:
        client.ehlo()
        client.mail("carol@example.net")
        addresses = [f"{STRANGER}@{DOMAIN}", f"{ALICE}@{DOMAIN}", f"{STRANGER}@{DOMAIN}", "postmaster",
                     f"{BOB}@{DOMAIN}", f"{STRANGER}@{DOMAIN}"]
        return [client.rcpt(address)[0] for address in addresses]

    async with gateway:
        assert await in_client(gateway, send) == [550, 250, 550, 250, 452, 452]


async def test_a_failing_postmaster_sink_costs_only_the_postmaster_its_copy(
    smsc: Smsc, outbox: Outbox, caplog: pytest.LogCaptureFixture
) -> None:
    # The sink's exception escaped handle_DATA: aiosmtpd answered "500 Error: (ZeroDivisionError) ...", and the
    # subscriber named with the postmaster never got the SMS.
    def full(message: EmailMessage) -> None:
        raise ZeroDivisionError("postmaster inbox full")

    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber={ALICE}.__contains__,
                          send_mail=outbox.send_mail, postmaster=full)

    def send(recipients: list[str]) -> Callable[[smtplib.SMTP], tuple[int, bytes]]:
        def work(client: smtplib.SMTP) -> tuple[int, bytes]:
            client.ehlo()
            client.mail("carol@example.net")
            for address in recipients:
                assert client.rcpt(address)[0] == 250
            return client.data(b"Subject: report\r\n\r\nabuse")
        return work

    async with gateway:
        # The only recipient failed, nothing went anywhere: retry later, as when the SMSC fails everyone.
        alone = await in_client(gateway, send(["postmaster"]))
        both = await in_client(gateway, send(["postmaster", f"{ALICE}@{DOMAIN}"]))
    assert alone == (451, b"4.3.0 postmaster mailbox unavailable, try again later")
    # The subscriber got it, so 250 (a retry would send the SMS twice), and the sender is told of the postmaster.
    assert both == (250, b"2.6.0 queued as SMS: 1 segment(s) to 1 subscriber(s)")
    assert [(msisdn, text_of(segments)) for msisdn, segments in smsc.sent] == [
        (ALICE, "carol@example.net / report: abuse")
    ]
    [notice] = outbox.messages
    assert (outbox.senders, notice["To"]) == ([""], "carol@example.net")
    _, status = notice.iter_parts()
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    _, block = blocks
    assert isinstance(block, Message)
    assert block["Final-Recipient"] == "rfc822; postmaster@mail.carrier-a.example"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "postmaster sink failed for mail from 'carol@example.net'"
    ] * 2


async def test_postmaster_of_a_foreign_domain_is_still_refused(gateway: MailGateway) -> None:
    def send(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        client.mail("carol@example.net")
        return client.rcpt("postmaster@sms.carrier-b.example")

    code, text = await in_client(gateway, send)
    assert (code, text[:5]) == (550, b"5.7.1")


async def test_one_sms_per_subscriber_however_often_named(gateway: MailGateway, smsc: Smsc) -> None:
    def send(client: smtplib.SMTP) -> tuple[int, bytes]:
        client.ehlo()
        client.mail("carol@example.net")
        for address in [f"{ALICE}@{DOMAIN}", f"+{ALICE}@{DOMAIN}", f"{ALICE}@{DOMAIN.upper()}", f"{BOB}@{DOMAIN}"]:
            assert client.rcpt(address)[0] == 250
        return client.data(b"Subject: d\r\n\r\nx")

    code, text = await in_client(gateway, send)
    assert code == 250
    assert text.endswith(b"to 2 subscriber(s)")
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE, BOB]


async def test_smsc_failure_for_all_is_451(gateway: MailGateway, smsc: Smsc) -> None:
    smsc.down = {ALICE}
    with pytest.raises(smtplib.SMTPDataError) as caught:
        await in_client(gateway, lambda c: c.send_message(make_mail("s", "b")))
    assert caught.value.smtp_code == 451


async def test_smsc_failure_for_some_sends_a_notice(gateway: MailGateway, smsc: Smsc, outbox: Outbox) -> None:
    smsc.down = {BOB}
    await in_client(
        gateway,
        lambda c: c.sendmail("carol@example.net", [f"{ALICE}@{DOMAIN}", f"{BOB}@{DOMAIN}"], b"Subject: s\r\n\r\nb"),
    )
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]
    await gateway.stop()  # the notice goes out after the reply; stop() waits for it
    [notice] = outbox.messages
    # RFC 5321 section 6.1: from the null reverse-path, so a notice never bounces into another.
    assert outbox.senders == [""]
    assert notice["To"] == "carol@example.net"
    # RFC 6522 / RFC 3464: a report for people and one for software.
    received = parse_message(notice.as_bytes())
    assert received.get_content_type() == "multipart/report"
    assert received.get_param("report-type") == "delivery-status"
    human, status = received.iter_parts()
    assert f"{BOB}@{DOMAIN}" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mail.carrier-a.example"
    assert per_recipient["Final-Recipient"] == f"rfc822; {BOB}@{DOMAIN}"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.3.0"


async def test_the_notice_does_not_delay_the_reply(smsc: Smsc) -> None:
    release = asyncio.Event()
    sent: list[str] = []

    async def slow_send_mail(message: EmailMessage, mail_from: str) -> None:
        await release.wait()
        sent.append(message["To"])

    smsc.down = {BOB}
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber={ALICE, BOB}.__contains__,
                          send_mail=slow_send_mail)
    async with gateway:
        host, port = gateway.address

        def send() -> object:
            with smtplib.SMTP(host, port, timeout=3) as client:  # times out if the reply waits for the notice
                return client.sendmail("carol@example.net", [f"{ALICE}@{DOMAIN}", f"{BOB}@{DOMAIN}"], b"\r\nb")

        assert await asyncio.to_thread(send) == {}
        assert sent == []
        release.set()
    assert sent == ["carol@example.net"]


async def test_stop_cancels_a_notice_that_cannot_go_out(smsc: Smsc) -> None:
    started = asyncio.Event()
    cancelled: list[bool] = []

    async def stuck_send_mail(message: EmailMessage, mail_from: str) -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    smsc.down = {BOB}
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber={ALICE, BOB}.__contains__,
                          send_mail=stuck_send_mail, notice_grace=0.05)
    await gateway.start()
    await in_client(gateway, lambda c: c.sendmail("carol@example.net", [f"{ALICE}@{DOMAIN}", f"{BOB}@{DOMAIN}"],
                                                  b"\r\nb"))
    await asyncio.wait_for(started.wait(), 5)
    await asyncio.wait_for(gateway.stop(), 5)
    assert cancelled == [True]


# -- bad peers ----------------------------------------------------------------------------------------------


async def test_garbage_keeps_the_server_serving(gateway: MailGateway, smsc: Smsc) -> None:
    conversation = await raw(gateway)
    assert (await conversation.say(b"BLAH blah\r\n")).startswith("500")
    assert (await conversation.say(b"\x00\xff\xfe\r\n")).startswith("500")
    assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
    assert (await conversation.say(b"RCPT TO:<x@y>\r\n")).startswith("503")
    assert (await conversation.say(b"MAIL FROM:<carol@example.net>\r\n")).startswith("250")
    assert (await conversation.say(b"RCPT TO:<<<>>>\r\n")).startswith(("501", "553"))
    assert (await conversation.say(f"RCPT TO:<{ALICE}@{DOMAIN}>\r\n".encode())).startswith("250 2.1.5")
    assert (await conversation.say(b"DATA\r\n")).startswith("354")
    # Not MIME at all: the first line is no header, so all of it is the body of a text/plain message (RFC 2045
    # section 5.2's default). It is sent: the bytes that are not text show as U+FFFD, the controls are dropped.
    junk = b"\x80\x81 no headers here\r\n:::\r\nContent-Type: image/png\r\n\r\n\x00\x01\r\n.\r\n"
    assert (await conversation.say(junk)).startswith("250 2.6.0")
    [(_, segments)] = smsc.sent
    assert text_of(segments) == "carol@example.net / \ufffd\ufffd no headers here\n:::\nContent-Type: image/png"
    # A content-type the gateway cannot carry is refused and the session goes on.
    assert (await conversation.say(b"MAIL FROM:<carol@example.net>\r\n")).startswith("250")
    assert (await conversation.say(f"RCPT TO:<{ALICE}@{DOMAIN}>\r\n".encode())).startswith("250")
    assert (await conversation.say(b"DATA\r\n")).startswith("354")
    image = b"Content-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\nAAAA\r\n.\r\n"
    assert (await conversation.say(image)).startswith("554 5.6.1")
    assert (await conversation.say(b"QUIT\r\n")).startswith("221")
    conversation.writer.close()
    await conversation.writer.wait_closed()
    # And a polite client right after is served.
    smsc.sent.clear()
    await in_client(gateway, lambda c: c.send_message(make_mail("after", "garbage")))
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


async def data_reply(conversation: Raw, content: bytes) -> str:
    """One transaction to ALICE on an open conversation; returns the reply to the content."""
    assert (await conversation.say(b"MAIL FROM:<carol@example.net>\r\n")).startswith("250")
    assert (await conversation.say(f"RCPT TO:<{ALICE}@{DOMAIN}>\r\n".encode())).startswith("250")
    assert (await conversation.say(b"DATA\r\n")).startswith("354")
    return await conversation.say(content + b"\r\n.\r\n")


async def test_malformed_mime_is_refused_with_its_reason(gateway: MailGateway, smsc: Smsc) -> None:
    conversation = await raw(gateway)
    assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
    nested = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n"
        b"--x\r\nContent-Type: multipart/related\r\n\r\nhello\r\n--x--"
    )
    assert (await data_reply(conversation, nested)).startswith("554 5.6.0 malformed MIME")
    nul = b'Content-Type: text/plain; charset="ut\x00f-8"\r\n\r\nhello'
    assert (await data_reply(conversation, nul)).startswith("554 5.6.3 charset")
    assert (await conversation.say(b"NOOP\r\n")).startswith("250")
    conversation.writer.close()
    await conversation.writer.wait_closed()
    assert smsc.sent == []


async def test_a_mime_structure_nested_too_deeply_is_554_without_a_traceback(
    gateway: MailGateway, smsc: Smsc, caplog: pytest.LogCaptureFixture
) -> None:
    # 2,000 nested multipart/mixed (~114 KB, under the DATA limit) exhaust the email parser's recursion; aiosmtpd
    # answered "500 Error: (RecursionError)" and logged the traceback as a session exception.
    opening = b"".join(
        b"--b%d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n" % (i, i + 1) for i in range(2_000)
    )
    nested = (b"Subject: nest\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n" + opening
              + b"--b2000\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b2000--")
    conversation = await raw(gateway)
    assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
    assert await data_reply(conversation, nested) == "554 5.6.0 malformed MIME structure (nested too deeply)"
    assert (await data_reply(conversation, b"Subject: s\r\n\r\nafter")).startswith("250 2.6.0")
    conversation.writer.close()
    await conversation.writer.wait_closed()
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_non_ascii_address_is_refused_by_aiosmtpd_and_the_session_goes_on(gateway: MailGateway) -> None:
    # No SMTPUTF8 (RFC 6531) is offered, so a line with UTF-8 in it is aiosmtpd's, as docs/email-to-sms.md says.
    conversation = await raw(gateway)
    assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
    assert await conversation.say("MAIL FROM:<ü@example.net>\r\n".encode()) == "500 Error: strict ASCII mode"
    assert (await conversation.say(b"MAIL FROM:<carol@example.net> SMTPUTF8\r\n")).startswith("501")
    assert (await conversation.say(b"MAIL FROM:<carol@example.net>\r\n")).startswith("250")
    assert await conversation.say(f"RCPT TO:<ü@{DOMAIN}>\r\n".encode()) == "500 Error: strict ASCII mode"
    assert (await conversation.say(f"RCPT TO:<{ALICE}@{DOMAIN}>\r\n".encode())).startswith("250 2.1.5")
    conversation.writer.close()
    await conversation.writer.wait_closed()


async def test_a_translation_defect_is_451_not_500(
    gateway: MailGateway, smsc: Smsc, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr("carrier_sim.mail.gateway.mail_to_sms", broken)
    conversation = await raw(gateway)
    assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
    assert (await data_reply(conversation, b"Subject: s\r\n\r\nb")).startswith("451 4.3.0")
    assert (await conversation.say(b"NOOP\r\n")).startswith("250")
    conversation.writer.close()
    await conversation.writer.wait_closed()


@pytest.mark.parametrize(
    "content",
    [
        b"Content-Type: text/plain; charset=utf-7\r\n\r\nhello +2AA- world",
        b"Content-Type: text/plain; charset=unicode_escape\r\n\r\nhi \\ud800 x",
    ],
)
async def test_content_that_decodes_to_a_lone_surrogate_is_554_without_a_traceback(
    gateway: MailGateway, smsc: Smsc, caplog: pytest.LogCaptureFixture, content: bytes
) -> None:
    # It was "451 4.3.0 try again later" with an ERROR traceback: a retry of the same content fails the same way.
    conversation = await raw(gateway)
    assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
    assert (await data_reply(conversation, content)).startswith("554 5.6.5 text decodes to U+D800")
    assert (await data_reply(conversation, b"Subject: s\r\n\r\nafter")).startswith("250 2.6.0")
    conversation.writer.close()
    await conversation.writer.wait_closed()
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_content_line_past_1000_octets_is_500_5_5_2_and_the_session_goes_on(
    gateway: MailGateway, smsc: Smsc
) -> None:
    # RFC 5321 section 4.5.3.1.6: 998 characters and CRLF. aiosmtpd refuses a longer line itself; its reply had no
    # enhanced code, and docs/email-to-sms.md did not list it.
    conversation = await raw(gateway)
    assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
    html = b"Content-Type: text/html\r\n\r\n<p>" + b"x" * 1200 + b"</p>"
    assert await data_reply(conversation, html) == "500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)"
    assert smsc.sent == []
    longest = b"Subject: s\r\n\r\n" + b"y" * 998
    assert (await data_reply(conversation, longest)).startswith("250 2.6.0")
    assert (await conversation.say(b"NOOP\r\n")).startswith("250")
    conversation.writer.close()
    await conversation.writer.wait_closed()
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


async def test_aiosmtpds_size_and_command_length_refusals_carry_enhanced_codes(smsc: Smsc, outbox: Outbox) -> None:
    # aiosmtpd writes them without RFC 3463 codes; the gateway adds them, as for the content line above.
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber={ALICE, BOB}.__contains__,
                          send_mail=outbox.send_mail, data_size_limit=1000)
    async with gateway:
        conversation = await raw(gateway)
        assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
        too_big = b"Subject: s\r\n\r\n" + b"z" * 900 + b"\r\n" + b"z" * 900
        assert await data_reply(conversation, too_big) == "552 5.3.4 Error: Too much mail data"
        assert (await conversation.say(b"NOOP " + b"n" * 600 + b"\r\n")) == "500 5.5.2 Command line too long"
        assert (await conversation.say(b"NOOP\r\n")).startswith("250")
        conversation.writer.close()
        await conversation.writer.wait_closed()
    assert smsc.sent == []


async def test_the_fifth_unrecognised_command_closes_the_session(gateway: MailGateway, smsc: Smsc) -> None:
    # What docs/email-to-sms.md says of garbage: aiosmtpd's BOGUS_LIMIT, over the session, not in a row.
    conversation = await raw(gateway)
    for _ in range(2):
        assert (await conversation.say(b"BLAH\r\n")).startswith("500")
    assert (await conversation.say(b"NOOP\r\n")).startswith("250")
    for _ in range(2):
        assert (await conversation.say(b"BLAH\r\n")).startswith("500")
    assert (await conversation.say(b"BLAH\r\n")).startswith("502 5.5.1")
    assert await asyncio.wait_for(conversation.reader.read(), 5) == b""
    conversation.writer.close()
    await conversation.writer.wait_closed()
    await in_client(gateway, lambda c: c.send_message(make_mail("next", "one")))
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


async def test_abrupt_disconnect_mid_data(gateway: MailGateway, smsc: Smsc) -> None:
    conversation = await raw(gateway)
    await conversation.say(b"HELO x\r\n")
    await conversation.say(b"MAIL FROM:<carol@example.net>\r\n")
    await conversation.say(f"RCPT TO:<{ALICE}@{DOMAIN}>\r\n".encode())
    await conversation.say(b"DATA\r\n")
    conversation.writer.write(b"Subject: cut\r\n\r\nhalf a mess")
    conversation.writer.close()
    await asyncio.sleep(0.05)
    await in_client(gateway, lambda c: c.send_message(make_mail("next", "one")))
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


async def test_stop_closes_open_sessions(smsc: Smsc) -> None:
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)
    await gateway.start()
    conversation = await raw(gateway)
    await gateway.stop()
    assert await asyncio.wait_for(conversation.reader.read(), 5) == b""
    conversation.writer.close()
    await conversation.writer.wait_closed()
    with pytest.raises(RuntimeError):
        _ = gateway.address


# -- a transaction past its final dot ------------------------------------------------------------------------

FIVE = [f"4477009001{i:02d}" for i in range(5)]


def send_to_five(client: smtplib.SMTP) -> tuple[int, bytes]:
    client.ehlo()
    client.mail("carol@example.net")
    for msisdn in FIVE:
        assert client.rcpt(f"{msisdn}@{DOMAIN}")[0] == 250
    return client.data(b"Subject: otp\r\n\r\n123456")


async def first_mt(smsc: Smsc) -> None:
    """Wait until the SMSC holds an MT: the final dot has arrived and the transaction is under way."""
    async with asyncio.timeout(5):
        while not smsc.sent:
            await asyncio.sleep(0.005)


async def test_stop_lets_a_transaction_past_its_final_dot_finish_and_reply() -> None:
    # stop() closed the session at once: aiosmtpd cancelled handle_DATA after the first MT, the client got no
    # reply, and its retry would have sent the first subscriber a second SMS.
    smsc = Smsc(delay=0.05)
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)
    await gateway.start()
    sending = asyncio.ensure_future(in_client(gateway, send_to_five))
    await first_mt(smsc)
    await asyncio.wait_for(gateway.stop(), 5)
    assert await sending == (250, b"2.6.0 queued as SMS: 1 segment(s) to 5 subscriber(s)")
    assert [msisdn for msisdn, _ in smsc.sent] == FIVE
    assert gateway.reply_path(FIVE[-1]) == "carol@example.net"


async def test_stop_cancels_a_transaction_still_running_after_the_grace(caplog: pytest.LogCaptureFixture) -> None:
    stuck = asyncio.Event()
    cancelled: list[str] = []
    sent: list[str] = []

    async def send_mt(msisdn: str, segments: list[Segment]) -> None:
        if sent:  # the second subscriber's submit never ends
            try:
                await stuck.wait()
            except asyncio.CancelledError:
                cancelled.append(msisdn)
                raise
        sent.append(msisdn)

    gateway = MailGateway(config(), send_mt=send_mt, known_subscriber=lambda _: True, data_grace=0.05)
    await gateway.start()
    sending = asyncio.ensure_future(in_client(gateway, send_to_five))
    async with asyncio.timeout(5):
        while not sent:
            await asyncio.sleep(0.005)
    await asyncio.wait_for(gateway.stop(), 5)
    with pytest.raises(smtplib.SMTPServerDisconnected):
        await sending
    assert (sent, cancelled) == ([FIVE[0]], [FIVE[1]])
    assert any("cancelled" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)


async def test_a_client_that_half_closes_after_the_final_dot_gets_every_mt_and_the_reply(smsc: Smsc) -> None:
    # A pipelining client may shut its side down once it has sent ".", "QUIT": aiosmtpd's eof_received cancelled
    # handle_DATA after the first MT, and the reply was never written.
    smsc.delay = 0.05
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)
    async with gateway:
        conversation = await raw(gateway)
        assert (await conversation.say(b"EHLO client.example\r\n")).startswith("250")
        assert (await conversation.say(b"MAIL FROM:<carol@example.net>\r\n")).startswith("250")
        for msisdn in FIVE:
            assert (await conversation.say(f"RCPT TO:<{msisdn}@{DOMAIN}>\r\n".encode())).startswith("250")
        assert (await conversation.say(b"DATA\r\n")).startswith("354")
        conversation.writer.write(b"Subject: otp\r\n\r\n123456\r\n.\r\nQUIT\r\n")
        conversation.writer.write_eof()
        rest = await asyncio.wait_for(conversation.reader.read(), 5)
        conversation.writer.close()
        await conversation.writer.wait_closed()
    assert rest.decode("ascii").splitlines()[0] == "250 2.6.0 queued as SMS: 1 segment(s) to 5 subscriber(s)"
    assert [msisdn for msisdn, _ in smsc.sent] == FIVE
    assert gateway.reply_path(FIVE[-1]) == "carol@example.net"


def half_close(address: tuple[str, int], steps: list[bytes], last: bytes) -> list[str]:
    """A client on a plain socket: sends each of ``steps`` and reads its replies, then sends ``last``, shuts its
    sending side down (``SHUT_WR``, a half-close: it can still read) and returns the lines the server still
    writes before it closes the connection."""
    with socket.create_connection(address, timeout=5) as client, client.makefile("rb") as replies:
        assert replies.readline().startswith(b"220 ")
        for step in steps:
            client.sendall(step)
            for _ in step.splitlines():  # one reply a command, each may be multi-line
                while (line := replies.readline())[3:4] == b"-":
                    pass
                assert line[:1] in (b"2", b"3"), line
        client.sendall(last)
        client.shutdown(socket.SHUT_WR)
        return replies.read().decode("ascii").splitlines()


async def test_a_pipelined_quit_after_a_half_close_is_answered_221_after_the_data_reply(smsc: Smsc) -> None:
    # The client pipelines ".", "QUIT" and half-closes: aiosmtpd's eof_received cancelled the session, so QUIT,
    # already received, was never read, and the client got the DATA reply and then the close, without the 221.
    smsc.delay = 0.05  # the transaction is still handing MTs to the SMSC when the EOF arrives
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)
    async with gateway:
        envelope = [b"EHLO client.example\r\n", b"MAIL FROM:<carol@example.net>\r\n",
                    *(f"RCPT TO:<{msisdn}@{DOMAIN}>\r\n".encode() for msisdn in FIVE), b"DATA\r\n"]
        last = b"Subject: otp\r\n\r\n123456\r\n.\r\nQUIT\r\n"
        rest = await asyncio.to_thread(half_close, gateway.address, envelope, last)
    assert rest == ["250 2.6.0 queued as SMS: 1 segment(s) to 5 subscriber(s)", "221 Bye"]
    assert [msisdn for msisdn, _ in smsc.sent] == FIVE


async def test_a_transaction_pipelined_whole_before_a_half_close_is_answered_line_by_line(smsc: Smsc) -> None:
    # Everything after EHLO in one write, then the half-close: the EOF could cancel the session before it had read
    # the final dot, and then nothing was sent, or after, and then QUIT went unanswered.
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)
    async with gateway:
        last = (f"MAIL FROM:<carol@example.net>\r\nRCPT TO:<{ALICE}@{DOMAIN}>\r\nDATA\r\n"
                "Subject: otp\r\n\r\n123456\r\n.\r\nQUIT\r\n").encode()
        rest = await asyncio.to_thread(half_close, gateway.address, [b"EHLO client.example\r\n"], last)
    assert [line[:3] for line in rest] == ["250", "250", "354", "250", "221"], rest
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


@pytest.mark.parametrize(
    ("last", "replies"),
    [
        (b"NOO", []),
        (f"MAIL FROM:<carol@example.net>\r\nRCPT TO:<{ALICE}@{DOMAIN}>\r\nDATA\r\n"
         "Subject: cut\r\n\r\nno final dot\r\n".encode(), ["250", "250", "354"]),
    ],
    ids=["a partial command", "content without its final dot"],
)
async def test_a_half_close_leaves_nothing_to_answer_and_the_session_ends(
    gateway: MailGateway, smsc: Smsc, last: bytes, replies: list[str]
) -> None:
    # Past the EOF, what is left is no command and no message: the session closes without a reply to it (no "500"
    # for the reader's end of input, nor a loop answering that end again and again) and sends nothing to the SMSC.
    rest = await asyncio.to_thread(half_close, gateway.address, [b"EHLO client.example\r\n"], last)
    assert [line[:3] for line in rest] == replies
    assert smsc.sent == []
    await in_client(gateway, lambda c: c.send_message(make_mail("next", "one")))
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


# -- a client that does not read ----------------------------------------------------------------------------

#: aiosmtpd's reply to a bare HELP: 80 octets for 6, so replies pile up fast.
FLOOD = b"HELP\r\n" * 256


async def not_reading(address: tuple[str, int]) -> socket.socket:
    """A client that will never read: a receive buffer as small as the kernel allows (set before connecting, so
    the window it offers stays small), non-blocking so that a full buffer is BlockingIOError, not a hang."""
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    client.setblocking(False)
    await asyncio.get_running_loop().sock_connect(client, address)
    return client


def send_some(client: socket.socket, data: bytes) -> bool:
    """Send what the kernel takes now; False when the connection was reset (the gateway ended it)."""
    try:
        client.send(data)
    except BlockingIOError:  # the gateway has stopped reading: its buffers and ours are full
        pass
    except (ConnectionResetError, BrokenPipeError):
        return False
    return True


def open_sessions(gateway: MailGateway) -> list[SMTP]:
    """The gateway's sessions whose connection is not lost yet (aiosmtpd sets ``transport`` None when it is)."""
    return [session for session in gateway._sessions if session.transport is not None]


async def test_a_client_that_never_reads_is_aborted_at_the_idle_timeout(
    smsc: Smsc, caplog: pytest.LogCaptureFixture
) -> None:
    # It pipelines commands and never reads a reply. aiosmtpd stops reading it once the replies fill the write
    # buffer, and at the idle timeout called transport.close(), which waits for the buffer to drain: it never
    # did, and the connection, the session and its task stayed open for as long as the client did.
    caplog.set_level(logging.INFO, logger="carrier_sim.mail.gateway")
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True, idle_timeout=0.3)
    async with gateway:
        client = await not_reading(gateway.address)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5  # more than ten timeouts
        try:
            while (connected := send_some(client, FLOOD)) and loop.time() < deadline:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)  # the abort's connection_lost
            assert not connected, "the gateway kept the connection of a client that does not read past its timeout"
            assert open_sessions(gateway) == []
        finally:
            client.close()
        assert any("idle timeout with" in r.getMessage() and "aborted" in r.getMessage() for r in caplog.records)
        # The process goes on serving others.
        assert await in_client(gateway, lambda c: c.send_message(make_mail("after", "a bad peer"))) == {}
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


async def test_a_client_that_pipelines_without_reading_is_paused_bounded_and_aborted_at_stop(smsc: Smsc) -> None:
    # Backpressure is aiosmtpd's (each reply awaits the transport's drain): past the write buffer's high-water
    # mark the session reads no further command and the socket stops being read, so the flood fills the
    # client's buffers and the kernel's, never the gateway's. stop() then closed the session: the close waited
    # for the buffer to drain, and the connection stayed open after stop() had returned.
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)  # 300 s idle timeout
    await gateway.start()
    client = await not_reading(gateway.address)
    try:
        async with asyncio.timeout(10):
            while True:
                assert send_some(client, FLOOD)
                sessions = open_sessions(gateway)
                if sessions and not cast(asyncio.ReadTransport, sessions[0].transport).is_reading():
                    break
                await asyncio.sleep(0.01)
        [session] = sessions
        transport = cast(asyncio.Transport, session.transport)
        _, high = transport.get_write_buffer_limits()
        buffered = transport.get_write_buffer_size()
        # Paused, not ended: reading stopped by backpressure, and the output held to the high-water mark and the
        # one reply that crossed it.
        assert not transport.is_closing()
        assert high <= buffered <= high + 80
        for _ in range(20):  # the client goes on sending; the gateway takes none of it
            assert send_some(client, FLOOD)
            await asyncio.sleep(0.01)
        assert (transport.is_reading(), transport.get_write_buffer_size()) == (False, buffered)
        # The process goes on serving others meanwhile.
        assert await in_client(gateway, lambda c: c.send_message(make_mail("meanwhile", "a bad peer"))) == {}
        await asyncio.wait_for(gateway.stop(), 5)
        await asyncio.sleep(0.05)
        assert open_sessions(gateway) == [], "stop() left the connection of a client that does not read open"
        assert not send_some(client, b"NOOP\r\n")
    finally:
        client.close()
        await gateway.stop()
    assert [msisdn for msisdn, _ in smsc.sent] == [ALICE]


async def test_an_idle_client_with_nothing_unread_is_closed_at_the_idle_timeout(smsc: Smsc) -> None:
    # The timeout's ordinary end is unchanged: a close, so the client reads its replies and then the EOF.
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True, idle_timeout=0.2)
    async with gateway:
        conversation = await raw(gateway)
        assert (await conversation.say(b"NOOP\r\n")).startswith("250")
        assert await asyncio.wait_for(conversation.reader.read(), 5) == b""
        conversation.writer.close()
        await conversation.writer.wait_closed()
        assert open_sessions(gateway) == []


def test_the_idle_timeout_must_be_positive(smsc: Smsc) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True, idle_timeout=0)


# -- SMS to mail --------------------------------------------------------------------------------------------


class Sink:
    """A real SMTP server on this loop that keeps what it receives: the outside world's mail host."""

    def __init__(self) -> None:
        self.received: list[EmailMessage] = []
        self.senders: list[str | None] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert isinstance(envelope.content, bytes)
        self.received.append(parse_message(envelope.content))
        self.senders.append(envelope.mail_from)
        return "250 OK"


async def test_mo_to_email_leaves_over_smtp(smsc: Smsc) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(sink, hostname="mx.example.com", loop=loop), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def send_mail(message: EmailMessage, mail_from: str) -> None:
        def run() -> None:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.send_message(message, from_addr=mail_from)

        await asyncio.to_thread(run)

    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True, send_mail=send_mail)
    try:
        sent = await gateway.deliver_mo(f"+{ALICE}", "6245", "dave@example.com (Hi) running late ☃")
        with pytest.raises(MoNotForMail):
            await gateway.deliver_mo(ALICE, "6245", "no address here")
    finally:
        server.close()
        await server.wait_closed()
    [received] = sink.received
    assert sink.senders == [f"{ALICE}@{DOMAIN}"]
    assert received["From"] == f"{ALICE}@{DOMAIN}"
    assert received["To"] == "dave@example.com"
    assert received["Subject"] == "Hi"
    assert received["Message-ID"] == sent["Message-ID"]
    assert received.get_content().rstrip() == "running late ☃"


async def test_deliver_mo_needs_send_mail(smsc: Smsc) -> None:
    gateway = MailGateway(config(), send_mt=smsc.send_mt, known_subscriber=lambda _: True)
    with pytest.raises(RuntimeError, match="send_mail"):
        await gateway.deliver_mo(ALICE, "6245", "a@example.com hi")


# -- the sender part and replies ----------------------------------------------------------------------------


async def test_the_envelope_sender_is_shown_when_the_mail_has_no_from(gateway: MailGateway, smsc: Smsc) -> None:
    await in_client(gateway, lambda c: c.sendmail("dave@example.com", [f"{ALICE}@{DOMAIN}"], b"Subject: s\r\n\r\nhi"))
    await in_client(gateway, lambda c: c.sendmail("", [f"{BOB}@{DOMAIN}"], b"Subject: s\r\n\r\nhi"))
    assert [(msisdn, text_of(segments)) for msisdn, segments in smsc.sent] == [
        (ALICE, "dave@example.com / s: hi"),
        (BOB, "s: hi"),  # MAIL FROM:<> and no From: nobody to name
    ]
    assert gateway.reply_path(ALICE) == "dave@example.com"
    assert gateway.reply_path(BOB) is None


async def test_a_reply_to_the_short_code_goes_to_the_last_sender(gateway: MailGateway, outbox: Outbox) -> None:
    await in_client(gateway, lambda c: c.send_message(make_mail("Lunch", "at 1?")))
    first = make_mail("Later", "or at 2?")
    del first["From"]
    first["From"] = "Erin <erin@example.org>"
    await in_client(gateway, lambda c: c.send_message(first))
    sent = await gateway.deliver_mo(f"+{ALICE}", "6245", "2 is fine")
    assert sent["To"] == "erin@example.org"
    assert sent.get_content().rstrip() == "2 is fine"
    # An address in the text still wins, and BOB, who got no mail, has nobody to reply to.
    assert (await gateway.deliver_mo(ALICE, "6245", "carol@example.net (Re) no"))["To"] == "carol@example.net"
    with pytest.raises(MoNotForMail):
        await gateway.deliver_mo(BOB, "6245", "hello?")
    assert [message["To"] for message in outbox.messages] == ["erin@example.org", "carol@example.net"]


async def test_a_mail_the_smsc_refused_leaves_no_reply_path(gateway: MailGateway, smsc: Smsc) -> None:
    await in_client(gateway, lambda c: c.send_message(make_mail("s", "first")))
    smsc.down.add(ALICE)
    other = make_mail("s", "second")
    del other["From"]
    other["From"] = "mallory@example.org"
    with pytest.raises(smtplib.SMTPDataError):
        await in_client(gateway, lambda c: c.send_message(other))
    assert gateway.reply_path(ALICE) == "carol@example.net"  # the phone never saw mallory's mail


async def test_a_mail_with_no_sender_forgets_the_last_one(gateway: MailGateway) -> None:
    await in_client(gateway, lambda c: c.send_message(make_mail("s", "first")))
    await in_client(gateway, lambda c: c.sendmail("", [f"{ALICE}@{DOMAIN}"], b"Subject: s\r\n\r\nanonymous"))
    with pytest.raises(MoNotForMail):
        await gateway.deliver_mo(ALICE, "6245", "who is this?")


async def test_reply_paths_are_bounded_and_the_oldest_go_first(smsc: Smsc, outbox: Outbox) -> None:
    gateway = MailGateway(config(reply_paths=2), send_mt=smsc.send_mt, known_subscriber=lambda _: True,
                          send_mail=outbox.send_mail)
    async with gateway:
        for msisdn in [ALICE, BOB, ALICE, STRANGER]:  # ALICE mailed again: BOB is now the oldest
            await in_client(gateway, lambda c, m=msisdn: c.sendmail(f"from-{m}@example.com", [f"{m}@{DOMAIN}"],
                                                                     b"Subject: s\r\n\r\nhi"))
    assert gateway.reply_path(BOB) is None
    assert gateway.reply_path(ALICE) == f"from-{ALICE}@example.com"
    assert gateway.reply_path(STRANGER) == f"from-{STRANGER}@example.com"
    with pytest.raises(MoNotForMail):
        await gateway.deliver_mo(BOB, "6245", "hi")


async def test_no_reply_paths_when_configured_off(smsc: Smsc) -> None:
    gateway = MailGateway(config(reply_paths=0, sender_separator=None), send_mt=smsc.send_mt,
                          known_subscriber=lambda _: True)
    async with gateway:
        await in_client(gateway, lambda c: c.send_message(make_mail("s", "hi")))
    assert gateway.reply_path(ALICE) is None
    assert text_of(smsc.sent[0][1]) == "s: hi"
