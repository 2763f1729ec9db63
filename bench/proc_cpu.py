"""CPU time of a process tree, per process kind and thread name, read from Linux's /proc while it runs.

``resource.getrusage(RUSAGE_CHILDREN)`` gives one total for every descendant. The storm benchmark needs the split:
the runner against the identity core, and inside the core smpp34's tokio threads against Python's, because that
split says where a cheaper activation has to come from. Threads that exit mid-run keep their last reading, so a
poll interval of half a second loses at most that much of a short-lived thread's time.
"""

from __future__ import annotations

import os
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["CpuSampler", "CpuTotals"]

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


@dataclass
class CpuTotals:
    """CPU seconds (user + system) by (process kind, thread name), and by process kind."""

    by_thread: dict[tuple[str, str], float] = field(default_factory=dict)

    def of(self, kind: str, thread: str | None = None) -> float:
        """Seconds used by ``kind`` processes, or only by their threads named ``thread``."""
        return sum(s for (k, t), s in self.by_thread.items() if k == kind and (thread is None or t == thread))


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _descendants(root: int) -> list[int]:
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(_children(pid))
    return found


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _threads(pid: int) -> dict[int, tuple[str, float]]:
    out: dict[int, tuple[str, float]] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        # The thread name sits in parentheses and may itself contain spaces or parentheses.
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(tid)] = (name, (int(fields[11]) + int(fields[12])) / _TICK)  # utime + stime
    return out


class CpuSampler:
    """Polls the descendants of ``root`` (itself included) until :meth:`stop`; ``classify`` names each process's
    kind from its command line."""

    def __init__(self, root: int, classify: Callable[[str], str], interval: float = 0.5) -> None:
        self._root = root
        self._classify = classify
        self._interval = interval
        self._last: dict[tuple[int, int], tuple[str, str, float]] = {}
        self._kinds: dict[int, str] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="cpu-sampler", daemon=True)

    def start(self) -> CpuSampler:
        """Start polling in a background thread."""
        self._thread.start()
        return self

    def _sample(self) -> None:
        for pid in _descendants(self._root):
            kind = self._kinds.get(pid)
            if kind is None:
                kind = self._kinds[pid] = self._classify(_cmdline(pid))
            for tid, (name, seconds) in _threads(pid).items():
                self._last[(pid, tid)] = (kind, name, seconds)

    def _poll(self) -> None:
        while not self._done.wait(self._interval):
            self._sample()

    def stop(self) -> CpuTotals:
        """Stop polling and return the totals of every thread seen."""
        self._done.set()
        self._thread.join()
        totals: defaultdict[tuple[str, str], float] = defaultdict(float)
        for kind, name, seconds in self._last.values():
            totals[(kind, name)] += seconds
        return CpuTotals(dict(totals))
