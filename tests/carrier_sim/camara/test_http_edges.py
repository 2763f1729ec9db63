"""The CAMARA door at the edges of HTTP and ErrorInfo: authentication challenges, bounded error messages,
ambiguous bodies and repeated header fields (the findings of the CAMARA door review)."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from carrier_sim.camara.access import Grant
from carrier_sim.camara.app import camara_app
from carrier_sim.camara.registry import SubscriberRecords
from carrier_sim.camara.testing import FakeClock, serve

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ALICE = "+447700900001"
BOB = "+447700900002"


@dataclass
class Door:
    """A running CAMARA door and a client session pointed at it."""

    base: str
    session: aiohttp.ClientSession
    records: SubscriberRecords
    clock: FakeClock


def _records() -> SubscriberRecords:
    records = SubscriberRecords()
    records.activate(ALICE, datetime(2023, 1, 10, tzinfo=UTC))
    records.activate(BOB, datetime(2024, 3, 1, tzinfo=UTC))
    return records


TOKENS = {
    "server": Grant(),
    "narrow": Grant(scopes=frozenset({"sim-swap:check"})),
    "bob-3l": Grant(subject=BOB),
}


@pytest.fixture
async def door() -> AsyncIterator[Door]:
    records, clock = _records(), FakeClock(NOW)
    counter = itertools.count(1)
    app = camara_app(records, clock, TOKENS, token_factory=lambda: f"device-{next(counter)}")
    async with serve(app) as base, aiohttp.ClientSession() as session:
        yield Door(base, session, records, clock)


async def _raw_request(base: str, head: bytes, body: bytes = b"") -> tuple[int, dict[str, list[str]], bytes]:
    """Send ``head`` (request line and header lines, CRLF-terminated) and ``body`` over a fresh connection, as bytes:
    a client library would not send a header field twice. Returns (status, header fields by lower-case name, body)."""
    host, _, port = base.removeprefix("http://").partition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head + b"Connection: close\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    header_block, _, payload = raw.partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    fields: dict[str, list[str]] = {}
    for line in lines:
        name, _, value = line.partition(":")
        fields.setdefault(name.strip().lower(), []).append(value.strip())
    return int(status_line.split()[1]), fields, payload


# --- 1. a 401 carries its Bearer challenge (RFC 9110 §15.5.2, RFC 6750 §3) --------------------------------------
async def test_a_401_carries_a_bearer_challenge_with_invalid_token_only_when_a_token_was_refused(door: Door) -> None:
    bare = 'Bearer realm="carrier-sim"'
    refused = 'Bearer realm="carrier-sim", error="invalid_token"'
    check = door.base + "/sim-swap/v2/check"
    cases: list[tuple[dict[str, str], str]] = [
        ({}, bare),  # no credentials: no error code (RFC 6750 §3.1)
        ({"Authorization": "Basic dXNlcjpwYXNz"}, bare),  # another scheme: "lacks any authentication information"
        ({"Authorization": "Bearer"}, bare),  # a scheme without a token
        ({"Authorization": "Bearer unknown"}, refused),
        ({"Authorization": "Bearer two words"}, refused),  # malformed
    ]
    for headers, challenge in cases:
        async with door.session.post(check, json={"phoneNumber": ALICE}, headers=headers) as response:
            assert response.status == 401, headers
            assert response.headers.getall("WWW-Authenticate") == [challenge], headers
    # A device token: fine once, then consumed (single use) and refused as invalid_token; on Number Verification too.
    async with door.session.post(door.base + "/_emulator/v1/device-token", json={"phoneNumber": ALICE}) as response:
        token = (await response.json())["access_token"]
    url = door.base + "/number-verification/v2/device-phone-number"
    for expected in (200, 401):
        async with door.session.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status == expected
            if expected == 401:
                assert response.headers.getall("WWW-Authenticate") == [refused]
            else:
                assert "WWW-Authenticate" not in response.headers


async def test_a_token_whose_subscriber_left_is_refused_as_invalid_token(door: Door) -> None:
    door.records.deactivate(BOB, NOW)
    async with door.session.post(door.base + "/sim-swap/v2/retrieve-date", json={},
                                 headers={"Authorization": "Bearer bob-3l"}) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="carrier-sim", error="invalid_token"'


async def test_a_missing_scope_is_403_with_an_insufficient_scope_challenge(door: Door) -> None:
    async with door.session.post(door.base + "/sim-swap/v2/retrieve-date", json={"phoneNumber": ALICE},
                                 headers={"Authorization": "Bearer narrow"}) as response:
        assert response.status == 403
        assert response.headers["WWW-Authenticate"] == (
            'Bearer realm="carrier-sim", error="insufficient_scope", scope="sim-swap:retrieve-date sim-swap"')


# --- 2. ErrorInfo.message is bounded and always valid Unicode --------------------------------------------------
def _message(raw: bytes) -> str:
    """ErrorInfo.message of a raw body, decoded strictly: the body must be UTF-8, the message encodable as UTF-8."""
    message = json.loads(raw.decode("utf-8"))["message"]
    assert isinstance(message, str)
    message.encode("utf-8")  # raises on a lone surrogate
    return message


async def test_error_messages_are_at_most_512_characters_however_much_of_the_request_they_quote(door: Door) -> None:
    # NumberVerification 2.1.1: ErrorInfo.message maxLength 512.
    token = "server"
    body = {"phoneNumber": ALICE, **{f"unknownProperty{i:04d}": 0 for i in range(100)}}
    async with door.session.post(door.base + "/sim-swap/v2/check", json=body,
                                 headers={"Authorization": f"Bearer {token}"}) as response:
        assert response.status == 400
        message = _message(await response.read())
        assert len(message) <= 512
        # Still says what is wrong: the first unknown names and how many there were.
        assert "'unknownProperty0000'" in message
        assert "and 95 more" in message
    async with door.session.post(door.base + "/_emulator/v1/device-token", json={"phoneNumber": ALICE}) as response:
        device = (await response.json())["access_token"]
    async with door.session.post(door.base + "/number-verification/v2/verify", json=body,
                                 headers={"Authorization": f"Bearer {device}"}) as response:
        assert response.status == 400
        assert len(_message(await response.read())) <= 512
    async with door.session.post(door.base + "/sim-swap/v2/check", data=json.dumps({"phoneNumber": ALICE}),
                                 headers={"Authorization": "Bearer server",
                                          "Content-Type": "x/" + "a" * 6000}) as response:
        assert response.status == 415
        assert len(_message(await response.read())) <= 512
    # One very long unknown name, and a device's nested unknown names.
    for url, long_body in (("/sim-swap/v2/check", {"phoneNumber": ALICE, "k" * 10_000: 1}),
                           ("/device-reachability-status/v1/retrieve",
                            {"device": {"phoneNumber": ALICE, **{"x" * 600 + str(i): 1 for i in range(20)}}})):
        async with door.session.post(door.base + url, json=long_body,
                                     headers={"Authorization": "Bearer server"}) as response:
            assert response.status == 400
            assert len(_message(await response.read())) <= 512


async def test_a_key_that_is_not_valid_unicode_is_never_echoed_as_such(door: Door) -> None:
    # Python's json accepts the escape of a lone surrogate; echoed as is, the message cannot be encoded as UTF-8 and
    # strict JSON decoders refuse the body.
    for url, raw in (("/sim-swap/v2/check", b'{"phoneNumber": "+447700900001", "\\ud800": 1}'),
                     ("/device-reachability-status/v1/retrieve",
                      b'{"device": {"phoneNumber": "+447700900001", "\\udfff": 1}}')):
        async with door.session.post(door.base + url, data=raw, headers={
                "Authorization": "Bearer server", "Content-Type": "application/json"}) as response:
            assert response.status == 400
            assert "unknown properties" in _message(await response.read())
    # Header bytes that are not UTF-8 (aiohttp decodes them with surrogateescape) in a refused Content-Type.
    status, _, payload = await _raw_request(
        door.base,
        b"POST /sim-swap/v2/check HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer server\r\n"
        b"Content-Type: text/\xff\xfe" + b"z" * 3000 + b"\r\n",
        b"{}",
    )
    assert status == 415
    assert len(_message(payload)) <= 512


# --- 3. a repeated JSON member name is refused, not merged ------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "raw", "name"),
    [
        # The invalid first value was never validated: Python's json keeps the last.
        ("/sim-swap/v2/check", b'{"phoneNumber": "not-a-number", "phoneNumber": "+447700900001"}', "phoneNumber"),
        ("/sim-swap/v2/check", b'{"phoneNumber": "+447700900001", "maxAge": 2400, "maxAge": 1}', "maxAge"),
        # Nested objects too.
        ("/device-reachability-status/v1/retrieve",
         b'{"device": {"phoneNumber": "+447700900002", "phoneNumber": "+447700900001"}}', "phoneNumber"),
    ],
    ids=["invalid-first-value", "max-age", "nested"],
)
async def test_a_repeated_member_name_is_400_naming_it(door: Door, url: str, raw: bytes, name: str) -> None:
    async with door.session.post(door.base + url, data=raw, headers={
            "Authorization": "Bearer server", "Content-Type": "application/json"}) as response:
        assert response.status == 400
        body = await response.json()
        assert body["code"] == "INVALID_ARGUMENT"
        assert f"'{name}' more than once" in body["message"]


async def test_two_numbers_in_one_verify_body_are_refused_and_do_not_burn_the_token(door: Door) -> None:
    # NV's request schema has maxProperties 1; a repeated phoneNumber got 200 devicePhoneNumberVerified: true.
    async with door.session.post(door.base + "/_emulator/v1/device-token", json={"phoneNumber": ALICE}) as response:
        token = (await response.json())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    raw = b'{"phoneNumber": "+447700900002", "phoneNumber": "+447700900001"}'
    async with door.session.post(door.base + "/number-verification/v2/verify", data=raw, headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "INVALID_ARGUMENT"
    async with door.session.post(door.base + "/number-verification/v2/verify", json={"phoneNumber": ALICE},
                                 headers=headers) as response:
        assert (response.status, await response.json()) == (200, {"devicePhoneNumberVerified": True})


# --- 4. repeated singleton header fields are refused -----------------------------------------------------------
CHECK_HEAD = b"POST /sim-swap/v2/check HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
CHECK_BODY = b'{"phoneNumber": "+447700900001"}'


async def test_two_authorization_fields_are_400_invalid_request(door: Door) -> None:
    for tokens in ((b"server", b"somebody-else"), (b"server", b"server")):
        status, fields, payload = await _raw_request(
            door.base,
            CHECK_HEAD + b"x-correlator: abc\r\n" + b"".join(b"Authorization: Bearer " + t + b"\r\n" for t in tokens),
            CHECK_BODY,
        )
        assert status == 400
        assert json.loads(payload)["code"] == "INVALID_ARGUMENT"
        assert fields["www-authenticate"] == ['Bearer realm="carrier-sim", error="invalid_request"']
        assert fields["x-correlator"] == ["abc"]
    # One is still answered.
    status, _, _ = await _raw_request(door.base, CHECK_HEAD + b"Authorization: Bearer server\r\n", CHECK_BODY)
    assert status == 200


async def test_two_correlator_fields_are_400_and_neither_is_echoed(door: Door) -> None:
    for second in (b"not valid!", b"ok", b"other"):
        status, fields, payload = await _raw_request(
            door.base,
            CHECK_HEAD + b"Authorization: Bearer server\r\nx-correlator: ok\r\nx-correlator: " + second + b"\r\n",
            CHECK_BODY,
        )
        assert status == 400
        assert json.loads(payload)["code"] == "INVALID_ARGUMENT"
        assert "x-correlator" not in fields


# --- 5. the default maxAge never exceeds the monitored period --------------------------------------------------
async def test_without_max_age_a_short_monitored_period_caps_the_default_instead_of_refusing(door: Door) -> None:
    # sim-swap.yaml 2.x: OUT_OF_RANGE is for a request "performed with a value ... superior to operator policy"; the
    # client that sends no maxAge chose nothing. With a 7-day period the default 240 h becomes 168 h.
    app = camara_app(door.records, door.clock, TOKENS, monitored_period_days=7)
    headers = {"Authorization": "Bearer server"}
    async with serve(app) as base:
        async def check(body: dict[str, object]) -> tuple[int, dict[str, object]]:
            async with door.session.post(base + "/sim-swap/v2/check", json=body, headers=headers) as response:
                return response.status, await response.json()

        assert await check({"phoneNumber": ALICE}) == (200, {"swapped": False})
        door.records.sim_swap(ALICE, NOW - timedelta(hours=168))  # the period's edge is inside
        assert await check({"phoneNumber": ALICE}) == (200, {"swapped": True})
        door.records.sim_swap(BOB, NOW - timedelta(hours=169))  # beyond the period, though inside 240 h
        assert await check({"phoneNumber": BOB}) == (200, {"swapped": False})
        # A value the client sent above the period is still refused (@check_sim_swap_400.4).
        status, body = await check({"phoneNumber": ALICE, "maxAge": 240})
        assert (status, body["code"]) == (400, "OUT_OF_RANGE")
        assert await check({"phoneNumber": BOB, "maxAge": 168}) == (200, {"swapped": False})


# --- 6. what docs/camara.md says about the correlator's own 400 and about HEAD --------------------------------
async def test_the_400_refusing_a_correlator_does_not_echo_it(door: Door) -> None:
    headers = {"Authorization": "Bearer server", "x-correlator": "not valid!"}
    async with door.session.post(door.base + "/sim-swap/v2/check", json={"phoneNumber": ALICE},
                                 headers=headers) as response:
        assert response.status == 400
        assert "x-correlator" not in response.headers


async def test_head_on_device_phone_number_is_405_and_leaves_the_device_token_unused(door: Door) -> None:
    async with door.session.post(door.base + "/_emulator/v1/device-token", json={"phoneNumber": ALICE}) as response:
        token = (await response.json())["access_token"]
    url = door.base + "/number-verification/v2/device-phone-number"
    headers = {"Authorization": f"Bearer {token}"}
    async with door.session.head(url, headers=headers) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
    async with door.session.get(url, headers=headers) as response:
        assert (response.status, await response.json()) == (200, {"devicePhoneNumber": ALICE})
