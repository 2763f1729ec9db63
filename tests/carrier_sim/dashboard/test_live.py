"""The dashboard's pure parts (controls, rendering, progress line) and its terminal handling on a pseudo-terminal."""

from __future__ import annotations

import asyncio
import io
import os
import termios
import time
from collections.abc import Iterator

import pytest
from rich.console import Console

from carrier_sim.dashboard.live import (
    MAX_RATE_MULTIPLIER,
    MIN_RATE_MULTIPLIER,
    CarrierStatus,
    Controls,
    Dashboard,
    DashboardState,
    PlainProgress,
    choose_display,
    keys_pressed,
    progress_line,
    render,
    running,
)
from carrier_sim.metrics.registry import RunMetrics
from carrier_sim.runner.virtual_loop import run_virtual
from carrier_sim.scenario.model import Check


def test_keys_drive_the_controls() -> None:
    controls = Controls()
    assert controls.press("x") is False
    assert controls.press("3") is True
    assert controls.view == 3
    assert controls.press("9") is False  # no view 9: nothing changes
    assert controls.view == 3
    controls.press("p")
    assert controls.paused
    controls.press("p")
    assert not controls.paused
    for _ in range(10):
        controls.press("+")
    assert controls.rate_multiplier == 2.0
    controls.press("-")
    controls.press("_")
    assert controls.rate_multiplier == 1.8
    assert not controls.stop_requested
    controls.press("q")
    assert controls.stop_requested


def test_rate_multiplier_is_bounded() -> None:
    controls = Controls()
    for _ in range(200):
        controls.press("+")
    assert controls.rate_multiplier == MAX_RATE_MULTIPLIER
    for _ in range(200):
        controls.press("-")
    assert controls.rate_multiplier == MIN_RATE_MULTIPLIER


def _state() -> DashboardState:
    state = DashboardState(scenario="unit", phase="steady", elapsed=75.5, target_rate=100.0, achieved_rate=99.0,
                           carriers={"acme": CarrierStatus(binds=3, throughput=42.0, window_used=7, window_size=10,
                                                           throttles=5, receipts=900)})
    state.funnel.update(arrived=200, reg_req_sent=190, done=150, failed=10)
    metrics = RunMetrics()
    metrics.count("activation.started", 200)
    metrics.count("activation.completed", 150)
    # p99 of 100 samples is the 99th smallest (nearest rank, ceil(0.99 x 100)): one of the two slow ones.
    metrics.record_latency("activation", [0.1] * 98 + [1.5] * 2)
    state.observe(metrics, [Check("ratio", "activation.success_ratio", ">=", 0.9),
                            Check("auth", "authenticate.latency.p99", "<", 1.0)])
    for i in range(250):
        state.add_error(f"error {i}")
    return state


def _text(view: int, paused: bool = False) -> str:
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    console.print(render(_state(), Controls(view=view, paused=paused)))
    return console.export_text()


def test_views_render_their_own_content() -> None:
    overview = _text(1)
    assert "1 overview" in overview
    assert "Funnel" in overview
    assert "REG-REQ sent" in overview
    assert "95.0 %" in overview  # 190 of 200 arrived
    assert "1.500 s" in overview  # the slowest sample in the p99 column
    assert "1m15.5s" in overview
    assert "ratio: observed 0.75, expected >= 0.9" in overview
    assert "error 249" in overview
    assert "error 246" not in overview  # the overview keeps the last three
    carriers = _text(2)
    assert "7/10" in carriers
    assert "throttles" in carriers
    assert "900" in carriers
    checks = _text(3)
    assert "authenticate.latency.p99" in checks
    assert "inconc" in checks
    errors = _text(4)
    # The ring buffer holds 200 of the 250 lines; the count is of all the errors.
    assert "Recent errors and events (250 errors; last 200 lines kept)" in errors
    assert "error 49" not in errors
    assert "PAUSED" in _text(1, paused=True)


def test_progress_line() -> None:
    line = progress_line(_state(), Controls(paused=True))
    assert line == (
        "[  1m15.5s] unit phase=steady rate=99.0/100.0/s arrived=200 done=150 failed=10 activation.p99=1.500s "
        "checks=pass:0,fail:1,inconc:1,error:0 errors=250 PAUSED"
    )


def test_errors_count_occurrences_as_the_panel_does_not_lines_nor_events() -> None:
    state = DashboardState(scenario="unit")
    state.add_error("activation: 37 phones failed: http_503 (37 in all)", count=37)
    state.add_event("event smsc_outage: carrier-a's SMSC down for 5 s")
    state.add_error("the runner's loop fell behind")
    assert state.error_count == 38
    assert "errors=38" in progress_line(state, Controls())
    console = Console(record=True, width=120, file=io.StringIO(), color_system=None)
    console.print(render(state, Controls(view=4)))
    panel = console.export_text()
    assert "Recent errors and events (38 errors; last 3 lines kept)" in panel
    assert "SMSC down for 5 s" in panel


async def test_plain_progress_ticks_and_writes_a_final_line() -> None:
    out = io.StringIO()
    progress = PlainProgress(out, interval=0.05)
    state = DashboardState(scenario="unit")
    await progress.start(state, Controls())
    await asyncio.sleep(0.18)
    state.funnel["arrived"] = 7
    await progress.stop()
    await progress.stop()  # idempotent
    lines = out.getvalue().splitlines()
    assert len(lines) >= 4
    assert "arrived=0" in lines[0]
    assert "arrived=7" in lines[-1]


def test_plain_progress_keeps_its_interval_on_a_virtual_clock() -> None:
    # Under virtual time asyncio.sleep follows the run's clock; an anchor on the wall clock made each wait longer
    # than the one before (lines at 0, 5, 14.6, 28.9, ... s).
    written: list[float] = []

    class Timed(io.StringIO):
        def write(self, text: str) -> int:
            written.append(asyncio.get_running_loop().time())
            return super().write(text)

    async def main() -> None:
        progress = PlainProgress(Timed(), interval=5.0)
        await progress.start(DashboardState(scenario="unit"), Controls())
        await asyncio.sleep(42.0)
        await progress.stop()

    run_virtual(main(), start=1_000.0)
    assert [round(t - 1_000.0, 6) for t in written] == [0.0, 5.0, 10.0, 15.0, 20.0, 25.0, 30.0, 35.0, 40.0, 42.0]


def test_choose_display_without_a_terminal() -> None:
    assert isinstance(choose_display(stdout=io.StringIO()), PlainProgress)
    assert isinstance(choose_display(no_dashboard=True), PlainProgress)


@pytest.fixture
def pty() -> Iterator[tuple[int, int]]:
    leader, follower = os.openpty()
    yield leader, follower
    os.close(leader)
    os.close(follower)


def _cbreak(fd: int) -> bool:
    return not termios.tcgetattr(fd)[3] & termios.ICANON


async def test_dashboard_reads_keys_and_restores_the_terminal(pty: tuple[int, int]) -> None:
    leader, follower = pty
    before = termios.tcgetattr(follower)
    console = Console(file=io.StringIO(), force_terminal=True, width=100, height=40)
    dashboard = Dashboard(console=console, input_fd=follower, refresh_interval=0.02, screen=False)
    controls = Controls()
    await dashboard.start(DashboardState(scenario="pty"), controls)
    assert _cbreak(follower)
    os.write(leader, b"3p+q")
    async with asyncio.timeout(5):
        while not controls.stop_requested:
            await asyncio.sleep(0.01)
    assert (controls.view, controls.paused, controls.rate_multiplier) == (3, True, 1.1)
    await dashboard.stop()
    await dashboard.stop()  # idempotent
    assert termios.tcgetattr(follower) == before
    assert "pty" in console.file.getvalue()  # type: ignore[attr-defined]


async def test_function_and_navigation_keys_do_nothing(pty: tuple[int, int]) -> None:
    # F2 is ESC O Q, Delete ESC [ 3 ~, F12 ESC [ 24 ~, Shift-Up ESC [ 1 ; 2 A: read character by character they
    # were "Q" (stop the run), "3" (a view), "2", "4"... Only the keys typed as themselves count.
    leader, follower = pty
    dashboard = Dashboard(console=Console(file=io.StringIO(), force_terminal=True, width=100, height=40),
                          input_fd=follower, refresh_interval=0.02, screen=False)
    controls = Controls()
    await dashboard.start(DashboardState(scenario="pty"), controls)
    try:
        os.write(leader, b"\x1bOQ\x1bOP\x1b[3~\x1b[24~\x1b[1;2A\x1b[5~" + b"2")
        async with asyncio.timeout(5):
            while controls.view != 2:
                await asyncio.sleep(0.01)
        assert (controls.stop_requested, controls.paused, controls.rate_multiplier) == (False, False, 1.0)
    finally:
        await dashboard.stop()


@pytest.mark.parametrize(("sent", "keys"), [(b"\x1bOQ", ""), (b"\x1b[3~", ""), (b"p+\x1b[A-q", "p+-q"),
                                            (b"\x1b", ""), ("é2".encode(), "é2")])
def test_keys_pressed_drops_escape_sequences(sent: bytes, keys: str) -> None:
    assert keys_pressed(sent) == keys


async def test_terminal_restored_when_the_block_raises(pty: tuple[int, int]) -> None:
    _, follower = pty
    before = termios.tcgetattr(follower)
    dashboard = Dashboard(console=Console(file=io.StringIO(), force_terminal=True), input_fd=follower, screen=False)
    seen_cbreak: list[bool] = []

    async def crashing_run() -> None:
        async with running(dashboard, DashboardState(), Controls()):
            seen_cbreak.append(_cbreak(follower))
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await crashing_run()
    assert seen_cbreak == [True]
    assert termios.tcgetattr(follower) == before


@pytest.mark.parametrize("width", [80, 60])
def test_a_narrow_terminal_stacks_the_overview_and_keeps_numbers_and_keys_whole(width: int) -> None:
    state = _state()
    metrics = RunMetrics()
    metrics.record_latency("auth_queue", [0.3231] * 10)
    metrics.record_latency("authenticate", [0.5884] * 10)
    state.observe(metrics)
    console = Console(record=True, width=width, height=24, file=io.StringIO(), color_system=None)
    console.print(render(state, Controls(), width))
    lines = console.export_text().splitlines()
    text = "\n".join(lines)
    # Side by side at this width, "auth_queue" and "authenticate" were both "aut…" and "588.4 ms" was "588…".
    assert "auth_queue" in text
    assert "authenticate" in text
    assert "588.4 ms" in text
    assert all(len(line) <= width for line in lines)
    # The keys line, whole on one line, comes under the header, before the body a short window crops.
    keys = next(i for i, line in enumerate(lines) if "q quit" in line)
    assert keys < next(i for i, line in enumerate(lines) if "1 overview" in line)
    assert "p pause" in lines[keys]


@pytest.mark.parametrize(("elapsed", "shown"), [
    (59.94, "59.9s"), (59.96, "1m00.0s"), (119.97, "2m00.0s"), (3599.96, "60m00.0s"), (75.5, "1m15.5s"),
])
@pytest.mark.parametrize(("p99", "in_line", "in_table"), [
    (0.99994, "999.9ms", "999.9 ms"), (0.99996, "1.000s", "1.000 s"), (0.99999, "1.000s", "1.000 s"),
    (0.0004, "0.4ms", "0.4 ms"),
])
def test_rounding_never_carries_into_the_next_unit(elapsed: float, shown: str, p99: float, in_line: str,
                                                   in_table: str) -> None:
    """The figure is rounded before it is split into units: splitting first showed 59.96 s as "60.0s", 3599.96 s as
    "59m60.0s" and 0.99996 s as "1000.0 ms", in the progress line, the header, the errors panel and the table."""
    state = DashboardState(scenario="unit", elapsed=elapsed)
    state.latency = {"activation": dict.fromkeys(("p50", "p90", "p99", "p99.9"), p99)}
    state.add_error("boom")
    line = progress_line(state, Controls())
    assert line.startswith(f"[{shown:>9}] ")
    assert f"activation.p99={in_line} " in line
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    console.print(render(state, Controls(), 160))
    screen = console.export_text()
    assert f"elapsed {shown} " in screen
    assert f"[{shown}] boom" in screen
    assert in_table in screen
    assert "m60.0s" not in screen
    assert "1000.0 ms" not in screen


def test_no_latency_figure_is_cut_short_at_any_width() -> None:
    """Side by side in two equal halves, the latency table's cells were cut ("491.6 …", "authentic…") from 100 to
    130 columns. Whatever the width, every histogram name and figure must be shown whole."""
    state = _state()
    state.funnel.update(arrived=12_345_678, reg_req_sent=12_345_678, reg_resp_received=12_345_670, done=12_000_000)
    figures = {"p50": 0.3166, "p90": 0.4916, "p99": 12.3456, "p99.9": 123.4567}
    names = ("activation", "renewal", "mo_mt", "rcs_cellular", "rcs_otp", "email", "reg_resp", "authenticate",
             "auth_queue")
    state.latency = {name: dict(figures) for name in names}
    shown = ["316.6 ms", "491.6 ms", "12.346 s", "123.457 s", "12345678", "REG-RESP received", *names]
    for width in range(80, 201):
        console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
        console.print(render(state, Controls(), width))
        text = console.export_text()
        assert "…" not in text, f"cut short at {width} columns:\n{text}"
        missing = [figure for figure in shown if figure not in text]
        assert not missing, f"{missing} not whole at {width} columns:\n{text}"
        assert all(len(line) <= width for line in text.splitlines())


def test_the_checks_view_shows_counts_exactly() -> None:
    """":g" showed the threshold 1234567 and the observed 1234566 as "1.23457e+06" both, on a row saying fail."""
    metrics = RunMetrics()
    metrics.count("mo.sent", 1234566)
    metrics.record_latency("activation", [0.9138827457526327])
    state = DashboardState(scenario="unit")
    state.observe(metrics, [Check("a million MOs", "mo.sent", ">=", 1234567.0),
                            Check("slow", "activation.latency.p99", "<", 0.5)])
    console = Console(record=True, width=160, file=io.StringIO(), color_system=None)
    console.print(render(state, Controls(view=3), 160))
    rows = console.export_text().splitlines()
    mos = next(row for row in rows if "a million MOs" in row)
    assert ">= 1234567 " in mos
    assert " 1234566 " in mos
    slow = next(row for row in rows if "slow" in row)
    assert "< 0.5 s " in slow
    assert " 0.913883 s " in slow


class _FakeMonotonic:
    """A real-time clock the test moves by hand (a driven display paces itself by real time)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_driven_progress_line_keeps_no_timer_and_writes_an_interval_of_real_time_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Under a virtual clock a timer of the display's own woke the run's loop every 5 plan seconds and printed a
    # line for each: 17,280 lines for a day of plan that ran in seconds.
    clock = _FakeMonotonic()
    monkeypatch.setattr(time, "monotonic", clock)
    out = io.StringIO()

    async def main() -> tuple[int, int, int, int]:
        progress = PlainProgress(stream=out, interval=5.0, driven=True)
        tasks = len(asyncio.all_tasks())
        await progress.start(DashboardState(scenario="s"), Controls())
        assert len(asyncio.all_tasks()) == tasks  # no ticker
        first = out.getvalue().count("\n")
        await asyncio.sleep(3600)  # an hour of virtual time: nothing is written without pulses
        clock.now += 4.9
        progress.pulse()
        early = out.getvalue().count("\n")
        clock.now += 0.1
        progress.pulse()
        due = out.getvalue().count("\n")
        await progress.stop()
        await progress.stop()
        return first, early, due, out.getvalue().count("\n")

    assert run_virtual(main(), start=1_800_000_000.0) == (1, 1, 2, 3)


def test_a_driven_dashboard_keeps_no_timer_and_redraws_at_pulses_an_interval_apart(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _FakeMonotonic()
    monkeypatch.setattr(time, "monotonic", clock)
    drawn: list[float] = []

    async def main() -> None:
        dashboard = Dashboard(console=Console(file=io.StringIO(), width=120), screen=False, driven=True,
                              refresh_interval=0.25)
        await dashboard.start(DashboardState(scenario="s"), Controls())
        try:
            assert dashboard._ticker is None
            live_view = dashboard._live
            assert live_view is not None
            refresh = live_view.refresh
            def counted() -> None:
                drawn.append(clock.now)
                refresh()

            monkeypatch.setattr(live_view, "refresh", counted)
            dashboard.pulse()  # too soon after the first frame
            clock.now += 0.25
            dashboard.pulse()
            dashboard.pulse()  # already drawn at this moment
            clock.now += 0.3
            dashboard.pulse()
            assert drawn == [1000.25, 1000.55]
        finally:
            await dashboard.stop()

    run_virtual(main(), start=1_800_000_000.0)


def test_an_undriven_display_ignores_pulses() -> None:
    out = io.StringIO()
    progress = PlainProgress(stream=out, interval=0.0)
    progress.pulse()
    assert out.getvalue() == ""
