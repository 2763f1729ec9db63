"""carrier_sim.net.event_loop: uvloop where installed, asyncio's loop on request or without uvloop."""

from __future__ import annotations

import asyncio
import sys

import pytest

from carrier_sim.net import event_loop


async def _loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_serves_on_uvloop_where_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("uvloop")
    monkeypatch.delenv("CARRIER_SIM_LOOP", raising=False)
    assert event_loop.loop_name() == "uvloop"
    assert event_loop.run(_loop_module()).startswith("uvloop")


@pytest.mark.parametrize("value", ["asyncio", " AsyncIO "])
def test_the_environment_asks_for_asyncio(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CARRIER_SIM_LOOP", value)
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.run(_loop_module()).startswith("asyncio")


def test_without_uvloop_asyncio_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARRIER_SIM_LOOP", raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an absent package looks like to import
    assert event_loop.loop_name() == "asyncio"
    assert event_loop.run(_loop_module()).startswith("asyncio")


def test_run_returns_the_result_and_raises_what_main_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARRIER_SIM_LOOP", raising=False)

    async def answer() -> int:
        await asyncio.sleep(0)
        return 42

    async def fail() -> None:
        raise LookupError("from main")

    assert event_loop.run(answer()) == 42
    with pytest.raises(LookupError, match="from main"):
        event_loop.run(fail())
