"""``carrier-sim smsc --json/--junit/--pcap``: on SIGINT the standalone SMSC writes its sessions' verdicts and what
crossed the wire, for a CI job that runs its own ESME against it."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.utils import rdpcap

from carrier_sim.capture import reassemble_streams
from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.framing import Framer
from carrier_sim.smpp.pdu import Pdu
from tests.carrier_sim.runner.test_run_signal_while_writing import HOOK

ROOT = Path(__file__).resolve().parents[2]
C = CommandId


class _Esme:
    """A blocking ESME over a plain socket: enough to make one good and one bad session."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.framer = Framer()
        self.seq = 0

    def send(self, command: CommandId, **fields: object) -> int:
        self.seq += 1
        self.sock.sendall(encode(Pdu.make(command, self.seq, **fields)))
        return self.seq

    def receive(self) -> Pdu:
        while (frame := self.framer.next_frame()) is None:
            data = self.sock.recv(4096)
            assert data, "the SMSC hung up"
            self.framer.feed(data)
        return decode(frame)

    def answer_until(self, command: CommandId) -> Pdu:
        """Read PDUs, answering deliver_sm (receipts), until one of ``command`` arrives."""
        while (pdu := self.receive()).command_id is not command:
            if pdu.command_id is C.deliver_sm:
                self.sock.sendall(encode(pdu.response()))
        return pdu

    def unbind(self) -> None:
        self.send(C.unbind)
        self.answer_until(C.unbind_resp)
        self.sock.close()


def _start(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    smsc = subprocess.Popen(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "esme:pw",
         "--account", "sloppy:pw", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert smsc.stdout is not None
    line = smsc.stdout.readline()
    assert line.startswith("listening on 127.0.0.1:"), line
    return smsc, int(line.rsplit(":", 1)[1])


def _stop(smsc: subprocess.Popen[str]) -> tuple[str, str]:
    smsc.send_signal(signal.SIGINT)
    return smsc.communicate(timeout=30)


def test_the_verdicts_and_the_wire_are_written_on_sigint(tmp_path: Path) -> None:
    out = {name: tmp_path / name for name in ("report.json", "junit.xml", "wire.pcap")}
    smsc, port = _start(tmp_path, "--json", str(out["report.json"]), "--junit", str(out["junit.xml"]),
                        "--pcap", str(out["wire.pcap"]))
    try:
        good = _Esme(port)
        good.send(C.bind_transceiver, system_id="esme", password="pw", interface_version=0x34)
        good.answer_until(C.bind_transceiver_resp)
        good.send(C.submit_sm, source_addr="12345", destination_addr="447700900001", registered_delivery=1,
                  short_message=b"hello")
        good.answer_until(C.submit_sm_resp)
        receipt = good.receive()  # the DELIVRD receipt (--dlr-delay 0)
        assert receipt.command_id is C.deliver_sm
        good.sock.sendall(encode(receipt.response()))
        good.unbind()

        sloppy = _Esme(port)
        sloppy.send(C.bind_transceiver, system_id="sloppy", password="pw", interface_version=0x34)
        sloppy.answer_until(C.bind_transceiver_resp)
        # UDHI set, but the message opens with no UDH: the udhi check must fail this session.
        sloppy.send(C.submit_sm, source_addr="12345", destination_addr="447700900002", esm_class=0x40,
                    short_message=b"no header here")
        sloppy.answer_until(C.submit_sm_resp)
        sloppy.unbind()
    finally:
        stdout, stderr = _stop(smsc)
    assert smsc.returncode == 0, stderr

    report = json.loads(out["report.json"].read_text(encoding="utf-8"))
    assert report["schema_version"] == 1
    assert report["verdict"] == "fail"
    assert report["stats"]["submitted"] >= 2
    by_id = {s["system_id"]: {c["check"]: c["verdict"] for c in s["checks"]} for s in report["sessions"]}
    assert by_id["esme"]["udhi"] == "pass"
    assert by_id["sloppy"]["udhi"] == "fail"
    assert "fail" not in by_id["esme"].values()

    suite = ET.parse(out["junit.xml"]).getroot().find("testsuite[@name='smpp-conformance']")
    assert suite is not None
    failed = {(case.get("classname"), case.get("name")) for case in suite.iter("testcase")
              if case.find("failure") is not None}
    assert failed == {(f"smpp.{report['smsc']}.sloppy", "udhi")}
    assert int(suite.get("tests", "0")) == 2 * len(by_id["esme"])

    packets = rdpcap(str(out["wire.pcap"]))
    # The ESMEs opened the connections: their SYNs go to the SMSC's port.
    assert sum(1 for p in packets if p["TCP"].flags == "S" and p["TCP"].dport == port) == 2
    sent: dict[str, list[CommandId]] = {"esme": [], "smsc": []}
    for (source, _destination), octets in reassemble_streams(packets).items():
        framer = Framer()
        framer.feed(octets)
        while (frame := framer.next_frame()) is not None:
            sent["smsc" if source[1] == port else "esme"].append(decode(frame).command_id)
    assert sent["esme"].count(C.submit_sm) == 2
    assert sent["smsc"].count(C.bind_transceiver_resp) == 2
    assert C.deliver_sm in sent["smsc"]
    assert "session 127.0.0.1:" in stdout  # the printed verdicts are still there


def test_an_smsc_no_esme_connected_to_writes_a_failing_junit(tmp_path: Path) -> None:
    out = {name: tmp_path / name for name in ("report.json", "junit.xml")}
    smsc, _port = _start(tmp_path, "--json", str(out["report.json"]), "--junit", str(out["junit.xml"]))
    _stop(smsc)
    assert smsc.returncode == 0
    assert json.loads(out["report.json"].read_text(encoding="utf-8"))["verdict"] == "inconc"
    root = ET.parse(out["junit.xml"]).getroot()
    # The JUnit agrees with the JSON: a gate reading its counts does not go green on an SMSC nobody tested.
    assert (root.get("tests"), root.get("failures")) == ("1", "1")
    failure = root.find("testsuite/testcase/failure")
    assert failure is not None
    assert (failure.get("type"), failure.get("message")) == ("inconc", "no ESME connected: nothing was tested")
    assert [p.get("name") for p in root.iter("property") if p.get("value") == "None"] == []


def test_without_output_flags_nothing_is_written(tmp_path: Path) -> None:
    smsc, _port = _start(tmp_path)
    _stop(smsc)
    assert smsc.returncode == 0
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--json", "--junit", "--pcap"])
def test_an_output_that_cannot_be_written_exits_2_before_listening(tmp_path: Path, flag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
         flag, str(tmp_path / "missing" / "out")],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 2
    assert f"{flag} {tmp_path / 'missing' / 'out'}: directory" in done.stderr
    assert "listening" not in done.stdout


@pytest.mark.parametrize("flag", ["--json", "--junit", "--pcap"])
def test_an_output_that_is_a_fifo_exits_2_before_listening(tmp_path: Path, flag: str) -> None:
    # A FIFO was replaced by a file (--json, --junit) or, for --pcap, opened to write into when the SMSC stopped,
    # which blocked for ever with nobody reading: refused up front, and the FIFO left as it was.
    fifo = tmp_path / "out"
    os.mkfifo(fifo)
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
         flag, str(fifo)],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"{flag} {fifo}: is not a regular file (a FIFO)" in done.stderr
    assert "listening" not in done.stdout
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_two_outputs_onto_one_file_exit_2_before_listening(tmp_path: Path) -> None:
    # --json x --junit x wrote the JSON where CI reads the JUnit XML (the one written last won), and exited 0.
    (tmp_path / "link").symlink_to(tmp_path / "x")
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
         "--json", str(tmp_path / "x"), "--junit", str(tmp_path / "link")],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--json {tmp_path / 'x'} and --junit {tmp_path / 'link'} are one file" in done.stderr
    assert "listening" not in done.stdout


def test_a_second_signal_while_writing_abandons_the_pcap_after_the_reports(tmp_path: Path) -> None:
    # SIGINT stops the SMSC; a second signal (a supervisor's SIGTERM before its SIGKILL), sent from inside the pcap
    # writer, must cost only the pcap: the JSON and JUnit are written first, and no partial pcap is left.
    out = tmp_path / "out"
    out.mkdir()
    files = {name: out / name for name in ("report.json", "junit.xml", "wire.pcap")}
    smsc = subprocess.Popen(
        [sys.executable, "-c", HOOK, "SIGTERM", str(out / "notes.json"), "pace",
         "smsc", "--listen", "127.0.0.1:0", "--account", "esme:pw", "--json", str(files["report.json"]),
         "--junit", str(files["junit.xml"]), "--pcap", str(files["wire.pcap"])],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert smsc.stdout is not None
        line = smsc.stdout.readline()
        assert line.startswith("listening on 127.0.0.1:"), line
        esme = _Esme(int(line.rsplit(":", 1)[1]))
        esme.send(C.bind_transceiver, system_id="esme", password="pw", interface_version=0x34)
        esme.answer_until(C.bind_transceiver_resp)
        for n in range(10):
            esme.send(C.submit_sm, source_addr="12345", destination_addr=f"44770090000{n}", short_message=b"hi")
            esme.answer_until(C.submit_sm_resp)
        esme.unbind()
    finally:
        stdout, stderr = _stop(smsc)
    assert smsc.returncode == 3, stdout + stderr
    assert "Traceback" not in stderr, stderr
    seen = json.loads((out / "notes.json").read_text(encoding="utf-8"))
    assert {"report.json", "junit.xml"} <= set(seen), seen  # complete before the pcap began
    report = json.loads(files["report.json"].read_text(encoding="utf-8"))
    assert report["stats"]["submitted"] == 10
    assert ET.parse(files["junit.xml"]).getroot().find("testsuite[@name='smpp-conformance']") is not None
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "notes.json", "report.json"]
    assert "SIGTERM again: the pcap is abandoned" in stderr, stderr
    assert f"{files['wire.pcap']} not written: abandoned on a second signal" in stderr, stderr


def test_an_output_onto_an_input_file_exits_2_before_listening(tmp_path: Path) -> None:
    # --json onto the --config (or --cert/--key) replaced it with the report when the SMSC stopped.
    config = tmp_path / "smsc.toml"
    config.write_text('[[account]]\nsystem_id = "a"\npassword = "b"\n', encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--config", str(config),
         "--json", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"--json {config} is the --config file" in done.stderr
    assert "listening" not in done.stdout
    assert config.read_text(encoding="utf-8").startswith("[[account]]")


def test_one_sigterm_delivered_twice_keeps_the_pcap(tmp_path: Path) -> None:
    # GNU timeout signals the command and then its process group: one request, two SIGTERMs microseconds apart.
    # The copy must not be read as the "second signal" that abandons the pcap.
    pcap = tmp_path / "wire.pcap"
    smsc, port = _start(tmp_path, "--pcap", str(pcap))
    try:
        esme = _Esme(port)
        esme.send(C.bind_transceiver, system_id="esme", password="pw", interface_version=0x34)
        esme.answer_until(C.bind_transceiver_resp)
        for n in range(20):
            esme.send(C.submit_sm, source_addr="12345", destination_addr=f"4477009000{n:02d}", short_message=b"hi")
        esme.answer_until(C.submit_sm_resp)
    finally:
        smsc.send_signal(signal.SIGTERM)
        smsc.send_signal(signal.SIGTERM)
        stdout, stderr = smsc.communicate(timeout=30)
    assert smsc.returncode == 0, stdout + stderr
    assert "again" not in stderr, stderr
    assert len(rdpcap(str(pcap))) > 0


def test_a_pcap_that_takes_a_while_says_how_far_it_is_on_stderr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    # Writing a long run's pcap takes seconds: a line a second on stderr tells whoever waits (a supervisor with a
    # stop grace) that it is working, and how far it is. The interval is cut to nothing here, so that a pcap of
    # milliseconds shows the lines a long one would.
    from carrier_sim.capture import pcap as pcap_module
    from carrier_sim.cli import _SmscOutputs
    from carrier_sim.net.smsc_server import SmscServer
    from carrier_sim.smsc.accounts import Account
    from carrier_sim.smsc.centre import Smsc, SmscConfig

    monkeypatch.setattr(pcap_module, "PROGRESS_INTERVAL", 0.0)
    chunks: list[tuple[str, bytes, float]] = [("open", b"", 100.0)]
    for n in range(2000):
        chunks += [("in", b"q" * 50, 100.0 + n / 1000), ("out", b"r" * 21, 100.0 + n / 1000)]
    chunks.append(("close", b"client fin", 103.0))
    pcap = tmp_path / "wire.pcap"
    server = SmscServer(Smsc(SmscConfig(accounts=(Account("a", "b"),))))
    lost = _SmscOutputs(None, None, pcap).write(server, 0.0, 1.0, [("127.0.0.1:40001", "127.0.0.1:2775", chunks)])
    assert lost == []
    lines = capsys.readouterr().err.splitlines()
    total = 2000 * (50 + 21)
    assert len(lines) >= 2
    assert all(line.startswith(f"carrier-sim smsc: writing {pcap}: ") for line in lines), lines
    assert lines[-1] == f"carrier-sim smsc: writing {pcap}: 100% ({total:,} of {total:,} octets of SMPP)"
    assert len(rdpcap(str(pcap))) > 4000
