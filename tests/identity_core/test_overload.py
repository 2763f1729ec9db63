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


async def test_authenticate_past_the_limit_is_refused_at_once_with_retry_after() -> None:
    service = _service(max_auth_in_flight=1)
    gate = asyncio.Event()
    real = service._authenticate

    async def slow(phone_number: object, push_token: object, signature: object) -> AuthResult | Refusal:
        await gate.wait()
        return await real(phone_number, push_token, signature)

    service._authenticate = slow  # type: ignore[method-assign]
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
    gate = asyncio.Event()
    real = service._authenticate

    async def slow(phone_number: object, push_token: object, signature: object) -> AuthResult | Refusal:
        await gate.wait()
        return await real(phone_number, push_token, signature)

    service._authenticate = slow  # type: ignore[method-assign]
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
