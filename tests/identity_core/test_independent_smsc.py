"""The identity core completes registrations against smpp34's Server, an SMSC that is not this project's."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import aiohttp

from identity_core.refusals import Refusal
from identity_core.reg_protocol import format_reg_req, parse_reg_resp
from tests.identity_core.conftest import GATEWAY, free_port, start_identity, write_config
from tests.interop.conftest import require_module

PHONE = "447700900555"


async def test_registration_through_smpp34_server(tmp_path: Path) -> None:
    smpp34: Any = require_module("smpp34")
    port = free_port()
    server = smpp34.Server("127.0.0.1", port, system_id="INDEPSMSC")
    await server.start()
    sessions: asyncio.Queue[Any] = asyncio.Queue()
    submits: asyncio.Queue[Any] = asyncio.Queue()

    async def serve() -> None:
        ids = iter(range(9000, 10000))
        while True:
            event = await server.next()
            if isinstance(event, smpp34.SubmitSmEvent):
                event.accept(str(next(ids)))
                await submits.put(event)
            elif isinstance(event, smpp34.Esme):
                await sessions.put(event)

    serving = asyncio.create_task(serve())
    identity = await start_identity(write_config(tmp_path, port, free_port()))
    try:
        async with asyncio.timeout(15):
            session = await sessions.get()
            token = secrets.token_hex(32)
            # The phone's MO, stamped by the network with its international number (TON 1, NPI 1).
            response = await session.deliver_sm(GATEWAY, format_reg_req(token, 99).encode(), source_addr=PHONE,
                                                source_addr_ton=1, source_addr_npi=1)
            assert response.command_status == 0
            submit = await submits.get()
        assert submit.destination_addr == PHONE
        assert submit.registered_delivery & 0x03 == 1  # the service tracks receipts of its REG-RESP
        reg_resp = parse_reg_resp(bytes(submit.short_message).decode("ascii"))
        assert not isinstance(reg_resp, Refusal), reg_resp
        assert reg_resp.e164 == "+" + PHONE
        async with aiohttp.ClientSession(identity.base_url) as http:
            body = {"phone_number": "+" + PHONE, "push_token": token, "signature": reg_resp.proof_hex}
            async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
                assert r.status == 200, await r.text()
                assert (await r.json())["binding"]["state"] == "active"
    finally:
        assert await identity.stop() == 0
        serving.cancel()
        await server.stop()
