"""The carrier's CAMARA SIM Swap API, asked before a binding is trusted for a high-risk action.

Theory of operation. A binding proves that whoever held the number's SIM *when it registered* could read an SMS.
A SIM swap since then (the fraud of talking a shop into moving a victim's number to the attacker's SIM) breaks
that link while the binding still looks healthy. So before a relying server lets a bound device do something that
matters, the identity core asks the carrier that carried the registration:

    POST {sim_swap_api}/check   Authorization: Bearer <sim_swap_token>   x-correlator: <uuid>
    {"phoneNumber": "+E164", "maxAge": <hours>}            ->  200 {"swapped": true|false}

That is CAMARA SIM Swap (``sim-swap`` v1/v2, ``POST /check``), called with a two-legged (client-credentials) token,
so the body names the subject. ``maxAge`` is CAMARA's: whole hours, 1 to 2400, default 240. Failures come back as
CAMARA ``ErrorInfo`` (``{"status", "code", "message"}``).

The module is split the aiosmtpd way: :func:`check_request` and :func:`read_check_answer` are pure (what to send,
what an answer means) and :class:`SimSwapClient` only moves bytes over one :class:`aiohttp.ClientSession` kept for
the service's lifetime. Every way the carrier can fail to give a usable answer is one :class:`SimSwapUnavailable`
subclass whose ``outcome`` is the metric label and the ``cause`` of the HTTP problem; the caller fails closed on
all of them (the binding is not trusted, and not revoked either: an outage is not evidence of fraud).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import ClassVar, Final

import aiohttp
from yarl import URL

__all__ = [
    "CAMARA_API_PATH",
    "DEFAULT_MAX_AGE_HOURS",
    "DEFAULT_TIMEOUT",
    "MAX_AGE_RANGE",
    "CarrierRefused",
    "MalformedAnswer",
    "NotConfigured",
    "SimSwapApi",
    "SimSwapClient",
    "SimSwapTimeout",
    "SimSwapUnavailable",
    "Unreachable",
    "api_url",
    "check_request",
    "read_check_answer",
]

#: CAMARA SIM Swap ``maxAge`` default and range (hours), as the API specification defines them.
DEFAULT_MAX_AGE_HOURS: Final = 240
MAX_AGE_RANGE: Final = range(1, 2401)
#: Seconds one check may take in all (connect, send, answer) before it counts as ``timeout``.
DEFAULT_TIMEOUT: Final = 5.0
#: CAMARA's API base below the apiRoot (``servers: url: "{apiRoot}/sim-swap/v1"``).
CAMARA_API_PATH: Final = "/sim-swap/v1"
#: A /check answer is a few dozen bytes; anything past this is not one.
MAX_ANSWER_BYTES: Final = 64 * 1024


# -- errors: every way of not getting an answer, each with its metric label ------------------------------------


class SimSwapUnavailable(Exception):
    """No usable answer from the carrier's SIM Swap API. ``outcome`` labels metrics and the problem's ``cause``."""

    outcome: ClassVar[str] = "unavailable"

    def __init__(self, carrier: str, detail: str) -> None:
        super().__init__(f"{carrier}: {detail}")
        self.carrier = carrier
        self.detail = detail


class NotConfigured(SimSwapUnavailable):
    """The carrier has no ``sim_swap_api`` in the configuration (or is no longer configured at all)."""

    outcome = "not_configured"


class Unreachable(SimSwapUnavailable):
    """Connection refused or reset, DNS failure, TLS failure: nothing came back."""

    outcome = "unreachable"


class SimSwapTimeout(SimSwapUnavailable):
    """No whole answer within ``sim_swap_timeout`` seconds."""

    outcome = "timeout"


class CarrierRefused(SimSwapUnavailable):
    """The carrier answered with an error status (CAMARA ``ErrorInfo`` when it is well behaved).

    4xx means the carrier would not answer *us* (bad token, scope, number unknown to it, ``maxAge`` beyond its
    monitored period); 5xx means it could not. Either way there is no verdict on the SIM.
    """

    outcome = "carrier_error"

    def __init__(self, carrier: str, status: int, code: str | None, message: str | None) -> None:
        super().__init__(carrier, f"HTTP {status} {code or '(no CAMARA code)'}: {message or ''}".rstrip(": "))
        self.status = status
        self.code = code


class MalformedAnswer(SimSwapUnavailable):
    """A 2xx that is not ``{"swapped": <boolean>}`` as JSON, or a status a /check never answers (1xx, 3xx)."""

    outcome = "malformed_answer"


# -- configuration ---------------------------------------------------------------------------------------------


def api_url(base: str) -> URL:
    """The SIM Swap API base from a configured URL; ValueError if it is not an absolute http(s) URL.

    A URL without a path is the carrier's CAMARA apiRoot, and gets CAMARA's ``/sim-swap/v1``; a URL with a path is
    taken as the API base as the carrier publishes it (operators and aggregators prefix their own segments).
    """
    url = URL(base)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("expected an absolute http:// or https:// URL")
    if url.query_string or url.fragment or url.user is not None:
        raise ValueError("no query, fragment or credentials in the URL (use sim_swap_token)")
    if url.path in ("", "/"):
        return url.with_path(CAMARA_API_PATH)
    return url.with_path(url.path.rstrip("/"))


@dataclass(frozen=True, slots=True)
class SimSwapApi:
    """One carrier's SIM Swap API: where, with which token, how far back to look and how long to wait."""

    base_url: URL
    max_age: int = DEFAULT_MAX_AGE_HOURS
    token: str | None = None
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if self.max_age not in MAX_AGE_RANGE:
            raise ValueError(f"max_age must be whole hours from 1 to 2400, not {self.max_age!r}")
        if not self.timeout > 0:
            raise ValueError("timeout must be positive")

    @property
    def check_url(self) -> URL:
        """``POST`` target of the check."""
        return self.base_url.with_path(self.base_url.path.rstrip("/") + "/check")


# -- the pure part: what to send, what an answer means ----------------------------------------------------------


def check_request(e164: str, max_age: int) -> dict[str, object]:
    """The /check body with a two-legged token: the subject named by ``phoneNumber``."""
    return {"phoneNumber": e164, "maxAge": max_age}


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _json(raw: bytes) -> object:
    return json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)


def read_check_answer(carrier: str, status: int, content_type: str, raw: bytes) -> bool:
    """Whether the SIM was swapped, from one HTTP answer to /check; raises a :class:`SimSwapUnavailable` otherwise.

    Never raises anything else, whatever the bytes.
    """
    if status >= 400:
        code: str | None = None
        message: str | None = None
        try:
            body = _json(raw)
        except (ValueError, RecursionError):
            body = None
        if isinstance(body, dict):
            code = body["code"] if isinstance(body.get("code"), str) else None
            message = body["message"][:200] if isinstance(body.get("message"), str) else None
        raise CarrierRefused(carrier, status, code, message)
    if status != 200:
        raise MalformedAnswer(carrier, f"HTTP {status} is not an answer to /check")
    if content_type != "application/json" and not content_type.endswith("+json"):
        raise MalformedAnswer(carrier, f"content type {content_type!r} is not JSON")
    try:
        body = _json(raw)
    except (ValueError, RecursionError) as err:
        raise MalformedAnswer(carrier, f"not JSON: {err}") from None
    if not isinstance(body, dict) or not isinstance(body.get("swapped"), bool):
        raise MalformedAnswer(carrier, 'expected {"swapped": <boolean>}')
    return bool(body["swapped"])


# -- the I/O part ------------------------------------------------------------------------------------------------


async def _read_body(content: aiohttp.StreamReader, limit: int) -> bytes | None:
    """The whole body up to its end, or None as soon as it proves longer than ``limit`` octets.

    Not one ``content.read(limit + 1)``: that returns what has arrived so far, not the body, so an answer split
    across TCP segments (chunked encoding, a proxy flushing early) was judged by its first piece -- a correct
    ``{"swapped": false}`` refused as malformed, and a huge non-JSON body accepted for a valid first chunk.
    """
    chunks: list[bytes] = []
    size = 0
    # read(n) returns b"" only at the end of the body; asking for at most limit + 1 - size keeps the running
    # total, and so the memory held, within one octet of the limit however the carrier cuts its answer.
    while chunk := await content.read(limit + 1 - size):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)



class SimSwapClient:
    """Asks carriers' SIM Swap APIs over one HTTP connection pool.

    The :class:`aiohttp.ClientSession` is made on first use (inside the running loop, as aiohttp requires) and
    lives until :meth:`close`, which the service's shutdown calls.
    """

    def __init__(self, apis: Mapping[str, SimSwapApi]) -> None:
        self.apis = dict(apis)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # No cookies (a carrier's Set-Cookie must not follow us to the next request) and no proxy from the
            # environment: the carrier URL in the configuration is the whole story.
            self._session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False)
        return self._session

    async def swapped(self, carrier: str, e164: str) -> bool:
        """Whether ``e164``'s SIM changed within the carrier's ``max_age`` hours; :class:`SimSwapUnavailable` if
        the carrier cannot say."""
        api = self.apis.get(carrier)
        if api is None:
            raise NotConfigured(carrier, "no sim_swap_api configured for this carrier")
        headers = {"Accept": "application/json", "x-correlator": str(uuid.uuid4())}
        if api.token is not None:
            headers["Authorization"] = f"Bearer {api.token}"
        try:
            async with self._client().post(
                api.check_url,
                json=check_request(e164, api.max_age),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=api.timeout),
                allow_redirects=False,
            ) as response:
                declared = response.content_length
                raw = None if declared is not None and declared > MAX_ANSWER_BYTES else (
                    await _read_body(response.content, MAX_ANSWER_BYTES))
                if raw is None:
                    raise MalformedAnswer(carrier, f"answer longer than {MAX_ANSWER_BYTES} bytes")
                return read_check_answer(carrier, response.status, response.content_type, raw)
        except TimeoutError:
            raise SimSwapTimeout(carrier, f"no answer within {api.timeout} s") from None
        except (aiohttp.ClientError, OSError) as err:
            raise Unreachable(carrier, f"{type(err).__name__}: {err}") from None

    async def close(self) -> None:
        """Close the connection pool. Idempotent; a later check opens a new one."""
        if self._session is not None:
            await self._session.close()
            self._session = None
