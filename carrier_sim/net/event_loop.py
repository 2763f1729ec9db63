"""Which event loop carrier-sim's long-running commands serve on: uvloop where it is installed, else asyncio's.

uvloop (libuv under asyncio's API) moves the same bytes for less CPU: the SMSC of ``bench/smsc_throughput.py``
spent ~25 µs per message on it against ~36 µs on asyncio's own loop (docs/performance.md). Nothing in carrier-sim
depends on which loop runs it -- transports are cast, never type-checked, since uvloop's do not derive from
asyncio's classes -- and Ray already runs the shard actors on uvloop. Windows has no uvloop; asyncio's loop
serves there, and wherever ``CARRIER_SIM_LOOP=asyncio`` asks for it (to tell a loop difference from a defect).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["loop_name", "run"]

T = TypeVar("T")


def loop_name() -> str:
    """``"uvloop"`` or ``"asyncio"``: the loop :func:`run` will use here."""
    if os.environ.get("CARRIER_SIM_LOOP", "").strip().lower() == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop :func:`loop_name` names."""
    if loop_name() == "uvloop":
        import uvloop

        return uvloop.run(main)
    return asyncio.run(main)
