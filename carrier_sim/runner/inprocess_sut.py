"""The bundled identity core, started inside the runner's own event loop: the system under test of virtual runs.

Theory of operation
-------------------
A wall-clock run starts identity-core as a process of its own (:mod:`carrier_sim.runner.sut`). A run in virtual
time cannot: the clock is the runner's loop (:mod:`carrier_sim.runner.virtual_loop`), and every party must live
in that loop so that "nothing is ready" really means "nothing can happen before the next timer". So this module
assembles the same identity service in-process, on the same clock, from identity_core's own parts --
:class:`~identity_core.service.IdentityService`, its aiohttp API (:func:`~identity_core.api.make_app`) on
127.0.0.1, its keys, its velocity limits -- and swaps out the two parts that bring threads:

* the store: :class:`~identity_core.memory_store.MemoryStorage` instead of SQLite's writer thread;
* the carrier gateways: :class:`EsmeGateway`, an ESME on carrier_sim's asyncio :class:`~carrier_sim.net.esme.Esme`
  (pure Python, on the loop) instead of :class:`~identity_core.gateway.CarrierGateway`, whose smpp34 core runs
  on Rust/tokio threads.

The identity core still meets each SMSC only over a real SMPP socket, bound as a transceiver with the scenario's
system_id/password, as a customer's service would. :class:`EsmeGateway` gives the service what it uses of a
CarrierGateway (``send_mt`` returning the SMSC's message_id, ``bound``, ``start``/``stop``, ``metrics``) and,
like it, answers every deliver_sm at once (the Esme does) and hands the work to worker tasks: an MO is
reassembled, decoded and its sender normalised to E.164 with identity_core's own modules
(:mod:`~identity_core.mo_reassembly`, :mod:`~identity_core.sms_text`, :mod:`~identity_core.numbers`), then given
to ``on_mo``; a receipt is parsed with identity_core's :func:`~identity_core.gateway.parse_receipt` and given to
``on_receipt``. It rebinds after a lost session with jittered exponential back-off (an ``smsc_outage`` event), and
pauses the whole link on ESME_RTHROTTLED/ESME_RMSGQFUL. Every pause -- rebind, link throttle, an MT's resend -- is
identity-core's own (:mod:`identity_core.backoff`, public, as CarrierGateway uses it), so the two gateways meet an
SMSC with one schedule. Jitter comes from a generator seeded by the carrier's name, so that virtual runs stay
reproducible.

Nothing here starts a thread; everything a gateway starts is owned by its task group and ended by ``stop``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, cast

from aiohttp import web

from carrier_sim.net.esme import Esme, EsmeError
from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.runner.flows.base import DoorAddress
from carrier_sim.runner.sut import SutError, SystemUnderTest, ready_timeout
from carrier_sim.runner.virtual_loop import run_clock
from carrier_sim.scenario.model import Scenario
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session import SessionConfig
from carrier_sim.smpp.session_table import Role
from carrier_sim.smpp.tlv import TlvValue, encode_tlv_value
from identity_core.api import make_app
from identity_core.backoff import ThrottlePause, jittered, resend_delay
from identity_core.cancellation import next_item
from identity_core.certificates import CertificateIssuer, SigningKey
from identity_core.cli import EXPIRY_SWEEP_INTERVAL
from identity_core.config import IdentityConfig, LimitsConfig
from identity_core.gateway import (
    CarrierGateway,
    CarrierLink,
    GatewayError,
    GatewayUnavailable,
    MoHandler,
    MoMessage,
    MtRejected,
    ReceiptReport,
    ReceiptTracker,
    TrackedReceiptHandler,
    parse_receipt,
)
from identity_core.http_errors import app_runner
from identity_core.keys import load_or_create_keys
from identity_core.limits import VelocityLimiter, VelocityLimits
from identity_core.memory_store import MemoryStorage
from identity_core.mo_reassembly import InvalidSegment, MoReassembler, parse_segment
from identity_core.numbers import address_of, normalise_sender
from identity_core.proofs import ProofSigner
from identity_core.service import IdentityService
from identity_core.sim_swap import SimSwapApi, SimSwapClient, api_url
from identity_core.sms_text import UndecodableText, decode_text, encode_mt_text
from identity_core.store import StorageError

__all__ = ["EsmeGateway", "InProcessSut", "start_inprocess_sut"]

_log = logging.getLogger(__name__)

_TLV_MESSAGE_PAYLOAD: Final = 0x0424
#: Statuses that mean "later", not "never" (SMPP 3.4 5.1.3): the link pauses and the message is retried.
_RETRY_LATER: Final = frozenset({CommandStatus.ESME_RTHROTTLED, CommandStatus.ESME_RMSGQFUL})


class EsmeGateway:
    """One carrier link of the in-process identity core, on carrier_sim's asyncio ESME (module docstring).

    Takes the same :class:`~identity_core.gateway.CarrierLink` as a CarrierGateway; of it, ``bind`` must be
    ``transceiver``, and ``enquire_link_interval``, ``response_timeout``, ``window``, the back-off and throttle
    timings, ``send_timeout``, ``queue_size``, ``workers``, ``reassembly_*`` and ``receipt_tracking`` are honoured.
    It sheds nothing by age (``mo_max_wait``): a full queue pauses reading instead, which this ESME can do and
    smpp34 cannot. For the same reason it does not hold MOs for the service's authenticate-first gate.
    """

    def __init__(self, link: CarrierLink, on_mo: MoHandler, on_receipt: TrackedReceiptHandler | None = None, *,
                 clock: Callable[[], float] | None = None, rng: random.Random | None = None) -> None:
        if link.bind != "transceiver":
            raise ValueError("an EsmeGateway binds as a transceiver only")
        self.link = link
        self.on_mo = on_mo
        self.on_receipt = on_receipt
        self.clock = clock
        #: Set while the link is bound.
        self.bound = asyncio.Event()
        #: Why the last bind attempt failed, for the error a caller reports.
        self.last_error: str | None = None
        #: What ended the gateway's tasks, if one of them crashed (it is logged then, and re-raised by ``stop``).
        self.failure: BaseException | None = None
        # Seeded by the carrier, not the OS: back-off jitter must not make two virtual runs differ.
        self._rng = rng or random.Random(f"esme-gateway:{link.name}")
        self._source = address_of(link.gateway)
        self._gateway_digits = self._source[2]
        self._reassembler = MoReassembler(link.reassembly_timeout, link.reassembly_max_groups)
        self._segments_held = asyncio.Event()
        self._sent = ReceiptTracker(link.receipt_tracking)
        # Unbounded so that data_received never blocks; reading from the socket pauses instead when it is long.
        self._queue: asyncio.Queue[MoMessage | ReceiptReport] = asyncio.Queue()
        self._esme: Esme | None = None
        self._reading_paused = False
        self._closing = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._link_task: asyncio.Task[None] | None = None
        self._pause = ThrottlePause(link.throttle_initial, link.throttle_max)
        self._in_flight = 0
        # Metrics: the counters of CarrierGateway.metrics() that mean something here.
        self.binds = 0
        self.connect_failures = 0
        self.reconnects = 0
        self.deliver_sm_received = 0
        self.mo_segments = 0
        self.mo_received = 0
        self.mo_rejected = 0
        self.mo_incomplete = 0
        self.queue_full = 0
        self.handler_errors = 0
        self.mt_sent = 0
        self.mt_throttled = 0
        self.mt_queue_full = 0
        self.mt_retried = 0
        self.mt_failed = 0
        self.receipts = 0
        self.receipts_matched = 0
        self.receipts_unmatched = 0

    def _now(self) -> float:
        return self.clock() if self.clock is not None else asyncio.get_running_loop().time()

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start binding (and rebinding) in the background; wait on :attr:`bound` for the first bind."""
        if self._runner is not None:
            raise RuntimeError("an EsmeGateway starts once")
        if self.clock is None:
            self.clock = run_clock()
        self._runner = asyncio.create_task(self._run(), name=f"esme gateway {self.link.name}")
        self._runner.add_done_callback(self._runner_done)
        await asyncio.sleep(0)  # let the runner create its tasks, so that stop() right after start() finds them

    async def stop(self, grace: float = 5.0) -> None:
        """Unbind, let the workers finish the work already taken (up to ``grace`` seconds), stop every task."""
        if self._runner is None or self._closing.is_set():
            return
        self._closing.set()  # the link task unbinds and returns
        self.bound.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                # Wait for the unbind handshake: the SMSC judges a peer that just drops the connection.
                if self._link_task is not None:
                    await asyncio.wait({self._link_task})
                # The deliver_sm behind this work were acknowledged: the SMSC will not send them again.
                await self._queue.join()
        self._runner.cancel()
        # Bounded, as the waits above: a task that outlives its cancellation must not hold the run's end forever.
        await asyncio.wait({self._runner}, timeout=grace)
        if not self._runner.done():
            _log.error("%s: gateway tasks still running %s s after they were cancelled", self.link.name, grace)
        elif not self._runner.cancelled():
            self._runner.result()  # a crash, already logged by _runner_done, is the caller's to see

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        # Seen when it happens, not only at stop(): a crashed gateway no longer binds, and the phones' failures
        # from then on would otherwise look like the system under test's.
        if not task.cancelled() and (error := task.exception()) is not None:
            self.failure = error
            _log.error("%s: gateway stopped on an error", self.link.name, exc_info=error)

    def metrics(self) -> dict[str, int]:
        """Every counter, plus the current sizes of the queues and tables."""
        names = ("binds", "connect_failures", "reconnects", "deliver_sm_received", "mo_segments", "mo_received",
                 "mo_rejected", "mo_incomplete", "queue_full", "handler_errors", "mt_sent", "mt_throttled",
                 "mt_queue_full", "mt_retried", "mt_failed", "receipts", "receipts_matched", "receipts_unmatched")
        out = {name: int(getattr(self, name)) for name in names}
        out.update(queue=self._queue.qsize(), in_flight=self._in_flight, awaiting_receipt=len(self._sent),
                   reassembly_pending=self._reassembler.pending_groups,
                   mo_duplicate_segments=self._reassembler.duplicates)
        return out

    async def _run(self) -> None:
        # Every task of the link is owned here; stop() cancels this task once the workers have drained the queue
        # (or the grace is over), and the group cancels the rest.
        async with asyncio.TaskGroup() as group:
            self._link_task = group.create_task(self._run_link(), name=f"{self.link.name} link")
            for n in range(self.link.workers):
                group.create_task(self._work(), name=f"{self.link.name} worker {n}")
            group.create_task(self._housekeep(), name=f"{self.link.name} housekeeping")

    async def _back_off(self, delay: float, cap: float) -> None:
        """Sleep ``delay`` (jittered, at most ``cap``), ending early when the gateway stops."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(jittered(delay, self._rng, cap)):
                await self._closing.wait()

    async def _run_link(self) -> None:
        link = self.link
        delay = link.reconnect_initial
        config = SessionConfig(role=Role.ESME, window=link.window, response_timeout=link.response_timeout,
                               enquire_link_interval=link.enquire_link_interval)
        while not self._closing.is_set():
            esme: Esme | None = None
            try:
                async with asyncio.timeout(link.connect_timeout):
                    esme = await Esme.connect(link.smsc_host, link.smsc_port, config=config,
                                              on_message=self._on_pdu, clock=self._now)
                    await esme.bind(link.system_id, link.password, CommandId.bind_transceiver,
                                    system_type=link.system_type, address_range=link.address_range)
            except (OSError, EsmeError, TimeoutError, LocalProtocolError) as err:
                # LocalProtocolError: the bind itself cannot be encoded (a system_id or password too long for
                # SMPP) -- a configuration error, but it is reported the same way, with the reason kept.
                self.connect_failures += 1
                self.last_error = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                _log.warning("%s: bind to %s:%s failed: %s", link.name, link.smsc_host, link.smsc_port, err)
                if esme is not None and esme.transport is not None:
                    esme.transport.close()
                await self._back_off(delay, link.reconnect_max)
                delay = min(delay * 2, link.reconnect_max)
                continue
            self.binds += 1
            bound_at = self._now()
            self._esme = esme
            self._reading_paused = False
            self.bound.set()
            closed = asyncio.ensure_future(esme.closed.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({closed, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                closed.cancel()
                closing.cancel()
                self._esme = None
                self.bound.clear()
            if self._closing.is_set():
                await esme.unbind(timeout=link.connect_timeout)
                return
            self.reconnects += 1
            _log.warning("%s: session lost; rebinding", link.name)
            if self._now() - bound_at >= link.reconnect_max:
                delay = link.reconnect_initial  # it was a stable session: start the back-off afresh
            await self._back_off(delay, link.reconnect_max)
            delay = min(delay * 2, link.reconnect_max)

    # -- inbound: MO and receipts ------------------------------------------------------------------------------

    def _on_pdu(self, pdu: Pdu) -> None:
        """A deliver_sm/data_sm, already answered ESME_ROK by the Esme: turn it into work for the workers."""
        self.deliver_sm_received += 1
        work = self._inbound(pdu)
        if work is None:
            return
        self._queue.put_nowait(work)
        if self._queue.qsize() >= self.link.queue_size and not self._reading_paused:
            # The handlers are behind: stop reading the socket, so that the SMSC's window fills and it waits.
            self.queue_full += 1
            # Through the ESME, not its transport: the ESME also stops reading for its own backpressure, and must
            # not read on when its buffer drains while this queue still holds reading stopped.
            esme = self._esme
            if esme is not None:
                esme.pause_reading()
                self._reading_paused = True

    def _inbound(self, pdu: Pdu) -> MoMessage | ReceiptReport | None:
        tlvs = {tag: encode_tlv_value(tag, value) for tag, value in pdu.tlvs}
        esm_class = int(cast(int, pdu.params.get("esm_class", 0)))
        short_message = bytes(cast(bytes, pdu.params.get("short_message", b"")))
        receipt = parse_receipt(short_message, esm_class, tlvs)
        if receipt is not None:
            # Matched to our MT ids by the worker, not here: a receipt may come in the same read as the
            # submit_sm_resp announcing its id, before send_mt has recorded that id; the worker runs after it.
            self.receipts += 1
            return receipt
        payload = tlvs.get(_TLV_MESSAGE_PAYLOAD)
        if payload is not None and not short_message:
            short_message = payload  # SMPP 3.4 5.3.2.32: message_payload instead of short_message
        source = str(pdu.params.get("source_addr", ""))
        source_ton = int(cast(int, pdu.params.get("source_addr_ton", 0)))
        source_npi = int(cast(int, pdu.params.get("source_addr_npi", 0)))
        destination = str(pdu.params.get("destination_addr", ""))
        data_coding = int(cast(int, pdu.params.get("data_coding", 0)))
        try:
            segment = parse_segment(short_message, esm_class, data_coding, tlvs)
        except InvalidSegment as err:
            self.mo_rejected += 1
            _log.info("%s: MO from %s refused: %s", self.link.name, source, err)
            return None
        if segment.concatenation is not None:
            self.mo_segments += 1
        whole = self._reassembler.add((source, source_ton, source_npi, destination), segment, self._now())
        if segment.concatenation is not None:
            self._segments_held.set()  # the reassembler holds it, or remembers its message: housekeeping has work
        if whole is None:
            return None
        try:
            codings = {coding for coding, _ in whole.parts}
            if len(codings) == 1:
                # Joined before decoding: a UCS-2 surrogate pair or a GSM escape may straddle two segments.
                text = decode_text(whole.body, codings.pop())
            else:
                text = "".join(decode_text(body, coding) for coding, body in whole.parts)
        except UndecodableText as err:
            self.mo_rejected += 1
            _log.info("%s: MO from %s refused: %s", self.link.name, source, err)
            return None
        self.mo_received += 1
        return MoMessage(
            carrier=self.link.name, source=source, source_ton=source_ton, source_npi=source_npi,
            sender=normalise_sender(source, source_ton, source_npi, self.link.country),
            destination=destination, text=text, received_at=self._now(), segments=len(whole.parts),
            to_gateway=destination.lstrip("+") == self._gateway_digits,
        )

    def _matched_id(self, receipt: ReceiptReport) -> str:
        found = self._sent.find(receipt.message_id, exact=receipt.id_from_tlv)
        if found is not None and receipt.final:
            self._sent.remove(found)
        if found is None:
            # Not one we wait for (a duplicate, one from before a restart): still reported, counted apart.
            self.receipts_unmatched += 1
            return receipt.message_id
        self.receipts_matched += 1
        return found

    async def _work(self) -> None:
        while True:
            item = await next_item(self._queue)  # not queue.get(): see identity_core.cancellation
            try:
                if isinstance(item, MoMessage):
                    await self.on_mo(item)
                else:
                    message_id = self._matched_id(item)
                    if self.on_receipt is not None:
                        await self.on_receipt(message_id, item.state, item.error, item.final)
            except Exception:
                # A handler's bug must not take the carrier link down with it; it is counted and logged.
                self.handler_errors += 1
                _log.exception("%s: handler failed", self.link.name)
            finally:
                self._queue.task_done()
                if self._reading_paused and self._queue.qsize() <= self.link.queue_size // 2:
                    esme = self._esme
                    if esme is not None:
                        esme.resume_reading()
                    self._reading_paused = False

    async def _housekeep(self) -> None:
        period = min(1.0, self.link.reassembly_timeout / 4)
        while True:
            if self._reassembler.next_deadline is None:
                # Nothing held to expire: wait for a segment rather than wake every period, which in a virtual run
                # woke the whole loop (and the runner's tick) once a plan second for nothing.
                self._segments_held.clear()
                await self._segments_held.wait()
            await asyncio.sleep(period)
            self.mo_incomplete += len(self._reassembler.expire(self._now()))

    # -- outbound: MT ------------------------------------------------------------------------------------------

    async def send_mt(self, destination: str, text: str) -> str:
        """Submit ``text`` to ``destination`` (E.164) with a receipt requested; the SMSC's message_id.

        Waits for a bind, honours throttling and resends after a lost session, within ``send_timeout``. Raises
        :class:`~identity_core.gateway.MtRejected` when the SMSC refuses for good,
        :class:`~identity_core.gateway.GatewayUnavailable` when nothing was accepted in time or the gateway stops.
        """
        link = self.link
        if self._runner is None or self._closing.is_set():
            raise GatewayUnavailable(link.name, "the gateway is not running")
        dest_ton, dest_npi, dest_addr = address_of(destination)
        data_coding, data, fits = encode_mt_text(text)
        source_ton, source_npi, source_addr = self._source
        params: dict[str, Any] = {
            "source_addr": source_addr, "source_addr_ton": source_ton, "source_addr_npi": source_npi,
            "destination_addr": dest_addr, "dest_addr_ton": dest_ton, "dest_addr_npi": dest_npi,
            "registered_delivery": 1, "data_coding": data_coding, "short_message": data if fits else b"",
        }
        # Longer than one SMS: message_payload, so that one MT has one message_id and one receipt.
        tlvs: tuple[tuple[int, TlvValue], ...] = () if fits else ((_TLV_MESSAGE_PAYLOAD, data),)
        try:
            async with asyncio.timeout(link.send_timeout):
                return await self._submit(params, tlvs)
        except TimeoutError:
            self.mt_failed += 1
            raise GatewayUnavailable(link.name, f"no submit accepted within {link.send_timeout} s") from None
        except GatewayError:
            self.mt_failed += 1
            raise

    async def _submit(self, params: dict[str, Any], tlvs: tuple[tuple[int, TlvValue], ...]) -> str:
        resends = 0
        unanswered_on: Esme | None = None
        while True:
            await self._wait_unpaused()
            esme = await self._bound_esme()
            if esme is unanswered_on and not esme.closed.is_set():
                # Unanswered on a session that is still up: the SMSC may yet take it, and a second copy would be a
                # second REG-RESP on the phone (resent every 50-75 ms, one phone got hundreds). As identity-core's
                # gateway does, it goes again only on the session that replaces this one.
                await self._session_other_than(esme)
                continue
            sent_at = self._now()
            self._in_flight += 1
            try:
                # The Esme keeps the session's window: a submit beyond it waits in the Esme's queue.
                response = await esme.submit(Pdu.make(CommandId.submit_sm, 0, tlvs=tlvs, **params))
            except EsmeError as err:
                # The session closed, or the response timed out: the SMSC may have taken the message or not;
                # sending it again (on another session, see above) is the only way not to lose it. Each copy
                # after the first waits longer, doubling from throttle_initial up to throttle_max.
                self.mt_retried += 1
                unanswered_on = esme
                _log.info("%s: submit failed (%s); sending again", self.link.name, err)
                await asyncio.sleep(resend_delay(resends, self.link.throttle_initial, self.link.throttle_max,
                                                 self._rng))
                resends += 1
                continue
            finally:
                self._in_flight -= 1
            status = response.command_status
            message_id = str(response.params.get("message_id", ""))
            if status == CommandStatus.ESME_ROK and message_id:
                self.mt_sent += 1
                self._pause.accepted(sent_at)
                self._sent.add(message_id, self._now())
                return message_id
            if status in _RETRY_LATER:
                if status == CommandStatus.ESME_RTHROTTLED:
                    self.mt_throttled += 1
                else:
                    self.mt_queue_full += 1
                self._pause.throttled(sent_at, self._now(), self._rng)
                continue
            raise MtRejected(self.link.name, status if status != CommandStatus.ESME_ROK else 0xFF)

    async def _wait_unpaused(self) -> None:
        while (wait := self._pause.until - self._now()) > 0:
            await asyncio.sleep(wait)

    async def _session_other_than(self, stale: Esme) -> None:
        """Return once the link's session is not ``stale`` (closed, replaced, or the gateway stopping)."""
        while self._esme is stale and not stale.closed.is_set() and not self._closing.is_set():
            await self._back_off(self.link.throttle_initial, self.link.throttle_max)

    async def _bound_esme(self) -> Esme:
        while True:
            if self._closing.is_set():
                raise GatewayUnavailable(self.link.name, "the gateway is stopping")
            esme = self._esme
            if esme is not None and self.bound.is_set():
                return esme
            bound = asyncio.ensure_future(self.bound.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({bound, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                bound.cancel()
                closing.cancel()


@dataclass
class InProcessSut(SystemUnderTest):
    """The in-process identity core: a :class:`~carrier_sim.runner.sut.SystemUnderTest` (``api``, ``token``,
    ``stop``; no process, no log file) that also holds its parts, for tests and the dashboard."""

    service: IdentityService | None = None
    gateways: dict[str, EsmeGateway] = field(default_factory=dict)
    store: MemoryStorage | None = None
    runner: web.AppRunner | None = None
    sim_swap: SimSwapClient | None = None
    sweeper: asyncio.Task[None] | None = None
    _stopped: bool = field(default=False, repr=False)

    async def stop(self, timeout: float = 15.0) -> int | None:
        """Stop the API, unbind every gateway, close the store; 0, as a bundled process that exited cleanly."""
        if self._stopped:
            return 0
        self._stopped = True
        grace = timeout / 3
        if self.sweeper is not None:
            self.sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.sweeper
        if self.runner is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self.runner.cleanup()
        # Every part is stopped even when one's stop raises (a crashed gateway re-raises its crash): the others'
        # sockets and the store must not be left open for it. The errors are raised together at the end.
        errors: list[Exception] = []
        for gateway in self.gateways.values():
            try:
                await gateway.stop(grace=grace)
            except Exception as err:  # collected, and raised below
                errors.append(err)
        if self.sim_swap is not None:
            await self.sim_swap.close()
        if self.store is not None:
            await self.store.close()
        if len(errors) == 1:
            raise errors[0]
        if errors:
            raise ExceptionGroup("identity-core gateways failed", errors)
        return 0


def _limits(values: dict[str, Any]) -> VelocityLimits:
    # What identity_config + the service's config loader make of the scenario's limits: the [limits] defaults,
    # overridden by the scenario, then VelocityLimits.from_mapping as identity_core.cli does.
    return VelocityLimits.from_mapping({**dataclasses.asdict(LimitsConfig()), **values})


def _key_defaults() -> dict[str, Any]:
    # The [keys] defaults of identity_core's configuration, read from it so that the two cannot drift apart.
    names = ("proof_validity", "certificate_validity", "issuer")
    return {f.name: f.default for f in dataclasses.fields(IdentityConfig) if f.name in names}


async def start_inprocess_sut(
    scenario: Scenario,
    carriers: list[RunningCarrier],
    workdir: Path | None = None,
    doors: dict[str, dict[str, DoorAddress]] | None = None,
    *,
    keys_dir: Path | None = None,
    clock: Callable[[], float] | None = None,
    timeout: float | None = None,
    token: str | None = None,
) -> InProcessSut:
    """Start the bundled identity core in the running loop and wait until every carrier is bound and the API
    listens on 127.0.0.1 (a free port). Raises :class:`~carrier_sim.runner.sut.SutError` when it cannot.

    The first four parameters are those of :func:`~carrier_sim.runner.sut.start_sut`, so that this function is a
    ``SutStarter`` of :func:`~carrier_sim.runner.run.run_scenario`; ``workdir`` is not written to (nothing of an
    in-process core is kept). ``doors``: where a carrier has a CAMARA door, the service asks its SIM Swap API, as
    :func:`~carrier_sim.runner.sut.identity_config` configures the subprocess.
    ``keys_dir``: where the proof secret and signing keys live (created if need be); default: generated in memory.
    ``clock``: the service's clock; default :func:`~carrier_sim.runner.virtual_loop.run_clock` (the virtual clock
    under a virtual loop, the wall clock otherwise). ``timeout``: seconds (of the loop's clock) to get bound;
    default ``CARRIER_SIM_SUT_TIMEOUT`` or 60.
    """
    sut = scenario.system_under_test
    clock = clock or run_clock()
    timeout = ready_timeout() if timeout is None else timeout
    token = token or secrets.token_hex(16)
    keys = _key_defaults()
    camara = (doors or {}).get("camara", {})
    try:
        limiter = VelocityLimiter(_limits(dict(sut.limits)))
        if keys_dir is not None:
            signer, issuer = load_or_create_keys(keys_dir, proof_validity=keys["proof_validity"],
                                                 certificate_validity=keys["certificate_validity"],
                                                 issuer=keys["issuer"])
        else:
            signer = ProofSigner(secrets.token_bytes(32), keys["proof_validity"])
            issuer = CertificateIssuer([SigningKey.generate()], issuer=keys["issuer"],
                                       validity=keys["certificate_validity"])
        sim_swap = SimSwapClient({
            r.carrier.name: SimSwapApi(api_url(f"http://{camara[r.carrier.name].host}:{camara[r.carrier.name].port}"),
                                       token=r.carrier.doors.camara.token)
            for r in carriers if r.carrier.name in camara and r.carrier.doors.camara is not None
        })
    except (OSError, ValueError, TypeError) as err:
        raise SutError(f"the in-process identity core could not start: {err}") from err
    store = MemoryStorage()
    service = IdentityService(store, signer, issuer, limiter, clock=clock, sim_swap=sim_swap)
    gateways: dict[str, EsmeGateway] = {}
    for running in carriers:
        c = running.carrier
        link = CarrierLink(name=c.name, smsc_host=running.host, smsc_port=running.port, system_id=sut.system_id,
                           password=sut.password, gateway=c.gateway, country=c.country,
                           window=max(10, c.smsc.window))

        async def on_receipt(message_id: str, state: str, error: str | None, final: bool,
                             name: str = c.name) -> None:
            # The MT is forgotten only on a final receipt: an ENROUTE one is followed by the real outcome.
            await service.handle_receipt(name, message_id, state, error, final)

        gateway = EsmeGateway(link, _mo_handler(service), on_receipt, clock=clock)
        gateways[c.name] = gateway
        # IdentityService types its gateways as CarrierGateway but uses only what EsmeGateway also has
        # (send_mt, bound): the cast states that structural fit where the annotation cannot.
        service.gateways[c.name] = cast(CarrierGateway, gateway)
    runner = app_runner(make_app(service, [token]), access_log=None)  # as identity-core serve runs it
    started = InProcessSut("", token, service=service, gateways=gateways, store=store, runner=runner,
                           sim_swap=sim_swap)
    try:
        for gateway in gateways.values():
            await gateway.start()
        try:
            async with asyncio.timeout(timeout):
                await asyncio.gather(*(g.bound.wait() for g in gateways.values()))
        except TimeoutError:
            unbound = [f"{name} ({g.last_error or 'no answer'})" for name, g in gateways.items()
                       if not g.bound.is_set()]
            raise SutError(f"the in-process identity core did not bind to {', '.join(unbound)} "
                           f"within {timeout} s") from None
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
    except BaseException:
        await started.stop()
        raise
    host, port = runner.addresses[0][:2]
    started.api = f"http://{host}:{port}"
    # As `identity-core serve` does: expiries are written down every EXPIRY_SWEEP_INTERVAL (of the run's clock, so
    # a virtual run of days sweeps as a real one would), keeping the store's states and counts true.
    started.sweeper = asyncio.get_running_loop().create_task(_sweep(service), name="identity-core expiry sweep")
    return started


async def _sweep(service: IdentityService) -> None:
    while True:
        await asyncio.sleep(EXPIRY_SWEEP_INTERVAL)
        with contextlib.suppress(StorageError):  # a closing store: reads do not depend on the sweep
            await service.expire_due()


def _mo_handler(service: IdentityService) -> MoHandler:
    async def on_mo(mo: MoMessage) -> None:
        # Not through service.mo_admission: this gateway sheds nothing by age (no mo_max_wait, see the class
        # docstring), so an MO held at a closed gate would wait without limit and be answered late.
        await service.handle_mo(mo)

    return on_mo
