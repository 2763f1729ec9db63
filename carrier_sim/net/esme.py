"""A small asyncio ESME on the pure session: the harness's own client (demo, benchmarks, scenario traffic).

Requests are pipelined up to the session's window; ``submit`` returns a future resolved with the response, and
every deliver_sm/data_sm the SMSC sends is answered at once and handed to ``on_message``. An SMSC that does not
read what it is sent gets TCP backpressure: once the transport's buffer passes its high-water mark the ESME stops
sending new requests and stops reading (every deliver_sm read is a deliver_sm_resp to buffer), until it drains.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smpp.events import (
    BindAccepted,
    BindRejected,
    CloseReason,
    Event,
    PduReceived,
    ResponseReceived,
    ResponseTimedOut,
    SessionClosed,
)
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session import BIND_COMMANDS, Session, SessionConfig
from carrier_sim.smpp.session_table import Role

__all__ = ["Esme", "EsmeError"]


class EsmeError(Exception):
    """The bind failed or the session closed under a caller."""


class Esme(asyncio.Protocol):
    """An ESME connection. Use :meth:`connect`, then :meth:`bind`, :meth:`submit`, :meth:`unbind`."""

    def __init__(self, config: SessionConfig | None = None, on_message: Callable[[Pdu], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.session = Session(config or SessionConfig(role=Role.ESME), now=clock())
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        self._waiting: dict[int, asyncio.Future[Pdu]] = {}
        self._queue: list[tuple[Pdu, asyncio.Future[Pdu]]] = []
        self._bound: asyncio.Future[Pdu] | None = None
        self.closed = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._writing_paused = False
        #: A caller asked for reading to stop (:meth:`pause_reading`).
        self._reading_held = False
        #: Reading is stopped on the transport, by this object: only such a pause is ours to lift.
        self._reading_paused = False

    @classmethod
    async def connect(cls, host: str, port: int, **kwargs: Any) -> Esme:
        """Open a TCP connection to an SMSC."""
        loop = asyncio.get_running_loop()
        _, esme = await loop.create_connection(lambda: cls(**kwargs), host, port)
        return esme

    # -- asyncio.Protocol --------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports (Ray runs actors on uvloop) do not derive
        # from asyncio's classes.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self._handle(self.session.receive_data(data, self.clock()))
        # Someone resumed reading on the transport itself while we still want it stopped: stop it again, after
        # no more than this one read's answers.
        self._update_reading()

    def pause_writing(self) -> None:
        # The SMSC does not read what we write: queue new requests here rather than in the transport's buffer, and
        # stop reading -- every deliver_sm read is a deliver_sm_resp to buffer, so an SMSC that sends and never
        # reads would grow the buffer without bound. What is already answered stays in the transport's buffer,
        # in order, ahead of anything written later: nothing acknowledged is lost.
        self._writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        # Below the low-water mark: the queued requests first, then read on -- unless they filled the buffer
        # again (the transport calls pause_writing from inside write).
        self._writing_paused = False
        self._pump()
        self._update_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._handle(self.session.close(CloseReason.CONNECTION_LOST))
        self.closed.set()

    # -- operations ----------------------------------------------------------------------------------------

    async def bind(self, system_id: str, password: str, command: CommandId = CommandId.bind_transceiver,
                   **fields: Any) -> Pdu:
        """Bind; raises EsmeError with the status when refused."""
        self._bound = asyncio.get_running_loop().create_future()
        self.session.bind(command, system_id=system_id, password=password, now=self.clock(), **fields)
        self._flush()
        return await self._bound

    def submit(self, pdu: Pdu) -> asyncio.Future[Pdu]:
        """Send a request (queued while the window is full or the transport is paused); the future resolves with
        its response, or fails with the LocalProtocolError when the session cannot send it (it does not encode)."""
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        self._queue.append((pdu, future))
        self._pump()
        return future

    def pause_reading(self) -> None:
        """Stop reading from the SMSC (a consumer of ``on_message`` that is behind), until :meth:`resume_reading`.

        Use this rather than the transport's own pause_reading: the ESME stops reading for backpressure too, and
        reads on when its buffer drains only if no caller holds reading stopped.
        """
        self._reading_held = True
        self._update_reading()

    def resume_reading(self) -> None:
        """Read again (after :meth:`pause_reading`), unless backpressure still holds reading stopped."""
        self._reading_held = False
        self._update_reading()

    async def unbind(self, timeout: float = 5.0) -> None:
        """Unbind and wait for the connection to close."""
        if not self.session.closed:
            self.session.unbind(now=self.clock())
            self._flush()
        try:
            async with asyncio.timeout(timeout):
                await self.closed.wait()
        except TimeoutError:
            if self.transport is not None:
                self.transport.close()

    # -- internals -----------------------------------------------------------------------------------------

    def _pump(self) -> None:
        # Not while the transport is above its high-water mark: the requests wait in our queue, not in its buffer.
        while self._queue and not self._writing_paused and self.session.can_send(self._queue[0][0].command_id):
            pdu, future = self._queue.pop(0)
            try:
                sent = self.session.send(pdu, self.clock())
            except SmppError as err:
                # This PDU cannot go (it does not encode, say): its caller hears why and the rest go on. Raised
                # here, inside data_received when a response freed the window, it killed the connection and
                # orphaned the future.
                if not future.done():
                    future.set_exception(err)
                continue
            self._waiting[sent.sequence_number] = future
        self._flush()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return  # a closing transport reads no more; pausing or resuming it is meaningless
        if self._writing_paused or self._reading_held:
            if transport.is_reading():
                transport.pause_reading()
                self._reading_paused = True
        elif self._reading_paused:
            # Only a pause of ours is lifted: a caller that paused the transport directly keeps it paused.
            self._reading_paused = False
            if not transport.is_reading():
                transport.resume_reading()

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)
        if self.session.closed and self.transport is not None:
            self.transport.close()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.session.next_deadline
        if deadline is not None and not self.session.closed:
            self._timer = asyncio.get_running_loop().call_later(max(0.0, deadline - self.clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._handle(self.session.handle_timers(self.clock()))

    def _handle(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, ResponseReceived):
                future = self._waiting.pop(event.request.sequence_number, None)
                if future is not None and not future.done():
                    future.set_result(event.response)
            elif isinstance(event, BindAccepted) and self._bound is not None and not self._bound.done():
                self._bound.set_result(event.response)
            elif isinstance(event, BindRejected) and self._bound is not None and not self._bound.done():
                self._bound.set_exception(
                    EsmeError(f"bind refused: {CommandStatus(event.response.command_status).name}")
                )
            elif isinstance(event, PduReceived) and not event.auto_answered:
                pdu = event.pdu
                if pdu.command_id in (CommandId.deliver_sm, CommandId.data_sm):
                    self.session.respond(pdu, now=self.clock())
                    if self.on_message is not None:
                        self.on_message(pdu)
            elif isinstance(event, ResponseTimedOut):
                future = self._waiting.pop(event.request.sequence_number, None)
                if event.request.command_id in BIND_COMMANDS:
                    future = self._bound  # the session closes behind it (BIND_TIMEOUT); the transport follows
                if future is not None and not future.done():
                    future.set_exception(EsmeError(f"{event.request.command_id.name} timed out: no response "
                                                   f"within {self.session.config.response_timeout} s"))
            elif isinstance(event, SessionClosed):
                for future in [*self._waiting.values(), *(f for _, f in self._queue)]:
                    if not future.done():
                        future.set_exception(EsmeError(f"session closed: {event.reason.value}"))
                self._waiting.clear()
                self._queue.clear()
                if self._bound is not None and not self._bound.done():
                    self._bound.set_exception(EsmeError(f"session closed: {event.reason.value}"))
        self._pump()
