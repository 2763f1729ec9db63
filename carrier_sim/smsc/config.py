"""Reading an SMSC's behaviour from a TOML file (``carrier-sim smsc --config FILE``); see docs/smsc.md.

Every key is checked: an unknown key, a value of the wrong type or out of its range is a :class:`ConfigError`
naming the key's path, never a silently ignored line -- nor a traceback, which ``carrier-sim smsc`` would exit 1
with instead of the 2 it promises for a bad configuration.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from carrier_sim.smpp.constants import InterfaceVersion
from carrier_sim.smpp.receipt import PRESETS, ReceiptDialect
from carrier_sim.smsc.accounts import Account, BindKind, MoDelivery
from carrier_sim.smsc.centre import DelayDistribution, SmscConfig
from carrier_sim.smsc.faults import FaultPlan
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry

__all__ = ["ConfigError", "load_smsc_config", "parse_account_flag", "smsc_config_from_mapping"]


class ConfigError(ValueError):
    """A configuration value that cannot be used, with the path of the offending key."""


_SMSC_KEYS = {
    "name": str, "interface_version": str, "window": int, "peer_window": int, "response_timeout": float,
    "enquire_link_interval": float, "enquire_link_misses": int, "session_init_timeout": float,
    "inactivity_timeout": float, "default_validity": float, "absent_retry": float, "store_capacity": int,
    "throttle_backoff": float, "seed": int, "hold_mo": float,
}
_ACCOUNT_KEYS = {
    "system_id": str, "password": str, "bind_types": list, "max_binds": int, "source_allow": list,
    "routes": list, "mo_delivery": str, "throughput": float, "bind_throughput": float,
}
_VERSIONS = {"3.3": InterfaceVersion.V33, "3.4": InterfaceVersion.V34, "5.0": InterfaceVersion.V50}
#: Smallest value of each integer key (SmscConfig's and Account's): a window, a store or a bind count of 0 would
#: refuse everything; enquire_link_misses 0 means "never". Every float key is seconds or a rate: finite, >= 0.
_MINIMUM = {
    "window": 1, "peer_window": 1, "store_capacity": 1, "enquire_link_misses": 0, "seed": 0, "max_binds": 1,
}
#: Largest value of an integer key: a seed is a signed 64-bit number, as a scenario's (SEED_MAX) is.
_MAXIMUM = {"seed": (1 << 63) - 1}
#: The C-Octet String limits of bind_transmitter's system_id and password (SMPP 3.4 §4.1.1), as --account.
_SYSTEM_ID_MAX = 15
_PASSWORD_MAX = 8
#: What a C-Octet String can carry: the codec writes Latin-1, one octet a character, and a NUL ends it early. A
#: system_id or password outside this could never be sent in a bind, so no ESME could ever bind to it.
_OCTETS = re.compile(r"[\x01-\xff]*")
#: A subscriber's number: ASCII digits, an optional leading '+', spaces or hyphens between digits (the registry
#: keeps only the digits, so "abc" would have been no number at all -- a key nothing ever matches).
_PHONE = re.compile(r"\+?[0-9]+(?:[ -][0-9]+)*")
#: Fault names (fields of FaultPlan) and their types, derived as carrier_sim.scenario.schema.FAULTS is so that
#: both refuse the same values: an int is a size (1..65536), a ``*_delay`` is seconds, the rest probabilities.
_FAULTS: dict[str, type] = {f.name: (int if f.type in (int, "int") else float) for f in fields(FaultPlan)}
_FAULT_SIZE_MAX = 1 << 16


def _check(path: str, value: object, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{path}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _number(path: str, value: object, kind: type, minimum: float = 0, maximum: float = math.inf) -> Any:
    """An int or float key within [minimum, maximum]; a float must be finite (TOML has nan and inf)."""
    checked = _check(path, value, kind)
    if not math.isfinite(checked):
        raise ConfigError(f"{path}: must be a finite number, got {checked}")
    if not minimum <= checked <= maximum:
        bound = f">= {minimum}" if maximum == math.inf else f"between {minimum} and {maximum}"
        raise ConfigError(f"{path}: must be {bound}, got {checked}")
    return checked


def _value(path: str, value: object, kind: type) -> Any:
    """One scalar key of [smsc] or [[account]], type and range checked."""
    if kind is int:
        key = path.rsplit(".", 1)[-1]
        return _number(path, value, int, _MINIMUM[key], _MAXIMUM.get(key, math.inf))
    if kind is float:
        return _number(path, value, float)
    return _check(path, value, kind)


def _table(path: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{path}: expected a table, got {type(value).__name__}")
    return value


def _tables(path: str, value: object) -> list[Mapping[str, Any]]:
    """An array of tables (``[[account]]``): each element's own path names it."""
    if not isinstance(value, list):
        raise ConfigError(f"{path}: expected an array of tables, got {type(value).__name__}")
    return [_table(f"{path}[{i}]", item) for i, item in enumerate(value)]


def _strings(path: str, value: object, numbers: bool = False) -> list[str]:
    """An array of strings (with ``numbers``, integers too: a phone number written bare)."""
    items = _check(path, value, list)
    for i, item in enumerate(items):
        if not isinstance(item, str) and not (numbers and isinstance(item, int) and not isinstance(item, bool)):
            raise ConfigError(f"{path}[{i}]: expected str, got {type(item).__name__}")
        if numbers and not _PHONE.fullmatch(str(item)):
            raise ConfigError(f"{path}[{i}]: expected a phone number (digits, an optional leading '+'), got "
                              f"{str(item)!r}")
    return [str(item) for item in items]


def _credentials(path: str, system_id: str, password: str) -> None:
    if not 1 <= len(system_id) <= _SYSTEM_ID_MAX:
        raise ConfigError(f"{path}.system_id: 1 to {_SYSTEM_ID_MAX} characters, got {len(system_id)}")
    if len(password) > _PASSWORD_MAX:
        raise ConfigError(f"{path}.password: at most {_PASSWORD_MAX} characters, got {len(password)}")
    for key, text in (("system_id", system_id), ("password", password)):
        if not _OCTETS.fullmatch(text):
            raise ConfigError(f"{path}.{key}: Latin-1 (ISO 8859-1) characters without NUL, as SMPP carries it; "
                              f"got {text!r}")


def _fault(path: str, name: str, value: object) -> Any:
    if _FAULTS[name] is int:
        return _number(path, value, int, 1, _FAULT_SIZE_MAX)
    if name.endswith("_delay"):
        return _number(path, value, float)
    return _number(path, value, float, 0, 1)


def _known(path: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def parse_account_flag(flag: str) -> Account:
    """``ID:PASSWORD`` from ``--account``."""
    system_id, sep, password = flag.partition(":")
    if (not sep or not system_id or len(system_id) > _SYSTEM_ID_MAX or len(password) > _PASSWORD_MAX
            or not _OCTETS.fullmatch(system_id) or not _OCTETS.fullmatch(password)):
        raise ConfigError(f"--account {flag!r}: expected ID:PASSWORD (ID up to {_SYSTEM_ID_MAX}, PASSWORD up to "
                          f"{_PASSWORD_MAX} Latin-1 characters, no NUL)")
    return Account(system_id, password)


def _account(path: str, table: Mapping[str, Any]) -> Account:
    _known(path, table, set(_ACCOUNT_KEYS))
    values = {k: _value(f"{path}.{k}", v, _ACCOUNT_KEYS[k]) for k, v in table.items()}
    if "system_id" not in values or "password" not in values:
        raise ConfigError(f"{path}: system_id and password are required")
    _credentials(path, values["system_id"], values["password"])
    for key in ("bind_types", "source_allow", "routes"):
        if key in values:
            values[key] = _strings(f"{path}.{key}", values[key])
    kwargs: dict[str, Any] = {"system_id": values["system_id"], "password": values["password"]}
    try:
        if "bind_types" in values:
            kwargs["bind_kinds"] = frozenset(BindKind(v) for v in values["bind_types"])
        if "mo_delivery" in values:
            kwargs["mo_delivery"] = MoDelivery(values["mo_delivery"])
    except ValueError as err:
        raise ConfigError(f"{path}: {err}") from None
    for key in ("max_binds", "throughput", "bind_throughput"):
        if key in values:
            kwargs[key] = values[key]
    for key in ("source_allow", "routes"):
        if key in values:
            kwargs[key] = tuple(values[key])
    try:
        return Account(**kwargs)
    except ValueError as err:  # a route or source_allow that is not a regular expression
        raise ConfigError(f"{path}.{err}") from None


def smsc_config_from_mapping(doc: Mapping[str, Any], where: str = "config") -> tuple[SmscConfig, SubscriberRegistry]:
    """Build an SMSC configuration and subscriber registry from a parsed TOML document."""
    _known(where, doc, {"smsc", "account", "receipts", "roaming", "subscribers", "faults", "outbind"})
    smsc = _table(f"{where}.smsc", doc.get("smsc", {}))
    _known(f"{where}.smsc", smsc, set(_SMSC_KEYS))
    kwargs: dict[str, Any] = {}
    for key, value in smsc.items():
        kwargs[key] = _value(f"{where}.smsc.{key}", value, _SMSC_KEYS[key])
    if "interface_version" in kwargs:
        version = _VERSIONS.get(kwargs["interface_version"])
        if version is None:
            raise ConfigError(f"{where}.smsc.interface_version: one of {', '.join(_VERSIONS)}")
        kwargs["interface_version"] = version
    accounts = _tables(f"{where}.account", doc.get("account", []))
    kwargs["accounts"] = tuple(_account(f"{where}.account[{i}]", a) for i, a in enumerate(accounts))
    receipts = _table(f"{where}.receipts", doc.get("receipts", {}))
    _known(f"{where}.receipts", receipts, {"dialect", "delay"})
    if "dialect" in receipts:
        names = {d.name: d for d in PRESETS}
        dialect: ReceiptDialect | None = names.get(_check(f"{where}.receipts.dialect", receipts["dialect"], str))
        if dialect is None:
            raise ConfigError(f"{where}.receipts.dialect: one of {', '.join(names)}")
        kwargs["dialect"] = dialect
    if "delay" in receipts:
        kwargs["dlr_delay"] = _delay(f"{where}.receipts.delay", receipts["delay"])
    roaming = _table(f"{where}.roaming", doc.get("roaming", {}))
    _known(f"{where}.roaming", roaming, {"delay"})
    if "delay" in roaming:
        kwargs["roaming_delay"] = _delay(f"{where}.roaming.delay", roaming["delay"])
    faults = _table(f"{where}.faults", doc.get("faults", {}))
    _known(f"{where}.faults", faults, set(_FAULTS))
    kwargs["faults"] = replace(FaultPlan(), **{k: _fault(f"{where}.faults.{k}", k, v) for k, v in faults.items()})
    outbinds = []
    for i, target in enumerate(_tables(f"{where}.outbind", doc.get("outbind", []))):
        path = f"{where}.outbind[{i}]"
        _known(path, target, {"host", "port", "system_id", "password"})
        missing = [key for key in ("host", "port", "system_id", "password") if key not in target]
        if missing:
            raise ConfigError(f"{path}: {missing[0]} is required")
        system_id = _check(f"{path}.system_id", target["system_id"], str)
        password = _check(f"{path}.password", target["password"], str)
        _credentials(path, system_id, password)
        outbinds.append((_check(f"{path}.host", target["host"], str),
                         _number(f"{path}.port", target["port"], int, 0, 65535), system_id, password))
    kwargs["outbind"] = tuple(outbinds)
    try:
        config = SmscConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    return config, _subscribers(f"{where}.subscribers", _table(f"{where}.subscribers", doc.get("subscribers", {})))


_DELAY_FORMS = ("a number of seconds, [low, high], {distribution = \"exponential\", mean = S} or "
                "{distribution = \"lognormal\", median = S, sigma = X}")


def _delay(path: str, delay: object) -> DelayDistribution:
    """``[receipts] delay``, ``[roaming] delay``: seconds, ``[low, high]`` (uniform) with low <= high, or a table
    naming an exponential (``mean``) or lognormal (``median``, ``sigma``) distribution, as scenarios may."""
    if isinstance(delay, dict):
        kind = delay.get("distribution")
        if kind == "exponential":
            _known(path, delay, {"distribution", "mean"})
            mean = _number(f"{path}.mean", delay.get("mean"), float)
            if not mean > 0:
                raise ConfigError(f"{path}.mean: seconds, a number > 0, got {mean}")
            return DelayDistribution(kind="exponential", mean=mean)
        if kind == "lognormal":
            _known(path, delay, {"distribution", "median", "sigma"})
            median = _number(f"{path}.median", delay.get("median"), float)
            sigma = _number(f"{path}.sigma", delay.get("sigma"), float)
            if not median > 0 or not 0 <= sigma <= 10:
                raise ConfigError(f"{path}: median > 0 seconds and 0 <= sigma <= 10, got {median} and {sigma}")
            return DelayDistribution(kind="lognormal", median=median, sigma=sigma)
        raise ConfigError(f"{path}: {_DELAY_FORMS}")
    if isinstance(delay, list):
        if len(delay) != 2:
            raise ConfigError(f"{path}: {_DELAY_FORMS}")
        low, high = (_number(f"{path}[{i}]", d, float) for i, d in enumerate(delay))
        if low > high:
            raise ConfigError(f"{path}: [low, high] with low <= high, got [{low}, {high}]")
        return DelayDistribution(low, high)
    if isinstance(delay, int | float) and not isinstance(delay, bool):
        seconds = _number(path, delay, float)
        return DelayDistribution(seconds, seconds)
    raise ConfigError(f"{path}: {_DELAY_FORMS}")


def _subscribers(path: str, table: Mapping[str, Any]) -> SubscriberRegistry:
    _known(path, table, {"default", *(c.value for c in Condition)})
    default = _check(f"{path}.default", table.get("default", "reachable"), str)
    try:
        registry = SubscriberRegistry(Condition(default))
    except ValueError:
        raise ConfigError(f"{path}.default: one of {', '.join(c.value for c in Condition)}") from None
    for condition in Condition:
        for number in _strings(f"{path}.{condition.value}", table.get(condition.value, []), numbers=True):
            registry.set(number, condition)
    return registry


def load_smsc_config(path: Path) -> tuple[SmscConfig, SubscriberRegistry]:
    """Read a TOML file; ConfigError with the file name on any problem."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return smsc_config_from_mapping(doc, str(path))
