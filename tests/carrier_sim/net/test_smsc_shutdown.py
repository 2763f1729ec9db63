"""SmscServer.shutdown against a peer that floods and never reads: it is not read on through the grace.

A real socket (a blocking one, in a thread, with a small receive buffer) floods ``submit_sm`` and never reads. Before
the fix the SMSC, once it had sent its unbind, read and answered (``ESME_RINVBNDSTS``) everything the peer sent in
the grace until the kernel's send buffer (up to 4 MiB, autotuned) was full: some 100,000 requests a second."""

from __future__ import annotations

import asyncio
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.runner.carriers_command import self_signed_context
from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.constants import CommandId as C
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig

#: The most one read of asyncio's selector transport brings (max_size); its requests are all answered before a
#: pause it causes stops the next read.
ONE_READ = 256 * 1024
#: The smallest response the SMSC writes (a bare header: submit_sm_resp ESME_RINVBNDSTS).
RESPONSE = 16


class Flood:
    """A bound ESME that floods submit_sm from a thread and never reads a byte after its bind_resp."""

    def __init__(self, port: int, tls: ssl.SSLContext | None) -> None:
        raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window from the start
        raw.connect(("127.0.0.1", port))
        self.sock = tls.wrap_socket(raw, server_hostname="localhost") if tls is not None else raw
        self.sock.sendall(encode(Pdu.make(C.bind_transceiver, 1, system_id="a", password="b",
                                          interface_version=0x34)))
        header = self._read(16)
        self._read(int.from_bytes(header[:4], "big") - 16)
        assert int.from_bytes(header[4:8], "big") == C.bind_transceiver_resp
        self.pdu = encode(Pdu.make(C.submit_sm, 2, destination_addr="447700900001", short_message=b"hello"))
        self.sent = 0
        self.ended: OSError | None = None
        self.thread = threading.Thread(target=self._flood, daemon=True)

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, "the SMSC closed before the bind_resp"
            data += chunk
        return data

    def _flood(self) -> None:
        batch = self.pdu * 100  # one sequence_number for all: the SMSC answers each all the same
        try:
            while True:
                self.sock.sendall(batch)
                self.sent += 100
        except OSError as err:  # the SMSC's abort at the end of the grace (or our close)
            self.ended = err

    def close(self) -> None:
        self.sock.close()
        self.thread.join(5)


@pytest.mark.parametrize("use_tls", [False, True], ids=["plain", "tls"])
async def test_a_peer_that_floods_and_never_reads_is_not_read_on_through_the_shutdown_grace(
        use_tls: bool, tmp_path: Path) -> None:
    server_tls, client_tls = None, None
    if use_tls:
        server_tls, cert = self_signed_context(tmp_path)
        client_tls = ssl.create_default_context(cafile=str(cert))
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("a", "b"),))))
    _, port = await server.listen("127.0.0.1", 0, ssl_context=server_tls)
    read = {"octets": 0, "after": 0}
    stopping = False

    def tap(_cid: int, kind: str, data: bytes, _now: float) -> None:
        if kind == "in":
            read["after" if stopping else "octets"] += len(data)

    server.tap = tap
    flood = await asyncio.to_thread(Flood, port, client_tls)
    flood.thread.start()
    try:
        async with asyncio.timeout(10):
            while read["octets"] < 10 * len(flood.pdu):  # flooding, and the SMSC reading it
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        stopping = True
        grace = 1.0
        started = time.monotonic()
        await server.shutdown(grace=grace)
        took = time.monotonic() - started
        await asyncio.to_thread(flood.thread.join, 5)
    finally:
        flood.close()
    answered = read["after"] // len(flood.pdu)  # every request read after the unbind is answered ESME_RINVBNDSTS
    # What the grace's buffers hold in responses (the kernel doubles SO_SNDBUF's 16 KiB; 16 KiB in the transport),
    # and the requests of the read in hand when the pause came, and of one more at most: thousands, not the
    # hundred thousand of the kernel's autotuned send buffer before.
    bound = (3 * 16 * 1024) // RESPONSE + 2 * ONE_READ // len(flood.pdu)
    assert answered <= bound, f"{answered} requests read after shutdown began (bound {bound})"
    assert flood.sent > 2 * bound  # it did flood: the bound is what held it
    assert took < grace + 1.0  # ended within the grace (and its abort)
    # Ended by the SMSC (its buffer was never drained: an abort): a reset, which TLS may report as a broken EOF.
    assert isinstance(flood.ended, ConnectionError if not use_tls else OSError)
    assert not server.transports


async def test_a_connection_paused_before_shutdown_stays_paused_through_the_grace() -> None:
    # A guard (this held before too): nothing in the shutdown reads a paused connection again.
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("a", "b"),))))
    host, port = await server.listen("127.0.0.1", 0)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the peer's kernel takes little for it either
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(encode(Pdu.make(C.bind_transceiver, 1, system_id="a", password="b", interface_version=0x34)))
    header = await asyncio.wait_for(reader.readexactly(16), 5)
    await reader.readexactly(int.from_bytes(header[:4], "big") - 16)
    (transport,) = server.transports.values()
    transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    writer.transport.pause_reading()  # type: ignore[attr-defined]  # the peer stops reading
    link = encode(Pdu.make(C.enquire_link, 2))
    writer.write(link * 100_000)
    async with asyncio.timeout(10):
        while transport.is_reading():  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)
    seen: list[int] = []
    server.tap = lambda _cid, kind, data, _now: seen.append(len(data)) if kind == "in" else None
    task = asyncio.create_task(server.shutdown(grace=0.5))
    await asyncio.sleep(0.3)
    assert not transport.is_reading()  # type: ignore[attr-defined]
    await task
    assert seen == []  # not one octet read after the pause
    assert transport.is_closing()
    writer.close()
