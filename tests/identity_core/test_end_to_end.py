"""A phone activates through an emulated carrier: REG-REQ by SMS, REG-RESP by SMS, authenticate over HTTP.

The identity core runs as its own process (``identity-core serve``); it reaches the carrier only over SMPP and
the phone only over HTTP, exactly as in production.
"""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

import aiohttp
import jwt

from identity_core.refusals import Refusal
from identity_core.reg_protocol import RegResponse, format_reg_req, parse_reg_resp
from tests.identity_core.conftest import TOKEN, Carrier, free_port, start_identity, write_config

PHONE = "447700900123"
E164 = "+" + PHONE


async def _register(carrier: Carrier, number: str, token: str, request_id: int) -> RegResponse:
    carrier.phone_sends(number, format_reg_req(token, request_id))
    response = parse_reg_resp(await carrier.next_mt(number))
    assert not isinstance(response, Refusal), response
    return response


async def test_activation_end_to_end(carrier: Carrier, tmp_path: Path) -> None:
    config = write_config(tmp_path, carrier.port, free_port())
    identity = await start_identity(config)
    try:
        token = secrets.token_hex(32)
        response = await _register(carrier, PHONE, token, 42)
        assert response.request_id == 42
        assert response.e164 == E164  # the number as the network stamped it

        async with aiohttp.ClientSession(identity.base_url) as http:
            body = {"phone_number": E164, "push_token": token, "signature": response.proof_hex}
            async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
                assert r.status == 200, await r.text()
                answer = await r.json()
            assert answer["binding"]["state"] == "active"
            async with http.get("/v1/keys") as r:
                jwks = jwt.PyJWKSet.from_dict(await r.json())
            header = jwt.get_unverified_header(answer["certificate"])
            claims = jwt.decode(answer["certificate"], jwks[header["kid"]].key, algorithms=["EdDSA"],
                                options={"verify_aud": False})
            assert claims["sub"] == E164

            # Single use: the same proof again is refused, with a problem+json.
            async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
                assert r.status == 401
                assert r.content_type == "application/problem+json"
                assert (await r.json())["code"] == "replayed"

            # The server-to-server API needs a bearer token.
            async with http.get(f"/v1/phone-numbers/{E164}") as r:
                assert r.status == 401
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(f"/v1/phone-numbers/{E164}", headers=auth) as r:
                assert r.status == 200
                assert (await r.json())["state"] == "active"

            # A newer registration from another device supersedes the old binding.
            token2 = secrets.token_hex(32)
            response2 = await _register(carrier, PHONE, token2, 43)
            body2 = {"phone_number": E164, "push_token": token2, "signature": response2.proof_hex}
            async with http.post("/v1/phone-numbers/authenticate", json=body2) as r:
                assert r.status == 200

            # A SIM swap revokes it.
            async with http.post("/v1/events", json={"type": "sim_swap", "phone_number": E164}, headers=auth) as r:
                assert r.status == 202
                assert (await r.json())["revoked"] is True
            async with http.get(f"/v1/phone-numbers/{E164}", headers=auth) as r:
                binding = await r.json()
                assert binding["state"] == "revoked"
                assert binding["reason"] == "sim_swap"

            async with http.get("/healthz") as r:
                assert r.status == 200
                assert (await r.json())["carriers"] == {"carrier-a": True}
            async with http.get("/metrics") as r:
                metrics = await r.text()
                assert "identity_activations_total 2.0" in metrics
                assert 'identity_refusals_total{reason="replayed",stage="auth"} 1.0' in metrics
            async with http.get("/openapi.json") as r:
                assert "/v1/phone-numbers/authenticate" in (await r.json())["paths"]
    finally:
        assert await identity.stop(signal.SIGTERM) == 0
    # The SMSC judged the identity core's SMPP behaviour: no failed conformance check.
    checks = [c for s in carrier.server.smsc.verdicts() for c in s["checks"]]  # type: ignore[attr-defined]
    assert not [c for c in checks if c["verdict"] == "fail"], checks


async def test_bad_input_is_refused_alike_for_known_and_unknown_numbers(carrier: Carrier, tmp_path: Path) -> None:
    config = write_config(tmp_path, carrier.port, free_port())
    identity = await start_identity(config)
    try:
        token = secrets.token_hex(32)
        response = await _register(carrier, PHONE, token, 7)
        forged = response.proof_hex[:-2] + ("00" if response.proof_hex[-2:] != "00" else "11")
        async with aiohttp.ClientSession(identity.base_url) as http:
            answers = []
            for number in (E164, "+447700900999"):  # registered, and never seen
                body = {"phone_number": number, "push_token": token, "signature": forged}
                async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
                    answers.append((r.status, await r.json()))
            assert answers[0] == answers[1]
            assert answers[0][0] == 401
            for raw in (b"not json", b"[1,2]", b'{"phone_number": 5}'):
                async with http.post("/v1/phone-numbers/authenticate", data=raw,
                                     headers={"Content-Type": "application/json"}) as r:
                    assert r.status == 400
                    assert r.content_type == "application/problem+json"
            async with http.get("/no/such/route") as r:
                assert r.status == 404
                assert r.content_type == "application/problem+json"

        # Garbage by SMS gets no answer at all, and the service keeps serving.
        carrier.phone_sends(PHONE, "REG-REQ?v=9;t=zz;r=1")
        carrier.phone_sends(PHONE, "hello")
        ok = await _register(carrier, "447700900124", secrets.token_hex(32), 8)
        assert ok.e164 == "+447700900124"
        assert not carrier.inbox.get(PHONE)
    finally:
        assert await identity.stop() == 0
