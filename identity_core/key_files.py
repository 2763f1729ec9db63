"""Reading a key file without following a link planted in its place.

The key directory (:mod:`identity_core.keys`) holds the proof MAC secret and the certificate signing keys. A
symbolic link planted in it would make the service take whatever file the link names for its secret: sign proofs
and certificates with it, publish its public half. So a key file is opened with ``O_NOFOLLOW``, and a link is
refused with :class:`SymlinkedKeyFile`, a clear error naming the path, before the service starts: not followed,
not replaced. Writes never follow a link either: they go to a fresh temporary name created with ``O_EXCL``
(which fails on a link rather than following it) and are published with ``link()`` or ``rename()``, which act on
the name, never through it.

Refusing links has a price: a Kubernetes Secret volume presents each key as a link into its ``..data``
directory, so such a volume cannot be the key directory itself. Mount each file with ``subPath`` (a bind mount,
not a link) or copy the keys into the directory at start.

The mode comes from ``fstat`` on the descriptor that is read, not from a ``stat`` of the path beforehand: the
warning about a file shared with group or others is then about the very file whose bytes were loaded.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["SymlinkedKeyFile", "read_key_file"]


class SymlinkedKeyFile(ValueError):
    """A key file is a symbolic link: refused, since the service would read (or overwrite) the file it names."""

    def __init__(self, path: Path) -> None:
        try:
            target = f" (to {os.readlink(path)})"
        except OSError:  # pragma: no cover - replaced between the open and here
            target = ""
        super().__init__(f"{path}: a key file must be a regular file, not a symbolic link{target}; "
                         "refusing to read or write through it")
        self.path = path


def read_key_file(path: Path) -> tuple[bytes, int]:
    """The content of the key file ``path`` and its ``st_mode``; :class:`SymlinkedKeyFile` if it is a link,
    ``ValueError`` if it is not a regular file, ``OSError`` as ``open`` raises it otherwise."""
    # O_NONBLOCK: a FIFO put in the file's place would otherwise block the open until a writer came, hanging the
    # start; opened at once, it is refused below as not a regular file. Reads of a regular file ignore the flag.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        # Linux and macOS say ELOOP for a link under O_NOFOLLOW, FreeBSD EMLINK: ask the file system instead.
        if os.path.islink(path):
            raise SymlinkedKeyFile(path) from None
        raise
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ValueError(f"{path}: a key file must be a regular file")
        return handle.read(), mode
