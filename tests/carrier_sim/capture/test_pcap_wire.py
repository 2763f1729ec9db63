"""write_streams packs its frames without scapy: the same octets as scapy's, file for file; and it says how far it is.

The reference is what write_streams wrote before: every frame a scapy packet of :class:`TcpConversation`, written by
:meth:`PcapFile.write`, the conversations merged by time."""

from __future__ import annotations

import heapq
import io
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.packet import Packet

from carrier_sim.capture import pcap as pcap_module
from carrier_sim.capture.pcap import CapturedChunk, CapturedStream, PcapFile, TcpConversation, write_streams


class _Kept(io.BytesIO):
    """A file object whose octets outlive its close (PcapFile closes what it was given)."""

    value = b""

    def close(self) -> None:
        if not self.closed:
            self.value = self.getvalue()
        super().close()


def _with_scapy(streams: Sequence[CapturedStream], nano: bool) -> bytes:
    out = _Kept()
    conversations = [pcap_module._stream_frames(client, server, chunks, TcpConversation)
                     for client, server, chunks in streams]
    pcap = PcapFile(out, nano=nano)
    pcap.write(heapq.merge(*conversations, key=lambda frame: float(frame.time)))
    pcap.close()
    return out.value


def _packed(streams: Sequence[CapturedStream], nano: bool) -> bytes:
    out = _Kept()
    write_streams(out, streams, nano=nano)
    return out.value


_OCTETS = st.one_of(
    st.binary(min_size=0, max_size=64),  # odd lengths too: the checksum pads them
    st.integers(1, 70_000).map(lambda n: bytes(i * 7 % 251 for i in range(n))),  # past the MSS and the window
)
_STEP = st.one_of(st.just(0.0), st.floats(-2.0, 5.0), st.floats(0.0, 1e-6))  # ties, clock steps back, sub-us


@st.composite
def _streams(draw: st.DrawFn) -> list[CapturedStream]:
    ipv6 = draw(st.booleans())
    streams: list[CapturedStream] = []
    for n in range(draw(st.integers(1, 3))):
        client = f"[2001:db8::{n + 10:x}]:{draw(st.integers(1, 65535))}" if ipv6 else \
            f"192.0.2.{n + 10}:{draw(st.integers(1, 65535))}"
        server = "[2001:db8::1]:2775" if ipv6 else "192.0.2.1:2775"
        when = draw(st.floats(0.0, 2e9))  # epoch times, and fractions that round up to the next second
        chunks: list[CapturedChunk] = [("open", b"", when)]
        kinds = ["in", "out", "eof"]  # as the SMSC's hook records them: a side that sent its FIN sends no more
        for _ in range(draw(st.integers(0, 8))):
            when += draw(_STEP)
            kind = draw(st.sampled_from(kinds))
            if kind == "eof":
                side = draw(st.sampled_from([b"client", b"server"]))
                chunks.append(("eof", side, when))
                kinds = ["out"] if side == b"client" else ["in"]
            else:
                chunks.append((kind, draw(_OCTETS), when))
        end = draw(st.sampled_from([None, b"client fin", b"server fin", b"client rst", b"server rst", b""]))
        if end is not None:
            chunks.append(("close", end, when + draw(_STEP)))
        streams.append((client, server, chunks))
    return streams


@settings(max_examples=150, deadline=None)
@given(streams=_streams(), nano=st.booleans())
def test_write_streams_writes_the_octets_scapy_builds(streams: list[CapturedStream], nano: bool) -> None:
    assert _packed(streams, nano) == _with_scapy(streams, nano)


def test_the_wire_frames_are_scapy_s_frame_for_frame() -> None:
    # The same conversation through both builders, method by method, including sequence numbers that wrap.
    def run(conv: pcap_module._Conversation[pcap_module._FrameT]) -> list[pcap_module._FrameT]:
        frames = conv.open()
        frames += conv.client_sends(b"x" * 70_001, 1.5)
        frames += conv.server_sends(b"y", 2.0, acknowledge=False)
        frames += conv.finish(pcap_module.Side.SERVER, 3.0)
        frames += conv.client_sends(b"z" * 3, 3.5)
        frames += conv.reset(4.0, by=pcap_module.Side.CLIENT)
        return frames

    for client, server in ((("192.0.2.10", 40123), ("192.0.2.1", 2775)), (("2001:db8::a", 1), ("2001:db8::1", 2))):
        kwargs = {"client_isn": (1 << 32) - 5, "server_isn": 7, "now": 1.0}
        scapy_frames: list[Packet] = run(TcpConversation(client, server, **kwargs))  # type: ignore[arg-type]
        wire = run(pcap_module._WireConversation(client, server, **kwargs))  # type: ignore[arg-type]
        assert [bytes(f) for f in scapy_frames] == [f.octets for f in wire]
        assert [float(f.time) for f in scapy_frames] == [f.time for f in wire]


def _many(count: int) -> list[CapturedStream]:
    chunks: list[CapturedChunk] = [("open", b"", 100.0)]
    for n in range(count):
        chunks.append(("in", b"q" * 50, 100.0 + n / 1000))
        chunks.append(("out", b"r" * 21, 100.0 + n / 1000))
    chunks.append(("close", b"client fin", 200.0))
    return [("192.0.2.10:40001", "192.0.2.1:2775", chunks)]


def test_progress_is_told_how_far_the_writing_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pcap_module, "PROGRESS_INTERVAL", 0.0)  # every look at the clock tells it
    told: list[tuple[int, int]] = []
    written = write_streams(io.BytesIO(), _many(3000), progress=lambda done, total: told.append((done, total)))
    total = 3000 * (50 + 21)
    assert len(told) == written // 1024 + 1  # once per 1024 frames, and once at the end
    assert all(t == total for _, t in told)
    assert [d for d, _ in told] == sorted(d for d, _ in told)
    assert 0 < told[0][0] < total
    assert told[-1] == (total, total)


def test_a_pcap_written_within_the_interval_tells_progress_nothing() -> None:
    told: list[tuple[int, int]] = []
    write_streams(io.BytesIO(), _many(3000), progress=lambda done, total: told.append((done, total)))
    assert told == []  # milliseconds: nothing to report, not even the end
