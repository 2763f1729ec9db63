"""Behaviour the CAMARA specifications require beyond the basics of ``test_app``, via the pure
:func:`carrier_sim.camara.operations.answer` (one test per finding of the spec review)."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import pytest

from carrier_sim.camara.access import Grant
from carrier_sim.camara.operations import ROUTES, Route, answer
from carrier_sim.camara.registry import SubscriberRecords

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
OLD = "+447700900001"  # subscriber for a year
NEW = "+447700900002"  # activated five hours ago


def route(api: str, path: str) -> Route:
    """The one route of ``api`` serving ``path``."""
    return next(r for r in ROUTES if r.api == api and r.path == path)


class Door:
    """A carrier's CAMARA operations called directly, with a settable clock."""

    def __init__(self) -> None:
        self.records = SubscriberRecords()
        self.records.activate(OLD, NOW - timedelta(days=365))
        self.records.activate(NEW, NOW - timedelta(hours=5))
        self.tokens = {"server": Grant(), "sim-swap-api": Grant(scopes=frozenset({"sim-swap"}))}
        self.now = NOW
        self._counter = itertools.count(1)

    def call(
        self,
        api: str,
        path: str,
        body: object = None,
        token: str | None = "server",
        *,
        content_type: str | None = "application/json",
        version: str | None = None,
    ) -> tuple[int, dict[str, object]]:
        """Answer one request; ``body`` None sends none (GET)."""
        r = route(api, path)
        raw = b"" if body is None else json.dumps(body).encode()
        return answer(
            r,
            records=self.records,
            tokens=self.tokens,
            authorization=f"Bearer {token}" if token else None,
            raw_body=raw,
            now=self.now,
            new_token=lambda: f"device-{next(self._counter)}",
            content_type=content_type if body is not None else None,
            version=version,
        )


@pytest.fixture
def door() -> Door:
    return Door()


# --- 1. a new subscription or a port-in is a SIM change for check, as for retrieve-date ----------------------
def test_check_counts_a_new_subscription_and_a_port_in(door: Door) -> None:
    assert door.call("sim-swap", "/check", {"phoneNumber": NEW, "maxAge": 24}) == (200, {"swapped": True})
    assert door.call("sim-swap", "/check", {"phoneNumber": NEW, "maxAge": 4}) == (200, {"swapped": False})
    assert door.call("sim-swap", "/check", {"phoneNumber": OLD}) == (200, {"swapped": False})
    ported = "+447700900003"
    door.records.port_in(ported, NOW - timedelta(hours=1), subscriber_since=NOW - timedelta(days=900))
    assert door.call("sim-swap", "/check", {"phoneNumber": ported, "maxAge": 2}) == (200, {"swapped": True})
    door.records.recycle(OLD, NOW - timedelta(hours=1))
    assert door.call("sim-swap", "/check", {"phoneNumber": OLD, "maxAge": 2}) == (200, {"swapped": True})


# --- 2. Number Verification tokens: single use, at most 300 s, dead after a SIM swap ----------------------------
def issue(door: Door, msisdn: str = OLD) -> str:
    status, body = door.call("_emulator", "/device-token", {"phoneNumber": msisdn}, token=None)
    assert status == 200
    assert body["expires_in"] == 300
    return str(body["access_token"])


def test_device_token_is_single_use(door: Door) -> None:
    token = issue(door)
    assert door.call("number-verification", "/verify", {"phoneNumber": OLD}, token) == (
        200,
        {"devicePhoneNumberVerified": True},
    )
    status, body = door.call("number-verification", "/verify", {"phoneNumber": OLD}, token)
    assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    token = issue(door)
    assert door.call("number-verification", "/device-phone-number", None, token) == (200, {"devicePhoneNumber": OLD})
    assert door.call("number-verification", "/device-phone-number", None, token)[0] == 401


def test_a_malformed_request_does_not_burn_the_token(door: Door) -> None:
    token = issue(door)
    assert door.call("number-verification", "/verify", {"hashedPhoneNumber": "xyz"}, token)[0] == 400
    assert door.call("number-verification", "/verify", {"phoneNumber": OLD}, token)[0] == 200


def test_device_token_expires_after_300_seconds(door: Door) -> None:
    token = issue(door)
    door.now = NOW + timedelta(seconds=299)
    assert door.call("number-verification", "/device-phone-number", None, token)[0] == 200
    token = issue(door)
    door.now += timedelta(seconds=300)
    status, body = door.call("number-verification", "/device-phone-number", None, token)
    assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    assert door.records.token(token) is None


@pytest.mark.parametrize("event", ["sim_swap", "port_out", "recycle", "deactivate"])
def test_device_token_dies_with_the_sim(door: Door, event: str) -> None:
    token = issue(door)
    getattr(door.records, event)(OLD, NOW)
    status, body = door.call("number-verification", "/verify", {"phoneNumber": OLD}, token)
    assert (status, body["code"]) == (401, "UNAUTHENTICATED")


# --- 3. unknown request properties are 400 INVALID_ARGUMENT (CAMARA Commonalities) -----------------------------
@pytest.mark.parametrize(
    ("api", "path", "body"),
    [
        ("sim-swap", "/check", {"phoneNumber": OLD, "maxage": 24}),
        ("sim-swap", "/retrieve-date", {"phoneNumber": OLD, "extra": 1}),
        ("number-recycling", "/check", {"phoneNumber": OLD, "specifiedDate": "2024-01-01", "x": None}),
        ("device-reachability-status", "/retrieve", {"device": {"phoneNumber": OLD}, "maxAge": 60}),
        ("_emulator", "/device-token", {"phoneNumber": OLD, "scopes": "number-verification:verify"}),
    ],
)
def test_unknown_properties_are_refused(door: Door, api: str, path: str, body: dict[str, object]) -> None:
    status, answered = door.call(api, path, body, token=None if api == "_emulator" else "server")
    assert (status, answered["code"]) == (400, "INVALID_ARGUMENT")


# --- 4. the API-name scope "sim-swap" authorises both SIM Swap operations ---------------------------------------
def test_api_name_scope_covers_both_sim_swap_operations(door: Door) -> None:
    assert door.call("sim-swap", "/check", {"phoneNumber": OLD}, "sim-swap-api") == (200, {"swapped": False})
    assert door.call("sim-swap", "/retrieve-date", {"phoneNumber": OLD}, "sim-swap-api")[0] == 200
    status, body = door.call(
        "number-recycling", "/check", {"phoneNumber": OLD, "specifiedDate": "2024-01-01"}, "sim-swap-api"
    )
    assert (status, body["code"]) == (403, "PERMISSION_DENIED")


# --- 5. a body declared as non-JSON is 415; a future specifiedDate is a question like any other ------------------
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_non_json_content_type_is_415(door: Door, content_type: str) -> None:
    status, body = door.call("sim-swap", "/check", {"phoneNumber": OLD}, content_type=content_type)
    assert (status, body["code"]) == (415, "UNSUPPORTED_MEDIA_TYPE")


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"])
def test_json_content_types_are_accepted(door: Door, content_type: str) -> None:
    assert door.call("sim-swap", "/check", {"phoneNumber": OLD}, content_type=content_type)[0] == 200


def test_a_future_specified_date_is_answered(door: Door) -> None:
    # NOW is 12:00 UTC on 2024-06-01: already 2024-06-02 for a consumer at UTC+14 (Kiribati).
    for day in ("2024-06-02", "2030-01-01"):
        assert door.call("number-recycling", "/check", {"phoneNumber": OLD, "specifiedDate": day}) == (
            200,
            {"phoneNumberRecycled": False},
        )


# --- 6. /v1 answers with the 1.0.0 identifier rules, /v2 with Commonalities' 422 codes --------------------------
def test_sim_swap_v1_identifier_rules(door: Door) -> None:
    door.tokens["old-3l"] = Grant(subject=OLD)
    status, body = door.call("sim-swap", "/check", {}, version="v1")
    assert (status, body["code"]) == (422, "UNIDENTIFIABLE_PHONE_NUMBER")
    status, body = door.call("sim-swap", "/check", {}, version="v2")
    assert (status, body["code"]) == (422, "MISSING_IDENTIFIER")
    # 1.0.0 lets a three-legged token name its own number, and calls another number a token-context mismatch.
    assert door.call("sim-swap", "/check", {"phoneNumber": OLD}, "old-3l", version="v1") == (200, {"swapped": False})
    status, body = door.call("sim-swap", "/retrieve-date", {"phoneNumber": NEW}, "old-3l", version="v1")
    assert (status, body["code"]) == (403, "INVALID_TOKEN_CONTEXT")
    status, body = door.call("sim-swap", "/check", {"phoneNumber": OLD}, "old-3l", version="v2")
    assert (status, body["code"]) == (422, "UNNECESSARY_IDENTIFIER")


def test_number_verification_v1_token_without_a_number(door: Door) -> None:
    status, body = door.call("number-verification", "/device-phone-number", None, version="v1")
    assert (status, body["code"]) == (403, "INVALID_TOKEN_CONTEXT")
    status, body = door.call("number-verification", "/verify", {"phoneNumber": OLD}, version="v2")
    assert (status, body["code"]) == (403, "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK")
