"""The HTTP face of one carrier's RCS configuration server: a thin aiohttp adapter over the provisioner.

``GET /`` (and ``POST /``, which some clients use, with the parameters in the query) is parsed by
:func:`~carrier_sim.rcs.provisioning.parse_request`, decided by
:meth:`~carrier_sim.rcs.provisioning.Provisioner.handle` at ``clock.now()``, and translated once here:

=====================  ==================================================================================
outcome                HTTP answer
=====================  ==================================================================================
ConfigurationIssued    200, ``text/vnd.wap.connectivity-xml``, full document
VersionAnswered        200, VERS-only document
OtpSent                200, empty body, ``Set-Cookie: rcs_otp_session=...`` (the retry carries it back)
CellularSessionOpened  200, empty body, ``Set-Cookie: rcs_cellular_session=...`` (the HTTPS request's proof)
Refused                403 / 503 + ``Retry-After`` / 511, problem+json
InvalidParameter       400, problem+json naming the parameter
SmsNotSent             503 + ``Retry-After``, problem+json: the SMSC refused the OTP SMS (its store full)
any other exception    500, problem+json, logged with its traceback: an emulator defect
=====================  ==================================================================================

Header enrichment, the way a carrier's packet core tells the server which subscriber a plain-HTTP request over
the mobile network comes from, is emulated by :data:`ENRICHMENT_HEADER`: whoever plays the network (the
runner's cellular flow, or a proxy in front of a real device) adds it. Only the bare ``GET /`` looks at it.

Bad input never takes the server down: every failure is an answer, and the next request is served. What aiohttp
refuses itself (an unknown path, another method, ``HEAD`` included) is problem+json too, a 405 with ``Allow``
(:func:`~carrier_sim.net.http_errors.problem_middleware`), and so is a defect: no exception reaches aiohttp, whose
answer would be a plain-text 500.
"""

from __future__ import annotations

import logging
from typing import Final, Protocol
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.typedefs import Handler

from carrier_sim.net.http_errors import problem_middleware
from carrier_sim.net.problem import problem
from carrier_sim.rcs.document import CONTENT_TYPE, build_document
from carrier_sim.rcs.provisioning import (
    PARAMETER_NAMES,
    CellularSessionOpened,
    ConfigurationIssued,
    InvalidParameter,
    OtpSent,
    Provisioner,
    Refused,
    SmsNotSent,
    VersionAnswered,
    parse_request,
)

__all__ = ["CELLULAR_SESSION_COOKIE", "ENRICHMENT_HEADER", "OTP_SESSION_COOKIE", "SMS_RETRY_AFTER", "Clock", "rcs_app"]

#: The cookie tying an OTP answer to the request that caused the OTP SMS.
OTP_SESSION_COOKIE: Final = "rcs_otp_session"
#: The cookie the bare cellular request gets; carried back, it makes the client's next request cellular.
CELLULAR_SESSION_COOKIE: Final = "rcs_cellular_session"
#: The emulated header enrichment: the subscriber's MSISDN, as the mobile network's proxy inserts it.
ENRICHMENT_HEADER: Final = "X-MSISDN"
#: What the server serves, for the detail of a 404.
_ROUTES: Final = "GET /, POST /"
#: Seconds a client waits before asking again when the SMSC refused its OTP SMS: a full store frees room as the
#: SMSC delivers what it holds, so the refusal is temporary, and a short wait lets the next attempt come soon.
SMS_RETRY_AFTER: Final = 10

_LOG = logging.getLogger(__name__)


class Clock(Protocol):
    """Anything with ``now()`` in seconds (a wall clock or a virtual one)."""

    def now(self) -> float:
        """The current time in seconds."""
        ...


@web.middleware
async def _last_resort(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise  # aiohttp's own answers (redirects); its refusals were made problem+json inside
    except Exception as exc:  # a defect must still answer in problem+json, and the server must keep serving
        # Logged here, once, with its traceback: aiohttp sees an answer and logs nothing of its own.
        _LOG.exception("RCS %s %s: unexpected error answering the request", request.method, request.path)
        return problem(500, "Internal Server Error", f"unexpected server error: {type(exc).__name__}")


def rcs_app(provisioner: Provisioner, clock: Clock) -> web.Application:
    """An aiohttp application serving ``provisioner``'s configuration documents at ``/``."""

    async def configure(request: web.Request) -> web.StreamResponse:
        # Decoded here rather than by request.query: yarl turns bytes that are not UTF-8 into U+FFFD, so a name
        # sent in Latin-1 was stored as '\ufffd' without a word to the client. surrogateescape keeps those bytes
        # (as U+DC80..U+DCFF) for parse_request to refuse, naming the parameter. Splitting and '+' are yarl's.
        pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True, errors="surrogateescape")
        # Empty values count as absent (docs/rcs.md), so only the non-empty ones can conflict; and unknown
        # parameters are ignored, repeated or not (a vendor extension may well be a list).
        given: dict[str, list[str]] = {}
        for key, value in pairs:
            values = given.setdefault(key, [])
            if value != "":
                values.append(value)
        repeated = sorted(key for key in PARAMETER_NAMES if len(given.get(key, ())) > 1)
        if repeated:
            return problem(
                400,
                "Invalid configuration request",
                f"parameter {repeated[0]!r} is given more than once",
                parameter=repeated[0],
            )
        try:
            config_request = parse_request({key: values[0] if values else "" for key, values in given.items()})
        except InvalidParameter as error:
            return problem(400, "Invalid configuration request", str(error), parameter=error.parameter)
        if config_request.bare and request.body_exists:
            # The body is never read: a client putting its parameters there (an HTML form's POST) would otherwise
            # be taken, silently, for the parameterless bare cellular request and answered 511 or given a session.
            return problem(
                400,
                "Invalid configuration request",
                "the parameters go in the query string (GET /?vers=... or POST /?vers=...); the body is not read",
            )

        try:
            outcome = provisioner.handle(
                config_request,
                clock.now(),
                otp_session=request.cookies.get(OTP_SESSION_COOKIE),
                cellular_session=request.cookies.get(CELLULAR_SESSION_COOKIE),
                enriched_msisdn=request.headers.get(ENRICHMENT_HEADER),
            )
        except SmsNotSent as error:
            # The SMSC's refusal (its store full) is a condition of the run, not a defect: one line, no traceback.
            _LOG.warning("RCS: %s: %s: %s", error, type(error.__cause__).__name__, error.__cause__)
            answer = problem(503, "Service Unavailable", f"{error}; ask again later")
            answer.headers["Retry-After"] = str(SMS_RETRY_AFTER)
            return answer
        if isinstance(outcome, ConfigurationIssued | VersionAnswered):
            return web.Response(status=200, body=build_document(outcome), content_type=CONTENT_TYPE, charset="utf-8")
        if isinstance(outcome, OtpSent | CellularSessionOpened):
            response = web.Response(status=200, body=b"")
            name = OTP_SESSION_COOKIE if isinstance(outcome, OtpSent) else CELLULAR_SESSION_COOKIE
            response.set_cookie(name, outcome.session, httponly=True)
            return response
        assert isinstance(outcome, Refused)
        answer = problem(outcome.status, outcome.title, outcome.detail)
        if outcome.retry_after is not None:
            answer.headers["Retry-After"] = str(outcome.retry_after)
        return answer

    # _last_resort first: outermost, so it also sees whatever problem_middleware lets through.
    app = web.Application(client_max_size=16 * 1024, middlewares=[_last_resort, problem_middleware(_ROUTES)])
    # No HEAD (aiohttp adds it beside every GET unless told not to): HEAD is a safe method (RFC 9110 9.2.1, 9.3.2),
    # but answering one here would run the provisioner, which sends an OTP SMS or revokes the client's token and
    # issues one nobody receives. A side-effect-free HEAD would have to answer as GET would without deciding
    # anything, which the provisioner cannot do, and no RCS client sends HEAD: 405 with Allow: GET, POST.
    app.router.add_get("/", configure, allow_head=False)
    app.router.add_post("/", configure)
    return app
