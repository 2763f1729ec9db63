"""Email to SMS and back: real SMTP into each carrier's mail door, the MT at the phone, the phone's reply as mail.

Theory of operation
-------------------
A phone of this flow is sent a mail: one of :data:`SMTP_WORKERS` workers, each holding one open SMTP connection
(aiosmtplib) per carrier, sends ``<msisdn>@<the carrier's SMS domain>`` a plain-text mail whose body is a pure
function of (seed, phone index) (:func:`mail_text`; one or two SMS segments, alternately) to the carrier's SMTP
door (``ctx.doors["smtp"]``). The gateway turns it into an MT through the carrier's SMSC; the phone reassembles
the parts (:meth:`EmailFlow.on_mt`) and the text must be exactly what the gateway makes of the mail
(:func:`mt_text`): the sender's address and the gateway's separator, then the body mailed. The flow's latency
(``email.latency.*``) is mail sent to MT received.

Then the phone answers by SMS to an email address (:func:`reply_text`). The carrier's network routes an MO for an
address to its mail gateway -- :meth:`~carrier_sim.mail.MailGateway.deliver_mo`, reached through
:func:`~carrier_sim.runner.doors.services_of`, since the SMSC routes MOs only to bound ESMEs -- and the gateway
sends the mail over SMTP through the carrier's :class:`~carrier_sim.runner.doors.MailRelay` to the exchanger of
the address's domain. The flow is that exchanger: :meth:`EmailFlow.serve` runs an aiosmtpd server on
127.0.0.1 (on the run's loop, not aiosmtpd's threaded Controller) and registers it for :data:`INBOX_DOMAIN` with
every carrier's relay. The phone completes when its reply arrives there, from ``<msisdn>@<SMS domain>``, with
the text it sent. With ``reply=False`` the phone completes at the MT.

The SMTP reply to the mail and the MT race (the gateway hands the MT over before it answers 250), so a phone in
``SENDING`` accepts its MT, and the worker, seeing the MT already in when the 250 comes, moves the phone on.

Every state a phone waits in (for the SMTP client, the MT, its reply as mail) has its queue of phones in the order
they started waiting (:class:`~carrier_sim.runner.flows.base.AwaitingAnswer`): the first to time out is at a
queue's head, so :meth:`EmailFlow.quiet_until` and :meth:`EmailFlow.expire` cost what they find, not a scan of the
shard's columns. What the flow awaits from sockets (the SMTP door's 250, the MT, the reply at the inbox) reaches
it through the run's loop, which wakes a runner skipping idle ticks on its own; only the timeouts are the flow's.
"""

from __future__ import annotations

import asyncio
import email.policy
import enum
import hashlib
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parseaddr
from typing import ClassVar, Final

import aiosmtplib
import numpy as np
import numpy.typing as npt
from aiosmtpd.smtp import SMTP, Envelope, Session

from carrier_sim.mail import MoNotForMail
from carrier_sim.population.scheduler import DueQueue
from carrier_sim.runner.doors import services_of
from carrier_sim.runner.flows.base import NEAR_DUE, AwaitingAnswer, FlowContext, PhoneFlow, first_timeout, next_row
from carrier_sim.runner.flows.rcs import whole_message
from carrier_sim.scenario.model import Flow
from carrier_sim.smpp.coding import decode_text
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smpp.reassembly import Reassembler
from carrier_sim.smsc.store import StoredMessage

__all__ = ["INBOX_DOMAIN", "MO_WORKERS", "SENDER", "SMTP_WORKERS", "EmailFlow", "mail_text", "mt_text", "reply_text"]

#: Mails being sent at most, per flow: a fixed pool of workers, each with one connection per carrier.
SMTP_WORKERS: Final = 8
#: Phones' replies being handed to their carrier's mail gateway at most.
MO_WORKERS: Final = 8
#: Where the mails come from, and the domain the phones' replies go to (the flow's own SMTP server).
INBOX_DOMAIN: Final = "inbox.carrier-sim.example"
SENDER: Final = f"sender@{INBOX_DOMAIN}"


def mail_text(seed: int, index: int) -> str:
    """The body mailed to phone ``index``: GSM 7-bit text, one SMS segment for even indices, two for odd ones."""
    words = hashlib.blake2b(f"{seed}:{index}:mail".encode(), digest_size=32).hexdigest()
    words_ = " ".join(words[i:i + 8] for i in range(0, len(words), 8))
    text = f"carrier-sim mail {index}: {words_}"
    # 92 characters: one SMS; 166: past one 160-septet SMS, within two 153-septet concatenated parts.
    return text if index % 2 == 0 else f"{text} / {words_[::-1]}"


def mt_text(seed: int, index: int, sender_separator: str | None) -> str:
    """The SMS text phone ``index`` must get for its mail from a gateway with this ``sender_separator``
    (:attr:`~carrier_sim.mail.GatewayConfig.sender_separator`): the mail has no Subject, so it is
    ``SENDER + sender_separator + body``, or the body alone when the gateway shows no sender. Still one SMS
    segment for even indices and two for odd ones with the default separator."""
    body = mail_text(seed, index)
    return body if sender_separator is None else f"{SENDER}{sender_separator}{body}"


def reply_text(seed: int, index: int) -> str:
    """What phone ``index`` texts back."""
    return f"re {index}: {hashlib.blake2b(f'{seed}:{index}:reply'.encode(), digest_size=8).hexdigest()}"


class Step(enum.IntEnum):
    """Where a phone is in the flow (the state column)."""

    IDLE = 0
    MAIL_QUEUED = 1
    SENDING = 2
    ACCEPTED = 3
    THINKING = 4
    REPLY_SENT = 5
    DONE = 6
    FAILED = 7


#: The states a phone waits in, and the failure of a phone waiting in one longer than the flow's ``timeout``
#: (in the order :meth:`EmailFlow.expire` counts them).
_TIMEOUTS: Final[dict[Step, str]] = {
    Step.MAIL_QUEUED: "smtp_timeout",
    Step.SENDING: "smtp_timeout",
    Step.ACCEPTED: "no_mt",
    Step.REPLY_SENT: "no_mail",
}


class _Inbox:
    """aiosmtpd handler of the flow's SMTP server: every mail is a phone's reply, judged by the flow."""

    def __init__(self, flow: EmailFlow) -> None:
        self.flow = flow
        self._parser = BytesParser(policy=email.policy.default)

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content if envelope.original_content is not None else envelope.content
        data = content if isinstance(content, bytes) else (content or "").encode()
        message = self._parser.parsebytes(data)
        assert isinstance(message, EmailMessage)
        self.flow.mail_received(message, list(envelope.rcpt_tos), self.flow.ctx.clock())
        return "250 2.0.0 OK"


class EmailFlow(PhoneFlow):
    """Mail -> SMS at the phone; the phone's SMS -> mail at the flow's inbox."""

    name: ClassVar[str] = "email"
    stage_names: ClassVar[tuple[str, ...]] = ("mail_sent", "mail_accepted", "mt_received", "reply_sent", "reply_mailed")

    def __init__(self, ctx: FlowContext, spec: Flow, *, reply: bool = True, timeout: float = 30.0) -> None:
        super().__init__(ctx, spec)
        n = len(ctx.population)
        self.reply = reply
        self.timeout = timeout
        self.state = np.zeros(n, dtype=np.int8)
        self.t_step = np.full(n, np.nan)
        self.t_mail = np.full(n, np.nan)  # mail handed to the SMTP client
        self.t_mt = np.full(n, np.nan)  # the whole MT at the phone
        self.next_due = np.full(n, np.inf)
        self.due = DueQueue(self.next_due, resolution=0.02)
        self.mail_queue: asyncio.Queue[int] = asyncio.Queue()
        self.reply_queue: asyncio.Queue[int] = asyncio.Queue()
        self.reassembler = Reassembler(timeout=timeout, max_pending=10_000)
        #: Where the flow's inbox listens while :meth:`serve` runs.
        self.inbox: tuple[str, int] | None = None
        #: Per waiting state, (entered at, row) of every phone that entered it, in that order.
        self._awaiting = {state: AwaitingAnswer(self.state, self.t_step, state) for state in _TIMEOUTS}

    # -- states ----------------------------------------------------------------------------------------------

    def _set(self, row: int, state: Step, now: float) -> None:
        # Every change of state goes through here (expire's and finish's FAILED aside), so each waiting phone is
        # in its state's queue: expire and quiet_until rely on it. ``now`` is the run's clock, read at a tick or by
        # a worker as it moves the phone on, so each queue stays in time order.
        self.state[row] = state
        self.t_step[row] = now
        awaiting = self._awaiting.get(state)
        if awaiting is not None:
            awaiting.add(now, row)

    def _fail(self, row: int, reason: str, now: float) -> None:
        self._set(row, Step.FAILED, now)
        self.counters.fail(reason)

    def _complete(self, row: int, now: float, stage: str) -> None:
        self._set(row, Step.DONE, now)
        self.t_done[row] = now
        self.counters.reached(stage)
        self.counters.completed += 1

    def _mt_in(self, row: int, now: float) -> None:
        """The MT and the SMTP 250 are both in: think before replying (or complete without a reply)."""
        if not self.reply:
            self._complete(row, now, "mt_received")
            return
        self.counters.reached("mt_received")
        self._set(row, Step.THINKING, now)
        rows = np.array([row], dtype=np.int64)
        self.due.set_due(rows, now + self.think(rows))

    # -- runner hooks ----------------------------------------------------------------------------------------

    def arrive(self, rows: npt.NDArray[np.int64], now: float) -> None:
        """Phones are mailed at once."""
        self.counters.started += len(rows)
        self.t_started[rows] = now
        for row in rows.tolist():
            if self.ctx.door("smtp", int(self.ctx.carrier_of[row])) is None:
                self._fail(row, "no_smtp_door", now)
                continue
            self._set(row, Step.MAIL_QUEUED, now)
            self.mail_queue.put_nowait(row)

    def on_mt(self, row: int, message: StoredMessage, now: float) -> None:
        """The mail as SMS: reassembled, it must be exactly :func:`mt_text` -- sender, separator and body."""
        if self.state[row] not in (Step.SENDING, Step.ACCEPTED) or not np.isnan(self.t_mt[row]):
            return
        whole = whole_message(self.reassembler, message, now)
        if whole is None:
            return
        try:
            text = decode_text(whole[1], message.data_coding)
        except SmppError:
            self._fail(row, "mt_undecodable", now)
            return
        services = services_of(self.ctx.carriers[int(self.ctx.carrier_of[row])])
        gateway = services.mail_gateway if services is not None else None
        if gateway is None:  # cannot be: the mail went through this carrier's gateway
            self._fail(row, "no_mail_gateway", now)
            return
        # The separator is the gateway's to choose; the flow checks the text against what its gateway makes.
        if text != mt_text(self.ctx.seed, int(self.ctx.index[row]), gateway.config.sender_separator):
            self._fail(row, "mt_text_mismatch", now)
            return
        self.t_mt[row] = now
        if self.state[row] == Step.ACCEPTED:
            self._mt_in(row, now)

    def tick(self, now: float) -> None:
        """Phones done thinking text their reply."""
        for row in self.due.pop_due(now).tolist():
            if self.state[row] == Step.THINKING:
                self._set(row, Step.REPLY_SENT, now)
                self.counters.reached("reply_sent")
                self.reply_queue.put_nowait(row)

    def quiet_until(self, now: float) -> float:
        """The next phone done thinking, the first waiting phone to time out, or the reassembler's next expiry.

        The reassembler counts: a part it still holds (or a completed message it still knows, to ignore a resend)
        after the moment :meth:`expire` would have dropped it could complete, or not, a later MT differently."""
        due = self.due.next_time()
        if due - now < NEAR_DUE:
            return due  # no whole tick to skip: spare the queues below
        wake = first_timeout(self._awaiting.values(), self.timeout, due)
        held = self.reassembler.next_deadline
        return wake if held is None else min(wake, held)

    def expire(self, now: float) -> None:
        """Phones waiting longer than ``timeout`` fail: ``smtp_timeout``, ``no_mt`` or ``no_mail``. Taken from the
        heads of the waiting states' queues, oldest first, so a sweep costs what it finds."""
        late: dict[str, int] = {}
        for state, awaiting in self._awaiting.items():
            reason = _TIMEOUTS[state]
            late[reason] = late.get(reason, 0) + awaiting.expire(now - self.timeout, Step.FAILED)
        for reason, count in late.items():
            if count:
                self.counters.fail(reason, count)
        self.reassembler.expire(now)

    def latencies(self) -> dict[str, npt.NDArray[np.float64]]:
        """Mail sent to MT received, of every phone whose MT arrived (whatever became of its reply)."""
        got = ~np.isnan(self.t_mt) & ~np.isnan(self.t_mail)
        return {self.name: (self.t_mt[got] - self.t_mail[got]).astype(np.float64)}

    def finish(self) -> None:
        """Phones mid-flow when the run ends count as failed (``unfinished``)."""
        mid = np.nonzero((self.state >= Step.MAIL_QUEUED) & (self.state <= Step.REPLY_SENT))[0]
        if len(mid):
            self.state[mid] = Step.FAILED
            self.counters.fail("unfinished", len(mid))

    # -- the inbox -------------------------------------------------------------------------------------------

    def mail_received(self, message: EmailMessage, recipients: list[str], now: float) -> None:
        """A mail at the flow's inbox: the reply of the phone it comes from, if that phone is waiting for it."""
        local, _, _ = parseaddr(str(message.get("From", "")))[1].partition("@")
        if not local.lstrip("+").isdecimal():
            return
        row = self.ctx.population.row_of_msisdn(int(local.lstrip("+")))
        if row < 0 or self.state[row] != Step.REPLY_SENT:
            return
        index = int(self.ctx.index[row])
        body = message.get_body(preferencelist=("plain",))
        text = body.get_content().strip() if isinstance(body, EmailMessage) else ""
        if text != reply_text(self.ctx.seed, index) or f"p{index}@{INBOX_DOMAIN}" not in recipients:
            self._fail(row, "mail_text_mismatch", now)
            return
        self._complete(row, now, "reply_mailed")

    # -- workers ---------------------------------------------------------------------------------------------

    async def serve(self) -> None:
        """The inbox, registered with every carrier's mail relay; the SMTP and reply workers."""
        loop = asyncio.get_running_loop()
        inbox = _Inbox(self)
        sessions: list[SMTP] = []

        def protocol() -> SMTP:
            smtp = SMTP(inbox, hostname=INBOX_DOMAIN, loop=loop)
            sessions.append(smtp)
            return smtp

        server = await loop.create_server(protocol, "127.0.0.1", 0)
        host, port = server.sockets[0].getsockname()[:2]
        self.inbox = (str(host), int(port))
        relays = [s.mail_relay for c in self.ctx.carriers if (s := services_of(c)) is not None and s.mail_relay]
        for relay in relays:
            relay.exchangers[INBOX_DOMAIN] = self.inbox
        try:
            async with asyncio.TaskGroup() as workers:
                for _ in range(SMTP_WORKERS):
                    workers.create_task(self._mailer())
                for _ in range(MO_WORKERS):
                    workers.create_task(self._replier())
        finally:
            for relay in relays:
                relay.exchangers.pop(INBOX_DOMAIN, None)
            server.close()
            for smtp in sessions:
                if smtp.transport is not None:
                    smtp.transport.close()
            self.inbox = None

    async def _mailer(self) -> None:
        clients: dict[int, aiosmtplib.SMTP] = {}
        try:
            while True:
                row = await next_row(self.mail_queue)
                if self.state[row] == Step.MAIL_QUEUED:
                    await self._send_mail(clients, row)
        finally:
            for client in clients.values():
                client.close()

    async def _send_mail(self, clients: dict[int, aiosmtplib.SMTP], row: int) -> None:
        ctx = self.ctx
        carrier = int(ctx.carrier_of[row])
        door = ctx.door("smtp", carrier)
        domain = ctx.carriers[carrier].carrier.doors.smtp
        if door is None or domain is None:
            self._fail(row, "no_smtp_door", ctx.clock())
            return
        index = int(ctx.index[row])
        message = EmailMessage()
        message["From"] = SENDER
        message["To"] = f"{int(ctx.msisdns[row])}@{domain.domain}"
        message["Reply-To"] = f"p{index}@{INBOX_DOMAIN}"
        message.set_content(mail_text(ctx.seed, index) + "\n")
        now = ctx.clock()
        self._set(row, Step.SENDING, now)
        self.t_mail[row] = now
        self.counters.reached("mail_sent")
        reason = ""
        try:
            client = clients.get(carrier)
            if client is None or not client.is_connected:
                client = aiosmtplib.SMTP(hostname=door.host, port=door.port, local_hostname=INBOX_DOMAIN,
                                         start_tls=False, timeout=self.timeout)
                clients[carrier] = client
                await client.connect()
            await client.send_message(message)
        except aiosmtplib.SMTPRecipientsRefused as refused:
            reason = f"smtp_{refused.recipients[0].code}" if refused.recipients else "smtp_refused"
        except aiosmtplib.SMTPResponseException as err:
            reason = f"smtp_{err.code}"
        except (aiosmtplib.SMTPException, OSError) as err:
            reason = f"smtp_error_{type(err).__name__}"
        if reason:
            dropped = clients.pop(carrier, None)
            if dropped is not None:
                dropped.close()  # a fresh session for the next mail rather than guessing this one's state
        now = ctx.clock()
        if self.state[row] != Step.SENDING:
            return  # expired meanwhile, or its MT was garbled
        if reason:
            self._fail(row, reason, now)
            return
        self.counters.reached("mail_accepted")
        self._set(row, Step.ACCEPTED, now)
        if not np.isnan(self.t_mt[row]):
            self._mt_in(row, now)

    async def _replier(self) -> None:
        ctx = self.ctx
        while True:
            row = await next_row(self.reply_queue)
            if self.state[row] != Step.REPLY_SENT:
                continue
            services = services_of(ctx.carriers[int(ctx.carrier_of[row])])
            gateway = services.mail_gateway if services is not None else None
            if gateway is None:
                self._fail(row, "no_mail_gateway", ctx.clock())
                continue
            index = int(ctx.index[row])
            reason = ""
            try:
                await gateway.deliver_mo(str(int(ctx.msisdns[row])), f"p{index}@{INBOX_DOMAIN}",
                                         reply_text(ctx.seed, index))
            except MoNotForMail:
                reason = "mo_not_for_mail"
            except (aiosmtplib.SMTPException, OSError, RuntimeError) as err:
                reason = f"relay_error_{type(err).__name__}"
            if reason and self.state[row] == Step.REPLY_SENT:
                self._fail(row, reason, ctx.clock())
