"""When phones arrive: the open model's rate ramps turned into per-phone arrival times, and the closed model's
concurrency turned into "how many in flight now" — both the same whichever shard a phone lives in.

Theory of operation (open model)
--------------------------------
The phases lay a piecewise-linear rate λ(t) end to end from t = 0 (phase p ramps from ``rate_from`` to ``rate_to``
over ``duration``). Its integral Λ(t) is piecewise quadratic and Λ_total = Σ duration·(rate_from + rate_to)/2 is
the expected number of arrivals. Each phone arrives at most once (a row is one device running its flow):

1. phone ``i`` arrives iff ``u_i < p`` with ``p = min(1, Λ_total / N)`` (``u_i`` its own ARRIVAL_PICK uniform);
2. an arriving phone arrives at ``t_i = Λ⁻¹(v_i · Λ_total)`` (``v_i`` its own ARRIVAL_TIME uniform).

Step 2 is inverse-transform sampling of the density λ(t)/Λ_total, so the arrival count is Binomial(N, p) with mean
Λ_total (sd √(Np(1−p))), and given the count the times are i.i.d. with the ramp's shape: a binomial process,
which is the Poisson process of rate λ(t) thinned to a finite population — indistinguishable from it when p is
small. Both draws are pure functions of (seed, i), so which phones arrive, and when, does not depend on sharding.
When Λ_total > N the population is too small for the load: every phone arrives, once, still shaped by λ(t), so the
run offers N arrivals instead of Λ_total and every phase's rate is thinned by the same factor
:func:`carried_share` = N / Λ_total. Phones do not run their flow again to make up the difference: a row holds one
device's state through its flow (its certificate, its SIM), which events and renewals read. ``carrier-sim plan``
shows the thinned rates and warns, and the JSON report's ``load`` gives the declared rate beside the thinned one
(``load.achieved_ratio`` cannot show it: it compares on-time arrivals with the thinned plan).

Closed model
------------
Phase p keeps ``concurrency`` phones running flows back to back. A shard holding ``[start, stop)`` of ``N`` phones
runs ⌊c·stop/N⌋ − ⌊c·start/N⌋ of them, so the shards' shares sum to exactly ``c`` for any contiguous split, and
phones enter in the order of a per-phone hashed key (:meth:`ConcurrencyProfile.entry_order`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from carrier_sim.population.randomness import CounterRng, Stream
from carrier_sim.scenario import model

__all__ = ["Arrivals", "ConcurrencyProfile", "RateProfile", "arrival_probability", "carried_share", "open_arrivals"]


class RateProfile:
    """The open model's arrival rate λ(t): phases end to end from t = 0, linear within each phase, 0 outside."""

    __slots__ = ("_cum", "_durations", "_rate_from", "_slopes", "_starts")

    def __init__(self, phases: Sequence[model.Phase]) -> None:
        for phase in phases:
            if phase.duration < 0 or phase.rate_from < 0 or phase.rate_to < 0:
                raise ValueError(f"phase {phase.name!r}: durations and rates must be non-negative")
        self._durations = np.asarray([p.duration for p in phases], dtype=np.float64)
        self._rate_from = np.asarray([p.rate_from for p in phases], dtype=np.float64)
        rate_to = np.asarray([p.rate_to for p in phases], dtype=np.float64)
        self._starts = np.concatenate(([0.0], np.cumsum(self._durations))).astype(np.float64)
        # A zero-length phase contributes nothing; a zero slope there avoids 0/0 and keeps it massless.
        self._slopes = np.divide(rate_to - self._rate_from, self._durations,
                                 out=np.zeros_like(self._durations), where=self._durations > 0)
        masses = self._durations * (self._rate_from + rate_to) / 2.0
        self._cum = np.concatenate(([0.0], np.cumsum(masses))).astype(np.float64)

    @classmethod
    def from_load(cls, load: model.Load) -> RateProfile:
        """The rate profile of a load's phases (meaningful for ``model: open``)."""
        return cls(load.phases)

    @property
    def total(self) -> float:
        """Λ_total: the expected number of arrivals over all phases."""
        return float(self._cum[-1])

    @property
    def end(self) -> float:
        """When the last phase ends."""
        return float(self._starts[-1])

    @property
    def phase_starts(self) -> NDArray[np.float64]:
        """Start time of each phase, then the end of the last (length phases + 1)."""
        return self._starts.copy()

    def _phase_of_time(self, t: NDArray[np.float64]) -> NDArray[np.intp]:
        return np.clip(np.searchsorted(self._starts, t, side="right") - 1, 0, max(len(self._durations) - 1, 0))

    def rate(self, t: ArrayLike) -> NDArray[np.float64]:
        """λ(t), elementwise (0 before 0 and after the end)."""
        tt = np.asarray(t, dtype=np.float64)
        if not len(self._durations):
            return np.zeros(tt.shape)
        p = self._phase_of_time(tt)
        value = self._rate_from[p] + self._slopes[p] * (tt - self._starts[p])
        return np.where((tt >= 0) & (tt < self.end), value, 0.0)

    def cumulative(self, t: ArrayLike) -> NDArray[np.float64]:
        """Λ(t) = ∫₀ᵗ λ, elementwise (0 before 0, Λ_total after the end)."""
        tt = np.clip(np.asarray(t, dtype=np.float64), 0.0, self.end)
        if not len(self._durations):
            return np.zeros(tt.shape)
        p = self._phase_of_time(tt)
        tau = np.minimum(tt - self._starts[p], self._durations[p])
        return np.asarray(self._cum[p] + self._rate_from[p] * tau + 0.5 * self._slopes[p] * tau * tau,
                          dtype=np.float64)

    def inverse(self, y: ArrayLike) -> NDArray[np.float64]:
        """The earliest t with Λ(t) = y, elementwise, for y in [0, Λ_total].

        Within a phase Λ(τ) = Λ_p + aτ + sτ²/2; its root is written τ = 2y'/(a + √(a² + 2sy')) rather than the
        textbook (−a + √…)/s, which cancels catastrophically when the slope s is small and divides by zero when
        it is 0."""
        yy = np.asarray(y, dtype=np.float64)
        if self.total <= 0:
            raise ValueError("the profile has no arrivals to invert")
        yy = np.clip(yy, 0.0, self.total)
        # side="right" on the phase ends skips massless phases (their end equals their start); the clip keeps
        # y == Λ_total (rounding) in the last phase that has any mass.
        last_massive = int(np.flatnonzero(np.diff(self._cum) > 0)[-1])
        p = np.minimum(np.searchsorted(self._cum[1:], yy, side="right"), last_massive)
        rest = np.maximum(yy - self._cum[p], 0.0)
        a = self._rate_from[p]
        disc = np.sqrt(np.maximum(a * a + 2.0 * self._slopes[p] * rest, 0.0))
        denom = a + disc
        tau = np.divide(2.0 * rest, denom, out=np.zeros_like(rest), where=denom > 0)
        return np.asarray(self._starts[p] + np.clip(tau, 0.0, self._durations[p]), dtype=np.float64)


class Arrivals(NamedTuple):
    """Arriving phones (global indices) and their times, sorted by time (ties by index). Unpacks as
    ``idx, t = arrivals``."""

    indices: NDArray[np.int64]
    times: NDArray[np.float64]


def carried_share(declared: float, phones: int) -> float:
    """The share of ``declared`` expected arrivals (Λ_total) a population of ``phones`` carries when each phone
    arrives at most once: min(1, N / Λ_total), and 1 when nothing is declared. Every phase is thinned by it alike,
    because an arriving phone's time is drawn from the whole profile's shape."""
    if declared <= 0:
        return 1.0
    return min(1.0, max(phones, 0) / declared)


def arrival_probability(profile: RateProfile, phones: int) -> float:
    """The chance a phone arrives at all: Λ_total / N, capped at 1 (then the population limits the load)."""
    if phones <= 0 or profile.total <= 0:
        return 0.0
    return min(1.0, profile.total / phones)


def open_arrivals(
    profile: RateProfile,
    rng: CounterRng,
    phones: int,
    start: int = 0,
    stop: int | None = None,
) -> Arrivals:
    """The arrivals among global indices ``start..stop-1`` of a population of ``phones``: who arrives and when,
    sorted by time. The union over any split of ``[0, phones)`` is the same set with the same times."""
    stop = phones if stop is None else stop
    if not 0 <= start <= stop <= phones:
        raise ValueError(f"shard [{start}, {stop}) is not inside the population [0, {phones})")
    index = np.arange(start, stop, dtype=np.int64)
    p = arrival_probability(profile, phones)
    if p <= 0 or not index.size:
        return Arrivals(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float64))
    picked = index if p >= 1.0 else index[rng.uniform(index, Stream.ARRIVAL_PICK) < p]
    times = profile.inverse(rng.uniform(picked, Stream.ARRIVAL_TIME) * profile.total)
    order = np.argsort(times)
    picked, times = picked[order], times[order]
    if times.size > 1 and bool((times[1:] == times[:-1]).any()):
        # Equal times (possible only by rounding) must still come out in one order whatever the shard: by index.
        order = np.lexsort((picked, times))
        picked, times = picked[order], times[order]
    return Arrivals(picked, times)


class ConcurrencyProfile:
    """The closed model: how many phones should be mid-flow at time t, overall or in one shard."""

    __slots__ = ("_concurrency", "_starts", "phones")

    def __init__(self, phases: Sequence[model.Phase], phones: int) -> None:
        if any(p.duration < 0 or p.concurrency < 0 for p in phases):
            raise ValueError("phase durations and concurrency must be non-negative")
        self.phones = phones
        self._starts = np.concatenate(([0.0], np.cumsum([p.duration for p in phases]))).astype(np.float64)
        # More phones in flight than exist cannot be: cap at the population, as the open model caps its rate.
        self._concurrency = np.minimum(np.asarray([p.concurrency for p in phases], dtype=np.int64), phones)

    @classmethod
    def from_scenario(cls, scenario: model.Scenario) -> ConcurrencyProfile:
        """The concurrency profile of a scenario's load and population."""
        return cls(scenario.load.phases, scenario.population.phones)

    @property
    def end(self) -> float:
        """When the last phase ends (nothing runs after)."""
        return float(self._starts[-1])

    @property
    def changes(self) -> NDArray[np.float64]:
        """The times at which the target may change (phase boundaries): when a runner should re-check."""
        return self._starts.copy()

    def phase_at(self, t: float) -> int | None:
        """The phase running at ``t`` (a phase covers [start, end)), or None before 0 and after the end."""
        if t < 0 or t >= self.end:
            return None
        return int(np.searchsorted(self._starts, t, side="right") - 1)

    def in_flight(self, t: float, start: int = 0, stop: int | None = None) -> int:
        """How many of the phones ``start..stop-1`` should be mid-flow at ``t``: ⌊c·stop/N⌋ − ⌊c·start/N⌋, so
        that any contiguous split's shares add up to exactly the phase's concurrency c."""
        stop = self.phones if stop is None else stop
        if not 0 <= start <= stop <= self.phones:
            raise ValueError(f"shard [{start}, {stop}) is not inside the population [0, {self.phones})")
        phase = self.phase_at(t)
        if phase is None or self.phones == 0:
            return 0
        c = int(self._concurrency[phase])
        return c * stop // self.phones - c * start // self.phones

    @staticmethod
    def entry_order(rng: CounterRng, start: int, stop: int) -> NDArray[np.int64]:
        """Global indices ``start..stop-1`` in the order they should be taken into the closed loop: ascending by
        a per-phone hashed key, so any two phones keep their relative order whatever the split."""
        index = np.arange(start, stop, dtype=np.int64)
        keys = rng.bits(index, Stream.CLOSED_ORDER)
        return index[np.argsort(keys, kind="stable")]
