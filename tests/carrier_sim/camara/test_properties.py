"""Property: whatever the body, every CAMARA endpoint answers 2xx or a CAMARA ErrorInfo, never a 5xx."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import aiohttp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carrier_sim.camara.access import Grant
from carrier_sim.camara.app import camara_app
from carrier_sim.camara.operations import ROUTES
from carrier_sim.camara.registry import SubscriberRecords
from carrier_sim.camara.testing import FakeClock, serve

ALICE = "+447700900001"
URLS = [(route.method, url) for route in ROUTES for url in route.urls()]
KEYS = ["phoneNumber", "hashedPhoneNumber", "maxAge", "specifiedDate", "device", "scope", "ipv4Address"]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=20),
    st.sampled_from([ALICE, "+1", "2024-01-01", "2024-02-30", "a" * 64, "DATA"]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), children, max_size=4),
    ),
    max_leaves=12,
)
# Valid JSON whose integer has more digits than CPython converts (4300 by default): json.loads raises a plain
# ValueError, not a JSONDecodeError (it once reached the catch-all as a 500). Built as bytes: json.dumps cannot
# write such an integer either.
huge_integers = st.builds(
    lambda key, sign, digits, wrap: wrap.replace("N", f'{{"{key}": {sign}{digits}}}').encode(),
    st.sampled_from(KEYS),
    st.sampled_from(["", "-"]),
    st.integers(min_value=4301, max_value=6000).map(lambda n: "9" * n),
    st.sampled_from(["N", "[N]", '{"device": N}']),
)
bodies = st.one_of(json_values.map(lambda value: json.dumps(value).encode()), st.binary(max_size=40), huge_integers)
tokens = st.sampled_from([None, "server", "alice-3l", "alice-otp", "narrow", "unknown"])


async def exchange(requests: list[tuple[str, str, bytes, str | None]]) -> list[tuple[int, object]]:
    records = SubscriberRecords()
    records.activate(ALICE, datetime(2023, 1, 1, tzinfo=UTC))
    grants = {
        "server": Grant(),
        "narrow": Grant(scopes=frozenset({"sim-swap:check"})),
        "alice-3l": Grant(subject=ALICE),
        "alice-otp": Grant(subject=ALICE, via_mobile_network=False),
    }
    answers: list[tuple[int, object]] = []
    async with serve(camara_app(records, FakeClock(), grants)) as base, aiohttp.ClientSession() as session:
        for method, url, raw, token in requests:
            headers = {"Content-Type": "application/json"}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            async with session.request(method, base + url, data=raw, headers=headers) as response:
                answers.append((response.status, json.loads(await response.read())))
    return answers


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(URLS), bodies, tokens), min_size=1, max_size=8))
def test_arbitrary_bodies_get_2xx_or_a_camara_error(cases: list[tuple[tuple[str, str], bytes, str | None]]) -> None:
    requests = [(method, url, raw, token) for (method, url), raw, token in cases]
    for status, body in asyncio.run(exchange(requests)):
        assert status < 500, body
        assert isinstance(body, dict)
        if status >= 400:
            assert set(body) == {"status", "code", "message"}
            assert body["status"] == status
            assert isinstance(body["code"], str)
            assert body["code"].isupper()
            assert isinstance(body["message"], str)
            # ErrorInfo.message maxLength 512 (NumberVerification 2.1.1), and always valid Unicode.
            assert len(body["message"]) <= 512
            body["message"].encode("utf-8")
        else:
            assert status == 200
