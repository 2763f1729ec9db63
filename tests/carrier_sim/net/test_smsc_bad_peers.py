"""Badly behaved peers against the asyncio SMSC: raw sockets that send garbage, illegal and malformed PDUs.

Each case checks three things: the bad peer gets the answer SMPP prescribes (status and echoed sequence number),
the server keeps serving -- a well-behaved ESME binds and submits right after -- and the oracle's verdicts for the
bad peer's session record what it did wrong. The event loop's exception handler is watched throughout: an
exception escaping the protocol callbacks fails the test even though asyncio would survive it.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.codec import HEADER_SIZE, decode, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.faults import FaultPlan

C = CommandId
S = CommandStatus

#: Every wait in this module is bounded by this many seconds.
WAIT = 5.0


@dataclass
class Served:
    """A running SMSC on 127.0.0.1 and what the event loop reported while it ran."""

    smsc: Smsc
    server: SmscServer
    host: str
    port: int
    loop_errors: list[dict[str, Any]] = field(default_factory=list)


async def start_smsc() -> Served:
    """An SMSC with accounts good:pw and bad:pw on a free port; loop exceptions are collected, not printed."""
    smsc = Smsc(SmscConfig(accounts=(Account("good", "pw"), Account("bad", "pw"))))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    served = Served(smsc, server, host, port)
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: served.loop_errors.append(context))
    return served


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    """The SMSC for one test; fails the test if anything escaped into the event loop."""
    running = await start_smsc()
    try:
        yield running
    finally:
        async with asyncio.timeout(WAIT):
            await running.server.shutdown(grace=0.5)
        asyncio.get_running_loop().set_exception_handler(None)
    assert running.loop_errors == []


class RawPeer:
    """A TCP peer that speaks SMPP only as far as the test tells it to."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        local = writer.get_extra_info("sockname")
        #: How the SMSC names this peer in its verdicts.
        self.name = f"{local[0]}:{local[1]}"

    @classmethod
    async def connect(cls, served: Served) -> RawPeer:
        """Open a connection to the SMSC."""
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(served.host, served.port)
        return cls(reader, writer)

    async def send(self, data: bytes | Pdu) -> None:
        """Write raw bytes, or a PDU through the project's codec."""
        self.writer.write(encode(data) if isinstance(data, Pdu) else data)
        async with asyncio.timeout(WAIT):
            await self.writer.drain()

    async def read_pdu(self) -> Pdu:
        """The next whole PDU from the SMSC, decoded."""
        async with asyncio.timeout(WAIT):
            header = await self.reader.readexactly(HEADER_SIZE)
            (length,) = struct.unpack(">I", header[:4])
            body = await self.reader.readexactly(length - HEADER_SIZE)
        return decode(header + body)

    async def exchange(self, data: bytes | Pdu) -> Pdu:
        """Send, then read one PDU."""
        await self.send(data)
        return await self.read_pdu()

    async def bind(self, system_id: str = "good", password: str = "pw", seq: int = 1) -> Pdu:
        """bind_transceiver; the response."""
        return await self.exchange(Pdu.make(C.bind_transceiver, seq, system_id=system_id, password=password,
                                            interface_version=0x34))

    async def closed_by_smsc(self) -> bool:
        """True when the SMSC closes the connection (EOF) without sending anything more."""
        async with asyncio.timeout(WAIT):
            rest = await self.reader.read()
        return rest == b""

    async def close(self) -> None:
        """Hang up."""
        self.writer.close()
        try:
            async with asyncio.timeout(WAIT):
                await self.writer.wait_closed()
        except (ConnectionError, TimeoutError):
            pass


def submit(seq: int, destination: str = "447700900001") -> Pdu:
    """A valid submit_sm."""
    return Pdu.make(C.submit_sm, seq, source_addr="12345", destination_addr=destination, short_message=b"Hello")


async def assert_serves_a_good_session(served: Served) -> None:
    """A well-behaved ESME binds, submits (accepted, with a message_id) and unbinds cleanly."""
    good = await RawPeer.connect(served)
    try:
        bind = await good.bind("good", seq=1)
        assert (bind.command_id, bind.command_status, bind.sequence_number) == (C.bind_transceiver_resp, 0, 1)
        response = await good.exchange(submit(2))
        assert (response.command_id, response.command_status, response.sequence_number) == (C.submit_sm_resp, 0, 2)
        assert str(response["message_id"]).isdigit()
        unbind = await good.exchange(Pdu.make(C.unbind, 3))
        assert (unbind.command_id, unbind.sequence_number) == (C.unbind_resp, 3)
        assert await good.closed_by_smsc()
    finally:
        await good.close()


async def all_connections_gone(served: Served, within: float = 2.0) -> bool:
    """Whether the SMSC forgot every connection (each peer has hung up or been hung up on) within ``within`` s."""
    try:
        async with asyncio.timeout(within):
            while served.smsc.connections:
                await asyncio.sleep(0.01)
    except TimeoutError:
        return False
    return True


async def verdicts_of(served: Served, peer: RawPeer) -> dict[str, str]:
    """The oracle's verdict per check for this peer's session (finished or live)."""
    async with asyncio.timeout(WAIT):
        while True:
            sessions = [s for s in served.smsc.verdicts() if s["peer"] == peer.name]
            if sessions:
                break
            await asyncio.sleep(0.01)
    [session] = sessions
    checks = session["checks"]
    assert isinstance(checks, list)
    return {str(c["check"]): str(c["verdict"]) for c in checks}


# ---------------------------------------------------------------------------------------------------- cases


async def test_garbage_bytes_get_a_generic_nack_and_the_door(served: Served) -> None:
    peer = await RawPeer.connect(served)
    # "GET " read as command_length is 1 195 725 856 octets: no SMPP frame, the stream cannot be resynchronised.
    nack = await peer.exchange(b"GET / HTTP/1.1\r\nHost: smsc\r\n\r\n")
    assert nack.command_id is C.generic_nack
    assert nack.command_status == S.ESME_RINVCMDLEN
    assert nack.sequence_number == int.from_bytes(b".1\r\n", "big")  # octets 12..15 stand where it would be
    assert await peer.closed_by_smsc()
    await peer.close()
    assert (await verdicts_of(served, peer))["wellformed"] == "fail"
    assert served.smsc.stats.generic_nacks == 1
    await assert_serves_a_good_session(served)


async def test_unknown_command_id_gets_generic_nack_echoing_the_sequence_number(served: Served) -> None:
    peer = await RawPeer.connect(served)
    nack = await peer.exchange(struct.pack(">IIII", 16, 0x00000999, 0, 4242))
    assert (nack.command_id, nack.command_status, nack.sequence_number) == (C.generic_nack, S.ESME_RINVCMDID, 4242)
    # The stream is intact: the same connection binds afterwards.
    bind = await peer.bind("bad", seq=4243)
    assert bind.command_status == S.ESME_ROK
    assert (await verdicts_of(served, peer))["wellformed"] == "fail"
    await peer.close()
    await assert_serves_a_good_session(served)


async def test_submit_before_bind_is_an_invalid_bind_status(served: Served) -> None:
    peer = await RawPeer.connect(served)
    response = await peer.exchange(submit(7))
    assert (response.command_id, response.command_status, response.sequence_number) == (
        C.submit_sm_resp, S.ESME_RINVBNDSTS, 7)
    assert served.smsc.stats.submitted == 0
    assert (await verdicts_of(served, peer))["state"] == "fail"
    await peer.close()
    await assert_serves_a_good_session(served)


async def test_second_bind_on_a_bound_session_is_already_bound(served: Served) -> None:
    peer = await RawPeer.connect(served)
    assert (await peer.bind("bad", seq=1)).command_status == S.ESME_ROK
    again = await peer.bind("bad", seq=2)
    assert (again.command_id, again.command_status, again.sequence_number) == (
        C.bind_transceiver_resp, S.ESME_RALYBND, 2)
    # Still bound by the first bind: a submit is accepted.
    assert (await peer.exchange(submit(3))).command_status == S.ESME_ROK
    assert served.smsc.accounts.binds("bad") == 1
    verdicts = await verdicts_of(served, peer)
    assert verdicts["state"] == "fail", verdicts
    await peer.close()
    await assert_serves_a_good_session(served)


@pytest.mark.parametrize(
    ("system_id", "password", "status"),
    [("bad", "wrong", S.ESME_RINVPASWD), ("nobody", "pw", S.ESME_RINVSYSID)],
    ids=["wrong-password", "unknown-system-id"],
)
async def test_bind_refusals(served: Served, system_id: str, password: str, status: CommandStatus) -> None:
    peer = await RawPeer.connect(served)
    refused = await peer.bind(system_id, password, seq=11)
    assert (refused.command_id, refused.command_status, refused.sequence_number) == (
        C.bind_transceiver_resp, status, 11)
    assert served.smsc.stats.bind_failures == 1
    # Not bound: submitting is a state violation the oracle records.
    assert (await peer.exchange(submit(12))).command_status == S.ESME_RINVBNDSTS
    verdicts = await verdicts_of(served, peer)
    assert verdicts["state"] == "fail"
    [session] = [s for s in served.smsc.verdicts() if s["peer"] == peer.name]
    assert session["system_id"] is None
    await peer.close()
    await assert_serves_a_good_session(served)


@pytest.mark.parametrize("header_only", [True, False], ids=["whole-header", "length-only"])
async def test_oversize_command_length_is_nacked_and_the_connection_closed(served: Served, header_only: bool) -> None:
    peer = await RawPeer.connect(served)
    assert (await peer.bind("bad")).command_status == S.ESME_ROK
    too_long = struct.pack(">IIII", 1 << 20, C.submit_sm, 0, 77)
    nack = await peer.exchange(too_long if header_only else too_long[:4])
    assert (nack.command_id, nack.command_status) == (C.generic_nack, S.ESME_RINVCMDLEN)
    # With the header complete the sequence number is known and echoed; with the length alone it is 0.
    assert nack.sequence_number == (77 if header_only else 0)
    assert await peer.closed_by_smsc()
    await peer.close()
    assert (await verdicts_of(served, peer))["wellformed"] == "fail"
    await assert_serves_a_good_session(served)


async def test_truncated_tlv_is_an_invalid_optional_parameter_stream(served: Served) -> None:
    peer = await RawPeer.connect(served)
    assert (await peer.bind("bad")).command_status == S.ESME_ROK
    frame = bytearray(encode(submit(21)))
    frame += struct.pack(">HH", 0x0424, 16) + b"ab"  # message_payload claims 16 octets, 2 follow
    frame[0:4] = struct.pack(">I", len(frame))
    response = await peer.exchange(bytes(frame))
    assert (response.command_id, response.command_status, response.sequence_number) == (
        C.submit_sm_resp, S.ESME_RINVOPTPARSTREAM, 21)
    # A body error does not break framing: the next submit on the same connection is accepted.
    assert (await peer.exchange(submit(22))).command_status == S.ESME_ROK
    assert served.smsc.stats.submitted == 1
    assert (await verdicts_of(served, peer))["wellformed"] == "fail"
    await peer.close()
    await assert_serves_a_good_session(served)


async def test_request_and_oversize_length_in_one_write(served: Served) -> None:
    # The bind decodes and is answered first (frames behind a bind wait for its answer, however the TCP segments
    # fell), then the next frame's command_length kills the stream: the SMSC must forget the connection and its
    # bind slot.
    peer = await RawPeer.connect(served)
    bind = encode(Pdu.make(C.bind_transceiver, 1, system_id="bad", password="pw", interface_version=0x34))
    bound = await peer.exchange(bind + struct.pack(">I", 1 << 20))
    assert (bound.command_id, bound.command_status) == (C.bind_transceiver_resp, S.ESME_ROK)
    nack = await peer.read_pdu()
    assert (nack.command_id, nack.command_status, nack.sequence_number) == (C.generic_nack, S.ESME_RINVCMDLEN, 0)
    assert await peer.closed_by_smsc()
    await peer.close()
    assert served.loop_errors == []
    assert await all_connections_gone(served)
    assert served.smsc.accounts.binds("bad") == 0
    assert (await verdicts_of(served, peer))["wellformed"] == "fail"
    await assert_serves_a_good_session(served)


async def test_peer_that_drops_the_connection_fails_the_unbind_check(served: Served) -> None:
    peer = await RawPeer.connect(served)
    assert (await peer.bind("bad")).command_status == S.ESME_ROK
    await peer.close()
    async with asyncio.timeout(WAIT):
        while served.smsc.accounts.binds("bad"):
            await asyncio.sleep(0.01)
    assert (await verdicts_of(served, peer))["unbind"] == "fail"
    await assert_serves_a_good_session(served)


async def test_a_peer_that_answers_no_deliver_sm_fails_response_time_when_it_hangs_up(served: Served) -> None:
    peer = await RawPeer.connect(served)
    assert (await peer.bind("bad")).command_status == S.ESME_ROK
    for n in range(50):
        assert served.smsc.inject_mo("447700900001", "12345", f"mo {n}", served.server.clock())
    served.server.service()
    seen = [(await peer.read_pdu()).command_id for _ in range(10)]  # the SMSC's window; none answered
    assert seen == [C.deliver_sm] * 10
    await peer.close()
    async with asyncio.timeout(WAIT):
        while served.smsc.accounts.binds("bad"):
            await asyncio.sleep(0.01)
    verdicts = await verdicts_of(served, peer)
    assert (verdicts["response_time"], verdicts["unbind"]) == ("fail", "fail")
    [session] = [s for s in served.smsc.verdicts() if s["peer"] == peer.name]
    checks = session["checks"]
    assert isinstance(checks, list)
    [response_time] = [c for c in checks if c["check"] == "response_time"]
    assert "10 request(s) never answered" in str(response_time["reason"])


async def test_a_peer_that_never_answers_enquire_link_is_unbound_and_hung_up_on() -> None:
    # A half-open connection, as the SMSC sees it: the socket stays up, nothing comes back. Fast timers so that
    # three misses and the unanswered unbind take well under a second.
    smsc = Smsc(SmscConfig(accounts=(Account("mute", "pw", max_binds=1), Account("good", "pw")),
                           enquire_link_interval=0.15, response_timeout=0.1, enquire_link_misses=3))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    served = Served(smsc, server, host, port)
    try:
        mute = await RawPeer.connect(served)
        assert (await mute.bind("mute")).command_status == S.ESME_ROK
        seen = [(await mute.read_pdu()).command_id for _ in range(4)]
        assert seen == [C.enquire_link, C.enquire_link, C.enquire_link, C.unbind]
        assert await mute.closed_by_smsc()  # the unbind went unanswered too
        async with asyncio.timeout(WAIT):
            while smsc.accounts.binds("mute"):
                await asyncio.sleep(0.01)
        assert smsc.stats.dead_links == 1
        verdicts = await verdicts_of(served, mute)
        assert (verdicts["enquire_link"], verdicts["unbind"]) == ("fail", "fail")
        await mute.close()
        again = await RawPeer.connect(served)  # the max_binds slot is free
        try:
            assert (await again.bind("mute")).command_status == S.ESME_ROK
        finally:
            await again.close()
    finally:
        async with asyncio.timeout(WAIT):
            await server.shutdown(grace=0.5)


# ---------------------------------------------------------------------------------------------------- byte faults


@pytest.mark.parametrize(
    "faults",
    [FaultPlan(split_writes=0.5, split_max=3), FaultPlan(coalesce_writes=0.5)],
    ids=["split-writes", "coalesce-writes"],
)
async def test_byte_shaping_faults_keep_the_stream_whole_and_in_order(faults: FaultPlan) -> None:
    # Split and coalesced writes change how the octets are cut into TCP segments, never which octets or their
    # order: the ESME must still read every response, whole, in the order the SMSC wrote them.
    smsc = Smsc(SmscConfig(accounts=(Account("good", "pw"),), faults=faults))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    try:
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(host, port)
        peer = RawPeer(reader, writer)
        assert (await peer.bind("good", seq=1)).command_status == S.ESME_ROK
        for seq in range(2, 42):  # one write each, a little apart: many separate flushes on the SMSC side
            await peer.send(Pdu.make(C.enquire_link, seq))
            await asyncio.sleep(0.0003)
        answers = [await peer.read_pdu() for _ in range(2, 42)]
        assert [(a.command_id, a.sequence_number) for a in answers] == [
            (C.enquire_link_resp, seq) for seq in range(2, 42)]
        await peer.close()
    finally:
        async with asyncio.timeout(WAIT):
            await server.shutdown(grace=0.2)


# ---------------------------------------------------------------------------------------------------- fuzz


def framed(command_id: int, body: bytes, sequence_number: int) -> bytes:
    """A frame with a true command_length around an arbitrary body: gets past framing into the decoders."""
    return struct.pack(">IIII", HEADER_SIZE + len(body), command_id, 0, sequence_number) + body


hostile_bytes = st.one_of(
    st.binary(max_size=300),
    st.builds(framed, st.sampled_from([int(c) for c in CommandId]), st.binary(max_size=200),
              st.integers(0, 0xFFFFFFFF)),
    # A good bind first, so the bound-state handlers see the garbage too.
    st.builds(lambda tail: encode(Pdu.make(C.bind_transceiver, 1, system_id="bad", password="pw",
                                           interface_version=0x34)) + tail, st.binary(max_size=200)),
)


async def hostile_then_good(data: bytes) -> None:
    """One example on a fresh SMSC (so a failure is this example's): hostile bytes, then a good session."""
    served = await start_smsc()
    try:
        peer = await RawPeer.connect(served)
        try:
            await peer.send(data)
            # Give the SMSC the chance to choke on it (and answer) before the peer goes away.
            await asyncio.sleep(0.01)
        finally:
            await peer.close()
        await assert_serves_a_good_session(served)
        assert await all_connections_gone(served, within=0.5), "the SMSC still holds a connection whose peer is gone"
        assert served.smsc.accounts.binds("bad") == 0
        good = [s for s in served.smsc.verdicts() if s["system_id"] == "good"]
        assert len(good) == 1
        checks = good[0]["checks"]
        assert isinstance(checks, list)
        assert {c["check"]: c["verdict"] for c in checks}["unbind"] == "pass"
    finally:
        async with asyncio.timeout(WAIT):
            await served.server.shutdown(grace=0.1)
        asyncio.get_running_loop().set_exception_handler(None)
    assert served.loop_errors == []


# No shrinking: a failing example costs the bounded waits above, and the generated inputs are short already.
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(hostile_bytes)
def test_arbitrary_bytes_never_crash_the_server(data: bytes) -> None:
    asyncio.run(hostile_then_good(data))


LONG = "4477009001234567890123456789"  # 28 digits: data_sm allows 64 octets, deliver_sm 20


async def test_a_data_sm_to_a_long_address_gets_its_receipt_as_a_data_sm(served: Served) -> None:
    # Its receipt, with the addresses swapped, cannot be a deliver_sm: before, writing it raised in the SMSC's
    # timer, which dropped the connection, left the receipt unsent and stopped every timer of the server.
    peer = await RawPeer.connect(served)
    assert (await peer.bind("good")).command_status == S.ESME_ROK
    sent = Pdu.make(C.data_sm, 2, source_addr="447700900123", destination_addr=LONG, registered_delivery=1,
                    tlvs={"message_payload": b"hi"})
    answer = await peer.exchange(sent)
    assert (answer.command_id, answer.command_status) == (C.data_sm_resp, S.ESME_ROK)
    receipt = await peer.read_pdu()
    assert receipt.command_id == C.data_sm
    assert (receipt["source_addr"], receipt["destination_addr"]) == (LONG, "447700900123")
    assert receipt.tlv("receipted_message_id") == answer["message_id"]
    await peer.send(Pdu.make(C.data_sm_resp, receipt.sequence_number, message_id=""))
    assert served.smsc.stats.unsendable == 0
    await peer.close()
    await assert_serves_a_good_session(served)


async def test_a_receipt_no_bind_can_carry_is_dropped_and_counted_not_raised(served: Served) -> None:
    # An SMPP 3.3 receiver has no data_sm, so no PDU can carry that receipt to it: the SMSC drops it, counts it
    # and keeps the session and its timers.
    sender = await RawPeer.connect(served)
    assert (await sender.exchange(Pdu.make(C.bind_transmitter, 1, system_id="good", password="pw",
                                           interface_version=0x33))).command_status == S.ESME_ROK
    receiver = await RawPeer.connect(served)
    assert (await receiver.exchange(Pdu.make(C.bind_receiver, 1, system_id="good", password="pw",
                                             interface_version=0x33))).command_status == S.ESME_ROK
    # (A 3.3 transmitter cannot send data_sm; a 5.0 one on the same account can.)
    modern = await RawPeer.connect(served)
    assert (await modern.exchange(Pdu.make(C.bind_transmitter, 1, system_id="good", password="pw",
                                           interface_version=0x50))).command_status == S.ESME_ROK
    answer = await modern.exchange(Pdu.make(
        C.data_sm, 2, source_addr="447700900123", destination_addr=LONG, registered_delivery=1,
        tlvs={"message_payload": b"hi"}))
    assert answer.command_status == S.ESME_ROK
    async with asyncio.timeout(WAIT):
        while served.smsc.stats.unsendable == 0:
            await asyncio.sleep(0.01)
    # The receiver's session is alive and answers its enquire_link.
    reply = await receiver.exchange(Pdu.make(C.enquire_link, 5))
    assert (reply.command_id, reply.command_status) == (C.enquire_link_resp, S.ESME_ROK)
    for peer in (sender, receiver, modern):
        await peer.close()
    await assert_serves_a_good_session(served)


@pytest.mark.parametrize("after", [C.enquire_link, C.submit_sm])
async def test_a_request_pipelined_behind_a_bind_is_answered_after_it_as_a_bound_one(served: Served,
                                                                                       after: CommandId) -> None:
    # Bind and the next request in one TCP segment: the answer must not depend on the segmentation (before, the
    # request was judged before the bind was decided -- ESME_RINVBNDSTS -- and answered before the bind_resp).
    peer = await RawPeer.connect(served)
    bind = Pdu.make(C.bind_transceiver, 1, system_id="good", password="pw", interface_version=0x34)
    request = (Pdu.make(C.enquire_link, 2) if after is C.enquire_link else
               Pdu.make(C.submit_sm, 2, source_addr="447700900123", destination_addr="447700900124",
                        short_message=b"hi"))
    await peer.send(encode(bind) + encode(request))
    first, second = await peer.read_pdu(), await peer.read_pdu()
    assert (first.command_id, first.command_status, first.sequence_number) == (C.bind_transceiver_resp, S.ESME_ROK, 1)
    assert (second.command_id, second.command_status, second.sequence_number) == (after.response, S.ESME_ROK, 2)
    await peer.close()
    await assert_serves_a_good_session(served)


async def test_an_enquire_link_answered_late_fails_response_time_only() -> None:
    # The enquire_link_resp echoes the right sequence_number, only after the response timer fired: that is
    # lateness (response_time, enquire_link), not a reply to nothing (response_echo).
    smsc = Smsc(SmscConfig(accounts=(Account("slow", "pw"),), enquire_link_interval=0.2, response_timeout=0.2,
                           enquire_link_misses=0))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    served = Served(smsc, server, host, port)
    try:
        slow = await RawPeer.connect(served)
        assert (await slow.bind("slow")).command_status == S.ESME_ROK
        link = await slow.read_pdu()
        assert link.command_id == C.enquire_link
        await asyncio.sleep(0.4)
        await slow.send(Pdu.make(C.enquire_link_resp, link.sequence_number))
        await asyncio.sleep(0.1)
        session = next(s for s in smsc.verdicts() if s["peer"] == slow.name)
        checks = {str(c["check"]): c for c in session["checks"]}  # type: ignore[union-attr]
        assert checks["response_echo"]["verdict"] != "fail", checks["response_echo"]
        assert checks["response_time"]["verdict"] == "fail"
        assert "not answered within the response timeout" in str(checks["response_time"]["reason"])
        await slow.close()
    finally:
        await server.shutdown(grace=0.5)


async def test_the_tcp_reset_fault_resets_the_connection_rather_than_closing_it() -> None:
    # asyncio's abort() closes the socket: with nothing unread the kernel sends a FIN, and the ESME saw an orderly
    # end of stream, not the reset the fault names (and the pcap draws).
    smsc = Smsc(SmscConfig(accounts=(Account("good", "pw"),), faults=FaultPlan(tcp_reset=1.0)))
    server = SmscServer(smsc)
    host, port = await server.listen("127.0.0.1", 0)
    try:
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(host, port)
            peer = RawPeer(reader, writer)
            assert (await peer.bind("good", seq=1)).command_status == S.ESME_ROK
            await peer.send(Pdu.make(C.submit_sm, 2, source_addr="12345", destination_addr="447700900001",
                                     short_message=b"hello"))
            with pytest.raises(ConnectionResetError):
                await _read_to_the_end(reader)
        writer.close()
    finally:
        async with asyncio.timeout(WAIT):
            await server.shutdown(grace=0.2)


async def _read_to_the_end(reader: asyncio.StreamReader) -> None:
    """Read whatever the SMSC wrote until the connection ends: returns at an orderly end (FIN), raises at a reset."""
    while await reader.read(4096):
        pass


async def test_an_abort_after_an_orderly_close_stays_the_fin_the_capture_drew() -> None:
    # An outage's abort in the same loop iteration as a close already flushed: asyncio closes that socket a moment
    # later, and a reset's linger set now turned the close the tap had drawn as the SMSC's FIN into an RST.
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("good", "pw"),))))
    ends: list[bytes] = []
    server.tap = lambda _cid, kind, data, _t: ends.append(data) if kind == "close" else None
    host, port = await server.listen("127.0.0.1", 0)
    try:
        async with asyncio.timeout(WAIT):
            reader, writer = await asyncio.open_connection(host, port)
            while not server.transports:
                await asyncio.sleep(0.01)
            cid, transport = next(iter(server.transports.items()))
            server._close(cid, transport)
            server._abort(cid, transport)
            assert await reader.read(100) == b""  # an orderly end of stream, not ConnectionResetError
        writer.close()
        assert ends == [b"server fin"]
    finally:
        async with asyncio.timeout(WAIT):
            await server.shutdown(grace=0.2)
