"""Micro-benchmark of the SMPP codec: encode and decode PDUs/s, Framer throughput, smpplib as a baseline.

Not a test: it prints figures and asserts nothing about speed (design.md: "tests never assert on wall-clock
speed"). Machines running it are shared and noisy, so it

* interleaves the cases (repetition 1 of every case, then repetition 2, ...) so that a burst of load from a
  neighbour hits every case rather than one,
* reports the median and the min..max spread over the repetitions, never a single run,
* quotes our speed against python-smpplib's *in the same run* (paired per repetition), because a ratio measured
  side by side survives a slow machine far better than an absolute figure does.

Usage (from the repository root)::

    PYTHONPATH=. python bench/codec_throughput.py [--seconds N] [--repeat R] [--profile]

``--seconds`` is the total measuring budget (default 12 s; calibration and set-up add about a second).
``--profile`` instead runs the submit_sm and deliver_sm encode/decode loops under cProfile and prints the
hottest functions, which is the evidence behind any change proposed to ``carrier_sim/smpp/codec.py``.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from timing import Case, check

from carrier_sim.smpp import gsm7
from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.framing import Framer
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.tlv import NetworkErrorCode

#: Octets per ``Framer.feed`` call, the size of a typical socket read.
CHUNK = 4096
#: PDUs in the stream the Framer cases cut up (half submit_sm, half deliver_sm receipts).
STREAM_PDUS = 2000

TEXT_160 = (
    "Your verification code is 482913. Do not share this code with anyone; our staff will never ask for it. "
    "If you did not request a code, ignore this message. Ref 7"
)




check(len(TEXT_160) == 160 and gsm7.is_gsm7(TEXT_160), "the text must be 160 GSM 7-bit characters")

# -------------------------------------------------------------------------------------------------- workload


def realistic_submit_sm(sequence_number: int = 1) -> Pdu:
    """A submit_sm as an identity service sends it: alphanumeric sender, E.164 recipient, 160 GSM characters
    (unpacked septets, data_coding 0), a delivery receipt requested, a relative validity and two TLVs."""
    return Pdu.make(
        CommandId.submit_sm,
        sequence_number,
        service_type="",
        source_addr_ton=5,
        source_addr_npi=0,
        source_addr="VerifySvc",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900123",
        esm_class=0,
        protocol_id=0,
        priority_flag=0,
        schedule_delivery_time="",
        validity_period="000000001000000R",
        registered_delivery=1,
        replace_if_present_flag=0,
        data_coding=0,
        sm_default_msg_id=0,
        short_message=gsm7.encode(TEXT_160),
        tlvs={"user_message_reference": 0x1234, "callback_num": b"\x01\x01447700900000"},
    )


def receipt_deliver_sm(sequence_number: int = 1) -> Pdu:
    """A deliver_sm delivery receipt (esm_class 0x04) with the receipt text and its three usual TLVs."""
    message_id = "9f3c2a7e-5b1d-4e8a-a0c4-2d6b8f1e7a90"
    text = (
        f"id:{message_id[:10]} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 "
        "stat:DELIVRD err:000 text:Your verification"
    )
    return Pdu.make(
        CommandId.deliver_sm,
        sequence_number,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900123",
        dest_addr_ton=5,
        dest_addr_npi=0,
        destination_addr="VerifySvc",
        esm_class=0x04,
        data_coding=0,
        short_message=text.encode("ascii"),
        tlvs={
            "receipted_message_id": message_id,
            "message_state": 2,  # DELIVERED (SMPP 3.4 5.2.28)
            "network_error_code": NetworkErrorCode(3, 0),  # GSM, no error
        },
    )


def smpplib_submit_sm(smpplib: ModuleType, pdu: Pdu) -> Any:
    """The same submit_sm built with smpplib's own command class (field names are the spec's in both)."""
    cmd = smpplib.command.factory("submit_sm", client=smpplib.client.SimpleSequenceGenerator())
    for name, value in pdu.params.items():
        setattr(cmd, name, value)
    for name in ("user_message_reference", "callback_num"):
        setattr(cmd, name, pdu.tlv(name))
    # smpplib ignores a ``sequence=`` constructor argument when a client is given; set it afterwards.
    cmd.sequence = pdu.sequence_number
    return cmd


def stream_of(n: int) -> bytes:
    """``n`` encoded PDUs back to back, alternating submit_sm and deliver_sm receipts."""
    sub = realistic_submit_sm()
    dlv = receipt_deliver_sm()
    return b"".join(encode((sub if i % 2 == 0 else dlv).with_sequence(i + 1)) for i in range(n))


def chunks_of(stream: bytes, size: int = CHUNK) -> list[bytes]:
    """The stream cut into reads of ``size`` octets, cut points landing anywhere inside PDUs."""
    return [stream[i : i + size] for i in range(0, len(stream), size)]


# -------------------------------------------------------------------------------------------------- harness




def import_smpplib() -> ModuleType | None:
    """python-smpplib if installed (the baseline is skipped, with a note, when it is not)."""
    try:
        return importlib.import_module("smpplib")
    except ImportError:
        return None


def build_cases(smpplib: ModuleType | None) -> tuple[list[Case], dict[str, tuple[str, str]]]:
    """Every case, and the ratios to print as ``label -> (our case, smpplib case)``."""
    sub = realistic_submit_sm(7)
    dlv = receipt_deliver_sm(8)
    sub_raw = encode(sub)
    dlv_raw = encode(dlv)
    chunks = chunks_of(stream_of(STREAM_PDUS))

    def frame_only() -> int:
        framer = Framer()
        n = 0
        for chunk in chunks:
            framer.feed(chunk)
            for _ in framer.frames():
                n += 1
        return n

    def frame_and_decode() -> int:
        framer = Framer()
        n = 0
        for chunk in chunks:
            framer.feed(chunk)
            for _ in framer.pdus():
                n += 1
        return n

    # The workload must be what it claims to be before it is timed.
    check(decode(sub_raw).params == sub.params and decode(dlv_raw).tlvs == dlv.tlvs, "codec round trip")
    check(frame_only() == STREAM_PDUS and frame_and_decode() == STREAM_PDUS, "the Framer must find every PDU")

    cases = [
        Case("encode submit_sm", lambda: encode(sub)),
        Case("decode submit_sm", lambda: decode(sub_raw)),
        Case("encode deliver_sm receipt", lambda: encode(dlv)),
        Case("decode deliver_sm receipt", lambda: decode(dlv_raw)),
        Case(f"Framer frames, {CHUNK} B reads", frame_only, units=STREAM_PDUS),
        Case(f"Framer frames+decode, {CHUNK} B reads", frame_and_decode, units=STREAM_PDUS),
    ]
    ratios: dict[str, tuple[str, str]] = {}
    if smpplib is not None:
        sl_cmd = smpplib_submit_sm(smpplib, sub)
        # Same PDU on the wire, or the comparison would be meaningless.
        sl_raw = sl_cmd.generate()
        check(decode(sl_raw).params == sub.params, "smpplib must build the same submit_sm")
        client = smpplib.client.SimpleSequenceGenerator()
        parse_pdu = smpplib.smpp.parse_pdu
        parsed = parse_pdu(sub_raw, client=client)
        check(
            parsed.short_message == sub["short_message"] and parsed.user_message_reference == 0x1234,
            "smpplib must parse our submit_sm",
        )
        cases += [
            Case("smpplib generate submit_sm", sl_cmd.generate),
            Case("smpplib parse_pdu submit_sm", lambda: parse_pdu(sub_raw, client=client)),
        ]
        ratios = {
            "encode submit_sm: ours / smpplib": ("encode submit_sm", "smpplib generate submit_sm"),
            "decode submit_sm: ours / smpplib": ("decode submit_sm", "smpplib parse_pdu submit_sm"),
        }
    return cases, ratios


def machine_context() -> str:
    """What the figures were measured on; quote it with them."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (
        f"python {platform.python_version()} ({platform.python_implementation()}), {platform.machine()}, "
        f"nproc {os.cpu_count()}, loadavg {load}"
    )


def fmt_rate(rate: float) -> str:
    """PDUs/s with thousands separators."""
    return f"{rate:,.0f}"


def report(cases: list[Case], ratios: dict[str, tuple[str, str]], sub_size: int, dlv_size: int) -> str:
    """The results table."""
    lines = [
        machine_context(),
        f"submit_sm {sub_size} octets, deliver_sm receipt {dlv_size} octets, "
        f"{len(cases[0].rates)} interleaved repetitions per case",
        "",
        f"{'case':<40} {'median PDU/s':>14} {'min PDU/s':>12} {'max PDU/s':>12} {'spread':>7}",
    ]
    for case in cases:
        lo, hi, med = min(case.rates), max(case.rates), case.median
        lines.append(
            f"{case.name:<40} {fmt_rate(med):>14} {fmt_rate(lo):>12} {fmt_rate(hi):>12} {(hi - lo) / med:>6.0%}"
        )
    by_name = {c.name: c for c in cases}
    if ratios:
        lines += ["", f"{'ratio (paired per repetition)':<40} {'median':>14} {'min':>12} {'max':>12}"]
        for label, (ours, theirs) in ratios.items():
            paired = [a / b for a, b in zip(by_name[ours].rates, by_name[theirs].rates, strict=True)]
            lines.append(f"{label:<40} {statistics.median(paired):>13.2f}x {min(paired):>11.2f}x {max(paired):>11.2f}x")
    else:
        lines += ["", "smpplib not installed: no in-run baseline."]
    return "\n".join(lines)


def profile(seconds: float) -> None:
    """Run the four codec loops under cProfile and print where the time goes."""
    sub = realistic_submit_sm(7)
    dlv = receipt_deliver_sm(8)
    sub_raw, dlv_raw = encode(sub), encode(dlv)
    work: dict[str, Callable[[], object]] = {
        "encode": lambda: (encode(sub), encode(dlv)),
        "decode": lambda: (decode(sub_raw), decode(dlv_raw)),
    }
    for label, fn in work.items():
        prof = cProfile.Profile()
        deadline = time.perf_counter() + seconds / 2
        prof.enable()
        n = 0
        while time.perf_counter() < deadline:
            for _ in range(200):
                fn()
            n += 400
        prof.disable()
        print(f"\n=== {label}: {n} PDUs (submit_sm + deliver_sm receipt) under cProfile ===")
        pstats.Stats(prof, stream=sys.stdout).strip_dirs().sort_stats("tottime").print_stats(14)


def main(argv: list[str] | None = None) -> int:
    """Parse the CLI, measure, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=12.0, help="total measuring budget (default 12)")
    parser.add_argument("--repeat", type=int, default=7, help="interleaved repetitions per case (default 7)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of the codec instead")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeat < 1:
        parser.error("--seconds must be positive and --repeat at least 1")
    if args.profile:
        profile(args.seconds)
        return 0

    smpplib = import_smpplib()
    cases, ratios = build_cases(smpplib)
    per_rep = args.seconds / (len(cases) * args.repeat)
    for case in cases:
        case.calibrate(per_rep)
    for _ in range(args.repeat):
        for case in cases:
            case.run_once()
    print(report(cases, ratios, len(encode(realistic_submit_sm())), len(encode(receipt_deliver_sm()))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
