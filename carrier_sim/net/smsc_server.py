"""The asyncio adapter around :class:`~carrier_sim.smsc.centre.Smsc`: sockets in, bytes out, timers armed.

It holds no SMPP or SMSC logic. Per connection an :class:`asyncio.Protocol` feeds received bytes to the pure
connection object with the wall-clock time, then flushes every connection the SMSC marked dirty (a receipt or
an MO produced on one connection may be destined for another), and re-arms one loop timer at the SMSC's next
deadline. Byte-shaping faults (split and coalesced writes, TCP reset) are carried out here because they are
about the transport, not the protocol. A peer that does not read what it is sent gets TCP backpressure: once
its transport's buffer passes the high-water mark the SMSC stops writing to it and stops reading from it, until
the buffer drains (pause_writing / resume_writing). At shutdown that buffer and the kernel's are cut to a few
KiB (see :meth:`SmscServer.shutdown`), so that a peer that reads nothing is not answered for megabytes more.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import ssl
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import cast

from carrier_sim.smsc.centre import Smsc, SmscConnection

__all__ = ["SmscServer"]

#: Seconds a coalesced chunk waits for followers, and between the pieces of a split write.
_HOLD = 0.005
#: struct linger {l_onoff = 1, l_linger = 0}: close() resets the connection (see _abort).
_LINGER_RESET = struct.pack("ii", 1, 0)
_TRICKLE = 0.0005
#: During the shutdown grace, what a connection may hold of what the SMSC wrote and its peer has not taken: the
#: kernel's send buffer (SO_SNDBUF; Linux doubles it) and the transport's high-water mark. See SmscServer.shutdown.
_GRACE_SNDBUF = 16 * 1024
_GRACE_HIGH_WATER = 16 * 1024
#: How a connection ended, for the capture hook's "close": whose FIN or RST ended it
#: (carrier_sim.capture.pcap.ConnectionEnd reads these). Written for a connection the peer opened (the peer is the
#: client end of the capture, the SMSC the server end); :meth:`SmscServer._capture` swaps them for an outbind.
_PEER_FIN, _PEER_RST, _SMSC_FIN, _SMSC_RST = b"client fin", b"client rst", b"server fin", b"server rst"
_SWAPPED_END = {_PEER_FIN: _SMSC_FIN, _PEER_RST: _SMSC_RST, _SMSC_FIN: _PEER_FIN, _SMSC_RST: _PEER_RST}
#: The capture hook's "eof" names the side whose FIN came; the peer's, in the same terms as above.
_PEER, _SMSC = b"client", b"server"
_SWAPPED_SIDE = {_PEER: _SMSC, _SMSC: _PEER}


class _SmppProtocol(asyncio.Protocol):
    def __init__(self, server: SmscServer, *, initiated: bool = False) -> None:
        self.server = server
        #: The SMSC opened this connection (outbind), so in the capture it is the client end.
        self.initiated = initiated
        self.conn: SmscConnection | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports (Ray runs actors on uvloop) do not derive
        # from asyncio's classes.
        transport = cast(asyncio.Transport, transport)
        self.transport = transport
        peername = transport.get_extra_info("peername")
        peer = f"{peername[0]}:{peername[1]}" if isinstance(peername, tuple) else str(peername)
        self.conn = self.server.smsc.connect(peer, self.server.clock())
        self.server.transports[self.conn.connection_id] = transport
        if self.server._stopping:
            self.server._hold_to_grace(transport)  # accepted as the listener closed: the shutdown's limits too
        if self.initiated:
            self.server._initiated.add(self.conn.connection_id)
        if self.server.tap is not None:
            sockname = transport.get_extra_info("sockname")
            local = f"{sockname[0]}:{sockname[1]}"
            ends = f"{local}|{peer}" if self.initiated else f"{peer}|{local}"
            self.server.tap(self.conn.connection_id, "open", ends.encode(), self.server.clock())
        self.server.service()

    def data_received(self, data: bytes) -> None:
        if self.conn is not None:
            if self.server.tap is not None:
                if self.conn.connection_id in self.server._unsent and self.transport is not None:
                    self.server._capture_sent(self.conn.connection_id, self.transport)
                self.server._capture(self.conn.connection_id, "in", data)
            self.conn.receive_data(data, self.server.clock())
            self.server.service()

    def pause_writing(self) -> None:
        # The transport's buffer passed its high-water mark: the peer does not read what we write. Stop reading
        # it too -- every request read is a response to buffer (a peer sending enquire_links and never reading
        # would grow the buffer without bound) -- and stop writing to it. What the SMSC owes it waits, in order,
        # in the connection's queue and the pure SMSC's outbox (window-bound): nothing acknowledged is lost.
        if self.conn is not None and self.transport is not None:
            self.server._pause(self.conn.connection_id, self.transport)

    def resume_writing(self) -> None:
        # Below the low-water mark again: write what waited, then read on.
        if self.conn is not None and self.transport is not None:
            self.server._resume(self.conn.connection_id, self.transport)

    def eof_received(self) -> bool | None:
        if self.conn is not None:
            self.server._ended.setdefault(self.conn.connection_id, _PEER_FIN)
            if self.server.tap is not None:
                # The peer's FIN, when it came: the only moment the SMSC learns of it.
                self.server._capture(self.conn.connection_id, "eof", _PEER)
        return None  # close our side too, as asyncio's default does

    def connection_lost(self, exc: Exception | None) -> None:
        if self.conn is not None:
            ended = self.server._ended.pop(self.conn.connection_id, None)
            unsent = self.server._unsent.pop(self.conn.connection_id, None)
            if self.server.tap is not None:
                if unsent and exc is None and ended != _SMSC_RST:
                    # A transport closed in order has written its whole buffer before it calls connection_lost.
                    self.server._capture(self.conn.connection_id, "out", bytes(unsent))
                self.server._capture_end(self.conn.connection_id, ended, exc)
            self.server._initiated.discard(self.conn.connection_id)
            self.server._paused.discard(self.conn.connection_id)
            self.server.transports.pop(self.conn.connection_id, None)
            self.conn.connection_lost(self.server.clock())
            self.server.service()


class SmscServer:
    """Serves one emulated SMSC on one or more listening sockets (plain and TLS)."""

    def __init__(self, smsc: Smsc, clock: Callable[[], float] = time.time) -> None:
        self.smsc = smsc
        self._wall = clock
        self._last_now = float("-inf")
        self.transports: dict[int, asyncio.Transport] = {}
        self._servers: list[asyncio.Server] = []
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._rng = random.Random(smsc.config.seed ^ 0x5EED)
        self._outgoing: dict[int, deque[tuple[bytes, float]]] = {}
        self._draining: set[int] = set()
        self._close_after: set[int] = set()
        #: Connections whose transport asked us to stop writing (pause_writing): their queues wait.
        self._paused: set[int] = set()
        #: Called with (connection id, "open" | "in" | "out" | "eof" | "close", bytes, time) for captures (--pcap),
        #: in the capture's terms: the client is the end that opened the connection -- the peer, or the SMSC for an
        #: outbind. The bytes of "open" are "client|server" addresses; "in" carries octets the client sent, "out"
        #: octets the server sent (once they left the transport's buffer for the kernel: see _capture_written);
        #: "eof" names the side whose FIN came while the connection went on (b"client" or b"server"); "close" says
        #: whose FIN or RST ended the connection, e.g. b"server rst" (the server end aborted it) or b"server fin"
        #: (the server end's FIN, after the peer's "eof" or not).
        self.tap: Callable[[int, str, bytes, float], None] | None = None
        self._ended: dict[int, bytes] = {}
        self._initiated: set[int] = set()
        #: For the tap: octets written to a connection's transport that were still in its buffer, not yet taken by
        #: the kernel, when last looked at (only connections that have such octets).
        self._unsent: dict[int, bytearray] = {}
        #: shutdown() has begun: every connection has the grace's tight buffers (_hold_to_grace).
        self._stopping = False

    def clock(self) -> float:
        """The time handed to the SMSC: the given clock (wall time by default), never going backwards.

        The SMSC needs wall time (receipt submit/done dates, validity periods), but its sessions' contract is a
        ``now`` that never goes backwards (carrier_sim.smpp.session): a backward NTP step of an hour would leave
        every timer and every held event waiting an hour. So the clock is clamped to the latest time handed
        out; after a backward step it stands still until wall time catches up. A *forward* step cannot be
        undone here: timers due within the step fire at once (response timers, enquire_link, inactivity),
        as they would after the process had been suspended that long.
        """
        now = self._wall()
        if now < self._last_now:
            return self._last_now
        self._last_now = now
        return now

    async def listen(self, host: str, port: int, ssl_context: ssl.SSLContext | None = None) -> tuple[str, int]:
        """Start accepting on host:port (port 0 picks a free one); returns the bound address."""
        loop = asyncio.get_running_loop()
        # A TLS handshake gets session_init_timeout of its own, not asyncio's fixed 60 s (which held a half-open TLS
        # client twice as long as a plain one by default); the bind's timer starts once the handshake is done.
        handshake = self.smsc.config.session_init_timeout if ssl_context is not None else None
        server = await loop.create_server(lambda: _SmppProtocol(self), host, port, ssl=ssl_context,
                                          ssl_handshake_timeout=handshake)
        self._servers.append(server)
        sockname = server.sockets[0].getsockname()
        return str(sockname[0]), int(sockname[1])

    async def outbind(self, host: str, port: int, system_id: str, password: str) -> SmscConnection:
        """Connect out to an ESME and send outbind (SMPP 3.4 2.2.1); the ESME then binds on that connection."""
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(lambda: _SmppProtocol(self, initiated=True), host, port)
        conn = protocol.conn
        assert conn is not None
        conn.session.outbind(system_id=system_id, password=password, now=self.clock())
        self.smsc._touch(conn)
        self.service()
        return conn

    def service(self) -> None:
        """Run due timers, flush dirty connections, re-arm the timer. Called after every event."""
        now = self.clock()
        deadline = self.smsc.next_deadline
        try:
            if deadline is not None and deadline <= now:
                self.smsc.handle_timers(now)
        finally:
            # Whatever handle_timers raised (a defect: it is meant not to), what is owed goes out and the timer
            # is armed again; else one failure would stall every session's timers until traffic woke the server.
            self._flush()
            self._arm()

    def _flush(self) -> None:
        faults = self.smsc.config.faults
        for conn in self.smsc.dirty_connections():
            transport = self.transports.get(conn.connection_id)
            data = conn.data_to_send()
            if transport is None or transport.is_closing():
                continue
            if conn.reset_requested:
                self._abort(conn.connection_id, transport)  # RST, no unbind: what a crashed SMSC looks like
                continue
            if data:
                self._write(conn.connection_id, transport, data, faults.split_writes, faults.split_max,
                            faults.coalesce_writes)
            if conn.closed:
                if self._outgoing.get(conn.connection_id):
                    self._close_after.add(conn.connection_id)  # after the queued bytes leave
                else:
                    self._close(conn.connection_id, transport)

    def _close(self, cid: int, transport: asyncio.Transport) -> None:
        self._ended.setdefault(cid, _SMSC_FIN)
        transport.close()

    def _abort(self, cid: int, transport: asyncio.Transport) -> None:
        buffered = transport.get_write_buffer_size()
        resets = not transport.is_closing() or bool(buffered)
        if resets:
            # The abort is what the peer gets, even after our close: a close waiting for its buffer to drain has
            # sent no FIN yet, and the abort discards the buffer.
            self._ended[cid] = _SMSC_RST
        else:
            self._ended.setdefault(cid, _SMSC_RST)  # already closed and flushed: the abort changes nothing
        if self.tap is not None and cid in self._unsent:
            self._capture_sent(cid, transport, buffered)
            self._unsent.pop(cid, None)  # discarded with the buffer: never sent, so never drawn
        # A reset, not a close: with SO_LINGER on and a zero timeout the kernel answers close() with an RST. Without
        # it asyncio's abort() closes the socket, and unless received data is still unread the peer gets a FIN, an
        # orderly end -- not the tcp_reset fault (or the outage) the scenario asked for, nor what the pcap draws.
        # Not after an orderly close already flushed: asyncio closes that socket a moment later, and a linger set
        # now would turn the FIN the capture drew into a reset.
        sock = transport.get_extra_info("socket") if resets else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        transport.abort()

    def _write(self, cid: int, transport: asyncio.Transport, data: bytes, split: float, split_max: int,
               coalesce: float) -> None:
        # Every write goes through one FIFO per connection so that a split or held chunk is never overtaken by
        # later bytes: the faults change where TCP segments are cut, never the order of the stream.
        queue = self._outgoing.setdefault(cid, deque())
        if coalesce and self._rng.random() < coalesce:
            queue.append((data, _HOLD))  # held a moment, then written together with whatever followed
        elif split and self._rng.random() < split:
            offset = 0
            while offset < len(data):
                step = self._rng.randint(1, max(1, split_max))
                queue.append((data[offset : offset + step], _TRICKLE))
                offset += step
        else:
            queue.append((data, 0.0))
        if cid not in self._draining:
            self._drain(cid)

    def _drain(self, cid: int, waited: bool = False) -> None:
        # A loop, not a call per chunk: a thousand responses queued behind a trickled (split) write would
        # otherwise recurse a thousand deep and die of RecursionError with the rest of the queue stalled.
        queue = self._outgoing.get(cid)
        transport = self.transports.get(cid)
        self._draining.discard(cid)
        while True:
            if not queue or transport is None or transport.is_closing():
                self._outgoing.pop(cid, None)
                return
            if cid in self._paused:
                return  # resume_writing drains it
            if queue[0][1] > 0 and not waited:
                self._draining.add(cid)
                asyncio.get_running_loop().call_later(queue[0][1], self._drain, cid, True)
                return
            waited = False  # the wait covered only the chunk at the head
            chunk, delay = queue.popleft()
            if delay == _HOLD:
                # Coalesce: everything queued behind the held chunk leaves in the same write.
                parts = [chunk]
                while queue and queue[0][1] == 0.0:
                    parts.append(queue.popleft()[0])
                chunk = b"".join(parts)
            transport.write(chunk)
            if self.tap is not None:
                self._capture_written(cid, transport, chunk)
            if not queue and cid in self._close_after:
                self._close_after.discard(cid)
                self._close(cid, transport)
                self._outgoing.pop(cid, None)
                return

    def _hold_to_grace(self, transport: asyncio.Transport) -> None:
        """Cut what ``transport`` may hold unread by its peer to the grace's few KiB (see :meth:`shutdown`); never
        raised, which would let a paused connection drain into the room and be read again."""
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                # Linux reports the doubled size it uses: one set to _GRACE_SNDBUF or less is left alone.
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) > _GRACE_SNDBUF:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _GRACE_SNDBUF)
        if not transport.is_closing() and transport.get_write_buffer_limits()[1] > _GRACE_HIGH_WATER:
            # Pauses at once (pause_writing: reading stops) if the buffer already holds more.
            transport.set_write_buffer_limits(high=_GRACE_HIGH_WATER)

    def _pause(self, cid: int, transport: asyncio.Transport) -> None:
        self._paused.add(cid)
        transport.pause_reading()

    def _resume(self, cid: int, transport: asyncio.Transport) -> None:
        self._paused.discard(cid)
        if self.tap is not None and cid in self._unsent:
            self._capture_sent(cid, transport)
        if transport.is_closing():
            return
        if cid not in self._draining:
            self._drain(cid)
        if cid not in self._paused:  # the drain may have filled the buffer again
            transport.resume_reading()

    def _capture_written(self, cid: int, transport: asyncio.Transport, chunk: bytes) -> None:
        """Hand the tap what the write of ``chunk`` got out of the transport's buffer to the kernel.

        A transport's write sends what the socket takes at once and buffers the rest; a peer that does not read
        leaves it there, and an abort discards it. The capture must not show octets sent that never left, so
        what stays buffered is kept back (:attr:`_unsent`) and drawn once the SMSC sees it gone: at the next
        write, read, resume_writing, abort, or an orderly connection_lost. Almost always nothing stays, and
        then it costs one call.
        """
        unsent = self._unsent.get(cid)
        buffered = transport.get_write_buffer_size()
        if unsent is None:
            if not buffered:
                self._capture(cid, "out", chunk)
                return
            unsent = self._unsent[cid] = bytearray()
        unsent += chunk
        self._capture_sent(cid, transport, buffered)

    def _capture_sent(self, cid: int, transport: asyncio.Transport, buffered: int | None = None) -> None:
        """Draw the octets of :attr:`_unsent` that have left the transport's buffer (it holds ``buffered``, the
        newest ones: a buffer is written in order)."""
        unsent = self._unsent[cid]
        left = len(unsent) - (transport.get_write_buffer_size() if buffered is None else buffered)
        if left > 0:
            self._capture(cid, "out", bytes(unsent[:left]))
            del unsent[:left]
        if not unsent:
            del self._unsent[cid]

    def _capture_end(self, cid: int, ended: bytes | None, exc: Exception | None) -> None:
        """Tell the tap how the connection ended, from what the SMSC saw: ``ended`` is what it recorded first (its
        own close or abort, the peer's FIN), ``exc`` what the transport reported at connection_lost."""
        if ended == _SMSC_RST:
            end = _SMSC_RST
        elif exc is not None:
            # The transport failed (the peer's RST): our FIN never left, even after our close, whose FIN waits
            # for the buffer to drain.
            end = _PEER_RST
        else:
            # A transport lost without error closed our socket, and closing it sent our FIN, whoever began. The
            # peer's FIN is only drawn if it came (an "eof"): an ESME that keeps its socket open after unbind must
            # show as one. A transport that ended on its own without telling eof_received (TLS ends on the peer's
            # close) did so because the peer closed.
            if ended is None:
                self._capture(cid, "eof", _PEER)
            end = _SMSC_FIN
        self._capture(cid, "close", end)

    def _capture(self, cid: int, kind: str, data: bytes) -> None:
        """Hand the tap an event written from the SMSC's side ("in": octets it received; a close in the
        _PEER_*/_SMSC_* codes; an eof naming _PEER or _SMSC), turned into the capture's client/server terms for a
        connection the SMSC opened."""
        assert self.tap is not None
        if cid in self._initiated:
            if kind == "close":
                data = _SWAPPED_END.get(data, data)
            elif kind == "eof":
                data = _SWAPPED_SIDE.get(data, data)
            else:
                kind = "out" if kind == "in" else "in"
        self.tap(cid, kind, data, self.clock())

    def _arm(self) -> None:
        deadline = self.smsc.next_deadline
        if deadline is None:
            return
        if self._timer is not None and self._timer_at is not None and self._timer_at <= deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = deadline
        self._timer = asyncio.get_running_loop().call_later(max(0.0, deadline - self.clock()), self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = None
        self.service()

    async def stop_listening(self, *, abort_connections: bool = False) -> None:
        """Stop accepting (an SMSC outage); with ``abort_connections`` also reset every connection."""
        for server in self._servers:
            server.close()
        if abort_connections:
            for conn in self.smsc.connections.values():
                conn.reset_requested = True  # the SMSC dropped them: not a verdict on the ESME
            for cid, transport in list(self.transports.items()):
                self._abort(cid, transport)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    async def shutdown(self, grace: float = 2.0) -> None:
        """Unbind every session, wait up to ``grace`` seconds for the handshakes, then close everything (abort a
        connection whose peer left what it was sent unread in the transport's buffer).

        During the grace the SMSC reads on, for its peers' answers (the unbind_resp, the responses to what is in
        flight), and answers what crossed its unbind (``ESME_RINVBNDSTS``). Backpressure
        alone would not hold a peer that reads nothing: it engages when the transport's buffer passes its
        high-water mark, and that buffer fills only once the kernel's send buffer is full -- up to 4 MiB on Linux,
        autotuned, some 250,000 responses that a peer flooding ``submit_sm`` gets answered in the grace, every one
        of them read, judged and captured. So both are cut to a few KiB first: a peer that takes what it is sent
        notices nothing (an unbind_resp is 16 octets), and one that does not is paused (no more reading) after at
        most those KiB of responses plus the rest of the read in hand, and stays paused to the end of the grace,
        when it is aborted. A connection already paused stays paused: nothing here reads it.
        """
        self._stopping = True
        for server in self._servers:
            server.close()
        for transport in list(self.transports.values()):
            self._hold_to_grace(transport)
        self.smsc.unbind_all(self.clock())
        self.service()
        try:
            async with asyncio.timeout(grace):
                while self.smsc.connections:
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pass
        for conn in self.smsc.connections.values():
            # Still open: the SMSC ends it, not the peer (whose unbind_resp may only be late).
            conn.closing_at_shutdown(grace)
        for cid, transport in list(self.transports.items()):
            if transport.get_write_buffer_size():
                # A peer that has not read what it was sent through the whole grace will not now: the buffer would
                # hold the close (and its FIN) until the process exits and the kernel resets the connection. Say
                # so: the RST, after what was really sent.
                self._abort(cid, transport)
            else:
                self._close(cid, transport)
        await asyncio.sleep(0)  # their connection_lost: how they ended reaches the capture hook
        for conn in list(self.smsc.connections.values()):
            conn.connection_lost(self.clock())
        if self._timer is not None:
            self._timer.cancel()
        for server in self._servers:
            await server.wait_closed()
