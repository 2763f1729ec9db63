"""Reading a key file without following a link planted in its place, and writing one without leaving anything behind.

The key directory (:mod:`identity_core.keys`) holds the proof MAC secret and the certificate signing keys. A
symbolic link planted in it would make the service take whatever file the link names for its secret: sign proofs
and certificates with it, publish its public half. So a key file is opened with ``O_NOFOLLOW``, and a link is
refused with :class:`SymlinkedKeyFile`, a clear error naming the path, before the service starts: not followed,
not replaced. Writes never follow a link either: they go to a fresh temporary name created with ``O_EXCL``
(which fails on a link rather than following it) and are published with ``link()`` or ``rename()``, which act on
the name, never through it.

Anything else that is not a regular file -- a directory, a FIFO, a device -- is refused just as clearly, with
:class:`NotARegularKeyFile` naming the path and what is there. ``open`` succeeds on a directory, so the test is
``fstat`` on the descriptor, before a byte is read: ``os.fdopen`` on a directory's descriptor raises
``IsADirectoryError`` naming the descriptor number ("Is a directory: 3") instead of the path, and does not close
the descriptor it was given. The descriptor is therefore read with ``os.read`` and closed by this module on every
path, success or failure; an ``OSError`` from ``fstat`` or ``read`` is raised again naming the path.

Refusing links has a price: a Kubernetes Secret volume presents each key as a link into its ``..data``
directory, so such a volume cannot be the key directory itself. Mount each file with ``subPath`` (a bind mount,
not a link) or copy the keys into the directory at start.

The mode comes from ``fstat`` on the descriptor that is read, not from a ``stat`` of the path beforehand: the
warning about a file shared with group or others is then about the very file whose bytes were loaded.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path
from typing import Final

__all__ = ["KEY_FILE_MODE", "NotARegularKeyFile", "SymlinkedKeyFile", "read_key_file", "write_temporary_key_file"]

#: Mode of a key file written here: read and write for the owner only.
KEY_FILE_MODE: Final = 0o600

_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)
_READ_SIZE: Final = 1 << 16


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), f"a file of type {stat.S_IFMT(mode):o}")


class NotARegularKeyFile(ValueError):
    """A key file is not a regular file (a directory, a FIFO, a device, a symbolic link): refused, naming it."""

    def __init__(self, path: Path, kind: str, detail: str = "") -> None:
        super().__init__(f"{path}: a key file must be a regular file, not {kind}{detail}")
        self.path = path
        self.kind = kind


class SymlinkedKeyFile(NotARegularKeyFile):
    """A key file is a symbolic link: refused, since the service would read (or overwrite) the file it names."""

    def __init__(self, path: Path) -> None:
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:  # pragma: no cover - replaced between the open and here
            target = ""
        super().__init__(path, "a symbolic link", f"{target}; refusing to read or write through it")


def _naming(path: Path, err: OSError) -> OSError:
    """``err`` again with ``path`` as its file name (``fstat`` and ``read`` on a descriptor name none); the
    constructor picks the same subclass (``IsADirectoryError`` for EISDIR...)."""
    return OSError(err.errno, err.strerror, str(path)) if err.errno is not None else err


def read_key_file(path: Path) -> tuple[bytes, int]:
    """The content of the key file ``path`` and its ``st_mode``; :class:`SymlinkedKeyFile` if it is a link,
    :class:`NotARegularKeyFile` if it is anything else but a regular file, ``OSError`` naming ``path`` otherwise.
    The descriptor is closed whatever happens."""
    # O_NONBLOCK: a FIFO put in the file's place would otherwise block the open until a writer came, hanging the
    # start; opened at once, it is refused below as not a regular file. Reads of a regular file ignore the flag.
    # O_NOCTTY: a terminal put in its place must not become the process's controlling terminal by being opened.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError:
        # Linux and macOS say ELOOP for a link under O_NOFOLLOW, FreeBSD EMLINK: ask the file system instead.
        if os.path.islink(path):
            raise SymlinkedKeyFile(path) from None
        raise
    try:
        try:
            mode = os.fstat(fd).st_mode
        except OSError as err:  # pragma: no cover - fstat of a descriptor just opened
            raise _naming(path, err) from err
        if not stat.S_ISREG(mode):
            # Before any read: a directory's read fails with EISDIR, a device's may never end.
            raise NotARegularKeyFile(path, _kind(mode))
        chunks: list[bytes] = []
        try:
            while chunk := os.read(fd, _READ_SIZE):
                chunks.append(chunk)
        except OSError as err:
            raise _naming(path, err) from err
        return b"".join(chunks), mode
    finally:
        os.close(fd)


def write_temporary_key_file(path: Path, data: bytes) -> Path:
    """``data`` written durably to a new temporary file beside ``path`` with mode :data:`KEY_FILE_MODE`, whose
    name is returned for the caller to publish (``link`` or ``rename``) and then remove. On failure nothing is left
    behind: the descriptor is closed and the temporary file removed."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # O_EXCL: a fresh file, never one (or a link) already there; with mode 0600, the secret never exists on disk
    # with wider permissions, not even for a moment.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, KEY_FILE_MODE)
    try:
        try:
            os.fchmod(fd, KEY_FILE_MODE)  # open's mode went through the umask: exactly 0600, whatever it is
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        if isinstance(err, OSError):
            raise _naming(temporary, err) from err
        raise
    return temporary
