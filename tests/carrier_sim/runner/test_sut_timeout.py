"""CARRIER_SIM_SUT_TIMEOUT: a value that is not a positive number of seconds is an invalid command line (exit 2),
as CARRIER_SIM_RAY_START_TIMEOUT is; it used to become 60 s without a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from carrier_sim.runner.command import run_command
from carrier_sim.runner.sut import READY_TIMEOUT, ready_timeout

QUICKSTART = Path(__file__).resolve().parents[3] / "scenarios" / "quickstart.yaml"
BAD = ("abc", "", "2m", "0", "-5", "nan", "inf")


def test_ready_timeout_refuses_what_is_not_a_positive_number(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CARRIER_SIM_SUT_TIMEOUT", raising=False)
    assert ready_timeout() == READY_TIMEOUT == 60.0
    monkeypatch.setenv("CARRIER_SIM_SUT_TIMEOUT", "2.5")
    assert ready_timeout() == 2.5
    for bad in BAD:
        monkeypatch.setenv("CARRIER_SIM_SUT_TIMEOUT", bad)
        with pytest.raises(ValueError, match=r"CARRIER_SIM_SUT_TIMEOUT=.*expected a positive number of seconds"):
            ready_timeout()


def test_run_refuses_a_bad_sut_timeout_before_starting(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    for bad in BAD:
        monkeypatch.setenv("CARRIER_SIM_SUT_TIMEOUT", bad)
        assert run_command(QUICKSTART, ["population.phones=30"], no_dashboard=True) == 2, bad
        err = capsys.readouterr().err
        assert f"CARRIER_SIM_SUT_TIMEOUT={bad!r}: expected a positive number of seconds" in err
