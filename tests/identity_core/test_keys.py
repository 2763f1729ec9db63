"""The key directory: created owner-only whatever the umask, looser modes found at start warned about, and a key
file that is a symbolic link (or anything but a regular file: a directory, a FIFO) refused, naming it, with no
descriptor or temporary file left behind by a refusal or a failed write."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import logging
import os
import re
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from identity_core.cli import serve
from identity_core.config import IdentityConfig, parse_config
from identity_core.key_files import NotARegularKeyFile, SymlinkedKeyFile, read_key_file
from identity_core.keys import load_or_create_keys
from tests.identity_core.conftest import ROOT, free_port, write_config


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


# ------------------------------------------------------------------ a directory (or other non-file) in the key's place

_FDS = Path("/proc/self/fd")
needs_proc_fds = pytest.mark.skipif(not _FDS.is_dir(), reason="counts descriptors in /proc/self/fd")


def _open_descriptors() -> dict[int, str]:
    """This process's descriptors and what each names (a closed one that was listed has vanished: skipped)."""
    named: dict[int, str] = {}
    for entry in os.listdir(_FDS):
        with contextlib.suppress(OSError):
            named[int(entry)] = os.readlink(_FDS / entry)
    return named


def _serve_config(tmp_path: Path) -> IdentityConfig:
    return parse_config(
        {"api": {"listen": "127.0.0.1:0"}, "store": {"path": "identity.db"}, "keys": {"path": "identity.keys"},
         "carrier": [{"name": "a", "smsc": "127.0.0.1:1", "system_id": "s", "password": "p", "gateway": "1",
                      "country": "GB"}]},
        tmp_path,
    )


@needs_proc_fds
@pytest.mark.parametrize("name", ["proof.key", "signing.pem"])
def test_a_directory_in_place_of_a_key_file_is_refused_naming_it_and_leaks_no_descriptor(
    tmp_path: Path, name: str
) -> None:
    # Before: os.fdopen on the directory's descriptor raised "IsADirectoryError: [Errno 21] Is a directory: 7",
    # the descriptor's number rather than the path, and left that descriptor open, one more per attempt.
    directory = tmp_path / "keys"
    directory.mkdir(mode=0o700)
    planted = directory / name
    planted.mkdir()
    before = _open_descriptors()
    for _ in range(5):
        with pytest.raises(NotARegularKeyFile) as refused:
            _load(directory)
        assert str(refused.value) == f"{planted}: a key file must be a regular file, not a directory"
        assert refused.value.path == planted
    after = _open_descriptors()
    assert [fd for fd, target in after.items() if target == str(planted)] == []
    assert len(after) == len(before)
    assert planted.is_dir()  # refused, not replaced


@needs_proc_fds
@pytest.mark.parametrize("kind", ["a directory", "a FIFO"])
def test_read_key_file_closes_the_descriptor_of_what_it_refuses(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "key"
    if kind == "a directory":
        path.mkdir()
    else:
        os.mkfifo(path, 0o600)
    before = len(_open_descriptors())
    for _ in range(5):
        with pytest.raises(NotARegularKeyFile, match=f"^{path}: a key file must be a regular file, not {kind}$"):
            read_key_file(path)
    assert len(_open_descriptors()) == before


@needs_proc_fds
def test_a_failed_read_names_the_path_and_closes_the_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "proof.key"
    path.write_bytes(b"k" * 32)

    def failing_read(fd: int, size: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    before = len(_open_descriptors())
    with monkeypatch.context() as patch:
        patch.setattr(os, "read", failing_read)
        with pytest.raises(OSError, match=re.escape(os.strerror(errno.EIO))) as failed:
            read_key_file(path)
    assert failed.value.errno == errno.EIO
    assert failed.value.filename == str(path)
    assert len(_open_descriptors()) == before


@needs_proc_fds
@pytest.mark.parametrize("name", ["proof.key", "signing.pem"])
def test_a_failed_write_of_a_new_key_leaves_no_temporary_file_and_no_descriptor(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    # Before, proof.key's writer removed its temporary file only if link() failed: a write or fsync that failed
    # (a full disk) left ".proof.key.<hex>.tmp", holding a secret, in the key directory.
    directory = tmp_path / "keys"
    if name == "signing.pem":
        _load(directory)
        (directory / name).unlink()  # the proof secret is there; the signing keys are created next
    else:
        directory.mkdir(mode=0o700)

    def full_disk(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    before = len(_open_descriptors())
    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", full_disk)
        with pytest.raises(OSError, match=re.escape(os.strerror(errno.ENOSPC))) as failed:
            _load(directory)
    assert failed.value.errno == errno.ENOSPC
    assert sorted(p.name for p in directory.iterdir()) == (["proof.key"] if name == "signing.pem" else [])
    assert f".{name}." in str(failed.value.filename)  # the file being written, not a descriptor's number
    assert len(_open_descriptors()) == before


@pytest.mark.parametrize("name", ["proof.key", "signing.pem"])
async def test_serve_exits_2_naming_a_directory_in_place_of_a_key_file_before_opening_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    config = _serve_config(tmp_path)
    (tmp_path / "identity.keys").mkdir(mode=0o700)
    (tmp_path / "identity.keys" / name).mkdir()
    async with asyncio.timeout(10):
        assert await serve(config) == 2
    err = capsys.readouterr().err
    assert err == f"identity-core: {tmp_path / 'identity.keys' / name}: a key file must be a regular file, " \
                  "not a directory\n"
    assert not (tmp_path / "identity.db").exists()


@pytest.mark.parametrize("name", ["proof.key", "signing.pem"])
def test_identity_core_serve_exits_2_naming_a_directory_in_place_of_a_key_file(tmp_path: Path, name: str) -> None:
    # The command as an operator runs it: before, "identity-core: [Errno 21] Is a directory: 7", naming neither
    # the file nor which of the two keys it was.
    config = write_config(tmp_path, free_port(), free_port())
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys" / name).mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "identity_core.cli", "serve", "--config", str(config)],
        capture_output=True, text=True, timeout=60, cwd=str(tmp_path), env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 2
    assert done.stderr == f"identity-core: {tmp_path / 'keys' / name}: a key file must be a regular file, " \
                          "not a directory\n"
    assert not (tmp_path / "identity.db").exists()
