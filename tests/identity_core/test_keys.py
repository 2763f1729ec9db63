"""The key directory: created owner-only whatever the umask, looser modes found at start warned about, and a key
file that is a symbolic link (or anything but a regular file) refused."""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from identity_core.cli import serve
from identity_core.config import parse_config
from identity_core.key_files import SymlinkedKeyFile
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


@pytest.mark.parametrize("name", ["proof.key", "signing.pem"])
def test_a_key_file_that_is_a_symlink_is_refused_naming_it(tmp_path: Path, name: str) -> None:
    # A link planted in the key directory made the service take the file it names for its secret (read through,
    # signing with it), here a perfectly valid key of someone else's.
    _load(tmp_path / "elsewhere")
    other = tmp_path / "elsewhere" / name
    _load(tmp_path / "keys")
    planted = tmp_path / "keys" / name
    planted.unlink()
    planted.symlink_to(other)
    with pytest.raises(SymlinkedKeyFile) as refused:
        _load(tmp_path / "keys")
    assert refused.value.path == planted
    assert str(planted) in str(refused.value)
    assert str(other) in str(refused.value)  # where the link pointed, for the operator to look at
    assert planted.is_symlink()  # refused, not replaced by a fresh key


@pytest.mark.parametrize("name", ["proof.key", "signing.pem"])
def test_a_dangling_symlink_is_refused_and_nothing_is_written_where_it_points(tmp_path: Path, name: str) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    target = tmp_path / "victim"
    (directory / name).symlink_to(target)
    with pytest.raises(SymlinkedKeyFile, match=f"{directory / name}: a key file must be a regular file"):
        _load(directory)
    assert not target.exists()
    assert not [p.name for p in directory.iterdir() if p.name.startswith(".")]  # no temporary file left behind


def test_a_fifo_in_place_of_a_key_file_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    fifo = directory / "proof.key"
    os.mkfifo(fifo, 0o600)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        loading = pool.submit(_load, directory)
        try:
            loading.exception(timeout=10)
        except TimeoutError:
            # Opened without O_NONBLOCK, the read blocked until something wrote to the FIFO: be that writer, so
            # that the thread ends and the failure is reported rather than hanging the run.
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            pytest.fail("loading the keys blocked on a FIFO in place of proof.key")
    with pytest.raises(ValueError, match="must be a regular file"):
        loading.result()


async def test_serve_exits_2_naming_a_symlinked_key_file_before_opening_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = parse_config(
        {"api": {"listen": "127.0.0.1:0"}, "store": {"path": "identity.db"}, "keys": {"path": "identity.keys"},
         "carrier": [{"name": "a", "smsc": "127.0.0.1:1", "system_id": "s", "password": "p", "gateway": "1",
                      "country": "GB"}]},
        tmp_path,
    )
    _load(tmp_path / "elsewhere")
    (tmp_path / "identity.keys").mkdir(mode=0o700)
    (tmp_path / "identity.keys" / "signing.pem").symlink_to(tmp_path / "elsewhere" / "signing.pem")
    async with asyncio.timeout(10):  # before, the service started on the linked key and served until stopped
        assert await serve(config) == 2
    assert f"identity-core: {tmp_path / 'identity.keys' / 'signing.pem'}: a key file must be a regular file, " \
           "not a symbolic link" in capsys.readouterr().err
    assert not (tmp_path / "identity.db").exists()
