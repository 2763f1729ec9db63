"""Keyed SMSC draws: uniforms strictly inside (0, 1) whatever the hash gives; delays inside [low, high)."""

from __future__ import annotations

import math

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from carrier_sim.smsc import draws
from carrier_sim.smsc.draws import Draw, KeyedDraws

#: The largest uniform the hash can give: all 52 bits set, plus the half step.
_LAST_U = 1.0 - 2.0**-53


@pytest.mark.parametrize("word", [0, 2**64 - 1, 2**64 - 2**11, 2**11 - 1])
def test_uniform_of_extreme_bits_lies_strictly_inside_the_unit_interval(monkeypatch: pytest.MonkeyPatch,
                                                                         word: int) -> None:
    # With 53 bits, all ones mapped to (2**53 - 1 + 0.5) * 2**-53, which rounds to exactly 1.0.
    keyed = KeyedDraws(1)
    monkeypatch.setattr(draws, "_mix", lambda x: word)
    u = keyed.uniform(Draw.RECEIPT_DELAY, 0, 0)
    assert 0.0 < u < 1.0


@pytest.mark.parametrize(("low", "high"), [
    (1.0, math.nextafter(1.0, 2.0)),  # a range one ulp wide
    (1e16, 1e16 + 2.0),  # a large low: floats there are 2 apart
    (-1e308, 1e308),  # a width that overflows to inf
])
def test_between_of_the_largest_uniform_stays_below_high(monkeypatch: pytest.MonkeyPatch, low: float,
                                                         high: float) -> None:
    # low + (high - low) * u rounded up onto high, outside the documented [low, high).
    keyed = KeyedDraws(1)
    monkeypatch.setattr(draws, "_mix", lambda x: 2**64 - 1)
    assert keyed.uniform(Draw.RECEIPT_DELAY, 0, 0) == _LAST_U
    value = keyed.between(Draw.RECEIPT_DELAY, 0, 0, low, high)
    assert low <= value < high
    assert value == math.nextafter(high, low)


_finite = st.floats(allow_nan=False, allow_infinity=False)
_unit = st.floats(min_value=0.0, max_value=1.0, exclude_min=True, exclude_max=True)


@given(low=_finite, high=_finite, u=_unit)
@example(low=1.0, high=math.nextafter(1.0, 2.0), u=_LAST_U)
@example(low=1e16, high=1e16 + 2.0, u=_LAST_U)
@example(low=-1e308, high=1e308, u=0.5)
def test_scaled_lies_in_the_half_open_range_and_moves_no_value_that_already_did(low: float, high: float,
                                                                                  u: float) -> None:
    low, high = min(low, high), max(low, high)
    if low == high:
        return  # between answers low without scaling
    value = draws._scaled(low, high, u)
    assert low <= value < high
    old = low + (high - low) * u
    if old < high:
        # The reproducibility contract: a draw that was in range is the same draw.
        assert value == old


@given(seed=st.integers(0, 2**64 - 1), word=st.integers(0, 2**64 - 1), n=st.integers(0, 2**32),
       low=_finite, high=_finite)
def test_between_is_the_scaled_uniform_of_the_same_key(seed: int, word: int, n: int, low: float,
                                                       high: float) -> None:
    keyed = KeyedDraws(seed)
    value = keyed.between(Draw.ROAMING_DELAY, word, n, low, high)
    if high <= low:
        assert value == low
    else:
        assert value == draws._scaled(low, high, keyed.uniform(Draw.ROAMING_DELAY, word, n))
