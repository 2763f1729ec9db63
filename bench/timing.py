"""The timing harness the micro-benchmarks share: calibrated, interleaved repetitions, medians.

Run from a benchmark script in this folder (``python bench/NAME.py``), which puts this folder on sys.path.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Case", "check"]


def check(condition: bool, what: str) -> None:
    """Refuse to time a workload that is not what it claims to be (unlike assert, survives ``python -O``)."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {what}")


@dataclass
class Case:
    """One measured operation. ``fn`` performs ``units`` operations per call; rates are operations/s."""

    name: str
    fn: Callable[[], object]
    units: int = 1
    loops: int = 0
    rates: list[float] = field(default_factory=list)

    def calibrate(self, target_seconds: float) -> None:
        """Pick a loop count so that one repetition lasts roughly ``target_seconds``."""
        loops = 1
        while (elapsed := self._time(loops)) < 0.02 and loops < 1 << 24:
            loops *= 4
        self.loops = max(1, int(loops * target_seconds / max(elapsed, 1e-9)))

    def run_once(self) -> None:
        """One repetition; records operations per second."""
        self.rates.append(self.loops * self.units / self._time(self.loops))

    def _time(self, loops: int) -> float:
        fn = self.fn
        # As timeit does: a collection landing inside one repetition would be noise, not the operation's cost.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            return time.perf_counter() - start
        finally:
            if gc_was_enabled:
                gc.enable()

    @property
    def median(self) -> float:
        """Median operations per second over the repetitions."""
        return statistics.median(self.rates)
