"""A capture hook for :class:`~carrier_sim.net.smsc_server.SmscServer`: every connection's bytes, kept for a pcap."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a type only: the tap is on every run's SMSCs, the pcap writer (scapy) only with --pcap
    from carrier_sim.capture.pcap import CapturedChunk

__all__ = ["StreamTap"]


class StreamTap:
    """Keeps every SMPP byte of an SMSC's connections, and when and how each opened and ended, for ``--pcap``.

    Set it as a server's ``tap``. Each stream is a :data:`~carrier_sim.capture.pcap.CapturedStream` (client,
    server, chunks): the chunks are the hook's events as they came -- "open", "in", "out", "eof" (a side's FIN
    while the connection went on), and "close" carrying whose FIN or RST ended the connection -- which is what
    :func:`~carrier_sim.capture.pcap.write_streams` replays. Memory grows with the traffic (every octet is kept
    until the pcap is written), as a capture's file would.
    """

    def __init__(self) -> None:
        #: Connection id -> (client "host:port", server "host:port", chunks), in the order the connections opened.
        self.streams: dict[int, tuple[str, str, list[CapturedChunk]]] = {}

    def __call__(self, cid: int, kind: str, data: bytes, now: float) -> None:
        if kind == "open":
            client, server = data.decode().split("|")
            self.streams[cid] = (client, server, [("open", b"", now)])
        elif cid in self.streams:
            self.streams[cid][2].append((kind, data, now))
