"""The SMSC's HTTP control API, served by the real aiohttp application to aiohttp's test client.

The SMSC behind it is a real :class:`~carrier_sim.smsc.centre.Smsc` with no listening socket: a receiver bind,
when a test needs one, is made through the pure connection object, as the socket adapter would.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from carrier_sim.net.control import control_app
from carrier_sim.net.esme import Esme
from carrier_sim.net.http_errors import app_runner
from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.codec import encode
from carrier_sim.smpp.coding import decode_text
from carrier_sim.smpp.constants import CommandId, InterfaceVersion
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session import SessionConfig
from carrier_sim.smpp.session_table import Role
from carrier_sim.smpp.udh import split_udh
from carrier_sim.smsc.accounts import Account, MoDelivery
from carrier_sim.smsc.centre import Smsc, SmscConfig

T0 = 1_700_000_000.0
GOOD = {"from": "447700900123", "to": "12345", "text": "STOP"}


@pytest.fixture
def server() -> SmscServer:
    return SmscServer(Smsc(SmscConfig(accounts=(Account("esme", "pw"),))), clock=lambda: T0)


@pytest.fixture
async def client(server: SmscServer) -> AsyncIterator[TestClient[Any, Any]]:
    async with TestClient(TestServer(control_app(server))) as test_client:
        yield test_client


def bind_receiver(server: SmscServer) -> None:
    """A receiver bind (default route: no routes, no address_range) on a connection with no socket."""
    conn = server.smsc.connect("test", T0)
    conn.receive_data(encode(Pdu.make(CommandId.bind_receiver, 1, system_id="esme", password="pw",
                                      interface_version=0x34)), T0)
    assert conn.receives


async def assert_problem(client: TestClient[Any, Any], body: bytes, status: int) -> dict[str, Any]:
    response = await client.post("/mo", data=body)
    assert response.status == status
    assert response.content_type == "application/problem+json"
    problem: dict[str, Any] = await response.json(content_type=None)
    assert problem["status"] == status
    assert problem["title"]
    assert problem["detail"]
    return problem


def json_body(**changes: object) -> bytes:
    """GOOD with some fields changed (None: left out), as JSON."""
    body: dict[str, object] = {**GOOD, **changes}
    return json.dumps({k: v for k, v in body.items() if v is not None}).encode()


@pytest.mark.parametrize(
    "body",
    [
        b"{bad",
        b"\xff\xfe",
        b"[" * 60_000,  # deeper than the JSON parser's recursion allows
        b"[1, 2]",
        json_body(text=None),
        json_body(**{"from": 447700900123}),
        json_body(to=["12345"]),
        json_body(**{"from": ""}),
        json_body(to="1" * 21),
        json_body(data_coding=True),
        json_body(data_coding=False),
        json_body(data_coding="8"),
        json_body(data_coding=1.5),
        json_body(data_coding=999),
        json_body(data_coding=0x11),
        json_body(data_coding=0xF0),
        json_body(data_coding=-1),
        json_body(text="€", data_coding=1),  # IA5 has no euro sign
        json_body(data_coding=4),  # binary: not a text coding
        json_body(**{"from": "abc\u0000"}),  # a C-Octet String ends at NUL: unwritable
        json_body(**{"from": "\u00fc\u20ac"}),  # the euro sign is not Latin-1
        json_body(to="12\n34"),
        json_body(text="a" * 40_000),  # more than 255 concatenated parts
    ],
    ids=["not-json", "not-utf8", "too-deep", "not-an-object", "no-text", "from-number", "to-list", "from-empty",
         "to-long", "coding-true", "coding-false", "coding-string", "coding-float", "coding-999", "coding-0x11",
         "coding-0xF0", "coding-negative", "text-not-in-coding", "coding-binary", "from-nul", "from-not-latin1",
         "to-control", "text-too-long"],
)
@pytest.mark.parametrize("with_bind", [False, True], ids=["unbound", "bound"])
async def test_a_bad_mo_is_a_400_problem_and_counts_nothing(server: SmscServer, client: TestClient[Any, Any],
                                                            body: bytes, with_bind: bool) -> None:
    if with_bind:
        bind_receiver(server)
    await assert_problem(client, body, 400)
    stats = server.smsc.stats
    assert (stats.mo_received, stats.mo_sent, stats.mo_unroutable) == (0, 0, 0)


async def test_an_mo_too_long_to_hold_is_a_400_and_the_next_one_is_delivered_when_a_receiver_binds() -> None:
    # With hold_mo, an MO no bind routes is held and answered 202: one that cannot be split into deliver_sm must
    # be refused then, not found out when a receiver binds (where it took the bind and every later MO with it).
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("esme", "pw"),), hold_mo=60.0)), clock=lambda: T0)
    async with TestClient(TestServer(control_app(server))) as client:
        problem = await assert_problem(client, json_body(text="a" * 40_000), 400)
        assert "255" in problem["detail"]
        response = await client.post("/mo", data=json_body(text="hello"))
        assert response.status == 202
        assert await response.json() == {"routed": True}
    bind_receiver(server)
    [conn] = server.smsc.connections.values()
    assert not conn.closed
    stats = server.smsc.stats
    assert (stats.mo_received, stats.mo_held, stats.mo_sent, stats.mo_unroutable) == (1, 1, 1, 0)


#: Where an MO may go: held (no bind, ``hold_mo``), or to a receiver bound as a deliver_sm account, a data_sm
#: account, or a data_sm account over SMPP 3.3 (which has no data_sm). (label, system_id, interface_version)
SITUATIONS: list[tuple[str, str | None, InterfaceVersion]] = [
    ("held", None, InterfaceVersion.V34),
    ("deliver_sm", "esme", InterfaceVersion.V34),
    ("data_sm", "dsm", InterfaceVersion.V34),
    ("data_sm-3.3", "dsm", InterfaceVersion.V33),
]


def mo_text(pdus: list[Pdu]) -> str:
    """The GSM text of the MO these deliver_sm parts or this one data_sm carry, in arrival order."""
    data = b""
    for pdu in pdus:
        payload = pdu.tlv("message_payload")
        if isinstance(payload, bytes):
            data += payload
            continue
        short, esm_class = pdu["short_message"], pdu["esm_class"]
        assert isinstance(short, bytes)
        assert isinstance(esm_class, int)
        data += split_udh(short)[1] if esm_class & 0x40 else short
    return decode_text(data, 0)


async def post_in(situation: tuple[str, str | None, InterfaceVersion], body: bytes,
                  parts: int = 0) -> tuple[int, dict[str, Any], SmscServer, list[Pdu]]:
    """POST /mo ``body`` to a fresh SMSC (accounts ``esme`` deliver_sm, ``dsm`` data_sm; hold_mo) over real
    sockets, with a receiver of this situation bound by the project's ESME; wait for ``parts`` PDUs to arrive.
    The status, the JSON answer, the server (for its stats) and what the receiver got."""
    _, system_id, version = situation
    smsc = Smsc(SmscConfig(accounts=(Account("esme", "pw"), Account("dsm", "pw", mo_delivery=MoDelivery.DATA_SM)),
                           hold_mo=60.0))
    server = SmscServer(smsc)
    received: list[Pdu] = []
    esme: Esme | None = None
    host, port = await server.listen("127.0.0.1", 0)
    try:
        if system_id is not None:
            esme = await Esme.connect(host, port, on_message=received.append,
                                      config=SessionConfig(role=Role.ESME, interface_version=version))
            await esme.bind(system_id, "pw", CommandId.bind_receiver)
        async with TestClient(TestServer(control_app(server))) as client:
            response = await client.post("/mo", data=body)
            answer: dict[str, Any] = await response.json(content_type=None)
        async with asyncio.timeout(30):
            while len(received) < parts:
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)  # anything more than expected would show too
        if esme is not None:
            await esme.unbind()
        return response.status, answer, server, received
    finally:
        await server.shutdown(grace=0.1)


@pytest.mark.parametrize(
    "body",
    [
        json_body(text="{" * 40_000),  # 80,000 GSM octets (an escape each): more than a message_payload holds
        json_body(text="a" * 40_000),  # one message_payload holds it, 255 deliver_sm parts do not
        json_body(text="Ж" + "a" * 39_999),  # UCS-2: 80,000 octets
        json_body(text="a" * 20_000, data_coding=8),  # UCS-2 asked for: 40,000 octets, over 255 parts of 134
    ],
    ids=["gsm-over-payload", "gsm-over-255-parts", "ucs2-over-payload", "ucs2-asked-over-255-parts"],
)
async def test_an_mo_over_255_deliver_sm_parts_is_the_same_400_whatever_bind_would_take_it(body: bytes) -> None:
    # A data_sm bind answered 202 and dropped the MO at once (unsendable): the MO's form was decided by the bind
    # it met, while a held MO, or one for a deliver_sm bind, was checked against 255 deliver_sm parts.
    details = {}
    for situation in SITUATIONS:
        status, answer, server, received = await post_in(situation, body)
        assert (status, received) == (400, []), situation[0]
        details[situation[0]] = answer["detail"]
        stats = server.smsc.stats
        assert (stats.mo_received, stats.mo_sent, stats.mo_held, stats.unsendable) == (0, 0, 0, 0), situation[0]
    assert len(set(details.values())) == 1, details
    # The longest text that is accepted arrives whole, whatever carries it.
    longest = "a" * (255 * 153)  # 255 parts of 153 GSM characters beside the concatenation header
    for situation, parts in zip(SITUATIONS, (0, 255, 1, 255), strict=True):
        status, answer, server, received = await post_in(situation, json_body(text=longest), parts)
        assert (status, answer) == (202, {"routed": True}), situation[0]
        assert len(received) == parts, situation[0]
        if parts:
            assert mo_text(received) == longest, situation[0]
        stats = server.smsc.stats
        assert (stats.mo_received, stats.unsendable) == (1, 0), situation[0]


async def test_an_mo_no_bind_takes_is_a_404_problem(server: SmscServer, client: TestClient[Any, Any]) -> None:
    problem = await assert_problem(client, json_body(), 404)
    assert "12345" in problem["detail"]
    assert (server.smsc.stats.mo_received, server.smsc.stats.mo_unroutable) == (1, 1)


async def test_a_routed_mo_is_accepted(server: SmscServer, client: TestClient[Any, Any]) -> None:
    bind_receiver(server)
    response = await client.post("/mo", data=json_body(text="Привет", data_coding=8))
    assert response.status == 202
    assert await response.json() == {"routed": True}
    assert (server.smsc.stats.mo_received, server.smsc.stats.mo_sent) == (1, 1)


async def test_stats_show_every_counter_and_the_binds(server: SmscServer, client: TestClient[Any, Any]) -> None:
    bind_receiver(server)
    response = await client.get("/stats")
    assert response.status == 200
    body = await response.json()
    assert body["smsc"] == "smsc"
    assert body["bound"] == 1
    assert body["stats"] == server.smsc.stats.to_json()
    assert {"receipts_refused", "receipts_retried", "mo_received"} <= set(body["stats"])
    [session] = body["sessions"]
    assert session["system_id"] == "esme"


async def read_problem(response: Any, status: int) -> dict[str, Any]:
    """A problem+json response's body, checked."""
    assert response.status == status
    assert response.content_type == "application/problem+json"
    body: dict[str, Any] = await response.json(content_type=None)
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/", "/nope", "/mo/extra", "/stats/"])
async def test_an_unknown_path_is_a_404_problem(client: TestClient[Any, Any], method: str, path: str) -> None:
    await read_problem(await client.request(method, path), 404)


@pytest.mark.parametrize(("method", "path", "allow"),
                         [("GET", "/mo", "POST"), ("PUT", "/mo", "POST"), ("POST", "/stats", "GET, HEAD"),
                          ("DELETE", "/stats", "GET, HEAD")])
async def test_a_wrong_method_is_a_405_problem_naming_the_allowed_ones(client: TestClient[Any, Any], method: str,
                                                                      path: str, allow: str) -> None:
    response = await client.request(method, path)
    body = await read_problem(response, 405)
    assert response.headers["Allow"] == allow
    assert method in body["detail"]


async def test_an_oversized_body_is_a_413_problem(server: SmscServer, client: TestClient[Any, Any]) -> None:
    await read_problem(await client.post("/mo", data=b"x" * (65 * 1024)), 413)
    assert server.smsc.stats.mo_received == 0


@pytest.fixture
async def served(server: SmscServer) -> AsyncIterator[int]:
    """The control API on 127.0.0.1 as ``carrier-sim smsc --control`` runs it (protocol-error logger included)."""
    runner = app_runner(control_app(server), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        yield int(runner.addresses[0][1])
    finally:
        await runner.cleanup()


async def raw_exchange(port: int, request: bytes) -> tuple[bytes, bytes, bytes]:
    """Bytes no HTTP client would send, over a socket: status line, head and body of the answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()  # the request says Connection: close
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return head.split(b"\r\n", 1)[0], head, body


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_is_not_its_content_encoding_is_a_400_problem_without_an_error_logged(
    server: SmscServer, served: int, encoding: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Reading it raised aiohttp's RequestPayloadError, no HTTPException: a 500 text/plain, an ERROR traceback, and
    # one more as aiohttp drained the body after the answer.
    body = json.dumps(GOOD).encode()  # plain JSON, not compressed as the header says
    request = (b"POST /mo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: "
               + encoding.encode() + b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    with caplog.at_level(logging.DEBUG):
        status_line, head, answer = await raw_exchange(served, request)
        stats_line, _, _ = await raw_exchange(served, b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_line == b"HTTP/1.1 400 Bad Request", answer
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(answer)
    assert problem["status"] == 400
    assert f"content-encoding: {encoding}" in problem["detail"].lower()
    assert stats_line == b"HTTP/1.1 200 OK"  # still serving
    assert server.smsc.stats.mo_received == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert "Traceback" not in caplog.text
    drained = [r for r in caplog.records if r.name.startswith("aiohttp") and r.levelno >= logging.WARNING]
    assert all(r.exc_info is None and "ContentEncodingError" in r.getMessage() for r in drained)
