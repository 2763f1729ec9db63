"""Echoes: one stop request delivered twice (GNU timeout signals the command, then its process group) is one."""

from __future__ import annotations

import signal

from carrier_sim.signals import ECHO_WINDOW, Echoes


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_repeat_of_the_same_signal_within_the_window_is_its_copy() -> None:
    clock = _Clock()
    echoes = Echoes(clock)
    assert not echoes.echo(signal.SIGTERM)  # acted on
    clock.now += 0.000_05
    assert echoes.echo(signal.SIGTERM)  # timeout's second copy
    clock.now += ECHO_WINDOW / 2
    assert echoes.echo(signal.SIGTERM)  # still within the window of the one acted on


def test_another_signal_or_the_same_one_later_is_a_request_of_its_own() -> None:
    clock = _Clock()
    echoes = Echoes(clock)
    assert not echoes.echo(signal.SIGINT)
    assert not echoes.echo(signal.SIGTERM)  # GitHub Actions' SIGINT then SIGTERM: two requests
    clock.now += ECHO_WINDOW
    assert not echoes.echo(signal.SIGTERM)  # a person pressing again
    clock.now += ECHO_WINDOW * 0.99
    assert echoes.echo(signal.SIGTERM)  # measured from the last one acted on
