"""The asyncio ESME adapter (carrier_sim.net.esme) against real sockets: a silent SMSC, the emulated SMSC."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest

from carrier_sim.net.esme import Esme, EsmeError
from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.constants import CommandId as C
from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session import SessionConfig
from carrier_sim.smpp.session_table import Role
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig


async def test_a_bind_that_times_out_raises_and_drops_the_connection() -> None:
    # The SMSC may have bound and its bind_resp be late: the connection is dropped, a retry uses a new one.
    peer_gone = asyncio.Event()

    async def silent_smsc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # answers nothing; returns at EOF
        peer_gone.set()
        writer.close()

    server = await asyncio.start_server(silent_smsc, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    config = SessionConfig(role=Role.ESME, response_timeout=0.2, session_init_timeout=None)
    esme = await Esme.connect("127.0.0.1", port, config=config)
    with pytest.raises(EsmeError, match="bind_transceiver timed out"):
        await asyncio.wait_for(esme.bind("a", "b"), 3.0)
    assert esme.session.closed
    async with asyncio.timeout(3):
        await esme.closed.wait()
        await peer_gone.wait()
    server.close()
    await server.wait_closed()



@pytest.fixture
async def smsc_address() -> AsyncIterator[tuple[str, int]]:
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("a", "b"),))))
    address = await server.listen("127.0.0.1", 0)
    yield address
    await server.shutdown(grace=0.5)


def sm(destination: str) -> Pdu:
    return Pdu.make(C.submit_sm, 0, source_addr="1", destination_addr=destination, short_message=b"x")


async def test_a_pdu_that_cannot_be_sent_fails_its_own_future_and_the_rest_go_on(
        smsc_address: tuple[str, int]) -> None:
    # The bad PDU waits behind a full window and is sent from data_received when a response frees it: the
    # LocalProtocolError escaped there, killed the connection and left its future pending for good.
    errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: errors.append(context))
    esme = await Esme.connect(*smsc_address, config=SessionConfig(role=Role.ESME, window=1))
    await esme.bind("a", "b")
    first = esme.submit(sm("447700900001"))
    bad = esme.submit(sm("4" * 30))  # destination_addr holds at most 20 digits
    third = esme.submit(sm("447700900002"))
    async with asyncio.timeout(5):
        assert (await first).command_status == CommandStatus.ESME_ROK
        with pytest.raises(LocalProtocolError):
            await bad
        assert (await third).command_status == CommandStatus.ESME_ROK
    assert errors == []
    assert esme.transport is not None
    assert not esme.transport.is_closing()
    await esme.unbind()


async def test_requests_wait_in_the_queue_while_the_transport_is_paused(smsc_address: tuple[str, int]) -> None:
    esme = await Esme.connect(*smsc_address)
    await esme.bind("a", "b")
    esme.pause_writing()  # as the transport does above its high-water mark
    pending = esme.submit(sm("447700900001"))
    assert esme.session.outstanding == 0
    assert not pending.done()
    esme.resume_writing()
    async with asyncio.timeout(5):
        assert (await pending).command_status == CommandStatus.ESME_ROK
    await esme.unbind()


class _PeakEsme(Esme):
    """Notes the largest write buffer left behind by a read: what the ESME buffered for a peer that does not read."""

    peak = 0

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        assert self.transport is not None
        self.peak = max(self.peak, self.transport.get_write_buffer_size())


async def test_an_smsc_that_does_not_read_gets_backpressure_and_then_every_answer_in_order() -> None:
    # The peer floods deliver_sm, which the ESME answers, and never reads: the ESME read on and buffered every
    # deliver_sm_resp in its transport, without bound.
    count = 20_000  # 340 kB of deliver_sm_resp owed
    loop = asyncio.get_running_loop()
    peer: asyncio.Future[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = loop.create_future()

    async def flooding_smsc(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        header = await reader.readexactly(16)
        await reader.readexactly(int.from_bytes(header[:4], "big") - 16)
        sequence = int.from_bytes(header[12:16], "big")
        writer.write(encode(Pdu.make(C.bind_transceiver_resp, sequence, system_id="smsc")))
        writer.write(b"".join(encode(Pdu.make(C.deliver_sm, seq, source_addr="447700900001", destination_addr="1",
                                              short_message=b"x")) for seq in range(1, count + 1)))
        peer.set_result((reader, writer))  # and reads nothing until the test says so

    # Little room in the kernel on either side (set before the connection, so TCP does not grow it), so that
    # what the ESME does not hold back shows in its own buffer.
    listening = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    listening.bind(("127.0.0.1", 0))
    server = await asyncio.start_server(flooding_smsc, sock=listening)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, listening.getsockname())
    received: list[Pdu] = []
    _, esme = await loop.create_connection(lambda: _PeakEsme(on_message=received.append), sock=sock)
    transport = esme.transport
    assert transport is not None
    transport.set_write_buffer_limits(high=8192)
    high = transport.get_write_buffer_limits()[1]
    one_read = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)  # the most a read can bring at once
    await asyncio.wait_for(esme.bind("a", "b"), 3)
    reader, writer = await asyncio.wait_for(peer, 3)

    async with asyncio.timeout(5):
        while transport.is_reading() and len(received) < count:
            await asyncio.sleep(0.01)
    # Bounded near the high-water mark: past it by at most the answers to one read, smaller than the read.
    assert esme.peak <= high + one_read
    assert transport.get_write_buffer_size() <= high + one_read
    assert not transport.is_reading()
    assert len(received) < count

    # The peer reads: the ESME reads on, and every answer arrives, once and in order.
    expected = b"".join(encode(Pdu.make(C.deliver_sm_resp, seq)) for seq in range(1, count + 1))
    got = await asyncio.wait_for(reader.readexactly(len(expected)), 10)
    assert got == expected
    assert [pdu.sequence_number for pdu in received] == list(range(1, count + 1))
    assert transport.is_reading()
    assert esme.peak <= high + one_read
    writer.close()
    transport.close()
    server.close()
    await server.wait_closed()


async def test_backpressure_lifts_only_its_own_pause_of_reading(smsc_address: tuple[str, int]) -> None:
    # A consumer that is behind stops reading too: the buffer draining must not read on behind its back.
    esme = await Esme.connect(*smsc_address)
    await esme.bind("a", "b")
    transport = esme.transport
    assert transport is not None
    esme.pause_reading()
    esme.pause_writing()  # as the transport does above its high-water mark
    esme.resume_writing()
    assert not transport.is_reading()
    esme.pause_writing()
    esme.resume_reading()
    assert not transport.is_reading()  # the buffer is still full
    esme.resume_writing()
    assert transport.is_reading()
    # A caller that paused the transport itself keeps it paused.
    transport.pause_reading()
    esme.pause_writing()
    esme.resume_writing()
    assert not transport.is_reading()
    transport.resume_reading()
    await esme.unbind()
