"""The identity service's decisions: REG-REQ in, proof out by SMS; proof in over HTTP, binding and certificate out.

Theory of operation. The carrier gateways hand every whole MO to :meth:`IdentityService.handle_mo`. A REG-REQ
from a phone number, within the velocity limits, gets a proof (the same one again for a repeat of that request
within a minute, :mod:`identity_core.recent_requests`): the pending binding is recorded *durably first*
(the store's await returns after commit), and only then is the REG-RESP submitted, so a proof that reached a
phone always has its record. :meth:`IdentityService.authenticate` checks the proof (MAC, expiry, number, token)
before touching the store or the velocity limits (a failed attempt is charged to the number and prefix, a valid
proof to its carrier), then spends it and activates the binding in one transaction, then signs the
certificate. Every refusal is a :class:`~identity_core.refusals.Refusal` that is counted by reason and logged
with its private detail; the peer only ever sees the reason's public form, which is the same for registered and
unregistered numbers.

Two more things an MO or a relying server can ask. An MO whose text is the HELP keyword gets the configured help
text by MT, within the REG-REQ velocity limits (:mod:`identity_core.help_keyword`). :meth:`IdentityService.
risk_check` asks the carrier that carried a binding's registration whether the SIM was swapped recently (CAMARA
SIM Swap, :mod:`identity_core.sim_swap`): a swap revokes the binding as a ``sim_swap`` carrier event would; no
usable answer fails closed (untrusted, nothing revoked) with a typed :class:`~identity_core.sim_swap.
SimSwapUnavailable`. A "not swapped" answer vouches only for the binding it was asked about, re-read once the
carrier has answered: one revoked, expired or replaced during the wait is not trusted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeGuard

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from identity_core.bindings import Binding, BindingState, Reason, TransitionError, as_of
from identity_core.certificates import CertificateIssuer, push_token_hash
from identity_core.gateway import CarrierGateway, GatewayError, MoMessage
from identity_core.gateway_metrics import GatewayCollector
from identity_core.help_keyword import DEFAULT_HELP_TEXT, is_help_request
from identity_core.limiter_metrics import LimiterCollector
from identity_core.limits import Scope, VelocityLimiter
from identity_core.proofs import ProofSigner
from identity_core.recent_requests import RecentRequests
from identity_core.refusals import Refusal, RefusalReason
from identity_core.reg_protocol import format_reg_resp, parse_reg_req
from identity_core.sim_swap import NotConfigured, SimSwapClient, SimSwapUnavailable
from identity_core.store import (
    BindingNotPending,
    ProofExpired,
    ProofMismatch,
    ProofSuperseded,
    Storage,
    StorageError,
    UnknownProof,
)

__all__ = ["AuthResult", "CarrierEvent", "IdentityService", "RiskUnavailable", "RiskVerdict", "binding_json"]

log = logging.getLogger("identity_core")

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_HEX = re.compile(r"[0-9a-fA-F]{1,256}")
#: The authenticate buckets a failed attempt draws on, and those a valid proof draws on (see _authenticate).
_FAILED_ATTEMPT_SCOPES: frozenset[Scope] = frozenset({"number", "prefix"})
_VALID_PROOF_SCOPES: frozenset[Scope] = frozenset({"carrier"})

#: Carrier events (POST /v1/events) and the reason each revokes a binding with.
CarrierEvent = Mapping[str, Reason]
EVENTS: CarrierEvent = {
    "sim_swap": Reason.SIM_SWAP,
    "port_out": Reason.PORT_OUT,
    "number_recycled": Reason.RECYCLED,
}


def _bindable(sender: str | None) -> TypeGuard[str]:
    """Whether an MO's sender is a number a proof can be issued for (+E.164, at most 15 digits).

    The gateways' normalise_sender gives None for anything else, so this is the last line: it runs before the
    velocity limiter, so a sender the signer would refuse (it raises) is refused as a wrong sender without taking
    a token from any bucket, rather than escaping as an exception after taking one.
    """
    return sender is not None and _E164.fullmatch(sender) is not None


@dataclass(frozen=True, slots=True)
class AuthResult:
    """A successful authentication: the active binding and its certificate."""

    binding: Binding
    certificate: str


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    """A risk check the carrier answered: ``trusted``, or not because of ``reason``; the binding as it now is."""

    trusted: bool
    binding: Binding
    reason: Reason | None = None


class RiskUnavailable(Exception):
    """A risk check with no verdict from the carrier, or whose revocation could not be stored: not trusted.

    ``outcome`` is the metric label and the problem's ``cause``.
    """

    def __init__(self, outcome: str, detail: str) -> None:
        super().__init__(detail)
        self.outcome = outcome
        self.detail = detail


def binding_json(binding: Binding) -> dict[str, object]:
    """The server-to-server view of a binding (the push token itself never leaves; its hash does)."""
    return {
        "phone_number": binding.e164,
        "state": binding.state.value,
        "carrier": binding.carrier,
        "push_token_sha256": push_token_hash(binding.push_token),
        "created_at": binding.created_at,
        "activated_at": binding.activated_at,
        "expires_at": binding.expires_at,
        "revoked_at": binding.revoked_at,
        "expired_at": binding.expired_at,
        "reason": binding.reason.value if binding.reason else None,
    }


class _Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.refusals = Counter(
            "identity_refusals", "Requests refused, by reason and stage", ["stage", "reason"], registry=registry
        )
        self.registrations = Counter("identity_registrations", "REG-RESP proofs sent", ["carrier"], registry=registry)
        self.activations = Counter("identity_activations", "Bindings activated", registry=registry)
        self.revocations = Counter("identity_revocations", "Bindings revoked", ["reason"], registry=registry)
        self.expirations = Counter(
            "identity_expirations", "Bindings the expiry sweep found expired (pending or active)", registry=registry
        )
        self.mo_ignored = Counter(
            "identity_mo_ignored", "MO not addressed to a gateway number", ["carrier"], registry=registry
        )
        self.mt_failed = Counter(
            "identity_mt_failed", "REG-RESP that could not be submitted", ["carrier"], registry=registry
        )
        self.receipts = Counter(
            "identity_receipts", "Delivery receipts of REG-RESP and HELP MTs", ["carrier", "state"], registry=registry
        )
        self.auth_seconds = Histogram("identity_authenticate_seconds", "Time to answer authenticate", registry=registry)
        self.help_replies = Counter(
            "identity_help_replies", "HELP/INFO keyword answers, by outcome (sent, failed)", ["carrier", "outcome"],
            registry=registry,
        )
        self.risk_checks = Counter(
            "identity_risk_checks",
            "Risk checks by carrier and outcome (trusted, sim_swap, no_binding, binding_changed: the binding ended or "
            "was replaced while the carrier answered, or why the carrier gave no verdict)",
            ["carrier", "outcome"],
            registry=registry,
        )
        self.sim_swap_seconds = Histogram(
            "identity_sim_swap_check_seconds", "Time the carrier's SIM Swap API took to answer", ["carrier"],
            registry=registry,
        )
        self.shed = Counter(
            "identity_shed",
            "Requests dropped or refused unserved because the service is overloaded, by stage and cause "
            "(reg/mo_stale: an MO waited past its gateway's mo_max_wait; auth/busy: too many authenticate calls "
            "in progress, answered 503 with Retry-After)",
            ["stage", "cause"],
            registry=registry,
        )
        self.mo_deferred = Counter(
            "identity_mo_deferred",
            "MOs held back before handling because authenticate calls were backed up (see auth_first)",
            registry=registry,
        )
        self.carrier_bound = Gauge(
            "identity_carrier_bound", "1 while the carrier's SMPP link is bound", ["carrier"], registry=registry
        )


class IdentityService:
    """Registrations over SMS and authentication over HTTP, on a store, a signer, an issuer and limits."""

    def __init__(
        self,
        store: Storage,
        signer: ProofSigner,
        issuer: CertificateIssuer,
        limiter: VelocityLimiter,
        clock: Callable[[], float] = time.time,
        registry: CollectorRegistry | None = None,
        *,
        sim_swap: SimSwapClient | None = None,
        help_text: str = DEFAULT_HELP_TEXT,
        max_auth_in_flight: int = 2048,
        auth_first: int = 64,
        limiter_clock: Callable[[], float] = time.monotonic,
        recent_requests: RecentRequests | None = None,
    ) -> None:
        self.store = store
        self.signer = signer
        self.issuer = issuer
        self.limiter = limiter
        self.clock = clock
        #: The velocity limiter's time, apart from ``clock`` (the wall clock that stamps proofs and bindings): a
        #: wall clock stepped back (NTP step, VM resume) froze the limiter at the latest time it had seen -- no
        #: refill, a pump window that stopped rolling until the prefix's normal traffic in it looked like a pump,
        #: and a block that could not end. Only durations matter to the limiter, so a monotonic clock serves.
        self.limiter_clock = limiter_clock
        self.registry = registry or CollectorRegistry()
        self.metrics = _Metrics(self.registry)
        self.gateways: dict[str, CarrierGateway] = {}
        # The gateways' own counters, read at scrape time from this very table (serve() fills it later).
        self.registry.register(GatewayCollector(self.gateways))
        self.registry.register(LimiterCollector(limiter, limiter_clock))
        #: The carriers' SIM Swap APIs (none configured: every risk check answers "not configured").
        self.sim_swap = sim_swap if sim_swap is not None else SimSwapClient({})
        self.help_text = help_text
        #: When each recent REG-REQ was first answered, so that a repeat gets the same proof (on ``clock``'s time).
        self.recent_requests = recent_requests if recent_requests is not None else RecentRequests()
        #: REG-RESP message ids awaiting their receipt -> carrier (bounded: oldest forgotten first).
        self._sent: OrderedDict[str, str] = OrderedDict()
        #: Authenticate calls in progress at most; past it they are refused at once (503, Retry-After) rather
        #: than queued behind work that cannot finish within any client's timeout.
        self.max_auth_in_flight = max_auth_in_flight
        self._auth_in_flight = 0
        #: While this many authenticate calls are in progress, new MOs wait (:meth:`mo_admission`): a phone
        #: holding a REG-RESP already cost a proof, a store write and an SMS, and finishing it is worth more than
        #: starting another. Held MOs keep ageing in their gateway's queue and are shed past its mo_max_wait, so
        #: under overload answered phones are not kept waiting behind new ones. Paired 100k-phone storms with and
        #: without it (docs/performance.md): completions within noise, p99 lower in every pair.
        if auth_first < 1:
            raise ValueError(f"auth_first must be at least 1, not {auth_first}")
        self.auth_first = auth_first
        self._mo_admitted = asyncio.Event()
        self._mo_admitted.set()
        self._holding = True  # False once shutting down (release_held_mos)
        self._shed_mo = self.metrics.shed.labels("reg", "mo_stale")
        self._shed_auth = self.metrics.shed.labels("auth", "busy")
        self._mo_deferred = self.metrics.mo_deferred
        self._auth_seconds = self.metrics.auth_seconds

    # -- SMS side ------------------------------------------------------------------------------------------

    def _refuse(self, stage: str, refusal: Refusal) -> Refusal:
        self.metrics.refusals.labels(stage, refusal.reason.code).inc()
        log.info("refused %s: %s (%s)", stage, refusal.reason.code, refusal.detail)
        return refusal

    async def handle_mo(self, mo: MoMessage) -> Refusal | None:
        """One MO from a carrier gateway: answer a valid REG-REQ with a proof; None when a proof was sent."""
        if not mo.to_gateway:
            self.metrics.mo_ignored.labels(mo.carrier).inc()
            return None
        if is_help_request(mo.text):
            return await self._answer_help(mo)
        request = parse_reg_req(mo.text)
        if isinstance(request, Refusal):
            return self._refuse("reg", request)
        if not _bindable(mo.sender):
            return self._refuse("reg", Refusal(RefusalReason.WRONG_SENDER, f"source {mo.source!r} ton {mo.source_ton}"))
        gateway = self.gateways.get(mo.carrier)
        if gateway is None:
            return self._refuse("reg", Refusal(RefusalReason.UNKNOWN_CARRIER, mo.carrier))
        now = self.clock()
        limited = self.limiter.check("reg", mo.sender, mo.carrier, self.limiter_clock())
        if limited is not None:
            return self._refuse("reg", limited)
        # A repeat of a request answered within the window (a carrier redelivering the MO, or the phone retrying)
        # is issued at the first answer's time: the same proof, recorded once (identity_core.recent_requests).
        issued_at = self.recent_requests.issue_time(mo.sender, request.push_token, request.request_id, now)
        proof = self.signer.issue(mo.sender, request.push_token, request.request_id, issued_at)
        if proof.expires_at <= now:  # a proof validity shorter than the window: that first proof has run out
            proof = self.signer.issue(mo.sender, request.push_token, request.request_id, now)
        try:
            await self.store.record_pending(
                e164=mo.sender,
                push_token=request.push_token,
                request_id=request.request_id,
                carrier=mo.carrier,
                proof_id=proof.proof_id,
                expires_at=proof.expires_at,
                now=now,
            )
        except (StorageError, TransitionError) as err:
            return self._refuse("reg", Refusal(RefusalReason.UNAVAILABLE, f"store: {err}"))
        text = format_reg_resp(request.request_id, mo.sender, proof.hex)
        try:
            message_id = await gateway.send_mt(mo.sender, text)
        except GatewayError as err:
            self.metrics.mt_failed.labels(mo.carrier).inc()
            log.warning("REG-RESP to %s via %s failed: %s", mo.sender, mo.carrier, err)
            return Refusal(RefusalReason.UNAVAILABLE, str(err))
        self.metrics.registrations.labels(mo.carrier).inc()
        self._remember_mt(message_id, mo.carrier)
        return None

    async def _answer_help(self, mo: MoMessage) -> Refusal | None:
        """HELP/INFO: the help text by MT to the sender, within the REG-REQ limits (the same buckets)."""
        if not _bindable(mo.sender):
            wrong = Refusal(RefusalReason.WRONG_SENDER, f"source {mo.source!r} ton {mo.source_ton}")
            return self._refuse("help", wrong)
        gateway = self.gateways.get(mo.carrier)
        if gateway is None:
            return self._refuse("help", Refusal(RefusalReason.UNKNOWN_CARRIER, mo.carrier))
        limited = self.limiter.check("reg", mo.sender, mo.carrier, self.limiter_clock())
        if limited is not None:
            return self._refuse("help", limited)
        try:
            message_id = await gateway.send_mt(mo.sender, self.help_text)
        except GatewayError as err:
            self.metrics.help_replies.labels(mo.carrier, "failed").inc()
            log.warning("HELP answer to %s via %s failed: %s", mo.sender, mo.carrier, err)
            return Refusal(RefusalReason.UNAVAILABLE, str(err))
        self.metrics.help_replies.labels(mo.carrier, "sent").inc()
        self._remember_mt(message_id, mo.carrier)
        return None

    async def mo_admission(self) -> None:
        """Return when a new MO may be handled: while :attr:`auth_first` authenticate calls are in progress,
        they go first. Carrier gateways await it (their ``admit`` hook) before each MO, never before a receipt."""
        if not self._holding or self._auth_in_flight < self.auth_first:
            return
        self._mo_deferred.inc()
        # Re-checked after each wake-up: the gate may have closed again before this task ran. All MOs held when
        # it opens are woken together, so it lets a burst through rather than a measured few.
        while self._holding and self._auth_in_flight >= self.auth_first:
            await self._mo_admitted.wait()

    def release_held_mos(self) -> None:
        """Shutting down: never hold an MO again, and let the held ones go. Gateways stopping hand their taken MOs
        to the handlers (those deliver_sm were acknowledged); a gate kept closed by the last authenticate calls
        would have them shed instead."""
        self._holding = False
        self._mo_admitted.set()

    def mo_shed(self, mo: MoMessage, waited: float) -> None:
        """A carrier gateway dropped an MO that waited ``waited`` s, past its ``mo_max_wait``: counted, logged."""
        self._shed_mo.inc()
        log.info("shed MO from %s via %s after %.1f s in the queue (overloaded)", mo.source, mo.carrier, waited)

    def _remember_mt(self, message_id: str, carrier: str) -> None:
        self._sent[message_id] = carrier
        if len(self._sent) > 1_000_000:
            self._sent.popitem(last=False)

    async def handle_receipt(
        self, carrier: str, message_id: str, state: str, error: str | None, final: bool = True
    ) -> None:
        """A delivery receipt for an MT of ours: counted by state. The MT is forgotten only on a ``final``
        receipt: after an intermediate one (ENROUTE, ACCEPTED, an intermediate notification) the gateway keeps
        waiting, and the final receipt that follows must still be matched."""
        sent = self._sent
        known = (sent.pop(message_id, None) if final else sent.get(message_id)) is not None
        self.metrics.receipts.labels(carrier, state if known else "unmatched").inc()
        if error and state != "DELIVRD":
            log.info("REG-RESP %s via %s ended %s (err %s)", message_id, carrier, state, error)

    # -- HTTP side -----------------------------------------------------------------------------------------

    async def authenticate(self, phone_number: object, push_token: object, signature: object) -> AuthResult | Refusal:
        """POST /v1/phone-numbers/authenticate. Proof problems all answer alike whatever the number."""
        if self._auth_in_flight >= self.max_auth_in_flight:
            # Overloaded: refusing costs nothing, whereas queueing would answer late, after the client gave up.
            self._shed_auth.inc()
            return Refusal(RefusalReason.UNAVAILABLE, "overloaded: too many authenticate calls", retry_after=1.0)
        started = time.perf_counter()
        self._auth_in_flight += 1
        if self._holding and self._auth_in_flight >= self.auth_first:
            self._mo_admitted.clear()
        try:
            return await self._authenticate(phone_number, push_token, signature)
        finally:
            self._auth_in_flight -= 1
            if self._auth_in_flight < self.auth_first:
                self._mo_admitted.set()
            self._auth_seconds.observe(time.perf_counter() - started)

    async def _authenticate(self, phone_number: object, push_token: object, signature: object) -> AuthResult | Refusal:
        if not isinstance(phone_number, str) or not _E164.fullmatch(phone_number):
            return self._refuse("auth", Refusal(RefusalReason.INVALID_NUMBER, repr(phone_number)[:40]))
        if not isinstance(push_token, str) or not _HEX64.fullmatch(push_token):
            return self._refuse("auth", Refusal(RefusalReason.MALFORMED, "push_token must be 64 hex digits"))
        if not isinstance(signature, str) or not _HEX.fullmatch(signature):
            return self._refuse("auth", Refusal(RefusalReason.MALFORMED, "signature must be hex"))
        now = self.clock()
        token = push_token.lower()
        # The MAC first (one HMAC, constant time, no storage), the velocity limits after: charging the number's
        # bucket before knowing whether the proof is good let anyone lock a phone out by sending garbage for its
        # number. Garbage costs the service no more than the limiter would.
        verified = self.signer.verify(phone_number, token, signature, now)
        if isinstance(verified, Refusal):
            return self._failed(phone_number, verified)
        try:
            recorded = await self.store.get_by_proof(verified.proof_id)
        except StorageError as err:
            return self._refuse("auth", Refusal(RefusalReason.UNAVAILABLE, str(err)))
        if recorded is None:
            return self._failed(phone_number, Refusal(RefusalReason.FORGED, "valid MAC, no binding recorded"))
        # Decide a spent or ended proof from this read, before the carrier's bucket and the store's writer: a
        # replay charged to the carrier let one subscriber replaying their own used proof empty the bucket for
        # everyone on that carrier, and each one cost a writer transaction (an fsync per batch) to be recognised.
        # Same order and answers as the store's own checks; the store stays the authority for races (a proof
        # spent or revoked between this read and the write is still caught there).
        if recorded.activated_at is not None:
            return self._failed(phone_number, Refusal(RefusalReason.REPLAYED, phone_number))
        current = as_of(recorded, now)
        if current.state is not BindingState.PENDING:
            detail = f"binding {current.state.value} ({current.reason.value if current.reason else 'no reason'})"
            return self._failed(phone_number, Refusal(RefusalReason.FORGED, detail))
        # A valid proof draws on its carrier's bucket only: it is single use and already cost a REG-REQ within
        # the number's and prefix's limits. The carrier is the one the REG-REQ really crossed, as recorded.
        limited = self.limiter.check(
            "auth", phone_number, recorded.carrier, self.limiter_clock(), scopes=_VALID_PROOF_SCOPES
        )
        if limited is not None:
            return self._refuse("auth", limited)
        try:
            activation = await self.store.authenticate(
                proof_id=verified.proof_id,
                proof_expires_at=verified.expires_at,
                e164=phone_number,
                push_token=token,
                now=now,
                cert_expires_at=now + self.issuer.validity,
            )
        except ProofExpired as err:
            return self._failed(phone_number, Refusal(RefusalReason.EXPIRED, str(err)))
        except (UnknownProof, ProofMismatch, BindingNotPending, ProofSuperseded, TransitionError) as err:
            # A proof with a valid MAC but no live pending binding (revoked by a carrier event meanwhile, lapsed,
            # older than the number's active binding): to the caller it is simply not a valid proof any more.
            return self._failed(phone_number, Refusal(RefusalReason.FORGED, f"{type(err).__name__}: {err}"))
        except StorageError as err:
            return self._refuse("auth", Refusal(RefusalReason.UNAVAILABLE, str(err)))
        if activation is None:
            return self._failed(phone_number, Refusal(RefusalReason.REPLAYED, phone_number))
        if activation.superseded is not None:
            self.metrics.revocations.labels(Reason.SUPERSEDED.value).inc()
        self.metrics.activations.inc()
        certificate = self.issuer.issue(phone_number, token, now)
        return AuthResult(activation.binding, certificate)

    def _failed(self, e164: str, refusal: Refusal) -> Refusal:
        """A failed authenticate attempt, charged to the number's and the prefix's buckets; once either is empty
        the answer is ``rate_limited`` instead. The same for every number, registered or not: what decides is
        the proof, never the store."""
        limited = self.limiter.check("auth", e164, "", self.limiter_clock(), scopes=_FAILED_ATTEMPT_SCOPES)
        if limited is not None:
            return self._refuse("auth", Refusal(limited.reason, f"{limited.detail} ({refusal.reason.code}: "
                                                f"{refusal.detail})", retry_after=limited.retry_after))
        return self._refuse("auth", refusal)

    async def lookup(self, e164: str) -> Binding | None:
        """GET /v1/phone-numbers/{e164}: the current binding as it is now, expired if its time ran out even when
        the store's expiry sweep has not come by yet."""
        binding = await self.store.get(e164)
        return None if binding is None else as_of(binding, self.clock())

    async def expire_due(self) -> int:
        """Write to the store the expiry of every binding whose time ran out (the periodic sweep of ``serve``);
        how many. Answers do not depend on it (:meth:`lookup`, :meth:`risk_check` see expiry at once); the
        store's states, counts and live-expiry index do."""
        expired = await self.store.expire_due(self.clock())
        if expired:
            self.metrics.expirations.inc(expired)
        return expired

    async def delete(self, e164: str) -> bool:
        """DELETE /v1/phone-numbers/{e164}: revoke with reason ``deleted``."""
        deleted = await self.store.delete(e164, self.clock())
        if deleted:
            self.metrics.revocations.labels(Reason.DELETED.value).inc()
        return deleted

    async def carrier_event(self, kind: str, e164: str) -> Binding | None:
        """POST /v1/events: a SIM swap, port-out or recycled number revokes the number's bindings."""
        reason = EVENTS[kind]
        revoked = await self.store.revoke(e164, reason, self.clock())
        if revoked is not None:
            self.metrics.revocations.labels(reason.value).inc()
        return revoked

    async def risk_check(self, e164: str, action: str | None = None) -> RiskVerdict | None:
        """POST /v1/phone-numbers/{e164}/risk-check: may the active binding be trusted for a high-risk action?

        Asks the SIM Swap API of the carrier the binding registered through. A swap within that carrier's
        ``sim_swap_max_age`` revokes the number's bindings that existed when the carrier was asked (reason
        ``sim_swap``, as POST /v1/events would have then). None when the number has no active binding -- before
        the carrier is asked, or once it has answered "not swapped" if the binding ended meanwhile. Raises
        :class:`RiskUnavailable` when there is no verdict: the caller must not trust the binding, which stays as
        it was. That includes ``binding_changed``: another binding became the number's active one while the
        carrier answered, and the answer was about the one before.
        """
        try:
            binding = await self.lookup(e164)
        except StorageError as err:
            self.metrics.risk_checks.labels("", "store_error").inc()
            raise RiskUnavailable("store_error", f"store: {err}") from None
        if binding is None or binding.state is not BindingState.ACTIVE:  # an expired one too, swept or not
            self.metrics.risk_checks.labels("", "no_binding").inc()
            return None
        carrier = binding.carrier
        asked_at = self.clock()
        started = time.perf_counter()
        try:
            swapped = await self.sim_swap.swapped(carrier, e164)
        except SimSwapUnavailable as err:
            if not isinstance(err, NotConfigured):
                self.metrics.sim_swap_seconds.labels(carrier).observe(time.perf_counter() - started)
            self.metrics.risk_checks.labels(carrier, err.outcome).inc()
            log.warning("risk check of %s (%s) via %s: no verdict, not trusted: %s", e164, action, carrier, err)
            raise RiskUnavailable(err.outcome, str(err)) from None
        self.metrics.sim_swap_seconds.labels(carrier).observe(time.perf_counter() - started)
        if not swapped:
            return await self._not_swapped(binding, action)
        try:
            # Only what was recorded by the time the carrier was asked is revoked, in the same transaction that
            # decides it. The carrier's answer cannot date the swap, only put it within max_age: it is evidence
            # against the bindings the question was about. A registration that arrived during the wait (up to
            # sim_swap_timeout) most probably came after the swap, so its proof went to the SIM that holds the
            # number now; revoking it would count against it a swap that most likely predates it. It is not
            # trusted by this answer either, and any high-risk action through it meets its own risk check, which
            # applies the same conservative reading (any swap within max_age counts) to it.
            revoked = await self.store.revoke(e164, Reason.SIM_SWAP, self.clock(), recorded_by=asked_at)
            if revoked is not None:
                self.metrics.revocations.labels(Reason.SIM_SWAP.value).inc()
            # The answer shows the binding the check was about, as it now is: revoked here, or ended meanwhile by
            # something else (a delete, a carrier event, a newer binding superseding it).
            current = await self.store.get_by_proof(binding.proof_id)
        except (StorageError, TransitionError) as err:
            self.metrics.risk_checks.labels(carrier, "store_error").inc()
            log.error("risk check of %s: SIM swapped but the revocation failed: %s", e164, err)
            raise RiskUnavailable("store_error", f"store: {err}") from None
        self.metrics.risk_checks.labels(carrier, "sim_swap").inc()
        log.info("risk check of %s (%s) via %s: SIM swapped recently, binding revoked", e164, action, carrier)
        shown = as_of(current, self.clock()) if current is not None else binding
        return RiskVerdict(False, shown, Reason.SIM_SWAP)

    async def _not_swapped(self, asked: Binding, action: str | None) -> RiskVerdict | None:
        """The carrier said "not swapped" about ``asked``'s number: trusted only if ``asked`` is still the number's
        active binding. The answer took up to sim_swap_timeout, and meanwhile the binding may have been revoked
        (a carrier event, a delete), expired or superseded; trusting the binding read before the wait would vouch
        for one that is no longer active."""
        e164, carrier = asked.e164, asked.carrier
        try:
            current = await self.lookup(e164)
        except StorageError as err:
            self.metrics.risk_checks.labels(carrier, "store_error").inc()
            raise RiskUnavailable("store_error", f"store: {err}") from None
        if current is not None and current.state is BindingState.ACTIVE and current.proof_id == asked.proof_id:
            self.metrics.risk_checks.labels(carrier, "trusted").inc()
            return RiskVerdict(True, current)
        self.metrics.risk_checks.labels(carrier, "binding_changed").inc()
        if current is None or current.state is not BindingState.ACTIVE:
            # Ended during the wait: no active binding, as a check asked now would answer (404).
            log.info("risk check of %s (%s) via %s: the binding ended while the carrier answered", e164, action,
                     carrier)
            return None
        # Another binding is active now (a newer registration authenticated during the wait). The answer was
        # about the number as it was, perhaps through another carrier's API: no verdict on the new binding.
        log.info("risk check of %s (%s) via %s: another binding became active while the carrier answered", e164,
                 action, carrier)
        raise RiskUnavailable("binding_changed", "the number's active binding changed during the check")

    async def update_gauges(self) -> Mapping[str, bool]:
        """Refresh per-carrier bound gauges; the bound state of each carrier."""
        bound = {name: gw.bound.is_set() for name, gw in self.gateways.items()}
        for name, is_bound in bound.items():
            self.metrics.carrier_bound.labels(name).set(1 if is_bound else 0)
        return bound
