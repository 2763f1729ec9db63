"""A :class:`~identity_core.store.Storage` in memory: the SQLite store's semantics without its file or thread.

Theory of operation
-------------------
For runs that cannot have a writer thread -- a scenario in virtual time, where every party must live in one
event loop and a thread's late answer would break the clock -- and for tests. Nothing survives the process: the
durability half of the Storage contract ("returns once durable") degenerates to "returns once applied".

Everything else is the same as :class:`~identity_core.store.SqliteStorage`, decided by the same pure table
(:mod:`identity_core.bindings`): rows are kept as history, in insertion order (the row's index is its id); a proof
id is unique across all rows, so a spent proof stays spent for as long as the store lives; one active binding per
number; the same typed errors, raised having written nothing. Each operation runs to completion without an
``await`` in the middle, so on one event loop operations are atomic and serialised, which is what SQLite's
transaction gives the other store: of fifty concurrent redemptions of one proof exactly one wins.

Indices mirror the SQLite ones, each for one query: by proof id (authenticate), a number's rows (get, revoke,
delete), a number's active row, and a heap of live rows by expiry (expire_due; entries whose row has moved on are
skipped when popped, which is cheaper than deleting from a heap).
"""

from __future__ import annotations

import heapq
from collections import Counter
from types import TracebackType
from typing import Final, Self

from identity_core.bindings import (
    Binding,
    BindingEvent,
    BindingState,
    Reason,
    as_of,
    register,
    transition,
)
from identity_core.store import (
    Activation,
    BindingNotPending,
    DuplicateProof,
    ProofExpired,
    ProofMismatch,
    ProofSuperseded,
    StorageClosed,
    UnknownProof,
)

__all__ = ["MemoryStorage"]

_REVOCATIONS: Final[dict[Reason, BindingEvent]] = {
    Reason.SIM_SWAP: BindingEvent.REVOKED_SIM_SWAP,
    Reason.PORT_OUT: BindingEvent.REVOKED_PORT_OUT,
    Reason.RECYCLED: BindingEvent.REVOKED_RECYCLED,
}
_COUNT_KEYS: Final = tuple(state.value for state in BindingState)
_LIVE: Final = frozenset({BindingState.PENDING, BindingState.ACTIVE})


class MemoryStorage:
    """:class:`~identity_core.store.Storage` held in dictionaries (see the module's theory of operation).

    Use it from one event loop (or none: the coroutines never suspend); close it with :meth:`close` or
    ``async with``.
    """

    def __init__(self) -> None:
        self._rows: list[Binding] = []
        self._by_proof: dict[bytes, int] = {}
        self._by_number: dict[str, list[int]] = {}
        self._active: dict[str, int] = {}
        self._expiry: list[tuple[float, int]] = []
        self._counts: Counter[str] = Counter()
        self._closed = False

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
        """Record the pending binding a REG-REQ asked for (see :meth:`SqliteStorage.record_pending`).

        Idempotent for the same (number, push token, request id); :class:`DuplicateProof` if ``proof_id`` was
        recorded for another; :class:`~identity_core.bindings.InvalidBinding` for an expiry not after ``now``.
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
        self._check_open()
        existing_id = self._by_proof.get(proof_id)
        if existing_id is not None:
            existing = self._rows[existing_id]
            if (existing.e164, existing.push_token, existing.request_id) == (e164, push_token, request_id):
                return existing  # the same REG-REQ delivered twice: one binding, as one proof
            raise DuplicateProof(f"proof id {proof_id.hex()} is already recorded for another request")
        rowid = len(self._rows)
        self._rows.append(binding)
        self._by_proof[proof_id] = rowid
        self._by_number.setdefault(e164, []).append(rowid)
        heapq.heappush(self._expiry, (expires_at, rowid))
        self._counts[binding.state.value] += 1
        return binding

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
        """Spend the proof and activate its binding, superseding the number's active one, atomically
        (see :meth:`SqliteStorage.authenticate`); None when the proof was spent before.

        Raises, having written nothing, :class:`ProofExpired`, :class:`UnknownProof`, :class:`ProofMismatch`,
        :class:`BindingNotPending`, :class:`ProofSuperseded` (a newer binding of the number is active),
        :class:`~identity_core.bindings.BindingLapsed` or
        :class:`~identity_core.bindings.InvalidBinding`.
        """
        self._check_open()
        if not proof_expires_at > now:
            raise ProofExpired(f"proof id {proof_id.hex()} expired at {proof_expires_at} (now {now})")
        rowid = self._by_proof.get(proof_id)
        if rowid is None:
            raise UnknownProof(f"no binding was recorded for proof id {proof_id.hex()}")
        pending = self._rows[rowid]
        if pending.e164 != e164 or pending.push_token != push_token:
            raise ProofMismatch(f"proof id {proof_id.hex()} was issued for another number or device")
        if pending.activated_at is not None:
            return None  # spent: activated_at stays set through every later state
        if pending.state is not BindingState.PENDING:
            raise BindingNotPending(pending)
        old_id = self._active.get(e164)
        # Row ids are the order the REG-REQs were recorded in: only a newer registration supersedes, and only while
        # it is still active as of now (one that ran out is expired, swept or not: see SqliteStorage).
        if old_id is not None and old_id > rowid and as_of(self._rows[old_id], now).state is BindingState.ACTIVE:
            raise ProofSuperseded(f"proof id {proof_id.hex()}: a newer binding of {e164} is active")
        # Both transitions are computed before anything is written, so that a refusal writes nothing.
        active = transition(pending, BindingEvent.AUTHENTICATED, now, expires_at=cert_expires_at)
        superseded: Binding | None = None
        if old_id is not None:
            old = self._rows[old_id]
            ended = as_of(old, now)  # ran out before now: lapsed, not superseded (see SqliteStorage)
            if ended is old:
                superseded = ended = transition(old, BindingEvent.SUPERSEDED, now)
            self._put(old_id, ended)
        self._put(rowid, active)
        return Activation(active, superseded)

    async def revoke(
        self, e164: str, reason: Reason, now: float, *, recorded_by: float | None = None
    ) -> Binding | None:
        """Revoke every live binding of ``e164`` for a carrier event, only those created at or before
        ``recorded_by`` when it is given (see :meth:`SqliteStorage.revoke`)."""
        event = _REVOCATIONS.get(reason)
        if event is None:
            raise ValueError(f"{reason} is not a carrier event; use {', '.join(_REVOCATIONS)}")
        self._check_open()
        return self._end_live(e164, event, now, recorded_by)

    async def delete(self, e164: str, now: float) -> bool:
        """Revoke every live binding of ``e164`` with reason ``deleted``; True if there was one."""
        self._check_open()
        return self._end_live(e164, BindingEvent.DELETED, now) is not None

    async def expire_due(self, now: float) -> int:
        """Expire every live binding whose ``expires_at`` is at or before ``now``, stamped at that
        ``expires_at``; return how many."""
        self._check_open()
        expired = 0
        while self._expiry and self._expiry[0][0] <= now:
            expires_at, rowid = heapq.heappop(self._expiry)
            binding = self._rows[rowid]
            if binding.state not in _LIVE or binding.expires_at != expires_at:
                continue  # a stale entry: the row ended, or activation gave it a new expiry (pushed anew)
            # Stamped when it ran out, not when this sweep noticed: as SqliteStorage.expire_due and as_of do.
            self._put(rowid, transition(binding, BindingEvent.EXPIRED, expires_at))
            expired += 1
        return expired

    # ------------------------------------------------------------------------------------------- reads

    async def get(self, e164: str) -> Binding | None:
        """The current binding of ``e164``: the active one, else the latest of any state, else None."""
        self._check_open()
        active = self._active.get(e164)
        if active is not None:
            return self._rows[active]
        ids = self._by_number.get(e164)
        return self._rows[ids[-1]] if ids else None

    async def get_by_proof(self, proof_id: bytes) -> Binding | None:
        """The binding recorded for ``proof_id``, in whatever state it now is; None if none was."""
        self._check_open()
        rowid = self._by_proof.get(proof_id)
        return None if rowid is None else self._rows[rowid]

    async def counts(self) -> dict[str, int]:
        """Bindings per state."""
        return {key: self._counts[key] for key in _COUNT_KEYS}

    async def close(self) -> None:
        """Take no more operations. Idempotent; the data goes with the object."""
        self._closed = True

    # ---------------------------------------------------------------------------------------- internals

    def _check_open(self) -> None:
        if self._closed:
            raise StorageClosed("the in-memory store is closed")

    def _put(self, rowid: int, after: Binding) -> None:
        """Replace a row with its next state, keeping the indices and counts in step."""
        before = self._rows[rowid]
        self._rows[rowid] = after
        self._counts[before.state.value] -= 1
        self._counts[after.state.value] += 1
        if before.state is BindingState.ACTIVE:
            del self._active[before.e164]
        if after.state is BindingState.ACTIVE:
            self._active[after.e164] = rowid
        if after.state in _LIVE and after.expires_at != before.expires_at:
            heapq.heappush(self._expiry, (after.expires_at, rowid))

    def _end_live(
        self, e164: str, event: BindingEvent, now: float, recorded_by: float | None = None
    ) -> Binding | None:
        live = [
            rowid for rowid in self._by_number.get(e164, ())
            if self._rows[rowid].state in _LIVE and (recorded_by is None or self._rows[rowid].created_at <= recorded_by)
        ]
        ended: list[tuple[int, Binding]] = []
        for rowid in live:
            before = self._rows[rowid]
            lapsed = as_of(before, now)
            if lapsed is not before:
                self._put(rowid, lapsed)  # ran out before now: expired, not live (see SqliteStorage._end_live)
            else:
                ended.append((rowid, transition(before, event, now)))
        result: Binding | None = None
        was_active: Binding | None = None
        for rowid, after in ended:
            if self._rows[rowid].state is BindingState.ACTIVE:
                was_active = after
            self._put(rowid, after)
            result = after
        return was_active if was_active is not None else result

