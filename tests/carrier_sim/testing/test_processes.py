"""The /proc readings the process-lifecycle tests rely on: a zombie is not running, a child is a descendant."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from carrier_sim.testing.processes import descendants, running


def test_a_child_is_a_running_descendant_until_it_exits_even_unreaped() -> None:
    assert running(os.getpid())
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        assert child.pid in descendants(os.getpid())
        assert running(child.pid)
        assert child.stdin is not None
        child.stdin.close()  # it exits; not waited for yet, so it is a zombie
        deadline = time.monotonic() + 10
        while running(child.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert os.path.exists(f"/proc/{child.pid}"), "still a zombie: nobody has reaped it"
        assert not running(child.pid)
    finally:
        child.kill()
        child.wait()
    assert not running(child.pid)
    assert child.pid not in descendants(os.getpid())
