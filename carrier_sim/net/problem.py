"""RFC 9457 problem+json responses for every HTTP door of the emulator."""

from __future__ import annotations

import json

from aiohttp import web

__all__ = ["problem"]


def problem(status: int, title: str, detail: str, **extra: object) -> web.Response:
    """An ``application/problem+json`` response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")
