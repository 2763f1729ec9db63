"""MemoryStorage behaves as SqliteStorage does, side by side (a divergence shows as one parameter failing): the
behaviours test_store.py checks through the database file, here checked through the Storage interface alone, and
a random history that must end alike. (test_store.py runs its file-free cases against both stores itself.)"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from identity_core.bindings import BindingState, InvalidBinding, Reason
from identity_core.memory_store import MemoryStorage
from identity_core.store import (
    Activation,
    DuplicateProof,
    SqliteStorage,
    Storage,
    StorageClosed,
)
from tests.identity_core.conftest import assert_is_storage

T0 = 1_700_000_000.0
PROOF_TTL = 300.0
CERT_TTL = 86_400.0
NUMBER = "+15551230000"
DEVICE_A, DEVICE_B = "aa" * 32, "bb" * 32


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Storage]:
    opened: Storage = MemoryStorage() if request.param == "memory" else SqliteStorage(tmp_path / "identity.db")
    yield opened
    await opened.close()


def proof(n: int) -> bytes:
    return n.to_bytes(16, "big")


async def record(store: Storage, n: int, *, e164: str = NUMBER, token: str = DEVICE_A, now: float = T0,
                 ttl: float = PROOF_TTL, request_id: int | None = None) -> None:
    await store.record_pending(e164=e164, push_token=token, request_id=n if request_id is None else request_id,
                               carrier="carrier-a", proof_id=proof(n), expires_at=now + ttl, now=now)


async def redeem(store: Storage, n: int, *, e164: str = NUMBER, token: str = DEVICE_A, now: float = T0 + 1,
                 proof_expires_at: float = T0 + PROOF_TTL) -> Activation | None:
    return await store.authenticate(proof_id=proof(n), proof_expires_at=proof_expires_at, e164=e164,
                                    push_token=token, now=now, cert_expires_at=now + CERT_TTL)


async def states(store: Storage) -> dict[str, int]:
    return {k: v for k, v in (await store.counts()).items() if v}


def test_memory_storage_is_a_storage() -> None:
    assert_is_storage(MemoryStorage)


async def test_record_then_get(store: Storage) -> None:
    binding = await store.record_pending(e164=NUMBER, push_token=DEVICE_A, request_id=7, carrier="carrier-a",
                                         proof_id=proof(1), expires_at=T0 + PROOF_TTL, now=T0)
    assert binding.state is BindingState.PENDING
    assert (binding.request_id, binding.carrier, binding.created_at) == (7, "carrier-a", T0)
    assert await store.get(NUMBER) == binding
    assert await states(store) == {"pending": 1}


async def test_the_same_reg_req_twice_is_one_binding(store: Storage) -> None:
    await record(store, 1, request_id=5)
    await record(store, 1, request_id=5)
    with pytest.raises(DuplicateProof):
        await record(store, 1, request_id=6)
    with pytest.raises(DuplicateProof):
        await record(store, 1, request_id=5, token=DEVICE_B)
    assert await states(store) == {"pending": 1}


async def test_authenticate_activates_the_pending_binding(store: Storage) -> None:
    await record(store, 1)
    activation = await redeem(store, 1, now=T0 + 5)
    assert activation is not None
    assert activation.superseded is None
    active = activation.binding
    assert active.state is BindingState.ACTIVE
    assert (active.activated_at, active.expires_at, active.carrier) == (T0 + 5, T0 + 5 + CERT_TTL, "carrier-a")
    assert await store.get(NUMBER) == active
    assert await store.counts() == {"pending": 0, "active": 1, "expired": 0, "revoked": 0}


async def test_concurrent_redemptions_of_one_proof_have_exactly_one_winner(store: Storage) -> None:
    await record(store, 1)
    results = await asyncio.gather(*(redeem(store, 1, now=T0 + 1 + i / 100) for i in range(50)))
    assert sum(r is not None for r in results) == 1
    assert await states(store) == {"active": 1}


async def test_a_newer_device_supersedes_the_active_binding(store: Storage) -> None:
    await record(store, 1, token=DEVICE_A)
    first = await redeem(store, 1, token=DEVICE_A)
    assert first is not None
    await record(store, 2, token=DEVICE_B, now=T0 + 10)
    current = await store.get(NUMBER)
    assert current is not None
    assert (current.push_token, current.state) == (DEVICE_A, BindingState.ACTIVE)
    second = await redeem(store, 2, token=DEVICE_B, now=T0 + 11)
    assert second is not None
    assert second.binding.push_token == DEVICE_B
    old = second.superseded
    assert old is not None
    assert (old.push_token, old.state, old.reason, old.revoked_at) == (
        DEVICE_A, BindingState.REVOKED, Reason.SUPERSEDED, T0 + 11)
    assert old.activated_at == first.binding.activated_at
    assert await store.get(NUMBER) == second.binding
    assert await store.counts() == {"pending": 0, "active": 1, "expired": 0, "revoked": 1}


async def test_a_certificate_expiry_in_the_past_is_refused_and_writes_nothing(store: Storage) -> None:
    await record(store, 1)
    await redeem(store, 1)
    await record(store, 2, now=T0 + 2)
    with pytest.raises(InvalidBinding):
        await store.authenticate(proof_id=proof(2), proof_expires_at=T0 + PROOF_TTL, e164=NUMBER,
                                 push_token=DEVICE_A, now=T0 + 3, cert_expires_at=T0)
    assert await states(store) == {"active": 1, "pending": 1}  # the active one was not superseded either
    assert await redeem(store, 2, now=T0 + 4) is not None


@pytest.mark.parametrize("reason", [Reason.SIM_SWAP, Reason.PORT_OUT, Reason.RECYCLED])
async def test_a_carrier_event_revokes_active_and_pending(store: Storage, reason: Reason) -> None:
    await record(store, 1, token=DEVICE_A)
    await redeem(store, 1, token=DEVICE_A)
    await record(store, 2, token=DEVICE_B, now=T0 + 2)
    revoked = await store.revoke(NUMBER, reason, T0 + 3)
    assert revoked is not None
    assert (revoked.push_token, revoked.state, revoked.reason, revoked.revoked_at) == (
        DEVICE_A, BindingState.REVOKED, reason, T0 + 3)
    assert await store.revoke(NUMBER, reason, T0 + 4) is None
    assert await store.counts() == {"pending": 0, "active": 0, "expired": 0, "revoked": 2}
    latest = await store.get(NUMBER)
    assert latest is not None
    assert (latest.push_token, latest.reason) == (DEVICE_B, reason)


async def test_revoke_takes_carrier_reasons_only(store: Storage) -> None:
    for reason in (Reason.SUPERSEDED, Reason.DELETED, Reason.LAPSED, Reason.NOT_AUTHENTICATED):
        with pytest.raises(ValueError, match="carrier event"):
            await store.revoke(NUMBER, reason, T0)
    assert await store.revoke("+15550000000", Reason.SIM_SWAP, T0) is None


async def test_delete_revokes_with_reason_deleted(store: Storage) -> None:
    assert await store.delete(NUMBER, T0) is False
    await record(store, 1)
    await redeem(store, 1)
    assert await store.delete(NUMBER, T0 + 5) is True
    assert await store.delete(NUMBER, T0 + 6) is False
    current = await store.get(NUMBER)
    assert current is not None
    assert (current.state, current.reason, current.revoked_at) == (BindingState.REVOKED, Reason.DELETED, T0 + 5)


async def test_expire_due_ends_what_is_due_and_only_that(store: Storage) -> None:
    await record(store, 1, e164="+15550000001", ttl=100)
    await record(store, 2, e164="+15550000002", ttl=300)
    await record(store, 3, e164="+15550000003", ttl=100)
    await redeem(store, 3, e164="+15550000003", now=T0 + 1)  # active now, due at T0 + 1 + CERT_TTL
    assert await store.expire_due(T0 + 99) == 0
    assert await store.expire_due(T0 + 100) == 1
    first = await store.get("+15550000001")
    assert first is not None
    assert (first.state, first.reason) == (BindingState.EXPIRED, Reason.NOT_AUTHENTICATED)
    assert await store.expire_due(T0 + 100) == 0
    assert await store.expire_due(T0 + 1 + CERT_TTL) == 2
    lapsed = await store.get("+15550000003")
    assert lapsed is not None
    assert (lapsed.state, lapsed.reason, lapsed.expired_at) == (BindingState.EXPIRED, Reason.LAPSED, T0 + 1 + CERT_TTL)
    assert await store.counts() == {"pending": 0, "active": 0, "expired": 3, "revoked": 0}


async def test_closed_refuses_everything(store: Storage) -> None:
    await record(store, 1)
    await store.close()
    with pytest.raises(StorageClosed):
        await record(store, 2)
    with pytest.raises(StorageClosed):
        await store.get(NUMBER)
    await store.close()  # idempotent


async def test_a_random_history_ends_alike_in_both_stores(tmp_path: Path) -> None:
    """The same random sequence of operations, applied to both stores, gets the same answers and state."""
    memory = MemoryStorage()
    async with SqliteStorage(tmp_path / "twin.db") as sqlite:
        rng = random.Random(7)
        seen: set[str] = set()
        for step in range(1000):
            n = step - rng.randrange(min(step, 15) + 1)  # a proof of the last few steps
            # Proof n belongs to one number and device; now and then another number or device presents it.
            e164 = f"+1555000{(n + (rng.random() < 0.1)) % 12:04d}"
            token = f"{(n + (rng.random() < 0.1)) % 2:064x}"
            now = T0 + step
            ttl = rng.choice([5.0, 50.0, 500.0])
            op = rng.choices(["record", "redeem", "revoke", "delete", "expire"], [4, 5, 0.5, 0.5, 1])[0]
            answers: list[object] = []
            for store in (memory, sqlite):
                try:
                    if op == "record":
                        answers.append(await store.record_pending(
                            e164=e164, push_token=token, request_id=n, carrier="c", proof_id=proof(n),
                            expires_at=now + ttl, now=now))
                    elif op == "redeem":
                        answers.append(await store.authenticate(
                            proof_id=proof(n), proof_expires_at=now + 10, e164=e164, push_token=token, now=now,
                            cert_expires_at=now + 30))
                    elif op == "revoke":
                        answers.append(await store.revoke(e164, Reason.SIM_SWAP, now))
                    elif op == "delete":
                        answers.append(await store.delete(e164, now))
                    else:
                        answers.append(await store.expire_due(now))
                except Exception as err:  # the two stores must fail alike, whatever the error
                    answers.append(type(err).__name__)
            assert answers[0] == answers[1], (step, op)
            assert await memory.get(e164) == await sqlite.get(e164)
            seen.add(f"{op}:{answers[0] if isinstance(answers[0], str) else type(answers[0]).__name__}")
        assert await memory.counts() == await sqlite.counts()
        # The history went through the interesting paths, not only the easy ones.
        assert {"redeem:Activation", "redeem:NoneType", "redeem:ProofMismatch", "redeem:BindingNotPending",
                "redeem:BindingLapsed", "redeem:UnknownProof", "record:DuplicateProof", "revoke:Binding"} <= seen
