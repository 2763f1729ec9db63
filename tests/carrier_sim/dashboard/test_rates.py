"""Rates over a sliding window of (time, count) pairs."""

from __future__ import annotations

import pytest

from carrier_sim.dashboard.rates import RATE_WINDOW, RateWindow


def test_no_rate_before_two_instants() -> None:
    window = RateWindow()
    assert window.rate is None
    window.add(1.0, 10)
    assert window.rate is None
    window.add(1.0, 12)  # the same instant again: its later count, still one instant
    assert (window.rate, window.count) == (None, 12)


def test_the_rate_covers_the_last_window_not_one_step_nor_the_whole_run() -> None:
    window = RateWindow(span=2.0)
    window.add(0.0, 0)
    window.add(0.5, 50)
    assert window.rate == 100.0  # young: the history there is
    for step in range(2, 21):  # 100/s until 9 s, then nothing, sampled every 0.5 s until 10 s
        at = 0.5 * step
        window.add(at, 100 * min(at, 9.0))
    # Over 8 s..10 s: 100 messages in 2 s. One step would say 0/s, the whole run 90/s.
    assert window.rate == pytest.approx(50.0)

def test_a_clock_that_goes_back_starts_over() -> None:
    window = RateWindow()
    window.add(10.0, 1000)
    window.add(11.0, 1100)
    window.add(0.5, 5)
    assert window.rate is None
    window.add(1.0, 10)
    assert window.rate == 10.0


def test_the_ring_is_bounded_however_often_it_is_fed() -> None:
    window = RateWindow()
    for i in range(10_000):
        window.add(i * 1e-4, i)
    assert window.rate == pytest.approx(1e4)
    assert len(window._points) <= 64


def test_the_window_is_a_few_seconds() -> None:
    assert 2.0 <= RATE_WINDOW <= 3.0
    with pytest.raises(ValueError, match="must span some time"):
        RateWindow(span=0)
