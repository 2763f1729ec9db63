"""The system under test: the bundled identity-core, started and configured by the runner, or an external one."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.runner.flows.base import DoorAddress
from carrier_sim.scenario.model import Scenario

__all__ = ["READY_TIMEOUT", "SutError", "SystemUnderTest", "ready_timeout", "start_sut"]


class SutError(RuntimeError):
    """The system under test could not be started or reached: a harness failure (exit code 3)."""


@dataclass
class SystemUnderTest:
    """Where the SUT answers HTTP, the bearer token for its server API, and its process if we started it."""

    api: str
    token: str
    process: asyncio.subprocess.Process | None = None
    log_path: Path | None = None

    async def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the bundled process and wait; None for an external SUT."""
        if self.process is None:
            return None
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(timeout):
                return await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            return await self.process.wait()


def _toml_value(value: object) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return repr(value)


def identity_config(scenario: Scenario, carriers: list[RunningCarrier], workdir: Path, token: str,
                    doors: dict[str, dict[str, DoorAddress]] | None = None) -> Path:
    """The identity.toml the runner gives the bundled identity-core: every carrier's SMSC, and its SIM Swap API
    where the carrier has a CAMARA door."""
    camara = (doors or {}).get("camara", {})
    sut = scenario.system_under_test
    lines = [
        "[api]", 'listen = "127.0.0.1:0"', f"tokens = [{_toml_value(token)}]",
        "[store]", 'path = "identity.db"',
        "[keys]", 'path = "keys"',
        "[limits]", *(f"{k} = {_toml_value(v)}" for k, v in sut.limits.items()),
    ]
    for running in carriers:
        c = running.carrier
        lines += [
            "[[carrier]]", f"name = {_toml_value(c.name)}", f'smsc = "{running.host}:{running.port}"',
            f"system_id = {_toml_value(sut.system_id)}", f"password = {_toml_value(sut.password)}",
            f"gateway = {_toml_value(c.gateway)}", f"country = {_toml_value(c.country)}",
            f"window = {max(10, c.smsc.window)}",
        ]
        if c.name in camara and c.doors.camara is not None:
            lines += [f'sim_swap_api = "http://{camara[c.name].host}:{camara[c.name].port}"',
                      f"sim_swap_token = {_toml_value(c.doors.camara.token)}"]
    path = workdir / "identity.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


#: How much of identity-core's log a harness error quotes: enough for its reason (a ConfigError is one line, a
#: traceback some twenty), not so much that the reason scrolls away.
_LOG_TAIL_LINES = 20
_LOG_TAIL_BYTES = 2048


def _log_tail(path: Path) -> str:
    """The last lines of identity-core's log, indented, to quote in a harness error. Quoted rather than named: the
    log lives in the run's working directory, by default a temporary one removed as the run ends, so a path in
    the message would send the user to a file that is gone by the time they read it."""
    try:
        with path.open("rb") as log:
            log.seek(0, os.SEEK_END)
            log.seek(max(0, log.tell() - _LOG_TAIL_BYTES))
            tail = log.read()
    except OSError as err:
        return f"its log could not be read: {err}"
    lines = tail.decode("utf-8", "replace").splitlines()[-_LOG_TAIL_LINES:]
    if not any(line.strip() for line in lines):
        return "its log is empty"
    return "the end of its log, quoted below:\n" + "\n".join(f"    {line}" for line in lines)


#: Seconds the system under test has to be ready (the bundled core started, every SMSC bound), unless the
#: environment's CARRIER_SIM_SUT_TIMEOUT says otherwise (:func:`ready_timeout`).
READY_TIMEOUT = 60.0


def ready_timeout() -> float:
    """How long the SUT may take to be ready (bind everywhere): CARRIER_SIM_SUT_TIMEOUT, else :data:`READY_TIMEOUT`;
    ValueError for anything but a positive number (``carrier-sim run`` refuses it as an invalid command line
    before anything starts, as it does CARRIER_SIM_RAY_START_TIMEOUT). Once, a typo silently became 60 s."""
    raw = os.environ.get("CARRIER_SIM_SUT_TIMEOUT")
    if raw is None:
        return READY_TIMEOUT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    # 0 or less would fail every run at once; nan and inf would wait for ever on a SUT that never gets ready.
    if not value > 0 or math.isinf(value):
        raise ValueError(f"CARRIER_SIM_SUT_TIMEOUT={raw!r}: expected a positive number of seconds")
    return value


async def start_sut(scenario: Scenario, carriers: list[RunningCarrier], workdir: Path,
                    doors: dict[str, dict[str, DoorAddress]] | None = None,
                    timeout: float | None = None) -> SystemUnderTest:
    """Start the bundled identity-core and wait until it is ready (API listening, every carrier bound), or wait
    until an external SUT has bound to every SMSC."""
    sut = scenario.system_under_test
    timeout = ready_timeout() if timeout is None else timeout
    if sut.kind == "external":
        assert sut.api is not None
        try:
            async with asyncio.timeout(timeout):
                while not all(c.smsc.stats.binds for c in carriers):
                    await asyncio.sleep(0.1)
        except TimeoutError:
            unbound = [c.carrier.name for c in carriers if not c.smsc.stats.binds]
            raise SutError(f"the external system under test did not bind to {', '.join(unbound)}") from None
        return SystemUnderTest(sut.api, os.environ.get("CARRIER_SIM_SUT_TOKEN", ""))
    token = secrets.token_hex(16)
    config = identity_config(scenario, carriers, workdir, token, doors)
    log_path = workdir / "identity-core.log"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    # The child has its own copy of the descriptor: the runner's is closed once the child is started.
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            # --parent-pid: a runner or shard killed outright must not leave its identity core running.
            sys.executable, "-m", "identity_core.cli", "serve", "--config", str(config),
            "--parent-pid", str(os.getpid()),
            stdout=subprocess.PIPE, stderr=log, cwd=str(workdir), env=env,
            # Its own session: a Ctrl-C at the terminal must not stop the SUT under a run that is still finishing
            # (the runner stops it with SIGTERM when done; --parent-pid covers a runner that dies).
            start_new_session=True,
        )
    assert process.stdout is not None
    try:
        async with asyncio.timeout(timeout):
            while True:
                line = (await process.stdout.readline()).decode()
                if not line:
                    await process.wait()
                    raise SutError(
                        f"identity-core exited with {process.returncode} before ready; {_log_tail(log_path)}"
                    )
                if line.startswith("ready"):
                    return SystemUnderTest(line.split("api=", 1)[1].strip(), token, process, log_path)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise SutError(f"identity-core was not ready within {timeout} s; {_log_tail(log_path)}") from None
