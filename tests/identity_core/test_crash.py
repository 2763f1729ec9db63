"""``kill -9`` during a burst of registrations loses no acknowledged binding.

Many phones register by SMS, then authenticate all at once; every 200 the service answered is an acknowledged
binding. The service is killed with SIGKILL while answers are still coming, restarted on the same files, and
every acknowledged number must be found active — and the proof it used must still count as spent. Some phones
got their REG-RESP but had not authenticated yet when the service died: the pending binding behind each proof
was committed before the proof was sent, so those proofs must still be redeemable after the restart.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from pathlib import Path

import aiohttp

from identity_core.refusals import Refusal
from identity_core.reg_protocol import format_reg_req, parse_reg_resp
from tests.identity_core.conftest import TOKEN, Carrier, free_port, start_identity, write_config

PHONES = 200
#: Phones that get their proof with the others but authenticate only after the kill and restart.
LATE = 20
# Generous limits: this test is about durability, not velocity.
LIMITS = """
reg_per_number = [100.0, 100.0]
reg_per_prefix = [100000.0, 100000.0]
auth_per_number = [100.0, 100.0]
auth_per_prefix = [100000.0, 100000.0]
"""


async def test_kill_9_mid_burst_loses_no_acknowledged_binding(carrier: Carrier, tmp_path: Path) -> None:
    api_port = free_port()
    config = write_config(tmp_path, carrier.port, api_port, limits=LIMITS)
    identity = await start_identity(config)
    everyone = [f"4477009{n:05d}" for n in range(PHONES + LATE)]
    numbers, late = everyone[:PHONES], everyone[PHONES:]
    tokens = {n: secrets.token_hex(32) for n in everyone}
    for i, number in enumerate(everyone):
        carrier.phone_sends(number, format_reg_req(tokens[number], i + 1))
    proofs = {}
    for number in everyone:
        response = parse_reg_resp(await carrier.next_mt(number, timeout=30))
        assert not isinstance(response, Refusal)
        proofs[number] = response.proof_hex

    acknowledged: list[str] = []
    killed = asyncio.Event()

    async with aiohttp.ClientSession(identity.base_url, timeout=aiohttp.ClientTimeout(total=10)) as http:

        async def authenticate(number: str) -> None:
            body = {"phone_number": "+" + number, "push_token": tokens[number], "signature": proofs[number]}
            try:
                async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
                    if r.status == 200:
                        acknowledged.append(number)
                        if len(acknowledged) == PHONES // 3 and not killed.is_set():
                            killed.set()
                            identity.process.send_signal(signal.SIGKILL)
            except (TimeoutError, aiohttp.ClientError):
                pass  # the process died under this request: not acknowledged

        await asyncio.gather(*(authenticate(n) for n in numbers))
    assert killed.is_set(), "the burst finished before the kill: nothing was tested"
    assert await identity.stop() == -signal.SIGKILL
    assert PHONES // 3 <= len(acknowledged) < PHONES

    restarted = await start_identity(config)
    try:
        async with aiohttp.ClientSession(restarted.base_url) as http:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            for number in acknowledged:
                async with http.get(f"/v1/phone-numbers/+{number}", headers=auth) as r:
                    assert r.status == 200, number
                    assert (await r.json())["state"] == "active", number
            # An acknowledged proof stays spent across the crash.
            number = acknowledged[0]
            body = {"phone_number": "+" + number, "push_token": tokens[number], "signature": proofs[number]}
            async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
                assert r.status == 401
                assert (await r.json())["code"] == "replayed"
            # A proof sent before the kill and never used is redeemable after it.
            for number in late:
                body = {"phone_number": "+" + number, "push_token": tokens[number], "signature": proofs[number]}
                async with http.post("/v1/phone-numbers/authenticate", json=body) as r:
                    assert r.status == 200, number
                async with http.get(f"/v1/phone-numbers/+{number}", headers=auth) as r:
                    assert (await r.json())["state"] == "active", number
    finally:
        assert await restarted.stop() == 0
