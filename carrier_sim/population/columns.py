"""A shard of the population as numpy columns: one row per phone, no Python object per phone.

Theory of operation
-------------------
A shard holds the phones with global indices ``start..stop-1``; row ``r`` is phone ``start + r``. Columns that say
*who* a phone is (carrier, MSISDN, condition, flow, push-token seed) come from the
:class:`~carrier_sim.population.identities.NumberingPlan` and the counter-based generator, both pure functions of
(scenario, global index), so the rows of shards ``[0, a)``, ``[a, b)``, ``[b, N)`` concatenated are exactly the
rows of one shard ``[0, N)``. Columns that say *where* a phone is in its flow (state, next_due, timestamps,
counters) start empty and are the flow machinery's to write.

Randomness during the run goes through :meth:`Population.draw`: phone ``i``'s ``k``-th draw uses ``k`` from the
phone's own ``draws`` counter, so what phone ``i`` draws depends on its own history only, never on what other
phones in the shard did before it or on the order the scheduler handed phones over.

Everything takes **rows** (shard-local positions, what the scheduler hands out) except where a name says
``index`` (global). Methods that advance per-phone counters assume the rows in one call are distinct, as the
scheduler's :meth:`~carrier_sim.population.scheduler.DueQueue.pop_due` guarantees: a phone listed twice in one
call would get the same draw twice.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Final, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carrier_sim.population.identities import NumberingPlan, PhoneIdentity
from carrier_sim.population.randomness import CounterRng, Stream
from carrier_sim.scenario import model

__all__ = ["NO_FLOW", "STATE_IDLE", "Population", "shard_bounds"]

#: ``state`` of a phone that has not arrived yet. Flow modules own the other values (1..127).
STATE_IDLE: Final = 0
#: ``flow`` of a phone in a scenario that declares no flows.
NO_FLOW: Final = -1


def shard_bounds(phones: int, shards: int) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` index ranges splitting ``phones`` over ``shards`` as evenly as integers allow.

    Any split gives the same phones; this one is only the runner's default."""
    if shards < 1:
        raise ValueError("shards must be at least 1")
    edges = [k * phones // shards for k in range(shards + 1)]
    return list(itertools.pairwise(edges))


class Population:
    """The phones ``start..stop-1`` of a scenario as columns.

    Identity columns (immutable during a run): ``index`` (int64, global), ``carrier`` (int16, position in
    ``scenario.carriers``), ``msisdn`` (int64), ``condition`` (int8, :class:`PhoneCondition`), ``flow`` (int8,
    position in ``scenario.flows``, weighted by ``Flow.weight``), ``push_seed`` (uint64, seeds a phone's push
    token). Flow columns: ``state`` (int8), ``next_due`` (float64, ``inf`` when nothing is due — write it through
    :class:`~carrier_sim.population.scheduler.DueQueue`), ``started_at`` and ``step_at`` (float64, NaN until set),
    ``attempts`` (int16), ``sim`` (uint8, SIM generation, +1 per SIM swap; identities exist for generations 0..9 only,
    :data:`~carrier_sim.population.identities.SIM_GENERATIONS`), ``draws`` (uint32, random draws taken).
    """

    IDENTITY_COLUMNS: Final = ("index", "carrier", "msisdn", "condition", "flow", "push_seed")
    FLOW_COLUMNS: Final = ("state", "next_due", "started_at", "step_at", "attempts", "sim", "draws")

    def __init__(
        self,
        scenario: model.Scenario,
        start: int = 0,
        stop: int | None = None,
        plan: NumberingPlan | None = None,
    ) -> None:
        self.scenario = scenario
        self.plan = plan if plan is not None else NumberingPlan.from_scenario(scenario)
        self.rng = CounterRng(scenario.seed)
        total = self.plan.size
        stop = total if stop is None else stop
        if not 0 <= start <= stop <= total:
            raise ValueError(f"shard [{start}, {stop}) is not inside the population [0, {total})")
        self.start = start
        self.stop = stop
        n = stop - start

        self.index: NDArray[np.int64] = np.arange(start, stop, dtype=np.int64)
        self.carrier: NDArray[np.int16]
        self.msisdn: NDArray[np.int64]
        self.carrier, self.msisdn = self.plan.assign(self.index)
        self.condition: NDArray[np.int8] = self.plan.condition_of(self.index)
        if scenario.flows:
            weights = [f.weight for f in scenario.flows]
            self.flow: NDArray[np.int8] = self.rng.choice(weights, self.index, Stream.FLOW).astype(np.int8)
        else:
            self.flow = np.full(n, NO_FLOW, dtype=np.int8)
        self.push_seed: NDArray[np.uint64] = self.rng.bits(self.index, Stream.PUSH_TOKEN)

        self.state: NDArray[np.int8] = np.full(n, STATE_IDLE, dtype=np.int8)
        self.next_due: NDArray[np.float64] = np.full(n, np.inf, dtype=np.float64)
        self.started_at: NDArray[np.float64] = np.full(n, np.nan, dtype=np.float64)
        self.step_at: NDArray[np.float64] = np.full(n, np.nan, dtype=np.float64)
        self.attempts: NDArray[np.int16] = np.zeros(n, dtype=np.int16)
        self.sim: NDArray[np.uint8] = np.zeros(n, dtype=np.uint8)
        self.draws: NDArray[np.uint32] = np.zeros(n, dtype=np.uint32)

        self._msisdn_order: NDArray[np.int64] | None = None
        self._msisdn_sorted: NDArray[np.int64] | None = None

    def __len__(self) -> int:
        return self.stop - self.start

    def columns(self) -> dict[str, NDArray[np.generic]]:
        """Every column by name (the arrays themselves, not copies)."""
        return {name: getattr(self, name) for name in (*self.IDENTITY_COLUMNS, *self.FLOW_COLUMNS)}

    # -- rows and indices ---------------------------------------------------------------------------------------

    def rows_of(self, index: ArrayLike) -> NDArray[np.int64]:
        """Rows of global indices, which must belong to this shard."""
        idx = np.asarray(index, dtype=np.int64)
        if idx.size and (int(idx.min()) < self.start or int(idx.max()) >= self.stop):
            raise IndexError(f"indices outside this shard [{self.start}, {self.stop})")
        return idx - self.start

    def _sorted_msisdns(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        # Built on first use: a shard that never receives an MT (a pure MO load) never pays for the sort.
        if self._msisdn_order is None or self._msisdn_sorted is None:
            self._msisdn_order = np.argsort(self.msisdn, kind="stable").astype(np.int64)
            self._msisdn_sorted = self.msisdn[self._msisdn_order]
        return self._msisdn_order, self._msisdn_sorted

    @overload
    def row_of_msisdn(self, msisdn: int) -> int: ...
    @overload
    def row_of_msisdn(self, msisdn: NDArray[np.integer[Any]] | Sequence[int]) -> NDArray[np.int64]: ...
    def row_of_msisdn(self, msisdn: int | NDArray[np.integer[Any]] | Sequence[int]) -> int | NDArray[np.int64]:
        """The row of the phone with each MSISDN, -1 where no phone of this shard has it (binary search over the
        sorted column: O(log n) per number, vectorised)."""
        order, keys = self._sorted_msisdns()
        if isinstance(msisdn, int):
            # One number per delivered MT in a storm: a scalar search skips the array round trips (~1 us, not ~7).
            i = int(keys.searchsorted(msisdn))
            return int(order[i]) if i < len(keys) and int(keys[i]) == msisdn else -1
        m = np.atleast_1d(np.asarray(msisdn, dtype=np.int64))
        if len(keys) == 0:
            rows = np.full(m.shape, -1, dtype=np.int64)
        else:
            # searchsorted answers "where would it go"; clip so a number past the end compares against the last
            at = np.minimum(np.searchsorted(keys, m), len(keys) - 1)
            rows = np.where(keys[at] == m, order[at], -1).astype(np.int64)
        return int(rows[0]) if np.ndim(msisdn) == 0 else rows

    @overload
    def index_of_msisdn(self, msisdn: int) -> int: ...
    @overload
    def index_of_msisdn(self, msisdn: NDArray[np.integer[Any]] | Sequence[int]) -> NDArray[np.int64]: ...
    def index_of_msisdn(self, msisdn: int | NDArray[np.integer[Any]] | Sequence[int]) -> int | NDArray[np.int64]:
        """The global index of the phone with each MSISDN, -1 where no phone of this shard has it. (For phones of
        any shard, ask :meth:`NumberingPlan.index_of_msisdn`.)"""
        rows = np.atleast_1d(np.asarray(self.row_of_msisdn(np.atleast_1d(np.asarray(msisdn))), dtype=np.int64))
        out = np.where(rows >= 0, rows + self.start, -1).astype(np.int64)
        return int(out[0]) if np.ndim(msisdn) == 0 else out

    # -- randomness ---------------------------------------------------------------------------------------------

    def _take_draw_numbers(self, rows: NDArray[np.int64]) -> NDArray[np.uint32]:
        k = self.draws[rows]
        self.draws[rows] = k + np.uint32(1)
        return k

    def uniform(self, rows: ArrayLike, stream: int) -> NDArray[np.float64]:
        """One uniform in (0, 1) per row from each phone's own sequence; advances the phones' ``draws``."""
        r = np.asarray(rows, dtype=np.int64)
        return self.rng.uniform(self.index[r], stream, self._take_draw_numbers(r))

    def draw(self, dist: model.Distribution, rows: ArrayLike, stream: int) -> NDArray[np.float64]:
        """One sample of ``dist`` per row from each phone's own sequence; advances the phones' ``draws``.

        Phone ``i``'s ``k``-th draw is ``rng.sample(dist, i, stream, k)``: a pure function of (seed, i, stream, k)."""
        r = np.asarray(rows, dtype=np.int64)
        draws = self._take_draw_numbers(r)
        if dist.kind == "fixed":
            # Same answer as sampling (a fixed quantile ignores the uniform), without hashing for it: phones
            # take one think time per MT, so in a storm this was ~5 % of the runner's CPU. The draw number still
            # advances, so every later draw is the one it would have been.
            return np.full(r.shape, dist.value, dtype=np.float64)
        return self.rng.sample(dist, self.index[r], stream, draws)

    # -- identities as strings ----------------------------------------------------------------------------------

    def identity(self, row: int) -> PhoneIdentity:
        """Row ``row``'s identities as strings, with its current SIM generation."""
        return self.plan.identity(self.start + row, int(self.sim[row]))

    def imei_of(self, row: int) -> str:
        """Row ``row``'s IMEI."""
        return self.plan.imei_of(self.start + row)

    def imsi_of(self, row: int) -> str:
        """Row ``row``'s IMSI for its current SIM."""
        return self.plan.imsi_of(self.start + row, int(self.sim[row]), int(self.carrier[row]))

    def iccid_of(self, row: int) -> str:
        """Row ``row``'s ICCID for its current SIM."""
        return self.plan.iccid_of(self.start + row, int(self.sim[row]), int(self.carrier[row]))
