"""The doors' AppRunner and its twin in identity_core: a stop does not wait a minute for a request whose body never
arrives."""

from __future__ import annotations

import asyncio

from aiohttp import web

from carrier_sim.net.http_errors import SHUTDOWN_GRACE, app_runner
from identity_core.http_errors import SHUTDOWN_GRACE as CORE_GRACE
from identity_core.http_errors import app_runner as core_app_runner


async def _stop_with_a_stalled_body(runner: web.AppRunner) -> None:
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    _reader, writer = await asyncio.open_connection(host, port)
    # The headers promise 100 octets; one comes. aiohttp's default cleanup waits 60 s for such a request.
    writer.write(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{")
    await writer.drain()
    await asyncio.sleep(0.2)
    try:
        async with asyncio.timeout(20):  # well under aiohttp's 60 s; well over the grace
            await runner.cleanup()
    finally:
        writer.close()


def _app() -> web.Application:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=await request.read())

    app = web.Application()
    app.router.add_post("/echo", echo)
    return app


async def test_a_door_stops_within_its_grace_despite_a_stalled_request() -> None:
    assert SHUTDOWN_GRACE < 20
    await _stop_with_a_stalled_body(app_runner(_app()))


async def test_the_identity_core_api_stops_within_its_grace_despite_a_stalled_request() -> None:
    assert CORE_GRACE < 20
    await _stop_with_a_stalled_body(core_app_runner(_app()))
