"""Helpers for testing against the CAMARA APIs: a settable clock and the app served on a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

from carrier_sim.net.http_errors import app_runner

__all__ = ["FakeClock", "serve"]


@dataclass
class FakeClock:
    """A clock a test or a virtual-time scenario moves by hand; call it for the current time."""

    now: datetime = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@asynccontextmanager
async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0: any free port) for the duration of the block; yields the base URL."""
    runner = app_runner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        yield f"http://{host}:{bound_port}"
    finally:
        await runner.cleanup()
