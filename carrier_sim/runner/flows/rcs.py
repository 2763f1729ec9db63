"""RCS autoconfiguration (GSMA RCC.14 / RCC.07 section 2.3): phones asking their carrier's RCS door for a config.

Theory of operation
-------------------
Two flows play the terminal's side of RCC.14 against each carrier's RCS door (``ctx.doors["rcs"]``), over real
HTTP, through a fixed pool of workers (:data:`HTTP_WORKERS`) that take row numbers from a queue.

``rcs_cellular`` -- the cellular path. As rcsjta and Samsung's clients do on the mobile network, every configuration
request starts with a bare plain-HTTP ``GET /``, which the emulated network enriches with the phone's number
(:data:`~carrier_sim.rcs.app.ENRICHMENT_HEADER`, as a packet core's header enrichment would); the server answers 200
and a cookie (a 511 would mean "not cellular", failure :data:`NOT_CELLULAR`). The real request carries the cookie
back. The phone asks with ``vers=0``, its IMSI, IMEI and MSISDN and the client
parameters (:func:`client_parameters`), gets a full ``wap-provisioningdoc`` and judges it with
:func:`~carrier_sim.rcs.document.validate_document` (TOKEN and an APPLICATION required). The document's VERS
version and TOKEN go into the phone's columns (``vers``, ``token``). After a think time the phone asks again with
that ``vers`` and ``token``: a server that keeps its state must answer VERS only, with the same version ("the
configuration is still valid"). Both answers right: completed.

``rcs_otp`` -- the non-cellular path (Wi-Fi). The phone asks with ``vers=0``, its MSISDN and, as rcsjta and Samsung
do on any network, its IMSI and IMEI -- but without the cellular cookie, so the IMSI must not count; the server
answers 200 with an empty body, sets a session cookie, and sends the OTP as a UCS-2 SMS addressed to the client's
``SMS_port`` through the carrier's SMSC. The phone reads the OTP out of the port-addressed SMS, decoding the user
data as UCS-2 as the clients do (:meth:`RcsOtpFlow.on_mt`), thinks (the user or the client copies it), and asks
again with ``OTP=...`` alone and the cookie (rcsjta's ``?OTP=``; Samsung clears every other parameter); the answer
must be a full, valid document with a token. That is completed.

A document that fails validation counts as failure :data:`DOCUMENT_INVALID` (the run's
``rcs.documents_invalid`` is the sum over both flows: :attr:`RcsFlow.documents_invalid`); the first errors are
kept in :attr:`RcsFlow.document_errors` for the report. HTTP refusals are failures named after their meaning
(:data:`REFUSALS`); VERS answers with a special version (reset, forbid, disable, dormant) in place of a
configuration are failures ``rcs_<meaning>``.

Per-phone state is columns (state, timestamps, ``vers`` and a variable-width string column ``token``); the only
per-phone values held outside columns are the OTP session cookie and the OTP itself, and only while the phone is
between the two requests of ``rcs_otp``.

Every state a phone waits in has its queue of phones in the order they entered it
(:class:`~carrier_sim.runner.flows.base.AwaitingAnswer`), so the first to time out is at a queue's head:
:meth:`RcsFlow.quiet_until` and :meth:`RcsFlow.expire` cost what they find, not a scan of the shard's columns.
The answers and SMS the phones await come through the run's loop (sockets, timers), which wakes a runner skipping
idle ticks on its own; only the timeouts are the flow's.

The flows use their own HTTP client session with no cookie jar: every phone is a separate device, so a cookie set
for one phone must never ride along with another's request (one jar shared by all would do exactly that, the
door being one host); each phone's cookie is sent back explicitly.
"""

from __future__ import annotations

import abc
import asyncio
import enum
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import aiohttp
import numpy as np
import numpy.typing as npt

from carrier_sim.population.scheduler import DueQueue
from carrier_sim.rcs.app import ENRICHMENT_HEADER
from carrier_sim.rcs.document import SPECIAL_VERSIONS, validate_document
from carrier_sim.rcs.provisioning import DEFAULT_SMS_PORT
from carrier_sim.runner.flows.base import (
    NEAR_DUE,
    AwaitingAnswer,
    DoorAddress,
    FlowContext,
    PhoneFlow,
    first_timeout,
    next_row,
)
from carrier_sim.scenario.model import Flow
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smpp.reassembly import MessageReassembled, Reassembler, part_from_pdu
from carrier_sim.smpp.udh import Udh, split_user_data
from carrier_sim.smsc.store import StoredMessage

__all__ = [
    "DOCUMENT_INVALID",
    "HTTP_WORKERS",
    "NOT_CELLULAR",
    "REFUSALS",
    "SMS_PORT",
    "RcsCellularFlow",
    "RcsFlow",
    "RcsOtpFlow",
    "client_parameters",
    "whole_message",
]

#: Configuration requests in flight at most, per flow: a fixed pool, never a task per phone.
HTTP_WORKERS: Final = 32
#: The port the phones' RCS clients listen on for configuration SMS (RCC.07's default).
SMS_PORT: Final = DEFAULT_SMS_PORT
#: The failure of a phone whose answer was not a valid ``wap-provisioningdoc``.
DOCUMENT_INVALID: Final = "document_invalid"
#: The failure of a cellular phone whose bare first request was not recognised as cellular (511).
NOT_CELLULAR: Final = "not_cellular"
#: HTTP status of a refused configuration request -> failure reason.
REFUSALS: Final[dict[int, str]] = {
    400: "bad_request",
    403: "forbidden",
    503: "overloaded",
    511: "token_rejected",
}
#: Failure reason of a VERS-only answer carrying a special version where a configuration was due.
_SPECIAL_FAILURES: Final = {version: "rcs_" + meaning.replace(" and ", "_") for version, meaning in
                            SPECIAL_VERSIONS.items()}
#: How many document errors a flow keeps for the report.
_KEPT_ERRORS: Final = 20


def client_parameters() -> dict[str, str]:
    """What the emulated RCS client says about itself (RCC.07 section 2.3.3.2 / RCC.14 table 4)."""
    return {
        "terminal_vendor": "CSIM",
        "terminal_model": "SimPhone",
        "terminal_sw_version": "1.0",
        "client_vendor": "CSIM",
        "client_version": "RCSAndrd-9.0",
        "rcs_version": "9.0",
        "rcs_profile": "UP_2.4",
        "provisioning_version": "5.0",
        "default_sms_app": "1",
    }


def whole_message(reassembler: Reassembler, message: StoredMessage, now: float) -> tuple[Udh | None, bytes] | None:
    """The header and user data of the message ``message`` completes, None while parts are missing (or if the
    part is malformed). A part's concatenation IE is dropped from the header; port addressing stays."""
    try:
        part = part_from_pdu(message.source_addr, message.destination_addr, esm_class=message.esm_class,
                             short_message=message.data, data_coding=message.data_coding)
        if part is None:
            return split_user_data(message.data, message.esm_class)
        for event in reassembler.add(part, now):
            if isinstance(event, MessageReassembled):
                return event.udh, event.payload
    except SmppError:
        return None
    return None


@dataclass(frozen=True, slots=True)
class _Answer:
    status: int
    body: bytes
    #: The cookies the answer set, as a Cookie header value ("" for none).
    cookie: str


@dataclass(frozen=True, slots=True)
class _Document:
    version: int
    token: str
    top: tuple[str, ...]


def _url(door: DoorAddress) -> str:
    host = f"[{door.host}]" if ":" in door.host else door.host
    return f"http://{host}:{door.port}/"


def _read(body: bytes) -> _Document:
    # Only called on a document validate_document accepted: well-formed, one VERS with an integer version.
    root = ET.fromstring(body)
    top = tuple(str(c.get("type")) for c in root.findall("characteristic"))
    version, token = 0, ""
    for characteristic in root.findall("characteristic"):
        parms = {p.get("name"): p.get("value") for p in characteristic.findall("parm")}
        if characteristic.get("type") == "VERS":
            version = int(str(parms.get("version")))
        elif characteristic.get("type") == "TOKEN":
            token = str(parms.get("token") or "")
    return _Document(version, token, top)


class RcsFlow(PhoneFlow, abc.ABC):
    """What both RCS flows share: the phone's configuration columns, the worker pool, the document judge."""

    #: Queued / waiting states older than this many seconds fail in :meth:`expire`.
    answer_timeout: float

    def __init__(self, ctx: FlowContext, spec: Flow, *, answer_timeout: float = 30.0) -> None:
        super().__init__(ctx, spec)
        n = len(ctx.population)
        self.answer_timeout = answer_timeout
        self.state = np.zeros(n, dtype=np.int8)
        #: When the phone entered its current state.
        self.t_step = np.full(n, np.nan)
        #: The configuration the phone holds: VERS version (0: none) and TOKEN (empty: none).
        self.vers = np.zeros(n, dtype=np.int32)
        self.token: np.ndarray[Any, np.dtypes.StringDType] = np.full(n, "", dtype=np.dtypes.StringDType())
        self.next_due = np.full(n, np.inf)
        self.due = DueQueue(self.next_due, resolution=0.02)
        self.queue: asyncio.Queue[int] = asyncio.Queue()
        #: Documents that failed validation, and the first errors found in them.
        self.documents_invalid = 0
        self.document_errors: list[str] = []
        #: Per waiting state, (entered at, row) of every phone that entered it, in that order.
        self._awaiting = {state: AwaitingAnswer(self.state, self.t_step, state) for state in self._waiting}

    # -- the phone's states ----------------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def _waiting(self) -> tuple[int, ...]:
        """States in which the phone waits for something that :meth:`expire` may give up on."""

    @property
    @abc.abstractmethod
    def _failed(self) -> int:
        """The FAILED state."""

    def _set(self, row: int, state: int, now: float) -> None:
        # Every change of state goes through here (expire's and finish's FAILED aside), so each waiting phone is
        # in its state's queue: expire and quiet_until rely on it. ``now`` is the run's clock, read at a tick or by
        # a worker as it moves the phone on, so each queue stays in time order.
        self.state[row] = state
        self.t_step[row] = now
        awaiting = self._awaiting.get(state)
        if awaiting is not None:
            awaiting.add(now, row)

    def _fail(self, row: int, reason: str, now: float) -> None:
        self._set(row, self._failed, now)
        self.counters.fail(reason)

    def _queue(self, row: int, state: int, stage: str, now: float) -> None:
        self._set(row, state, now)
        self.counters.reached(stage)
        self.queue.put_nowait(row)

    def _think_then(self, row: int, state: int, now: float) -> None:
        self._set(row, state, now)
        rows = np.array([row], dtype=np.int64)
        self.due.set_due(rows, now + self.think(rows))

    def _judge(self, row: int, body: bytes, *, full: bool, now: float) -> _Document | None:
        """The document, if valid (with a token and an application when ``full``); else the phone fails."""
        errors = validate_document(body, token_issued=full, full=full)
        if errors and full and not validate_document(body):
            special = _read(body)
            if special.version < 1 and special.top == ("VERS",):
                # A valid answer, just not a configuration: the server reset, forbade, disabled or parked RCS.
                self._fail(row, _SPECIAL_FAILURES.get(special.version, "rcs_special_version"), now)
                return None
        if errors:
            self.documents_invalid += 1
            if len(self.document_errors) < _KEPT_ERRORS:
                self.document_errors.append(f"{self.name} phone {int(self.ctx.index[row])}: {'; '.join(errors)}")
            self._fail(row, DOCUMENT_INVALID, now)
            return None
        return _read(body)

    def _refused(self, row: int, answer: _Answer | str, now: float) -> bool:
        """Fail the phone if the request did not get a 200; True if it did fail."""
        if isinstance(answer, str):
            self._fail(row, answer, now)
            return True
        if answer.status != 200:
            self._fail(row, REFUSALS.get(answer.status, f"http_{answer.status}"), now)
            return True
        return False

    # -- runner hooks ----------------------------------------------------------------------------------------

    def quiet_until(self, now: float) -> float:
        """The next phone done thinking, or the first waiting phone (for an answer or an SMS) to time out."""
        due = self.due.next_time()
        if due - now < NEAR_DUE:
            return due  # no whole tick to skip: spare the queues below
        return first_timeout(self._awaiting.values(), self.answer_timeout, due)

    def expire(self, now: float) -> None:
        """Phones waiting longer than ``answer_timeout`` for an answer or an SMS fail (``no_answer``, ...). Taken
        from the heads of the waiting states' queues, oldest first, so a sweep costs what it finds."""
        for state, awaiting in self._awaiting.items():
            late = awaiting.expire(now - self.answer_timeout, self._failed)
            if late:
                self.counters.fail(self._timeout_reason(state), late)

    def _timeout_reason(self, state: int) -> str:
        del state
        return "no_answer"

    def finish(self) -> None:
        """Phones mid-flow when the run ends count as failed (``unfinished``)."""
        done_or_failed = self.counters.completed + self.counters.failed
        left = self.counters.started - done_or_failed
        if left > 0:
            mid = np.nonzero(~np.isnan(self.t_started) & np.isnan(self.t_done) & (self.state != self._failed))[0]
            self.state[mid] = self._failed
            self.counters.fail("unfinished", left)

    # -- HTTP ------------------------------------------------------------------------------------------------

    async def serve(self) -> None:
        """:data:`HTTP_WORKERS` workers taking queued phones' requests to their carrier's RCS door."""
        connector = aiohttp.TCPConnector(limit=HTTP_WORKERS)
        timeout = aiohttp.ClientTimeout(total=self.answer_timeout)
        async with (aiohttp.ClientSession(connector=connector, timeout=timeout,
                                          cookie_jar=aiohttp.DummyCookieJar()) as session,
                    asyncio.TaskGroup() as workers):
            for _ in range(HTTP_WORKERS):
                workers.create_task(self._worker(session))

    async def _worker(self, session: aiohttp.ClientSession) -> None:
        while True:
            row = await next_row(self.queue)
            await self._request(session, row)

    @abc.abstractmethod
    async def _request(self, session: aiohttp.ClientSession, row: int) -> None:
        """Make the request phone ``row``'s state calls for and act on the answer."""

    def _door(self, row: int) -> DoorAddress | None:
        return self.ctx.door("rcs", int(self.ctx.carrier_of[row]))

    async def _fetch(self, session: aiohttp.ClientSession, row: int, params: dict[str, str],
                     cookie: str = "", headers: dict[str, str] | None = None) -> _Answer | str:
        """GET the phone's RCS door with ``params``: the answer, or the failure reason of a transport error."""
        door = self._door(row)
        if door is None:
            return "no_rcs_door"
        headers = dict(headers or {})
        if cookie:
            headers["Cookie"] = cookie
        try:
            async with session.get(_url(door), params=params, headers=headers) as response:
                body = await response.read()
                cookies = "; ".join(f"{name}={morsel.value}" for name, morsel in response.cookies.items())
                return _Answer(response.status, body, cookies)
        except (aiohttp.ClientError, TimeoutError) as err:
            return f"http_error_{type(err).__name__}"


class _Cellular(enum.IntEnum):
    IDLE = 0
    FIRST_SENT = 1
    THINKING = 2
    RECHECK_SENT = 3
    DONE = 4
    FAILED = 5


class RcsCellularFlow(RcsFlow):
    """Cellular RCC.14: ``vers=0`` with IMSI -> full document; think; ``vers`` + ``token`` -> VERS only."""

    name: ClassVar[str] = "rcs_cellular"
    stage_names: ClassVar[tuple[str, ...]] = ("config_requested", "configured", "recheck_sent", "up_to_date")

    @property
    def _waiting(self) -> tuple[int, ...]:
        return (_Cellular.FIRST_SENT, _Cellular.RECHECK_SENT)

    @property
    def _failed(self) -> int:
        return _Cellular.FAILED

    def arrive(self, rows: npt.NDArray[np.int64], now: float) -> None:
        """Phones ask for their first configuration at once."""
        self.counters.started += len(rows)
        self.t_started[rows] = now
        for row in rows.tolist():
            self._queue(row, _Cellular.FIRST_SENT, "config_requested", now)

    def tick(self, now: float) -> None:
        """Phones done thinking check their configuration again."""
        for row in self.due.pop_due(now).tolist():
            if self.state[row] == _Cellular.THINKING:
                self._queue(row, _Cellular.RECHECK_SENT, "recheck_sent", now)

    def _params(self, row: int) -> dict[str, str]:
        population = self.ctx.population
        params = {"vers": str(int(self.vers[row])), "IMSI": population.imsi_of(row),
                  "IMEI": population.imei_of(row), "msisdn": f"+{int(self.ctx.msisdns[row])}",
                  **client_parameters()}
        if self.token[row]:
            params["token"] = str(self.token[row])
        return params

    async def _request(self, session: aiohttp.ClientSession, row: int) -> None:
        state = int(self.state[row])
        if state not in (_Cellular.FIRST_SENT, _Cellular.RECHECK_SENT):
            return
        # The bare plain-HTTP request first, enriched by the (emulated) mobile network with the phone's number.
        bare = await self._fetch(session, row, {}, headers={ENRICHMENT_HEADER: str(int(self.ctx.msisdns[row]))})
        if self.state[row] != state:
            return
        if isinstance(bare, _Answer) and bare.status == 511:
            self._fail(row, NOT_CELLULAR, self.ctx.clock())
            return
        if self._refused(row, bare, self.ctx.clock()):
            return
        assert isinstance(bare, _Answer)
        answer = await self._fetch(session, row, self._params(row), bare.cookie)
        now = self.ctx.clock()
        if self.state[row] != state or self._refused(row, answer, now):
            return  # expired while the request was out, or refused
        assert isinstance(answer, _Answer)
        if state == _Cellular.FIRST_SENT:
            self._configured(row, answer, now)
        else:
            self._rechecked(row, answer, now)

    def _configured(self, row: int, answer: _Answer, now: float) -> None:
        if not answer.body:
            self._fail(row, "no_document", now)
            return
        document = self._judge(row, answer.body, full=True, now=now)
        if document is None:
            return
        self.vers[row] = document.version
        self.token[row] = document.token
        self.counters.reached("configured")
        self._think_then(row, _Cellular.THINKING, now)

    def _rechecked(self, row: int, answer: _Answer, now: float) -> None:
        document = self._judge(row, answer.body, full=False, now=now)
        if document is None:
            return
        # RCC.07 section 2.3.3.3: a client holding the current version gets VERS alone, with that version.
        if document.top != ("VERS",) or document.version != self.vers[row]:
            self._fail(row, "not_up_to_date", now)
            return
        self._set(row, _Cellular.DONE, now)
        self.t_done[row] = now
        self.counters.reached("up_to_date")
        self.counters.completed += 1


class _Otp(enum.IntEnum):
    IDLE = 0
    REQUEST_SENT = 1
    OTP_WAIT = 2
    THINKING = 3
    ANSWER_SENT = 4
    DONE = 5
    FAILED = 6


class RcsOtpFlow(RcsFlow):
    """Non-cellular RCC.14: ``vers=0`` + msisdn -> 200 empty and an OTP by SMS; ``OTP=...`` -> full document."""

    name: ClassVar[str] = "rcs_otp"
    stage_names: ClassVar[tuple[str, ...]] = (
        "config_requested", "otp_pending", "otp_received", "otp_sent", "configured")

    def __init__(self, ctx: FlowContext, spec: Flow, *, answer_timeout: float = 30.0) -> None:
        super().__init__(ctx, spec, answer_timeout=answer_timeout)
        #: Phones between the two requests: the session cookie the server set, and the OTP once it arrived.
        self.cookies: dict[int, str] = {}
        self.otps: dict[int, str] = {}
        self.reassembler = Reassembler(timeout=answer_timeout, max_pending=10_000)

    @property
    def _waiting(self) -> tuple[int, ...]:
        return (_Otp.REQUEST_SENT, _Otp.OTP_WAIT, _Otp.ANSWER_SENT)

    @property
    def _failed(self) -> int:
        return _Otp.FAILED

    def _timeout_reason(self, state: int) -> str:
        return "no_otp_sms" if state == _Otp.OTP_WAIT else "no_answer"

    def _fail(self, row: int, reason: str, now: float) -> None:
        self.cookies.pop(row, None)
        self.otps.pop(row, None)
        super()._fail(row, reason, now)

    def arrive(self, rows: npt.NDArray[np.int64], now: float) -> None:
        """Phones ask for a configuration with their number only."""
        self.counters.started += len(rows)
        self.t_started[rows] = now
        for row in rows.tolist():
            self._queue(row, _Otp.REQUEST_SENT, "config_requested", now)

    def on_mt(self, row: int, message: StoredMessage, now: float) -> None:
        """The OTP: digits in an SMS addressed to :data:`SMS_PORT`, the user data read as UCS-2 as rcsjta's
        HttpsProvisioningSMS reads it (whatever the data_coding says).

        The SMS may overtake the HTTP answer that announced it (the server sends it before answering): then the
        OTP waits with the phone until the answer, and its cookie, are in."""
        if self.state[row] not in (_Otp.REQUEST_SENT, _Otp.OTP_WAIT) or row in self.otps:
            return
        whole = whole_message(self.reassembler, message, now)
        if whole is None:
            return
        udh, payload = whole
        ports = udh.port_addressing if udh is not None else None
        if ports is None or ports.destination_port != SMS_PORT:
            return  # not for the RCS client
        try:
            otp = payload.decode("utf-16-be")
        except UnicodeDecodeError:
            return
        if not otp.isdigit():
            return  # e.g. a "<IMSI>-rcscfg" reconfiguration request, not an OTP
        self.otps[row] = otp
        self.counters.reached("otp_received")
        if self.state[row] == _Otp.OTP_WAIT:
            self._think_then(row, _Otp.THINKING, now)

    def tick(self, now: float) -> None:
        """Phones done thinking answer with the OTP."""
        for row in self.due.pop_due(now).tolist():
            if self.state[row] == _Otp.THINKING:
                self._queue(row, _Otp.ANSWER_SENT, "otp_sent", now)

    def quiet_until(self, now: float) -> float:
        """As :meth:`RcsFlow.quiet_until`, or the reassembler's next expiry if sooner: a part it still holds (or a
        completed message it still knows, to ignore a resend) after the moment :meth:`expire` would have dropped
        it could complete, or not, a later SMS differently."""
        wake = super().quiet_until(now)
        held = self.reassembler.next_deadline
        return wake if held is None else min(wake, held)

    def expire(self, now: float) -> None:
        """As :meth:`RcsFlow.expire`, and the reassembler drops parts that will never be completed."""
        super().expire(now)
        self.reassembler.expire(now)
        failed = self.state == _Otp.FAILED
        for row in [r for r in self.cookies if failed[r]]:
            self.cookies.pop(row, None)
            self.otps.pop(row, None)

    def _params(self, row: int) -> dict[str, str]:
        if self.state[row] == _Otp.ANSWER_SENT:
            # rcsjta's second request is "?OTP=<otp>" alone; Samsung clears every parameter and adds OTP.
            return {"OTP": self.otps.get(row, "")}
        # Non-cellular access: the number the user typed and the port for SMS, and -- as rcsjta and Samsung send
        # them on any network -- IMSI, IMEI and an empty token. Without the cellular cookie the IMSI proves nothing.
        population = self.ctx.population
        return {"vers": "0", "IMSI": population.imsi_of(row), "IMEI": population.imei_of(row),
                "msisdn": f"+{int(self.ctx.msisdns[row])}", "SMS_port": str(SMS_PORT), "token": "",
                **client_parameters()}

    async def _request(self, session: aiohttp.ClientSession, row: int) -> None:
        state = int(self.state[row])
        if state not in (_Otp.REQUEST_SENT, _Otp.ANSWER_SENT):
            return
        answer = await self._fetch(session, row, self._params(row), self.cookies.get(row, ""))
        now = self.ctx.clock()
        if self.state[row] != state:
            return
        if state == _Otp.ANSWER_SENT and isinstance(answer, _Answer) and answer.status == 403:
            self._fail(row, "otp_rejected", now)
            return
        if self._refused(row, answer, now):
            return
        assert isinstance(answer, _Answer)
        if state == _Otp.REQUEST_SENT:
            if answer.body:
                self._fail(row, "document_without_otp", now)
                return
            self.cookies[row] = answer.cookie
            self.counters.reached("otp_pending")
            if row in self.otps:  # the SMS came first
                self._think_then(row, _Otp.THINKING, now)
            else:
                self._set(row, _Otp.OTP_WAIT, now)
            return
        self.cookies.pop(row, None)
        self.otps.pop(row, None)
        if not answer.body:
            self._fail(row, "no_document", now)
            return
        document = self._judge(row, answer.body, full=True, now=now)
        if document is None:
            return
        self.vers[row] = document.version
        self.token[row] = document.token
        self._set(row, _Otp.DONE, now)
        self.t_done[row] = now
        self.counters.reached("configured")
        self.counters.completed += 1
