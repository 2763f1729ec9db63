"""Tests for carrier_sim.outputs: the one rule every output path follows, and the temporary file it is written
through."""

from __future__ import annotations

import errno
import json
import os
import socket
import stat
from pathlib import Path

import pytest

from carrier_sim.outputs import (
    DIRECTORY,
    AbandonRequest,
    NotAnOutputFile,
    clashes,
    existing_kind,
    open_beside,
    resolve_output,
    same_file,
)
from carrier_sim.report.json_report import write_report


def test_a_missing_path_or_a_regular_file_is_where_the_output_goes(tmp_path: Path) -> None:
    assert resolve_output(tmp_path / "new.json") == tmp_path / "new.json"
    (tmp_path / "old.json").write_text("{}")
    assert resolve_output(tmp_path / "old.json") == tmp_path / "old.json"
    assert existing_kind(tmp_path / "old.json") is None
    assert existing_kind(tmp_path / "missing" / "new.json") is None
    assert existing_kind(tmp_path / "old.json" / "under") is None  # a file on the way: the write says so


def test_links_are_followed_to_where_they_lead(tmp_path: Path) -> None:
    (tmp_path / "real.json").write_text("{}")
    (tmp_path / "to_file").symlink_to(tmp_path / "real.json")
    (tmp_path / "to_new").symlink_to(tmp_path / "later.json")
    assert resolve_output(tmp_path / "to_file") == tmp_path / "real.json"
    assert resolve_output(tmp_path / "to_new") == tmp_path / "later.json"


def test_a_fifo_a_socket_and_a_directory_are_refused_with_one_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "link").symlink_to(tmp_path / "pipe")
    for path in (tmp_path / "pipe", tmp_path / "link"):
        with pytest.raises(NotAnOutputFile) as refused:
            resolve_output(path)
        assert refused.value.kind == "a FIFO"
        assert refused.value.errno == errno.EINVAL
        assert refused.value.filename == str(tmp_path / "pipe")  # where the link led
        assert refused.value.strerror == ("is not a regular file (a FIFO): outputs are written to a new file "
                                          "renamed into place, never into a pipe or device")
    with socket.socket(socket.AF_UNIX) as sock:
        monkeypatch.chdir(tmp_path)  # a short relative name: AF_UNIX paths are limited to about 100 octets
        sock.bind("sock")
        assert existing_kind("sock") == "a socket"
        with pytest.raises(OSError, match=r"not a regular file \(a socket\)"):
            resolve_output("sock")
    with pytest.raises(NotAnOutputFile) as refused:
        resolve_output(tmp_path)
    assert (refused.value.kind, refused.value.errno, refused.value.strerror) == (DIRECTORY, errno.EISDIR,
                                                                                 "is a directory")
    assert stat.S_ISFIFO((tmp_path / "pipe").stat().st_mode)  # nothing replaced or opened


def test_a_loop_of_links_cannot_be_examined(tmp_path: Path) -> None:
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    with pytest.raises(OSError, match="Too many levels of symbolic links") as err:
        resolve_output(tmp_path / "loop")
    assert not isinstance(err.value, NotAnOutputFile)
    assert err.value.errno == errno.ELOOP


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_the_temporary_file_is_beside_hidden_and_gets_the_umasks_mode(tmp_path: Path, umask: int, mode: int) -> None:
    before = os.umask(umask)
    try:
        out, tmp = open_beside(tmp_path / "run.pcap")
        with out:
            out.write(b"octets")
    finally:
        os.umask(before)
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".run.pcap.")
    assert tmp.name.endswith(".part")
    assert tmp.read_bytes() == b"octets"
    assert stat.S_IMODE(tmp.stat().st_mode) == mode
    assert os.umask(before) == before  # the probe put the umask back


@pytest.mark.parametrize("name", ["r" * 245 + ".json", "\u00e9" * 120 + ".pcap", "x" * 255])
def test_any_name_the_directory_takes_can_be_written_through_its_temporary_file(tmp_path: Path, name: str) -> None:
    # The temporary name (".NAME.<8 random>.part") is 15 bytes longer than the output's: a 250-byte name passed
    # every check before the run, and the report was lost after it (ENAMETOOLONG). Now NAME is cut to fit, by
    # whole characters, and the file stays hidden beside its target.
    limit = os.pathconf(tmp_path, "PC_NAME_MAX")
    assert len(os.fsencode(name)) <= limit
    out, tmp = open_beside(tmp_path / name)
    with out:
        out.write(b"octets")
    assert tmp.parent == tmp_path
    assert len(os.fsencode(tmp.name)) <= limit
    assert tmp.name.startswith("." + name[:100])
    assert tmp.name.endswith(".part")
    tmp.name.encode("utf-8")  # no character cut in half
    write_report(tmp_path / name, {"ok": True})
    assert json.loads((tmp_path / name).read_text(encoding="utf-8")) == {"ok": True}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({name, tmp.name})


def test_outputs_that_are_one_file_or_an_input_are_named_in_pairs(tmp_path: Path) -> None:
    (tmp_path / "in.yaml").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "in.yaml")
    (tmp_path / "d").mkdir()
    (tmp_path / "d_link").symlink_to(tmp_path / "d")
    os.link(tmp_path / "in.yaml", tmp_path / "hard")
    assert same_file(tmp_path / "link", tmp_path / "in.yaml")
    assert same_file(tmp_path / "d_link" / "new", tmp_path / "d" / "new")  # neither exists yet
    assert same_file(tmp_path / "d" / ".." / "in.yaml", tmp_path / "in.yaml")
    assert not same_file(tmp_path / "hard", tmp_path / "in.yaml")  # renamed onto, the other name is untouched
    assert not same_file(tmp_path / "a", tmp_path / "b")
    outputs = [("--json", tmp_path / "o"), ("--junit", tmp_path / "d" / ".." / "o"), ("--pcap", tmp_path / "link")]
    assert clashes(outputs, [("the scenario file", tmp_path / "in.yaml")]) == [
        f"--json {tmp_path / 'o'} and --junit {tmp_path / 'd' / '..' / 'o'} are one file; give each output a file "
        "of its own",
        f"--pcap {tmp_path / 'link'} is the scenario file ({tmp_path / 'in.yaml'}); an output would replace it",
    ]
    assert clashes([("--json", tmp_path / "o"), ("--junit", tmp_path / "p")]) == []


def test_a_request_to_abandon_takes_effect_until_the_output_is_complete() -> None:
    early = AbandonRequest()
    assert not early()
    assert early.ask()  # it will be abandoned
    assert early()  # the writer, between steps, sees it
    assert not early.complete()  # and may not publish
    assert early.ask()


def test_a_request_to_abandon_after_completion_says_the_output_is_kept() -> None:
    late = AbandonRequest()
    assert late.complete()
    assert not late.ask()  # too late: kept, and the asker is told so
    assert not late()


def test_a_pipe_named_through_procs_fd_links_is_refused() -> None:
    # /dev/stdout in a CI job is such a link to a pipe: realpath alone gives "/proc/PID/fd/pipe:[N]", which does
    # not exist as a name, so the pipe passed the check and the output failed on its rename after the whole run.
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("no /proc fd links on this system")
    read_end, write_end = os.pipe()
    try:
        with pytest.raises(NotAnOutputFile) as refused:
            resolve_output(f"/proc/self/fd/{write_end}")
        assert refused.value.kind == "a FIFO"
    finally:
        os.close(read_end)
        os.close(write_end)
