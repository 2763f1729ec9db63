"""Every CAMARA endpoint over a real socket: answers, CAMARA errors, garbage."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from carrier_sim.camara.access import Grant
from carrier_sim.camara.app import camara_app
from carrier_sim.camara.faults import FaultInjector, Faults
from carrier_sim.camara.operations import ROUTES, Call, Route, answer
from carrier_sim.camara.registry import Connectivity, SubscriberRecords
from carrier_sim.camara.testing import FakeClock, serve

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
ALICE = "+447700900001"
BOB = "+447700900002"
CAROL = "+447700900003"  # reachable by SMS only


@dataclass
class Carrier:
    """A running emulated carrier and a client session pointed at it."""

    base: str
    session: aiohttp.ClientSession
    records: SubscriberRecords
    clock: FakeClock
    tokens: dict[str, Grant] = field(default_factory=dict)

    async def post(self, path: str, body: object, token: str | None = "server") -> tuple[int, dict[str, object]]:
        """POST ``body`` as JSON (or raw bytes) with ``Authorization: Bearer token``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if isinstance(body, bytes):
            headers["Content-Type"] = "application/json"
            async with self.session.post(self.base + path, data=body, headers=headers) as response:
                return response.status, await response.json()
        async with self.session.post(self.base + path, json=body, headers=headers) as response:
            return response.status, await response.json()

    async def get(self, path: str, token: str | None) -> tuple[int, dict[str, object]]:
        """GET ``path`` with ``Authorization: Bearer token``."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(self.base + path, headers=headers) as response:
            return response.status, await response.json()


def make_records() -> SubscriberRecords:
    """Alice since 2023, Bob since 2024-03, Carol reachable by SMS only."""
    records = SubscriberRecords()
    records.activate(ALICE, datetime(2023, 1, 10, tzinfo=UTC))
    records.activate(BOB, datetime(2024, 3, 1, tzinfo=UTC))
    records.activate(CAROL, datetime(2023, 5, 5, tzinfo=UTC), connectivity={Connectivity.SMS})
    return records


def make_tokens() -> dict[str, Grant]:
    """A two-legged server token, a narrow one, and three-legged tokens for Alice (network, and Wi-Fi/OTP)."""
    return {
        "server": Grant(),
        "narrow": Grant(scopes=frozenset({"sim-swap:check"})),
        "alice-3l": Grant(subject=ALICE),
        "alice-otp": Grant(subject=ALICE, via_mobile_network=False),
    }


@pytest.fixture
async def carrier() -> AsyncIterator[Carrier]:
    """The app on an ephemeral port, with deterministic device tokens."""
    records, clock, tokens = make_records(), FakeClock(NOW), make_tokens()
    counter = itertools.count(1)
    app = camara_app(records, clock, tokens, token_factory=lambda: f"device-{next(counter)}")
    async with serve(app) as base, aiohttp.ClientSession() as session:
        yield Carrier(base, session, records, clock, tokens)


UNKNOWN = "+447700900999"


def is_camara_error(body: dict[str, object], status: int, code: str) -> bool:
    return body.get("status") == status and body.get("code") == code and isinstance(body.get("message"), str)


# --- SIM Swap ------------------------------------------------------------------------------------------------
async def test_sim_swap_check_follows_the_scenario(carrier: Carrier) -> None:
    assert await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE, "maxAge": 24}) == (200, {"swapped": False})
    carrier.records.sim_swap(ALICE, NOW - timedelta(hours=5))
    assert await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE, "maxAge": 24}) == (200, {"swapped": True})
    assert await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE, "maxAge": 4}) == (200, {"swapped": False})
    # Default maxAge is 240 hours, and v2 answers the same.
    assert await carrier.post("/sim-swap/v2/check", {"phoneNumber": ALICE}) == (200, {"swapped": True})
    carrier.clock.now = NOW + timedelta(days=11)
    assert await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE}) == (200, {"swapped": False})


async def test_sim_swap_retrieve_date(carrier: Carrier) -> None:
    status, body = await carrier.post("/sim-swap/v1/retrieve-date", {"phoneNumber": BOB})
    assert (status, body) == (200, {"latestSimChange": "2024-03-01T00:00:00.000Z"})
    carrier.records.sim_swap(BOB, datetime(2024, 5, 31, 8, 30, 15, 123000, tzinfo=UTC))
    status, body = await carrier.post("/sim-swap/v1/retrieve-date", {"phoneNumber": BOB})
    assert body == {"latestSimChange": "2024-05-31T08:30:15.123Z"}


async def test_a_swap_exactly_max_age_hours_ago_is_inside_the_window(carrier: Carrier) -> None:
    # CAMARA's @check_sim_swap_3_valid_sim_swap_max_age: swapped is true when maxAge is "equal or greater than" the
    # hours since the swap; one hour less (@check_sim_swap_5_out_of_max_age) is false.
    carrier.records.sim_swap(BOB, NOW - timedelta(hours=24))
    for version in ("v1", "v2"):
        url = f"/sim-swap/{version}/check"
        assert await carrier.post(url, {"phoneNumber": BOB, "maxAge": 24}) == (200, {"swapped": True})
        assert await carrier.post(url, {"phoneNumber": BOB, "maxAge": 25}) == (200, {"swapped": True})
        assert await carrier.post(url, {"phoneNumber": BOB, "maxAge": 23}) == (200, {"swapped": False})
    # retrieve-date and check agree at the monitored period's edge: a change exactly 1 day ago is inside it.
    async with serve(camara_app(carrier.records, carrier.clock, carrier.tokens, monitored_period_days=1)) as base:
        headers = {"Authorization": "Bearer server"}
        async with carrier.session.post(base + "/sim-swap/v2/retrieve-date", json={"phoneNumber": BOB},
                                        headers=headers) as response:
            assert await response.json() == {"latestSimChange": "2024-05-31T12:00:00.000Z"}
        async with carrier.session.post(base + "/sim-swap/v2/check", json={"phoneNumber": BOB, "maxAge": 24},
                                        headers=headers) as response:
            assert await response.json() == {"swapped": True}


@pytest.mark.parametrize("max_age", [1.5, "24", True, None])
async def test_sim_swap_check_rejects_bad_max_age(carrier: Carrier, max_age: object) -> None:
    status, body = await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE, "maxAge": max_age})
    assert status == 400
    assert is_camara_error(body, 400, "INVALID_ARGUMENT")


@pytest.mark.parametrize("max_age", [0, -1, 2401, 100000])
async def test_sim_swap_check_max_age_outside_its_range_is_out_of_range(carrier: Carrier, max_age: int) -> None:
    # SimSwap v2.1.0 test definition @check_sim_swap_400.2_invalid_max_age_value: maxAge 100000 -> 400 OUT_OF_RANGE.
    for version in ("v1", "v2"):
        status, body = await carrier.post(f"/sim-swap/{version}/check", {"phoneNumber": ALICE, "maxAge": max_age})
        assert status == 400
        assert is_camara_error(body, 400, "OUT_OF_RANGE")
    for edge in (1, 2400):
        assert (await carrier.post("/sim-swap/v2/check", {"phoneNumber": ALICE, "maxAge": edge}))[0] == 200


async def test_sim_swap_identifier_rules(carrier: Carrier) -> None:
    status, body = await carrier.post("/sim-swap/v2/check", {"phoneNumber": UNKNOWN})
    assert is_camara_error(body, 404, "IDENTIFIER_NOT_FOUND")
    assert status == 404
    # 1.0.0 (Commonalities 0.4) has no IDENTIFIER_NOT_FOUND: its 404 is the generic NOT_FOUND.
    for operation in ("check", "retrieve-date"):
        status, body = await carrier.post(f"/sim-swap/v1/{operation}", {"phoneNumber": UNKNOWN})
        assert (status, body["code"]) == (404, "NOT_FOUND")
        assert is_camara_error(body, 404, "NOT_FOUND")
    status, body = await carrier.post("/sim-swap/v2/check", {})
    assert is_camara_error(body, 422, "MISSING_IDENTIFIER")
    assert status == 422
    status, body = await carrier.post("/sim-swap/v2/check", {"phoneNumber": ALICE}, token="alice-3l")
    assert is_camara_error(body, 422, "UNNECESSARY_IDENTIFIER")
    assert status == 422
    assert await carrier.post("/sim-swap/v2/check", {}, token="alice-3l") == (200, {"swapped": False})
    status, body = await carrier.post("/sim-swap/v2/check", {"phoneNumber": "447700900001"})
    assert is_camara_error(body, 400, "INVALID_ARGUMENT")
    status, body = await carrier.post("/sim-swap/v2/check", {"phoneNumber": ALICE + "\n"})
    assert is_camara_error(body, 400, "INVALID_ARGUMENT")


async def test_monitored_period_limits_sim_swap(carrier: Carrier) -> None:
    app = camara_app(carrier.records, carrier.clock, carrier.tokens, monitored_period_days=30)
    async with serve(app) as base:
        headers = {"Authorization": "Bearer server"}
        async with carrier.session.post(
            base + "/sim-swap/v1/retrieve-date", json={"phoneNumber": ALICE}, headers=headers
        ) as response:
            assert await response.json() == {"latestSimChange": None, "monitoredPeriod": 30}
        async with carrier.session.post(
            base + "/sim-swap/v1/check", json={"phoneNumber": ALICE, "maxAge": 24 * 31}, headers=headers
        ) as response:
            assert response.status == 400
            assert is_camara_error(await response.json(), 400, "OUT_OF_RANGE")


# --- auth ----------------------------------------------------------------------------------------------------
async def test_authentication_and_scopes(carrier: Carrier) -> None:
    status, body = await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE}, token=None)
    assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    status, body = await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE}, token="nope")
    assert is_camara_error(body, 401, "UNAUTHENTICATED")
    assert (await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE}, token="narrow"))[0] == 200
    status, body = await carrier.post("/sim-swap/v1/retrieve-date", {"phoneNumber": ALICE}, token="narrow")
    assert is_camara_error(body, 403, "PERMISSION_DENIED")
    assert status == 403
    async with carrier.session.post(
        carrier.base + "/sim-swap/v1/check", json={"phoneNumber": ALICE}, headers={"Authorization": "Basic abc"}
    ) as response:
        assert response.status == 401


# --- Number Verification ------------------------------------------------------------------------------------
async def device_token(carrier: Carrier, msisdn: str) -> str:
    """A fresh network-issued token for the device holding ``msisdn`` (they are single use)."""
    status, issued = await carrier.post("/_emulator/v1/device-token", {"phoneNumber": msisdn}, token=None)
    assert status == 200
    assert issued["token_type"] == "Bearer"
    assert issued["expires_in"] == 300
    return str(issued["access_token"])


async def test_number_verification_with_a_network_issued_token(carrier: Carrier) -> None:
    assert await carrier.get("/number-verification/v1/device-phone-number", await device_token(carrier, BOB)) == (
        200,
        {"devicePhoneNumber": BOB},
    )
    verify = "/number-verification/v1/verify"
    for body, verified in (({"phoneNumber": BOB}, True), ({"phoneNumber": ALICE}, False)):
        assert await carrier.post(verify, body, await device_token(carrier, BOB)) == (
            200,
            {"devicePhoneNumberVerified": verified},
        )
    hashed = hashlib.sha256(BOB.encode()).hexdigest()
    assert await carrier.post(verify, {"hashedPhoneNumber": hashed}, await device_token(carrier, BOB)) == (
        200,
        {"devicePhoneNumberVerified": True},
    )
    upper = {"hashedPhoneNumber": hashed.upper()}
    assert await carrier.post("/number-verification/v2/verify", upper, await device_token(carrier, BOB)) == (
        200,
        {"devicePhoneNumberVerified": True},
    )
    # Recycling the number kills the previous holder's token.
    token = await device_token(carrier, BOB)
    carrier.records.recycle(BOB, NOW)
    _status, body = await carrier.post(verify, {"phoneNumber": BOB}, token)
    assert is_camara_error(body, 401, "UNAUTHENTICATED")


async def test_number_verification_refusals(carrier: Carrier) -> None:
    verify = "/number-verification/v2/verify"
    status, body = await carrier.post(verify, {"phoneNumber": ALICE}, "server")
    assert status == 403
    assert body["code"] == "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    status, body = await carrier.get("/number-verification/v1/device-phone-number", "alice-otp")
    assert status == 403
    assert body["code"] == "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    for bad in ({}, {"phoneNumber": ALICE, "hashedPhoneNumber": "0" * 64}, {"hashedPhoneNumber": "xyz"}, [ALICE]):
        status, body = await carrier.post(verify, bad, "alice-3l")
        assert is_camara_error(body, 400, "INVALID_ARGUMENT"), bad
    # Helper refuses numbers it does not hold and devices without a data attachment.
    status, body = await carrier.post("/_emulator/v1/device-token", {"phoneNumber": UNKNOWN}, token=None)
    assert is_camara_error(body, 404, "IDENTIFIER_NOT_FOUND")
    status, body = await carrier.post("/_emulator/v1/device-token", {"phoneNumber": CAROL}, token=None)
    assert status == 403
    status, issued = await carrier.post(
        "/_emulator/v1/device-token", {"phoneNumber": ALICE, "scope": "number-verification:verify"}, token=None
    )
    assert issued["scope"] == "number-verification:verify"
    status, body = await carrier.get("/number-verification/v1/device-phone-number", str(issued["access_token"]))
    assert is_camara_error(body, 403, "PERMISSION_DENIED")


# --- Number Recycling --------------------------------------------------------------------------------------
async def test_number_recycling(carrier: Carrier) -> None:
    check = "/number-recycling/v0.2/check"
    assert await carrier.post(check, {"phoneNumber": ALICE, "specifiedDate": "2023-06-01"}) == (
        200,
        {"phoneNumberRecycled": False},
    )
    # The contract start date itself answers false (spec note).
    assert await carrier.post(check, {"phoneNumber": BOB, "specifiedDate": "2024-03-01"}) == (
        200,
        {"phoneNumberRecycled": False},
    )
    assert await carrier.post(check, {"phoneNumber": BOB, "specifiedDate": "2024-02-29"}) == (
        200,
        {"phoneNumberRecycled": True},
    )
    carrier.records.deactivate(ALICE, NOW - timedelta(days=20))
    assert await carrier.post(check, {"phoneNumber": ALICE, "specifiedDate": "2023-06-01"}) == (
        200,
        {"phoneNumberRecycled": True},
    )
    carrier.records.activate(ALICE, NOW - timedelta(days=2))
    assert await carrier.post(check, {"phoneNumber": ALICE, "specifiedDate": "2024-05-01"}) == (
        200,
        {"phoneNumberRecycled": True},
    )
    for bad in ("2024-13-01", "20240101", 20240101, None):
        _status, body = await carrier.post(check, {"phoneNumber": ALICE, "specifiedDate": bad})
        assert is_camara_error(body, 400, "INVALID_ARGUMENT"), bad
    carrier.records.port_out(BOB, NOW)
    _status, body = await carrier.post(check, {"phoneNumber": BOB, "specifiedDate": "2024-01-01"})
    assert is_camara_error(body, 404, "IDENTIFIER_NOT_FOUND")


async def test_a_three_legged_token_whose_subscriber_left_is_401_on_number_recycling_too(carrier: Carrier) -> None:
    carrier.records.deactivate(ALICE, NOW - timedelta(days=1))
    # As SIM Swap and Reachability answer (and docs/camara.md lists): the token is dead, not the number "recycled".
    for path, body in (("/sim-swap/v2/check", {}), ("/device-reachability-status/v1/retrieve", {}),
                       ("/number-recycling/v0.2/check", {"specifiedDate": "2024-01-01"})):
        status, answer = await carrier.post(path, body, token="alice-3l")
        assert (path, status) == (path, 401)
        assert is_camara_error(answer, 401, "UNAUTHENTICATED")
    # A server's two-legged token still learns that the number has no subscriber now: recycled (spec note).
    assert await carrier.post("/number-recycling/v0.2/check", {"phoneNumber": ALICE, "specifiedDate": "2024-01-01"}
                              ) == (200, {"phoneNumberRecycled": True})


# --- Device Reachability Status ---------------------------------------------------------------------------
async def test_device_reachability(carrier: Carrier) -> None:
    retrieve = "/device-reachability-status/v1/retrieve"
    status, body = await carrier.post(retrieve, {"device": {"phoneNumber": ALICE}})
    assert status == 200
    assert body == {
        "device": {"phoneNumber": ALICE},
        "lastStatusTime": "2023-01-10T00:00:00.000Z",
        "reachable": True,
        "connectivity": ["DATA", "SMS"],
    }
    status, body = await carrier.post(retrieve, {"device": {"phoneNumber": CAROL}})
    assert body["connectivity"] == ["SMS"]
    carrier.records.set_reachability(ALICE, NOW - timedelta(minutes=1), [])
    status, body = await carrier.post(retrieve, {}, token="alice-3l")
    assert body == {"lastStatusTime": "2024-06-01T11:59:00.000Z", "reachable": False}
    carrier.records.set_reachability(ALICE, NOW, [Connectivity.DATA])
    status, body = await carrier.post(retrieve, {}, token="alice-3l")
    assert body["connectivity"] == ["DATA"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({}, 422, "MISSING_IDENTIFIER"),
        ({"device": {}}, 400, "INVALID_ARGUMENT"),
        ({"device": "x"}, 400, "INVALID_ARGUMENT"),
        ({"device": {"imei": "1"}}, 400, "INVALID_ARGUMENT"),
        (
            {"device": {"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": 1}}},
            422,
            "UNSUPPORTED_IDENTIFIER",
        ),
        ({"device": {"phoneNumber": UNKNOWN}}, 404, "IDENTIFIER_NOT_FOUND"),
        ({"device": {"phoneNumber": 7}}, 400, "INVALID_ARGUMENT"),
    ],
)
async def test_device_reachability_errors(carrier: Carrier, body: object, status: int, code: str) -> None:
    got_status, got = await carrier.post("/device-reachability-status/v1/retrieve", body)
    assert got_status == status
    assert is_camara_error(got, status, code)


@pytest.mark.parametrize(
    ("device", "field"),
    [
        # The reviewer's four: key names alone were checked, so each answered 200.
        ({"ipv4Address": 5}, "device.ipv4Address"),
        ({"ipv4Address": {"bogus": [1]}}, "device.ipv4Address"),
        ({"networkAccessIdentifier": None}, "device.networkAccessIdentifier"),
        ({"ipv6Address": {"x": 1}}, "device.ipv6Address"),
        # DeviceIpv4Addr: publicAddress plus privateAddress or publicPort, each well-formed.
        ({"ipv4Address": {"publicAddress": "84.125.93.10"}}, "device.ipv4Address"),
        ({"ipv4Address": {"privateAddress": "10.0.0.1", "publicPort": 1}}, "device.ipv4Address"),
        ({"ipv4Address": {"publicAddress": "84.125.93.256", "publicPort": 1}}, "device.ipv4Address.publicAddress"),
        ({"ipv4Address": {"publicAddress": "84.125.93.0/24", "publicPort": 1}}, "device.ipv4Address.publicAddress"),
        ({"ipv4Address": {"publicAddress": 1, "publicPort": 1}}, "device.ipv4Address.publicAddress"),
        ({"ipv4Address": {"publicAddress": "84.125.93.10", "privateAddress": "::1"}},
         "device.ipv4Address.privateAddress"),
        ({"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": 65536}}, "device.ipv4Address.publicPort"),
        ({"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": -1}}, "device.ipv4Address.publicPort"),
        ({"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": "80"}}, "device.ipv4Address.publicPort"),
        ({"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": True}}, "device.ipv4Address.publicPort"),
        ({"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": 1, "x": 1}}, "device.ipv4Address"),
        ({"ipv6Address": "84.125.93.10"}, "device.ipv6Address"),
        ({"ipv6Address": "fe80::1%eth0"}, "device.ipv6Address"),
        ({"ipv6Address": "2001:db8::/64"}, "device.ipv6Address"),
        ({"networkAccessIdentifier": 5}, "device.networkAccessIdentifier"),
    ],
)
async def test_each_device_identifier_is_validated_and_named(
        carrier: Carrier, device: dict[str, object], field: str) -> None:
    # With a valid phoneNumber beside it, and alone (then it would otherwise be 422 UNSUPPORTED_IDENTIFIER).
    for body in ({"device": {"phoneNumber": ALICE, **device}}, {"device": device}):
        status, answer = await carrier.post("/device-reachability-status/v1/retrieve", body)
        assert status == 400, body
        assert is_camara_error(answer, 400, "INVALID_ARGUMENT")
        assert field in str(answer["message"])


async def test_well_formed_other_identifiers_beside_the_phone_number_are_accepted(carrier: Carrier) -> None:
    device = {
        "phoneNumber": ALICE,
        "networkAccessIdentifier": "123456789@domain.com",
        "ipv4Address": {"publicAddress": "84.125.93.10", "privateAddress": "10.0.0.1", "publicPort": 0},
        "ipv6Address": "2001:db8:85a3:8d3:1319:8a2e:370:7344",
    }
    status, body = await carrier.post("/device-reachability-status/v1/retrieve", {"device": device})
    assert status == 200
    assert body["device"] == {"phoneNumber": ALICE}
    ipv4_only = {"ipv4Address": {"publicAddress": "84.125.93.10", "publicPort": 65535}}
    status, body = await carrier.post("/device-reachability-status/v1/retrieve", {"device": ipv4_only})
    assert is_camara_error(body, 422, "UNSUPPORTED_IDENTIFIER")


async def test_three_legged_token_with_device_is_unnecessary(carrier: Carrier) -> None:
    _status, body = await carrier.post(
        "/device-reachability-status/v1/retrieve", {"device": {"phoneNumber": ALICE}}, token="alice-3l"
    )
    assert is_camara_error(body, 422, "UNNECESSARY_IDENTIFIER")


# --- garbage and HTTP edges -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b"not json", b"\xff\xfe", b"NaN", b'{"maxAge": Infinity}', b"[" * 100_000, b"null", b'"str"',
     # Valid JSON, but more digits than CPython's int-string limit (4300): a plain ValueError, once a 500.
     b'{"maxAge": ' + b"1" * 4301 + b"}"],
)
async def test_garbage_bodies_get_invalid_argument_and_the_server_keeps_serving(carrier: Carrier, raw: bytes) -> None:
    status, body = await carrier.post("/sim-swap/v1/check", raw)
    assert is_camara_error(body, 400, "INVALID_ARGUMENT")
    assert status == 400
    assert (await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE}))[0] == 200


async def test_a_huge_integer_is_invalid_argument_on_every_route(carrier: Carrier) -> None:
    for route in ROUTES:
        if route.method == "GET":
            continue
        for url in route.urls():
            status, body = await carrier.post(url, b'{"phoneNumber": -' + b"7" * 5000 + b"}")
            assert (url, status) == (url, 400)
            assert is_camara_error(body, 400, "INVALID_ARGUMENT")


def test_an_unexpected_error_is_a_camara_500_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    def broken(_call: Call) -> dict[str, object]:
        raise KeyError("a bug")

    route = Route("sim-swap", ("v2",), "/check", "POST", None, broken, authenticated=False)
    with caplog.at_level(logging.DEBUG, logger="carrier_sim.camara"):
        status, body = answer(route, records=make_records(), tokens={}, authorization=None, raw_body=b"{}", now=NOW,
                              new_token=lambda: "t")
    assert status == 500
    assert is_camara_error(body, 500, "INTERNAL")
    (record,) = [r for r in caplog.records if r.name == "carrier_sim.camara.operations"]
    # A real defect must be visible: at ERROR, with the traceback, naming the route.
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.exc_info[0] is KeyError
    assert "/sim-swap/v2/check" in record.getMessage()


async def test_a_defect_outside_answer_is_a_camara_500_logged_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # The fault injector runs in the adapter, outside answer()'s catch-all: a defect there (as once the encoding of
    # a non-UTF-8 Authorization header) must still be an ErrorInfo, not aiohttp's plain-text 500.
    def broken(*_args: object) -> None:
        raise UnicodeEncodeError("utf-8", "\udcff", 0, 1, "surrogates not allowed")

    monkeypatch.setattr(FaultInjector, "refuse", broken)
    app = camara_app(make_records(), FakeClock(NOW), make_tokens(), faults=Faults(too_many_requests=0.5))
    headers = {"Authorization": "Bearer server", "x-correlator": "abc"}
    async with serve(app) as base, aiohttp.ClientSession() as session:
        with caplog.at_level(logging.DEBUG):
            async with session.post(base + "/sim-swap/v2/check", json={"phoneNumber": ALICE},
                                    headers=headers) as response:
                assert response.status == 500
                assert response.content_type == "application/json"
                assert response.headers["x-correlator"] == "abc"
                assert is_camara_error(await response.json(), 500, "INTERNAL")
        (record,) = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert record.name == "carrier_sim.camara.app"
        assert record.exc_info is not None
        assert record.exc_info[0] is UnicodeEncodeError
        # The helper, which the injector never sees, is still served.
        async with session.post(base + "/_emulator/v1/device-token", json={"phoneNumber": ALICE}) as response:
            assert response.status == 200


async def test_unknown_path_wrong_method_and_correlator(carrier: Carrier) -> None:
    status, body = await carrier.post("/sim-swap/v9/check", {"phoneNumber": ALICE})
    assert is_camara_error(body, 404, "NOT_FOUND")
    assert status == 404
    status, body = await carrier.get("/sim-swap/v1/check", "server")
    assert is_camara_error(body, 405, "METHOD_NOT_ALLOWED")
    assert status == 405
    async with carrier.session.get(carrier.base + "/sim-swap/v1/check",
                                   headers={"Authorization": "Bearer server"}) as response:
        assert response.headers["Allow"] == "POST"  # RFC 9110 15.5.6
    headers = {"Authorization": "Bearer server", "x-correlator": "b4333c46-49c0-4f62-80d7-f0ef930f1c46"}
    async with carrier.session.post(
        carrier.base + "/sim-swap/v1/check", json={"phoneNumber": ALICE}, headers=headers
    ) as response:
        assert response.status == 200
        assert response.headers["x-correlator"] == headers["x-correlator"]
    headers["x-correlator"] = "bad correlator!"
    async with carrier.session.post(
        carrier.base + "/sim-swap/v1/check", json={"phoneNumber": ALICE}, headers=headers
    ) as response:
        assert response.status == 400
        assert is_camara_error(await response.json(), 400, "INVALID_ARGUMENT")


async def test_an_empty_correlator_is_echoed_as_sent(carrier: Carrier) -> None:
    # XCorrelator is ^[a-zA-Z0-9-_:;.\/<>{}]{0,256}$: empty is valid, and echoed like any other value; an absent
    # header stays absent.
    for path, body, expected in (("/sim-swap/v2/check", {"phoneNumber": ALICE}, 200),
                                 ("/sim-swap/v2/check", {"phoneNumber": "bad"}, 400),
                                 ("/sim-swap/v9/check", {}, 404)):
        headers = {"Authorization": "Bearer server", "x-correlator": ""}
        async with carrier.session.post(carrier.base + path, json=body, headers=headers) as response:
            assert response.status == expected
            assert response.headers.get("x-correlator") == ""
        async with carrier.session.post(carrier.base + path, json=body,
                                        headers={"Authorization": "Bearer server"}) as response:
            assert "x-correlator" not in response.headers


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"NOT AN HTTP REQUEST LINE\r\n\r\n",
        b"POST /sim-swap/v1/check HTTP/1.1\r\nHost: x\r\nx-correlator: \x01\r\n\r\n",
        b"POST /sim-swap/v1/check HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
    ],
    ids=["request-line", "control-char-header", "100KB-header"],
)
async def test_malformed_http_gets_400_and_one_log_line_without_traceback(
    carrier: Carrier, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    host, _, port = carrier.base.removeprefix("http://").rpartition(":")
    with caplog.at_level(logging.DEBUG, logger="aiohttp"):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request_bytes)
        answer = await reader.read()  # aiohttp closes the connection after refusing malformed HTTP
        writer.close()
    # aiohttp's parser answers before any middleware runs: a plain 400, not an ErrorInfo (aio-libs/aiohttp#3287).
    assert answer.split(b" ", 2)[1] == b"400"
    records = [r for r in caplog.records if r.name.startswith("aiohttp")]
    assert records
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in records)
    assert "Traceback" not in caplog.text
    assert (await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE}))[0] == 200


async def test_a_body_over_1_mib_is_413_invalid_argument(carrier: Carrier) -> None:
    # docs/camara.md's error table: aiohttp's client_max_size refusal, in CAMARA's shape.
    status, body = await carrier.post("/sim-swap/v2/check", b" " * (1024**2 + 1))
    assert status == 413
    assert is_camara_error(body, 413, "INVALID_ARGUMENT")
    assert (await carrier.post("/sim-swap/v2/check", {"phoneNumber": ALICE}))[0] == 200


async def test_text_plain_body_is_415(carrier: Carrier) -> None:
    headers = {"Authorization": "Bearer server", "Content-Type": "text/plain"}
    async with carrier.session.post(
        carrier.base + "/sim-swap/v1/check", data=b'{"phoneNumber": "+447700900001"}', headers=headers
    ) as response:
        assert response.status == 415
        assert is_camara_error(await response.json(), 415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
@pytest.mark.parametrize("path", ["/sim-swap/v1/check", "/number-verification/v1/verify"])
async def test_a_body_that_is_not_its_content_encoding_is_400_invalid_argument_without_an_error_logged(
    carrier: Carrier, path: str, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    # request.read() raised aiohttp's RequestPayloadError, which the last-resort catch-all took for a defect: a
    # 500 INTERNAL logged with its traceback, then one more traceback as aiohttp drained the body.
    host, _, port = carrier.base.removeprefix("http://").rpartition(":")
    body = b'{"phoneNumber": "+447700900001"}'  # plain JSON, not compressed as the header says
    request = (f"POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer server\r\nx-correlator: c-1\r\n"
               f"Content-Type: application/json\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    with caplog.at_level(logging.DEBUG):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(request)
        async with asyncio.timeout(10):
            answer = await reader.read()
        writer.close()
        assert (await carrier.post("/sim-swap/v1/check", {"phoneNumber": ALICE}))[0] == 200  # still serving
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.split(b" ", 2)[1] == b"400", answer
    assert b"\r\nx-correlator: c-1" in head.lower()
    error = json.loads(payload)
    assert is_camara_error(error, 400, "INVALID_ARGUMENT")
    assert f"content-encoding: {encoding}" in str(error["message"]).lower()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    drained = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.WARNING]
    assert all(r.exc_info is None and "ContentEncodingError" in r.getMessage() for r in drained)
