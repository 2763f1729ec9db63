"""The life of one binding between a phone number and a device, as a table.

Theory of operation
-------------------
A *binding* says "phone number E.164 is, or may become, reachable at the device that owns push token T". It is
born when the service hears a REG-REQ by SMS: the phone asked to register, the service signs a single-use proof
and texts it back. That birth is :func:`register`, the ``registered`` event, and the binding starts ``pending``.

From then on only the events of :data:`TRANSITIONS` move it, each through :func:`transition`:

=========  ======================  ==========  ================  ===================
state      event                   target      timestamp set     reason
=========  ======================  ==========  ================  ===================
pending    authenticated           active      ``activated_at``  --
pending    expired                 expired     ``expired_at``    not_authenticated
pending    revoked_sim_swap        revoked     ``revoked_at``    sim_swap
pending    revoked_port_out        revoked     ``revoked_at``    port_out
pending    revoked_recycled        revoked     ``revoked_at``    recycled
pending    deleted                 revoked     ``revoked_at``    deleted
active     superseded              revoked     ``revoked_at``    superseded
active     expired                 expired     ``expired_at``    lapsed
active     revoked_sim_swap        revoked     ``revoked_at``    sim_swap
active     revoked_port_out        revoked     ``revoked_at``    port_out
active     revoked_recycled        revoked     ``revoked_at``    recycled
active     deleted                 revoked     ``revoked_at``    deleted
=========  ======================  ==========  ================  ===================

Every other (state, event) pair raises :class:`IllegalTransition`. In particular:

* ``expired`` and ``revoked`` are terminal. A number that comes back (the same device registers again after its
  certificate lapsed, a recycled number reaches a new owner) gets a *new* binding through :func:`register`; old
  rows are history, never resurrected, so that a revocation can never be undone by a late message.
* A pending binding is revoked by carrier events too, not only an active one: the proof travelled by SMS to
  whichever SIM held the number *then*. After a SIM swap or a port-out that proof is in the wrong hands, so it
  must no longer be redeemable.
* ``superseded`` applies to an active binding only: what supersedes is another device *authenticating*, not
  merely asking (anyone can send a REG-REQ; only the SIM's holder can redeem the proof).
* Only a *newer* registration supersedes: a pending binding recorded before the number's active one can no
  longer be authenticated (the store refuses it with ``ProofSuperseded``, in the transaction that would have
  activated it). Otherwise a device that registered earlier and redeemed its proof late would take the number
  back from the one that registered after it. That pending binding stays pending and expires with its proof.
* ``registered`` is how a binding begins, never something that happens to one, so :func:`transition` refuses
  it from every state.

Expiry is decided by the clock alone, so a binding's state is only as fresh as the last expiry sweep of the
store; :func:`as_of` gives the state a binding has *now* (what the next sweep will write), for answers that must
not wait for the sweep. Both stamp ``expired_at`` with the ``expires_at`` that ran out, however late the sweep
noticed, so a binding reads the same before and after it.

Two transitions carry a guard on time, because the clock, not the order of messages, decides them:
``authenticated`` must come strictly before the pending binding's ``expires_at`` (the proof's expiry), else
:class:`BindingLapsed`; ``expired`` must come at or after ``expires_at``, else :class:`ExpiryNotDue`.

The module is pure: time enters as ``now`` (seconds since the epoch, as a float), nothing is stored or logged
here, and a :class:`Binding` is immutable -- :func:`transition` returns a new one. The store
(:mod:`identity_core.store`) persists what this module decides.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "LIVE_STATES",
    "TERMINAL_STATES",
    "TRANSITIONS",
    "Binding",
    "BindingEvent",
    "BindingLapsed",
    "BindingState",
    "ExpiryNotDue",
    "IllegalTransition",
    "InvalidBinding",
    "Reason",
    "Rule",
    "TimeGuard",
    "TransitionError",
    "as_of",
    "register",
    "transition",
]


class BindingState(enum.StrEnum):
    """Where a binding is in its life. The values are what the store writes to disk: never rename them."""

    PENDING = "pending"
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class BindingEvent(enum.StrEnum):
    """What happened to a binding, named in the past tense."""

    REGISTERED = "registered"
    AUTHENTICATED = "authenticated"
    SUPERSEDED = "superseded"
    EXPIRED = "expired"
    REVOKED_SIM_SWAP = "revoked_sim_swap"
    REVOKED_PORT_OUT = "revoked_port_out"
    REVOKED_RECYCLED = "revoked_recycled"
    DELETED = "deleted"


class Reason(enum.StrEnum):
    """Why a binding left the live states. Stored on disk as the value: never rename them."""

    NOT_AUTHENTICATED = "not_authenticated"
    LAPSED = "lapsed"
    SUPERSEDED = "superseded"
    SIM_SWAP = "sim_swap"
    PORT_OUT = "port_out"
    RECYCLED = "recycled"
    DELETED = "deleted"


class TimeGuard(enum.Enum):
    """When, relative to the binding's ``expires_at``, an event may apply."""

    ANYTIME = enum.auto()
    BEFORE_EXPIRY = enum.auto()  # now < expires_at
    AT_OR_AFTER_EXPIRY = enum.auto()  # now >= expires_at


Stamp = Literal["activated_at", "expired_at", "revoked_at"]


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of the table: where an event takes a binding, which timestamp it sets and why."""

    target: BindingState
    stamp: Stamp
    reason: Reason | None
    guard: TimeGuard = TimeGuard.ANYTIME


LIVE_STATES: frozenset[BindingState] = frozenset({BindingState.PENDING, BindingState.ACTIVE})
TERMINAL_STATES: frozenset[BindingState] = frozenset({BindingState.EXPIRED, BindingState.REVOKED})


def _revocations() -> dict[BindingEvent, Rule]:
    # The carrier events and the server API's delete do the same thing to a pending and to an active binding.
    revoked = BindingState.REVOKED
    return {
        BindingEvent.REVOKED_SIM_SWAP: Rule(revoked, "revoked_at", Reason.SIM_SWAP),
        BindingEvent.REVOKED_PORT_OUT: Rule(revoked, "revoked_at", Reason.PORT_OUT),
        BindingEvent.REVOKED_RECYCLED: Rule(revoked, "revoked_at", Reason.RECYCLED),
        BindingEvent.DELETED: Rule(revoked, "revoked_at", Reason.DELETED),
    }


def _table() -> dict[tuple[BindingState, BindingEvent], Rule]:
    pending, active = BindingState.PENDING, BindingState.ACTIVE
    table: dict[tuple[BindingState, BindingEvent], Rule] = {
        (pending, BindingEvent.AUTHENTICATED): Rule(active, "activated_at", None, TimeGuard.BEFORE_EXPIRY),
        (pending, BindingEvent.EXPIRED): Rule(
            BindingState.EXPIRED, "expired_at", Reason.NOT_AUTHENTICATED, TimeGuard.AT_OR_AFTER_EXPIRY
        ),
        (active, BindingEvent.SUPERSEDED): Rule(BindingState.REVOKED, "revoked_at", Reason.SUPERSEDED),
        (active, BindingEvent.EXPIRED): Rule(
            BindingState.EXPIRED, "expired_at", Reason.LAPSED, TimeGuard.AT_OR_AFTER_EXPIRY
        ),
    }
    for state in (pending, active):
        for event, rule in _revocations().items():
            table[(state, event)] = rule
    return table


TRANSITIONS: Mapping[tuple[BindingState, BindingEvent], Rule] = MappingProxyType(_table())
"""The whole state machine: (state, event) -> :class:`Rule`. A pair that is absent is illegal."""


class TransitionError(Exception):
    """An event was applied to a binding that cannot take it. The caller broke the rules, not the peer."""

    def __init__(self, message: str, state: BindingState, event: BindingEvent) -> None:
        super().__init__(message)
        self.state = state
        self.event = event


class IllegalTransition(TransitionError):
    """The (state, event) pair is not in :data:`TRANSITIONS`."""

    def __init__(self, state: BindingState, event: BindingEvent) -> None:
        super().__init__(f"a {state} binding cannot be {event}", state, event)


class BindingLapsed(TransitionError):
    """``authenticated`` came at or after the pending binding's ``expires_at``: the proof is no longer good."""

    def __init__(self, state: BindingState, event: BindingEvent, now: float, expires_at: float) -> None:
        super().__init__(f"{event} at {now} but the binding lapsed at {expires_at}", state, event)
        self.now = now
        self.expires_at = expires_at


class ExpiryNotDue(TransitionError):
    """``expired`` came before the binding's ``expires_at``."""

    def __init__(self, state: BindingState, event: BindingEvent, now: float, expires_at: float) -> None:
        super().__init__(f"{event} at {now} but the binding runs until {expires_at}", state, event)
        self.now = now
        self.expires_at = expires_at


class InvalidBinding(ValueError):
    """Arguments that cannot make a sensible binding (an expiry that is not in the future, an empty number)."""


@dataclass(frozen=True, slots=True)
class Binding:
    """One binding of a phone number to a device, at one point of its life.

    ``expires_at`` is the proof's expiry while the binding is pending and the certificate's once it is active.
    ``proof_id`` names the proof that was sent for this binding; it is what makes authentication find it.
    """

    e164: str
    push_token: str
    carrier: str
    request_id: int
    proof_id: bytes
    state: BindingState
    created_at: float
    expires_at: float
    activated_at: float | None = None
    expired_at: float | None = None
    revoked_at: float | None = None
    reason: Reason | None = None

    @property
    def is_live(self) -> bool:
        """True while pending or active: the states that events can still move."""
        return self.state in LIVE_STATES


def register(
    *,
    e164: str,
    push_token: str,
    carrier: str,
    request_id: int,
    proof_id: bytes,
    now: float,
    expires_at: float,
) -> Binding:
    """The ``registered`` event: a new pending binding whose proof may be redeemed until ``expires_at``."""
    if not e164 or not push_token:
        raise InvalidBinding("a binding needs a phone number and a push token")
    if not proof_id:
        raise InvalidBinding("a binding needs the id of the proof sent for it")
    if not expires_at > now:
        raise InvalidBinding(f"a pending binding must expire after it is created ({expires_at} <= {now})")
    return Binding(
        e164=e164,
        push_token=push_token,
        carrier=carrier,
        request_id=request_id,
        proof_id=proof_id,
        state=BindingState.PENDING,
        created_at=now,
        expires_at=expires_at,
    )


def transition(binding: Binding, event: BindingEvent, now: float, *, expires_at: float | None = None) -> Binding:
    """Apply ``event`` to ``binding`` at time ``now`` and return the binding as it is afterwards.

    ``expires_at`` is the certificate's expiry and is required by ``authenticated`` (the active binding lives as
    long as its certificate); every other event refuses it, so that a caller cannot extend a binding by accident.

    Raises :class:`IllegalTransition` for a pair absent from :data:`TRANSITIONS`, :class:`BindingLapsed` or
    :class:`ExpiryNotDue` when the clock forbids the event, :class:`InvalidBinding` for a bad ``expires_at``.
    """
    rule = TRANSITIONS.get((binding.state, event))
    if rule is None:
        raise IllegalTransition(binding.state, event)
    if rule.guard is TimeGuard.BEFORE_EXPIRY and not now < binding.expires_at:
        raise BindingLapsed(binding.state, event, now, binding.expires_at)
    if rule.guard is TimeGuard.AT_OR_AFTER_EXPIRY and not now >= binding.expires_at:
        raise ExpiryNotDue(binding.state, event, now, binding.expires_at)
    new_expiry = binding.expires_at
    if event is BindingEvent.AUTHENTICATED:
        if expires_at is None or not expires_at > now:
            raise InvalidBinding(f"authentication needs a certificate expiry after {now}, got {expires_at}")
        new_expiry = expires_at
    elif expires_at is not None:
        raise InvalidBinding(f"only {BindingEvent.AUTHENTICATED} sets a new expiry, not {event}")
    # Built field by field rather than with dataclasses.replace: typed without casts, and this sits on the hot
    # path of every authentication.
    return Binding(
        e164=binding.e164,
        push_token=binding.push_token,
        carrier=binding.carrier,
        request_id=binding.request_id,
        proof_id=binding.proof_id,
        state=rule.target,
        created_at=binding.created_at,
        expires_at=new_expiry,
        activated_at=now if rule.stamp == "activated_at" else binding.activated_at,
        expired_at=now if rule.stamp == "expired_at" else binding.expired_at,
        revoked_at=now if rule.stamp == "revoked_at" else binding.revoked_at,
        reason=rule.reason,
    )


def as_of(binding: Binding, now: float) -> Binding:
    """``binding`` as it is at ``now``: a live binding whose ``expires_at`` has come is expired (stamped at its
    ``expires_at``, as the store's expiry sweep stamps it); any other binding is returned as it is."""
    if binding.state in LIVE_STATES and now >= binding.expires_at:
        return transition(binding, BindingEvent.EXPIRED, binding.expires_at)
    return binding
