"""Outbind: the SMSC connects to a configured ESME and asks it to bind (SMPP 3.4 section 2.2.1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.framing import Framer
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig


async def _next_pdu(reader: asyncio.StreamReader, framer: Framer) -> Pdu:
    async with asyncio.timeout(5):
        while True:
            frame = framer.next_frame()
            if frame is not None:
                return decode(frame)
            data = await reader.read(4096)
            assert data, "the SMSC hung up"
            framer.feed(data)


@contextlib.asynccontextmanager
async def _outbound(server: SmscServer) -> AsyncIterator[tuple[int, asyncio.StreamReader, asyncio.StreamWriter]]:
    """An ESME's listener the SMSC outbinds to: yields its port and the connection the SMSC opened."""
    accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put((reader, writer))

    esme_listener = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = esme_listener.sockets[0].getsockname()[1]
    try:
        await server.outbind("127.0.0.1", port, "esme", "pw")
        reader, writer = await asyncio.wait_for(accepted.get(), 5)
        yield port, reader, writer
    finally:
        await server.shutdown()
        esme_listener.close()


async def test_outbind_then_bind_receiver_then_mo() -> None:
    smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"),)))
    server = SmscServer(smsc)
    async with _outbound(server) as (_port, reader, writer):
        framer = Framer()
        outbind = await _next_pdu(reader, framer)
        assert outbind.command_id is CommandId.outbind
        assert (outbind["system_id"], outbind["password"]) == ("esme", "pw")

        writer.write(encode(Pdu.make(CommandId.bind_receiver, 1, system_id="esme", password="pw",
                                     interface_version=0x34)))
        resp = await _next_pdu(reader, framer)
        assert resp.command_id is CommandId.bind_receiver_resp
        assert resp.command_status == CommandStatus.ESME_ROK

        assert smsc.inject_mo("447700900001", "12345", "hello via outbind", server.clock())
        server.service()
        mo = await _next_pdu(reader, framer)
        assert mo.command_id is CommandId.deliver_sm
        assert mo["short_message"] == b"hello via outbind"  # GSM 7-bit, one septet per octet
        writer.write(encode(mo.response()))
        await writer.drain()
        writer.close()


async def test_the_capture_shows_the_smsc_as_the_client_of_an_outbind() -> None:
    """The SMSC opened the connection, so in a pcap its SYN, its outbind and its hang-up come from the client end."""
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("esme", "pw"),))))
    events: list[tuple[str, bytes]] = []
    server.tap = lambda _cid, kind, data, _now: events.append((kind, data))
    async with _outbound(server) as (port, reader, writer):
        framer = Framer()
        await _next_pdu(reader, framer)
        bind = encode(Pdu.make(CommandId.bind_receiver, 1, system_id="esme", password="pw", interface_version=0x34))
        writer.write(bind)
        await _next_pdu(reader, framer)
        writer.close()  # the ESME (the capture's server end) hangs up first
        async with asyncio.timeout(5):
            while not events or events[-1][0] != "close":
                await asyncio.sleep(0.01)
    kind, ends = events[0]
    assert kind == "open"
    client, listener = ends.decode().split("|")
    assert listener == f"127.0.0.1:{port}"  # the ESME's listening port is the server end
    assert client != listener
    sent_by_smsc = b"".join(data for kind, data in events if kind == "in")
    sent_by_esme = b"".join(data for kind, data in events if kind == "out")
    assert decode(sent_by_smsc[:int.from_bytes(sent_by_smsc[:4], "big")]).command_id is CommandId.outbind
    assert sent_by_esme == bind
    # The ESME's FIN (the capture's server end), then the SMSC's, which closed its side in answer.
    assert events[-2:] == [("eof", b"server"), ("close", b"client fin")]
