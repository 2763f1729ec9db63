"""Where bindings live: a small async storage interface and its SQLite implementation.

Theory of operation
-------------------
:class:`Storage` is what the service needs from a database, and no more: record a pending binding when a REG-REQ
arrives, redeem a proof (spend it and activate the binding, in one step), read the current binding of a number,
revoke or delete, expire what is due, count for metrics. :class:`SqliteStorage` implements it on one SQLite file;
a server database can implement the same protocol later.

What "acknowledged" means. Every write method is a coroutine that returns only after the transaction holding
that write has *committed*. A caller that saw the await return may tell the world (send the SMS with the proof,
answer the HTTP request with a certificate): the write survives ``kill -9`` of the process at any moment after
that, and with the default ``synchronous="FULL"`` it survives a power cut too.

Group commit. One writer thread owns the only writable connection. Callers put operations on a queue; the thread
takes *everything* queued (up to ``max_batch``), runs it in ONE ``BEGIN IMMEDIATE ... COMMIT`` transaction,
and only then resolves every caller's future, with a single ``loop.call_soon_threadsafe`` per transaction. A
commit costs one fsync of the WAL (milliseconds on a real disk) however many operations it carries, so under load
the batches grow until the fsync is amortised over hundreds of operations (500-800 per commit with 1,000 callers).
Under light load a batch is one operation and the latency is one fsync.

Where the time goes. With the fsync amortised, the cost is CPU: about 30 us per ``record_pending`` and 40 us per
``authenticate`` (55 when it supersedes), of which SQLite's B-tree work on random keys (proof ids are MACs, numbers
arrive in no order) is the larger part and the asyncio hand-off the rest. The writer thread and the event loop
share the GIL, so the store uses about one core: ~29k pending records/s, ~25k activations/s, ~13k complete first
registrations/s on the 2-core reference machine (``bench/identity_store.py``).

Durability, precisely. The database runs in WAL mode with ``synchronous=FULL``: SQLite fsyncs the WAL before
``COMMIT`` returns. Two failure models matter:

* Process death (``kill -9``, a crash, the OOM killer). The OS survives, so every byte SQLite handed to
  ``write()`` reaches the disk eventually; WAL with ``synchronous=NORMAL`` (or even ``OFF``) would already be
  enough, because by the time ``COMMIT`` returns the commit frame is in the OS's page cache. The guarantee this
  module adds is the *ordering*: no future is resolved before ``COMMIT`` has returned.
* Power loss or kernel panic. Only what was fsynced survives. With ``synchronous=NORMAL`` in WAL mode SQLite
  fsyncs only at checkpoints, so the last transactions -- already acknowledged -- can vanish (the database stays
  consistent, it just rolls back to an earlier commit). ``FULL`` fsyncs the WAL at every commit and closes that
  gap; group commit makes its price (one fsync per batch, not per operation) affordable.

``synchronous="NORMAL"`` is accepted for a deployment that only fears process death (a simulator's run, a
container on a battery-backed host); the default is ``FULL``.

Single use of proofs. A proof is spent when :meth:`SqliteStorage.authenticate` moves its pending binding to
active: that row *is* the record of the spending (``activated_at`` is set, and stays set through every later
state), and the move happens at most once because only a pending binding can take it. Spending and activating are
one UPDATE in one transaction, so neither can happen without the other -- which is why there is no separate
"consume the proof" and "activate" pair to call in the right order. A failed authentication (expired or unknown
proof, wrong number or device, binding revoked by a SIM swap, lapsed) writes nothing. The rows are kept as history
(when, which device, why it ended), so a spent proof id is remembered for as long as its row is, which is longer
than the proof's own expiry, after which the proof is refused without looking anything up.

Reads. :meth:`SqliteStorage.get` runs on the caller's thread, on a separate read-only connection: WAL lets a
reader see the last committed state without waiting for the writer, and a write the caller awaited is visible to
it (it committed before the await returned). Decided by measurement (100 readers, 50k bindings): on the reader
connection a read takes 16 us at the median, with or without 500 writers busy; sent through the writer thread it
waited for the batch in progress, 1.6 ms idle and 17 ms (p99 31 ms) under that write load.

Backpressure. At most ``max_pending`` operations are queued or in flight; further callers wait, first come first
served, before queueing, so memory stays bounded when the disk cannot keep up.

A store belongs to one event loop (the first that uses it) and, as a file, to one process: a second writer on the
same file would wait on SQLite's lock (``busy_timeout``) rather than corrupt anything, but it defeats batching.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import os
import queue
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, Generic, Literal, Protocol, Self, TypeVar

from identity_core.bindings import (
    TRANSITIONS,
    Binding,
    BindingEvent,
    BindingState,
    InvalidBinding,
    Reason,
    TransitionError,
    as_of,
    register,
    transition,
)

__all__ = [
    "SCHEMA_VERSION",
    "Activation",
    "BindingNotPending",
    "DuplicateProof",
    "ProofExpired",
    "ProofMismatch",
    "ProofSuperseded",
    "SchemaVersionError",
    "SqliteStorage",
    "Storage",
    "StorageClosed",
    "StorageError",
    "StorageUnavailable",
    "UnknownProof",
    "WriterStats",
    "WrongEventLoop",
]

SCHEMA_VERSION: Final = 1
"""What ``PRAGMA user_version`` holds once this module has created or migrated the file."""


# --------------------------------------------------------------------------------------------------- errors


class StorageError(Exception):
    """Base of everything this module raises on purpose."""


class StorageClosed(StorageError):
    """The store was closed (or is closing) and takes no more operations."""


class StorageUnavailable(StorageError):
    """The database failed underneath (I/O error, full disk, corrupt file): the operation was NOT acknowledged."""


class WrongEventLoop(StorageError):
    """The store was used from an event loop other than the first that used it (its futures and backpressure
    live on that loop)."""


class SchemaVersionError(StorageError):
    """The file was written by a newer version of this module: refuse it rather than misread it."""


class DuplicateProof(StorageError):
    """``record_pending`` was given a proof id already recorded for another (number, push token, request id)."""


class ProofExpired(StorageError):
    """The proof's expiry has passed: it can no longer be redeemed."""


class UnknownProof(StorageError):
    """No pending binding was ever recorded for this proof id."""


class ProofMismatch(StorageError):
    """The proof was recorded for another number or device than the one presenting it."""


class ProofSuperseded(StorageError):
    """The proof's binding was recorded before the number's active binding: a newer registration has been
    redeemed since, and redeeming this older proof now would undo it (the older device would take the number
    back). The pending binding is left as it is; it expires with its proof.
    """


class BindingNotPending(StorageError):
    """The proof's binding is no longer pending (revoked by a carrier event, deleted, expired) and was never
    activated: the proof can no longer be redeemed.

    ``binding`` is the binding as stored, so that the caller can say why.
    """

    def __init__(self, binding: Binding) -> None:
        super().__init__(f"the binding of {binding.e164} is {binding.state} ({binding.reason}), not pending")
        self.binding = binding


# ----------------------------------------------------------------------------------------------- interface


@dataclass(frozen=True, slots=True)
class Activation:
    """What a successful authentication did: the binding now active, and the one it superseded, if any.

    ``superseded`` is the number's previously active binding, now revoked with reason ``superseded``; its device
    deserves to be told (it may be the same device re-registering, with the same push token).
    """

    binding: Binding
    superseded: Binding | None


@dataclass(frozen=True, slots=True)
class WriterStats:
    """How the writer has batched so far: transactions committed, operations in them, and the batch sizes seen
    (size -> number of commits of that size)."""

    commits: int
    operations: int
    batch_sizes: Mapping[int, int]


class Storage(Protocol):
    """What the identity service needs from a database. Every write returns once it is durable."""

    async def record_pending(
        self,
        *,
        e164: str,
        push_token: str,
        request_id: int,
        carrier: str,
        proof_id: bytes,
        expires_at: float,
        now: float,
    ) -> Binding:
        """Record the pending binding a REG-REQ asked for; the proof may be sent once this returns."""
        ...

    async def authenticate(
        self,
        *,
        proof_id: bytes,
        proof_expires_at: float,
        e164: str,
        push_token: str,
        now: float,
        cert_expires_at: float,
    ) -> Activation | None:
        """Spend the proof and activate its binding, atomically; None when the proof was already spent."""
        ...

    async def get(self, e164: str) -> Binding | None:
        """The number's current binding: the active one, else the latest, else None."""
        ...

    async def get_by_proof(self, proof_id: bytes) -> Binding | None:
        """The binding recorded for a proof id, in whatever state it now is; None if none was."""
        ...

    async def revoke(
        self, e164: str, reason: Reason, now: float, *, recorded_by: float | None = None
    ) -> Binding | None:
        """Revoke every live binding of the number for a carrier event (only those created at or before
        ``recorded_by``, when given); the one that was active, if any."""
        ...

    async def delete(self, e164: str, now: float) -> bool:
        """Revoke every live binding of the number with reason ``deleted``; False if there was none."""
        ...

    async def expire_due(self, now: float) -> int:
        """Expire every live binding whose ``expires_at`` has come; return how many."""
        ...

    async def counts(self) -> dict[str, int]:
        """Bindings per state, for metrics."""
        ...

    async def close(self) -> None:
        """Finish what was queued, then release the database."""
        ...


# ------------------------------------------------------------------------------------------------- schema

_STATES_SQL = ", ".join(f"'{state.value}'" for state in BindingState)
_LIVE_SQL = f"'{BindingState.PENDING.value}', '{BindingState.ACTIVE.value}'"

# Each index is there for one query below; every index costs on every write, so none is speculative.
_SCHEMA_V1: Final = (
    f"""
    CREATE TABLE bindings (
        id           INTEGER PRIMARY KEY,
        e164         TEXT NOT NULL,
        push_token   TEXT NOT NULL,
        carrier      TEXT NOT NULL,
        request_id   INTEGER NOT NULL,
        proof_id     BLOB NOT NULL UNIQUE,            -- authenticate finds its pending binding by proof id
        state        TEXT NOT NULL CHECK (state IN ({_STATES_SQL})),
        created_at   REAL NOT NULL,
        expires_at   REAL NOT NULL,
        activated_at REAL,
        expired_at   REAL,
        revoked_at   REAL,
        reason       TEXT
    ) STRICT
    """,
    # get(), revoke(), delete(): a number's bindings, newest last.
    "CREATE INDEX bindings_by_number ON bindings (e164, id)",
    # One active binding per number, enforced by the database itself; also finds the binding to supersede.
    "CREATE UNIQUE INDEX bindings_one_active ON bindings (e164) WHERE state = 'active'",
    # expire_due(): only live rows, so the index shrinks as bindings end instead of growing forever.
    f"CREATE INDEX bindings_live_by_expiry ON bindings (expires_at) WHERE state IN ({_LIVE_SQL})",
)

# Version n -> the statements that take a file from n to n + 1. Version 0 is SQLite's "never set".
_MIGRATIONS: Final[Mapping[int, tuple[str, ...]]] = {0: _SCHEMA_V1}

_COLUMNS = (
    "id, e164, push_token, carrier, request_id, proof_id, state, created_at, expires_at, "
    "activated_at, expired_at, revoked_at, reason"
)
_INSERT_BINDING = (
    "INSERT INTO bindings (e164, push_token, carrier, request_id, proof_id, state, created_at, expires_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPDATE_BINDING = (
    "UPDATE bindings SET state = ?, expires_at = ?, activated_at = ?, expired_at = ?, revoked_at = ?, reason = ? "
    "WHERE id = ?"
)
_SELECT_BY_PROOF = f"SELECT {_COLUMNS} FROM bindings WHERE proof_id = ?"
# authenticate() in one statement rather than two (each execute costs microseconds of Python): the proof's
# binding (kind 0) and the number's active binding (kind 1). The literal `state = 'active'` (not a parameter) is
# what lets SQLite use the partial unique index.
_SELECT_FOR_AUTH = (
    f"SELECT 0, {_COLUMNS} FROM bindings WHERE proof_id = ?1 "
    f"UNION ALL SELECT 1, {_COLUMNS} FROM bindings WHERE e164 = ?2 AND state = 'active'"
)
_SELECT_LIVE = f"SELECT {_COLUMNS} FROM bindings WHERE e164 = ? AND state IN ({_LIVE_SQL}) ORDER BY id"
# get(): the number's active row (the one-active partial index) and its latest row (bindings_by_number read
# backwards), in one statement so both come from one snapshot. A single ORDER BY state = 'active' DESC, id DESC
# sorted the number's whole history in a temporary B-tree: 35 ms for 50,000 rows, on the event loop.
_SELECT_CURRENT = (
    f"SELECT {_COLUMNS} FROM bindings WHERE e164 = ?1 AND state = 'active' "
    f"UNION ALL SELECT * FROM (SELECT {_COLUMNS} FROM bindings WHERE e164 = ?1 ORDER BY id DESC LIMIT 1)"
)
_COUNT_KEYS: Final = tuple(state.value for state in BindingState)

_Row = tuple[Any, ...]


def _binding(row: _Row) -> tuple[int, Binding]:
    reason = row[12]
    return row[0], Binding(
        e164=row[1],
        push_token=row[2],
        carrier=row[3],
        request_id=row[4],
        proof_id=row[5],
        state=BindingState(row[6]),
        created_at=row[7],
        expires_at=row[8],
        activated_at=row[9],
        expired_at=row[10],
        revoked_at=row[11],
        reason=None if reason is None else Reason(reason),
    )


def _update(conn: sqlite3.Connection, rowid: int, b: Binding) -> None:
    conn.execute(
        _UPDATE_BINDING,
        (b.state.value, b.expires_at, b.activated_at, b.expired_at, b.revoked_at, b.reason, rowid),
    )


def _moved(delta: Counter[str], before: Binding, after: Binding) -> None:
    delta[before.state.value] -= 1
    delta[after.state.value] += 1


# ------------------------------------------------------------------------------------------- the writer


@dataclass(frozen=True, slots=True)
class _Failure:
    """An expected, typed failure of one operation, decided before the operation wrote anything. Returned rather
    than raised because the writer takes a raised exception for an unexpected one and rolls the batch back."""

    error: StorageError | TransitionError | InvalidBinding


T = TypeVar("T")


@dataclass(slots=True)
class _Op(Generic[T]):
    run: Callable[[sqlite3.Connection, Counter[str]], T | _Failure]
    future: asyncio.Future[T]


class _Stop(enum.Enum):
    STOP = enum.auto()


_Item = _Op[Any] | Literal[_Stop.STOP]
_Outcome = tuple[asyncio.Future[Any], object]  # (future, result | _Failure | BaseException)

_REVOCATIONS: Final[Mapping[Reason, BindingEvent]] = {
    Reason.SIM_SWAP: BindingEvent.REVOKED_SIM_SWAP,
    Reason.PORT_OUT: BindingEvent.REVOKED_PORT_OUT,
    Reason.RECYCLED: BindingEvent.REVOKED_RECYCLED,
}


class SqliteStorage:
    """:class:`Storage` on one SQLite file, with group commit (see the module's theory of operation).

    Opening creates the file and its schema if needed, or migrates an older one; it blocks briefly, so construct
    the store at start-up, not per request. Use it from one event loop; close it with :meth:`close` or
    ``async with``.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Literal["FULL", "NORMAL"] = "FULL",
        max_batch: int = 4096,
        max_pending: int = 16384,
        busy_timeout_ms: int = 5000,
        cache_mib: int = 64,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        if max_batch < 1 or max_pending < 1:
            raise ValueError("max_batch and max_pending must be at least 1")
        self._path = os.fspath(path)
        if self._path == ":memory:" or self._path.startswith("file:"):
            # A second connection to ":memory:" is another database; a URI could be one too. Durability is the
            # point of this class, so take plain paths only.
            raise ValueError("SqliteStorage needs a file path")
        self._synchronous = synchronous
        self._max_batch = max_batch
        self._busy_timeout_ms = busy_timeout_ms
        self._max_pending = max_pending
        self._cache_mib = cache_mib
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._closed = False
        self._fatal: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Backpressure, on the loop's thread: operations queued or in flight, and the callers waiting for a slot.
        # Hand-rolled rather than asyncio.Semaphore because the fast path (a slot is free) is then a comparison
        # and an increment, not a coroutine; this runs twice per registration.
        self._in_flight = 0
        self._slot_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._lock = threading.Lock()  # guards the counters below, written by the writer thread, read by anyone
        self._counts: Counter[str] = Counter()
        self._commits = 0
        self._operations = 0
        self._batch_sizes: Counter[int] = Counter()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._writer = threading.Thread(target=self._writer_main, name=f"sqlite-writer:{self._path}", daemon=True)
        self._writer.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._writer.join()
            raise self._startup_error
        # Opened after the writer made the schema, so that it never sees a half-created file.
        self._reader = self._connect(read_only=True)

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------------------------------ writes

    async def record_pending(
        self,
        *,
        e164: str,
        push_token: str,
        request_id: int,
        carrier: str,
        proof_id: bytes,
        expires_at: float,
        now: float,
    ) -> Binding:
        """Record the pending binding a REG-REQ asked for and return it once it is durable.

        Send the proof only after this returns: a proof whose pending binding was lost could never be redeemed.
        Idempotent: the same REG-REQ issued twice at one time makes the same proof (its MAC is the id, see
        :mod:`identity_core.proofs`; the service issues a repeat within a minute at the first issue time, see
        :mod:`identity_core.recent_requests`), and the second call returns the binding the first recorded, in
        whatever state it now is. Raises :class:`DuplicateProof` if ``proof_id`` was recorded for another
        (number, push token, request id), :class:`InvalidBinding` for an expiry that is not after ``now``.
        """
        binding = register(
            e164=e164,
            push_token=push_token,
            carrier=carrier,
            request_id=request_id,
            proof_id=proof_id,
            now=now,
            expires_at=expires_at,
        )
        row = (e164, push_token, carrier, request_id, proof_id, binding.state.value, now, expires_at)

        def run(conn: sqlite3.Connection, delta: Counter[str]) -> Binding | _Failure:
            try:
                conn.execute(_INSERT_BINDING, row)
            except sqlite3.IntegrityError:
                # A failed INSERT undoes only itself (SQLite's ABORT), so the rest of the batch is unharmed.
                rows = conn.execute(_SELECT_BY_PROOF, (proof_id,)).fetchall()
                if not rows:
                    raise  # not the proof id's uniqueness: nothing this operation expects
                existing = _binding(rows[0])[1]
                if (existing.e164, existing.push_token, existing.request_id) == (e164, push_token, request_id):
                    return existing  # the same REG-REQ delivered twice: one binding, as one proof
                return _Failure(DuplicateProof(f"proof id {proof_id.hex()} is already recorded for another request"))
            delta[binding.state.value] += 1
            return binding

        return await self._submit(run)

    async def authenticate(
        self,
        *,
        proof_id: bytes,
        proof_expires_at: float,
        e164: str,
        push_token: str,
        now: float,
        cert_expires_at: float,
    ) -> Activation | None:
        """Spend the proof and activate the binding recorded for it, superseding the number's active binding.

        The UPDATE that activates the binding is what spends the proof, in the same transaction as the supersede,
        so a proof is never spent without its activation nor the reverse. Returns
        None if the proof was spent before (a replay, or a client retrying a request whose answer it lost: either
        way this call activated nothing). The carrier of the binding is the one recorded by
        :meth:`record_pending`, from the REG-REQ that actually crossed the carrier's network.

        Only a binding recorded *after* the number's active one supersedes it; an older one raises
        :class:`ProofSuperseded`, so that a late redemption of an older registration cannot undo a newer one --
        while that newer binding is active as of ``now`` (one whose certificate ran out, swept or not, no longer
        stands in the way, so the answer does not depend on when the expiry sweep ran).

        Raises, having written nothing: :class:`ProofExpired`, :class:`UnknownProof`, :class:`ProofMismatch`,
        :class:`BindingNotPending` (revoked or expired before it was redeemed), :class:`ProofSuperseded`,
        :class:`~identity_core.bindings.BindingLapsed` (the recorded expiry passed although ``proof_expires_at``
        did not) or :class:`InvalidBinding` (a certificate expiry not after ``now``).
        """

        def run(conn: sqlite3.Connection, delta: Counter[str]) -> Activation | _Failure | None:
            if not proof_expires_at > now:
                return _Failure(ProofExpired(f"proof id {proof_id.hex()} expired at {proof_expires_at} (now {now})"))
            mine: _Row | None = None
            current: _Row | None = None
            for row in conn.execute(_SELECT_FOR_AUTH, (proof_id, e164)).fetchall():
                if row[0] == 0:
                    mine = row[1:]
                else:
                    current = row[1:]
            if mine is None:
                return _Failure(UnknownProof(f"no binding was recorded for proof id {proof_id.hex()}"))
            rowid, pending = _binding(mine)
            if pending.e164 != e164 or pending.push_token != push_token:
                return _Failure(ProofMismatch(f"proof id {proof_id.hex()} was issued for another number or device"))
            if pending.activated_at is not None:
                return None
            if pending.state is not BindingState.PENDING:
                return _Failure(BindingNotPending(pending))
            # Row ids are the order the REG-REQs were recorded in: only a newer registration supersedes. Only a
            # newer binding still active as of now stands in the way: one whose certificate ran out is expired
            # whether or not the sweep has written it, and the answer must not depend on when the sweep ran.
            newer = None if current is None or current[0] <= rowid else _binding(current)[1]
            if newer is not None and as_of(newer, now).state is BindingState.ACTIVE:
                return _Failure(ProofSuperseded(f"proof id {proof_id.hex()}: a newer binding of {e164} is active"))
            try:
                active = transition(pending, BindingEvent.AUTHENTICATED, now, expires_at=cert_expires_at)
            except (TransitionError, InvalidBinding) as exc:
                return _Failure(exc)
            superseded: Binding | None = None
            if current is not None:
                # Supersede first: the unique partial index admits one active row per number at any instant. A
                # binding that ran out before now lapsed (as the sweep would have written); nothing supersedes it.
                old_id, old = _binding(current)
                ended = as_of(old, now)
                if ended is old:
                    superseded = ended = transition(old, BindingEvent.SUPERSEDED, now)
                _update(conn, old_id, ended)
                _moved(delta, old, ended)
            _update(conn, rowid, active)
            _moved(delta, pending, active)
            return Activation(active, superseded)

        return await self._submit(run)

    async def revoke(
        self, e164: str, reason: Reason, now: float, *, recorded_by: float | None = None
    ) -> Binding | None:
        """Revoke every live (pending or active) binding of ``e164`` because of a carrier event.

        ``reason`` is :attr:`Reason.SIM_SWAP`, :attr:`Reason.PORT_OUT` or :attr:`Reason.RECYCLED`. Pending
        bindings go too: their proofs went by SMS to the SIM that held the number before the event. Returns the
        binding that was active, now revoked; else the latest pending one, now revoked; else None.

        With ``recorded_by``, only bindings whose ``created_at`` is at or before it are revoked, decided in the
        same transaction as the revocation: a risk check revokes what existed when it asked the carrier, not a
        registration that arrived while it waited for the answer (:meth:`IdentityService.risk_check`).
        """
        event = _REVOCATIONS.get(reason)
        if event is None:
            raise ValueError(f"{reason} is not a carrier event; use {', '.join(_REVOCATIONS)}")
        return await self._submit(self._end_live(e164, event, now, recorded_by))

    async def delete(self, e164: str, now: float) -> bool:
        """The server API's delete: revoke every live binding of ``e164`` with reason ``deleted``.

        The rows stay, as history (when, why); True if there was a live binding to end.
        """
        ended = await self._submit(self._end_live(e164, BindingEvent.DELETED, now))
        return ended is not None

    async def expire_due(self, now: float) -> int:
        """Expire every live binding whose ``expires_at`` is at or before ``now``; return how many.

        ``expired_at`` is set to the binding's ``expires_at`` (when it ran out), not to ``now`` (when this sweep
        noticed), so that it agrees with :func:`identity_core.bindings.as_of` on reads between sweeps.
        """

        def run(conn: sqlite3.Connection, delta: Counter[str]) -> int:
            expired = 0
            for state in (BindingState.PENDING, BindingState.ACTIVE):
                # One set-based UPDATE per state, its values read from the table so the table stays the only
                # authority; the WHERE clause is the table's AT_OR_AFTER_EXPIRY guard. Repeating the index's
                # `state IN (...)` is what lets SQLite use the partial index.
                rule = TRANSITIONS[(state, BindingEvent.EXPIRED)]
                cursor = conn.execute(
                    f"UPDATE bindings SET state = ?, {rule.stamp} = expires_at, reason = ? "
                    f"WHERE state IN ({_LIVE_SQL}) AND state = ? AND expires_at <= ?",
                    (rule.target.value, rule.reason, state.value, now),
                )
                delta[state.value] -= cursor.rowcount
                delta[rule.target.value] += cursor.rowcount
                expired += cursor.rowcount
            return expired

        return await self._submit(run)

    # ------------------------------------------------------------------------------------------- reads

    async def get(self, e164: str) -> Binding | None:
        """The current binding of ``e164``: the active one, else the latest of any state, else None."""
        self._check_open()
        rows = self._reader.execute(_SELECT_CURRENT, (e164,)).fetchall()
        if not rows:
            return None
        # The active row if there is one (it is the one with state 'active'), else the latest.
        for row in rows:
            if row[6] == BindingState.ACTIVE.value:
                return _binding(row)[1]
        return _binding(rows[0])[1]

    async def get_by_proof(self, proof_id: bytes) -> Binding | None:
        """The binding recorded for ``proof_id``, in whatever state it now is; None if none was."""
        self._check_open()
        rows = self._reader.execute(_SELECT_BY_PROOF, (proof_id,)).fetchall()
        return _binding(rows[0])[1] if rows else None

    async def counts(self) -> dict[str, int]:
        """Bindings per state as of the last commit (kept in memory: O(1), cheap enough for every scrape)."""
        with self._lock:
            return {key: self._counts[key] for key in _COUNT_KEYS}

    def stats(self) -> WriterStats:
        """How the writer has batched so far."""
        with self._lock:
            return WriterStats(self._commits, self._operations, dict(self._batch_sizes))

    # ---------------------------------------------------------------------------------------- closing

    async def close(self) -> None:
        """Take no more operations, finish those queued (each caller still gets its answer), release the file.

        Idempotent.
        """
        if not self._closed:
            self._closed = True
            self._queue.put(_Stop.STOP)
        await asyncio.to_thread(self._writer.join)
        self._reader.close()

    # ---------------------------------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosed(f"{self._path} is closed")
        if self._fatal is not None:
            raise StorageUnavailable(f"the writer of {self._path} failed: {self._fatal!r}") from self._fatal

    async def _submit(self, run: Callable[[sqlite3.Connection, Counter[str]], T | _Failure]) -> T:
        self._check_open()
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif loop is not self._loop:
            raise WrongEventLoop("a SqliteStorage serves the event loop that first used it, not another")
        if self._in_flight < self._max_pending and not self._slot_waiters:
            self._in_flight += 1
        else:
            await self._wait_for_slot(loop)
            if self._closed:  # closed while this caller waited for a slot
                self._release_slot()
                raise StorageClosed(f"{self._path} is closed")
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Op(run, future))
        return await future

    async def _wait_for_slot(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until :meth:`_release_slot` hands this caller a slot (first come, first served)."""
        waiter: asyncio.Future[None] = loop.create_future()
        self._slot_waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._release_slot()  # a slot was handed over just as the caller gave up: pass it on
            raise
        finally:
            with contextlib.suppress(ValueError):
                self._slot_waiters.remove(waiter)

    def _release_slot(self) -> None:
        while self._slot_waiters:
            waiter = self._slot_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot goes straight to the waiter: _in_flight does not change
                return
        self._in_flight -= 1

    def _end_live(
        self, e164: str, event: BindingEvent, now: float, recorded_by: float | None = None
    ) -> Callable[[sqlite3.Connection, Counter[str]], Binding | _Failure | None]:
        def run(conn: sqlite3.Connection, delta: Counter[str]) -> Binding | _Failure | None:
            ended: Binding | None = None
            was_active: Binding | None = None
            for row in conn.execute(_SELECT_LIVE, (e164,)).fetchall():
                rowid, before = _binding(row)
                if recorded_by is not None and before.created_at > recorded_by:
                    continue  # recorded after the caller's cut-off: not what it is revoking (see revoke)
                lapsed = as_of(before, now)
                if lapsed is not before:
                    # Ran out before now, the sweep not yet by: expired, not live. Written as the sweep would, so
                    # that answers do not depend on whether it has run (and a terminal state is never rewritten).
                    _update(conn, rowid, lapsed)
                    _moved(delta, before, lapsed)
                    continue
                after = transition(before, event, now)
                _update(conn, rowid, after)
                _moved(delta, before, after)
                ended = after
                if before.state is BindingState.ACTIVE:
                    was_active = after
            return was_active if was_active is not None else ended

        return run

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        # isolation_level=None: this module writes BEGIN/COMMIT itself; the sqlite3 module's implicit
        # transactions would split or merge batches behind its back.
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
        if read_only:
            conn.execute("PRAGMA query_only = ON")
            return conn
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise StorageError(f"{self._path} cannot use WAL (journal_mode is {mode}); put it on a local disk")
        conn.execute(f"PRAGMA synchronous = {self._synchronous}")
        # Proof ids and numbers are random keys, so every operation lands on its own index pages: a page cache
        # that holds the hot indices saves reading them back (measured: about a third of an insert's CPU at
        # 200k bindings). Checkpointing every 10,000 pages instead of 1,000 lets rewrites of the same page
        # coalesce in the WAL; the WAL is cut back to 64 MiB after a checkpoint.
        conn.execute(f"PRAGMA cache_size = {-1024 * int(self._cache_mib)}")
        conn.execute("PRAGMA wal_autocheckpoint = 10000")
        conn.execute(f"PRAGMA journal_size_limit = {64 * 1024 * 1024}")
        return conn

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version: int = conn.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise SchemaVersionError(
                    f"{self._path} has schema version {version}; this identity_core knows up to {SCHEMA_VERSION}"
                )
            while version < SCHEMA_VERSION:
                for statement in _MIGRATIONS[version]:
                    conn.execute(statement)
                version += 1
                conn.execute(f"PRAGMA user_version = {version}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _load_state(self, conn: sqlite3.Connection) -> None:
        counts: Counter[str] = Counter()
        for state, n in conn.execute("SELECT state, count(*) FROM bindings GROUP BY state"):
            counts[state] = n
        with self._lock:
            self._counts = counts

    def _writer_main(self) -> None:
        try:
            conn = self._connect(read_only=False)
            try:
                self._migrate(conn)
                self._load_state(conn)
            except BaseException:
                conn.close()
                raise
        except BaseException as exc:
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            self._serve(conn)
        except BaseException as exc:  # a bug in this module: fail every caller rather than leave them hanging
            self._fatal = exc
            self._fail_forever(exc)
        finally:
            conn.close()

    def _serve(self, conn: sqlite3.Connection) -> None:
        while True:
            first = self._queue.get()
            if first is _Stop.STOP:
                return
            batch: list[_Op[Any]] = [first]
            stop = False
            # Take what is already queued, without waiting: the batch grows by itself while the previous
            # commit's fsync ran, which is exactly when waiting would have been pointless.
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is _Stop.STOP:
                    stop = True
                    break
                batch.append(item)
            self._run_batch(conn, batch)
            if stop:
                return

    def _run_batch(self, conn: sqlite3.Connection, batch: list[_Op[Any]]) -> None:
        delta: Counter[str] = Counter()
        outcomes: list[_Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for op in batch:
                outcomes.append((op.future, op.run(conn, delta)))
            conn.execute("COMMIT")
        except Exception:
            # Something unexpected (a constraint, an I/O error) in one operation or in the commit. Nothing of
            # the batch is durable; run each operation in a transaction of its own so that one bad operation
            # fails alone and the others are still acknowledged.
            self._rollback(conn)
            outcomes = [self._run_alone(conn, op) for op in batch]
        else:
            self._committed(delta, len(batch))
        self._deliver(outcomes)

    def _run_alone(self, conn: sqlite3.Connection, op: _Op[Any]) -> _Outcome:
        delta: Counter[str] = Counter()
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcome = op.run(conn, delta)
            conn.execute("COMMIT")
        except Exception as exc:
            self._rollback(conn)
            error = StorageUnavailable(f"{self._path}: {exc}")
            error.__cause__ = exc
            return op.future, error
        self._committed(delta, 1)
        return op.future, outcome

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        # After some I/O errors SQLite has already rolled back and ROLLBACK itself fails; either way none of it
        # committed.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")

    def _committed(self, delta: Counter[str], size: int) -> None:
        with self._lock:
            self._counts.update(delta)
            self._commits += 1
            self._operations += size
            self._batch_sizes[size] += 1

    def _deliver(self, outcomes: list[_Outcome]) -> None:
        loop = self._loop
        if loop is None:  # unreachable: an operation was submitted, so a loop was bound
            return
        # One wake-up of the event loop per transaction, not per operation.
        with contextlib.suppress(RuntimeError):  # the loop was closed under us; nobody is waiting any more
            loop.call_soon_threadsafe(self._settle, outcomes)

    def _settle(self, outcomes: list[_Outcome]) -> None:
        for future, outcome in outcomes:
            self._release_slot()
            if future.done():  # the caller was cancelled; the write stands all the same
                continue
            if isinstance(outcome, _Failure):
                future.set_exception(outcome.error)
            elif isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

    def _fail_forever(self, exc: BaseException) -> None:
        while True:
            item = self._queue.get()
            if item is _Stop.STOP:
                return
            error = StorageUnavailable(f"the writer of {self._path} failed: {exc!r}")
            self._deliver([(item.future, error)])
