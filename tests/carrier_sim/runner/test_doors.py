"""The carrier doors' own parts: the relay that carries the mail gateway's outgoing mail, and the hand-off of a
gateway's MTs to the SMSC."""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from aiosmtpd.smtp import SMTP, Envelope, Session

from carrier_sim.runner.doors import MailRelay


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
