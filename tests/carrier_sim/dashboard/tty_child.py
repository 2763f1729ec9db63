"""A process on a pseudo-terminal of its own for test_terminal_control.py: the dashboard in the terminal's
foreground (``foreground``: until ``q``), or a job in its background (``background``: which display would be
chosen, then a dashboard started and stopped), whose own child must not be stopped by the terminal."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time

from carrier_sim.dashboard.live import Controls, Dashboard, DashboardState, choose_display


async def _until_quit() -> None:
    controls = Controls()
    dashboard = Dashboard(refresh_interval=0.05)
    await dashboard.start(DashboardState(scenario="tty-child"), controls)
    try:
        async with asyncio.timeout(60):
            while not controls.stop_requested:
                await asyncio.sleep(0.02)
    finally:
        await dashboard.stop()


async def _briefly() -> None:
    dashboard = Dashboard(refresh_interval=0.05)
    await dashboard.start(DashboardState(scenario="tty-child"), Controls())
    await asyncio.sleep(0.3)
    await dashboard.stop()


def main() -> int:
    if sys.argv[1] == "foreground":
        asyncio.run(_until_quit())
        print("child done", flush=True)
        return 0
    pid = os.fork()
    if pid == 0:
        os.setpgid(0, 0)  # a process group of its own: no longer the terminal's foreground one
        print(f"chosen {type(choose_display()).__name__}", flush=True)
        asyncio.run(_briefly())
        os._exit(0)
    with contextlib.suppress(OSError):  # also here, so that neither process races the other to it
        os.setpgid(pid, pid)
    for _ in range(400):
        done, status = os.waitpid(pid, os.WUNTRACED | os.WNOHANG)
        if done:
            break
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
        print("background job hung", flush=True)
        return 1
    if os.WIFSTOPPED(status):
        print(f"background job stopped by signal {os.WSTOPSIG(status)}", flush=True)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        return 1
    print(f"background job exited {os.waitstatus_to_exitcode(status)}", flush=True)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main())
