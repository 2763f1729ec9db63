"""How every HTTP door of the emulator answers and logs what it refuses.

Two kinds of bad request reach a door, and aiohttp handles them at two different levels:

- a well-formed request for something the door does not serve (an unknown path, a known path with the wrong
  method, a body too large) raises an ``HTTPException`` inside the application, where
  :func:`problem_middleware` turns it into problem+json (RFC 9457) -- a 405 with ``Allow``, as RFC 9110 15.5.6
  requires;
- a request that is not HTTP at all (a bad request line, a control character in a header, a line over the
  parser's limit) fails in aiohttp's parser, before any application or middleware runs. aiohttp answers it with a
  plain-text 400 itself and has no hook to change that body (aio-libs/aiohttp#3287), but it logs through the
  ``logger`` its runner is given: :func:`app_runner` gives one that writes such a refusal as one WARNING line
  instead of an ERROR with the parser's traceback. It is the peer's mistake, not the emulator's.

Between the two, a body aiohttp's payload parser refuses (not the gzip or deflate its ``Content-Encoding`` names,
broken chunked framing) raises ``RequestPayloadError``, no ``HTTPException``, in the handler that reads it:
:func:`problem_middleware` answers it 400. aiohttp meets it again as it drains the rest of the body after the
answer (or first, if the handler never read it) and logs an "Unhandled exception" whose cause is the parser's
error: :class:`ProtocolErrorLog` writes that as the same one line.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger
from aiohttp.typedefs import Handler, Middleware
from aiohttp.web_protocol import RequestPayloadError

from carrier_sim.net.problem import problem

__all__ = ["SHUTDOWN_GRACE", "ProtocolErrorLog", "app_runner", "problem_middleware"]

#: How much of the parser's description of a malformed request a log line quotes.
_DETAIL_LIMIT: Final = 200


def _payload_problem(err: RequestPayloadError) -> str:
    """What was wrong with a body aiohttp's payload parser refused, on one line."""
    cause = err.__cause__
    return " ".join(cause.message.split()) if isinstance(cause, HttpProcessingError) else type(err).__name__


def problem_middleware(routes: str) -> Middleware:
    """A middleware answering aiohttp's own refusals as problem+json; ``routes`` (``"GET /, POST /"``) is what
    the door serves, for the detail of a 404."""

    @web.middleware
    async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPMethodNotAllowed as err:
            allowed = ", ".join(sorted(err.allowed_methods))
            response = problem(405, "Method not allowed", f"{request.path} takes {allowed}, not {request.method}")
            # RFC 9110 15.5.6: a 405 "MUST generate an Allow header field".
            response.headers["Allow"] = allowed
            return response
        except web.HTTPNotFound:
            return problem(404, "Not found", f"no resource {request.path}; this server serves {routes}")
        except web.HTTPException as err:
            if err.status < 400:
                raise
            return problem(err.status, err.reason, err.text or err.reason)
        except RequestPayloadError as err:
            # The peer's malformed body, met by whichever handler read it: a 400, not aiohttp's 500 text/plain.
            return problem(400, "Malformed body", f"the body could not be read: {_payload_problem(err)}")

    return problems



#: Seconds a stopping server waits for requests in progress (aiohttp's default is 60): a request whose body never
#: arrives would otherwise hold every stop -- a run's end, SIGTERM before a CI job's SIGKILL -- for a minute.
SHUTDOWN_GRACE: Final = 2.0

class ProtocolErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, with a request its parser refused written as one line at WARNING (DEBUG stays
    DEBUG), without a traceback; so is a body its payload parser refused. Every other record passes through
    unchanged."""

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info")
        if isinstance(exc, RequestPayloadError) and isinstance(exc.__cause__, HttpProcessingError):
            exc = exc.__cause__  # aiohttp wraps the parser's error for the payload's readers; the cause says why
            msg, args = "Unreadable request body", ()  # aiohttp's "Unhandled exception": no, the peer's mistake
        if not isinstance(exc, HttpProcessingError):
            super().log(level, msg, *args, **kwargs)
            return
        kwargs.pop("exc_info")
        context = str(msg) % args if args else str(msg)
        # The parser's message spans lines and quotes the offending bytes; one line, bounded, is enough.
        detail = " ".join(str(exc.message).split()).removesuffix(" ^")[:_DETAIL_LIMIT]  # "^" marked a column
        super().log(min(level, logging.WARNING), "%s: malformed HTTP refused with %d: %s: %s",
                    context, exc.code, type(exc).__name__, detail, **kwargs)


def app_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """An ``AppRunner`` for a door's ``app`` whose protocol errors are logged by :class:`ProtocolErrorLog`;
    ``kwargs`` go to ``AppRunner`` (``access_log=None``, for instance). Its cleanup waits at most
    :data:`SHUTDOWN_GRACE` seconds for requests in progress unless ``shutdown_timeout`` says otherwise."""
    kwargs.setdefault("shutdown_timeout", SHUTDOWN_GRACE)
    return web.AppRunner(app, logger=ProtocolErrorLog(server_logger), **kwargs)
