"""The CPU floor of one phone activation: what the third-party parts the design mandates cost, our code aside.

The issue's goal is a million activations end to end in 60 s on the 2-core reference machine, i.e. at most
2 cores x 60 s / 1e6 = 120 us of CPU per activation for *everything*: the harness that emulates the carriers and
the phones, and the identity service under test. This benchmark bounds that goal from below. It times only the
third-party parts an activation must cross, each wrapped in trivial code of our own, and adds them up per
activation. If the sum is already near or above 120 us, no amount of work on our own code reaches the goal on
this machine; the gap between the sum and today's figure is what our own code costs.

One activation crosses, and this script measures (CPU time, user + system, of every thread of the processes
involved -- ``time.process_time`` taken inside each process at the start and end of each timed phase):

a. aiohttp: one HTTP/1.1 keep-alive ``POST /v1/phone-numbers/authenticate`` with a ~200-byte JSON body, answered
   by an ``aiohttp.web`` handler that reads and ``json.loads`` the body and returns a fixed ~600-byte JSON (a
   JWT inside). Server and client are two separate processes; ``--concurrency`` (64) requests in flight over one
   pooled ``TCPConnector``; the client ``json.loads`` each answer. The server process runs on uvloop when it is
   installed, as identity-core does (identity_core/cli.py); the client on asyncio's own loop, as the harness
   does (``--client-uvloop`` puts it on uvloop too). CPU per request is reported for each side; both count (the
   client is the harness's phone).
b. smpp34 (Rust/tokio core, Python bridge), the identity core's SMPP client: an ``smpp34.Client`` bound
   transceiver, on uvloop, with as many readers each holding a ``session.next()`` outstanding as identity-core's
   gateway uses (``CarrierLink.readers``), against the header-only responder of ``bench/smsc_throughput.py``
   (imported and extended here to push deliver_sm with a window of its own, in another process). Three events
   per activation, each timed on its own: an MO deliver_sm received (and acknowledged by smpp34's core), a
   submit_sm round trip (REG-RESP; ``--smpp-window`` in flight), a delivery receipt deliver_sm received. Only the
   client process counts: the responder stands in for the harness's SMSC, which is our own Python code, not a
   mandated third-party part (its CPU is printed for information).
c. cryptography: an Ed25519 signature of a ~300-byte message; ``hmac.digest`` HMAC-SHA256 of ~100 bytes.
d. SQLite through the standard ``sqlite3`` module, identity-core's schema (``identity_core.store``), WAL,
   ``synchronous=FULL``: a binding inserted pending and later updated to active, each in its own transaction of
   ``--batch`` (500) rows, so two commits (two fsyncs) per ``--batch`` activations, amortised.

Not measured, though an activation needs them: our own code everywhere (the SMSC, the phone, the identity core's
logic), JWT encoding, JSON building, logging, metrics. So the sum is a floor, not an estimate.

Repetitions are interleaved (one of every part, then the next), and each figure is the median over ``--repeat``
(5) repetitions with min..max beside it, so that a noisy neighbour on a shared machine hits every part alike.
CPU time per operation, unlike a rate, does not depend on how much of a core the machine left the process.

Usage (from the repository root)::

    PYTHONPATH=. python bench/activation_floor.py [--repeat 5] [--requests 20000] [--events 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import gc
import hmac
import importlib.metadata
import json
import multiprocessing
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from multiprocessing.connection import Connection
from typing import Any

from bench.smsc_throughput import _SEQ, HOST, _CeilingProtocol, machine_context
from carrier_sim.smpp.codec import HEADER, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import Pdu

__all__ = ["main"]

#: The issue's budget: 2 cores x 60 s / 1e6 activations, in microseconds of CPU per activation.
BUDGET_US = 2 * 60 / 1e6 * 1e6
ACTIVATIONS = 1_000_000
SECONDS = 60.0
START_TIMEOUT = 60.0
STEP_TIMEOUT = 300.0
GATEWAY = "447700900000"
PATH = "/v1/phone-numbers/authenticate"
_DELIVER_SM_RESP = int(CommandId.deliver_sm_resp)

# ------------------------------------------------------------------------------------------------ payloads

#: The phone's authenticate request (~200 bytes of JSON).
REQUEST_BODY = json.dumps(
    {
        "phone_number": "+447700900123",
        "proof": "pr_" + "A" * 43,
        "device_key": "MCowBQYDK2VwAyEA" + "b" * 44,
        "nonce": "n-0f3c2a9e71d84b5c",
        "client": "carrier-sim/0.1",
    },
    separators=(",", ":"),
).encode()

#: The identity core's answer (~600 bytes of JSON around a JWT-shaped token).
_JWT = "eyJhbGciOiJFZERTQSIsInR5cCI6IkpXVCJ9." + "c" * 300 + "." + "s" * 86
ANSWER_BODY = json.dumps(
    {
        "status": "active",
        "phone_number": "+447700900123",
        "binding_id": "b_01HZX3K9Q4V7T2M8N6P5R3S1W0",
        "certificate": _JWT,
        "expires_at": "2026-12-31T23:59:59Z",
        "carrier": "uk-vodafone",
        "issued_at": "2026-11-24T12:00:00Z",
    },
    separators=(",", ":"),
).encode()

#: The phone's REG-REQ as the SMSC hands it to the identity core (an MO deliver_sm).
MO_TEXT = b"REG-REQ?v=1&k=MCowBQYDK2VwAyEAq8Xy3vN0pL2mR5tW7uY9zB1cD4eF6gH8iJ0kL2mN4o&t=f81d4fae7dec11d0"
#: The REG-RESP the identity core sends (a submit_sm).
MT_TEXT = b"REG-RESP?status=ok&proof=pr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&exp=600"
#: What the identity core signs: a ~300-byte certificate body.
CERT_MESSAGE = json.dumps(
    {
        "sub": "+447700900123",
        "cnf": {"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "q8Xy3vN0pL2mR5tW7uY9zB1cD4eF6gH8iJ0kL2mN4o"}},
        "iss": "identity-core",
        "carrier": "uk-vodafone",
        "iat": 1795000000,
        "exp": 1795086400,
        "jti": "b_01HZX3K9Q4V7T2M8N6P5R3S1W0",
        "aud": "relying-parties",
        "pad": "x" * 28,
    },
    separators=(",", ":"),
).encode()
#: What the proof check feeds to HMAC-SHA256 (~100 bytes).
HMAC_MESSAGE = b"+447700900123|MCowBQYDK2VwAyEAq8Xy3vN0pL2mR5tW7uY9zB1cD4eF6gH8iJ0kL2mN4o|1795000000|f81d4fae"


def check(condition: bool, what: str) -> None:
    """Refuse to time a workload that is not what it claims to be (unlike assert, survives ``python -O``)."""
    if not condition:
        raise SystemExit(f"benchmark set-up is wrong: {what}")


# ------------------------------------------------------------------------------------------------ child plumbing


async def _recv(conn: Connection) -> Any:
    """The next command on ``conn``, awaited on the event loop (no thread: its CPU would count)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        loop.remove_reader(conn.fileno())
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(conn.fileno(), wake)
    try:
        await ready
    finally:
        loop.remove_reader(conn.fileno())
    return conn.recv()


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _run(main: Callable[[], Coroutine[Any, Any, None]], use_uvloop: bool) -> None:
    if use_uvloop and _has_uvloop():
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def child_main(kind: str, conn: Connection, params: dict[str, Any]) -> None:
    """Body of every child process: run ``kind`` on its loop, reporting a failure to the parent."""
    try:
        body, use_uvloop = _CHILDREN[kind]
        use_uvloop = bool(params.get("uvloop", use_uvloop))
        _run(lambda: body(conn, params), use_uvloop)
    except BaseException as err:
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(err).__name__}: {err}"))
        raise
    finally:
        conn.close()


class Child:
    """A spawned child process of one kind, driven by request/answer over a pipe."""

    def __init__(self, kind: str, **params: Any) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.kind = kind
        self.conn, theirs = ctx.Pipe()
        self.proc = ctx.Process(target=child_main, args=(kind, theirs, params), daemon=True, name=f"floor-{kind}")
        self.proc.start()
        theirs.close()
        self.ready = self.answer(START_TIMEOUT)

    def send(self, *command: Any) -> None:
        """Send a command without waiting for its answer."""
        self.conn.send(command)

    def answer(self, timeout: float = STEP_TIMEOUT) -> tuple[Any, ...]:
        """The child's next answer; raises if it failed or took longer than ``timeout``."""
        if not self.conn.poll(timeout):
            raise RuntimeError(f"{self.kind}: no answer within {timeout:.0f} s")
        message = self.conn.recv()
        if message[0] == "error":
            raise RuntimeError(f"{self.kind} failed: {message[1]}")
        return tuple(message)

    def ask(self, *command: Any) -> tuple[Any, ...]:
        """Send a command and wait for its answer."""
        self.send(*command)
        return self.answer()

    def close(self) -> None:
        """Stop the child; kill it if it does not stop in time."""
        with contextlib.suppress(OSError):
            self.conn.send(("stop",))
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.terminate()
            self.proc.join(2)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(2)
        self.conn.close()


async def _timed_split(worker: Callable[[int], Awaitable[None]], total: int, lanes: int) -> tuple[float, float]:
    """Run ``total`` operations as ``lanes`` concurrent workers (``worker(n)`` does n of them); this process's CPU
    seconds and the wall seconds they took."""
    share, extra = divmod(total, lanes)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(share + (i < extra)) for i in range(lanes)))
    return time.process_time() - cpu0, time.perf_counter() - wall0


async def _serve_commands(conn: Connection, handlers: dict[str, Callable[..., Awaitable[tuple[Any, ...]]]]) -> None:
    """Answer commands until "stop"; "mark" (this process's CPU seconds) is always understood."""
    while True:
        command = await _recv(conn)
        name = command[0]
        if name == "stop":
            return
        if name == "mark":
            conn.send(("mark", time.process_time()))
            continue
        conn.send(await handlers[name](*command[1:]))


# ------------------------------------------------------------------------------------------------ a. aiohttp


async def _http_server(conn: Connection, _params: dict[str, Any]) -> None:
    from aiohttp import web

    async def authenticate(request: web.Request) -> web.Response:
        json.loads(await request.read())
        return web.Response(body=ANSWER_BODY, content_type="application/json")

    app = web.Application()
    app.router.add_post(PATH, authenticate)
    runner = web.AppRunner(app, access_log=None)  # as identity-core runs it
    await runner.setup()
    site = web.TCPSite(runner, HOST, 0)
    await site.start()
    port = int(runner.addresses[0][1])
    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    conn.send(("ready", port, loop_name))
    try:
        await _serve_commands(conn, {})
    finally:
        await runner.cleanup()


async def _http_client(conn: Connection, params: dict[str, Any]) -> None:
    import aiohttp

    concurrency = int(params["concurrency"])
    url = f"http://{HOST}:{int(params['port'])}{PATH}"
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        errors = 0

        async def worker(count: int) -> None:
            nonlocal errors
            for _ in range(count):
                async with session.post(url, data=REQUEST_BODY, headers=headers) as response:
                    body = await response.read()
                    if response.status != 200 or json.loads(body)["status"] != "active":
                        errors += 1

        async def run(requests: int) -> tuple[Any, ...]:
            nonlocal errors
            errors = 0
            cpu, wall = await _timed_split(worker, requests, concurrency)
            return ("done", cpu, wall, errors)

        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        conn.send(("ready", loop_name))
        await _serve_commands(conn, {"run": run})


# ------------------------------------------------------------------------------------------------ b. smpp34


class _Responder(_CeilingProtocol):
    """smsc_throughput's header-only SMSC (bind, submit_sm_resp, enquire_link, unbind), plus deliver_sm pushed
    on request with at most ``window`` unanswered; nothing decoded past the header."""

    def __init__(self) -> None:
        super().__init__(receipts=False)
        self.mo = encode(
            Pdu.make(
                CommandId.deliver_sm,
                0,
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr="447700900123",
                dest_addr_ton=1,
                dest_addr_npi=1,
                destination_addr=GATEWAY,
                short_message=MO_TEXT,
            )
        )
        self.acks = bytearray()
        self.template = self.mo
        self.window = 100
        self.total = self.pushed = self.outstanding = self.acked = self.nacked = 0
        self.finished: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        buf = self.acks
        buf += data
        size, pos, acked = len(buf), 0, 0
        while size - pos >= 16:
            length, command_id, status, _ = HEADER.unpack_from(buf, pos)
            if size - pos < length:
                break
            if command_id == _DELIVER_SM_RESP:
                acked += 1
                self.nacked += status != 0
            pos += length
        del buf[:pos]
        super().data_received(data)
        if acked:
            self.outstanding -= acked
            self.acked += acked
            if self.acked >= self.total:
                if self.finished is not None and not self.finished.done():
                    self.finished.set_result(None)
            else:
                self._fill()

    def push(self, total: int, template: bytes, window: int) -> asyncio.Future[None]:
        """Send ``total`` copies of ``template``, ``window`` unanswered at most; done when all are answered."""
        self.total, self.template, self.window = total, template, window
        self.pushed = self.outstanding = self.acked = self.nacked = 0
        self.finished = asyncio.get_running_loop().create_future()
        self._fill()
        return self.finished

    def _fill(self) -> None:
        out = bytearray()
        while self.outstanding < self.window and self.pushed < self.total:
            self.seq += 1
            at = len(out)
            out += self.template
            _SEQ.pack_into(out, at + 12, self.seq)
            self.pushed += 1
            self.outstanding += 1
        if out and self.transport is not None:
            self.transport.write(out)


async def _smsc(conn: Connection, _params: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    sessions: list[_Responder] = []

    def factory() -> _Responder:
        sessions.append(_Responder())
        return sessions[-1]

    server = await loop.create_server(factory, HOST, 0)
    conn.send(("ready", int(server.sockets[0].getsockname()[1])))

    async def push(count: int, what: str, window: int) -> tuple[Any, ...]:
        responder = sessions[-1]
        template = responder.mo if what == "mo" else responder.receipt
        cpu0 = time.process_time()
        await responder.push(count, template, window)
        return ("pushed", time.process_time() - cpu0, responder.nacked)

    try:
        await _serve_commands(conn, {"push": push})
    finally:
        server.close()


async def _esme(conn: Connection, params: dict[str, Any]) -> None:
    import smpp34

    readers, window = int(params["readers"]), int(params["window"])
    client = smpp34.Client(
        HOST, int(params["port"]), "bench", "pw", bind_type="TRX", window_size=window, inbound_capacity=65_536
    )
    session = await client.connect()
    received = 0
    target = 0
    done = asyncio.Event()
    sink = 0

    async def reader() -> None:
        nonlocal received, sink
        while True:
            event = await session.next()
            if isinstance(event, smpp34.Disconnected):
                return
            # Trivial use of what the gateway reads: the text, and the TLVs (a receipt's id and state).
            sink += len(event.short_message) + len(event.tlvs)
            received += 1
            if received >= target:
                done.set()

    tasks = [asyncio.create_task(reader()) for _ in range(readers)]
    cpu0 = wall0 = 0.0

    async def expect(count: int) -> tuple[Any, ...]:
        nonlocal received, target, cpu0, wall0
        received, target = 0, count
        done.clear()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        return ("armed",)

    async def wait() -> tuple[Any, ...]:
        async with asyncio.timeout(STEP_TIMEOUT):
            await done.wait()
        return ("received", time.process_time() - cpu0, time.perf_counter() - wall0)

    async def submit(count: int, in_flight: int) -> tuple[Any, ...]:
        errors = 0

        async def worker(n: int) -> None:
            nonlocal errors
            for _ in range(n):
                response = await session.submit_sm(
                    "447700900123",
                    MT_TEXT,
                    source_addr=GATEWAY,
                    source_addr_ton=1,
                    source_addr_npi=1,
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    registered_delivery=1,
                )
                if response.command_status != 0 or not response.message_id:
                    errors += 1

        cpu, wall = await _timed_split(worker, count, in_flight)
        return ("submitted", cpu, wall, errors)

    loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
    conn.send(("ready", loop_name))
    try:
        await _serve_commands(conn, {"expect": expect, "wait": wait, "submit": submit})
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await session.unbind()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await client.stop()
        check(sink > 0, "smpp34 readers saw no payload")


#: kind -> (body, run on uvloop where installed). The identity core's side runs on uvloop, as identity-core does;
#: the harness's side (the phone's HTTP client, the SMSC) on asyncio's loop, as carrier-sim does.
_CHILDREN: dict[str, tuple[Callable[[Connection, dict[str, Any]], Coroutine[Any, Any, None]], bool]] = {
    "http-server": (_http_server, True),
    "http-client": (_http_client, False),
    "smsc": (_smsc, False),
    "esme": (_esme, True),
}

# ------------------------------------------------------------------------------------------------ c. and d.


def _cpu_per_op(fn: Callable[[], object], loops: int) -> float:
    """CPU microseconds per call of ``fn`` over ``loops`` calls, the garbage collector off (as timeit does)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        cpu0 = time.process_time()
        for _ in range(loops):
            fn()
        return (time.process_time() - cpu0) / loops * 1e6
    finally:
        if was_enabled:
            gc.enable()


def _calibrate(fn: Callable[[], object], seconds: float) -> int:
    loops = 16
    while (cpu := _cpu_per_op(fn, loops) * loops / 1e6) < 0.05:
        loops *= 4
    return max(1, int(loops * seconds / max(cpu, 1e-9)))


def _sqlite_round(directory: str, activations: int, batch: int) -> float:
    """CPU us per activation: ``activations`` bindings inserted pending then activated, ``batch`` per commit."""
    from identity_core.store import _INSERT_BINDING, _SCHEMA_V1, _UPDATE_BINDING

    path = os.path.join(directory, "floor.db")
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        check(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal", "SQLite refused WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA wal_autocheckpoint = 10000")  # identity_core.store's settings
        conn.execute(f"PRAGMA cache_size = {-1024 * 64}")
        for statement in _SCHEMA_V1:
            conn.execute(statement)
        now = time.time()
        cpu0 = time.process_time()
        for first in range(0, activations, batch):
            ids: list[int] = []
            conn.execute("BEGIN IMMEDIATE")
            for i in range(first, min(first + batch, activations)):
                cursor = conn.execute(
                    _INSERT_BINDING,
                    (f"+4477{i:08d}", f"tok-{i:012d}", "uk-vodafone", i, i.to_bytes(16, "big"), "pending", now,
                     now + 600),
                )
                ids.append(int(cursor.lastrowid or 0))
            conn.execute("COMMIT")
            conn.execute("BEGIN IMMEDIATE")
            for row_id in ids:
                conn.execute(_UPDATE_BINDING, ("active", now + 86400, now, None, None, None, row_id))
            conn.execute("COMMIT")
        cpu = time.process_time() - cpu0
        check(
            conn.execute("SELECT count(*) FROM bindings WHERE state = 'active'").fetchone()[0] == activations,
            "not every binding was activated",
        )
        return cpu / activations * 1e6
    finally:
        conn.close()


# ------------------------------------------------------------------------------------------------ the run


@dataclasses.dataclass
class Part:
    """One measured operation: its CPU us per op in each repetition, and how many an activation needs."""

    key: str
    label: str
    per_activation: int
    counted: bool = True
    samples: list[float] = dataclasses.field(default_factory=list)
    rates: list[float] = dataclasses.field(default_factory=list)

    @property
    def median(self) -> float:
        """Median CPU us per operation."""
        return statistics.median(self.samples) if self.samples else float("nan")


class Bench:
    """The children and in-process workloads, one repetition at a time."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.children: list[Child] = []
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.key = Ed25519PrivateKey.generate()
        self.hmac_key = os.urandom(32)
        self.db_dir = tempfile.mkdtemp(prefix="activation-floor-", dir=args.db_dir)
        self.parts = {
            p.key: p
            for p in (
                Part("http-server", "a. aiohttp server, per request", 1),
                Part("http-client", "a. aiohttp client, per request", 1),
                Part("mo", "b. smpp34 deliver_sm (MO) received", 1),
                Part("submit", "b. smpp34 submit_sm round trip", 1),
                Part("receipt", "b. smpp34 deliver_sm (receipt) received", 1),
                Part("sign", "c. Ed25519 sign, 300 B", 1),
                Part("hmac", "c. HMAC-SHA256, 100 B", 1),
                Part("sqlite", "d. SQLite insert + update, WAL FULL", 1),
                Part("smsc-mo", "(harness responder, per MO pushed)", 0, counted=False),
                Part("smsc-submit", "(harness responder, per submit)", 0, counted=False),
            )
        }

    def start(self) -> None:
        args = self.args
        self.http_server = self._child("http-server")
        port, self.server_loop = self.http_server.ready[1], self.http_server.ready[2]
        self.http_client = self._child(
            "http-client", port=port, concurrency=args.concurrency, uvloop=args.client_uvloop
        )
        self.client_loop = self.http_client.ready[1]
        self.smsc = self._child("smsc")
        self.esme = self._child("esme", port=self.smsc.ready[1], readers=args.readers, window=args.smpp_window)
        self.esme_loop = self.esme.ready[1]
        self.sign_loops = _calibrate(self._sign, args.seconds)
        self.hmac_loops = _calibrate(self._hmac, args.seconds)

    def _child(self, kind: str, **params: Any) -> Child:
        child = Child(kind, **params)
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in reversed(self.children):
            child.close()
        shutil.rmtree(self.db_dir, ignore_errors=True)

    def _sign(self) -> bytes:
        return self.key.sign(CERT_MESSAGE)

    def _hmac(self) -> bytes:
        return hmac.digest(self.hmac_key, HMAC_MESSAGE, "sha256")

    def http(self, requests: int, record: bool) -> None:
        server0 = float(self.http_server.ask("mark")[1])
        _, cpu, wall, errors = self.http_client.ask("run", requests)
        server1 = float(self.http_server.ask("mark")[1])
        check(errors == 0, f"{errors} HTTP request(s) failed")
        if record:
            self.parts["http-client"].samples.append(cpu / requests * 1e6)
            self.parts["http-server"].samples.append((server1 - server0) / requests * 1e6)
            self.parts["http-client"].rates.append(requests / wall)

    def smpp_events(self, what: str, events: int, record: bool) -> None:
        self.esme.ask("expect", events)
        _, smsc_cpu, nacked = self.smsc.ask("push", events, what, self.args.smpp_window)
        _, cpu, wall = self.esme.ask("wait")
        check(nacked == 0, f"smpp34 refused {nacked} deliver_sm (inbound capacity full?)")
        if record:
            self.parts[what].samples.append(cpu / events * 1e6)
            self.parts[what].rates.append(events / wall)
            if what == "mo":
                self.parts["smsc-mo"].samples.append(smsc_cpu / events * 1e6)

    def smpp_submit(self, events: int, record: bool) -> None:
        smsc0 = float(self.smsc.ask("mark")[1])
        _, cpu, wall, errors = self.esme.ask("submit", events, self.args.smpp_window)
        smsc1 = float(self.smsc.ask("mark")[1])
        check(errors == 0, f"{errors} submit_sm refused")
        if record:
            self.parts["submit"].samples.append(cpu / events * 1e6)
            self.parts["submit"].rates.append(events / wall)
            self.parts["smsc-submit"].samples.append((smsc1 - smsc0) / events * 1e6)

    def warm_up(self) -> None:
        args = self.args
        self.http(max(args.concurrency, args.requests // 10), record=False)
        n = max(args.smpp_window, args.events // 10)
        self.smpp_events("mo", n, record=False)
        self.smpp_submit(n, record=False)
        self.smpp_events("receipt", n, record=False)
        _sqlite_round(self.db_dir, args.batch * 2, args.batch)

    def repetition(self) -> None:
        args = self.args
        self.http(args.requests, record=True)
        self.smpp_events("mo", args.events, record=True)
        self.smpp_submit(args.events, record=True)
        self.smpp_events("receipt", args.events, record=True)
        self.parts["sign"].samples.append(_cpu_per_op(self._sign, self.sign_loops))
        self.parts["hmac"].samples.append(_cpu_per_op(self._hmac, self.hmac_loops))
        self.parts["sqlite"].samples.append(_sqlite_round(self.db_dir, args.activations, args.batch))


def _versions() -> str:
    names = ("aiohttp", "smpp34", "cryptography", "uvloop")
    found = []
    for name in names:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} absent")
    openssl = "?"
    with contextlib.suppress(Exception):
        from cryptography.hazmat.backends.openssl.backend import backend

        openssl = backend.openssl_version_text()
    found.append(f"SQLite {sqlite3.sqlite_version}")
    found.append(f"cryptography's {openssl}")
    return ", ".join(found)


def _filesystem(path: str) -> str:
    """The type of the filesystem holding ``path`` (fsync's cost depends on it)."""
    best, kind = "", "?"
    real = os.path.realpath(path)
    with contextlib.suppress(OSError), open("/proc/mounts", encoding="utf-8") as mounts:
        for line in mounts:
            fields = line.split()
            inside = len(fields) > 2 and (real == fields[1] or real.startswith(fields[1].rstrip("/") + "/"))
            if inside and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    return kind


def report(bench: Bench, load_before: str, wall: float) -> str:
    """The table and its context."""
    args = bench.args
    parts = bench.parts
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load_after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        *machine_context(),
        f"nproc {affinity} (usable by this process); loadavg before {load_before}, after {load_after}",
        f"versions: {_versions()}",
        f"event loops: aiohttp server on {bench.server_loop} (as identity-core), aiohttp client on "
        f"{bench.client_loop} ({'--client-uvloop' if args.client_uvloop else 'as the harness'}), "
        f"smpp34 client on {bench.esme_loop} (as identity-core)",
        f"per repetition: {args.requests:,} HTTP requests ({args.concurrency} in flight, one pooled keep-alive "
        f"connector), {args.events:,} smpp34 events of each kind ({args.readers} readers, window "
        f"{args.smpp_window}), crypto ~{args.seconds:.2f} s CPU each, {args.activations:,} SQLite activations "
        f"(batch {args.batch}, db on {_filesystem(bench.db_dir)})",
        f"{args.repeat} interleaved repetition(s), median [min..max]; CPU = user + system, all threads of the "
        f"process doing the operation; total wall {wall:.0f} s",
        "",
        f"{'part':<44} {'CPU us/op':>9} {'[min..max]':>15} {'ops/act':>7} {'us/act':>8} {'ops/s wall':>11}",
    ]
    total = 0.0
    for part in parts.values():
        if not part.counted:
            continue
        per_act = part.median * part.per_activation
        total += per_act
        spread = f"[{min(part.samples):.1f}..{max(part.samples):.1f}]"
        rate = f"{statistics.median(part.rates):,.0f}" if part.rates else ""
        lines.append(
            f"{part.label:<44} {part.median:>9.1f} {spread:>15} {part.per_activation:>7} {per_act:>8.1f} {rate:>11}"
        )
    lines += [
        f"{'sum: the third-party floor per activation':<44} {'':>9} {'':>15} {'':>7} {total:>8.1f}",
        "",
        f"cores needed for {ACTIVATIONS:,} activations in {SECONDS:.0f} s at this floor: "
        f"{total * ACTIVATIONS / SECONDS / 1e6:.2f} (the machine has {os.cpu_count()})",
        f"floor / budget of {BUDGET_US:.0f} us per activation: {total / BUDGET_US:.2f}x "
        f"({100 * total / BUDGET_US:.0f} % of the budget spent before any code of ours runs)",
        "",
        "not counted (harness stand-in, our own code): the header-only SMPP responder spent "
        f"{parts['smsc-mo'].median:.1f} us per MO pushed and {parts['smsc-submit'].median:.1f} us per submit_sm "
        "answered",
        "ops/s wall: the rate the part ran at (HTTP: requests/s; smpp34: events/s) -- context, not the measure",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Parse the CLI, run the repetitions interleaved, print the table."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="interleaved repetitions; medians reported (5)")
    parser.add_argument("--requests", type=int, default=20_000, help="HTTP requests per repetition (20000)")
    parser.add_argument("--concurrency", type=int, default=64, help="HTTP requests in flight (64)")
    parser.add_argument("--events", type=int, default=20_000, help="smpp34 events of each kind per repetition")
    parser.add_argument("--smpp-window", type=int, default=100, help="deliver_sm / submit_sm in flight (100)")
    parser.add_argument("--readers", type=int, default=0, help="smpp34 readers (default: identity-core's)")
    parser.add_argument("--seconds", type=float, default=0.3, help="CPU seconds per crypto measurement (0.3)")
    parser.add_argument("--activations", type=int, default=20_000, help="SQLite activations per repetition")
    parser.add_argument("--batch", type=int, default=500, help="SQLite rows per commit (500)")
    parser.add_argument(
        "--client-uvloop", action="store_true", help="run the HTTP client (the harness's phone) on uvloop too"
    )
    parser.add_argument("--db-dir", default=None, help="where the SQLite file goes (default: the temp dir)")
    args = parser.parse_args(argv)
    if not args.readers:
        from identity_core.gateway import CarrierLink

        default: object = next(f.default for f in dataclasses.fields(CarrierLink) if f.name == "readers")
        check(isinstance(default, int), "CarrierLink.readers has no default")
        args.readers = default
    if min(args.repeat, args.requests, args.concurrency, args.events, args.smpp_window, args.readers,
           args.activations, args.batch) < 1 or args.seconds <= 0:
        parser.error("every count must be at least 1, --seconds more than 0")
    check(150 <= len(REQUEST_BODY) <= 250, f"request body is {len(REQUEST_BODY)} bytes, not ~200")
    check(500 <= len(ANSWER_BODY) <= 700, f"answer body is {len(ANSWER_BODY)} bytes, not ~600")
    check(250 <= len(CERT_MESSAGE) <= 350, f"certificate body is {len(CERT_MESSAGE)} bytes, not ~300")
    check(80 <= len(HMAC_MESSAGE) <= 120, f"HMAC input is {len(HMAC_MESSAGE)} bytes, not ~100")

    load_before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    wall0 = time.perf_counter()
    bench = Bench(args)
    try:
        bench.start()
        bench.warm_up()
        for rep in range(args.repeat):
            bench.repetition()
            print(f"  repetition {rep + 1}/{args.repeat} done", file=sys.stderr, flush=True)
    finally:
        bench.close()
    print(report(bench, load_before, time.perf_counter() - wall0))
    return 0


if __name__ == "__main__":
    sys.exit(main())
