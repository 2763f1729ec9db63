"""SMPP over TLS on its own port, with a certificate made at test time."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

from carrier_sim.net.esme import Esme
from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.runner.carriers_command import self_signed_context
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig


def _self_signed(tmp: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context with a certificate made now (the same helper `carrier-sim carriers` uses)."""
    return self_signed_context(tmp)


async def test_submit_and_receipt_over_tls(tmp_path: Path) -> None:
    server_ctx, cert = _self_signed(tmp_path)
    client_ctx = ssl.create_default_context(cafile=str(cert))
    smsc = Smsc(SmscConfig(accounts=(Account("tls", "pw"),)))
    server = SmscServer(smsc)
    _, port = await server.listen("127.0.0.1", 0, ssl_context=server_ctx)
    receipts: list[Pdu] = []
    loop = asyncio.get_running_loop()
    _, esme = await loop.create_connection(
        lambda: Esme(on_message=receipts.append), "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
    )
    try:
        async with asyncio.timeout(10):
            await esme.bind("tls", "pw", CommandId.bind_transceiver)
            response = await esme.submit(
                Pdu.make(CommandId.submit_sm, 0, destination_addr="447700900001", registered_delivery=1,
                         short_message=b"over tls")
            )
            assert response.command_status == CommandStatus.ESME_ROK
            while not receipts:
                await asyncio.sleep(0.01)
        assert receipts[0].tlv("receipted_message_id") == response["message_id"]
        assert receipts[0].tlv("message_state") == 2
        await esme.unbind()
    finally:
        await server.shutdown()
    assert smsc.stats.delivered == 1


async def test_plain_client_on_tls_port_does_not_hurt_the_server(tmp_path: Path) -> None:
    server_ctx, cert = _self_signed(tmp_path)
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("tls", "pw"),))))
    _, port = await server.listen("127.0.0.1", 0, ssl_context=server_ctx)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"\x00\x00\x00\x10\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x01")  # plaintext enquire_link
        await writer.drain()
        async with asyncio.timeout(5):
            assert await reader.read() == b""  # TLS handshake fails; the server hangs up
        writer.close()
        client_ctx = ssl.create_default_context(cafile=str(cert))
        loop = asyncio.get_running_loop()
        _, esme = await loop.create_connection(Esme, "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost")
        async with asyncio.timeout(5):
            await esme.bind("tls", "pw")
        await esme.unbind()
    finally:
        await server.shutdown()


async def test_a_client_that_never_finishes_its_tls_handshake_is_dropped_at_session_init_timeout(
        tmp_path: Path) -> None:
    # The handshake is part of the time a connection has to bind; asyncio's own default held such a client 60 s.
    server_ctx, _ = _self_signed(tmp_path)
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("tls", "pw"),), session_init_timeout=0.5)))
    _, port = await server.listen("127.0.0.1", 0, ssl_context=server_ctx)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)  # TCP only: no ClientHello, ever
        async with asyncio.timeout(20):  # a bound on a hang (60 s before), not a speed
            assert await reader.read() == b""
        writer.close()
    finally:
        await server.shutdown()
