"""Cutting a byte stream into PDU frames, whatever the chunking, in bounded memory.

TCP delivers SMPP as a stream: a read may hold half a header or twenty PDUs. :class:`Framer` buffers at most
one frame (bounded by ``max_command_length``) plus whatever the last ``feed`` brought, and hands out whole
frames. A command_length below 16 or above the maximum cannot be skipped safely (the next frame's start is
unknown), so it is fatal for the stream: the framer raises :class:`InvalidCommandLength` (with the sequence
number, when the 16-octet header is complete) and refuses further input. Errors inside a well-framed PDU are
the decoder's business and do not break the stream.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from carrier_sim.smpp.codec import HEADER, HEADER_SIZE, decode
from carrier_sim.smpp.errors import FrameTooLarge, InvalidCommandLength, LocalProtocolError, SmppError
from carrier_sim.smpp.pdu import Pdu

__all__ = ["DEFAULT_MAX_COMMAND_LENGTH", "FrameError", "Framer", "decode_stream"]

#: 64 KiB, the common SMSC default. A message_payload of the full 65535 octets needs a larger maximum
#: (the body and TLV headers add up to about 1 KiB more); configurable per framer and session.
DEFAULT_MAX_COMMAND_LENGTH = 64 * 1024
_LENGTH = struct.Struct(">I")


class FrameError:
    """A well-framed PDU that failed to decode: the frame's error, for the session to answer."""

    __slots__ = ("error", "frame")

    def __init__(self, frame: bytes, error: SmppError) -> None:
        self.frame = frame
        self.error = error

    def __repr__(self) -> str:
        return f"<FrameError {self.error}>"


class Framer:
    """Accumulates bytes, yields whole frames. ``feed`` then iterate ``frames()``."""

    __slots__ = ("_broken", "_buf", "_start", "max_command_length")

    def __init__(self, max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> None:
        if max_command_length < HEADER_SIZE:
            raise LocalProtocolError("max_command_length must be at least 16")
        self.max_command_length = max_command_length
        self._buf = bytearray()
        self._start = 0
        self._broken: InvalidCommandLength | None = None

    @property
    def buffered(self) -> int:
        """Octets held that do not yet form a whole frame."""
        return len(self._buf) - self._start

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes. After a fatal framing error, raises it again."""
        if self._broken is not None:
            raise self._broken
        if self._start:
            # Compact lazily: drop consumed frames before growing, so the buffer stays within one frame + one read.
            del self._buf[: self._start]
            self._start = 0
        self._buf += data

    def next_frame(self) -> bytes | None:
        """The next whole frame, or None if more bytes are needed. Raises InvalidCommandLength (fatal)."""
        if self._broken is not None:
            raise self._broken
        available = len(self._buf) - self._start
        if available < 4:
            return None
        (command_length,) = _LENGTH.unpack_from(self._buf, self._start)
        if command_length < HEADER_SIZE or command_length > self.max_command_length:
            if available < HEADER_SIZE and command_length >= HEADER_SIZE:
                # Oversize: refuse now rather than buffer toward it; the sequence number is not known yet.
                self._fail(command_length, None, None)
            if available < HEADER_SIZE:
                return None  # an undersize length: wait for the header so the error can name the sequence
            _, command_id, _, sequence_number = HEADER.unpack_from(self._buf, self._start)
            self._fail(command_length, sequence_number, command_id)
        if available < command_length:
            return None
        frame = bytes(self._buf[self._start : self._start + command_length])
        self._start += command_length
        return frame

    def peek_frames(self) -> tuple[list[bytes], int] | None:
        """The whole frames buffered, oldest first, *without taking them*, and how many octets they span (up to a
        partial frame); None when a command_length outside 16..max follows them (or the framer is broken), which
        only reading can report. :meth:`skip` then takes those octets, or the frames are read as usual."""
        if self._broken is not None:
            return None
        # One copy of what is buffered, then a slice per frame: a bytearray slice turned into bytes copies twice.
        buf = bytes(self._buf[self._start :])
        pos = 0
        size = len(buf)
        frames: list[bytes] = []
        unpack = _LENGTH.unpack_from
        top = self.max_command_length
        while size - pos >= 4:
            (command_length,) = unpack(buf, pos)
            if not HEADER_SIZE <= command_length <= top:
                return None
            if size - pos < command_length:
                break
            frames.append(buf[pos : pos + command_length])
            pos += command_length
        return frames, pos

    def skip(self, octets: int) -> None:
        """Take ``octets`` buffered octets that :meth:`peek_frames` spanned, as read."""
        if not 0 <= octets <= self.buffered:
            raise LocalProtocolError(f"cannot skip {octets} octets of {self.buffered} buffered")
        self._start += octets

    def _fail(self, command_length: int, sequence_number: int | None, command_id: int | None) -> None:
        cls = FrameTooLarge if command_length > self.max_command_length else InvalidCommandLength
        self._broken = cls(
            f"command_length {command_length} outside 16..{self.max_command_length}",
            sequence_number=sequence_number,
            command_id=command_id,
        )
        self._buf.clear()
        self._start = 0
        raise self._broken

    def frames(self) -> Iterator[bytes]:
        """Every whole frame buffered so far."""
        while (frame := self.next_frame()) is not None:
            yield frame

    def pdus(self) -> Iterator[Pdu | FrameError]:
        """Every whole frame decoded: a Pdu, or a FrameError the session answers with a status."""
        # frames(), inline: one generator fewer per frame; and next_frame's common case (a whole frame of a
        # sane length is buffered) inline too, one call fewer per frame. Anything else goes through next_frame.
        next_frame = self.next_frame
        unpack = _LENGTH.unpack_from
        buf = self._buf
        frame: bytes | None
        while True:
            start = self._start
            available = len(buf) - start
            if self._broken is None and available >= HEADER_SIZE:
                (command_length,) = unpack(buf, start)
                if HEADER_SIZE <= command_length <= self.max_command_length and available >= command_length:
                    end = start + command_length
                    frame = bytes(buf[start:end])
                    self._start = end
                else:
                    frame = next_frame()
            else:
                frame = next_frame()
            if frame is None:
                return
            try:
                yield decode(frame)
            except SmppError as err:
                yield FrameError(frame, err)


def decode_stream(data: bytes, max_command_length: int = DEFAULT_MAX_COMMAND_LENGTH) -> list[Pdu | FrameError]:
    """Decode a whole captured stream in one go (tests, pcaps)."""
    framer = Framer(max_command_length)
    framer.feed(data)
    out = list(framer.pdus())
    if framer.buffered:
        raise InvalidCommandLength(f"{framer.buffered} trailing octet(s) do not form a PDU")
    return out
