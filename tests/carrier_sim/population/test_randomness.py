"""The counter-based generator: pure per (seed, index, stream, k), uniform enough, with correct inverse CDFs; and
the keyed permutation is a bijection with an exact inverse."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.population.randomness import CounterRng, KeyedPermutation, Stream, inverse_normal_cdf, quantile
from carrier_sim.scenario.model import Distribution

M = 200_000


@pytest.mark.parametrize("word", [0, 2**64 - 1, 2**64 - 2**11, 2**11 - 1])
def test_uniform_of_extreme_bits_lies_strictly_inside_the_unit_interval(monkeypatch: pytest.MonkeyPatch,
                                                                         word: int) -> None:
    # With 53 bits, all ones mapped to (2**53 - 1 + 0.5) * 2**-53, which rounds to exactly 1.0: an infinite
    # exponential think time and a NaN lognormal.
    monkeypatch.setattr(CounterRng, "bits", lambda self, index, stream, k=0: np.full(2, word, dtype=np.uint64))
    u = CounterRng(1).uniform(np.arange(2), Stream.THINK)
    assert bool(np.all((u > 0.0) & (u < 1.0))), u
    assert np.all(np.isfinite(quantile(Distribution(kind="exponential", mean=1.0), u)))
    assert np.all(np.isfinite(quantile(Distribution(kind="lognormal", median=1.0, sigma=0.5), u)))


def test_uniforms_are_in_the_open_unit_interval_with_the_right_moments() -> None:
    u = CounterRng(3).uniform(np.arange(M), Stream.THINK)
    assert u.min() > 0.0
    assert u.max() < 1.0
    # mean 1/2 (sd 1/sqrt(12 M)), variance 1/12; 6 sd bounds keep the fixed seed far from flaky
    assert abs(u.mean() - 0.5) < 6 / math.sqrt(12 * M)
    assert abs(u.var() - 1 / 12) < 0.002
    counts = np.bincount((u * 20).astype(int), minlength=20)
    expected = M / 20
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 60  # 19 degrees of freedom: P(chi2 > 60) ~ 1e-6


@given(
    seed=st.integers(min_value=-(2**70), max_value=2**70),
    index=st.lists(st.integers(min_value=0, max_value=2**40), min_size=1, max_size=50),
    k=st.integers(min_value=0, max_value=2**31),
)
def test_a_draw_depends_only_on_its_own_coordinates(seed: int, index: list[int], k: int) -> None:
    rng = CounterRng(seed)
    together = rng.uniform(np.asarray(index), Stream.THINK, k)
    alone = [float(rng.uniform(np.asarray([i]), Stream.THINK, k)[0]) for i in index]
    assert together.tolist() == alone
    assert CounterRng(seed).uniform(np.asarray(index[::-1]), Stream.THINK, k).tolist() == alone[::-1]


def test_streams_seeds_and_draw_numbers_give_unrelated_values() -> None:
    idx = np.arange(10_000)
    base = CounterRng(1).uniform(idx, Stream.THINK, 0)
    others = [
        CounterRng(2).uniform(idx, Stream.THINK, 0),
        CounterRng(1).uniform(idx, Stream.RECEIPT, 0),
        CounterRng(1).uniform(idx, Stream.THINK, 1),
        CounterRng(-1).uniform(idx, Stream.THINK, 0),
    ]
    for other in others:
        assert abs(np.corrcoef(base, other)[0, 1]) < 0.05
        assert not np.array_equal(base, other)


def test_per_phone_draw_numbers_broadcast() -> None:
    rng = CounterRng(5)
    k = np.asarray([0, 3, 7])
    got = rng.uniform(np.asarray([10, 11, 12]), Stream.THINK, k)
    one_by_one = [float(rng.uniform(np.asarray([i]), Stream.THINK, j)[0]) for i, j in [(10, 0), (11, 3), (12, 7)]]
    assert got.tolist() == one_by_one


def test_negative_indices_are_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        CounterRng(1).uniform(np.asarray([-1]), Stream.THINK)


def test_inverse_normal_cdf_matches_the_standard_library() -> None:
    u = np.concatenate([np.linspace(1e-9, 1 - 1e-9, 20_001), [1e-300, 1e-12, 0.02425, 0.97575, 1 - 1e-12]])
    reference = np.asarray([statistics.NormalDist().inv_cdf(float(x)) for x in u])
    assert np.max(np.abs(inverse_normal_cdf(u) - reference) / np.maximum(1.0, np.abs(reference))) < 2e-9


def test_every_distribution_kind_samples_what_it_promises() -> None:
    rng = CounterRng(11)
    idx = np.arange(M)
    fixed = rng.sample(Distribution("fixed", value=1.5), idx, Stream.THINK)
    assert np.all(fixed == 1.5)
    uniform = rng.sample(Distribution("uniform", low=2.0, high=4.0), idx, Stream.THINK)
    assert uniform.min() >= 2.0
    assert uniform.max() <= 4.0
    assert abs(uniform.mean() - 3.0) < 6 * (2 / math.sqrt(12)) / math.sqrt(M)
    expo = rng.sample(Distribution("exponential", mean=0.5), idx, Stream.THINK)
    assert expo.min() > 0.0
    assert abs(expo.mean() - 0.5) < 6 * 0.5 / math.sqrt(M)
    logn = rng.sample(Distribution("lognormal", median=0.2, sigma=0.8), idx, Stream.THINK)
    # the sample median's sd is about 1.2533 * sd / sqrt(M) in log space
    assert abs(math.log(float(np.median(logn))) - math.log(0.2)) < 6 * 1.2533 * 0.8 / math.sqrt(M)
    assert abs(float(np.log(logn).std()) - 0.8) < 0.01


def test_samples_are_monotone_in_their_uniform() -> None:
    u = np.linspace(0.001, 0.999, 999)
    for dist in (Distribution("uniform", low=1, high=2), Distribution("exponential", mean=1),
                 Distribution("lognormal", median=1, sigma=2)):
        assert np.all(np.diff(quantile(dist, u)) > 0)


def test_choice_follows_the_weights() -> None:
    picks = CounterRng(9).choice([3.0, 1.0, 0.0], np.arange(M), Stream.FLOW)
    counts = np.bincount(picks, minlength=3)
    assert counts[2] == 0
    sd = math.sqrt(M * 0.75 * 0.25)
    assert abs(counts[0] - 0.75 * M) < 6 * sd


@given(size=st.integers(min_value=0, max_value=5000), seed=st.integers(), purpose=st.integers(0, 100))
def test_keyed_permutation_is_a_bijection_with_an_inverse(size: int, seed: int, purpose: int) -> None:
    perm = KeyedPermutation(size, seed, purpose)
    values = np.arange(size)
    image = perm.forward(values)
    assert np.array_equal(np.sort(image), values)
    assert np.array_equal(perm.inverse(image), values)


def test_keyed_permutation_shuffles() -> None:
    image = KeyedPermutation(100_000, 1, 1).forward(np.arange(100_000))
    assert abs(np.corrcoef(np.arange(100_000), image)[0, 1]) < 0.02
    assert not np.array_equal(image, KeyedPermutation(100_000, 2, 1).forward(np.arange(100_000)))


def test_keyed_permutation_refuses_values_outside_its_domain() -> None:
    with pytest.raises(ValueError, match="must lie"):
        KeyedPermutation(10, 1, 1).forward(np.asarray([10]))
