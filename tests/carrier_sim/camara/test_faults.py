"""Injected 429/503: the configured shares, keyed draws, retries that can succeed."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

import aiohttp
import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.camara.access import Grant
from carrier_sim.camara.app import camara_app
from carrier_sim.camara.faults import FaultInjector, Faults
from carrier_sim.camara.registry import SubscriberRecords
from carrier_sim.camara.testing import FakeClock, serve

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)


def fates(injector: FaultInjector, n: int) -> list[int | None]:
    """The status each of ``n`` distinct requests gets (None: answered)."""
    out: list[int | None] = []
    for i in range(n):
        error = injector.refuse("/sim-swap/v2/check", b'{"phoneNumber": "+4477009%05d"}' % i)
        out.append(None if error is None else error.status)
    return out


def test_shares_are_honoured_and_draws_are_keyed() -> None:
    faults = Faults(too_many_requests=0.2, unavailable=0.1, seed=7)
    first = fates(FaultInjector(faults), 5000)
    assert abs(first.count(429) / 5000 - 0.2) < 0.03
    assert abs(first.count(503) / 5000 - 0.1) < 0.03
    # Same seed, same requests: same fates; another seed: other fates.
    assert fates(FaultInjector(faults), 5000) == first
    assert fates(FaultInjector(Faults(0.2, 0.1, seed=8)), 5000) != first


def test_a_retry_gets_a_fresh_draw() -> None:
    injector = FaultInjector(Faults(too_many_requests=0.5, seed=1))
    attempts = [injector.refuse("/sim-swap/v2/check", b"{}") for _ in range(40)]
    assert any(a is None for a in attempts)
    assert any(a is not None for a in attempts)


def test_callers_with_equal_bodies_meet_their_own_fates_whatever_the_order() -> None:
    # Per-device tokens: every phone's check body is "{}" and only its Authorization differs. Sharing one attempt
    # counter made which phone met a fault depend on the order the requests arrived in.
    faults = Faults(too_many_requests=0.5, seed=3)
    callers = [f"Bearer device-{i}" for i in range(200)]

    def fates_in(order: list[str]) -> dict[str, bool]:
        injector = FaultInjector(faults)
        return {c: injector.refuse("/sim-swap/v2/check", b"{}", c) is not None for c in order}

    forward, backward = fates_in(callers), fates_in(callers[::-1])
    assert forward == backward
    assert 0 < sum(forward.values()) < len(callers)


@pytest.mark.parametrize("bad", [(-0.1, 0.0), (0.0, 1.5), (0.6, 0.6)])
def test_bad_shares_are_refused(bad: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match=r"fault shares?"):
        Faults(*bad)


async def test_the_door_answers_injected_faults_in_camara_shape() -> None:
    records = SubscriberRecords()
    records.activate("+447700900001", NOW)
    app = camara_app(records, FakeClock(NOW), {"server": Grant()}, faults=Faults(unavailable=1.0))
    async with serve(app) as base, aiohttp.ClientSession() as session:
        headers = {"Authorization": "Bearer server", "x-correlator": "abc"}
        async with session.post(
            base + "/sim-swap/v2/check", json={"phoneNumber": "+447700900001"}, headers=headers
        ) as response:
            assert response.status == 503
            assert response.headers["x-correlator"] == "abc"
            assert (await response.json())["code"] == "UNAVAILABLE"
        # The emulator's helper is not a carrier API and is never refused.
        async with session.post(base + "/_emulator/v1/device-token", json={"phoneNumber": "+447700900001"}) as r:
            assert r.status == 200


def _draw_before(seed: int, attempt: int, path: str, body: bytes, caller: str) -> float:
    """The draw as it was keyed before callers could hold non-UTF-8 bytes: strict UTF-8."""
    request = hashlib.blake2b(caller.encode() + b"\0" + path.encode() + b"\0" + body, digest_size=16).digest()
    key = f"{seed}:{attempt}:".encode() + request
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") / 2**64


@given(caller=st.text(st.characters(exclude_categories=["Cs"])), path=st.sampled_from(["/sim-swap/v2/check", "/x"]),
       body=st.binary(max_size=32))
def test_the_draw_of_every_valid_caller_is_unchanged(caller: str, path: str, body: bytes) -> None:
    # A scenario's fates must not move: every caller that encoded before keys the same draw as before.
    injector = FaultInjector(Faults(too_many_requests=0.5, seed=11))
    assert [injector.draw(path, body, caller) for _ in range(2)] == [
        _draw_before(11, attempt, path, body, caller) for attempt in range(2)
    ]


def test_a_caller_holding_non_utf8_bytes_gets_a_draw_of_its_own() -> None:
    # aiohttp decodes a header's non-UTF-8 bytes with surrogateescape: "Bearer t\xff" arrives as "Bearer t\udcff".
    injector = FaultInjector(Faults(too_many_requests=0.5, seed=11))
    odd = injector.draw("/sim-swap/v2/check", b"{}", "Bearer t\udcff")
    assert 0.0 <= odd < 1.0
    assert odd != injector.draw("/sim-swap/v2/check", b"{}", "Bearer t")


async def test_a_non_utf8_authorization_is_401_with_faults_on() -> None:
    records = SubscriberRecords()
    records.activate("+447700900001", NOW)
    # A share small enough that this seed's first draw answers the request: the refusal under test is the 401.
    app = camara_app(records, FakeClock(NOW), {"server": Grant()}, faults=Faults(too_many_requests=0.01, seed=0))
    body = b'{"phoneNumber":"+447700900001","maxAge":24}'
    async with serve(app) as base:
        host, _, port = base.removeprefix("http://").rpartition(":")
        for token, expected in ((b"server\xff", 401), (b"server", 200)):
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"POST /sim-swap/v2/check HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                         b"Content-Type: application/json\r\nAuthorization: Bearer " + token + b"\r\n"
                         b"Content-Length: %d\r\n\r\n" % len(body) + body)
            head, _, answer = (await reader.read()).partition(b"\r\n\r\n")
            writer.close()
            assert (token, int(head.split(b" ", 2)[1])) == (token, expected)
            assert b"content-type: application/json" in head.lower()
            if expected == 401:
                assert json.loads(answer)["code"] == "UNAUTHENTICATED"
