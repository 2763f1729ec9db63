"""A carrier's email-to-SMS gateway over real SMTP: an aiosmtpd handler over :mod:`carrier_sim.mail.translate`.

Theory: aiosmtpd parses SMTP and calls a handler's ``handle_<VERB>`` hooks; this handler implements only the
two that decide anything. ``handle_RCPT`` judges each recipient as it arrives (RFC 5321 section 3.3: a
refused RCPT costs the client nothing, and the transaction goes on with the others), so unknown subscribers
and retired domains are refused before any content is sent. ``handle_DATA`` turns the content into SMS text
once and hands the same segments to the SMSC for each accepted recipient, through the injected
``send_mt(msisdn, segments)``. The SMSC side -- throttling, storing, delivery receipts -- is the caller's;
this module only moves lines and calls.

The server runs on the caller's event loop: ``loop.create_server(lambda: SMTP(handler, ...), host, port)``.
aiosmtpd's ``Controller`` would start a thread with a loop of its own, so ``send_mt`` would be called on a
loop the SMSC does not run on; here every hook runs on the one loop, and :meth:`MailGateway.stop` closes the
listener and every open session, so nothing outlives its owner.

Once the final dot of DATA has arrived the client has handed the message over, and the transaction finishes
even if the session does not: aiosmtpd cancels the session's task on a lost connection, so ``handle_DATA`` runs
the work in a task of the gateway's own behind :func:`asyncio.shield`, still writes the reply when the transport
can take it, and :meth:`MailGateway.stop` waits up to ``data_grace`` seconds for such transactions before it
closes the sessions. Cut short, a transaction would have sent the SMS to some subscribers and given the client
no reply, and the client's retry would send it to them again. The client's EOF (a half-close after pipelining
``.`` and ``QUIT``) cancels nothing here: the session answers every command received before it, the ``221``
included, and then ends (:class:`_Session`).

A client that stops reading cannot hold on to a session, nor to memory. aiosmtpd awaits the transport's drain
after each reply, so once asyncio's write buffer is past its high-water mark (64 KiB) the session reads no more
commands, its reader soon pauses the socket, and a client pipelining commands without reading the replies fills
its own buffers, not ours. Such a session is idle, and ``idle_timeout`` seconds later it ends; but aiosmtpd ends
it with ``transport.close()``, which waits for the buffer to drain, so a peer that never reads kept the socket
and the session's task forever (and ``stop()`` left them open too). :class:`_Session` aborts a transport that
still holds unsent octets, at the timeout and at :meth:`MailGateway.stop`; one with nothing unsent is closed as
before.

A retired gateway (:attr:`~carrier_sim.mail.translate.GatewayConfig.retired`) greets every connection with
RFC 7504's ``521 5.3.2`` and closes it, as a host that no longer accepts mail does.

After DATA, SMTP has one reply for all recipients (RFC 5321 section 4.2.5; only LMTP answers per
recipient). If the SMSC refuses every recipient the reply is ``451 4.3.0`` and the client retries later;
if it refuses only some, the reply is ``250`` (the rest were sent, and a retry would send them twice) and a
delivery status notice (RFC 3464 in RFC 6522's multipart/report) goes back to the envelope sender through
``send_mail`` with the null reverse-path, as section 3.6.3 requires of a server that accepted what it then
cannot deliver. The notice goes out after the reply, in a task the gateway owns and :meth:`stop` finishes.
``send_mt`` must be all or nothing for one subscriber: the gateway cannot take back segments already stored.

SMS to mail is :meth:`MailGateway.deliver_mo`: the carrier calls it for an MO that the translation layer
recognises as addressed to mail, and the resulting message leaves through ``send_mail``. Replies: for each
subscriber the gateway remembers where a reply to the last mail it handed to the SMSC for them goes (that
mail's Reply-To, else its sender), in an insertion-ordered dict of at most
:attr:`~carrier_sim.mail.translate.GatewayConfig.reply_paths` subscribers, the least recently mailed forgotten
first; an MO to the short code that names no address goes there.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import weakref
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import make_msgid
from types import TracebackType
from typing import AnyStr, ClassVar, Final, Self, cast

from aiosmtpd.smtp import SMTP, Envelope, Session

from carrier_sim.mail.translate import (
    GatewayConfig,
    GatewayRetired,
    MailRefused,
    SmtpReply,
    accepted_reply,
    delivered_reply,
    delivery_failure_notice,
    is_postmaster,
    judge_recipient,
    mail_to_sms,
    parse_message,
    parse_recipient,
    postmaster_reply,
    sms_to_mail,
    too_many_recipients_reply,
)
from carrier_sim.smpp.segmentation import Segment, SegmentationMode

__all__ = [
    "DEFAULT_DATA_GRACE",
    "DEFAULT_DATA_SIZE_LIMIT",
    "DEFAULT_IDLE_TIMEOUT",
    "DEFAULT_NOTICE_GRACE",
    "KnownSubscriber",
    "MailGateway",
    "Postmaster",
    "SendMail",
    "SendMt",
]

_log = logging.getLogger(__name__)

#: DATA larger than this is refused by aiosmtpd with 552 before it reaches the handler; an SMS gateway
#: has no use for attachments of megabytes.
DEFAULT_DATA_SIZE_LIMIT: Final = 256 * 1024

#: Hands one message's segments to the carrier's SMSC for one subscriber; may be sync or async.
SendMt = Callable[[str, list[Segment]], Awaitable[None] | None]
#: Says whether the carrier has a subscriber with this MSISDN (international digits, no '+').
KnownSubscriber = Callable[[str], bool]
#: Receives the mail addressed to the postmaster (RFC 5321 section 4.5.1), which never becomes SMS.
Postmaster = Callable[[EmailMessage], None]
#: Sends one mail out of the carrier (SMS to email, and delivery status notices) with the given envelope sender
#: (``MAIL FROM``); ``""`` is the null reverse-path ``<>`` that failure notices need (RFC 5321 section 6.1).
SendMail = Callable[[EmailMessage, str], Awaitable[None]]
#: How long :meth:`MailGateway.stop` lets failure notices still being sent finish before it cancels them.
DEFAULT_NOTICE_GRACE: Final = 5.0
#: How long :meth:`MailGateway.stop` lets transactions whose final dot has arrived finish (every MT handed to
#: the SMSC, the reply written) before it closes the sessions and cancels what is left.
DEFAULT_DATA_GRACE: Final = 5.0
#: How long a session waits for the client's next command before it ends the connection: RFC 5321 section
#: 4.5.3.2.7's server timeout ("at least 5 minutes"), and aiosmtpd's default. A session whose replies the client
#: does not read waits here too, since it reads no command until they drain.
DEFAULT_IDLE_TIMEOUT: Final = 300.0


class _Session(SMTP):
    """aiosmtpd's SMTP session, with an RFC 3463 enhanced status code on the one reply of its own a well-formed
    conversation can meet in DATA that lacks one, and with every command received before the client's EOF
    answered.

    A content line longer than 1,000 octets with its CRLF (RFC 5321 section 4.5.3.1.6; RFC 5322 section 2.1.1's
    998 characters) is refused by aiosmtpd itself, once the whole content is read, before the handler sees it.
    Its reply keeps aiosmtpd's code and text and gains X.5.2: 500 is the syntax-error reply, and section 4.2.2
    says it may mean a line too long. The text is aiosmtpd's exact one; a test holds this to it.

    EOF: aiosmtpd's ``eof_received`` cancels the session's task at once, with the lines already received still
    unread. A pipelining client (RFC 2920) that sends ``.`` and ``QUIT`` and then half-closes its socket got no
    ``221`` (and, had the EOF come before the final dot was read, not even the transaction). Here the EOF goes to
    the stream reader behind the lines before it, as TCP delivered them, and the transport stays open for the
    replies: every complete command is answered, ``QUIT`` closing as usual. The reader then reports the end of
    input (:class:`asyncio.IncompleteReadError`, which aiosmtpd hands to :meth:`handle_exception`); what is left
    then is a partial line or content without its final dot, nothing to answer, and the session ends without a
    reply, as aiosmtpd ended it at the EOF.

    A client that does not read: aiosmtpd's idle timeout (and its own QUIT, its 421 and 502 goodbyes, the end at
    EOF above) ends a session with ``transport.close()``, which sends what is buffered before it closes. A peer
    whose receive window stays full never takes it, so the close never finished: the socket, the session and its
    task stayed for the life of the process. Here the timeout aborts the connection instead when octets are still
    unsent (in the whole ``timeout`` the client has not read enough of them for the session to read another
    command), and :meth:`end` does the same for
    :meth:`MailGateway.stop`. The timer aiosmtpd set at the last command is still running after each of its
    closes, so a close stuck on a full buffer is aborted when it fires.
    """

    #: Set when the session ended at the client's EOF: nothing more is written.
    _ended_at_eof: bool = False

    _ENHANCED: ClassVar[dict[str, str]] = {
        "500 Line too long (see RFC5321 4.5.3.1.6)": "500 5.5.2 Line too long (see RFC5321 4.5.3.1.6)",
        # RFC 5321 4.5.3.1.4: a command line past 512 octets; a syntax error in RFC 3463's terms.
        "500 Command line too long": "500 5.5.2 Command line too long",
        # Past data_size_limit: RFC 3463 X.3.4, "Message too big for system".
        "552 Error: Too much mail data": "552 5.3.4 Error: Too much mail data",
    }

    def eof_received(self) -> bool | None:
        """The client has sent all it will: let the session read what came before, then end (see the class)."""
        if self.session is None or self.session.ssl is not None:
            # STARTTLS is never offered here (no tls_context); over TLS aiosmtpd's own handling would stand.
            return super().eof_received()
        _log.debug("%r EOF received; answering what came before it", self.session.peer)
        # StreamReaderProtocol's: the reader gets the EOF, and True keeps the transport open for our replies.
        return asyncio.StreamReaderProtocol.eof_received(self)

    async def handle_exception(self, error: Exception) -> str:
        """End the session at the end of the client's input; anything else is aiosmtpd's to answer."""
        if not isinstance(error, asyncio.IncompleteReadError):
            return await super().handle_exception(error)
        # Only the EOF eof_received let through ends the reader's input: every complete line before it has been
        # answered, and a partial command or a message without its final dot gets no reply (RFC 5321 section
        # 4.1.1.4: only the end of mail data indication has the server process the transaction). aiosmtpd writes
        # whatever this returns, so push drops it, and the task cancelled here stops at that push's await, as
        # aiosmtpd's QUIT stops it.
        self._ended_at_eof = True
        if self.transport is not None:
            self.transport.close()
        task = asyncio.current_task()
        if task is not None:
            task.cancel()
        return ""

    def _timeout_cb(self) -> None:
        """aiosmtpd's idle timer: no command for ``timeout`` seconds. aiosmtpd's own only closes the transport."""
        self._end("idle timeout")

    def end(self) -> None:
        """End the connection now (:meth:`MailGateway.stop`)."""
        self._end("gateway stopping")

    def _end(self, why: str) -> None:
        """Close the connection, or abort it when the client has left replies unread: a close would wait for
        them for as long as the client does not read."""
        # A cast, not an isinstance check: uvloop's transports do not derive from asyncio's classes.
        transport = cast(asyncio.WriteTransport | None, self.transport)
        if transport is None:  # already lost
            return
        peer = self.session.peer if self.session is not None else None
        if unsent := transport.get_write_buffer_size():
            _log.info("%r %s with %d octets of replies unread: connection aborted", peer, why, unsent)
            transport.abort()
        else:
            _log.info("%r %s: connection closed", peer, why)
            transport.close()

    async def push(self, status: AnyStr) -> None:
        """Write one reply, with the enhanced code added when it is one of aiosmtpd's in :attr:`_ENHANCED`."""
        if self._ended_at_eof:
            # A suspension point for the cancellation handle_exception asked for: aiosmtpd's loop would
            # otherwise read the ended input again at once, and again, without ever letting it land.
            await asyncio.sleep(0)
            return
        if isinstance(status, str):
            await super().push(self._ENHANCED.get(status, status))
        else:
            await super().push(status)


class _RetiredGreeting(asyncio.Protocol):
    """RFC 7504 section 3: a host that does not accept mail may answer 521 at once and close."""

    def __init__(self, hostname: str) -> None:
        self._hostname = hostname

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports (Ray runs actors on uvloop) do not derive
        # from asyncio's classes.
        transport = cast(asyncio.WriteTransport, transport)
        reply = GatewayRetired(f"{self._hostname} does not accept mail").reply
        transport.write(f"{reply}\r\n".encode("ascii"))
        transport.close()


class MailGateway:
    """One carrier's email-to-SMS gateway: an aiosmtpd handler, and the server it runs in.

    ``send_mt(msisdn, segments)`` delivers an MT (sync or async); ``known_subscriber(msisdn)`` says whether
    the carrier has that subscriber; ``send_mail(message)`` sends mail out (SMS to email, failure notices);
    without it, :meth:`deliver_mo` raises and failure notices are only logged. ``postmaster(message)`` gets the
    mail for the postmaster, which the gateway accepts as RFC 5321 requires and never turns into SMS; without
    it such mail is only logged. When it raises, the postmaster is a recipient that failed, as a subscriber the
    SMSC refused is: 451 when it was the only one, else the subscribers' reply and, after a 250, a notice.

    ``idle_timeout`` is how long a session waits for the client's next command (aiosmtpd's ``timeout``); a client
    that has stopped reading the replies sends none that is read, so it is ended then too, its connection aborted
    rather than closed when replies are still unsent.
    """

    def __init__(
        self,
        config: GatewayConfig,
        *,
        send_mt: SendMt,
        known_subscriber: KnownSubscriber,
        send_mail: SendMail | None = None,
        postmaster: Postmaster | None = None,
        data_size_limit: int = DEFAULT_DATA_SIZE_LIMIT,
        notice_grace: float = DEFAULT_NOTICE_GRACE,
        data_grace: float = DEFAULT_DATA_GRACE,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
    ) -> None:
        self.config = config
        self._send_mt = send_mt
        self._known_subscriber = known_subscriber
        self._send_mail = send_mail
        self._postmaster = postmaster
        self._data_size_limit = data_size_limit
        if idle_timeout <= 0:
            raise ValueError(f"idle_timeout must be positive, not {idle_timeout!r}")
        self._idle_timeout = idle_timeout
        modulus = 0x100 if config.mode is SegmentationMode.UDH_CONCAT_8 else 0x10000
        self._references: Iterator[int] = (n % modulus for n in itertools.count())
        self._server: asyncio.Server | None = None
        self._sessions: weakref.WeakSet[_Session] = weakref.WeakSet()
        # Failure notices are sent after the DATA reply, each in a task the gateway owns: kept here until done,
        # and awaited (or, past the grace, cancelled) by stop() -- nothing outlives the gateway.
        self._notices: set[asyncio.Task[None]] = set()
        self._notice_grace = notice_grace
        # Each DATA past its final dot is a task of the gateway's (handle_DATA shields it from the session's
        # cancellation); stop() lets them finish within data_grace before closing the sessions.
        self._transactions: set[asyncio.Task[str]] = set()
        self._data_grace = data_grace
        # MSISDN -> where a reply to the last mail handed to the SMSC for it goes. A dict keeps insertion order:
        # re-inserting on each mail makes its first key the least recently mailed subscriber, the one evicted
        # when the map is full, so memory stays bounded however many subscribers are mailed.
        self._reply_paths: dict[str, str] = {}

    # -- aiosmtpd hooks -----------------------------------------------------------------------------------

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        """Accept a subscriber of a live domain or the postmaster (250 2.1.5); refuse anything else with its 5xx,
        and any recipient past :attr:`~carrier_sim.mail.translate.GatewayConfig.max_recipients` with 452."""
        if len(envelope.rcpt_tos) >= self.config.max_recipients:
            # Before any judgement, as Postfix does: past the limit the answer is the same for every address, and
            # the client learns to send the rest in another transaction rather than which of them we would take.
            return str(too_many_recipients_reply())
        if is_postmaster(address, self.config):
            envelope.rcpt_tos.append(address)
            envelope.rcpt_options.extend(rcpt_options)
            return str(postmaster_reply())
        try:
            recipient = judge_recipient(address, self.config, self._known_subscriber)
        except MailRefused as refusal:
            _log.info("RCPT %s refused: %s", address, refusal.reply)
            return str(refusal.reply)
        # With a hook in place aiosmtpd leaves the envelope to us.
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return str(accepted_reply(recipient))

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        """Translate the content once, send its segments to every accepted recipient, and say how it went.

        Once the final dot has arrived the transaction runs to its end whatever happens to the session: the work
        is a task of the gateway's own, shielded from the session's cancellation. aiosmtpd cancels the session
        when the connection is lost (:meth:`stop` closing it, the peer going away; not on a half-close, which
        :class:`_Session` answers to the end); cut short, some subscribers would have the SMS and the client no
        reply, so its retry would send them a second. The reply still goes out when the transport is still
        writable, and :meth:`stop` gives transactions ``data_grace`` seconds.
        """
        work = asyncio.get_running_loop().create_task(self._transaction(envelope))
        self._transactions.add(work)
        work.add_done_callback(self._transactions.discard)
        interrupted = False
        while True:
            try:
                reply = await asyncio.shield(work)
                break
            except asyncio.CancelledError:
                if work.cancelled():  # stop() gave up on it after the grace: nothing to reply
                    raise
                # The session is being torn down; the transaction is not. Any further cancel lands here too, and
                # the loop waits on.
                interrupted = True
        if interrupted:
            # aiosmtpd will close the writer once this hook has raised, so the reply is written now, the one
            # thing it would have done; the cancellation then goes on as asked.
            transport = server.transport
            if transport is not None and not transport.is_closing():
                # A cast, not an isinstance check: uvloop's transports do not derive from asyncio's classes.
                cast(asyncio.WriteTransport, transport).write(f"{reply}\r\n".encode("ascii"))
            raise asyncio.CancelledError
        return reply

    async def _transaction(self, envelope: Envelope) -> str:
        """What DATA does once the content is in: translate it, hand it to the SMSC, and return the reply."""
        content = envelope.original_content if envelope.original_content is not None else envelope.content
        try:
            message = parse_message(content or b"")
        except MailRefused as refusal:
            # Before any recipient is looked at: content the parser cannot read goes to nobody, the postmaster
            # included (there is no message to hand over).
            _log.info("DATA from %s refused: %s", envelope.mail_from, refusal.reply)
            return str(refusal.reply)
        postmaster = [address for address in envelope.rcpt_tos if is_postmaster(address, self.config)]
        # The same subscriber named twice (447700900123@, +447700900123@) gets the message once.
        msisdns = list(
            dict.fromkeys(
                parse_recipient(address, self.config).msisdn
                for address in envelope.rcpt_tos
                if not is_postmaster(address, self.config)
            )
        )
        if not msisdns:
            if not self._to_postmaster(message, envelope.mail_from):
                # The one recipient failed, as when the SMSC fails every subscriber: nothing went anywhere, so
                # the client's retry duplicates nothing.
                return str(SmtpReply(451, "4.3.0", "postmaster mailbox unavailable, try again later"))
            return str(SmtpReply(250, "2.0.0", "delivered to postmaster"))
        try:
            sms = mail_to_sms(
                message, self.config, reference=next(self._references), envelope_from=envelope.mail_from
            )
        except MailRefused as refusal:
            _log.info("DATA from %s refused: %s", envelope.mail_from, refusal.reply)
            return str(refusal.reply)
        except Exception:
            # translate turns whatever the peer sent into a MailRefused; anything else is our defect, and
            # RFC 5321's answer to it is "451 local error in processing" (retry later), not aiosmtpd's "500".
            _log.exception("DATA from %s could not be translated", envelope.mail_from)
            return str(SmtpReply(451, "4.3.0", "local error in processing, try again later"))
        # A sink that fails costs the postmaster its copy, never the subscribers theirs.
        postmaster_failed = bool(postmaster) and not self._to_postmaster(message, envelope.mail_from)
        failed: list[str] = []
        for msisdn in msisdns:
            try:
                result = self._send_mt(msisdn, list(sms.segments))
                if inspect.isawaitable(result):
                    await result
            except Exception:  # the SMSC is another component: its failure is a reply, not a crash
                _log.exception("send_mt to %s failed", msisdn)
                failed.append(msisdn)
                continue
            self._remember_reply_path(msisdn, sms.reply_to)
        if failed and len(failed) == len(msisdns):
            # The postmaster's copy, if it went, may come again with the retry: a second abuse report is a small
            # price for subscribers who would otherwise never get the SMS.
            return str(SmtpReply(451, "4.3.0", "SMSC unavailable, try again later"))
        if failed or postmaster_failed:
            # Not awaited here: the client's 250 must not wait for a mail to go out somewhere else.
            self._spawn_notice(envelope.mail_from, failed, postmaster[0] if postmaster_failed else None)
        return str(delivered_reply(len(msisdns) - len(failed), len(sms.segments)))

    def _remember_reply_path(self, msisdn: str, reply_to: str | None) -> None:
        """Remember where ``msisdn``'s reply to the mail just handed to the SMSC goes, evicting the oldest."""
        # Forgotten first even when there is a new one, so that re-inserting moves the subscriber to the end.
        self._reply_paths.pop(msisdn, None)
        if reply_to is None or self.config.reply_paths == 0:
            # The last mail named no sender: a reply must not go to whoever sent the one before it.
            return
        self._reply_paths[msisdn] = reply_to
        while len(self._reply_paths) > self.config.reply_paths:
            del self._reply_paths[next(iter(self._reply_paths))]

    def reply_path(self, msisdn: str) -> str | None:
        """Where an MO from ``msisdn`` (a '+' allowed) to the short code without an address goes, or None."""
        return self._reply_paths.get(msisdn.lstrip("+"))

    def _to_postmaster(self, message: EmailMessage, mail_from: str | None) -> bool:
        """Mail for the postmaster: logged, and handed to the ``postmaster`` sink when there is one; False when
        the sink failed."""
        _log.info("mail for postmaster from %r: %r", mail_from, message.get("Subject", ""))
        if self._postmaster is None:
            return True
        try:
            self._postmaster(message)
        except Exception:  # the sink is another component, as the SMSC is: its failure is a reply, not a crash
            _log.exception("postmaster sink failed for mail from %r", mail_from)
            return False
        return True

    def _spawn_notice(self, mail_from: str | None, failed: list[str], postmaster: str | None = None) -> None:
        """Start sending the failure notice to ``mail_from`` (none for a null sender: RFC 5321 section 6.1)."""
        if not mail_from or mail_from == "<>" or self._send_mail is None:
            _log.warning("no failure notice for %s (sender %r)", [*failed, *filter(None, [postmaster])], mail_from)
            return
        task = asyncio.get_running_loop().create_task(
            self._notify_failure(mail_from, failed, postmaster, self._send_mail)
        )
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _notify_failure(
        self, mail_from: str, failed: list[str], postmaster: str | None, send_mail: SendMail
    ) -> None:
        """Tell the envelope sender which recipients did not get the message, from the null reverse-path."""
        notice = delivery_failure_notice(
            mail_from,
            failed,
            self.config,
            postmaster=postmaster,
            date=datetime.now(UTC),
            message_id=make_msgid(domain=self.config.hostname),
        )
        try:
            await send_mail(notice, "")
        except Exception:
            _log.exception("failure notice to %s could not be sent", mail_from)

    # -- SMS to mail --------------------------------------------------------------------------------------

    async def deliver_mo(self, source_msisdn: str, destination: str, text: str) -> EmailMessage:
        """Turn an MO addressed to mail into a message and send it; returns the message sent.

        An MO to the short code whose first word holds no ``@`` is a reply to the last mail this gateway handed
        to the SMSC for ``source_msisdn`` (:meth:`reply_path`), and goes to that mail's Reply-To or sender.

        Raises :class:`~carrier_sim.mail.translate.MoNotForMail` for an MO that is not for mail, and
        :class:`RuntimeError` when the gateway was built without ``send_mail``.
        """
        if self._send_mail is None:
            raise RuntimeError("this gateway has no send_mail; it cannot deliver SMS to email")
        message = sms_to_mail(
            source_msisdn,
            destination,
            text,
            self.config,
            reply_to=self.reply_path(source_msisdn),
            date=datetime.now(UTC),
            message_id=make_msgid(domain=self.config.sms_domain),
        )
        await self._send_mail(message, f"{source_msisdn.lstrip('+')}@{self.config.sms_domain}")
        return message

    # -- server lifecycle ---------------------------------------------------------------------------------

    def _protocol(self) -> asyncio.Protocol:
        """A protocol for one connection: an SMTP session, or the 521 greeting of a retired gateway."""
        if self.config.retired:
            return _RetiredGreeting(self.config.hostname)
        smtp = _Session(
            self,
            hostname=self.config.hostname,  # never socket.getfqdn(): a DNS lookup per connection
            data_size_limit=self._data_size_limit,
            timeout=self._idle_timeout,
            loop=asyncio.get_running_loop(),
        )
        self._sessions.add(smtp)
        return smtp

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (0: any free port) on the running loop; returns the bound address."""
        if self._server is not None:
            raise RuntimeError("gateway already started")
        self._server = await asyncio.get_running_loop().create_server(self._protocol, host, port)
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        """The (host, port) the gateway listens on."""
        if self._server is None:
            raise RuntimeError("gateway not started")
        sockname = self._server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def stop(self) -> None:
        """Stop listening; let transactions whose final dot has arrived finish and reply within ``data_grace``
        seconds; close every open session (Python 3.11's ``wait_closed`` does not wait for them; 3.12's would wait
        forever for a close stuck on a client that does not read), aborting those whose client has left replies
        unread, and cancelling any transaction still running; and let failure notices being sent finish within
        ``notice_grace`` seconds, cancelling any still running."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        await self._finish_transactions()
        for smtp in list(self._sessions):
            smtp.end()
        await self._cancel_transactions()
        await server.wait_closed()
        await self._finish_notices()
        # Let the sessions' connection_lost callbacks run before the caller tears the loop down.
        await asyncio.sleep(0)

    async def _finish_transactions(self) -> None:
        """Wait, at most ``data_grace`` seconds, for the transactions under way, and for any that start meanwhile
        on a session still open (a pipelining client); then let their sessions write the replies."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._data_grace
        while self._transactions and (remaining := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._transactions), timeout=remaining)
        # A finished transaction wakes its session, which writes the reply into the transport's buffer; one turn
        # of the loop lets it, and closing the transport afterwards still sends what is buffered.
        await asyncio.sleep(0)

    async def _cancel_transactions(self) -> None:
        """Cancel the transactions still running past the grace (their sessions are closed: no reply can go)."""
        pending = set(self._transactions)
        for task in pending:
            _log.warning("DATA still being handed to the SMSC at stop; cancelled, some recipients may lack it")
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _finish_notices(self) -> None:
        """Let the failure notices still going out finish within the grace; cancel the rest and await them."""
        if not self._notices:
            return
        _, pending = await asyncio.wait(set(self._notices), timeout=self._notice_grace)
        for task in pending:
            _log.warning("failure notice still unsent at stop; cancelled")
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def __aenter__(self) -> Self:
        if self._server is None:
            await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop()
