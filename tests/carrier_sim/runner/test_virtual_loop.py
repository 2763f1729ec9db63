"""The virtual-time loop: idle waits are jumped, timers keep their exact order and times, loopback sockets and
aiohttp work, thread work stops the clock, and two runs of one program see the same times."""

from __future__ import annotations

import asyncio
import math
import time

import aiohttp
import pytest
from aiohttp import web

from carrier_sim.runner.virtual_loop import VirtualEventLoop, is_virtual, run_clock, run_virtual

START = 1_800_000_000.0


def test_an_hour_of_sleep_passes_at_once_and_the_clock_says_an_hour() -> None:
    async def main() -> tuple[float, float]:
        loop = asyncio.get_running_loop()
        before = loop.time()
        await asyncio.sleep(3600)
        return before, loop.time()

    wall = time.monotonic()
    before, after = run_virtual(main(), start=START)
    assert (before, after) == (START, START + 3600)
    # Not a speed test: an hour of real sleep would take an hour; anything near that means no jump happened.
    assert time.monotonic() - wall < 60


def test_timers_fire_in_order_at_their_exact_times() -> None:
    delays = [5.0, 0.25, 120.0, 0.25, 1e-3, 42.0, 0.0, 7.5]

    async def main() -> list[tuple[float, int]]:
        loop = asyncio.get_running_loop()
        fired: list[tuple[float, int]] = []

        def fire(i: int) -> None:
            fired.append((loop.time() - START, i))

        for i, delay in enumerate(delays):
            loop.call_later(delay, fire, i)
        await asyncio.sleep(max(delays) + 1)
        return fired

    fired = run_virtual(main(), start=START)
    expected = sorted(((START + d) - START, i) for i, d in enumerate(delays))  # ties keep scheduling order
    assert fired == expected


def test_timeouts_expire_on_virtual_time() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(5):
                await asyncio.sleep(600)
        return loop.time()

    assert run_virtual(main(), start=START) == START + 5


async def _echo_round_trips(n: int) -> list[float]:
    """A TCP echo server and client over 127.0.0.1, a virtual pause between messages; when each answer came."""
    loop = asyncio.get_running_loop()

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.readline():
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    times = []
    for i in range(n):
        writer.write(f"line {i}\n".encode())
        assert await reader.readline() == f"line {i}\n".encode()
        times.append(loop.time())
        await asyncio.sleep(30)  # think time between messages: jumped
    writer.close()
    await writer.wait_closed()
    server.close()
    await server.wait_closed()
    return times


def test_a_tcp_echo_over_loopback_works_and_takes_no_virtual_time() -> None:
    times = run_virtual(_echo_round_trips(5), start=START)
    assert times == [START + 30 * i for i in range(5)]  # each answer arrived at the instant it was asked for


async def _http_exchange(pause: float) -> tuple[list[float], str, int]:
    loop = asyncio.get_running_loop()

    async def hello(request: web.Request) -> web.Response:
        await asyncio.sleep(pause)  # a slow handler, in virtual seconds
        return web.json_response({"at": loop.time()})

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    stamps = [loop.time()]
    text = ""
    async with aiohttp.ClientSession(f"http://{host}:{port}", timeout=aiohttp.ClientTimeout(total=pause * 2)) as http:
        for _ in range(2):
            async with http.get("/hello") as response:
                assert response.status == 200
                stamps.append((await response.json())["at"])
                text = await response.text()
            stamps.append(loop.time())
    await runner.cleanup()
    executor_calls = loop.executor_calls if isinstance(loop, VirtualEventLoop) else -1
    return stamps, text, executor_calls


def test_an_aiohttp_server_and_client_work_with_no_thread() -> None:
    stamps, _, executor_calls = run_virtual(_http_exchange(pause=20.0), start=START)
    assert stamps == [START, START + 20, START + 20, START + 40, START + 40]
    assert executor_calls == 0  # IP literals: no resolver thread, so nothing ever stopped the clock


def test_thread_work_stops_the_clock_until_it_is_done() -> None:
    async def main() -> tuple[float, float, list[float]]:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        loop.call_later(0.05, lambda: fired.append(loop.time()))

        def slow() -> float:
            time.sleep(0.3)
            return loop.time()

        # 0.3 real seconds in a thread: the 0.05 s timer must not fire before it, nor time jump past it.
        result = await asyncio.to_thread(slow)
        finished = loop.time()
        await asyncio.sleep(1)
        return result, finished, fired

    read_in_thread, finished, fired = run_virtual(main(), start=START)
    assert (read_in_thread, finished) == (START, START)
    assert fired == [START + 0.05]


def test_two_runs_of_one_program_see_the_same_times() -> None:
    async def program() -> list[float]:
        loop = asyncio.get_running_loop()
        stamps = await _echo_round_trips(3)
        http, _, _ = await _http_exchange(pause=0.75)
        ticks = []
        for _ in range(50):
            await asyncio.sleep(0.02)
            ticks.append(loop.time())
        return [*stamps, *http, *ticks]

    first = run_virtual(program(), start=START)
    second = run_virtual(program(), start=START)
    assert first == second
    assert first[-1] > first[0] + 60  # it did travel


def test_the_run_clock_is_virtual_only_under_a_virtual_loop() -> None:
    async def which() -> tuple[bool, float]:
        return is_virtual(), run_clock()()

    assert run_virtual(which(), start=START) == (True, START)
    virtual, now = asyncio.run(which())
    assert not virtual
    assert abs(now - time.time()) < 60  # the wall clock, in epoch seconds


def _next_second(moment: float) -> float:
    """A one-second lattice from START: the first of its moments after ``moment``."""
    return START + float(int(moment - START) + 1)


def test_a_quiet_idle_sleep_sleeps_to_its_end() -> None:
    async def main() -> tuple[bool, float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualEventLoop)
        quiet = await loop.idle_sleep(START + 3600, _next_second)
        return quiet, loop.time()

    assert run_virtual(main(), start=START) == (True, START + 3600)


def test_another_timer_wakes_an_idle_sleeper_at_its_next_moment_after_it() -> None:
    async def main() -> tuple[bool, float, list[float]]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualEventLoop)
        fired: list[float] = []
        loop.call_at(START + 10.5, lambda: fired.append(loop.time()))
        quiet = await loop.idle_sleep(START + 3600, _next_second)
        return quiet, loop.time(), fired

    # The timer ran at its own time, and the sleeper woke at the lattice's next moment after it.
    assert run_virtual(main(), start=START) == (False, START + 11, [START + 10.5])


def test_io_wakes_an_idle_sleeper_and_its_own_timer_does_not_count_as_a_stir() -> None:
    async def main() -> tuple[bool, float, bool, float]:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualEventLoop)
        reader, writer = await asyncio.open_connection(*(await _echo_server()))

        async def later() -> None:
            await asyncio.sleep(30.25)
            writer.write(b"x")  # the echo comes back over loopback I/O at the same virtual moment
            await reader.readexactly(1)

        task = asyncio.create_task(later())
        await asyncio.sleep(0.5)  # the task's start and the connection's set-up stir the loop too: let them pass
        woken = await loop.idle_sleep(START + 3600, _next_second)
        at = loop.time()
        await task
        writer.close()
        await asyncio.sleep(1)  # the hang-up stirs the loop as well
        # Alone in the loop again, a sleep whose end is its own timer passes quietly.
        quiet = await loop.idle_sleep(loop.time() + 5, _next_second)
        return woken, at, quiet, loop.time()

    woken, at, quiet, end = run_virtual(main(), start=START)
    assert (woken, at) == (False, START + 31)
    assert quiet
    assert end == START + 37


async def _echo_server() -> tuple[str, int]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(100):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    host, port = server.sockets[0].getsockname()[:2]
    return host, port


def test_one_idle_sleeper_at_a_time() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        assert isinstance(loop, VirtualEventLoop)
        first = asyncio.create_task(loop.idle_sleep(START + 100, _next_second))
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="already waiting"):
            await loop.idle_sleep(START + 50, _next_second)
        first.cancel()

    run_virtual(main(), start=START)


def test_no_timer_runs_before_its_time_even_a_few_float_steps_after_another() -> None:
    # asyncio runs every timer with when < time() + _clock_resolution in one pass, stamped with that time. A fixed
    # resolution of several float spacings ran a timer due a few spacings after another early, with the other's
    # time: the runner's tick lattice then shifted by those spacings, depending on which aiohttp timer was due.
    start = 1_800_000_000.4866703
    first = start + 1.0
    second = first + 3 * math.ulp(first)
    seen: list[tuple[str, float]] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = loop.create_future()
        loop.call_at(first, lambda: seen.append(("first", loop.time())))
        loop.call_at(second, lambda: (seen.append(("second", loop.time())), done.set_result(None)))
        await done

    run_virtual(main(), start=start)
    assert seen[0] == ("first", first)
    assert seen[1][0] == "second"
    assert seen[1][1] >= second


def test_the_default_start_is_a_whole_second_of_the_wall_clock() -> None:
    # aiohttp rounds timers of 5 s and more up to whole seconds of loop.time(): from a start with the wall clock's
    # fraction they fell at other offsets into each run, which made virtual runs differ by a few float steps.
    loop = VirtualEventLoop()
    try:
        assert loop.time() == int(loop.time())
        assert abs(loop.time() - time.time()) < 2
    finally:
        loop.close()
