"""The floor under the SMSC bench's ceiling goal: the least a CPython SMSC must do per message, in one function.

Not the product and not a test: a bench target (``bench/smsc_throughput.py --targets ...,floor``) that answers
one question before anyone rebuilds the SMSC's hot path for the issue's "half the ceiling" goal: *can* a
single-threaded CPython SMSC that does a message's real work reach it, or does the goal need compiled code?

The header-only ceiling (``_CeilingProtocol``) decodes nothing and answers every submit_sm with the same bytes.
:class:`FloorProtocol` does, per message, what no SMSC can skip, written as one flat loop over each read (no
event objects, no PDU objects, columns instead of records -- the shape a rebuilt hot path would have):

* frames the stream (partial frames kept across reads, command_length bounded) and decodes every mandatory field
  of submit_sm with the spec's bounds (C-Octet Strings terminated within their maximum length, sm_length inside
  the body) and walks its TLVs; a malformed one is answered with the status SMPP gives it;
* judges what the oracle judges per message and is cheap to judge: short_message and message_payload not both
  set, the UDHI bit against the payload, a GSM 7-bit text within one segment, the peer's window;
* resolves the validity period (relative or absolute, remembered per text and second, as the SMSC does) and
  refuses one that is not a time;
* stores the message in columns (destination, source, text, data_coding, esm_class, registered_delivery,
  submitted, expires, state) under a decimal message id of its own, and answers with it;
* when a receipt is asked for, builds one for *this* message -- its own id, swapped addresses, submit and done
  dates of the second, the first 20 characters of its text -- with the receipted_message_id, message_state and
  network_error_code TLVs, under a sequence number of its own, kept in flight against its own window with a
  response deadline; the deliver_sm_resp settles it (and marks the message delivered) or, refused, marks it;
* answers bind (password checked), enquire_link and unbind.

What it leaves out, and the SMSC does: throttles, faults, subscriber states, routing and roaming, the receipt
dialects, replace_if_present, scheduled delivery and expiry timers, query/cancel/replace, MO, SMPP 3.3/5.0
differences, and most of the oracle's verdict bookkeeping. So its figure is a floor: a rebuilt hot path costs at
least this much, and its rate through the throughput bench is the most such a design could reach here.
"""

from __future__ import annotations

import asyncio
import struct
import time
from calendar import timegm
from typing import cast

__all__ = ["FloorProtocol"]

_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_U16 = struct.Struct(">H")
_MAX_COMMAND_LENGTH = 64 * 1024
_SUBMIT_SM, _DELIVER_SM_RESP = 0x00000004, 0x80000005
_BINDS = (0x00000001, 0x00000002, 0x00000009)
_ENQUIRE_LINK, _UNBIND, _GENERIC_NACK = 0x00000015, 0x00000006, 0x80000000
_ESME_RINVCMDLEN, _ESME_RINVCMDID, _ESME_RINVPASWD = 0x02, 0x03, 0x0E
_ESME_RSYSERR, _ESME_RINVEXPIRY, _ESME_RINVPARLEN = 0x08, 0x62, 0xC2
_MESSAGE_PAYLOAD = 0x0424
_UDHI = 0x40
_ENROUTE, _DELIVERED, _UNDELIVERABLE = 1, 2, 5
_RESPONSE_TIMEOUT = 30.0
_DEFAULT_VALIDITY = 48 * 3600.0


class _Malformed(Exception):
    """A submit_sm the floor refuses; ``args[0]`` is the command_status."""


def _cstring(buf: bytes, start: int, end: int, limit: int) -> tuple[bytes, int]:
    """The C-Octet String at ``start`` (at most ``limit`` octets with its NUL) and where the next field starts."""
    nul = buf.find(0, start, min(end, start + limit))
    if nul < 0:
        raise _Malformed(_ESME_RINVPARLEN)
    return buf[start:nul], nul + 1


def _validity(text: bytes, now: float) -> float:
    """When a message with this validity_period expires (SMPP 3.4 7.1.1: absolute "YYMMDDhhmmsstnnp" or relative
    "...R")."""
    if not text:
        return now + _DEFAULT_VALIDITY
    if len(text) != 16 or not text[:15].isdigit():
        raise _Malformed(_ESME_RINVEXPIRY)
    yy, mo, dd, hh, mi, ss = (int(text[i:i + 2]) for i in range(0, 12, 2))
    kind = text[15:16]
    if kind == b"R":
        return now + ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss
    if kind not in (b"+", b"-") or not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 60):
        raise _Malformed(_ESME_RINVEXPIRY)
    offset = int(text[13:15]) * 900 * (1 if kind == b"+" else -1)
    return timegm((2000 + yy, mo, dd, hh, mi, ss, 0, 0, 0)) - offset + int(text[12:13]) / 10


class FloorProtocol(asyncio.Protocol):
    """One SMPP connection served by the floor SMSC (see the module docstring). ``password``: the one bind
    accepts; ``window``: our deliver_sm in flight at most; ``peer_window``: the peer's submit_sm we let it have
    unanswered in one read."""

    def __init__(self, password: bytes, window: int = 100, peer_window: int = 100) -> None:
        self.password = password
        self.window = window
        self.peer_window = peer_window
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.bound = False
        self.seq = 0
        self.next_id = 0
        # The store, as columns indexed by message id - 1.
        self.dest: list[bytes] = []
        self.source: list[bytes] = []
        self.text: list[bytes] = []
        self.coding: list[int] = []
        self.esm: list[int] = []
        self.registered: list[int] = []
        self.submitted: list[float] = []
        self.expires: list[float] = []
        self.state: list[int] = []
        #: Our deliver_sm awaiting a response: sequence number -> (message id, deadline).
        self.in_flight: dict[int, tuple[int, float]] = {}
        #: Receipts waiting for room in our window: (message id, body).
        self.waiting: list[tuple[int, bytes]] = []
        #: Verdicts the peer earned, by check (failures only).
        self.failures: dict[str, int] = {}
        self._validity_second = -1.0
        self._validity_seen: dict[bytes, float] = {}
        self._date_second = -1
        self._date = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def _fail(self, check: str) -> None:
        self.failures[check] = self.failures.get(check, 0) + 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        size = len(buf)
        now = time.time()
        second = int(now)
        if second != self._date_second:
            self._date_second = second
            self._date = time.strftime("%y%m%d%H%M", time.gmtime(second)).encode()
        out = bytearray()
        pos = 0
        owed = 0  # the peer's requests read in this chunk and not yet answered: its window, as the oracle judges
        close = False
        while size - pos >= 16:
            length, command, status, seq = _HEADER.unpack_from(buf, pos)
            if length < 16 or length > _MAX_COMMAND_LENGTH:
                out += _HEADER.pack(16, _GENERIC_NACK, _ESME_RINVCMDLEN, seq)
                close = True
                pos = size
                break
            end = pos + length
            if end > size:
                break
            if command == _SUBMIT_SM and self.bound:
                owed += 1
                if owed > self.peer_window:
                    self._fail("window")
                try:
                    self._submit(buf, pos, end, seq, now, out)
                except _Malformed as err:
                    out += _HEADER.pack(16, 0x80000004, err.args[0], seq)
                except (IndexError, ValueError, struct.error):
                    out += _HEADER.pack(16, 0x80000004, _ESME_RINVCMDLEN, seq)
            elif command == _DELIVER_SM_RESP:
                flight = self.in_flight.pop(seq, None)
                if flight is None:
                    self._fail("response_echo")
                else:
                    if now > flight[1]:
                        self._fail("response_time")
                    self.state[flight[0] - 1] = _DELIVERED if status == 0 else _UNDELIVERABLE
            elif command in _BINDS:
                p = buf.find(0, pos + 16, end) + 1
                q = buf.find(0, p, end)
                ok = p > 0 and q >= 0 and buf[p:q] == self.password
                self.bound = self.bound or ok
                body = b"floor\0" if ok else b""
                out += _HEADER.pack(16 + len(body), command | 0x80000000, 0 if ok else _ESME_RINVPASWD, seq) + body
            elif command == _ENQUIRE_LINK:
                out += _HEADER.pack(16, 0x80000015, 0, seq)
            elif command == _UNBIND:
                out += _HEADER.pack(16, 0x80000006, 0, seq)
                close = True
            elif not command & 0x80000000:
                out += _HEADER.pack(16, _GENERIC_NACK, _ESME_RINVCMDID, seq)
            pos = end
        self._pump(out, now)
        if pos >= size:
            buf.clear()
        elif pos:
            del buf[:pos]
        if self.transport is not None:
            if out:
                self.transport.write(out)
            if close:
                self.transport.close()

    def _submit(self, buf: bytearray, pos: int, end: int, seq: int, now: float, out: bytearray) -> None:
        """Decode, judge, store and answer one submit_sm; queue its receipt."""
        raw = bytes(buf[pos:end])  # one copy: the fields below are slices of it
        end -= pos
        service_type, p = _cstring(raw, 16, end, 6)
        source_ton, source_npi = raw[p], raw[p + 1]
        source, p = _cstring(raw, p + 2, end, 21)
        dest_ton, dest_npi = raw[p], raw[p + 1]
        dest, p = _cstring(raw, p + 2, end, 21)
        esm_class = raw[p]
        schedule, p = _cstring(raw, p + 3, end, 17)
        validity_text, p = _cstring(raw, p, end, 17)
        registered, coding, sm_length = raw[p], raw[p + 2], raw[p + 4]
        text_at = p + 5
        p = text_at + sm_length
        if p > end:
            raise _Malformed(_ESME_RINVCMDLEN)
        text = raw[text_at:p]
        payload = False
        while p < end:
            tag, size = _TLV_HEAD.unpack_from(raw, p)
            p += 4 + size
            if p > end:
                raise _Malformed(_ESME_RINVCMDLEN)
            if tag == _MESSAGE_PAYLOAD:
                payload = True
        if payload and sm_length:
            self._fail("payload_exclusive")
        if esm_class & _UDHI:
            if not text or text[0] + 1 > len(text):
                self._fail("udhi")
        elif coding == 0 and (len(text) > 160 or not text.isascii()):
            self._fail("single_segment")
        if schedule:
            _validity(schedule, now)  # a scheduled message is refused the same way when its time is no time
        if int(now) != self._validity_second:
            self._validity_second = int(now)
            self._validity_seen.clear()
        expires = self._validity_seen.get(validity_text)
        if expires is None:
            expires = self._validity_seen[validity_text] = _validity(validity_text, now)
        self.next_id += 1
        mid = self.next_id
        self.dest.append(dest)
        self.source.append(source)
        self.text.append(text)
        self.coding.append(coding)
        self.esm.append(esm_class)
        self.registered.append(registered)
        self.submitted.append(now)
        self.expires.append(expires)
        self.state.append(_ENROUTE)
        ident = b"%d" % mid
        out += _HEADER.pack(17 + len(ident), 0x80000004, 0, seq)
        out += ident
        out += b"\0"
        if registered & 3:
            date = self._date
            receipt = b"id:%s sub:001 dlvrd:001 submit date:%s done date:%s stat:DELIVRD err:000 text:%s" % (
                ident, date, date, text[:20])
            body = b"".join((
                service_type, b"\0", bytes((dest_ton, dest_npi)), dest, b"\0", bytes((source_ton, source_npi)),
                source, b"\0\x04\0\0\0\0\0\0", bytes((coding, 0, len(receipt))), receipt,
                b"\x00\x1e", _U16.pack(len(ident) + 1), ident, b"\0\x04\x27\x00\x01\x02\x04\x23\x00\x03\x03\x00\x00",
            ))
            self.waiting.append((mid, body))

    def _pump(self, out: bytearray, now: float) -> None:
        """Send waiting receipts while our window has room."""
        waiting = self.waiting
        if not waiting:
            return
        room = self.window - len(self.in_flight)
        if room <= 0:
            return
        take, self.waiting = waiting[:room], waiting[room:]
        in_flight = self.in_flight
        deadline = now + _RESPONSE_TIMEOUT
        for mid, body in take:
            self.seq = seq = 1 if self.seq >= 0x7FFFFFFF else self.seq + 1
            out += _HEADER.pack(16 + len(body), 0x00000005, 0, seq)
            out += body
            in_flight[seq] = (mid, deadline)
