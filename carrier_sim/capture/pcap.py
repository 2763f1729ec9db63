"""Writing a session's bytes as a pcap that Wireshark reads as a real TCP conversation.

The emulator sees SMPP as a byte stream per connection (and, in virtual time, never touches a socket at all).
To show what crossed the wire, :class:`TcpConversation` dresses each chunk of stream bytes in Ethernet, IP and
TCP headers: a three-way handshake, data segments cut at the MSS with consistent sequence and acknowledgement
numbers, ACKs from the receiving side, and at the end the FINs each side sent (or a RST). It is pure: it returns frames
and never reads a clock — time enters as ``now`` (seconds, wall or virtual), as everywhere in the project.

:class:`PcapFile` writes frames of any number of conversations into one classic pcap (Ethernet link type), so
a whole run's SMPP traffic lands in one file; :func:`reassemble_connections` reads frames back into each
connection's byte streams (and :func:`reassemble_streams` into one stream per direction, where no 4-tuple is
reused), which is how the tests check that the pcap holds exactly the bytes written.

:func:`write_streams` is the runner's way in: it takes connections as an SMSC's capture hook recorded them
(:data:`CapturedStream`: the chunks each side wrote and how the connection ended) and writes them all into one
pcap in global time order. Readers (``capinfos`` "strict time order", Wireshark's RTT and stream graphs) assume
frames are in capture order, and conversations of a run overlap in time: writing them one after another would
make the clock jump back at every new conversation. Each conversation's frames are built lazily and the
conversations are merged by timestamp, so memory holds one pending frame per conversation, not the whole file.

:func:`write_streams` does not build its frames with scapy: a scapy packet object per frame made about 2,000
frames a second (an SMSC stopped after 3 s of traffic spent 24 s writing its pcap). :class:`_WireConversation`
runs the same TCP state as :class:`TcpConversation` and packs each frame's Ethernet, IP and TCP headers with
``struct``: the octets scapy builds, which the tests compare file for file, some 60 times faster. A long run's
pcap still takes a while (a million frames, seconds), a wide window for a CI job's timeout or a second Ctrl-C,
and a silence for whoever waits: ``progress`` is told how far it got, once a second.

So a pcap named by a path is written to a temporary file beside it and renamed into place when complete: a reader
never finds a cut-off pcap at the path, only the whole file or none (or the file that was there before).
:func:`write_streams` can also be told to give up between frames (``stop``), which leaves nothing behind and
raises :class:`CaptureAbandoned`.
"""

from __future__ import annotations

import enum
import heapq
import ipaddress
import math
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Generic, NamedTuple, TypeVar

from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet, Raw
from scapy.utils import PcapWriter, checksum

from carrier_sim.capture import layers as _layers  # noqa: F401 - registers SMPP with scapy, as the package did
from carrier_sim.outputs import AbandonRequest, open_beside, resolve_output

__all__ = [
    "DEFAULT_MSS",
    "DEFAULT_MSS_IPV6",
    "DEFAULT_WINDOW",
    "PROGRESS_INTERVAL",
    "CaptureAbandoned",
    "CaptureStateError",
    "CapturedChunk",
    "CapturedStream",
    "ConnectionEnd",
    "Endpoint",
    "Flow",
    "PcapFile",
    "Side",
    "TcpConversation",
    "reassemble_connections",
    "reassemble_streams",
    "write_streams",
]

#: Maximum segment size of Ethernet with IPv4 and no TCP options (1500 - 20 - 20).
DEFAULT_MSS = 1460
#: The same with IPv6, whose header is 40 octets (1500 - 40 - 20): 1460 made 1534-octet frames, larger than
#: any Ethernet without jumbo frames carries.
DEFAULT_MSS_IPV6 = 1440
#: The largest window TCP advertises without the window-scale option (RFC 7323), which we do not negotiate.
DEFAULT_WINDOW = 65535
#: pcap link type of Ethernet (DLT_EN10MB).
_LINKTYPE_ETHERNET = 1
_SEQ_SPACE = 1 << 32

#: An (ip, port) pair; the ip may be IPv4 or IPv6 text.
Endpoint = tuple[str, int]
#: A direction of a TCP conversation: (source endpoint, destination endpoint).
Flow = tuple[Endpoint, Endpoint]


#: One event of a captured connection, in the order it happened: (kind, octets, time in seconds). ``kind`` is
#: "open" (the connection was accepted; no octets), "in" (octets the client sent), "out" (octets the server sent:
#: handed to its kernel, not merely queued in a buffer above it),
#: "eof" (the side the octets name, b"client" or b"server", sent its FIN while the connection went on: a
#: half-close) or "close" (the connection ended; the octets say how, as :meth:`ConnectionEnd.parse` reads them).
CapturedChunk = tuple[str, bytes, float]
#: One captured connection: ("client_host:port", "server_host:port", its chunks). The client is the end that
#: opened the connection (for an SMSC's capture hook: the peer, or the SMSC for an outbind).
CapturedStream = tuple[str, str, Sequence[CapturedChunk]]


class CaptureStateError(RuntimeError):
    """A conversation was asked for something its TCP state does not allow (data before open, after close)."""


class CaptureAbandoned(Exception):
    """:func:`write_streams` was told to stop before the pcap was complete. Nothing of it was left at a target
    given as a path; whatever was there before is untouched."""


class Side(enum.Enum):
    """Which end of a conversation acts."""

    CLIENT = "client"
    SERVER = "server"


class ConnectionEnd(enum.Enum):
    """How a connection ended, as the capture hook saw it: the side whose FIN (orderly) or RST (reset, abort)
    ended it. The value is the octets a "close" chunk carries.

    A FIN is only that side's: the other side's FIN is drawn only where an "eof" chunk before it says it came
    (a peer that never closed its socket must not be shown closing it).
    """

    CLIENT_FIN = b"client fin"
    SERVER_FIN = b"server fin"
    CLIENT_RST = b"client rst"
    SERVER_RST = b"server rst"

    @property
    def by(self) -> Side:
        """The side whose FIN or RST ended the connection."""
        return Side.CLIENT if self in (ConnectionEnd.CLIENT_FIN, ConnectionEnd.CLIENT_RST) else Side.SERVER

    @property
    def reset(self) -> bool:
        """True for an abortive release (RST)."""
        return self in (ConnectionEnd.CLIENT_RST, ConnectionEnd.SERVER_RST)

    @classmethod
    def parse(cls, data: bytes) -> ConnectionEnd:
        """The end a "close" chunk names; empty or unknown octets (a hook that does not say) read as the
        client's FIN, the usual end of an SMPP session (the ESME closes after unbind_resp)."""
        try:
            return cls(data)
        except ValueError:
            return cls.CLIENT_FIN


class _State(enum.Enum):
    NEW = "new"
    OPEN = "open"
    CLOSED = "closed"


def _mac_for(ip: str) -> str:
    """A stable, locally administered MAC for an IP, so each host keeps one MAC across conversations."""
    packed = ipaddress.ip_address(ip).packed[-4:]
    return "02:00:" + ":".join(f"{octet:02x}" for octet in packed)


#: Ticks per second of the ISN clock: RFC 9293 3.4.1's generator advances every 4 microseconds.
_ISN_TICKS_PER_SECOND = 250_000


def _default_isn(source: Endpoint, destination: Endpoint, now: float) -> int:
    # RFC 9293 3.4.1 (ISN = M + F(4-tuple)): a hash of the flow plus a clock, both deterministic (no randomness
    # enters the project outside seeded generators), so equal inputs give equal files. The clock term is what
    # tells apart two connections on one 4-tuple (a reconnect that got the same port, shards of Ray nodes all on
    # 127.0.0.1): with the hash alone they had the same ISNs, and Wireshark showed the second as a retransmission
    # of the first and did not decode it.
    flow = zlib.crc32(f"{source[0]}|{source[1]}|{destination[0]}|{destination[1]}".encode())
    return (flow + int(now * _ISN_TICKS_PER_SECOND)) % _SEQ_SPACE


@dataclass(slots=True)
class _Half:
    """One direction's sending state."""

    endpoint: Endpoint
    mac: str
    seq: int  # next sequence number this side will use
    acked: int  # highest sequence number of this side the peer has acknowledged
    ip_id: int = 1
    packed_ip: bytes = b""  # the address as it goes in an IP header (for _WireConversation)
    packed_mac: bytes = b""

    @property
    def in_flight(self) -> int:
        return (self.seq - self.acked) % _SEQ_SPACE


_FrameT = TypeVar("_FrameT")


class _Conversation(Generic[_FrameT]):
    """The TCP state of one connection (handshake, sequence and acknowledgement numbers, segments at the MSS, the
    release) and the frames it makes, each built by the subclass's :meth:`_build`: scapy packets
    (:class:`TcpConversation`) or their octets (:class:`_WireConversation`), from the same numbers."""

    def __init__(
        self,
        client: Endpoint,
        server: Endpoint,
        *,
        mss: int | None = None,
        window: int = DEFAULT_WINDOW,
        client_isn: int | None = None,
        server_isn: int | None = None,
        now: float = 0.0,
        sink: Callable[[Sequence[_FrameT]], None] | None = None,
    ) -> None:
        # Canonical text ("2001:db8::1", not "2001:0db8::0001"), so flows compare equal to what readers report.
        client = (str(ipaddress.ip_address(client[0])), client[1])
        server = (str(ipaddress.ip_address(server[0])), server[1])
        if ipaddress.ip_address(client[0]).version != ipaddress.ip_address(server[0]).version:
            raise ValueError("client and server must both be IPv4 or both be IPv6")
        if mss is None:  # what fits one 1500-octet Ethernet payload after this IP version's header
            mss = DEFAULT_MSS_IPV6 if ipaddress.ip_address(client[0]).version == 6 else DEFAULT_MSS
        if not 0 < mss <= window <= 0xFFFF:
            raise ValueError(f"need 0 < mss <= window <= 65535, got mss={mss} window={window}")
        self.client: Endpoint = client
        self.server: Endpoint = server
        self.mss = mss
        self.window = window
        self._now = now
        self._sink = sink
        self._state = _State.NEW
        self._finished: set[Side] = set()  # the sides that have sent their FIN
        self._ipv6 = ipaddress.ip_address(client[0]).version == 6
        c_isn = _default_isn(client, server, now) if client_isn is None else client_isn % _SEQ_SPACE
        s_isn = _default_isn(server, client, now) if server_isn is None else server_isn % _SEQ_SPACE
        self._halves = {
            Side.CLIENT: _Half(client, _mac_for(client[0]), c_isn, c_isn),
            Side.SERVER: _Half(server, _mac_for(server[0]), s_isn, s_isn),
        }
        for half in self._halves.values():
            half.packed_ip = ipaddress.ip_address(half.endpoint[0]).packed
            half.packed_mac = bytes.fromhex(half.mac.replace(":", ""))

    @property
    def is_open(self) -> bool:
        """True between :meth:`open` and :meth:`close` / :meth:`reset`."""
        return self._state is _State.OPEN

    def flow(self, side: Side) -> Flow:
        """The (source, destination) of the bytes ``side`` sends."""
        return self._halves[side].endpoint, self._halves[_other(side)].endpoint

    def open(self, now: float | None = None) -> list[_FrameT]:
        """The three-way handshake: SYN, SYN/ACK, ACK."""
        if self._state is not _State.NEW:
            raise CaptureStateError("the conversation is already open or closed")
        self._tick(now)
        options = [("MSS", self.mss)]
        frames = [
            self._segment(Side.CLIENT, "S", options=options),
            self._segment(Side.SERVER, "SA", options=options),
            self._segment(Side.CLIENT, "A"),
        ]
        self._state = _State.OPEN
        return self._emit(frames)

    def send(self, side: Side, data: bytes, now: float | None = None, *, acknowledge: bool = True) -> list[_FrameT]:
        """Data segments carrying ``data`` from ``side`` (cut at the MSS), then the peer's ACK.

        With ``acknowledge=False`` the peer's ACK is left out (its next segment acknowledges the data anyway, as
        when a response follows at once). Within a large chunk the peer acknowledges whenever the unacknowledged
        bytes would exceed the window, as a real receiver must before the sender may continue.
        """
        if self._state is not _State.OPEN:
            raise CaptureStateError(f"cannot send data on a conversation that is {self._state.value}")
        if side in self._finished:
            raise CaptureStateError(f"the {side.value} cannot send data after its FIN")
        self._tick(now)
        peer = _other(side)
        frames: list[_FrameT] = []
        half = self._halves[side]
        for start in range(0, len(data), self.mss):
            chunk = data[start : start + self.mss]
            if half.in_flight + len(chunk) > self.window:
                frames.append(self._segment(peer, "A"))
            last = start + self.mss >= len(data)
            # PSH marks where the application's write ended, as a TCP stack does.
            frames.append(self._segment(side, "PA" if last else "A", chunk))
        if data and acknowledge:
            frames.append(self._segment(peer, "A"))
        return self._emit(frames)

    def client_sends(self, data: bytes, now: float | None = None, *, acknowledge: bool = True) -> list[_FrameT]:
        """:meth:`send` from the client (the ESME, usually)."""
        return self.send(Side.CLIENT, data, now, acknowledge=acknowledge)

    def server_sends(self, data: bytes, now: float | None = None, *, acknowledge: bool = True) -> list[_FrameT]:
        """:meth:`send` from the server (the SMSC, usually)."""
        return self.send(Side.SERVER, data, now, acknowledge=acknowledge)

    def close(self, now: float | None = None, *, by: Side = Side.CLIENT) -> list[_FrameT]:
        """The orderly release of both sides at once: FIN/ACK from ``by``, FIN/ACK from the peer, the last ACK."""
        if self._state is not _State.OPEN:
            raise CaptureStateError(f"cannot close a conversation that is {self._state.value}")
        if self._finished:
            raise CaptureStateError("a side has already sent its FIN: finish the other")
        self._tick(now)
        peer = _other(by)
        frames = [self._segment(by, "FA"), self._segment(peer, "FA"), self._segment(by, "A")]
        self._finished.update(Side)
        self._state = _State.CLOSED
        return self._emit(frames)

    def finish(self, side: Side, now: float | None = None) -> list[_FrameT]:
        """One side's FIN/ACK and the peer's ACK of it. Until the peer finishes too the connection is half-closed:
        the peer may still send, and may never finish (an ESME that keeps its socket open after unbind)."""
        if self._state is not _State.OPEN:
            raise CaptureStateError(f"cannot finish a conversation that is {self._state.value}")
        if side in self._finished:
            raise CaptureStateError(f"the {side.value} has already sent its FIN")
        self._tick(now)
        frames = [self._segment(side, "FA"), self._segment(_other(side), "A")]
        self._finished.add(side)
        if len(self._finished) == 2:
            self._state = _State.CLOSED
        return self._emit(frames)

    def finished(self, side: Side) -> bool:
        """True once ``side`` has sent its FIN (:meth:`finish`, :meth:`close`)."""
        return side in self._finished

    def reset(self, now: float | None = None, *, by: Side = Side.CLIENT) -> list[_FrameT]:
        """An abortive release: one RST/ACK from ``by`` (a peer that drops the connection)."""
        if self._state is not _State.OPEN:
            raise CaptureStateError(f"cannot reset a conversation that is {self._state.value}")
        self._tick(now)
        frames = [self._segment(by, "RA")]
        self._state = _State.CLOSED
        return self._emit(frames)

    # ------------------------------------------------------------------------------------------------ internals

    def _tick(self, now: float | None) -> None:
        if now is not None:
            self._now = now

    def _emit(self, frames: list[_FrameT]) -> list[_FrameT]:
        if self._sink is not None and frames:
            self._sink(frames)
        return frames

    def _segment(
        self,
        side: Side,
        flags: str,
        payload: bytes = b"",
        options: list[tuple[str, int]] | None = None,
    ) -> _FrameT:
        half = self._halves[side]
        peer = self._halves[_other(side)]
        ack = peer.seq if "A" in flags else 0
        frame = self._build(half, peer, flags, ack, payload, options or [])
        if not self._ipv6:
            half.ip_id = (half.ip_id + 1) & 0xFFFF
        # SYN and FIN each take one sequence number (RFC 9293 section 3.4).
        consumed = len(payload) + ("S" in flags) + ("F" in flags)
        half.seq = (half.seq + consumed) % _SEQ_SPACE
        if "A" in flags:
            peer.acked = peer.seq
        return frame

    def _build(self, half: _Half, peer: _Half, flags: str, ack: int, payload: bytes,
               options: list[tuple[str, int]]) -> _FrameT:
        """The frame ``half`` sends with its current sequence number (and IP id), at the current time."""
        raise NotImplementedError


class TcpConversation(_Conversation[Packet]):
    """The TCP frames of one connection, built from stream bytes; optionally handed to a ``sink`` as made.

    Every method returns the frames it made (scapy ``Ether`` packets with ``time`` set) and, when a ``sink``
    was given, passes them to it too — :meth:`PcapFile.conversation` uses that to write as the session runs.
    ``now`` is the frames' capture time in seconds; when omitted the previous time is reused.
    """

    def _build(self, half: _Half, peer: _Half, flags: str, ack: int, payload: bytes,
               options: list[tuple[str, int]]) -> Packet:
        tcp = TCP(
            sport=half.endpoint[1],
            dport=peer.endpoint[1],
            seq=half.seq,
            ack=ack,
            flags=flags,
            window=self.window,
            options=options,
        )
        if self._ipv6:
            ip: Packet = IPv6(src=half.endpoint[0], dst=peer.endpoint[0], hlim=64)
        else:
            ip = IP(src=half.endpoint[0], dst=peer.endpoint[0], id=half.ip_id, flags="DF", ttl=64)
        frame: Packet = Ether(src=half.mac, dst=peer.mac) / ip / tcp
        if payload:
            # Raw, not the SMPP layer: the frame must carry the session's octets exactly, whatever they are.
            frame = frame / Raw(load=payload)
        frame.time = self._now
        return frame


class _WireFrame(NamedTuple):
    """A frame as :func:`write_streams` writes it: its time and its octets (Ethernet onwards)."""

    time: float
    octets: bytes
    payload: int  # how many of the octets are the stream's (for the progress count)


#: TCP flag bits (RFC 9293 3.1), as scapy's flag letters name them.
_TCP_FLAGS = {"F": 0x01, "S": 0x02, "R": 0x04, "P": 0x08, "A": 0x10, "U": 0x20, "E": 0x40, "C": 0x80}
_ETHER_IPV4, _ETHER_IPV6 = b"\x08\x00", b"\x86\xdd"
_IPV4 = struct.Struct("!BBHHHBBH4s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_TCP = struct.Struct("!HHIIBBHHH")
_PSEUDO_IPV4 = struct.Struct("!4s4sBBH")
_PSEUDO_IPV6 = struct.Struct("!16s16sIxxxB")
_IP_DF = 0x4000
_PROTO_TCP = 6


class _WireConversation(_Conversation[_WireFrame]):
    """:class:`TcpConversation`'s frames as octets packed here: what ``bytes()`` of its scapy packet gives (the
    same header fields, lengths and checksums), without a scapy object per frame, which cost ~0.4 ms each."""

    def _build(self, half: _Half, peer: _Half, flags: str, ack: int, payload: bytes,
               options: list[tuple[str, int]]) -> _WireFrame:
        opts = b""
        for kind, value in options:
            if kind != "MSS":
                raise ValueError(f"TCP option {kind!r} is not one _WireConversation packs")
            opts += struct.pack("!BBH", 2, 4, value)  # RFC 9293 3.2: kind 2, length 4
        bits = 0
        for letter in flags:
            bits |= _TCP_FLAGS[letter]
        tcp_length = _TCP.size + len(opts) + len(payload)
        src, dst = half.packed_ip, peer.packed_ip
        header = _TCP.pack(half.endpoint[1], peer.endpoint[1], half.seq, ack, (5 + len(opts) // 4) << 4, bits,
                           self.window, 0, 0) + opts
        if self._ipv6:
            pseudo = _PSEUDO_IPV6.pack(src, dst, tcp_length, _PROTO_TCP)
            ip = _IPV6.pack(6 << 28, tcp_length, _PROTO_TCP, 64, src, dst)
            ether = peer.packed_mac + half.packed_mac + _ETHER_IPV6
        else:
            pseudo = _PSEUDO_IPV4.pack(src, dst, 0, _PROTO_TCP, tcp_length)
            total = _IPV4.size + tcp_length
            ip = _IPV4.pack(0x45, 0, total, half.ip_id, _IP_DF, 64, _PROTO_TCP, 0, src, dst)
            ip = ip[:10] + checksum(ip).to_bytes(2, "big") + ip[12:]
            ether = peer.packed_mac + half.packed_mac + _ETHER_IPV4
        tcp_sum = checksum(pseudo + header + payload)
        header = header[:16] + tcp_sum.to_bytes(2, "big") + header[18:]
        return _WireFrame(self._now, ether + ip + header + payload, len(payload))


def _other(side: Side) -> Side:
    return Side.SERVER if side is Side.CLIENT else Side.CLIENT


class PcapFile:
    """A classic pcap (Ethernet link type) that frames of many conversations are written into, in call order.

    Use as a context manager, or call :meth:`close`. ``target`` is a path or a writable binary file object. A
    path is written through a temporary file in its directory that :meth:`close` renames into place, so the path
    never holds a cut-off pcap: leaving the ``with`` block on an exception, or :meth:`discard`, removes the
    temporary file instead. A symbolic link is followed (the file it leads to is replaced, the link stays), and a
    path that exists as something other than a regular file (a directory, a FIFO, a socket, a device) is refused
    with an :class:`OSError` (:class:`~carrier_sim.outputs.NotAnOutputFile`) before anything is opened: a rename
    would replace it, and opening a FIFO blocks until a reader comes. ``atomic=False`` writes the path directly (a
    reader may then follow the file as it grows, see :meth:`flush`); to write into a pipe or device, open it
    yourself and pass the file object.
    """

    def __init__(self, target: str | os.PathLike[str] | BinaryIO, *, nano: bool = False,
                 atomic: bool = True) -> None:
        destination: str | BinaryIO
        self._target: Path | None = None  # where close() renames the temporary file to
        self._tmp: Path | None = None
        spool: BinaryIO | None = None  # the temporary file of an atomic path, ours to close
        if isinstance(target, str | os.PathLike):
            if atomic:
                self._target = resolve_output(target)
                spool, self._tmp = open_beside(self._target)
                destination = spool
            else:
                destination = os.fspath(target)
        else:
            destination = target
        try:
            self._writer = PcapWriter(destination, linktype=_LINKTYPE_ETHERNET, nano=nano)
        except BaseException:
            if spool is not None:
                spool.close()
            self._remove_tmp()
            raise
        self._ticks = 1_000_000_000 if nano else 1_000_000  # record fractions per second
        self._closed = False
        self.frames_written = 0

    def write(self, frames: Iterable[Packet | _WireFrame]) -> None:
        """Append frames (each keeps its own ``time``, rounded to the file's resolution): scapy packets, or frames
        :func:`write_streams` packed itself, written as the records scapy's writer makes of their octets."""
        if self._closed:
            raise CaptureStateError("the pcap file is closed")
        writer = self._writer
        record = struct.Struct(writer.endian + "IIII").pack
        out = writer.f.write
        ticks = self._ticks
        for frame in frames:
            if type(frame) is _WireFrame:
                if not writer.header_present:
                    writer.write_header(None)
                sec, fraction = _record_time(frame.time, ticks)
                size = len(frame.octets)
                out(record(sec, fraction, size, size) + frame.octets)
            else:
                assert isinstance(frame, Packet)
                if not writer.header_present:
                    writer.write_header(frame)
                # The record's seconds and fraction are computed here, not by scapy: scapy 2.8 rounds the fraction
                # without carrying, so 1700000000.9999996 became sec=1700000000 usec=1000000, a record out of range.
                sec, fraction = _record_time(float(frame.time), ticks)
                writer.write_packet(frame, sec=sec, usec=fraction)
            self.frames_written += 1

    def conversation(
        self,
        client: Endpoint,
        server: Endpoint,
        now: float = 0.0,
        *,
        mss: int | None = None,
        window: int = DEFAULT_WINDOW,
        client_isn: int | None = None,
        server_isn: int | None = None,
    ) -> TcpConversation:
        """A conversation whose frames go straight into this file; its handshake is written at ``now``."""
        conv = TcpConversation(
            client,
            server,
            mss=mss,
            window=window,
            client_isn=client_isn,
            server_isn=server_isn,
            now=now,
            sink=self.write,
        )
        conv.open()
        return conv

    def flush(self) -> None:
        """Push buffered frames to the file (with ``atomic=False`` or a file object, a reader may then open it
        while the run goes on; an atomic path shows nothing until :meth:`close`)."""
        self._writer.flush()

    def close(self) -> None:
        """Flush and close, then (for an atomic path) rename the complete file into place. A file with no frames
        still gets its pcap header, so readers accept it."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._tmp is not None:
                if not self._writer.header_present:  # written with the first frame: an empty capture needs it too
                    self._writer.write_header(None)
                # On disk before the rename, or a crash just after it could leave an empty file at the path.
                self._writer.flush()
                os.fsync(self._writer.f.fileno())
            self._writer.close()
            if self._tmp is not None and self._target is not None:
                os.replace(self._tmp, self._target)
                self._tmp = None
        finally:
            self._remove_tmp()

    def discard(self) -> None:
        """Close without publishing: an atomic path's temporary file is removed, leaving the target as it was.
        (A file object, or a path written directly, keeps what was already written.)"""
        if self._closed:
            return
        self._closed = True
        try:
            self._writer.close()
        finally:
            self._remove_tmp()

    def _remove_tmp(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> PcapFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


def _record_time(when: float, ticks: int) -> tuple[int, int]:
    """``when`` as a pcap record's (seconds, fraction in 1/``ticks`` s), rounded to the nearest tick, carrying a
    fraction that rounds up to a whole second into the seconds."""
    sec = math.floor(when)
    # when - sec is exact for a float (no bits are lost subtracting its own integer part); scaling the fraction
    # alone keeps nanoseconds that when * 1e9 (past 2**53 for epoch times) would not.
    fraction = round((when - sec) * ticks)
    if fraction >= ticks:
        sec, fraction = sec + 1, fraction - ticks
    return sec, fraction


def _endpoint(text: str) -> Endpoint:
    # "host:port"; the host may be IPv6 text (itself full of colons), so split at the last one only.
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def _stream_frames(client: str, server: str, chunks: Sequence[CapturedChunk],
                   conversation: Callable[..., _Conversation[_FrameT]]) -> Iterator[_FrameT]:
    """The frames of one captured connection, built as the merge asks for them, with non-decreasing times.

    A clock stepped back (NTP adjusting the wall clock mid-run) would otherwise put a frame before its
    predecessor; a frame never claims an earlier time than the one before it in its conversation.
    """
    start = chunks[0][2] if chunks else 0.0
    conv = conversation(_endpoint(client), _endpoint(server), now=start)
    last = start
    yield from conv.open()
    for kind, data, when in chunks:
        last = max(last, when)
        if kind == "in":
            yield from conv.client_sends(data, last)
        elif kind == "out":
            yield from conv.server_sends(data, last)
        elif kind == "eof":
            side = Side.SERVER if data == Side.SERVER.value.encode() else Side.CLIENT
            if not conv.finished(side):
                yield from conv.finish(side, last)
        elif kind == "close":
            end = ConnectionEnd.parse(data)
            if end.reset:
                yield from conv.reset(last, by=end.by)
            elif not conv.finished(end.by):
                yield from conv.finish(end.by, last)
            return
    # No "close": the capture stopped while the connection was up, so no release is drawn (none was seen).


#: Seconds between two calls of write_streams' ``progress``.
PROGRESS_INTERVAL = 1.0
#: Frames between two looks at the clock for ``progress`` (~15 ms of writing).
_PROGRESS_STRIDE = 1024


def _watched(frames: Iterable[_WireFrame], stop: Callable[[], bool] | None, total: int,
             progress: Callable[[int, int], None] | None) -> Iterator[_WireFrame]:
    """``frames``, asking ``stop`` before each one and telling ``progress`` (stream octets written, ``total``)
    at most once every PROGRESS_INTERVAL seconds, and once more at the end if it was told anything."""
    done = 0
    told = False
    last = time.monotonic()
    for n, frame in enumerate(frames, 1):
        if stop is not None and stop():
            raise CaptureAbandoned("the pcap was abandoned before it was complete")
        done += frame.payload
        if progress is not None and not n % _PROGRESS_STRIDE and (now := time.monotonic()) - last >= PROGRESS_INTERVAL:
            last = now
            told = True
            progress(done, total)
        yield frame
    if told and progress is not None:
        progress(done, total)


def write_streams(
    target: str | os.PathLike[str] | BinaryIO,
    streams: Iterable[CapturedStream],
    *,
    nano: bool = False,
    stop: Callable[[], bool] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Write captured connections (any number, e.g. every shard's) into one pcap, in global time order; returns
    the number of frames written.

    Each connection becomes one TCP conversation: the handshake at its "open" chunk's time (or its first
    chunk's), its data, a FIN (and its ACK) for each "eof" chunk, and the release its "close" chunk names
    (:class:`ConnectionEnd`: that side's FIN, or one RST). A FIN nothing said was sent is not drawn. Frames of
    equal time keep their order within a conversation, and conversations tie in the order given.

    A path appears only once the file is complete (:class:`PcapFile`). ``stop`` is asked before every frame
    (it may be set from another thread, e.g. a signal handler's ``threading.Event.is_set``); once it answers
    True the writing ends with :class:`CaptureAbandoned` and nothing is left at the path. Any other exception
    leaves nothing there either. An :class:`~carrier_sim.outputs.AbandonRequest` as ``stop`` is also told when
    every frame is written (:meth:`~carrier_sim.outputs.AbandonRequest.complete`), so that whoever asks it can
    know whether the pcap is abandoned or already complete and kept (a plain predicate asked too late, while the
    file is closed and renamed, cannot).

    ``progress``, when given, is called with (octets written, octets in all): the SMPP octets of the streams, which
    the frames carry in time order, so the first is a fair measure of how far the file is. It is called at most
    once every :data:`PROGRESS_INTERVAL` seconds -- never for a file written sooner -- and, once it has been, once
    more when every frame is written. It is called from the writing thread.

    The frames are the octets :class:`TcpConversation`'s scapy packets hold, packed without scapy (see the module
    docstring).
    """
    if stop is not None and stop():
        raise CaptureAbandoned("the pcap was abandoned before it was started")
    streams = list(streams)
    total = sum(len(data) for _, _, chunks in streams for kind, data, _ in chunks if kind in ("in", "out"))
    conversations = [_stream_frames(client, server, chunks, _WireConversation) for client, server, chunks in streams]
    with PcapFile(target, nano=nano) as pcap:
        frames: Iterable[_WireFrame] = heapq.merge(*conversations, key=itemgetter(0))
        pcap.write(frames if stop is None and progress is None else _watched(frames, stop, total, progress))
        if isinstance(stop, AbandonRequest) and not stop.complete():
            # Asked after the last frame: still abandoned, since the asker was told so.
            raise CaptureAbandoned("the pcap was abandoned before it was complete")
        return pcap.frames_written


def reassemble_streams(frames: Iterable[Packet]) -> dict[Flow, bytes]:
    """The byte stream of every TCP direction in ``frames`` (e.g. ``rdpcap(path)``), in sequence order.

    The same as :func:`reassemble_connections`, merged into one mapping, which only a capture where no 4-tuple
    carries two connections fits: for one that does (a reconnect that got the same port), this raises ValueError
    naming the flow, and :func:`reassemble_connections` reads it.
    """
    streams: dict[Flow, bytes] = {}
    for connection in reassemble_connections(frames):
        for flow, octets in connection.items():
            if flow in streams:
                raise ValueError(f"{flow} carries more than one connection (a reused 4-tuple): "
                                 "read the capture with reassemble_connections")
            streams[flow] = octets
    return streams


@dataclass(slots=True)
class _Direction:
    """One direction of one connection, as read back: where its stream begins and the segments seen."""

    base: int  # the sequence number of the stream's first octet
    parts: list[tuple[int, bytes]]


def reassemble_connections(frames: Iterable[Packet]) -> list[dict[Flow, bytes]]:
    """Every TCP connection in ``frames`` (e.g. ``rdpcap(path)``), in the order they appear: each one's byte
    streams by direction (a direction that carried no octets is left out, and so is a connection that carried
    none).

    A SYN starts a new connection, so two connections on one 4-tuple (a reconnect that got the same port) come
    back as two, each with its own streams; a SYN or SYN/ACK retransmitted with its sequence number unchanged
    does not. Segments are placed by sequence number relative to the SYN (or to the first segment seen when the
    handshake was not captured); retransmitted octets are counted once. Raises ValueError on a hole, since a
    stream with missing octets would silently misframe every PDU after it.
    """
    connections: list[dict[Flow, _Direction]] = []
    # The latest connection of each 4-tuple, under its two endpoints in sorted order (either direction finds it).
    latest: dict[Flow, dict[Flow, _Direction]] = {}
    for frame in frames:
        if TCP not in frame:
            continue
        tcp = frame[TCP]
        ip_layer = tcp.underlayer
        if not isinstance(ip_layer, IP | IPv6):
            continue  # TCP inside ICMP errors and the like: not part of a stream
        source, destination = (str(ip_layer.src), int(tcp.sport)), (str(ip_layer.dst), int(tcp.dport))
        flow: Flow = (source, destination)
        key: Flow = (source, destination) if source <= destination else (destination, source)
        seq = int(tcp.seq)
        connection = latest.get(key)
        if tcp.flags.S:
            start = (seq + 1) % _SEQ_SPACE
            known = connection.get(flow) if connection is not None else None
            retransmitted = known is not None and known.base == start and not known.parts
            # A client's SYN opens a new connection; a SYN/ACK belongs to the one its SYN opened, unless that one
            # already has this direction (the SYN was not captured, and this is a later connection's SYN/ACK).
            if connection is None or (not retransmitted and (not tcp.flags.A or known is not None)):
                connection = latest[key] = {}
                connections.append(connection)
            if not retransmitted:
                connection[flow] = _Direction(start, [])
            continue
        # The octets as captured, not as scapy would rebuild them from dissected fields: the stream must come
        # back byte-exact even where a layer above TCP misreads it. IP has already cut Ethernet padding off.
        # A frame built in memory (never dissected) has no captured octets, so build it.
        raw = bytes(tcp.original) or bytes(tcp)
        payload = raw[(raw[12] >> 4) * 4 :]
        if not payload:
            continue
        if connection is None:
            connection = latest[key] = {}
            connections.append(connection)
        direction = connection.setdefault(flow, _Direction(seq, []))
        direction.parts.append((seq, payload))
    return [streams for connection in connections if (streams := _streams(connection))]


def _streams(connection: dict[Flow, _Direction]) -> dict[Flow, bytes]:
    streams: dict[Flow, bytes] = {}
    for flow, direction in connection.items():
        if not direction.parts:
            continue
        ordered = sorted(((seq - direction.base) % _SEQ_SPACE, data) for seq, data in direction.parts)
        out = bytearray()
        for offset, data in ordered:
            if offset > len(out):
                raise ValueError(f"{flow}: {offset - len(out)} octet(s) missing at stream offset {len(out)}")
            out += data[len(out) - offset :]
        streams[flow] = bytes(out)
    return streams
