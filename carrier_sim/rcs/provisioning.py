"""What a carrier's RCS autoconfiguration server decides (GSMA RCC.14 / RCC.07 section 2.3).

Theory: a client asks ``GET /?vers=N&...`` and the server answers with a ``wap-provisioningdoc``. ``vers`` is
the version of the configuration the client holds (0 when it has none); the server compares it with the
subscriber's current version and answers with:

* the full document (VERS, TOKEN, MSG, APPLICATION...) when the client's version is stale or 0;
* a VERS-only document when the client is up to date ("the configuration is still valid");
* a VERS-only document carrying a *special version* that tells the client what to do with RCS
  (RCC.07 table "version and validity"): 0 reset, -1 reset and forbid, -2 disable, -3 dormant
  (:class:`SubscriberState`);
* an HTTP error: 403 Forbidden (not allowed: unknown or barred subscriber, wrong OTP, MSISDN needed),
  503 Service Unavailable with Retry-After (overloaded), 511 Network Authentication Required (the token
  the client presented is stale or unknown: it must drop it and authenticate afresh).

Identity comes from one of three places, in this order: a ``token`` issued earlier (TOKEN characteristic),
a *cellular session*, or, on non-cellular access, an ``msisdn`` proven by a one-time password.

A cellular session is what RCC.14's two-step start over the mobile network leaves behind: the client first
sends a bare ``GET /`` over plain HTTP, which the carrier's packet core enriches with the subscriber's number
(header enrichment); the server answers ``200 OK`` with a session cookie, and the client's HTTPS request
carries that cookie back with ``IMSI``, ``vers`` and the rest. A bare request without enrichment is answered
511, which sends the client down the OTP path. The ``IMSI`` parameter alone proves nothing: clients send it on
Wi-Fi too (rcsjta, Samsung), so it is trusted only beside a cellular session whose subscriber it matches.

For the OTP path, the first request gets ``200 OK`` with an empty body while the OTP travels by SMS, UCS-2
encoded as clients decode it, port-addressed to the client's ``SMS_port`` (or as plain text when that is 0);
the client then asks again with ``OTP=...`` alone (rcsjta, Samsung) and the cookie, and receives the document
and a token for next time.

Everything is pure apart from the injected ``send_sms``: time enters as ``now`` (seconds), randomness
(tokens, OTPs, session ids) comes from the injected ``random.Random``. The HTTP layer is
:mod:`carrier_sim.rcs.app`; the XML is :mod:`carrier_sim.rcs.document`.
"""

from __future__ import annotations

import enum
import random
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from stdnum import imei as stdnum_imei
from stdnum import imsi as stdnum_imsi

from carrier_sim.smpp.segmentation import Segment, SegmentationMode, split_message
from carrier_sim.smpp.udh import PortAddressing

__all__ = [
    "CELLULAR_SESSION_VALIDITY",
    "DEFAULT_SMS_PORT",
    "PARAMETER_NAMES",
    "UCS2_DATA_CODING",
    "CellularSessionOpened",
    "ConfigRequest",
    "ConfigurationIssued",
    "InvalidParameter",
    "MsgTerms",
    "OtpSent",
    "Outcome",
    "Provisioner",
    "RcsProfile",
    "Refused",
    "SendSms",
    "SmsNotSent",
    "Subscriber",
    "SubscriberState",
    "TokenGrant",
    "VersionAnswered",
    "otp_sms",
    "parse_request",
    "reconfiguration_sms",
]

#: RCC.07: the port an RCS client listens on for configuration SMS when the request names none.
DEFAULT_SMS_PORT: Final = 37273
#: SMPP data_coding for UCS-2 (SMPP 3.4 section 5.2.19). RCS clients decode the user data of the OTP and
#: ``-rcscfg`` SMS as UCS-2 (rcsjta's HttpsProvisioningSMS: ``new String(userData, "UCS2")``), so ASCII octets
#: would reach them as garbage.
UCS2_DATA_CODING: Final = 0x08
#: How long the cookie of a bare cellular request identifies the subscriber, in seconds: long enough for the
#: client's HTTPS request that follows it.
CELLULAR_SESSION_VALIDITY: Final = 300
#: Wrong OTPs tolerated before the pending OTP is thrown away.
MAX_OTP_ATTEMPTS: Final = 3

#: ``send_sms(msisdn, segment)``: one part; its short_message holds the UDH when ``esm_class_udhi`` is set, and
#: its data_coding says how the user data is encoded. It raises to refuse the part (the SMSC's store is full:
#: ``StoreError(ESME_RMSGQFUL)``), which :meth:`Provisioner.handle` reports as :class:`SmsNotSent`.
SendSms = Callable[[str, Segment], None]


class SmsNotSent(Exception):
    """``send_sms`` refused the OTP SMS (its cause is chained): nothing was recorded, so the client asks again.

    Not a :class:`Refused`: the refusal belongs to another component (the SMSC), and the HTTP adapter, which
    decides how long the client should wait and logs it, needs the cause.
    """

    def __init__(self, msisdn: str) -> None:
        super().__init__(f"the OTP SMS to {msisdn} was not sent")
        self.msisdn = msisdn


class SubscriberState(enum.Enum):
    """Server-side state of a subscriber's RCS configuration; the value is the VERS version answered.

    ACTIVE answers with the subscriber's positive configuration version instead of its own value.
    """

    ACTIVE = 1
    #: 0: the client resets its configuration and asks again later (one-shot: the server returns to ACTIVE).
    RESET = 0
    #: -1: the client resets and RCS is forbidden; it does not ask again until the SIM changes.
    RESET_FORBID = -1
    #: -2: RCS is disabled; the client keeps its configuration and asks again at the next trigger.
    DISABLED = -2
    #: -3: dormant; the client keeps its configuration unused and keeps checking at ``validity``.
    DORMANT = -3


# Characters XML 1.0 does not allow (its Char production). The profile's strings go into the document as attribute
# values; one of these would make it not well-formed, served with a 200 all the same.
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _check_xml_text(owner: str, **fields: str) -> None:
    for name, value in fields.items():
        if (bad := _NOT_XML_CHAR.search(value)) is not None:
            raise ValueError(f"{owner}.{name} holds {bad.group()!r}, a character XML 1.0 does not allow")


@dataclass(frozen=True, slots=True)
class MsgTerms:
    """Terms shown to the user before RCS is enabled (MSG characteristic)."""

    title: str
    message: str
    accept_button: bool = True
    reject_button: bool = False

    def __post_init__(self) -> None:
        _check_xml_text("MsgTerms", title=self.title, message=self.message)


@dataclass(frozen=True, slots=True)
class RcsProfile:
    """One carrier's configuration server settings and the service parameters its document carries."""

    carrier: str
    home_domain: str
    #: VERS validity in seconds: how long the client may use the configuration before asking again.
    validity: int = 86400
    #: TOKEN validity in seconds.
    token_validity: int = 86400 * 30
    #: How long an OTP may be answered, in seconds.
    otp_validity: int = 300
    otp_digits: int = 6
    terms: MsgTerms | None = None
    pcscf_address: str = ""
    #: The source port of the SMS the server sends (the destination is the client's SMS_port).
    sms_source_port: int = 0

    def __post_init__(self) -> None:
        if self.validity < 0 or self.token_validity < 0 or self.otp_validity <= 0:
            raise ValueError("validities must be non-negative (OTP validity positive)")
        if not 4 <= self.otp_digits <= 12:
            raise ValueError("otp_digits must be 4..12")
        _check_xml_text(
            "RcsProfile", carrier=self.carrier, home_domain=self.home_domain, pcscf_address=self.pcscf_address
        )


@dataclass(slots=True)
class Subscriber:
    """A subscriber the carrier knows: identities, configuration version, state and barring."""

    msisdn: str
    imsi: str | None = None
    version: int = 1
    state: SubscriberState = SubscriberState.ACTIVE
    #: Barred: every request is answered 403.
    barred: bool = False


@dataclass(frozen=True, slots=True)
class TokenGrant:
    """A token issued to a subscriber's client, valid until ``expires_at`` (seconds, same clock as ``now``)."""

    token: str
    msisdn: str
    expires_at: float
    validity: int
    #: The IMSI the request that earned the token carried (None when it carried none). A later request naming
    #: another IMSI comes from another SIM (a swap) and is refused; the subscriber record's IMSI is not the
    #: yardstick, as the door may hold none for the number (no phone of the scenario) or not the real device's.
    imsi: str | None = None


class InvalidParameter(ValueError):
    """A request parameter is malformed: answered 400 with the parameter's name and the reason."""

    def __init__(self, parameter: str, reason: str) -> None:
        super().__init__(f"{parameter}: {reason}")
        self.parameter = parameter
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ConfigRequest:
    """The parameters of one configuration request (RCC.07 section 2.3.3.2 / RCC.14), validated.

    ``vers`` is None only in the two requests that carry none: the OTP answer (``OTP`` alone) and the bare
    cellular request (no parameters at all, :attr:`bare`). ``sms_port`` 0 asks for the OTP as plain text.
    """

    vers: int | None = None
    imsi: str | None = None
    imei: str | None = None
    msisdn: str | None = None
    token: str | None = None
    terminal_vendor: str | None = None
    terminal_model: str | None = None
    terminal_sw_version: str | None = None
    client_vendor: str | None = None
    client_version: str | None = None
    rcs_version: str | None = None
    rcs_profile: str | None = None
    provisioning_version: str | None = None
    sms_port: int = DEFAULT_SMS_PORT
    otp: str | None = None
    app: str | None = None
    default_sms_app: int | None = None
    friendly_device_name: str | None = None

    @property
    def bare(self) -> bool:
        """True for the parameterless first request a client sends over plain HTTP on cellular access."""
        return self.vers is None and self.otp is None


# Free-text parameters (friendly_device_name and the like): printable, at most this many characters.
_TEXT_MAX: Final = 64
# Not printable: controls (C0 and C1: NEL, CSI), format characters (the bidi overrides such as U+202E, which make a
# name display as something else, U+FEFF, soft hyphen), line and paragraph separators (U+2028/9) and surrogates.
# Not str.isprintable(): it refuses every space but ASCII's (the ideographic space a Japanese IME types in names)
# and every code point this Python's Unicode tables do not know yet (newer emoji), both harmless in a name.
_NOT_PRINTABLE_CATEGORIES: Final = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
# Format characters that only join what surrounds them: emoji sequences and Persian or Indic words need them.
_JOINERS: Final = frozenset("\u200c\u200d")
_SIMPLE = re.compile(r"[A-Za-z0-9._\-]{1,32}")
_MSISDN = re.compile(r"\+?[0-9]{5,15}")
_OTP = re.compile(r"[A-Za-z0-9]{1,16}")
_TOKEN = re.compile(r"[\x21-\x7e]{1,256}")
_PROVISIONING_VERSION = re.compile(r"[0-9]{1,3}(\.[0-9]{1,3}){0,2}")
# Integers are matched (ASCII digits, bounded length) before int(): int() also takes '1_0', ' 7 ', '+3', full-width
# and Arabic-Indic digits and fails past 4300 digits, and str.isdigit() admits '²', which int() then refuses.
_VERS = re.compile(r"-?[0-9]{1,10}")
_PORT = re.compile(r"[0-9]{1,5}")
_ENRICHED_MSISDN = re.compile(r"\+?([0-9]{1,15})")
# Bytes a UTF-8 decoder could not read, as the 'surrogateescape' error handler carries them (U+DC80..U+DCFF).
_UNDECODED = re.compile("[\udc80-\udcff]")
# 3GPP TS 23.003 section 2.2: an IMSI is decimal digits only, MCC (3) + MNC (2 or 3) + MSIN, at most 15 in all; so
# at least 6. Syntax only: stdnum.imsi.is_valid also looks the MCC up in its bundled operator table, which refused a
# scenario's own carrier (any 3-digit MCC, such as 123) and would make acceptance depend on stdnum's version.
_IMSI = re.compile(r"[0-9]{6,15}")

_TEXT_FIELDS: Final = {
    "terminal_vendor": "terminal_vendor",
    "terminal_model": "terminal_model",
    "terminal_sw_version": "terminal_sw_version",
    "client_vendor": "client_vendor",
    "client_version": "client_version",
    "app": "app",
    "friendly_device_name": "friendly_device_name",
}
_SIMPLE_FIELDS: Final = {"rcs_version": "rcs_version", "rcs_profile": "rcs_profile"}
#: The parameter names :func:`parse_request` reads; any other is ignored.
PARAMETER_NAMES: Final = frozenset(
    {"vers", "IMSI", "IMEI", "msisdn", "token", "OTP", "provisioning_version", "SMS_port", "default_sms_app"}
    | _TEXT_FIELDS.keys()
    | _SIMPLE_FIELDS.keys()
)


def _is_printable(char: str) -> bool:
    if char in _JOINERS:
        return True
    code = ord(char)
    if 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE:  # noncharacters (U+FFFF ...), never text
        return False
    return unicodedata.category(char) not in _NOT_PRINTABLE_CATEGORIES


def _printable_text(name: str, value: str) -> str:
    # XML's character rule too, though the printable one implies it today: a value accepted here must stay one an
    # XML document (the way RCS carries configuration) could hold, whatever else the printable rule comes to admit.
    if len(value) > _TEXT_MAX or not all(map(_is_printable, value)) or _NOT_XML_CHAR.search(value) is not None:
        raise InvalidParameter(name, f"{value[:40]!r} is not printable text of at most {_TEXT_MAX} characters")
    return value


def _sent_bytes(value: str) -> str:
    """The bytes a client sent, for a refusal: what the value quoted as text would show as U+FFFD."""
    try:
        return repr(value.encode("utf-8", "surrogateescape")[:40])
    except UnicodeEncodeError:  # another lone surrogate beside them: no bytes of UTF-8 give that, so none were sent
        return repr(value[:40])


def _matching(name: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise InvalidParameter(name, f"{value[:40]!r} is not {what}")
    return value


def parse_request(params: Mapping[str, str]) -> ConfigRequest:
    """Validate raw query parameters into a :class:`ConfigRequest`.

    Parameter names are case-sensitive as RCC.07 spells them (``IMSI``, ``IMEI``, ``OTP``, ``SMS_port``).
    Unknown parameters are ignored, as a server must tolerate newer clients. An empty value counts as absent:
    clients send ``IMSI=``, ``token=`` and the like when they have nothing to put there (rcsjta sends
    ``token=`` before it holds one). ``vers`` is required except in a request of ``OTP`` alone (rcsjta's and
    Samsung's OTP answer) and in one with no parameters at all (the bare cellular request). A value holding
    bytes that are not UTF-8, carried as the ``surrogateescape`` error handler carries them, is malformed. Raises
    :class:`InvalidParameter` for a missing ``vers`` or any malformed value.
    """
    params = {name: value for name, value in params.items() if value != ""}
    for name in sorted(PARAMETER_NAMES & params.keys()):
        if _UNDECODED.search(value := params[name]) is not None:
            raise InvalidParameter(name, f"{_sent_bytes(value)} is not UTF-8")
    values: dict[str, object] = {}
    raw_vers = params.get("vers")
    if raw_vers is None:
        if params and "OTP" not in params:
            raise InvalidParameter("vers", "is required")
    else:
        if not _VERS.fullmatch(raw_vers):
            raise InvalidParameter("vers", f"{raw_vers[:40]!r} is not an integer")
        vers = int(raw_vers)
        if not -4 <= vers < 2**31:
            raise InvalidParameter("vers", f"{vers} is out of range -4..2147483647")
        values["vers"] = vers

    if (imsi := params.get("IMSI")) is not None:
        # stdnum's compact() only drops the spaces and dashes a client may group the digits with.
        if not _IMSI.fullmatch(compact_imsi := stdnum_imsi.compact(imsi)):
            raise InvalidParameter("IMSI", f"{imsi[:40]!r} is not a valid IMSI (6 to 15 digits)")
        values["imsi"] = compact_imsi
    if (imei := params.get("IMEI")) is not None:
        if not stdnum_imei.is_valid(imei):
            raise InvalidParameter("IMEI", f"{imei[:40]!r} is not a valid IMEI")
        values["imei"] = stdnum_imei.compact(imei)
    if (msisdn := params.get("msisdn")) is not None:
        if msisdn.startswith(" "):
            # A '+' the client did not percent-encode arrives as a space (form encoding).
            msisdn = "+" + msisdn[1:]
        _matching("msisdn", msisdn, _MSISDN, "an E.164 number")
        values["msisdn"] = msisdn if msisdn.startswith("+") else f"+{msisdn}"
    if (token := params.get("token")) is not None:
        values["token"] = _matching("token", token, _TOKEN, "a token")
    if (otp := params.get("OTP")) is not None:
        values["otp"] = _matching("OTP", otp, _OTP, "a one-time password")
    if (provisioning_version := params.get("provisioning_version")) is not None:
        values["provisioning_version"] = _matching(
            "provisioning_version", provisioning_version, _PROVISIONING_VERSION, "a version like 5.0"
        )
    if (port := params.get("SMS_port")) is not None:
        # 0 is no port: the client wants the OTP as a plain text SMS (Samsung, Google Messages).
        if not _PORT.fullmatch(port) or not 0 <= int(port) <= 0xFFFF:
            raise InvalidParameter("SMS_port", f"{port[:40]!r} is not a port 0..65535")
        values["sms_port"] = int(port)
    if (default_sms_app := params.get("default_sms_app")) is not None:
        if default_sms_app not in ("1", "2"):
            raise InvalidParameter("default_sms_app", f"{default_sms_app[:40]!r} is not 1 or 2")
        values["default_sms_app"] = int(default_sms_app)
    for name, attribute in _TEXT_FIELDS.items():
        if (text := params.get(name)) is not None:
            values[attribute] = _printable_text(name, text)
    for name, attribute in _SIMPLE_FIELDS.items():
        if (text := params.get(name)) is not None:
            values[attribute] = _matching(name, text, _SIMPLE, "letters, digits, '.', '_' or '-'")
    return ConfigRequest(**values)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ConfigurationIssued:
    """The full configuration document is due: VERS, TOKEN, MSG (if configured) and the applications."""

    version: int
    validity: int
    token: TokenGrant
    subscriber: Subscriber
    profile: RcsProfile


@dataclass(frozen=True, slots=True)
class VersionAnswered:
    """A VERS-only document: up to date (positive version) or a special version (0, -1, -2, -3)."""

    version: int
    validity: int


@dataclass(frozen=True, slots=True)
class OtpSent:
    """An OTP went out by SMS: answer 200 with an empty body; ``session`` ties the retry to it (a cookie)."""

    msisdn: str
    session: str


@dataclass(frozen=True, slots=True)
class CellularSessionOpened:
    """The bare cellular request named a subscriber by header enrichment: answer 200 with ``session`` as a
    cookie; the client's next request carries it back and is trusted as cellular."""

    msisdn: str
    session: str


@dataclass(frozen=True, slots=True)
class Refused:
    """An HTTP error answer: 403, 503 (with ``retry_after`` seconds) or 511."""

    status: int
    title: str
    detail: str
    retry_after: int | None = None


Outcome = ConfigurationIssued | VersionAnswered | OtpSent | CellularSessionOpened | Refused


@dataclass(slots=True)
class _PendingOtp:
    otp: str
    msisdn: str
    expires_at: float
    #: The IMSI of the request that asked for the OTP: the answer (``OTP`` alone, as rcsjta sends it) carries
    #: none, and the token it earns is bound to the SIM that asked.
    imsi: str | None = None
    attempts: int = 0


@dataclass(frozen=True, slots=True)
class _CellularSession:
    msisdn: str
    expires_at: float


def _text_sms(text: str, port: int, source_port: int) -> list[Segment]:
    # UCS-2 (UTF-16BE), as RCS clients decode it; port 0 means no port addressing: a plain text SMS.
    ports = PortAddressing(port, source_port, 16) if port else None
    return split_message(text.encode("utf-16-be"), UCS2_DATA_CODING, SegmentationMode.UDH_CONCAT_8, ports=ports)


def otp_sms(otp: str, port: int, *, source_port: int = 0) -> list[Segment]:
    """The SMS carrying an OTP: UCS-2 digits, port-addressed to the client's ``SMS_port``, or plain text when
    ``port`` is 0."""
    return _text_sms(otp, port, source_port)


def reconfiguration_sms(identity: str, port: int = DEFAULT_SMS_PORT, *, source_port: int = 0) -> list[Segment]:
    """The network-initiated configuration request: ``<identity>-rcscfg`` to the client's port.

    RCC.07 section 2.3.5: ``identity`` is the subscriber's IMSI (or private user identity); a client
    receiving it makes a new configuration request. UCS-2 encoded, as for :func:`otp_sms`.
    """
    return _text_sms(f"{identity}-rcscfg", port, source_port)


@dataclass
class Provisioner:
    """One carrier's RCS configuration server logic: subscribers, versions, tokens and OTPs.

    ``handle(request, now)`` decides the answer; the admin methods change what the next answer will be.
    """

    profile: RcsProfile
    send_sms: SendSms
    rng: random.Random
    #: When set, every request is answered 503 with this Retry-After (seconds).
    overloaded_retry_after: int | None = None
    _by_msisdn: dict[str, Subscriber] = field(default_factory=dict)
    _by_imsi: dict[str, Subscriber] = field(default_factory=dict)
    _tokens: dict[str, TokenGrant] = field(default_factory=dict)
    #: The tokens of each MSISDN, so revoking them does not scan every token (it happens on every new
    #: configuration: a scan made provisioning quadratic in the number of subscribers).
    _tokens_of: dict[str, set[str]] = field(default_factory=dict)
    #: Pending OTPs, oldest first: one validity for all, so insertion order is expiry order and the expired ones
    #: are purged from the front (as :attr:`_cellular`), instead of staying until answered or superseded.
    _otp_by_session: dict[str, _PendingOtp] = field(default_factory=dict)
    #: The session of each number's pending OTP (at most one), so superseding and the lookup by msisdn do not
    #: scan every pending OTP (a scan made OTP issuance quadratic in the number of pending OTPs).
    _otp_session_of: dict[str, str] = field(default_factory=dict)
    #: Open cellular sessions, oldest first (one validity for all, so insertion order is expiry order).
    _cellular: dict[str, _CellularSession] = field(default_factory=dict)

    # -- administration -------------------------------------------------------------------------------

    def add_subscriber(self, msisdn: str, imsi: str | None = None) -> Subscriber:
        """Provision a subscriber (``msisdn`` in E.164 with ``+``)."""
        subscriber = Subscriber(msisdn=msisdn, imsi=imsi)
        self._by_msisdn[msisdn] = subscriber
        if imsi is not None:
            self._by_imsi[imsi] = subscriber
        return subscriber

    def subscriber(self, msisdn: str) -> Subscriber:
        """The subscriber with this MSISDN; KeyError if unknown."""
        return self._by_msisdn[msisdn]

    def set_state(self, msisdn: str, state: SubscriberState) -> None:
        """Put a subscriber in a server-side state.

        Tokens are not revoked here: a client holding one must still be recognised to be told VERS 0 or -1 (a
        511 would only send it to the OTP path). The answer that delivers 0 or -1 revokes them.
        """
        self._by_msisdn[msisdn].state = state

    def change_sim(self, msisdn: str, imsi: str) -> None:
        """The subscriber moved ``msisdn`` to a new SIM (a SIM swap): its IMSI is now ``imsi``, requests with the
        old one are refused, and its configuration tokens (issued to the old SIM's client) are revoked."""
        subscriber = self._by_msisdn[msisdn]
        if subscriber.imsi is not None and self._by_imsi.get(subscriber.imsi) is subscriber:
            del self._by_imsi[subscriber.imsi]
        subscriber.imsi = imsi
        self._by_imsi[imsi] = subscriber
        self._revoke_tokens(msisdn)

    def set_barred(self, msisdn: str, barred: bool = True) -> None:
        """Bar (403) or unbar a subscriber."""
        self._by_msisdn[msisdn].barred = barred

    def request_reconfiguration(self, msisdn: str, port: int = DEFAULT_SMS_PORT) -> list[Segment]:
        """Publish a new configuration version and tell the client by a ``-rcscfg`` SMS; returns its parts."""
        subscriber = self._by_msisdn[msisdn]
        subscriber.version += 1
        identity = subscriber.imsi if subscriber.imsi is not None else msisdn
        segments = reconfiguration_sms(identity, port, source_port=self.profile.sms_source_port)
        for segment in segments:
            self.send_sms(msisdn, segment)
        return segments

    def token_info(self, token: str) -> TokenGrant | None:
        """The grant behind a token, expired or not."""
        return self._tokens.get(token)

    # -- requests -------------------------------------------------------------------------------------

    def handle(
        self,
        request: ConfigRequest,
        now: float,
        *,
        otp_session: str | None = None,
        cellular_session: str | None = None,
        enriched_msisdn: str | None = None,
    ) -> Outcome:
        """Decide the answer to one configuration request at time ``now``.

        ``otp_session`` is the session the client carries back (a cookie) when it answers an OTP;
        ``cellular_session`` the one a bare cellular request opened. ``enriched_msisdn`` is the number the
        packet core's header enrichment put on the request, looked at only on a bare request. Raises
        :class:`SmsNotSent` when ``send_sms`` refuses the OTP SMS; the state is then as before the request.
        """
        if self.overloaded_retry_after is not None:
            return Refused(503, "Overloaded", "the configuration server is busy", self.overloaded_retry_after)
        if request.bare:
            return self._open_cellular(enriched_msisdn, now)

        via_otp = False
        imsi = request.imsi
        cellular = self._cellular_subscriber(cellular_session, now)
        by_token = self._token_subscriber(request, now) if request.token is not None else None
        if isinstance(by_token, Refused) and cellular is None:
            return by_token
        # A refused token beside a valid cellular session falls through to the cellular identity: the network
        # vouches for the client, and its token may merely be stale (revoked by a reset or a new configuration).
        # So does a valid token of another number than the one the network sees: the device now holds that
        # number's SIM, and another subscriber's configuration must not reach it on the strength of an old token.
        if isinstance(by_token, Subscriber) and (cellular is None or cellular is by_token):
            subscriber = by_token
        elif cellular is not None:
            subscriber = cellular
            # The network knows which SIM holds the number; a client naming another one is not it. A record with
            # no IMSI (a number no phone of the scenario has) knows no SIM to compare with, so, as on the token
            # path, it refuses nobody: clients name their IMSI on every cellular request (rcsjta).
            if request.imsi is not None and subscriber.imsi is not None and request.imsi != subscriber.imsi:
                return Refused(403, "Forbidden", "the IMSI is not the one of this cellular subscriber")
        elif request.otp is not None:
            checked = self._check_otp(request, now, otp_session)
            if isinstance(checked, Refused):
                return checked
            (subscriber, pending_imsi), via_otp = checked, True
            imsi = imsi if imsi is not None else pending_imsi
        elif request.msisdn is not None:
            return self._send_otp(request, now)
        else:
            # RCC.07: without cellular identity and msisdn, 403 makes the client ask the user for the MSISDN.
            # An IMSI without a cellular session is no identity: clients send it on Wi-Fi too.
            return Refused(403, "Forbidden", "no cellular identity: the msisdn parameter is required")

        if subscriber.barred:
            return Refused(403, "Forbidden", "the subscriber is barred from RCS")
        return self._answer(subscriber, request, now, via_otp, imsi)

    def _token_subscriber(self, request: ConfigRequest, now: float) -> Subscriber | Refused:
        assert request.token is not None
        grant = self._tokens.get(request.token)
        if grant is None or now >= grant.expires_at:
            if grant is not None:
                del self._tokens[request.token]
                self._tokens_of.get(grant.msisdn, set()).discard(request.token)
            return Refused(511, "Network Authentication Required", "the token is unknown or expired")
        subscriber = self._by_msisdn.get(grant.msisdn)
        # Wi-Fi clients send their SIM's IMSI on every request, so compare with the IMSI the token was
        # issued to, not with the door's record (which may be None or another SIM's).
        if subscriber is None or (grant.imsi is not None and request.imsi is not None and request.imsi != grant.imsi):
            return Refused(511, "Network Authentication Required", "the token belongs to another subscriber")
        return subscriber

    def _answer(
        self, subscriber: Subscriber, request: ConfigRequest, now: float, via_otp: bool, imsi: str | None
    ) -> Outcome:
        state = subscriber.state
        if state is SubscriberState.RESET and via_otp:
            # The client just spent an OTP: a VERS 0 would make it reset and ask again, which costs another OTP.
            # The full document replaces whatever it held, the state a reset and a new request would reach, so
            # the one-shot reset is delivered that way.
            subscriber.state = state = SubscriberState.ACTIVE
        if state is SubscriberState.RESET:
            self._revoke_tokens(subscriber.msisdn)
            subscriber.state = SubscriberState.ACTIVE
            return VersionAnswered(0, 0)
        if state is SubscriberState.RESET_FORBID:
            self._revoke_tokens(subscriber.msisdn)
            return VersionAnswered(-1, 0)
        if state is SubscriberState.DISABLED:
            return VersionAnswered(-2, 0)
        if state is SubscriberState.DORMANT:
            return VersionAnswered(-3, self.profile.validity)
        if request.vers is not None and request.vers == subscriber.version and not via_otp:
            return VersionAnswered(subscriber.version, self.profile.validity)
        self._revoke_tokens(subscriber.msisdn)
        grant = TokenGrant(
            token=f"{self.rng.getrandbits(128):032x}",
            msisdn=subscriber.msisdn,
            expires_at=now + self.profile.token_validity,
            validity=self.profile.token_validity,
            imsi=imsi,
        )
        self._tokens[grant.token] = grant
        self._tokens_of.setdefault(grant.msisdn, set()).add(grant.token)
        return ConfigurationIssued(subscriber.version, self.profile.validity, grant, subscriber, self.profile)

    def _send_otp(self, request: ConfigRequest, now: float) -> Outcome:
        assert request.msisdn is not None
        subscriber = self._by_msisdn.get(request.msisdn)
        if subscriber is None:
            return Refused(403, "Forbidden", "the msisdn is not an RCS subscriber of this carrier")
        if subscriber.barred:
            return Refused(403, "Forbidden", "the subscriber is barred from RCS")
        digits = self.profile.otp_digits
        otp = f"{self.rng.randrange(10**digits):0{digits}d}"
        session = f"{self.rng.getrandbits(64):016x}"
        # Sent before anything is recorded: an OTP the SMSC refused would otherwise stay pending (and supersede one
        # that did reach the phone) though no SMS carries it. The OTP fits one part, so a refusal sends nothing.
        try:
            for segment in otp_sms(otp, request.sms_port, source_port=self.profile.sms_source_port):
                self.send_sms(subscriber.msisdn, segment)
        except Exception as exc:  # send_sms is another component's: whatever it raises, this SMS did not go out
            raise SmsNotSent(subscriber.msisdn) from exc
        self._purge_expired_otps(now)
        # One pending OTP per number: a new request supersedes the old one.
        if (superseded := self._otp_session_of.get(subscriber.msisdn)) is not None:
            self._drop_otp(superseded)
        self._otp_by_session[session] = _PendingOtp(
            otp, subscriber.msisdn, now + self.profile.otp_validity, request.imsi
        )
        self._otp_session_of[subscriber.msisdn] = session
        return OtpSent(subscriber.msisdn, session)

    def _open_cellular(self, enriched_msisdn: str | None, now: float) -> Outcome:
        # RCC.14 / rcsjta's getConfig: 511 to the bare HTTP request sends the client to the OTP path.
        msisdn = None
        # ASCII digits only: str.isdigit() would let '²' or Arabic-Indic digits through as a number.
        if enriched_msisdn and (enriched := _ENRICHED_MSISDN.fullmatch(enriched_msisdn.strip())):
            msisdn = f"+{enriched.group(1)}"
        if msisdn is None or msisdn not in self._by_msisdn:
            return Refused(511, "Network Authentication Required", "no cellular identity: authenticate by OTP")
        while self._cellular:  # drop the expired sessions; the oldest come first
            oldest = next(iter(self._cellular))
            if self._cellular[oldest].expires_at > now:
                break
            del self._cellular[oldest]
        session = f"{self.rng.getrandbits(64):016x}"
        self._cellular[session] = _CellularSession(msisdn, now + CELLULAR_SESSION_VALIDITY)
        return CellularSessionOpened(msisdn, session)

    def _cellular_subscriber(self, session: str | None, now: float) -> Subscriber | None:
        found = self._cellular.get(session) if session else None
        if found is None or now >= found.expires_at:
            return None
        return self._by_msisdn.get(found.msisdn)

    def _check_otp(
        self, request: ConfigRequest, now: float, session: str | None
    ) -> tuple[Subscriber, str | None] | Refused:
        key = session if session in self._otp_by_session else None
        if key is None and request.msisdn is not None:
            key = self._otp_session_of.get(request.msisdn)
        if key is None:
            return Refused(403, "Forbidden", "no OTP is pending for this client")
        pending = self._otp_by_session[key]
        if now >= pending.expires_at:
            self._drop_otp(key)
            return Refused(403, "Forbidden", "the OTP has expired")
        if request.otp != pending.otp:
            pending.attempts += 1
            if pending.attempts >= MAX_OTP_ATTEMPTS:
                self._drop_otp(key)
            return Refused(403, "Forbidden", "the OTP is wrong")
        self._drop_otp(key)
        return self._by_msisdn[pending.msisdn], pending.imsi

    def _drop_otp(self, session: str) -> None:
        pending = self._otp_by_session.pop(session)
        if self._otp_session_of.get(pending.msisdn) == session:
            del self._otp_session_of[pending.msisdn]

    def _purge_expired_otps(self, now: float) -> None:
        while self._otp_by_session:  # the oldest come first; stop at the first one still valid
            oldest, pending = next(iter(self._otp_by_session.items()))
            if pending.expires_at > now:
                break
            self._drop_otp(oldest)

    def pending_otps(self) -> int:
        """How many OTPs are pending (sent, not yet answered, superseded or purged after expiry)."""
        return len(self._otp_by_session)

    def _revoke_tokens(self, msisdn: str) -> None:
        for token in self._tokens_of.pop(msisdn, ()):
            self._tokens.pop(token, None)
