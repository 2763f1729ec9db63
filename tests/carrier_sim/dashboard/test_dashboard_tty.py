"""The dashboard in a real terminal (tmux): panels, keys, graceful stop, terminal restored; and the plain progress
line when stdout is not a terminal."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.interop.conftest import require_executable

DEMO = Path(__file__).with_name("dashboard_demo.py")
ROOT = Path(__file__).resolve().parents[3]
DEADLINE = 20.0  # seconds any one screen change may take, generous for a loaded CI machine


class Tmux:
    """A private tmux server (its own socket) running one command in a 120x40 pane."""

    def __init__(self, tmux: str, command: str) -> None:
        self.tmux = tmux
        # A socket in a directory of our own (short: socket paths are limited to ~100 bytes), so the test neither
        # meets a person's tmux server nor leaves socket files behind in tmux's shared directory.
        self._dir = tempfile.mkdtemp(prefix="cs-tmux-")
        self.socket = os.path.join(self._dir, "sock")
        self._run("new-session", "-d", "-x", "120", "-y", "40", command)

    def _run(self, *args: str) -> str:
        done = subprocess.run(
            [self.tmux, "-S", self.socket, "-u", *args], capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout

    def screen(self) -> str:
        """The pane's visible text."""
        return self._run("capture-pane", "-p", "-t", "0")

    def keys(self, keys: str) -> None:
        """Type ``keys`` literally."""
        self._run("send-keys", "-t", "0", "-l", keys)

    def wait_for(self, what: str, predicate: Callable[[str], bool]) -> str:
        """Poll the screen until ``predicate`` holds; fail with the last screen after the deadline."""
        deadline = time.monotonic() + DEADLINE
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}; last screen:\n{screen}")

    def close(self) -> None:
        """Stop the private server and everything in it."""
        subprocess.run([self.tmux, "-S", self.socket, "kill-server"], capture_output=True, timeout=10, check=False)
        shutil.rmtree(self._dir, ignore_errors=True)


def _command(*demo_args: str) -> str:
    # After the demo: the pane's terminal modes (to prove cbreak was undone), then linger so the pane can be read.
    # COLUMNS/LINES are dropped: the test runner may export its own (80x24), and rich would believe them over the
    # pane's real size.
    env = f"env -u COLUMNS -u LINES PYTHONPATH={ROOT} LANG=C.UTF-8 LC_ALL=C.UTF-8 PYTHONUNBUFFERED=1"
    demo = f"{env} {sys.executable} {DEMO} --seconds 60 {' '.join(demo_args)}"
    return f"{demo}; stty -a | tr ' ;' '\\n\\n' | grep -x -e '-*icanon' -e '-*echo' ; sleep 60"


@pytest.fixture
def tmux() -> Iterator[Callable[..., Tmux]]:
    path = require_executable("tmux")
    sessions: list[Tmux] = []

    def start(*demo_args: str) -> Tmux:
        session = Tmux(path, _command(*demo_args))
        sessions.append(session)
        return session

    yield start
    for session in sessions:
        session.close()


def _restored(screen: str) -> bool:
    lines = {line.strip() for line in screen.splitlines()}
    return {"icanon", "echo"} <= lines


def test_dashboard_panels_keys_and_graceful_stop(tmux: Callable[..., Tmux]) -> None:
    term = tmux()
    # Waited for rather than asserted once: the first frame may come before the demo's first tick fills it in.
    overview = ("carrier-sim dashboard-demo", "1 overview", "Funnel", "REG-RESP received", "Latency",
                "p99.9", "activation", "Carriers", "acme", "Recent errors and events", "ESME_RTHROTTLED", "1 fail",
                "multiplier x1.0", "running")
    screen = term.wait_for("the overview", lambda s: all(part in s for part in overview))
    assert "threshold" not in screen  # the checks table belongs to view 3 only

    term.keys("3")
    checks = ("3 checks", "threshold", "nearly all activations succeed", "authenticate.latency.p50", "inconc")
    screen = term.wait_for("the checks view", lambda s: all(part in s for part in checks))
    assert "Funnel" not in screen

    term.keys("p")
    term.wait_for("the paused banner", lambda s: "PAUSED" in s)
    term.keys("+")
    # The key shows at once; the demo (like the runner) applies it to the target at its next tick: 50/s x 1.1.
    term.wait_for("the raised rate", lambda s: "multiplier x1.1" in s and "/55.0 per s" in s)

    term.keys("2")
    screen = term.wait_for("the carriers view", lambda s: "2 carriers" in s and "throttles" in s)
    assert "receipts" in screen
    term.keys("4")
    term.wait_for("the errors view", lambda s: "4 errors" in s and "ESME_RTHROTTLED" in s)
    term.keys("3")
    term.wait_for("the checks view again", lambda s: "3 checks" in s)

    term.keys("q")
    screen = term.wait_for("the final line", lambda s: "stopped rate=1.1 paused=True view=3" in s)
    screen = term.wait_for("the terminal modes", _restored)
    assert "-icanon" not in screen
    assert "-echo" not in screen


def test_terminal_restored_when_the_run_raises(tmux: Callable[..., Tmux]) -> None:
    term = tmux("--crash-after", "1.0")
    screen = term.wait_for("the crash", lambda s: "demo crash on purpose" in s and _restored(s))
    assert "stopped rate=1.0 paused=False view=1" in screen
    assert "-icanon" not in screen


def test_plain_progress_without_a_terminal() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(DEMO), "--seconds", "1.3", "--interval", "0.3"],
        capture_output=True, text=True, timeout=60, env=env, stdin=subprocess.DEVNULL, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "stopped rate=1.0 paused=False view=1"
    lines = done.stderr.splitlines()
    pattern = re.compile(
        r"^\[\s*[0-9.]+s\] dashboard-demo phase=\S+ rate=[0-9.]+/[0-9.]+/s arrived=\d+ done=\d+ failed=\d+ "
        r"activation\.p99=\S+ checks=pass:\d+,fail:\d+,inconc:\d+,error:\d+ errors=\d+$"
    )
    assert len(lines) >= 4, done.stderr  # ticks at 0, 0.3, 0.6, 0.9 s and the final line
    assert all(pattern.match(line) for line in lines), lines
    assert "\x1b" not in done.stderr + done.stdout  # no colours or cursor movement in a log
    # The run progressed between the first and the last line.
    arrived = [int(re.search(r"arrived=(\d+)", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert arrived[-1] > arrived[0]
