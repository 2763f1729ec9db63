"""Checks that a compiled floor (bench/smsc_floor_typed.pyx, built in place) behaves as the Python floor.

Not a test (Cython is not a dependency of the project): feeds the same seeded random SMPP streams -- binds good and
bad, submit_sm well- and ill-formed (C-Octet Strings at and past their bounds, bad validity periods, lying
sm_length, truncated bodies and TLVs), deliver_sm_resp, enquire_link, unknown commands, unbind, untrusted
command_length -- cut into random chunks, with a patched clock, to both, and requires every write, every close
and the whole state afterwards to be the same.

Usage (from the repository root, after ``cythonize -i -3 bench/smsc_floor_typed.pyx``)::

    PYTHONPATH=. python bench/smsc_floor_typed_check.py [--cases N]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import struct
import sys
import time
from types import ModuleType
from typing import Any
from unittest import mock

H = struct.Struct(">IIII")


class T:
    """A transport that records what is done to it."""

    def __init__(self) -> None:
        self.log: list[tuple[Any, ...]] = []

    def write(self, d: bytes) -> None:
        self.log.append(("w", bytes(d)))

    def close(self) -> None:
        self.log.append(("close",))


def cstr(rng: random.Random, maxlen: int) -> bytes:
    n = rng.choice([0, 0, 1, maxlen - 1, maxlen, maxlen + 1, rng.randrange(maxlen + 3)])
    alphabet = b"0123456789abcXYZ+-R" if rng.random() < 0.8 else bytes(range(1, 256))
    return bytes(rng.choice(alphabet) for _ in range(n)) + (b"\0" if rng.random() < 0.95 else b"")


def validity(rng: random.Random) -> bytes:
    r = rng.random()
    if r < 0.3:
        return b"000000001000000R\0"
    if r < 0.4:
        return b"\0"
    if r < 0.7:
        yy, mo, dd, hh, mi, ss = (rng.randrange(0, 100), rng.randrange(0, 14), rng.randrange(0, 33),
                                  rng.randrange(0, 26), rng.randrange(0, 62), rng.randrange(0, 62))
        return b"%02d%02d%02d%02d%02d%02d%d%02d%s\0" % (yy, mo, dd, hh, mi, ss, rng.randrange(10), rng.randrange(49),
                                                        rng.choice([b"+", b"-", b"R", b"x"]))
    return cstr(rng, 17)


def submit(rng: random.Random, seq: int) -> bytes:
    body = cstr(rng, 6) + bytes([rng.randrange(3), rng.randrange(3)]) + cstr(rng, 21)
    body += bytes([rng.randrange(3), rng.randrange(3)]) + cstr(rng, 21)
    body += bytes([rng.choice([0, 0, 0x40, 0x43, 3]), 0, 0])
    body += (b"\0" if rng.random() < 0.8 else validity(rng))  # schedule
    body += validity(rng)
    textlen = rng.choice([0, 5, 20, 21, 100, 160, 161, 254])
    text = bytes(rng.choice(b"hello world" if rng.random() < 0.8 else bytes(range(256))) for _ in range(textlen))
    if rng.random() < 0.2 and text:
        text = bytes([rng.randrange(10)]) + text[1:]
    declared = textlen if rng.random() < 0.95 else rng.randrange(256)
    body += bytes([rng.choice([1, 1, 0, 2, 3]), 0, rng.choice([0, 0, 8, 4]), 0, declared]) + text
    for _ in range(rng.choice([0, 0, 1, 2])):
        tag = rng.choice([0x0424, 0x0204, 0x001E])
        val = bytes(rng.randrange(256) for _ in range(rng.randrange(5)))
        size = len(val) if rng.random() < 0.9 else rng.randrange(10)
        body += struct.pack(">HH", tag, size) + val
    if rng.random() < 0.05:
        body = body[: rng.randrange(len(body) + 1)]  # truncated
    if rng.random() < 0.03:
        body += b"\0\x04"  # partial TLV head
    return H.pack(16 + len(body), 4, 0, seq) + body


def stream(rng: random.Random, n: int) -> list[bytes]:
    out = []
    out.append(H.pack(16 + 7, 2, 0, 1) + b"x\0pw\0\0\0" if rng.random() < 0.1 else
               H.pack(16 + 8, 2, 0, 1) + b"bench\0pw\0"[:8])
    out.append(H.pack(16 + 9, 9, 0, 1) + b"bench\0pw\0")
    seq = 2
    for _ in range(n):
        r = rng.random()
        seq += 1
        if r < 0.7:
            out.append(submit(rng, seq))
        elif r < 0.88:
            out.append(H.pack(16, 0x80000005, rng.choice([0, 0, 0, 8]), rng.randrange(1, 60)))
        elif r < 0.92:
            out.append(H.pack(16, 0x15, 0, seq))
        elif r < 0.94:
            out.append(H.pack(16, rng.choice([0x99, 0x80000099, 0x103]), 0, seq))
        elif r < 0.95:
            out.append(H.pack(16 + 9, 1, 0, seq) + b"bench\0no\0")
        elif r < 0.955:
            out.append(H.pack(16, 6, 0, seq))
        elif r < 0.96:
            out.append(H.pack(rng.choice([3, 70000]), 4, 0, seq))
        else:
            out.append(submit(rng, seq))
    data = b"".join(out)
    chunks, i = [], 0
    while i < len(data):
        k = rng.choice([1, 7, 16, 50, 300, 5000])
        chunks.append(data[i:i + k])
        i += k
    return chunks


ATTRS = ("password", "window", "peer_window", "buf", "bound", "seq", "next_id", "dest", "source", "text", "coding",
         "esm", "registered", "submitted", "expires", "state", "in_flight", "waiting", "failures", "_validity_seen",
         "_date_second", "_date")


def run(mod: ModuleType, chunks: list[bytes], t0: float, window: int) -> tuple[list[tuple[Any, ...]], dict[str, Any]]:
    clock = [t0]
    proto = mod.FloorProtocol(b"pw", window=window, peer_window=window)
    transport = T()
    proto.connection_made(transport)
    with mock.patch.object(time, "time", side_effect=lambda: clock[0]):
        for i, chunk in enumerate(chunks):
            proto.data_received(chunk)
            if i % 13 == 0:
                clock[0] += 0.37
    state = {a: getattr(proto, a) for a in ATTRS}
    state["buf"] = bytes(state["buf"])
    state["_validity_second"] = float(proto._validity_second)
    return transport.log, state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cases", type=int, default=1500, help="random streams (default 1500)")
    args = parser.parse_args(argv)
    import smsc_floor
    try:
        import smsc_floor_typed  # type: ignore[import-not-found]
    except ImportError:
        print("smsc_floor_typed is not built: cythonize -i -3 bench/smsc_floor_typed.pyx", file=sys.stderr)
        return 2
    if not str(smsc_floor_typed.__file__).endswith(".so"):
        print(f"smsc_floor_typed is not compiled: {smsc_floor_typed.__file__}", file=sys.stderr)
        return 2
    assert isinstance(smsc_floor_typed.FloorProtocol(b"pw"), asyncio.Protocol)
    stats: dict[str, Any] = {"submits_stored": 0, "writes": 0, "failures": {}}
    for case in range(args.cases):
        rng = random.Random(case)
        chunks = stream(rng, rng.choice([5, 50, 400]))
        t0 = 1_700_000_000.0 + rng.random() * 1e6
        window = rng.choice([1, 3, 100])
        ref = run(smsc_floor, chunks, t0, window)
        got = run(smsc_floor_typed, chunks, t0, window)
        if got != ref:
            for i, (mine, theirs) in enumerate(zip(ref[0], got[0], strict=False)):
                if mine != theirs:
                    print("first write that differs:", i, mine, theirs)
                    break
            for attr in ATTRS:
                if ref[1][attr] != got[1][attr]:
                    print("state that differs:", attr, str(ref[1][attr])[:300], str(got[1][attr])[:300])
            print(f"MISMATCH in case {case}", file=sys.stderr)
            return 1
        stats["submits_stored"] += ref[1]["next_id"]
        stats["writes"] += len(ref[0])
        for name, n in ref[1]["failures"].items():
            stats["failures"][name] = stats["failures"].get(name, 0) + n
    print(f"{args.cases} streams: the compiled floor wrote and kept the same as the Python floor; {stats}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
