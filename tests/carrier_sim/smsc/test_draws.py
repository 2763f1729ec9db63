"""Keyed SMSC draws: uniforms strictly inside (0, 1) whatever the hash gives."""

from __future__ import annotations

import pytest

from carrier_sim.smsc import draws
from carrier_sim.smsc.draws import Draw, KeyedDraws


@pytest.mark.parametrize("word", [0, 2**64 - 1, 2**64 - 2**11, 2**11 - 1])
def test_uniform_of_extreme_bits_lies_strictly_inside_the_unit_interval(monkeypatch: pytest.MonkeyPatch,
                                                                         word: int) -> None:
    # With 53 bits, all ones mapped to (2**53 - 1 + 0.5) * 2**-53, which rounds to exactly 1.0.
    keyed = KeyedDraws(1)
    monkeypatch.setattr(draws, "_mix", lambda x: word)
    u = keyed.uniform(Draw.RECEIPT_DELAY, 0, 0)
    assert 0.0 < u < 1.0
