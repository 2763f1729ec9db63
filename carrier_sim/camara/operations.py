"""The CAMARA operations of an emulated carrier, as pure functions of (records, grant, body, now).

Theory of operation: the HTTP adapter (:mod:`carrier_sim.camara.app`) hands :func:`answer` the route, the raw
``Authorization`` header and body bytes and the current time; :func:`answer` authenticates, parses, validates,
reads or mutates :class:`~carrier_sim.camara.registry.SubscriberRecords` and returns ``(status, json_body)``.
Every failure is a :class:`~carrier_sim.camara.errors.CamaraError` turned into its ``ErrorInfo`` body here, so no
input can reach the adapter as an unhandled exception. No I/O (but a log line for a bug), no clock, no randomness
(new token strings come from an injected factory).

The table :data:`ROUTES` lists every operation once: API name, the versions served, path, method, scope and the
function that answers it. Paths and fields follow the CAMARA specifications:

- SIM Swap (``sim-swap`` v1/v2): ``POST /check`` and ``POST /retrieve-date``.
- Number Verification (``number-verification`` v1/v2): ``POST /verify`` and ``GET /device-phone-number``.
- Number Recycling (``number-recycling`` v0.2): ``POST /check``.
- Device Reachability Status (``device-reachability-status`` v1): ``POST /retrieve``.
- Emulator only, not CAMARA: ``POST /_emulator/v1/device-token`` issues a three-legged token for a device.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import NoReturn

from carrier_sim.camara.access import Grant, resolve_grant
from carrier_sim.camara.errors import (
    CamaraError,
    IdentifierNotFound,
    Internal,
    InvalidArgument,
    InvalidTokenContext,
    MissingIdentifier,
    NotFound,
    OutOfRange,
    Unauthenticated,
    UnidentifiablePhoneNumber,
    UnnecessaryIdentifier,
    UnsupportedIdentifier,
    UnsupportedMediaType,
    UserNotAuthenticatedByMobileNetwork,
)
from carrier_sim.camara.registry import Connectivity, SubscriberRecords, Subscription, UnknownNumber

__all__ = [
    "DEFAULT_MAX_AGE_HOURS",
    "DEVICE_TOKEN_LIFETIME",
    "ROUTES",
    "Call",
    "Reply",
    "Route",
    "answer",
    "parse_body",
    "reply",
    "rfc3339",
    "valid_correlator",
]

JsonObject = dict[str, object]

# The one side effect here: an unexpected exception (a bug) is logged, see answer().
_LOG = logging.getLogger(__name__)

# CAMARA ``PhoneNumber``: E.164 with a leading '+'. fullmatch, because '$' would accept a trailing newline.
PHONE_NUMBER = re.compile(r"\+[1-9][0-9]{4,14}")
HASHED_PHONE_NUMBER = re.compile(r"[a-fA-F0-9]{64}")
CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# CAMARA Commonalities ``XCorrelator``.
X_CORRELATOR = re.compile(r"[a-zA-Z0-9\-_:;./<>{}]{0,256}")

# NumberVerification 2.x (PR #226, issue #154): the network-based token is single use, has no refresh token and
# lives at most 300 seconds.
DEVICE_TOKEN_LIFETIME = timedelta(seconds=300)

# SIM Swap: "maxAge: Period in hours to be checked for SIM swap", minimum 1, maximum 2400, default 240.
DEFAULT_MAX_AGE_HOURS = 240
MAX_AGE_RANGE = range(1, 2401)


# APIs whose /v1 is a 1.0.0 release with identifier rules of its own (SimSwap 1.0.0, NumberVerification 1.0.0);
# their /v2 follows Commonalities' 422 *_IDENTIFIER codes. Other APIs' first majors already follow Commonalities.
V1_IDENTIFIER_RULES = frozenset({"sim-swap", "number-verification"})


@dataclass(frozen=True, slots=True)
class Call:
    """One authenticated request, as an operation sees it.

    ``v1_rules``: answer with the 1.0.0 identifier rules (see :data:`V1_IDENTIFIER_RULES`) rather than v2's.
    """

    records: SubscriberRecords
    grant: Grant
    body: object
    now: datetime
    monitored_period_days: int | None
    new_token: Callable[[], str]
    v1_rules: bool = False


Handler = Callable[[Call], JsonObject]


@dataclass(frozen=True, slots=True)
class Route:
    """One operation: served at ``/{api}/{version}{path}`` for each of ``versions``.

    ``scope`` is the operation's own scope (None: no scope needed); ``api_scope``, if set, is an API-wide scope
    that the specification accepts instead (SimSwap's ``sim-swap`` covers both of its operations).
    """

    api: str
    versions: tuple[str, ...]
    path: str
    method: str
    scope: str | None
    handler: Handler
    authenticated: bool = True
    api_scope: str | None = None

    def scopes(self) -> tuple[str, ...]:
        """The scopes any one of which authorises this operation."""
        own = (self.scope,) if self.scope is not None else ()
        return own + ((self.api_scope,) if self.api_scope is not None else ())

    def url(self, version: str) -> str:
        """The URL path this operation answers on in ``version``."""
        return f"/{self.api}/{version}{self.path}"

    def urls(self) -> tuple[str, ...]:
        """Every URL path this operation answers on."""
        return tuple(self.url(version) for version in self.versions)


def rfc3339(moment: datetime) -> str:
    """``moment`` as RFC 3339 UTC with milliseconds, the format CAMARA recommends (``…T10:41:38.657Z``)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def valid_correlator(value: str) -> bool:
    """Whether an ``x-correlator`` header matches the CAMARA pattern."""
    return X_CORRELATOR.fullmatch(value) is not None


def _reject_constant(name: str) -> NoReturn:
    raise InvalidArgument(f"Request body is not valid JSON: {name} is not a JSON value.")


def _unique_members(pairs: list[tuple[str, object]]) -> JsonObject:
    """A JSON object whose member names are unique; a repeated name is 400 INVALID_ARGUMENT naming it.

    RFC 8259 §4: names "SHOULD be unique", and with duplicates "the behavior of software that receives such an
    object is unpredictable". Python keeps the last; another parser (the consumer's gateway, a logging proxy) may
    keep the first, so ``{"phoneNumber": "bad", "phoneNumber": "+44…"}`` would be validated by one and answered by
    the other, and two numbers would slip past Number Verification's one-of-two rule. An ambiguous body is refused,
    as an unknown property is.
    """
    members: JsonObject = {}
    for name, value in pairs:
        if name in members:
            raise InvalidArgument(f"Request body has the property {_quoted(name)} more than once.")
        members[name] = value
    return members


def parse_body(raw: bytes) -> object:
    """Decode a request body as strict JSON (UTF-8, no NaN/Infinity, no repeated member name in any object);
    anything else is 400 INVALID_ARGUMENT."""
    if not raw.strip():
        raise InvalidArgument("Request body is missing.")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant, object_pairs_hook=_unique_members)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"Request body is not valid JSON: {exc}.") from None
    except ValueError:
        # Valid JSON, but an integer of more digits than CPython converts (sys.get_int_max_str_digits(), 4300 by
        # default): json.loads raises a plain ValueError. No CAMARA field takes such a number; it is the client's
        # error, not the server's.
        raise InvalidArgument("Request body has an integer with too many digits.") from None
    except RecursionError:
        raise InvalidArgument("Request body is nested too deeply.") from None


def _require_json(content_type: str | None) -> None:
    """415 UNSUPPORTED_MEDIA_TYPE (Commonalities) for a body declared as anything but JSON.

    An absent header is let through and the body judged as JSON on its own (RFC 9110 8.3 lets a recipient
    examine the data); a declared non-JSON type, including curl's default form type, is refused.
    """
    if content_type is None:
        return
    media_type = content_type.partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(f"Content-Type {_quoted(media_type or content_type)} is not JSON "
                                   "(application/json).")


# How much of one client-supplied name an error message quotes, and how many names it lists: enough to find the
# typo, never enough to let the request grow the answer (ErrorInfo.message is at most 512 characters anyway).
_QUOTED_MAX = 64
_NAMES_MAX = 5


def _quoted(text: str) -> str:
    """``text`` as a Python literal (escaping control characters and lone surrogates), cut to a readable length."""
    return repr(text if len(text) <= _QUOTED_MAX else text[:_QUOTED_MAX] + "\N{HORIZONTAL ELLIPSIS}")


def _unknown(where: str, names: set[str]) -> InvalidArgument:
    """400 naming a few of the properties ``where`` does not define, and how many there were."""
    shown = ", ".join(_quoted(name) for name in sorted(names)[:_NAMES_MAX])
    more = f" and {len(names) - _NAMES_MAX} more" if len(names) > _NAMES_MAX else ""
    return InvalidArgument(f"{where} has unknown properties: {shown}{more}.")


# --- validation ------------------------------------------------------------------------------------------
def _object(body: object, allowed: frozenset[str]) -> Mapping[str, object]:
    """The body as a JSON object with no property outside ``allowed``.

    CAMARA Commonalities: unknown request properties are refused with 400 INVALID_ARGUMENT rather than ignored,
    so a consumer's typo (``maxage``) fails loudly instead of silently taking the default.
    """
    if not isinstance(body, dict):
        raise InvalidArgument("Request body must be a JSON object.")
    unknown = body.keys() - allowed
    if unknown:
        raise _unknown("Request body", unknown)
    return body


def _phone_number(value: object, field: str = "phoneNumber") -> str:
    if not isinstance(value, str) or PHONE_NUMBER.fullmatch(value) is None:
        raise InvalidArgument(f"{field} must be an E.164 number with a leading '+' (^\\+[1-9][0-9]{{4,14}}$).")
    return value


def _optional_phone_number(body: Mapping[str, object]) -> str | None:
    return _phone_number(body["phoneNumber"]) if "phoneNumber" in body else None


def _subject(call: Call, named: str | None) -> str:
    """The MSISDN the request is about: from a three-legged token, else from the body (CAMARA Commonalities).

    Under 1.0.0 rules a three-legged token may come with the same number in the body, a different one is 403
    INVALID_TOKEN_CONTEXT, and no number at all with a two-legged token is 422 UNIDENTIFIABLE_PHONE_NUMBER.
    """
    if call.grant.subject is not None:
        if named is not None:
            if not call.v1_rules:
                raise UnnecessaryIdentifier()
            if named != call.grant.subject:
                raise InvalidTokenContext()
        return call.grant.subject
    if named is None:
        raise UnidentifiablePhoneNumber() if call.v1_rules else MissingIdentifier()
    return named


def _subscription(call: Call, msisdn: str) -> Subscription:
    """The assigned subscription for ``msisdn``; a vanished token subject means the token is dead (401)."""
    try:
        record = call.records.get(msisdn)
    except UnknownNumber:
        record = None
    if record is None or not record.assigned:
        if call.grant.subject is not None:
            raise Unauthenticated("The access token's subscriber is no longer a subscriber of this network.")
        message = "The phone number provided is not associated with a customer account."
        # IDENTIFIER_NOT_FOUND came with Commonalities 0.5 (the 2.x APIs); SIM Swap 1.0.0 (Commonalities 0.4) has
        # only the generic NOT_FOUND for a 404, which a /v1 client is written against.
        raise NotFound(message) if call.v1_rules else IdentifierNotFound(message)
    return record


# --- SIM Swap ------------------------------------------------------------------------------------------------
def _max_age(call: Call, body: Mapping[str, object]) -> int:
    """The hours ``check`` looks back: the request's ``maxAge``, validated, or the default."""
    if "maxAge" not in body:
        # The schema's default (240 h) is the server's own choice, not the client's, so it is never OUT_OF_RANGE: with
        # a monitored period under 10 days it is cut to the period. sim-swap.yaml 2.x refuses with OUT_OF_RANGE only "a
        # request ... performed with a value inferior to 2400 but superior to operator policy" (test definition
        # @check_sim_swap_400.4: "maxAge is set to a valid value above the supported monitored period"), and
        # @check_sim_swap_1 expects any schema-valid body, maxAge omitted included, to get 200. Refusing the default
        # made every check without maxAge fail on such a door (the gap SimSwap issue #249 raises).
        if call.monitored_period_days is not None:
            return min(DEFAULT_MAX_AGE_HOURS, call.monitored_period_days * 24)
        return DEFAULT_MAX_AGE_HOURS
    max_age = body["maxAge"]
    if isinstance(max_age, bool) or not isinstance(max_age, int):
        raise InvalidArgument("maxAge must be an integer number of hours from 1 to 2400.")
    if max_age not in MAX_AGE_RANGE:
        # An integer outside 1..2400 is OUT_OF_RANGE, not INVALID_ARGUMENT. SimSwap v2.1.0's test definition
        # (sim-swap-checkSimSwap.feature, @check_sim_swap_400.2_invalid_max_age_value): "Given the request body
        # property "$.maxAge" is set to 100000 ... Then the response status code is 400 ... And the response
        # property "$.code" is "OUT_OF_RANGE"". sim-swap.yaml's Generic400 defines OUT_OF_RANGE as the "Specific
        # Syntax Exception used when a given field has a pre-defined range", which covers below 1 as well.
        raise OutOfRange("maxAge must be an integer number of hours from 1 to 2400.")
    if call.monitored_period_days is not None and max_age > call.monitored_period_days * 24:
        raise OutOfRange(f"maxAge exceeds the monitored period of {call.monitored_period_days} days.")
    return max_age


def check_sim_swap(call: Call) -> JsonObject:
    """``POST /sim-swap/v1/check``: did the MSISDN get a new SIM (swap, new subscription, port-in) in the last
    ``maxAge`` hours?"""
    body = _object(call.body, frozenset({"phoneNumber", "maxAge"}))
    max_age = _max_age(call, body)
    record = _subscription(call, _subject(call, _optional_phone_number(body)))
    # sim-swap.yaml 2.x (SimSwap issue #78, PR #82): a new subscription or a port-in pairs the MSISDN with a new
    # SIM, so it counts as a swap, and check must agree with the date retrieve-date reports.
    # The window's edge is inside (>=): CAMARA's conformance test (sim-swap-checkSimSwap.feature,
    # @check_sim_swap_3_valid_sim_swap_max_age) expects true when maxAge is "equal or greater than" the hours since
    # the swap, and retrieve-date likewise counts a change exactly monitoredPeriod days ago as inside its period.
    swapped = record.latest_sim_change >= call.now - timedelta(hours=max_age)
    return {"swapped": swapped}


def retrieve_sim_swap_date(call: Call) -> JsonObject:
    """``POST /sim-swap/v1/retrieve-date``: when was the MSISDN last paired with a SIM?

    CAMARA: the SIM activation time when no swap happened; ``null`` plus ``monitoredPeriod`` (days) when the
    change lies beyond the period the carrier is allowed to look back on.
    """
    body = _object(call.body, frozenset({"phoneNumber"}))
    record = _subscription(call, _subject(call, _optional_phone_number(body)))
    latest = record.latest_sim_change
    period = call.monitored_period_days
    # Strictly before the period's start: a change exactly ``period`` days ago is inside it (as check's maxAge).
    if period is not None and latest < call.now - timedelta(days=period):
        return {"latestSimChange": None, "monitoredPeriod": period}
    return {"latestSimChange": rfc3339(latest)}


# --- Number Verification --------------------------------------------------------------------------------
def _network_authenticated_subject(call: Call) -> Subscription:
    """Number Verification works only for a device the mobile network itself authenticated.

    The device token is consumed here, once the request is well-formed and about to be answered: a token is
    good for one answer (NumberVerification 2.x), but a malformed request the consumer can fix does not burn it.
    """
    if call.grant.subject is None and call.v1_rules:
        # NumberVerification 1.0.0: a token not associated with a phone number (removed in 2.x).
        raise InvalidTokenContext("The access token is not associated with a phone number.")
    if call.grant.subject is None or not call.grant.via_mobile_network:
        raise UserNotAuthenticatedByMobileNetwork()
    if call.grant.device_token is not None:
        call.records.revoke_token(call.grant.device_token)
    return _subscription(call, call.grant.subject)


def verify_number(call: Call) -> JsonObject:
    """``POST /number-verification/v1/verify``: is the given (or hashed) number the device's own number?"""
    body = _object(call.body, frozenset({"phoneNumber", "hashedPhoneNumber"}))
    # The schema has minProperties 1 and maxProperties 1: exactly one of the two forms.
    if len(body) != 1 or not ({"phoneNumber", "hashedPhoneNumber"} >= body.keys()):
        raise InvalidArgument("Provide exactly one of phoneNumber or hashedPhoneNumber.")
    if "phoneNumber" in body:
        number = _phone_number(body["phoneNumber"])
        record = _network_authenticated_subject(call)
        verified = number == record.msisdn
    else:
        hashed = body["hashedPhoneNumber"]
        if not isinstance(hashed, str) or HASHED_PHONE_NUMBER.fullmatch(hashed) is None:
            raise InvalidArgument("hashedPhoneNumber must be the SHA-256 of the E.164 number, in hexadecimal.")
        record = _network_authenticated_subject(call)
        verified = hashlib.sha256(record.msisdn.encode("ascii")).hexdigest() == hashed.lower()
    return {"devicePhoneNumberVerified": verified}


def device_phone_number(call: Call) -> JsonObject:
    """``GET /number-verification/v1/device-phone-number``: the number of the authenticated device."""
    return {"devicePhoneNumber": _network_authenticated_subject(call).msisdn}


# --- Number Recycling -----------------------------------------------------------------------------------
def check_number_recycling(call: Call) -> JsonObject:
    """``POST /number-recycling/v0.2/check``: has the number's subscriber changed after ``specifiedDate``?

    The spec's notes: the contract start date itself answers false; a date in a gap with no contract, or a
    number that currently has no subscriber, answers true.
    """
    body = _object(call.body, frozenset({"phoneNumber", "specifiedDate"}))
    raw_date = body.get("specifiedDate")
    if not isinstance(raw_date, str) or CALENDAR_DATE.fullmatch(raw_date) is None:
        raise InvalidArgument("specifiedDate must be an RFC 3339 calendar date (YYYY-MM-DD).")
    try:
        specified = date.fromisoformat(raw_date)
    except ValueError:
        raise InvalidArgument("specifiedDate is not a calendar date.") from None
    # No refusal of a future date: the spec has none, and "future" against the server's UTC date would refuse a
    # UTC+10 consumer's "today". A future date simply answers whether the contract began after it (false).
    msisdn = _subject(call, _optional_phone_number(body))
    try:
        record = call.records.get(msisdn)
    except UnknownNumber:
        record = None
    if call.grant.subject is not None and (record is None or not record.assigned):
        # A three-legged token names its subscriber; one who left makes the token dead, as in _subscription (SIM
        # Swap, Reachability): 401, not "recycled" about a subscriber the consent no longer covers.
        raise Unauthenticated("The access token's subscriber is no longer a subscriber of this network.")
    if record is None:
        raise IdentifierNotFound("The phone number provided is not associated with a customer account.")
    recycled = not record.assigned or record.subscriber_since.astimezone(UTC).date() > specified
    return {"phoneNumberRecycled": recycled}


# --- Device Reachability Status ---------------------------------------------------------------------------
DEVICE_IDENTIFIERS = frozenset({"phoneNumber", "networkAccessIdentifier", "ipv4Address", "ipv6Address"})
DEVICE_IPV4_FIELDS = frozenset({"publicAddress", "privateAddress", "publicPort"})


def _ipv4(value: object, field: str) -> None:
    """``SingleIpv4Addr``: a string, ``format: ipv4``, no subnet mask."""
    try:
        if not isinstance(value, str):
            raise ValueError
        ipaddress.IPv4Address(value)
    except ValueError:
        raise InvalidArgument(f"{field} must be a single IPv4 address (dotted decimal, no mask).") from None


def _device(device: Mapping[str, object]) -> None:
    """Each identifier of a ``Device`` against device-reachability-status.yaml: checking the key names alone let
    ``ipv4Address: 5`` or ``networkAccessIdentifier: null`` through to a 200, as if the request had been valid.

    Each is checked even though only ``phoneNumber`` is served (422 UNSUPPORTED_IDENTIFIER otherwise): a malformed
    identifier is the client's 400 whatever the network supports, and schema validation comes first.
    """
    if "phoneNumber" in device:
        _phone_number(device["phoneNumber"], "device.phoneNumber")
    if "networkAccessIdentifier" in device and not isinstance(device["networkAccessIdentifier"], str):
        raise InvalidArgument("device.networkAccessIdentifier must be a string ({local}@{domain}).")
    if "ipv4Address" in device:
        # DeviceIpv4Addr: publicAddress required, with privateAddress or publicPort (anyOf); no other properties
        # (unknown properties are refused throughout, see _object).
        ipv4 = device["ipv4Address"]
        if not isinstance(ipv4, dict):
            raise InvalidArgument("device.ipv4Address must be an object (publicAddress plus privateAddress or "
                                  "publicPort).")
        unknown = ipv4.keys() - DEVICE_IPV4_FIELDS
        if unknown:
            raise _unknown("device.ipv4Address", unknown)
        if "publicAddress" not in ipv4 or not ({"privateAddress", "publicPort"} & ipv4.keys()):
            raise InvalidArgument("device.ipv4Address needs publicAddress and at least one of privateAddress or "
                                  "publicPort.")
        _ipv4(ipv4["publicAddress"], "device.ipv4Address.publicAddress")
        if "privateAddress" in ipv4:
            _ipv4(ipv4["privateAddress"], "device.ipv4Address.privateAddress")
        port = ipv4.get("publicPort", 0)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise InvalidArgument("device.ipv4Address.publicPort must be an integer port from 0 to 65535.")
    if "ipv6Address" in device:
        ipv6 = device["ipv6Address"]
        try:
            # format: ipv6 is RFC 4291's text form, which has no zone ("%eth0") that ipaddress would accept.
            if not isinstance(ipv6, str) or "%" in ipv6:
                raise ValueError
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            raise InvalidArgument("device.ipv6Address must be a single IPv6 address.") from None


def retrieve_reachability(call: Call) -> JsonObject:
    """``POST /device-reachability-status/v1/retrieve``: can the network reach the device, and how?"""
    body = _object(call.body, frozenset({"device"}))
    named: str | None = None
    device = body.get("device")
    if "device" in body:
        if not isinstance(device, dict) or not device:
            raise InvalidArgument("device must be an object with at least one identifier.")
        unknown = device.keys() - DEVICE_IDENTIFIERS
        if unknown:
            raise _unknown("device", unknown)
        _device(device)
        if call.grant.subject is not None:
            raise UnnecessaryIdentifier()
        if "phoneNumber" not in device:
            raise UnsupportedIdentifier("Only device.phoneNumber is supported by this network.")
        named = _phone_number(device["phoneNumber"], "device.phoneNumber")
    record = _subscription(call, _subject(call, named))
    result: JsonObject = {}
    if named is not None:
        result["device"] = {"phoneNumber": named}
    result["lastStatusTime"] = rfc3339(record.status_at or call.now)
    result["reachable"] = record.reachable
    if record.reachable:
        result["connectivity"] = [kind.value for kind in Connectivity if kind in record.connectivity]
    return result


# --- emulator helper: network-based authentication of a device --------------------------------------------
def issue_device_token(call: Call) -> JsonObject:
    """``POST /_emulator/v1/device-token``: what the carrier's authorisation server does after it recognised a
    device on its mobile data network. Not CAMARA; stands in for the three-legged OIDC flow."""
    body = _object(call.body, frozenset({"phoneNumber", "scope"}))
    msisdn = _phone_number(body.get("phoneNumber"))
    scope = body.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise InvalidArgument("scope must be a space-separated string.")
    try:
        record = call.records.get(msisdn)
    except UnknownNumber:
        record = None
    if record is None or not record.assigned:
        raise IdentifierNotFound("The phone number provided is not associated with a customer account.")
    if Connectivity.DATA not in record.connectivity:
        raise UserNotAuthenticatedByMobileNetwork("The device is not attached to the mobile data network.")
    scopes = frozenset(scope.split()) if scope is not None else None
    token = call.new_token()
    call.records.bind_token(msisdn, token, scopes, expires_at=call.now + DEVICE_TOKEN_LIFETIME)
    result: JsonObject = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": int(DEVICE_TOKEN_LIFETIME.total_seconds()),
    }
    if scopes is not None:
        result["scope"] = " ".join(sorted(scopes))
    return result


ROUTES: tuple[Route, ...] = (
    # SimSwap 1.0.0 (PR #103) and 2.x list the API-name scope "sim-swap" as an alternative security requirement of
    # both operations, so a token granted just "sim-swap" may call either.
    Route("sim-swap", ("v1", "v2"), "/check", "POST", "sim-swap:check", check_sim_swap, api_scope="sim-swap"),
    Route(
        "sim-swap",
        ("v1", "v2"),
        "/retrieve-date",
        "POST",
        "sim-swap:retrieve-date",
        retrieve_sim_swap_date,
        api_scope="sim-swap",
    ),
    Route("number-verification", ("v1", "v2"), "/verify", "POST", "number-verification:verify", verify_number),
    Route(
        "number-verification",
        ("v1", "v2"),
        "/device-phone-number",
        "GET",
        "number-verification:device-phone-number:read",
        device_phone_number,
    ),
    Route("number-recycling", ("v0.2",), "/check", "POST", "number-recycling:check", check_number_recycling),
    Route(
        "device-reachability-status",
        ("v1",),
        "/retrieve",
        "POST",
        "device-reachability-status:read",
        retrieve_reachability,
    ),
    Route("_emulator", ("v1",), "/device-token", "POST", None, issue_device_token, authenticated=False),
)


@dataclass(frozen=True, slots=True)
class Reply:
    """What to answer one request with: HTTP ``status``, JSON ``body`` and any header fields the status requires
    (``WWW-Authenticate`` on a 401, RFC 9110 §15.5.2)."""

    status: int
    body: JsonObject
    headers: Mapping[str, str]


def reply(
    route: Route,
    *,
    records: SubscriberRecords,
    tokens: Mapping[str, Grant],
    authorization: str | None,
    raw_body: bytes,
    now: datetime,
    new_token: Callable[[], str],
    monitored_period_days: int | None = None,
    content_type: str | None = None,
    version: str | None = None,
) -> Reply:
    """Answer one request to ``route``, a CAMARA ``ErrorInfo`` body on failure.

    ``content_type`` is the request's ``Content-Type`` header (None: absent); ``version`` the one of
    ``route.versions`` the request named (None: the newest). Order follows the usual gateway
    order: authenticate (401), authorise the scope (403), check the media type (415), then parse (400).
    """
    try:
        grant = resolve_grant(authorization, tokens, records, now) if route.authenticated else Grant()
        if route.scope is not None:
            grant.require(*route.scopes())
        if route.method != "GET":
            _require_json(content_type)
        body = parse_body(raw_body) if route.method != "GET" else None
        v1_rules = route.api in V1_IDENTIFIER_RULES and (version or route.versions[-1]) == "v1"
        call = Call(records, grant, body, now, monitored_period_days, new_token, v1_rules)
        return Reply(200, route.handler(call), {})
    except CamaraError as error:
        return Reply(error.status, error.body(), error.headers())
    except Exception as exc:  # a bug must still answer in CAMARA's shape, and the server must keep serving
        # ... and be seen: a 500 here is an emulator defect, so it is logged with its traceback, not just counted.
        _LOG.exception("CAMARA %s %s: unexpected error answering the request", route.method, route.url(
            version or route.versions[-1]))
        return Reply(Internal.status, Internal(f"Unexpected server error: {type(exc).__name__}.").body(), {})


def answer(
    route: Route,
    *,
    records: SubscriberRecords,
    tokens: Mapping[str, Grant],
    authorization: str | None,
    raw_body: bytes,
    now: datetime,
    new_token: Callable[[], str],
    monitored_period_days: int | None = None,
    content_type: str | None = None,
    version: str | None = None,
) -> tuple[int, JsonObject]:
    """:func:`reply`'s ``(status, body)``, for callers that judge the body alone."""
    answered = reply(route, records=records, tokens=tokens, authorization=authorization, raw_body=raw_body,
                     now=now, new_token=new_token, monitored_period_days=monitored_period_days,
                     content_type=content_type, version=version)
    return answered.status, answered.body
