"""Risk checks end to end: the identity core (its own process) asks a carrier's CAMARA SIM Swap API over HTTP.

The carrier is this project's CAMARA emulator (``carrier_sim.camara``) on a real socket, or, for answers no
well-behaved carrier gives, a small aiohttp server of the test's own. Nothing HTTP is mocked.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import aiohttp
from aiohttp import web

from carrier_sim.camara import Grant, SubscriberRecords, camara_app
from carrier_sim.camara.testing import FakeClock, serve
from identity_core.refusals import Refusal
from identity_core.reg_protocol import format_reg_req, parse_reg_resp
from tests.identity_core.conftest import TOKEN, Carrier, IdentityProcess, free_port, start_identity, write_config

PHONE = "447700900123"
E164 = "+" + PHONE
CAMARA_TOKEN = "camara-server-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
RISK = f"/v1/phone-numbers/{E164}/risk-check"


async def _bind(carrier: Carrier, http: aiohttp.ClientSession, number: str = PHONE) -> None:
    """Register ``number`` by SMS and authenticate: an active binding through carrier-a."""
    push_token = secrets.token_hex(32)
    carrier.phone_sends(number, format_reg_req(push_token, 1))
    response = parse_reg_resp(await carrier.next_mt(number))
    assert not isinstance(response, Refusal), response
    body = {"phone_number": "+" + number, "push_token": push_token, "signature": response.proof_hex}
    async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
        assert r.status == 200, await r.text()


async def _state(http: aiohttp.ClientSession) -> tuple[str, str | None]:
    async with http.get(f"/v1/phone-numbers/{E164}", headers=AUTH) as r:
        binding = await r.json()
    return binding["state"], binding["reason"]


async def _metric(http: aiohttp.ClientSession, name: str, labels: str) -> float | None:
    async with http.get("/metrics") as r:
        text = await r.text()
    found = re.search(rf"^{re.escape(name)}{{{re.escape(labels)}}} (\S+)$", text, re.M)
    return float(found.group(1)) if found else None


async def _unavailable(http: aiohttp.ClientSession) -> str:
    """A risk check that must fail closed; its cause."""
    async with http.post(RISK, headers=AUTH) as r:
        assert r.status == 503, await r.text()
        assert r.content_type == "application/problem+json"
        problem = await r.json()
    assert problem["trusted"] is False
    assert problem["code"] == "risk_check_unavailable"
    return str(problem["cause"])


@asynccontextmanager
async def _identity(carrier: Carrier, tmp_path: Path, carrier_toml: str = "") -> AsyncIterator[IdentityProcess]:
    identity = await start_identity(write_config(tmp_path, carrier.port, free_port(), carrier=carrier_toml))
    try:
        yield identity
    finally:
        assert await identity.stop() == 0


def _records() -> tuple[SubscriberRecords, FakeClock]:
    clock = FakeClock()
    records = SubscriberRecords()
    records.activate(E164, clock.now - timedelta(days=60))
    return records, clock


async def test_a_recent_swap_revokes_an_older_one_does_not(carrier: Carrier, tmp_path: Path) -> None:
    records, clock = _records()
    app = camara_app(records, clock, {CAMARA_TOKEN: Grant(scopes=frozenset({"sim-swap:check"}))})
    async with serve(app) as camara_url:
        toml = f'sim_swap_api = "{camara_url}"\nsim_swap_token = "{CAMARA_TOKEN}"\nsim_swap_max_age = 24'
        async with _identity(carrier, tmp_path, toml) as identity, aiohttp.ClientSession(identity.base_url) as http:
            await _bind(carrier, http)

            # The server-to-server guard, the path and the optional body are checked before the carrier is asked.
            async with http.post(RISK) as r:
                assert r.status == 401
            async with http.post("/v1/phone-numbers/447700900123/risk-check", headers=AUTH) as r:
                assert (r.status, r.content_type) == (400, "application/problem+json")
            for raw, content_type, status in (
                (b'{"action": 5}', "application/json", 400),
                (b'{"actoin": "payment"}', "application/json", 400),
                (b"{", "application/json", 400),
                (b"payment", "text/plain", 415),
            ):
                async with http.post(RISK, data=raw, headers={**AUTH, "Content-Type": content_type}) as r:
                    assert r.status == status, raw
                    assert r.content_type == "application/problem+json"
            async with http.post("/v1/phone-numbers/+447700900999/risk-check", headers=AUTH) as r:
                assert r.status == 404
                assert r.content_type == "application/problem+json"

            async with http.post(RISK, json={"action": "payment"}, headers=AUTH) as r:
                assert r.status == 200, await r.text()
                answer = await r.json()
            assert answer["trusted"] is True
            assert "reason" not in answer
            assert answer["binding"]["state"] == "active"
            assert answer["binding"]["carrier"] == "carrier-a"

            # A swap older than sim_swap_max_age (24 h) is not recent.
            records.sim_swap(E164, clock.now - timedelta(hours=48))
            async with http.post(RISK, headers=AUTH) as r:
                assert r.status == 200
                assert (await r.json())["trusted"] is True

            records.sim_swap(E164, clock.now - timedelta(hours=1))
            async with http.post(RISK, json={"action": "payment"}, headers=AUTH) as r:
                assert r.status == 200, await r.text()
                answer = await r.json()
            assert answer["trusted"] is False
            assert answer["reason"] == "sim_swap"
            assert (answer["binding"]["state"], answer["binding"]["reason"]) == ("revoked", "sim_swap")
            assert await _state(http) == ("revoked", "sim_swap")

            # Revoked: no active binding left to vouch for.
            async with http.post(RISK, headers=AUTH) as r:
                assert r.status == 404

            assert await _metric(http, "identity_risk_checks_total", 'carrier="carrier-a",outcome="trusted"') == 2
            assert await _metric(http, "identity_risk_checks_total", 'carrier="carrier-a",outcome="sim_swap"') == 1
            assert await _metric(http, "identity_revocations_total", 'reason="sim_swap"') == 1
            async with http.get("/openapi.json") as r:
                assert "post" in (await r.json())["paths"]["/v1/phone-numbers/{e164}/risk-check"]


async def test_carrier_api_down_fails_closed_and_keeps_the_binding(carrier: Carrier, tmp_path: Path) -> None:
    records, clock = _records()
    camara = web.AppRunner(camara_app(records, clock, {CAMARA_TOKEN: Grant()}))
    await camara.setup()
    try:
        await web.TCPSite(camara, "127.0.0.1", 0).start()
        camara_url = f"http://127.0.0.1:{camara.addresses[0][1]}"
        toml = f'sim_swap_api = "{camara_url}/sim-swap/v2"\nsim_swap_token = "{CAMARA_TOKEN}"'
        async with _identity(carrier, tmp_path, toml) as identity, aiohttp.ClientSession(identity.base_url) as http:
            await _bind(carrier, http)
            async with http.post(RISK, headers=AUTH) as r:
                assert r.status == 200
                assert (await r.json())["trusted"] is True

            await camara.cleanup()  # the carrier's API goes away; the SIM is swapped meanwhile
            records.sim_swap(E164, clock.now)
            assert await _unavailable(http) == "unreachable"
            assert await _state(http) == ("active", None)
            assert await _metric(http, "identity_risk_checks_total", 'carrier="carrier-a",outcome="unreachable"') == 1
    finally:
        await camara.cleanup()


async def test_no_sim_swap_api_configured_fails_closed(carrier: Carrier, tmp_path: Path) -> None:
    async with _identity(carrier, tmp_path) as identity, aiohttp.ClientSession(identity.base_url) as http:
        await _bind(carrier, http)
        assert await _unavailable(http) == "not_configured"
        assert await _state(http) == ("active", None)


def _answer(status: int, body: bytes, content_type: str = "application/json") -> web.Response:
    return web.Response(status=status, body=body, headers={"Content-Type": content_type})


def _error_info(status: int, code: str) -> web.Response:
    return _answer(status, json.dumps({"status": status, "code": code, "message": "no"}).encode())


#: What a misbehaving carrier answers to /check, and the cause the identity core reports for it.
GARBAGE: dict[str, tuple[str, web.Response | None]] = {
    "not json": ("malformed_answer", _answer(200, b"swapped: yes")),
    "html": ("malformed_answer", _answer(200, b"<html>swapped</html>", "text/html")),
    "string for boolean": ("malformed_answer", _answer(200, b'{"swapped": "false"}')),
    "number for boolean": ("malformed_answer", _answer(200, b'{"swapped": 0}')),
    "array": ("malformed_answer", _answer(200, b"[true]")),
    "missing field": ("malformed_answer", _answer(200, b'{"swaped": false}')),
    "NaN": ("malformed_answer", _answer(200, b'{"swapped": NaN}')),
    "not UTF-8": ("malformed_answer", _answer(200, b'{"swapped": "\xff"}')),
    "huge": ("malformed_answer", _answer(200, b'{"swapped": false, "pad": "' + b"x" * 200_000 + b'"}')),
    "204": ("malformed_answer", web.Response(status=204)),
    "redirect": ("malformed_answer", web.Response(status=302, headers={"Location": "http://127.0.0.1:1/"})),
    "401": ("carrier_error", _error_info(401, "UNAUTHENTICATED")),
    "404 number": ("carrier_error", _error_info(404, "IDENTIFIER_NOT_FOUND")),
    "500": ("carrier_error", _error_info(500, "INTERNAL")),
    "502 html": ("carrier_error", _answer(502, b"<html>Bad Gateway</html>", "text/html")),
    "slow": ("timeout", None),
    "hang up": ("unreachable", None),
}


async def test_garbage_from_the_carrier_fails_closed(carrier: Carrier, tmp_path: Path) -> None:
    mode = ["ok"]
    seen: list[tuple[str, str, str | None, bool, object]] = []

    async def check(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.path, request.headers.get("Authorization"),
                     "x-correlator" in request.headers, json.loads(await request.read())))
        if mode[0] == "ok":
            return web.json_response({"swapped": False})
        if mode[0] == "slow":
            await asyncio.sleep(5)
        if mode[0] == "hang up":
            assert request.transport is not None
            request.transport.close()
            raise ConnectionResetError
        response = GARBAGE[mode[0]][1]
        assert response is not None
        return response

    fake = web.Application()
    fake.router.add_post("/sim-swap/v1/check", check)
    async with serve(fake) as fake_url:
        toml = f'sim_swap_api = "{fake_url}"\nsim_swap_token = "{CAMARA_TOKEN}"\nsim_swap_timeout = 0.5'
        async with _identity(carrier, tmp_path, toml) as identity, aiohttp.ClientSession(identity.base_url) as http:
            await _bind(carrier, http)
            async with http.post(RISK, headers=AUTH) as r:
                assert r.status == 200
                assert (await r.json())["trusted"] is True
            # What went over the wire is CAMARA's /check with a two-legged token: the body names the number.
            assert seen == [("POST", "/sim-swap/v1/check", f"Bearer {CAMARA_TOKEN}", True,
                             {"phoneNumber": E164, "maxAge": 240})]

            for name, (cause, _) in GARBAGE.items():
                mode[0] = name
                assert await _unavailable(http) == cause, name
                assert await _state(http) == ("active", None), name

            # The service kept serving and the carrier's next sane answer counts again.
            mode[0] = "ok"
            async with http.post(RISK, headers=AUTH) as r:
                assert r.status == 200
            labels = 'carrier="carrier-a",outcome="malformed_answer"'
            assert await _metric(http, "identity_risk_checks_total", labels) == 11
