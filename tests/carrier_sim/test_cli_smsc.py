"""``carrier-sim smsc``'s flag and config checks: refusals exit 2 with the reason before anything listens; and
``carrier-sim decode``'s exit code."""

from __future__ import annotations

import contextlib
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import pytest

from carrier_sim.cli import main

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("control", ["0.0.0.0:0", "192.0.2.1:8080", "[::]:0", "example.com:8080", "10.0.0.1:0"])
def test_a_control_address_off_loopback_is_refused(control: str) -> None:
    # A subprocess with a timeout: were the address accepted, the SMSC would serve until stopped.
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
         "--control", control],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 2
    assert "loopback" in done.stderr
    assert control.rsplit(":", 1)[0] in done.stderr
    assert "listening" not in done.stdout


def _smsc_with_control(control: str | None, listen: str = "127.0.0.1:0") -> subprocess.Popen[str]:
    """``carrier-sim smsc`` on ``listen`` with one account and its control API at ``control`` (None: none)."""
    return subprocess.Popen(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", listen, "--account", "a:b",
         *(() if control is None else ("--control", control))],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


@pytest.mark.parametrize("control", ["127.0.0.1:0", "localhost:0"])
def test_a_loopback_control_address_is_served(control: str) -> None:
    smsc = _smsc_with_control(control)
    try:
        assert smsc.stdout is not None
        assert smsc.stdout.readline().startswith("listening on 127.0.0.1:")
        assert re.fullmatch(r"control on http://\S+:\d+\n", smsc.stdout.readline())
    finally:
        smsc.send_signal(signal.SIGINT)
        _, err = smsc.communicate(timeout=20)
    assert smsc.returncode == 0, err


def test_a_garbage_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    # Once an OverflowError from connect() (exit 1, a traceback): a subprocess, so the exit code is the real one.
    bad = tmp_path / "bad.toml"
    bad.write_text('[[outbind]]\nhost = "127.0.0.1"\nport = 99999\nsystem_id = "a"\npassword = "b"\n',
                   encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
         "--config", str(bad)],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 2, done.stderr
    assert "outbind[0].port" in done.stderr
    assert "Traceback" not in done.stderr
    assert "listening" not in done.stdout


@pytest.mark.parametrize("delay", ["nan", "inf", "-inf", "-1"])
def test_a_dlr_delay_that_is_not_finite_seconds_exits_2(delay: str, capsys: pytest.CaptureFixture[str]) -> None:
    # Refused before anything listens, so main() returns in-process.
    assert main(["smsc", "--listen", "127.0.0.1:0", "--account", "a:b", f"--dlr-delay={delay}"]) == 2
    assert "--dlr-delay" in capsys.readouterr().err


def test_decode_exits_2_when_a_pdu_does_not_decode(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "00000011800000000000000000000001ff"]) == 2
    assert "error: ESME_RINVCMDLEN" in capsys.readouterr().out
    assert main(["decode", "00000010800000150000000000000001"]) == 0
    assert "enquire_link_resp" in capsys.readouterr().out


def test_malformed_http_to_the_control_api_is_a_400_and_one_log_line() -> None:
    # Not HTTP at all (a bad request line, a control character in a header): aiohttp's parser refuses it before
    # the application runs; the SMSC logs it as one line, not an ERROR with the parser's traceback.
    smsc = _smsc_with_control("127.0.0.1:0")
    try:
        assert smsc.stdout is not None
        assert smsc.stdout.readline().startswith("listening on 127.0.0.1:")
        found = re.fullmatch(r"control on http://(\S+):(\d+)\n", smsc.stdout.readline())
        assert found is not None
        for request in (b"NOT HTTP AT ALL\r\n\r\n", b"GET /stats HTTP/1.1\r\nHost: x\r\nx-correlator: \x01\r\n\r\n"):
            with socket.create_connection((found[1], int(found[2])), timeout=10) as raw:
                raw.sendall(request)
                assert re.match(rb"HTTP/1\.[01] 400 ", raw.recv(4096))
    finally:
        smsc.send_signal(signal.SIGINT)
        _, err = smsc.communicate(timeout=20)
    assert smsc.returncode == 0, err
    assert "Traceback" not in err, err
    assert "malformed HTTP refused with 400" in err


def test_an_account_given_twice_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Before, the --account won and the configured account's throughput was silently dropped.
    config = tmp_path / "smsc.toml"
    config.write_text('[[account]]\nsystem_id = "esme1"\npassword = "secret"\nthroughput = 2.0\n')
    assert main(["smsc", "--listen", "127.0.0.1:0", "--config", str(config), "--account", "esme1:secret"]) == 2
    assert "esme1 given more than once" in capsys.readouterr().err
    assert main(["smsc", "--listen", "127.0.0.1:0", "--account", "a:b", "--account", "a:c"]) == 2


def test_a_bad_roaming_delay_in_the_config_exits_2_naming_the_key(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # Refused while reading the config, before anything listens, so main() returns in-process.
    bad = tmp_path / "bad.toml"
    bad.write_text("[roaming]\ndelay = [2.0, 0.5]\n", encoding="utf-8")
    assert main(["smsc", "--listen", "127.0.0.1:0", "--account", "a:b", "--config", str(bad)]) == 2
    assert "roaming.delay" in capsys.readouterr().err


def test_a_control_port_that_cannot_be_bound_exits_2_without_a_traceback() -> None:
    # Once aiohttp's OSError escaped after "listening on" was printed: a traceback and exit 1.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
             "--control", f"127.0.0.1:{port}"],
            cwd=ROOT, capture_output=True, text=True, timeout=20,
        )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"carrier-sim smsc: --control 127.0.0.1:{port}: "), done.stderr
    assert "Traceback" not in done.stderr


def test_a_bracketed_ipv6_control_address_is_served_and_printed_bracketed() -> None:
    # "[::1]:0" once reached the resolver with its brackets (socket.gaierror); the URL is printed as a URL.
    smsc = _smsc_with_control("[::1]:0")
    try:
        assert smsc.stdout is not None
        assert smsc.stdout.readline().startswith("listening on 127.0.0.1:")
        found = re.fullmatch(r"control on http://\[::1\]:(\d+)\n", smsc.stdout.readline())
        assert found is not None
        with socket.create_connection(("::1", int(found[1])), timeout=10) as raw:
            raw.sendall(b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert raw.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        smsc.send_signal(signal.SIGINT)
        _, err = smsc.communicate(timeout=20)
    assert smsc.returncode == 0, err


def test_cert_or_key_without_tls_listen_is_refused(tmp_path: Path) -> None:
    # A subprocess with a timeout: once they were silently ignored and the SMSC served until stopped.
    done = subprocess.run(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
         "--cert", str(tmp_path / "c.pem")],
        cwd=ROOT, capture_output=True, text=True, timeout=20,
    )
    assert done.returncode == 2
    assert "carrier-sim smsc: error: --cert and --key need --tls-listen" in done.stderr
    assert "listening" not in done.stdout


def test_a_cert_or_key_that_does_not_load_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from carrier_sim.runner.carriers_command import self_signed_context

    _, cert = self_signed_context(tmp_path)
    key = cert.with_name("smsc.key")
    tls = ["smsc", "--listen", "127.0.0.1:0", "--account", "a:b", "--tls-listen", "127.0.0.1:0"]
    missing = tmp_path / "nope.pem"
    assert main([*tls, "--cert", str(missing), "--key", str(key)]) == 2
    assert f"--cert {missing}: no such file" in capsys.readouterr().err
    # Swapped: OpenSSL's own "[SSL] PEM lib" names neither file.
    assert main([*tls, "--cert", str(key), "--key", str(cert)]) == 2
    err = capsys.readouterr().err
    assert f"--cert {key} --key {cert}" in err


def test_an_ipv6_smpp_listen_address_is_printed_bracketed() -> None:
    # It printed "listening on ::1:PORT", which no HOST:PORT parser splits back into the address it bound.
    smsc = _smsc_with_control(None, listen="[::1]:0")
    try:
        assert smsc.stdout is not None
        found = re.fullmatch(r"listening on \[::1\]:(\d+)\n", smsc.stdout.readline())
        assert found is not None
        with socket.create_connection(("::1", int(found[1])), timeout=10) as raw:
            raw.sendall(bytes.fromhex("00000010000000150000000000000001"))  # enquire_link before a bind
            answer = raw.recv(16)
        assert answer[4:8] == b"\x80\x00\x00\x15"  # the SMSC answered...
        assert answer[12:16] == b"\x00\x00\x00\x01"  # ...this enquire_link
    finally:
        smsc.send_signal(signal.SIGINT)
        _, err = smsc.communicate(timeout=20)
    assert smsc.returncode == 0, err


class _Lines:
    """A child's output line by line, each waited for at most a while (a hang fails, not blocks).

    A thread reads, because select() on the pipe cannot see what the text stream has already buffered: the child's
    first two lines often arrive in one read, and a select after the first readline then waited for a second line
    that was already read."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)

    def next_within(self, seconds: float) -> str:
        """The next line, or "" if none comes within ``seconds``."""
        try:
            return self._lines.get(timeout=seconds)
        except queue.Empty:
            return ""


def test_an_outbind_target_that_never_answers_holds_back_neither_the_control_api_nor_the_stop(
        tmp_path: Path) -> None:
    # A target that drops SYNs (here a listener whose accept queue is full) kept the connect pending until the
    # kernel gave up (~2 min): the control API never came up and SIGTERM went unheard all that while.
    full = socket.socket()
    fillers: list[socket.socket] = []
    try:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(full.getsockname())
            fillers.append(filler)
        config = tmp_path / "outbind.toml"
        config.write_text(f'[[outbind]]\nhost = "127.0.0.1"\nport = {full.getsockname()[1]}\n'
                          'system_id = "a"\npassword = "b"\n', encoding="utf-8")
        smsc = subprocess.Popen(
            [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
             "--control", "127.0.0.1:0", "--config", str(config)],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            assert smsc.stdout is not None
            lines = _Lines(smsc.stdout)
            assert lines.next_within(20).startswith("listening on 127.0.0.1:")
            assert re.fullmatch(r"control on http://\S+:\d+\n", lines.next_within(20))
            smsc.send_signal(signal.SIGTERM)
            # The connect is still pending (the target never answers): the stop must not wait for it. 20 s is a
            # bound on a hang, not a speed: the connect alone would hold it ~2 minutes.
            smsc.wait(timeout=20)
            assert smsc.stderr is not None
            err = smsc.stderr.read()
            out = "".join(iter(lambda: lines.next_within(1), ""))  # the rest, read by the thread to its end
            assert smsc.returncode == 0, err
            assert "Traceback" not in err
            assert "outbind to" not in out  # it never connected
        finally:
            if smsc.poll() is None:
                smsc.kill()
                smsc.communicate()
    finally:
        for filler in fillers:
            filler.close()
        full.close()
