"""The live terminal dashboard of a run, and the plain progress line that replaces it without a terminal.

Theory of operation
-------------------
The runner owns two small objects and the display only reads or flips them:

- :class:`DashboardState` — what is shown. The runner writes it (phase, rates, carriers, funnel, latencies, live
  check verdicts, recent errors) whenever it likes; the display renders whatever is there at its next tick.
- :class:`Controls` — what the person asked for. The display sets flags on key presses (``q`` stop, ``p`` pause,
  ``+``/``-`` rate multiplier, ``1``-``4`` view); the runner reads them between arrivals. ``q`` only *requests* a
  stop: the runner finishes the run its own way, so reports are still written.

Both live on the event loop's thread. :class:`Dashboard` therefore refreshes from an asyncio task on that loop and
reads keys through ``loop.add_reader`` on stdin, never from a thread of its own: nothing renders a dict while the
runner is resizing it. The terminal goes to cbreak mode (keys arrive one by one, unechoed, while Ctrl-C still
interrupts; Ctrl-S no longer stops the output, whose blocked write would stall the loop that runs the phones, and
Ctrl-\\ no longer quits) and is put back by :meth:`Dashboard.stop` — always, on every exit path; use :func:`running`
(an async context manager) to make sure ``stop`` happens even when the run raises. Ctrl-Z gives the shell its
screen and terminal modes back before the process stops; ``fg`` takes them again. A job in the background of its
terminal neither changes its modes nor reads it (either would stop it: SIGTTOU, SIGTTIN).

The display is for people, never the run's evidence: an output that refuses a write (a pipe whose reader left, a
terminal that hung up, a closed stream) ends the display, with a warning logged, and never raises into the run.

Without a terminal (stdout not a TTY, CI logs, ``--no-dashboard``, ``TERM=dumb``, a background job)
:class:`PlainProgress` writes one line at a fixed interval instead; :func:`choose_display` picks one of the two.

A display is *driven* when the run's loop keeps virtual time: a timer of its own, every 0.25 or 5 seconds of the
plan, would wake that loop over and over (it skips its idle ticks only while nothing else stirs), and a day of
plan passing in seconds would print a line per 5 plan seconds. A driven display keeps no timer; the runner calls
:meth:`Display.pulse` whenever the state changed, and the display redraws once its interval has passed in real
time: the pace of the person reading it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import io
import logging
import math
import os
import re
import signal
import sys
import termios
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from carrier_sim.dashboard.rates import RATE_WINDOW
from carrier_sim.metrics.checks import CheckVerdict, MetricSource, evaluate, format_value
from carrier_sim.metrics.registry import PERCENTILES, RunMetrics
from carrier_sim.scenario.model import Check

_log = logging.getLogger(__name__)

#: What a display that can no longer write met: a closed stream (ValueError) or a terminal, pipe or file gone
#: (OSError: EPIPE, EIO, EBADF...). The display stops showing; the run and its reports carry on.
_WRITE_ERRORS: Final = (OSError, ValueError)

__all__ = [
    "FUNNEL_STEPS",
    "MAX_RATE_MULTIPLIER",
    "MIN_RATE_MULTIPLIER",
    "RATE_STEP",
    "RATE_WINDOW",
    "VIEWS",
    "CarrierStatus",
    "Controls",
    "Dashboard",
    "DashboardState",
    "Display",
    "PlainProgress",
    "choose_display",
    "keys_pressed",
    "progress_line",
    "render",
    "running",
]

#: The activation funnel's steps, in order, with the label shown for each.
FUNNEL_STEPS: Final[Mapping[str, str]] = {
    "arrived": "arrived",
    "reg_req_sent": "REG-REQ sent",
    "reg_resp_received": "REG-RESP received",
    "authenticated": "authenticated",
    "authenticate_sent": "authenticate sent",
    "done": "done",
    "failed": "failed",
}

#: View number -> name, as the number keys select them.
VIEWS: Final[Mapping[int, str]] = {1: "overview", 2: "carriers", 3: "checks", 4: "errors"}

#: Each ``+``/``-`` moves the arrival-rate multiplier by this much, within the bounds below (a zero rate would be
#: a pause in disguise; ``p`` is the pause).
RATE_STEP: Final = 0.1
MIN_RATE_MULTIPLIER: Final = 0.1
MAX_RATE_MULTIPLIER: Final = 10.0

_VERDICT_STYLE: Final[Mapping[str, str]] = {
    "pass": "bold green",
    "fail": "bold red",
    "error": "bold magenta",
    "inconc": "yellow",
}


@dataclass(slots=True)
class Controls:
    """What the person at the keyboard asked for; the runner reads these fields."""

    stop_requested: bool = False
    paused: bool = False
    rate_multiplier: float = 1.0
    view: int = 1

    def press(self, key: str) -> bool:
        """Apply one key; True when it meant something (so the screen should refresh at once)."""
        action = _KEYS.get(key)
        if action is None:
            return False
        action(self)
        return True

    def request_stop(self) -> None:
        """Ask the runner to stop gracefully (it still writes its reports)."""
        self.stop_requested = True

    def toggle_pause(self) -> None:
        """Pause or resume arrivals (phones already in a flow carry on)."""
        self.paused = not self.paused

    def change_rate(self, steps: int) -> None:
        """Move the rate multiplier by ``steps`` × :data:`RATE_STEP`, within its bounds."""
        # Rounded so that ten presses of + from 1.0 show 2.0, not 1.9999999999999998.
        value = round(self.rate_multiplier + steps * RATE_STEP, 2)
        self.rate_multiplier = min(MAX_RATE_MULTIPLIER, max(MIN_RATE_MULTIPLIER, value))

    def show(self, view: int) -> None:
        """Switch to view ``view`` (see :data:`VIEWS`)."""
        if view in VIEWS:
            self.view = view


def _show(view: int) -> Callable[[Controls], None]:
    return lambda controls: controls.show(view)


#: Key -> what it does. ``=`` and ``_`` are ``+`` and ``-`` without shift.
#: A terminal's escape sequence (ECMA-48): a CSI (ESC [ parameters intermediates final), an SS3 (ESC O and one
#: character: F1-F4 on many terminals) or ESC and one character (Alt+key); a lone ESC too.
_ESCAPE_SEQUENCE: Final = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|O.|.)?", re.DOTALL)


def keys_pressed(data: bytes) -> str:
    """The plain keys in what the terminal sent, without its escape sequences: F2 arrives as ``ESC O Q`` and Delete
    as ``ESC [ 3 ~``, whose characters would otherwise read as the keys ``Q`` (stop) and ``3`` (a view)."""
    return _ESCAPE_SEQUENCE.sub("", data.decode("utf-8", errors="ignore"))


_KEYS: Final[Mapping[str, Callable[[Controls], None]]] = {
    "q": Controls.request_stop,
    "Q": Controls.request_stop,
    "p": Controls.toggle_pause,
    "P": Controls.toggle_pause,
    "+": lambda c: c.change_rate(+1),
    "=": lambda c: c.change_rate(+1),
    "-": lambda c: c.change_rate(-1),
    "_": lambda c: c.change_rate(-1),
    **{str(view): _show(view) for view in VIEWS},
}


@dataclass(slots=True)
class CarrierStatus:
    """One carrier as the dashboard shows it. ``throughput``: msg/s over the last :data:`RATE_WINDOW` seconds
    (the writer measures it with a :class:`~carrier_sim.dashboard.rates.RateWindow`, not over one snapshot)."""

    binds: int = 0
    throughput: float = 0.0
    window_used: int = 0
    window_size: int = 0
    throttles: int = 0
    receipts: int = 0


@dataclass(slots=True)
class DashboardState:
    """Everything the dashboard shows; the runner writes it, the display reads it.

    Rates a person reads (``achieved_rate``, each carrier's ``throughput``) are written over a sliding window of
    :data:`RATE_WINDOW` seconds, not one snapshot (:class:`~carrier_sim.dashboard.rates.RateWindow`). Errors are
    counted as occurrences in :attr:`error_count`, whatever the number of lines they take in :attr:`errors`.
    """

    scenario: str = ""
    phase: str = ""
    elapsed: float = 0.0
    #: Arrivals per second the plan asks for now; None when no rate is planned (a closed model keeps a number of
    #: phones busy instead), shown as "-" rather than as a target of 0.
    target_rate: float | None = 0.0
    achieved_rate: float = 0.0
    carriers: dict[str, CarrierStatus] = field(default_factory=dict)
    funnel: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FUNNEL_STEPS, 0))
    #: histogram name -> {"p50", "p90", "p99", "p99.9"} in seconds (None without samples).
    latency: dict[str, dict[str, float | None]] = field(default_factory=dict)
    checks: list[CheckVerdict] = field(default_factory=list)
    #: (elapsed seconds, message), newest last; bounded so a storm of errors cannot grow memory.
    errors: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200))
    #: Errors since the start, each occurrence once: a line standing for 37 phones' failures counts 37, an event
    #: none, and none fall off with the lines past the bound of :attr:`errors`.
    error_count: int = 0

    def add_error(self, message: str, count: int = 1) -> None:
        """Remember an error line standing for ``count`` errors, stamped with the run's elapsed time (the oldest
        line falls off past the bound; the count stays)."""
        self.errors.append((self.elapsed, message))
        self.error_count += count

    def add_event(self, message: str) -> None:
        """Remember a line of what happened that is no error (a scenario event), shown among the errors."""
        self.errors.append((self.elapsed, message))

    def observe(self, metrics: RunMetrics | MetricSource, checks: Sequence[Check] = ()) -> None:
        """Refresh latencies (from a :class:`RunMetrics`) and live check verdicts from the running metrics."""
        if isinstance(metrics, RunMetrics):
            self.latency = {
                name: {label: hist.quantile(q) for label, q in PERCENTILES.items()}
                for name, hist in sorted(metrics.histograms.items())
            }
        self.checks = evaluate(checks, metrics)


class Display(Protocol):
    """What the runner drives: the dashboard or the plain progress line."""

    async def start(self, state: DashboardState, controls: Controls) -> None:
        """Begin showing ``state``."""
        ...

    def refresh(self) -> None:
        """Show the state now, not at the next tick."""
        ...

    def pulse(self) -> None:
        """The state changed: a driven display redraws if its interval has passed in real time (module docstring);
        one with a timer of its own does nothing here."""
        ...

    async def stop(self) -> None:
        """Stop showing (idempotent); leaves the terminal as it was."""
        ...


# -- rendering -----------------------------------------------------------------------------------------------


def _duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "-"
    # Rounded to the tenth shown before it is split into minutes: split first, 59.96 s became "60.0s" and
    # 3599.96 s "59m60.0s", the rounding carried into a unit the split had already passed. round(x, 1) rounds the
    # decimal value as a format does, so 0.05 s is "0.1s" and not banker's "0.0s".
    minutes, tenths = divmod(round(round(max(0.0, seconds), 1) * 10), 600)
    return f"{minutes}m{tenths // 10:02d}.{tenths % 10}s" if minutes else f"{tenths // 10}.{tenths % 10}s"


def _seconds(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    # The unit is chosen on the rounded figure: 0.99996 s is "1.000 s", not "1000.0 ms".
    millis = f"{value * 1000:.1f}"
    return f"{millis} ms" if float(millis) < 1000.0 else f"{value:.3f} s"


def _header(state: DashboardState, controls: Controls) -> RenderableType:
    status = Text(" PAUSED ", style="bold black on yellow") if controls.paused else Text(" running ", style="green")
    if controls.stop_requested:
        status = Text(" stopping ", style="bold white on red")
    line = Text.assemble(
        ("carrier-sim ", "bold"),
        (state.scenario, "bold cyan"),
        f"  phase {state.phase or '-'}  elapsed {_duration(state.elapsed)}  ",
        f"rate {state.achieved_rate:.1f}/{_target(state.target_rate)} per s  ",
        (f"multiplier x{controls.rate_multiplier:.1f}", "bold"),
        "  ",
        status,
    )
    return Panel(line, padding=(0, 1))


def _footer(controls: Controls, *, narrow: bool = False, keys_unavailable: str | None = None) -> RenderableType:
    if keys_unavailable is not None:  # advertising keys that do nothing would only puzzle
        return Text(f"keys unavailable ({keys_unavailable})", style="dim")
    if narrow:  # one short line, so that it neither wraps nor is cropped
        return Text.assemble(("keys: ", "dim"), f"1-{len(VIEWS)} view ({VIEWS.get(controls.view, '?')})",
                             "  p pause  +/- rate  q quit")
    parts: list[str | tuple[str, str]] = []
    for number, name in VIEWS.items():
        style = "bold reverse" if number == controls.view else "dim"
        parts += [(f" {number} {name} ", style), " "]
    parts.append("  p pause/resume  +/- rate  q quit")
    return Text.assemble(*parts)


def _funnel_table(state: DashboardState) -> Table:
    table = Table(title="Funnel", expand=True)
    table.add_column("step")
    table.add_column("phones", justify="right", no_wrap=True)
    table.add_column("of arrived", justify="right", no_wrap=True)
    first = next(iter(state.funnel.values()), 0)
    for step, count in state.funnel.items():
        share = f"{100.0 * count / first:.1f} %" if first else "-"
        table.add_row(FUNNEL_STEPS.get(step, step), str(count), share, style="red" if step == "failed" else "")
    return table


def _latency_table(state: DashboardState) -> Table:
    table = Table(title="Latency", expand=True)
    table.add_column("histogram", no_wrap=True)
    for label in PERCENTILES:
        table.add_column(label, justify="right", no_wrap=True)
    for name, values in state.latency.items():
        table.add_row(name, *(_seconds(values.get(label)) for label in PERCENTILES))
    return table


def _carriers_table(state: DashboardState, *, full: bool) -> Table:
    table = Table(title="Carriers", expand=True)
    table.add_column("carrier")
    table.add_column("binds", justify="right", no_wrap=True)
    table.add_column("msg/s", justify="right", no_wrap=True)
    if full:
        table.add_column("window", justify="right", no_wrap=True)
        table.add_column("throttles", justify="right", no_wrap=True)
        table.add_column("receipts", justify="right", no_wrap=True)
    for name, c in state.carriers.items():
        row = [name, str(c.binds), f"{c.throughput:.1f}"]
        if full:
            window = f"{c.window_used}/{c.window_size}" if c.window_size else str(c.window_used)
            row += [window, str(c.throttles), str(c.receipts)]
        table.add_row(*row)
    return table


def _checks_table(state: DashboardState) -> Table:
    table = Table(title="Checks", expand=True)
    table.add_column("check")
    table.add_column("metric")
    table.add_column("threshold", justify="right")
    table.add_column("observed", justify="right")
    table.add_column("verdict")
    for check in state.checks:
        # As the reason says them (format_value): ":g" showed a count of 1234566 against 1234567 as
        # "1.23457e+06" twice, on a row that said fail.
        observed = "-" if check.observed is None else format_value(check.observed, check.unit)
        table.add_row(
            check.name,
            check.metric,
            f"{check.op} {format_value(check.threshold, check.unit)}",
            observed,
            Text(check.verdict, style=_VERDICT_STYLE.get(check.verdict, "")),
        )
    return table


def _check_summary(state: DashboardState) -> RenderableType:
    counts = dict.fromkeys(_VERDICT_STYLE, 0)
    for check in state.checks:
        counts[check.verdict] = counts.get(check.verdict, 0) + 1
    parts: list[str | tuple[str, str]] = ["checks: "]
    for name, style in _VERDICT_STYLE.items():
        parts += [(f"{counts[name]} {name}", style), "  "]
    failing = [c for c in state.checks if c.verdict in ("fail", "error")]
    lines: list[RenderableType] = [Text.assemble(*parts)]
    lines += [Text(f"  {c.name}: {c.reason}", style=_VERDICT_STYLE[c.verdict]) for c in failing[:5]]
    return Group(*lines)


def _errors_panel(state: DashboardState, limit: int) -> RenderableType:
    recent = list(state.errors)[-limit:]
    if not recent:
        return Panel(Text("no errors or events", style="dim"), title="Recent errors and events")
    body = Text("\n").join(Text.assemble((f"[{_duration(at)}] ", "dim"), message) for at, message in recent)
    # The same count as the progress line's errors=, so a person and a CI log read one figure.
    errors = f"{state.error_count} error{'' if state.error_count == 1 else 's'}"
    return Panel(body, title=f"Recent errors and events ({errors}; last {len(state.errors)} lines kept)")


#: Below this many columns the overview stacks its tables instead of setting them side by side.
NARROW: Final = 100
#: Columns the funnel table needs beside the latency table ("REG-RESP received", a count, a share).
_FUNNEL_MIN: Final = 44
#: Columns the overview's frame takes from the terminal's width: the panel's borders and padding, the grid's gap.
_FRAME: Final = 6


def _natural_width(table: Table, width: int) -> int:
    """Columns ``table`` takes with no cell wrapped or cut, as rich itself measures it."""
    console = Console(width=width, file=io.StringIO(), color_system=None)
    return Measurement.get(console, console.options, table).maximum


def _overview(state: DashboardState, width: int | None, narrow: bool) -> RenderableType:
    latency = _latency_table(state)
    # Two equal halves cut the latency figures short ("491.6 …") from 100 to 130 columns: the table's own measure
    # says what it needs, whatever its histograms' names and figures.
    total = width if width is not None else 2 * NARROW
    needed = _natural_width(latency, total)
    if narrow or total - _FRAME - needed < _FUNNEL_MIN:
        return Group(_funnel_table(state), latency, _carriers_table(state, full=False), _check_summary(state),
                     _errors_panel(state, limit=3))
    grid = Table.grid(expand=True, padding=(0, 1))
    grid.add_column(ratio=1)
    grid.add_column(width=needed)
    grid.add_row(_funnel_table(state), latency)
    grid.add_row(_carriers_table(state, full=False), _check_summary(state))
    return Group(grid, _errors_panel(state, limit=3))


def render(state: DashboardState, controls: Controls, width: int | None = None, *,
           keys_unavailable: str | None = None) -> RenderableType:
    """The whole screen for the current view (pure: the tests render it to text). On a terminal narrower than
    :data:`NARROW` columns the overview stacks its tables and the keys line goes under the header, where a short
    window does not crop it. The latency table is set beside the funnel only when its figures fit whole: it gets
    the columns it measures, the funnel the rest, and it is stacked under the funnel when the rest is too little.
    ``keys_unavailable``: why no key is read (the keys line says so instead of listing them)."""
    narrow = width is not None and width < NARROW
    view = VIEWS.get(controls.view, "overview")
    body: RenderableType
    if view == "carriers":
        body = _carriers_table(state, full=True)
    elif view == "checks":
        body = _checks_table(state)
    elif view == "errors":
        body = _errors_panel(state, limit=30)
    else:
        body = _overview(state, width, narrow)
    panel = Panel(body, title=f"{controls.view} {view}")
    if narrow:
        return Group(_header(state, controls), _footer(controls, narrow=True, keys_unavailable=keys_unavailable),
                     panel)
    return Group(_header(state, controls), panel, _footer(controls, keys_unavailable=keys_unavailable))


# -- the live dashboard --------------------------------------------------------------------------------------


def _stdin_tty_fd() -> int | None:
    """stdin's descriptor when it is a terminal to read keys from (not when closed, piped or detached)."""
    try:
        return sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    except (ValueError, OSError):
        return None


def _in_foreground(fd: int) -> bool:
    """False when ``fd`` is this process's controlling terminal and another process group has it (a job started
    with ``&`` or resumed with ``bg``): there, changing its modes stops the process (SIGTTOU, "Stopped (tty
    output)") and reading it too (SIGTTIN). A terminal that is not the controlling one raises no such signal."""
    try:
        return os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return True


def _cbreak_mode(saved: list[Any], fd: int) -> list[Any]:
    """``saved`` in cbreak mode: keys arrive one by one, unechoed, while Ctrl-C still interrupts and Ctrl-Z still
    suspends (handled: :meth:`Dashboard._suspend`). Besides :func:`tty.setcbreak`'s changes, XON/XOFF flow control
    is off (Ctrl-S would block the dashboard's next write, and with it the event loop that runs the phones) and
    the quit character is disabled (Ctrl-\\ would kill the process with SIGQUIT in the alternate screen, the
    terminal left in cbreak mode and no report written)."""
    iflag, oflag, cflag, lflag, ispeed, ospeed, saved_cc = saved
    cc = list(saved_cc)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    try:
        disabled = os.fpathconf(fd, "PC_VDISABLE")
    except (OSError, ValueError):
        disabled = 0  # _POSIX_VDISABLE on Linux
    cc[termios.VQUIT] = bytes([disabled & 0xFF])
    return [iflag & ~termios.IXON, oflag, cflag, lflag & ~(termios.ECHO | termios.ICANON), ispeed, ospeed, cc]


class _DisplayConsole(Console):
    """rich's console, but a broken pipe is a failed write the dashboard handles: rich's own ``on_broken_pipe``
    points stdout's descriptor at /dev/null and raises SystemExit(1), which would end the run before its
    reports."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more is written, so stopping the live display writes nothing either
        raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


#: Why no key is read, as the keys line says it.
_NO_KEYS_STDIN: Final = "stdin is not a terminal"
_NO_KEYS_BACKGROUND: Final = "running in the background"


class Dashboard:
    """The rich Live dashboard with keyboard controls (see the module docstring).

    Ctrl-Z is handled where the loop allows signal handlers (the main thread, SIGTSTP not ignored): the dashboard
    leaves the alternate screen, puts the terminal back and then stops the process; when it is continued in the
    foreground it takes the terminal again. A write the terminal (or whatever stdout became) refuses ends the
    display, not the run."""

    def __init__(
        self,
        *,
        console: Console | None = None,
        refresh_interval: float = 0.25,
        screen: bool = True,
        input_fd: int | None = None,
        driven: bool = False,
    ) -> None:
        self._console = console or _DisplayConsole()
        self._interval = refresh_interval
        self._driven = driven
        self._drawn_at = 0.0
        # The alternate screen: a dashboard taller than the terminal cannot scroll the person's shell history away.
        self._screen = screen
        self._input_fd = input_fd
        self._state = DashboardState()
        self._controls = Controls()
        self._live: Live | None = None
        self._running = False
        self._broken = False
        self._suspended = False
        self._ticker: asyncio.Task[None] | None = None
        self._saved_tty: list[Any] | None = None
        self._reading = False
        self._no_keys: str | None = None
        self._signals: list[int] = []

    async def start(self, state: DashboardState, controls: Controls) -> None:
        """Show ``state`` and read keys into ``controls`` until :meth:`stop`."""
        if self._running:
            raise RuntimeError("the dashboard is already running")
        self._running = True
        self._state, self._controls = state, controls
        fd = self._input_fd if self._input_fd is not None else _stdin_tty_fd()
        try:
            if fd is None or not os.isatty(fd):
                self._no_keys = _NO_KEYS_STDIN
            elif not _in_foreground(fd):
                self._no_keys = _NO_KEYS_BACKGROUND
            else:
                self._input_fd = fd
                self._saved_tty = termios.tcgetattr(fd)
                self._take_terminal()
            self._handle_job_control()
            self._open_live()
            if not self._driven:
                self._ticker = asyncio.create_task(self._tick(), name="dashboard-refresh")
        except BaseException:
            # Whatever failed half way, the terminal must not be left in cbreak mode.
            await self.stop()
            raise

    def refresh(self) -> None:
        """Redraw now (nothing, once the output refused a write)."""
        if self._suspended:
            # Continued with bg after Ctrl-Z, and maybe brought back with fg since: bash sends no SIGCONT to a
            # job that is already running, so the next frame is where the dashboard learns it has the terminal.
            self._resume()
        if self._live is not None:
            try:
                self._live.refresh()
            except _WRITE_ERRORS as error:
                self._give_up(error)
            self._drawn_at = time.monotonic()

    def pulse(self) -> None:
        """Redraw if driven and ``refresh_interval`` real seconds have passed since the last frame."""
        if self._driven and time.monotonic() - self._drawn_at >= self._interval:
            self.refresh()

    async def stop(self) -> None:
        """Stop refreshing and reading keys, leave the alternate screen, restore the terminal. Idempotent. Never
        raises for the display's own failures (they are logged): the run's reports come after it."""
        self._running = False
        ticker, self._ticker = self._ticker, None
        try:
            if ticker is not None:
                await _cancelled(ticker, "the dashboard's refresh")
        finally:
            try:
                self._close_live()
            finally:
                self._forget_job_control()
                self._restore_terminal()

    # The live display and the terminal, each taken and given back on its own: stop() gives back both, Ctrl-Z
    # gives back both and takes them again on the way back.

    def _open_live(self) -> None:
        if self._broken:
            return
        self._live = Live(
            console=self._console,
            screen=self._screen,
            auto_refresh=False,
            get_renderable=lambda: render(self._state, self._controls, self._console.width,
                                          keys_unavailable=self._no_keys),
        )
        try:
            self._live.start(refresh=True)
        except _WRITE_ERRORS as error:
            self._give_up(error)
        self._drawn_at = time.monotonic()

    def _close_live(self) -> None:
        live = self._live
        if live is not None:
            try:
                live.stop()
            except Exception as error:  # a write refused, or rich left half started by one: logged, not raised
                self._give_up(error)
            self._live = None

    def _give_up(self, error: BaseException) -> None:
        """The output refused a write: show nothing more (the run goes on and writes its reports)."""
        if not self._broken:
            _log.warning("the dashboard stopped showing: its output failed (%s)", error)
        self._broken = True
        live, self._live = self._live, None
        if live is not None:
            # Stopped with the console quiet, so that it writes nothing: that gives stdout and stderr back (rich
            # redirects them while it is live) without another failed write.
            self._console.quiet = True
            with contextlib.suppress(Exception):
                live.stop()

    def _take_terminal(self) -> None:
        fd, saved = self._input_fd, self._saved_tty
        if fd is None or saved is None:
            return
        termios.tcsetattr(fd, termios.TCSAFLUSH, _cbreak_mode(saved, fd))
        if not self._reading:
            asyncio.get_running_loop().add_reader(fd, self._on_input)
            self._reading = True

    def _give_back_terminal(self) -> None:
        fd = self._input_fd
        if fd is None:
            return
        if self._reading:
            self._reading = False
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(fd)
        if self._saved_tty is not None:
            # A terminal that hung up meanwhile has nothing left to restore.
            with contextlib.suppress(termios.error):
                termios.tcsetattr(fd, termios.TCSADRAIN, self._saved_tty)

    def _restore_terminal(self) -> None:
        self._give_back_terminal()
        self._saved_tty = None

    # Job control: Ctrl-Z and fg.

    def _handle_job_control(self) -> None:
        loop = asyncio.get_running_loop()
        for signum, handler in ((signal.SIGTSTP, self._suspend), (signal.SIGCONT, self._resume)):
            # Only over the default action: a SIGTSTP someone ignores on purpose (a shell without job control)
            # stays ignored, and a handler of someone else's is not replaced.
            if signal.getsignal(signum) is not signal.SIG_DFL:
                continue
            try:
                loop.add_signal_handler(signum, handler)
            except (ValueError, RuntimeError, NotImplementedError):
                continue  # not the main thread, or a loop without signal handlers: Ctrl-Z keeps its default
            self._signals.append(signum)

    def _forget_job_control(self) -> None:
        loop = asyncio.get_running_loop()
        while self._signals:
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(self._signals.pop())
        self._suspended = False

    def _suspend(self) -> None:
        """Ctrl-Z: the shell gets its screen, cursor and line editing back before the process stops."""
        if not self._running or self._suspended:
            return
        self._suspended = True
        self._close_live()
        self._give_back_terminal()
        os.kill(os.getpid(), signal.SIGSTOP)
        # Continued: fg (take the terminal again now) or bg (wait for the SIGCONT of a later fg).
        self._resume()

    def _resume(self) -> None:
        if not self._running or not self._suspended:
            return
        fd = self._input_fd if self._saved_tty is not None else _stdout_fd(self._console)
        if fd is not None and not _in_foreground(fd):
            return
        self._suspended = False
        try:
            self._take_terminal()
        except termios.error as error:
            _log.warning("the dashboard could not take the terminal again: %s", error)
        self._open_live()

    async def _tick(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(self._interval)

    def _on_input(self) -> None:
        fd = self._input_fd
        assert fd is not None
        try:
            data = os.read(fd, 1024)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""  # the terminal hung up (EIO): as at end of input
        if not data:
            # stdin closed: stop watching it, or the loop would call us forever.
            asyncio.get_running_loop().remove_reader(fd)
            self._reading = False
            return
        changed = False
        for key in keys_pressed(data):
            changed = self._controls.press(key) or changed
        if changed:
            self.refresh()


def _stdout_fd(console: Console) -> int | None:
    """The descriptor ``console`` writes to, when it has one."""
    try:
        return console.file.fileno()
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return None


# -- without a terminal --------------------------------------------------------------------------------------


def progress_line(state: DashboardState, controls: Controls) -> str:
    """One line of plain progress: phase, rates, funnel ends, activation p99, check tallies, and ``errors=``, the
    errors since the start (occurrences, as :attr:`DashboardState.error_count`: not the lines kept for display)."""
    p99 = state.latency.get("activation", {}).get("p99")
    tally = {v: sum(1 for c in state.checks if c.verdict == v) for v in ("pass", "fail", "inconc", "error")}
    funnel = state.funnel
    first = next(iter(funnel.values()), 0)
    parts = [
        f"[{_duration(state.elapsed):>9}]",
        state.scenario,
        f"phase={state.phase or '-'}",
        f"rate={state.achieved_rate:.1f}/{_target(state.target_rate)}/s",
        f"arrived={first}",
        f"done={funnel.get('done', 0)}",
        f"failed={funnel.get('failed', 0)}",
        f"activation.p99={_seconds(p99).replace(' ', '')}",
        "checks=" + ",".join(f"{verdict}:{n}" for verdict, n in tally.items()),
        f"errors={state.error_count}",
    ]
    if controls.paused:
        parts.append("PAUSED")
    if controls.stop_requested:
        parts.append("stopping")
    return " ".join(parts)


class PlainProgress:
    """A progress line every ``interval`` seconds, for logs and pipes (no colours, no cursor movement).

    It writes nothing when there is nowhere to write (stderr closed: ``sys.stderr`` is None) and stops writing at
    the first write refused (a pipe whose reader left, a closed stream): the run goes on and writes its reports."""

    def __init__(self, stream: TextIO | None = None, interval: float = 5.0, *, driven: bool = False) -> None:
        # stderr by default: stdout may carry a machine-readable report.
        self._stream: TextIO | None = stream if stream is not None else sys.stderr
        self._interval = interval
        self._driven = driven
        self._state = DashboardState()
        self._controls = Controls()
        self._ticker: asyncio.Task[None] | None = None
        self._running = False
        self._written_at = 0.0

    async def start(self, state: DashboardState, controls: Controls) -> None:
        """Write a line now and then every interval until :meth:`stop` (driven: at pulses an interval apart)."""
        if self._running:
            raise RuntimeError("the progress line is already running")
        self._running = True
        self._state, self._controls = state, controls
        if self._driven:
            self.refresh()
        else:
            self._ticker = asyncio.create_task(self._tick(), name="plain-progress")

    def refresh(self) -> None:
        """Write one line now (nothing, without a stream or once it refused a write)."""
        self._written_at = time.monotonic()
        stream = self._stream
        if stream is None:
            return
        try:
            stream.write(progress_line(self._state, self._controls) + "\n")
            stream.flush()
        except _WRITE_ERRORS as error:
            self._stream = None
            _log.warning("the progress line stopped: its output failed (%s)", error)

    def pulse(self) -> None:
        """Write a line if driven and ``interval`` real seconds have passed since the last one."""
        if self._driven and self._running and time.monotonic() - self._written_at >= self._interval:
            self.refresh()

    async def stop(self) -> None:
        """Stop the ticker and write the final line. Idempotent."""
        if not self._running:
            return
        self._running = False
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            await _cancelled(ticker, "the progress line")
        self.refresh()

    async def _tick(self) -> None:
        # The schedule is anchored to the start, so a slow write does not make the lines drift apart. On the
        # loop's clock, which asyncio.sleep also keeps: monotonic under wall time, the run's own under virtual
        # time (a wall-clock anchor there made every wait longer than the one before).
        loop = asyncio.get_running_loop()
        started = loop.time()
        ticks = 0
        while True:
            self.refresh()
            ticks += 1
            await asyncio.sleep(max(0.0, started + ticks * self._interval - loop.time()))


async def _cancelled(ticker: asyncio.Task[None], what: str) -> None:
    """Cancel ``ticker`` and wait for it. What killed it earlier is logged, not raised: the display's failure must
    not keep the run from writing its reports."""
    ticker.cancel()
    try:
        await ticker
    except asyncio.CancelledError:
        # The ticker's own cancellation, unless the task waiting here is being cancelled as well.
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
    except Exception:
        _log.exception("%s failed", what)


def _target(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.1f}"


def choose_display(
    *, no_dashboard: bool = False, stdout: TextIO | None = None, interval: float = 5.0, driven: bool = False
) -> Dashboard | PlainProgress:
    """The dashboard when stdout is a terminal and it is wanted, else the plain progress line; ``driven``: paced
    by :meth:`Display.pulse` in real time rather than by a timer of its own (module docstring).

    Not the dashboard on a terminal that draws nothing live (``TERM=dumb``: Emacs' shell buffers), nor for a job
    in the background of its terminal (it would stop at its first change of the terminal's modes); with stdout
    closed, the progress line on stderr; with stderr closed too, a progress line that writes nothing."""
    out = stdout if stdout is not None else sys.stdout
    if not no_dashboard and out is not None and _is_tty(out):
        console = _DisplayConsole(file=out)
        fd = _stdout_fd(console)
        if not console.is_dumb_terminal and (fd is None or _in_foreground(fd)):
            return Dashboard(console=console, driven=driven)
    return PlainProgress(interval=interval, driven=driven)


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except _WRITE_ERRORS:  # closed
        return False


@contextlib.asynccontextmanager
async def running(display: Display, state: DashboardState, controls: Controls) -> AsyncIterator[Display]:
    """Run ``display`` for the duration of the block; stopped (terminal restored) however the block exits."""
    await display.start(state, controls)
    try:
        yield display
    finally:
        await display.stop()
