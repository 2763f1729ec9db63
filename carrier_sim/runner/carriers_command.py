"""``carrier-sim carriers FILE [--set PATH=VALUE ...]``: a scenario's carriers, every door open, nothing else.

No phones and no system under test: a team points its own service (an ESME, an RCS client, a mail sender, a
CAMARA consumer) at the emulated carriers. One line per door goes to stdout as it opens::

    listening <door> <carrier> <host>:<port>

with door one of ``smpp``, ``smpp-tls``, ``rcs``, ``smtp``, ``camara``. Every number of a carrier's numbering is
a reachable subscriber of its SMSC; the SUT's account of the scenario is added to every SMSC, as in ``run``.
SMPP over TLS uses a self-signed certificate for ``localhost``, 127.0.0.1, ::1 and each TLS listen host that is an
IP address, made at start in a temporary directory (printed once as ``certificate <path>``; removed at exit).
SIGINT or SIGTERM stops every door and exits 0, during start-up too.

``--subscribers OUT.csv`` lists the records the RCS and CAMARA doors hold (:func:`write_subscribers`) once every
door listens, then prints ``subscribers <path> (<N> records)``: the IMSIs come from a numbering plan a user cannot
recompute, and without them the RCS door's cellular (IMSI) path is out of reach.

Exit codes: 0 stopped by a signal, 2 the scenario is invalid or the ``--subscribers`` path is unwritable,
3 a carrier or door could not start.
"""

from __future__ import annotations

import asyncio
import csv
import datetime
import io
import ipaddress
import signal
import ssl
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from carrier_sim.outputs import clashes
from carrier_sim.report.json_report import write_atomically
from carrier_sim.runner.carriers import RunningCarrier, start_carriers
from carrier_sim.runner.command import unwritable_reason
from carrier_sim.runner.doors import Door, SubscriberRecord, start_doors, subscriber_records
from carrier_sim.scenario.loader import ScenarioError, load_scenario
from carrier_sim.scenario.model import Scenario
from carrier_sim.signals import StartupSignals
from carrier_sim.smsc.centre import MtListener
from carrier_sim.smsc.store import StoredMessage

__all__ = ["EXIT_FAILED", "EXIT_INVALID", "SUBSCRIBER_COLUMNS", "carriers_command", "self_signed_context",
           "write_subscribers"]

#: The scenario file has problems.
EXIT_INVALID = 2
#: A carrier or one of its doors could not start (a port is taken, an address is not local).
EXIT_FAILED = 3
#: The header of the ``--subscribers`` CSV.
SUBSCRIBER_COLUMNS = ("carrier", "msisdn", "imsi", "iccid", "condition")


def write_subscribers(path: Path, records: Iterable[SubscriberRecord]) -> int:
    """Write ``records`` to ``path`` as CSV (:data:`SUBSCRIBER_COLUMNS`; msisdn as +E.164, imsi and iccid empty
    for a number without a SIM), atomically: a client polling for the file never reads half of it. Returns how
    many records were written."""
    text = io.StringIO()
    # "\n" rather than csv's default "\r\n": the file is read by shell tools as often as by CSV readers.
    out = csv.writer(text, lineterminator="\n")
    out.writerow(SUBSCRIBER_COLUMNS)
    count = 0
    for record in records:
        out.writerow((record.carrier, record.msisdn, record.imsi or "", record.iccid or "", record.condition.value))
        count += 1
    write_atomically(path, text.getvalue())
    return count


def _tls_hosts(scenario: Scenario) -> list[str]:
    """The hosts the SMPP-over-TLS doors listen on, as printed: what a client verifying the certificate checks."""
    return [carrier.smsc.host for carrier in scenario.carriers if carrier.smsc.tls_port is not None]


def self_signed_context(directory: Path, hosts: Iterable[str] = ()) -> tuple[ssl.SSLContext, Path]:
    """A server TLS context with a new self-signed certificate (valid 30 days), and the certificate's path in
    ``directory`` (a client trusts it with ``cafile=``). The certificate names ``localhost``, 127.0.0.1, ::1 and
    each of ``hosts`` that is an IP address (a listen address, printed as such: a client verifying the printed
    host checks an IP address SAN, which a DNS name does not satisfy)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
        ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    for host in hosts:
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            continue  # a name such as localhost: its DNS SAN is below
        if address not in addresses:
            addresses.append(address)
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    names += [x509.IPAddress(address) for address in addresses]
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "smsc.crt", directory / "smsc.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


def _no_phones(index: int) -> MtListener:
    del index

    def ignore(message: StoredMessage, now: float) -> None:
        # No phones in this mode: an MT is accepted by the SMSC (and receipted) but reaches no device.
        del message, now

    return ignore


def _announce(door: str, carrier: str, host: str, port: int) -> None:
    print(f"listening {door} {carrier} {host}:{port}", flush=True)


async def _serve(scenario: Scenario, workdir: Path, subscribers: Path | None,
                 startup: StartupSignals | None = None) -> int:
    empty64 = np.zeros(0, dtype=np.int64)
    empty8 = np.zeros(0, dtype=np.int8)
    sut = scenario.system_under_test
    # Before anything is printed (as in ``carrier-sim smsc``): a supervisor may signal as soon as it reads the
    # first "listening" line, and a signal before these handlers would take the default action (exit 143, the
    # TLS key's temporary directory left on disk).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if startup is not None and startup.take():  # one came while the command was loading (carrier_sim.console)
        stop.set()
    running: list[RunningCarrier] = []
    doors: list[Door] = []
    try:
        running = await start_carriers(scenario, (sut.system_id, sut.password), empty64, empty8, empty8, _no_phones)
        if stop.is_set():
            return 0
        tls: ssl.SSLContext | None = None
        for carrier in running:
            _announce("smpp", carrier.carrier.name, carrier.host, carrier.port)
            if carrier.carrier.smsc.tls_port is not None:
                if tls is None:
                    tls, cert = self_signed_context(workdir, _tls_hosts(scenario))
                    print(f"certificate {cert}", flush=True)
                host, port = await carrier.server.listen(carrier.carrier.smsc.host, carrier.carrier.smsc.tls_port,
                                                         ssl_context=tls)
                _announce("smpp-tls", carrier.carrier.name, host, port)
        # Start-up can take seconds (a large numbering, the subscriber records): a stop asked for meanwhile is
        # honoured between the steps rather than after every door has opened.
        if stop.is_set():
            return 0
        doors = await start_doors(running, scenario)
        for door in doors:
            _announce(door.name, door.carrier, door.host, door.port)
        if stop.is_set():
            return 0
        if subscribers is not None:
            # After every door listens, so a client that waits for this line can use any record at once.
            count = write_subscribers(subscribers, subscriber_records(running, scenario))
            print(f"subscribers {subscribers} ({count} records)", flush=True)
        await stop.wait()
        return 0
    except OSError as err:
        print(f"carrier-sim carriers: cannot start: {err}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        for door in reversed(doors):
            await door.stop()
        for carrier in reversed(running):
            await carrier.server.shutdown()


def carriers_command(path: Path, overrides: Sequence[str] = (), subscribers: Path | None = None, *,
                     startup: StartupSignals | None = None) -> int:
    """Start every carrier of the scenario at ``path`` with all its doors; run until SIGINT/SIGTERM.
    ``subscribers``: where to write the doors' subscriber records as CSV once they listen. ``startup``: the
    signals kept while the command was loading (:mod:`carrier_sim.console`), each a stop as one during start-up."""
    try:
        scenario = load_scenario(path, overrides)
    except ScenarioError as error:
        print(str(error), file=sys.stderr)
        count = len(error.errors)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=sys.stderr)
        return EXIT_INVALID
    if subscribers is not None:
        # Refused before any port opens: a team's script would otherwise wait for a line that never comes. Onto
        # the scenario or a file it includes (a link to one counts), the CSV replaced it, as run's outputs did.
        inputs = [("the scenario file", path)] + [("a file the scenario includes", f) for f in scenario.files[1:]]
        why = unwritable_reason(subscribers)
        problems = ([f"--subscribers {subscribers}: {why}"] if why is not None else []) + clashes(
            [("--subscribers", subscribers)], inputs)
        if problems:
            for problem in problems:
                print(f"carrier-sim carriers: {problem}", file=sys.stderr)
            return EXIT_INVALID
    with tempfile.TemporaryDirectory(prefix="carrier-sim-tls-") as workdir:
        return asyncio.run(_serve(scenario, Path(workdir), subscribers, startup))
