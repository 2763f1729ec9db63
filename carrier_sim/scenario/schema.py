"""The JSON Schema (draft 2020-12) of scenario files, as a Python dict, and the command that publishes it.

The schema is generated from the code it must agree with (receipt dialects from ``carrier_sim.smpp.receipt``,
fault names from ``carrier_sim.smsc.faults``, metric names from :data:`carrier_sim.scenario.model.METRICS`), so
adding a fault or a metric changes the schema and the test that compares it with ``docs/scenario.schema.json``
fails until the published copy is regenerated::

    python -m carrier_sim.scenario.schema > docs/scenario.schema.json

Every object is closed (``additionalProperties: false``) except ``population.mix``, whose keys are data (carrier
names, constrained by ``propertyNames``). The schema says what one value may be; rules that relate several values (the
mix names declared carriers and sums to 1, number ranges do not overlap, events name declared carriers, ...) are
checked by :mod:`carrier_sim.scenario.loader` after the schema, because JSON Schema cannot express them or
would express them with unreadable messages.
"""

from __future__ import annotations

import json
import sys
from dataclasses import fields
from typing import Any, Final

from carrier_sim.scenario.model import METRICS, SEED_MAX
from carrier_sim.smpp.receipt import PRESETS
from carrier_sim.smsc.faults import FaultPlan

__all__ = [
    "CHECK_OPS",
    "DIALECTS",
    "FAULTS",
    "FLOWS",
    "LIMITS",
    "SCHEMA",
    "SCHEMA_ID",
    "main",
    "schema_json",
]

SCHEMA_ID: Final = "urn:carrier-sim:scenario:1"

#: Receipt dialect names a carrier's SMSC may use (``carrier_sim.smpp.receipt.PRESETS``).
DIALECTS: Final[tuple[str, ...]] = tuple(d.name for d in PRESETS)
#: Fault names (fields of ``FaultPlan``) and the Python type of each.
FAULTS: Final[dict[str, type]] = {f.name: (int if f.type in (int, "int") else float) for f in fields(FaultPlan)}
#: identity-core's ``[limits]`` keys: a pair ``[rate per second, burst]`` or a single number. Kept here rather
#: than imported because the scenario format must not depend on the bundled core's internals; a test checks that
#: both agree.
LIMITS: Final[dict[str, str]] = {
    "reg_per_number": "pair",
    "reg_per_prefix": "pair",
    "reg_per_carrier": "pair",
    "auth_per_number": "pair",
    "auth_per_prefix": "pair",
    "auth_per_carrier": "pair",
    "prefix_digits": "integer",
    "pump_window": "number",
    "pump_baseline": "number",
    "pump_factor": "number",
    "pump_floor": "number",
    "pump_block": "number",
}
FLOWS: Final[tuple[str, ...]] = ("activation", "renewal", "mo_mt", "rcs_cellular", "rcs_otp", "email")
CHECK_OPS: Final[tuple[str, ...]] = ("<", "<=", ">", ">=", "==", "!=")

# Upper bounds keep every number finite once converted to float and within what numpy columns can hold; they are
# far above anything a machine of this project can run.
_MAX_SECONDS: Final = 10**9
_MAX_RATE: Final = 10**8
_MAX_COUNT: Final = 10**9


def _obj(properties: dict[str, Any], required: tuple[str, ...] = (), description: str = "") -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object"}
    if description:
        schema["description"] = description
    schema["properties"] = properties
    if required:
        schema["required"] = list(required)
    schema["additionalProperties"] = False
    return schema


def _num(
    description: str, minimum: float = 0, maximum: float = _MAX_SECONDS, *, exclusive: bool = False
) -> dict[str, Any]:
    bound = "exclusiveMinimum" if exclusive else "minimum"
    return {"type": "number", "description": description, bound: minimum, "maximum": maximum}


def _int(description: str, minimum: int = 0, maximum: int = _MAX_COUNT) -> dict[str, Any]:
    return {"type": "integer", "description": description, "minimum": minimum, "maximum": maximum}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


_SHARE: Final = _num("a share of phones, 0..1", 0, 1)
# SMPP 3.4 section 4.1.1: bind's system_id and password are C-Octet Strings of at most 16 and 9 octets, the
# terminating NUL included. The codec writes them in Latin-1, one octet a character: a character outside it
# cannot be sent, and a NUL would end the string early, so the bind could only fail -- after a run has started.
_OCTETS: Final = r"^[\x01-\xff]*$"
_SYSTEM_ID: Final = {
    "type": "string", "minLength": 1, "maxLength": 15, "pattern": _OCTETS,
    "description": "an SMPP system_id: 1 to 15 Latin-1 (ISO 8859-1) characters, no NUL",
}
_PASSWORD: Final = {
    "type": "string", "maxLength": 8, "pattern": _OCTETS,
    "description": "an SMPP password: up to 8 Latin-1 (ISO 8859-1) characters, no NUL",
}
_DIGITS: Final = {"type": "string", "pattern": r"^\+?[0-9]{4,15}$", "description": "an E.164 number: 4 to 15 digits"}


def _kind(name: str, **params: dict[str, Any]) -> dict[str, Any]:
    return _obj({"distribution": {"const": name}, **params}, ("distribution", *params))


def _distribution() -> dict[str, Any]:
    return {
        "description": "a random duration in seconds: a number (fixed) or {distribution: ..., parameters}",
        "oneOf": [
            _num("a fixed duration in seconds"),
            _kind("fixed", value=_num("seconds")),
            _kind("uniform", low=_num("seconds"), high=_num("seconds")),
            _kind("exponential", mean=_num("seconds", exclusive=True)),
            _kind("lognormal", median=_num("seconds", exclusive=True), sigma=_num("shape", 0, 10)),
        ],
    }


def _faults() -> dict[str, Any]:
    properties: dict[str, Any] = {}
    for name, kind in FAULTS.items():
        if kind is int:
            properties[name] = _int("a size", 1, 1 << 16)
        elif name.endswith("_delay"):
            properties[name] = _num("seconds")
        else:
            properties[name] = _num("a probability per event, 0..1", 0, 1)
    return _obj(properties, description="faults the SMSC injects on purpose (carrier_sim.smsc.faults.FaultPlan)")


def _limits() -> dict[str, Any]:
    # The ranges are identity-core's own (identity_core.config._limits): a value outside them makes the bundled
    # core refuse to start, so the schema -- and editors using it -- must refuse it first. The rules relating two
    # keys (pump_baseline >= pump_window, pump_floor x pump_window >= 2) are beyond JSON Schema; the loader checks
    # those with identity-core's own function.
    properties: dict[str, Any] = {}
    for name, kind in LIMITS.items():
        if kind == "pair":
            properties[name] = {
                "type": "array",
                "description": "[rate per second, burst]",
                # A burst below one token would let no request through at all.
                "prefixItems": [
                    # identity core takes 0 as a bucket that never refills (a lifetime cap) and refuses it.
                    _num("requests per second, > 0", 0, _MAX_RATE, exclusive=True),
                    _num("burst (requests), >= 1", 1, _MAX_RATE),
                ],
                "minItems": 2,
                "maxItems": 2,
            }
    properties["prefix_digits"] = _int("digits after the '+' that make a prefix (E.164: at most 15)", 1, 15)
    properties["pump_window"] = _num("seconds over which a prefix's current REG-REQ rate is measured", 0,
                                     exclusive=True)
    properties["pump_baseline"] = _num(
        "seconds, the time constant of a prefix's normal rate (its baseline); at least pump_window", 0, exclusive=True
    )
    properties["pump_factor"] = _num(
        "a multiple (>= 1): a prefix is blocked above pump_factor x its baseline + pump_floor", 1, _MAX_RATE
    )
    properties["pump_floor"] = _num(
        "REG-REQs per second any prefix may send on top of pump_factor x its baseline; > 0", 0, _MAX_RATE,
        exclusive=True,
    )
    properties["pump_block"] = _num("seconds a pumping prefix stays blocked")
    # Same order as LIMITS (identity-core's), so the generated document reads as its [limits] table does.
    return _obj({name: properties[name] for name in LIMITS},
                description="identity-core's [limits] table, for the bundled system under test")


def _event(kind: str, description: str) -> dict[str, Any]:
    common: dict[str, Any] = {"at": _num("seconds into the run"), "type": {"const": kind}}
    if kind == "smsc_outage":
        return _obj(
            {**common, "carrier": _ref("name"), "duration": _num("seconds", exclusive=True)},
            ("at", "type", "carrier", "duration"),
            description,
        )
    properties = {**common, "share": _num("share of activated phones, 0..1", 0, 1, exclusive=True),
                  "carrier": _ref("name")}
    if kind == "sim_swap":
        properties["via"] = {
            "enum": ["events_api", "network_api"],
            "description": "events_api (default): the runner tells the system under test (POST /v1/events); "
            "network_api: the SIM changes in the carrier's CAMARA registry only, and the runner asks the system "
            "under test's risk check, which must find the swap through the carrier's SIM Swap API",
        }
    return _obj(properties, ("at", "type", "share"), description)


def _build() -> dict[str, Any]:
    defs: dict[str, Any] = {
        "name": {
            "type": "string",
            "pattern": "^[A-Za-z][A-Za-z0-9_-]{0,63}$",
            "description": "a name: a letter, then up to 63 letters, digits, '-' or '_'",
        },
        "distribution": _distribution(),
        "account": _obj(
            {
                "system_id": _SYSTEM_ID,
                "password": _PASSWORD,
                "throughput": _num("submits per second for the whole account; 0: unlimited", 0, _MAX_RATE),
                "bind_throughput": _num("submits per second per bind; 0: unlimited", 0, _MAX_RATE),
                "max_binds": _int("concurrent binds", 1, 1000),
            },
            ("system_id", "password"),
            "an ESME account on the SMSC",
        ),
        "smsc": _obj(
            {
                "host": {"type": "string", "minLength": 1, "description": "listen address"},
                "port": _int("SMPP port; 0: any free port", 0, 65535),
                "tls_port": {
                    "type": ["integer", "null"],
                    "minimum": 0,
                    "maximum": 65535,
                    "description": "SMPP over TLS port; null: none",
                },
                "interface_version": {"enum": ["3.3", "3.4", "5.0"], "description": "SMPP version"},
                "window": _int("requests in flight per session", 1, 10000),
                "accounts": {"type": "array", "minItems": 1, "items": _ref("account")},
                "dialect": {"enum": list(DIALECTS), "description": "how its delivery receipts are written"},
                "receipts": _obj({"delay": _ref("distribution")}, description="delivery receipt behaviour"),
                "roaming": _obj(
                    {"delay": _ref("distribution")},
                    description="delivery to roaming phones, through a visited network",
                ),
                "faults": _faults(),
                "timers": _obj(
                    {
                        "response_timeout": _num("seconds a request may stay unanswered", exclusive=True),
                        "enquire_link_interval": _num("idle seconds before an enquire_link", exclusive=True),
                        "enquire_link_misses": _int("unanswered enquire_link in a row before an unbind; 0: never",
                                                    0, 1000),
                        "session_init_timeout": _num("seconds a connection may stay unbound", exclusive=True),
                        "inactivity_timeout": _num("seconds without traffic before an unbind; 0: never"),
                    },
                    description="SMPP session timers (SMPP 3.4 section 7.2)",
                ),
            },
            description="the carrier's SMS centre",
        ),
        "door": _obj(
            {
                "host": {"type": "string", "minLength": 1, "description": "listen address"},
                "port": _int("port; 0: any free port", 0, 65535),
            },
            description="an HTTP door of the carrier",
        ),
        "doors": _obj(
            {
                "rcs": _ref("door"),
                "smtp": _obj(
                    {
                        "host": {"type": "string", "minLength": 1, "description": "listen address"},
                        "port": _int("port; 0: any free port", 0, 65535),
                        "domain": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": 253,
                            "description": "the SMS domain it serves (mail to NUMBER@domain becomes an SMS)",
                        },
                        "short_code": {
                            "type": "string",
                            "pattern": "^[0-9]{3,15}$",
                            "description": "a short code of 3 to 15 digits",
                        },
                        "max_recipients": _int(
                            "accepted recipients per mail transaction; the next RCPTs get 452 4.5.3 (RFC 5321 "
                            "section 4.5.3.1.8 requires at least 100, the default; less emulates a stricter gateway)",
                            1,
                        ),
                    },
                    ("domain",),
                    "the carrier's email-to-SMS gateway",
                ),
                "camara": _obj(
                    {
                        "host": {"type": "string", "minLength": 1, "description": "listen address"},
                        "port": _int("port; 0: any free port", 0, 65535),
                        "token": {
                            "type": "string", "minLength": 8, "maxLength": 200, "pattern": "^[A-Za-z0-9._~+/-]+=*$",
                            "description": "the two-legged bearer token its APIs accept from servers",
                        },
                        "too_many_requests": _num(
                            "share of CAMARA requests refused with 429 TOO_MANY_REQUESTS, 0..1 (keyed draws)", 0, 1
                        ),
                        "unavailable": _num(
                            "share of CAMARA requests refused with 503 UNAVAILABLE, 0..1 (keyed draws)", 0, 1
                        ),
                    },
                    description="the carrier's CAMARA network APIs",
                ),
            },
            description="the carrier's doors besides its SMSC: RCS autoconfiguration, SMTP, CAMARA network APIs",
        ),
        "carrier": _obj(
            {
                "name": _ref("name"),
                "mcc": {"type": "string", "pattern": "^[0-9]{3}$", "description": "a mobile country code: 3 digits"},
                "mnc": {
                    "type": "string",
                    "pattern": "^[0-9]{2,3}$",
                    "description": "a mobile network code: 2-3 digits",
                },
                "country": {"type": "string", "pattern": "^[A-Z]{2}$", "description": "an ISO 3166 country: 2 letters"},
                "numbering": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "string",
                        "pattern": r"^\+?[0-9]{4,15}(-\+?[0-9]{4,15})?$",
                        "description": "a number range FIRST-LAST (inclusive) or a single number",
                    },
                },
                "gateway": {**_DIGITS, "description": "the number its phones send REG-REQ to"},
                "smsc": _ref("smsc"),
                "doors": _ref("doors"),
            },
            ("name", "mcc", "mnc", "country", "numbering", "gateway"),
            "an emulated carrier",
        ),
        "population": _obj(
            {
                "phones": _int("how many phones", 1),
                "mix": {
                    "type": "object",
                    "description": "carrier name: share of phones; shares sum to 1 (default: equal shares)",
                    "propertyNames": _ref("name"),
                    "additionalProperties": _SHARE,
                },
                "conditions": _obj(
                    {"absent": _SHARE, "barred": _SHARE, "roaming": _SHARE},
                    description="shares of phones in each subscriber condition",
                ),
            },
            ("phones",),
            "the phones",
        ),
        "system_under_test": {
            **_obj(
                {
                    "kind": {"enum": ["bundled", "external"]},
                    "api": {"type": "string", "pattern": "^https?://.+", "description": "http(s)://HOST:PORT"},
                    "system_id": _SYSTEM_ID,
                    "password": _PASSWORD,
                    "limits": _limits(),
                },
                description="the bundled identity core, or an external service binding to the emulated SMSCs",
            ),
            "if": {"properties": {"kind": {"const": "external"}}, "required": ["kind"]},
            "then": {"required": ["api"], "description": "an external system under test needs api: its HTTP URL"},
        },
        "rate": {
            "description": "arrivals per second: a number (constant) or {from, to} (linear ramp)",
            "anyOf": [
                _num("arrivals per second", 0, _MAX_RATE),
                _obj(
                    {
                        "from": _num("arrivals per second", 0, _MAX_RATE),
                        "to": _num("arrivals per second", 0, _MAX_RATE),
                    },
                    ("from", "to"),
                ),
            ],
        },
        "phase": _obj(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 64},
                "duration": _num("seconds", 0, _MAX_SECONDS, exclusive=True),
                "rate": _ref("rate"),
                "concurrency": _int("phones running flows back to back (closed model)", 1),
            },
            ("duration",),
            "a stretch of the load: rate (open model) or concurrency (closed model)",
        ),
        "load": _obj(
            {
                "model": {"enum": ["open", "closed"], "description": "default: inferred from the phases"},
                "phases": {"type": "array", "minItems": 1, "items": _ref("phase")},
            },
            ("phases",),
            "how phones arrive",
        ),
        "flow": _obj(
            {
                "name": {"enum": list(FLOWS)},
                "weight": _num("relative share of arrivals", 0, _MAX_COUNT, exclusive=True),
                "think_time": _ref("distribution"),
            },
            ("name",),
            "a flow the phones run",
        ),
        "event": {
            "description": "something that happens at a chosen time",
            "oneOf": [
                _event("sim_swap", "SIM swap of a share of the activated phones"),
                _event("port_out", "port-out of a share of the activated phones"),
                _event("smsc_outage", "the carrier's SMSC is down for duration seconds"),
            ],
        },
        "check": _obj(
            {
                "name": {"type": "string", "minLength": 1, "maxLength": 200},
                "metric": {"enum": list(METRICS), "description": "a metric name (see docs/scenarios.md)"},
                "op": {"enum": list(CHECK_OPS)},
                "value": {"type": "number"},
            },
            ("metric", "op", "value"),
            "a threshold on a named metric that must hold",
        ),
    }
    top = _obj(
        {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string"},
            "seed": _int("seed of every random draw", 0, SEED_MAX),
            "clock": {"enum": ["wall", "virtual"]},
            "include": {
                "description": "files merged under this one, relative to it",
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
            },
            "carriers": {"type": "array", "minItems": 1, "items": _ref("carrier")},
            "population": _ref("population"),
            "system_under_test": _ref("system_under_test"),
            "load": _ref("load"),
            "flows": {"type": "array", "minItems": 1, "items": _ref("flow")},
            "events": {"type": "array", "items": _ref("event")},
            "checks": {"type": "array", "items": _ref("check")},
        },
        ("name", "carriers", "population", "load", "flows"),
        "a carrier-sim scenario",
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "carrier-sim scenario",
        **top,
        "$defs": defs,
    }


#: The schema itself. Treat as read-only.
SCHEMA: Final[dict[str, Any]] = _build()


def schema_json() -> str:
    """The schema as published in ``docs/scenario.schema.json`` (stable key order, trailing newline)."""
    return json.dumps(SCHEMA, indent=2, ensure_ascii=False) + "\n"


def main() -> int:
    """Print the schema (``python -m carrier_sim.scenario.schema > docs/scenario.schema.json``)."""
    sys.stdout.write(schema_json())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
