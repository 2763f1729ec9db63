"""The SMSC's HTTP control API (loopback only): inject MO, read counters and per-session verdicts.

- ``POST /mo`` with ``{"from": MSISDN, "to": ADDRESS, "text": TEXT}`` (optional ``"data_coding"``): the MO is
  routed and delivered like any MO. 202 with ``{"routed": true}``; 404 problem+json when no bind takes it;
  400 problem+json for a malformed request, or text the SMSC cannot write or split into 255 deliver_sm parts --
  checked the same whether a bind takes the MO now or it is held (``hold_mo``) for a later one, and whether that
  bind's account takes MO as deliver_sm or data_sm: a retry may carry it to another bind, so the strictest form
  decides (:meth:`~carrier_sim.smsc.centre.Smsc.mo_pdus`). A 202 is never followed by an MO dropped unsendable.
- ``GET /stats``: ``{"smsc": name, "stats": {...}, "sessions": [{"peer", "system_id", "checks": [...]}]}``.

Every error is problem+json (RFC 9457), including the ones aiohttp raises itself: an unknown path is a 404, a
known path with the wrong method a 405 with ``Allow``, an oversized body a 413, a body that is not the gzip or
deflate its ``Content-Encoding`` names a 400 (``problem_middleware``: reading it raises no ``HTTPException``).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from carrier_sim.net.http_errors import problem_middleware
from carrier_sim.net.problem import problem
from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.report.smsc_report import stats_document
from carrier_sim.smpp.errors import SmppError

__all__ = ["control_app"]


#: What the API serves, for the detail of a 404.
_ROUTES = "POST /mo, GET /stats"


def _address_text(value: str) -> bool:
    """Whether an SMPP address field can carry ``value``: printable (no NUL or other control) and Latin-1."""
    return value.isprintable() and all(ord(c) < 256 for c in value)


def control_app(server: SmscServer) -> web.Application:
    """The aiohttp application serving the control API of one SMSC."""

    async def post_mo(request: web.Request) -> web.Response:
        try:
            body: Any = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError):
            return problem(400, "Malformed JSON", "the body is not a JSON document")
        except RecursionError:  # '[' * 60000 fits the size limit and exhausts the parser's stack
            return problem(400, "Malformed JSON", "the body is nested too deeply")
        if not isinstance(body, dict):
            return problem(400, "Invalid MO", "the body must be a JSON object")
        source, dest, text = body.get("from"), body.get("to"), body.get("text")
        coding = body.get("data_coding")
        not_strings = [
            name for name, value in (("from", source), ("to", dest), ("text", text)) if not isinstance(value, str)
        ]
        if not_strings:
            return problem(400, "Invalid MO", f"must be strings: {', '.join(not_strings)}")
        # JSON true/false are ints to Python: refused here, as a number is expected.
        if coding is not None and (isinstance(coding, bool) or not isinstance(coding, int)):
            return problem(400, "Invalid MO", "data_coding must be an integer (SMPP 3.4 5.2.19)")
        assert isinstance(source, str)
        assert isinstance(dest, str)
        assert isinstance(text, str)
        if not source or not dest or len(source) > 20 or len(dest) > 20:
            return problem(400, "Invalid MO", "from and to must be 1..20 characters")
        unwritable = [name for name, value in (("from", source), ("to", dest)) if not _address_text(value)]
        if unwritable:
            # Refused here: the codec could not write such an address into the deliver_sm, and the MO would be
            # dropped as unsendable after this call had answered 202.
            return problem(400, "Invalid MO", f"{' and '.join(unwritable)}: printable Latin-1 characters only "
                           "(an SMPP address is a C-Octet String)")
        try:
            routed = server.smsc.inject_mo(source, dest, text, server.clock(), data_coding=coding)
        # A data_coding the SMSC does not write, text it cannot write in it, or more than 255 deliver_sm parts:
        # inject_mo raises before it counts or queues anything, whatever bind (or none) would take the MO.
        except SmppError as err:
            return problem(400, "Invalid MO", err.message)
        server.service()
        if not routed:
            return problem(404, "No route", f"no receiver bind takes MO for {dest}")
        return web.json_response({"routed": True}, status=202)

    async def get_stats(request: web.Request) -> web.Response:
        return web.json_response(stats_document(server.smsc))

    app = web.Application(client_max_size=64 * 1024, middlewares=[problem_middleware(_ROUTES)])
    app.router.add_post("/mo", post_mo)
    app.router.add_get("/stats", get_stats)
    return app
