"""The ``carrier-sim`` command."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import math
import signal
import ssl
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from carrier_sim.signals import StartupSignals
from carrier_sim.smsc.config import ConfigError, load_smsc_config, parse_account_flag
from carrier_sim.smsc.subscribers import SubscriberRegistry

if TYPE_CHECKING:  # imported where used: the command line answers --help and bad flags without the I/O stack
    from carrier_sim.net.smsc_server import SmscServer

__all__ = ["main"]


def _hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        # [::1]:PORT, the URL form of an IPv6 address: the resolver takes the address without its brackets.
        host = host[1:-1]
    return host or "127.0.0.1", int(port)


def _bracketed(host: str) -> str:
    """``host`` as it goes before ``:PORT``: an IPv6 address in brackets (RFC 3986 §3.2.2), else as it is."""
    return f"[{host}]" if ":" in host else host


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="carrier-sim", description="Emulated carriers and a conformance harness.")
    sub = parser.add_subparsers(dest="command", required=True)

    smsc = sub.add_parser("smsc", help="run one emulated SMSC in the foreground",
                          description="One emulated SMSC for your own ESME; prints each session's conformance "
                                      "verdicts on SIGINT/SIGTERM (docs/smsc.md).")
    smsc.add_argument("--listen", type=_hostport, default=("127.0.0.1", 2775), metavar="HOST:PORT",
                      help="SMPP listen address (default 127.0.0.1:2775)")
    smsc.add_argument("--account", action="append", default=[], metavar="ID:PW",
                      help="an ESME account, system_id:password; repeatable")
    smsc.add_argument("--dlr-delay", type=float, default=None, metavar="SECONDS",
                      help="seconds from submit to the DELIVRD receipt (default 0)")
    smsc.add_argument("--tls-listen", type=_hostport, default=None, metavar="HOST:PORT",
                      help="also serve SMPP over TLS here (needs --cert and --key)")
    smsc.add_argument("--cert", type=Path, default=None, metavar="FILE", help="TLS certificate (PEM)")
    smsc.add_argument("--key", type=Path, default=None, metavar="FILE", help="TLS private key (PEM)")
    smsc.add_argument("--control", type=_hostport, default=None, metavar="HOST:PORT",
                      help="HTTP control API on loopback: POST /mo, GET /stats")
    smsc.add_argument("--config", type=Path, default=None, metavar="FILE",
                      help="TOML file with everything beyond the flags (docs/smsc.md)")
    smsc.add_argument("--json", type=Path, default=None, metavar="FILE", dest="json_path",
                      help="on stop, write counters and every session's verdicts as JSON (docs/smsc.md)")
    smsc.add_argument("--junit", type=Path, default=None, metavar="FILE",
                      help="on stop, write every session's verdicts as JUnit XML, one testcase per check")
    smsc.add_argument("--pcap", type=Path, default=None, metavar="FILE",
                      help="on stop, write what crossed the SMPP connections as a pcap (Wireshark reads it)")
    # main()'s checks across flags report through this parser: its usage line and "carrier-sim smsc: error:".
    smsc.set_defaults(smsc_parser=smsc)

    run = sub.add_parser("run", help="run a scenario file",
                         description="Run a scenario. Exit 0: every check passed; 1: a check failed or was "
                                     "inconclusive; 2: invalid scenario or command line; 3: the harness failed.")
    run.add_argument("file", type=Path)
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE",
                     help="override one value of the file, e.g. population.phones=1000; repeatable")
    run.add_argument("--seed", type=int, default=None, help="the scenario's seed, instead of the file's")
    run.add_argument("--junit", type=Path, default=None, metavar="FILE", help="write a JUnit XML report")
    run.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the JSON report")
    run.add_argument("--pcap", type=Path, default=None, metavar="FILE",
                     help="write what crossed the SMPP links as a pcap (docs/report.md)")
    run.add_argument("--workers", type=int, default=1, metavar="N",
                     help="split the phones over N shard processes and merge their results")
    run.add_argument("--ray", default=None, metavar="ADDRESS",
                     help="run the shards as Ray actors: 'local' starts Ray here, else a cluster's address")
    run.add_argument("--no-dashboard", action="store_true",
                     help="a plain progress line instead of the dashboard, even on a terminal")
    run.add_argument("--allow-inconclusive", action="store_true",
                     help="let inconclusive checks pass (exploratory runs; a CI gate should not)")

    for name, text in (("validate", "check a scenario file (exit 0 or 2)"), ("plan", "print the resolved scenario")):
        cmd = sub.add_parser(name, help=text)
        cmd.add_argument("file", type=Path)
        cmd.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")

    carriers = sub.add_parser("carriers", help="start a scenario's carriers with all their doors, nothing else")
    carriers.add_argument("file", type=Path)
    carriers.add_argument("--set", dest="overrides", action="append", default=[], metavar="PATH=VALUE")
    carriers.add_argument("--subscribers", type=Path, default=None, metavar="OUT.csv",
                          help="once the doors listen, write the RCS and CAMARA doors' subscribers (carrier, msisdn, "
                               "imsi, iccid, condition) to this CSV")

    decode = sub.add_parser("decode", help="decode SMPP PDUs given in hex (exit 2 if one does not decode)")
    decode.add_argument("hex", nargs="+")

    demo = sub.add_parser("demo", help="a short SMSC tour: an ESME, receipts, an MO, the verdicts")
    demo.add_argument("--messages", type=int, default=200)
    return parser


def main(argv: Sequence[str] | None = None, *, startup: StartupSignals | None = None) -> int:
    """Entry point of ``carrier-sim``. ``startup``: the SIGINT and SIGTERM kept while the command was loading
    (:mod:`carrier_sim.console`), which ``run``, ``smsc`` and ``carriers`` act on once their own handlers are in
    place, as on a signal that came then; for any other command one ends the process once the command's modules are
    imported, before it starts."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "smsc":
        if args.tls_listen is None and (args.cert is not None or args.key is not None):
            # Without --tls-listen they would be silently ignored, and the ESME's TLS connection refused.
            args.smsc_parser.error("--cert and --key need --tls-listen")
        return _run_smsc(args, startup)
    if args.command == "carriers":
        from carrier_sim.runner.carriers_command import carriers_command

        return carriers_command(args.file, args.overrides, args.subscribers, startup=startup)
    if args.command == "run":
        from carrier_sim.runner.command import run_command

        return run_command(args.file, args.overrides, seed=args.seed, junit=args.junit, json_path=args.json,
                           pcap=args.pcap, no_dashboard=args.no_dashboard, workers=args.workers,
                           ray=args.ray, allow_inconclusive=args.allow_inconclusive, startup=startup)
    # Imported while ``startup`` still keeps the signals: released before, a SIGINT during these imports (the
    # scenario loader: a tenth of a second and more) was a KeyboardInterrupt traceback from inside them.
    command = _plain_command(args)
    if startup is not None:
        startup.release()
    return command()


def _plain_command(args: argparse.Namespace) -> Callable[[], int]:
    """A command without signal handlers of its own (validate, plan, decode, demo), its modules imported: ready to
    start."""
    if args.command == "decode":
        return _decoder(args.hex)
    if args.command in ("validate", "plan"):
        from carrier_sim.scenario.commands import plan_command, validate_command

        command = validate_command if args.command == "validate" else plan_command
        return lambda: command(args.file, args.overrides)
    from carrier_sim.demo import run_demo

    return lambda: asyncio.run(run_demo(args.messages))


def _decoder(chunks: list[str]) -> Callable[[], int]:
    from carrier_sim.smpp.errors import SmppError
    from carrier_sim.smpp.framing import FrameError, decode_stream

    def decode() -> int:
        try:
            data = bytes.fromhex("".join(chunks).replace(":", ""))
            items = decode_stream(data)
        except (ValueError, SmppError) as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        failed = False
        for item in items:
            failed = failed or isinstance(item, FrameError)
            print(f"error: {item.error}" if isinstance(item, FrameError) else repr(item))
        # Every PDU is still printed, but a script must learn that one did not decode: 2, as for hex that does not
        # parse.
        return 2 if failed else 0

    return decode


def _loopback(host: str) -> bool:
    """True for a loopback address or the name localhost (no other name is looked up)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _run_smsc(args: argparse.Namespace, startup: StartupSignals | None = None) -> int:
    from carrier_sim.smsc.centre import DelayDistribution, SmscConfig

    try:
        if args.config is not None:
            config, subscribers = load_smsc_config(args.config)
        else:
            config, subscribers = SmscConfig(), SubscriberRegistry()
        accounts = tuple(parse_account_flag(a) for a in args.account)
        ids = [a.system_id for a in config.accounts + accounts]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            # The accounts table keeps one per system_id: a second would silently lose the other's settings
            # (a --account beside a configured [[account]] dropped its throughput).
            raise ConfigError(f"system_id {', '.join(twice)} given more than once (--account and [[account]] "
                              "together name each account once)")
        config = replace(config, accounts=config.accounts + accounts)
        if args.dlr_delay is not None:
            # nan passes a "< 0" check and then no receipt is ever due; inf is as silent.
            if not math.isfinite(args.dlr_delay) or args.dlr_delay < 0:
                raise ConfigError(f"--dlr-delay {args.dlr_delay}: seconds, a finite number >= 0")
            config = replace(config, dlr_delay=DelayDistribution(args.dlr_delay, args.dlr_delay))
        if not config.accounts:
            raise ConfigError("no account: give --account ID:PW or [[account]] in --config")
        if args.control is not None and not _loopback(args.control[0]):
            # The control API injects traffic and has no authentication: it is for this machine only.
            raise ConfigError(f"--control {_bracketed(args.control[0])}: the control API listens on loopback only "
                              "(127.0.0.0/8, ::1 or localhost)")
        tls: ssl.SSLContext | None = None
        if args.tls_listen is not None:
            if args.cert is None or args.key is None:
                raise ConfigError("--tls-listen needs --cert and --key")
            tls = _tls_context(args.cert, args.key)
        outputs = _SmscOutputs(args.json_path, args.junit, args.pcap)
        # Found now, not when the SMSC stops after a CI job's whole test run, whose verdicts would then be lost.
        inputs = [(f"the {flag} file", path) for flag, path in (("--config", args.config), ("--cert", args.cert),
                                                               ("--key", args.key)) if path is not None]
        unwritable = outputs.unwritable(inputs)
        if unwritable:
            raise ConfigError("; ".join(unwritable))
    except (ConfigError, OSError, ssl.SSLError) as err:
        print(f"carrier-sim smsc: {err}", file=sys.stderr)
        return 2
    return asyncio.run(_serve_smsc(config, subscribers, args.listen, args.tls_listen, tls, args.control, outputs,
                                   startup))


#: Seconds an outbind's TCP connect may take before it is given up (and said so on stderr).
OUTBIND_CONNECT_TIMEOUT = 10.0


async def _outbind(server: SmscServer, target: tuple[str, int, str, str]) -> None:
    """Connect out to one configured ESME and send outbind; a failure is a line on stderr, the SMSC serves on."""
    where = f"{_bracketed(target[0])}:{target[1]}"
    try:
        async with asyncio.timeout(OUTBIND_CONNECT_TIMEOUT):
            await server.outbind(*target)
    except TimeoutError:
        print(f"carrier-sim smsc: outbind to {where} failed: no connection within {OUTBIND_CONNECT_TIMEOUT:g} s",
              file=sys.stderr, flush=True)
    except OSError as err:
        print(f"carrier-sim smsc: outbind to {where} failed: {err}", file=sys.stderr, flush=True)
    else:
        print(f"outbind to {where}", flush=True)


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The server context of ``--cert``/``--key``; a ConfigError naming both files when they do not load (OpenSSL's
    own errors name neither: "[Errno 2] No such file or directory", "[SSL] PEM lib")."""
    for flag, path in (("--cert", cert), ("--key", key)):
        if not path.is_file():
            raise ConfigError(f"{flag} {path}: {'not a file' if path.exists() else 'no such file'}")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        tls.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as err:
        raise ConfigError(f"--cert {cert} --key {key}: not a PEM certificate and its private key "
                          f"(swapped?): {err}") from err
    return tls


class _SmscOutputs:
    """The files ``carrier-sim smsc`` writes when it stops (--json, --junit, --pcap)."""

    def __init__(self, json_path: Path | None, junit: Path | None, pcap: Path | None) -> None:
        self.json_path, self.junit, self.pcap = json_path, junit, pcap

    def unwritable(self, inputs: Sequence[tuple[str, Path]] = ()) -> list[str]:
        """Why the outputs cannot be written, each in a sentence: an output path that cannot be written, two
        outputs onto one file, or an output onto one of ``inputs`` (a description and its path), which it would
        replace."""
        from carrier_sim.outputs import clashes
        from carrier_sim.runner.command import unwritable_reason

        outputs = [(f"--{flag}", out) for flag, out in (("json", self.json_path), ("junit", self.junit),
                                                       ("pcap", self.pcap)) if out is not None]
        # Two outputs onto one file: the one written last replaced the other (the JSON where CI reads the JUnit).
        return [f"{flag} {out}: {why}" for flag, out in outputs
                if (why := unwritable_reason(out)) is not None] + clashes(outputs, inputs)

    def write(self, server: object, started_at: float, duration: float,
              streams: Sequence[tuple[str, str, Sequence[tuple[str, bytes, float]]]],
              abandon_pcap: Callable[[], bool] = lambda: False) -> list[str]:
        """Write each asked-for file; what could not be written (each output on its own: a disk can fill). The
        JUnit and JSON go first (milliseconds), the pcap last (a second per ~100,000 frames), asking
        ``abandon_pcap`` between frames: a pcap abandoned leaves nothing at its path and is reported lost. A pcap
        that takes more than a second says how far it is on stderr, once a second."""
        from carrier_sim.net.smsc_server import SmscServer
        from carrier_sim.report.json_report import dumps_report, write_atomically
        from carrier_sim.report.junit import write_junit
        from carrier_sim.report.smsc_report import smsc_junit_document, smsc_report

        assert isinstance(server, SmscServer)
        report = smsc_report(server.smsc, started_at=started_at, duration=duration)
        lost: list[str] = []

        def write_pcap(path: Path) -> None:
            # scapy: imported only when a pcap is asked for
            from carrier_sim.capture.pcap import CaptureAbandoned, write_streams

            def progress(done: int, total: int) -> None:
                # At most once a second, and only for a pcap that takes longer: a sign of life for whoever waits
                # (a supervisor's stop grace), with how far it is.
                share = f"{100 * done // total}%" if total else "100%"
                print(f"carrier-sim smsc: writing {path}: {share} ({done:,} of {total:,} octets of SMPP)",
                      file=sys.stderr, flush=True)

            try:
                write_streams(path, streams, stop=abandon_pcap, progress=progress)
            except CaptureAbandoned:
                lost.append(f"{path} not written: abandoned on a second signal (nothing left at that path)")

        writers: list[tuple[Path | None, Callable[[Path], object]]] = [
            (self.junit, lambda p: write_junit(p, smsc_junit_document(report))),
            (self.json_path, lambda p: write_atomically(p, dumps_report(report))),
            (self.pcap, write_pcap),
        ]
        for out, write in writers:
            if out is None:
                continue
            try:
                write(out)
            except OSError as err:
                lost.append(f"could not write {out}: {err}")
        return lost


async def _serve_smsc(config: object, subscribers: SubscriberRegistry, listen: tuple[str, int],
                      tls_listen: tuple[str, int] | None, tls: ssl.SSLContext | None,
                      control: tuple[str, int] | None, outputs: _SmscOutputs,
                      startup: StartupSignals | None = None) -> int:
    import time

    from aiohttp import web

    from carrier_sim.net.collector import settle_after_start
    from carrier_sim.net.control import control_app
    from carrier_sim.net.http_errors import app_runner
    from carrier_sim.net.smsc_server import SmscServer
    from carrier_sim.signals import Echoes
    from carrier_sim.smsc.centre import Smsc, SmscConfig

    assert isinstance(config, SmscConfig)
    started_at, started = time.time(), time.monotonic()
    # Before anything is printed: a supervisor may signal as soon as it reads "listening on", and a signal before
    # these handlers would reach asyncio.run's default SIGINT handling (a traceback, no verdicts).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    echoes = Echoes()

    def stopping(sig: signal.Signals) -> None:
        echoes.echo(sig)  # remembered, so that its copy (timeout's process group) does not abandon the pcap
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping, sig)
    # One that came while the command was loading stops it as one just now would: it still listens, and then
    # stops as at any other time (exit 0, its reports written).
    for sig in startup.take() if startup is not None else ():
        stopping(sig)
    server = SmscServer(Smsc(config, subscribers))
    streams: dict[int, tuple[str, str, list[tuple[str, bytes, float]]]] = {}
    if outputs.pcap is not None:
        from carrier_sim.capture.tap import StreamTap

        tap = StreamTap()
        server.tap = tap
        streams = tap.streams
    try:
        host, port = await server.listen(*listen)
        print(f"listening on {_bracketed(host)}:{port}", flush=True)
        if tls_listen is not None:
            host, port = await server.listen(*tls_listen, ssl_context=tls)
            print(f"listening on {_bracketed(host)}:{port} (tls)", flush=True)
    except OSError as err:
        print(f"carrier-sim smsc: {err}", file=sys.stderr)
        return 2
    settle_after_start()  # what is alive now lives as long as the process: out of the collector's way
    # Each outbind in a task of its own, owned here (cancelled and awaited at the stop): a target whose connect
    # hangs (a host that drops SYNs) held the control API back and left SIGTERM unheard until the kernel gave up
    # (~2 min), while every other target waited its turn.
    outbinds = [asyncio.create_task(_outbind(server, target), name=f"outbind {target[0]}:{target[1]}")
                for target in config.outbind]
    runner: web.AppRunner | None = None
    if control is not None:
        runner = app_runner(control_app(server), access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, control[0], control[1]).start()
        except OSError as err:
            # As for the SMPP port: a reason and exit 2, not a traceback; the SMPP server goes first, so no ESME is
            # left bound to an SMSC whose control API a test harness cannot reach.
            print(f"carrier-sim smsc: --control {_bracketed(control[0])}:{control[1]}: {err}", file=sys.stderr)
            await _cancel(outbinds)
            await server.shutdown()
            await runner.cleanup()
            return 2
        bound = runner.addresses[0]
        print(f"control on http://{_bracketed(bound[0])}:{bound[1]}", flush=True)
    await stop.wait()
    await _cancel(outbinds)
    # The signal that stopped the SMSC is its normal end; one more while it stops and writes (a supervisor's
    # second SIGTERM before its SIGKILL) abandons the pcap, written last and slowest, never the verdicts. The
    # handlers stay until asyncio.run closes the loop, so no signal here is a KeyboardInterrupt traceback.
    from carrier_sim.outputs import AbandonRequest

    # Tells whether the pcap was still being written (abandoned) or already complete (kept) when a signal came.
    abandon_pcap = AbandonRequest()
    pcap_asked = False

    def hurry(sig: signal.Signals) -> None:
        nonlocal pcap_asked
        if echoes.echo(sig):
            return  # the stopping signal delivered twice: see carrier_sim.signals
        if outputs.pcap is not None and not pcap_asked:
            pcap_asked = True
            done = ("is abandoned (nothing is left at its path)" if abandon_pcap.ask() else
                    "was already written and is kept")
            print(f"carrier-sim smsc: {sig.name} again: the pcap {done}; the JSON and JUnit reports are still "
                  f"written", file=sys.stderr, flush=True)

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, hurry, sig)
    await server.shutdown()
    if runner is not None:
        await runner.cleanup()
    _print_verdicts(server.smsc.verdicts())
    # In a thread, so the loop keeps turning signals into hurry() while the pcap is built.
    lost = await asyncio.to_thread(outputs.write, server, started_at, time.monotonic() - started,
                                   list(streams.values()), abandon_pcap)
    for reason in lost:
        print(f"carrier-sim smsc: {reason}", file=sys.stderr)
    return 3 if lost else 0


def _print_verdicts(sessions: list[dict[str, object]]) -> None:
    for session in sessions:
        print(f"session {session['peer']} system_id={session['system_id']}")
        checks = session["checks"]
        assert isinstance(checks, list)
        for check in checks:
            print(f"  {check['verdict']:6} {check['check']}: {check['reason']}")
    sys.stdout.flush()


if __name__ == "__main__":
    raise SystemExit(main())
