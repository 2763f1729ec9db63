"""The asyncio ESME adapter (carrier_sim.net.esme) against real sockets: a silent SMSC, the emulated SMSC."""

from __future__ import annotations

import asyncio

import pytest

from carrier_sim.net.esme import Esme, EsmeError
from carrier_sim.smpp.session import SessionConfig
from carrier_sim.smpp.session_table import Role


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

