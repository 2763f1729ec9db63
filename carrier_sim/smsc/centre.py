"""One emulated SMS centre: accounts, sessions, store, delivery, receipts, MO routing, throttles, faults.

Theory of operation. :class:`Smsc` is pure: the I/O layer creates one :class:`SmscConnection` per accepted
socket, hands it received bytes with the current time, and writes out whatever the connection's
``data_to_send()`` returns — for *every* connection marked dirty, because an event on one connection (a
receipt, an MO) may produce PDUs for another. Timers leave as :attr:`Smsc.next_deadline`; the I/O layer calls
:meth:`Smsc.handle_timers` when it passes. The same object therefore runs over real sockets in wall time and
inside a scenario in virtual time.

An MT's life: submit_sm -> checks (bind, throttle, source allow-list, times) -> stored, message_id issued,
submit_sm_resp -> due at schedule_delivery_time -> delivered to the subscriber, or failed per the subscriber's
condition, or expired at validity_period -> a receipt (per registered_delivery) after the configured delay, as
deliver_sm (or data_sm) with the receipt text in the SMSC's dialect and the receipt TLVs, to a receiver bind
of the submitting system_id.

A roaming subscriber is reached through the visited network's MSC, which takes longer than the home network's:
when its MT falls due, the message stays ENROUTE -- query_sm says so, cancel_sm and replace_sm still reach it --
for a roaming delay drawn per message, and is then delivered (or, if its validity ends first, expired) and
reported as above.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import warnings
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from heapq import heapify, heappop, heappush
from statistics import NormalDist
from typing import Any, ClassVar, Literal

import re2

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.codec import HEADER, HEADER_SIZE, decode_fast, encode_into
from carrier_sim.smpp.coding import DataCoding, choose_coding, decode_text, encode_text, text_alphabet
from carrier_sim.smpp.constants import CommandId, CommandStatus, InterfaceVersion
from carrier_sim.smpp.errors import SmppError, TextCodingError
from carrier_sim.smpp.events import (
    BindRequested,
    CloseReason,
    Event,
    LateResponseReceived,
    PduReceived,
    PduRejected,
    ResponseReceived,
    ResponseTimedOut,
    SessionClosed,
    UnbindRequested,
)
from carrier_sim.smpp.pdu import Pdu, SmeAddress, UnsuccessSme, default_params
from carrier_sim.smpp.pdu_table import PDU_TABLE
from carrier_sim.smpp.receipt import (
    ESM_CLASS_INTERMEDIATE_NOTIFICATION,
    ESM_CLASS_SMSC_DELIVERY_RECEIPT,
    KANNEL_LIKE,
    REGISTERED_DELIVERY_INTERMEDIATE,
    IdBase,
    MessageState,
    Receipt,
    ReceiptDialect,
    ReceiptTemplate,
    format_receipt,
    receipt_wanted,
)
from carrier_sim.smpp.segmentation import SegmentationMode, segment_capacity, split_message
from carrier_sim.smpp.session import Session, SessionConfig
from carrier_sim.smpp.session_table import Direction, Role, SessionState, verdict_table
from carrier_sim.smpp.times import InvalidTime, format_absolute, resolve
from carrier_sim.smpp.tlv import (
    TLV_BY_NAME,
    BroadcastFrequencyInterval,
    FrequencyUnit,
    NetworkErrorCode,
    TlvValue,
    check_broadcast_values,
)
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc.accounts import Account, AccountRegistry, BindKind, MoDelivery
from carrier_sim.smsc.draws import Draw, KeyedDraws, Ordinals
from carrier_sim.smsc.faults import FaultPlan
from carrier_sim.smsc.oracle import Oracle
from carrier_sim.smsc.receipt_wire import receipt_body
from carrier_sim.smsc.retry import RetryCounts
from carrier_sim.smsc.store import MessageStore, StoredMessage, StoreError
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry, outcome_for
from carrier_sim.smsc.throttle import TokenBucket

__all__ = ["DelayDistribution", "MtListener", "Owed", "Smsc", "SmscConfig", "SmscConnection", "SmscStats"]

_UDHI = 0x40
_BOUND_RECEIVING = frozenset({SessionState.BOUND_RX, SessionState.BOUND_TRX})
_CONGESTION_REPORTED = frozenset(
    {CommandId.submit_sm_resp, CommandId.data_sm_resp, CommandId.submit_multi_resp, CommandId.broadcast_sm_resp}
)
_DELIVERIES = frozenset({CommandId.deliver_sm, CommandId.data_sm})
_SUBMITS = frozenset({CommandId.submit_sm, CommandId.data_sm, CommandId.submit_multi})
_CONGESTION_TAG = TLV_BY_NAME["congestion_state"].tag
#: Below this, a plain decimal message id is str(number) (IdFormat.render refuses numbers from 2**256 on).
_DECIMAL_ID_LIMIT = 1 << 256
_RECEIPTED_MESSAGE_ID = TLV_BY_NAME["receipted_message_id"].tag
_MESSAGE_STATE = TLV_BY_NAME["message_state"].tag
_NETWORK_ERROR_CODE = TLV_BY_NAME["network_error_code"].tag
_MESSAGE_PAYLOAD = TLV_BY_NAME["message_payload"].tag
_QOS_TIME_TO_LIVE = TLV_BY_NAME["qos_time_to_live"].tag
_USER_MESSAGE_REFERENCE = TLV_BY_NAME["user_message_reference"].tag
_BROADCAST_AREA = TLV_BY_NAME["broadcast_area_identifier"].tag
_BROADCAST_AREA_SUCCESS = TLV_BY_NAME["broadcast_area_success"].tag
#: Seconds in one unit of broadcast_frequency_interval (SMPP 5.0 4.8.4.11), for the lifetime a NULL validity_period
#: derives from it. The spec gives its months and years no length: 30 and 365 days, as relative times count them
#: (carrier_sim.smpp.times). "As frequently as possible" is the network's shortest repetition -- for GSM cell
#: broadcast one CBCH cycle, the Repetition Period unit of 3GPP TS 48.049, about 1.883 s -- and its number of
#: units means nothing, so one is counted.
_FREQUENCY_UNIT_SECONDS: dict[int, float] = {
    FrequencyUnit.AS_FREQUENTLY_AS_POSSIBLE: 1.883,
    FrequencyUnit.SECONDS: 1.0,
    FrequencyUnit.MINUTES: 60.0,
    FrequencyUnit.HOURS: 3600.0,
    FrequencyUnit.DAYS: 86400.0,
    FrequencyUnit.WEEKS: 7 * 86400.0,
    FrequencyUnit.MONTHS: 30 * 86400.0,
    FrequencyUnit.YEARS: 365 * 86400.0,
}
#: priority_flag of a broadcast_sm asking for an immediate broadcast (SMPP 5.0 4.7.19: broadcast priorities).
_IMMEDIATE_BROADCAST = 1
_DELIVER_SM_NULL = default_params(PDU_TABLE[CommandId.deliver_sm])
#: submit_sm and data_sm -> their responses, whose mandatory body is the message_id alone.
_SUBMIT_SM_ID = int(CommandId.submit_sm)
_SUBMIT_SM_RESP_ID = int(CommandId.submit_sm_resp)
_DELIVER_SM_RESP_ID = int(CommandId.deliver_sm_resp)
#: A deliver_sm_resp's length with its message_id NULL, as ESMEs answer (SMPP 3.4 4.6.2: "unused, set to NULL").
_DELIVER_SM_RESP_USUAL = HEADER_SIZE + 1
_RESPONSE_OF_MT = {CommandId.submit_sm: CommandId.submit_sm_resp, CommandId.data_sm: CommandId.data_sm_resp}
assert all(list(default_params(PDU_TABLE[r])) == ["message_id"] for r in _RESPONSE_OF_MT.values())


#: The standard normal distribution, whose quantile function turns a keyed uniform draw into a lognormal one.
_NORMAL = NormalDist()

#: RE2 options for a peer's address_range: its errors are the peer's, answered as a bind refusal, not logged to
#: stderr by the C++ library.
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False


def _address_range(text: str) -> re2._Regexp[str] | None:
    r"""The matcher for a bind's ``address_range`` (None: empty, any address); ValueError, with the reason, for a
    pattern this SMSC refuses.

    The peer chooses the pattern and the SMSC runs it on every MO, so Python's backtracking ``re`` would let one
    ESME stall the single-threaded SMSC for every session with "(.*.*.*)*x". RE2 matches in time linear in the
    address. A pattern RE2 cannot run (backreferences, lookaround, possessive quantifiers, ``\Z``) or would read
    otherwise than ``re`` is refused rather than given another meaning. A pattern ``re`` itself rejects stays a
    literal address, as before RE2.
    """
    if not text:
        return None
    try:
        with warnings.catch_warnings():  # re's FutureWarning on "[[" is about its own future, not the peer's input
            warnings.simplefilter("ignore", FutureWarning)
            re.compile(text)
    except re.error:
        return re2.compile(re2.escape(text), _RE2_OPTIONS)
    reason = _re2_reads_otherwise(text)
    if reason is not None:
        raise ValueError(reason)
    try:
        return re2.compile(text, _RE2_OPTIONS)
    except re2.error as err:
        raise ValueError(str(err)) from None


def _re2_reads_otherwise(pattern: str) -> str | None:
    r"""Why RE2 would match ``pattern`` against an address otherwise than ``re`` does, if it would.

    ``\w``/``\s``/``\b`` (and their negations) are ASCII in RE2 but Unicode in ``re`` (an "é" is a word
    character to one and not the other); ``[[:digit:]]`` is a POSIX class to RE2 and a set of ":digt" plus "]" to
    ``re``; ``a{,3}`` is 0 to 3 "a" to ``re`` and the literal text to RE2. ``\d`` is [0-9] in RE2 and any Unicode
    digit in ``re``, the same on the Latin-1 text an SMPP address holds. A differential check of both engines
    over generated patterns found no other difference, but ``$``: RE2's is the end of the text, ``re``'s also the
    place before a final line feed, which only a destination ending in a line feed (none an SMPP peer or the
    control API can give) would tell apart.
    """
    in_class = False
    first = 0  # where a ']' would still be a member of the class, not its end
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "\\":
            escaped = pattern[i + 1:i + 2]
            if escaped and escaped in "wWsSbB":
                return f"\\{escaped} is ASCII-only in RE2 but Unicode in Python's re"
            i += 2
            continue
        if in_class:
            if ch == "[" and pattern[i + 1:i + 2] in (":", "=", "."):
                return f"{pattern[i:i + 2]} is a POSIX class in RE2 but literal characters in Python's re"
            if ch == "]" and i != first:
                in_class = False
        elif ch == "[":
            in_class = True
            first = i + 1 + (pattern[i + 1:i + 2] == "^")
        elif ch == "{" and pattern[i + 1:i + 2] == ",":
            return "{,n} is a repetition in Python's re but literal text in RE2"
        i += 1
    return None


@dataclass(frozen=True, slots=True)
class DelayDistribution:
    """A delay in seconds: ``uniform`` between ``low`` and ``high`` (fixed when ``low >= high``: ``low``),
    ``exponential`` with ``mean``, or ``lognormal`` with ``median`` and shape ``sigma``."""

    low: float = 0.0
    high: float = 0.0
    kind: Literal["uniform", "exponential", "lognormal"] = "uniform"
    mean: float = 0.0
    median: float = 0.0
    sigma: float = 0.0

    def __post_init__(self) -> None:
        # A negative or NaN delay would put a receipt before its message or never; refuse it where it is made,
        # for callers that build one in code as much as for the config and scenario loaders.
        if self.kind not in ("uniform", "exponential", "lognormal"):
            raise ValueError(f"delay distribution: unknown kind {self.kind!r}")
        for name in ("low", "high", "mean", "median", "sigma"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ValueError(f"delay distribution: {name} must be finite and >= 0 seconds, got {value}")

    @property
    def always_zero(self) -> bool:
        """Whether every draw is 0 (nothing to wait for, and no draw worth making)."""
        if self.kind == "exponential":
            return self.mean <= 0
        if self.kind == "lognormal":
            return self.median <= 0
        return self.high <= self.low <= 0

    def at(self, u: float) -> float:
        """The delay at quantile ``u`` (0 < u < 1): how a keyed uniform draw becomes this distribution's."""
        if self.kind == "exponential":
            return -self.mean * math.log1p(-u)
        if self.kind == "lognormal":
            return self.median * math.exp(self.sigma * _NORMAL.inv_cdf(u))
        return self.low if self.high <= self.low else self.low + (self.high - self.low) * u

    def drawn(self, draws: KeyedDraws, kind: Draw, word: int, n: int) -> float:
        """The delay the keyed draw ``kind`` of (``word``, ``n``) gives (see carrier_sim.smsc.draws)."""
        if self.kind == "uniform":
            return draws.between(kind, word, n, self.low, self.high)  # no draw at all for a fixed delay
        return self.at(draws.uniform(kind, word, n))

    def sample(self, rng: random.Random) -> float:
        """One delay drawn with a sequential generator (the SMSC itself draws keyed: see :meth:`drawn`)."""
        if self.kind == "uniform":
            return self.low if self.high <= self.low else rng.uniform(self.low, self.high)
        return self.at(1.0 - rng.random())  # random() may be 0, never 1: 1 - random() is in (0, 1]


@dataclass(frozen=True, slots=True)
class SmscConfig:
    """Everything that makes one emulated SMSC behave like a particular carrier's."""

    name: str = "smsc"
    accounts: tuple[Account, ...] = ()
    dialect: ReceiptDialect = KANNEL_LIKE
    dlr_delay: DelayDistribution = field(default_factory=DelayDistribution)
    #: What the visited network adds to an MT's delivery to a roaming subscriber (and so to its receipt): the
    #: MAP forwardSM to the visited MSC and its answer cross the international signalling network, typically a
    #: second or two more than at home.
    roaming_delay: DelayDistribution = field(default_factory=lambda: DelayDistribution(0.5, 2.0))
    interface_version: InterfaceVersion = InterfaceVersion.V34
    window: int = 10
    #: What the SMSC tolerates from the peer before the oracle calls it a window violation.
    peer_window: int = 10
    response_timeout: float = 30.0
    enquire_link_interval: float = 60.0
    #: Consecutive enquire_link the peer leaves unanswered (each for response_timeout) after which the SMSC
    #: unbinds the session, and closes it if the unbind goes unanswered too: a half-open connection must not keep
    #: its max_binds slot and go on attracting MO and receipts. 0: never.
    enquire_link_misses: int = 3
    session_init_timeout: float = 30.0
    inactivity_timeout: float = 0.0
    default_validity: float = 48 * 3600.0
    absent_retry: float = 0.0
    store_capacity: int = 1_000_000
    throttle_backoff: float = 0.05
    faults: FaultPlan = field(default_factory=FaultPlan)
    seed: int = 0
    #: Seconds an MO no bind routes is held for delivery when one binds (0: refused at once, as unroutable).
    hold_mo: float = 0.0
    #: ESMEs to connect to at start and ask to bind (outbind): (host, port, system_id, password).
    outbind: tuple[tuple[str, int, str, str], ...] = ()

    def __post_init__(self) -> None:
        # The same bounds the TOML config and the scenario schema apply, for a config built in code: a window or
        # store of 0 would refuse everything, a negative or NaN time would fire at once or never.
        for name in _CONFIG_MINIMUM:
            value = getattr(self, name)
            if type(value) is not int or value < _CONFIG_MINIMUM[name]:
                raise ValueError(f"{name}: an integer >= {_CONFIG_MINIMUM[name]}, got {value!r}")
        for name in _CONFIG_SECONDS:
            value = getattr(self, name)
            if not isinstance(value, int | float) or not 0 <= value < math.inf:
                raise ValueError(f"{name}: seconds, a finite number >= 0, got {value!r}")


#: Integer fields of SmscConfig and their smallest value (enquire_link_misses 0 means "never").
_CONFIG_MINIMUM = {"window": 1, "peer_window": 1, "store_capacity": 1, "enquire_link_misses": 0, "seed": 0}
#: Fields of SmscConfig in seconds.
_CONFIG_SECONDS = ("response_timeout", "enquire_link_interval", "session_init_timeout", "inactivity_timeout",
                   "default_validity", "absent_retry", "throttle_backoff", "hold_mo")


@dataclass(frozen=True, slots=True)
class Owed:
    """What an SMSC still owed at one moment (:meth:`Smsc.owed`): work accepted and not yet done. At the stop of a
    standalone SMSC, what it will never do."""

    #: Receipts waiting for their delay (``[receipts] delay``, ``--dlr-delay``, the ``late_receipt`` fault) or for
    #: a retry's back-off after a "try later" refusal or no answer.
    receipts_due: int = 0
    #: Receipts held for a system_id with no receiver or transceiver bound -- among them receipts a bind was sent
    #: and closed (or unbound) without answering, which go to the next bind.
    receipts_held: int = 0
    #: Receipts queued in a bound session's outbox behind the SMSC's full window, never handed to the session.
    receipts_queued: int = 0
    #: Messages not final: scheduled, due, waiting for an absent subscriber's retry or for a visited network.
    pending: int = 0

    @property
    def receipts_unsent(self) -> int:
        """Every receipt owed and not on its way: due, held or queued."""
        return self.receipts_due + self.receipts_held + self.receipts_queued


@dataclass(slots=True)
class SmscStats:
    """Counters an operator (or a scenario check) reads, and (:attr:`receipts_unsent`, :attr:`pending`) what the
    SMSC owes at the moment they are read. docs/smsc.md defines each."""

    connections: int = 0
    binds: int = 0
    bind_failures: int = 0
    submitted: int = 0
    rejected: int = 0
    throttled: int = 0
    delivered: int = 0
    undeliverable: int = 0
    expired: int = 0
    #: Messages cancel_sm deleted while pending (each destination of a submit_multi counts).
    cancelled: int = 0
    #: Receipts handed to a session for the wire, each once: a resend (a retry, a receipt held again when its bind
    #: closed before answering) is not counted again. One queued behind a full window counts when it goes.
    receipts_sent: int = 0
    receipts_acked: int = 0
    #: Receipts sent again after a retryable refusal or no answer.
    receipts_retried: int = 0
    #: Receipts given up on: refused with a permanent status, or still refused after the last retry.
    receipts_refused: int = 0
    mo_received: int = 0
    mo_sent: int = 0
    mo_unroutable: int = 0
    #: MO sent again after a retryable refusal or no answer.
    mo_retried: int = 0
    mo_held: int = 0
    #: MO the ESME refused with a permanent status: dropped.
    mo_refused: int = 0
    #: MO still refused (or unanswered) after the last retry: dropped.
    mo_given_up: int = 0
    generic_nacks: int = 0
    #: Sessions the SMSC unbound because enquire_link_misses enquire_link in a row went unanswered.
    dead_links: int = 0
    #: MTs the carrier originated itself (an RCS OTP, a mail turned into SMS), not submitted by an ESME.
    originated: int = 0
    #: Receipts or MO no bind could be sent (a PDU the codec refuses for the bind that would take it, e.g. a
    #: long-address receipt to an SMPP 3.3 bind, which has no data_sm): dropped, the session kept.
    unsendable: int = 0
    #: Where :attr:`receipts_unsent` and :attr:`pending` are read from: the owning SMSC's :meth:`Smsc.owed`
    #: (None, for stats made on their own: nothing owed).
    owed_by: Callable[[], Owed] | None = field(default=None, repr=False, compare=False)

    @property
    def receipts_unsent(self) -> int:
        """Receipts owed and not sent, now (:attr:`Owed.receipts_unsent`)."""
        return self._owed().receipts_unsent

    @property
    def pending(self) -> int:
        """Messages not final, now (:attr:`Owed.pending`)."""
        return self._owed().pending

    def _owed(self) -> Owed:
        return Owed() if self.owed_by is None else self.owed_by()

    def to_json(self) -> dict[str, int]:
        """A JSON-ready copy: the counters, and what is owed as of this call."""
        owed = self._owed()
        out: dict[str, int] = {}
        for name in _STATS_JSON:
            if name == "pending":
                out[name] = owed.pending
            elif name == "receipts_unsent":
                out[name] = owed.receipts_unsent
            else:
                out[name] = getattr(self, name)
        return out


#: The keys of SmscStats.to_json, in order: each figure beside its kin.
_STATS_JSON = (
    "connections", "binds", "bind_failures", "submitted", "rejected", "throttled", "delivered", "undeliverable",
    "expired", "cancelled", "pending", "receipts_sent", "receipts_acked", "receipts_retried", "receipts_refused",
    "receipts_unsent", "mo_received", "mo_sent", "mo_unroutable", "mo_retried", "mo_held", "mo_refused",
    "mo_given_up", "generic_nacks", "dead_links", "originated", "unsendable",
)
assert set(_STATS_JSON) == {*SmscStats.__slots__, "pending", "receipts_unsent"} - {"owed_by"}


#: Called for each MT the SMSC delivers to a subscriber (the scenario's phones listen here).
MtListener = Callable[[StoredMessage, float], None]


#: Finished sessions whose verdicts an Smsc keeps one by one: the most recent ones, and besides them the first ones
#: with a failing check. Beyond that a session is only counted (:class:`_DroppedSessions`): a connect / garbage /
#: hang-up loop must not grow memory (~2.7 KB of verdicts a session) for as long as the SMSC runs.
KEPT_SESSIONS = 1000
KEPT_FAILED_SESSIONS = 1000

_VERDICT_RANK = {"pass": 0, "inconc": 1, "fail": 2}


@dataclass(slots=True)
class _DroppedSessions:
    """What the finished sessions no longer kept one by one add up to, per check."""

    sessions: int = 0
    #: check -> [pass, fail, inconc, exercised, violations] over the dropped sessions.
    counts: dict[str, list[int]] = field(default_factory=dict)
    #: check -> the first dropped session's failure of it ("peer system_id: reason").
    first_fail: dict[str, str] = field(default_factory=dict)

    def add(self, peer: str, system_id: str | None, checks: list[dict[str, object]]) -> None:
        self.sessions += 1
        for check in checks:
            name, verdict = str(check["check"]), str(check["verdict"])
            counts = self.counts.setdefault(name, [0, 0, 0, 0, 0])
            counts[("pass", "fail", "inconc").index(verdict) if verdict in _VERDICT_RANK else 1] += 1
            for slot, key in ((3, "exercised"), (4, "violations")):
                value = check.get(key)
                counts[slot] += value if isinstance(value, int) else 0
            if verdict == "fail":
                self.first_fail.setdefault(name, f"{peer} system_id={system_id}: {check.get('reason')}")

    def to_json(self) -> dict[str, object]:
        """One session entry standing for them all; each check's verdict is the worst any of them had, as the
        reports rank verdicts, so the SMSC's overall verdict is what it would be with every session kept."""
        checks: list[dict[str, object]] = []
        for name, (passed, failed, inconc, exercised, violations) in self.counts.items():
            verdict = "fail" if failed else "inconc" if inconc else "pass"
            reason = f"over {self.sessions} sessions not kept one by one: {passed} pass, {failed} fail, {inconc} inconc"
            if failed:
                reason += f"; first fail: {self.first_fail[name]}"
            # "verdicts": how many of the sessions had each verdict, for whoever counts per session (the metrics'
            # smpp.conformance.* counters): the worst alone would count N sessions as one.
            checks.append({"check": name, "verdict": verdict, "reason": reason, "exercised": exercised,
                           "violations": violations,
                           "verdicts": {"pass": passed, "fail": failed, "inconc": inconc}})
        return {"peer": f"{self.sessions} earlier sessions (not kept one by one)", "system_id": None,
                "sessions": self.sessions, "checks": checks}


@dataclass(order=True, slots=True)
class _Timer:
    at: float
    order: int
    action: Callable[[float], None] = field(compare=False)


@dataclass(slots=True)
class _Broadcast:
    """A broadcast_sm the SMSC accepted: whose it is and what became of it."""

    message_id: int
    system_id: str
    source_addr: str
    #: Its broadcast_area_identifier TLVs, in the order sent: SMPP 5.0 4.6.1 names "the target Broadcast
    #: Area(s)", and query_broadcast_sm_resp reports each with its own success rate.
    areas: tuple[TlvValue, ...]
    service_type: str
    #: The end of its validity_period: still ENROUTE then, it becomes EXPIRED. math.inf: repeated until cancelled.
    expire_at: float
    state: MessageState = MessageState.ENROUTE
    #: Its broadcast_content_type and user_message_reference TLVs (None when absent): a cancel_broadcast_sm
    #: without a message_id may name either to narrow what it cancels; query_broadcast_sm may name it by the
    #: reference.
    content_type: TlvValue | None = None
    user_message_reference: TlvValue | None = None
    #: When it was submitted, or last replaced: a query by user_message_reference reports the most recent.
    submitted_at: float = 0.0


class SmscConnection:
    """One TCP connection to the SMSC and the SMPP session on it."""

    def __init__(self, smsc: Smsc, connection_id: int, peer: str, now: float) -> None:
        self.smsc = smsc
        self.connection_id = connection_id
        self.peer = peer
        cfg = smsc.config
        self.session = Session(
            SessionConfig(
                role=Role.SMSC,
                interface_version=cfg.interface_version,
                window=cfg.window,
                response_timeout=cfg.response_timeout,
                enquire_link_interval=cfg.enquire_link_interval,
                session_init_timeout=cfg.session_init_timeout,
                inactivity_timeout=cfg.inactivity_timeout or None,
            ),
            now=now,
        )
        self.oracle = Oracle(window=cfg.peer_window, response_timeout=cfg.response_timeout,
                             backoff=cfg.throttle_backoff, owed=self.session.owed_windowed)
        self.account: Account | None = None
        self.kind: BindKind | None = None
        self.address_range: re2._Regexp[str] | None = None
        self.bucket: TokenBucket | None = None
        self.outbox: deque[Pdu] = deque()
        self.closed = False
        #: Bound with SMPP 3.3 (interface_version below 0x34), which has no optional parameters and no data_sm.
        self.legacy = False
        self.reset_requested = False
        self._clean_unbind = False
        #: Set when the SMSC closes the connection at shutdown: seconds it waited after its unbind.
        self._shutdown_grace: float | None = None
        self._pending_receipts: dict[int, int] = {}  # our deliver_sm seq -> message_id
        self._pending_mo: dict[int, Pdu] = {}  # our MO deliver_sm/data_sm seq -> the PDU, until acknowledged
        # enquire_link unanswered since the peer last answered one, and how many it had answered then.
        self._link_misses = 0
        self._links_answered = 0
        #: The newest of our requests in flight when the unbind_with_full_window fault last drew for this session.
        self._full_window_drawn: int | None = None
        #: This bind's place among its system_id's binds (0, 1, ...): what session-level draws are keyed by.
        self._bind_ordinal = 0

    @property
    def system_id(self) -> str | None:
        """The bound account's system_id."""
        return self.account.system_id if self.account else None

    @property
    def receives(self) -> bool:
        """True when this bind can take deliver_sm/data_sm from the SMSC."""
        return self.session.state in _BOUND_RECEIVING and not self.closed

    def receive_data(self, data: bytes, now: float) -> None:
        """Bytes from the socket."""
        if self.closed:
            return
        smsc = self.smsc
        if smsc._steady and self._steady() and self.session.steady:
            frames = self.session.steady_frames(data, now)
            if frames is None or not smsc._take_steady(self, frames, now):
                smsc._dispatch(self, self.session.receive_data(b"", now), now)
            smsc._touch(self)
            return
        smsc._dispatch(self, self.session.receive_data(data, now), now)
        smsc._touch(self)

    def _steady(self) -> bool:
        """Whether this bind's submit_sm all pass _mt_checks (a transmitting bind, nothing to throttle or filter
        them) and its answers go out as they are (SMPP 3.4: no congestion_state as in 5.0, optional parameters
        unlike 3.3): the bind side of the steady path's conditions (see Smsc._take_steady)."""
        account = self.account
        bucket = self.bucket
        return (
            account is not None
            and (self.kind is BindKind.TRANSMITTER or self.kind is BindKind.TRANSCEIVER)
            and not account._compiled
            and (bucket is None or bucket.rate <= 0)
            and not self.smsc._system_buckets
            and not self.legacy
            and self.session.version is InterfaceVersion.V34
        )

    def connection_lost(self, now: float) -> None:
        """The transport is gone (peer closed or reset)."""
        if not self.closed:
            self.smsc._dispatch(self, self.session.close(CloseReason.CONNECTION_LOST), now)

    def data_to_send(self) -> bytes:
        """Bytes to write now."""
        return self.session.data_to_send()

    def queue(self, pdu: Pdu, now: float) -> None:
        """Send a request to the ESME now if the window allows, else when it frees."""
        self.outbox.append(pdu)
        self.pump(now)

    def pump(self, now: float) -> None:
        """Move queued requests onto the wire while the window has room."""
        outbox = self.outbox
        while outbox and not self.closed:
            queued = outbox[0]
            # Receipts and MO are built before (or without regard to) the bind that takes them: made fit for a
            # 3.3 bind here, where the bind is known.
            pdu = _for_v33(queued) if self.legacy else queued
            try:
                sent = self.session.send_if_allowed(pdu, now)
            except SmppError:
                # A PDU the codec refuses for this bind: dropped and counted, never raised into the I/O layer,
                # where it would take the connection (and every timer of the server) down with it.
                outbox.popleft()
                self.smsc._receipt_of.pop(id(queued), None)
                self.smsc._unsent_receipts.discard(id(queued))
                self.smsc.stats.unsendable += 1
                continue
            if sent is None:
                # Off the hot path: only here when something waits and the window (or the state) holds it back.
                if self.smsc._unbind_when_full and not self.session.window_free:
                    self.smsc._window_filled(self, now)
                break
            outbox.popleft()
            smsc = self.smsc
            mid = smsc._receipt_of.pop(id(queued), None)
            if mid is not None:
                self._pending_receipts[sent.sequence_number] = mid
                unsent = smsc._unsent_receipts
                if id(queued) in unsent:  # its first time on a session (a resend was counted at its first)
                    unsent.discard(id(queued))
                    smsc.stats.receipts_sent += 1
            elif sent.command_id in _DELIVERIES:
                # The queued object, not its 3.3 form: a retry is the same object (its retry count is keyed by
                # identity) and goes to whichever bind takes it then.
                self._pending_mo[sent.sequence_number] = queued
        self.smsc._touch(self)

    def unbind(self, now: float) -> None:
        """SMSC-initiated unbind (shutdown, a dead link, the unbind_with_full_window fault)."""
        state = self.session.state
        if state in (SessionState.BOUND_TX, SessionState.BOUND_RX, SessionState.BOUND_TRX):
            # Requests the ESME sent before reading our unbind cross it on the wire and are refused
            # ESME_RINVBNDSTS; the oracle must not hold that against it (SMPP 3.4 2.3: it was bound when it sent
            # them). Off the hot path: once per unbind.
            table = verdict_table(self.session.version, Role.SMSC)
            self.oracle.unbinding(frozenset(command for (s, direction, command), status in table.items()
                                            if s is state and direction is Direction.RECEIVE
                                            and status == CommandStatus.ESME_ROK and not command.is_response))
            self.session.unbind(now=now)
            self.smsc._touch(self)

    def closing_at_shutdown(self, grace: float) -> None:
        """The SMSC is shutting down and is about to close this connection itself, ``grace`` seconds after it sent
        its unbind: what the peer left unanswered is judged as cut short by the SMSC, not as the peer's drop."""
        self._shutdown_grace = grace

    def verdicts(self) -> list[dict[str, object]]:
        """The oracle's verdicts for this session, JSON-ready."""
        return [r.to_json() for r in self.oracle.results()]


class Smsc:
    """An emulated SMSC (pure). See the module docstring for the life of a message."""

    def __init__(
        self,
        config: SmscConfig,
        subscribers: SubscriberRegistry | None = None,
        mt_listener: MtListener | None = None,
    ) -> None:
        self.config = config
        self.accounts = AccountRegistry(config.accounts)
        # Not ``subscribers or ...``: a registry is falsy while it lists nobody, yet its default still holds
        # (``[subscribers] default = "absent"`` with no numbers listed).
        self.subscribers = subscribers if subscribers is not None else SubscriberRegistry()
        self.store = MessageStore(capacity=config.store_capacity)
        self.stats = SmscStats(owed_by=self.owed)
        self.mt_listener = mt_listener
        self.connections: dict[int, SmscConnection] = {}
        #: How many finished sessions' verdicts are kept one by one (:data:`KEPT_SESSIONS`,
        #: :data:`KEPT_FAILED_SESSIONS`); the others are summed up in :meth:`verdicts`.
        self.kept_sessions = KEPT_SESSIONS
        self.kept_failed_sessions = KEPT_FAILED_SESSIONS
        self._finished_order = itertools.count()
        self._recent_sessions: deque[tuple[int, tuple[str, str | None, list[dict[str, object]]]]] = deque()
        self._failed_sessions: list[tuple[int, tuple[str, str | None, list[dict[str, object]]]]] = []
        self.dropped_sessions = _DroppedSessions()
        # Every random decision is keyed by what it is about, not drawn in order of events (carrier_sim.smsc.draws),
        # so that a phone's messages meet the same faults and delays whichever shard's SMSC carries them.
        self._draws = KeyedDraws(config.seed)
        self._request_ordinals = Ordinals()  # per destination (else per system_id and command): requests
        self._report_ordinals = Ordinals()  # per destination: receipts reported
        self._roaming_ordinals = Ordinals()  # per destination: MTs handed to a visited network
        self._window_ordinals = Ordinals()  # per bind (system_id, bind ordinal): fillings of the SMSC's window
        self._bind_counts: dict[str, int] = {}
        # The request being handled, while request faults are on: its subject's [word, n, throttled retries] and
        # whether it was answered ESME_RTHROTTLED.
        self._request: list[int] = [0, 0, 0]
        self._request_throttled = False
        self._ids = itertools.count(1)
        self._timers: list[_Timer] = []
        self._timer_order = itertools.count()
        self._dirty: set[int] = set()
        # Each connection's session deadline, kept so that finding the next one does not ask every session on
        # every event: with 1,000 idle connections that cost 8 ms per event (an attacker opens connections for
        # free). A session's deadline only moves when the SMSC calls it, and every such call touches its
        # connection (_touch), so touched connections are the stale ones. The heap holds (deadline, id) and may
        # hold outdated pairs; a pair counts only while it equals _session_due[id] (checked lazily at the top).
        self._session_due: dict[int, float] = {}
        self._session_heap: list[tuple[float, int]] = []
        self._stale: set[int] = set()
        self._closing: dict[int, SmscConnection] = {}
        self._system_buckets: dict[str, TokenBucket] = {}
        self._receipt_of: dict[int, int] = {}
        self._receipt_tries: RetryCounts[int] = RetryCounts()  # by message_id, while its receipt is being retried
        # By id() of the MO PDU being retried: the PDU stays referenced (a timer, an outbox, a pending or held
        # table) for as long as its count is held, so the id cannot be reused meanwhile.
        self._mo_tries: RetryCounts[int] = RetryCounts()
        self._held_receipts: dict[str, deque[Pdu]] = {}
        #: ids of the receipts held or queued in an outbox that were never handed to a session yet, so that
        #: receipts_sent counts each when it goes (a resend was counted at its first send). The deques keep the
        #: PDUs, so ids stay unique; an id leaves the set when its PDU is sent, dropped or held again as a copy.
        self._unsent_receipts: set[int] = set()
        self._mo_ref = itertools.count(1)
        self._rr = itertools.count()
        self._broadcasts: dict[int, _Broadcast] = {}
        # Running broadcasts by the end of their validity, and final ones by when they ended (oldest first): a
        # final broadcast is forgotten after the store's retention, as a finished message is.
        self._broadcast_expiry: list[tuple[float, int]] = []
        self._broadcasts_final: OrderedDict[int, float] = OrderedDict()
        self._held_mo: deque[tuple[float, str, str, str | bytes, int | None, int]] = deque()
        # MO PDUs a dying bind never answered and no bind could take on retry: held like new MO (hold_mo).
        self._held_mo_pdus: deque[tuple[float, Pdu]] = deque()
        self._receipt_template = ReceiptTemplate(config.dialect)
        id_format = config.dialect.submit_id
        self._decimal_ids = id_format.base is IdBase.DECIMAL and id_format.width == 0
        self._times_at: float | None = None
        self._times_seen: dict[tuple[str, str], tuple[float, float]] = {}
        faults = config.faults
        self._response_faults = bool(faults.drop_response or faults.delay_response)
        self._receipt_faults = bool(faults.lost_receipt or faults.late_receipt or faults.duplicate_receipt)
        self._dlr_zero = config.dlr_delay.always_zero  # the config and its distribution are frozen
        self._unbind_when_full = faults.unbind_with_full_window > 0
        self._request_faults = bool(faults.generic_nack or self._response_faults or faults.receipt_before_response
                                    or faults.tcp_reset)
        #: Whether reads may take the steady path (_take_steady): only without request faults, whose draws the
        #: general path makes per request.
        self._steady = not self._request_faults
        #: Bound connections by system_id, in connection order: the candidates _receivers(system_id) filters.
        self._by_system: dict[str, list[SmscConnection]] = {}

    # -- connections ---------------------------------------------------------------------------------------

    def connect(self, peer: str, now: float) -> SmscConnection:
        """A new transport connection was accepted."""
        conn = SmscConnection(self, next(self._ids), peer, now)
        self.connections[conn.connection_id] = conn
        self.stats.connections += 1
        self._stale.add(conn.connection_id)  # its session_init timer runs from now
        return conn

    def dirty_connections(self) -> list[SmscConnection]:
        """Connections with bytes to write (or a reset/close to carry out); clears the mark."""
        out = [self.connections.get(c) or self._closing.pop(c) for c in self._dirty
               if c in self.connections or c in self._closing]
        self._dirty.clear()
        return out

    def _touch(self, conn: SmscConnection) -> None:
        cid = conn.connection_id
        self._dirty.add(cid)
        self._stale.add(cid)

    def _receivers(self, system_id: str | None = None) -> list[SmscConnection]:
        if system_id is None:
            return [c for c in self.connections.values() if c.receives]
        # Only a bound connection has a system_id: look among those of this one (kept in connection order).
        return [c for c in self._by_system.get(system_id, ()) if c.receives]

    # -- timers --------------------------------------------------------------------------------------------

    def _at(self, when: float, action: Callable[[float], None]) -> None:
        heappush(self._timers, _Timer(when, next(self._timer_order), action))

    @property
    def next_deadline(self) -> float | None:
        """The earliest time something is due: a delivery, a receipt, a session timer."""
        candidates = [t for t in (self.store.next_deadline,) if t is not None]
        if self._timers:
            candidates.append(self._timers[0].at)
        session_due = self._next_session_deadline()
        if session_due is not None:
            candidates.append(session_due)
        return min(candidates) if candidates else None

    def _refresh_session_deadlines(self) -> None:
        """Bring _session_due and the heap up to date for the connections touched since the last call."""
        if not self._stale:
            return
        due = self._session_due
        heap = self._session_heap
        connections = self.connections
        for cid in self._stale:
            conn = connections.get(cid)
            d = conn.session.next_deadline if conn is not None else None
            if d is None:
                due.pop(cid, None)
            elif due.get(cid) != d:
                due[cid] = d
                heappush(heap, (d, cid))
        self._stale.clear()
        if len(heap) > 2 * len(due) + 64:  # outdated pairs dominate: rebuild from the live ones
            heap[:] = [(d, cid) for cid, d in due.items()]
            heapify(heap)

    def _next_session_deadline(self) -> float | None:
        self._refresh_session_deadlines()
        heap = self._session_heap
        due = self._session_due
        while heap:
            d, cid = heap[0]
            if due.get(cid) == d and cid in self.connections:
                return d
            heappop(heap)  # outdated: the session's deadline moved, or the connection is gone
            if cid not in self.connections:
                due.pop(cid, None)
        return None

    def handle_timers(self, now: float) -> None:
        """Do everything due at ``now``."""
        for message in list(self.store.due(now)):
            self._deliver_mt(message, now)
        while self._timers and self._timers[0].at <= now:
            heappop(self._timers).action(now)
        # The sessions due now, in connection order (ids grow with connect order, as self.connections' order), as a
        # walk over every connection would take them: one made due meanwhile by an earlier one's timers is taken
        # too when it comes later in that order, and left to the next call otherwise.
        due_ids = self._due_session_ids(now)
        done = -1
        while due_ids:
            cid = heappop(due_ids)
            if cid <= done:
                continue  # listed twice
            done = cid
            conn = self.connections.get(cid)
            if conn is None:
                continue
            d = conn.session.next_deadline
            if d is not None and d <= now:
                self._dispatch(conn, conn.session.handle_timers(now), now)
            self._touch(conn)  # re-read its deadline next time, due or not (a stale entry must not spin the loop)
            for other in self._due_session_ids(now):
                if other > cid:
                    heappush(due_ids, other)
                else:
                    self._stale.add(other)  # due again behind us: the next call takes it (the walk did the same)

    def _due_session_ids(self, now: float) -> list[int]:
        """Connection ids whose session deadline is ``now`` or earlier, taken off the heap, as a heap of ids."""
        self._refresh_session_deadlines()
        heap = self._session_heap
        due = self._session_due
        ids: list[int] = []
        while heap and heap[0][0] <= now:
            d, cid = heappop(heap)
            if due.get(cid) == d:
                del due[cid]  # re-read when its connection is handled (touched)
                ids.append(cid)
        heapify(ids)
        return ids

    # -- events from a session -----------------------------------------------------------------------------

    def _dispatch(self, conn: SmscConnection, events: Iterable[Event], now: float) -> None:
        for event in events:
            kind = type(event)  # the two events of every message first, without isinstance
            if kind is PduReceived:
                self._on_request(conn, event, now)  # type: ignore[arg-type]
            elif kind is ResponseReceived:
                self._on_response(conn, event, now)  # type: ignore[arg-type]
            elif isinstance(event, PduReceived):
                self._on_request(conn, event, now)
            elif isinstance(event, ResponseReceived):
                self._on_response(conn, event, now)
            elif isinstance(event, BindRequested):
                self._on_bind(conn, event.request, now)
            elif isinstance(event, PduRejected):
                conn.oracle.rejected(event.pdu, event.error)
                if event.reply is not None and event.reply.command_id is CommandId.generic_nack:
                    self.stats.generic_nacks += 1
            elif isinstance(event, ResponseTimedOut):
                conn.oracle.response_timed_out(event.request)
                if event.request.command_id is CommandId.enquire_link:
                    self._enquire_link_missed(conn, now)
                else:
                    self._receipt_unacked(conn, event.request, now)
            elif isinstance(event, UnbindRequested):
                conn._clean_unbind = True
            # A LateResponseReceived was judged (response_time) and handled (retried, or counted as a missed
            # enquire_link) when its request's timer fired; it is no reply to nothing (response_echo). Only a late
            # generic_nack has more to be judged on: it is no answer to a well-formed request either.
            elif isinstance(event, LateResponseReceived):
                conn.oracle.late_response(event.request, event.response)
            elif isinstance(event, SessionClosed):
                self._on_closed(conn, event, now)
        if not conn.closed:
            conn.pump(now)

    def _take_steady(self, conn: SmscConnection, frames: list[bytes], now: float) -> bool:
        """The steady path: handle a read of ordinary traffic -- submit_sm, and deliver_sm_resp to our receipts and
        MO -- without the session's events and the dispatch, the answers written straight to octets. False, having
        changed nothing, when any frame of the read is anything else; the session then reads them as usual.

        It does what the general path (Session.receive_data, then _dispatch) does for such a read, in the same
        order, calling the same code for everything that judges or decides: the oracle's request_received with
        the count of requests outstanding the session would report, _store_mt, _on_response with the event the
        session would have made, _queue_receipt for an intermediate notification. What it leaves out is what
        cannot apply under its conditions, checked first: no request faults (Smsc._steady); a bind whose submits
        _mt_checks passes as they come and whose answers need no congestion_state or 3.3 trimming
        (SmscConnection._steady); a session with nothing pending (Session.steady_frames); and, for the whole
        read, frames that decode on the codec's fast path, times that resolve, room in the store, responses that
        each answer a message operation of ours in flight, and requests within the peer's window, so that
        none is refused and the answers need no owed bookkeeping. ``bench/smsc_inprocess.py --digest`` and
        tests/carrier_sim/smsc/test_centre_steady.py hold the two paths to the same bytes and verdicts.
        """
        session = conn.session
        plan: list[Pdu] = []
        times: list[tuple[float, float]] = []  # each submit's, in order
        responses: list[int] = []
        answering: set[int] = set()  # the same sequence numbers, to find one answered twice in the read
        octets = submits = 0
        for frame in frames:
            length, command_id, status, seq = HEADER.unpack_from(frame)
            if command_id == _SUBMIT_SM_ID:
                if status:
                    return False
                pdu = decode_fast(frame)
                if pdu is None:
                    return False
                try:
                    times.append(self._times(pdu, now))
                except SmppError:
                    return False
                submits += 1
            elif command_id == _DELIVER_SM_RESP_ID:
                flight = session.in_flight_request(seq)
                if flight is None or flight[0].command_id is not CommandId.deliver_sm or seq in answering:
                    return False
                if length == _DELIVER_SM_RESP_USUAL and frame[HEADER_SIZE] == 0:
                    # The usual answer, its message_id NULL: what decode gives for it, without the decoder.
                    pdu = Pdu(CommandId.deliver_sm_resp, seq, status, {"message_id": ""}, ())
                else:
                    pdu = decode_fast(frame)
                    if pdu is None:
                        return False
                responses.append(seq)
                answering.add(seq)
            else:
                return False
            plan.append(pdu)
            octets += length
        if submits and (
            not session.accepts(CommandId.submit_sm)
            or not session.can_send(CommandId.submit_sm_resp)
            or not conn.oracle.judges_window_alone(submits)
            or self.store.pending_count + submits > self.store.capacity
        ):
            return False
        if responses and not session.accepts(CommandId.deliver_sm_resp):
            return False
        landed = iter(session.take_steady_frames(octets, now, responses))
        oracle = conn.oracle
        out = bytearray()
        outstanding = submits
        decimal = self._decimal_ids
        touched = answered = False
        submit_times = iter(times)
        for pdu in plan:
            if pdu.command_id is not CommandId.submit_sm:
                if out:
                    session.send_steady_responses(out, now)
                    out = bytearray()
                request, sent_at = next(landed)
                self._on_response(conn, ResponseReceived(request, pdu, now - sent_at), now)
                answered = True
                continue
            oracle.request_received(pdu, now, outstanding)
            outstanding -= 1
            submit_time = next(submit_times)
            if answered and session.closed:
                continue  # as _on_request: nobody to answer (only handling a response could have closed it)
            params = pdu.params
            # The decoder gives str and int for these fields: no conversion needed.
            stored = self._store_mt(conn, pdu, params["destination_addr"], params["dest_addr_ton"],  # type: ignore[arg-type]
                                    params["dest_addr_npi"], now, times=submit_time)  # type: ignore[arg-type]
            mid = stored.group_id or stored.message_id
            if decimal and 0 <= mid < _DECIMAL_ID_LIMIT:
                ident = b"%d" % mid
                out += HEADER.pack(HEADER_SIZE + 1 + len(ident), _SUBMIT_SM_RESP_ID, 0, pdu.sequence_number)
                out += ident
                out += b"\0"
            else:
                encode_into(Pdu(CommandId.submit_sm_resp, pdu.sequence_number, 0,
                                {"message_id": self._message_id(mid)}, ()), out)
            if not touched:
                # Marked dirty where the general path's first answer marks it (_send_response): the order in which
                # connections are first marked is the order in which the server writes to them.
                self._touch(conn)
                touched = True
            if stored.registered_delivery & REGISTERED_DELIVERY_INTERMEDIATE and stored.pending:
                session.send_steady_responses(out, now)
                out = bytearray()
                self._queue_receipt(stored, self.receipt_pdu(stored, now, ESM_CLASS_INTERMEDIATE_NOTIFICATION), now)
        if out:
            session.send_steady_responses(out, now)
        self._touch(conn)
        if not conn.closed:
            conn.pump(now)
        return True

    def _enquire_link_missed(self, conn: SmscConnection, now: float) -> None:
        """An enquire_link of ours timed out: after ``enquire_link_misses`` in a row, give up on the session.

        SMPP 3.4 4.11 / 5.0 4.1.2: enquire_link is "a confidence check of the communication path", which "the
        receiving party should respond" to; a peer that does not has lost the session, whatever TCP says. What
        to do then, the spec says for its idle twin, 3.4 7.2 inactivity_timer: "The resulting behaviour is to
        either close the session or issue an unbind request." The SMSC issues the unbind -- the peer stops being
        a receiver at once, and an ESME that is alive but deaf to enquire_link gets to know why -- and the
        session closes when the unbind, in turn, goes unanswered for response_timeout (its own rule), which
        frees the max_binds slot. The oracle's verdicts (enquire_link, response_time, unbind) stay on record.
        """
        answered = conn.oracle.enquire_links_answered
        if answered != conn._links_answered:  # the peer answered one since the last miss: count afresh
            conn._links_answered = answered
            conn._link_misses = 0
        conn._link_misses += 1
        limit = self.config.enquire_link_misses
        if 0 < limit <= conn._link_misses and conn.session.state.is_bound:
            self.stats.dead_links += 1
            conn.unbind(now)

    def _on_bind(self, conn: SmscConnection, request: Pdu, now: float) -> None:
        if conn.session.closed:
            return
        system_id = str(request["system_id"])
        kind = BindKind.of(request.command_id)
        status, account = self.accounts.authenticate(system_id, str(request["password"]), kind)
        address_range = None
        if account is not None and kind.receives:  # only a bind that takes MO has its address_range used
            try:
                address_range = _address_range(str(request["address_range"]))
            except ValueError:
                # SMPP 3.4 has no status for a bad address_range (ESME_RINVPARAM is a submit's "invalid
                # parameter"); ESME_RBINDFAIL is 5.1.3's "bind failed", and the bind is not counted.
                self.accounts.release(account.system_id)
                status, account = CommandStatus.ESME_RBINDFAIL, None
        if account is None:
            self.stats.bind_failures += 1
            conn.session.reject_bind(request, status, now=now)
            return
        if conn.account is not None:
            self._by_system[conn.account.system_id].remove(conn)
        conn.account = account
        conn.kind = kind
        conn._bind_ordinal = self._bind_counts.get(account.system_id, 0)
        self._bind_counts[account.system_id] = conn._bind_ordinal + 1
        bound = self._by_system.setdefault(account.system_id, [])
        bound.append(conn)
        bound.sort(key=lambda c: c.connection_id)
        conn.address_range = address_range
        conn.bucket = TokenBucket(account.bind_throughput, max(1.0, account.bind_throughput))
        if account.throughput > 0 and system_id not in self._system_buckets:
            self._system_buckets[system_id] = TokenBucket(account.throughput, max(1.0, account.throughput))
        conn.session.accept_bind(request, system_id=self.config.name[:15], now=now)
        conn.legacy = conn.session.version < InterfaceVersion.V34
        self.stats.binds += 1
        # Receipts wait for a bind that can take them (real SMSCs queue them the same way): a transmitter bind
        # leaves them where they are, for the receiver or transceiver that comes later.
        held = self._held_receipts.pop(system_id, None) if kind.receives else None
        if held:
            for pdu in held:
                conn.queue(pdu, now)  # counted in receipts_sent as it goes (pump), if it never went before
        if self._held_mo and kind.receives:
            waiting, self._held_mo = self._held_mo, deque()
            for until, source, destination, text, coding, esm_class in waiting:
                if until < now:
                    self.stats.mo_unroutable += 1  # held past its validity: lost, as on a real SMSC
                elif not self.route_mo(destination):
                    self._held_mo.append((until, source, destination, text, coding, esm_class))
                else:
                    self.stats.mo_received -= 1  # counted once, when it first arrived
                    try:
                        self.inject_mo(source, destination, text, now, coding, esm_class)
                    except SmppError:
                        # inject_mo refuses what it cannot write before holding it, so this is a backstop: the
                        # waiting deque is already swapped out, and a raise here would lose every MO after this
                        # one and take the bind (and its socket) down. Dropped and counted, the rest still go.
                        self.stats.mo_received += 1
                        self.stats.unsendable += 1
        if self._held_mo_pdus and kind.receives:
            waiting_pdus, self._held_mo_pdus = self._held_mo_pdus, deque()
            for until, mo in waiting_pdus:
                targets = self.route_mo(str(mo["destination_addr"]))
                if until < now:
                    self.stats.mo_unroutable += 1
                    self._mo_tries.settled(id(mo))
                elif not targets:
                    self._held_mo_pdus.append((until, mo))
                else:
                    self._requeue_mo(targets[next(self._rr) % len(targets)], mo, now)

    def _on_closed(self, conn: SmscConnection, event: SessionClosed, now: float) -> None:
        if conn.closed:
            return
        conn.closed = True
        if conn.account is not None:
            self.accounts.release(conn.account.system_id)
            if not conn.reset_requested:  # a drop the SMSC caused itself (fault, outage) is not the ESME's doing
                conn.oracle.unbound(conn._clean_unbind or event.reason is CloseReason.UNBOUND, event.unanswered,
                                    closed=event.reason, shutdown_grace=conn._shutdown_grace)
            # Receipts the ESME never acknowledged go back to the queue for the next receiver bind.
            for request in event.unanswered:
                mo = conn._pending_mo.pop(request.sequence_number, None)
                if mo is not None:
                    self._mo_refused(mo, CommandStatus.ESME_RX_T_APPN, now)  # route again (a retry, counted)
                else:
                    self._requeue_receipt(conn, request)
            for queued in conn.outbox:
                if id(queued) in self._receipt_of:
                    self._requeue_receipt(conn, queued)
                elif queued.command_id in _DELIVERIES:
                    self._mo_refused(queued, CommandStatus.ESME_RX_T_APPN, now)
        if conn.account is not None:
            bound = self._by_system[conn.account.system_id]
            bound.remove(conn)
            if not bound:
                del self._by_system[conn.account.system_id]
        self._finish_session((conn.peer, conn.system_id, conn.verdicts()))
        # Kept until the I/O layer has flushed its last bytes (an unbind_resp, a generic_nack) and closed it.
        self._closing[conn.connection_id] = self.connections.pop(conn.connection_id)
        self._touch(conn)

    def _finish_session(self, entry: tuple[str, str | None, list[dict[str, object]]]) -> None:
        order = next(self._finished_order)
        failed = any(check["verdict"] == "fail" for check in entry[2])
        if failed and len(self._failed_sessions) < self.kept_failed_sessions:
            self._failed_sessions.append((order, entry))  # the first failures are the ones worth reading whole
            return
        self._recent_sessions.append((order, entry))
        while len(self._recent_sessions) > self.kept_sessions:
            _, old = self._recent_sessions.popleft()
            self.dropped_sessions.add(*old)

    @property
    def finished_sessions(self) -> list[tuple[str, str | None, list[dict[str, object]]]]:
        """Ended sessions kept one by one, (peer, system_id, verdicts), in the order they ended: the last
        :attr:`kept_sessions` and the first :attr:`kept_failed_sessions` with a fail; the rest are in
        :attr:`dropped_sessions`."""
        kept = sorted([*self._failed_sessions, *self._recent_sessions], key=lambda item: item[0])
        return [entry for _, entry in kept]

    def _requeue_receipt(self, conn: SmscConnection, request: Pdu) -> None:
        if conn.system_id is None:
            return
        mid = conn._pending_receipts.pop(request.sequence_number, None)
        if mid is None:
            mid = self._receipt_of.pop(id(request), None)
        if mid is not None:
            held = request.with_sequence(0)
            self._receipt_of[id(held)] = mid  # still a receipt when a later bind sends it
            unsent = self._unsent_receipts
            if id(request) in unsent:  # taken from the outbox, never sent: still to be counted when it goes
                unsent.discard(id(request))
                unsent.add(id(held))
            self._held_receipts.setdefault(conn.system_id, deque()).append(held)

    def _on_response(self, conn: SmscConnection, event: ResponseReceived, now: float) -> None:
        conn.oracle.response_matched(event.request, event.response, event.round_trip)
        response = event.response
        mid = conn._pending_receipts.pop(event.request.sequence_number, None)
        if mid is None:
            mo = conn._pending_mo.pop(event.request.sequence_number, None)
            if mo is not None:
                if response.command_status != CommandStatus.ESME_ROK or response.command_id is CommandId.generic_nack:
                    self._mo_refused(mo, _refusal(response), now)
                elif self._mo_tries:
                    self._mo_tries.settled(id(mo))
            return
        if response.command_status == CommandStatus.ESME_ROK and response.command_id is not CommandId.generic_nack:
            self.stats.receipts_acked += 1
            if self._receipt_tries:
                self._receipt_tries.settled(mid)
        else:
            self._receipt_refused(conn, event.request, mid, _refusal(response), now)

    def _receipt_refused(self, conn: SmscConnection, request: Pdu, mid: int, status: int, now: float) -> None:
        # SMPP 3.4 5.1.3: only a "try later" status asks for the receipt again, with back-off, a bounded number
        # of times (carrier_sim.smsc.retry); anything else is the ESME's final word.
        delay = self._receipt_tries.refused(mid, status)
        if delay is None:
            self.stats.receipts_refused += 1
            return
        self.stats.receipts_retried += 1
        self._at(now + delay, partial(self._resend, conn, request.with_sequence(0), mid))

    def _mo_refused(self, mo: Pdu, status: int, now: float) -> None:
        # The receipts' rule and back-off (SMPP 3.4 5.1.3, carrier_sim.smsc.retry). ``mo`` is the queued PDU
        # (sequence_number 0), retried as the same object so that its count follows it.
        delay = self._mo_tries.refused(id(mo), status)
        if delay is not None:
            self.stats.mo_retried += 1
            self._at(now + delay, partial(self._retry_mo, mo))
        elif status in self._mo_tries.policy.retryable:
            self.stats.mo_given_up += 1
        else:
            self.stats.mo_refused += 1

    def _retry_mo(self, mo: Pdu, now: float) -> None:
        targets = self.route_mo(str(mo["destination_addr"]))
        if not targets:
            held = len(self._held_mo) + len(self._held_mo_pdus)
            if self.config.hold_mo > 0 and held < self.config.store_capacity:
                # Its bind went away (an outage, a reset) before answering: store and forward, as for a new MO.
                self._held_mo_pdus.append((now + self.config.hold_mo, mo))
                self.stats.mo_held += 1
                return
            self.stats.mo_unroutable += 1
            self._mo_tries.settled(id(mo))
            return
        self._requeue_mo(targets[next(self._rr) % len(targets)], mo, now)

    def _requeue_mo(self, conn: SmscConnection, mo: Pdu, now: float) -> None:
        """Queue on ``conn`` an MO PDU made for another bind (a retry, a held one). A data_sm longer than one
        deliver_sm part is split for an SMPP 3.3 bind, as :meth:`mo_pdus` would have split it: the 3.3 form pump()
        gives a data_sm is one deliver_sm, whose short_message would cut it at 254 octets."""
        if not (conn.legacy and mo.command_id is CommandId.data_sm):
            conn.queue(mo, now)
            return
        payload, coding, esm_class = mo.tlv(_MESSAGE_PAYLOAD), mo["data_coding"], mo["esm_class"]
        assert isinstance(payload, bytes)
        assert isinstance(coding, int)
        assert isinstance(esm_class, int)
        if len(payload) <= segment_capacity(coding):
            conn.queue(mo, now)  # one part: pump() makes it that deliver_sm, whole
            return
        # The parts are new PDUs, each with its own retry count: the data_sm's count is done with.
        self._mo_tries.settled(id(mo))
        fields = {name: mo[name] for name in _MO_ADDRESS_FIELDS}
        try:
            parts = self._mo_parts(fields, payload, coding, esm_class)
        except SmppError:
            # mo_pdus refused what 255 parts could not carry before the data_sm was made, so this is a backstop.
            self.stats.unsendable += 1
            return
        for part in parts:
            conn.queue(part, now)

    def _receipt_unacked(self, conn: SmscConnection, request: Pdu, now: float) -> None:
        mo = conn._pending_mo.pop(request.sequence_number, None)
        if mo is not None:
            self._mo_refused(mo, CommandStatus.ESME_RX_T_APPN, now)  # unanswered: as good as "try later"
            return
        mid = conn._pending_receipts.pop(request.sequence_number, None)
        if mid is not None:
            self._receipt_refused(conn, request, mid, CommandStatus.ESME_RX_T_APPN, now)  # as for an MO, above

    def _resend(self, conn: SmscConnection, pdu: Pdu, mid: int, now: float) -> None:
        self._receipt_of[id(pdu)] = mid
        target = conn if conn.receives else next(iter(self._receivers(conn.system_id)), None)
        if target is None:
            if conn.system_id is not None:
                self._held_receipts.setdefault(conn.system_id, deque()).append(pdu)
            return
        target.queue(pdu, now)

    # -- requests from the ESME ----------------------------------------------------------------------------

    def _on_request(self, conn: SmscConnection, event: PduReceived, now: float) -> None:
        pdu = event.pdu
        conn.oracle.request_received(pdu, now, conn.session.peer_outstanding)
        if event.auto_answered or conn.session.closed:
            # The session closed later in the same chunk (nobody to answer). A fatal framing error no longer
            # does this: the session holds its nack and close until the requests before it are answered.
            return
        handler = self._HANDLERS.get(pdu.command_id)
        if self._request_faults:
            self._on_request_drawn(conn, pdu, handler, now)
            return
        if handler is None:
            self._answer(conn, pdu, now, pdu.response(CommandStatus.ESME_RINVCMDID))
            return
        handler(self, conn, pdu, now)

    def _on_request_drawn(self, conn: SmscConnection, pdu: Pdu,
                          handler: Callable[[Smsc, SmscConnection, Pdu, float], None] | None, now: float) -> None:
        """_on_request with request faults on: each fault drawn for this request is keyed by its subject (its
        destination address) and the subject's request ordinal n. A request answered ESME_RTHROTTLED does not
        count: the attempt after it is still the n-th, with the n-th's draws, however often it was throttled (a
        throttle depends on the rest of the traffic, so on the shard layout); its own response faults are drawn
        from the (n, retry) key apart."""
        entry = self._request_ordinals.entry(_request_subject(conn, pdu))
        self._request = entry
        self._request_throttled = False
        faults = self.config.faults
        try:
            if faults.generic_nack and self._draw(Draw.GENERIC_NACK) < faults.generic_nack:
                self.stats.generic_nacks += 1
                self._answer(conn, pdu, now, Pdu.make(CommandId.generic_nack, pdu.sequence_number,
                                                       CommandStatus.ESME_RSYSERR))
            elif handler is None:
                self._answer(conn, pdu, now, pdu.response(CommandStatus.ESME_RINVCMDID))
            else:
                handler(self, conn, pdu, now)
        finally:
            if self._request_throttled:
                entry[2] += 1
            else:
                entry[1] += 1
                entry[2] = 0

    def _draw(self, kind: Draw) -> float:
        """A request fault's draw, for the request being handled (see _on_request_drawn)."""
        word, n, retries = self._request
        if self._request_throttled:
            return self._draws.uniform(kind, word ^ _THROTTLED_SALT, (n << 24) + retries)
        return self._draws.uniform(kind, word, n)

    def _answer(self, conn: SmscConnection, request: Pdu, now: float, response: Pdu) -> None:
        faults = self.config.faults
        if self._response_faults and request.command_id in _SUBMITS:
            if response.command_status == CommandStatus.ESME_RTHROTTLED:
                self._request_throttled = True
            if faults.drop_response and self._draw(Draw.DROP_RESPONSE) < faults.drop_response:
                conn.session.abandon(request)
                return
            if faults.delay_response and self._draw(Draw.DELAY_RESPONSE) < faults.delay_response:
                self._at(now + faults.response_delay, partial(self._send_response, conn, response))
                return
        self._send_response(conn, response, now)

    def _send_response(self, conn: SmscConnection, response: Pdu, now: float) -> None:
        if conn.closed:
            return
        # Told as it goes on the wire: the peer's back-off is timed from the ESME_RTHROTTLED it can read (a
        # delayed one, later; a dropped one, never).
        conn.oracle.answered(response, now)
        version = conn.session.version
        if version >= InterfaceVersion.V50 and response.command_id in _CONGESTION_REPORTED:
            # SMPP 5.0 4.8.4.19: congestion_state, 0 (idle) .. 100 (congested), tells the ESME to slow down.
            load = min(100, self.store.pending_count * 100 // max(1, self.config.store_capacity))
            response = replace(response, tlvs=(*response.tlvs, (_CONGESTION_TAG, load)))
        elif version < InterfaceVersion.V34 and response.tlvs:
            response = replace(response, tlvs=())  # SMPP 3.3 has no optional parameters
        conn.session.send(response, now)
        self._touch(conn)

    def _throttled(self, conn: SmscConnection, now: float) -> bool:
        bucket = conn.bucket
        if bucket is not None and bucket.rate > 0 and not bucket.try_take(now):  # rate <= 0: unlimited
            return True
        if not self._system_buckets:
            return False
        system_bucket = self._system_buckets.get(conn.system_id or "")
        return system_bucket is not None and not system_bucket.try_take(now)

    def _mt_checks(self, conn: SmscConnection, pdu: Pdu, now: float) -> CommandStatus:
        account = conn.account
        if account is None or conn.kind is None or conn.kind is BindKind.RECEIVER:  # not conn.kind.transmits
            return CommandStatus.ESME_RINVBNDSTS
        bucket = conn.bucket
        # _throttled only where a bucket could refuse: neither an unlimited bind bucket nor no system bucket can.
        if ((bucket is not None and bucket.rate > 0) or self._system_buckets) and self._throttled(conn, now):
            self.stats.throttled += 1
            return CommandStatus.ESME_RTHROTTLED
        if account._compiled and not account.source_allowed(str(pdu.params["source_addr"])):
            return CommandStatus.ESME_RINVSRCADR
        return CommandStatus.ESME_ROK

    def _times(self, pdu: Pdu, now: float) -> tuple[float, float]:
        schedule_text = str(pdu.params.get("schedule_delivery_time", ""))
        validity_text = str(pdu.params.get("validity_period", ""))
        # The I/O layer reads the clock once per chunk of bytes, and an ESME sends the same time fields with every
        # message: the answer for (now, fields) is remembered until now moves on. Errors are not remembered.
        if now != self._times_at:
            self._times_at = now
            self._times_seen.clear()
        key = (schedule_text, validity_text)
        times = self._times_seen.get(key)
        if times is None:
            times = self._resolve_times(schedule_text, validity_text, now)
            if len(self._times_seen) < 64:
                self._times_seen[key] = times
        return times

    def _resolve_times(self, schedule_text: str, validity_text: str, now: float) -> tuple[float, float]:
        wall = datetime.fromtimestamp(now, UTC)
        schedule = resolve(schedule_text, wall, CommandStatus.ESME_RINVSCHED)
        validity = resolve(validity_text, wall, CommandStatus.ESME_RINVEXPIRY)
        deliver_at = max(now, schedule.timestamp()) if schedule else now
        expire_at = validity.timestamp() if validity else now + self.config.default_validity
        if expire_at < deliver_at:
            raise InvalidTime("validity_period ends before schedule_delivery_time",
                              command_status=CommandStatus.ESME_RINVEXPIRY)
        return deliver_at, expire_at

    def _store_mt(self, conn: SmscConnection, pdu: Pdu, destination: str, dest_ton: int, dest_npi: int,
                  now: float, group_id: int = 0, times: tuple[float, float] | None = None) -> StoredMessage:
        # ``times``: what self._times(pdu, now) gave, when the caller already asked (the steady path).
        deliver_at, expire_at = self._times(pdu, now) if times is None else times
        params: dict[str, Any] = pdu.params
        if pdu.tlvs:
            payload = pdu.tlv(_MESSAGE_PAYLOAD)
            if pdu.command_id is CommandId.data_sm:
                # data_sm has no validity_period; its lifetime is qos_time_to_live (SMPP 3.4 5.3.2.16: "Time to
                # live as a relative time in seconds from submission"), else the SMSC's default_validity.
                ttl = pdu.tlv(_QOS_TIME_TO_LIVE)
                if isinstance(ttl, int):
                    expire_at = now + ttl
        else:
            payload = None
        data = payload if isinstance(payload, bytes) else params.get("short_message", b"")
        assert isinstance(data, bytes)
        account = conn.account
        get = params.get
        # Positional, in StoredMessage's field order. The PDU came out of the decoder, whose integer fields are
        # ints and whose strings are strs: no conversions needed.
        message = StoredMessage(
            0, account.system_id if account is not None else "", params["service_type"], params["source_addr"],
            destination, data, get("data_coding", 0), get("esm_class", 0), get("registered_delivery", 0),
            now, deliver_at, expire_at, MessageState.ENROUTE, None, None,
            params["source_addr_ton"], params["source_addr_npi"], dest_ton, dest_npi, group_id,
        )
        stored = self.store.submit(message, replace_if_present=bool(get("replace_if_present_flag", 0)))
        self.stats.submitted += 1
        return stored

    def _message_id(self, mid: int) -> str:
        if self._decimal_ids and 0 <= mid < _DECIMAL_ID_LIMIT:
            return str(mid)  # what render gives for a plain decimal id, without the call
        return self.config.dialect.submit_id.render(mid)

    def _parse_id(self, text: str) -> int | None:
        return self.config.dialect.submit_id.read(text)

    def _on_submit_sm(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        """submit_sm and data_sm: one MT to one destination (data_sm carries its text in message_payload)."""
        status = self._mt_checks(conn, pdu, now)
        if status != CommandStatus.ESME_ROK:
            self.stats.rejected += 1
            self._answer(conn, pdu, now, pdu.response(status))
            return
        params = pdu.params
        try:
            stored = self._store_mt(conn, pdu, str(params["destination_addr"]), int(params["dest_addr_ton"]),  # type: ignore[arg-type]
                                    int(params["dest_addr_npi"]), now)  # type: ignore[arg-type]
        except (SmppError, StoreError) as err:
            self.stats.rejected += 1
            code = err.command_status if isinstance(err, SmppError) else err.status
            self._answer(conn, pdu, now, pdu.response(code))
            return
        # The id the ESME knows the message by: a replace_if_present_flag may have replaced a submit_multi's
        # destination, which is known by its group's id (SMPP 3.4 4.5.2), not by its own record number.
        # pdu.response(message_id=...), without Pdu.build's copy, update and name check: both responses'
        # bodies are the message_id alone.
        mid = stored.group_id or stored.message_id
        message_id = str(mid) if self._decimal_ids and 0 <= mid < _DECIMAL_ID_LIMIT else self._message_id(mid)
        response = Pdu(_RESPONSE_OF_MT[pdu.command_id], pdu.sequence_number, 0, {"message_id": message_id}, ())
        self._accepted(conn, pdu, stored, now, response)

    def _accepted(self, conn: SmscConnection, pdu: Pdu, stored: StoredMessage, now: float, response: Pdu) -> None:
        faults = self.config.faults
        if faults.receipt_before_response and self._draw(Draw.RECEIPT_BEFORE_RESPONSE) < faults.receipt_before_response:
            # Deliver (and report) at once, then answer: the receipt overtakes the submit_sm_resp.
            self._deliver_mt(stored, now, immediate_receipt=True)
            self._answer(conn, pdu, now, response)
        else:
            self._answer(conn, pdu, now, response)
            if stored.registered_delivery & REGISTERED_DELIVERY_INTERMEDIATE and stored.pending:
                # 3.4 5.2.17 bit 4: an intermediate notification (esm_class 0x20) that the message is en route --
                # after the submit_sm_resp, so the ESME knows the message_id it speaks of.
                self._queue_receipt(stored, self.receipt_pdu(stored, now, ESM_CLASS_INTERMEDIATE_NOTIFICATION), now)
        if faults.tcp_reset and self._draw(Draw.TCP_RESET) < faults.tcp_reset:
            conn.reset_requested = True
            self._touch(conn)

    def _window_filled(self, conn: SmscConnection, now: float) -> None:
        """The unbind_with_full_window fault: the SMSC's window towards ``conn`` is full and more waits to be sent
        (receipts, MO). Drawn once per filling -- pump comes back here on every event while the window stays full,
        and the newest request in flight tells one filling from the next -- and, if it strikes, the SMSC unbinds
        with its deliver_sm/data_sm still unanswered. What waits in the outbox goes to the next bind."""
        in_flight = conn.session.outstanding_requests
        newest = in_flight[-1].sequence_number if in_flight else None
        if newest == conn._full_window_drawn:
            return
        conn._full_window_drawn = newest
        # About the session, not a message: keyed by the bind (its system_id and place among that system_id's
        # binds) and how often its window filled before.
        word, n = self._window_ordinals.next(f"\x00{conn.system_id}\x00bind {conn._bind_ordinal}")
        if self._draws.uniform(Draw.UNBIND_WITH_FULL_WINDOW, word, n) < self.config.faults.unbind_with_full_window:
            conn.unbind(now)

    def _on_submit_multi(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        status = self._mt_checks(conn, pdu, now)
        dests = pdu["dest_address"]
        assert isinstance(dests, tuple)
        if status == CommandStatus.ESME_ROK and not dests:
            status = CommandStatus.ESME_RINVNUMDESTS
        if status == CommandStatus.ESME_ROK:
            # The times are the submission's, not a destination's: a bad one is the whole PDU's ESME_RINVSCHED /
            # ESME_RINVEXPIRY, as for submit_sm, not an ESME_RSUBMITFAIL with every destination failed.
            try:
                self._times(pdu, now)
            except SmppError as err:
                status = err.command_status
        if status != CommandStatus.ESME_ROK:
            self.stats.rejected += 1
            self._answer(conn, pdu, now, pdu.response(status))
            return
        # SMPP 3.4 4.5.2: submit_multi_resp carries one message_id for the whole submission. Each destination is
        # stored as a member of a group with that id: receipts, query_sm and cancel_sm speak of the group's id.
        group_id = self.store.issue_id()
        accepted = False
        failed: list[UnsuccessSme] = []
        for dest in dests:
            if not isinstance(dest, SmeAddress):
                # Distribution lists are provisioned on real SMSCs; this one has none (SMPP 3.4 4.5.1).
                failed.append(UnsuccessSme(0, 0, getattr(dest, "dl_name", ""), CommandStatus.ESME_RINVDLNAME))
                continue
            if not dest.destination_addr:
                failed.append(UnsuccessSme(dest.dest_addr_ton, dest.dest_addr_npi, "", CommandStatus.ESME_RINVDSTADR))
                continue
            try:
                self._store_mt(conn, pdu, dest.destination_addr, dest.dest_addr_ton, dest.dest_addr_npi, now,
                               group_id)
            except (SmppError, StoreError) as err:
                code = err.command_status if isinstance(err, SmppError) else err.status
                failed.append(UnsuccessSme(dest.dest_addr_ton, dest.dest_addr_npi, dest.destination_addr, code))
                continue
            accepted = True
        if not accepted:
            self._answer(conn, pdu, now, pdu.response(CommandStatus.ESME_RSUBMITFAIL))
            return
        response = pdu.response(message_id=self._message_id(group_id), unsuccess_sme=tuple(failed))
        self._answer(conn, pdu, now, response)

    def _on_query_sm(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        mid = self._parse_id(str(pdu["message_id"]))
        try:
            if mid is None:
                raise StoreError(CommandStatus.ESME_RINVMSGID, "not a message id of this SMSC")
            members = self.store.query(mid, str(pdu["source_addr"]), system_id=conn.system_id or "")
        except StoreError as err:
            self._answer(conn, pdu, now, pdu.response(err.status))
            return
        state, final_at, error = _group_state(members)
        final_date = "" if final_at is None else format_absolute(datetime.fromtimestamp(final_at, UTC))
        error_code = error.error_code & 0xFF if error else 0
        self._answer(conn, pdu, now, pdu.response(message_id=str(pdu["message_id"]), final_date=final_date,
                                                  message_state=int(state), error_code=error_code))

    def _on_cancel_sm(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        text_id = str(pdu["message_id"])
        mid = self._parse_id(text_id) if text_id else None
        destination = str(pdu["destination_addr"])
        try:
            if text_id and mid is None:
                raise StoreError(CommandStatus.ESME_RINVMSGID, "not a message id of this SMSC")
            if not text_id and not destination:
                # SMPP 3.4 4.9.1: destination_addr "can be set to NULL if the message_id is provided" -- so not
                # when it is not. The request names no messages; the fault is in the destination_addr field, hence
                # ESME_RINVDSTADR rather than ESME_RCANCELFAIL (which answers a well-formed cancel that matched
                # nothing cancellable).
                raise StoreError(CommandStatus.ESME_RINVDSTADR, "cancel_sm without message_id needs destination_addr")
            cancelled = self.store.cancel(now, mid, str(pdu["source_addr"]), destination, str(pdu["service_type"]),
                                          system_id=conn.system_id or "")
        except StoreError as err:
            self._answer(conn, pdu, now, pdu.response(err.status))
            return
        self.stats.cancelled += len(cancelled)
        self._answer(conn, pdu, now, pdu.response())

    def _on_replace_sm(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        mid = self._parse_id(str(pdu["message_id"]))
        try:
            if mid is None:
                raise StoreError(CommandStatus.ESME_RINVMSGID, "not a message id of this SMSC")
            wall = datetime.fromtimestamp(now, UTC)
            schedule = resolve(str(pdu["schedule_delivery_time"]), wall, CommandStatus.ESME_RINVSCHED)
            validity = resolve(str(pdu["validity_period"]), wall, CommandStatus.ESME_RINVEXPIRY)
            payload = pdu.tlv("message_payload")
            data = payload if isinstance(payload, bytes) else pdu["short_message"]
            assert isinstance(data, bytes)
            # A schedule in the past means "now", as for submit_sm (_resolve_times).
            replaced = self.store.replace(mid, str(pdu["source_addr"]), data,
                                          max(now, schedule.timestamp()) if schedule else None,
                                          validity.timestamp() if validity else None,
                                          int(pdu["registered_delivery"]),  # type: ignore[arg-type]
                                          system_id=conn.system_id or "", now=now)
        except StoreError as err:
            self._answer(conn, pdu, now, pdu.response(err.status))
            return
        except SmppError as err:
            self._answer(conn, pdu, now, pdu.response(err.command_status))
            return
        self._answer(conn, pdu, now, pdu.response())
        if validity is not None and schedule is None:
            # A message a visited network holds waits on a timer set for its old validity: a shorter one needs
            # its own, or the message would expire (and its receipt go) late.
            for message in replaced:
                if self.store.held(message):
                    self._arrive(message, message.deliver_at, now)

    def _on_broadcast_sm(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        # Cell broadcast has no subscriber to deliver to here; the SMSC accepts and tracks it (SMPP 5.0 4.6.1).
        status = self._mt_checks(conn, pdu, now)
        if status != CommandStatus.ESME_ROK:
            self._answer(conn, pdu, now, pdu.response(status))
            return
        try:
            # SMPP 5.0 4.8.4 defines the broadcast TLVs' values and 4.7.6 a status for each kind of bad one
            # (ESME_RINVBCASTAREAFMT, ESME_RINVBCASTFREQINT, ...): an ESME under test meets them here.
            check_broadcast_values(pdu.tlvs)
            expire_at = self._broadcast_end(pdu, now)
            replaced = self._replaced_broadcast(conn, pdu, now)
        except SmppError as err:
            self._answer(conn, pdu, now, pdu.response(err.command_status))
            return
        except StoreError as err:
            self._answer(conn, pdu, now, pdu.response(err.status))
            return
        areas = tuple(value for tag, value in pdu.tlvs if tag == _BROADCAST_AREA)
        content_type = pdu.tlv("broadcast_content_type")
        reference = pdu.tlv(_USER_MESSAGE_REFERENCE)
        if replaced is not None:
            # In place and under its message_id, as replace_if_present_flag replaces a pending SMS: the ESME keeps
            # one id for the broadcast it changed, and the old content is no longer broadcast.
            mid = replaced.message_id
            replaced.source_addr = str(pdu["source_addr"])
            replaced.areas = areas
            replaced.service_type = str(pdu["service_type"])
            replaced.expire_at = expire_at
            replaced.content_type = content_type
            replaced.user_message_reference = reference
            replaced.submitted_at = now
            # Its old expiry stays in the heap; the sweep skips an entry its broadcast's expire_at has moved from.
            heappush(self._broadcast_expiry, (expire_at, mid))
            self._compact_broadcast_expiry()
            self._answer(conn, pdu, now, pdu.response(message_id=self._message_id(mid)))
            return
        self._sweep_broadcasts(now)
        # A running broadcast is held until its validity ends, as a pending message is: store_capacity bounds them
        # too (counted apart from messages), or an ESME could fill memory with broadcasts the store never sees.
        if self._running_broadcasts() >= self.config.store_capacity:
            self.stats.rejected += 1
            self._answer(conn, pdu, now, pdu.response(CommandStatus.ESME_RMSGQFUL))
            return
        # From the store's id sequence: a broadcast's message_id is never also an SMS's.
        mid = self.store.issue_id()
        self._broadcasts[mid] = _Broadcast(mid, conn.system_id or "", str(pdu["source_addr"]), areas,
                                           str(pdu["service_type"]), expire_at, content_type=content_type,
                                           user_message_reference=reference, submitted_at=now)
        heappush(self._broadcast_expiry, (expire_at, mid))
        self._answer(conn, pdu, now, pdu.response(message_id=self._message_id(mid)))

    def _broadcast_end(self, pdu: Pdu, now: float) -> float:
        """When the broadcast a broadcast_sm asks for ends (math.inf: when it is cancelled); InvalidTime for a
        schedule_delivery_time or validity_period it cannot have."""
        if pdu["validity_period"]:
            # SMPP 5.0 4.6.1: schedule_delivery_time and validity_period, as for submit_sm.
            return self._times(pdu, now)[1]
        # SMPP 5.0 4.6.1, validity_period: "Set to NULL to specify that a 'broadcast_rep_num' parameter and a
        # 'broadcast_frequency_interval' parameter have been specified from which a default value should be
        # derived": the repetitions asked for, one interval each, from the (scheduled) start.
        schedule = resolve(str(pdu["schedule_delivery_time"]), datetime.fromtimestamp(now, UTC),
                           CommandStatus.ESME_RINVSCHED)
        start = max(now, schedule.timestamp()) if schedule else now
        interval = pdu.tlv("broadcast_frequency_interval")
        repetitions = pdu.tlv("broadcast_rep_num")
        if not isinstance(interval, BroadcastFrequencyInterval) or not isinstance(repetitions, int):
            return start + self.config.default_validity  # a PDU built in code without them: nothing to derive from
        if pdu["priority_flag"] == _IMMEDIATE_BROADCAST:
            # SMPP 5.0 broadcast_rep_num: with an Immediate Broadcast priority it "should not be supplied and be
            # ignored if supplied": one broadcast.
            repetitions = 1
        if repetitions == 0:
            # SMPP 5.0 broadcast_rep_num: 0 with no validity_period means "the broadcasts should be repeated
            # indefinitely".
            return math.inf
        units = 1 if interval.unit == FrequencyUnit.AS_FREQUENTLY_AS_POSSIBLE else interval.value
        return start + repetitions * units * _FREQUENCY_UNIT_SECONDS[interval.unit]

    def _replaced_broadcast(self, conn: SmscConnection, pdu: Pdu, now: float) -> _Broadcast | None:
        """The running broadcast a broadcast_sm with replace_if_present_flag=1 replaces, if any.

        SMPP 5.0 4.6.1, replace_if_present_flag: replace "an existing message which has (1) MC message ID matching
        the ID supplied in the message_id field (2) or ESME assigned message reference number supplied in the
        user_message_reference field". A message_id names one broadcast: when it is not one of the account's
        still running, the replacement the ESME asked for cannot be made, and ESME_RBCASTFAIL says so rather than
        broadcasting a second message beside the first (our choice; the spec names no status). A reference that
        matches no running broadcast is "not present", and the broadcast_sm is a new one, as for submit_sm.
        Without the flag a message_id is ignored: the spec sets it only for a replacement.
        """
        if not pdu["replace_if_present_flag"]:
            return None
        entry = self._broadcast(conn, pdu, now, running=True)
        if entry is None and pdu["message_id"]:
            raise StoreError(CommandStatus.ESME_RBCASTFAIL, "replace_if_present_flag: no such running broadcast")
        return entry

    def _running_broadcasts(self) -> int:
        # Every broadcast in the table is running unless it is final (expired or cancelled, kept for retention).
        return len(self._broadcasts) - len(self._broadcasts_final)

    def _sweep_broadcasts(self, now: float) -> None:
        """Expire running broadcasts whose validity is over, and forget final ones older than the store's
        retention. Run before each broadcast operation, so the table holds no more than the broadcasts of the
        last validity period and retention, however long the SMSC runs."""
        expiry = self._broadcast_expiry
        final = self._broadcasts_final
        while expiry and expiry[0][0] <= now:
            _, mid = heappop(expiry)
            entry = self._broadcasts.get(mid)
            # expire_at <= now: a replaced broadcast leaves its old entry behind, which must not end the new one.
            if entry is not None and entry.state is MessageState.ENROUTE and entry.expire_at <= now:
                entry.state = MessageState.EXPIRED
                final[mid] = entry.expire_at
        horizon = now - self.store.retention
        while final:
            mid, at = next(iter(final.items()))
            if at > horizon:
                break
            final.popitem(last=False)
            del self._broadcasts[mid]

    def _broadcast(self, conn: SmscConnection, pdu: Pdu, now: float, running: bool = False) -> _Broadcast | None:
        """The broadcast a query_broadcast_sm, cancel_broadcast_sm or replacing broadcast_sm names (only a running
        one if ``running``), if the bound system_id sent it; another account's is as unknown.

        By message_id, or when that is NULL by the user_message_reference TLV: SMPP 5.0 4.6.3.1, query_broadcast_sm
        "can be queried either on the basis of the Message Center assigned reference message_id ... or by the ESME
        assigned message reference number user_message_reference", "qualified within the service by the system_id"
        and, when several share it, "the details of the most recently submitted message" are returned. source_addr,
        when given, must match the original's (5.0 4.6.2.1 / 4.6.3.1).
        """
        self._sweep_broadcasts(now)
        text_id = str(pdu["message_id"])
        if text_id:
            mid = self._parse_id(text_id)
            entry = self._broadcasts.get(mid) if mid is not None else None
            candidates = [] if entry is None else [entry]
        else:
            reference = pdu.tlv(_USER_MESSAGE_REFERENCE)
            if reference is None:
                return None
            candidates = [b for b in self._broadcasts.values() if b.user_message_reference == reference]
        source = str(pdu["source_addr"])
        matches = [b for b in candidates if b.system_id == conn.system_id and (not source or source == b.source_addr)
                   and (not running or b.state is MessageState.ENROUTE)]
        return max(matches, key=lambda b: (b.submitted_at, b.message_id), default=None)

    def _on_query_broadcast_sm(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        entry = self._broadcast(conn, pdu, now)
        if entry is None:
            self._answer(conn, pdu, now, pdu.response(CommandStatus.ESME_RBCASTQUERYFAIL))
            return
        # SMPP 5.0 4.6.3.2: message_state, and per broadcast area of the original broadcast_sm its
        # broadcast_area_identifier and broadcast_area_success, "the success rate indicator ... for a particular
        # broadcast_area_identifier" -- each rate right after its area, so a reader can pair them. Tags, not a
        # dict, so that repeated areas stay repeated.
        tlvs: list[tuple[int, TlvValue]] = [(_MESSAGE_STATE, int(entry.state))]
        for area in entry.areas:
            tlvs += ((_BROADCAST_AREA, area), (_BROADCAST_AREA_SUCCESS, 100))
        if entry.user_message_reference is not None:
            tlvs.append((_USER_MESSAGE_REFERENCE, entry.user_message_reference))
        # The MC's message_id, which a query by user_message_reference did not give.
        message_id = str(pdu["message_id"]) or self._message_id(entry.message_id)
        self._answer(conn, pdu, now, Pdu.make(CommandId.query_broadcast_sm_resp, pdu.sequence_number,
                                               message_id=message_id, tlvs=tuple(tlvs)))

    def _on_cancel_broadcast_sm(self, conn: SmscConnection, pdu: Pdu, now: float) -> None:
        if pdu["message_id"]:
            entry = self._broadcast(conn, pdu, now)
            targets = [entry] if entry is not None and entry.state is MessageState.ENROUTE else []
        else:
            # SMPP 5.0 4.6.2: "If the message_id is NULL, all outstanding undelivered messages with matching
            # source and destination addresses (and service_type if specified) are cancelled" -- a broadcast has
            # no destination, so source_addr (NULL matching a broadcast sent with a NULL one) and service_type.
            # Only the bound system_id's, as everywhere else. The request's optional broadcast_content_type and
            # user_message_reference (5.0 4.6.2.1) narrow it further to the broadcasts sent with the same value.
            self._sweep_broadcasts(now)
            source = str(pdu["source_addr"])
            service_type = str(pdu["service_type"])
            content_type = pdu.tlv("broadcast_content_type")
            reference = pdu.tlv("user_message_reference")
            targets = [b for b in self._broadcasts.values()
                       if b.state is MessageState.ENROUTE and b.system_id == conn.system_id
                       and b.source_addr == source and (not service_type or b.service_type == service_type)
                       and (content_type is None or b.content_type == content_type)
                       and (reference is None or b.user_message_reference == reference)]
        if not targets:
            self._answer(conn, pdu, now, pdu.response(CommandStatus.ESME_RBCASTCANCELFAIL))
            return
        for entry in targets:
            entry.state = MessageState.DELETED
            # Its expiry stays in the heap until its time, when the sweep skips it, or until the heap is rebuilt.
            self._broadcasts_final[entry.message_id] = now
        self._compact_broadcast_expiry()
        self._answer(conn, pdu, now, pdu.response())

    def _compact_broadcast_expiry(self) -> None:
        """Rebuild the expiry heap from the running broadcasts once cancelled ones' entries outnumber them.

        A cancelled broadcast's entry would otherwise stay until its validity ends (years, for "990000000000000R"),
        so broadcast_sm + cancel_broadcast_sm pairs grew the heap without bound. Rebuilding only when the stale
        entries are more than twice the live ones (and past a floor) keeps it O(1) amortised per cancel.
        """
        live = self._running_broadcasts()
        if len(self._broadcast_expiry) <= max(64, 3 * live):
            return
        self._broadcast_expiry = [(b.expire_at, mid) for mid, b in self._broadcasts.items()
                                  if b.state is MessageState.ENROUTE]
        heapify(self._broadcast_expiry)

    _HANDLERS: ClassVar[dict[CommandId, Callable[[Smsc, SmscConnection, Pdu, float], None]]] = {
        CommandId.submit_sm: _on_submit_sm,
        CommandId.data_sm: _on_submit_sm,
        CommandId.submit_multi: _on_submit_multi,
        CommandId.query_sm: _on_query_sm,
        CommandId.cancel_sm: _on_cancel_sm,
        CommandId.replace_sm: _on_replace_sm,
        CommandId.broadcast_sm: _on_broadcast_sm,
        CommandId.query_broadcast_sm: _on_query_broadcast_sm,
        CommandId.cancel_broadcast_sm: _on_cancel_broadcast_sm,
    }

    # -- MT delivery and receipts --------------------------------------------------------------------------

    def originate_mt(self, source: str, destination: str, data: bytes, now: float, *, data_coding: int = 0,
                     esm_class: int = 0, validity: float = 86400.0) -> StoredMessage:
        """An MT the carrier itself originates (an RCS OTP, a mail turned into SMS): stored and delivered to the
        subscriber exactly as a submitted MT is -- the subscriber's condition decides (an absent one is retried
        until ``validity`` runs out, a barred or unknown one is not delivered) -- but with no ESME behind it, so no
        receipt. Raises :class:`~carrier_sim.smsc.store.StoreError` when the store is full. The caller services the
        server afterwards (retries are timers)."""
        message = StoredMessage(0, "", "", source, destination.lstrip("+"), data, data_coding, esm_class, 0, now, now,
                                now + validity, MessageState.ENROUTE)
        stored = self.store.submit(message, replace_if_present=False)
        self.stats.originated += 1
        self._deliver_mt(stored, now)
        return stored

    def _deliver_mt(self, message: StoredMessage, now: float, immediate_receipt: bool = False) -> None:
        if not message.pending:
            return
        if now > message.expire_at:
            self.store.finish(message, MessageState.EXPIRED, now)
            self.stats.expired += 1
        else:
            subscribers = self.subscribers
            if type(subscribers) is SubscriberRegistry and not len(subscribers):
                condition = subscribers.default  # nobody listed: every number has the default condition
            else:
                condition = subscribers.condition(message.destination_addr)
            retry = self.config.absent_retry
            if condition is Condition.ABSENT and retry > 0:
                # Like a real SMSC: retry an absent subscriber until the validity period runs out, then EXPIRED.
                if now + retry <= message.expire_at:
                    self.store.retry(message, now + retry)
                    return
                self.store.finish(message, MessageState.EXPIRED, now, outcome_for(condition).error)
                self.stats.expired += 1
                self._report(message, now, immediate_receipt)
                return
            if condition is Condition.ROAMING and not immediate_receipt:
                # (The receipt_before_response fault delivers at once whoever the subscriber: it is there to
                # make the receipt overtake the submit_sm_resp, which a wait would defeat.)
                self._hand_to_visited_network(message, now)
                return
            outcome = outcome_for(condition)
            self.store.finish(message, outcome.state, now, outcome.error)
            if outcome.state is MessageState.DELIVERED:
                self.stats.delivered += 1
                if self.mt_listener is not None:
                    self.mt_listener(message, now)
            else:
                self.stats.undeliverable += 1
        self._report(message, now, immediate_receipt)

    def _hand_to_visited_network(self, message: StoredMessage, now: float) -> None:
        """A roaming subscriber's MT, due now: it reaches the handset a roaming delay later. Keyed by the
        destination and its ordinal among the MTs handed over for it, as receipt delays are, so a phone's messages
        meet the same delays whichever shard's SMSC carries them."""
        delay = self.config.roaming_delay
        word, n = self._roaming_ordinals.next(message.destination_addr)
        arrives = now + delay.drawn(self._draws, Draw.ROAMING_DELAY, word, n)
        self.store.hold(message, arrives)
        self._arrive(message, arrives, now)

    def _arrive(self, message: StoredMessage, arrives: float, now: float) -> None:
        """The visited network delivers ``message`` at ``arrives``, unless its validity ends first (it then
        expires at the end of its validity). Waits (a timer) while neither has come; rechecks when woken, since
        replace_sm may have moved the validity meanwhile."""
        if not message.pending or message.deliver_at != arrives:
            # Cancelled, or given a new schedule_delivery_time by replace_sm / replace_if_present (the store
            # brings it due again, to be handed over afresh): this hand-over is void.
            return
        end = message.expire_at
        wake = arrives if arrives <= end else end
        if now < wake:
            self._at(wake, partial(self._arrive, message, arrives))
            return
        if arrives <= end:
            self.store.finish(message, MessageState.DELIVERED, now)
            self.stats.delivered += 1
            if self.mt_listener is not None:
                self.mt_listener(message, now)
        else:
            self.store.finish(message, MessageState.EXPIRED, now)
            self.stats.expired += 1
        self._report(message, now, False)

    def _report(self, message: StoredMessage, now: float, immediate_receipt: bool) -> None:
        # receipt_wanted's commonest answer first (bits 1-0 = 1: a receipt for any final state), without the call.
        if not (message.registered_delivery & 3 == 1 and message.state is not MessageState.ENROUTE) and (
            not receipt_wanted(message.registered_delivery, message.state, intermediate=False)
        ):
            return
        if not self._receipt_faults:
            dlr = self.config.dlr_delay
            if immediate_receipt or self._dlr_zero:
                pdu, body = self._receipt(message, now, ESM_CLASS_SMSC_DELIVERY_RECEIPT)  # _send_receipt, inline
                self._queue_receipt(message, pdu, now, body)
            else:
                word, n = self._report_ordinals.next(message.destination_addr)
                when = dlr.drawn(self._draws, Draw.RECEIPT_DELAY, word, n)
                if when <= 0:
                    self._send_receipt(message, now)
                else:
                    self._at(now + when, partial(self._send_receipt, message))
            return
        faults = self.config.faults
        # Keyed by the destination and its report ordinal: the same message meets the same fate in any shard.
        word, n = self._report_ordinals.next(message.destination_addr)
        draws = self._draws
        if faults.lost_receipt and draws.uniform(Draw.LOST_RECEIPT, word, n) < faults.lost_receipt:
            return
        dlr = self.config.dlr_delay
        delay = 0.0 if immediate_receipt else dlr.drawn(draws, Draw.RECEIPT_DELAY, word, n)
        if faults.late_receipt and draws.uniform(Draw.LATE_RECEIPT, word, n) < faults.late_receipt:
            delay += faults.late_receipt_delay
        duplicate = faults.duplicate_receipt and draws.uniform(Draw.DUPLICATE_RECEIPT, word, n) < (
            faults.duplicate_receipt)
        copies = 2 if duplicate else 1
        for _ in range(copies):
            if delay <= 0:
                self._send_receipt(message, now)
            else:
                self._at(now + delay, partial(self._send_receipt, message))

    def receipt_pdu(self, message: StoredMessage, now: float, esm_class: int = ESM_CLASS_SMSC_DELIVERY_RECEIPT) -> Pdu:
        """The deliver_sm (or data_sm) carrying a message's receipt, in this SMSC's dialect."""
        return self._receipt(message, now, esm_class)[0]

    def _receipt(self, message: StoredMessage, now: float, esm_class: int) -> tuple[Pdu, bytes | None]:
        """:meth:`receipt_pdu`, and the octets after its header when :func:`receipt_body` can write them (None:
        the codec encodes the PDU)."""
        dialect = self.config.dialect
        # The id the ESME got: a submit_multi destination reports its group's (SMPP 3.4 4.5.2: one message_id).
        number = message.group_id or message.message_id
        message_id = self._message_id(number)
        state = message.state
        delivered = 1 if state is MessageState.DELIVERED else 0
        done_at = message.final_at or now
        error = message.error
        error_code = error.error_code if error else 0
        excerpt = _excerpt(message.data, message.data_coding, message.esm_class)
        text = self._receipt_template.text(number, message_id, 1, delivered, message.submitted_at,
                                           done_at, state, error_code, excerpt)
        if text is None:  # anything the template does not write: the reference writer, and its errors
            text = format_receipt(Receipt(
                message_id=message_id,
                submitted=1,
                delivered=delivered,
                submit_date=datetime.fromtimestamp(message.submitted_at, UTC).replace(tzinfo=None),
                done_date=datetime.fromtimestamp(done_at, UTC).replace(tzinfo=None),
                stat=state,
                err=f"{error_code:0{dialect.err_width}d}",
                text=excerpt,
            ), dialect)
        # The receipt goes with data_coding 0, so its octets are GSM 7-bit (unpacked): letters, digits, blanks and
        # colons are the same octets as in ASCII, which is why ASCII-reading ESMEs parse it too.
        data = gsm7.encode(text)
        # receipt_tlv_values' TLVs, in its order: receipted_message_id, message_state, network_error_code.
        tlvs: tuple[tuple[int, TlvValue], ...] = ((_RECEIPTED_MESSAGE_ID, message_id), (_MESSAGE_STATE, int(state)))
        if error is not None:
            tlvs += ((_NETWORK_ERROR_CODE, error),)
        account = self.accounts.get(message.system_id)
        if (account is not None and account.mo_delivery is MoDelivery.DATA_SM) or not _fits_deliver_sm(message):
            # A data_sm may carry addresses of up to 64 octets (SMPP 3.4 4.7.1), deliver_sm only 20: the receipt of
            # a data_sm to a long address goes back as a data_sm, or it could not be written at all.
            fields: dict[str, Any] = {"source_addr_ton": message.dest_ton, "source_addr_npi": message.dest_npi,
                                      "source_addr": message.destination_addr, "dest_addr_ton": message.source_ton,
                                      "dest_addr_npi": message.source_npi, "destination_addr": message.source_addr,
                                      "esm_class": esm_class}
            return Pdu.build(CommandId.data_sm, 0, CommandStatus.ESME_ROK, ((_MESSAGE_PAYLOAD, data), *tlvs),
                             fields), None
        # What Pdu.build gives for these fields (all deliver_sm's) and tags, without its checks: the NULL body with
        # the receipt's fields set (a copy keeps the table's key order).
        values = _DELIVER_SM_NULL.copy()
        values["source_addr_ton"] = message.dest_ton
        values["source_addr_npi"] = message.dest_npi
        values["source_addr"] = message.destination_addr
        values["dest_addr_ton"] = message.source_ton
        values["dest_addr_npi"] = message.source_npi
        values["destination_addr"] = message.source_addr
        values["esm_class"] = esm_class
        values["short_message"] = short = data[:254]
        body = receipt_body(message.dest_ton, message.dest_npi, message.destination_addr, message.source_ton,
                            message.source_npi, message.source_addr, esm_class, short, tlvs)
        return Pdu(CommandId.deliver_sm, 0, 0, values, tlvs), body

    def _send_receipt(self, message: StoredMessage, now: float) -> None:
        pdu, body = self._receipt(message, now, ESM_CLASS_SMSC_DELIVERY_RECEIPT)
        self._queue_receipt(message, pdu, now, body)

    def _queue_receipt(self, message: StoredMessage, pdu: Pdu, now: float, body: bytes | None = None) -> None:
        """Send a receipt to a receiver bind of the message's system_id, or hold it until one binds. ``body``:
        the PDU's octets after the header, if known (see :meth:`_receipt`), used when it goes out at once."""
        bound = self._by_system.get(message.system_id)
        if bound is not None and len(bound) == 1:  # _receivers(system_id) for the usual single bind, inline
            only = bound[0]
            targets = bound if only.session.state in _BOUND_RECEIVING and not only.closed else []
        else:
            targets = self._receivers(message.system_id)
        if not targets:
            self._receipt_of[id(pdu)] = message.message_id
            # Held until the system_id binds a receiver (real SMSCs queue receipts the same way).
            self._held_receipts.setdefault(message.system_id, deque()).append(pdu)
            self._unsent_receipts.add(id(pdu))
            return
        target = targets[next(self._rr) % len(targets)]
        if not target.outbox and not target.legacy:
            # What queue() and pump() do when nothing waits before it: sent now if the window allows, without the
            # round trip through the outbox and _receipt_of.
            try:
                sent = target.session.send_if_allowed(pdu, now, body)
            except SmppError:
                self.stats.unsendable += 1
                self._touch(target)
                return
            if sent is not None:
                self.stats.receipts_sent += 1
                target._pending_receipts[sent.sequence_number] = message.message_id
                self._touch(target)
                return
        self._receipt_of[id(pdu)] = message.message_id
        self._unsent_receipts.add(id(pdu))  # counted in receipts_sent when pump hands it to the session
        target.queue(pdu, now)

    # -- MO ------------------------------------------------------------------------------------------------

    def route_mo(self, destination: str) -> list[SmscConnection]:
        """Receiver binds that take MO for ``destination``: the account's routes, then the bind's address_range."""
        found = []
        for conn in self._receivers():
            account = conn.account
            assert account is not None
            if account.routes_to(destination) or (
                conn.address_range is not None and conn.address_range.fullmatch(destination)
            ):
                found.append(conn)
        if not found:
            # No explicit route: any receiver bind without routes or address_range takes it (a default route).
            found = [c for c in self._receivers() if c.account and not c.account.routes and c.address_range is None]
        return found

    def inject_mo(self, source: str, destination: str, text: str | bytes, now: float,
                  data_coding: int | None = None, esm_class: int = 0) -> bool:
        """An MO from subscriber ``source`` to ``destination``; False when no bind routes it. Raises
        :class:`~carrier_sim.smpp.errors.TextCodingError` (counting nothing) for a data_coding this SMSC does not
        write, or text it cannot write in it, and :class:`~carrier_sim.smpp.segmentation.TooManySegments` for
        one longer than 255 concatenated deliver_sm parts -- whether a bind routes it now or not, and whether that
        bind's account takes MO as deliver_sm or data_sm (see :meth:`mo_pdus`)."""
        targets = self.route_mo(destination)
        if not targets:
            # Refused here, not when a bind comes to take it: by then the caller was told it was accepted.
            _check_mo_segments(text, _mo_coding(text, data_coding))
            self.stats.mo_received += 1
            if self.config.hold_mo > 0 and len(self._held_mo) < self.config.store_capacity:
                # Store and forward, as an SMSC does while its ESME is away: delivered when a bind routes it.
                self._held_mo.append((now + self.config.hold_mo, source, destination, text, data_coding, esm_class))
                self.stats.mo_held += 1
                return True
            self.stats.mo_unroutable += 1
            return False
        conn = targets[next(self._rr) % len(targets)]
        assert conn.account is not None
        pdus = self.mo_pdus(conn.account, source, destination, text, data_coding, esm_class, legacy=conn.legacy)
        self.stats.mo_received += 1  # counted once it could be written
        for pdu in pdus:
            conn.queue(pdu, now)
        self.stats.mo_sent += 1
        return True

    def mo_pdus(self, account: Account, source: str, destination: str, text: str | bytes,
                data_coding: int | None = None, esm_class: int = 0, *, legacy: bool = False) -> list[Pdu]:
        """The PDUs carrying one MO to an account: one data_sm for a ``mo_delivery = data_sm`` account, else
        deliver_sm, split by 8-bit UDH concatenation if long. ``legacy``: for an SMPP 3.3 bind, which has no
        data_sm, so deliver_sm whatever the account's ``mo_delivery``.

        Raises :class:`~carrier_sim.smpp.errors.TextCodingError` for a data_coding this SMSC does not write or text
        it cannot write in it, and :class:`~carrier_sim.smpp.segmentation.TooManySegments` for an MO longer than
        255 deliver_sm parts -- a data_sm one too, though a message_payload holds up to 65,535 octets: a data_sm
        refused "try later", or left when its bind went, is sent again to whichever bind routes it then (held,
        with ``hold_mo``, while none does), a deliver_sm account's or an SMPP 3.3 one, so an MO is taken only if
        every form could carry it. 255 parts hold at most 39,015 octets (GSM), under both 65,535 and the 64 KiB
        frame ESMEs commonly read."""
        common = {"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": source,
                  "dest_addr_ton": 1 if len(destination) > 8 else 3, "dest_addr_npi": 1,
                  "destination_addr": destination}
        coding = _mo_coding(text, data_coding)
        data = encode_text(text, coding) if isinstance(text, str) else text
        if account.mo_delivery is MoDelivery.DATA_SM and not legacy:
            _check_mo_segments(data, coding)
            return [Pdu.make(CommandId.data_sm, 0, esm_class=esm_class, data_coding=coding,
                             tlvs={"message_payload": data}, **common)]  # type: ignore[arg-type]
        return self._mo_parts(common, data, coding, esm_class)

    def _mo_parts(self, fields: Mapping[str, object], data: bytes, coding: int, esm_class: int) -> list[Pdu]:
        """deliver_sm carrying an MO's octets, with these address fields, split by 8-bit UDH concatenation if
        long (TooManySegments past 255 parts)."""
        segments = split_message(data, coding, SegmentationMode.UDH_CONCAT_8, reference=next(self._mo_ref) & 0xFF)
        return [
            Pdu.make(CommandId.deliver_sm, 0, esm_class=esm_class | (_UDHI if s.esm_class_udhi else 0),
                     data_coding=s.data_coding, short_message=s.short_message, **fields)  # type: ignore[arg-type]
            for s in segments
        ]

    # -- shutting down -------------------------------------------------------------------------------------

    def owed(self) -> Owed:
        """What the SMSC owes now and has not done (receipts not sent, messages not final): what ``/stats`` and
        a standalone SMSC's report show as ``receipts_unsent`` and ``pending`` (through :attr:`stats`), so that a
        stop with work outstanding says so. Read when asked, not kept up to date: it walks the timers, the held
        receipts and the outboxes, which costs the traffic nothing."""
        receipt_of = self._receipt_of
        return Owed(
            receipts_due=sum(1 for timer in self._timers if _sends_a_receipt(timer.action)),
            receipts_held=sum(len(held) for held in self._held_receipts.values()),
            # Live connections only: a closed one's outbox was held again (_on_closed), and is counted there.
            receipts_queued=sum(1 for conn in self.connections.values() for queued in conn.outbox
                                if id(queued) in receipt_of),
            pending=self.store.pending_count,
        )

    def unbind_all(self, now: float) -> None:
        """SMSC-initiated unbind of every bound session (graceful shutdown)."""
        for conn in list(self.connections.values()):
            conn.unbind(now)

    def verdicts(self) -> list[dict[str, object]]:
        """Per-session verdicts: finished sessions, then live ones. Finished sessions beyond those kept one by one
        come first as one entry (``sessions``: how many) whose checks carry the worst verdict any of them had."""
        out: list[dict[str, object]] = [self.dropped_sessions.to_json()] if self.dropped_sessions.sessions else []
        out += [{"peer": p, "system_id": s, "checks": v} for p, s, v in self.finished_sessions]
        out += [{"peer": c.peer, "system_id": c.system_id, "checks": c.verdicts()} for c in self.connections.values()]
        return out


#: The timer actions that send a receipt: one after its delay, and a retry after its back-off.
_RECEIPT_SENDERS = (Smsc._send_receipt, Smsc._resend)


def _sends_a_receipt(action: Callable[[float], None]) -> bool:
    """Whether a timer's action sends a receipt (see :data:`_RECEIPT_SENDERS`)."""
    return isinstance(action, partial) and getattr(action.func, "__func__", None) in _RECEIPT_SENDERS


def _refusal(response: Pdu) -> int:
    """The status a deliver_sm/data_sm of ours was refused with, when ``response`` is not an acknowledgement.

    A generic_nack never acknowledges (SMPP 3.4 4.3: it says the PDU could not be read); its status is taken as
    the refusal, retried or final by the receipts' rule (carrier_sim.smsc.retry) as from a *_resp. One with
    command_status 0 -- malformed, since a generic_nack carries an error -- says nothing: as for a request left
    unanswered, "try later" (ESME_RX_T_APPN)."""
    return response.command_status or CommandStatus.ESME_RX_T_APPN


def _check_mo_segments(text: str | bytes, coding: int) -> None:
    """Raise what :meth:`Smsc.mo_pdus` raises for an MO it cannot carry, whatever bind takes it (a text the coding
    cannot write, more than 255 deliver_sm parts); the reference does not matter, so none is drawn from the MO
    counter."""
    split_message(encode_text(text, coding) if isinstance(text, str) else text, coding,
                  SegmentationMode.UDH_CONCAT_8)


#: The address fields of an MO, the same in its data_sm and deliver_sm forms (see Smsc.mo_pdus).
_MO_ADDRESS_FIELDS = ("source_addr_ton", "source_addr_npi", "source_addr", "dest_addr_ton", "dest_addr_npi",
                      "destination_addr")


#: Mixed into a subject's word for the draws of a throttled attempt, which are apart from the request's own.
_THROTTLED_SALT = 0x7A3D_9C4E_B1F2_0865


def _request_subject(conn: SmscConnection, pdu: Pdu) -> str:
    """What a request's fault draws are about: its destination address (a submit_multi's first SME address) --
    a phone's number, which is in one shard whatever the layout -- else the bound system_id and the command
    (enquire_link, query_sm, ...: about the session, so ordered by the session's traffic)."""
    params = pdu.params
    destination = params.get("destination_addr")
    if type(destination) is str and destination:
        return destination
    for dest in params.get("dest_address", ()) or ():  # type: ignore[union-attr]
        if isinstance(dest, SmeAddress) and dest.destination_addr:
            return dest.destination_addr
    return f"\x00{conn.system_id}\x00{pdu.command_id.name}"


def _group_state(members: list[StoredMessage]) -> tuple[MessageState, float | None, NetworkErrorCode | None]:
    """What query_sm reports for a message, or for a submit_multi's destinations taken together: ENROUTE while
    any is pending; once all are final, DELIVERED if every one was, else the state and error of the first one (in
    destination order) that was not -- the one the ESME has to act on. The final date is the last one's."""
    if len(members) == 1:
        only = members[0]
        return only.state, only.final_at, only.error
    if any(m.pending for m in members):
        return MessageState.ENROUTE, None, None
    final_at = max(m.final_at or 0.0 for m in members)
    for member in members:
        if member.state is not MessageState.DELIVERED:
            return member.state, final_at, member.error
    return MessageState.DELIVERED, final_at, None


#: What a receipt's excerpt keeps: the receipt is written in GSM 7-bit (data_coding 0) and its format is ASCII,
#: so a character neither holds (or that is not printable) becomes '?'.
_EXCERPT_CHARS = frozenset(ch for ch in map(chr, range(0x20, 0x7F)) if gsm7.is_gsm7(ch))
_EXCERPT_LENGTH = 20
#: The first _EXCERPT_LENGTH octets of an all-ASCII GSM text without escapes -> its excerpt (see _excerpt).
_EXCERPT_MEMO: dict[bytes, str] = {}


#: The data_coding octets decode_text reads as GSM 7-bit, for which it calls gsm7.decode.
_GSM_CODINGS = frozenset(dc for dc in range(256) if text_alphabet(dc) is DataCoding.SMSC_DEFAULT)


def _mo_coding(text: str | bytes, data_coding: int | None) -> DataCoding:
    """The data_coding an MO goes with: the one asked for, else the narrowest alphabet for text (binary for
    octets). SMPP 3.4 5.2.19's values only: TextCodingError for anything else (a bool is not a data_coding)."""
    if data_coding is None:
        return choose_coding(text) if isinstance(text, str) else DataCoding.BINARY
    if isinstance(data_coding, bool):
        raise TextCodingError(f"data_coding {data_coding!r} is not a number")
    try:
        return DataCoding(data_coding)
    except ValueError:
        known = ", ".join(f"{c.value} ({c.name})" for c in DataCoding)
        raise TextCodingError(f"data_coding {data_coding} is not one this SMSC writes: {known}") from None


#: The data_sm fields a deliver_sm has too (all of data_sm's mandatory ones).
_DATA_SM_FIELDS = tuple(f for f in PDU_TABLE[CommandId.data_sm].fields if f.name in _DELIVER_SM_NULL)


def _for_v33(pdu: Pdu) -> Pdu:
    """``pdu`` as an SMPP 3.3 peer can take it: no optional parameters (3.3 has none), and a data_sm (which 3.3
    does not have) becomes a deliver_sm carrying its message_payload in short_message."""
    if pdu.command_id is CommandId.data_sm:
        payload = pdu.tlv(_MESSAGE_PAYLOAD)
        values = _DELIVER_SM_NULL.copy()
        values.update({f.name: pdu.params[f.name] for f in _DATA_SM_FIELDS if f.name in pdu.params})
        values["short_message"] = payload[:254] if isinstance(payload, bytes) else b""
        return Pdu(CommandId.deliver_sm, pdu.sequence_number, pdu.command_status, values, ())
    return replace(pdu, tlvs=()) if pdu.tlvs else pdu



#: The longest source_addr / destination_addr a deliver_sm can carry, NUL excluded (from the PDU table).
_DELIVER_SM_ADDRESS = min(f.max_size - 1 for f in PDU_TABLE[CommandId.deliver_sm].fields
                          if f.name in ("source_addr", "destination_addr"))


def _fits_deliver_sm(message: StoredMessage) -> bool:
    """Whether a deliver_sm can carry the message's addresses (a data_sm may have brought longer ones)."""
    return (len(message.source_addr) <= _DELIVER_SM_ADDRESS
            and len(message.destination_addr) <= _DELIVER_SM_ADDRESS)

def _excerpt(data: bytes, data_coding: int, esm_class: int) -> str:
    try:
        if esm_class & _UDHI:
            data = split_udh(data)[1]
        # decode_text, without deciding the alphabet again for the usual GSM message (either way an error is
        # an SmppError and gives no excerpt).
        if data_coding not in _GSM_CODINGS:
            text = decode_text(data, data_coding)
        elif type(data) is bytes and data.isascii() and gsm7.ESCAPE not in data:
            # Septet for character, none of them invalid: the excerpt's characters are those of its octets, and
            # the finished excerpt depends on those first octets alone (remembered: texts often start alike).
            head = data[:_EXCERPT_LENGTH]
            known = _EXCERPT_MEMO.get(head)
            if known is not None:
                return known
            text = gsm7.decode(head)[:_EXCERPT_LENGTH]
            if not _EXCERPT_CHARS.issuperset(text):
                text = "".join(ch if ch in _EXCERPT_CHARS else "?" for ch in text)
            if len(_EXCERPT_MEMO) >= 512:
                _EXCERPT_MEMO.clear()
            _EXCERPT_MEMO[head] = text
            return text
        else:
            text = gsm7.decode(data)
    except SmppError:
        return ""
    # One character out per character in, so cutting first is the same as cutting last.
    text = text[:_EXCERPT_LENGTH]
    if _EXCERPT_CHARS.issuperset(text):
        return text
    return "".join(ch if ch in _EXCERPT_CHARS else "?" for ch in text)
