"""Interop: python-smpplib (PyPI ``smpplib``), a blocking ESME, against the SMSC run as a real process via the CLI.

The SMSC is ``python -m carrier_sim.cli smsc --listen 127.0.0.1:0 ... --control 127.0.0.1:PORT``: the test reads
the port it bound from its ``listening on`` line, injects MO through the HTTP control API, and ends it with
SIGTERM, after which it must exit 0 having printed the oracle's verdicts for the session. smpplib is driven in this
(synchronous) test's own thread through ``read_once`` with a 0.5 s socket timeout, so every wait is bounded by a
deadline; no event loop runs here. The subprocess is killed in a ``finally`` whatever happens.

smpplib behaviours worth knowing: it answers deliver_sm (``message_received_handler``) and reports
submit_sm_resp (``message_sent_handler``) from ``read_once``; it never answers an unbind the SMSC sends (its
``read_once`` just logs it), which the last test shows the oracle noticing.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.interop.conftest import require_module

smpplib_client: Any = require_module("smpplib.client")
smpplib_gsm: Any = require_module("smpplib.gsm")
smpplib_consts: Any = require_module("smpplib.consts")

pytestmark = pytest.mark.interop

WAIT = 10.0
SYSTEM_ID = "smpplib"
PASSWORD = "secret"
SOURCE = "12345"
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for --control, which prints what it was given)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class SmscProcess:
    """The SMSC subprocess, its SMPP and control addresses, and every line it printed."""

    process: subprocess.Popen[str]
    port: int = 0
    control: str = ""
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)
    _reader: threading.Thread | None = None

    def start_reading(self) -> None:
        """Read stdout in a thread so that no wait for a line can block forever."""
        def pump() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self._queue.put(line.rstrip("\n"))
            self._queue.put(None)

        self._reader = threading.Thread(target=pump, name="smsc-stdout", daemon=True)
        self._reader.start()

    def expect_line(self, pattern: str) -> re.Match[str]:
        """The next printed line matching ``pattern``, within WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if match := re.search(pattern, line):
                return match
        raise AssertionError(f"the SMSC printed no line matching {pattern!r}; got {self.lines!r}")

    def terminate_and_collect(self) -> tuple[int, list[str]]:
        """SIGTERM, wait for the exit (bounded), and return the exit code and everything printed."""
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=WAIT)
        if self._reader is not None:
            self._reader.join(timeout=WAIT)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return code, self.lines

    def post_mo(self, source: str, destination: str, text: str) -> tuple[int, dict[str, Any]]:
        """POST /mo on the control API; (HTTP status, JSON body)."""
        body = json.dumps({"from": source, "to": destination, "text": text}).encode()
        request = urllib.request.Request(f"{self.control}/mo", data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, json.loads(response.read())

    def stats(self) -> dict[str, Any]:
        """GET /stats on the control API."""
        with urllib.request.urlopen(f"{self.control}/stats", timeout=WAIT) as response:
            result: dict[str, Any] = json.loads(response.read())
            return result


@pytest.fixture
def smsc() -> Iterator[SmscProcess]:
    """The SMSC subprocess, listening; killed afterwards whatever happened."""
    control_port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0",
         "--account", f"{SYSTEM_ID}:{PASSWORD}", "--dlr-delay", "0.05", "--control", f"127.0.0.1:{control_port}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    running = SmscProcess(process)
    try:
        running.start_reading()
        running.port = int(running.expect_line(r"^listening on 127\.0\.0\.1:(\d+)$").group(1))
        assert running.port != 0
        running.control = running.expect_line(r"^control on (http://127\.0\.0\.1:\d+)$").group(1)
        assert running.control == f"http://127.0.0.1:{control_port}"
        yield running
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=WAIT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@dataclass
class Esme:
    """A smpplib client and what its handlers saw."""

    client: Any
    sent: list[Any] = field(default_factory=list)
    received: list[Any] = field(default_factory=list)

    def pump_until(self, done: Callable[[], bool], what: str) -> None:
        """Run smpplib's read_once (0.5 s socket timeout) until ``done()``, within WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {WAIT} s waiting for {what}")
            try:
                self.client.read_once(auto_send_enquire_link=False)
            except TimeoutError:
                continue

    def receipts(self) -> list[Any]:
        """Received deliver_sm that are delivery receipts."""
        return [p for p in self.received if p.esm_class & 0x3C == 0x04]

    def mo(self) -> list[Any]:
        """Received deliver_sm that are mobile-originated messages."""
        return [p for p in self.received if p.esm_class & 0x3C == 0]


def connect(port: int) -> Esme:
    """smpplib bound as a transceiver."""
    client = smpplib_client.Client("127.0.0.1", port, timeout=0.5, allow_unknown_opt_params=True)
    esme = Esme(client)
    client.set_message_sent_handler(lambda pdu, **_: esme.sent.append(pdu))
    client.set_message_received_handler(lambda pdu, **_: esme.received.append(pdu))
    client.connect()
    response = client.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    assert response.command == "bind_transceiver_resp"
    assert response.status == 0
    return esme


def session_verdicts(lines: list[str]) -> dict[str, str]:
    """The check -> verdict lines the SMSC printed under the one ``session 127.0.0.1:PORT system_id=smpplib``."""
    header = re.compile(rf"session 127\.0\.0\.1:\d+ system_id={SYSTEM_ID}")
    headers = [i for i, line in enumerate(lines) if header.fullmatch(line)]
    assert len(headers) == 1, lines
    out: dict[str, str] = {}
    for line in lines[headers[0] + 1:]:
        match = re.match(r"^  (pass|fail|inconc)\s+(\w+): ", line)
        if match is None:
            break
        out[match.group(2)] = match.group(1)
    return out


def receipt_id(pdu: Any) -> str:
    """The id: of a receipt's text."""
    match = re.search(rb"\bid:(\S+)", pdu.short_message)
    assert match is not None, pdu.short_message
    return match.group(1).decode()


def test_smpplib_submits_gets_receipts_and_mo_then_the_smsc_stops_cleanly(smsc: SmscProcess) -> None:
    esme = connect(smsc.port)
    try:
        gsm = esme.client.send_message(
            source_addr=SOURCE, destination_addr="447700900001", short_message=b"Hello from smpplib",
            data_coding=smpplib_consts.SMPP_ENCODING_DEFAULT, registered_delivery=1,
        )
        text = "Код подтверждения: 123456. Никому его не сообщайте! " * 3
        parts, coding, esm_class = smpplib_gsm.make_parts(text)
        assert (len(parts), coding, esm_class) == (3, smpplib_consts.SMPP_ENCODING_ISO10646, 0x40)
        multipart = [
            esme.client.send_message(source_addr=SOURCE, destination_addr="447700900002", short_message=part,
                                     data_coding=coding, esm_class=esm_class, registered_delivery=1)
            for part in parts
        ]
        submitted = [gsm, *multipart]
        esme.pump_until(lambda: len(esme.sent) == 4 and len(esme.receipts()) == 4, "4 responses and 4 receipts")

        ids = {p.sequence: p.message_id.decode() for p in esme.sent}
        assert all(p.status == 0 for p in esme.sent)
        assert sorted(ids) == sorted(s.sequence for s in submitted)
        assert len(set(ids.values())) == 4
        receipts = {receipt_id(r): r for r in esme.receipts()}
        assert sorted(receipts) == sorted(ids.values())
        for message_id, receipt in receipts.items():
            assert receipt.receipted_message_id.decode() == message_id
            assert receipt.message_state == 2
            assert b" stat:DELIVRD " in receipt.short_message
        gsm_receipt = receipts[ids[gsm.sequence]]
        assert gsm_receipt.short_message.endswith(b" text:Hello from smpplib")
        assert (gsm_receipt.source_addr, gsm_receipt.destination_addr) == (b"447700900001", SOURCE.encode())

        status, body = smsc.post_mo("447700900003", SOURCE, "Hi from a phone")
        assert (status, body) == (202, {"routed": True})
        esme.pump_until(lambda: len(esme.mo()) == 1, "the MO")
        [mo] = esme.mo()
        assert (mo.source_addr, mo.destination_addr, mo.short_message, mo.data_coding) == (
            b"447700900003", SOURCE.encode(), b"Hi from a phone", 0)

        stats = smsc.stats()
        assert stats["stats"]["submitted"] == 4
        assert stats["stats"]["receipts_acked"] == 4
        assert stats["stats"]["mo_sent"] == 1
        assert stats["bound"] == 1

        unbind = esme.client.unbind()
        assert unbind.command == "unbind_resp"
    finally:
        esme.client.disconnect()

    code, lines = smsc.terminate_and_collect()
    assert code == 0, lines
    verdicts = session_verdicts(lines)
    assert verdicts["unbind"] == "pass"
    assert verdicts["udhi"] == verdicts["concatenation"] == verdicts["data_coding"] == "pass"
    assert "fail" not in verdicts.values(), verdicts


def test_sigterm_while_bound_unbinds_smpplib_and_judges_its_silence(smsc: SmscProcess) -> None:
    esme = connect(smsc.port)
    try:
        smsc.process.send_signal(signal.SIGTERM)
        unbind = None
        deadline = time.monotonic() + WAIT
        while unbind is None and time.monotonic() < deadline:
            try:
                unbind = esme.client.read_pdu()
            except TimeoutError:
                continue
        assert unbind is not None
        assert unbind.command == "unbind"  # the SMSC's own unbind; smpplib does not answer it
    finally:
        esme.client.disconnect()
    code, lines = smsc.terminate_and_collect()
    assert code == 0, lines
    verdicts = session_verdicts(lines)
    assert verdicts["unbind"] == "fail"
