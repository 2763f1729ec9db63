"""Packet captures of SMPP traffic: scapy layers that dissect SMPP, and a pcap writer that frames a session's
bytes in TCP/IP so that Wireshark (or scapy) can read what crossed the wire.

The names below are loaded when first used (PEP 562), not when the package is: a run keeps a
:class:`~carrier_sim.capture.tap.StreamTap` on every SMSC, and importing scapy for it cost every run without
``--pcap`` a quarter of a second more of start-up, during which a signal could only kill the process. Importing
:mod:`carrier_sim.capture.layers` or :mod:`carrier_sim.capture.pcap` (or using any of their names here) registers
the SMPP layers with scapy (TCP port 2775, both directions).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: The module of this package each public name comes from.
_HOME: dict[str, str] = {
    **dict.fromkeys(("BODY_LAYERS", "SMPP", "SMPPTLV", "SMPP_PORT", "SMPPBody", "SMPPDestAddress",
                     "SMPPUnsuccessSme", "pdu_layers"), "layers"),
    **dict.fromkeys(("CaptureStateError", "CapturedChunk", "CapturedStream", "ConnectionEnd", "Endpoint", "Flow",
                     "PcapFile", "Side", "TcpConversation", "reassemble_connections", "reassemble_streams",
                     "write_streams"), "pcap"),
    "StreamTap": "tap",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
