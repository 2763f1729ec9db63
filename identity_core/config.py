"""The identity service's configuration (``identity-core serve --config identity.toml``); see docs/identity-core.md.

Every key is checked: an unknown key, a missing required one or a value of the wrong type is a
:class:`ConfigError` that names the key, so a typo never silently runs the service with a default.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import phonenumbers

from identity_core.help_keyword import DEFAULT_HELP_TEXT, help_text_problem
from identity_core.limits import VelocityLimits
from identity_core.sim_swap import DEFAULT_MAX_AGE_HOURS, DEFAULT_TIMEOUT, MAX_AGE_RANGE, api_url

__all__ = [
    "ApiConfig",
    "CarrierConfig",
    "ConfigError",
    "IdentityConfig",
    "LimitsConfig",
    "MessagesConfig",
    "OverloadConfig",
    "load_config",
    "parse_config",
    "parse_limits",
]


class ConfigError(ValueError):
    """A configuration value that cannot be used, naming the key's path."""


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """[api]: where the HTTP API listens and which bearer tokens the server-to-server API accepts."""

    host: str = "127.0.0.1"
    port: int = 8080
    tokens: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class CarrierConfig:
    """One [[carrier]]: the SMSC the service binds to as an ESME and the number phones write to."""

    name: str
    smsc_host: str
    smsc_port: int
    system_id: str
    password: str
    gateway: str
    country: str
    system_type: str = ""
    bind: str = "transceiver"  # or "pair": a transmitter and a receiver
    window: int = 50
    enquire_link_interval: float = 30.0
    #: The carrier's CAMARA SIM Swap API base (``{apiRoot}/sim-swap/v1``); None: risk checks answer 503.
    sim_swap_api: str | None = None
    #: CAMARA ``maxAge``: a swap within this many hours makes the binding untrusted (1-2400, CAMARA's default).
    sim_swap_max_age: int = DEFAULT_MAX_AGE_HOURS
    #: Bearer access token (two-legged, scope ``sim-swap:check``) for that API; None sends no Authorization.
    sim_swap_token: str | None = None
    #: Seconds one SIM Swap check may take in all.
    sim_swap_timeout: float = DEFAULT_TIMEOUT
    # Overload knobs of this carrier's link, named and defaulted as CarrierLink's fields so that they reach it
    # unchanged (tests/identity_core/test_config.py checks the defaults still agree).
    #: Seconds an MO may wait for a handler before it is shed; parse_config fills in [overload] mo_max_wait
    #: when the carrier does not set its own, so this is always the value the link uses.
    mo_max_wait: float = 4.0
    #: Handler tasks of the link.
    workers: int = 256
    #: Reader tasks per SMPP session.
    readers: int = 256
    #: MO and receipts waiting for a handler before the readers stop pulling from the session.
    queue_size: int = 10_000


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    """[limits]: velocity limits on REG-REQ and authenticate (rates per second, bursts), and prefix pumping."""

    reg_per_number: tuple[float, float] = (0.2, 3.0)
    reg_per_prefix: tuple[float, float] = (500.0, 2000.0)
    reg_per_carrier: tuple[float, float] = (50000.0, 100000.0)
    auth_per_number: tuple[float, float] = (0.2, 5.0)
    auth_per_prefix: tuple[float, float] = (500.0, 2000.0)
    auth_per_carrier: tuple[float, float] = (50000.0, 100000.0)
    prefix_digits: int = 7
    pump_window: float = 10.0
    pump_baseline: float = 3600.0
    pump_factor: float = 3.0
    #: None (the key absent): a fifth of reg_per_prefix's rate; see VelocityLimits.pump_floor_rate.
    pump_floor: float | None = None
    pump_block: float = 300.0


@dataclass(frozen=True, slots=True)
class OverloadConfig:
    """[overload]: when the service sheds work instead of answering late (docs/identity-core.md, Overload).

    The defaults are IdentityService's and CarrierLink's own, so a file without the table behaves as before.
    """

    #: Authenticate calls in progress at most; the next one is answered 503 at once.
    max_auth_in_flight: int = 2048
    #: While this many authenticate calls are in progress, new MOs are held back.
    auth_first: int = 64
    #: Seconds an MO may wait for a handler before it is shed, for every carrier that does not set its own.
    mo_max_wait: float = 4.0


@dataclass(frozen=True, slots=True)
class MessagesConfig:
    """[messages]: texts the service sends besides REG-RESP."""

    help: str = DEFAULT_HELP_TEXT  # the answer to HELP / INFO; one SMS


@dataclass(frozen=True, slots=True)
class IdentityConfig:
    """The whole configuration."""

    api: ApiConfig
    store_path: Path
    keys_path: Path
    carriers: tuple[CarrierConfig, ...]
    proof_validity: float = 600.0
    certificate_validity: float = 30 * 86400.0
    issuer: str = "identity-core"
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    messages: MessagesConfig = field(default_factory=MessagesConfig)
    overload: OverloadConfig = field(default_factory=OverloadConfig)


_CARRIER_KEYS = frozenset({
    "name", "smsc", "system_id", "password", "gateway", "country", "system_type", "bind", "window",
    "enquire_link_interval", "sim_swap_api", "sim_swap_max_age", "sim_swap_token", "sim_swap_timeout",
    "mo_max_wait", "workers", "readers", "queue_size",
})
#: Every table of the file and its keys; "carrier" is the array of tables [[carrier]].
_TABLES: dict[str, frozenset[str]] = {
    "api": frozenset({"listen", "tokens"}),
    "store": frozenset({"path"}),
    "keys": frozenset({"path", "proof_validity", "certificate_validity", "issuer"}),
    "limits": frozenset(LimitsConfig.__dataclass_fields__),
    "overload": frozenset(OverloadConfig.__dataclass_fields__),
    "messages": frozenset({"help"}),
    "carrier": _CARRIER_KEYS,
}
#: SMPP 3.4 section 5.2.2: system_type is a C-octet string of at most 13 octets, the NUL included.
_SYSTEM_TYPE_MAX = 12
#: Submits outstanding per link at most: far above what any SMSC grants (tens to a few hundred), so a value past
#: it is a typo.
_WINDOW_MAX = 65_535


def _top_level(doc: Mapping[str, Any]) -> None:
    """Only tables at the top level. A key written above every [table] header lands here, where it would be
    ignored -- a `tokens` meant for [api] left the API answering 401 to everyone -- so it is an error that says
    which table it belongs to."""
    for key in doc:
        if key in _TABLES:
            continue
        homes = [f"[[{t}]] {key}" if t == "carrier" else f"{t}.{key}" for t, keys in _TABLES.items() if key in keys]
        hint = f"; did you mean {' or '.join(homes)}? (a key belongs to the [table] header above it)" if homes else ""
        raise ConfigError(f"config: unknown key(s) {key}{hint}; allowed at the top level: {', '.join(sorted(_TABLES))}")


def _check(path: str, value: object, kind: type | tuple[type, ...]) -> Any:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = "/".join(k.__name__ for k in kinds)
        raise ConfigError(f"{path}: expected {names}, got {type(value).__name__}")
    return value


def _table(
    path: str, doc: Mapping[str, Any], key: str, allowed: Set[str], required: Set[str] = frozenset()
) -> Any:
    table = doc.get(key, {})
    full = f"{path}.{key}" if path else key
    if not isinstance(table, dict):
        raise ConfigError(f"{full}: expected a table")
    _keys(full, table, allowed, required)
    return table


def _keys(path: str, table: Mapping[str, Any], allowed: Set[str], required: Set[str] = frozenset()) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise ConfigError(f"{path}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}")
    missing = sorted(required - set(table))
    if missing:
        raise ConfigError(f"{path}: missing required key(s) {', '.join(missing)}")


def _hostport(path: str, value: object) -> tuple[str, int]:
    text = _check(path, value, str)
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{path}: {text!r} is not HOST:PORT")
    return host or "127.0.0.1", int(port)


def _pair(path: str, value: object) -> tuple[float, float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ConfigError(f"{path}: expected [rate_per_second, burst]")
    return (_check(f"{path}[0]", value[0], float), _check(f"{path}[1]", value[1], float))


def _sim_swap(path: str, raw: Mapping[str, Any]) -> dict[str, Any]:
    """The sim_swap_* keys of one [[carrier]], checked; the others make no sense without sim_swap_api."""
    if "sim_swap_api" not in raw:
        stray = sorted(k for k in raw if k.startswith("sim_swap_"))
        if stray:
            raise ConfigError(f"{path}: {', '.join(stray)} given without sim_swap_api")
        return {}
    base = _check(f"{path}.sim_swap_api", raw["sim_swap_api"], str)
    try:
        api_url(base)
    except ValueError as err:
        raise ConfigError(f"{path}.sim_swap_api: {base!r}: {err}") from None
    max_age = _check(f"{path}.sim_swap_max_age", raw.get("sim_swap_max_age", DEFAULT_MAX_AGE_HOURS), int)
    if max_age not in MAX_AGE_RANGE:
        raise ConfigError(f"{path}.sim_swap_max_age: whole hours from 1 to 2400 (CAMARA maxAge), got {max_age}")
    token = raw.get("sim_swap_token")
    if token is not None:
        token = _check(f"{path}.sim_swap_token", token, str)
        if not token or any(c.isspace() for c in token) or not token.isprintable():
            raise ConfigError(f"{path}.sim_swap_token: a non-empty bearer token without spaces")
    timeout = _check(f"{path}.sim_swap_timeout", raw.get("sim_swap_timeout", DEFAULT_TIMEOUT), float)
    if not 0 < timeout <= 120:
        raise ConfigError(f"{path}.sim_swap_timeout: seconds, more than 0 and at most 120, got {timeout}")
    return {"sim_swap_api": base, "sim_swap_max_age": max_age, "sim_swap_token": token, "sim_swap_timeout": timeout}


def _count(path: str, value: object) -> int:
    """A whole number of at least 1 (tasks, slots, calls): 0 would stall the service rather than limit it."""
    number: int = _check(path, value, int)
    if number < 1:
        raise ConfigError(f"{path}: a whole number of at least 1, got {number}")
    return number


def _seconds(path: str, value: object) -> float:
    """A finite positive duration; ``not 0 < x`` also turns away nan, and inf would silently disable shedding."""
    seconds: float = _check(path, value, float)
    if not 0 < seconds < math.inf:
        raise ConfigError(f"{path}: seconds, a finite number more than 0, got {seconds}")
    return seconds


#: A REG-RESP proof is meant to be used within minutes; its expiry is also carried in 32 bits of Unix time.
_PROOF_VALIDITY_MAX: Final = 86_400.0
#: Ten years: far past any sensible certificate, still well inside what a JWT's exp and a datetime can carry.
_CERTIFICATE_VALIDITY_MAX: Final = 10 * 365 * 86_400.0


def _validity(path: str, value: object, maximum: float) -> float:
    """A proof or certificate lifetime: whole-second timestamps need at least 1 s; ``maximum`` bounds the rest."""
    seconds = _seconds(path, value)
    if not 1 <= seconds <= maximum:
        raise ConfigError(f"{path}: seconds, from 1 to {maximum:.0f}, got {seconds}")
    return seconds


def _number(path: str, value: object, minimum: float, what: str) -> float:
    """A finite number of at least ``minimum``; ``what`` says what it is in the error."""
    number: float = _check(path, value, float)
    if not minimum <= number < math.inf:
        raise ConfigError(f"{path}: {what}, a finite number of at least {minimum:g}, got {number}")
    return number


def parse_limits(doc: Mapping[str, Any]) -> LimitsConfig:
    """The ``[limits]`` table of a parsed configuration document (``{"limits": {...}}``), every value
    range-checked here, so that the service never meets a limit it cannot use.

    Public so that a harness starting this service (carrier-sim's scenario loader) checks a limits table by the
    same rules before it writes one. Raises :class:`ConfigError` naming the first offending key."""
    table = _table("", doc, "limits", set(_TABLES["limits"]))
    values: dict[str, Any] = {}
    for key, value in table.items():
        path = f"limits.{key}"
        if key.endswith(("_per_number", "_per_prefix", "_per_carrier")):
            rate, burst = _pair(path, value)
            _number(f"{path}[0]", rate, 0.0, "requests per second")
            if rate == 0:
                # The limiter takes 0 as "never refills": each number (prefix, carrier) would get its burst for the
                # life of the process, until its bucket is evicted at max_entries -- a lifetime cap, not a rate.
                raise ConfigError(
                    f"{path}[0]: a rate of 0 never refills (each key would get its burst once, for the life of "
                    f"the process); give a rate per second more than 0"
                )
            # Below one token no request could ever pass: a typo, not a limit.
            _number(f"{path}[1]", burst, 1.0, "burst (requests)")
            values[key] = (rate, burst)
        elif key == "prefix_digits":
            digits: int = _check(path, value, int)
            if not 1 <= digits <= 15:
                raise ConfigError(f"{path}: 1 to 15 (E.164 numbers have at most 15 digits), got {digits}")
            values[key] = digits
        elif key in ("pump_window", "pump_baseline"):
            values[key] = _seconds(path, value)
        elif key == "pump_factor":
            values[key] = _number(path, value, 1.0, "a multiple of the baseline")
        elif key == "pump_floor":
            # 0 would block a quiet prefix on its first REG-REQ.
            floor = _check(path, value, float)
            if not 0 < floor < math.inf:
                raise ConfigError(f"{path}: REG-REQs per second, a finite number more than 0, got {floor}")
            values[key] = floor
        else:  # pump_block
            values[key] = _number(path, value, 0.0, "seconds")
    limits = LimitsConfig(**values)
    if limits.pump_baseline < limits.pump_window:
        raise ConfigError(
            f"limits.pump_baseline: at least pump_window ({limits.pump_window:g} s), got {limits.pump_baseline:g}"
        )
    try:
        # The same conversion the service makes: whatever it would refuse must be refused here, at load time.
        VelocityLimits.from_mapping(dataclasses.asdict(limits))
    except ValueError as err:
        raise ConfigError(f"limits: {err}") from None
    return limits


def _overload(doc: Mapping[str, Any]) -> OverloadConfig:
    table = _table("", doc, "overload", set(OverloadConfig.__dataclass_fields__))
    default = OverloadConfig()
    return OverloadConfig(
        max_auth_in_flight=_count(
            "overload.max_auth_in_flight", table.get("max_auth_in_flight", default.max_auth_in_flight)
        ),
        auth_first=_count("overload.auth_first", table.get("auth_first", default.auth_first)),
        mo_max_wait=_seconds("overload.mo_max_wait", table.get("mo_max_wait", default.mo_max_wait)),
    )


def _carrier_overload(path: str, raw: Mapping[str, Any], overload: OverloadConfig) -> dict[str, Any]:
    """The overload keys of one [[carrier]], checked; mo_max_wait falls back to [overload]'s."""
    values: dict[str, Any] = {
        "mo_max_wait": _seconds(f"{path}.mo_max_wait", raw.get("mo_max_wait", overload.mo_max_wait))
    }
    for key in ("workers", "readers", "queue_size"):
        if key in raw:
            values[key] = _count(f"{path}.{key}", raw[key])
    return values


def _messages(doc: Mapping[str, Any]) -> MessagesConfig:
    messages = _table("", doc, "messages", {"help"})
    if "help" not in messages:
        return MessagesConfig()
    text = _check("messages.help", messages["help"], str)
    problem = help_text_problem(text)
    if problem is not None:
        raise ConfigError(f"messages.help: {problem}")
    return MessagesConfig(help=text)


def parse_config(doc: Mapping[str, Any], base: Path = Path(".")) -> IdentityConfig:
    """Build the configuration from a parsed TOML document; relative paths are taken from ``base``."""
    _top_level(doc)
    api = _table("", doc, "api", set(_TABLES["api"]), {"listen"})
    host, port = _hostport("api.listen", api["listen"])
    tokens = tuple(
        _check(f"api.tokens[{i}]", t, str) for i, t in enumerate(_check("api.tokens", api.get("tokens", []), list))
    )
    if any(len(t) < 8 for t in tokens):
        raise ConfigError("api.tokens: every bearer token needs at least 8 characters")
    store = _table("", doc, "store", {"path"}, {"path"})
    keys = _table("", doc, "keys", set(_TABLES["keys"]))
    store_path = base / _check("store.path", store["path"], str)
    keys_path = base / _check("keys.path", keys.get("path", str(Path(store_path.name).with_suffix(".keys"))), str)
    # Before the carriers: its mo_max_wait is their default.
    overload = _overload(doc)
    carriers = []
    raw_carriers = _check("carrier", doc.get("carrier", []), list)
    if not raw_carriers:
        raise ConfigError("carrier: at least one [[carrier]] is required")
    names: set[str] = set()
    for i, raw in enumerate(raw_carriers):
        path = f"carrier[{i}]"
        _check(path, raw, dict)
        _keys(
            path,
            raw,
            _CARRIER_KEYS,
            {"name", "smsc", "system_id", "password", "gateway", "country"},
        )
        smsc_host, smsc_port = _hostport(f"{path}.smsc", raw["smsc"])
        if smsc_port == 0:
            raise ConfigError(f"{path}.smsc: port 0 is not a port to connect to")
        system_type = _check(f"{path}.system_type", raw.get("system_type", ""), str)
        if len(system_type) > _SYSTEM_TYPE_MAX or not system_type.isascii() or not system_type.isprintable():
            raise ConfigError(f"{path}.system_type: at most {_SYSTEM_TYPE_MAX} printable ASCII characters (SMPP 3.4)")
        window = _count(f"{path}.window", raw.get("window", 50))
        if window > _WINDOW_MAX:
            raise ConfigError(f"{path}.window: at most {_WINDOW_MAX} submits outstanding, got {window}")
        bind = _check(f"{path}.bind", raw.get("bind", "transceiver"), str)
        if bind not in ("transceiver", "pair"):
            raise ConfigError(f"{path}.bind: 'transceiver' or 'pair'")
        gateway = _check(f"{path}.gateway", raw["gateway"], str)
        if not gateway.isdigit():
            raise ConfigError(f"{path}.gateway: digits only (the number phones send REG-REQ to)")
        country = _check(f"{path}.country", raw["country"], str)
        if country not in phonenumbers.SUPPORTED_REGIONS:
            # A well-formed but unknown code ("XX") would make every national-format sender a wrong_sender.
            raise ConfigError(f"{path}.country: an ISO 3166 region code phone numbers are known for, such as 'GB'; "
                              f"got {country!r}")
        name = _check(f"{path}.name", raw["name"], str)
        if name in names:
            raise ConfigError(f"{path}.name: {name!r} is used twice")
        names.add(name)
        carriers.append(
            CarrierConfig(
                name=name,
                smsc_host=smsc_host,
                smsc_port=smsc_port,
                system_id=_check(f"{path}.system_id", raw["system_id"], str),
                password=_check(f"{path}.password", raw["password"], str),
                gateway=gateway,
                country=country,
                system_type=system_type,
                bind=bind,
                window=window,
                enquire_link_interval=_seconds(
                    f"{path}.enquire_link_interval", raw.get("enquire_link_interval", 30.0)
                ),
                **_sim_swap(path, raw),
                **_carrier_overload(path, raw, overload),
            )
        )
    limits = parse_limits(doc)
    issuer = _check("keys.issuer", keys.get("issuer", "identity-core"), str)
    if not issuer or not issuer.isprintable():
        raise ConfigError("keys.issuer: a non-empty printable string (the certificates' iss claim)")
    return IdentityConfig(
        api=ApiConfig(host, port, tokens),
        store_path=store_path,
        keys_path=keys_path,
        carriers=tuple(carriers),
        proof_validity=_validity("keys.proof_validity", keys.get("proof_validity", 600.0), _PROOF_VALIDITY_MAX),
        certificate_validity=_validity(
            "keys.certificate_validity", keys.get("certificate_validity", 30 * 86400.0), _CERTIFICATE_VALIDITY_MAX
        ),
        issuer=issuer,
        limits=limits,
        messages=_messages(doc),
        overload=overload,
    )


def load_config(path: Path) -> IdentityConfig:
    """Read and check a TOML file; relative paths in it are relative to the file."""
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"{path}: {err}") from None
    try:
        return parse_config(doc, path.parent)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None
