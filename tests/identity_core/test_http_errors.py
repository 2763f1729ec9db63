"""Malformed HTTP on the identity core's port, served as ``identity-core serve`` serves it: a 400, one log line
naming the peer and the reason, no traceback, and the next request served."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from identity_core.cli import serve
from identity_core.config import load_config
from tests.identity_core.conftest import Carrier, free_port, write_config


@pytest.fixture
async def api(carrier: Carrier, tmp_path: Path) -> AsyncIterator[tuple[str, int]]:
    """``serve`` in this event loop (so that caplog sees its logs), bound to the carrier: the API's address."""
    config = load_config(write_config(tmp_path, carrier.port, free_port()))
    ready = asyncio.Event()
    serving = asyncio.create_task(serve(config, ready))
    try:
        async with asyncio.timeout(20):
            await ready.wait()
        yield config.api.host, config.api.port
    finally:
        serving.cancel()  # the cleanup serve does on SIGTERM (unbind, close the store) runs on cancellation too
        with contextlib.suppress(asyncio.CancelledError):
            await serving


async def _raw_exchange(host: str, port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()  # aiohttp closes the connection after refusing malformed HTTP
    finally:
        writer.close()


@pytest.mark.parametrize(
    ("request_bytes", "reason"),
    [
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n\r\n", "BadHttpMethod"),  # TLS on a plain port
        (b"NOT AN HTTP REQUEST LINE\r\n\r\n", "BadHttpMethod"),
        (b"\x00\xff\xfe\x7f junk\r\n\r\n", "BadHttpMethod"),
        (b"GET /healthz HTTP/9\r\nHost: x\r\n\r\n", "BadStatusLine"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: \x01\r\n\r\n", "BadHttpMessage"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n", "LineTooLong"),
    ],
    ids=["tls", "text-garbage", "binary-garbage", "http-version", "control-char-header", "100KB-header"],
)
async def test_malformed_http_gets_400_one_log_line_without_traceback_and_the_next_request_is_served(
    api: tuple[str, int], request_bytes: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = api
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        answer = await _raw_exchange(host, port, request_bytes)
    status_line, _, _ = answer.partition(b"\r\n")
    assert status_line in (b"HTTP/1.0 400 Bad Request", b"HTTP/1.1 400 Bad Request")
    records = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert len(records) == 1, [r.getMessage() for r in records]
    [record] = records
    assert record.exc_info is None
    assert record.levelno <= logging.WARNING  # the peer's mistake, not the service's
    message = record.getMessage()
    assert "\n" not in message
    assert f"from {host}" in message
    assert reason in message
    assert "Traceback" not in caplog.text
    async with aiohttp.ClientSession() as http, http.get(f"http://{host}:{port}/healthz") as response:
        assert response.status == 200
        assert (await response.json())["status"] == "ok"
