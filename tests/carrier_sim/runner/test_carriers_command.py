"""``carrier-sim carriers FILE``: every door of every carrier answers a client of its protocol, and it stops on
SIGTERM with exit 0; an invalid file exits 2."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

from carrier_sim.net.esme import Esme
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


def _read_doors(process: subprocess.Popen[str]) -> tuple[dict[tuple[str, str], tuple[str, int]], Path]:
    """The ``listening`` lines (and the certificate line) until every expected door is open, within 30 s."""
    doors: dict[tuple[str, str], tuple[str, int]] = {}
    found: dict[str, Path] = {}
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            words = line.split()
            if words[:1] == ["listening"]:
                host, _, port = words[3].rpartition(":")
                doors[(words[1], words[2])] = (host, int(port))
            elif words[:1] == ["certificate"]:
                found["cert"] = Path(words[1])
            if set(doors) >= EXPECTED:
                break
        done.set()

    threading.Thread(target=read, daemon=True).start()
    assert done.wait(30), f"doors open so far: {sorted(doors)}"
    assert set(doors) == EXPECTED
    return doors, found["cert"]


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
    process = subprocess.Popen(
        [sys.executable, "-m", "carrier_sim.cli", "carriers", "scenarios/quickstart.yaml",
         "--set", "carriers.0.smsc.tls_port=0"],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
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
