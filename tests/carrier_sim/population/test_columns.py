"""Population columns: shards concatenate to the whole (columns and draws), draws are per-phone sequences, and MSISDN
lookup finds rows."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carrier_sim.population.columns import NO_FLOW, STATE_IDLE, Population, shard_bounds
from carrier_sim.population.randomness import CounterRng, Stream
from carrier_sim.scenario import model

Factory = Callable[..., model.Scenario]
THINK = model.Distribution("lognormal", median=1.0, sigma=0.5)
WAIT = model.Distribution("exponential", mean=3.0)


def _run_draws(pop: Population) -> list[np.ndarray]:
    """A few rounds of draws over every row, the way a flow would take them."""
    rows = np.arange(len(pop))
    return [pop.draw(THINK, rows, Stream.THINK), pop.uniform(rows, Stream.RECEIPT), pop.draw(WAIT, rows, Stream.THINK)]


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(min_value=0, max_value=2**63),
    phones=st.integers(min_value=0, max_value=3000),
    cuts=st.tuples(st.floats(0, 1), st.floats(0, 1)),
)
def test_shards_concatenate_to_the_single_shard(make_scenario: Factory, seed: int, phones: int,
                                                cuts: tuple[float, float]) -> None:
    scenario = make_scenario(phones=phones, seed=seed)
    a, b = sorted(int(c * phones) for c in cuts)
    whole = Population(scenario)
    parts = [Population(scenario, lo, hi, plan=whole.plan) for lo, hi in ((0, a), (a, b), (b, phones))]
    for name, column in whole.columns().items():
        joined = np.concatenate([p.columns()[name] for p in parts])
        assert joined.dtype == column.dtype
        assert np.array_equal(joined, column, equal_nan=column.dtype.kind == "f"), name
    whole_draws = _run_draws(whole)
    part_draws = [_run_draws(p) for p in parts]
    for k, expected in enumerate(whole_draws):
        assert np.array_equal(np.concatenate([d[k] for d in part_draws]), expected)


def test_thirds_match_the_whole_for_a_larger_population(make_scenario: Factory) -> None:
    scenario = make_scenario(phones=60_000, seed=2024)
    whole = Population(scenario)
    thirds = [Population(scenario, lo, hi) for lo, hi in shard_bounds(60_000, 3)]
    for name, column in whole.columns().items():
        assert np.array_equal(np.concatenate([p.columns()[name] for p in thirds]), column, equal_nan=True), name


def test_column_types_and_initial_values(make_scenario: Factory) -> None:
    pop = Population(make_scenario(phones=100), 10, 60)
    assert len(pop) == 50
    assert pop.index.tolist() == list(range(10, 60))
    expected = {"index": np.int64, "carrier": np.int16, "msisdn": np.int64, "condition": np.int8, "flow": np.int8,
                "push_seed": np.uint64, "state": np.int8, "next_due": np.float64, "started_at": np.float64,
                "step_at": np.float64, "attempts": np.int16, "sim": np.uint8, "draws": np.uint32}
    assert {k: v.dtype.type for k, v in pop.columns().items()} == expected
    assert np.all(pop.state == STATE_IDLE)
    assert np.all(np.isinf(pop.next_due))
    assert np.all(np.isnan(pop.started_at))
    assert set(np.unique(pop.flow).tolist()) <= {0, 1}


def test_flows_follow_their_weights(make_scenario: Factory) -> None:
    pop = Population(make_scenario(phones=40_000))
    share = float(np.mean(pop.flow == 0))
    assert abs(share - 0.75) < 6 * (0.75 * 0.25 / 40_000) ** 0.5


def test_no_flows_means_no_flow(make_scenario: Factory) -> None:
    scenario = make_scenario(phones=10)
    bare = model.Scenario(scenario.name, scenario.seed, scenario.clock, scenario.carriers, scenario.population,
                          scenario.system_under_test, scenario.load, flows=())
    assert np.all(Population(bare).flow == NO_FLOW)


def test_a_phones_kth_draw_is_a_pure_function_of_seed_index_stream_k(make_scenario: Factory) -> None:
    scenario = make_scenario(phones=500, seed=77)
    pop = Population(scenario, 100, 400)
    rows = np.asarray([5, 17, 200])
    first = pop.draw(THINK, rows, Stream.THINK)
    pop.draw(THINK, np.asarray([17]), Stream.THINK)  # phone 117 draws once more than the others
    second = pop.draw(THINK, rows, Stream.THINK)
    rng = CounterRng(77)
    idx = rows + 100
    assert np.array_equal(first, rng.sample(THINK, idx, Stream.THINK, 0))
    assert np.array_equal(second, rng.sample(THINK, idx, Stream.THINK, np.asarray([1, 2, 1])))
    assert pop.draws[rows].tolist() == [2, 3, 2]


def test_a_fixed_draw_is_what_sampling_gives_and_still_takes_its_draw_number(make_scenario: Factory) -> None:
    scenario = make_scenario(phones=50)
    fast, general = Population(scenario), Population(scenario)
    rows = np.asarray([3, 9, 3, 40])
    fixed = model.Distribution("fixed", value=1.25)
    assert fast.draw(fixed, rows, Stream.THINK).tolist() == [1.25] * 4
    # What the general path gives for the same coordinates, and the numbering every later draw depends on.
    k = general._take_draw_numbers(rows)
    assert np.array_equal(general.rng.sample(fixed, general.index[rows], Stream.THINK, k), [1.25] * 4)
    assert np.array_equal(fast.draws, general.draws)
    assert np.array_equal(fast.draw(THINK, rows, Stream.THINK), general.draw(THINK, rows, Stream.THINK))


def test_draw_order_across_phones_does_not_matter(make_scenario: Factory) -> None:
    scenario = make_scenario(phones=300)
    one, two = Population(scenario), Population(scenario)
    rows = np.arange(300)
    a = one.draw(WAIT, rows, Stream.THINK)
    b = np.empty(300)
    for chunk in np.array_split(rows[::-1], 7):  # other order, other batching
        b[chunk] = two.draw(WAIT, chunk, Stream.THINK)
    assert np.array_equal(a, b)


def test_row_and_index_of_msisdn(make_scenario: Factory) -> None:
    scenario = make_scenario(phones=3000)
    pop = Population(scenario, 1000, 2000)
    rows = np.arange(0, 1000, 7)
    assert np.array_equal(pop.row_of_msisdn(pop.msisdn[rows]), rows)
    assert np.array_equal(pop.index_of_msisdn(pop.msisdn[rows]), rows + 1000)
    assert pop.row_of_msisdn(int(pop.msisdn[3])) == 3
    assert pop.index_of_msisdn(int(pop.msisdn[3])) == 1003
    elsewhere = Population(scenario, 0, 1000).msisdn[:50]
    assert np.all(pop.row_of_msisdn(elsewhere) == -1)
    assert pop.row_of_msisdn(np.asarray([0, 10**15])).tolist() == [-1, -1]
    assert pop.index_of_msisdn(1) == -1
    # the analytic plan lookup agrees, and knows the other shards' phones too
    assert np.array_equal(pop.plan.index_of_msisdn(elsewhere), np.arange(50))


def test_lookup_in_an_empty_shard(make_scenario: Factory) -> None:
    pop = Population(make_scenario(phones=10), 5, 5)
    assert pop.row_of_msisdn(447700900000) == -1
    assert pop.row_of_msisdn(np.asarray([1, 2])).tolist() == [-1, -1]


def test_identity_strings_follow_the_sim_column(make_scenario: Factory) -> None:
    pop = Population(make_scenario(phones=100), 50, 100)
    before = pop.identity(3)
    assert before.index == 53
    assert before.imsi == pop.imsi_of(3)
    assert before.imei == pop.imei_of(3)
    pop.sim[3] += 1
    assert pop.imsi_of(3) != before.imsi
    assert pop.iccid_of(3) != before.iccid
    assert pop.identity(3).imei == before.imei


def test_rows_of_checks_the_shard(make_scenario: Factory) -> None:
    pop = Population(make_scenario(phones=100), 50, 100)
    assert pop.rows_of([50, 99]).tolist() == [0, 49]
    with pytest.raises(IndexError):
        pop.rows_of([49])
    with pytest.raises(ValueError, match="not inside"):
        Population(make_scenario(phones=100), 50, 101)


@given(phones=st.integers(0, 10**7), shards=st.integers(1, 64))
def test_shard_bounds_cover_the_population_evenly(phones: int, shards: int) -> None:
    bounds = shard_bounds(phones, shards)
    assert bounds[0][0] == 0
    assert bounds[-1][1] == phones
    assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
    sizes = [hi - lo for lo, hi in bounds]
    assert max(sizes) - min(sizes) <= 1
