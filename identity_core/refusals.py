"""Why the identity core said no: one vocabulary of refusal reasons shared by every module of the service.

Every check in the identity core (the REG-REQ parser, the proof verifier, the velocity limiter, the store, the HTTP
and SMPP edges) returns a :class:`Refusal` instead of raising, so that bad input from the network is an ordinary
value that is logged, counted and answered, never an exception that unwinds a connection.

A refusal has two audiences:

* the operator, who gets everything: :attr:`Refusal.reason` *and* :attr:`Refusal.detail` (which may name the
  number, the carrier, the key id, the byte that was wrong);
* the peer (a phone, a relying server), who gets only :attr:`RefusalReason.code` and
  :attr:`RefusalReason.description` via :meth:`Refusal.public`. The detail never leaves the service because it
  could tell an attacker more than the reason does (for instance which numbers are registered).

The reasons are a table (code, HTTP status, description) rather than branches in the edges, so that the HTTP
problem+json, the log line and the metric label all agree.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Final

__all__ = ["Refusal", "RefusalReason"]


class RefusalReason(enum.Enum):
    """A reason for refusing a request, with the stable code used in logs, metrics and answers.

    The value of each member is its code (a short snake_case string that is safe as a Prometheus label and stable
    across releases); the HTTP status and the human description live in a table beside the enum.
    """

    #: The bytes are not a message of the protocol at all (grammar, encoding, length, missing or repeated key).
    MALFORMED = "malformed"
    #: The message is well framed but speaks a protocol version this service does not implement.
    UNKNOWN_VERSION = "unknown_version"
    #: The message came from an address that may not send it (not a +E.164 number, or not the carrier's network).
    WRONG_SENDER = "wrong_sender"
    #: A single-use proof was presented a second time.
    REPLAYED = "replayed"
    #: A proof or certificate whose validity has ended.
    EXPIRED = "expired"
    #: A proof or certificate that this service did not issue for these values (bad MAC, other number, other
    #: token, unknown key, garbage).
    FORGED = "forged"
    #: A certificate presented before its ``nbf`` (a relying server's clock, or a forged time).
    NOT_YET_VALID = "not_yet_valid"
    #: A velocity limit (per number, per prefix or per carrier) is exhausted for now.
    RATE_LIMITED = "rate_limited"
    #: The number's prefix pumped traffic and is blocked for a while.
    PREFIX_BLOCKED = "prefix_blocked"
    #: The message arrived over a carrier link (SMPP bind, HTTP client) the service does not know.
    UNKNOWN_CARRIER = "unknown_carrier"
    #: The phone number is not a valid E.164 number (length, country code, characters).
    INVALID_NUMBER = "invalid_number"
    #: The service cannot decide right now (storage unavailable, shutting down); the peer may retry later.
    UNAVAILABLE = "unavailable"

    @property
    def code(self) -> str:
        """The stable machine-readable code (also the enum value)."""
        return self.value

    @property
    def description(self) -> str:
        """One short sentence a person reading a log line or an error answer understands."""
        return _DESCRIPTIONS[self]

    @property
    def http_status(self) -> int:
        """The HTTP status an HTTP edge answers this refusal with (RFC 9110 semantics)."""
        return _HTTP_STATUS[self]


# One row per reason. Kept as dicts beside the enum (rather than tuple values) so that the enum value stays the
# plain code string, which is what logs and metric labels want.
_DESCRIPTIONS: Final[dict[RefusalReason, str]] = {
    RefusalReason.MALFORMED: "the request is not well formed",
    RefusalReason.UNKNOWN_VERSION: "the protocol version is not supported",
    RefusalReason.WRONG_SENDER: "the sender may not send this request",
    RefusalReason.REPLAYED: "the proof has already been used",
    RefusalReason.EXPIRED: "the proof or certificate has expired",
    RefusalReason.FORGED: "the proof or certificate is not valid for these values",
    RefusalReason.NOT_YET_VALID: "the certificate is not valid yet",
    RefusalReason.RATE_LIMITED: "too many requests; try again later",
    RefusalReason.PREFIX_BLOCKED: "requests for this number range are temporarily blocked",
    RefusalReason.UNKNOWN_CARRIER: "the carrier is not known to this service",
    RefusalReason.INVALID_NUMBER: "the phone number is not a valid E.164 number",
    RefusalReason.UNAVAILABLE: "the service is temporarily unavailable; try again later",
}

# 401 for proof problems: the caller failed to authenticate the binding. 429 for both velocity reasons so that
# clients back off the same way. 403 for who-may-send problems: the request is understood but not allowed.
_HTTP_STATUS: Final[dict[RefusalReason, int]] = {
    RefusalReason.MALFORMED: 400,
    RefusalReason.UNKNOWN_VERSION: 400,
    RefusalReason.WRONG_SENDER: 403,
    RefusalReason.REPLAYED: 401,
    RefusalReason.EXPIRED: 401,
    RefusalReason.FORGED: 401,
    RefusalReason.NOT_YET_VALID: 401,
    RefusalReason.RATE_LIMITED: 429,
    RefusalReason.PREFIX_BLOCKED: 429,
    RefusalReason.UNKNOWN_CARRIER: 403,
    RefusalReason.INVALID_NUMBER: 400,
    RefusalReason.UNAVAILABLE: 503,
}

# Fail at import, not at the first refusal in production, if a reason is added without its table rows.
if set(_DESCRIPTIONS) != set(RefusalReason) or set(_HTTP_STATUS) != set(RefusalReason):  # pragma: no cover
    raise RuntimeError("every RefusalReason needs a description and an HTTP status")


@dataclass(frozen=True, slots=True)
class Refusal:
    """A decision to refuse, as a value: the reason (public) and a detail for the operator's log (private).

    ``detail`` is free text for people and may contain personal data (a number, a carrier name); never send it to
    the peer — use :meth:`public` for anything that leaves the service.
    """

    reason: RefusalReason
    detail: str = ""
    #: Seconds after which the same request may succeed (velocity refusals), for an HTTP ``Retry-After``.
    retry_after: float | None = None

    def public(self) -> dict[str, str]:
        """What may be told to the peer: the code and the generic description, never the detail.

        Two refusals with the same reason always produce the same answer, whatever their detail, which is what
        keeps answers for registered and unregistered numbers identical.
        """
        return {"code": self.reason.code, "description": self.reason.description}

    def retry_after_header(self) -> str | None:
        """:attr:`retry_after` as an HTTP ``Retry-After`` value (whole seconds, rounded up), if there is one."""
        if self.retry_after is None or not math.isfinite(self.retry_after):
            return None
        return str(max(1, math.ceil(self.retry_after)))

    def __str__(self) -> str:
        return f"{self.reason.code}: {self.detail}" if self.detail else self.reason.code
