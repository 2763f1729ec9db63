"""Stop requests (SIGINT, SIGTERM) that need care: one that arrived twice, one that came before the command could act.

``carrier-sim run`` and ``carrier-sim smsc`` stop on the first SIGINT/SIGTERM and give up their pcap on a second
one. But one request often arrives twice: GNU ``timeout`` (without ``--foreground``) sends its signal to the
command and then to its whole process group, which holds the command too; a shell or supervisor that signals a
process group does the same when the command is not its leader. Both copies arrive within microseconds, and the
second one cost a CI job its pcap (review of docs/report.md, 2026-11-25). A repeat of the same signal within
:data:`ECHO_WINDOW` of the one that was acted on is taken as that one: a person pressing Ctrl-C twice to give up
the pcap is slower than that, and can press again.

A signal can also arrive before any handler of the command exists: loading ``carrier-sim`` (numpy, the SMSC, the
runner) takes a few tenths of a second, in which Python's defaults ended the command with a KeyboardInterrupt
traceback (SIGINT) or killed it with nothing written (SIGTERM). The console script (:mod:`carrier_sim.console`)
installs :class:`StartupSignals` first, which keeps such a signal for the command to act on once it can.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Any, Final

__all__ = ["ECHO_WINDOW", "Echoes", "StartupSignals"]

#: Seconds within which a repeat of the signal just acted on is the same request.
ECHO_WINDOW: Final = 0.25


class Echoes:
    """Remembers the last signal acted on; :meth:`echo` says whether a new one is only its copy."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last: tuple[signal.Signals, float] | None = None

    def echo(self, sig: signal.Signals) -> bool:
        """True for a copy of the signal last acted on (the same signal, within :data:`ECHO_WINDOW`), which the
        caller ignores; otherwise the signal is remembered as acted on and False."""
        now = self._clock()
        last = self._last
        if last is not None and last[0] is sig and now - last[1] < ECHO_WINDOW:
            return True
        self._last = (sig, now)
        return False


class StartupSignals:
    """SIGINT and SIGTERM from the first moment of the console script until the command's own handlers exist.

    Each signal is kept. A command that handles signals (``run``, ``smsc``, ``carriers``) calls :meth:`take` once
    its handlers are in place and acts on what it returns as on signals that came just then; any other command
    calls :meth:`release` before it starts. A signal the process was started ignoring (a script's ``command &``
    ignores SIGINT) stays ignored: the keeper is not installed for it."""

    def __init__(self) -> None:
        self._kept: list[signal.Signals] = []
        self._previous: dict[signal.Signals, Any] = {}

    def install(self) -> None:
        """Keep SIGINT and SIGTERM from now on; from the main thread, the only one that may set handlers."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            # None: a handler not set from Python, which could not be given back.
            if signal.getsignal(sig) not in (signal.SIG_IGN, None):
                self._previous[sig] = signal.signal(sig, self._keep)

    def _keep(self, signum: int, _frame: FrameType | None) -> None:
        self._kept.append(signal.Signals(signum))

    def take(self) -> list[signal.Signals]:
        """The signals kept so far, oldest first, for a command whose own handlers have now replaced the keeper's;
        they are its to act on from now on, as is every later one."""
        kept, self._kept = self._kept, []
        self._previous.clear()
        return kept

    def release(self) -> None:
        """For a command without handlers of its own, before it starts: the handlers from before :meth:`install`
        back; a signal kept meanwhile then ends the process as that signal's default action does (killed by it:
        exit status 130 or 143 in a shell), without a traceback and before the command has done anything."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous.clear()
        if self._kept:
            first = self._kept[0]
            signal.signal(first, signal.SIG_DFL)
            signal.raise_signal(first)
