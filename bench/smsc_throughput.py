"""End-to-end SMSC throughput: one pipelined ESME against our SMSC, smpp34's Server and a header-only ceiling.

Not a test: it prints figures and asserts nothing about speed (design.md: "tests never assert on wall-clock
speed"). What it measures is messages per second through a real TCP socket on 127.0.0.1, a message counting as
done when its submit_sm_resp *and* (with receipts on) its delivery receipt have arrived, the receipt answered with
a deliver_sm_resp.

The load generator is the same for every target and is built not to be the bottleneck: a bare
:class:`asyncio.Protocol` that sends pre-encoded submit_sm templates with the sequence number, the destination's
last five digits and the user_message_reference patched in place (``struct.pack_into``), reads responses
through the 16-octet header alone, and looks into a body only where it must (the message_id of a
submit_sm_resp, the receipted_message_id TLV of a deliver_sm), by hand rather than through the full decoder.
It keeps ``--window`` (100) submits outstanding, requests receipts (registered_delivery=1) and answers every
deliver_sm at once.

Targets, each started afresh in its own process for every run:

* ``carrier-sim``: :class:`~carrier_sim.net.smsc_server.SmscServer` around
  ``Smsc(SmscConfig(accounts=(Account("bench", "pw"),), window=100, peer_window=100))`` -- the real thing: bind
  checks, store, delivery, receipts in the Kannel-like dialect, the oracle watching the session; once listening it
  settles the garbage collector as ``carrier-sim smsc`` does (:mod:`carrier_sim.net.collector`).
* ``smpp34``: smpp34's Rust/tokio ``Server`` with the minimal accept loop a user would write: accept the bind
  (the core does), ``accept()`` each submit_sm with a message id, and send one deliver_sm receipt per message
  through ``Esme.deliver_sm`` without awaiting it in the loop (one future per receipt, so that receipts
  pipeline; smpp34's own example awaits each receipt in the loop, which serialises them and is slower).
* ``ceiling``: a header-only asyncio responder that answers bind, submit_sm (a fixed submit_sm_resp plus a
  pre-encoded receipt), enquire_link and unbind without decoding anything past the header -- about as fast as a
  single-threaded Python asyncio SMSC can go on the machine, which makes its rate the ceiling for ours. It is so
  fast (~40x smpp34) that it runs ``--ceiling-factor`` (30) times as many messages, to last long enough to time;
  and since it does less per message than the generator itself, its figure is really the rate of two lean Python
  endpoints talking -- a lower bound on the ceiling, which only makes a ratio against it more flattering to us.

* ``floor`` (only when ``--targets`` names it): :mod:`smsc_floor`'s one-loop SMSC that does per message only
  what no SMSC can skip (decode, judge the cheap checks, store in columns, answer, a receipt of its own): the most a
  CPython SMSC rebuilt around its hot path could reach. Runs as many messages as the ceiling; its ratio to the
  ceiling is printed.
* ``floor-typed`` (likewise): the same floor written for a compiler, ``bench/smsc_floor_typed.pyx``, built in
  place with Cython (``cythonize -i -3 bench/smsc_floor_typed.pyx``; Cython is not a dependency of the project).

carrier-sim runs ``--smsc-factor`` (5) times as many messages as smpp34 for the same reason: every run lasts a
couple of seconds. The verdicts on the goals (5x smpp34, half the ceiling) are taken on the ratios within each
repetition, with their median, range and how many repetitions reached the goal.

The generator runs in this (the parent) process and the target in a child, so that the two do not share one
event loop or one core (the reference machine has 2). The CPU time each side spent per message is printed beside
the rate: it shows which side was the bottleneck (the generator spends a few microseconds a message against our
SMSC and the ceiling) and, unlike a utilisation, it does not depend on how much of a core a busy shared machine
left the process. Runs are interleaved (repetition 1 of every target, then repetition 2, ...) and the median and
min..max over the repetitions are reported, so that a noisy neighbour hits every target rather than one.

Usage (from the repository root)::

    PYTHONPATH=. python bench/smsc_throughput.py [--messages N] [--repeat K] [--no-receipts]
    PYTHONPATH=. python bench/smsc_throughput.py --profile /tmp/smsc.prof   # cProfile the carrier-sim SMSC
    PYTHONPATH=. python bench/smsc_throughput.py --py-spy /tmp/smsc.spy     # sample it with py-spy instead
    PYTHONPATH=. python bench/smsc_throughput.py --baseline /tmp/old-tree    # also run an older carrier_sim
    PYTHONPATH=. python bench/smsc_throughput.py --loop uvloop               # every target on uvloop

``--loop`` is the event loop every target serves on: asyncio's by default, the loop ``carrier-sim smsc`` itself
serves on, or uvloop. All targets share it -- the ceiling is a Python responder on the same loop as ours, and
smpp34's accept loop runs on it too -- so a ratio compares SMSCs, not loops. The loop matters for smpp34: its
Rust threads hand every event to the loop with ``call_soon_threadsafe``, which asyncio's loop pays for with a
write to its self-pipe per call and uvloop coalesces, so on uvloop smpp34 spends about half the CPU per message
(docs/performance.md). The generator stays on asyncio's loop for every target: it is the instrument.

``--baseline DIR`` adds a fourth target, ``baseline``: the same SMSC set-up served by the ``carrier_sim`` package
found in DIR (a checkout of an earlier commit, e.g. ``git worktree add /tmp/old-tree HEAD~1``), interleaved with
the others, so that a change is judged by a paired comparison in one invocation rather than by two runs on a
machine whose load moves in between.

``--profile FILE`` runs only the carrier-sim target, once, with cProfile switched on in the SMSC process while
the load runs; it writes the raw profile to FILE and prints the hottest functions. cProfile charges every call
its own overhead, which inflates small functions; ``--py-spy FILE`` (needs ``pip install py-spy``) samples the
SMSC process from outside instead, writes the collapsed stacks to FILE and prints own and inclusive shares per
function -- the better guide to where the time goes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import multiprocessing
import os
import platform
import pstats
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, cast

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.codec import HEADER, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.tlv import NetworkErrorCode

__all__ = ["TARGETS", "RunResult", "main"]

HOST = "127.0.0.1"
SYSTEM_ID = "bench"
PASSWORD = "pw"
#: The three targets, in the order they are run and printed (plus ``baseline`` with ``--baseline DIR``).
TARGETS = ("carrier-sim", "smpp34", "ceiling")
#: The template's destination and its user_message_reference TLV (tag 0x0204, length 2), patched per message.
_DESTINATION = b"447700900123"
_REFERENCE_TLV = b"\x02\x04\x00\x02\x12\x34"
_REFERENCE = struct.Struct(">H")
_FIVE_DIGITS = [b"%05d" % n for n in range(100_000)]
BASELINE = "baseline"
#: An optional target (``--targets ...,floor``): the least a CPython SMSC must do per message (bench/smsc_floor.py).
FLOOR = "floor"
#: Another (``--targets ...,floor-typed``): the floor written for a compiler (bench/smsc_floor_typed.pyx, built with
#: Cython, which the project does not depend on).
FLOOR_TYPED = "floor-typed"
#: How long a child may take to start listening, and to stop, before it is killed.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

_SEQ = struct.Struct(">I")
_TLV_HEAD = struct.Struct(">HH")
_SUBMIT_SM_RESP = int(CommandId.submit_sm_resp)
_DELIVER_SM = int(CommandId.deliver_sm)
_BIND_TRX_RESP = int(CommandId.bind_transceiver_resp)
_ENQUIRE_LINK = int(CommandId.enquire_link)
_UNBIND = int(CommandId.unbind)
_UNBIND_RESP = int(CommandId.unbind_resp)
_GENERIC_NACK = int(CommandId.generic_nack)
_RECEIPTED_MESSAGE_ID = 0x001E
_MESSAGE_STATE = 0x0427

TEXT_160 = (
    "Your verification code is 482913. Do not share this code with anyone; our staff will never ask for it. "
    "If you did not request a code, ignore this message. Ref 7"
)

# ------------------------------------------------------------------------------------------------ wire templates


def submit_sm_template(receipts: bool) -> bytes:
    """The submit_sm every target receives: alphanumeric sender, E.164 recipient, 160 GSM characters, a relative
    validity and two TLVs, as an identity service sends it. Sequence number 0, patched per send."""
    return encode(
        Pdu.make(
            CommandId.submit_sm,
            0,
            source_addr_ton=5,
            source_addr="VerifySvc",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr=_DESTINATION.decode(),
            validity_period="000000001000000R",
            registered_delivery=1 if receipts else 0,
            short_message=gsm7.encode(TEXT_160),
            tlvs={"user_message_reference": 0x1234, "callback_num": b"\x01\x01447700900000"},
        )
    )


def submit_offsets(template: bytes) -> tuple[int, int]:
    """Where :func:`vary_submit` patches a :func:`submit_sm_template`: its destination's last five digits, and
    its user_message_reference's value."""
    return (template.index(_DESTINATION + b"\0") + len(_DESTINATION) - 5,
            template.index(_REFERENCE_TLV) + len(_REFERENCE_TLV) - 2)


def vary_submit(out: bytearray, at: int, seq: int, offsets: tuple[int, int]) -> None:
    """Make the submit_sm template copied to ``out[at:]`` message ``seq``: its sequence number, its own phone (one
    of 100,000 of one numbering block, in turn) and its own user_message_reference, as an identity service's
    messages differ; the PDU's length does not change."""
    dest, reference = offsets
    _SEQ.pack_into(out, at + 12, seq)
    out[at + dest:at + dest + 5] = _FIVE_DIGITS[seq % 100_000]
    _REFERENCE.pack_into(out, at + reference, seq & 0xFFFF)


def bind_template() -> bytes:
    """bind_transceiver as the generator sends it (sequence number 1)."""
    return encode(
        Pdu.make(CommandId.bind_transceiver, 1, system_id=SYSTEM_ID, password=PASSWORD, interface_version=0x34)
    )


def receipt_text(message_id: str) -> bytes:
    """A receipt's short_message in the usual ``id:... stat:DELIVRD`` shape (fixed dates: cheap on purpose)."""
    return (
        f"id:{message_id} sub:001 dlvrd:001 submit date:2401011200 done date:2401011200 stat:DELIVRD err:000 "
        "text:Your verification"
    ).encode("ascii")


def receipted_message_id(frame: bytes | bytearray, end: int, pos: int = 0) -> bytes:
    """The receipted_message_id TLV of the deliver_sm at ``frame[pos:end]``, by walking the mandatory fields by
    hand (cheaper than a full decode); falls back to the ``id:`` of the receipt text, then to ``b""``."""
    p = frame.index(0, pos + 16) + 1  # service_type
    p = frame.index(0, p + 2) + 1  # source_addr_ton, source_addr_npi, source_addr
    p = frame.index(0, p + 2) + 1  # dest_addr_ton, dest_addr_npi, destination_addr
    p = frame.index(0, p + 3) + 1  # esm_class, protocol_id, priority_flag, schedule_delivery_time
    p = frame.index(0, p) + 1  # validity_period
    p += 4  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
    sm_length = frame[p]
    text_at = p + 1
    p = text_at + sm_length
    while p + 4 <= end:
        tag, length = _TLV_HEAD.unpack_from(frame, p)
        p += 4
        if tag == _RECEIPTED_MESSAGE_ID:
            return bytes(frame[p : p + length]).rstrip(b"\x00")
        p += length
    text = bytes(frame[text_at : text_at + sm_length])
    if text.startswith(b"id:"):
        return text[3:].split(b" ", 1)[0]
    return b""


# ------------------------------------------------------------------------------------------------ load generator


@dataclass
class RunResult:
    """One run of the generator against one target."""

    target: str
    messages: int
    seconds: float
    submit_errors: int
    receipts: int
    generator_cpu: float
    target_cpu: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        """Messages done per second."""
        return self.messages / self.seconds if self.seconds > 0 else 0.0


class LoadGenerator(asyncio.Protocol):
    """A lean pipelined ESME: see the module docstring. One instance drives one run."""

    def __init__(self, messages: int, window: int, receipts: bool) -> None:
        self.messages = messages
        self.window = window
        self.receipts = receipts
        self.template = submit_sm_template(receipts)
        # Each submit_sm gets its own destination and user_message_reference, as an identity service's do (one
        # phone, one reference per message): a template sent unchanged let a codec that caches repeated fields
        # (ours caches TLVs) win 7-9 % it would not win against real traffic.
        self._offsets = submit_offsets(self.template)
        self.dlr_resp = encode(Pdu.make(CommandId.deliver_sm_resp, 0))
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.seq = 1  # the bind's
        self.sent = 0
        self.responses = 0
        self.errors = 0
        self.receipts_seen = 0
        self.done = 0
        self.started = 0.0
        self.finished = 0.0
        self.failure = ""
        # Receipt matching by message id, as multisets (the ceiling answers every submit with the same id).
        self._awaiting_receipt: dict[bytes, int] = {}
        self._awaiting_response: dict[bytes, int] = {}
        loop = asyncio.get_running_loop()
        self.bound: asyncio.Future[None] = loop.create_future()
        self.complete: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()

    # -- asyncio.Protocol ----------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(bind_template())

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.bound, self.complete, self.closed):
            if not future.done():
                if future is self.closed:
                    future.set_result(None)
                else:
                    future.set_exception(ConnectionError(f"connection lost: {exc or 'closed by peer'}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        size = len(buf)
        pos = 0
        out = bytearray()
        unpack = HEADER.unpack_from
        while size - pos >= 16:
            length, command_id, status, seq = unpack(buf, pos)
            if size - pos < length:
                break
            end = pos + length
            if command_id == _SUBMIT_SM_RESP:
                self.responses += 1
                if status:
                    self.errors += 1
                elif self.receipts:
                    self._response_for(bytes(buf[pos + 16 : end - 1]))
                else:
                    self.done += 1
                if self.sent < self.messages:
                    self._submit(out)
            elif command_id == _DELIVER_SM:
                at = len(out)
                out += self.dlr_resp
                _SEQ.pack_into(out, at + 12, seq)
                if self.receipts:
                    self.receipts_seen += 1
                    self._receipt_for(receipted_message_id(buf, end, pos))
            elif command_id == _BIND_TRX_RESP:
                self._on_bind(status, out)
            elif command_id == _ENQUIRE_LINK:
                out += HEADER.pack(16, CommandId.enquire_link_resp, 0, seq)
            elif command_id == _UNBIND:
                out += HEADER.pack(16, CommandId.unbind_resp, 0, seq)
            elif command_id == _UNBIND_RESP:
                if self.transport is not None:
                    self.transport.close()
            elif command_id == _GENERIC_NACK:
                self.failure = f"generic_nack status 0x{status:08x} for sequence {seq}"
                self.responses += 1
                self.errors += 1
            pos = end
        if pos == size:
            buf.clear()
        elif pos:
            del buf[:pos]
        if out and self.transport is not None:
            self.transport.write(out)
        if self.done + self.errors >= self.messages and not self.complete.done() and self.sent:
            self.finished = time.perf_counter()
            self.complete.set_result(None)

    # -- internals -----------------------------------------------------------------------------------------

    def _on_bind(self, status: int, out: bytearray) -> None:
        if self.bound.done():
            return
        if status:
            self.bound.set_exception(ConnectionError(f"bind refused: status 0x{status:08x}"))
            return
        self.bound.set_result(None)
        self.started = time.perf_counter()
        for _ in range(min(self.window, self.messages)):
            self._submit(out)

    def _submit(self, out: bytearray) -> None:
        self.seq += 1
        at = len(out)
        out += self.template
        vary_submit(out, at, self.seq, self._offsets)
        self.sent += 1

    def _response_for(self, message_id: bytes) -> None:
        early = self._awaiting_response.get(message_id)
        if early:
            if early == 1:
                del self._awaiting_response[message_id]
            else:
                self._awaiting_response[message_id] = early - 1
            self.done += 1
        else:
            self._awaiting_receipt[message_id] = self._awaiting_receipt.get(message_id, 0) + 1

    def _receipt_for(self, message_id: bytes) -> None:
        waiting = self._awaiting_receipt.get(message_id)
        if waiting:
            if waiting == 1:
                del self._awaiting_receipt[message_id]
            else:
                self._awaiting_receipt[message_id] = waiting - 1
            self.done += 1
        else:
            self._awaiting_response[message_id] = self._awaiting_response.get(message_id, 0) + 1

    def unbind(self) -> None:
        """Ask for an unbind once the run is over (the target then closes)."""
        if self.transport is not None and not self.transport.is_closing():
            self.seq += 1
            self.transport.write(HEADER.pack(16, CommandId.unbind, 0, self.seq))


async def generate(port: int, messages: int, window: int, receipts: bool, timeout: float) -> LoadGenerator:
    """Connect, bind, push ``messages`` through, unbind. Bounded by ``timeout`` seconds overall."""
    loop = asyncio.get_running_loop()
    gen: LoadGenerator | None = None
    try:
        async with asyncio.timeout(timeout):
            _, gen = await loop.create_connection(lambda: LoadGenerator(messages, window, receipts), HOST, port)
            await gen.bound
            await gen.complete
    except (TimeoutError, ConnectionError) as err:
        if gen is None:
            raise
        what = f"timed out after {timeout:.0f} s" if isinstance(err, TimeoutError) else str(err)
        gen.failure = gen.failure or (
            f"{what}: sent {gen.sent}, responses {gen.responses}, receipts {gen.receipts_seen}, done {gen.done}"
        )
        gen.finished = time.perf_counter()
        if not gen.started:  # never bound: no rate to speak of
            gen.started = gen.finished
    gen.unbind()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(3.0):
            await gen.closed
    if gen.transport is not None:
        gen.transport.abort()
    return gen


# ------------------------------------------------------------------------------------------------ targets


class _CeilingProtocol(asyncio.Protocol):
    """Header-only SMSC: fixed answers, one pre-encoded receipt per submit_sm, nothing decoded past the header."""

    def __init__(self, receipts: bool) -> None:
        self.receipts = receipts
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.seq = 0
        self.submit_resp = encode(Pdu.make(CommandId.submit_sm_resp, 0, message_id="1"))
        self.bind_resp = encode(Pdu.make(CommandId.bind_transceiver_resp, 0, system_id="ceiling"))
        self.receipt = encode(
            Pdu.make(
                CommandId.deliver_sm,
                0,
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr="447700900123",
                dest_addr_ton=5,
                destination_addr="VerifySvc",
                esm_class=0x04,
                short_message=receipt_text("1"),
                tlvs={"receipted_message_id": "1", "message_state": 2, "network_error_code": NetworkErrorCode(3, 0)},
            )
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not derive from asyncio's classes.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        size = len(buf)
        pos = 0
        out = bytearray()
        close = False
        while size - pos >= 16:
            length, command_id, _, seq = HEADER.unpack_from(buf, pos)
            if size - pos < length:
                break
            pos += length
            if command_id == 0x00000004:  # submit_sm
                at = len(out)
                out += self.submit_resp
                _SEQ.pack_into(out, at + 12, seq)
                if self.receipts:
                    self.seq += 1
                    at = len(out)
                    out += self.receipt
                    _SEQ.pack_into(out, at + 12, self.seq)
            elif command_id in (0x00000001, 0x00000002, 0x00000009):  # bind_*
                at = len(out)
                out += self.bind_resp
                HEADER.pack_into(out, at, len(self.bind_resp), command_id | 0x80000000, 0, seq)
            elif command_id == 0x00000015:  # enquire_link
                out += HEADER.pack(16, 0x80000015, 0, seq)
            elif command_id == 0x00000006:  # unbind
                out += HEADER.pack(16, 0x80000006, 0, seq)
                close = True
        if pos == size:
            buf.clear()
        elif pos:
            del buf[:pos]
        if self.transport is not None:
            if out:
                self.transport.write(out)
            if close:
                self.transport.close()


async def _serve_protocol(factory: Callable[[], asyncio.Protocol], port: int) -> tuple[int, Callable[[], Any]]:
    """Serve a bare asyncio protocol (the ceiling, the floors) on 127.0.0.1; (its port, how to stop it)."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(factory, HOST, port)

    async def stop() -> None:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT / 2):
                await server.wait_closed()

    return int(server.sockets[0].getsockname()[1]), stop


async def _serve_ceiling(receipts: bool, port: int) -> tuple[int, Callable[[], Any]]:
    return await _serve_protocol(lambda: _CeilingProtocol(receipts), port)


async def _serve_floor(receipts: bool, port: int) -> tuple[int, Callable[[], Any]]:
    try:
        from smsc_floor import FloorProtocol
    except ImportError:  # run as bench.smsc_throughput (PYTHONPATH=.), not as a script
        from bench.smsc_floor import FloorProtocol

    del receipts  # the floor honours registered_delivery itself
    return await _serve_protocol(lambda: FloorProtocol(PASSWORD.encode()), port)


async def _serve_floor_typed(receipts: bool, port: int) -> tuple[int, Callable[[], Any]]:
    try:
        from smsc_floor_typed import FloorProtocol  # type: ignore[import-not-found]
    except ImportError as err:
        raise RuntimeError("floor-typed is not built: cythonize -i -3 bench/smsc_floor_typed.pyx (needs Cython)"
                           ) from err

    del receipts  # likewise
    return await _serve_protocol(lambda: FloorProtocol(PASSWORD.encode()), port)


async def _serve_carrier_sim(receipts: bool, port: int) -> tuple[int, Callable[[], Any]]:
    from carrier_sim.net.smsc_server import SmscServer
    from carrier_sim.smsc.accounts import Account
    from carrier_sim.smsc.centre import Smsc, SmscConfig

    del receipts  # the SMSC honours registered_delivery itself
    server = SmscServer(Smsc(SmscConfig(accounts=(Account(SYSTEM_ID, PASSWORD),), window=100, peer_window=100)))
    _, bound = await server.listen(HOST, port)
    try:  # as `carrier-sim smsc` does once listening (a baseline tree may predate it)
        from carrier_sim.net.collector import settle_after_start
    except ImportError:
        pass
    else:
        settle_after_start()

    async def stop() -> None:
        await server.shutdown(grace=1.0)

    return bound, stop


def _free_port() -> int:
    # smpp34's Server has no way to report the port it bound, so pick one; the caller retries on a clash.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def _serve_smpp34(receipts: bool, port: int) -> tuple[int, Callable[[], Any]]:
    import smpp34

    last: Exception | None = None
    for _ in range(5):
        chosen = port or _free_port()
        server = smpp34.Server(HOST, chosen, system_id="smpp34")
        try:
            await server.start()
        except Exception as err:  # a port clash: smpp34 raises no specific type for it
            last = err
            continue
        break
    else:
        raise RuntimeError(f"smpp34 Server would not start: {last}")

    esmes: dict[str, Any] = {}
    pending: set[asyncio.Future[Any]] = set()
    state_tlv = smpp34.Tlv(_MESSAGE_STATE, b"\x02")  # DELIVERED
    counter = 0

    async def accept_loop() -> None:
        # The minimal accept loop: binds are accepted by the core; answer every submit_sm and, when a receipt
        # is asked for, send one per message without waiting for it (a task each), so receipts pipeline.
        nonlocal counter
        while True:
            event = await server.next()
            if isinstance(event, smpp34.SubmitSmEvent):
                counter += 1
                message_id = str(counter)
                event.accept(message_id)
                if receipts and event.registered_delivery & 1:
                    esme = esmes.get(event.session_id)
                    if esme is not None:
                        # deliver_sm returns an awaitable future, not a coroutine: ensure_future, not create_task.
                        task = asyncio.ensure_future(
                            esme.deliver_sm(
                                event.source_addr,
                                receipt_text(message_id),
                                source_addr=event.destination_addr,
                                source_addr_ton=event.dest_addr_ton,
                                source_addr_npi=event.dest_addr_npi,
                                dest_addr_ton=event.source_addr_ton,
                                dest_addr_npi=event.source_addr_npi,
                                esm_class=0x04,
                                tlvs=[smpp34.Tlv(_RECEIPTED_MESSAGE_ID, message_id.encode() + b"\x00"), state_tlv],
                            )
                        )
                        pending.add(task)
                        task.add_done_callback(pending.discard)
            elif isinstance(event, smpp34.Esme):
                esmes[event.session_id] = event
            elif isinstance(event, smpp34.Unbound):
                esmes.pop(event.session_id, None)

    loop_task = asyncio.create_task(accept_loop())

    async def stop() -> None:
        loop_task.cancel()
        for task in list(pending):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            async with asyncio.timeout(STOP_TIMEOUT / 2):
                await asyncio.gather(loop_task, *pending, return_exceptions=True)
                await server.stop()

    return chosen, stop


_SERVERS: dict[str, Callable[[bool, int], Any]] = {
    "carrier-sim": _serve_carrier_sim,
    BASELINE: _serve_carrier_sim,  # from another tree: see _use_tree
    "smpp34": _serve_smpp34,
    "ceiling": _serve_ceiling,
    FLOOR: _serve_floor,
    FLOOR_TYPED: _serve_floor_typed,
}


def _use_tree(tree: str) -> None:
    """Make ``import carrier_sim`` load the package in ``tree`` (this child process only): forget the modules this
    script imported from the current tree and put ``tree`` first on the path."""
    if not os.path.isdir(os.path.join(tree, "carrier_sim")):
        raise RuntimeError(f"no carrier_sim package in {tree}")
    for name in [m for m in sys.modules if m == "carrier_sim" or m.startswith("carrier_sim.")]:
        del sys.modules[name]
    sys.path.insert(0, os.path.abspath(tree))


def target_main(
    target: str, receipts: bool, conn: Connection, profile_path: str | None, tree: str | None = None,
    loop: str = "asyncio",
) -> None:
    """Child process body: serve ``target`` on 127.0.0.1 on the event ``loop`` named ("uvloop" or "asyncio"),
    report ("ready", port, cpu), stop on "stop"."""
    try:
        if tree is not None:
            _use_tree(tree)
        if loop == "uvloop":
            import uvloop

            uvloop.run(_target(target, receipts, conn, profile_path))
        else:
            asyncio.run(_target(target, receipts, conn, profile_path))
    except BaseException as err:  # tell the parent rather than die silently
        with contextlib.suppress(OSError):
            conn.send(("error", f"{type(err).__name__}: {err}"))
        raise
    finally:
        conn.close()


async def _target(target: str, receipts: bool, conn: Connection, profile_path: str | None) -> None:
    loop = asyncio.get_running_loop()
    port, stop = await _SERVERS[target](receipts, 0)
    stopping = asyncio.Event()
    loop.add_reader(conn.fileno(), stopping.set)
    profiler = cProfile.Profile() if profile_path else None
    conn.send(("ready", port, time.process_time()))
    if profiler is not None:
        profiler.enable()
    try:
        await stopping.wait()
    finally:
        if profiler is not None:
            profiler.disable()
        loop.remove_reader(conn.fileno())
    cpu = time.process_time()
    if conn.poll():
        conn.recv()  # the "stop"
    if profiler is not None and profile_path:
        profiler.dump_stats(profile_path)
    await stop()
    conn.send(("stopped", cpu))


@contextlib.contextmanager
def target_process(
    target: str, receipts: bool, profile_path: str | None = None, tree: str | None = None, loop: str = "asyncio"
) -> Iterator[tuple[int, float, Connection, int]]:
    """Start a target in a child process; yield (port, its CPU seconds when ready, pipe to it, its pid). The
    child is stopped, and if it does not stop in time killed, however the block is left."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=target_main,
        args=(target, receipts, child, profile_path, tree, loop),
        daemon=True,
        name=f"bench-{target}",
    )
    proc.start()
    child.close()
    try:
        if not parent.poll(START_TIMEOUT):
            raise RuntimeError(f"{target} did not start within {START_TIMEOUT:.0f} s")
        message = parent.recv()
        if message[0] != "ready":
            raise RuntimeError(f"{target} failed to start: {message[1]}")
        yield int(message[1]), float(message[2]), parent, int(proc.pid or 0)
    finally:
        with contextlib.suppress(OSError, BrokenPipeError):
            parent.send("stop")
        proc.join(STOP_TIMEOUT)
        if proc.is_alive():
            proc.terminate()
            proc.join(2.0)
        if proc.is_alive():
            proc.kill()
            proc.join(2.0)
        parent.close()


@contextlib.contextmanager
def py_spy(pid: int, path: str | None) -> Iterator[None]:
    """Sample process ``pid`` with py-spy into ``path`` (collapsed stacks) for the duration of the block; a no-op
    when ``path`` is None. py-spy pauses the process for each sample (consistent stacks, slower run)."""
    if path is None:
        yield
        return
    exe = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    if not os.path.exists(exe):
        raise SystemExit("py-spy not found: pip install py-spy")
    spy = subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--output", path, "--format", "raw", "--rate", "250"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.0)  # let it attach before the load starts
        yield
    finally:
        spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        try:
            spy.wait(30)
        except subprocess.TimeoutExpired:
            spy.kill()
            spy.wait(5)


def run_once(
    target: str,
    messages: int,
    window: int,
    receipts: bool,
    timeout: float,
    profile_path: str | None = None,
    spy_path: str | None = None,
    tree: str | None = None,
    loop: str = "asyncio",
) -> RunResult:
    """One run: a fresh target process, the generator here, the target's CPU time reported back. ``tree``: serve
    the carrier_sim package found there instead of this one (the ``baseline`` target). ``loop``: the target's
    event loop; the generator always runs on asyncio's, so that it is the same instrument for every target."""
    with (
        target_process(target, receipts, profile_path, tree, loop) as (port, ready_cpu, pipe, pid),
        py_spy(pid, spy_path),
    ):
        cpu0 = time.process_time()
        gen = asyncio.run(generate(port, messages, window, receipts, timeout))
        cpu1 = time.process_time()
        pipe.send("stop")
        if pipe.poll(STOP_TIMEOUT):
            reply = pipe.recv()
            target_cpu = float(reply[1]) - ready_cpu if reply[0] == "stopped" else 0.0
        else:
            target_cpu = 0.0
    seconds = gen.finished - gen.started
    result = RunResult(target, gen.done, seconds, gen.errors, gen.receipts_seen, cpu1 - cpu0, target_cpu, gen.failure)
    return result


# ------------------------------------------------------------------------------------------------ report


def machine_context() -> list[str]:
    """What the figures were measured on; quote it with them."""
    model = "unknown CPU"
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return [
        f"machine: {model}, nproc {os.cpu_count()}, loadavg {load}",
        f"python {platform.python_version()} ({platform.python_implementation()}) on {platform.machine()}",
    ]


def report(results: dict[str, list[RunResult]], receipts: bool, counts: dict[str, int], window: int,
           loop: str = "asyncio") -> str:
    """The results table."""
    per_run = ", ".join(f"{t} {n:,}" for t, n in counts.items())
    lines = [
        *machine_context(),
        f"targets serve on {loop}'s event loop, the generator on asyncio's",
        f"messages per run: {per_run}; window {window}, receipts {'on' if receipts else 'off'}, "
        f"{max(len(r) for r in results.values())} interleaved run(s) per target; generator and target in "
        "separate processes",
        "",
        f"{'target':<12} {'msg/s median':>13} {'min..max msg/s':>19} {'vs smpp34':>10} {'vs ceiling':>11}"
        f" {'CPU us/msg gen/target':>22}",
    ]
    medians = {t: statistics.median(r.rate for r in runs) for t, runs in results.items() if runs}
    for target, runs in results.items():
        if not runs:
            continue
        rates = [r.rate for r in runs]
        med = medians[target]
        vs34 = f"{med / medians['smpp34']:.2f}x" if medians.get("smpp34") else "n/a"
        vsceil = f"{med / medians['ceiling']:.2f}x" if medians.get("ceiling") else "n/a"
        # CPU time per message on each side (medians over the runs): unlike a utilisation, it does not depend on
        # how much of a core a busy shared machine left the process.
        gen_us = statistics.median(1e6 * r.generator_cpu / max(1, r.messages) for r in runs)
        tgt_us = statistics.median(1e6 * r.target_cpu / max(1, r.messages) for r in runs)
        lines.append(
            f"{target:<12} {med:>13,.0f} {min(rates):>9,.0f}..{max(rates):<9,.0f} {vs34:>10} {vsceil:>11}"
            f" {gen_us:>11.1f}/{tgt_us:<10.1f}"
        )
    notes = [f"{r.target}: {r.note}" for runs in results.values() for r in runs if r.note]
    notes += [
        f"{r.target}: {r.submit_errors} submit(s) refused" for runs in results.values() for r in runs if r.submit_errors
    ]
    if notes:
        lines += ["", "problems:", *(f"  {n}" for n in notes)]
    if medians.get("carrier-sim") and medians.get("smpp34") and medians.get("ceiling"):
        # Judged on the ratios within each repetition (the runs of one repetition share the machine's load of the
        # moment), with their spread: one invocation's ratio of medians moved from 4.1x to 5.2x between runs.
        lines += ["", *(_goal(results, other, factor) for other, factor in (("smpp34", 5.0), ("ceiling", 0.5)))]
    lines += _paired(results)
    for name, what in ((FLOOR, "a CPython SMSC doing the real per-message work (bench/smsc_floor.py)"),
                       (FLOOR_TYPED, "the same written for a compiler (bench/smsc_floor_typed.pyx)")):
        floor = [(a, b) for a, b in zip(results.get(name) or [], results.get("ceiling") or [], strict=False)
                 if a.rate and b.rate]
        if floor:
            ratios = [a.rate / b.rate for a, b in floor]
            lines += ["", f"{name} / ceiling, paired per repetition: {statistics.median(ratios):.2f}x median "
                          f"({' '.join(f'{r:.2f}' for r in ratios)}): how near {what} comes to the header-only "
                          "responder"]
    lines += [
        "",
        "CPU us/msg: CPU time per message of the generator (this process) and of the target process, all its "
        "threads, from ready to stop. The generator's figure bounds what it could drive: 1e6/gen msg/s.",
    ]
    return "\n".join(lines)


def _goal(results: dict[str, list[RunResult]], other: str, factor: float) -> str:
    """Whether carrier-sim reached ``factor`` times ``other``'s rate: met when the median of the per-repetition
    ratios is, with how many repetitions did and the range."""
    pairs = [a.rate / b.rate for a, b in zip(results["carrier-sim"], results[other], strict=False) if a.rate and b.rate]
    if not pairs:
        return f"goal >= {factor:g}x {other}: no paired runs"
    median = statistics.median(pairs)
    reached = sum(1 for r in pairs if r >= factor)
    bound = " (an upper bound: the ceiling is the generator's round trip)" if other == "ceiling" else ""
    return (f"goal >= {factor:g}x {other}: {'met' if median >= factor else 'MISSED'}, paired median {median:.2f}x, "
            f"range {min(pairs):.2f}-{max(pairs):.2f}x, reached in {reached} of {len(pairs)} repetitions{bound}")


def _paired(results: dict[str, list[RunResult]]) -> list[str]:
    """Ratios within each repetition (the runs of one repetition follow each other, so they share the machine's
    load of the moment), then their median: steadier than a ratio of medians on a busy machine."""
    ours = results.get("carrier-sim") or []
    lines = []
    for other in ("smpp34", BASELINE):
        theirs = results.get(other) or []
        pairs = [(a, b) for a, b in zip(ours, theirs, strict=False) if a.rate and b.rate]
        if not pairs:
            continue
        rates = [a.rate / b.rate for a, b in pairs]
        shown = " ".join(f"{r:.2f}" for r in rates)
        line = f"carrier-sim / {other}, paired per repetition: rate {statistics.median(rates):.2f}x median ({shown})"
        if other == BASELINE:
            cpu = [(b.target_cpu / b.messages) / (a.target_cpu / a.messages) for a, b in pairs
                   if a.target_cpu and b.target_cpu and a.messages and b.messages]
            if cpu:
                line += f"; SMSC CPU per message, baseline / carrier-sim: {statistics.median(cpu):.2f}x median"
        lines.append(line)
    return ["", *lines] if lines else []


def print_profile(path: str, top: int = 30) -> None:
    """The hottest functions of a dumped profile, by own time and by cumulative time."""
    for key in ("tottime", "cumulative"):
        stream = io.StringIO()
        pstats.Stats(path, stream=stream).strip_dirs().sort_stats(key).print_stats(top)
        print(f"\n=== carrier-sim SMSC process, sorted by {key} ===")
        print(stream.getvalue())


_FRAME = re.compile(r"(.*) \((.*?):\d+\)$")


def print_spy(path: str, top: int = 30) -> None:
    """Own and inclusive shares of samples per function, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    with open(path, encoding="utf-8") as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or not count.isdigit():
                continue
            n = int(count)
            total += n
            names = []
            for frame in stack.split(";"):
                m = _FRAME.match(frame)
                names.append(f"{m.group(1)} ({os.path.basename(m.group(2))})" if m else frame)
            own[names[-1]] += n
            for name in set(names):
                inclusive[name] += n
    if not total:
        print("py-spy recorded no samples")
        return
    for title, counter in (("own time", own), ("inclusive time", inclusive)):
        print(f"\n=== carrier-sim SMSC process, py-spy, {total} samples, by {title} ===")
        for name, n in counter.most_common(top):
            print(f"{100 * n / total:6.1f}%  {name}")


def main(argv: list[str] | None = None) -> int:
    """Parse the CLI, run every target interleaved, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=15_000, help="messages per run (default 15000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per target; the median is reported (default 3)")
    parser.add_argument("--window", type=int, default=100, help="outstanding submit_sm (default 100)")
    parser.add_argument(
        "--ceiling-factor",
        type=int,
        default=30,
        help="the ceiling, some 40x faster than smpp34, runs this many times --messages so that its run lasts "
        "long enough to time (default 30)",
    )
    parser.add_argument(
        "--smsc-factor",
        type=int,
        default=5,
        help="carrier-sim (and --baseline), some 5x faster than smpp34, run this many times --messages, so that "
        "every run lasts a couple of seconds: a 0.4 s run's rate swung by half with the machine's load (default 5)",
    )
    parser.add_argument("--no-receipts", action="store_true", help="registered_delivery=0, no receipts sent")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated subset of {','.join(TARGETS)}, and {FLOOR} (bench/smsc_floor.py), "
                        f"{FLOOR_TYPED} (bench/smsc_floor_typed.pyx, built with Cython)")
    parser.add_argument(
        "--timeout", type=float, default=0.0, help="per-run limit in seconds (default: 10 + messages/500)"
    )
    parser.add_argument("--profile", metavar="FILE", help="cProfile the carrier-sim SMSC for one run; dump to FILE")
    parser.add_argument("--py-spy", metavar="FILE", help="sample the carrier-sim SMSC with py-spy for one run")
    parser.add_argument(
        "--baseline",
        metavar="DIR",
        help="also run the carrier_sim package found in DIR (an older checkout) as target 'baseline', interleaved",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="asyncio",
        help="the event loop every target serves on (default asyncio's, the loop `carrier-sim smsc` serves on; "
        "the ceiling is a Python responder on the same loop as ours)",
    )
    args = parser.parse_args(argv)
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    if args.baseline:
        if not os.path.isdir(os.path.join(args.baseline, "carrier_sim")):
            parser.error(f"--baseline: no carrier_sim package in {args.baseline}")
        targets.insert(1 if "carrier-sim" in targets else 0, BASELINE)
    if min(args.messages, args.repeat, args.window, args.ceiling_factor, args.smsc_factor) < 1:
        parser.error("--messages, --repeat, --window, --ceiling-factor and --smsc-factor must be at least 1")
    if unknown := set(targets) - {*TARGETS, BASELINE, FLOOR, FLOOR_TYPED}:
        parser.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    receipts = not args.no_receipts
    factors = {"ceiling": args.ceiling_factor, "carrier-sim": args.smsc_factor, BASELINE: args.smsc_factor,
               FLOOR: args.ceiling_factor, FLOOR_TYPED: args.ceiling_factor}
    counts = {t: args.messages * factors.get(t, 1) for t in targets}

    timeout = args.timeout or 10.0 + args.messages / 500
    if args.profile:
        result = run_once("carrier-sim", args.messages, args.window, receipts, timeout, args.profile,
                          loop=args.loop)
        print(
            f"carrier-sim under cProfile: {result.rate:,.0f} msg/s ({result.messages:,} messages, "
            f"{result.seconds:.2f} s){' -- ' + result.note if result.note else ''}"
        )
        print_profile(args.profile)
        return 0
    if args.py_spy:
        result = run_once("carrier-sim", args.messages, args.window, receipts, timeout, spy_path=args.py_spy,
                          loop=args.loop)
        print(
            f"carrier-sim under py-spy: {result.rate:,.0f} msg/s ({result.messages:,} messages, "
            f"{result.seconds:.2f} s){' -- ' + result.note if result.note else ''}"
        )
        print_spy(args.py_spy, 40)
        return 0

    results: dict[str, list[RunResult]] = {t: [] for t in targets}
    for rep in range(args.repeat):
        for target in targets:
            tree = args.baseline if target == BASELINE else None
            timeout = args.timeout or 10.0 + counts[target] / 500
            result = run_once(target, counts[target], args.window, receipts, timeout, tree=tree, loop=args.loop)
            results[target].append(result)
            print(
                f"  run {rep + 1}/{args.repeat} {target:<12} {result.rate:>10,.0f} msg/s"
                f"  ({result.seconds:.2f} s){'  ' + result.note if result.note else ''}",
                file=sys.stderr,
                flush=True,
            )
    print(report(results, receipts, counts, args.window, args.loop))
    return 0


if __name__ == "__main__":
    sys.exit(main())
