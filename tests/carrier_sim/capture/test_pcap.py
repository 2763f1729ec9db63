"""TcpConversation builds consistent TCP; PcapFile writes pcaps scapy reads back into exactly the bytes written."""

from __future__ import annotations

import io
import os
import stat
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.inet6 import IPv6
from scapy.layers.l2 import Ether
from scapy.packet import Packet
from scapy.utils import rdpcap

from carrier_sim.capture.pcap import (
    DEFAULT_MSS,
    DEFAULT_MSS_IPV6,
    CaptureAbandoned,
    CapturedStream,
    CaptureStateError,
    ConnectionEnd,
    Flow,
    PcapFile,
    Side,
    TcpConversation,
    reassemble_connections,
    reassemble_streams,
    write_streams,
)

CLIENT = ("192.0.2.10", 40123)
SERVER = ("192.0.2.1", 2775)
MOD = 1 << 32


def _tcp(frame: Packet) -> Packet:
    tcp: Packet = frame[TCP]
    return tcp


def _flags(frames: Sequence[Packet]) -> list[str]:
    return [str(_tcp(f).flags) for f in frames]


def _payload(frame: Packet) -> bytes:
    return bytes(_tcp(frame).payload)


def _wire(frames: Sequence[Packet]) -> list[Packet]:
    """The frames as a reader sees them: built to octets (checksums and all), then dissected."""
    return [Ether(bytes(f)) for f in frames]


def test_handshake_numbers() -> None:
    conv = TcpConversation(CLIENT, SERVER, client_isn=1000, server_isn=5000)
    syn, syn_ack, ack = conv.open(now=12.5)
    assert _flags([syn, syn_ack, ack]) == ["S", "SA", "A"]
    assert (_tcp(syn).seq, _tcp(syn).ack) == (1000, 0)
    assert (_tcp(syn_ack).seq, _tcp(syn_ack).ack) == (5000, 1001)
    assert (_tcp(ack).seq, _tcp(ack).ack) == (1001, 5001)
    assert (syn[IP].src, _tcp(syn).sport, syn[IP].dst, _tcp(syn).dport) == (*CLIENT[:1], CLIENT[1], *SERVER)
    assert ("MSS", DEFAULT_MSS) in _tcp(syn).options
    assert {f.time for f in (syn, syn_ack, ack)} == {12.5}
    assert conv.is_open


def test_data_is_cut_at_the_mss_and_acknowledged() -> None:
    conv = TcpConversation(CLIENT, SERVER, client_isn=1000, server_isn=5000, mss=100)
    conv.open()
    data = bytes(range(256))
    frames = conv.client_sends(data, now=1.0)
    *segments, ack = frames
    assert [len(_payload(s)) for s in segments] == [100, 100, 56]
    assert [_tcp(s).seq for s in segments] == [1001, 1101, 1201]
    assert all(_tcp(s).ack == 5001 for s in segments)
    assert _flags(segments) == ["A", "A", "PA"]  # PSH where the application's write ended
    assert b"".join(_payload(s) for s in segments) == data
    assert (ack[IP].src, _flags([ack]), _tcp(ack).seq, _tcp(ack).ack) == (SERVER[0], ["A"], 5001, 1257)

    reply = conv.server_sends(b"ok", now=2.0, acknowledge=False)
    assert len(reply) == 1
    assert (_tcp(reply[0]).seq, _tcp(reply[0]).ack, _payload(reply[0])) == (5001, 1257, b"ok")


def test_the_peer_acknowledges_before_the_window_would_overflow() -> None:
    window = 1000
    conv = TcpConversation(CLIENT, SERVER, mss=300, window=window)
    conv.open()
    frames = conv.client_sends(bytes(5000), acknowledge=False)
    in_flight = 0
    for frame in frames:
        if frame[IP].src == CLIENT[0]:
            in_flight += len(_payload(frame))
            assert in_flight <= window
        else:
            in_flight = 0  # the receiver's ACK covers everything sent so far
    assert sum(len(_payload(f)) for f in frames) == 5000


def test_close_and_reset() -> None:
    conv = TcpConversation(CLIENT, SERVER, client_isn=10, server_isn=20)
    conv.open()
    conv.client_sends(b"abc")
    fin, fin_ack, last = conv.close(now=3.0, by=Side.SERVER)
    assert fin[IP].src == SERVER[0]
    assert _flags([fin, fin_ack, last]) == ["FA", "FA", "A"]
    assert (_tcp(fin).seq, _tcp(fin).ack) == (21, 14)
    assert (_tcp(fin_ack).seq, _tcp(fin_ack).ack) == (14, 22)  # the FIN took one sequence number
    assert (_tcp(last).seq, _tcp(last).ack) == (22, 15)
    assert not conv.is_open

    aborted = TcpConversation(CLIENT, SERVER)
    aborted.open()
    (rst,) = aborted.reset(by=Side.CLIENT)
    assert _flags([rst]) == ["RA"]


def test_a_side_finishes_alone_and_the_peer_may_still_send() -> None:
    conv = TcpConversation(CLIENT, SERVER, client_isn=100, server_isn=500)
    conv.open(now=1.0)
    fin, ack = conv.finish(Side.SERVER, now=2.0)
    assert _flags([fin, ack]) == ["FA", "A"]
    assert (_tcp(fin).seq, _tcp(ack).ack) == (501, 502)  # the FIN takes a sequence number
    assert conv.finished(Side.SERVER)
    assert not conv.finished(Side.CLIENT)
    assert conv.is_open
    with pytest.raises(CaptureStateError):
        conv.server_sends(b"after my FIN")
    with pytest.raises(CaptureStateError):
        conv.finish(Side.SERVER)
    with pytest.raises(CaptureStateError):
        conv.close()
    data = conv.client_sends(b"still here", now=3.0)
    assert _tcp(data[0]).ack == 502
    fin, ack = conv.finish(Side.CLIENT, now=4.0)
    assert (_tcp(fin).seq, _tcp(ack).ack) == (111, 112)
    assert not conv.is_open


def test_state_errors() -> None:
    conv = TcpConversation(CLIENT, SERVER)
    with pytest.raises(CaptureStateError):
        conv.client_sends(b"too early")
    conv.open()
    with pytest.raises(CaptureStateError):
        conv.open()
    conv.close()
    with pytest.raises(CaptureStateError):
        conv.server_sends(b"late")
    with pytest.raises(CaptureStateError):
        conv.close()
    with pytest.raises(CaptureStateError):
        conv.reset()


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="mss"):
        TcpConversation(CLIENT, SERVER, mss=0)
    with pytest.raises(ValueError, match="mss"):
        TcpConversation(CLIENT, SERVER, mss=2000, window=1000)
    with pytest.raises(ValueError, match="IPv6"):
        TcpConversation(CLIENT, ("2001:db8::1", 2775))


def test_time_is_only_what_the_caller_says() -> None:
    conv = TcpConversation(CLIENT, SERVER, now=100.0)
    assert {f.time for f in conv.open()} == {100.0}
    assert {f.time for f in conv.client_sends(b"x")} == {100.0}  # no now: the previous time, no clock read
    assert {f.time for f in conv.server_sends(b"y", now=101.25)} == {101.25}
    assert {f.time for f in conv.close()} == {101.25}


def test_empty_send_makes_no_frames() -> None:
    conv = TcpConversation(CLIENT, SERVER)
    conv.open()
    assert conv.client_sends(b"") == []


def test_frames_carry_valid_checksums_and_stable_addresses() -> None:
    conv = TcpConversation(CLIENT, SERVER)
    frames = [*conv.open(), *conv.client_sends(b"hello"), *conv.server_sends(b"world"), *conv.close()]
    for frame in _wire(frames):
        # Rebuilding with the checksums cleared recomputes them: equal octets mean the written ones were right.
        fresh = frame.copy()
        del fresh[IP].chksum
        del fresh[TCP].chksum
        assert bytes(fresh) == bytes(frame)
    macs = {(f[IP].src, f[Ether].src) for f in frames}
    assert len(macs) == 2  # one MAC per host


def test_sequence_numbers_wrap() -> None:
    conv = TcpConversation(CLIENT, SERVER, client_isn=MOD - 3, mss=4)
    conv.open()
    frames = conv.client_sends(b"0123456789")
    assert [_tcp(f).seq for f in frames if _payload(f)] == [MOD - 2, 2, 6]
    assert reassemble_streams(_wire(frames))[(CLIENT, SERVER)] == b"0123456789"


def test_ipv6_conversation() -> None:
    client, server = ("2001:db8::7", 50002), ("2001:db8::1", 2775)
    conv = TcpConversation(("2001:0db8::0007", 50002), server)  # spelled long: endpoints are canonicalised
    assert conv.client == client
    frames = _wire([*conv.open(), *conv.server_sends(b"v6"), *conv.close()])
    assert all(IPv6 in f for f in frames)
    assert reassemble_streams(frames) == {(server, client): b"v6"}


chunks = st.lists(st.tuples(st.sampled_from(Side), st.binary(max_size=4000)), max_size=12)


@settings(max_examples=40, deadline=None)
@given(first=chunks, second=chunks, mss=st.integers(1, 1460), isn=st.integers(0, MOD - 1))
def test_pcap_reads_back_to_exactly_the_bytes_written(
    tmp_path_factory: pytest.TempPathFactory,
    first: list[tuple[Side, bytes]],
    second: list[tuple[Side, bytes]],
    mss: int,
    isn: int,
) -> None:
    path = tmp_path_factory.mktemp("pcap") / "two.pcap"
    expected: dict[Flow, bytes] = {}
    with PcapFile(path) as pcap:
        a = pcap.conversation(("10.0.0.1", 40001), ("10.0.0.9", 2775), mss=mss, client_isn=isn)
        b = pcap.conversation(("10.0.0.2", 40002), ("10.0.0.9", 2775), now=5.0)
        # Interleaved, as a runner writes several connections' traffic into one file.
        for index in range(max(len(first), len(second))):
            for conv, script in ((a, first), (b, second)):
                if index < len(script):
                    side, data = script[index]
                    conv.send(side, data, now=float(index))
                    if data:
                        flow = conv.flow(side)
                        expected[flow] = expected.get(flow, b"") + data
        a.close()
        b.reset(by=Side.SERVER)
    frames = rdpcap(str(path))
    assert len(frames) == pcap.frames_written
    assert reassemble_streams(frames) == expected


def test_empty_pcap_is_still_a_pcap(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    PcapFile(path).close()
    assert len(rdpcap(str(path))) == 0


def test_pcap_into_a_file_object() -> None:
    buffer = io.BytesIO()
    pcap = PcapFile(buffer)
    conv = pcap.conversation(CLIENT, SERVER, now=1.0)
    conv.client_sends(b"to memory", now=2.0)
    pcap.flush()
    frames = rdpcap(io.BytesIO(buffer.getvalue()))
    assert [float(f.time) for f in frames] == [1.0, 1.0, 1.0, 2.0, 2.0]
    assert reassemble_streams(frames) == {(CLIENT, SERVER): b"to memory"}
    pcap.close()
    with pytest.raises(CaptureStateError):
        pcap.write([])


def test_reassembly_counts_retransmissions_once_and_refuses_holes() -> None:
    conv = TcpConversation(CLIENT, SERVER, mss=4)
    handshake = conv.open()
    segments = conv.client_sends(b"abcdefghij", acknowledge=False)
    retransmitted = _wire([*handshake, segments[0], segments[1], segments[1], segments[0], segments[2]])
    assert reassemble_streams(retransmitted) == {(CLIENT, SERVER): b"abcdefghij"}
    with pytest.raises(ValueError, match="missing"):
        reassemble_streams(_wire([*handshake, segments[0], segments[2]]))


# ------------------------------------------------------------------------------------- write_streams (--pcap)


def _captured(client: str, server: str, start: float, step: float, n: int, end: bytes | None) -> CapturedStream:
    """A connection as an SMSC's capture hook records it: open, n alternating in/out chunks, maybe a close."""
    chunks: list[tuple[str, bytes, float]] = [("open", b"", start)]
    for i in range(n):
        data = f"{client}#{i};".encode() * (1 + i * 300)  # some chunks span several segments
        chunks.append(("in" if i % 2 == 0 else "out", data, start + step * (i + 1)))
    if end is not None:
        chunks.append(("close", end, start + step * (n + 1)))
    return client, server, chunks


def _times(frames: Iterable[Packet]) -> list[float]:
    return [float(f.time) for f in frames]


def _ip(frame: Packet) -> Packet:
    ip: Packet = frame[IP] if IP in frame else frame[IPv6]
    return ip


def test_write_streams_orders_frames_in_time_across_interleaved_conversations(tmp_path: Path) -> None:
    # Three overlapping connections (one over IPv6) and a later one given first, as the shards hand them over.
    streams = [
        _captured("192.0.2.30:40003", "192.0.2.1:2775", 50.0, 1.0, 4, b"client fin"),
        _captured("192.0.2.10:40001", "192.0.2.1:2775", 0.0, 3.0, 10, b"server rst"),
        _captured("192.0.2.20:40002", "192.0.2.1:2775", 1.5, 2.0, 12, b"server fin"),
        _captured("[2001:db8::7]:40004", "[2001:db8::1]:2775", 2.25, 5.0, 5, None),
    ]
    path = tmp_path / "run.pcap"
    written = write_streams(path, streams)
    frames = rdpcap(str(path))
    assert len(frames) == written
    times = _times(frames)
    assert times == sorted(times)
    assert times[0] == 0.0
    assert times[-1] == 55.0  # the last close
    # The conversations really interleave in the file, and each still reads back to exactly its bytes.
    sources = [str(_ip(f).src) for f in frames[:40]]
    assert {"192.0.2.10", "192.0.2.20"} <= set(sources)
    streams_back = reassemble_streams(frames)
    for client, server, chunks in streams:
        c_host, c_port = client.rsplit(":", 1)
        s_host, s_port = server.rsplit(":", 1)
        c, sv = (c_host.strip("[]"), int(c_port)), (s_host.strip("[]"), int(s_port))
        assert streams_back[(c, sv)] == b"".join(d for k, d, _ in chunks if k == "in")
        assert streams_back[(sv, c)] == b"".join(d for k, d, _ in chunks if k == "out")


def test_write_streams_keeps_time_from_going_back_within_a_conversation(tmp_path: Path) -> None:
    # A wall clock stepped back mid-connection: its frames keep the later time rather than jumping back.
    chunks = [("open", b"", 10.0), ("in", b"a", 11.0), ("out", b"b", 9.0), ("close", b"client fin", 12.0)]
    path = tmp_path / "stepped.pcap"
    write_streams(path, [("192.0.2.10:40001", "192.0.2.1:2775", chunks)])
    times = _times(rdpcap(str(path)))
    assert times == sorted(times)
    assert (times[0], times[-1]) == (10.0, 12.0)


def _ends(path: Path) -> dict[str, list[tuple[str, str]]]:
    """Per client address, the (sender, flags) of each FIN or RST frame, in file order."""
    ends: dict[str, list[tuple[str, str]]] = {}
    for frame in rdpcap(str(path)):
        tcp = _tcp(frame)
        ip = _ip(frame)
        client = str(ip.dst) if int(tcp.sport) == 2775 else str(ip.src)
        if tcp.flags.F or tcp.flags.R:
            ends.setdefault(client, []).append(("server" if int(tcp.sport) == 2775 else "client", str(tcp.flags)))
    return ends


def _with_eof(stream: CapturedStream, side: bytes, at: float) -> CapturedStream:
    """``stream`` with an "eof" chunk (``side``'s FIN, the connection going on) at time ``at``, in time order."""
    client, server, chunks = stream
    return client, server, sorted([*chunks, ("eof", side, at)], key=lambda chunk: chunk[2])


def test_write_streams_draws_how_each_connection_ended(tmp_path: Path) -> None:
    # Only the FINs the hook saw: a close names the FIN that ended the connection, and the other side's FIN is
    # drawn only where an "eof" said it came. Both FINs were drawn for every orderly close, so an ESME that
    # never closed its socket after unbind was shown closing it.
    streams = [
        _captured("192.0.2.11:40001", "192.0.2.1:2775", 0.0, 1.0, 3, b"server rst"),
        _captured("192.0.2.12:40002", "192.0.2.1:2775", 0.5, 1.0, 3, b"server fin"),
        _captured("192.0.2.13:40003", "192.0.2.1:2775", 0.7, 1.0, 3, b"client fin"),
        _captured("192.0.2.14:40004", "192.0.2.1:2775", 0.8, 1.0, 3, b"client rst"),
        _captured("192.0.2.15:40005", "192.0.2.1:2775", 0.9, 1.0, 3, b""),  # a hook that does not say
        _captured("192.0.2.16:40006", "192.0.2.1:2775", 1.0, 1.0, 3, None),  # still up when the capture ended
        # The peer's FIN first, then the server's: both seen.
        _with_eof(_captured("192.0.2.17:40007", "192.0.2.1:2775", 1.1, 1.0, 3, b"server fin"), b"client", 4.5),
        # The peer half-closed, then reset: its FIN, then its RST.
        _with_eof(_captured("192.0.2.18:40008", "192.0.2.1:2775", 1.2, 1.0, 3, b"client rst"), b"client", 4.5),
        # A hook that names the FIN it already reported: drawn once.
        _with_eof(_captured("192.0.2.19:40009", "192.0.2.1:2775", 1.3, 1.0, 3, b"client fin"), b"client", 4.5),
    ]
    path = tmp_path / "ends.pcap"
    write_streams(path, streams)
    assert _ends(path) == {
        "192.0.2.11": [("server", "RA")],
        "192.0.2.12": [("server", "FA")],
        "192.0.2.13": [("client", "FA")],
        "192.0.2.14": [("client", "RA")],
        "192.0.2.15": [("client", "FA")],
        "192.0.2.17": [("client", "FA"), ("server", "FA")],
        "192.0.2.18": [("client", "FA"), ("client", "RA")],
        "192.0.2.19": [("client", "FA")],
    }
    frames = rdpcap(str(path))
    half_closed = [f for f in frames if "192.0.2.17" in (_ip(f).src, _ip(f).dst)]
    assert [float(f.time) for f in half_closed if _tcp(f).flags.F] == [4.5, 5.1]  # each FIN at its own time
    # Every FIN is acknowledged by the other side, and no segment follows the last ACK.
    assert _flags(half_closed[-4:]) == ["FA", "A", "FA", "A"]
    frames = rdpcap(str(path))
    reset = [f for f in frames if "192.0.2.11" in (_ip(f).src, _ip(f).dst)]
    assert str(_tcp(reset[-1]).flags) == "RA"  # the RST ends it, at its time
    assert float(reset[-1].time) == 4.0


def test_connection_end_reads_the_hook_octets() -> None:
    assert [(e.by, e.reset) for e in ConnectionEnd] == [
        (Side.CLIENT, False),
        (Side.SERVER, False),
        (Side.CLIENT, True),
        (Side.SERVER, True),
    ]
    assert ConnectionEnd.parse(b"server rst") is ConnectionEnd.SERVER_RST
    assert ConnectionEnd.parse(b"") is ConnectionEnd.CLIENT_FIN


def test_write_streams_of_nothing_is_still_a_pcap(tmp_path: Path) -> None:
    path = tmp_path / "none.pcap"
    assert write_streams(path, []) == 0
    assert len(rdpcap(str(path))) == 0


def _reused_four_tuple(first: float, second: float) -> list[CapturedStream]:
    def conv(t: float) -> list[tuple[str, bytes, float]]:
        return [("open", b"", t), ("in", b"\x00" * 16, t + 0.01), ("close", b"client fin", t + 0.02)]

    return [("127.0.0.1:40000", "127.0.0.1:2775", conv(first)), ("127.0.0.1:40000", "127.0.0.1:2775", conv(second))]


def test_a_reused_four_tuple_gets_new_initial_sequence_numbers(tmp_path: Path) -> None:
    # Same ISNs on a reused 4-tuple made Wireshark read the second connection as a retransmission of the first,
    # and leave it undecoded; the ISN clock (RFC 9293 3.4.1) moves them apart.
    out, again = tmp_path / "a.pcap", tmp_path / "b.pcap"
    write_streams(out, _reused_four_tuple(100.0, 105.0))
    syns = [f for f in rdpcap(str(out)) if _tcp(f).flags.S]
    client_isns = [_tcp(f).seq for f in syns if not _tcp(f).flags.A]
    server_isns = [_tcp(f).seq for f in syns if _tcp(f).flags.A]
    assert len(client_isns) == len(server_isns) == 2
    assert client_isns[0] != client_isns[1]
    assert server_isns[0] != server_isns[1]
    # Still a pure function of its inputs: the same connections at the same times give the same file.
    write_streams(again, _reused_four_tuple(100.0, 105.0))
    assert again.read_bytes() == out.read_bytes()
    a = TcpConversation(CLIENT, SERVER, now=7.0).open()
    b = TcpConversation(CLIENT, SERVER, now=7.0).open()
    assert [_tcp(f).seq for f in a] == [_tcp(f).seq for f in b]


@pytest.mark.parametrize(("client", "server", "mss"), [
    (CLIENT, SERVER, DEFAULT_MSS),
    (("2001:db8::10", 40123), ("2001:db8::1", 2775), DEFAULT_MSS_IPV6),
])
def test_full_segments_fit_an_ethernet_frame(client: tuple[str, int], server: tuple[str, int], mss: int) -> None:
    # IPv6 used IPv4's 1460 and made 1534-octet frames, more than a 1500-octet Ethernet payload plus its header.
    conv = TcpConversation(client, server)
    syn = conv.open(now=1.0)[0]
    assert ("MSS", mss) in _tcp(syn).options
    frames = conv.client_sends(b"x" * 5000, 2.0)
    assert max(len(bytes(f)) for f in frames) == 14 + 1500


# ------------------------------------------------------------------- a pcap is at its path whole, or not at all


def test_a_pcap_being_written_is_not_at_its_path_until_closed(tmp_path: Path) -> None:
    # A reader (or a CI job collecting artifacts after a kill) must never find a cut-off pcap at the path.
    path = tmp_path / "run.pcap"
    with PcapFile(path) as pcap:
        conv = pcap.conversation(CLIENT, SERVER, now=1.0)
        conv.client_sends(b"x" * 5000, now=2.0)
        pcap.flush()
        assert not path.exists()
        assert [p.name.endswith(".part") for p in tmp_path.iterdir()] == [True]  # beside it: one rename away
    assert sorted(tmp_path.iterdir()) == [path]
    assert reassemble_streams(rdpcap(str(path))) == {(CLIENT, SERVER): b"x" * 5000}


def test_a_pcap_left_on_an_exception_leaves_the_path_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "run.pcap"
    path.write_bytes(b"the previous run's pcap")

    def interrupted_write() -> None:
        with PcapFile(path) as pcap:
            pcap.conversation(CLIENT, SERVER).client_sends(b"half a run")
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        interrupted_write()
    assert sorted(tmp_path.iterdir()) == [path]
    assert path.read_bytes() == b"the previous run's pcap"


def test_write_streams_told_to_stop_leaves_nothing_at_its_path(tmp_path: Path) -> None:
    streams = [_captured(f"192.0.2.{n}:40001", "192.0.2.1:2775", float(n), 1.0, 6, b"client fin")
               for n in range(10, 20)]
    asked: list[int] = []

    def stop() -> bool:  # as a second signal, set while frames are being written
        asked.append(1)
        return len(asked) > 50

    path = tmp_path / "run.pcap"
    with pytest.raises(CaptureAbandoned):
        write_streams(path, streams, stop=stop)
    assert list(tmp_path.iterdir()) == []
    # Told before it begins: not even an empty pcap.
    with pytest.raises(CaptureAbandoned):
        write_streams(path, streams, stop=lambda: True)
    assert list(tmp_path.iterdir()) == []
    # Never told: the whole file.
    assert write_streams(path, streams, stop=lambda: False) == len(rdpcap(str(path))) > 50


def test_a_pcap_written_to_a_symlink_replaces_the_file_it_leads_to(tmp_path: Path) -> None:
    real = tmp_path / "real.pcap"
    real.write_bytes(b"the previous run's pcap")
    link = tmp_path / "link.pcap"
    link.symlink_to(real)
    with PcapFile(link) as pcap:
        pcap.conversation(CLIENT, SERVER, now=1.0).client_sends(b"hello", now=2.0)
    assert link.is_symlink()
    assert link.resolve() == real
    assert reassemble_streams(rdpcap(str(real))) == {(CLIENT, SERVER): b"hello"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pcap", "real.pcap"]


def test_a_pcap_is_never_written_into_or_renamed_over_a_fifo(tmp_path: Path) -> None:
    fifo = tmp_path / "p.pcap"
    os.mkfifo(fifo)
    # A reader held open, so that code opening the FIFO to write into it gets through (and fails the test) rather
    # than blocking it for ever, as `carrier-sim run --pcap FIFO` did once the run was over.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        for target in (fifo, tmp_path / "link.pcap"):
            if target.name == "link.pcap":
                target.symlink_to(fifo)
            with pytest.raises(OSError, match="not a regular file"):
                write_streams(target, [])
        assert os.read(reader, 64) == b""  # nothing was written into it (with no writer left, a pipe reads empty)
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.pcap", "p.pcap"]  # no temporary left behind


def _record_times(data: bytes) -> list[tuple[int, int]]:
    """(seconds, fraction) of every record of a little-endian classic pcap, read without scapy."""
    times, offset = [], 24
    while offset < len(data):
        sec, fraction, caplen, _wirelen = struct.unpack_from("<IIII", data, offset)
        times.append((sec, fraction))
        offset += 16 + caplen
    return times


@pytest.mark.parametrize(("nano", "when", "record"), [
    (False, 1700000000.9999996, (1700000001, 0)),  # the fraction rounds up to a whole second: carried
    (False, 1700000000.9999994, (1700000000, 999999)),
    (False, 1700000000.25, (1700000000, 250000)),
    (True, 5.9999999997, (6, 0)),
    (True, 5.9999999994, (5, 999999999)),
])
def test_record_times_carry_a_fraction_that_rounds_to_a_whole_second(
    nano: bool, when: float, record: tuple[int, int]
) -> None:
    # scapy rounded the fraction without carrying: usec=1000000 (nanoseconds 1e9), a record out of range that
    # tshark shows as 1700000000.1000000000.
    buffer = io.BytesIO()
    with PcapFile(buffer, nano=nano) as pcap:
        pcap.conversation(CLIENT, SERVER, now=when)
        pcap.flush()
        times = _record_times(buffer.getvalue())
    assert times == [record] * 3


def _pdu(command_id: int, sequence: int) -> bytes:
    return struct.pack(">IIII", 16, command_id, 0, sequence)


def test_a_reused_four_tuple_reads_back_as_two_connections(tmp_path: Path) -> None:
    # Keyed by 4-tuple alone, the second connection's SYN moved the first one's base: "4293717280 octet(s)
    # missing at stream offset 16", so docs/report.md's way of counting PDUs failed on any reconnect that got its
    # port back.
    def conv(t: float, sequences: Sequence[int]) -> list[tuple[str, bytes, float]]:
        chunks = [("open", b"", t)]
        for i, sequence in enumerate(sequences):
            chunks += [("in", _pdu(0x15, sequence), t + i + 0.1), ("out", _pdu(0x80000015, sequence), t + i + 0.2)]
        return [*chunks, ("close", b"client fin", t + len(sequences))]

    path = tmp_path / "reuse.pcap"
    client, server = ("127.0.0.1", 40000), ("127.0.0.1", 2775)
    write_streams(path, [("127.0.0.1:40000", "127.0.0.1:2775", conv(100.0, [1, 2, 3])),
                         ("127.0.0.1:40000", "127.0.0.1:2775", conv(105.0, [7]))])
    frames = rdpcap(str(path))
    assert reassemble_connections(frames) == [
        {(client, server): b"".join(_pdu(0x15, s) for s in (1, 2, 3)),
         (server, client): b"".join(_pdu(0x80000015, s) for s in (1, 2, 3))},
        {(client, server): _pdu(0x15, 7), (server, client): _pdu(0x80000015, 7)},
    ]
    with pytest.raises(ValueError, match="reassemble_connections"):
        reassemble_streams(frames)


def test_a_retransmitted_syn_does_not_start_a_new_connection() -> None:
    conv = TcpConversation(CLIENT, SERVER, client_isn=10, server_isn=90)
    syn, syn_ack, ack = conv.open(now=1.0)
    data = conv.client_sends(b"once", now=2.0)
    assert reassemble_connections(_wire([syn, syn, syn_ack, syn_ack, ack, *data])) == [{(CLIENT, SERVER): b"once"}]


def test_connections_without_a_captured_handshake_are_read_from_their_first_segment() -> None:
    conv = TcpConversation(CLIENT, SERVER)
    conv.open(now=1.0)
    frames = conv.client_sends(b"mid", now=2.0) + conv.server_sends(b"capture", now=3.0)
    assert reassemble_connections(_wire(frames)) == [{(CLIENT, SERVER): b"mid", (SERVER, CLIENT): b"capture"}]
