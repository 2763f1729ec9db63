"""Arrivals: the rate profile integrates and inverts correctly, arrival counts match the integral within binomial
tolerance, times follow the ramps, and neither depends on sharding; the closed model's shares add up."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carrier_sim.population.arrivals import (
    Arrivals,
    ConcurrencyProfile,
    RateProfile,
    arrival_probability,
    carried_share,
    open_arrivals,
)
from carrier_sim.population.randomness import CounterRng
from carrier_sim.scenario.model import Phase

RAMPS = (
    Phase("warm-up", 10.0, 0.0, 200.0),      # mass 1000
    Phase("quiet", 5.0, 0.0, 0.0),           # mass 0
    Phase("instant", 0.0, 50.0, 50.0),       # zero length
    Phase("plateau", 20.0, 300.0, 300.0),    # mass 6000
    Phase("cool-down", 10.0, 300.0, 100.0),  # mass 2000
)
TOTAL = 9000.0


def test_total_and_cumulative_are_the_integral() -> None:
    profile = RateProfile(RAMPS)
    assert profile.total == pytest.approx(TOTAL)
    assert profile.end == 45.0
    assert profile.cumulative(np.asarray([-1.0, 0.0, 5.0, 10.0, 12.0, 15.0, 25.0, 35.0, 40.0, 45.0, 99.0])).tolist() \
        == pytest.approx([0, 0, 250, 1000, 1000, 1000, 4000, 7000, 8250, 9000, 9000])
    assert profile.rate(np.asarray([-1.0, 5.0, 12.0, 20.0, 40.0, 45.0])).tolist() == pytest.approx(
        [0, 100, 0, 300, 200, 0])


def test_inverse_inverts_the_cumulative() -> None:
    profile = RateProfile(RAMPS)
    y = np.linspace(0.0, TOTAL, 10_001)
    t = profile.inverse(y)
    assert np.all(np.diff(t) >= 0)
    assert np.allclose(profile.cumulative(t), y, rtol=0, atol=1e-6)
    # never inside the silent phase: everything from 1000 on starts at the plateau
    assert not np.any((t > 10.0) & (t < 15.0))


def _check_counts(arrivals: Arrivals, phones: int, profile: RateProfile) -> None:
    p = arrival_probability(profile, phones)
    n = len(arrivals.indices)
    assert abs(n - phones * p) < 5 * math.sqrt(phones * p * (1 - p))
    # per phase: each phone lands in phase j with probability p * mass_j / total (binomial again)
    edges = profile.phase_starts
    counts = np.histogram(arrivals.times, bins=edges)[0]
    masses = np.diff(profile.cumulative(edges))
    for count, mass in zip(counts, masses, strict=True):
        q = p * mass / profile.total
        assert abs(count - phones * q) <= 5 * math.sqrt(phones * q * (1 - q)) + 1e-9


@pytest.mark.parametrize("seed", [1, 2, 3, 2**40 + 7])
def test_arrival_counts_match_the_integral(seed: int) -> None:
    profile = RateProfile(RAMPS)
    phones = 36_000  # p = 1/4
    arrivals = open_arrivals(profile, CounterRng(seed), phones)
    _check_counts(arrivals, phones, profile)
    assert np.all(np.diff(arrivals.times) >= 0)
    assert arrivals.times.min() >= 0
    assert arrivals.times.max() <= profile.end
    assert len(np.unique(arrivals.indices)) == len(arrivals.indices)


def test_arrival_times_follow_the_ramp_shape() -> None:
    profile = RateProfile(RAMPS)
    arrivals = open_arrivals(profile, CounterRng(5), 36_000)
    n = len(arrivals.times)
    # the empirical CDF at a few points against Λ(t)/Λ_total (binomial sd at each point)
    for t in (2.0, 7.0, 10.0, 20.0, 33.0, 41.0):
        f = float(profile.cumulative(t)) / TOTAL
        got = float(np.mean(arrivals.times <= t))
        assert abs(got - f) <= 5 * math.sqrt(f * (1 - f) / n) + 1e-12, t


def test_a_population_smaller_than_the_load_all_arrives() -> None:
    profile = RateProfile(RAMPS)
    arrivals = open_arrivals(profile, CounterRng(1), 4000)
    assert arrival_probability(profile, 4000) == 1.0
    assert sorted(arrivals.indices.tolist()) == list(range(4000))


def test_a_small_population_thins_every_phase_by_the_carried_share() -> None:
    # Each phone arrives at most once: 4,000 phones carry 4,000 of the 9,000 declared arrivals, and every phase
    # loses the same share, which is what `carrier-sim plan` and the report's load.target say.
    profile = RateProfile(RAMPS)
    share = carried_share(profile.total, 4000)
    assert share == pytest.approx(4000 / TOTAL)
    arrivals = open_arrivals(profile, CounterRng(2), 4000)
    counts = np.histogram(arrivals.times, bins=profile.phase_starts)[0]
    for count, mass in zip(counts, np.diff(profile.cumulative(profile.phase_starts)), strict=True):
        q = mass / profile.total  # a phone's chance of landing in the phase, given that it arrives
        assert abs(count - mass * share) <= 5 * math.sqrt(4000 * q * (1 - q)) + 1e-9


def test_carried_share() -> None:
    assert carried_share(630.0, 600) == pytest.approx(600 / 630)
    assert carried_share(600.0, 600) == 1.0
    assert carried_share(100.0, 600) == 1.0  # fewer arrivals than phones: nothing thinned
    assert carried_share(0.0, 600) == 1.0
    assert carried_share(100.0, 0) == 0.0


def test_no_load_means_no_arrivals() -> None:
    assert len(open_arrivals(RateProfile((Phase("idle", 10.0),)), CounterRng(1), 100).indices) == 0
    assert len(open_arrivals(RateProfile(()), CounterRng(1), 100).indices) == 0


def test_order_is_by_time_then_index() -> None:
    arrivals = open_arrivals(RateProfile(RAMPS), CounterRng(1), 20_000)
    order = np.lexsort((arrivals.indices, arrivals.times))
    assert np.array_equal(order, np.arange(len(order)))


def test_equal_times_are_ordered_by_index_in_every_shard() -> None:
    # Far from 0 a double's spacing is 16 s, so a 1 s burst rounds every arrival onto one or two instants.
    profile = RateProfile((Phase("wait", 1e17, 0.0, 0.0), Phase("burst", 1.0, 500.0, 500.0)))
    whole = open_arrivals(profile, CounterRng(3), 1000)
    assert len(np.unique(whole.times)) < 3
    assert np.array_equal(whole.indices, np.sort(whole.indices))
    halves = [open_arrivals(profile, CounterRng(3), 1000, lo, hi) for lo, hi in ((0, 500), (500, 1000))]
    assert np.array_equal(np.concatenate([h.indices for h in halves]), whole.indices)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**64 - 1), phones=st.integers(0, 4000), cuts=st.tuples(st.floats(0, 1), st.floats(0, 1)))
def test_arrivals_do_not_depend_on_sharding(seed: int, phones: int, cuts: tuple[float, float]) -> None:
    profile = RateProfile(RAMPS[:1] + RAMPS[3:])
    rng = CounterRng(seed)
    whole = open_arrivals(profile, rng, phones)
    a, b = sorted(int(c * phones) for c in cuts)
    parts = [open_arrivals(profile, rng, phones, lo, hi) for lo, hi in ((0, a), (a, b), (b, phones))]
    idx = np.concatenate([p.indices for p in parts])
    t = np.concatenate([p.times for p in parts])
    order = np.lexsort((idx, t))
    assert np.array_equal(idx[order], whole.indices)
    assert np.array_equal(t[order], whole.times)


def test_refuses_bad_phases_and_shards() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        RateProfile((Phase("bad", 1.0, -1.0, 1.0),))
    with pytest.raises(ValueError, match="not inside"):
        open_arrivals(RateProfile(RAMPS), CounterRng(1), 10, 5, 11)


CLOSED = (Phase("low", 10.0, concurrency=100), Phase("high", 20.0, concurrency=1000), Phase("off", 5.0))


def test_closed_concurrency_per_phase() -> None:
    profile = ConcurrencyProfile(CLOSED, phones=5000)
    assert [profile.in_flight(t) for t in (-1.0, 0.0, 9.99, 10.0, 29.0, 31.0, 35.0)] == [0, 100, 100, 1000, 1000, 0, 0]
    assert profile.phase_at(12.0) == 1
    assert profile.phase_at(35.0) is None
    assert profile.changes.tolist() == [0.0, 10.0, 30.0, 35.0]
    assert ConcurrencyProfile(CLOSED, phones=300).in_flight(15.0) == 300  # capped by the population


@given(phones=st.integers(1, 10**6), cuts=st.lists(st.floats(0, 1), max_size=6), t=st.floats(0, 34.9))
def test_closed_shard_shares_add_up(phones: int, cuts: list[float], t: float) -> None:
    profile = ConcurrencyProfile(CLOSED, phones=phones)
    edges = [0, *sorted(int(c * phones) for c in cuts), phones]
    shares = [profile.in_flight(t, lo, hi) for lo, hi in itertools.pairwise(edges)]
    assert sum(shares) == profile.in_flight(t)
    assert all(0 <= s <= hi - lo for s, (lo, hi) in zip(shares, itertools.pairwise(edges), strict=True))


def test_closed_entry_order_is_shard_independent() -> None:
    rng = CounterRng(4)
    whole = ConcurrencyProfile.entry_order(rng, 0, 1000)
    part = ConcurrencyProfile.entry_order(rng, 300, 700)
    assert np.array_equal(whole[(whole >= 300) & (whole < 700)], part)
    assert not np.array_equal(whole, np.arange(1000))
