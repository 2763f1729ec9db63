"""The SIM Swap client: what a /check answer means, which base URLs are accepted (the pure half), and how the
I/O half reads an answer off the wire from a carrier served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from hypothesis import event, given
from hypothesis import strategies as st

from identity_core.sim_swap import (
    MAX_ANSWER_BYTES,
    CarrierRefused,
    MalformedAnswer,
    SimSwapApi,
    SimSwapClient,
    SimSwapUnavailable,
    api_url,
    check_request,
    read_check_answer,
)


def test_check_request_is_camara_two_legged() -> None:
    assert check_request("+447700900123", 240) == {"phoneNumber": "+447700900123", "maxAge": 240}


@pytest.mark.parametrize(("raw", "swapped"), [(b'{"swapped": true}', True), (b'{"swapped": false, "x": 1}', False)])
def test_answers(raw: bytes, swapped: bool) -> None:
    assert read_check_answer("a", 200, "application/json", raw) is swapped


def test_error_info_is_read() -> None:
    with pytest.raises(CarrierRefused) as info:
        read_check_answer("a", 400, "application/json", b'{"status": 400, "code": "OUT_OF_RANGE", "message": "m"}')
    assert (info.value.status, info.value.code, info.value.outcome) == (400, "OUT_OF_RANGE", "carrier_error")


@pytest.mark.parametrize(
    ("status", "content_type", "raw"),
    [(200, "text/plain", b'{"swapped": true}'), (200, "application/json", b'{"swapped": 1}'),
     (200, "application/json", b"[]"), (200, "application/json", b'{"swapped": Infinity}'),
     (201, "application/json", b'{"swapped": true}'), (302, "application/json", b"")],
)
def test_malformed(status: int, content_type: str, raw: bytes) -> None:
    with pytest.raises(MalformedAnswer):
        read_check_answer("a", status, content_type, raw)


# Well-formed answers ({"swapped": <bool>} plus unrelated members) mixed with noise, so that the bool branch runs
# too: random bytes are almost never such an answer.
_WELL_FORMED = st.tuples(
    st.booleans(),
    st.dictionaries(st.text(max_size=8).filter(lambda k: k != "swapped"), st.integers() | st.text(max_size=8),
                    max_size=3),
).map(lambda pair: (pair[0], json.dumps({**pair[1], "swapped": pair[0]}).encode()))


@given(
    st.one_of(st.just(200), st.integers(100, 599)),
    st.sampled_from(["application/json", "application/x+json", "text/html", ""]),
    st.one_of(_WELL_FORMED, st.binary(max_size=200).map(lambda raw: (None, raw))),
)
def test_any_answer_is_a_verdict_or_unavailable(
    status: int, content_type: str, answer: tuple[bool | None, bytes]
) -> None:
    swapped, raw = answer
    try:
        verdict = read_check_answer("a", status, content_type, raw)
    except SimSwapUnavailable:
        event("unavailable")
        assert not (swapped is not None and status == 200 and content_type.endswith("json"))
        return
    event("verdict")
    assert isinstance(verdict, bool)
    if swapped is not None:
        assert verdict is swapped


def test_well_formed_answers_give_their_verdict() -> None:
    # Explicit examples of both branches of the property above: a verdict each way, and an unavailable.
    assert read_check_answer("a", 200, "application/json", b'{"x": 1, "swapped": true}') is True
    assert read_check_answer("a", 200, "application/x+json", b'{"swapped": false}') is False
    with pytest.raises(SimSwapUnavailable):
        read_check_answer("a", 200, "application/json", b"\x00")


@pytest.mark.parametrize(
    ("given_url", "check"),
    [("http://h:1", "http://h:1/sim-swap/v1/check"), ("https://h/", "https://h/sim-swap/v1/check"),
     ("https://h/camara/sim-swap/v2/", "https://h/camara/sim-swap/v2/check")],
)
def test_api_url(given_url: str, check: str) -> None:
    assert str(SimSwapApi(api_url(given_url)).check_url) == check


@pytest.mark.parametrize("bad", ["h:1", "ftp://h/", "http://", "http://h/?k=1", "http://u:p@h/", "/sim-swap/v1"])
def test_bad_api_url(bad: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        api_url(bad)


@pytest.mark.parametrize(("max_age", "timeout"), [(0, 1.0), (2401, 1.0), (240, 0.0)])
def test_api_limits(max_age: int, timeout: float) -> None:
    with pytest.raises(ValueError, match=r"."):
        SimSwapApi(api_url("http://h"), max_age=max_age, timeout=timeout)


# -- the I/O half: reading a whole answer, and no more than MAX_ANSWER_BYTES of it ----------------------------------


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _streamed(*pieces: bytes) -> _Handler:
    """A handler answering 200 JSON chunked, in ``pieces``, each flushed and given time to arrive on its own."""
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for piece in pieces:
            await response.write(piece)
            await asyncio.sleep(0.05)
        await response.write_eof()
        return response
    return handler


@pytest.fixture
async def carrier_answering() -> AsyncIterator[Callable[[_Handler], Awaitable[SimSwapClient]]]:
    """Serve one /check handler on 127.0.0.1 and give a client whose carrier "c" is that server."""
    runners: list[web.AppRunner] = []
    clients: list[SimSwapClient] = []

    async def serve(handler: _Handler) -> SimSwapClient:
        app = web.Application()
        app.router.add_post("/sim-swap/v1/check", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        client = SimSwapClient({"c": SimSwapApi(api_url(f"http://127.0.0.1:{port}"))})
        clients.append(client)
        return client

    yield serve
    for client in clients:
        await client.close()
    for runner in runners:
        await runner.cleanup()


async def test_an_answer_split_across_chunks_is_read_whole(
        carrier_answering: Callable[[_Handler], Awaitable[SimSwapClient]]) -> None:
    # Only the first piece was read: '{"swapped":' is not JSON, so a correct "not swapped" failed closed as
    # malformed_answer and the binding was not trusted.
    client = await carrier_answering(_streamed(b'{"swapped":', b" fal", b"se}"))
    assert await client.swapped("c", "+447700900123") is False


@pytest.mark.parametrize("tail", [b" " * MAX_ANSWER_BYTES, b" " * (200 * 1024) + b"garbage"],
                         ids=["valid-json-over-the-limit", "garbage-over-the-limit"])
async def test_an_answer_over_the_limit_is_refused_even_when_it_starts_as_a_valid_one(
        carrier_answering: Callable[[_Handler], Awaitable[SimSwapClient]], tail: bytes) -> None:
    # Judged by its first chunk, '{"swapped": false}' followed by 200 KiB of garbage was accepted as "not swapped":
    # a fail-open, and the 64 KiB limit was never enforced past that chunk.
    client = await carrier_answering(_streamed(b'{"swapped": false}', tail))
    with pytest.raises(MalformedAnswer, match="longer than"):
        await client.swapped("c", "+447700900123")


async def test_an_answer_declared_over_the_limit_is_refused(
        carrier_answering: Callable[[_Handler], Awaitable[SimSwapClient]]) -> None:
    body = b'{"swapped": false}' + b" " * MAX_ANSWER_BYTES

    async def whole(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=body, headers={"Content-Type": "application/json"})
    client = await carrier_answering(whole)
    with pytest.raises(MalformedAnswer, match="longer than"):
        await client.swapped("c", "+447700900123")


async def test_an_answer_of_exactly_the_limit_is_read(
        carrier_answering: Callable[[_Handler], Awaitable[SimSwapClient]]) -> None:
    head = b'{"swapped": true}'
    body = head + b" " * (MAX_ANSWER_BYTES - len(head))
    client = await carrier_answering(_streamed(body[:1000], body[1000:]))
    assert await client.swapped("c", "+447700900123") is True
