"""The HTTP API (aiohttp): the phones' authenticate call, the JWKS, and the server-to-server API.

Errors are RFC 9457 problem+json everywhere, including 404/405 for unknown routes, 400 for bodies that are
not JSON objects and for numbers that are not +E.164, 413/415 for bodies too large or not JSON, and 503 (with
``Retry-After``) when the store fails underneath. The server-to-server routes need ``Authorization: Bearer
<token>`` with a token from the configuration (401 otherwise; tokens compared in constant time). :data:`OPENAPI`
lists, per operation, every status the code returns; a test holds the two together.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from identity_core.bindings import BindingState, Reason
from identity_core.numbers import normalise_number
from identity_core.refusals import Refusal
from identity_core.service import EVENTS, IdentityService, RiskUnavailable, binding_json
from identity_core.store import StorageError

__all__ = ["E164_PATTERN", "OPENAPI", "make_app"]

log = logging.getLogger("identity_core.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The OpenAPI ``pattern`` of every phone number, path or body (ITU-T E.164: a country code never starts with 0).
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
_E164 = re.compile(E164_PATTERN)
#: A risk check's optional ``action``: a label for the logs, such as ``payment`` or ``device_change``.
_ACTION = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


def problem(status: int, title: str, detail: str = "", **extra: object) -> web.Response:
    """An application/problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, **({"detail": detail} if detail else {}), **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/problem+json")


def refusal_response(refusal: Refusal) -> web.Response:
    """A refusal's public form: same body for the same reason, whoever the number belongs to."""
    public = refusal.public()
    response = problem(refusal.reason.http_status, public["description"], code=public["code"])
    retry = refusal.retry_after_header()
    if retry is not None:
        response.headers["Retry-After"] = retry
    return response


async def _json_object(request: web.Request) -> dict[str, Any] | web.Response:
    if request.content_type != "application/json":
        return problem(415, "Unsupported Media Type", "send application/json")
    try:
        body = json.loads(await request.read())
    except (ValueError, UnicodeDecodeError):
        return problem(400, "Malformed JSON", "the body is not a JSON document")
    except RecursionError:  # '[' * 15000 fits the size limit and exhausts the parser's stack
        return problem(400, "Malformed JSON", "the body is nested too deeply")
    if not isinstance(body, dict):
        return problem(400, "Malformed request", "the body must be a JSON object")
    return body


def _canonical(number: object) -> str | None:
    """The number as registration stores it; None (a 400) when it does not match :data:`E164_PATTERN`.

    Bindings are keyed by the E.164 form :func:`~identity_core.numbers.normalise_sender` gives an MO's sender (a
    trunk prefix after the country code dropped: ``+4407700900123`` is ``+447700900123``); a lookup, delete, risk
    check or carrier event must name the number the same way -- the same function as an international sender's --
    or a sim_swap event for a spelling the pattern allows would miss the binding it was meant to revoke.

    A number the pattern allows but phonenumbers calls impossible (``+10``, a country code that does not exist) is
    kept as sent rather than refused: the OpenAPI document calls it valid (a 400 would break the contract), no
    registration made now can have stored it, so it finds nothing (404, nothing revoked) -- except a binding
    registered when older metadata still allowed that number, which a carrier event must still reach.
    """
    if not isinstance(number, str) or not _E164.fullmatch(number):
        return None
    return normalise_number(number) or number


def _path_number(request: web.Request) -> str | web.Response:
    e164 = _canonical(request.match_info["e164"])
    if e164 is None:
        return problem(400, "Invalid phone number", "the path must name a +E.164 number")
    return e164


def make_app(service: IdentityService, tokens: Sequence[str]) -> web.Application:
    """The aiohttp application of one identity service."""
    # aiohttp decodes header bytes as UTF-8 with surrogateescape, so a header that is not UTF-8 (a Latin-1
    # 'caf\xe9') holds lone surrogates: the same error handler turns it back into the bytes that were sent, which
    # match no configured token (401), where a plain .encode() raised UnicodeEncodeError (a 500).
    secrets = [t.encode("utf-8", "surrogateescape") for t in tokens]

    def authorised(request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        given = token.strip().encode("utf-8", "surrogateescape")
        # Compare against every token so the time taken does not say which one nearly matched.
        matches = [hmac.compare_digest(given, secret) for secret in secrets]
        return any(matches)

    def guarded(handler: Handler) -> Handler:
        async def wrapped(request: web.Request) -> web.StreamResponse:
            if not authorised(request):
                response = problem(401, "Unauthorized", "a bearer token is required")
                response.headers["WWW-Authenticate"] = 'Bearer realm="identity-core"'
                return response
            return await handler(request)

        return wrapped

    async def authenticate(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        result = await service.authenticate(body.get("phone_number"), body.get("push_token"), body.get("signature"))
        if isinstance(result, Refusal):
            return refusal_response(result)
        return web.json_response({"binding": binding_json(result.binding), "certificate": result.certificate})

    async def keys(request: web.Request) -> web.StreamResponse:
        return web.json_response(service.issuer.jwks(), headers={"Cache-Control": "public, max-age=300"})

    async def get_number(request: web.Request) -> web.StreamResponse:
        e164 = _path_number(request)
        if isinstance(e164, web.Response):
            return e164
        binding = await service.lookup(e164)
        if binding is None:
            return problem(404, "Not Found", "no binding for this number")
        return web.json_response(binding_json(binding))

    async def delete_number(request: web.Request) -> web.StreamResponse:
        e164 = _path_number(request)
        if isinstance(e164, web.Response):
            return e164
        if not await service.delete(e164):
            return problem(404, "Not Found", "no live binding for this number")
        return web.Response(status=204)

    async def post_event(request: web.Request) -> web.StreamResponse:
        body = await _json_object(request)
        if isinstance(body, web.Response):
            return body
        kind, number = body.get("type"), body.get("phone_number")
        if not isinstance(kind, str) or kind not in EVENTS:  # a list or object is not hashable: no 500
            return problem(400, "Invalid event", f"type must be one of {', '.join(EVENTS)}")
        e164 = _canonical(number)
        if e164 is None:
            return problem(400, "Invalid event", "phone_number must be +E.164")
        revoked = await service.carrier_event(str(kind), e164)
        return web.json_response(
            {
                "type": kind,
                "phone_number": e164,
                "revoked": revoked is not None,
                "binding": binding_json(revoked) if revoked is not None else None,
            },
            status=202,
        )

    async def risk_check(request: web.Request) -> web.StreamResponse:
        e164 = _path_number(request)
        if isinstance(e164, web.Response):
            return e164
        action: str | None = None
        if request.body_exists:
            body = await _json_object(request)
            if isinstance(body, web.Response):
                return body
            unknown = sorted(set(body) - {"action"})
            if unknown:
                return problem(400, "Malformed request", f"unknown field(s) {', '.join(unknown)}")
            if "action" in body:
                # Absent is the only way to give no action: null is not a string, as /openapi.json says.
                raw_action = body["action"]
                if not isinstance(raw_action, str) or not _ACTION.fullmatch(raw_action):
                    return problem(400, "Malformed request", "action must be 1-64 characters of A-Z a-z 0-9 _ . : -")
                action = raw_action
        try:
            verdict = await service.risk_check(e164, action)
        except RiskUnavailable as err:
            # Fail closed: no verdict is never "trusted". The cause is for the relying server's operators.
            changed = err.outcome == "binding_changed"
            response = problem(
                503,
                "Service Unavailable",
                # A binding that changed during the check needs no wait: a new check judges the new binding.
                "the number's active binding changed during the check; check again" if changed else
                "the carrier's SIM swap status could not be obtained; do not trust the binding now",
                code="risk_check_unavailable",
                cause=err.outcome,
                trusted=False,
            )
            response.headers["Retry-After"] = "1" if changed else "30"
            return response
        if verdict is None:
            return problem(404, "Not Found", "no active binding for this number")
        answer: dict[str, object] = {"trusted": verdict.trusted}
        if verdict.reason is not None:
            answer["reason"] = verdict.reason.value
        answer["binding"] = binding_json(verdict.binding)
        return web.json_response(answer)

    async def healthz(request: web.Request) -> web.StreamResponse:
        bound = await service.update_gauges()
        ok = all(bound.values())
        return web.json_response({"status": "ok" if ok else "degraded", "carriers": bound}, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.StreamResponse:
        await service.update_gauges()
        response = web.Response(body=generate_latest(service.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response

    async def openapi(request: web.Request) -> web.StreamResponse:
        return web.json_response(OPENAPI)

    @web.middleware
    async def problems(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = problem(exc.status, exc.reason, exc.text or "")
            if isinstance(exc, web.HTTPMethodNotAllowed):
                # RFC 9110 15.5.6: a 405 "MUST generate an Allow header field".
                response.headers["Allow"] = ", ".join(sorted(exc.allowed_methods))
            return response
        except web.RequestPayloadError as err:
            # A body that cannot be read as sent (not the gzip/deflate its Content-Encoding names, broken chunked
            # framing) fails in aiohttp's payload parser, and reading it raises this, which is no HTTPException:
            # the peer's malformed body, so the documented 400, not aiohttp's 500 text/plain and a traceback.
            cause = err.__cause__
            why = " ".join(cause.message.split()) if isinstance(cause, HttpProcessingError) else type(err).__name__
            return problem(400, "Malformed request", f"the body could not be read: {why}")
        except StorageError as err:
            # Translated once, here: whichever handler met it, the store failing is the service being
            # unavailable, not a bug of the request (no 500, no text/plain).
            log.warning("%s %s: store unavailable: %s", request.method, request.path, err)
            response = problem(503, "Service Unavailable", "the store is unavailable; try again", code="unavailable")
            response.headers["Retry-After"] = "5"
            return response

    app = web.Application(middlewares=[problems], client_max_size=16 * 1024)
    app.router.add_post("/v1/phone-numbers/authenticate", authenticate)
    app.router.add_get("/v1/keys", keys)
    # OpenAPI matches a concrete path before a templated one, so /v1/phone-numbers/authenticate is only ever the
    # authenticate operation: a GET or DELETE of it is 405 (Allow: POST), not a lookup of the "number"
    # 'authenticate' (aiohttp would otherwise serve it, and advertise GET and DELETE in the 405's Allow).
    number = "/v1/phone-numbers/{e164:(?!authenticate$)[^/]+}"
    app.router.add_get(number, guarded(get_number))
    app.router.add_delete(number, guarded(delete_number))
    app.router.add_post("/v1/phone-numbers/{e164}/risk-check", guarded(risk_check))
    app.router.add_post("/v1/events", guarded(post_event))
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/openapi.json", openapi)
    return app


_PROBLEM = {
    "description": "problem+json",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}
_BEARER: list[dict[str, list[str]]] = [{"bearer": []}]


def _json(description: str, schema: str) -> dict[str, Any]:
    """A JSON answer whose body is the component schema ``schema``."""
    body = {"schema": {"$ref": f"#/components/schemas/{schema}"}}
    return {"description": description, "content": {"application/json": body}}


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "identity-core",
        "version": "1.0.0",
        "description": "Binds phone numbers to devices over SMS and serves the bindings to other servers.",
    },
    "paths": {
        "/v1/phone-numbers/authenticate": {
            "post": {
                "summary": "Present a REG-RESP proof; get the binding and a certificate (EdDSA JWT)",
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/AuthenticateRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "bound",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/AuthenticateResponse"}}
                        },
                    },
                    "400": _PROBLEM,
                    "401": _PROBLEM,
                    "413": _PROBLEM,
                    "415": _PROBLEM,
                    "429": _PROBLEM,
                    "503": _PROBLEM,
                },
            }
        },
        "/v1/keys": {
            "get": {
                "summary": "JWKS of the certificate signing keys",
                "responses": {"200": _json("RFC 7517 key set", "JwkSet")},
            }
        },
        "/v1/phone-numbers/{e164}": {
            "parameters": [
                {
                    "name": "e164",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": E164_PATTERN},
                }
            ],
            "get": {
                "summary": "The number's current binding (one whose expires_at has passed reads as expired)",
                "security": _BEARER,
                "responses": {
                    "200": {
                        "description": "binding",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Binding"}}},
                    },
                    "400": _PROBLEM,
                    "401": _PROBLEM,
                    "404": _PROBLEM,
                    "503": _PROBLEM,
                },
            },
            "delete": {
                "summary": "Revoke the number's binding",
                "security": _BEARER,
                "responses": {
                    "204": {"description": "revoked"},
                    "400": _PROBLEM,
                    "401": _PROBLEM,
                    "404": _PROBLEM,
                    "503": _PROBLEM,
                },
            },
        },
        "/v1/phone-numbers/{e164}/risk-check": {
            "parameters": [
                {
                    "name": "e164",
                    "in": "path",
                    "required": True,
                    "schema": {"type": "string", "pattern": E164_PATTERN},
                }
            ],
            "post": {
                "summary": "Before a high-risk action: ask the binding's carrier (CAMARA SIM Swap) whether the SIM "
                "changed recently; a recent swap revokes the binding",
                "description": "Fails closed: when the carrier gives no verdict the answer is 503 (do not trust) "
                "and the binding is left as it was.",
                "security": _BEARER,
                "requestBody": {
                    "required": False,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RiskCheckRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "the carrier answered: trusted, or not (and revoked) because of a SIM swap",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/RiskCheckResponse"}}
                        },
                    },
                    "400": _PROBLEM,
                    "401": _PROBLEM,
                    "404": _PROBLEM,
                    "413": _PROBLEM,
                    "415": _PROBLEM,
                    "503": _PROBLEM,
                },
            },
        },
        "/v1/events": {
            "post": {
                "summary": "A carrier event (SIM swap, port-out, number recycled) revokes the binding",
                "security": _BEARER,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/CarrierEvent"}}},
                },
                "responses": {
                    "202": _json("applied: whether it revoked a binding, and that binding", "EventResult"),
                    "400": _PROBLEM,
                    "401": _PROBLEM,
                    "413": _PROBLEM,
                    "415": _PROBLEM,
                    "503": _PROBLEM,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "Liveness and carrier binds",
                "responses": {
                    "200": _json("every carrier bound", "Health"),
                    "503": _json("a carrier is not bound", "Health"),
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {
                    "200": {
                        "description": "Prometheus text exposition format",
                        "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.json": {
            "get": {"summary": "This document", "responses": {"200": _json("OpenAPI 3.1", "OpenApiDocument")}},
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "AuthenticateRequest": {
                "type": "object",
                "required": ["phone_number", "push_token", "signature"],
                "properties": {
                    "phone_number": {"type": "string", "pattern": E164_PATTERN},
                    "push_token": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"},
                    # What the service reads as a proof at all (else 400 malformed); the wrong length is 401 forged.
                    "signature": {"type": "string", "pattern": "^[0-9a-fA-F]{1,256}$"},
                },
            },
            "AuthenticateResponse": {
                "type": "object",
                "required": ["binding", "certificate"],
                "properties": {"binding": {"$ref": "#/components/schemas/Binding"}, "certificate": {"type": "string"}},
            },
            "Binding": {
                "type": "object",
                "required": [
                    "phone_number", "state", "carrier", "push_token_sha256", "created_at", "activated_at", "expires_at",
                    "revoked_at", "expired_at", "reason",
                ],
                "additionalProperties": False,
                "properties": {
                    "phone_number": {"type": "string", "pattern": E164_PATTERN},
                    "state": {"enum": [state.value for state in BindingState]},
                    "carrier": {"type": "string"},
                    "push_token_sha256": {"type": "string"},
                    "created_at": {"type": "number"},
                    "activated_at": {"type": ["number", "null"]},
                    "expires_at": {"type": "number"},
                    "revoked_at": {"type": ["number", "null"]},
                    "expired_at": {"type": ["number", "null"]},
                    "reason": {"enum": [*(reason.value for reason in Reason), None]},
                },
            },
            "CarrierEvent": {
                "type": "object",
                "required": ["type", "phone_number"],
                "properties": {
                    "type": {"enum": list(EVENTS)},
                    "phone_number": {"type": "string", "pattern": E164_PATTERN},
                },
            },
            "EventResult": {
                "type": "object",
                "required": ["type", "phone_number", "revoked", "binding"],
                "properties": {
                    "type": {"enum": list(EVENTS)},
                    "phone_number": {"type": "string", "pattern": E164_PATTERN},
                    "revoked": {"type": "boolean"},
                    "binding": {
                        "oneOf": [{"$ref": "#/components/schemas/Binding"}, {"type": "null"}],
                        "description": "the binding the event revoked; null when there was none to revoke",
                    },
                },
            },
            "JwkSet": {
                "type": "object",
                "required": ["keys"],
                "properties": {
                    "keys": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["kty", "kid"],
                            "properties": {"kty": {"type": "string"}, "kid": {"type": "string"}},
                        },
                    }
                },
            },
            "Health": {
                "type": "object",
                "required": ["status", "carriers"],
                "properties": {
                    "status": {"enum": ["ok", "degraded"]},
                    "carriers": {
                        "type": "object",
                        "additionalProperties": {"type": "boolean"},
                        "description": "carrier name -> whether its SMPP bind is up",
                    },
                },
            },
            "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"]},
            "RiskCheckRequest": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "action": {"type": "string", "pattern": "^[A-Za-z0-9_.:-]{1,64}$", "description": "for the logs"}
                },
            },
            "RiskCheckResponse": {
                "type": "object",
                "required": ["trusted", "binding"],
                "properties": {
                    "trusted": {"type": "boolean"},
                    "reason": {"enum": ["sim_swap"], "description": "present when trusted is false"},
                    "binding": {"$ref": "#/components/schemas/Binding"},
                },
            },
            "Problem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "title": {"type": "string"},
                    "status": {"type": "integer"},
                    "detail": {"type": "string"},
                    "code": {"type": "string"},
                    "cause": {
                        "type": "string",
                        "description": "503 of a risk check: not_configured, unreachable, timeout, carrier_error, "
                        "malformed_answer, store_error or binding_changed (another binding became the number's "
                        "active one while the carrier answered)",
                    },
                },
            },
        },
    },
}
