"""The asyncio ESME adapter (carrier_sim.net.esme) against real sockets: a silent SMSC, the emulated SMSC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from carrier_sim.net.esme import Esme, EsmeError
from carrier_sim.net.smsc_server import SmscServer
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
