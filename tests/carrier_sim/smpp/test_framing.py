"""Framing: any chunking yields the same PDUs; bad lengths are fatal, typed and bounded."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import HEADER, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import FrameTooLarge, InvalidCommandLength, SmppError
from carrier_sim.smpp.framing import FrameError, Framer, decode_stream
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.testing.smpp_strategies import pdus


@settings(max_examples=300)
@given(st.lists(pdus(), min_size=1, max_size=12), st.data())
def test_any_chunking_yields_the_same_pdus(stream: list[Pdu], data: st.DataObject) -> None:
    wire = b"".join(encode(p) for p in stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=20)))
    framer = Framer()
    got: list[Pdu | FrameError] = []
    start = 0
    for cut in [*cuts, len(wire)]:
        framer.feed(wire[start:cut])
        start = cut
        got.extend(framer.pdus())
    assert got == stream
    assert framer.buffered == 0


@settings(max_examples=1000)
@given(st.binary(max_size=400), st.integers(16, 1024))
def test_arbitrary_bytes_give_frames_typed_errors_or_wait(data: bytes, maximum: int) -> None:
    framer = Framer(maximum)
    try:
        framer.feed(data)
        for item in framer.pdus():
            if isinstance(item, FrameError):
                assert isinstance(item.error, SmppError)
    except InvalidCommandLength:
        with pytest.raises(InvalidCommandLength):
            framer.feed(b"more")
    assert framer.buffered <= len(data)


def test_oversize_length_refused_before_buffering() -> None:
    framer = Framer(max_command_length=1024)
    framer.feed(b"\x7f\xff\xff\xff")  # 2 GiB announced: refuse at once, never wait for it
    with pytest.raises(FrameTooLarge) as info:
        framer.next_frame()
    assert info.value.command_status == CommandStatus.ESME_RINVCMDLEN
    assert framer.buffered == 0


def test_undersize_length_names_the_sequence_number() -> None:
    framer = Framer()
    framer.feed(HEADER.pack(8, 0x15, 0, 77))
    with pytest.raises(InvalidCommandLength) as info:
        framer.next_frame()
    assert info.value.sequence_number == 77


def test_decode_error_in_one_frame_does_not_break_the_stream() -> None:
    bad = HEADER.pack(16, 0x999, 0, 3)
    good = encode(Pdu.make(CommandId.enquire_link, 4))
    items = decode_stream(bad + good)
    assert isinstance(items[0], FrameError)
    assert items[0].error.command_status == CommandStatus.ESME_RINVCMDID
    assert items[0].error.sequence_number == 3
    assert isinstance(items[1], Pdu)
    assert items[1].sequence_number == 4


def test_memory_stays_bounded_over_a_long_stream() -> None:
    one = encode(Pdu.make(CommandId.enquire_link, 1))
    framer = Framer()
    for _ in range(10_000):
        framer.feed(one * 3 + one[:5])
        list(framer.frames())
        framer.feed(one[5:])
        list(framer.frames())
    assert framer.buffered == 0
    assert len(framer._buf) < 200
