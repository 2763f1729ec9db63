"""Throughput of the identity core's carrier gateway (smpp34 ESME): MT/s with receipts, and MO/s.

Not a test: it prints figures and asserts nothing about speed. The SMSC runs in a child process (so that the two
do not share an event loop or a core; the reference machine has 2) and the gateway in this one:

* ``carrier-sim``: the project's emulated SMSC (``SmscServer``), the real thing with store, receipts and oracle;
* ``smpp34``: smpp34's Rust ``Server`` with a minimal Python accept loop;
* ``ceiling``: the header-only asyncio responder of ``bench/smsc_throughput.py`` (fixed answers, one pre-encoded
  receipt per submit, all with the same message id) -- the fastest SMSC a Python process can be, so its MT figure
  is the gateway's own limit. It cannot send MO; that phase is skipped for it.

Phases, each timed on its own:

* MT: ``--messages`` calls of ``send_mt`` kept ``--window`` deep; "submitted" is when the last submit_sm_resp came
  back, "receipted" when the last receipt reached ``on_receipt``;
* MO: the child pushes ``--messages`` MO (deliver_sm) as fast as the gateway takes them; timed from the request to
  the last ``on_mo`` call.

Usage (from the repository root)::

    PYTHONPATH=. python bench/identity_gateway.py [--messages N] [--window W] [--target NAME ...]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import socket
import sys
import time
from multiprocessing.connection import Connection
from typing import Any

HOST = "127.0.0.1"
SYSTEM_ID = "identity"
PASSWORD = "secret"
GATEWAY = "447700900000"
WAIT = 300.0


# -- the SMSC (child process) -----------------------------------------------------------------------------


async def _carrier_sim(conn: Connection) -> None:
    from carrier_sim.net.smsc_server import SmscServer
    from carrier_sim.smsc.accounts import Account
    from carrier_sim.smsc.centre import Smsc, SmscConfig

    server = SmscServer(Smsc(SmscConfig(accounts=(Account(SYSTEM_ID, PASSWORD),), window=100, peer_window=100)))
    _, port = await server.listen(HOST, 0)
    conn.send(("ready", port))
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command[0] == "stop":
            break
        count = int(command[1])
        for i in range(count):
            server.smsc.inject_mo(f"4477{i:08d}", GATEWAY, f"REG-REQ?v=1&n={i}", server.clock())
            if i % 200 == 199:
                server.service()
                await asyncio.sleep(0)  # let the writes go out rather than queue all of them first
        server.service()
        conn.send(("injected", count))
    await server.shutdown(grace=1.0)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def _smpp34(conn: Connection) -> None:
    import smpp34

    port = _free_port()
    server = smpp34.Server(HOST, port, system_id="smpp34")
    await server.start()
    esmes: dict[str, Any] = {}
    pending: set[asyncio.Future[Any]] = set()
    counter = 0

    def keep(future: Any) -> None:
        task = asyncio.ensure_future(future)
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def accept_loop() -> None:
        nonlocal counter
        while True:
            event = await server.next()
            if isinstance(event, smpp34.SubmitSmEvent):
                counter += 1
                message_id = str(counter)
                event.accept(message_id)
                esme = esmes.get(event.session_id)
                if esme is not None:
                    keep(esme.deliver_sm(event.source_addr, f"id:{message_id} stat:DELIVRD err:000".encode(),
                                         source_addr=event.destination_addr, esm_class=0x04,
                                         tlvs=[smpp34.Tlv(0x001E, message_id.encode() + b"\x00"),
                                               smpp34.Tlv(0x0427, b"\x02")]))
            elif isinstance(event, smpp34.Esme):
                esmes[event.session_id] = event

    loop_task = asyncio.create_task(accept_loop())
    conn.send(("ready", port))
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command[0] == "stop":
            break
        count = int(command[1])
        [esme] = esmes.values()
        window = asyncio.Semaphore(200)

        async def push(i: int, esme: Any = esme, window: asyncio.Semaphore = window) -> None:
            async with window:
                await esme.deliver_sm(GATEWAY, f"REG-REQ?v=1&n={i}".encode(), source_addr=f"4477{i:08d}",
                                      source_addr_ton=1, source_addr_npi=1)

        await asyncio.gather(*(push(i) for i in range(count)))
        conn.send(("injected", count))
    loop_task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await loop_task
    await server.stop()


async def _ceiling(conn: Connection) -> None:
    from bench.smsc_throughput import _serve_ceiling

    port, stop = await _serve_ceiling(True, 0)
    conn.send(("ready", port))
    await asyncio.get_running_loop().run_in_executor(None, conn.recv)
    await stop()


_TARGETS = {"carrier-sim": _carrier_sim, "smpp34": _smpp34, "ceiling": _ceiling}


def smsc_main(target: str, conn: Connection) -> None:
    """Child process: serve the SMSC, report ("ready", port), inject MO on ("mo", n), end on ("stop",)."""
    asyncio.run(_TARGETS[target](conn))


# -- the gateway (this process) ---------------------------------------------------------------------------


async def run(target: str, port: int, conn: Connection, messages: int, window: int) -> dict[str, float]:
    from identity_core.gateway import CarrierGateway, CarrierLink, MoMessage

    mo_count = 0
    receipts = 0
    mo_done = asyncio.Event()
    receipts_done = asyncio.Event()

    async def on_mo(_message: MoMessage) -> None:
        nonlocal mo_count
        mo_count += 1
        if mo_count == messages:
            mo_done.set()

    async def on_receipt(_message_id: str, _state: str, _error: str | None) -> None:
        nonlocal receipts
        receipts += 1
        if receipts == messages:
            receipts_done.set()

    link = CarrierLink(name=target, smsc_host=HOST, smsc_port=port, system_id=SYSTEM_ID, password=PASSWORD,
                       gateway=GATEWAY, country="GB", window=window, send_timeout=WAIT)
    gateway = CarrierGateway(link, on_mo, on_receipt)
    await gateway.start()
    async with asyncio.timeout(30):
        await gateway.bound.wait()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    slots = asyncio.Semaphore(window * 2)  # enough callers to keep the window full, not a task per message

    async def one(i: int) -> None:
        async with slots:
            await gateway.send_mt(f"+4477{i:08d}", f"REG-RESP?status=ok&n={i}")

    async with asyncio.timeout(WAIT):
        await asyncio.gather(*(one(i) for i in range(messages)))
        submitted = time.perf_counter() - wall0
        await receipts_done.wait()
    receipted = time.perf_counter() - wall0
    mt_cpu = time.process_time() - cpu0

    mo_time = mo_cpu = float("nan")
    if target != "ceiling":
        loop = asyncio.get_running_loop()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        conn.send(("mo", messages))
        async with asyncio.timeout(WAIT):
            await mo_done.wait()
        mo_time = time.perf_counter() - wall0
        mo_cpu = time.process_time() - cpu0
        await loop.run_in_executor(None, conn.recv)  # ("injected", n)
    await gateway.stop()
    return {
        "mt_submitted_per_s": messages / submitted,
        "mt_receipted_per_s": messages / receipted,
        "mt_cpu_us": mt_cpu / messages * 1e6,
        "mo_per_s": messages / mo_time,
        "mo_cpu_us": mo_cpu / messages * 1e6,
        "throttled": float(gateway.mt_throttled),
        "retried": float(gateway.mt_retried),
    }


def bench(target: str, messages: int, window: int) -> dict[str, float]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=smsc_main, args=(target, child), daemon=True)
    process.start()
    try:
        if not parent.poll(30):
            raise RuntimeError(f"{target} SMSC did not start")
        _, port = parent.recv()
        result = asyncio.run(run(target, port, parent, messages, window))
        parent.send(("stop",))
        return result
    finally:
        process.join(10)
        if process.is_alive():
            process.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=100)
    parser.add_argument("--target", choices=sorted(_TARGETS), nargs="+", default=sorted(_TARGETS))
    args = parser.parse_args(argv)
    targets = args.target
    print(f"identity gateway throughput: {args.messages} messages, window {args.window}, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} cpus")
    for target in targets:
        r = bench(target, args.messages, args.window)
        print(f"  SMSC {target:12s} MT {r['mt_submitted_per_s']:8.0f}/s submitted, "
              f"{r['mt_receipted_per_s']:8.0f}/s with receipts ({r['mt_cpu_us']:.0f} us CPU each, gateway process) | "
              f"MO {r['mo_per_s']:8.0f}/s ({r['mo_cpu_us']:.0f} us CPU each)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
