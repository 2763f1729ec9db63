"""Packet captures of SMPP traffic: scapy layers that dissect SMPP, and a pcap writer that frames a session's
bytes in TCP/IP so that Wireshark (or scapy) can read what crossed the wire.

Importing this package registers the SMPP layers with scapy (TCP port 2775, both directions).
"""

from carrier_sim.capture.layers import (
    BODY_LAYERS,
    SMPP,
    SMPP_PORT,
    SMPPTLV,
    SMPPBody,
    SMPPDestAddress,
    SMPPUnsuccessSme,
    pdu_layers,
)
from carrier_sim.capture.pcap import (
    CapturedChunk,
    CapturedStream,
    CaptureStateError,
    ConnectionEnd,
    Endpoint,
    Flow,
    PcapFile,
    Side,
    TcpConversation,
    reassemble_connections,
    reassemble_streams,
    write_streams,
)
from carrier_sim.capture.tap import StreamTap

__all__ = [
    "BODY_LAYERS",
    "SMPP",
    "SMPPTLV",
    "SMPP_PORT",
    "CaptureStateError",
    "CapturedChunk",
    "CapturedStream",
    "ConnectionEnd",
    "Endpoint",
    "Flow",
    "PcapFile",
    "SMPPBody",
    "SMPPDestAddress",
    "SMPPUnsuccessSme",
    "Side",
    "StreamTap",
    "TcpConversation",
    "pdu_layers",
    "reassemble_connections",
    "reassemble_streams",
    "write_streams",
]
