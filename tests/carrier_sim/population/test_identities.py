"""Identities: valid formats (Luhn, lengths, prefixes), numbers inside their carrier's ranges, exact shares, and a
reverse lookup that inverts the assignment."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from stdnum import imei, imsi, luhn

from carrier_sim.population.identities import (
    IMEI_PREFIX,
    MAX_CARRIERS,
    SIM_GENERATIONS,
    NumberingPlan,
    PhoneCondition,
    PopulationError,
    largest_remainder,
)
from carrier_sim.scenario import model

Factory = Callable[..., model.Scenario]
N = 5000


@pytest.fixture(scope="module")
def plan(make_scenario: Factory) -> NumberingPlan:
    return NumberingPlan.from_scenario(make_scenario(phones=N, seed=7))


def _numbered_carriers(count: int) -> tuple[model.Carrier, ...]:
    """``count`` carriers, carrier ``k`` owning the thousand numbers 447000000000 + 1000·k onwards."""
    return tuple(
        model.Carrier(name=f"c{k}", mcc="001", mnc=f"{k % 100:02d}", country="GB",
                      ranges=(model.NumberRange(447000000000 + k * 1000, 447000000000 + k * 1000 + 999),),
                      smsc=model.Smsc(), gateway=f"44790000{k:04d}")
        for k in range(count)
    )


def test_more_than_127_carriers_keep_their_phones() -> None:
    # An int8 carrier column turned carrier 128 into -128, which indexed carrier 2 (wrong SMSC, wrong IMSI).
    carriers = _numbered_carriers(130)
    plan = NumberingPlan(carriers, model.Population(phones=1300, mix={}), seed=1)
    carrier, msisdn = plan.assign(np.arange(1300))
    owner = (msisdn - 447000000000) // 1000
    assert carrier.tolist() == owner.tolist()
    assert set(owner.tolist()) == set(range(130))
    for i in np.flatnonzero(owner >= 127)[:10]:
        home = carriers[int(owner[i])]
        assert plan.identity(int(i)).imsi.startswith(home.mcc + home.mnc)
        assert plan.identity(int(i)).carrier == home.name


def test_more_carriers_than_the_column_holds_are_refused() -> None:
    with pytest.raises(PopulationError, match=f"at most {MAX_CARRIERS}"):
        NumberingPlan(_numbered_carriers(1) * (MAX_CARRIERS + 1), model.Population(phones=0, mix={}), seed=1)


def test_every_sim_generation_has_its_own_imsi_and_iccid_and_none_wraps(plan: NumberingPlan) -> None:
    # sim % 10 gave the tenth swap the first SIM's IMSI and ICCID back: refused now, not wrapped.
    generations = range(SIM_GENERATIONS)
    assert len({plan.imsi_of(5, sim) for sim in generations}) == SIM_GENERATIONS
    assert len({plan.iccid_of(5, sim) for sim in generations}) == SIM_GENERATIONS
    for sim in (SIM_GENERATIONS, SIM_GENERATIONS + 1, 256, -1):
        with pytest.raises(PopulationError, match="SIM generation"):
            plan.imsi_of(5, sim)
        with pytest.raises(PopulationError, match="SIM generation"):
            plan.iccid_of(5, sim)
        with pytest.raises(PopulationError, match="SIM generation"):
            plan.identity(5, sim)


def test_imeis_are_valid_test_imeis_and_unique(plan: NumberingPlan) -> None:
    imeis = [plan.imei_of(i) for i in range(N)]
    assert all(imei.is_valid(x) for x in imeis)
    assert all(len(x) == 15 and x.startswith(IMEI_PREFIX) for x in imeis)
    assert len(set(imeis)) == N


def test_imsis_are_15_digits_under_the_carriers_mcc_mnc_and_unique(plan: NumberingPlan) -> None:
    carriers = plan.carrier_of(np.arange(N))
    imsis = [plan.imsi_of(i) for i in range(N)]
    for i, value in enumerate(imsis):
        home = plan.carriers[int(carriers[i])]
        assert len(value) == 15
        assert value.isdigit()
        assert value.startswith(home.mcc + home.mnc)
    assert len(set(imsis)) == N
    # python-stdnum knows MCC 001 (test networks): its own validator agrees where it can judge
    assert all(imsi.is_valid(v) for v in imsis[:300] if v.startswith("001"))


def test_iccids_have_telecom_prefix_country_code_and_luhn(plan: NumberingPlan) -> None:
    carriers = plan.carrier_of(np.arange(N))
    country_codes = {"GB": "44", "US": "1", "DE": "49"}
    iccids = [plan.iccid_of(i) for i in range(N)]
    for i, value in enumerate(iccids):
        home = plan.carriers[int(carriers[i])]
        assert len(value) == 19
        assert value.isdigit()
        assert value.startswith("89" + country_codes[home.country] + home.mnc)
        assert luhn.is_valid(value)
    assert len(set(iccids)) == N


def test_a_sim_swap_changes_imsi_and_iccid_but_not_imei(plan: NumberingPlan) -> None:
    assert plan.imsi_of(42, sim=1) != plan.imsi_of(42, sim=0)
    assert plan.iccid_of(42, sim=1) != plan.iccid_of(42, sim=0)
    assert luhn.is_valid(plan.iccid_of(42, sim=1))
    assert plan.identity(42, sim=1).imei == plan.identity(42, sim=0).imei


def test_msisdns_lie_in_their_carriers_ranges_and_are_unique(plan: NumberingPlan) -> None:
    carrier, msisdn = plan.assign(np.arange(N))
    assert len(np.unique(msisdn)) == N
    for c, home in enumerate(plan.carriers):
        mine = msisdn[carrier == c]
        inside = np.zeros(mine.shape, dtype=bool)
        for rng in home.ranges:
            inside |= (mine >= rng.first) & (mine <= rng.last)
        assert inside.all()


def test_carrier_and_condition_shares_are_exact(plan: NumberingPlan) -> None:
    carrier = plan.carrier_of(np.arange(N))
    assert np.bincount(carrier, minlength=3).tolist() == [2500, 1500, 1000]
    condition = plan.condition_of(np.arange(N))
    counts = np.bincount(condition, minlength=4)
    assert counts[PhoneCondition.ABSENT] == 250
    assert counts[PhoneCondition.BARRED] == 100
    assert counts[PhoneCondition.ROAMING] == 500
    assert counts[PhoneCondition.REACHABLE] == N - 850
    assert plan.condition_quotas[PhoneCondition.ABSENT] == 250


def test_carriers_are_interleaved_not_blocked(plan: NumberingPlan) -> None:
    # every third of the index space holds every carrier, so any contiguous shard serves every carrier
    carrier = plan.carrier_of(np.arange(N))
    for part in np.array_split(carrier, 3):
        assert set(np.unique(part).tolist()) == {0, 1, 2}


def test_reverse_lookup_inverts_the_assignment(plan: NumberingPlan) -> None:
    msisdn = plan.msisdn_of(np.arange(N))
    assert np.array_equal(plan.index_of_msisdn(msisdn), np.arange(N))
    assert plan.index_of_msisdn(int(msisdn[123])) == 123


def test_reverse_lookup_of_strangers_is_minus_one(plan: NumberingPlan) -> None:
    taken = set(plan.msisdn_of(np.arange(N)).tolist())
    # outside every range, between ranges, and inside a range but past the carrier's quota
    strangers = [1, 447700899999, 447700901000, 12015649999, 4915100199999, 10**15 - 1]
    strangers += [n for n in range(447700000000, 447700000050) if n not in taken]
    assert plan.index_of_msisdn(np.asarray(strangers)).tolist() == [-1] * len(strangers)
    assert plan.index_of_msisdn(1) == -1


def test_identity_bundles_the_same_values(plan: NumberingPlan) -> None:
    ident = plan.identity(17)
    assert ident.msisdn == str(int(plan.msisdn_of(np.asarray([17]))[0]))
    assert ident.carrier == plan.carriers[int(plan.carrier_of(np.asarray([17]))[0])].name
    assert ident.imei == plan.imei_of(17)
    assert ident.condition == PhoneCondition(int(plan.condition_of(np.asarray([17]))[0]))


def test_a_carrier_left_out_of_the_mix_gets_no_phones(make_scenario: Factory) -> None:
    plan = NumberingPlan.from_scenario(make_scenario(phones=300, mix={"carrier-a": 1.0, "carrier-c": 1.0}))
    assert np.bincount(plan.carrier_of(np.arange(300)), minlength=3).tolist() == [150, 0, 150]
    msisdn = plan.msisdn_of(np.arange(300))
    assert np.array_equal(plan.index_of_msisdn(msisdn), np.arange(300))


def test_an_empty_population_is_fine(make_scenario: Factory) -> None:
    plan = NumberingPlan.from_scenario(make_scenario(phones=0))
    assert plan.assign(np.arange(0))[1].size == 0
    assert plan.index_of_msisdn(447700900000) == -1


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"phones": 300_000}, "ranges hold only"),
        ({"mix": {"carrier-x": 1.0}}, "does not declare"),
        ({"absent": 0.6, "barred": 0.6}, "at most 1"),
        ({"mix": {"carrier-a": 0.0}}, "positive sum"),
    ],
)
def test_impossible_populations_are_refused(make_scenario: Factory, change: dict[str, object], message: str) -> None:
    with pytest.raises(PopulationError, match=message):
        NumberingPlan.from_scenario(make_scenario(**change))


def test_overlapping_ranges_are_refused(make_scenario: Factory) -> None:
    scenario = make_scenario()
    a, b, c = scenario.carriers
    clash = model.Carrier(b.name, b.mcc, b.mnc, b.country, (*b.ranges, model.NumberRange(447700000010, 447700000020)),
                          b.smsc, b.gateway)
    with pytest.raises(PopulationError, match="overlap"):
        NumberingPlan((a, clash, c), scenario.population, 1)


def test_bad_mcc_is_refused(make_scenario: Factory) -> None:
    scenario = make_scenario()
    a, b, c = scenario.carriers
    bad = model.Carrier(a.name, "1", a.mnc, a.country, a.ranges, a.smsc, a.gateway)
    with pytest.raises(PopulationError, match="MCC"):
        NumberingPlan((bad, b, c), scenario.population, 1)


@given(
    total=st.integers(min_value=0, max_value=10**7),
    weights=st.lists(st.floats(min_value=0.0, max_value=1e3, allow_nan=False), min_size=1, max_size=8).filter(
        lambda w: sum(w) > 0
    ),
)
def test_largest_remainder_sums_exactly_and_stays_within_one(total: int, weights: list[float]) -> None:
    parts = largest_remainder(total, weights)
    assert int(parts.sum()) == total
    exact = np.asarray(weights) / sum(weights) * total
    assert np.all(np.abs(parts - exact) < 1.0 + 1e-6)
