"""The SMSC's pure core driven in one process, without sockets: a repeatable per-message cost for profilers.

Not a test: it prints figures and asserts nothing about speed. ``bench/smsc_throughput.py`` measures the real
thing through TCP, but a shared machine moves its figures by tens of per cent from run to run. This driver feeds
the same traffic straight into :class:`~carrier_sim.smsc.centre.Smsc` -- the set-up of smsc_throughput's
carrier-sim target (window 100, receipts on) -- at a fixed clock, so that the work it does is the same on every
run: a bind_transceiver, then ``--chunks`` reads of ``--per-chunk`` pipelined submit_sm (the throughput bench's
template), each read also carrying the deliver_sm_resp for every receipt the previous read produced. Under
``valgrind --tool=callgrind`` the instruction count is repeatable whatever else the machine does, so a change to
the hot path is judged by the difference of two counts; ``--chunks`` A and B (B > A) give a per-message figure
free of start-up: (count(B) - count(A)) / ((B - A) * per_chunk).

Usage (from the repository root)::

    PYTHONPATH=. python bench/smsc_inprocess.py [--chunks N] [--per-chunk K]
    PYTHONHASHSEED=0 PYTHONPATH=. valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \\
        python bench/smsc_inprocess.py --chunks 60
    PYTHONPATH=. python bench/smsc_inprocess.py --digest   # SHA-256 of every byte the SMSC wrote
    PYTHONPATH=. python bench/smsc_inprocess.py --chunks 3000 --gc   # the collector's full collections

``--digest`` prints a hash of the SMSC's output at the fixed clock: a change meant to keep behaviour must keep it.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import struct
import sys
import time

from smsc_throughput import PASSWORD, SYSTEM_ID, bind_template, submit_offsets, submit_sm_template, vary_submit

from carrier_sim.smpp.codec import HEADER, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig

__all__ = ["drive"]

_SEQ = struct.Struct(">I")
_DELIVER_SM = int(CommandId.deliver_sm)
_SUBMIT_SM_RESP = int(CommandId.submit_sm_resp)
#: The fixed clock: a Tuesday in 2024, advanced by a millisecond per read.
_T0 = 1_704_103_200.0


def drive(chunks: int, per_chunk: int, digest: hashlib._Hash | None = None) -> tuple[int, int]:
    """Run the traffic; returns (submit_sm_resp seen, deliver_sm seen)."""
    smsc = Smsc(SmscConfig(accounts=(Account(SYSTEM_ID, PASSWORD),), window=100, peer_window=100))
    now = _T0
    conn = smsc.connect("127.0.0.1:40000", now)
    template = submit_sm_template(True)
    offsets = submit_offsets(template)
    resp = bytearray(encode(Pdu.make(CommandId.deliver_sm_resp, 0)))
    seq = 1
    responses = receipts = 0
    owed = bytearray()  # deliver_sm_resp for the receipts of the previous read
    pending: bytes | bytearray = bind_template()
    for _ in range(chunks + 1):
        conn.receive_data(bytes(pending), now)
        if smsc.next_deadline is not None and smsc.next_deadline <= now:
            smsc.handle_timers(now)
        out = b"".join(c.data_to_send() for c in smsc.dirty_connections())
        if digest is not None:
            digest.update(out)
        pos, size = 0, len(out)
        owed = bytearray()
        while pos < size:
            length, command_id, _, sequence = HEADER.unpack_from(out, pos)
            if command_id == _DELIVER_SM:
                _SEQ.pack_into(resp, 12, sequence)
                owed += resp
                receipts += 1
            elif command_id == _SUBMIT_SM_RESP:
                responses += 1
            pos += length
        batch = bytearray(owed)
        for _ in range(per_chunk):
            seq += 1
            at = len(batch)
            batch += template
            vary_submit(batch, at, seq, offsets)
        pending = batch
        now += 0.001
    return responses, receipts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--chunks", type=int, default=200, help="reads of pipelined submit_sm (default 200)")
    parser.add_argument("--per-chunk", type=int, default=100, help="submit_sm per read (default 100, the window)")
    parser.add_argument("--digest", action="store_true", help="print a SHA-256 of every byte the SMSC wrote")
    parser.add_argument("--gc", action="store_true",
                        help="print the cyclic collector's full collections: how many, the longest, the total")
    args = parser.parse_args(argv)
    digest = hashlib.sha256() if args.digest else None
    pauses: list[float] = []
    began = [0.0]

    def timed(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        elif info["generation"] == 2:
            pauses.append(time.perf_counter() - began[0])

    if args.gc:
        gc.callbacks.append(timed)
    started = time.process_time()
    responses, receipts = drive(args.chunks, args.per_chunk, digest)
    spent = time.process_time() - started
    if args.gc:
        gc.callbacks.remove(timed)
        print(f"full collections: {len(pauses)}, longest {max(pauses, default=0) * 1e3:.1f} ms, "
              f"total {sum(pauses) * 1e3:.0f} ms")
    messages = args.chunks * args.per_chunk
    print(f"{messages:,} submit_sm: {responses:,} submit_sm_resp, {receipts:,} receipts; "
          f"{spent * 1e6 / max(1, messages):.1f} us CPU per message (start-up included)")
    if digest is not None:
        print(f"sha256 of the SMSC's output: {digest.hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
