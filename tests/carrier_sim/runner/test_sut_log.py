"""A bundled identity core that will not start: the harness error quotes its log's reason. The log is in the run's
working directory, by default a temporary one removed when the run ends, so naming its path sent the user to a file
that no longer existed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from carrier_sim.runner.carriers import RunningCarrier
from carrier_sim.runner.sut import SutError, _log_tail, start_sut
from carrier_sim.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[3]


async def test_a_core_that_exits_at_start_is_quoted(tmp_path: Path) -> None:
    scenario = load_scenario(ROOT / "scenarios" / "quickstart.yaml")
    # Limits the loader now refuses, set past it: the one way left to make the bundled core refuse its config.
    sut = dataclasses.replace(scenario.system_under_test, limits={"reg_per_number": [1.0, 0.5]})
    scenario = dataclasses.replace(scenario, system_under_test=sut)
    # The core exits while reading its config, before it connects anywhere: a carrier needs only an address.
    carrier = cast(RunningCarrier, SimpleNamespace(carrier=scenario.carriers[0], host="127.0.0.1", port=9))
    with pytest.raises(SutError) as info:
        await start_sut(scenario, [carrier], tmp_path, timeout=60)
    message = str(info.value)
    assert message.startswith("identity-core exited with 2 before ready; the end of its log, quoted below:\n")
    assert "limits.reg_per_number[1]: burst (requests), a finite number of at least 1, got 0.5" in message
    assert "identity-core.log" not in message


def test_the_quote_is_the_last_lines_and_bounded(tmp_path: Path) -> None:
    log = tmp_path / "identity-core.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)), encoding="utf-8")
    quoted = _log_tail(log).splitlines()[1:]
    assert quoted == [f"    line {i}" for i in range(80, 100)]
    log.write_bytes(b"x" * 10_000 + b"\nthe reason\n")
    assert _log_tail(log).splitlines()[1:] == ["    " + "x" * 2036, "    the reason"]
    log.write_bytes(b"")
    assert _log_tail(log) == "its log is empty"
