"""CAMARA error responses as exception types.

Every CAMARA API answers a failure with the same body, ``{"status", "code", "message"}`` (the ``ErrorInfo``
schema of CAMARA Commonalities). Each class below carries its HTTP status and ``code`` the way an h2 exception
carries its error code; the HTTP adapter turns any of them into a response in one place.

The codes are the ones the specifications define: the generic ones from ``CAMARA_common.yaml`` (400
``INVALID_ARGUMENT``, 401 ``UNAUTHENTICATED``, 403 ``PERMISSION_DENIED``, 404 ``NOT_FOUND`` /
``IDENTIFIER_NOT_FOUND``, 422 ``*_IDENTIFIER``, …) and the API-specific ones, such as Number Verification's
403 ``NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import ClassVar

__all__ = [
    "BEARER_REALM",
    "MESSAGE_MAX_LENGTH",
    "CamaraError",
    "IdentifierNotFound",
    "Internal",
    "InvalidArgument",
    "InvalidTokenContext",
    "MethodNotAllowed",
    "MissingIdentifier",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "RepeatedAuthorization",
    "ServiceNotApplicable",
    "TooManyRequests",
    "Unauthenticated",
    "Unavailable",
    "UnidentifiablePhoneNumber",
    "UnnecessaryIdentifier",
    "UnsupportedIdentifier",
    "UnsupportedMediaType",
    "UserNotAuthenticatedByMobileNetwork",
    "bounded_message",
]

# NumberVerification 2.1.1 (Commonalities 0.9) ``ErrorInfo.message: maxLength 512``; applied to every API, since a
# message that quotes the request (unknown property names, a Content-Type) would otherwise grow with it.
MESSAGE_MAX_LENGTH = 512


def bounded_message(message: str) -> str:
    """``message`` made safe to send as ``ErrorInfo.message``: valid Unicode, at most 512 characters.

    A lone surrogate reaches a message from the client: a JSON key ``"\\ud800"`` (Python's json accepts the escape)
    or header bytes aiohttp decoded with ``surrogateescape``. Sent as is, the body holds a string no UTF-8 encoder
    or strict JSON decoder accepts, so each is written as its ``\\uXXXX`` escape text instead.
    """
    text = message.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > MESSAGE_MAX_LENGTH:
        text = text[: MESSAGE_MAX_LENGTH - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return text


class CamaraError(Exception):
    """A failure with its CAMARA wire meaning: HTTP ``status``, ``code`` and a human ``message``."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "INTERNAL"
    default_message: ClassVar[str] = "Unknown server error. Typically a server bug."

    def __init__(self, message: str | None = None) -> None:
        self.message = bounded_message(message if message is not None else self.default_message)
        super().__init__(self.message)

    def body(self) -> dict[str, object]:
        """The ``ErrorInfo`` JSON object for this error."""
        return {"status": self.status, "code": self.code, "message": self.message}

    def headers(self) -> dict[str, str]:
        """Response header fields this error's status requires beside the body (none for most)."""
        return {}


# The realm of every Bearer challenge (RFC 6750 §3): one protection space, the carrier's CAMARA door.
BEARER_REALM = "carrier-sim"


def _bearer_challenge(error: str | None = None, scopes: Iterable[str] = ()) -> str:
    """An RFC 6750 §3 ``WWW-Authenticate`` value. Every value put in it is the emulator's own constant (error codes,
    scope names), never client input, so none needs escaping inside the quoted strings."""
    params = [f'realm="{BEARER_REALM}"']
    if error is not None:
        params.append(f'error="{error}"')
    scope = " ".join(scopes)
    if scope:
        params.append(f'scope="{scope}"')
    return "Bearer " + ", ".join(params)


class InvalidArgument(CamaraError):
    """400: the request body, a header or a parameter is malformed."""

    status, code = 400, "INVALID_ARGUMENT"
    default_message = "Client specified an invalid argument, request body or query param."


class RepeatedAuthorization(InvalidArgument):
    """400: the request has more than one ``Authorization`` header field.

    400, not 401: the request is malformed, not unauthenticated. Authorization is a singleton field (RFC 9110
    §11.6.2), which §5.3 forbids a sender to repeat; RFC 6750 §3.1 gives a request that "repeats the same parameter,
    uses more than one method for including an access token, or is otherwise malformed" ``invalid_request`` and a
    400. A 401 would tell the client to get a token, when it sent two and resending them fails the same way. Using
    either would let a gateway and the door authorise different callers.
    """

    default_message = "Request has more than one Authorization header field; send exactly one."

    def headers(self) -> dict[str, str]:
        """RFC 6750 §3.1's ``invalid_request`` challenge, so the client knows its credentials were the fault."""
        return {"WWW-Authenticate": _bearer_challenge("invalid_request")}


class OutOfRange(CamaraError):
    """400: a well-formed value outside what the service can answer (e.g. ``maxAge`` beyond the monitored period)."""

    status, code = 400, "OUT_OF_RANGE"
    default_message = "Client specified an invalid range."


class Unauthenticated(CamaraError):
    """401: no, unknown, revoked or malformed bearer token.

    ``token_presented``: whether the request carried a Bearer token that was refused. It decides the challenge:
    RFC 9110 §15.5.2 says a 401 "MUST send a WWW-Authenticate header field ... containing at least one challenge",
    and RFC 6750 §3.1 says a request that "lacks any authentication information" (no header, or another scheme such
    as Basic) gets the bare ``Bearer realm=…`` with no error code, while a token that is "expired, revoked,
    malformed, or invalid for other reasons" gets ``error="invalid_token"``, which is what lets a client tell
    "get a new token" from "you never sent one".
    """

    status, code = 401, "UNAUTHENTICATED"
    default_message = "Request not authenticated due to missing, invalid, or expired credentials."

    def __init__(self, message: str | None = None, *, token_presented: bool = True) -> None:
        super().__init__(message)
        self.token_presented = token_presented

    def headers(self) -> dict[str, str]:
        """The RFC 6750 Bearer challenge (see the class docstring)."""
        return {"WWW-Authenticate": _bearer_challenge("invalid_token" if self.token_presented else None)}


class PermissionDenied(CamaraError):
    """403: the token lacks the scope the operation needs.

    ``scopes``: the scopes any one of which would have been enough. Given, the response carries RFC 6750 §3.1's
    ``error="insufficient_scope"`` challenge naming them (a SHOULD there), so a client can ask for the right scope.
    """

    status, code = 403, "PERMISSION_DENIED"
    default_message = "Client does not have sufficient permissions to perform this action."

    def __init__(self, message: str | None = None, *, scopes: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.scopes = tuple(scopes)

    def headers(self) -> dict[str, str]:
        """The ``insufficient_scope`` challenge, when the missing scope is known."""
        if not self.scopes:
            return {}
        return {"WWW-Authenticate": _bearer_challenge("insufficient_scope", self.scopes)}


class UserNotAuthenticatedByMobileNetwork(CamaraError):
    """403 (Number Verification): the token was not obtained by network-based authentication of the device."""

    status, code = 403, "NUMBER_VERIFICATION.USER_NOT_AUTHENTICATED_BY_MOBILE_NETWORK"
    default_message = "Client must authenticate via the mobile network to use this service."


class InvalidTokenContext(CamaraError):
    """403 (SIM Swap 1.0.0, Number Verification 1.0.0): the body's number does not match the token's, or the
    token is not associated with a phone number. Version 2 replaced it with the 422 ``*_IDENTIFIER`` codes."""

    status, code = 403, "INVALID_TOKEN_CONTEXT"
    default_message = "phoneNumber is not consistent with access token."


class NotFound(CamaraError):
    """404: no such resource (unknown path)."""

    status, code = 404, "NOT_FOUND"
    default_message = "The specified resource is not found."


class IdentifierNotFound(CamaraError):
    """404: the phone number is not a subscription of this carrier."""

    status, code = 404, "IDENTIFIER_NOT_FOUND"
    default_message = "Device identifier not found."


class MethodNotAllowed(CamaraError):
    """405: the path exists but not with this HTTP method."""

    status, code = 405, "METHOD_NOT_ALLOWED"
    default_message = "The requested method is not allowed/supported on the target resource."


class UnsupportedMediaType(CamaraError):
    """415: the request body is declared as something other than JSON."""

    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"
    default_message = "The server refuses to accept the request because the payload format is unsupported."


class ServiceNotApplicable(CamaraError):
    """422: the service does not apply to this subscription."""

    status, code = 422, "SERVICE_NOT_APPLICABLE"
    default_message = "The service is not available for the provided identifier."


class MissingIdentifier(CamaraError):
    """422: a two-legged token and no identifier in the body, so the subject is unknown."""

    status, code = 422, "MISSING_IDENTIFIER"
    default_message = "The device cannot be identified."


class UnidentifiablePhoneNumber(CamaraError):
    """422 (SIM Swap 1.0.0): what v2 calls ``MISSING_IDENTIFIER``, a two-legged token and no number in the body."""

    status, code = 422, "UNIDENTIFIABLE_PHONE_NUMBER"
    default_message = "The phone number cannot be identified."


class UnnecessaryIdentifier(CamaraError):
    """422: a three-legged token already names the subject, yet the body names one too."""

    status, code = 422, "UNNECESSARY_IDENTIFIER"
    default_message = "The device is already identified by the access token."


class UnsupportedIdentifier(CamaraError):
    """422: only identifiers this emulator does not resolve (IP addresses, network access identifier)."""

    status, code = 422, "UNSUPPORTED_IDENTIFIER"
    default_message = "The identifier provided is not supported."


class Internal(CamaraError):
    """500: a bug in the emulator; the adapter answers it rather than dropping the connection."""


class TooManyRequests(CamaraError):
    """429: the consumer is throttled (injected by a scenario's ``too_many_requests`` share)."""

    status, code = 429, "TOO_MANY_REQUESTS"
    default_message = "Rate limit reached."


class Unavailable(CamaraError):
    """503: the service is temporarily down (injected by a scenario's ``unavailable`` share)."""

    status, code = 503, "UNAVAILABLE"
    default_message = "Service unavailable."
