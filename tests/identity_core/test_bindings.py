"""The binding state machine: every (state, event) pair, the time guards, and sequences drawn by Hypothesis."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from identity_core.bindings import (
    LIVE_STATES,
    TERMINAL_STATES,
    TRANSITIONS,
    Binding,
    BindingEvent,
    BindingLapsed,
    BindingState,
    ExpiryNotDue,
    IllegalTransition,
    InvalidBinding,
    Reason,
    TransitionError,
    as_of,
    register,
    transition,
)

P, A, E, R = BindingState.PENDING, BindingState.ACTIVE, BindingState.EXPIRED, BindingState.REVOKED
Ev = BindingEvent

# Written out again here, independently of TRANSITIONS, so that a slip in the module's table shows up as a
# disagreement rather than being copied into the test. (state, event) -> (target, timestamp set, reason).
EXPECTED: dict[tuple[BindingState, BindingEvent], tuple[BindingState, str, Reason | None]] = {
    (P, Ev.AUTHENTICATED): (A, "activated_at", None),
    (P, Ev.EXPIRED): (E, "expired_at", Reason.NOT_AUTHENTICATED),
    (P, Ev.REVOKED_SIM_SWAP): (R, "revoked_at", Reason.SIM_SWAP),
    (P, Ev.REVOKED_PORT_OUT): (R, "revoked_at", Reason.PORT_OUT),
    (P, Ev.REVOKED_RECYCLED): (R, "revoked_at", Reason.RECYCLED),
    (P, Ev.DELETED): (R, "revoked_at", Reason.DELETED),
    (A, Ev.SUPERSEDED): (R, "revoked_at", Reason.SUPERSEDED),
    (A, Ev.EXPIRED): (E, "expired_at", Reason.LAPSED),
    (A, Ev.REVOKED_SIM_SWAP): (R, "revoked_at", Reason.SIM_SWAP),
    (A, Ev.REVOKED_PORT_OUT): (R, "revoked_at", Reason.PORT_OUT),
    (A, Ev.REVOKED_RECYCLED): (R, "revoked_at", Reason.RECYCLED),
    (A, Ev.DELETED): (R, "revoked_at", Reason.DELETED),
}
STAMPS = ("activated_at", "expired_at", "revoked_at")
CREATED, PROOF_EXPIRY, CERT_EXPIRY = 1000.0, 1300.0, 90_000.0


def pending(**changes: object) -> Binding:
    binding = register(
        e164="+15551234567",
        push_token="ab" * 32,
        carrier="carrier-a",
        request_id=42,
        proof_id=b"\x01" * 16,
        now=CREATED,
        expires_at=PROOF_EXPIRY,
    )
    return dataclasses.replace(binding, **changes)  # type: ignore[arg-type]


def in_state(state: BindingState) -> Binding:
    """A binding as the machine would have left it in ``state``."""
    base = pending()
    if state is P:
        return base
    active = transition(base, Ev.AUTHENTICATED, CREATED + 10, expires_at=CERT_EXPIRY)
    if state is A:
        return active
    if state is E:
        return transition(active, Ev.EXPIRED, CERT_EXPIRY)
    return transition(active, Ev.REVOKED_SIM_SWAP, CREATED + 20)


def legal_now(binding: Binding, event: BindingEvent) -> float:
    """A time at which the event's time guard, if any, is satisfied."""
    return binding.expires_at + 5 if event is Ev.EXPIRED else binding.expires_at - 5


def test_the_table_is_exactly_the_expected_one() -> None:
    assert {pair: (r.target, r.stamp, r.reason) for pair, r in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize(("state", "event"), list(itertools.product(BindingState, BindingEvent)))
def test_every_state_and_event(state: BindingState, event: BindingEvent) -> None:
    before = in_state(state)
    now = legal_now(before, event)
    expires_at = CERT_EXPIRY + 1 if event is Ev.AUTHENTICATED else None
    expected = EXPECTED.get((state, event))
    if expected is None:
        with pytest.raises(IllegalTransition) as caught:
            transition(before, event, now, expires_at=expires_at)
        assert (caught.value.state, caught.value.event) == (state, event)
        return
    target, stamp, reason = expected
    after = transition(before, event, now, expires_at=expires_at)
    assert after.state is target
    assert after.reason == reason
    assert getattr(after, stamp) == now
    for other in STAMPS:
        if other != stamp:
            assert getattr(after, other) == getattr(before, other), other
    assert after.expires_at == (CERT_EXPIRY + 1 if event is Ev.AUTHENTICATED else before.expires_at)
    identity = ("e164", "push_token", "carrier", "request_id", "proof_id", "created_at")
    assert [getattr(after, f) for f in identity] == [getattr(before, f) for f in identity]
    assert before.state is state  # the input is untouched: bindings are values


@pytest.mark.parametrize("event", list(BindingEvent))
def test_terminal_states_take_no_event(event: BindingEvent) -> None:
    for state in TERMINAL_STATES:
        with pytest.raises(IllegalTransition):
            transition(in_state(state), event, legal_now(in_state(state), event))


def test_registered_is_never_a_transition() -> None:
    for state in BindingState:
        with pytest.raises(IllegalTransition):
            transition(in_state(state), Ev.REGISTERED, CREATED + 1)


def test_authentication_at_or_after_the_proof_expiry_is_refused() -> None:
    for late in (PROOF_EXPIRY, PROOF_EXPIRY + 1):
        with pytest.raises(BindingLapsed) as caught:
            transition(pending(), Ev.AUTHENTICATED, late, expires_at=CERT_EXPIRY)
        assert caught.value.expires_at == PROOF_EXPIRY
    just_in_time = transition(pending(), Ev.AUTHENTICATED, PROOF_EXPIRY - 0.001, expires_at=CERT_EXPIRY)
    assert just_in_time.state is A


@pytest.mark.parametrize("state", [P, A])
def test_expiry_before_it_is_due_is_refused(state: BindingState) -> None:
    binding = in_state(state)
    with pytest.raises(ExpiryNotDue):
        transition(binding, Ev.EXPIRED, binding.expires_at - 0.001)
    assert transition(binding, Ev.EXPIRED, binding.expires_at).state is E  # due exactly at expires_at


def test_authentication_needs_a_certificate_expiry_in_the_future() -> None:
    with pytest.raises(InvalidBinding):
        transition(pending(), Ev.AUTHENTICATED, CREATED + 1)
    with pytest.raises(InvalidBinding):
        transition(pending(), Ev.AUTHENTICATED, CREATED + 1, expires_at=CREATED + 1)


def test_only_authentication_sets_an_expiry() -> None:
    with pytest.raises(InvalidBinding):
        transition(in_state(A), Ev.SUPERSEDED, CREATED + 30, expires_at=CERT_EXPIRY * 2)


@pytest.mark.parametrize(
    "changes",
    [{"e164": ""}, {"push_token": ""}, {"proof_id": b""}, {"expires_at": CREATED}, {"expires_at": CREATED - 1}],
)
def test_register_refuses_nonsense(changes: dict[str, object]) -> None:
    arguments: dict[str, object] = {
        "e164": "+15551234567",
        "push_token": "ab" * 32,
        "carrier": "c",
        "request_id": 1,
        "proof_id": b"\x01",
        "now": CREATED,
        "expires_at": PROOF_EXPIRY,
    }
    with pytest.raises(InvalidBinding):
        register(**{**arguments, **changes})  # type: ignore[arg-type]


def test_register_makes_a_pending_binding() -> None:
    binding = pending()
    assert binding.state is P
    assert binding.is_live
    assert (binding.created_at, binding.expires_at) == (CREATED, PROOF_EXPIRY)
    assert (binding.activated_at, binding.expired_at, binding.revoked_at, binding.reason) == (None,) * 4


def test_bindings_and_the_table_cannot_be_changed() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        pending().state = A  # type: ignore[misc]
    with pytest.raises(TypeError):
        TRANSITIONS[(E, Ev.AUTHENTICATED)] = TRANSITIONS[(P, Ev.AUTHENTICATED)]  # type: ignore[index]


def test_errors_are_typed_and_say_what_happened() -> None:
    error = IllegalTransition(R, Ev.AUTHENTICATED)
    assert isinstance(error, TransitionError)
    assert "revoked" in str(error)
    assert "authenticated" in str(error)


@given(
    steps=st.lists(
        st.tuples(st.sampled_from(list(BindingEvent)), st.floats(min_value=0, max_value=500_000)), max_size=12
    )
)
def test_any_sequence_of_events_keeps_the_invariants(steps: list[tuple[BindingEvent, float]]) -> None:
    binding = pending()
    now = CREATED
    was_active = False
    for event, dt in steps:
        now += dt
        cert = now + 86_400 if event is Ev.AUTHENTICATED else None
        try:
            after = transition(binding, event, now, expires_at=cert)
        except (TransitionError, InvalidBinding):
            # A refused event is refused whatever the time, or only because of the time guard: never otherwise.
            assert (binding.state, event) not in TRANSITIONS or event in (Ev.AUTHENTICATED, Ev.EXPIRED)
            continue
        assert binding.state in LIVE_STATES  # nothing leaves a terminal state
        was_active = was_active or after.state is A
        binding = after
        assert (binding.activated_at is not None) == was_active
        assert (binding.revoked_at is not None) == (binding.state is R)
        assert (binding.expired_at is not None) == (binding.state is E)
        assert (binding.reason is None) == (binding.state in LIVE_STATES)
        assert (binding.e164, binding.push_token, binding.created_at) == ("+15551234567", "ab" * 32, CREATED)


def test_as_of_expires_a_live_binding_whose_time_came_stamped_when_it_ran_out() -> None:
    assert as_of(pending(), PROOF_EXPIRY - 1) == pending()
    lapsed = as_of(pending(), PROOF_EXPIRY + 500)
    assert (lapsed.state, lapsed.reason, lapsed.expired_at) == (E, Reason.NOT_AUTHENTICATED, PROOF_EXPIRY)
    active = in_state(A)
    assert as_of(active, active.expires_at - 1) == active
    ended = as_of(active, active.expires_at)
    assert (ended.state, ended.reason, ended.expired_at) == (E, Reason.LAPSED, active.expires_at)
    revoked = in_state(R)
    assert as_of(revoked, revoked.expires_at + 10**6) == revoked  # terminal states stay as they are
