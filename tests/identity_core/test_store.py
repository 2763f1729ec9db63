"""SqliteStorage: every method, single use of proofs, supersede, revoke, expiry, reopening, backpressure, and
``kill -9`` in the middle of a burst losing nothing that was acknowledged."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from identity_core.bindings import BindingLapsed, BindingState, InvalidBinding, Reason, as_of
from identity_core.memory_store import MemoryStorage
from identity_core.store import (
    SCHEMA_VERSION,
    Activation,
    BindingNotPending,
    DuplicateProof,
    ProofExpired,
    ProofMismatch,
    ProofSuperseded,
    SchemaVersionError,
    SqliteStorage,
    Storage,
    StorageClosed,
    StorageUnavailable,
    UnknownProof,
    WrongEventLoop,
)
from tests.identity_core.conftest import assert_is_storage

T0 = 1_700_000_000.0
PROOF_TTL = 300.0
CERT_TTL = 86_400.0
NUMBER = "+15551230000"
DEVICE_A, DEVICE_B = "aa" * 32, "bb" * 32


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "identity.db"


@pytest.fixture
async def store(request: pytest.FixtureRequest, db: Path) -> AsyncIterator[Storage]:
    # SQLite unless a test asks for both (``BOTH_STORES``): the behaviours that do not read the file must hold for
    # identity_core.memory_store.MemoryStorage too.
    opened: Storage = MemoryStorage() if getattr(request, "param", "sqlite") == "memory" else SqliteStorage(db)
    yield opened
    await opened.close()


BOTH_STORES = pytest.mark.parametrize("store", ["sqlite", "memory"], indirect=True)


def proof(n: int) -> bytes:
    return n.to_bytes(16, "big")


async def record(
    store: SqliteStorage,
    n: int,
    *,
    e164: str = NUMBER,
    token: str = DEVICE_A,
    now: float = T0,
    ttl: float = PROOF_TTL,
    request_id: int | None = None,
) -> None:
    await store.record_pending(
        e164=e164,
        push_token=token,
        request_id=n if request_id is None else request_id,
        carrier="carrier-a",
        proof_id=proof(n),
        expires_at=now + ttl,
        now=now,
    )


async def redeem(
    store: SqliteStorage,
    n: int,
    *,
    e164: str = NUMBER,
    token: str = DEVICE_A,
    now: float = T0 + 1,
    proof_expires_at: float = T0 + PROOF_TTL,
) -> Activation | None:
    return await store.authenticate(
        proof_id=proof(n),
        proof_expires_at=proof_expires_at,
        e164=e164,
        push_token=token,
        now=now,
        cert_expires_at=now + CERT_TTL,
    )


def rows(db: Path, where: str = "1", *args: object) -> list[tuple[object, ...]]:
    """What is on disk, read through a connection of its own (not the store's)."""
    with sqlite3.connect(db) as conn:
        return conn.execute(
            f"SELECT e164, push_token, state, reason FROM bindings WHERE {where} ORDER BY id", args
        ).fetchall()


def test_sqlite_storage_is_a_storage() -> None:
    assert_is_storage(SqliteStorage)


# ---------------------------------------------------------------------------------------------- recording


async def test_record_pending_is_durable_when_it_returns(store: SqliteStorage, db: Path) -> None:
    binding = await store.record_pending(
        e164=NUMBER,
        push_token=DEVICE_A,
        request_id=7,
        carrier="carrier-a",
        proof_id=proof(1),
        expires_at=T0 + PROOF_TTL,
        now=T0,
    )
    assert binding.state is BindingState.PENDING
    assert (binding.request_id, binding.carrier, binding.created_at) == (7, "carrier-a", T0)
    assert rows(db) == [(NUMBER, DEVICE_A, "pending", None)]  # committed: another connection sees it
    assert await store.get(NUMBER) == binding
    assert (await store.counts())["pending"] == 1


async def test_the_same_reg_req_twice_is_one_binding(store: SqliteStorage, db: Path) -> None:
    await record(store, 1, request_id=5)
    await record(store, 1, request_id=5)  # a carrier delivering the MO twice makes the same proof
    assert len(rows(db)) == 1
    with pytest.raises(DuplicateProof):
        await record(store, 1, request_id=6)
    with pytest.raises(DuplicateProof):
        await record(store, 1, request_id=5, token=DEVICE_B)
    assert (await store.counts())["pending"] == 1


@BOTH_STORES
async def test_record_pending_refuses_an_expiry_that_is_not_in_the_future(store: Storage) -> None:
    with pytest.raises(InvalidBinding):
        await record(store, 1, ttl=0)
    assert await store.get(NUMBER) is None


# --------------------------------------------------------------------------------------------- authenticate


async def test_authenticate_activates_the_pending_binding(store: SqliteStorage, db: Path) -> None:
    await record(store, 1)
    activation = await redeem(store, 1, now=T0 + 5)
    assert activation is not None
    assert activation.superseded is None
    active = activation.binding
    assert active.state is BindingState.ACTIVE
    assert (active.activated_at, active.expires_at, active.carrier) == (T0 + 5, T0 + 5 + CERT_TTL, "carrier-a")
    assert await store.get(NUMBER) == active
    assert rows(db) == [(NUMBER, DEVICE_A, "active", None)]
    assert await store.counts() == {"pending": 0, "active": 1, "expired": 0, "revoked": 0}


@BOTH_STORES
async def test_a_proof_is_redeemed_once(store: Storage) -> None:
    await record(store, 1)
    assert await redeem(store, 1) is not None
    assert await redeem(store, 1, now=T0 + 2) is None
    # Even after the binding has ended, the proof stays spent.
    await store.revoke(NUMBER, Reason.SIM_SWAP, T0 + 3)
    assert await redeem(store, 1, now=T0 + 4) is None


async def test_concurrent_redemptions_of_one_proof_have_exactly_one_winner(store: SqliteStorage, db: Path) -> None:
    await record(store, 1)
    results = await asyncio.gather(*(redeem(store, 1, now=T0 + 1 + i / 100) for i in range(50)))
    winners = [r for r in results if r is not None]
    assert len(winners) == 1
    assert results.count(None) == 49
    assert rows(db) == [(NUMBER, DEVICE_A, "active", None)]


async def test_concurrent_redemptions_across_many_transactions(db: Path) -> None:
    # max_batch=1: every redemption is a transaction of its own, so the race is decided by committed state.
    async with SqliteStorage(db, max_batch=1) as store:
        await record(store, 1)
        results = await asyncio.gather(*(redeem(store, 1) for _ in range(20)))
        assert sum(r is not None for r in results) == 1


async def test_a_newer_device_supersedes_the_active_binding(store: SqliteStorage, db: Path) -> None:
    await record(store, 1, token=DEVICE_A)
    first = await redeem(store, 1, token=DEVICE_A)
    assert first is not None
    await record(store, 2, token=DEVICE_B, now=T0 + 10)
    # A pending registration from another device changes nothing yet: anyone can ask, only the SIM can redeem.
    current = await store.get(NUMBER)
    assert current is not None
    assert (current.push_token, current.state) == (DEVICE_A, BindingState.ACTIVE)
    second = await redeem(store, 2, token=DEVICE_B, now=T0 + 11)
    assert second is not None
    assert second.binding.push_token == DEVICE_B
    assert second.superseded is not None
    old = second.superseded
    assert (old.push_token, old.state, old.reason, old.revoked_at) == (
        DEVICE_A,
        BindingState.REVOKED,
        Reason.SUPERSEDED,
        T0 + 11,
    )
    assert old.activated_at == first.binding.activated_at
    assert rows(db) == [(NUMBER, DEVICE_A, "revoked", "superseded"), (NUMBER, DEVICE_B, "active", None)]
    assert await store.get(NUMBER) == second.binding
    assert await store.counts() == {"pending": 0, "active": 1, "expired": 0, "revoked": 1}


async def test_the_same_device_registering_again_supersedes_its_own_binding(store: SqliteStorage) -> None:
    await record(store, 1)
    await redeem(store, 1)
    await record(store, 2, now=T0 + 5)
    again = await redeem(store, 2, now=T0 + 6)
    assert again is not None
    assert again.superseded is not None
    assert again.superseded.proof_id == proof(1)
    assert await store.counts() == {"pending": 0, "active": 1, "expired": 0, "revoked": 1}


@BOTH_STORES
async def test_an_older_registration_redeemed_late_does_not_undo_a_newer_one(store: Storage) -> None:
    await record(store, 1, token=DEVICE_A, now=T0)  # device A asks first...
    await record(store, 2, token=DEVICE_B, now=T0 + 100)  # ...device B after it, and redeems first
    newer = await redeem(store, 2, token=DEVICE_B, now=T0 + 110, proof_expires_at=T0 + 100 + PROOF_TTL)
    assert newer is not None
    with pytest.raises(ProofSuperseded):
        await redeem(store, 1, token=DEVICE_A, now=T0 + 200)
    current = await store.get(NUMBER)
    assert current == newer.binding
    assert await store.counts() == {"pending": 1, "active": 1, "expired": 0, "revoked": 0}  # nothing written
    # The older proof is spent by nothing: it stays refused, and lapses with its proof.
    with pytest.raises(ProofSuperseded):
        await redeem(store, 1, token=DEVICE_A, now=T0 + 201)
    assert await store.expire_due(T0 + PROOF_TTL) == 1
    with pytest.raises(BindingNotPending):  # even with a proof that claims to be good still
        await redeem(store, 1, token=DEVICE_A, now=T0 + 250)


@BOTH_STORES
@pytest.mark.parametrize("swept", [False, True])
async def test_an_older_proof_after_the_newer_binding_lapsed_does_not_depend_on_the_sweep(
    store: Storage, swept: bool
) -> None:
    # certificate_validity < proof_validity: the newer binding lapses while the older proof is still good. It
    # was refused ProofSuperseded before the expiry sweep wrote the lapse and accepted after it.
    await record(store, 1, token=DEVICE_A, now=T0, ttl=600)
    await record(store, 2, token=DEVICE_B, now=T0 + 1, ttl=600)
    newer = await store.authenticate(proof_id=proof(2), proof_expires_at=T0 + 601, e164=NUMBER, push_token=DEVICE_B,
                                     now=T0 + 2, cert_expires_at=T0 + 100)
    assert newer is not None
    if swept:
        assert await store.expire_due(T0 + 200) == 1
    older = await store.authenticate(proof_id=proof(1), proof_expires_at=T0 + 600, e164=NUMBER, push_token=DEVICE_A,
                                     now=T0 + 200, cert_expires_at=T0 + 4000)
    assert older is not None
    assert older.superseded is None  # the newer one lapsed; nothing was superseded
    assert (older.binding.push_token, older.binding.state) == (DEVICE_A, BindingState.ACTIVE)
    assert await store.counts() == {"pending": 0, "active": 1, "expired": 1, "revoked": 0}


@BOTH_STORES
async def test_numbers_are_independent(store: Storage) -> None:
    await record(store, 1, e164="+15550000001")
    await record(store, 2, e164="+15550000002")
    a = await redeem(store, 1, e164="+15550000001")
    b = await redeem(store, 2, e164="+15550000002")
    assert a is not None
    assert b is not None
    assert (a.superseded, b.superseded) == (None, None)
    assert (await store.counts())["active"] == 2


@BOTH_STORES
async def test_an_expired_proof_is_refused_and_changes_nothing(store: Storage) -> None:
    await record(store, 1)
    with pytest.raises(ProofExpired):
        await redeem(store, 1, now=T0 + PROOF_TTL)
    binding = await store.get(NUMBER)
    assert binding is not None
    assert binding.state is BindingState.PENDING


@BOTH_STORES
async def test_a_proof_nobody_recorded_is_unknown(store: Storage) -> None:
    with pytest.raises(UnknownProof):
        await redeem(store, 99)


@BOTH_STORES
@pytest.mark.parametrize(("e164", "token"), [("+15559999999", DEVICE_A), (NUMBER, DEVICE_B)])
async def test_a_proof_for_another_number_or_device_is_refused(store: Storage, e164: str, token: str) -> None:
    await record(store, 1)
    with pytest.raises(ProofMismatch):
        await redeem(store, 1, e164=e164, token=token)
    # Nothing was written: the rightful phone can still redeem its proof.
    assert await redeem(store, 1) is not None


@BOTH_STORES
async def test_a_sim_swap_while_pending_kills_the_proof(store: Storage) -> None:
    await record(store, 1)
    await store.revoke(NUMBER, Reason.SIM_SWAP, T0 + 1)
    with pytest.raises(BindingNotPending) as caught:
        await redeem(store, 1, now=T0 + 2)
    assert caught.value.binding.reason is Reason.SIM_SWAP


@BOTH_STORES
async def test_a_revocation_with_a_cut_off_leaves_bindings_recorded_after_it(store: Storage) -> None:
    # What a risk check's swap revokes: the bindings that existed when the carrier was asked, not a registration
    # that arrived while it answered.
    await record(store, 1)
    assert await redeem(store, 1) is not None
    await record(store, 2, token=DEVICE_B, now=T0 + 5)
    await record(store, 3, token=DEVICE_B, now=T0 + 10)
    revoked = await store.revoke(NUMBER, Reason.SIM_SWAP, T0 + 12, recorded_by=T0 + 5)
    assert revoked is not None
    assert (revoked.proof_id, revoked.state, revoked.reason) == (proof(1), BindingState.REVOKED, Reason.SIM_SWAP)
    states = [await store.get_by_proof(proof(n)) for n in (1, 2, 3)]
    assert [(b.state, b.reason) for b in states if b is not None] == [
        (BindingState.REVOKED, Reason.SIM_SWAP), (BindingState.REVOKED, Reason.SIM_SWAP), (BindingState.PENDING, None)]


@BOTH_STORES
async def test_the_recorded_expiry_wins_over_the_presented_one(store: Storage) -> None:
    await record(store, 1, ttl=10)
    with pytest.raises(BindingLapsed):
        await redeem(store, 1, now=T0 + 20, proof_expires_at=T0 + 1000)


async def test_a_certificate_expiry_in_the_past_is_refused(store: SqliteStorage) -> None:
    await record(store, 1)
    with pytest.raises(InvalidBinding):
        await store.authenticate(
            proof_id=proof(1),
            proof_expires_at=T0 + PROOF_TTL,
            e164=NUMBER,
            push_token=DEVICE_A,
            now=T0 + 1,
            cert_expires_at=T0,
        )
    assert await redeem(store, 1) is not None


# ------------------------------------------------------------------------------------------ revoke, delete


@pytest.mark.parametrize("reason", [Reason.SIM_SWAP, Reason.PORT_OUT, Reason.RECYCLED])
async def test_a_carrier_event_revokes_active_and_pending(store: SqliteStorage, db: Path, reason: Reason) -> None:
    await record(store, 1, token=DEVICE_A)
    await redeem(store, 1, token=DEVICE_A)
    await record(store, 2, token=DEVICE_B, now=T0 + 2)
    revoked = await store.revoke(NUMBER, reason, T0 + 3)
    assert revoked is not None
    assert (revoked.push_token, revoked.state, revoked.reason, revoked.revoked_at) == (
        DEVICE_A,
        BindingState.REVOKED,
        reason,
        T0 + 3,
    )
    assert rows(db) == [(NUMBER, DEVICE_A, "revoked", reason.value), (NUMBER, DEVICE_B, "revoked", reason.value)]
    assert await store.revoke(NUMBER, reason, T0 + 4) is None  # nothing live any more
    assert await store.counts() == {"pending": 0, "active": 0, "expired": 0, "revoked": 2}


@BOTH_STORES
async def test_revoking_a_pending_only_number_returns_the_pending_binding(store: Storage) -> None:
    await record(store, 1)
    revoked = await store.revoke(NUMBER, Reason.PORT_OUT, T0 + 1)
    assert revoked is not None
    assert (revoked.state, revoked.activated_at) == (BindingState.REVOKED, None)


async def test_revoke_takes_carrier_reasons_only(store: SqliteStorage) -> None:
    for reason in (Reason.SUPERSEDED, Reason.DELETED, Reason.LAPSED, Reason.NOT_AUTHENTICATED):
        with pytest.raises(ValueError, match="carrier event"):
            await store.revoke(NUMBER, reason, T0)


async def test_revoking_an_unknown_number_is_none(store: SqliteStorage) -> None:
    assert await store.revoke("+15550000000", Reason.SIM_SWAP, T0) is None


async def test_delete_revokes_with_reason_deleted(store: SqliteStorage, db: Path) -> None:
    assert await store.delete(NUMBER, T0) is False
    await record(store, 1)
    await redeem(store, 1)
    assert await store.delete(NUMBER, T0 + 5) is True
    assert await store.delete(NUMBER, T0 + 6) is False
    current = await store.get(NUMBER)
    assert current is not None
    assert (current.state, current.reason, current.revoked_at) == (BindingState.REVOKED, Reason.DELETED, T0 + 5)
    assert rows(db) == [(NUMBER, DEVICE_A, "revoked", "deleted")]


# ------------------------------------------------------------------------------------------------- expiry


async def test_expire_due_ends_what_is_due_and_only_that(store: SqliteStorage, db: Path) -> None:
    await record(store, 1, e164="+15550000001", ttl=100)  # stays pending, due at T0 + 100
    await record(store, 2, e164="+15550000002", ttl=300)  # stays pending, due at T0 + 300
    await record(store, 3, e164="+15550000003", ttl=100)
    await redeem(store, 3, e164="+15550000003", now=T0 + 1)  # active, due at T0 + 1 + CERT_TTL
    assert await store.expire_due(T0 + 99) == 0
    assert await store.expire_due(T0 + 100) == 1
    assert rows(db, "e164 = ?", "+15550000001") == [("+15550000001", DEVICE_A, "expired", "not_authenticated")]
    assert await store.expire_due(T0 + 100) == 0  # idempotent
    assert await store.expire_due(T0 + 1 + CERT_TTL) == 2
    lapsed = await store.get("+15550000003")
    assert lapsed is not None
    assert (lapsed.state, lapsed.reason, lapsed.expired_at) == (BindingState.EXPIRED, Reason.LAPSED, T0 + 1 + CERT_TTL)
    assert await store.counts() == {"pending": 0, "active": 0, "expired": 3, "revoked": 0}


@BOTH_STORES
async def test_a_late_sweep_stamps_when_the_binding_ran_out_as_reads_between_sweeps_do(store: Storage) -> None:
    await record(store, 1, ttl=100)
    before = await store.get(NUMBER)
    assert before is not None
    assert await store.expire_due(T0 + 160) == 1  # the sweep came a minute late
    after = await store.get(NUMBER)
    assert after is not None
    assert after.expired_at == T0 + 100
    assert after == as_of(before, T0 + 130)


@BOTH_STORES
@pytest.mark.parametrize("act", ["delete", "revoke"])
async def test_a_binding_that_ran_out_is_not_live_before_the_sweep_either(store: Storage, act: str) -> None:
    # Active until T0 + 1 + CERT_TTL; asked after that, before any sweep: nothing live to end, and the binding
    # stays expired (lapsed), as it is after a sweep.
    await record(store, 1)
    assert await redeem(store, 1) is not None
    later = T0 + 1 + CERT_TTL + 5
    if act == "delete":
        assert await store.delete(NUMBER, later) is False
    else:
        assert await store.revoke(NUMBER, Reason.PORT_OUT, later) is None
    ended = await store.get(NUMBER)
    assert ended is not None
    assert (ended.state, ended.reason, ended.expired_at) == (BindingState.EXPIRED, Reason.LAPSED, T0 + 1 + CERT_TTL)
    assert ended.revoked_at is None
    assert await store.expire_due(later + 10) == 0  # already written as expired


@BOTH_STORES
async def test_a_new_device_after_the_old_binding_ran_out_does_not_supersede_it(store: Storage) -> None:
    await record(store, 1)
    assert await redeem(store, 1) is not None
    later = T0 + 1 + CERT_TTL + 5
    await record(store, 2, token=DEVICE_B, now=later)
    activation = await redeem(store, 2, token=DEVICE_B, now=later + 1, proof_expires_at=later + PROOF_TTL)
    assert activation is not None
    assert activation.superseded is None
    assert activation.binding.state is BindingState.ACTIVE
    counts = {k: v for k, v in (await store.counts()).items() if v}
    assert counts == {"active": 1, "expired": 1}


@BOTH_STORES
async def test_an_expired_pending_binding_cannot_be_redeemed(store: Storage) -> None:
    await record(store, 1, ttl=100)
    await store.expire_due(T0 + 100)
    with pytest.raises(BindingNotPending):  # even if the caller's proof claimed a later expiry
        await redeem(store, 1, now=T0 + 50, proof_expires_at=T0 + 1000)


# ------------------------------------------------------------------------------------------------- reading


@BOTH_STORES
async def test_get_prefers_the_active_binding_to_a_later_one(store: Storage) -> None:
    assert await store.get(NUMBER) is None
    await record(store, 1, token=DEVICE_A)
    await redeem(store, 1, token=DEVICE_A)
    await record(store, 2, token=DEVICE_B, now=T0 + 5)
    current = await store.get(NUMBER)
    assert current is not None
    assert current.push_token == DEVICE_A
    await store.revoke(NUMBER, Reason.RECYCLED, T0 + 6)
    latest = await store.get(NUMBER)
    assert latest is not None
    assert (latest.push_token, latest.state) == (DEVICE_B, BindingState.REVOKED)  # no active one: the latest


async def test_get_reads_indexes_only_whatever_the_number_s_history(store: SqliteStorage) -> None:
    # get() sorted a number's whole history in a temporary B-tree (35 ms for 50,000 rows, on the event loop).
    statements: list[str] = []
    store._reader.set_trace_callback(statements.append)
    await store.get(NUMBER)
    store._reader.set_trace_callback(None)
    assert statements
    for statement in statements:
        plan = [row[3] for row in store._reader.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()]
        assert not any("TEMP B-TREE" in step for step in plan), plan
        assert not any(step.startswith("SCAN bindings") for step in plan), plan


async def test_get_answers_as_the_memory_store_does(store: SqliteStorage) -> None:
    memory = MemoryStorage()
    numbers = [f"+1555000{n:04d}" for n in range(6)]
    rng = random.Random(11)
    for n in range(120):
        e164 = numbers[n % len(numbers)]
        for s in (store, memory):
            await record(s, n, e164=e164, token=f"{n:064x}", now=T0 + n)
        if rng.random() < 0.5:
            for s in (store, memory):
                await redeem(s, n, e164=e164, token=f"{n:064x}", now=T0 + n + 0.5)
        if rng.random() < 0.1:
            for s in (store, memory):
                await s.revoke(e164, Reason.SIM_SWAP, T0 + n + 0.7)
        if n % 40 == 39:
            for s in (store, memory):
                await s.expire_due(T0 + n)
        for number in [*numbers, "+15559999999"]:
            assert await store.get(number) == await memory.get(number)
    await memory.close()


async def test_counts_agree_with_the_file(store: SqliteStorage, db: Path) -> None:
    rng = random.Random(3)
    for n in range(60):
        await record(store, n, e164=f"+1555000{n % 20:04d}", token=f"{n:064x}", now=T0 + n)
        if rng.random() < 0.6:
            await redeem(store, n, e164=f"+1555000{n % 20:04d}", token=f"{n:064x}", now=T0 + n + 0.5)
        if rng.random() < 0.1:
            await store.revoke(f"+1555000{n % 20:04d}", Reason.SIM_SWAP, T0 + n + 0.7)
    await store.expire_due(T0 + 200)
    with sqlite3.connect(db) as conn:
        on_disk = dict(conn.execute("SELECT state, count(*) FROM bindings GROUP BY state").fetchall())
    counts = await store.counts()
    assert {state: n for state, n in counts.items() if n} == on_disk
    assert sum(counts.values()) == 60


# -------------------------------------------------------------------------------------------- reopening


async def test_reopening_finds_everything(db: Path) -> None:
    async with SqliteStorage(db) as store:
        await record(store, 1, e164="+15550000001")
        await redeem(store, 1, e164="+15550000001")
        await record(store, 2, e164="+15550000002")
        await record(store, 3, e164="+15550000003")
        await store.delete("+15550000003", T0 + 2)
        before = {n: await store.get(n) for n in ("+15550000001", "+15550000002", "+15550000003")}
        counts = await store.counts()
    async with SqliteStorage(db) as again:
        assert {n: await again.get(n) for n in before} == before
        assert await again.counts() == counts
        assert await redeem(again, 1, e164="+15550000001") is None  # still spent
        assert await redeem(again, 2, e164="+15550000002") is not None  # still redeemable
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_a_file_from_a_newer_version_is_refused(db: Path) -> None:
    async with SqliteStorage(db):
        pass
    with sqlite3.connect(db) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaVersionError):
        SqliteStorage(db)


def test_only_file_paths_are_taken() -> None:
    with pytest.raises(ValueError, match="file path"):
        SqliteStorage(":memory:")


def test_an_unopenable_path_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(sqlite3.Error):
        SqliteStorage(tmp_path / "no such directory" / "x.db")


def test_synchronous_is_full_or_normal(db: Path) -> None:
    store = SqliteStorage(db, synchronous="NORMAL")
    asyncio.run(store.close())
    with pytest.raises(ValueError, match="synchronous"):
        SqliteStorage(db, synchronous="OFF")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- batching, closing, failure


async def test_concurrent_writes_share_transactions(store: SqliteStorage) -> None:
    await asyncio.gather(*(record(store, n, e164=f"+1555{n:07d}") for n in range(300)))
    stats = store.stats()
    assert stats.operations == 300
    assert stats.commits < 300
    assert max(stats.batch_sizes) > 1
    assert sum(size * n for size, n in stats.batch_sizes.items()) == 300


async def test_backpressure_bounds_what_is_in_flight(db: Path) -> None:
    async with SqliteStorage(db, max_pending=3) as store:
        await asyncio.gather(*(record(store, n, e164=f"+1555{n:07d}") for n in range(100)))
        assert max(store.stats().batch_sizes) <= 3
        assert (await store.counts())["pending"] == 100


async def test_a_caller_cancelled_while_waiting_for_a_slot_leaks_nothing(db: Path) -> None:
    async with SqliteStorage(db, max_pending=2) as store:
        tasks = [asyncio.create_task(record(store, n, e164=f"+1555{n:07d}")) for n in range(40)]
        await asyncio.sleep(0)
        for task in tasks[10:30]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Every slot came back: a burst as large as the bound still goes through, then more.
        await asyncio.wait_for(
            asyncio.gather(*(record(store, n, e164=f"+1555{n:07d}") for n in range(100, 140))), timeout=30
        )
        assert store.stats().operations >= 50


async def test_close_answers_what_was_queued_and_refuses_the_rest(db: Path) -> None:
    store = SqliteStorage(db)
    queued = [asyncio.create_task(record(store, n, e164=f"+1555{n:07d}")) for n in range(200)]
    await asyncio.sleep(0)  # every task has queued its operation
    await store.close()
    await asyncio.gather(*queued)  # each caller got its answer, none an error
    with pytest.raises(StorageClosed):
        await record(store, 1000)
    with pytest.raises(StorageClosed):
        await store.get(NUMBER)
    await store.close()  # idempotent
    async with SqliteStorage(db) as again:
        assert (await again.counts())["pending"] == 200


async def test_one_failing_operation_does_not_sink_its_batch(store: SqliteStorage, db: Path) -> None:
    # A trigger makes activating one number fail deep inside SQLite, as a full disk or a bug would.
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TRIGGER boom BEFORE UPDATE ON bindings WHEN NEW.e164 = '+15550000666' AND NEW.state = 'active' "
            "BEGIN SELECT RAISE(ABORT, 'boom'); END"
        )
    await record(store, 666, e164="+15550000666")
    for n in range(20):
        await record(store, n, e164=f"+1555{n:07d}")
    outcomes = await asyncio.gather(
        redeem(store, 666, e164="+15550000666"),
        *(redeem(store, n, e164=f"+1555{n:07d}") for n in range(20)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], StorageUnavailable)
    assert all(isinstance(o, Activation) for o in outcomes[1:])
    assert len(rows(db, "state = 'active'")) == 20
    assert await store.counts() == {"pending": 1, "active": 20, "expired": 0, "revoked": 0}


async def test_a_store_serves_one_event_loop(db: Path) -> None:
    store = SqliteStorage(db)
    try:
        await record(store, 1)

        def elsewhere() -> None:
            asyncio.run(record(store, 2))

        with pytest.raises(WrongEventLoop):
            await asyncio.to_thread(elsewhere)
    finally:
        await store.close()


# ------------------------------------------------------------------------------------------------ kill -9

CHILD = Path(__file__).with_name("store_crash_child.py")
ROOT = Path(__file__).resolve().parents[2]


def test_kill_9_mid_burst_loses_no_acknowledged_activation(tmp_path: Path) -> None:
    """Five times: start a burst, SIGKILL it at a random moment, then every number it printed must be active."""
    db = tmp_path / "crash.db"
    rng = random.Random(20240917)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    acknowledged: set[str] = set()
    for round_ in range(5):
        first, count = round_ * 1_000_000, 200_000  # far more than a round lives to do: the kill lands mid-burst
        child = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), str(first), str(count)],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        assert child.stdout is not None
        kill_after = rng.randint(50, 1500)
        seen = 0
        watchdog = threading.Timer(60, child.kill)  # a hung child must not hang the test: it ends it early
        watchdog.start()
        try:
            while seen < kill_after:
                line = child.stdout.readline()
                assert line.endswith("\n"), f"the child ended early (exit {child.poll()})"
                assert line != "DONE\n", "the burst finished before the kill"
                acknowledged.add(line.strip())
                seen += 1
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
            watchdog.cancel()
        assert child.returncode == -signal.SIGKILL
        # Lines already written before the kill were acknowledged too; a cut-off last line was not.
        for line in child.stdout.read().splitlines(keepends=True):
            if line.endswith("\n") and line != "DONE\n":
                acknowledged.add(line.strip())
        child.stdout.close()

        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            active = {e164 for (e164,) in conn.execute("SELECT e164 FROM bindings WHERE state = 'active'")}
        missing = acknowledged - active
        assert not missing, f"round {round_}: {len(missing)} acknowledged activations lost, e.g. {sorted(missing)[:3]}"
    # And the store itself, reopened after five crashes, agrees.
    store = SqliteStorage(db)
    try:
        sample = sorted(acknowledged)[:: max(1, len(acknowledged) // 50)]

        async def states() -> list[BindingState | None]:
            found = [await store.get(e164) for e164 in sample]
            return [None if b is None else b.state for b in found]

        assert set(asyncio.run(states())) == {BindingState.ACTIVE}
        assert asyncio.run(store.counts())["active"] >= len(acknowledged)
    finally:
        asyncio.run(store.close())
