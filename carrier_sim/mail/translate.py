"""What a carrier's email-to-SMS gateway decides, with no I/O: recipients, replies, SMS text and mail.

Theory: a carrier publishes an SMS domain (``sms.carrier-a.example``); mail to ``<msisdn>@<domain>`` is
turned into a mobile-terminated SMS to that subscriber, and an SMS a subscriber sends to an email address
(through the gateway's short code, or with the address as destination) leaves as mail. This module holds
every decision of that gateway and nothing else: the SMTP edge in :mod:`carrier_sim.mail.gateway` only moves
lines, as the SMPP core and :mod:`carrier_sim.net` split the work.

Refusals are typed, like the SMPP core's errors: each :class:`MailRefused` subclass knows the SMTP reply
code (RFC 5321 section 4.2) and the enhanced status code (RFC 3463 section 3) the peer must see, and the
adapter turns one into a reply line without a table of its own.

===================================  =======  =========  ==================================================
refusal                              reply    enhanced   RFC 3463 meaning
===================================  =======  =========  ==================================================
:class:`MalformedRecipient`          501      5.1.3      Bad destination mailbox address syntax (no ``@``)
:class:`UnknownSubscriber`           550      5.1.1      Bad destination mailbox address (not a number, or
                                                         no subscriber has it)
:class:`RetiredDomain`               550      5.1.2      Bad destination system address
:class:`ForeignDomain`               550      5.7.1      Delivery not authorized (we are not a relay)
:class:`MessageTooLong`              552      5.3.4      Message too big for system
:class:`UnsupportedContent`          554      5.6.1      Media not supported
:class:`UnknownCharset`              554      5.6.3      Conversion required but not supported
:class:`UnconvertibleText`           554      5.6.5      Conversion failed (text no SMS alphabet holds)
:class:`MalformedContent`            554      5.6.0      Other or undefined media error
:class:`EmptyMessage`                554      5.6.0      Other or undefined media error
:class:`GatewayRetired`              521      5.3.2      System not accepting network messages (RFC 7504)
===================================  =======  =========  ==================================================

Mail to SMS: the text is ``"<sender><sender separator><subject><separator><body>"`` (subject or body alone
when the other is empty; no sender part when the mail names no usable sender or
:attr:`GatewayConfig.sender_separator` is None), the sender being the addr-spec of the From header (else the
envelope's MAIL FROM), the body being the message's text/plain part (text/html with its tags dropped when
there is no plain part, or when the plain part is blank), decoded from quoted-printable or base64 and from
its charset, with any RFC 3676 signature (after ``"-- "``) cut.
The text is coded as a sender would code it (:func:`carrier_sim.smpp.coding.choose_coding`: GSM 7-bit if it
fits, else UCS-2) and split by :func:`carrier_sim.smpp.segmentation.split_text`; past
:attr:`GatewayConfig.max_segments` it is trimmed (:attr:`Overflow.TRUNCATE`) or refused
(:attr:`Overflow.REFUSE`). Trimming cuts the subject and body, never the sender: an address is shown whole
or not at all.

SMS to mail: an MO addressed to :attr:`GatewayConfig.short_code` carries the address as the first token of
its text, up to the first white space (``"alice@example.com (Lunch) see you at 1"``, the optional one-line
parenthesised words holding a letter being the subject: ``"(555) 123-4567"`` is text);
an MO whose destination itself is an address carries only the body. The mail comes from
``<msisdn>@<sms domain>``, so a reply finds its way back through this gateway. An MO to the short code
whose first word holds no ``@`` is a reply: :func:`sms_to_mail` sends it to the ``reply_to`` the caller
remembered for the subscriber (:attr:`SmsText.reply_to` of the last mail it got), the whole text as body.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from email import policy
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses
from html.parser import HTMLParser
from typing import ClassVar, Final

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.coding import DataCoding, choose_coding
from carrier_sim.smpp.segmentation import MAX_SEGMENTS, Segment, SegmentationMode, TooManySegments, split_text

__all__ = [
    "EmptyMessage",
    "ForeignDomain",
    "GatewayConfig",
    "GatewayRetired",
    "MailRefused",
    "MalformedContent",
    "MalformedRecipient",
    "MessageTooLong",
    "MoNotForMail",
    "Overflow",
    "Recipient",
    "RetiredDomain",
    "SmsText",
    "SmtpReply",
    "UnconvertibleText",
    "UnknownCharset",
    "UnknownSubscriber",
    "UnsupportedContent",
    "accepted_reply",
    "delivered_reply",
    "delivery_failure_notice",
    "is_postmaster",
    "judge_recipient",
    "mail_to_sms",
    "message_text",
    "parse_message",
    "parse_recipient",
    "postmaster_reply",
    "reply_address",
    "sender_address",
    "sms_to_mail",
    "too_many_recipients_reply",
    "trim_to_segments",
]

#: E.164 (ITU-T E.164 section 6.1): at most 15 digits, and no country code begins with 0.
_MSISDN: Final = re.compile(r"\+?([1-9][0-9]{0,14})")
_NATIONAL: Final = re.compile(r"[0-9]{1,15}")
#: "(subject) rest": the parentheses close before any line break, and white space (or the end) follows them.
_SUBJECT_IN_SMS: Final = re.compile(r"\((?P<subject>[^()\r\n]*)\)(?:\s+(?P<body>.*))?", re.DOTALL)
_BLANK_LINES: Final = re.compile(r"\n{3,}")
_SPACES: Final = re.compile(r"[ \t]+")
#: No-break spaces (HTML's &nbsp;, French typography's narrow one) are spaces to a reader, and GSM 03.38 has
#: only the plain one: left in, one &nbsp; would send the whole text as UCS-2, in less than half the room.
_NO_BREAK_SPACES: Final = str.maketrans({"\u00a0": " ", "\u2007": " ", "\u202f": " "})
#: C0 and C1 controls other than tab and line feed: a NUL or a backspace is not text a handset shows.
_CONTROLS: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
#: RFC 3676 section 4.3: a line of "-- " separates the signature, which has no place in an SMS.
_SIGNATURE: Final = "\n-- \n"
#: Code points that are not characters: no SMS alphabet, UCS-2 included, can carry a lone one.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
#: RFC 5321 section 4.5.3.1.3: a path is at most 256 octets, brackets included, so an address at most 254.
_MAX_ADDRESS: Final = 254


@dataclass(frozen=True, slots=True)
class SmtpReply:
    """One SMTP reply: ``code`` (RFC 5321 section 4.2.3), ``enhanced`` status (RFC 3463) and text.

    ``str()`` gives the reply line aiosmtpd pushes, without CRLF: ``"550 5.1.1 unknown subscriber"``.
    """

    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        # The text may quote what the peer sent (a charset name): a CR or LF in it would end the reply early
        # and start another, and a non-ASCII character would not encode on a session without SMTPUTF8.
        text = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii") for c in self.text)
        return f"{self.code} {self.enhanced} {text}"


class MailRefused(Exception):
    """Base of every refusal; the class attributes are the SMTP reply the peer sees.

    RFC 5321 section 4.2.1: "5yz Permanent Negative Completion reply" -- the client must not repeat the same
    request, which is the point: retrying mail to a subscriber the carrier does not have is pointless.
    """

    code: ClassVar[int] = 554
    enhanced: ClassVar[str] = "5.0.0"

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    @property
    def reply(self) -> SmtpReply:
        """The reply line this refusal becomes."""
        return SmtpReply(self.code, self.enhanced, self.text)


class MalformedRecipient(MailRefused):
    """The recipient is not ``local@domain`` at all (RFC 5321 4.2.3 "501 Syntax error in parameters")."""

    code = 501
    enhanced = "5.1.3"


class UnknownSubscriber(MailRefused):
    """No such mailbox (RFC 3463 X.1.1): the local part is not a phone number, or no subscriber has it."""

    code = 550
    enhanced = "5.1.1"


class RetiredDomain(MailRefused):
    """The carrier used to serve this SMS domain and no longer does (RFC 3463 X.1.2)."""

    code = 550
    enhanced = "5.1.2"


class ForeignDomain(MailRefused):
    """The domain is not the carrier's: the gateway does not relay (RFC 3463 X.7.1)."""

    code = 550
    enhanced = "5.7.1"


class MessageTooLong(MailRefused):
    """The text needs more segments than the gateway sends (RFC 5321 "552 ... exceeded storage allocation")."""

    code = 552
    enhanced = "5.3.4"


class UnsupportedContent(MailRefused):
    """The message has no text part an SMS can carry (RFC 3463 X.6.1)."""

    code = 554
    enhanced = "5.6.1"


class UnknownCharset(MailRefused):
    """The text part names a charset Python cannot decode (RFC 3463 X.6.3)."""

    code = 554
    enhanced = "5.6.3"


class UnconvertibleText(MailRefused):
    """The text decodes to characters no SMS alphabet holds (RFC 3463 X.6.5 "Conversion Failed").

    A lone surrogate (U+D800..U+DFFF) is not a character: UCS-2 and UTF-16 have no encoding for one, GSM 03.38
    no symbol. Python's utf-7 and unicode_escape codecs decode ``+2AA-`` and ``\\ud800`` to one all the same, and a
    mail may name any codec Python has as its charset. Retrying the same content cannot succeed, hence a 5xx.
    """

    code = 554
    enhanced = "5.6.5"


class MalformedContent(MailRefused):
    """The MIME structure cannot be read (a multipart without its boundary, ...): RFC 3463 X.6.0."""

    code = 554
    enhanced = "5.6.0"


class EmptyMessage(MailRefused):
    """Neither subject nor body holds any text (RFC 3463 X.6.0)."""

    code = 554
    enhanced = "5.6.0"


class GatewayRetired(MailRefused):
    """The whole gateway is retired: RFC 7504 "521 Host does not accept mail", sent as the greeting."""

    code = 521
    enhanced = "5.3.2"


class MoNotForMail(ValueError):
    """An MO the gateway cannot turn into mail: not addressed to it, or no valid address in it."""


class Overflow(enum.Enum):
    """What a text longer than :attr:`GatewayConfig.max_segments` gets."""

    TRUNCATE = "truncate"
    REFUSE = "refuse"


@dataclass(frozen=True, slots=True)
class GatewayConfig:
    """One carrier's email-to-SMS gateway.

    ``domains``: SMS domains served (compared case-insensitively). ``retired_domains``: domains once served,
    refused with 550 5.1.2. ``retired``: the whole gateway answers 521 and takes nothing.
    ``country_code`` and ``trunk_prefix``: with a country code, a national number (``07700900123``) is read
    as international (``447700900123``); without one, only international numbers are accepted.
    ``international_prefix`` (ITU-T E.164 "00"; empty: none): a number dialled with it (``00447700900123``)
    is international, with or without a country code.
    ``max_segments``: 1..255; ``overflow``: trim or refuse longer texts. ``short_code``: the MO destination
    whose text starts with an email address (or, without one, is a reply to the last mail's sender).
    ``hostname``: the name in the SMTP greeting. ``sender_separator``: the SMS text starts with the mail's
    sender and this separator (``"alice@example.com / Lunch: see you at 1"``), so the phone can tell who wrote
    and reply; None leaves the sender out. ``reply_paths``: how many subscribers' last senders
    :class:`~carrier_sim.mail.gateway.MailGateway` remembers for replies to the short code (oldest forgotten
    first; 0: none). ``max_recipients``: how many RCPTs one transaction may have accepted; the next ones get
    :func:`too_many_recipients_reply`. RFC 5321 section 4.5.3.1.8 requires at least 100; the default is that
    minimum, because each recipient here is an SMS the carrier sends and pays for -- one mail to a thousand
    subscribers (Postfix's own limit, which suits a relay) is a thousand texts from one DATA, an amplifier for
    spam -- while a client that has more sends them in another transaction after the 452 (section 4.5.3.1.10).
    Less than 100 emulates a gateway stricter than the RFC allows.
    """

    domains: tuple[str, ...]
    retired_domains: tuple[str, ...] = ()
    retired: bool = False
    country_code: str | None = None
    trunk_prefix: str = "0"
    international_prefix: str = "00"
    max_segments: int = 3
    overflow: Overflow = Overflow.TRUNCATE
    mode: SegmentationMode = SegmentationMode.UDH_CONCAT_8
    allow_latin1: bool = False
    subject_separator: str = ": "
    short_code: str | None = None
    hostname: str = "mail.carrier.example"
    sender_separator: str | None = " / "
    reply_paths: int = 100_000
    max_recipients: int = 100
    _served: frozenset[str] = field(init=False, repr=False, compare=False)
    _retired: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.domains:
            raise ValueError("a gateway serves at least one SMS domain")
        if not 1 <= self.max_segments <= MAX_SEGMENTS:
            raise ValueError(f"max_segments {self.max_segments} is out of range 1..{MAX_SEGMENTS}")
        if self.country_code is not None and not self.country_code.isdigit():
            raise ValueError(f"country_code {self.country_code!r} is not digits")
        if self.reply_paths < 0:
            raise ValueError(f"reply_paths {self.reply_paths} is negative")
        if self.max_recipients < 1:
            raise ValueError(f"max_recipients {self.max_recipients} is less than 1")
        object.__setattr__(self, "_served", frozenset(d.lower() for d in self.domains))
        object.__setattr__(self, "_retired", frozenset(d.lower() for d in self.retired_domains))

    @property
    def sms_domain(self) -> str:
        """The domain mail from subscribers comes from: the first of :attr:`domains`."""
        return self.domains[0].lower()

    def serves(self, domain: str) -> bool:
        """True if ``domain`` is one of this gateway's live SMS domains."""
        return domain.lower() in self._served

    def has_retired(self, domain: str) -> bool:
        """True if ``domain`` is one this gateway served and retired."""
        return domain.lower() in self._retired


@dataclass(frozen=True, slots=True)
class Recipient:
    """An accepted RCPT: the subscriber's MSISDN (international digits, no '+') and the domain used."""

    msisdn: str
    domain: str


@dataclass(frozen=True, slots=True)
class SmsText:
    """What one mail becomes: the text sent, its data_coding, the segments, and whether it was trimmed.

    ``sender`` is the address shown at the start of ``text`` (None: none shown); ``reply_to`` is where a reply
    to this mail goes (its Reply-To, else its sender; None: nowhere), whether or not the sender is shown.
    """

    text: str
    data_coding: DataCoding
    segments: list[Segment]
    truncated: bool
    sender: str | None = None
    reply_to: str | None = None


def accepted_reply(recipient: Recipient) -> SmtpReply:
    """RFC 3463 X.1.5 "Destination address valid", the reply to an accepted RCPT."""
    return SmtpReply(250, "2.1.5", f"subscriber {recipient.msisdn} ok")


def too_many_recipients_reply() -> SmtpReply:
    """The reply to an RCPT past :attr:`GatewayConfig.max_recipients`: RFC 5321 section 4.5.3.1.10's 452 (a
    transient failure: the client sends the refused recipients in a later transaction), RFC 3463 X.5.3."""
    return SmtpReply(452, "4.5.3", "Too many recipients")


def delivered_reply(recipients: int, segments: int) -> SmtpReply:
    """RFC 3463 X.6.0 on success: the message was handed to the SMSC."""
    return SmtpReply(250, "2.6.0", f"queued as SMS: {segments} segment(s) to {recipients} subscriber(s)")


def parse_recipient(address: str, config: GatewayConfig) -> Recipient:
    """Read ``<number>@<domain>`` into a :class:`Recipient`, judging the domain before the local part.

    Raises :class:`ForeignDomain`, :class:`RetiredDomain`, :class:`MalformedRecipient` (not ``local@domain``)
    or :class:`UnknownSubscriber` (the local part is not a number).
    """
    local, at, domain = address.strip().rpartition("@")
    if not at or not local or not domain:
        raise MalformedRecipient(f"{address!r} is not <number>@<sms domain>")
    domain = domain.rstrip(".").lower()
    if config.has_retired(domain):
        raise RetiredDomain(f"SMS gateway {domain} is retired")
    if not config.serves(domain):
        raise ForeignDomain(f"relaying to {domain} denied")
    msisdn = _msisdn(local, config)
    if msisdn is None:
        # The address is well formed; there is just no such mailbox here. RFC 5321's 501 would tell the client
        # its command was malformed, which it was not.
        raise UnknownSubscriber(f"{local!r} is not a phone number")
    return Recipient(msisdn, domain)


def _msisdn(local: str, config: GatewayConfig) -> str | None:
    """International digits for a local part, or None if it is not a number we can read."""
    prefix = config.international_prefix
    if prefix and local.startswith(prefix) and _NATIONAL.fullmatch(local):
        # "00447700900123" is dialled as international: its digits after the prefix already hold the country
        # code. Checked before the trunk prefix, which is usually the first digit of it ("0" and "00").
        local = local[len(prefix) :]
    elif (
        config.country_code is not None
        and not local.startswith("+")
        and local.startswith(config.trunk_prefix)
        and _NATIONAL.fullmatch(local)
    ):
        local = config.country_code + local[len(config.trunk_prefix) :]
    match = _MSISDN.fullmatch(local)
    return match.group(1) if match is not None else None


def is_postmaster(address: str, config: GatewayConfig) -> bool:
    """Whether ``address`` is the postmaster: ``postmaster`` alone or at a served domain or the gateway's host.

    RFC 5321 section 4.5.1: a server "MUST support the reserved mailbox 'postmaster'" and accept
    ``RCPT TO:<Postmaster>`` without a domain; the local part is case-insensitive there.
    """
    local, at, domain = address.strip().rpartition("@")
    if not at:
        return address.strip().lower() == "postmaster"
    domain = domain.rstrip(".").lower()
    return local.lower() == "postmaster" and (config.serves(domain) or domain == config.hostname.lower())


def postmaster_reply() -> SmtpReply:
    """The reply to RCPT for the postmaster: accepted, and delivered to the gateway's postmaster, not as SMS."""
    return SmtpReply(250, "2.1.5", "postmaster ok")


def judge_recipient(address: str, config: GatewayConfig, known_subscriber: Callable[[str], bool]) -> Recipient:
    """:func:`parse_recipient`, then the subscriber check. Raises any :class:`MailRefused` for RCPT."""
    recipient = parse_recipient(address, config)
    if not known_subscriber(recipient.msisdn):
        raise UnknownSubscriber(f"no subscriber {recipient.msisdn} at {recipient.domain}")
    return recipient


def parse_message(content: bytes | str) -> EmailMessage:
    """Parse DATA into an :class:`~email.message.EmailMessage`.

    The parser is lenient about syntax, but it recurses once per nested multipart: a few thousand of them (a
    hundred-odd KB, well under the DATA size limit) exhaust the stack. Raises :class:`MalformedContent` for
    that, or anything else the parser raises, so the peer gets the refusal for a MIME structure too broken to
    read rather than aiosmtpd's untyped "500 Error: (RecursionError)".
    """
    raw = content.encode("utf-8", "surrogateescape") if isinstance(content, str) else content
    try:
        message = BytesParser(policy=policy.default).parsebytes(raw)
    except RecursionError as exc:
        raise MalformedContent("malformed MIME structure (nested too deeply)") from exc
    except Exception as exc:  # whatever else the parser trips on, the peer sent it
        raise MalformedContent(f"malformed MIME structure ({type(exc).__name__})") from exc
    assert isinstance(message, EmailMessage)  # policy.default's message_factory
    return message


class _TextOfHtml(HTMLParser):
    """The character data of an HTML document, without its head, scripts and styles.

    HTML lets a document omit ``</head>`` (HTML Living Standard 13.1.2.4), and mail generators do: the head
    ends where the body's content starts -- ``<body>``, any element that cannot be in a head, or text that is
    not white space -- as the standard's "in head" insertion mode says. Hiding everything after ``<head>``
    until ``</head>`` lost the whole body (the OTP) of such a mail.
    """

    #: Elements whose content is never shown, wherever they are.
    _HIDDEN: ClassVar[frozenset[str]] = frozenset({"script", "style", "title", "template"})
    #: Elements that may appear in a head; any other start tag ends it.
    _HEAD_CONTENT: ClassVar[frozenset[str]] = frozenset(
        {"base", "link", "meta", "noscript", "script", "style", "template", "title", "html", "head"}
    )
    #: Block elements start a line; table cells are set apart, so "Code" and "123456" in two cells do not
    #: run together into one word.
    _BREAKS: ClassVar[frozenset[str]] = frozenset({"br", "p", "div", "li", "tr"})
    _CELLS: ClassVar[frozenset[str]] = frozenset({"td", "th"})
    _HEADINGS: ClassVar[frozenset[str]] = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden = 0
        self._in_head = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "head":
            self._in_head = True
            return
        if self._in_head and tag not in self._HEAD_CONTENT:
            self._in_head = False
        if tag in self._HIDDEN:
            self._hidden += 1
        elif tag in self._BREAKS:
            self.parts.append("\n")
        elif tag in self._CELLS:
            self.parts.append(" ")
        elif tag in self._HEADINGS:
            self._end_line()

    def handle_endtag(self, tag: str) -> None:
        if tag == "head":
            self._in_head = False
        elif tag in self._HIDDEN and self._hidden:
            self._hidden -= 1
        elif tag in self._HEADINGS:
            self._end_line()

    def _end_line(self) -> None:
        # A heading is a line of its own, yet two headings in a row are not a paragraph apart.
        if self.parts and not self.parts[-1].endswith("\n"):
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._in_head:
            if not data.strip():
                return
            self._in_head = False
        self.parts.append(data)


def _tidy(text: str) -> str:
    """Line ends to LF, no-break spaces to spaces, controls dropped, runs of spaces to one, at most one blank line
    in a row, no edges."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_NO_BREAK_SPACES)
    text = _CONTROLS.sub("", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def message_text(message: EmailMessage) -> tuple[str, str]:
    """The (subject, body) an SMS is made of, decoded (RFC 2047 headers, transfer encodings, charsets).

    The body is the text/plain part's; when that holds nothing once tidied (a multipart/alternative whose plain
    alternative is blank), the text/html part's.

    Raises :class:`UnsupportedContent` when there is no text/plain or text/html part,
    :class:`UnknownCharset` when the part's charset is unknown, and :class:`MalformedContent` when the MIME
    structure is too broken to read.
    """
    try:
        subject = _tidy(str(message.get("Subject", "") or "")).replace("\n", " ")
    except Exception:  # a Subject the email package cannot read costs the subject, not the message
        subject = ""
    try:
        parts = _text_parts(message)
        if not parts:
            raise UnsupportedContent(f"no text/plain or text/html part in {message.get_content_type()}")
        body = ""
        for part in parts:
            # Senders that write HTML mail often add a plain alternative with nothing in it: the text the
            # recipient would see is the HTML's, and refusing the mail as empty would lose it (the OTP).
            body = _body_of(part)
            if body:
                break
    except MailRefused:
        raise
    except Exception as exc:
        # The email package parses anything without raising, but reading what it parsed is not total: a
        # multipart without a boundary nested in another leaves a str where get_body expects parts
        # (AttributeError), and more of the same. Whatever breaks here, the peer sent it, so the peer gets a
        # refusal it can read, not aiosmtpd's untyped "500 Error: (AttributeError)".
        raise MalformedContent(f"malformed MIME structure ({type(exc).__name__})") from exc
    return subject, body


def _text_parts(message: EmailMessage) -> list[EmailMessage]:
    """The parts the body may come from, best first: the text/plain part, then the text/html part."""
    parts: list[EmailMessage] = []
    for subtype in ("plain", "html"):
        part = message.get_body(preferencelist=(subtype,))
        if part is not None:
            assert isinstance(part, EmailMessage)  # policy.default's message_factory
            parts.append(part)
    if not parts and message.get_content_type() in ("text/plain", "text/html"):
        # get_body passes over a part marked as an attachment, even the only part a message has. Other text
        # types (text/calendar, text/csv) are data for software, not a message for a person: no text part.
        parts.append(message)
    return parts


def _body_of(part: EmailMessage) -> str:
    """The text of one text part as an SMS shows it: decoded, HTML tags dropped, signature cut, tidied."""
    body = _decoded(part)
    if part.get_content_subtype() == "html":
        parser = _TextOfHtml()
        parser.feed(body)
        parser.close()
        body = "".join(parser.parts)
    body = body.replace("\r\n", "\n")
    # A leading LF lets the delimiter match on the first line too: a body that is all signature is empty.
    body = ("\n" + body).split(_SIGNATURE, 1)[0]
    return _tidy(body)


def _decoded(part: EmailMessage) -> str:
    """The text of one text part, decoded from its transfer encoding and charset.

    A part that declares no charset is US-ASCII (RFC 2045 section 5.2), yet clients send UTF-8 without saying
    so; bytes that are valid UTF-8 are read as UTF-8 (no other 8-bit charset is likely to be valid UTF-8 by
    chance), anything else as the email package reads it, undecodable bytes becoming U+FFFD.
    """
    if part.get_param("charset") is None:
        raw = part.get_payload(decode=True)
        if isinstance(raw, bytes) and not raw.isascii():
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                pass
    try:
        body = part.get_content()
    except (LookupError, ValueError) as exc:
        # LookupError: a charset Python does not know; ValueError: a charset name Python cannot even look up
        # (a NUL in it: "embedded null character").
        raise UnknownCharset(f"charset {part.get_content_charset()!r} is not supported") from exc
    if not isinstance(body, str):  # pragma: no cover - get_body only returns text parts
        raise UnsupportedContent(f"{part.get_content_type()} is not text")
    return body


def _segments(text: str, coding: DataCoding, config: GatewayConfig, reference: int) -> list[Segment] | None:
    """The segments of ``text``, or None when there are more than the gateway sends."""
    try:
        segments = split_text(text, coding, config.mode, reference=reference)
    except TooManySegments:
        return None
    return segments if len(segments) <= config.max_segments else None


def _longest_prefix(head: str, text: str, coding: DataCoding, config: GatewayConfig, reference: int) -> int:
    """The longest prefix of ``text`` (in characters) that fits after ``head``; segment count only grows with
    length."""
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if _segments(head + text[:middle], coding, config, reference) is None:
            high = middle - 1
        else:
            low = middle
    return low


def trim_to_segments(text: str, config: GatewayConfig, *, reference: int = 0) -> SmsText:
    """Code ``text``, split it, and trim it to :attr:`GatewayConfig.max_segments` (or refuse it).

    The coding is chosen for the text sent, not the text received: when trimming cut away every character
    GSM 7-bit lacks, the rest travels in GSM 7-bit and so keeps more of the message.

    Raises :class:`MessageTooLong` under :attr:`Overflow.REFUSE`, and
    :class:`~carrier_sim.smpp.segmentation.SegmentationError` for a reference out of range.
    """
    sms, _ = _trim("", text, config, reference)
    return sms


def _trim(head: str, text: str, config: GatewayConfig, reference: int) -> tuple[SmsText, bool]:
    """:func:`trim_to_segments` of ``head + text`` where only ``text`` may be cut; returns the SMS and whether
    ``head`` is in it.

    ``head`` is the sender part: a cut address would be a different, wrong address, so it is kept whole or
    dropped. It is dropped when not one character of ``text`` fits after it within the segment limit -- an SMS
    holding only who wrote, and nothing of what, is of no use; the text without it is then trimmed as usual.
    """
    full = head + text
    coding = choose_coding(full, allow_latin1=config.allow_latin1)
    segments = _segments(full, coding, config, reference)
    if segments is not None:
        return SmsText(full, coding, segments, truncated=False), bool(head)
    if config.overflow is Overflow.REFUSE:
        raise MessageTooLong(f"text needs more than {config.max_segments} SMS segment(s)")
    keep = _longest_prefix(head, text, coding, config, reference)
    if coding is not DataCoding.SMSC_DEFAULT and all(gsm7.is_gsm7(char) for char in head):
        gsm_run = next((i for i, char in enumerate(text) if not gsm7.is_gsm7(char)), len(text))
        if keep <= gsm_run:
            keep = max(keep, _longest_prefix(head, text[:gsm_run], DataCoding.SMSC_DEFAULT, config, reference))
            coding = DataCoding.SMSC_DEFAULT
    kept = text[:keep].rstrip()
    if head and not kept:
        sms, _ = _trim("", text, config, reference)
        return replace(sms, truncated=True), False
    trimmed = head + kept
    segments = _segments(trimmed, coding, config, reference)
    assert segments is not None  # a prefix of a fitting prefix fits
    return SmsText(trimmed, coding, segments, truncated=True), bool(head)


def mail_to_sms(
    message: EmailMessage, config: GatewayConfig, *, reference: int = 0, envelope_from: str | None = None
) -> SmsText:
    """Turn a parsed mail into the SMS the gateway sends: ``sender + sender_separator + subject + separator +
    body``, coded and split.

    The sender is :func:`sender_address` of the message and ``envelope_from`` (the MAIL FROM address; ``""``,
    ``"<>"`` or None for the null reverse-path), shown unless :attr:`GatewayConfig.sender_separator` is None.
    Trimming never cuts it: it is shown whole, or left out when not one character of the text fits after it.
    The result's ``sender`` is the address shown (None: none), its ``reply_to`` :func:`reply_address`.

    Whatever the mail holds, raises only :class:`MailRefused` subclasses: :class:`EmptyMessage`,
    :class:`UnsupportedContent`, :class:`UnknownCharset`, :class:`UnconvertibleText`, :class:`MalformedContent`
    and :class:`MessageTooLong` (the caller's own mistake, a ``reference`` out of range, raises
    :class:`~carrier_sim.smpp.segmentation.SegmentationError`).
    """
    subject, body = message_text(message)
    text = config.subject_separator.join(part for part in (subject, body) if part)
    if not text:
        raise EmptyMessage("message has neither subject nor text")
    if (surrogate := _SURROGATE.search(text)) is not None:
        # Checked on the whole text, whichever part it came from: left in, split_text raises TextCodingError,
        # which the gateway could only answer "451 try again later" -- for content no retry will ever fix.
        raise UnconvertibleText(
            f"text decodes to U+{ord(surrogate.group()):04X}, a lone surrogate no SMS alphabet holds"
        )
    sender = sender_address(message, envelope_from)
    head = "" if sender is None or config.sender_separator is None else sender + config.sender_separator
    sms, shown = _trim(head, text, config, reference)
    return replace(sms, sender=sender if shown else None, reply_to=reply_address(message, envelope_from))


def sender_address(message: EmailMessage, envelope_from: str | None = None) -> str | None:
    """The address an SMS names as its sender: the addr-spec of the first mailbox of ``From``; when there is
    no From, or its first mailbox is not a usable address, ``envelope_from`` (MAIL FROM); None when that is the
    null reverse-path or unusable too.

    Usable means what a phone can show and reply to: one ``local@domain`` of at most 254 characters (RFC 5321
    section 4.5.3.1.3) with no white space, control, format or quoting characters and no U+FFFD, written in
    the header itself (not in an RFC 2047 encoded word), and one :func:`sms_to_mail` could send a reply to --
    so not a non-ASCII local part (RFC 6532), which the email package refuses in an address it builds; raw
    UTF-8 in the domain is read as UTF-8, other raw 8-bit is unusable. The display name is never shown: it is
    the sender's own claim, and where header injection (an encoded CR LF, a look-alike address) would hide.
    """
    from_ = _header_addresses(message, "From")
    shown = _usable_address(from_[0]) if from_ else None
    return shown if shown is not None else _usable_address(envelope_from or "")


def reply_address(message: EmailMessage, envelope_from: str | None = None) -> str | None:
    """Where a reply to ``message`` goes: the first mailbox of ``Reply-To`` when it is usable (RFC 5322
    section 3.6.2: the author's choice for replies), else :func:`sender_address`."""
    reply_to = _header_addresses(message, "Reply-To")
    usable = _usable_address(reply_to[0]) if reply_to else None
    return usable if usable is not None else sender_address(message, envelope_from)


def _header_addresses(message: EmailMessage, name: str) -> list[str]:
    """The addr-specs of an address header's mailboxes (groups flattened), or [] when it is missing or
    unreadable."""
    try:
        header = message.get(name)
        if header is None:
            return []
        addresses = getattr(header, "addresses", None)
        if addresses is None:  # a message built under compat32: the header is a plain str
            return [address for _, address in getaddresses([str(header)])]
        # The parser decodes RFC 2047 encoded words even inside an addr-spec, where RFC 2047 section 5 forbids
        # them: "=?utf-8?q?ceo?=@bank.example" would be shown as ceo@bank.example, an address the mail does not
        # hold. An addr-spec that is not in the header as it arrived is no address ("" is never usable).
        raw = next((str(value) for key, value in message.raw_items() if key.lower() == name.lower()), "")
        return [spec if (spec := str(address.addr_spec)) in raw else "" for address in addresses]
    except Exception:  # an encoded CR LF in an address raises ValueError; any unreadable header is no address
        return []


def _usable_address(raw: str) -> str | None:
    """``raw`` if it is an address an SMS can show and a reply can go to (see :func:`sender_address`)."""
    if any("\udc80" <= char <= "\udcff" for char in raw):
        # The parser keeps raw 8-bit header bytes as surrogates; valid UTF-8 is an internationalised address.
        try:
            raw = raw.encode("utf-8", "surrogateescape").decode("utf-8")
        except UnicodeError:
            return None
    if not raw or len(raw) > _MAX_ADDRESS or "\ufffd" in raw or not raw.isprintable():
        return None
    return raw if _address(raw) is not None else None


def _address(text: str) -> Address | None:
    """An addr-spec as an :class:`~email.headerregistry.Address`, or None if it is not one."""
    if text.count("@") != 1 or any(char.isspace() or char in '<>",;' for char in text):
        return None
    local, _, domain = text.partition("@")
    if not local or "." not in domain or domain.startswith(".") or domain.endswith("."):
        return None
    try:
        return Address(addr_spec=text)
    except (ValueError, IndexError, HeaderParseError):
        return None


def sms_to_mail(
    source_msisdn: str,
    destination: str,
    text: str,
    config: GatewayConfig,
    *,
    reply_to: str | None = None,
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """The mail an MO from ``source_msisdn`` becomes.

    ``destination`` is either the gateway's :attr:`~GatewayConfig.short_code` (the address is the first token
    of ``text``) or itself an email address (all of ``text`` is the body). To the short code, a text whose
    first token holds no ``@`` is a reply: it goes to ``reply_to`` (the sender of the last mail the subscriber
    got, which the caller remembers), all of ``text`` being the body. A first token with an ``@`` is always
    taken as the address, valid or not: a mistyped address must not send the text to someone else. A leading
    ``(subject)`` in the body becomes the Subject. ``date`` and ``message_id`` are the caller's, so the
    translation stays pure.

    Raises :class:`MoNotForMail` when neither applies or the address is not valid.
    """
    sender = source_msisdn.lstrip("+")
    if not _MSISDN.fullmatch(sender):
        raise MoNotForMail(f"source {source_msisdn!r} is not an MSISDN")
    destination = destination.strip()
    if "@" in destination:
        to, body = _address(destination), text
    elif config.short_code is not None and destination == config.short_code:
        # The address ends at the first white space of any kind: a phone's "address<newline>text" too.
        words = text.split(maxsplit=1)
        if words and "@" in words[0]:
            to = _address(words[0])
            body = words[1] if len(words) > 1 else ""
        elif words and reply_to is not None and _usable_address(reply_to) is not None:
            to, body = _address(reply_to), text
        else:  # an empty text, or a reply with no sender to go to
            to, body = None, ""
    else:
        raise MoNotForMail(f"destination {destination!r} is neither an address nor the gateway's short code")
    if to is None:
        raise MoNotForMail("no valid email address in the MO")
    subject, body = _subject_of(body)
    mail = EmailMessage()
    mail["From"] = Address(addr_spec=f"{sender}@{config.sms_domain}")
    mail["To"] = to
    if subject:
        mail["Subject"] = subject
    if date is not None:
        mail["Date"] = format_datetime(date)
    if message_id is not None:
        mail["Message-ID"] = message_id
    mail.set_content(body.strip() + "\n")
    return mail


def _subject_of(body: str) -> tuple[str, str]:
    """Split a leading ``(subject)`` off an MO's body: (subject, rest), or ("", body) when there is none.

    Phones have no subject field, so ``"(Lunch) see you at 1"`` is the convention; but a text may start with
    parentheses that are no subject. Only a one-line parenthesised run that holds a letter is taken:
    ``"(555) 123-4567 call me"`` (a phone number) stays text, and so does ``"(Lunch\nplans) ..."`` -- a line
    break cannot go into a header (the email package raises ValueError for one, and a CR LF there would let a
    text add headers of its own, a Bcc for one).
    """
    match = _SUBJECT_IN_SMS.fullmatch(body.strip())
    if match is None:
        return "", body
    subject = match.group("subject").strip()
    if len(subject.splitlines()) > 1 or not any(char.isalpha() for char in subject):
        return "", body
    return subject, match.group("body") or ""


def delivery_failure_notice(
    mail_from: str,
    failed: list[str],
    config: GatewayConfig,
    *,
    postmaster: str | None = None,
    date: datetime | None = None,
    message_id: str | None = None,
) -> EmailMessage:
    """The notice to the envelope sender when some recipients failed after DATA was accepted: the subscribers
    in ``failed`` (MSISDNs) the SMSC refused, and ``postmaster`` (the address the client gave, when the
    postmaster's mailbox did not take the message).

    RFC 5321 section 3.6.3: a server that accepted a message and then cannot deliver it "MUST" notify the
    originator. The notice is a delivery status notification: RFC 6522's ``multipart/report;
    report-type=delivery-status`` holding a part for people and RFC 3464's ``message/delivery-status`` for
    software (one per-message block, then one block per failed recipient). It comes from ``MAILER-DAEMON`` of
    the gateway host and must be sent with the null reverse-path (``MAIL FROM:<>``, RFC 5321 section 6.1), so
    that a notice that cannot be delivered never causes another.
    """
    recipients = [(f"{msisdn}@{config.sms_domain}", "SMSC refused the message") for msisdn in failed]
    if postmaster is not None:
        # RFC 5321 section 4.5.1: a bare "Postmaster" is the postmaster of the server it was given to.
        address = postmaster if "@" in postmaster else f"{postmaster}@{config.hostname}"
        recipients.append((address, "the postmaster's mailbox did not take the message"))
    notice = EmailMessage()
    notice["From"] = Address("Mail Delivery System", addr_spec=f"MAILER-DAEMON@{config.hostname}")
    notice["To"] = mail_from
    notice["Subject"] = "Undelivered SMS" if postmaster is None else "Undelivered mail"
    if date is not None:
        notice["Date"] = format_datetime(date)
    if message_id is not None:
        notice["Message-ID"] = message_id
    lines = "\n".join(f"  {address}: {reason}" for address, reason in recipients)
    notice.set_content(f"Your message could not be delivered to:\n\n{lines}\n")
    notice.make_mixed()
    notice.set_type("multipart/report")
    notice.set_param("report-type", "delivery-status")
    notice.attach(_delivery_status([address for address, _ in recipients], config, date))
    return notice


def _delivery_status(failed: list[str], config: GatewayConfig, date: datetime | None) -> EmailMessage:
    """RFC 3464 section 2.1: a message/delivery-status body is header blocks, each one a :class:`Message`;
    ``failed`` holds the recipients' addresses."""
    per_message = Message(policy=policy.default)
    per_message["Reporting-MTA"] = f"dns; {config.hostname}"
    if date is not None:
        per_message["Arrival-Date"] = format_datetime(date)
    blocks: list[Message | str] = [per_message]
    for address in failed:
        block = Message(policy=policy.default)
        block["Final-Recipient"] = f"rfc822; {address}"
        block["Action"] = "failed"
        # X.3.0 "Other or undefined mail system status": the mail system here is the SMSC (or the postmaster's
        # mailbox), and it refused.
        block["Status"] = "5.3.0"
        blocks.append(block)
    status = EmailMessage()
    status.set_type("message/delivery-status")
    status.set_payload(blocks)
    del status["MIME-Version"]  # set_type added it; only the top level carries one
    return status
