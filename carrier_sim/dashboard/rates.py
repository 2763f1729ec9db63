"""Rates over a sliding window of recent counts, for the figures a person reads while they change.

A rate over one snapshot interval (the runner snapshots every 0.25 s) jumps with every burst: steady traffic sent
in lumps reads 0, 800, 0, 400 msg/s where it averages 300. A :class:`RateWindow` instead keeps the (time, count)
pairs of the last :data:`RATE_WINDOW` seconds — a dozen at the runner's pace, whatever the traffic, so no work per
message — and reports how much the count grew over them. Until a run is that old the window is what there is.
"""

from __future__ import annotations

from collections import deque
from typing import Final

__all__ = ["RATE_WINDOW", "RateWindow"]

#: Seconds of history a rate covers: long enough to smooth the bursts of a 0.25 s snapshot, short enough that a
#: ramp, a pause or a ``+`` shows within a few seconds.
RATE_WINDOW: Final = 2.5

#: Pairs kept at most: a writer that records far more often than 4 times a second shortens the window instead of
#: growing memory.
_MAX_POINTS: Final = 64


class RateWindow:
    """A cumulative count sampled now and then; its growth per second over the last ``span`` seconds."""

    __slots__ = ("_points", "_span")

    def __init__(self, span: float = RATE_WINDOW) -> None:
        if not span > 0:
            raise ValueError(f"a rate window must span some time, not {span!r} s")
        self._span = span
        self._points: deque[tuple[float, float]] = deque(maxlen=_MAX_POINTS)

    @property
    def count(self) -> float:
        """The latest count recorded (0 before any)."""
        return self._points[-1][1] if self._points else 0.0

    def add(self, at: float, count: float) -> None:
        """Record the cumulative ``count`` reached at time ``at`` (seconds)."""
        points = self._points
        if points and at < points[-1][0]:
            # Time went back: a new run's clock. Its counts say nothing about the old one's.
            points.clear()
        elif points and at == points[-1][0]:
            points.pop()  # two samples at one instant: the later one is the count of that instant
        points.append((at, count))
        # The oldest pair kept is the last one at least ``span`` old, so the rate covers the whole window.
        while len(points) > 2 and at - points[1][0] >= self._span:
            points.popleft()

    @property
    def rate(self) -> float | None:
        """Growth per second over the window (or the shorter history there is); None before two instants."""
        if len(self._points) < 2:
            return None
        (first_at, first), (last_at, last) = self._points[0], self._points[-1]
        return (last - first) / (last_at - first_at)
