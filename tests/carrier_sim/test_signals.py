"""Echoes: one stop request delivered twice (GNU timeout signals the command, then its process group) is one.
StartupSignals: one that comes while the command loads is kept for it (the real console script: test_console.py)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from carrier_sim.signals import ECHO_WINDOW, Echoes, StartupSignals

ROOT = Path(__file__).resolve().parents[2]


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


@contextlib.contextmanager
def _handlers_restored() -> Iterator[None]:
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def test_startup_signals_are_kept_in_order_until_the_command_takes_them() -> None:
    with _handlers_restored():
        startup = StartupSignals()
        startup.install()
        signal.raise_signal(signal.SIGTERM)  # neither ends the process nor raises KeyboardInterrupt
        signal.raise_signal(signal.SIGINT)
        assert startup.take() == [signal.SIGTERM, signal.SIGINT]
        assert startup.take() == []


def test_release_gives_the_handlers_from_before_back() -> None:
    with _handlers_restored():
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        startup = StartupSignals()
        startup.install()
        startup.release()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_signal_the_process_was_started_ignoring_is_not_kept_and_is_ignored_again_after_the_command() -> None:
    with _handlers_restored():
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a script's ``command &`` starts it
        startup = StartupSignals()
        startup.install()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        signal.raise_signal(signal.SIGINT)
        assert startup.take() == []
        signal.signal(signal.SIGINT, signal.default_int_handler)  # as asyncio leaves it once smsc's loop closes
        startup.restore()
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_restore_gives_the_handlers_from_before_back_whatever_replaced_them_and_drops_what_was_kept() -> None:
    with _handlers_restored():
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        startup = StartupSignals()
        startup.install()
        assert dict(startup.original) == {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL,
                                          signal.SIGHUP: signal.SIG_DFL}
        signal.raise_signal(signal.SIGTERM)  # kept, and never taken: the command ended on a bad flag
        startup.restore()  # no SIGTERM now: the process is already ending
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
        assert startup.take() == []
        # After take(), the command's handlers (a keeper of its own) replaced the startup keeper: restore() puts
        # the ones from before install() back, not the startup keeper.
        startup = StartupSignals()
        startup.install()
        startup.take()
        signal.signal(signal.SIGTERM, lambda _signum, _frame: None)
        startup.restore()
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_release_with_a_signal_kept_ends_the_process_by_it_without_a_traceback() -> None:
    # For a command with no handlers of its own: killed by the signal, as its default action does, not a
    # KeyboardInterrupt in whatever it had started.
    probe = ("import signal; from carrier_sim.signals import StartupSignals; startup = StartupSignals(); "
             "startup.install(); signal.raise_signal(signal.SIGINT); print('kept', flush=True); startup.release(); "
             "print('not reached', flush=True)")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == -signal.SIGINT, done
    assert (done.stdout, done.stderr) == ("kept\n", "")


def test_a_hangup_the_command_does_not_take_over_gets_its_handler_back_at_take() -> None:
    # smsc and carriers handle SIGINT and SIGTERM only: a SIGHUP kept for them for good would be lost.
    with _handlers_restored():
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        startup = StartupSignals()
        startup.install()
        assert signal.getsignal(signal.SIGHUP) != signal.SIG_DFL  # kept while the command loads
        assert startup.take() == []
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
