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
from collections.abc import Callable, Mapping
from types import FrameType, MappingProxyType
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
    """SIGINT, SIGTERM and SIGHUP from the first moment of the console script until the command's own handlers exist.

    Each signal is kept. A command that handles signals (``run``, ``smsc``, ``carriers``) calls :meth:`take` once
    its handlers are in place and acts on what it returns as on signals that came just then; any other command
    calls :meth:`release` before it starts. Either way, once the command is over the console script calls
    :meth:`restore`, so that the process ends (``atexit`` hooks, joining children) with the handlers it was started
    with, normally Python's defaults: a command's own handlers, or a keeper of a command's that gave back the one it
    replaced (this one), would otherwise meet a signal then and no one would act on it.

    A signal the process was started ignoring (a script's ``command &`` ignores SIGINT) is not kept: it stays
    ignored while the command loads, and for good in a command without handlers of its own. ``run``, ``smsc`` and
    ``carriers`` install their handlers for it all the same and stop on it; it is ignored again once they are
    done.

    SIGHUP (a closed terminal) is kept too, for ``run``, which stops on it as on SIGTERM: its default action killed
    a run with no report. A command that does not take it over (``smsc``, ``carriers``) gets its original handler
    back at :meth:`take`; one kept before then is handed over with the others, a stop request."""

    def __init__(self) -> None:
        self._kept: list[signal.Signals] = []
        # The handlers from before install(), ignored ones included, for restore(); ``_keeping``: the signals whose
        # handler the keeper replaced and release() gives back before the command starts.
        self._original: dict[signal.Signals, Any] = {}
        self._keeping: set[signal.Signals] = set()

    def install(self) -> None:
        """Keep SIGINT, SIGTERM and SIGHUP from now on; from the main thread, the only one that may set handlers."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            handler = signal.getsignal(sig)
            if handler is None:
                continue  # a handler not set from Python, which could not be given back
            self._original[sig] = handler
            if handler is not signal.SIG_IGN:
                signal.signal(sig, self._keep)
                self._keeping.add(sig)

    def _keep(self, signum: int, _frame: FrameType | None) -> None:
        self._kept.append(signal.Signals(signum))

    @property
    def original(self) -> Mapping[signal.Signals, Any]:
        """The handlers from before :meth:`install`: what a command that replaces the keeper (and would give back
        the handler it replaced) gives back instead."""
        return MappingProxyType(self._original)

    def take(self) -> list[signal.Signals]:
        """The signals kept so far, oldest first, for a command whose own handlers have now replaced the keeper's;
        they are its to act on from now on, as is every later one. A signal the command has not taken over (still
        this keeper's) gets its handler from before :meth:`install` back: kept from now on, it would be lost."""
        for sig in self._keeping:
            if signal.getsignal(sig) == self._keep:
                signal.signal(sig, self._original[sig])
        kept, self._kept = self._kept, []
        self._keeping.clear()
        return kept

    def release(self) -> None:
        """For a command without handlers of its own, before it starts (its modules imported): the handlers from
        before :meth:`install` back; a signal kept meanwhile then ends the process as that signal's default action
        does (killed by it: exit status 130 or 143 in a shell), without a traceback and before the command has
        done anything."""
        for sig in self._keeping:
            signal.signal(sig, self._original[sig])
        self._keeping.clear()
        if self._kept:
            first = self._kept[0]
            signal.signal(first, signal.SIG_DFL)
            signal.raise_signal(first)

    def restore(self) -> None:
        """Once the command is over (returned or raised): the handlers from before :meth:`install` back, whatever
        replaced them meanwhile. A signal still kept (one that came while a command ended before it took them, on
        a bad flag or a bad file) is dropped: the process is ending, as it asked."""
        for sig, handler in self._original.items():
            signal.signal(sig, handler)
        self._keeping.clear()
        self._kept.clear()
