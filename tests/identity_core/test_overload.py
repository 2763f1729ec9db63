"""Overload: the service refuses early and cheaply instead of queueing work no client will wait for."""

from __future__ import annotations

import asyncio

import pytest

from identity_core.certificates import CertificateIssuer, SigningKey
from identity_core.limits import VelocityLimiter, VelocityLimits
from identity_core.memory_store import MemoryStorage
from identity_core.proofs import ProofSigner
from identity_core.refusals import Refusal, RefusalReason
from identity_core.service import AuthResult, IdentityService

NUMBER = "+447700900123"
TOKEN = "ab" * 32


def _service(max_auth_in_flight: int = 2048, auth_first: int = 64) -> IdentityService:
    return IdentityService(
        MemoryStorage(),
        ProofSigner(b"k" * 32, 600.0),
        CertificateIssuer([SigningKey.generate()]),
        VelocityLimiter(VelocityLimits()),
        max_auth_in_flight=max_auth_in_flight,
        auth_first=auth_first,
    )


def _shed(service: IdentityService, stage: str, cause: str) -> float:
    value = service.registry.get_sample_value("identity_shed_total", {"stage": stage, "cause": cause})
    return value or 0.0


def _hold_authenticate(service: IdentityService) -> asyncio.Event:
    """Make authenticate calls wait, in progress, until the returned event is set; then they run as usual."""
    gate = asyncio.Event()
    real = service._authenticate

    async def slow(phone_number: object, push_token: object, signature: object) -> AuthResult | Refusal:
        await gate.wait()
        return await real(phone_number, push_token, signature)

    service._authenticate = slow  # type: ignore[method-assign]
    return gate


async def test_authenticate_past_the_limit_is_refused_at_once_with_retry_after() -> None:
    service = _service(max_auth_in_flight=1)
    gate = _hold_authenticate(service)
    first = asyncio.create_task(service.authenticate(NUMBER, TOKEN, "00"))
    await asyncio.sleep(0)
    refused = await service.authenticate(NUMBER, TOKEN, "00")
    assert isinstance(refused, Refusal)
    assert refused.reason is RefusalReason.UNAVAILABLE
    assert refused.reason.http_status == 503
    assert refused.retry_after_header() == "1"
    assert _shed(service, "auth", "busy") == 1
    gate.set()
    answered = await first
    # The call that was let in runs as usual (here: a proof that is not valid, refused for that reason).
    assert isinstance(answered, Refusal)
    assert answered.reason is not RefusalReason.UNAVAILABLE
    # Once it is done, the next call is let in again.
    again = await service.authenticate(NUMBER, TOKEN, "00")
    assert isinstance(again, Refusal)
    assert again.reason is not RefusalReason.UNAVAILABLE
    assert _shed(service, "auth", "busy") == 1


async def test_new_mos_wait_while_authenticate_calls_are_backed_up() -> None:
    service = _service(auth_first=2)
    gate = _hold_authenticate(service)
    first = asyncio.create_task(service.authenticate(NUMBER, TOKEN, "00"))
    await asyncio.sleep(0)
    # One call in progress, below auth_first: MOs pass at once.
    await asyncio.wait_for(service.mo_admission(), 1.0)
    second = asyncio.create_task(service.authenticate(NUMBER, TOKEN, "00"))
    await asyncio.sleep(0)
    held = asyncio.create_task(service.mo_admission())
    await asyncio.sleep(0.05)
    assert not held.done()
    assert service.registry.get_sample_value("identity_mo_deferred_total") == 1
    gate.set()
    await asyncio.wait_for(held, 1.0)
    for call in (first, second):
        answered = await call
        assert isinstance(answered, Refusal)
        assert answered.reason is not RefusalReason.UNAVAILABLE
    # Nothing in progress: open again, and nothing more was deferred.
    await asyncio.wait_for(service.mo_admission(), 1.0)
    assert service.registry.get_sample_value("identity_mo_deferred_total") == 1


def test_auth_first_must_be_positive() -> None:
    with pytest.raises(ValueError, match="auth_first"):
        _service(auth_first=0)


async def test_the_gate_reopens_when_an_authenticate_call_fails() -> None:
    service = _service(auth_first=1)

    async def broken(phone_number: object, push_token: object, signature: object) -> AuthResult | Refusal:
        await asyncio.sleep(0.05)
        raise RuntimeError("store gone")

    service._authenticate = broken  # type: ignore[method-assign]
    call = asyncio.create_task(service.authenticate(NUMBER, TOKEN, "00"))
    await asyncio.sleep(0)
    held = asyncio.create_task(service.mo_admission())
    await asyncio.sleep(0.01)
    assert not held.done()
    with pytest.raises(RuntimeError):
        await call
    await asyncio.wait_for(held, 1.0)  # the failed call no longer counts


async def test_auth_first_above_the_in_flight_limit_never_holds_an_mo() -> None:
    service = _service(max_auth_in_flight=2, auth_first=3)
    gate = _hold_authenticate(service)
    calls = [asyncio.create_task(service.authenticate(NUMBER, TOKEN, "00")) for _ in range(2)]
    await asyncio.sleep(0)
    refused = await service.authenticate(NUMBER, TOKEN, "00")  # the third is refused, so never in progress
    assert isinstance(refused, Refusal)
    assert refused.reason is RefusalReason.UNAVAILABLE
    await asyncio.wait_for(service.mo_admission(), 1.0)
    gate.set()
    await asyncio.gather(*calls)


async def test_release_held_mos_lets_the_held_ones_go_and_holds_no_more() -> None:
    service = _service(auth_first=1)
    gate = _hold_authenticate(service)
    call = asyncio.create_task(service.authenticate(NUMBER, TOKEN, "00"))
    await asyncio.sleep(0)
    held = asyncio.create_task(service.mo_admission())
    await asyncio.sleep(0.01)
    assert not held.done()
    service.release_held_mos()  # shutting down, the authenticate call still in progress
    await asyncio.wait_for(held, 1.0)
    await asyncio.wait_for(service.mo_admission(), 1.0)
    gate.set()
    await call
