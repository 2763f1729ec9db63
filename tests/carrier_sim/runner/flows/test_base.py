"""next_row: a flow worker's loop ends when cancelled, even when Python 3.11's wait_for swallowed the cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from carrier_sim.runner.flows.base import next_row


async def _worker_cancelled_as_a_reply_lands(take: Callable[[asyncio.Queue[int]], Awaitable[int]],
                                             ) -> asyncio.Task[None]:
    """A worker like the flows' (take a row, await a reply through wait_for), cancelled as its reply arrives."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[int] = asyncio.Queue()
    reply: asyncio.Future[str] = loop.create_future()
    served: list[int] = []

    async def worker() -> None:
        while True:
            row = await take(queue)
            served.append(row)
            await asyncio.wait_for(reply, 5)  # what aiosmtplib does for every SMTP reply

    task = asyncio.create_task(worker())
    queue.put_nowait(7)
    while not served:
        await asyncio.sleep(0)
    await asyncio.sleep(0)  # the worker now waits inside wait_for
    reply.set_result("250 ok")
    task.cancel()  # in the same loop iteration as the reply
    await asyncio.wait({task}, timeout=2)
    return task


async def test_a_cancelled_worker_ends_even_when_wait_for_swallowed_the_cancellation() -> None:
    task = await _worker_cancelled_as_a_reply_lands(next_row)
    assert task.done()
    assert task.cancelled()


async def test_without_it_the_worker_waits_on_its_queue_forever() -> None:
    """The control: with a bare ``queue.get()`` the same worker outlives its cancellation (the bug next_row fixes).

    If a Python fixes wait_for (3.12 did) the control no longer applies and says so rather than pass silently.
    """
    async def bare(queue: asyncio.Queue[int]) -> int:
        return await queue.get()

    task = await _worker_cancelled_as_a_reply_lands(bare)
    if task.done():
        pytest.skip("this Python's wait_for does not swallow a cancellation (gh-86296 is fixed here)")
    assert task.cancelling() == 1  # asked to stop, and still waiting
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    assert task.cancelled()


async def test_rows_are_taken_in_order_while_not_cancelled() -> None:
    queue: asyncio.Queue[int] = asyncio.Queue()
    for row in (3, 1, 2):
        queue.put_nowait(row)
    assert [await next_row(queue) for _ in range(3)] == [3, 1, 2]
