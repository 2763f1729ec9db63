"""The asyncio SMSC's capture hook says how each connection ended, and write_streams draws it: real sockets, the
runner's tap, and the pcap read back.

One SMSC, five connections, each ended a different way: the peer hangs up (its FIN first), the peer resets, the
SMSC closes after answering an unbind (its FIN first), the tcp_reset fault (the SMSC's RST), and an outage that
aborts every connection (the SMSC's RST).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import socket
import struct
import termios
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from scapy.layers.inet import TCP
from scapy.utils import rdpcap

from carrier_sim.capture.pcap import ConnectionEnd, reassemble_streams, write_streams
from carrier_sim.capture.tap import StreamTap
from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.codec import HEADER_SIZE, decode, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.faults import FaultPlan

C = CommandId
WAIT = 5.0


class _Peer:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.port = int(writer.get_extra_info("sockname")[1])

    @classmethod
    async def connect(cls, port: int) -> _Peer:
        async with asyncio.timeout(WAIT):
            return cls(*await asyncio.open_connection("127.0.0.1", port))

    async def exchange(self, pdu: Pdu) -> Pdu:
        self.writer.write(encode(pdu))
        async with asyncio.timeout(WAIT):
            header = await self.reader.readexactly(HEADER_SIZE)
            (length,) = struct.unpack(">I", header[:4])
            return decode(header + await self.reader.readexactly(length - HEADER_SIZE))

    async def bind(self) -> None:
        response = await self.exchange(
            Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw", interface_version=0x34)
        )
        assert response.command_status == 0

    async def submit(self) -> None:
        self.writer.write(
            encode(
                Pdu.make(C.submit_sm, 2, source_addr="12345", destination_addr="447700900001", short_message=b"Hello")
            )
        )

    async def wait_for_eof(self) -> None:
        async with asyncio.timeout(WAIT):
            with contextlib.suppress(ConnectionError):
                await self.reader.read()

    def hang_up(self, *, reset: bool = False) -> None:
        if reset:
            # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
            sock: socket.socket = self.writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.writer.transport.abort()
        else:
            self.writer.close()


async def _serve(faults: FaultPlan | None = None) -> tuple[SmscServer, int, StreamTap]:
    config = SmscConfig(accounts=(Account("esme", "pw"),))
    smsc = Smsc(replace(config, faults=faults or FaultPlan()))
    server = SmscServer(smsc)
    tap = StreamTap()
    server.tap = tap
    _, port = await server.listen("127.0.0.1", 0)
    return server, port, tap


async def _until(done: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not done():
            await asyncio.sleep(0.01)


def _closed(tap: StreamTap, count: int) -> Callable[[], bool]:
    return lambda: sum(1 for _c, _s, chunks in tap.streams.values() if chunks[-1][0] == "close") == count


def _eofs_by_port(tap: StreamTap) -> dict[int, list[bytes]]:
    return {
        int(client.rsplit(":", 1)[1]): [data for kind, data, _t in chunks if kind == "eof"]
        for client, _server, chunks in tap.streams.values()
    }


def _fins_by_port(path: Path, smsc_port: int) -> dict[int, list[str]]:
    """Who sent each FIN of every conversation in the pcap at ``path``, in order: "smsc" or "peer"."""
    fins: dict[int, list[str]] = {}
    for frame in rdpcap(str(path)):
        tcp = frame[TCP]
        by_smsc = int(tcp.sport) == smsc_port
        client = int(tcp.dport) if by_smsc else int(tcp.sport)
        fins.setdefault(client, [])
        if tcp.flags.F:
            fins[client].append("smsc" if by_smsc else "peer")
    return fins


def _ends_by_port(tap: StreamTap) -> dict[int, ConnectionEnd]:
    return {
        int(client.rsplit(":", 1)[1]): ConnectionEnd.parse(chunks[-1][1])
        for client, _server, chunks in tap.streams.values()
        if chunks[-1][0] == "close"
    }


async def test_the_hook_reports_who_ended_each_connection_and_the_pcap_draws_it(tmp_path: Path) -> None:
    server, port, tap = await _serve()
    try:
        hangs_up, resets, unbinds = [await _Peer.connect(port) for _ in range(3)]
        for peer in (hangs_up, resets, unbinds):
            await peer.bind()
        hangs_up.hang_up()
        resets.hang_up(reset=True)
        assert (await unbinds.exchange(Pdu.make(C.unbind, 7))).command_id == C.unbind_resp
        await unbinds.wait_for_eof()  # the SMSC closes after its unbind_resp; the peer only answers the FIN
        unbinds.hang_up()
        await _until(_closed(tap, 3))
    finally:
        await server.shutdown(grace=0.5)
    # The close names the FIN or RST that ended it; the peer's FIN, when it came, is an "eof" before it.
    assert _ends_by_port(tap) == {
        hangs_up.port: ConnectionEnd.SERVER_FIN,
        resets.port: ConnectionEnd.CLIENT_RST,
        unbinds.port: ConnectionEnd.SERVER_FIN,
    }
    assert _eofs_by_port(tap) == {hangs_up.port: [b"client"], resets.port: [], unbinds.port: []}

    path = tmp_path / "smsc.pcap"
    write_streams(path, tap.streams.values())
    frames = rdpcap(str(path))
    times = [float(f.time) for f in frames]
    assert times == sorted(times)
    first_release: dict[int, tuple[str, str]] = {}
    for frame in frames:
        tcp = frame[TCP]
        client = int(tcp.dport) if int(tcp.sport) == port else int(tcp.sport)
        if (tcp.flags.F or tcp.flags.R) and client not in first_release:
            first_release[client] = ("smsc" if int(tcp.sport) == port else "peer", str(tcp.flags))
    assert first_release == {
        hangs_up.port: ("peer", "FA"),
        resets.port: ("peer", "RA"),
        unbinds.port: ("smsc", "FA"),
    }
    # The peer that answered the SMSC's FIN with its own: the SMSC had closed its socket and never saw it, so it
    # is not drawn (nothing the SMSC saw says it came).
    assert _fins_by_port(path, port) == {hangs_up.port: ["peer", "smsc"], resets.port: [], unbinds.port: ["smsc"]}


async def test_an_esme_that_keeps_its_socket_open_after_unbind_is_not_drawn_closing_it(tmp_path: Path) -> None:
    # Every orderly close was drawn as both FINs, so the ESME here (it answers the SMSC's unbind and keeps its
    # socket open: an interop bug worth seeing) was shown sending a FIN it never sent.
    server, port, tap = await _serve()
    esme = await _Peer.connect(port)
    try:
        await esme.bind()
        server.smsc.unbind_all(server.clock())
        server.service()
        async with asyncio.timeout(WAIT):
            header = await esme.reader.readexactly(HEADER_SIZE)
        unbind = decode(header + await esme.reader.readexactly(int.from_bytes(header[:4], "big") - HEADER_SIZE))
        assert unbind.command_id == C.unbind
        esme.writer.write(encode(Pdu.make(C.unbind_resp, unbind.sequence_number)))
        await esme.wait_for_eof()  # the SMSC's FIN; the ESME's socket stays open
        await _until(_closed(tap, 1))
        path = tmp_path / "open.pcap"
        write_streams(path, tap.streams.values())
        assert _fins_by_port(path, port) == {esme.port: ["smsc"]}
        assert _ends_by_port(tap) == {esme.port: ConnectionEnd.SERVER_FIN}
    finally:
        esme.hang_up()
        await server.shutdown(grace=0.5)


async def test_a_reset_fault_and_an_outage_are_the_smscs_rst() -> None:
    server, port, tap = await _serve(FaultPlan(tcp_reset=1.0))
    try:
        faulted = await _Peer.connect(port)
        await faulted.bind()
        await faulted.submit()  # the tcp_reset fault strikes after the submit_sm
        await faulted.wait_for_eof()
        await _until(_closed(tap, 1))
        outage = await _Peer.connect(port)
        await outage.bind()
        await server.stop_listening(abort_connections=True)
        await _until(_closed(tap, 2))
    finally:
        await server.shutdown(grace=0.5)
    assert _ends_by_port(tap) == {faulted.port: ConnectionEnd.SERVER_RST, outage.port: ConnectionEnd.SERVER_RST}


def _kernel_queue(sock: socket.socket, request: int) -> int:
    """A socket's kernel queue, by ioctl: SIOCOUTQ (TIOCOUTQ) the octets sent not yet acknowledged, SIOCINQ
    (FIONREAD) the octets received not yet read."""
    return struct.unpack("i", fcntl.ioctl(sock.fileno(), request, b"\0\0\0\0"))[0]


@pytest.mark.parametrize("end", ["shutdown", "outage"])
async def test_octets_left_in_the_transports_buffer_are_not_drawn_as_sent(tmp_path: Path, end: str) -> None:
    # An ESME that stops reading: the SMSC's responses pile up in asyncio's buffer, which the abort at the end
    # discards. "out" was recorded at transport.write, so the pcap showed all of it sent and acknowledged (3 MB
    # against a few kB in the review's run) and no end at all. Now the capture holds exactly what the kernel
    # took -- what the ESME has read, plus its socket's receive queue, plus the SMSC socket's send queue -- and
    # ends with the SMSC's RST after it.
    server, port, tap = await _serve()
    esme = socket.socket()
    esme.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    esme.setblocking(False)
    loop = asyncio.get_running_loop()
    flood: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(WAIT):
            await loop.sock_connect(esme, ("127.0.0.1", port))
            await _until(lambda: bool(server.transports))
            (cid, transport), = server.transports.items()
            smsc_socket = transport.get_extra_info("socket")
            # Small kernel buffers, so that asyncio's own buffer fills after a few kB, not megabytes.
            smsc_socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            bind = encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw", interface_version=0x34))
            await loop.sock_sendall(esme, bind)
            read = await loop.sock_recv(esme, 4096)  # the bind_resp, all the ESME ever reads
            enquire_links = b"".join(encode(Pdu.make(C.enquire_link, n)) for n in range(2, 12_000))
            flood = asyncio.create_task(loop.sock_sendall(esme, enquire_links))
            await _until(lambda: cid in server._paused)

            def queues() -> tuple[int, int, int]:
                return (_kernel_queue(esme, termios.FIONREAD), _kernel_queue(smsc_socket, termios.TIOCOUTQ),
                        transport.get_write_buffer_size())

            # The windows close in steps (and a delayed ACK counts octets in both queues for a moment): wait until
            # nothing moves any more.
            settled, before = False, queues()
            while not settled:
                await asyncio.sleep(0.3)
                settled, before = queues() == before, queues()
            received, unacknowledged, buffered = before
            assert buffered > 0
            kernel_took = len(read) + received + unacknowledged
            if end == "outage":
                await server.stop_listening(abort_connections=True)
            await server.shutdown(grace=0.2)
            await _until(_closed(tap, 1))
    finally:
        if flood is not None:
            flood.cancel()
        esme.close()
        await server.shutdown(grace=0)
    (client, _server, chunks), = tap.streams.values()
    drawn = b"".join(data for kind, data, _t in chunks if kind == "out")
    assert len(drawn) == kernel_took
    assert chunks[-1][:2] == ("close", ConnectionEnd.SERVER_RST.value)

    path = tmp_path / "stuck.pcap"
    write_streams(path, tap.streams.values())
    frames = rdpcap(str(path))
    client_port = int(client.rsplit(":", 1)[1])
    assert reassemble_streams(frames)[(("127.0.0.1", port), ("127.0.0.1", client_port))] == drawn
    last = frames[-1][TCP]
    assert (int(last.sport), str(last.flags)) == (port, "RA")


async def test_octets_held_back_while_the_peer_stalls_are_drawn_once_they_leave(tmp_path: Path) -> None:
    # The other half: what waited in the buffer is drawn when the SMSC sees it gone (a later write, a read,
    # resume_writing, the close), so an ESME that stalls and then reads on finds every octet it got in the pcap,
    # in order, and none twice.
    server, port, tap = await _serve()
    esme = socket.socket()
    esme.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    esme.setblocking(False)
    loop = asyncio.get_running_loop()
    count = 12_000
    try:
        async with asyncio.timeout(WAIT * 2):
            await loop.sock_connect(esme, ("127.0.0.1", port))
            await _until(lambda: bool(server.transports))
            (cid, transport), = server.transports.items()
            transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            bind = encode(Pdu.make(C.bind_transceiver, 1, system_id="esme", password="pw", interface_version=0x34))
            await loop.sock_sendall(esme, bind)
            received = bytearray(await loop.sock_recv(esme, 4096))
            enquire_links = b"".join(encode(Pdu.make(C.enquire_link, n)) for n in range(2, 2 + count))
            flood = asyncio.create_task(loop.sock_sendall(esme, enquire_links))
            await _until(lambda: cid in server._paused)
            assert server._unsent  # held back, not drawn
            while len(received) < 26 + 16 * count:  # the bind_resp and every enquire_link_resp
                received += await loop.sock_recv(esme, 65536)
            await flood
        esme.close()
        await _until(_closed(tap, 1))
    finally:
        esme.close()
        await server.shutdown(grace=0)
    (client, _server, chunks), = tap.streams.values()
    assert b"".join(data for kind, data, _t in chunks if kind == "out") == received
    assert not server._unsent
    path = tmp_path / "stalled.pcap"
    write_streams(path, tap.streams.values())
    client_port = int(client.rsplit(":", 1)[1])
    assert reassemble_streams(rdpcap(str(path)))[(("127.0.0.1", port), ("127.0.0.1", client_port))] == received
