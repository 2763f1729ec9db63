"""aiohttp adapter for an emulated carrier's CAMARA network APIs.

Thin on purpose: it reads the ``Authorization`` header and body bytes, asks the pure
:func:`carrier_sim.camara.operations.reply` for the status, body and header fields and writes them back.
Everything aiohttp itself would answer in its own format (unknown path, wrong method, oversized body) is translated
once, in a middleware, into a CAMARA ``ErrorInfo`` body, so a client only ever sees CAMARA errors. The same
middleware is the last resort for a defect outside :func:`~carrier_sim.camara.operations.reply`'s own catch-all (the
fault injector, this adapter): a logged 500 ``INTERNAL``, never aiohttp's plain-text 500. ``x-correlator`` is
validated and echoed on every response, as CAMARA Commonalities requires, but for the 400 refusing the correlator
itself, which has no valid value to echo. GET operations are not answered to HEAD (405): HEAD would have to consume
a single-use device token and return nothing, or differ from the GET it stands for.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from carrier_sim.camara.access import Grant
from carrier_sim.camara.errors import (
    CamaraError,
    Internal,
    InvalidArgument,
    MethodNotAllowed,
    NotFound,
    RepeatedAuthorization,
    bounded_message,
)
from carrier_sim.camara.faults import FaultInjector, Faults
from carrier_sim.camara.operations import ROUTES, Route, reply, valid_correlator
from carrier_sim.camara.registry import SubscriberRecords

__all__ = ["Clock", "camara_app"]

Clock = Callable[[], datetime]
"""Returns the current time, timezone-aware (a scenario passes its virtual clock)."""

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

CORRELATOR = "x-correlator"

_LOG = logging.getLogger(__name__)

# aiohttp's own refusals, in CAMARA's vocabulary.
_HTTP_CODES: Mapping[int, str] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "INVALID_ARGUMENT",
    415: "UNSUPPORTED_MEDIA_TYPE",
}


def _json(
    status: int, body: Mapping[str, object], correlator: str | None, headers: Mapping[str, str] | None = None
) -> web.Response:
    fields = dict(headers or {})
    # "is not None": the XCorrelator pattern ({0,256}) allows an empty value, which is echoed as sent like any other.
    if correlator is not None:
        fields[CORRELATOR] = correlator
    return web.json_response(dict(body), status=status, headers=fields)


def _error(error: CamaraError, correlator: str | None) -> web.Response:
    return _json(error.status, error.body(), correlator, error.headers())


@web.middleware
async def _camara_errors(request: web.Request, handler: _Handler) -> web.StreamResponse:
    # Neither field may be repeated (RFC 9110 §5.3: only a field defined as a comma-separated list may): Authorization
    # is a singleton (§11.6.2), and the XCorrelator pattern has no comma, so even the recombined list is invalid.
    # Reading just the first would answer a request whose other value was never checked, or authorise one caller of
    # two.
    correlators = request.headers.getall(CORRELATOR, [])
    if len(correlators) > 1:
        # Not echoed: there is no one value to echo.
        return _error(InvalidArgument("x-correlator is sent more than once; send exactly one."), None)
    correlator = correlators[0] if correlators else None
    if correlator is not None and not valid_correlator(correlator):
        return _error(InvalidArgument("x-correlator does not match ^[a-zA-Z0-9-_:;.\\/<>{}]{0,256}$."), None)
    if len(request.headers.getall("Authorization", [])) > 1:
        return _error(RepeatedAuthorization(), correlator)
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return _error(NotFound(), correlator)
    except web.HTTPMethodNotAllowed as exc:
        response = _error(MethodNotAllowed(), correlator)
        # RFC 9110 15.5.6: a 405 "MUST generate an Allow header field".
        response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "INTERNAL" if exc.status >= 500 else "INVALID_ARGUMENT")
        return _json(exc.status, {"status": exc.status, "code": code, "message": bounded_message(exc.reason)},
                     correlator)
    except web.RequestPayloadError as exc:
        # A body aiohttp's payload parser refused (not the gzip or deflate its Content-Encoding names) raises this
        # from request.read(): the client's malformed body, not a defect for the catch-all below to log as one.
        cause = exc.__cause__
        why = " ".join(cause.message.split()) if isinstance(cause, HttpProcessingError) else type(exc).__name__
        return _error(InvalidArgument(f"Request body could not be read: {why}."), correlator)
    except Exception as exc:  # a defect must still answer in CAMARA's shape, and the server must keep serving
        # Logged here, once, with its traceback: aiohttp sees an answer and logs nothing of its own.
        _LOG.exception("CAMARA %s %s: unexpected error answering the request", request.method, request.path)
        return _error(Internal(f"Unexpected server error: {type(exc).__name__}."), correlator)


def camara_app(
    records: SubscriberRecords,
    clock: Clock,
    tokens: Mapping[str, Grant] | None = None,
    *,
    monitored_period_days: int | None = None,
    token_factory: Callable[[], str] | None = None,
    faults: Faults | None = None,
) -> web.Application:
    """An aiohttp application serving the CAMARA APIs of one carrier whose subscriptions are ``records``.

    ``tokens`` maps configured bearer tokens to what they grant; device tokens issued by the emulator's helper
    endpoint live in ``records``. ``monitored_period_days`` limits how far back SIM Swap may look (None: no
    limit). ``token_factory`` makes new device-token strings (default: 32 random URL-safe bytes). ``faults``
    refuses a share of CAMARA requests with 429/503 (the emulator's own helper endpoint is never refused).
    """
    configured: Mapping[str, Grant] = dict(tokens or {})
    injector = FaultInjector(faults) if faults is not None and faults.active else None
    new_token = token_factory or (lambda: secrets.token_urlsafe(32))

    def endpoint(route: Route, version: str) -> _Handler:
        async def handle(request: web.Request) -> web.StreamResponse:
            raw = await request.read() if route.method != "GET" else b""
            refused = (injector.refuse(request.path, raw, request.headers.get("Authorization", ""))
                       if injector is not None and route.authenticated else None)
            if refused is not None:
                return _error(refused, request.headers.get(CORRELATOR))
            answered = reply(
                route,
                records=records,
                tokens=configured,
                authorization=request.headers.get("Authorization"),
                raw_body=raw,
                now=clock(),
                new_token=new_token,
                monitored_period_days=monitored_period_days,
                content_type=request.headers.get("Content-Type"),
                version=version,
            )
            return _json(answered.status, answered.body, request.headers.get(CORRELATOR), answered.headers)

        return handle

    app = web.Application(middlewares=[_camara_errors])
    for route in ROUTES:
        for version in route.versions:
            app.router.add_route(route.method, route.url(version), endpoint(route, version))
    return app
