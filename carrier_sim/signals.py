"""Telling one stop request that arrived twice from two requests.

``carrier-sim run`` and ``carrier-sim smsc`` stop on the first SIGINT/SIGTERM and give up their pcap on a second
one. But one request often arrives twice: GNU ``timeout`` (without ``--foreground``) sends its signal to the
command and then to its whole process group, which holds the command too; a shell or supervisor that signals a
process group does the same when the command is not its leader. Both copies arrive within microseconds, and the
second one cost a CI job its pcap (review of docs/report.md, 2026-11-25). A repeat of the same signal within
:data:`ECHO_WINDOW` of the one that was acted on is taken as that one: a person pressing Ctrl-C twice to give up
the pcap is slower than that, and can press again.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from typing import Final

__all__ = ["ECHO_WINDOW", "Echoes"]

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
