"""Reading an SMSC's behaviour from a TOML file (``carrier-sim smsc --config FILE``); see docs/smsc.md.

Every key is checked: an unknown key or a value of the wrong type is a :class:`ConfigError` naming the key's
path, never a silently ignored line.
"""

from __future__ import annotations

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


def _check(path: str, value: object, kind: type) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        raise ConfigError(f"{path}: expected {kind.__name__}, got {type(value).__name__}")
    return value


def _known(path: str, table: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")


def parse_account_flag(flag: str) -> Account:
    """``ID:PASSWORD`` from ``--account``."""
    system_id, sep, password = flag.partition(":")
    if not sep or not system_id or len(system_id) > 15 or len(password) > 8:
        raise ConfigError(f"--account {flag!r}: expected ID:PASSWORD (ID up to 15, PASSWORD up to 8 characters)")
    return Account(system_id, password)


def _account(path: str, table: Mapping[str, Any]) -> Account:
    _known(path, table, set(_ACCOUNT_KEYS))
    values = {k: _check(f"{path}.{k}", v, _ACCOUNT_KEYS[k]) for k, v in table.items()}
    if "system_id" not in values or "password" not in values:
        raise ConfigError(f"{path}: system_id and password are required")
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
            kwargs[key] = tuple(str(v) for v in values[key])
    try:
        return Account(**kwargs)
    except ValueError as err:  # a route or source_allow that is not a regular expression
        raise ConfigError(f"{path}.{err}") from None


def smsc_config_from_mapping(doc: Mapping[str, Any], where: str = "config") -> tuple[SmscConfig, SubscriberRegistry]:
    """Build an SMSC configuration and subscriber registry from a parsed TOML document."""
    _known(where, doc, {"smsc", "account", "receipts", "subscribers", "faults", "outbind"})
    smsc = doc.get("smsc", {})
    _known(f"{where}.smsc", smsc, set(_SMSC_KEYS))
    kwargs: dict[str, Any] = {}
    for key, value in smsc.items():
        kwargs[key] = _check(f"{where}.smsc.{key}", value, _SMSC_KEYS[key])
    if "interface_version" in kwargs:
        version = _VERSIONS.get(kwargs["interface_version"])
        if version is None:
            raise ConfigError(f"{where}.smsc.interface_version: one of {', '.join(_VERSIONS)}")
        kwargs["interface_version"] = version
    kwargs["accounts"] = tuple(_account(f"{where}.account[{i}]", a) for i, a in enumerate(doc.get("account", [])))
    receipts = doc.get("receipts", {})
    _known(f"{where}.receipts", receipts, {"dialect", "delay"})
    if "dialect" in receipts:
        names = {d.name: d for d in PRESETS}
        dialect: ReceiptDialect | None = names.get(receipts["dialect"])
        if dialect is None:
            raise ConfigError(f"{where}.receipts.dialect: one of {', '.join(names)}")
        kwargs["dialect"] = dialect
    if "delay" in receipts:
        delay = receipts["delay"]
        if isinstance(delay, int | float) and not isinstance(delay, bool):
            kwargs["dlr_delay"] = DelayDistribution(float(delay), float(delay))
        elif isinstance(delay, list) and len(delay) == 2 and all(isinstance(d, int | float) for d in delay):
            kwargs["dlr_delay"] = DelayDistribution(float(delay[0]), float(delay[1]))
        else:
            raise ConfigError(f"{where}.receipts.delay: a number of seconds or [low, high]")
    faults = doc.get("faults", {})
    allowed = {f.name: f.type for f in fields(FaultPlan)}
    _known(f"{where}.faults", faults, set(allowed))
    plan = FaultPlan()
    for key, value in faults.items():
        kind = int if allowed[key] in ("int", int) else float
        plan = replace(plan, **{key: _check(f"{where}.faults.{key}", value, kind)})
    kwargs["faults"] = plan
    outbinds = []
    for i, target in enumerate(doc.get("outbind", [])):
        path = f"{where}.outbind[{i}]"
        _known(path, target, {"host", "port", "system_id", "password"})
        try:
            outbinds.append((_check(f"{path}.host", target["host"], str), _check(f"{path}.port", target["port"], int),
                             _check(f"{path}.system_id", target["system_id"], str),
                             _check(f"{path}.password", target["password"], str)))
        except KeyError as err:
            raise ConfigError(f"{path}: {err.args[0]} is required") from None
    kwargs["outbind"] = tuple(outbinds)
    try:
        config = SmscConfig(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where}: {err}") from None
    return config, _subscribers(f"{where}.subscribers", doc.get("subscribers", {}))


def _subscribers(path: str, table: Mapping[str, Any]) -> SubscriberRegistry:
    _known(path, table, {"default", *(c.value for c in Condition)})
    try:
        registry = SubscriberRegistry(Condition(table.get("default", "reachable")))
    except ValueError:
        raise ConfigError(f"{path}.default: one of {', '.join(c.value for c in Condition)}") from None
    for condition in Condition:
        for number in _check(f"{path}.{condition.value}", table.get(condition.value, []), list):
            registry.set(str(number), condition)
    return registry


def load_smsc_config(path: Path) -> tuple[SmscConfig, SubscriberRegistry]:
    """Read a TOML file; ConfigError with the file name on any problem."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    return smsc_config_from_mapping(doc, str(path))
