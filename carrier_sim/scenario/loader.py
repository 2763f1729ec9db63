"""Reading scenario files: YAML with positions, includes, ``--set`` overrides, schema and semantic checks, model.

Theory of operation
-------------------
1. Each file is parsed with ruamel.yaml's round-trip loader, which remembers the line and column of every key and
   value, and turned into a tree of :class:`_Node` (plain values, each with the position it came from).
2. ``include:`` files are loaded first, recursively, relative to the including file, and the including file is
   merged over them (:func:`_merge`). Nodes keep their own positions, so an error in an included file points
   into that file.
3. ``--set path=value`` overrides are applied to the merged tree; the nodes they create are positioned at
   ``--set:N:COL`` (N counts the overrides from 1, COL is the column in that argument).
4. The tree, as plain data, is validated against :data:`carrier_sim.scenario.schema.SCHEMA`; every
   ``ValidationError`` is translated once (:func:`_explain`) into a message and mapped back to a position through
   its instance path. Unknown keys get a "did you mean".
5. Rules relating several values (:class:`_Semantics`) are checked on the same tree. They are written to skip
   values of the wrong type, which the schema has already reported, so one mistake yields one message.
6. Only when no problem was found is the typed model (:mod:`carrier_sim.scenario.model`) built.

Every problem is collected; :class:`ScenarioError` carries them all, in file order.
"""

from __future__ import annotations

import difflib
import functools
import ipaddress
import math
import os
import re
import stat
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple, cast

import phonenumbers
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import TaggedScalar
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.reader import ReaderError
from ruamel.yaml.scalarbool import ScalarBoolean

from carrier_sim.population.identities import SIM_GENERATIONS
from carrier_sim.scenario.model import (
    DEFAULT_CAMARA_TOKEN,
    DEFAULT_ROAMING_DELAY,
    FLOW_NAMES,
    METRICS,
    Account,
    CamaraDoor,
    Carrier,
    Check,
    Distribution,
    Doors,
    Event,
    Flow,
    Load,
    NumberRange,
    Phase,
    Population,
    RcsDoor,
    Scenario,
    Smsc,
    SmtpDoor,
    SystemUnderTest,
)
from carrier_sim.scenario.plan import phones_per_carrier
from carrier_sim.scenario.schema import SCHEMA
from identity_core.config import ConfigError
from identity_core.config import parse_limits as identity_core_limits

__all__ = ["ScenarioError", "ScenarioProblem", "load_scenario", "parse_number_range"]

# Bounds on what a document may expand to: YAML aliases can make a few lines describe billions of nodes.
_MAX_NODES: Final = 100_000
_MAX_DEPTH: Final = 100
_MAX_FILES: Final = 100
#: Bound on the YAML nodes (keys, values, list items, aliases) written in the scenario, its includes and its
#: --set values, counted while ruamel.yaml composes them: its pure-Python parser takes ~30 us a node, so 20,000
#: are ~0.6 s, where the 16 MiB once allowed took minutes. The largest bundled scenario has under 400.
_MAX_TEXT_NODES: Final = 20_000
#: Bound on the bytes of the scenario with its includes, in all: a scenario is a few kilobytes; /dev/zero or a
#: runaway generator is not one. Scanning 1 MiB holding no node at all (blank lines, a comment) takes ~0.5 s.
_MAX_FILE_BYTES: Final = 1024 * 1024
_SET: Final = "--set"
#: The largest integer a scenario may hold (a seed is a signed 64-bit number; nothing else comes close).
_MAX_INT: Final = (1 << 63) - 1
_TOLERANCE: Final = 1e-6


@dataclass(frozen=True, slots=True)
class ScenarioProblem:
    """One thing wrong with a scenario, where it is (1-based line and column) and what it is."""

    file: str
    line: int
    col: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.message}"


class ScenarioError(ValueError):
    """A scenario that cannot be used; ``errors`` lists every problem found, ``str()`` one per line."""

    def __init__(self, errors: Sequence[ScenarioProblem]) -> None:
        self.errors: list[ScenarioProblem] = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self.errors)


class _Pos(NamedTuple):
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


_Scalar = str | int | float | bool | None


@dataclass(slots=True)
class _Node:
    """A value from a file (or an override) and where it came from."""

    value: dict[str, _Node] | list[_Node] | _Scalar
    pos: _Pos
    #: Where its key is, when the node is the value of a mapping entry: "missing key" and "unknown key" point
    #: there.
    key_pos: _Pos | None = None
    #: Already reported while reading (not finite, unsupported tag, too deep): the schema's complaint about the
    #: same value would only repeat it.
    bad: bool = False


class _TooLarge(Exception):
    """Raised to abandon converting a document that expands beyond :data:`_MAX_NODES`."""


class _TooManyNodes(Exception):
    """Raised to abandon composing text that holds more than :data:`_MAX_TEXT_NODES` nodes, at the 0-based line
    and column of the node that would have been one too many."""

    def __init__(self, line: int, col: int) -> None:
        super().__init__(line, col)
        self.line = line
        self.col = col


class _BoundedComposer(Composer):
    """ruamel.yaml's composer, stopping after ``budget`` nodes. The bound on values (:data:`_MAX_NODES`) is
    checked on what ruamel.yaml built, so a long file was parsed whole -- minutes -- before being refused."""

    def __init__(self, loader: YAML, budget: int) -> None:
        super().__init__(loader)  # installs itself as the loader's composer
        self.budget = budget
        self.composed = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self.composed += 1
        if self.composed > self.budget:
            mark = self.parser.peek_event().start_mark
            raise _TooManyNodes(int(mark.line), int(mark.column))
        return super().compose_node(parent, index)


def _bounded_yaml(budget: int) -> tuple[YAML, _BoundedComposer]:
    """A round-trip YAML loader that composes at most ``budget`` nodes, and its composer (which counts them)."""
    yaml = YAML(typ="rt", pure=True)
    return yaml, _BoundedComposer(yaml, budget)


@dataclass(slots=True)
class _Context:
    problems: list[ScenarioProblem] = field(default_factory=list)
    #: Files in the order first seen, to sort problems by file in reading order rather than alphabetically.
    files: list[str] = field(default_factory=list)
    loaded: int = 0
    #: Values converted so far, over every file: the bound on aliases holds for the scenario with its includes,
    #: or a file of aliases included many times would multiply it.
    nodes: int = 0
    #: YAML nodes composed so far, and bytes read so far, over every file, for the same reason.
    composed: int = 0
    read: int = 0
    #: Every file read, links followed, in reading order (a file included twice, once).
    real_files: list[Path] = field(default_factory=list)

    def report(self, pos: _Pos, message: str) -> None:
        if pos.file not in self.files:
            self.files.append(pos.file)
        self.problems.append(ScenarioProblem(pos.file, pos.line, pos.col, message))

    def sorted_problems(self) -> list[ScenarioProblem]:
        rank = {name: i for i, name in enumerate(self.files)}
        unique = dict.fromkeys(self.problems)
        return sorted(unique, key=lambda p: (rank.get(p.file, len(rank)), p.line, p.col))


# --------------------------------------------------------------------------------------------------- reading YAML


def _suggest(word: str, options: Sequence[str]) -> str:
    """ "; did you mean 'X'?" for the closest option, or "". Ties go to the option listed first (the carrier
    declared first, the key the schema lists first), which difflib.get_close_matches does not promise."""
    best, score = "", 0.0
    for option in options:
        ratio = difflib.SequenceMatcher(None, word, option).ratio()
        if ratio >= 0.6 and ratio > score:
            best, score = option, ratio
    return f"; did you mean {best!r}?" if best else ""


def _show(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return repr(value)
    return _number(value) if isinstance(value, int | float) else repr(value)


def _show_big(value: int) -> str:
    magnitude = abs(value)
    if magnitude < 10**24:
        return str(value)
    sign = "a negative" if value < 0 else "a"
    # str() of an int over ~4300 digits raises (CPython's limit); the bit length bounds the digits instead.
    digits = f"{len(str(magnitude))}" if magnitude.bit_length() < 14_000 else "over 4,000"
    return f"{sign} number of {digits} digits"


def _number(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


class _Converter:
    """Turns what ruamel.yaml built into :class:`_Node` trees, positions mapped by ``where(line0, col0)``."""

    def __init__(self, ctx: _Context, where: Callable[[int, int], _Pos]) -> None:
        self._ctx = ctx
        self._where = where

    def _lc(self, data: object, kind: str, key: object, fallback: _Pos) -> _Pos:
        # ruamel records positions in ``lc``; keys that came through a merge key (``<<: *anchor``) or a complex
        # key have none, and then the enclosing node's position is the best we have.
        try:
            lc = getattr(data, "lc")  # noqa: B009 - ruamel's attribute, absent on plain containers
            line, col = getattr(lc, kind)(key)
            return self._where(int(line), int(col))
        except (AttributeError, KeyError, IndexError, TypeError, ValueError):
            return fallback

    def convert(self, data: object, pos: _Pos, key_pos: _Pos | None = None, path: tuple[str | int, ...] = ()) -> _Node:
        self._ctx.nodes += 1
        if self._ctx.nodes > _MAX_NODES:
            raise _TooLarge
        if len(path) > _MAX_DEPTH:
            self._ctx.report(pos, f"{_dotted(path[:3])}...: nested more than {_MAX_DEPTH} levels deep")
            return _Node(None, pos, key_pos, bad=True)
        if isinstance(data, dict):
            out: dict[str, _Node] = {}
            for key, value in data.items():
                kpos = self._lc(data, "key", key, pos)
                vpos = self._lc(data, "value", key, kpos)
                if isinstance(key, TaggedScalar) and isinstance(text := self._scalar(key), str):
                    key = text  # ``!!str seed: 1`` names the key seed, as ``"seed": 1`` does
                # A key that is not text is kept under a printable stand-in, so that the messages naming its
                # path (and the key itself) can be written to a terminal.
                name = _printable(key) if isinstance(key, str) else str(key)
                child = self.convert(value, vpos, kpos, (*path, name))
                if not isinstance(key, str):
                    self._ctx.report(kpos, f"{_dotted(path)}: a key must be a string, got {self._show_key(key)}")
                    child.bad = True
                elif (why := _not_text(key)) is not None:
                    self._ctx.report(kpos, f"{_dotted(path)}: key {key!r} is not valid Unicode text ({why})")
                    child.bad = True
                out[name] = child
            return _Node(out, pos, key_pos)
        if isinstance(data, list):
            items = [
                self.convert(item, self._lc(data, "item", i, pos), None, (*path, i)) for i, item in enumerate(data)
            ]
            return _Node(items, pos, key_pos)
        scalar = self._scalar(data)
        if isinstance(scalar, float) and not math.isfinite(scalar):
            self._ctx.report(pos, f"{_dotted(path)}: {_show(scalar)} is not a finite number")
            return _Node(None, pos, key_pos, bad=True)
        if type(scalar) is int and abs(scalar) > _MAX_INT:
            # No key takes a value this large, and a float of it (a share, a threshold) would overflow.
            self._ctx.report(pos, f"{_dotted(path)}: {_show_big(scalar)} is too large (at most {_MAX_INT})")
            return _Node(None, pos, key_pos, bad=True)
        if isinstance(scalar, str) and (why := _not_text(scalar)) is not None:
            self._ctx.report(pos, f"{_dotted(path)}: not valid Unicode text ({why})")
            return _Node(None, pos, key_pos, bad=True)
        if scalar is _UNSUPPORTED:
            what = (f"tag {_tag_name(data)}" if isinstance(data, TaggedScalar) else
                    f"value ({type(data).__name__})")
            self._ctx.report(pos, f"{_dotted(path)}: unsupported YAML {what}; use a string, number or boolean")
            return _Node(None, pos, key_pos, bad=True)
        return _Node(scalar, pos, key_pos)

    @classmethod
    def _show_key(cls, key: object) -> str:
        # A complex key (``? [a, b]``, ``? {a: 1}``) reaches here as ruamel's key tuple or frozen mapping.
        if isinstance(key, Mapping):
            return "a mapping"
        if isinstance(key, Sequence) and not isinstance(key, str):
            return "a sequence"
        if isinstance(key, TaggedScalar):
            return f"a value tagged {_tag_name(key)}"
        scalar = cls._scalar(key)
        return f"a value of YAML type {type(key).__name__}" if scalar is _UNSUPPORTED else _show(scalar)

    @staticmethod
    def _scalar(data: object) -> Any:
        # ruamel's round-trip types subclass the plain ones (ScalarFloat, ScalarInt, ScalarBoolean, which is an
        # int); the rest of the loader and jsonschema want exactly bool, int, float, str.
        if isinstance(data, bool | ScalarBoolean):
            return bool(data)
        if isinstance(data, int):
            return int(data)
        if isinstance(data, float):
            return float(data)
        if isinstance(data, str):
            return str(data)
        if isinstance(data, TaggedScalar) and _tag_name(data) == "!!str":
            # ruamel.yaml keeps an explicit !!str (the YAML core schema's way to say "a string": ``mcc: !!str 234``)
            # as a tagged scalar rather than a str; it is the string written, as a quoted one would be. The other
            # core tags (!!int, !!float, !!bool, !!null) arrive constructed, as their untagged values do.
            return "" if data.value is None else str(data.value)
        if data is None:
            return None
        if isinstance(data, datetime | date):
            # An unquoted date is a timestamp in YAML; no key takes one, so let it be a string and fail there.
            return data.isoformat()
        return _UNSUPPORTED


_UNSUPPORTED: Final = object()

#: The prefix of the YAML core schema's tags, which ``!!`` abbreviates (YAML 1.2.2 section 6.8.2).
_CORE_TAG_PREFIX: Final = "tag:yaml.org,2002:"


def _tag_name(data: TaggedScalar) -> str:
    """A tagged scalar's tag as a YAML file writes it: ``!!str`` for the core schema's, ``!custom`` as it is."""
    tag = getattr(data.tag, "value", data.tag)  # a Tag since ruamel.yaml 0.17.22; a plain string before
    text = str(tag)
    return "!!" + text.removeprefix(_CORE_TAG_PREFIX) if text.startswith(_CORE_TAG_PREFIX) else _printable(text)

#: A UTF-16 surrogate code point. YAML's "\ud800" escape (or argv bytes Python decoded with surrogateescape)
#: makes one; alone it is no character, and writing it as UTF-8 -- to a terminal, a report, a PDU -- raises.
_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _not_text(text: str) -> str | None:
    """Why ``text`` is not valid Unicode text (a lone surrogate, and where), or None when it is."""
    found = _SURROGATE.search(text)
    if found is None:
        return None
    return f"a lone surrogate U+{ord(found.group()):04X} at character {found.start() + 1}"


def _printable(text: str) -> str:
    """``text`` with each surrogate written as a ``\\udXXX`` escape: what a message may quote of it."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8") if _SURROGATE.search(text) else text


def _position_in(text: bytes, offset: int) -> tuple[int, int]:
    before = text[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1) + 1


def _parse_yaml(
    text: str,
    ctx: _Context,
    where: Callable[[int, int], _Pos],
    fallback: _Pos,
    path: tuple[str | int, ...] = (),
    label: str = "",
) -> _Node | None:
    """Parse one YAML document; None (and a problem reported, prefixed by ``label``) when it cannot be parsed."""
    yaml, composer = _bounded_yaml(_MAX_TEXT_NODES - ctx.composed)
    try:
        data = yaml.load(text)
    except _TooManyNodes as err:
        ctx.report(
            where(err.line, err.col),
            f"{label}too large: more than {_MAX_TEXT_NODES} YAML nodes (keys, values, list items) in the scenario, "
            "its includes and --set values; stopped here",
        )
        return None
    except MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        pos = where(mark.line, mark.column) if mark is not None else fallback
        problem = err.problem or err.context or "cannot be parsed"
        ctx.report(pos, f"{label}invalid YAML: {problem}")
        return None
    except ReaderError as err:
        # A character YAML does not allow (a control character): the reader knows its offset in the text.
        line, col = _line_col(text, err.position)
        char = err.character
        code = ord(char) if isinstance(char, str) else char
        what = f"character #x{code:04x} is not allowed" if isinstance(code, int) else str(err.reason)
        ctx.report(where(line, col), f"{label}invalid YAML: {what}")
        return None
    except Exception as err:
        # Any other failure of a third-party parser on untrusted text (a date that does not exist, an integer
        # of more digits than Python converts, a recursion limit hit by deep nesting, ...) still means "this
        # file is not usable", never a crash; the value at fault is found by constructing them one by one.
        found = _failing_scalar(text)
        pos = where(*found) if found is not None else fallback
        reason = str(err)
        if reason.startswith("Exceeds the limit"):
            reason = "a number with too many digits"  # CPython's own message names an interpreter setting
        ctx.report(pos, " ".join(f"{label}invalid YAML: {reason}".split()))
        return None
    finally:
        ctx.composed += composer.composed
    try:
        return _Converter(ctx, where).convert(data, _root_pos(data, where), None, path)
    except _TooLarge:
        # Its text is within _MAX_TEXT_NODES (below _MAX_NODES): only aliases can have multiplied it.
        ctx.report(fallback, f"{label}YAML aliases expand the scenario to more than {_MAX_NODES} values")
        return None


def _line_col(text: str, offset: int) -> tuple[int, int]:
    """0-based line and column of character ``offset`` in ``text``."""
    before = text[:offset]
    return before.count("\n"), offset - (before.rfind("\n") + 1)


def _failing_scalar(text: str) -> tuple[int, int] | None:
    """0-based line and column of the first scalar of ``text`` that ruamel.yaml cannot construct, if the text
    composes (parses into nodes) at all."""
    try:
        stack: list[Node] = [_bounded_yaml(_MAX_TEXT_NODES)[0].compose(text)]
    except Exception:
        return None
    while stack:
        node = stack.pop()
        if isinstance(node, ScalarNode):
            try:
                YAML(typ="rt", pure=True).constructor.construct_object(node, deep=True)
            except Exception:
                return node.start_mark.line, node.start_mark.column
        elif isinstance(node, MappingNode):
            for key, value in reversed(node.value):
                stack += [value, key]
        elif isinstance(node, SequenceNode):
            stack += reversed(node.value)
    return None


def _root_pos(data: object, where: Callable[[int, int], _Pos]) -> _Pos:
    lc = getattr(data, "lc", None)
    try:
        return where(int(lc.line), int(lc.col)) if lc is not None else where(0, 0)
    except (AttributeError, TypeError, ValueError):
        return where(0, 0)


def _read_bounded(real: Path, limit: int) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, what is left of :data:`_MAX_FILE_BYTES`;
    ValueError naming why not otherwise."""
    # Checked before opening: opening a FIFO for reading waits for a writer, and /dev/zero never ends.
    mode = real.stat().st_mode
    if not stat.S_ISREG(mode):
        raise ValueError(f"not a regular file ({_file_kind(mode)})")
    with real.open("rb") as file:
        raw = file.read(limit + 1)  # a bounded read: a file can grow after stat(), and /proc reports size 0
    if len(raw) > limit:
        mib = _MAX_FILE_BYTES // (1024 * 1024)
        if limit == _MAX_FILE_BYTES:
            raise ValueError(f"larger than {mib} MiB")
        raise ValueError(f"larger than the {limit} bytes left of the {mib} MiB a scenario and its includes may "
                         "hold in all")
    return raw


def _file_kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a plain file")


def _read_file(display: str, real: Path, via: _Pos | None, ctx: _Context) -> _Node | None:
    """One file as a mapping node; None (problem reported) if it cannot be read or is not a mapping."""
    start = _Pos(display, 1, 1)
    if display not in ctx.files:
        ctx.files.append(display)
    if real not in ctx.real_files:
        ctx.real_files.append(real)
    try:
        raw = _read_bounded(real, _MAX_FILE_BYTES - ctx.read)
        ctx.read += len(raw)
    except (OSError, ValueError) as err:
        reason = (err.strerror if isinstance(err, OSError) else None) or str(err)
        if via is not None:
            ctx.report(via, f"cannot include {display}: {reason}")
        else:
            ctx.report(start, f"cannot read {display}: {reason}")
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line, col = _position_in(raw, err.start)
        ctx.report(_Pos(display, line, col), f"not UTF-8 text: {err.reason}")
        return None
    root = _parse_yaml(text, ctx, lambda line, col: _Pos(display, line + 1, col + 1), start)
    if root is None:
        return None
    if not isinstance(root.value, dict):
        what = _show(root.value) if root.value is not None else "nothing"
        ctx.report(root.pos, f"a scenario file holds a mapping of keys, not {what}")
        return None
    return root


# ------------------------------------------------------------------------------------------------------ includes


@dataclass(frozen=True, slots=True)
class _Frame:
    real: Path
    display: str
    #: The include entry that loaded this file (None for the file named on the command line).
    via: _Pos | None


def _load_tree(display: str, real: Path, stack: tuple[_Frame, ...], ctx: _Context) -> _Node | None:
    ctx.loaded += 1
    root = _read_file(display, real, stack[-1].via, ctx)
    if root is None:
        return None
    assert isinstance(root.value, dict)
    include = root.value.pop("include", None)
    if include is None:
        return root
    entries = _include_entries(include, ctx)
    base: _Node | None = None
    for entry in entries:
        assert isinstance(entry.value, str)
        target_display = os.path.normpath(os.path.join(os.path.dirname(display), entry.value))
        try:
            target_real = (real.parent / entry.value).resolve()
        except (OSError, ValueError, RuntimeError) as err:
            # A name with a NUL byte, a lone surrogate, a symlink loop (RuntimeError before Python 3.13): not a
            # file that can be read.
            ctx.report(entry.pos, f"cannot include {entry.value!r}: {err}")
            continue
        target_display = _display_name(target_display, target_real)
        cycle = [i for i, frame in enumerate(stack) if frame.real == target_real]
        if cycle:
            chain = [f"{frame.via} includes {frame.display}" for frame in stack[cycle[0] + 1 :]]
            chain.append(f"{entry.pos} includes {target_display}")
            ctx.report(entry.pos, "include cycle: " + ", ".join(chain))
            continue
        if ctx.loaded >= _MAX_FILES:
            ctx.report(entry.pos, f"more than {_MAX_FILES} files included in all")
            continue
        sub = _load_tree(target_display, target_real, (*stack, _Frame(target_real, target_display, entry.pos)), ctx)
        if sub is not None:
            base = sub if base is None else _merge(base, sub)
    return root if base is None else _merge(base, root)


def _display_name(written: str, real: Path) -> str:
    """How to name an included file in messages: the path as written, collapsed, when that is the file read;
    otherwise (``link/../x.yaml`` where ``link`` is a symlink to another directory, so the text's ``..`` is not
    the file system's) the file actually read, relative to the working directory when it lies below it."""
    try:
        if Path(written).resolve() == real:
            return written
    except (OSError, ValueError, RuntimeError):
        pass
    try:
        relative = real.relative_to(Path.cwd())
    except ValueError:
        return str(real)
    return str(relative)


def _include_entries(include: _Node, ctx: _Context) -> list[_Node]:
    # A bad node (not text, say) has been reported already: one mistake, one message.
    if isinstance(include.value, str) or include.bad:
        return [include] if not include.bad else []
    if isinstance(include.value, list):
        good = []
        for item in include.value:
            if isinstance(item.value, str) and item.value:
                good.append(item)
            elif not item.bad:
                ctx.report(item.pos, f"include: expected a file name, got {_show(item.value)}")
        return good
    ctx.report(include.pos, f"include: expected a file name or a list of them, got {_show(include.value)}")
    return []


def _item_name(node: _Node) -> str | None:
    if isinstance(node.value, dict):
        name = node.value.get("name")
        if name is not None and isinstance(name.value, str):
            return name.value
    return None


def _merge(base: _Node, over: _Node) -> _Node:
    """``over`` laid on ``base``: mappings merge key by key; lists of named mappings merge by name (same name:
    merged, new name: appended, in ``over``'s order after ``base``'s); anything else is replaced by ``over``.

    An item of ``over`` written at the very place (file, line, column) of an item of ``base`` is that item again
    -- a file included twice, directly or through two includes (a diamond) -- and is merged into it, not
    appended: an account or event without a name came twice, reported as its own duplicate at its own position."""
    if isinstance(base.value, dict) and isinstance(over.value, dict):
        merged = dict(base.value)
        for key, value in over.value.items():
            merged[key] = _merge(merged[key], value) if key in merged else value
        return _Node(merged, over.pos, over.key_pos, over.bad)
    if isinstance(base.value, list) and isinstance(over.value, list) and _is_list_of_mappings(base, over):
        items = list(base.value)
        index = {name: i for i, item in enumerate(items) if (name := _item_name(item)) is not None}
        # Consumed in order: should two items of one list ever share a position, each still has one match.
        places: dict[_Pos, list[int]] = {}
        for i, item in enumerate(items):
            places.setdefault(item.pos, []).append(i)
        for item in over.value:
            name = _item_name(item)
            again = places.get(item.pos)
            if again:
                at = again.pop(0)
                items[at] = _merge(items[at], item)
            elif name is not None and name in index:
                items[index[name]] = _merge(items[index[name]], item)
            else:
                items.append(item)
        return _Node(items, over.pos, over.key_pos, over.bad)
    return over


def _is_list_of_mappings(*nodes: _Node) -> bool:
    return all(isinstance(node.value, list) and all(isinstance(i.value, dict) for i in node.value) for node in nodes)


# ----------------------------------------------------------------------------------------------------- overrides


def _apply_override(root: _Node, number: int, text: str, ctx: _Context) -> None:
    """``--set path=value``: walk ``path`` (keys, list indices from 0, or names of list items) and put ``value``
    (parsed as YAML) there, creating missing mappings on the way."""
    start = _Pos(_SET, number, 1)
    path, sep, value_text = text.partition("=")
    if not sep or not path.strip():
        ctx.report(start, f"--set {text!r}: expected PATH=VALUE, e.g. population.phones=1000")
        return
    why = _not_text(path)
    if why is not None:
        # Bytes that are not UTF-8 in the argument (decoded with surrogateescape) would name a key that cannot
        # be written anywhere; the value's own text is judged as any other string, by the converter.
        ctx.report(start, f"--set {text!r}: the path is not valid Unicode text ({why})")
        return
    segments = path.strip().split(".")
    if any(not s for s in segments):
        ctx.report(start, f"--set {text!r}: empty segment in path {path!r}")
        return
    if segments[0] == "include":
        ctx.report(start, f"--set {text!r}: include cannot be overridden (it is read before overrides apply)")
        return
    value_col = len(path) + 2
    value = _parse_yaml(
        value_text,
        ctx,
        lambda line, col: _Pos(_SET, number, value_col + col),
        _Pos(_SET, number, value_col),
        tuple(segments),
        f"--set {text!r}: ",
    )
    if value is None:
        return
    value.key_pos = start
    node = root
    i = 0
    while i < len(segments):
        segment = segments[i]
        here = ".".join(segments[:i]) or "the scenario"
        if isinstance(node.value, dict):
            if i == len(segments) - 1:
                node.value[segment] = value
                return
            child = node.value.get(segment)
            if child is None:
                child = node.value[segment] = _Node({}, start, start)
            node, i = child, i + 1
        elif isinstance(node.value, list):
            found = _list_index(node.value, segments, i)
            if found is None:
                names = list(_item_names(node.value, tuple(segments[:i])))
                hint = _suggest(segment, names) or (f" (names: {', '.join(names)})" if names else "")
                count = len(node.value)
                ctx.report(start, f"--set {text!r}: {here} has no item {segment!r} ({count} items, from 0){hint}")
                return
            index, i = found
            if i == len(segments):
                node.value[index] = value
                return
            node = node.value[index]
        else:
            ctx.report(start, f"--set {text!r}: {here} is {_show(node.value)}, which has no {segment!r}")
            return


def _item_names(items: list[_Node], path: tuple[str, ...]) -> dict[str, int]:
    """Each name an item of the list at ``path`` answers to, with its index: the names written, then -- for a list
    whose items have a default name (:data:`_DEFAULT_NAMES`) -- that of each item written without one, the name
    ``plan`` and reports show for it. A written name wins over an equal default (a duplicate reported later)."""
    names: dict[str, int] = {}
    for i, item in enumerate(items):
        if (name := _item_name(item)) is not None:
            names.setdefault(name, i)
    default = _DEFAULT_NAMES.get(path)
    if default is not None:
        for i, item in enumerate(items):
            fields = _plain(item)
            if isinstance(fields, dict) and "name" not in fields and (name := default(i, fields)) is not None:
                names.setdefault(name, i)
    return names


def _list_index(items: list[_Node], segments: Sequence[str], start: int) -> tuple[int, int] | None:
    """The item ``segments[start]`` designates and the index of the segment after it: a 0-based index, or a name
    (written or default, :func:`_item_names`). Names may contain dots (a check called "p99 <= 0.5"), so the
    longest run of segments naming an item wins."""
    segment = segments[start]
    if segment.isascii() and segment.isdigit():
        index = int(segment)
        return (index, start + 1) if index < len(items) else None
    names = _item_names(items, tuple(segments[:start]))
    for end in range(len(segments), start, -1):
        name = ".".join(segments[start:end])
        if name in names:
            return names[name], end
    return None


# ------------------------------------------------------------------------------------------------------- schema


def _plain(node: _Node) -> Any:
    if isinstance(node.value, dict):
        return {k: _plain(v) for k, v in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(v) for v in node.value]
    return node.value


def _find(root: _Node, path: Sequence[str | int]) -> tuple[_Node, bool]:
    """The node at ``path`` (or its deepest existing ancestor), and whether any node on the way is bad."""
    node, bad = root, root.bad
    for segment in path:
        child = _child(node, segment)
        if child is None:
            break
        node, bad = child, bad or child.bad
    return node, bad


def _find_exact(root: _Node, path: Sequence[str | int]) -> _Node | None:
    """The node at ``path``, or None when the path does not lead to one."""
    node: _Node | None = root
    for segment in path:
        node = _child(node, segment) if node is not None else None
    return node


def _child(node: _Node, segment: str | int) -> _Node | None:
    if isinstance(node.value, dict) and isinstance(segment, str):
        return node.value.get(segment)
    if isinstance(node.value, list) and isinstance(segment, int) and 0 <= segment < len(node.value):
        return node.value[segment]
    return None


def _dotted(path: Sequence[str | int]) -> str:
    return ".".join(str(p) for p in path) or "the scenario"


@dataclass(frozen=True, slots=True)
class _Finding:
    path: tuple[str | int, ...]
    message: str
    #: Point at the key (``name:``) rather than at the value.
    at_key: bool = False
    #: The node at ``path`` is itself wrong (not, as for a missing key, its parent that lacks something): the
    #: rules after the schema leave it alone, so one mistake yields one message.
    condemns: bool = True


_TYPE_WORDS: Final = {
    "object": "a mapping",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "null",
}


def _type_words(kind: object) -> str:
    kinds = kind if isinstance(kind, list) else [kind]
    return " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)


def _type_matches(kind: object, value: object) -> bool:
    kinds = kind if isinstance(kind, list) else [kind]
    for k in kinds:
        if (
            (k == "object" and isinstance(value, dict))
            or (k == "array" and isinstance(value, list))
            or (k == "string" and isinstance(value, str))
            or (k == "null" and value is None)
            or (k == "boolean" and isinstance(value, bool))
            or (k == "number" and isinstance(value, int | float) and not isinstance(value, bool))
            or (k == "integer" and isinstance(value, int) and not isinstance(value, bool))
        ):
            return True
    return False


_QUOTE_HINT: Final = " (put it in quotes to make it a string)"


def _explain(error: ValidationError) -> Iterator[_Finding]:
    """What one jsonschema error means to the person who wrote the file."""
    path = tuple(error.absolute_path)
    where = _dotted(path)
    validator = str(error.validator)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    value: Any = error.instance
    expected: Any = error.validator_value
    if "propertyNames" in error.schema_path and isinstance(value, str):
        # A bad key inside a map whose keys are data (population.mix): point at the key itself.
        yield _Finding((*path, value), f"{where}: {value!r} is not {schema.get('description', 'a valid name')}", True)
    elif validator == "additionalProperties" and isinstance(value, dict):
        known = list(schema.get("properties", {}))
        for key in value:
            if key not in known:
                prefix = f"{where}: " if path else ""
                yield _Finding((*path, key), f"{prefix}unknown key {key!r}{_suggest(key, known)}", True)
    elif validator in ("oneOf", "anyOf"):
        yield from _explain_alternatives(error, path)
    elif validator == "required" and isinstance(value, dict):
        why = f" ({schema['description']})" if "then" in error.schema_path and "description" in schema else ""
        for key in expected:
            if key not in value:
                yield _Finding(path, f"{where}: missing required key {key!r}{why}", True, False)
    elif validator == "type":
        hint = (
            _QUOTE_HINT
            if "string" in (expected if isinstance(expected, list) else [expected]) and isinstance(value, int | float)
            else ""
        )
        yield _Finding(path, f"{where}: expected {_type_words(expected)}, got {_show(value)}{hint}")
    elif validator in ("enum", "const"):
        options = [str(o) for o in (expected if validator == "enum" else [expected])]
        yield _Finding(path, f"{where}: {_unknown_value(path, value, options)}")
    elif validator in _BOUNDS:
        yield _Finding(path, f"{where}: must be {_BOUNDS[validator]} {_number(expected)}, got {_show(value)}")
    elif validator == "pattern":
        yield _Finding(
            path, f"{where}: expected {schema.get('description', f'a match for {expected}')}, got {_show(value)}"
        )
    elif validator == "minItems":
        yield _Finding(
            path, f"{where}: must not be empty" if expected == 1 else f"{where}: needs at least {expected} items"
        )
    elif validator == "maxItems":
        yield _Finding(path, f"{where}: at most {expected} items, got {len(value)}")
    elif validator == "minLength":
        yield _Finding(
            path, f"{where}: must not be empty" if expected == 1 else f"{where}: at least {expected} characters"
        )
    elif validator == "maxLength":
        yield _Finding(path, f"{where}: at most {expected} characters, got {len(value)}")
    else:
        yield _Finding(path, f"{where}: {error.message}")


_BOUNDS: Final = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}


def _unknown_value(path: Sequence[str | int], value: object, options: Sequence[str]) -> str:
    label = str(path[-1]) if path and isinstance(path[-1], str) else "value"
    if label == "name" and len(path) >= 3 and path[-3] == "flows":
        label = "flow"
    if not isinstance(value, str):
        hint = _QUOTE_HINT if str(value) in options else ""
        listed = f"one of {', '.join(options)}" if len(options) <= 8 else "a name listed in docs/scenarios.md"
        return f"expected {listed}, got {_show(value)}{hint}"
    suggestion = _suggest(value, options)
    if suggestion:
        return f"unknown {label} {value!r}{suggestion}"
    if len(options) <= 8:
        return f"unknown {label} {value!r}; expected one of {', '.join(options)}"
    return f"unknown {label} {value!r} (see docs/scenarios.md for the list)"


def _explain_alternatives(error: ValidationError, path: tuple[str | int, ...]) -> Iterator[_Finding]:
    # jsonschema reports every branch's failures; pick the branch the author meant (by the value's type, then by
    # a discriminating key such as ``distribution`` or ``type``) and explain only that one.
    where = _dotted(path)
    schema: Mapping[str, Any] = error.schema if isinstance(error.schema, Mapping) else {}
    branches: list[Mapping[str, Any]] = list(schema.get(str(error.validator), []))
    value = error.instance
    candidates = [i for i, b in enumerate(branches) if "type" not in b or _type_matches(b["type"], value)]
    if not candidates:
        words = " or ".join(dict.fromkeys(_type_words(b.get("type")) for b in branches))
        yield _Finding(path, f"{where}: expected {words}, got {_show(value)}")
        return
    if len(candidates) > 1 and isinstance(value, dict):
        key = _discriminator([branches[i] for i in candidates])
        if key is not None:
            consts = [str(branches[i]["properties"][key]["const"]) for i in candidates]
            if key not in value:
                yield _Finding(path, f"{where}: missing required key {key!r} (one of {', '.join(consts)})", True, False)
                return
            if value[key] not in consts:
                yield _Finding((*path, key), f"{where}.{key}: {_unknown_value((key,), value[key], consts)}")
                return
            candidates = [candidates[consts.index(value[key])]]
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in error.context or []:
        by_branch.setdefault(int(sub.relative_schema_path[0]), []).append(sub)
    chosen = min(candidates, key=lambda i: len(by_branch.get(i, [])))
    subs = by_branch.get(chosen, [])
    if not subs:
        yield _Finding(path, f"{where}: {error.message}")
    for sub in subs:
        yield from _explain(sub)


def _discriminator(branches: Sequence[Mapping[str, Any]]) -> str | None:
    common: set[str] | None = None
    for branch in branches:
        keys = {k for k, v in branch.get("properties", {}).items() if isinstance(v, Mapping) and "const" in v}
        common = keys if common is None else common & keys
    return min(common) if common else None


#: ECMA-262's line terminators: what its ``.`` does not match (Python's ``.`` excludes only a newline).
_LINE_TERMINATORS: Final = "\n\r\u2028\u2029"


@functools.lru_cache(maxsize=256)
def _ecma_regex(pattern: str) -> re.Pattern[str]:
    """``pattern``, a JSON Schema ``pattern`` (an ECMA-262 regular expression, JSON Schema validation section
    6.3.3), compiled so that Python's ``re`` matches what ECMA-262 matches where the two read the same text
    differently in the patterns a schema writes: ``$`` (no ``m`` flag) is the end of the input, where Python's
    ``$`` also matches before a final newline -- so ``"234\\n"`` passed ``^[0-9]{3}$`` and crashed the run later;
    ``.`` matches no line terminator, where Python's matches "\\r", U+2028 and U+2029. Escapes and character
    classes are copied as they are (a ``$`` or ``.`` in a class is a plain character in both)."""
    out: list[str] = []
    in_class = False
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "$":
            char = r"\Z"
        elif char == ".":
            char = f"[^{_LINE_TERMINATORS}]"
        out.append(char)
        i += 1
    return re.compile("".join(out))


def _ecma_pattern(
    validator: Any, pattern: str, instance: object, _schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    """jsonschema's ``pattern`` keyword with ECMA-262's reading of the pattern (:func:`_ecma_regex`)."""
    if validator.is_type(instance, "string") and not _ecma_regex(pattern).search(cast(str, instance)):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


#: Draft 2020-12 as the scenario schema means it: its patterns read as JSON Schema says (ECMA-262), not as
#: Python's ``re`` reads them.
_EcmaValidator: Final = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator, validators={"pattern": _ecma_pattern}
)
_VALIDATOR: Final = _EcmaValidator(SCHEMA)
#: The same schema, with "integer" meaning a Python int only (see :func:`_whole_numbers`).
_INT_ONLY_VALIDATOR: Final = validators.extend(  # type: ignore[no-untyped-call]
    _EcmaValidator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "integer", lambda _checker, value: isinstance(value, int) and not isinstance(value, bool)
    ),
)(SCHEMA)


def _whole_numbers(root: _Node, data: Any) -> bool:
    """Make each float that stands where the schema wants an integer (``phones: 1e4``, ``port: 2775.0``) an
    int in the tree. JSON Schema counts a number with no fractional part as an integer, so the schema let it
    through; every rule and the model after it test for ``int``, and would skip or mishandle the float. Found as
    what a validator that takes only Python ints as integers refuses. True when anything changed."""
    changed = False
    for error in _INT_ONLY_VALIDATOR.iter_errors(data):
        value = error.instance
        if (error.validator == "type" and error.validator_value == "integer" and isinstance(value, float)
                and value.is_integer() and abs(value) <= _MAX_INT):
            node, _bad = _find(root, list(error.absolute_path))
            if node.value is value:
                node.value = int(value)
                changed = True
    return changed


def _validate_schema(root: _Node, data: Any, ctx: _Context) -> None:
    for error in _VALIDATOR.iter_errors(data):
        for finding in _explain(error):
            node, bad = _find(root, finding.path)
            if bad:
                continue
            pos = (node.key_pos or node.pos) if finding.at_key else node.pos
            ctx.report(pos, finding.message)
            if finding.condemns and _find_exact(root, finding.path) is node:
                node.bad = True


# ---------------------------------------------------------------------------------------------------- semantics


def parse_number_range(text: str) -> NumberRange:
    """``"447700900000-447700904999"`` (inclusive) or ``"447700900000"``; a leading '+' is allowed.

    Raises ValueError with a reason when the text is not a range of equally long numbers, first <= last.
    """
    first_text, sep, last_text = text.partition("-")
    first_text, last_text = first_text.strip().lstrip("+"), (last_text if sep else first_text).strip().lstrip("+")
    if not (first_text.isdecimal() and last_text.isdecimal() and first_text.isascii() and last_text.isascii()):
        raise ValueError(f"{text!r} is not a number or a range FIRST-LAST")
    if len(first_text) != len(last_text):
        raise ValueError(f"{text!r}: both ends of a range need the same number of digits")
    first, last = int(first_text), int(last_text)
    if first > last:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return NumberRange(first, last)


class _Semantics:
    """Rules relating several values. Each rule looks only at values of the right type (the schema reports the
    others), so it never fails on a malformed document."""

    def __init__(self, root: _Node, data: Mapping[str, Any], ctx: _Context) -> None:
        self.root, self.data, self.ctx = root, data, ctx
        #: Every well-formed number range: (range, its path, its carrier's name).
        self.spans: list[tuple[NumberRange, tuple[str | int, ...], str]] = []
        #: Carriers with a number range that is not well-formed: what they hold is unknown.
        self.unknown_holdings: set[str] = set()

    def report(self, path: Sequence[str | int], message: str, *, at_key: bool = False) -> None:
        node, bad = _find(self.root, path)
        if not bad:
            self.ctx.report((node.key_pos or node.pos) if at_key else node.pos, message)

    def pos(self, path: Sequence[str | int]) -> _Pos:
        return _find(self.root, path)[0].pos

    def refused(self, path: Sequence[str | int]) -> bool:
        """Whether the value at ``path`` (or one it is part of) was already reported: a rule relating it to others
        would only add a second message about the same mistake, and judge by a value nobody meant."""
        return _find(self.root, path)[1]

    def run(self) -> None:
        carriers = self.carriers()
        self.population(carriers)
        self.accounts()
        self.ports()
        self.camara_faults()
        duration = self.load()
        self.named_list("flows", "flow")
        self.named_list("checks", "check", _default_check_name)
        self.events(carriers, duration)
        self.doors(carriers)
        self.checks()
        self.distributions(self.data, ())
        self.external()
        self.limits()
        self.names()

    def names(self) -> None:
        """Free-text names (the scenario's, its phases' and checks') hold no control character. They name
        testcases, suites and progress lines: XML cannot carry most control characters, so the JUnit report
        replaced them all by one character, and checks "x\\x01" and "x\\x02" became two testcases of one name;
        a terminal would act on them."""
        paths: list[tuple[str | int, ...]] = [("name",)]
        phases = _list(_mapping(self.data.get("load")).get("phases"))
        paths += [("load", "phases", i, "name") for i in range(len(phases))]
        paths += [("checks", i, "name") for i in range(len(_list(self.data.get("checks"))))]
        for path in paths:
            node = _find_exact(self.root, path)
            if node is None or not isinstance(node.value, str):
                continue
            found = _CONTROL.search(node.value)
            if found is not None:
                kind = "a noncharacter" if found.group() in "\ufffe\uffff" else "a control character"
                self.report(path, f"{_dotted(path)}: not a printable name ({kind}, U+{ord(found.group()):04X} at "
                            f"character {found.start() + 1})")

    def external(self) -> None:
        """What an external system under test needs that a bundled one does not: to be told where to bind, and
        to run on the same clock as the runner."""
        sut = _mapping(self.data.get("system_under_test"))
        if sut.get("kind") != "external":
            return
        if "limits" in sut:
            self.report(
                ("system_under_test", "limits"),
                "system_under_test.limits: configures the bundled identity core; an external system ignores it",
                at_key=True,
            )
        if self.data.get("clock") == "virtual":
            self.report(("clock",), "clock: virtual runs every party in the runner's loop; an external system "
                        "under test cannot follow virtual time: use clock: wall")
        for i, item in enumerate(_list(self.data.get("carriers"))):
            smsc = _mapping(_mapping(item).get("smsc"))
            port = smsc.get("port", 0)
            if port == 0 and not isinstance(port, bool):
                # Port 0 is any free port, known only once the SMSC listens: nobody could tell the external
                # system where to bind, and the run would wait for it in vain.
                path: tuple[str | int, ...] = ("carriers", i, "smsc", "port") if "port" in smsc else ("carriers", i)
                self.report(path, f"carriers.{i}.smsc.port: an external system under test binds to a port it is "
                            f"told in advance; give this SMSC a fixed port (1..65535), not 0 (any free port)")
            # The other listeners an external system itself reaches: SMPP over TLS, and the CAMARA door it asks
            # about SIM swaps. (The RCS and SMTP doors are the phones' business: any free port serves them.)
            tls_port = smsc.get("tls_port")
            if tls_port == 0 and not isinstance(tls_port, bool):
                self.report(("carriers", i, "smsc", "tls_port"),
                            f"carriers.{i}.smsc.tls_port: an external system under test connects to a port it is "
                            "told in advance; give SMPP over TLS a fixed port, not 0 (any free port)")
            doors = _mapping(_mapping(item).get("doors"))
            if "camara" in doors:
                camara = _mapping(doors.get("camara"))
                port = camara.get("port", 0)
                if port == 0 and not isinstance(port, bool):
                    at: tuple[str | int, ...] = ("carriers", i, "doors", "camara")
                    at = (*at, "port") if "port" in camara else at
                    self.report(at, f"carriers.{i}.doors.camara.port: an external system under test calls the "
                                "CAMARA door at an address it is told in advance; give it a fixed port, not 0")

    def limits(self) -> None:
        """system_under_test.limits by the bundled identity core's own rules (the function its config loader turns
        [limits] into VelocityLimits with), so that a table it would refuse -- and with it the whole run, as a
        harness error naming no key -- is a scenario error at the key, from ``validate`` as from ``run``."""
        sut = _mapping(self.data.get("system_under_test"))
        table = sut.get("limits")
        if sut.get("kind", "bundled") != "bundled" or not isinstance(table, dict):
            return  # external: reported by external(); not a mapping: by the schema
        # A key the schema refused has its message already; identity core would only say the same again.
        values = {k: v for k, v in table.items() if k in _LIMIT_SCHEMAS and _LIMIT_SCHEMAS[k].is_valid(v)}
        # identity core stops at the first problem: report it at its key, set that key aside and ask again, so
        # every problem is reported once. Each round removes a key, so this ends.
        while (message := _limit_problem(values)) is not None:
            key, index = _limit_blamed(message, values)
            path: tuple[str | int, ...] = ("system_under_test", "limits")
            # A rule relating keys (pump_floor x pump_window, pump_baseline against pump_window) that names a key
            # the scenario sets but that is set aside here -- refused by the schema, or blamed for a problem
            # already reported -- judged it by identity core's default ("pump_floor (unset ...)", "pump_window
            # (10 s)"), which the scenario does not use: an echo of a mistake already reported, not a new one.
            echo = set(re.findall(r"\w+", message)) & (set(table) - set(values))
            if not echo:
                at = path if key is None else (*path, key) if index is None else (*path, key, index)
                self.report(at, f"system_under_test.{message}", at_key=key is None)
            if key is None:
                return
            del values[key]

    def named_list(self, key: str, what: str,
                   default: Callable[[int, Mapping[str, Any]], str | None] | None = None) -> dict[str, int]:
        """Names of the items of list ``key``, each reported when it repeats an earlier one. ``default`` gives
        the name the model will use for an item written without one (None: that item has none yet to compare)."""
        seen: dict[str, int] = {}
        for i, item in enumerate(_list(self.data.get(key))):
            fields = _mapping(item)
            name = fields.get("name")
            if name is None and default is not None:
                name = default(i, fields)
            if not isinstance(name, str):
                continue
            if name in seen:
                first = self._name_pos((key, seen[name]))
                at = (key, i, "name") if "name" in fields else (key, i)
                self.report(at, f"{key}.{i}.name: duplicate {what} {name!r} (first at {first})")
            else:
                seen[name] = i
        return seen

    def _name_pos(self, item: tuple[str | int, ...]) -> _Pos:
        """Where an item's name is written, or the item itself when its name is the default."""
        return _find(self.root, (*item, "name"))[0].pos  # _find stops at the item when it has no name key

    def carriers(self) -> dict[str, int]:
        names = self.named_list("carriers", "carrier")
        spans = self.spans
        for i, item in enumerate(_list(self.data.get("carriers"))):
            carrier = _mapping(item)
            prefix = self.country_prefix(i, carrier.get("country"))
            declared = carrier.get("name")
            name = declared if isinstance(declared, str) else f"carriers.{i}"
            for j, text in enumerate(_list(carrier.get("numbering"))):
                path = ("carriers", i, "numbering", j)
                if not isinstance(text, str) or self.refused(path):
                    self.unknown_holdings.add(name)
                    continue
                try:
                    span = parse_number_range(text)
                except ValueError as err:
                    self.report(path, f"{_dotted(path)}: {err}")
                    self.unknown_holdings.add(name)
                    continue
                spans.append((span, path, name))
                if prefix and not text.lstrip("+").startswith(prefix):
                    self.report(path, f"{_dotted(path)}: {text!r} is not a number of {carrier['country']} (+{prefix})")
            gateway = carrier.get("gateway")
            if prefix and isinstance(gateway, str) and not gateway.lstrip("+").startswith(prefix):
                self.report(
                    ("carriers", i, "gateway"),
                    f"carriers.{i}.gateway: {gateway!r} is not a number of {carrier['country']} (+{prefix})",
                )
            if isinstance(gateway, str) and gateway.lstrip("+").isdecimal():
                self.gateway_not_a_phone(i, int(gateway.lstrip("+")))
        # Each range against the one reaching furthest among those that start before it, not only its
        # neighbour: a long range can overlap several that follow it, and every overlap is reported at once.
        reach: tuple[NumberRange, tuple[str | int, ...], str] | None = None
        for b, b_path, b_name in sorted(spans, key=lambda s: (s[0].first, s[0].last)):
            if reach is not None:
                a, a_path, a_name = reach
                if b.first <= a.last:
                    self.report(b_path, f"{_dotted(b_path)}: overlaps {a.first}-{a.last} of {a_name} "
                                f"({self.pos(a_path)})")
            if reach is None or b.last > reach[0].last:
                reach = (b, b_path, b_name)
        return names

    def gateway_not_a_phone(self, index: int, number: int) -> None:
        # A phone holding the gateway's number would receive the REG-REQs its peers send.
        for i, item in enumerate(_list(self.data.get("carriers"))):
            for text in _list(_mapping(item).get("numbering")):
                try:
                    span = parse_number_range(text) if isinstance(text, str) else None
                except ValueError:
                    continue
                if span is not None and span.first <= number <= span.last:
                    self.report(
                        ("carriers", index, "gateway"),
                        f"carriers.{index}.gateway: {number} is also a phone number of carriers.{i}",
                    )
                    return

    def country_prefix(self, index: int, country: object) -> str:
        if not isinstance(country, str) or len(country) != 2 or not country.isupper():
            return ""
        code = phonenumbers.country_code_for_region(country)
        if not code:
            self.report(("carriers", index, "country"), f"carriers.{index}.country: unknown country {country!r}")
            return ""
        return str(code)

    def population(self, carriers: Mapping[str, int]) -> None:
        population = _mapping(self.data.get("population"))
        phones = population.get("phones")
        mix_value = population.get("mix")
        mix: dict[str, float] = {}
        if isinstance(mix_value, dict):
            for name, share in mix_value.items():
                if _find(self.root, ("population", "mix", name))[1]:
                    continue  # the schema refused this share (or its name): no sum to speak of
                if isinstance(share, int | float) and not isinstance(share, bool):
                    mix[name] = float(share)
                if carriers and name not in carriers:
                    self.report(
                        ("population", "mix", name),
                        f"population.mix: {name!r} is not a declared carrier{_suggest(name, list(carriers))}",
                        at_key=True,
                    )
            total = sum(mix.values())
            if len(mix) == len(mix_value) and mix and abs(total - 1.0) > _TOLERANCE:
                self.report(("population", "mix"), f"population.mix: shares sum to {total:g}, not 1", at_key=True)
                return
        elif mix_value is None and carriers:
            mix = {name: 1.0 / len(carriers) for name in carriers}
        conditions = _mapping(population.get("conditions"))
        shares = [v for v in conditions.values() if isinstance(v, int | float) and not isinstance(v, bool)]
        if sum(shares) > 1.0 + _TOLERANCE:
            self.report(
                ("population", "conditions"),
                f"population.conditions: shares sum to {sum(shares):g}, more than 1",
                at_key=True,
            )
        if (isinstance(phones, int) and not isinstance(phones, bool) and phones > 0 and mix
                and not self.refused(("population", "phones"))):
            self.capacity(phones, mix, carriers)

    def capacity(self, phones: int, mix: Mapping[str, float], carriers: Mapping[str, int]) -> None:
        # The run's own split, ties to the carrier declared first: the check must ask for what the run will use.
        needed = phones_per_carrier(phones, {k: v for k, v in mix.items() if k in carriers}, list(carriers))
        held: dict[str, int] = {}
        for span, _path, name in self.spans:
            held[name] = held.get(name, 0) + span.size
        for name, count in needed.items():
            index = carriers[name]
            if name in held and name not in self.unknown_holdings and count > held[name]:
                self.report(
                    ("carriers", index, "numbering"),
                    f"carriers.{index}.numbering: {name} needs {count} numbers for its share of the phones, "
                    f"but holds {held[name]}",
                    at_key=True,
                )

    def accounts(self) -> None:
        sut = _mapping(self.data.get("system_under_test"))
        system_id = sut.get("system_id", "identity")
        password = sut.get("password", "secret")
        for i, item in enumerate(_list(self.data.get("carriers"))):
            accounts = _mapping(_mapping(item).get("smsc")).get("accounts")
            if not isinstance(accounts, list):
                continue
            mine = [a for a in accounts if isinstance(a, dict) and a.get("system_id") == system_id]
            path = ("carriers", i, "smsc", "accounts")
            seen: dict[str, int] = {}
            for j, account in enumerate(accounts):
                ident = _mapping(account).get("system_id")
                if isinstance(ident, str) and ident in seen:
                    first = self.pos((*path, seen[ident], "system_id"))
                    self.report(
                        (*path, j, "system_id"),
                        f"{_dotted(path)}.{j}: duplicate system_id {ident!r} (first at {first})",
                    )
                elif isinstance(ident, str):
                    seen[ident] = j
            if not mine:
                self.report(
                    path,
                    f"{_dotted(path)}: no account for the system under test's system_id {system_id!r}",
                    at_key=True,
                )
            elif not any(a.get("password") == password for a in mine):
                self.report(
                    path,
                    f"{_dotted(path)}: the password of account {system_id!r} is not system_under_test.password",
                    at_key=True,
                )

    def camara_faults(self) -> None:
        # Each share is 0..1 by the schema; one draw decides both, so together they must not exceed 1 either.
        for i, item in enumerate(_list(self.data.get("carriers"))):
            camara = _mapping(_mapping(_mapping(item).get("doors")).get("camara"))
            shares = [camara.get(k) for k in ("too_many_requests", "unavailable")]
            numbers = [v for v in shares if isinstance(v, int | float) and not isinstance(v, bool)]
            if sum(numbers) > 1.0 + _TOLERANCE:
                path = ("carriers", i, "doors", "camara")
                self.report(path, f"{_dotted(path)}: too_many_requests + unavailable is {sum(numbers):g}, "
                            "more than 1", at_key=True)

    def ports(self) -> None:
        # Two listeners on one fixed port cannot both start; say so before anything is started. Port 0 means
        # "any free port" and never clashes. Hosts are not compared: 127.0.0.1 and 0.0.0.0 clash as well.
        seen: dict[int, tuple[str | int, ...]] = {}
        for i, item in enumerate(_list(self.data.get("carriers"))):
            carrier = _mapping(item)
            doors = _mapping(carrier.get("doors"))
            smsc = _mapping(carrier.get("smsc"))
            listeners: list[tuple[tuple[str | int, ...], object]] = [
                (("carriers", i, "smsc", "port"), smsc.get("port")),
                (("carriers", i, "smsc", "tls_port"), smsc.get("tls_port")),
            ]
            listeners += [
                (("carriers", i, "doors", door, "port"), _mapping(doors.get(door)).get("port"))
                for door in ("rcs", "smtp", "camara")
            ]
            places: list[tuple[tuple[str | int, ...], Mapping[str, Any]]] = [(("carriers", i, "smsc"), smsc)]
            places += [
                (("carriers", i, "doors", door), _mapping(doors.get(door))) for door in ("rcs", "smtp", "camara")
            ]
            for where, place in places:
                # Checked here, not left to the run: a host nobody can listen on would end it as a harness error
                # (exit 3) with no position.
                host = place.get("host")
                if isinstance(host, str) and host and not _listen_host(host):
                    path = (*where, "host")
                    self.report(path, f"{_dotted(path)}: {host!r} is not an IP address or a host name to listen on "
                                "(e.g. 127.0.0.1)")
            for path, port in listeners:
                if isinstance(port, bool) or not isinstance(port, int) or not 0 < port <= 65535:
                    continue
                if port in seen:
                    self.report(path, f"{_dotted(path)}: port {port} is already taken by "
                                f"{_dotted(seen[port])} ({self.pos(seen[port])})")
                else:
                    seen[port] = path
            smtp = _mapping(doors.get("smtp"))
            domain = smtp.get("domain")
            if isinstance(domain, str) and not _HOSTNAME.fullmatch(domain):
                path = ("carriers", i, "doors", "smtp", "domain")
                self.report(path, f"{_dotted(path)}: {domain!r} is not a valid host name (e.g. sms.carrier.example)")

    def load(self) -> float:
        load = _mapping(self.data.get("load"))
        phases = _list(load.get("phases"))
        model = load.get("model")
        self.named_list_at(("load", "phases"), "phase")
        kinds: list[tuple[int, str]] = []
        duration = 0.0
        for i, item in enumerate(phases):
            phase = _mapping(item)
            path: tuple[str | int, ...] = ("load", "phases", i)
            length = phase.get("duration")
            if isinstance(length, int | float) and not isinstance(length, bool) and length > 0:
                duration += float(length)
            else:
                # The end of the load is unknown; "after the load ends" must not be judged against a wrong sum.
                duration = math.nan
            if not isinstance(item, dict):
                continue
            has_rate, has_conc = "rate" in phase, "concurrency" in phase
            if has_rate and has_conc:
                self.report(
                    path, f"{_dotted(path)}: a phase has rate (open model) or concurrency (closed model), not both"
                )
            elif not has_rate and not has_conc:
                self.report(path, f"{_dotted(path)}: needs rate (open model) or concurrency (closed model)")
            else:
                kinds.append((i, "open" if has_rate else "closed"))
        wanted = model if model in ("open", "closed") else (kinds[0][1] if kinds else None)
        for i, kind in kinds:
            if kind != wanted:
                path = ("load", "phases", i, "rate" if kind == "open" else "concurrency")
                why = f"load.model is {model}" if model in ("open", "closed") else "the first phase is " + str(wanted)
                self.report(
                    path, f"{_dotted(path)}: a {kind}-model phase, but {why}; phases cannot mix models", at_key=True
                )
        phones = _mapping(self.data.get("population")).get("phones")
        if isinstance(phones, int) and wanted == "closed" and not self.refused(("population", "phones")):
            for i, item in enumerate(phases):
                concurrency = _mapping(item).get("concurrency")
                if isinstance(concurrency, int) and concurrency > phones:
                    self.report(
                        ("load", "phases", i, "concurrency"),
                        f"load.phases.{i}.concurrency: {concurrency} is more than the {phones} phones",
                    )
        return duration

    def named_list_at(self, path: tuple[str, ...], what: str) -> None:
        seen: dict[str, int] = {}
        items = _list(_mapping(self.data.get(path[0])).get(path[1]))
        for i, item in enumerate(items):
            fields = _mapping(item)
            # A phase written without a name is "phase-N" in the model (and in reports): compared as such.
            name = fields.get("name", _default_phase_name(i, fields))
            if isinstance(name, str):
                if name in seen:
                    first = self._name_pos((*path, seen[name]))
                    at: tuple[str | int, ...] = (*path, i, "name") if "name" in fields else (*path, i)
                    self.report(at, f"{_dotted(path)}.{i}.name: duplicate {what} {name!r} (first at {first})")
                else:
                    seen[name] = i

    def events(self, carriers: Mapping[str, int], duration: float) -> None:
        swaps = 0
        for i, item in enumerate(_list(self.data.get("events"))):
            event = _mapping(item)
            if event.get("type") == "sim_swap":
                swaps += 1
                if swaps == SIM_GENERATIONS:
                    # A renewed phone can be swapped again by a later event, and its IMSI and ICCID hold one
                    # SIM-generation digit: a tenth swap of one phone would give it its first SIM back.
                    self.report(("events", i, "type"), f"events.{i}.type: at most {SIM_GENERATIONS - 1} sim_swap "
                                "events (a phone's IMSI and ICCID carry one SIM-generation digit)")
            carrier = event.get("carrier")
            if isinstance(carrier, str) and carriers and carrier not in carriers:
                self.report(
                    ("events", i, "carrier"),
                    f"events.{i}.carrier: no carrier named {carrier!r}{_suggest(carrier, list(carriers))}",
                )
            at = event.get("at")
            # ``duration`` is NaN when a phase's duration is malformed, and every comparison with NaN is False.
            if isinstance(at, int | float) and not isinstance(at, bool) and at > duration > 0:
                self.report(
                    ("events", i, "at"),
                    f"events.{i}.at: {_number(at)} s is after the load ends ({_number(duration)} s)",
                )

    def doors(self, carriers: Mapping[str, int]) -> None:
        """Flows and events that go through a door no carrier opens: every phone of the flow, every risk check of
        the event, would fail at run time for a reason written in the file."""
        carrier_list = [_mapping(c) for c in _list(self.data.get("carriers"))]
        with_door = {door: {str(c.get("name")) for c in carrier_list if door in _mapping(c.get("doors"))}
                     for door in ("rcs", "smtp", "camara")}
        needs = {"rcs_cellular": "rcs", "rcs_otp": "rcs", "email": "smtp"}
        for i, item in enumerate(_list(self.data.get("flows"))):
            name = _mapping(item).get("name")
            door = needs.get(name) if isinstance(name, str) else None
            if door is not None and carrier_list and not with_door[door]:
                self.report(("flows", i, "name"), f"flows.{i}: the {name} flow goes through a carrier's {door} door, "
                            f"and no carrier declares doors.{door}")
        for i, item in enumerate(_list(self.data.get("events"))):
            event = _mapping(item)
            if event.get("type") != "sim_swap" or event.get("via") != "network_api" or not carrier_list:
                continue
            carrier = event.get("carrier")
            if isinstance(carrier, str):
                if carrier in carriers and carrier not in with_door["camara"]:
                    self.report(("events", i, "via"), f"events.{i}.via: network_api asks {carrier}'s CAMARA SIM Swap "
                                f"API, and {carrier} declares no doors.camara")
            elif not with_door["camara"]:
                self.report(("events", i, "via"), f"events.{i}.via: network_api asks the carriers' CAMARA SIM Swap "
                            "API, and no carrier declares doors.camara")

    def _producers(self) -> tuple[set[str], set[str], bool]:
        """The flows the scenario declares, the kinds of its phone events, and whether a SIM swap goes via the
        network API: what decides which metrics a run can produce."""
        names = [_mapping(f).get("name") for f in _list(self.data.get("flows"))]
        if not all(isinstance(name, str) for name in names):
            # A flow the schema refused: which flows run is unknown, so judge no check by them (one message).
            names = list(FLOW_NAMES)
        flows = {str(name) for name in names}
        events = [_mapping(e) for e in _list(self.data.get("events"))]
        kinds = {str(e.get("type")) for e in events}
        network = any(e.get("type") == "sim_swap" and e.get("via") == "network_api" for e in events)
        return flows, kinds, network

    def unproducible(self, metric: str) -> str | None:
        """Why no run of this scenario can produce ``metric`` (None when one can): a check on it could only ever
        come out inconclusive, which is an error in the file, not a verdict to wait minutes for."""
        flows, kinds, network = self._producers()
        family = metric.split(".", 1)[0]
        if family in FLOW_NAMES and family not in flows:
            return f"needs the {family} flow, which flows does not declare ({', '.join(sorted(flows)) or 'none'})"
        if family in ("reg_resp", "authenticate", "auth_queue") and not flows & {"activation", "renewal"}:
            return "is measured by the activation and renewal flows, and flows declares neither"
        if family == "rcs" and not flows & {"rcs_cellular", "rcs_otp"}:
            return "is counted by the rcs_cellular and rcs_otp flows, and flows declares neither"
        if family == "events" and not kinds & {"sim_swap", "port_out"}:
            return "needs a sim_swap or port_out event, and events has none"
        if family == "risk_checks" and not network:
            return "comes from SIM swaps with via: network_api, and events has none"
        return None

    def checks(self) -> None:
        for i, item in enumerate(_list(self.data.get("checks"))):
            check = _mapping(item)
            metric = check.get("metric")
            why = self.unproducible(metric) if isinstance(metric, str) and metric in METRICS else None
            if why is not None:
                self.report(("checks", i, "metric"), f"checks.{i}.metric: {metric} {why}")
            unit = METRICS.get(str(check.get("metric")))
            value = check.get("value")
            if not isinstance(value, int | float) or isinstance(value, bool):
                continue
            path = ("checks", i, "value")
            if unit == "ratio" and not 0.0 <= value <= 1.0:
                self.report(
                    path,
                    f"checks.{i}.value: {check['metric']} is a ratio, 0..1, so a threshold of {_number(value)} "
                    "would decide nothing",
                )
            elif unit in ("count", "s") and value < 0:
                self.report(path, f"checks.{i}.value: {check['metric']} is never negative")

    def distributions(self, value: object, path: tuple[str | int, ...]) -> None:
        if isinstance(value, dict):
            low, high = value.get("low"), value.get("high")
            if (
                value.get("distribution") == "uniform"
                and isinstance(low, int | float)
                and isinstance(high, int | float)
                and low > high
            ):
                self.report((*path, "low"), f"{_dotted(path)}: low ({_number(low)}) is above high ({_number(high)})")
            for key, child in value.items():
                self.distributions(child, (*path, key))
        elif isinstance(value, list):
            for i, child in enumerate(value):
                self.distributions(child, (*path, i))


#: What no free-text name may hold: a control character (Unicode category Cc: C0, DEL, C1), or one of the two
#: noncharacters XML 1.0 excludes (U+FFFE, U+FFFF).
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ufffe\uffff]")


#: RFC 1123 host name: dot-separated labels of letters, digits and inner hyphens, at most 253 characters, with a
#: dot at least once (an SMS domain is never a bare label).
_HOSTNAME: Final = re.compile(
    r"(?=.{1,253}\Z)(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
)


#: One RFC 1123 label; a listen address may be a bare one (``localhost``).
_LABEL: Final = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


#: A validator per system_under_test.limits key, to know which values the schema has already refused.
_LIMIT_SCHEMAS: Final[dict[str, Any]] = {
    key: _EcmaValidator(schema)
    for key, schema in SCHEMA["$defs"]["system_under_test"]["properties"]["limits"]["properties"].items()
}
#: identity-core's message for one key: "limits.KEY: ..." or "limits.KEY[I]: ..." (one item of a pair).
_LIMIT_KEY: Final = re.compile(r"limits\.(\w+)(?:\[(\d+)\])?:")


def _limit_problem(values: Mapping[str, Any]) -> str | None:
    """identity core's complaint about a limits table holding ``values``, or None when it takes them."""
    try:
        identity_core_limits({"limits": dict(values)})
    except ConfigError as err:
        return str(err)
    return None


def _limit_blamed(message: str, values: Mapping[str, Any]) -> tuple[str | None, int | None]:
    """The key (and pair item) of ``values`` an identity-core ConfigError is about. A rule relating several keys
    says "limits: ..." and names them in the text: the first one the scenario sets is blamed (None: none is)."""
    found = _LIMIT_KEY.match(message)
    if found is not None and found.group(1) in values:
        return found.group(1), None if found.group(2) is None else int(found.group(2))
    for word in re.findall(r"\w+", message):
        if word in values:
            return word, None
    return None, None


def _default_check_name(_index: int, check: Mapping[str, Any]) -> str | None:
    """The name of a check written without one: what it asks, e.g. ``activation.success_ratio >= 0.99``."""
    metric, op, value = check.get("metric"), check.get("op"), check.get("value")
    if not isinstance(metric, str) or not isinstance(op, str) or not isinstance(value, int | float):
        return None
    return f"{metric} {op} {_number(value)}"


def _default_phase_name(index: int, _phase: Mapping[str, Any]) -> str:
    """The name of a phase written without one: ``phase-N``, N counting from 1."""
    return f"phase-{index + 1}"


#: The lists whose items have a name by default, by path, and how it is made: one rule for the model, the
#: duplicate checks and --set paths, so that an item is addressed by the name plan and reports show for it.
_DEFAULT_NAMES: Final[dict[tuple[str, ...], Callable[[int, Mapping[str, Any]], str | None]]] = {
    ("load", "phases"): _default_phase_name,
    ("checks",): _default_check_name,
}


def _listen_host(host: str) -> bool:
    """Whether ``host`` can be listened on: an IPv4 or IPv6 address, or a host name (resolved when listening)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return len(host) <= 253 and all(_LABEL.fullmatch(label) for label in host.removesuffix(".").split("."))
    return True


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


# -------------------------------------------------------------------------------------------------------- model


def _distribution(value: Any) -> Distribution:
    if value is None:
        return Distribution()
    if not isinstance(value, dict):
        return Distribution("fixed", value=float(value))
    kind = value["distribution"]
    return Distribution(kind, **{k: float(v) for k, v in value.items() if k != "distribution"})


def _doors(data: Mapping[str, Any]) -> Doors:
    rcs, smtp, camara = (_mapping(data.get(k)) if k in data else None for k in ("rcs", "smtp", "camara"))
    return Doors(
        rcs=None if rcs is None else RcsDoor(port=int(rcs.get("port", 0)), host=rcs.get("host", "127.0.0.1")),
        smtp=None if smtp is None else SmtpDoor(
            domain=smtp["domain"].lower(), port=int(smtp.get("port", 0)), host=smtp.get("host", "127.0.0.1"),
            short_code=smtp.get("short_code"), max_recipients=int(smtp.get("max_recipients", 100)),
        ),
        camara=None if camara is None else CamaraDoor(
            port=int(camara.get("port", 0)), host=camara.get("host", "127.0.0.1"),
            token=str(camara.get("token", DEFAULT_CAMARA_TOKEN)),
            too_many_requests=float(camara.get("too_many_requests", 0.0)),
            unavailable=float(camara.get("unavailable", 0.0)),
        ),
    )


def _build(root: _Node, data: Mapping[str, Any], source: str, files: Sequence[Path] = ()) -> Scenario:
    sut_data = _mapping(data.get("system_under_test"))
    sut = SystemUnderTest(
        kind=sut_data.get("kind", "bundled"),
        api=sut_data.get("api"),
        system_id=sut_data.get("system_id", "identity"),
        password=sut_data.get("password", "secret"),
        limits=dict(_mapping(sut_data.get("limits"))),
    )
    carriers = []
    for i, item in enumerate(data["carriers"]):
        smsc = _mapping(item.get("smsc"))
        roaming = _mapping(smsc.get("roaming"))
        accounts = tuple(
            Account(
                system_id=a["system_id"],
                password=a["password"],
                throughput=float(a.get("throughput", 0.0)),
                bind_throughput=float(a.get("bind_throughput", 0.0)),
                max_binds=int(a.get("max_binds", 8)),
            )
            for a in smsc.get("accounts", ())
        ) or (Account(sut.system_id, sut.password),)
        carriers.append(
            Carrier(
                name=item["name"],
                mcc=item["mcc"],
                mnc=item["mnc"],
                country=item["country"],
                ranges=tuple(parse_number_range(r) for r in item["numbering"]),
                smsc=Smsc(
                    port=int(smsc.get("port", 0)),
                    tls_port=None if smsc.get("tls_port") is None else int(smsc["tls_port"]),
                    host=smsc.get("host", "127.0.0.1"),
                    accounts=accounts,
                    dialect=smsc.get("dialect", "kannel-like"),
                    receipt_delay=_distribution(_mapping(smsc.get("receipts")).get("delay")),
                    roaming_delay=_distribution(roaming["delay"]) if "delay" in roaming else DEFAULT_ROAMING_DELAY,
                    interface_version=smsc.get("interface_version", "3.4"),
                    window=int(smsc.get("window", 10)),
                    faults=dict(_mapping(smsc.get("faults"))),
                    timers=dict(_mapping(smsc.get("timers"))),
                ),
                gateway=item["gateway"].lstrip("+"),
                where=str(_find(root, ("carriers", i))[0].pos),
                doors=_doors(_mapping(item.get("doors"))),
            )
        )
    population_data = data["population"]
    mix = population_data.get("mix") or {c.name: 1.0 / len(carriers) for c in carriers}
    conditions = _mapping(population_data.get("conditions"))
    population = Population(
        phones=int(population_data["phones"]),
        mix={k: float(v) for k, v in mix.items()},
        absent=float(conditions.get("absent", 0.0)),
        barred=float(conditions.get("barred", 0.0)),
        roaming=float(conditions.get("roaming", 0.0)),
    )
    phases = []
    for i, phase in enumerate(data["load"]["phases"]):
        rate = phase.get("rate", 0.0)
        low, high = (rate["from"], rate["to"]) if isinstance(rate, dict) else (rate, rate)
        phases.append(
            Phase(
                name=phase.get("name", _default_phase_name(i, phase)),
                duration=float(phase["duration"]),
                rate_from=float(low),
                rate_to=float(high),
                concurrency=int(phase.get("concurrency", 0)),
            )
        )
    model: Literal["open", "closed"] = data["load"].get("model") or (
        "closed" if data["load"]["phases"][0].get("concurrency") else "open"
    )
    flows = tuple(
        Flow(name=f["name"], weight=float(f.get("weight", 1.0)), think_time=_distribution(f.get("think_time")))
        for f in data["flows"]
    )
    events = tuple(
        Event(
            at=float(e["at"]),
            kind=e["type"],
            share=float(e.get("share", 0.0)),
            carrier=e.get("carrier"),
            duration=float(e.get("duration", 0.0)),
            where=str(_find(root, ("events", i))[0].pos),
            via=e.get("via", "events_api"),
        )
        for i, e in enumerate(data.get("events", ()))
    )
    checks = tuple(
        Check(
            name=c.get("name") or str(_default_check_name(0, c)),
            metric=c["metric"],
            op=c["op"],
            value=float(c["value"]),
            where=str(_find(root, ("checks", i))[0].pos),
        )
        for i, c in enumerate(data.get("checks", ()))
    )
    return Scenario(
        name=data["name"],
        seed=int(data.get("seed", 0)),
        clock=data.get("clock", "wall"),
        carriers=tuple(carriers),
        population=population,
        system_under_test=sut,
        load=Load(model=model, phases=tuple(phases)),
        flows=flows,
        events=events,
        checks=checks,
        source=source,
        files=tuple(files),
    )


# ---------------------------------------------------------------------------------------------------------- API


def load_scenario(path: Path, overrides: Sequence[str] = ()) -> Scenario:
    """Read a scenario file, its includes and ``--set`` overrides into a validated :class:`Scenario`.

    Raises :class:`ScenarioError` listing every problem found, each with file:line:col.
    """
    ctx = _Context()
    display = str(path)
    try:
        real = Path(path).resolve()
    except (OSError, ValueError, RuntimeError) as err:  # RuntimeError: a symlink loop, before Python 3.13
        raise ScenarioError([ScenarioProblem(display, 1, 1, f"cannot read {display}: {err}")]) from None
    root = _load_tree(display, real, (_Frame(real, display, None),), ctx)
    if root is not None:
        for number, text in enumerate(overrides, start=1):
            _apply_override(root, number, text, ctx)
        if overrides and _SET not in ctx.files:
            ctx.files.append(_SET)
        data = _plain(root)
        _validate_schema(root, data, ctx)
        if _whole_numbers(root, data):
            data = _plain(root)
        _Semantics(root, data, ctx).run()
    if ctx.problems or root is None:
        raise ScenarioError(ctx.sorted_problems())
    return _build(root, cast(Mapping[str, Any], data), display, ctx.real_files)
