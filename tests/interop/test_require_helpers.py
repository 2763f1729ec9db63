"""The REQUIRE_INTEROP machinery of tests/interop/conftest.py: a missing tool skips a test on a developer machine
and fails it under ``REQUIRE_INTEROP=1``, so CI cannot pass an interop suite that tested nothing."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.interop import conftest as interop
from tests.interop.conftest import interop_required, require_executable, require_module

MISSING_MODULE = "carrier_sim_no_such_module_for_this_test"
MISSING_EXECUTABLE = "carrier-sim-no-such-executable-for-this-test"

Outcome = pytest.skip.Exception | pytest.fail.Exception


def outcome(call: Callable[[], object]) -> Outcome | None:
    """The skip or failure ``call`` raised, caught: a Skipped escaping a test would make pytest report the test
    skipped, not failed, so pytest.raises(pytest.fail.Exception) cannot see a helper that wrongly skips."""
    try:
        call()
    except (pytest.skip.Exception, pytest.fail.Exception) as raised:
        return raised
    return None


@pytest.fixture
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty PATH and empty system directories: no executable can be found."""
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(interop, "SYSTEM_DIRS", (str(empty),))
    return empty


@pytest.mark.parametrize(("value", "required"), [(None, False), ("0", False), ("", False), ("1", True)])
def test_interop_required_reads_the_variable(monkeypatch: pytest.MonkeyPatch, value: str | None,
                                             required: bool) -> None:
    if value is None:
        monkeypatch.delenv("REQUIRE_INTEROP", raising=False)
    else:
        monkeypatch.setenv("REQUIRE_INTEROP", value)
    assert interop_required() is required


def test_a_missing_module_skips_without_require_interop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("REQUIRE_INTEROP", raising=False)
    raised = outcome(lambda: require_module(MISSING_MODULE))
    assert isinstance(raised, pytest.skip.Exception), raised
    assert MISSING_MODULE in str(raised)


def test_a_missing_module_fails_under_require_interop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUIRE_INTEROP", "1")
    raised = outcome(lambda: require_module(MISSING_MODULE))
    assert isinstance(raised, pytest.fail.Exception), raised
    assert str(raised).startswith(f"REQUIRE_INTEROP=1 but Python module {MISSING_MODULE}")


def test_a_present_module_is_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUIRE_INTEROP", "1")
    assert require_module("json").dumps([1]) == "[1]"


def test_a_missing_executable_skips_without_require_interop(monkeypatch: pytest.MonkeyPatch, nowhere: Path) -> None:
    monkeypatch.delenv("REQUIRE_INTEROP", raising=False)
    raised = outcome(lambda: require_executable(MISSING_EXECUTABLE))
    assert isinstance(raised, pytest.skip.Exception), raised
    assert MISSING_EXECUTABLE in str(raised)


def test_a_missing_executable_fails_under_require_interop(monkeypatch: pytest.MonkeyPatch, nowhere: Path) -> None:
    monkeypatch.setenv("REQUIRE_INTEROP", "1")
    raised = outcome(lambda: require_executable(MISSING_EXECUTABLE))
    assert isinstance(raised, pytest.fail.Exception), raised
    assert str(raised).startswith(f"REQUIRE_INTEROP=1 but {MISSING_EXECUTABLE}")


def _executable(directory: Path, name: str) -> Path:
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_an_executable_on_path_is_found(monkeypatch: pytest.MonkeyPatch, nowhere: Path) -> None:
    monkeypatch.setenv("REQUIRE_INTEROP", "1")
    found = _executable(nowhere, "on-path-tool")
    assert require_executable("on-path-tool") == str(found)


def test_an_executable_in_a_system_directory_off_path_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nowhere: Path
) -> None:
    # bearerbox and smsbox live in /usr/sbin, which a user's PATH often leaves out.
    sbin = tmp_path / "sbin"
    sbin.mkdir()
    daemon = _executable(sbin, "fake-bearerbox")
    monkeypatch.setattr(interop, "SYSTEM_DIRS", (str(tmp_path / "usr-sbin-absent"), str(sbin)))
    monkeypatch.setenv("REQUIRE_INTEROP", "1")
    assert str(sbin) not in os.environ["PATH"].split(os.pathsep)
    assert require_executable("fake-bearerbox") == str(daemon)


def test_the_system_directories_are_sbin() -> None:
    assert interop.SYSTEM_DIRS == ("/usr/sbin", "/sbin")
