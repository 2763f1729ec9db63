"""Cancellation reaches the gateway's tasks: a worker ends even when Python 3.11's wait_for swallowed its
cancellation (next_item), and a session leg cancelled while it reaps its readers does not carry on as if its
session had merely ended."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import pytest

from identity_core.cancellation import cancel_pending, next_item
from identity_core.gateway import CarrierGateway, CarrierLink, MoMessage, _Leg

WAIT = 5.0


def _link(**overrides: Any) -> CarrierLink:
    return CarrierLink(name="testnet", smsc_host="127.0.0.1", smsc_port=9, system_id="identity", password="secret",
                       gateway="447700900000", country="GB", **overrides)


def _mo() -> MoMessage:
    return MoMessage(carrier="testnet", source="447700900123", source_ton=1, source_npi=1, sender="+447700900123",
                     destination="447700900000", text="REG-REQ?x", received_at=time.time())


async def _cancelled_as_a_reply_lands(worker: Callable[[asyncio.Future[str]], Coroutine[Any, Any, None]],
                                      started: Callable[[], bool]) -> asyncio.Task[None]:
    """Start ``worker`` (it awaits ``reply`` through wait_for once it took an item), then cancel it in the same loop
    iteration as the reply arrives -- the moment 3.11's wait_for returns the reply and drops the cancellation."""
    reply: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(worker(reply))
    async with asyncio.timeout(WAIT):
        while not started():
            await asyncio.sleep(0)
    await asyncio.sleep(0)  # the worker now waits inside wait_for
    reply.set_result("done")
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    return task


async def _queue_worker(take: Callable[[asyncio.Queue[int]], Awaitable[int]]) -> asyncio.Task[None]:
    queue: asyncio.Queue[int] = asyncio.Queue()
    queue.put_nowait(7)
    taken: list[int] = []

    async def worker(reply: asyncio.Future[str]) -> None:
        while True:
            taken.append(await take(queue))
            await asyncio.wait_for(reply, WAIT)

    return await _cancelled_as_a_reply_lands(worker, lambda: bool(taken))


async def test_next_item_ends_a_worker_whose_cancellation_wait_for_swallowed() -> None:
    task = await _queue_worker(next_item)
    assert task.cancelled()


async def test_without_it_the_worker_waits_on_its_queue_forever() -> None:
    """The control: a bare ``queue.get()`` outlives the cancellation (the bug next_item fixes); a Python whose
    wait_for no longer swallows it (3.12 and later) says so rather than pass silently."""
    async def bare(queue: asyncio.Queue[int]) -> int:
        return await queue.get()

    task = await _queue_worker(bare)
    if task.done():
        pytest.skip("this Python's wait_for does not swallow a cancellation (gh-86296 is fixed here)")
    assert task.cancelling() == 1
    task.cancel()
    await asyncio.wait({task}, timeout=2)
    assert task.cancelled()


async def test_items_come_in_order_and_nothing_is_pending_while_not_cancelled() -> None:
    queue: asyncio.Queue[str] = asyncio.Queue()
    for item in ("a", "b"):
        queue.put_nowait(item)
    assert not cancel_pending()
    assert [await next_item(queue), await next_item(queue)] == ["a", "b"]


async def test_a_gateway_worker_ends_when_cancelled_even_if_its_handler_swallowed_the_cancellation() -> None:
    handled: list[MoMessage] = []
    reply_of: list[asyncio.Future[str]] = []

    async def on_mo(mo: MoMessage) -> None:
        handled.append(mo)
        await asyncio.wait_for(reply_of[0], WAIT)  # as a handler's HTTP client might

    gateway = CarrierGateway(_link(workers=1), on_mo)
    gateway._queue.put_nowait((time.monotonic(), _mo()))

    async def worker(reply: asyncio.Future[str]) -> None:
        reply_of.append(reply)
        await gateway._work()

    task = await _cancelled_as_a_reply_lands(worker, lambda: bool(handled))
    if not task.done():
        task.cancel()  # the old gateway: stop() would have waited on this worker forever
        await asyncio.wait({task}, timeout=2)
        pytest.fail("the worker went back to its queue after it was cancelled")
    assert task.cancelled()


class _DeadSession:
    """An smpp34 session that never delivers, and whose reader takes a moment to finish once cancelled."""

    def __init__(self) -> None:
        self.reader_cancelled = asyncio.Event()

    async def next(self) -> object:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.reader_cancelled.set()
            await asyncio.sleep(0.2)  # a reader still cleaning up when the leg itself is cancelled
            raise
        raise AssertionError("unreachable")


class _DeadClient:
    async def is_alive(self) -> bool:
        return False


async def test_a_leg_cancelled_while_it_reaps_its_readers_is_cancelled_not_returned() -> None:
    # The liveness check gives up on the session (two dead checks), _serve reaps its reader, and the gateway stops
    # the leg right then. The old _serve swallowed that cancellation with the reader's and returned as if the
    # session had ended, so its leg went on to rebind.
    gateway = CarrierGateway(_link(readers=1, enquire_link_interval=0.02), lambda _mo: asyncio.sleep(0))
    session = _DeadSession()
    leg = _Leg("TRX", asyncio.Event())
    task = asyncio.create_task(gateway._serve(leg, _DeadClient(), session))  # type: ignore[arg-type]
    async with asyncio.timeout(WAIT):
        await session.reader_cancelled.wait()
    task.cancel()
    await asyncio.wait({task}, timeout=WAIT)
    assert task.done()
    assert task.cancelled(), "the leg's cancellation was swallowed"
    assert gateway.liveness_failures == 1
