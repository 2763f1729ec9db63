"""``carrier-sim smsc``'s flag checks: refusals exit 2 with the reason before anything listens."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

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


@pytest.mark.parametrize("control", ["127.0.0.1:0", "localhost:0"])
def test_a_loopback_control_address_is_served(control: str) -> None:
    smsc = subprocess.Popen(
        [sys.executable, "-m", "carrier_sim.cli", "smsc", "--listen", "127.0.0.1:0", "--account", "a:b",
         "--control", control],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert smsc.stdout is not None
        assert smsc.stdout.readline().startswith("listening on 127.0.0.1:")
        assert re.fullmatch(r"control on http://\S+:\d+\n", smsc.stdout.readline())
    finally:
        smsc.send_signal(signal.SIGINT)
        _, err = smsc.communicate(timeout=20)
    assert smsc.returncode == 0, err
