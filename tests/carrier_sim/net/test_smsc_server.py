"""White-box tests of the asyncio SMSC adapter's own machinery: the per-connection write queue, the clock,
backpressure. Fake transports stand in for sockets where the socket adds nothing but noise."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId as C
from carrier_sim.smpp.pdu import Pdu
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


def test_the_clock_never_goes_backwards_after_a_wall_clock_step() -> None:
    wall = [1_000_000.0]
    server = make_server(clock=lambda: wall[0])
    assert server.clock() == 1_000_000.0
    wall[0] -= 3600.0  # an NTP step back
    assert server.clock() == 1_000_000.0  # stands still
    wall[0] = 1_000_000.5
    assert server.clock() == 1_000_000.5  # and follows again once wall time has caught up


async def test_a_backward_step_does_not_delay_a_submit_pipelined_behind_the_bind() -> None:
    # The submit_sm waits in the session behind the bind until handle_timers, due at the session's `now`:
    # with the raw wall clock stepped back an hour, the timer was armed an hour out and the submit went
    # unanswered.
    step = [0.0]
    loop = asyncio.get_running_loop()

    class SteppingSmsc(Smsc):
        def connect(self, peer: str, now: float) -> Any:
            conn = super().connect(peer, now)
            receive = conn.receive_data

            def stepped(data: bytes, now: float) -> Any:
                out = receive(data, now)
                step[0] = -3600.0  # the wall clock is stepped back right after this chunk
                return out

            conn.receive_data = stepped  # type: ignore[method-assign]
            return conn

    server = SmscServer(SteppingSmsc(SmscConfig(accounts=(Account("a", "b"),))),
                        clock=lambda: loop.time() + 1_000_000.0 + step[0])
    host, port = await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode(Pdu.make(C.bind_transceiver, 1, system_id="a", password="b", interface_version=0x34))
                 + encode(Pdu.make(C.submit_sm, 2, source_addr="1", destination_addr="447700900001",
                                   short_message=b"x")))
    got = []
    async with asyncio.timeout(3):
        while len(got) < 2:
            header = await reader.readexactly(16)
            body = await reader.readexactly(int.from_bytes(header[:4], "big") - 16)
            got.append(decode(header + body).command_id)
    assert got == [C.bind_transceiver_resp, C.submit_sm_resp]
    writer.close()
    await server.shutdown(grace=0.1)


async def test_a_peer_that_does_not_read_gets_backpressure_and_then_everything_in_order() -> None:
    # A bound peer sends enquire_links and never reads: without backpressure the SMSC read on and buffered
    # every enquire_link_resp in its transport, without bound.
    server = make_server()
    host, port = await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode(Pdu.make(C.bind_transceiver, 1, system_id="a", password="b", interface_version=0x34)))
    header = await asyncio.wait_for(reader.readexactly(16), 5)
    await reader.readexactly(int.from_bytes(header[:4], "big") - 16)
    (transport,) = server.transports.values()
    # Little room in the kernel, so that what the SMSC does not hold back shows in its own buffer.
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    high = transport.get_write_buffer_limits()[1]
    writer.transport.pause_reading()  # type: ignore[attr-defined]  # the peer stops reading
    count = 100_000  # 1.6 MB of enquire_links, 1.6 MB of enquire_link_resp owed
    writer.write(b"".join(encode(Pdu.make(C.enquire_link, seq)) for seq in range(2, count + 2)))
    peak = 0
    for _ in range(20):
        await asyncio.sleep(0.05)
        peak = max(peak, transport.get_write_buffer_size())
    assert not transport.is_reading()  # type: ignore[attr-defined]
    # Bounded near the high-water mark: past it by at most the responses to one read (asyncio reads 256 KiB).
    assert peak <= high + 256 * 1024
    writer.transport.resume_reading()  # type: ignore[attr-defined]
    expected = b"".join(encode(Pdu.make(C.enquire_link_resp, seq)) for seq in range(2, count + 2))
    got = await asyncio.wait_for(reader.readexactly(len(expected)), 30)
    assert got == expected  # all of it, in order
    writer.close()
    await server.shutdown(grace=0.1)


async def _read_pdu(reader: asyncio.StreamReader) -> Pdu:
    header = await asyncio.wait_for(reader.readexactly(16), 5)
    return decode(header + await reader.readexactly(int.from_bytes(header[:4], "big") - 16))


async def test_an_unbind_unanswered_when_the_shutdown_grace_runs_out_is_not_judged_a_dropped_connection() -> None:
    # The ESME would answer the SMSC's unbind, but only after the grace: the SMSC closes the connection itself.
    # Before: "fail unbind: connection dropped without unbind". The grace (0.2 s) is shorter than response_timeout
    # (30 s): the ESME was not given its full response time, so nothing can be said of the unbind -- inconc,
    # saying why -- nor of what else it left unanswered.
    server = make_server()
    host, port = await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode(Pdu.make(C.bind_transceiver, 1, system_id="a", password="b", interface_version=0x34)))
    assert (await _read_pdu(reader)).command_id is C.bind_transceiver_resp
    await server.shutdown(grace=0.2)
    assert (await _read_pdu(reader)).command_id is C.unbind  # never answered in time
    writer.close()
    [session] = server.smsc.verdicts()
    unbind = next(c for c in session["checks"] if c["check"] == "unbind")  # type: ignore[attr-defined]
    assert (unbind["verdict"], unbind["reason"]) == (
        "inconc", "not judged: our unbind not answered within the 0.2 s shutdown grace, shorter than "
                  "response_timeout (30 s), when the SMSC closed the connection")


async def test_a_shutdown_grace_as_long_as_the_response_timeout_judges_the_unanswered_unbind() -> None:
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("a", "b"),), response_timeout=0.2)))
    host, port = await server.listen("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(encode(Pdu.make(C.bind_transceiver, 1, system_id="a", password="b", interface_version=0x34)))
    assert (await _read_pdu(reader)).command_id is C.bind_transceiver_resp
    await server.shutdown(grace=0.5)  # the unbind's own response timer fires first, and the SMSC closes
    writer.close()
    [session] = server.smsc.verdicts()
    unbind = next(c for c in session["checks"] if c["check"] == "unbind")  # type: ignore[attr-defined]
    assert unbind["verdict"] == "fail"
    assert str(unbind["reason"]).endswith("first: our unbind not answered within response_timeout (0.2 s); the SMSC "
                                          "closed the connection")
