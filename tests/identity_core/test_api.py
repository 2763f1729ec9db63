"""The HTTP API's boundary: every failure is problem+json with the status the OpenAPI document lists, and the
document describes exactly the routes the application serves."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator

from identity_core.api import OPENAPI, make_app
from identity_core.bindings import Binding, BindingState, Reason
from identity_core.certificates import CertificateIssuer, SigningKey
from identity_core.http_errors import app_runner
from identity_core.limits import VelocityLimiter, VelocityLimits
from identity_core.memory_store import MemoryStorage
from identity_core.proofs import ProofSigner
from identity_core.service import IdentityService
from identity_core.store import StorageClosed, StorageError, StorageUnavailable

API_TOKEN = "server-to-server-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
NUMBER = "+447700900123"
#: Not +E.164 by the OpenAPI pattern: no '+', a country code starting with 0, too short, too long, not digits.
NOT_E164 = ["447700900123", "+0", "+0447700900123", "+4", "+4477009001234567", "+44770090012a", "+44 7700900123"]


class BrokenStore(MemoryStorage):
    """A store whose disk fails under every read and write the server-to-server API makes."""

    def __init__(self, error: StorageError) -> None:
        super().__init__()
        self.error = error

    async def get(self, e164: str) -> Binding | None:
        raise self.error

    async def revoke(
        self, e164: str, reason: Reason, now: float, *, recorded_by: float | None = None
    ) -> Binding | None:
        raise self.error

    async def delete(self, e164: str, now: float) -> bool:
        raise self.error


def _app(store: MemoryStorage | None = None) -> web.Application:
    service = IdentityService(
        store if store is not None else MemoryStorage(),
        ProofSigner(b"k" * 32, 600.0),
        CertificateIssuer([SigningKey.generate()]),
        VelocityLimiter(VelocityLimits()),
    )
    return make_app(service, [API_TOKEN])


@pytest.fixture
async def http() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(_app())) as client:
        yield client


@pytest.fixture
async def served() -> AsyncIterator[int]:
    """The application on 127.0.0.1 as ``identity-core serve`` runs it (its protocol-error logger included): the
    port."""
    runner = app_runner(_app(), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def _raw_exchange(port: int, request: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """Bytes no HTTP client would send, over a socket: the answer's status line, headers and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()  # every request here says Connection: close
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return status_line.encode("latin-1"), headers, body


def _raw_problem(answer: tuple[bytes, dict[str, str], bytes], status: int) -> dict[str, object]:
    status_line, headers, body = answer
    assert status_line.startswith(b"HTTP/1.1 %d " % status), (status_line, body)
    assert headers["content-type"].startswith("application/problem+json"), headers
    problem = json.loads(body)
    assert isinstance(problem, dict)
    assert problem["status"] == status
    return problem


async def _still_serving(port: int) -> None:
    request = (b"GET /v1/phone-numbers/%2B447700900123 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
               + API_TOKEN.encode() + b"\r\nConnection: close\r\n\r\n")
    _raw_problem(await _raw_exchange(port, request), 404)


def _documented(template: str, method: str, status: int) -> None:
    responses = OPENAPI["paths"][template][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {template} answers {status}, which /openapi.json does not list"


async def _problem(response: ClientResponse, status: int) -> dict[str, object]:
    assert response.status == status
    assert response.content_type == "application/problem+json"
    body = await response.json(content_type="application/problem+json")
    assert isinstance(body, dict)
    assert body["status"] == status
    return body


def test_the_openapi_document_lists_exactly_the_routes_served() -> None:
    served = {
        (route.resource.canonical, route.method.lower())
        for route in _app().router.routes()
        if route.resource is not None and route.method != "HEAD"  # aiohttp adds HEAD beside every GET
    }
    documented = {
        (path, method) for path, item in OPENAPI["paths"].items() for method in item if method != "parameters"
    }
    assert served == documented


@pytest.mark.parametrize("error", [StorageUnavailable("disk I/O error"), StorageClosed("closed")])
@pytest.mark.parametrize(
    ("method", "path", "template", "body"),
    [
        ("GET", f"/v1/phone-numbers/{NUMBER}", "/v1/phone-numbers/{e164}", None),
        ("DELETE", f"/v1/phone-numbers/{NUMBER}", "/v1/phone-numbers/{e164}", None),
        ("POST", "/v1/events", "/v1/events", {"type": "port_out", "phone_number": NUMBER}),
    ],
)
async def test_a_failing_store_is_503_problem_json(
    error: StorageError, method: str, path: str, template: str, body: dict[str, str] | None
) -> None:
    async with TestClient(TestServer(_app(BrokenStore(error)))) as client:
        response = await client.request(method, path, headers=AUTH, json=body)
        problem = await _problem(response, 503)
        assert problem["code"] == "unavailable"
        assert response.headers["Retry-After"] == "5"
        _documented(template, method, 503)


@pytest.mark.parametrize("number", NOT_E164)
async def test_a_number_that_is_not_e164_is_400_in_the_path_and_in_events(
    http: TestClient[web.Request, web.Application], number: str
) -> None:
    for method in ("GET", "DELETE"):
        response = await http.request(method, f"/v1/phone-numbers/{number}", headers=AUTH)
        await _problem(response, 400)
        _documented("/v1/phone-numbers/{e164}", method, 400)
    response = await http.post(f"/v1/phone-numbers/{number}/risk-check", headers=AUTH)
    await _problem(response, 400)
    response = await http.post("/v1/events", headers=AUTH, json={"type": "sim_swap", "phone_number": number})
    await _problem(response, 400)
    _documented("/v1/events", "POST", 400)


async def test_bodies_too_large_or_not_json_are_documented(http: TestClient[web.Request, web.Application]) -> None:
    for path, template in (("/v1/events", "/v1/events"), (f"/v1/phone-numbers/{NUMBER}/risk-check",
                                                           "/v1/phone-numbers/{e164}/risk-check"),
                           ("/v1/phone-numbers/authenticate", "/v1/phone-numbers/authenticate")):
        response = await http.post(path, headers={**AUTH, "Content-Type": "text/plain"}, data=b"x")
        await _problem(response, 415)
        _documented(template, "POST", 415)
        response = await http.post(path, headers={**AUTH, "Content-Type": "application/json"},
                                   data=b"{" + b" " * 20_000 + b"}")
        await _problem(response, 413)
        _documented(template, "POST", 413)


async def test_the_answers_of_a_healthy_store_are_documented(http: TestClient[web.Request, web.Application]) -> None:
    template = "/v1/phone-numbers/{e164}"
    response = await http.get(f"/v1/phone-numbers/{NUMBER}", headers=AUTH)
    await _problem(response, 404)
    _documented(template, "GET", 404)
    response = await http.delete(f"/v1/phone-numbers/{NUMBER}", headers=AUTH)
    await _problem(response, 404)
    _documented(template, "DELETE", 404)
    response = await http.get(f"/v1/phone-numbers/{NUMBER}")
    await _problem(response, 401)
    _documented(template, "GET", 401)
    response = await http.post("/v1/events", headers=AUTH, json={"type": "port_out", "phone_number": NUMBER})
    assert response.status == 202
    _documented("/v1/events", "POST", 202)
    response = await http.get("/openapi.json")
    assert response.status == 200
    assert await response.json() == OPENAPI


@pytest.mark.parametrize("body", [b"[" * 15_000, b'{"a":' * 2_500 + b"1" + b"}" * 2_500])
async def test_json_nested_beyond_the_parser_is_400_not_500(
    http: TestClient[web.Request, web.Application], body: bytes
) -> None:
    # Under the 16 KiB limit, yet deep enough to exhaust the JSON parser's recursion.
    for path in ("/v1/events", "/v1/phone-numbers/authenticate", f"/v1/phone-numbers/{NUMBER}/risk-check"):
        response = await http.post(path, headers={**AUTH, "Content-Type": "application/json"}, data=body)
        problem = await _problem(response, 400)
        assert "nested too deeply" in problem["detail"]


@pytest.mark.parametrize("kind", [["sim_swap"], {"a": 1}, 7, None, True])
async def test_an_event_type_that_is_not_a_string_is_400(
    http: TestClient[web.Request, web.Application], kind: object
) -> None:
    response = await http.post("/v1/events", headers=AUTH, json={"type": kind, "phone_number": NUMBER})
    await _problem(response, 400)


async def test_a_wrong_method_is_405_with_allow(http: TestClient[web.Request, web.Application]) -> None:
    response = await http.patch("/v1/keys")
    await _problem(response, 405)
    assert response.headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize("method", ["GET", "DELETE", "OPTIONS", "PUT"])
async def test_authenticate_is_a_route_of_its_own_not_a_number(
    http: TestClient[web.Request, web.Application], method: str
) -> None:
    # OpenAPI matches the concrete /v1/phone-numbers/authenticate before /v1/phone-numbers/{e164}: only POST is
    # served there, and the 405 says so (it used to advertise GET and DELETE, borrowed from the {e164} route).
    response = await http.request(method, "/v1/phone-numbers/authenticate", headers=AUTH)
    await _problem(response, 405)
    assert response.headers["Allow"] == "POST"


@pytest.mark.parametrize("signature", ["", "zz", "ab cd", "0" * 257, "0", "ab" * 30, "AB" * 128])
async def test_the_documented_signature_is_what_authenticate_reads_as_a_proof(
    http: TestClient[web.Request, web.Application], signature: str
) -> None:
    # A request the document calls valid is never refused as malformed (it used to allow any string, and "" got
    # 400): a signature of 1 to 256 hex digits is read as a proof and, being no proof issued, is 401.
    body = {"phone_number": NUMBER, "push_token": "ab" * 32, "signature": signature}
    documented = Draft202012Validator(OPENAPI["components"]["schemas"]["AuthenticateRequest"]).is_valid(body)
    response = await http.post("/v1/phone-numbers/authenticate", json=body)
    await _problem(response, 401 if documented else 400)


def test_every_answer_with_a_body_documents_its_content() -> None:
    # Without a media type and schema the conformance checks (test_openapi_conformance.py) have nothing to hold an
    # answer to: JWKS, health, event results, metrics and this document itself were once bare descriptions.
    bare = [
        f"{method.upper()} {path} {status}"
        for path, item in OPENAPI["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
        for status, response in operation["responses"].items()
        if status != "204" and "content" not in response
    ]
    assert bare == []


@pytest.mark.parametrize("action", [None, "", 7, ["payment"], "a" * 65, "pay ment"])
async def test_a_risk_check_action_that_is_not_the_documented_string_is_400(
    http: TestClient[web.Request, web.Application], action: object
) -> None:
    # null used to pass as "no action" (and go on to the lookup's 404), though the document says a string.
    response = await http.post(f"/v1/phone-numbers/{NUMBER}/risk-check", headers=AUTH, json={"action": action})
    problem = await _problem(response, 400)
    assert "action must be" in problem["detail"]
    _documented("/v1/phone-numbers/{e164}/risk-check", "POST", 400)


GUARDED = [
    ("GET", f"/v1/phone-numbers/{NUMBER}", "/v1/phone-numbers/{e164}"),
    ("DELETE", f"/v1/phone-numbers/{NUMBER}", "/v1/phone-numbers/{e164}"),
    ("POST", f"/v1/phone-numbers/{NUMBER}/risk-check", "/v1/phone-numbers/{e164}/risk-check"),
    ("POST", "/v1/events", "/v1/events"),
]


@pytest.mark.parametrize(("method", "path", "template"), GUARDED)
@pytest.mark.parametrize("token", [b"caf\xe9", b"\xff\xfe", API_TOKEN.encode() + b"\xe9"], ids=["latin-1", "binary",
                                                                                            "token-and-more"])
async def test_a_bearer_token_that_is_not_utf8_is_401_problem_json_without_an_error_logged(
    served: int, method: str, path: str, template: str, token: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    # aiohttp hands such header bytes on surrogate-escaped; a plain .encode() of them raised UnicodeEncodeError: a
    # 500 text/plain and an ERROR traceback on every guarded route, for what is just a wrong token.
    request = (f"{method} {path.replace('+', '%2B')} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n".encode()
               + b"Authorization: Bearer " + token + b"\r\nConnection: close\r\n\r\n")
    with caplog.at_level(logging.DEBUG):
        problem = _raw_problem(await _raw_exchange(served, request), 401)
        await _still_serving(served)
    assert problem["title"] == "Unauthorized"
    _documented(template, method, 401)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text


BODY_READERS = [
    ("/v1/phone-numbers/authenticate", "/v1/phone-numbers/authenticate"),
    ("/v1/events", "/v1/events"),
    (f"/v1/phone-numbers/{NUMBER}/risk-check", "/v1/phone-numbers/{e164}/risk-check"),
]


@pytest.mark.parametrize(("path", "template"), BODY_READERS)
@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_its_content_encoding_is_400_problem_json_without_an_error_logged(
    served: int, path: str, template: str, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Reading such a body raises aiohttp's RequestPayloadError, no HTTPException: it was a 500 text/plain with an
    # ERROR traceback, and a second one as aiohttp drained the body after the answer.
    body = b'{"type": "sim_swap"}'  # JSON as it is, not compressed as the header says
    request = (f"POST {path.replace('+', '%2B')} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {API_TOKEN}\r\n"
               f"Content-Type: application/json\r\nContent-Encoding: {encoding}\r\nContent-Length: {len(body)}\r\n"
               "Connection: close\r\n\r\n").encode() + body
    with caplog.at_level(logging.DEBUG):
        problem = _raw_problem(await _raw_exchange(served, request), 400)
        await _still_serving(served)
    assert problem["title"] == "Malformed request"
    assert f"content-encoding: {encoding}" in str(problem["detail"]).lower()
    _documented(template, "POST", 400)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    # aiohttp still meets the broken body as it drains it after the answer: one line, no traceback.
    drained = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.WARNING]
    assert [r.exc_info for r in drained] == [None] * len(drained)
    assert all("\n" not in r.getMessage() and "ContentEncodingError" in r.getMessage() for r in drained)


async def test_a_corrupt_body_the_handler_never_reads_is_one_log_line(
    served: int, caplog: pytest.LogCaptureFixture
) -> None:
    # Refused 415 before the body is read, so the drain after the answer is the first to meet the broken gzip.
    request = (b"POST /v1/phone-numbers/authenticate HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
               b"Content-Encoding: gzip\r\nContent-Length: 7\r\nConnection: close\r\n\r\nnotgzip")
    with caplog.at_level(logging.DEBUG):
        _raw_problem(await _raw_exchange(served, request), 415)
        await _still_serving(served)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    [line] = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno == logging.WARNING]
    assert line.exc_info is None
    assert "ContentEncodingError" in line.getMessage()


#: NUMBER as the pattern also lets a caller write it: the UK trunk prefix kept after the country code. Registration
#: stores what phonenumbers makes of an MO's sender, which drops it.
NUMBER_WITH_TRUNK_PREFIX = "+4407700900123"


async def _bound_service() -> IdentityService:
    """A service whose NUMBER has an active binding (as a REG-REQ and an authenticate leave it)."""
    service = IdentityService(
        MemoryStorage(), ProofSigner(b"k" * 32, 600.0), CertificateIssuer([SigningKey.generate()]),
        VelocityLimiter(VelocityLimits()),
    )
    token, now = "ab" * 32, service.clock()
    proof = service.signer.issue(NUMBER, token, 1, now)
    await service.store.record_pending(e164=NUMBER, push_token=token, request_id=1, carrier="a",
                                       proof_id=proof.proof_id, expires_at=proof.expires_at, now=now)
    assert not hasattr(await service.authenticate(NUMBER, token, proof.hex), "reason")
    return service


async def test_a_carrier_event_names_the_number_as_registration_stored_it() -> None:
    service = await _bound_service()
    async with TestClient(TestServer(make_app(service, [API_TOKEN]))) as http:
        response = await http.post("/v1/events", headers=AUTH,
                                   json={"type": "sim_swap", "phone_number": NUMBER_WITH_TRUNK_PREFIX})
        assert response.status == 202
        answer = await response.json()
        # Was revoked: false, the binding left active: the event looked for the number as sent.
        assert (answer["revoked"], answer["phone_number"]) == (True, NUMBER)
        assert answer["binding"]["reason"] == "sim_swap"
    current = await service.lookup(NUMBER)
    assert current is not None
    assert (current.state, current.reason) == (BindingState.REVOKED, Reason.SIM_SWAP)


async def test_delete_lookup_and_risk_check_name_the_number_as_registration_stored_it() -> None:
    service = await _bound_service()
    path = f"/v1/phone-numbers/{NUMBER_WITH_TRUNK_PREFIX}"
    async with TestClient(TestServer(make_app(service, [API_TOKEN]))) as http:
        response = await http.get(path, headers=AUTH)
        assert response.status == 200
        assert (await response.json())["phone_number"] == NUMBER
        # The binding is found: the carrier's API is asked (none is configured here, so no verdict).
        response = await http.post(f"{path}/risk-check", headers=AUTH)
        assert (response.status, (await response.json())["cause"]) == (503, "not_configured")
        response = await http.delete(path, headers=AUTH)
        assert response.status == 204  # was 404, the binding left active
    current = await service.lookup(NUMBER)
    assert current is not None
    assert (current.state, current.reason) == (BindingState.REVOKED, Reason.DELETED)


async def test_a_number_the_pattern_allows_but_no_country_has_finds_nothing_and_is_not_refused(
    http: TestClient[web.Request, web.Application]
) -> None:
    # "+10": the OpenAPI pattern allows it, so a 400 would break the contract; no registration can have stored it.
    response = await http.delete("/v1/phone-numbers/+10", headers=AUTH)
    await _problem(response, 404)
    response = await http.post("/v1/events", headers=AUTH, json={"type": "port_out", "phone_number": "+10"})
    assert response.status == 202
    assert (await response.json())["revoked"] is False
