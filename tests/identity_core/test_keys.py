"""The key directory: created owner-only whatever the umask, and looser modes found at start warned about."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from identity_core.keys import load_or_create_keys


def _load(directory: Path) -> None:
    load_or_create_keys(directory, proof_validity=600.0, certificate_validity=3600.0, issuer="test")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process's umask set to the test's parameter for the test's duration (it is process-wide)."""
    previous = os.umask(request.param)
    try:
        yield int(request.param)
    finally:
        os.umask(previous)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o277, 0o000], indirect=True, ids=oct)
def test_keys_are_created_0600_in_a_0700_directory_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    # 0o277 made the directory 0500 and proof.key 0400 (mkdir's and open's modes go through the umask); as any
    # user but root the service could then not even write its keys into its own directory.
    directory = tmp_path / "state" / "identity.keys"
    _load(directory)
    assert _mode(directory) == 0o700
    assert {p.name: _mode(p) for p in directory.iterdir()} == {"proof.key": 0o600, "signing.pem": 0o600}


def test_a_shared_proof_secret_is_loaded_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _load(tmp_path / "keys")
    (tmp_path / "keys" / "proof.key").chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="identity_core.keys"):
        _load(tmp_path / "keys")  # was loaded in silence
    assert "proof secret file" in caplog.text
    assert "accessible to group or others (mode 644)" in caplog.text
    assert _mode(tmp_path / "keys" / "proof.key") == 0o644  # the operator's file: not changed


def test_a_shared_existing_directory_is_used_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "keys"
    directory.mkdir()
    directory.chmod(0o755)  # a directory the operator made (or mounted)
    with caplog.at_level(logging.WARNING, logger="identity_core.keys"):
        _load(directory)
    assert "key directory" in caplog.text
    assert _mode(directory) == 0o755


def test_owner_only_keys_load_without_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _load(tmp_path / "keys")
    with caplog.at_level(logging.WARNING):
        _load(tmp_path / "keys")
    assert caplog.text == ""
