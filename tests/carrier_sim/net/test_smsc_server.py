"""White-box tests of the asyncio SMSC adapter's own machinery: the per-connection write queue, the clock,
backpressure. Fake transports stand in for sockets where the socket adds nothing but noise."""

from __future__ import annotations

import asyncio
from typing import Any

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig


class FakeTransport:
    """Just what SmscServer's write path calls."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True


def make_server(**kwargs: Any) -> SmscServer:
    return SmscServer(Smsc(SmscConfig(accounts=(Account("a", "b"),))), **kwargs)


async def test_a_long_queue_behind_a_split_write_drains_without_recursion() -> None:
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    server = make_server()
    transport = FakeTransport()
    server.transports[1] = transport  # type: ignore[assignment]
    server._write(1, transport, b"S" * 40, 1.0, 7, 0.0)  # type: ignore[arg-type]  # split: pieces trickle out
    chunks = 3000  # deeper than the default recursion limit
    for n in range(chunks):
        server._write(1, transport, n.to_bytes(16, "big"), 0.0, 7, 0.0)  # type: ignore[arg-type]
    async with asyncio.timeout(5):
        while len(transport.out) < 40 + 16 * chunks:
            await asyncio.sleep(0.01)
    assert errors == []
    assert bytes(transport.out) == b"S" * 40 + b"".join(n.to_bytes(16, "big") for n in range(chunks))
    assert not server._outgoing.get(1)
