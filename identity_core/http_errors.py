"""How the identity core's HTTP server logs a request that is not HTTP at all.

Garbage on the port, a bad request line, a header over the parser's limit: aiohttp's parser refuses these before
any application or middleware runs, answers a plain-text 400 and closes the connection, then logs the refusal as
an ERROR with the parser's traceback (or, for a first request with a bad method, at DEBUG with one). It is the
peer's mistake, not the service's: :func:`app_runner` gives aiohttp a logger that writes it as one line.

So is a body its payload parser refused (not the gzip or deflate its ``Content-Encoding`` names, broken chunked
framing): the API answers it 400 when it reads the body, but aiohttp meets the error again as it drains the rest
of the body after the answer (or first, if the handler never read it) and logs that as an "Unhandled exception"
whose cause is the parser's error. It gets the same one line.

carrier_sim has the same for its own doors; the identity core reaches carriers only over the wire and imports
none of it (an import-linter contract), hence this copy of the idea.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger
from aiohttp.web_protocol import RequestPayloadError

__all__ = ["SHUTDOWN_GRACE", "ProtocolErrorLog", "app_runner"]

#: How much of the parser's description of a malformed request a log line quotes.
_DETAIL_LIMIT: Final = 200



#: Seconds a stopping server waits for requests in progress (aiohttp's default is 60): a request whose body never
#: arrives would otherwise hold every stop -- a run's end, SIGTERM before a CI job's SIGKILL -- for a minute.
SHUTDOWN_GRACE: Final = 2.0

class ProtocolErrorLog(logging.LoggerAdapter[logging.Logger]):
    """aiohttp's server logger, writing a request its parser refused as one line at WARNING at most (DEBUG stays
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
        del kwargs["exc_info"]
        context = str(msg) % args if args else str(msg)  # "Error handling request from <peer>"
        # The parser's message spans lines and quotes the offending bytes; one bounded line is enough.
        detail = " ".join(str(exc.message).split()).removesuffix(" ^")[:_DETAIL_LIMIT]  # "^" marked a column
        super().log(min(level, logging.WARNING), "%s: malformed HTTP refused with %d: %s: %s",
                    context, exc.code, type(exc).__name__, detail, **kwargs)


def app_runner(app: web.Application, **kwargs: Any) -> web.AppRunner:
    """An ``AppRunner`` for ``app`` whose protocol errors are logged by :class:`ProtocolErrorLog`; ``kwargs`` go
    to ``AppRunner`` (``access_log=None``, for instance). Its cleanup waits at most :data:`SHUTDOWN_GRACE` seconds
    for requests in progress unless ``shutdown_timeout`` says otherwise."""
    kwargs.setdefault("shutdown_timeout", SHUTDOWN_GRACE)
    return web.AppRunner(app, logger=ProtocolErrorLog(server_logger), **kwargs)
