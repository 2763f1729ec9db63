"""Processes as tests see them on Linux: whether one still runs, and the tree below one (from ``/proc``)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["descendants", "running"]


def running(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie: an orphan that exited stays a zombie until whoever
    adopted it reaps it, and a zombie runs nothing."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"  # the state follows the name, which may hold spaces or parentheses


def descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid``: the children of any of its threads, recursively."""
    found: set[int] = set()
    todo = [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            found.update(children)
            todo.extend(children)
    return found
