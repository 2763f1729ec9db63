"""The dashboard and the progress line against what a terminal and a shell do to a process: flow control (Ctrl-S),
the quit key (Ctrl-\\), job control (Ctrl-Z, fg, a job started with &), TERM=dumb, keys that cannot be read, and
outputs that refuse writes or are closed. Whatever the display meets, the run itself must go on."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import os
import pty
import signal
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from rich.console import Console

from carrier_sim.dashboard.live import (
    Controls,
    Dashboard,
    DashboardState,
    PlainProgress,
    choose_display,
    render,
)

CHILD = Path(__file__).with_name("tty_child.py")
ROOT = Path(__file__).resolve().parents[3]
DEADLINE = 20.0


@pytest.fixture
def pty_pair() -> Iterator[tuple[int, int]]:
    leader, follower = os.openpty()
    yield leader, follower
    os.close(leader)
    os.close(follower)


async def test_cbreak_turns_off_flow_control_and_the_quit_character(pty_pair: tuple[int, int]) -> None:
    # With IXON on, Ctrl-S stopped the terminal's output; the dashboard's next write blocked the event loop that
    # also runs the phones, and the run ended a harness error. With VQUIT on, Ctrl-\ killed the process (SIGQUIT)
    # in the alternate screen, terminal in cbreak mode, no report.
    _, follower = pty_pair
    before = termios.tcgetattr(follower)
    assert before[0] & termios.IXON  # a fresh pty has flow control on, as a person's terminal does
    dashboard = Dashboard(console=Console(file=io.StringIO(), force_terminal=True), input_fd=follower,
                          screen=False)
    await dashboard.start(DashboardState(), Controls())
    try:
        during = termios.tcgetattr(follower)
        assert not during[0] & termios.IXON
        assert during[6][termios.VQUIT] == bytes([os.fpathconf(follower, "PC_VDISABLE")])
        assert not during[3] & (termios.ICANON | termios.ECHO)
        assert during[3] & termios.ISIG  # Ctrl-C still interrupts, Ctrl-Z still suspends
    finally:
        await dashboard.stop()
    assert termios.tcgetattr(follower) == before


class _Refusing(io.StringIO):
    """An output whose reader went away."""

    def __init__(self, after: int = 0) -> None:
        super().__init__()
        self.writes_left = after

    def isatty(self) -> bool:
        return True  # so that rich draws live on it

    def write(self, text: str) -> int:
        if self.writes_left <= 0:
            raise BrokenPipeError(32, "Broken pipe")
        self.writes_left -= 1
        return super().write(text)


async def test_a_refused_write_ends_the_progress_line_not_the_run(caplog: pytest.LogCaptureFixture) -> None:
    # `carrier-sim run ... 2>&1 | head -1`: the second line met a broken pipe, the ticker died with it and stop()
    # raised it again, so the run wrote no report.
    stream = _Refusing(after=1)
    progress = PlainProgress(stream, interval=0.01)
    await progress.start(DashboardState(scenario="unit"), Controls())
    await asyncio.sleep(0.05)
    progress.refresh()
    progress.pulse()
    await progress.stop()  # no exception
    assert stream.getvalue().count("\n") == 1
    assert "the progress line stopped" in caplog.text


class _HungUp(_Refusing):
    """A terminal that went away: EIO."""

    def write(self, text: str) -> int:
        if self.writes_left <= 0:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return super().write(text)


@pytest.mark.parametrize("after", [0, 3])
@pytest.mark.parametrize("output", [_Refusing, _HungUp])
async def test_a_refused_write_ends_the_dashboard_not_the_run(
        after: int, output: type[_Refusing], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The dashboard's own console, as choose_display makes it: rich's would raise SystemExit at a broken pipe
    # (after pointing stdout's descriptor at /dev/null).
    stderr = sys.stderr
    monkeypatch.setattr(sys, "stdout", output(after=after))
    dashboard = Dashboard(refresh_interval=0.01, screen=True)
    await dashboard.start(DashboardState(scenario="unit"), Controls())
    await asyncio.sleep(0.05)
    dashboard.refresh()
    dashboard.pulse()
    await dashboard.stop()  # no exception
    await dashboard.stop()
    assert "the dashboard stopped showing" in caplog.text
    assert sys.stderr is stderr  # rich's redirection while live was undone


async def test_closed_stdout_and_stderr_choose_a_display_that_writes_nowhere(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # `>&-` and `2>&-`: Python sets sys.stdout / sys.stderr to None.
    monkeypatch.setattr(sys, "stdout", None)
    assert isinstance(choose_display(), PlainProgress)
    monkeypatch.setattr(sys, "stderr", None)
    display = choose_display()
    assert isinstance(display, PlainProgress)
    await display.start(DashboardState(), Controls())
    display.refresh()
    await display.stop()
    closed = io.StringIO()
    closed.close()
    assert isinstance(choose_display(stdout=closed), PlainProgress)


def test_term_dumb_gets_the_progress_line(pty_pair: tuple[int, int], monkeypatch: pytest.MonkeyPatch) -> None:
    # Emacs' shell buffers: stdout is a terminal, but rich draws nothing live on it; the run showed nothing at all.
    _, follower = pty_pair
    with open(os.dup(follower), "w", encoding="utf-8") as tty_out:
        monkeypatch.setenv("TERM", "xterm-256color")
        assert isinstance(choose_display(stdout=tty_out), Dashboard)
        monkeypatch.setenv("TERM", "dumb")
        assert isinstance(choose_display(stdout=tty_out), PlainProgress)


def _text(renderable: object, width: int) -> str:
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(renderable)
    return console.file.getvalue()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("width", [120, 70])
def test_the_keys_line_says_when_keys_are_unavailable(width: int) -> None:
    shown = _text(render(DashboardState(), Controls(), width, keys_unavailable="stdin is not a terminal"), width)
    assert "keys unavailable (stdin is not a terminal)" in shown
    assert "q quit" not in shown
    assert "q quit" in _text(render(DashboardState(), Controls(), width), width)


async def test_a_dashboard_without_a_terminal_to_read_says_keys_are_unavailable() -> None:
    assert not sys.stdin.isatty()  # pytest's own stdin is no terminal
    console = Console(file=io.StringIO(), force_terminal=True, width=120, height=40)
    dashboard = Dashboard(console=console, screen=False)
    await dashboard.start(DashboardState(), Controls())
    await dashboard.stop()
    assert "keys unavailable (stdin is not a terminal)" in console.file.getvalue()  # type: ignore[attr-defined]
    assert "q quit" not in console.file.getvalue()  # type: ignore[attr-defined]


# -- a process on a terminal of its own -------------------------------------------------------------------------


class _Child:
    """tty_child.py on a new pseudo-terminal, its controlling terminal; everything it writes is collected."""

    def __init__(self, mode: str) -> None:
        env = {key: value for key, value in os.environ.items() if key not in ("COLUMNS", "LINES", "TERM")}
        env.update(PYTHONPATH=str(ROOT), TERM="xterm-256color", COLUMNS="100", LINES="30", PYTHONUNBUFFERED="1")
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: a session of its own, the pty its controlling terminal
            try:
                os.execve(sys.executable, [sys.executable, str(CHILD), mode], env)
            finally:
                os._exit(127)
        self.output = bytearray()
        self.status: int | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.fd, 65536)
            except OSError:
                return
            if not data:
                return
            self.output += data

    def attrs(self) -> list[object]:
        return termios.tcgetattr(self.fd)  # a pty's leader reads its follower's modes

    def cbreak(self) -> bool:
        return not self.attrs()[3] & termios.ICANON  # type: ignore[operator]

    def wait_for(self, what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.02)
        pytest.fail(f"timed out waiting for {what}; output: {bytes(self.output[-2000:])!r}")

    def poll(self) -> int | None:
        """The wait status once the child stopped or exited, else None."""
        done, status = os.waitpid(self.pid, os.WUNTRACED | os.WNOHANG)
        return status if done else None

    def wait_status(self, what: str) -> int:
        found: list[int] = []

        def changed() -> bool:
            status = self.poll()
            if status is not None:
                found.append(status)
            return bool(found)

        self.wait_for(what, changed)
        return found[0]

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self._reader.join(timeout=5)
        os.close(self.fd)


@pytest.fixture
def child() -> Iterator[Callable[[str], _Child]]:
    children: list[_Child] = []

    def start(mode: str) -> _Child:
        children.append(_Child(mode))
        return children[-1]

    yield start
    for one in children:
        one.close()


ENTER_SCREEN, LEAVE_SCREEN, SHOW_CURSOR = b"\x1b[?1049h", b"\x1b[?1049l", b"\x1b[?25h"


def test_ctrl_z_gives_the_shell_its_terminal_and_fg_takes_it_back(child: Callable[[str], _Child]) -> None:
    # Ctrl-Z left the shell in the alternate screen with the cursor hidden and the terminal in cbreak mode; after
    # fg the keys waited for Enter. Also here: Ctrl-S and Ctrl-\ no longer freeze or kill the run.
    proc = child("foreground")
    proc.wait_for("the dashboard", lambda: ENTER_SCREEN in proc.output and proc.cbreak())
    os.write(proc.fd, b"\x1a")  # Ctrl-Z
    status = proc.wait_status("the stop")
    assert os.WIFSTOPPED(status), status
    suspended = bytes(proc.output)
    assert suspended.rfind(LEAVE_SCREEN) > suspended.rfind(ENTER_SCREEN)
    assert suspended.rfind(SHOW_CURSOR) > suspended.rfind(ENTER_SCREEN)
    modes = proc.attrs()
    assert modes[3] & termios.ICANON  # type: ignore[operator]
    assert modes[3] & termios.ECHO  # type: ignore[operator]
    assert modes[0] & termios.IXON  # type: ignore[operator]

    seen = len(proc.output)
    os.kill(proc.pid, signal.SIGCONT)  # as fg does (the child is still the terminal's foreground group)
    proc.wait_for("the dashboard again", lambda: ENTER_SCREEN in proc.output[seen:] and proc.cbreak())
    os.write(proc.fd, b"\x13")  # Ctrl-S: would have stopped the output, and with it the loop
    os.write(proc.fd, b"\x1c")  # Ctrl-\: would have killed the process
    time.sleep(0.5)
    assert proc.poll() is None
    os.write(proc.fd, b"q")  # one key, no Enter
    status = proc.wait_status("the end")
    assert os.WIFEXITED(status), (status, bytes(proc.output[-2000:]))
    assert os.WEXITSTATUS(status) == 0, bytes(proc.output[-2000:])
    assert not proc.cbreak()
    proc.wait_for("the last line", lambda: b"child done" in proc.output)


def test_a_job_in_the_background_is_not_stopped_by_the_terminal(child: Callable[[str], _Child]) -> None:
    # `carrier-sim run ... &`: changing the terminal's modes from the background stopped the run ("Stopped (tty
    # output)", SIGTTOU). The display chosen there is the progress line; a dashboard reads no keys.
    proc = child("background")
    status = proc.wait_status("the end")
    proc.wait_for("the report", lambda: b"background job" in proc.output)
    assert b"chosen PlainProgress" in proc.output, bytes(proc.output)
    assert b"background job exited 0" in proc.output, bytes(proc.output)
    assert os.WIFEXITED(status)
    assert os.WEXITSTATUS(status) == 0


async def test_fg_after_bg_brings_the_dashboard_back(pty_pair: tuple[int, int],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Ctrl-Z, bg, fg: bash sends SIGCONT at bg (the job is then in the background: the dashboard must wait) and
    # none at fg (the job is already running), so the dashboard stayed off for the rest of the run.
    import carrier_sim.dashboard.live as live

    _, follower = pty_pair
    before = termios.tcgetattr(follower)
    foreground = [True]
    stops: list[int] = []
    monkeypatch.setattr(live, "_in_foreground", lambda fd: foreground[0])
    monkeypatch.setattr(os, "kill", lambda pid, signum: stops.append(signum))  # as if continued by bg at once
    out = io.StringIO()
    dashboard = Dashboard(console=Console(file=out, force_terminal=True, width=100, height=30),
                          input_fd=follower, refresh_interval=0.01)
    await dashboard.start(DashboardState(scenario="unit"), Controls())
    try:
        foreground[0] = False  # bg
        dashboard._suspend()  # Ctrl-Z: stops the process (here: returns at once, continued in the background)
        assert stops == [signal.SIGSTOP]
        assert termios.tcgetattr(follower) == before
        drawn = len(out.getvalue())
        await asyncio.sleep(0.05)
        assert len(out.getvalue()) == drawn  # nothing drawn from the background
        foreground[0] = True  # fg: no SIGCONT
        await asyncio.sleep(0.05)
        assert out.getvalue().rfind("\x1b[?1049h") >= drawn  # the alternate screen again
        assert not termios.tcgetattr(follower)[3] & termios.ICANON
        assert not termios.tcgetattr(follower)[0] & termios.IXON
    finally:
        await dashboard.stop()
    assert termios.tcgetattr(follower) == before
