"""``identity-core serve`` as a process: a bad configuration is refused at once; ``--parent-pid`` stops it when
whatever started it is killed."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from carrier_sim.testing.processes import running
from identity_core.cli import all_set, main, serve
from identity_core.config import LimitsConfig, parse_config
from tests.identity_core.conftest import ROOT, Carrier, free_port, write_config

# A supervisor that starts identity-core, says its pid, and waits to be killed (as a runner or a Ray actor is).
SUPERVISOR = """
import os, subprocess, sys
log = open(sys.argv[2], "wb")
flags = [str(os.getpid()) if flag == "SELF" else flag for flag in sys.argv[3:]]
child = subprocess.Popen([sys.executable, "-m", "identity_core.cli", "serve", "--config", sys.argv[1], *flags],
                         stdout=log, stderr=log)
print(child.pid, flush=True)
child.wait()
"""


async def _wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)
    return True


async def _kill_supervisor_of_ready_core(carrier: Carrier, tmp_path: Path, *flags: str) -> tuple[int, Path]:
    """Start identity-core under a supervisor, wait for ready, SIGKILL the supervisor: the core's pid and log."""
    config = write_config(tmp_path, carrier.port, free_port())
    log = tmp_path / "identity.log"
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SUPERVISOR, str(config), str(log), *flags,
        stdout=asyncio.subprocess.PIPE, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert supervisor.stdout is not None
    core = int((await supervisor.stdout.readline()).decode())
    try:
        await _wait_for(lambda: log.exists() and b"ready api=" in log.read_bytes(), 20)
    except BaseException:
        os.kill(core, signal.SIGKILL)
        raise
    finally:
        supervisor.send_signal(signal.SIGKILL)  # no chance to stop its child
        await supervisor.wait()
    return core, log


async def test_parent_pid_stops_it_when_the_supervisor_is_killed(carrier: Carrier, tmp_path: Path) -> None:
    core, log = await _kill_supervisor_of_ready_core(carrier, tmp_path, "--parent-pid", "SELF")
    try:
        assert running(core), "the identity core outlives its supervisor for a moment"
        # Noticed within the check interval, then a clean stop (unbind, close the store), not a kill.
        await _wait_for(lambda: not running(core), 15)
        assert b"parent process" in log.read_bytes()
        assert b"is gone; stopping" in log.read_bytes()
    finally:
        if running(core):
            os.kill(core, signal.SIGKILL)


async def test_without_the_flag_a_killed_supervisor_leaves_it_running(carrier: Carrier, tmp_path: Path) -> None:
    # The behaviour the flag exists for, so that the test above cannot pass by accident.
    core, _ = await _kill_supervisor_of_ready_core(carrier, tmp_path)
    try:
        await asyncio.sleep(3)  # three check intervals
        assert running(core)
    finally:
        if running(core):
            os.kill(core, signal.SIGTERM)
            await _wait_for(lambda: not running(core), 15)


async def test_a_parent_already_gone_at_start_stops_it_at_once(carrier: Carrier, tmp_path: Path) -> None:
    # Started for a parent that died while this process was still importing: its adopter is not that parent.
    config = write_config(tmp_path, carrier.port, free_port())
    returncode, output = await _serve_for_a_parent_already_gone(config, tmp_path)
    assert returncode == 0, output
    assert b"parent process 1 is gone; stopping" in output


async def _serve_for_a_parent_already_gone(config: Path, tmp_path: Path) -> tuple[int | None, bytes]:
    """``identity-core serve --parent-pid 1``: it starts, finds its parent gone and stops; its code and output."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity_core.cli", "serve", "--config", str(config), "--parent-pid", "1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=str(tmp_path),
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        async with asyncio.timeout(20):
            output, _ = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, output


async def test_an_api_without_tokens_starts_and_says_every_server_route_will_answer_401(
        carrier: Carrier, tmp_path: Path) -> None:
    config = write_config(tmp_path, carrier.port, free_port())
    text = config.read_text(encoding="utf-8")
    assert "tokens = [" in text
    config.write_text("\n".join(line for line in text.splitlines() if not line.startswith("tokens = [")),
                      encoding="utf-8")
    returncode, output = await _serve_for_a_parent_already_gone(config, tmp_path)
    assert returncode == 0, output
    assert b"[api] tokens is empty" in output


@pytest.mark.parametrize(
    ("fix", "message"),
    [
        # Above every header: top level, where it used to be ignored and lock the API with 401s.
        (lambda text: 'tokens = ["another-token"]\n' + text, "did you mean api.tokens?"),
        (lambda text: text.replace("[limits]\n", "[limits]\nprefix_digits = 0\n"), "limits.prefix_digits"),
        (lambda text: text + "enquire_link_interval = -1\n", "carrier[0].enquire_link_interval"),
    ],
)
def test_serve_with_a_bad_config_exits_2_with_the_message_and_opens_nothing(
    tmp_path: Path, fix: Callable[[str], str], message: str
) -> None:
    config = write_config(tmp_path, free_port(), free_port())
    config.write_text(fix(config.read_text(encoding="utf-8")), encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "identity_core.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "identity.db").exists()


async def test_serve_refuses_limits_built_in_code_before_opening_the_store(tmp_path: Path) -> None:
    # parse_config checks every range; a configuration assembled in code skips it and must still be refused
    # before anything is opened (the store was opened first and left open, with a traceback).
    good = parse_config(
        {"api": {"listen": "127.0.0.1:0"}, "store": {"path": "identity.db"},
         "carrier": [{"name": "a", "smsc": "127.0.0.1:1", "system_id": "s", "password": "p", "gateway": "1",
                      "country": "GB"}]},
        tmp_path,
    )
    bad = dataclasses.replace(good, limits=LimitsConfig(prefix_digits=0))
    assert await serve(bad) == 2
    assert not (tmp_path / "identity.db").exists()


async def test_ready_waits_for_every_carrier_bound_at_the_same_moment() -> None:
    # A carrier that bound and dropped again while another was still binding must not count as bound.
    first, second = asyncio.Event(), asyncio.Event()
    waiting = asyncio.create_task(all_set([first, second]))
    first.set()
    await asyncio.sleep(0)
    first.clear()  # carrier one drops...
    second.set()  # ...just as carrier two binds
    for _ in range(5):
        await asyncio.sleep(0)
    assert not waiting.done()
    first.set()
    async with asyncio.timeout(5):
        await waiting


async def test_ready_with_no_carrier_waits_for_nothing() -> None:
    async with asyncio.timeout(5):
        await all_set([])


def test_an_unknown_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    # It was a ValueError traceback from logging and exit 1.
    with pytest.raises(SystemExit) as stopped:
        main(["serve", "--config", "identity.toml", "--log-level", "BOGUS"])
    assert stopped.value.code == 2
    assert "invalid choice: 'BOGUS'" in capsys.readouterr().err
