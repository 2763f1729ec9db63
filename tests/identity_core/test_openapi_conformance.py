"""The identity core's HTTP API against its own OpenAPI document, judged by Schemathesis (a third-party API tester).

Schemathesis reads ``OPENAPI`` (the document ``/openapi.json`` serves), generates requests for every operation —
valid ones and, in its negative mode, ones the document says must be refused — sends them over a real socket to
the real aiohttp application, and checks every answer: no 5xx, a documented status, content type, headers and body,
invalid requests refused with a 4xx, unsupported methods 405 with a truthful ``Allow``, and the bearer token
really required where the document says so.

Generated numbers almost never name a binding, so generation alone seldom sees the 200s of the lookups and the
risk check: a second run generates the {e164} operations' requests with the number fixed to a seeded, bound one,
and a third test walks every happy path on seeded bindings (and a carrier SIM Swap API of its own) under the same
checks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    ignored_auth,
    missing_required_header,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)

from identity_core.api import OPENAPI, make_app
from identity_core.certificates import CertificateIssuer, SigningKey
from identity_core.limits import VelocityLimiter, VelocityLimits
from identity_core.memory_store import MemoryStorage
from identity_core.proofs import Proof, ProofSigner
from identity_core.service import IdentityService
from identity_core.sim_swap import SimSwapApi, SimSwapClient, api_url

T = TypeVar("T")

API_TOKEN = "server-to-server-token"
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
PUSH_TOKEN = "ab" * 32
#: Seeded numbers: bound through carrier "a", whose SIM Swap API says not swapped / swapped; bound through carrier
#: "b", which has no SIM Swap API; registered (pending) with a proof the test redeems over HTTP.
TRUSTED, SWAPPED, NO_API, PENDING = "+447700900001", "+447700900002", "+447700900003", "+447700900004"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    unsupported_method,
    allow_header_conformance,
    missing_required_header,
    ignored_auth,
]

# Deterministic (derandomized, no example database) so a failure here is a failure on every machine and every run;
# 30 examples per operation and generation mode keep the file to seconds on two cores.
CONFIG = schemathesis.Config.from_dict({"generation": {"max-examples": 30, "deterministic": True, "database": "none"}})
schema = schemathesis.openapi.from_dict(OPENAPI, config=CONFIG)
# The same operations with the number fixed to a bound one: generated numbers almost never name a binding, and a
# lookup's or risk check's body checks (200) only run when one does. The rest of each request is still generated.
bound = schemathesis.openapi.from_dict(
    OPENAPI,
    config=schemathesis.Config.from_dict(
        {
            "generation": {"max-examples": 30, "deterministic": True, "database": "none"},
            "parameters": {"e164": TRUSTED},
        }
    ),
).include(path_regex="{e164}")


async def _camara_check(request: web.Request) -> web.Response:
    """A carrier's CAMARA SIM Swap ``POST /check``: only SWAPPED had its SIM changed."""
    body = await request.json()
    return web.json_response({"swapped": body["phoneNumber"] == SWAPPED})


class LiveServer:
    """The identity API (and a carrier's SIM Swap API) on 127.0.0.1, served by an event loop in a thread of its
    own: Schemathesis calls over a real socket with a blocking HTTP client, which must not run on the loop that
    serves it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="identity-core-api", daemon=True)
        self.runners: list[web.AppRunner] = []
        self.service: IdentityService | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop; its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    async def _serve(self, app: web.Application) -> str:
        runner = web.AppRunner(app)
        await runner.setup()
        self.runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        return f"http://{host}:{port}"

    async def _start(self) -> str:
        camara = web.Application()
        camara.router.add_post("/sim-swap/v1/check", _camara_check)
        sim_swap = SimSwapClient({"a": SimSwapApi(api_url(await self._serve(camara)))})
        self.service = IdentityService(
            MemoryStorage(),
            ProofSigner(b"k" * 32, 600.0),
            CertificateIssuer([SigningKey.generate()]),
            VelocityLimiter(VelocityLimits()),
            sim_swap=sim_swap,
        )
        return await self._serve(make_app(self.service, [API_TOKEN]))

    async def _stop(self) -> None:
        for runner in reversed(self.runners):
            await runner.cleanup()
        if self.service is not None:
            await self.service.sim_swap.close()

    def __enter__(self) -> str:
        self.thread.start()
        return self.run(self._start())

    def __exit__(self, *exc: object) -> None:
        self.run(self._stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@dataclass
class Seeded:
    """A live API whose store holds the seeded bindings, and the proof that redeems PENDING's."""

    url: str
    proof: Proof


async def _register(service: IdentityService, number: str, carrier: str, request_id: int) -> Proof:
    """What a REG-REQ through ``carrier`` leaves: a proof, and its pending binding recorded."""
    now = service.clock()
    proof = service.signer.issue(number, PUSH_TOKEN, request_id, now)
    await service.store.record_pending(e164=number, push_token=PUSH_TOKEN, request_id=request_id, carrier=carrier,
                                       proof_id=proof.proof_id, expires_at=proof.expires_at, now=now)
    return proof


async def _seed(service: IdentityService) -> Proof:
    for request_id, (number, carrier) in enumerate(((TRUSTED, "a"), (SWAPPED, "a"), (NO_API, "b")), start=1):
        proof = await _register(service, number, carrier, request_id)
        assert not hasattr(await service.authenticate(number, PUSH_TOKEN, proof.hex), "reason")
    return await _register(service, PENDING, "a", 4)


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    with LiveServer() as url:
        yield url


@pytest.fixture
def seeded() -> Iterator[Seeded]:
    server = LiveServer()
    with server as url:
        assert server.service is not None
        yield Seeded(url, server.run(_seed(server.service)))


@pytest.fixture
def seeded_url(seeded: Seeded) -> str:
    return seeded.url


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        yield http


@schema.parametrize()
def test_every_operation_conforms_to_the_openapi_document(
    case: schemathesis.Case[Any], base_url: str, session: requests.Session
) -> None:
    case.call_and_validate(base_url=base_url, session=session, headers=AUTH, checks=CHECKS)


@bound.parametrize()
# One seeded server per operation, shared by its examples, is the point of the function-scoped fixture: an
# operation's examples may change the binding between them (DELETE does), but not another operation's.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_on_a_bound_number_conforms_to_the_openapi_document(
    case: schemathesis.Case[Any], seeded_url: str, session: requests.Session
) -> None:
    case.call_and_validate(base_url=seeded_url, session=session, headers=AUTH, checks=CHECKS)


def test_the_happy_paths_conform_to_the_openapi_document(seeded: Seeded, session: requests.Session) -> None:
    number, risk, events = "/v1/phone-numbers/{e164}", "/v1/phone-numbers/{e164}/risk-check", "/v1/events"
    authenticate: dict[str, Any] = {"phone_number": PENDING, "push_token": PUSH_TOKEN, "signature": seeded.proof.hex}
    # In order: each answer is the status its branch gives, and the body the document promises for it.
    calls: list[tuple[schemathesis.Case[Any], int]] = [
        (schema["/v1/phone-numbers/authenticate"]["POST"].Case(body=authenticate), 200),
        (schema[number]["GET"].Case(path_parameters={"e164": TRUSTED}), 200),
        (schema[risk]["POST"].Case(path_parameters={"e164": TRUSTED}), 200),
        (schema[risk]["POST"].Case(path_parameters={"e164": SWAPPED}, body={"action": "payment"}), 200),
        (schema[risk]["POST"].Case(path_parameters={"e164": NO_API}), 503),  # fails closed, deliberately
        (schema[events]["POST"].Case(body={"type": "port_out", "phone_number": TRUSTED}), 202),
        (schema[events]["POST"].Case(body={"type": "port_out", "phone_number": TRUSTED}), 202),  # nothing left
        (schema[number]["GET"].Case(path_parameters={"e164": TRUSTED}), 200),  # revoked
        (schema[number]["DELETE"].Case(path_parameters={"e164": PENDING}), 204),
        (schema["/v1/keys"]["GET"].Case(), 200),
        (schema["/healthz"]["GET"].Case(), 200),
        (schema["/metrics"]["GET"].Case(), 200),
        (schema["/openapi.json"]["GET"].Case(), 200),
    ]
    for case, status in calls:
        # not_a_server_error counts every 5xx as a failure; the risk check's 503 is its documented answer when the
        # carrier gives no verdict (do not trust the binding), which the remaining checks still hold to the document.
        checks = [check for check in CHECKS if status < 500 or check is not not_a_server_error]
        response = case.call_and_validate(base_url=seeded.url, session=session, headers=AUTH, checks=checks)
        assert response.status_code == status, (case.operation.label, case.path_parameters, response.text)
