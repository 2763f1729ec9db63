"""Fixtures for the identity core's integration tests: an emulated carrier and a running identity-core process.

The identity core is started as a real process (``python -m identity_core.cli serve``), the way an operator
runs it; the carrier is this project's SMSC emulator in the test's event loop, whose subscribers are the
test's phones: an MO is injected as if a phone sent it, and every MT the SMSC delivers lands in ``inbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.smpp.coding import decode_text
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import Smsc, SmscConfig
from carrier_sim.smsc.store import StoredMessage
from identity_core.store import Storage

GATEWAY = "447786205094"
TOKEN = "test-bearer-token-1"
ROOT = Path(__file__).resolve().parents[2]


def assert_is_storage(cls: type) -> None:
    """A run-time check of the Storage protocol (mypy does not check tests/): every public method of the protocol
    exists on ``cls`` with the same signature (annotations resolved) and is a coroutine function."""
    members = sorted(n for n, v in vars(Storage).items() if not n.startswith("_") and callable(v))
    assert members == sorted(["record_pending", "authenticate", "get", "get_by_proof", "revoke", "delete",
                              "expire_due", "counts", "close"])
    for member in members:
        implementation = getattr(cls, member, None)
        assert implementation is not None, member
        assert inspect.iscoroutinefunction(implementation), member
        assert inspect.signature(implementation, eval_str=True) == inspect.signature(
            getattr(Storage, member), eval_str=True), member


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Carrier:
    """The emulated carrier: its SMSC and the MT its subscribers received, by number."""

    server: SmscServer
    port: int
    inbox: dict[str, list[str]] = field(default_factory=dict)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def phone_sends(self, number: str, text: str) -> None:
        """A subscriber sends an MO (to the identity gateway number)."""
        assert self.server.smsc.inject_mo(number, GATEWAY, text, self.server.clock()), "no bind takes the MO"
        self.server.service()

    async def next_mt(self, number: str, timeout: float = 10.0) -> str:
        """The next MT the subscriber ``number`` received."""
        async with asyncio.timeout(timeout):
            while not self.inbox.get(number):
                self.arrived.clear()
                await self.arrived.wait()
        return self.inbox[number].pop(0)


@pytest.fixture
async def carrier() -> AsyncIterator[Carrier]:
    holder: list[Carrier] = []

    def delivered(message: StoredMessage, now: float) -> None:
        text = decode_text(message.data, message.data_coding)
        holder[0].inbox.setdefault(message.destination_addr, []).append(text)
        holder[0].arrived.set()

    server = SmscServer(Smsc(SmscConfig(name="carrier-a", accounts=(Account("identity", "secret"),)),
                             mt_listener=delivered))
    _, port = await server.listen("127.0.0.1", 0)
    holder.append(Carrier(server, port))
    try:
        yield holder[0]
    finally:
        await server.shutdown()


def write_config(
    directory: Path, smsc_port: int, api_port: int, *, limits: str = "", carrier: str = "", messages: str = ""
) -> Path:
    """An identity.toml for one carrier; ``carrier`` and ``messages`` are extra TOML lines for those tables."""
    path = directory / "identity.toml"
    path.write_text(
        f"""
[api]
listen = "127.0.0.1:{api_port}"
tokens = ["{TOKEN}"]
[store]
path = "identity.db"
[keys]
path = "keys"
[limits]
{limits}
[messages]
{messages}
[[carrier]]
name = "carrier-a"
smsc = "127.0.0.1:{smsc_port}"
system_id = "identity"
password = "secret"
gateway = "{GATEWAY}"
country = "GB"
{carrier}
""",
        encoding="utf-8",
    )
    return path


@dataclass
class IdentityProcess:
    """A running ``identity-core serve``."""

    process: asyncio.subprocess.Process
    base_url: str

    async def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        """Send a signal and wait for the exit code."""
        if self.process.returncode is None:
            self.process.send_signal(sig)
        async with asyncio.timeout(timeout):
            return await self.process.wait()


async def start_identity(config: Path, timeout: float = 20.0) -> IdentityProcess:
    """Start the service and wait for its ``ready`` line."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "identity_core.cli", "serve", "--config", str(config),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=str(config.parent),
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                raw = await process.stdout.readline()
                if not raw:
                    raise AssertionError("identity-core exited before ready:\n" + "".join(lines))
                line = raw.decode()
                lines.append(line)
                if line.startswith("ready"):
                    return IdentityProcess(process, line.split("api=")[1].strip())
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
