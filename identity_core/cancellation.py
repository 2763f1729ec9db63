"""Cancellation that Python 3.11's ``asyncio.wait_for`` lost, honoured where the identity core's loops take work.

Why this exists: on 3.11, ``asyncio.wait_for`` returns its result instead of raising when the task's cancellation
and that result arrive in the same loop iteration (CPython gh-86296, fixed in 3.12). The ``CancelledError`` is
lost, but the request stays counted in ``Task.cancelling()``. A worker that then goes back to ``await queue.get()``
on an empty queue waits forever, and so does whatever stops it (a gateway's ``stop``). Checking
``cancelling()`` before taking the next item turns the lost cancellation back into one.
"""

from __future__ import annotations

import asyncio
from typing import TypeVar

__all__ = ["cancel_pending", "next_item"]

_T = TypeVar("_T")


def cancel_pending() -> bool:
    """Whether the current task has been asked to cancel (and has not called ``uncancel`` since)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def next_item(queue: asyncio.Queue[_T]) -> _T:
    """The next item of ``queue``, for a worker's loop; raises CancelledError once the worker was cancelled,
    even if that cancellation was swallowed on the way (module docstring)."""
    if cancel_pending():
        raise asyncio.CancelledError
    return await queue.get()
