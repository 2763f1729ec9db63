"""Wireshark reads two connections on one 4-tuple as two connections: each decoded, neither a retransmission.

A reconnect that gets the same ephemeral port, or shards on several Ray nodes all capturing 127.0.0.1, puts two
conversations with the same addresses and ports into one pcap. With the same initial sequence numbers for both,
tshark took the second for a retransmission of the first and did not decode its SMPP."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest

from carrier_sim.capture.pcap import CapturedChunk, write_streams
from tests.interop.conftest import require_executable

pytestmark = pytest.mark.interop


def _pdu(command_id: int, sequence: int, body: bytes = b"") -> bytes:
    return struct.pack(">IIII", 16 + len(body), command_id, 0, sequence) + body


def _session(t: float) -> list[CapturedChunk]:
    bind = _pdu(0x00000002, 1, b"esme\0secret\0\0\x34\x01\x01\0")  # bind_transmitter
    resp = _pdu(0x80000002, 1, b"smsc\0")
    return [("open", b"", t), ("in", bind, t + 0.01), ("out", resp, t + 0.02), ("close", b"server rst", t + 0.03)]


def test_tshark_decodes_both_connections_of_a_reused_four_tuple(tmp_path: Path) -> None:
    tshark = require_executable("tshark")
    pcap = tmp_path / "reuse.pcap"
    tuple_ = ("127.0.0.1:40000", "127.0.0.1:2775")
    write_streams(pcap, [(*tuple_, _session(100.0)), (*tuple_, _session(105.0))])

    def fields(display_filter: str, field: str) -> list[str]:
        done = subprocess.run([tshark, "-r", str(pcap), "-d", "tcp.port==2775,smpp", "-Y", display_filter,
                               "-T", "fields", "-e", field], capture_output=True, text=True, check=True, timeout=60)
        return done.stdout.split()

    assert fields("tcp.analysis.retransmission || tcp.analysis.spurious_retransmission", "frame.number") == []
    assert fields("smpp", "smpp.command_id") == ["0x00000002", "0x80000002"] * 2
