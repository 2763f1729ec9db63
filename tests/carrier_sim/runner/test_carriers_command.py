"""``carrier-sim carriers FILE``: every door of every carrier answers a client of its protocol, and it stops on
SIGTERM with exit 0; an invalid file exits 2. ``--subscribers`` lists the records the doors hold, and an IMSI
from that list gets a configuration from the RCS door."""

from __future__ import annotations

import asyncio
import csv
import json
import os
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from carrier_sim.net.esme import Esme
from carrier_sim.rcs.app import ENRICHMENT_HEADER
from carrier_sim.rcs.document import CONTENT_TYPE, validate_document
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu

ROOT = Path(__file__).resolve().parents[3]
EXPECTED = {
    ("smpp", "carrier-a"), ("smpp-tls", "carrier-a"), ("rcs", "carrier-a"), ("smtp", "carrier-a"),
    ("camara", "carrier-a"), ("smpp", "carrier-b"), ("rcs", "carrier-b"), ("smtp", "carrier-b"),
    ("camara", "carrier-b"),
}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _carriers(*args: str, **env: str) -> subprocess.Popen[str]:
    """``carrier-sim carriers ARGS`` from the repository root, with ``env`` added to the environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "carrier_sim.cli", "carriers", *args],
        cwd=ROOT, env={**_env(), **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


Doors = dict[tuple[str, str], tuple[str, int]]


def _read_lines(process: subprocess.Popen[str], last: Callable[[Doors, dict[str, str]], bool],
                timeout: float) -> tuple[Doors, dict[str, str]]:
    """The ``listening`` lines as doors, and the other lines by their first word (``certificate``,
    ``subscribers``), until ``last(doors, others)`` holds, within ``timeout`` seconds."""
    doors: Doors = {}
    others: dict[str, str] = {}
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            words = line.split()
            if words[:1] == ["listening"]:
                host, _, port = words[3].rpartition(":")
                doors[(words[1], words[2])] = (host, int(port))
            elif words:
                others[words[0]] = line.strip()
            if last(doors, others):
                done.set()
                return

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(timeout), f"doors open so far: {sorted(doors)}, other lines: {others}"
    return doors, others


def _read_doors(process: subprocess.Popen[str]) -> tuple[Doors, Path]:
    """The ``listening`` lines (and the certificate line) until every expected door is open, within 30 s."""
    doors, others = _read_lines(process, lambda doors, _: set(doors) >= EXPECTED, 30)
    assert set(doors) == EXPECTED
    return doors, Path(others["certificate"].split()[1])


async def _bind(host: str, port: int, tls: ssl.SSLContext | None = None) -> None:
    loop = asyncio.get_running_loop()
    extra = {"ssl": tls, "server_hostname": "localhost"} if tls is not None else {}
    _, esme = await loop.create_connection(Esme, host, port, **extra)
    async with asyncio.timeout(10):
        await esme.bind("identity", "secret", CommandId.bind_transceiver)
        response = await esme.submit(
            Pdu.make(CommandId.submit_sm, 0, destination_addr="447700900001", short_message=b"hello")
        )
        assert response.command_status == CommandStatus.ESME_ROK
        await esme.unbind()


def test_every_door_answers_and_sigterm_stops_it() -> None:
    process = _carriers("scenarios/quickstart.yaml", "--set", "carriers.0.smsc.tls_port=0")
    try:
        doors, cert = _read_doors(process)

        asyncio.run(_bind(*doors[("smpp", "carrier-b")]))
        asyncio.run(_bind(*doors[("smpp-tls", "carrier-a")], ssl.create_default_context(cafile=str(cert))))

        host, port = doors[("rcs", "carrier-a")]
        with urllib.request.urlopen(f"http://{host}:{port}/?vers=0&msisdn=%2B447700900001", timeout=10) as answer:
            assert answer.status == 200
            assert answer.read() == b""
            assert "rcs_otp_session" in answer.headers.get("Set-Cookie", "")

        host, port = doors[("smtp", "carrier-a")]
        with smtplib.SMTP(host, port, timeout=10) as smtp:
            smtp.ehlo("tester.example")
            assert smtp.mail("someone@example.org")[0] == 250
            assert smtp.rcpt("447700900001@sms.carrier-a.example")[0] == 250
            assert smtp.rcpt("447700900001@elsewhere.example")[0] == 550
            assert smtp.rcpt("447700999999@sms.carrier-a.example")[0] == 550  # not in its numbering
            assert smtp.data(b"Subject: hi\r\n\r\nhello\r\n")[0] == 250

        host, port = doors[("camara", "carrier-b")]
        base = f"http://{host}:{port}"
        request = urllib.request.Request(
            base + "/_emulator/v1/device-token", data=json.dumps({"phoneNumber": "+4915550000001"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            token = json.load(answer)["access_token"]
        request = urllib.request.Request(
            base + "/sim-swap/v1/check", data=b"{}",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert (answer.status, json.load(answer)) == (200, {"swapped": False})

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert not cert.exists()  # the temporary certificate goes with the process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_invalid_file_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    text = (ROOT / "scenarios" / "quickstart.yaml").read_text()
    bad.write_text(text.replace("domain: sms.carrier-b.example", "domain: not_a_host"))
    result = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "carriers", str(bad)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "doors.smtp.domain" in result.stderr
    assert "listening" not in result.stdout


def _read_until_subscribers(process: subprocess.Popen[str]) -> tuple[Doors, str]:
    """The ``listening`` lines up to the ``subscribers`` line, and that line, within 60 s."""
    doors, others = _read_lines(process, lambda _, others: "subscribers" in others, 60)
    return doors, others["subscribers"]


def _rcs_get(host: str, port: int, query: str, msisdn: str) -> tuple[int, str, bytes]:
    """A cellular client's two requests (RCC.14): the bare ``GET /`` the network enriches with the subscriber's
    number (emulated by the door's ``X-MSISDN`` header), then the query with the IMSI and the session cookie.
    Returns status, content type and body of the second, errors included."""
    bare = urllib.request.Request(f"http://{host}:{port}/", headers={ENRICHMENT_HEADER: msisdn})
    with urllib.request.urlopen(bare, timeout=10) as answer:
        cookie = answer.headers["Set-Cookie"].split(";")[0]
    request = urllib.request.Request(f"http://{host}:{port}/?{query}", headers={"Cookie": cookie})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", ""), error.read()


def test_subscribers_csv_lists_imsis_the_rcs_door_recognises(tmp_path: Path) -> None:
    out = tmp_path / "subscribers.csv"
    process = _carriers("scenarios/quickstart.yaml", "--subscribers", str(out))
    try:
        doors, line = _read_until_subscribers(process)
        with out.open(newline="") as file:
            reader = csv.DictReader(file)
            assert reader.fieldnames == ["carrier", "msisdn", "imsi", "iccid", "condition"]
            rows = list(reader)
        assert line == f"subscribers {out} ({len(rows)} records)"
        # quickstart: 10,000 numbers per carrier, all held by the doors; 10,000 phones, so 10,000 SIMs in all.
        assert len(rows) == 20_000
        assert all(row["msisdn"].startswith("+") and row["condition"] == "reachable" for row in rows)
        with_sim = [row for row in rows if row["imsi"]]
        assert len(with_sim) == 10_000
        assert all(len(row["iccid"]) == 19 for row in with_sim)
        assert all(not row["iccid"] for row in rows if not row["imsi"])
        assert len({row["imsi"] for row in with_sim}) == len(with_sim)

        for carrier in ("carrier-a", "carrier-b"):
            row = next(row for row in with_sim if row["carrier"] == carrier)
            status, kind, body = _rcs_get(*doors[("rcs", carrier)], f"vers=0&IMSI={row['imsi']}", row["msisdn"])
            assert (status, kind.split(";")[0]) == (200, CONTENT_TYPE.split(";")[0]), body
            assert validate_document(body, token_issued=True, full=True) == []
            # The door recognised this row's subscriber: its number and IMSI are in the document.
            assert f"sip:{row['msisdn']}@".encode() in body
            assert f"{row['imsi']}@".encode() in body

        # A valid IMSI of carrier-a's MCC/MNC that no SIM of the scenario has (the population's MSINs start with 9),
        # on a subscriber's cellular session: not that subscriber's SIM.
        first_a = next(row for row in with_sim if row["carrier"] == "carrier-a")
        status, _, _ = _rcs_get(*doors[("rcs", "carrier-a")], "vers=0&IMSI=234158000000001", first_a["msisdn"])
        assert status == 403

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_unwritable_subscribers_path_exits_2_before_starting(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "carriers", "scenarios/quickstart.yaml",
         "--subscribers", str(blocker / "missing" / "subscribers.csv")],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert "--subscribers" in result.stderr
    assert "does not exist" in result.stderr
    assert "listening" not in result.stdout
    assert not (blocker / "missing").exists()


def test_subscribers_onto_the_scenario_exits_2_and_leaves_it(tmp_path: Path) -> None:
    # The CSV replaced the scenario it was asked to list the subscribers of, as run's outputs once could.
    scenario = tmp_path / "doors.yaml"
    scenario.write_text((ROOT / "scenarios" / "carrier-doors.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    before = scenario.read_bytes()
    result = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "carriers", str(scenario), "--subscribers", str(scenario)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"--subscribers {scenario} is the scenario file" in result.stderr
    assert "listening" not in result.stdout
    assert scenario.read_bytes() == before


_SLOW_START = """\
name: slow-start
seed: 1
clock: wall
carriers:
  - name: big
    mcc: "234"
    mnc: "15"
    country: GB
    numbering: ["447700000000-447700999999"]
    gateway: "447786205094"
    smsc: {port: 0, tls_port: 0}
    doors:
      camara: {port: 0}
      rcs: {port: 0}
population:
  phones: 5
system_under_test:
  kind: bundled
  system_id: identity
  password: secret
load:
  model: open
  phases:
    - {name: s, duration: 2, rate: 2}
flows:
  - {name: activation, weight: 1.0, think_time: 0.1}
"""


def test_sigterm_on_the_first_line_stops_it_cleanly(tmp_path: Path) -> None:
    # A million numbers: start-up goes on for a second or more after the first "listening" line, which is when a
    # supervisor may signal. Once the default action (-SIGTERM, the TLS key's directory left behind).
    scenario = tmp_path / "slow.yaml"
    scenario.write_text(_SLOW_START)
    temp = tmp_path / "tmp"
    temp.mkdir()
    process = _carriers(str(scenario), "--subscribers", str(tmp_path / "s.csv"), TMPDIR=str(temp))
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("listening smpp big 127.0.0.1:")
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, (out, err)
        assert list(temp.iterdir()) == []  # the self-signed key's temporary directory went with it
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_the_certificate_covers_the_printed_ip_address() -> None:
    # A client that verifies the host it was told ("listening smpp-tls ... 127.0.0.1:PORT") checks an IP address
    # SAN; the certificate once named only localhost, and the handshake failed with an IP address mismatch.
    process = _carriers("scenarios/quickstart.yaml", "--set", "carriers.0.smsc.tls_port=0")
    try:
        doors, cert = _read_doors(process)
        host, port = doors[("smpp-tls", "carrier-a")]
        assert host == "127.0.0.1"
        client = ssl.create_default_context(cafile=str(cert))
        for name in (host, "localhost"):
            with socket.create_connection((host, port), timeout=10) as raw, \
                    client.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version() is not None
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.terminate()  # not kill(): the temporary certificate would stay on disk
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_the_certificate_names_loopback_and_ip_listen_hosts(tmp_path: Path) -> None:
    from cryptography import x509

    from carrier_sim.runner.carriers_command import self_signed_context

    _, path = self_signed_context(tmp_path, ["127.0.0.2", "localhost", "::1"])
    names = x509.load_pem_x509_certificate(path.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(a) for a in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1", "127.0.0.2"]
