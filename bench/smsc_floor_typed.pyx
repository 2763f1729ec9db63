# cython: language_level=3, cdivision=True
"""bench/smsc_floor.py written for a compiler: the same floor SMSC, typed Cython. An experiment for the decision
the issue's ceiling goal asks for (docs/performance.md, thirteenth session), not part of the product.

Same wire behaviour and the same state as the Python floor (``bench/smsc_floor_typed_check.py`` compares them on
random SMPP streams cut at random places):

* the per-connection state lives in a cdef class (typed C fields); ``FloorProtocol`` is still an
  ``asyncio.Protocol`` (it inherits from both), with the same public attributes;
* the framing loop reads headers straight out of the bytearray's memory (no struct.unpack_from), and submit_sm
  is parsed in place (no ``bytes(buf[pos:end])`` copy; memchr for the C-Octet Strings), with the same bounds
  checks in the same order, so a malformed PDU gets the same command_status as in the Python floor;
* responses and receipts are written into the output bytearray with memcpy (no struct.pack / b"".join / %);
* the columns, in_flight, waiting, failures and the validity cache stay Python lists and dicts.

Cython is not a dependency of the project. To build it in place (from the repository root, in a virtual
environment with ``pip install cython``)::

    cythonize -i -3 bench/smsc_floor_typed.pyx

then ``PYTHONPATH=. python bench/smsc_throughput.py --targets ceiling,floor,floor-typed``.
"""

import asyncio
import struct
import time
from calendar import timegm

from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport uint32_t
from libc.stdio cimport snprintf
from libc.string cimport memchr, memcpy

__all__ = ["FloorProtocol"]

_HEADER = struct.Struct(">IIII")
_TLV_HEAD = struct.Struct(">HH")
_U16 = struct.Struct(">H")
DEF _MAX_COMMAND_LENGTH = 64 * 1024
DEF _SUBMIT_SM = 0x00000004
DEF _DELIVER_SM_RESP = 0x80000005
DEF _ENQUIRE_LINK = 0x00000015
DEF _UNBIND = 0x00000006
DEF _GENERIC_NACK = 0x80000000
DEF _ESME_RINVCMDLEN = 0x02
DEF _ESME_RINVCMDID = 0x03
DEF _ESME_RINVPASWD = 0x0E
DEF _ESME_RINVEXPIRY = 0x62
DEF _ESME_RINVPARLEN = 0xC2
DEF _MESSAGE_PAYLOAD = 0x0424
DEF _UDHI = 0x40
DEF _ENROUTE = 1
DEF _DELIVERED = 2
DEF _UNDELIVERABLE = 5
_RESPONSE_TIMEOUT = 30.0
_DEFAULT_VALIDITY = 48 * 3600.0

# The receipt's fixed pieces (see _submit).
cdef bytes _R_ID = b"id:"
cdef bytes _R_SUB = b" sub:001 dlvrd:001 submit date:"
cdef bytes _R_DONE = b" done date:"
cdef bytes _R_STAT = b" stat:DELIVRD err:000 text:"
cdef bytes _B_MID = b"\0\x04\0\0\0\0\0\0"
cdef bytes _B_TAIL = b"\0\x04\x27\x00\x01\x02\x04\x23\x00\x03\x03\x00\x00"


class _Malformed(Exception):
    """A submit_sm the floor refuses; ``args[0]`` is the command_status."""


cdef inline uint32_t _u32(const unsigned char* p) noexcept nogil:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline void _w32(unsigned char* p, uint32_t v) noexcept nogil:
    p[0] = (v >> 24) & 0xFF
    p[1] = (v >> 16) & 0xFF
    p[2] = (v >> 8) & 0xFF
    p[3] = v & 0xFF


cdef inline unsigned char* _grow(bytearray out, Py_ssize_t n) except NULL:
    """Extend ``out`` by ``n`` bytes; the address of the new bytes."""
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(out)
    if PyByteArray_Resize(out, old + n) < 0:
        return NULL
    return <unsigned char*>PyByteArray_AS_STRING(out) + old


cdef inline int _header(bytearray out, uint32_t length, uint32_t command, uint32_t status, uint32_t seq) except -1:
    cdef unsigned char* w = _grow(out, 16)
    _w32(w, length)
    _w32(w + 4, command)
    _w32(w + 8, status)
    _w32(w + 12, seq)
    return 0


cdef inline unsigned char* _put(unsigned char* w, const char* s, Py_ssize_t n) noexcept nogil:
    memcpy(w, s, n)
    return w + n


cdef inline Py_ssize_t _cstring(const unsigned char* raw, Py_ssize_t start, Py_ssize_t end, Py_ssize_t limit) except -1:
    """Where the NUL of the C-Octet String at ``start`` is (at most ``limit`` octets with it)."""
    cdef Py_ssize_t stop = start + limit
    if end < stop:
        stop = end
    if start >= stop:
        raise _Malformed(_ESME_RINVPARLEN)
    cdef const void* nul = memchr(raw + start, 0, stop - start)
    if nul == NULL:
        raise _Malformed(_ESME_RINVPARLEN)
    return <const unsigned char*>nul - raw


def _validity(bytes text, double now):
    """When a message with this validity_period expires (SMPP 3.4 7.1.1: absolute "YYMMDDhhmmsstnnp" or relative
    "...R")."""
    if not text:
        return now + _DEFAULT_VALIDITY
    if len(text) != 16 or not text[:15].isdigit():
        raise _Malformed(_ESME_RINVEXPIRY)
    cdef const unsigned char* t = <const unsigned char*>PyBytes_AS_STRING(text)
    cdef long yy = (t[0] - 48) * 10 + t[1] - 48
    cdef long mo = (t[2] - 48) * 10 + t[3] - 48
    cdef long dd = (t[4] - 48) * 10 + t[5] - 48
    cdef long hh = (t[6] - 48) * 10 + t[7] - 48
    cdef long mi = (t[8] - 48) * 10 + t[9] - 48
    cdef long ss = (t[10] - 48) * 10 + t[11] - 48
    cdef unsigned char kind = t[15]
    if kind == b'R':
        return now + ((yy * 365 + mo * 30 + dd) * 24 + hh) * 3600 + mi * 60 + ss
    if (kind != b'+' and kind != b'-') or not (1 <= mo <= 12 and 1 <= dd <= 31 and hh < 24 and mi < 60 and ss < 60):
        raise _Malformed(_ESME_RINVEXPIRY)
    cdef long offset = ((t[13] - 48) * 10 + t[14] - 48) * 900 * (1 if kind == b'+' else -1)
    return timegm((2000 + yy, mo, dd, hh, mi, ss, 0, 0, 0)) - offset + (t[12] - 48) / 10.0


cdef class _FloorCore:
    cdef public bytes password
    cdef public Py_ssize_t window, peer_window
    cdef public object transport
    cdef public bytearray buf
    cdef public bint bound
    cdef public long long seq, next_id
    cdef public list dest, source, text, coding, esm, registered, submitted, expires, state
    cdef public dict in_flight
    cdef public list waiting
    cdef public dict failures
    cdef public double _validity_second
    cdef public dict _validity_seen
    cdef public long long _date_second
    cdef public bytes _date

    def __init__(self, bytes password, Py_ssize_t window=100, Py_ssize_t peer_window=100):
        self.password = password
        self.window = window
        self.peer_window = peer_window
        self.transport = None
        self.buf = bytearray()
        self.bound = False
        self.seq = 0
        self.next_id = 0
        self.dest = []
        self.source = []
        self.text = []
        self.coding = []
        self.esm = []
        self.registered = []
        self.submitted = []
        self.expires = []
        self.state = []
        self.in_flight = {}
        self.waiting = []
        self.failures = {}
        self._validity_second = -1.0
        self._validity_seen = {}
        self._date_second = -1
        self._date = b""

    def connection_made(self, transport):
        self.transport = transport

    cdef int _fail(self, str check) except -1:
        self.failures[check] = self.failures.get(check, 0) + 1
        return 0

    def data_received(self, data):
        cdef bytearray buf = self.buf
        buf += data
        cdef Py_ssize_t size = PyByteArray_GET_SIZE(buf)
        cdef double now = time.time()
        cdef long long second = <long long>now
        if second != self._date_second:
            self._date_second = second
            self._date = time.strftime("%y%m%d%H%M", time.gmtime(second)).encode()
        cdef bytearray out = bytearray()
        cdef Py_ssize_t pos = 0, end, p, q
        cdef Py_ssize_t owed = 0
        cdef bint close = False, ok
        cdef uint32_t length, command, status, seq
        cdef const unsigned char* b = <const unsigned char*>PyByteArray_AS_STRING(buf)
        cdef tuple flight
        cdef bytes body
        while size - pos >= 16:
            length = _u32(b + pos)
            command = _u32(b + pos + 4)
            status = _u32(b + pos + 8)
            seq = _u32(b + pos + 12)
            if length < 16 or length > _MAX_COMMAND_LENGTH:
                _header(out, 16, _GENERIC_NACK, _ESME_RINVCMDLEN, seq)
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
                    self._submit(b, pos, end, seq, now, out)
                except _Malformed as err:
                    _header(out, 16, 0x80000004, err.args[0], seq)
                except (IndexError, ValueError, struct.error):
                    _header(out, 16, 0x80000004, _ESME_RINVCMDLEN, seq)
            elif command == _DELIVER_SM_RESP:
                flight = self.in_flight.pop(seq, None)
                if flight is None:
                    self._fail("response_echo")
                else:
                    if now > <double>flight[1]:
                        self._fail("response_time")
                    self.state[<Py_ssize_t>flight[0] - 1] = _DELIVERED if status == 0 else _UNDELIVERABLE
            elif command == 0x00000001 or command == 0x00000002 or command == 0x00000009:  # the binds
                p = buf.find(0, pos + 16, end) + 1
                q = buf.find(0, p, end)
                ok = p > 0 and q >= 0 and buf[p:q] == self.password
                self.bound = self.bound or ok
                body = b"floor\0" if ok else b""
                out += _HEADER.pack(16 + len(body), command | 0x80000000, 0 if ok else _ESME_RINVPASWD, seq) + body
            elif command == _ENQUIRE_LINK:
                _header(out, 16, 0x80000015, 0, seq)
            elif command == _UNBIND:
                _header(out, 16, 0x80000006, 0, seq)
                close = True
            elif not command & 0x80000000:
                _header(out, 16, _GENERIC_NACK, _ESME_RINVCMDID, seq)
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

    cdef int _submit(self, const unsigned char* b, Py_ssize_t pos, Py_ssize_t end, uint32_t seq, double now,
                     bytearray out) except -1:
        """Decode, judge, store and answer one submit_sm; queue its receipt. Parsed in place at ``b + pos``; each
        bounds check stands where the pure-Python floor's slice, index or struct call would fail, in its order."""
        cdef const unsigned char* raw = b + pos
        end -= pos
        cdef Py_ssize_t st_end = _cstring(raw, 16, end, 6)
        cdef Py_ssize_t p = st_end + 1
        if p + 1 >= end:
            raise IndexError("source_addr_ton/npi")
        cdef unsigned char source_ton = raw[p], source_npi = raw[p + 1]
        cdef Py_ssize_t source_at = p + 2
        cdef Py_ssize_t source_end = _cstring(raw, source_at, end, 21)
        p = source_end + 1
        if p + 1 >= end:
            raise IndexError("dest_addr_ton/npi")
        cdef unsigned char dest_ton = raw[p], dest_npi = raw[p + 1]
        cdef Py_ssize_t dest_at = p + 2
        cdef Py_ssize_t dest_end = _cstring(raw, dest_at, end, 21)
        p = dest_end + 1
        if p >= end:
            raise IndexError("esm_class")
        cdef unsigned char esm_class = raw[p]
        cdef Py_ssize_t schedule_at = p + 3
        cdef Py_ssize_t schedule_end = _cstring(raw, schedule_at, end, 17)
        cdef Py_ssize_t validity_at = schedule_end + 1
        cdef Py_ssize_t validity_end = _cstring(raw, validity_at, end, 17)
        p = validity_end + 1
        if p + 4 >= end:
            raise IndexError("registered_delivery/data_coding/sm_length")
        cdef unsigned char registered = raw[p], coding = raw[p + 2], sm_length = raw[p + 4]
        cdef Py_ssize_t text_at = p + 5
        p = text_at + sm_length
        if p > end:
            raise _Malformed(_ESME_RINVCMDLEN)
        cdef Py_ssize_t text_len = sm_length
        cdef bint payload = False
        cdef unsigned int tag, tlv_size
        while p < end:
            if p + 4 > end:
                raise struct.error("unpack_from requires a buffer of at least 4 bytes")
            tag = (<unsigned int>raw[p] << 8) | raw[p + 1]
            tlv_size = (<unsigned int>raw[p + 2] << 8) | raw[p + 3]
            p += 4 + tlv_size
            if p > end:
                raise _Malformed(_ESME_RINVCMDLEN)
            if tag == _MESSAGE_PAYLOAD:
                payload = True
        if payload and sm_length:
            self._fail("payload_exclusive")
        cdef Py_ssize_t i
        cdef bint ascii = True
        if esm_class & _UDHI:
            if text_len == 0 or raw[text_at] + 1 > text_len:
                self._fail("udhi")
        elif coding == 0:
            if text_len > 160:
                self._fail("single_segment")
            else:
                for i in range(text_len):
                    if raw[text_at + i] & 0x80:
                        ascii = False
                        break
                if not ascii:
                    self._fail("single_segment")
        if schedule_end > schedule_at:
            _validity(PyBytes_FromStringAndSize(<const char*>raw + schedule_at, schedule_end - schedule_at), now)
        if <long long>now != self._validity_second:
            self._validity_second = <long long>now
            self._validity_seen.clear()
        cdef bytes validity_text = PyBytes_FromStringAndSize(<const char*>raw + validity_at, validity_end - validity_at)
        expires = self._validity_seen.get(validity_text)
        if expires is None:
            expires = self._validity_seen[validity_text] = _validity(validity_text, now)
        cdef bytes dest = PyBytes_FromStringAndSize(<const char*>raw + dest_at, dest_end - dest_at)
        cdef bytes source = PyBytes_FromStringAndSize(<const char*>raw + source_at, source_end - source_at)
        cdef bytes text = PyBytes_FromStringAndSize(<const char*>raw + text_at, text_len)
        self.next_id += 1
        cdef long long mid = self.next_id
        self.dest.append(dest)
        self.source.append(source)
        self.text.append(text)
        self.coding.append(coding)
        self.esm.append(esm_class)
        self.registered.append(registered)
        self.submitted.append(now)
        self.expires.append(expires)
        self.state.append(_ENROUTE)
        cdef char ident[32]
        cdef Py_ssize_t ident_len = snprintf(ident, sizeof(ident), "%lld", mid)
        cdef unsigned char* w = _grow(out, 17 + ident_len)
        _w32(w, <uint32_t>(17 + ident_len))
        _w32(w + 4, 0x80000004)
        _w32(w + 8, 0)
        _w32(w + 12, seq)
        memcpy(w + 16, ident, ident_len)
        w[16 + ident_len] = 0
        cdef bytes date
        cdef Py_ssize_t date_len, quote, receipt_len, n, st_len
        cdef bytes body
        if registered & 3:
            date = self._date
            date_len = PyBytes_GET_SIZE(date)
            quote = 20 if text_len > 20 else text_len
            receipt_len = (3 + ident_len + PyBytes_GET_SIZE(_R_SUB) + date_len + PyBytes_GET_SIZE(_R_DONE) + date_len
                           + PyBytes_GET_SIZE(_R_STAT) + quote)
            if receipt_len > 255:
                raise ValueError("bytes must be in range(0, 256)")
            st_len = st_end - 16
            n = (st_len + 1 + 2 + (dest_end - dest_at) + 1 + 2 + (source_end - source_at) + 8 + 3 + receipt_len
                 + 2 + 2 + ident_len + 13)
            body = PyBytes_FromStringAndSize(NULL, n)
            w = <unsigned char*>PyBytes_AS_STRING(body)
            w = _put(w, <const char*>raw + 16, st_len)
            w[0] = 0
            w[1] = dest_ton
            w[2] = dest_npi
            w = _put(w + 3, <const char*>raw + dest_at, dest_end - dest_at)
            w[0] = 0
            w[1] = source_ton
            w[2] = source_npi
            w = _put(w + 3, <const char*>raw + source_at, source_end - source_at)
            w = _put(w, _B_MID, 8)
            w[0] = coding
            w[1] = 0
            w[2] = <unsigned char>receipt_len
            w = _put(w + 3, "id:", 3)
            w = _put(w, ident, ident_len)
            w = _put(w, _R_SUB, PyBytes_GET_SIZE(_R_SUB))
            w = _put(w, date, date_len)
            w = _put(w, _R_DONE, PyBytes_GET_SIZE(_R_DONE))
            w = _put(w, date, date_len)
            w = _put(w, _R_STAT, PyBytes_GET_SIZE(_R_STAT))
            w = _put(w, <const char*>raw + text_at, quote)
            w[0] = 0x00
            w[1] = 0x1E
            w[2] = ((ident_len + 1) >> 8) & 0xFF
            w[3] = (ident_len + 1) & 0xFF
            w = _put(w + 4, ident, ident_len)
            w = _put(w, _B_TAIL, 13)
            self.waiting.append((mid, body))
        return 0

    cdef int _pump(self, bytearray out, double now) except -1:
        """Send waiting receipts while our window has room."""
        cdef list waiting = self.waiting
        if not waiting:
            return 0
        cdef Py_ssize_t room = self.window - len(self.in_flight)
        if room <= 0:
            return 0
        cdef list take = waiting[:room]
        self.waiting = waiting[room:]
        cdef dict in_flight = self.in_flight
        deadline = now + _RESPONSE_TIMEOUT
        cdef tuple item
        cdef bytes body
        cdef long long seq
        cdef Py_ssize_t n
        cdef unsigned char* w
        for item in take:
            body = <bytes>item[1]
            self.seq = seq = 1 if self.seq >= 0x7FFFFFFF else self.seq + 1
            n = PyBytes_GET_SIZE(body)
            w = _grow(out, 16 + n)
            _w32(w, <uint32_t>(16 + n))
            _w32(w + 4, 0x00000005)
            _w32(w + 8, 0)
            _w32(w + 12, <uint32_t>seq)
            memcpy(w + 16, PyBytes_AS_STRING(body), n)
            in_flight[seq] = (item[0], deadline)
        return 0


class FloorProtocol(_FloorCore, asyncio.Protocol):
    """One SMPP connection served by the floor SMSC (see bench/smsc_floor.py). ``password``: the one bind
    accepts; ``window``: our deliver_sm in flight at most; ``peer_window``: the peer's submit_sm we let it have
    unanswered in one read."""
