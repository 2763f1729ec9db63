"""Where a run's output files go: the one rule every output (JSON and JUnit reports, pcap, subscriber lists)
follows before it is written, and the temporary file it is written through.

An output is written to a new file beside its path and renamed onto it, so a reader never sees half of it. A
symbolic link is followed first (:func:`resolve_output`): a rename onto the link would replace the link and leave
its target stale. What the path leads to must then be missing or a regular file. A directory cannot be renamed
over; a FIFO, socket or device is refused rather than written into, because opening a FIFO for writing blocks
until a reader comes (which could be never) and a rename would replace it with a regular file. The commands check
this before a run starts (``unwritable_reason`` in :mod:`carrier_sim.runner.command`) and the writers check it
again, for any other caller, with the same words.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Final

__all__ = [
    "DIRECTORY",
    "AbandonRequest",
    "NotAnOutputFile",
    "clashes",
    "existing_kind",
    "open_beside",
    "resolve_output",
    "same_file",
]

#: What :func:`existing_kind` calls a directory.
DIRECTORY: Final = "a directory"

_KINDS: Final = ((stat.S_ISDIR, DIRECTORY), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
                 (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


class NotAnOutputFile(OSError):
    """An output path that leads to something no output is written to: a directory, a FIFO, a socket or a device.

    ``kind`` is what is there (:func:`existing_kind`), ``filename`` where the links led, and ``strerror`` the
    sentence every command prints for it. ``errno`` is ``EISDIR`` for a directory (as a rename onto it would have
    said), ``EINVAL`` otherwise."""

    def __init__(self, path: str, kind: str) -> None:
        if kind == DIRECTORY:
            super().__init__(errno.EISDIR, "is a directory", path)
        else:
            super().__init__(errno.EINVAL, f"is not a regular file ({kind}): outputs are written to a new file "
                                           f"renamed into place, never into a pipe or device", path)
        self.kind = kind


def existing_kind(path: str | os.PathLike[str]) -> str | None:
    """What ``path`` is when it exists as something other than a regular file (:data:`DIRECTORY`, ``"a FIFO"``,
    ``"a socket"``, ``"a character device"``, ``"a block device"``), following symbolic links; None for a
    regular file or nothing at all. Raises :class:`OSError` when it cannot be told (a loop of links, a directory
    on the way that cannot be searched)."""
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None  # nothing there yet: the output makes it
    for test, kind in _KINDS:
        if test(mode):
            return kind
    return None


def resolve_output(path: str | os.PathLike[str]) -> Path:
    """Where an output named ``path`` is written: the path with every symbolic link followed.

    Raises :class:`NotAnOutputFile` when that exists as a directory, FIFO, socket or device, and the
    :class:`OSError` of :func:`os.stat` when what is there cannot be told."""
    real = Path(os.path.realpath(path))
    kind = existing_kind(real)
    if kind is not None:
        raise NotAnOutputFile(os.fspath(real), kind)
    # And what the path itself leads to: os.stat follows /proc's fd links (/dev/stdout -> /proc/self/fd/1) to the
    # pipe they stand for, where realpath only gives a name like "/proc/123/fd/pipe:[4567]" that stat calls missing,
    # so a pipe passed the check and the output failed on its rename after the whole run.
    kind = existing_kind(path)
    if kind is not None:
        raise NotAnOutputFile(os.fspath(path), kind)
    return real


def same_file(output: str | os.PathLike[str], other: str | os.PathLike[str]) -> bool:
    """Whether writing an output at ``output`` replaces what is at ``other``: both lead, every symbolic link
    followed (as outputs are written, :func:`resolve_output`), to one name in one directory -- the same path, or
    the same directory reached another way (a bind mount). A hard link to ``other`` is not: the output's rename
    replaces that name only, and ``other`` keeps its content."""
    mine, theirs = Path(os.path.realpath(output)), Path(os.path.realpath(other))
    if mine == theirs:
        return True
    if mine.name != theirs.name:
        return False
    try:
        return os.path.samefile(mine.parent, theirs.parent)
    except OSError:  # a directory that does not exist (yet) is not one that exists
        return False


def clashes(outputs: Sequence[tuple[str, str | os.PathLike[str]]],
            inputs: Sequence[tuple[str, str | os.PathLike[str]]] = ()) -> list[str]:
    """Why ``outputs`` (each an option and its path, ``("--json", path)``) cannot all be written: two of them that
    are one file, where the one written last would silently replace the other (a JSON report where CI reads the
    JUnit XML), and one that is one of ``inputs`` (each a description and its path, ``("the scenario file",
    path)``), which it would replace. One sentence per clash, naming both; empty when there is none."""
    problems = []
    for i, (flag, path) in enumerate(outputs):
        for other_flag, other in outputs[:i]:
            if same_file(path, other):
                problems.append(f"{other_flag} {os.fspath(other)} and {flag} {os.fspath(path)} are one file; give "
                                f"each output a file of its own")
        for what, source in inputs:
            if same_file(path, source):
                problems.append(f"{flag} {os.fspath(path)} is {what} ({os.fspath(source)}); an output would "
                                f"replace it")
    return problems


#: What :func:`open_beside` adds to an output's name: a dot before it, then a dot, mkstemp's 8 random characters
#: and this suffix after it.
_PART_SUFFIX: Final = ".part"
_PART_EXTRA: Final = len(".") + len(".") + 8 + len(_PART_SUFFIX)
#: The longest file name (in bytes) assumed where the filesystem does not say: Linux's and most others' NAME_MAX.
_DEFAULT_NAME_MAX: Final = 255


def _name_max(directory: str | os.PathLike[str]) -> int:
    """The longest file name, in bytes, that ``directory``'s filesystem takes (``NAME_MAX``); 255 when it cannot
    be told (no such directory yet, no limit reported)."""
    try:
        limit = os.pathconf(directory, "PC_NAME_MAX")
    except (OSError, ValueError):
        return _DEFAULT_NAME_MAX
    return limit if limit > 0 else _DEFAULT_NAME_MAX


def _part_prefix(target: Path) -> str:
    """The temporary file's prefix: ``.NAME.``, NAME cut short (by whole characters) so that the whole temporary
    name fits the filesystem. Uncut, it is 15 bytes longer than the output's own name, so a name within 15 bytes
    of the limit passed every check before the run and failed to be written after it (ENAMETOOLONG)."""
    room = max(0, _name_max(target.parent) - _PART_EXTRA)
    name = target.name
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return f".{name}."


def open_beside(target: Path) -> tuple[BinaryIO, Path]:
    """A new, empty, hidden file in ``target``'s directory, open for writing bytes, and its path: what an output is
    written into before it is renamed onto ``target`` (the same directory, so the rename stays on one filesystem
    and is atomic). Its name is ``target``'s, cut short if need be, so that any name the directory takes can be
    written through it. The caller closes it and renames or removes it."""
    fd, tmp = tempfile.mkstemp(prefix=_part_prefix(target), suffix=_PART_SUFFIX, dir=target.parent)
    try:
        # mkstemp makes the file owner-only; an output is an artifact a CI job hands on (often as another user), so
        # it gets the mode any file the user creates would get: 0666 less the umask, which can only be read by
        # setting it (and at once back).
        umask = os.umask(0o022)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        return os.fdopen(fd, "wb"), Path(tmp)
    except BaseException:
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)
        raise


class AbandonRequest:
    """A request, from another thread (a signal handler), to give up an output still being written, which either
    takes effect or comes too late, and says which.

    The writer asks the request itself (it is callable: True once asked) between steps, and calls :meth:`complete`
    once everything is written, just before it publishes. The two sides decide under one lock, so :meth:`ask` can
    say truthfully whether the output will be abandoned: a request that comes while the complete file is being
    renamed into place would otherwise be reported as abandoning a file that is in fact kept."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._asked = False
        self._completed = False

    def __call__(self) -> bool:
        """Whether the output was asked to be abandoned (and was not complete by then)."""
        return self._asked

    def ask(self) -> bool:
        """Ask for the output to be abandoned: True when it will be (nothing of it will be published), False when
        it was already complete, so it is kept."""
        with self._lock:
            if not self._completed:
                self._asked = True
            return self._asked

    def complete(self) -> bool:
        """Writer: everything is written; True when it may be published (no request came, and none can take
        effect any more), False when it was asked to be abandoned."""
        with self._lock:
            if not self._asked:
                self._completed = True
            return self._completed
