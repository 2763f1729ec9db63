"""The typed model of a scenario file, as the loader produces it and the runner consumes it.

Every node remembers where it came from (``where``: "file:line:col") so the runner's own errors can point
into the file too. Times are seconds, rates are per second, shares are fractions 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

__all__ = [
    "DEFAULT_CAMARA_TOKEN",
    "DEFAULT_ROAMING_DELAY",
    "FLOW_NAMES",
    "METRICS",
    "SEED_MAX",
    "Account",
    "CamaraDoor",
    "Carrier",
    "Check",
    "Distribution",
    "Doors",
    "Event",
    "Flow",
    "Load",
    "NumberRange",
    "Phase",
    "Population",
    "RcsDoor",
    "Scenario",
    "Smsc",
    "SmtpDoor",
    "SystemUnderTest",
]


@dataclass(frozen=True, slots=True)
class Distribution:
    """A random duration: ``fixed`` (value), ``uniform`` (low..high), ``exponential`` (mean), ``lognormal``
    (median, sigma)."""

    kind: Literal["fixed", "uniform", "exponential", "lognormal"] = "fixed"
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    mean: float = 0.0
    median: float = 0.0
    sigma: float = 0.0


#: What delivery through a visited network adds to an MT for a roaming phone when the scenario does not say: the
#: MAP forwardSM to the visited MSC and its answer cross the international signalling network, typically a second
#: or two more than at home.
DEFAULT_ROAMING_DELAY: Final = Distribution("uniform", low=0.5, high=2.0)


@dataclass(frozen=True, slots=True)
class NumberRange:
    """An inclusive range of MSISDNs (international digits without '+')."""

    first: int
    last: int

    @property
    def size(self) -> int:
        """How many numbers the range holds."""
        return self.last - self.first + 1


@dataclass(frozen=True, slots=True)
class Account:
    """An ESME account on a carrier's SMSC."""

    system_id: str
    password: str
    throughput: float = 0.0
    bind_throughput: float = 0.0
    max_binds: int = 8


@dataclass(frozen=True, slots=True)
class Smsc:
    """A carrier's SMS centre: ports (0 = any free port), accounts, dialect, receipts, faults, protocol."""

    port: int = 0
    tls_port: int | None = None
    host: str = "127.0.0.1"
    accounts: tuple[Account, ...] = ()
    dialect: str = "kannel-like"
    receipt_delay: Distribution = field(default_factory=Distribution)
    #: What delivery through a visited network adds for a roaming phone.
    roaming_delay: Distribution = DEFAULT_ROAMING_DELAY
    interface_version: str = "3.4"
    window: int = 10
    faults: dict[str, float] = field(default_factory=dict)
    #: Session timers (``SMSC_TIMERS``), seconds except ``enquire_link_misses``; a key left out keeps the SMSC's
    #: default.
    timers: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RcsDoor:
    """The carrier's RCS autoconfiguration server (HTTP): where it listens (port 0 = any free port)."""

    port: int = 0
    host: str = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class SmtpDoor:
    """The carrier's email-to-SMS gateway (SMTP): where it listens, the SMS domain it serves, its short code
    (the source of the SMS it sends, and where phones text mail to; None: none), and how many recipients one
    mail transaction may have accepted (``GatewayConfig.max_recipients``; the next RCPTs get 452 4.5.3)."""

    domain: str
    port: int = 0
    host: str = "127.0.0.1"
    short_code: str | None = None
    max_recipients: int = 100


#: The bearer token a CAMARA door accepts from servers when the scenario names none (an emulator on loopback).
DEFAULT_CAMARA_TOKEN = "carrier-sim-camara"


@dataclass(frozen=True, slots=True)
class CamaraDoor:
    """The carrier's CAMARA network APIs (HTTP): where they listen (port 0 = any free port), the bearer token
    they accept from servers (two-legged, every scope; the bundled identity core is given it), and the shares of
    requests refused with 429 TOO_MANY_REQUESTS and 503 UNAVAILABLE (to exercise servers' retry paths)."""

    port: int = 0
    host: str = "127.0.0.1"
    token: str = DEFAULT_CAMARA_TOKEN
    too_many_requests: float = 0.0
    unavailable: float = 0.0


@dataclass(frozen=True, slots=True)
class Doors:
    """The carrier's doors besides its SMSC; None: the carrier has no such door."""

    rcs: RcsDoor | None = None
    smtp: SmtpDoor | None = None
    camara: CamaraDoor | None = None


@dataclass(frozen=True, slots=True)
class Carrier:
    """An emulated carrier."""

    name: str
    mcc: str
    mnc: str
    country: str
    ranges: tuple[NumberRange, ...]
    smsc: Smsc
    #: The number its phones send REG-REQ to (the system under test's gateway number on this carrier).
    gateway: str
    where: str = ""
    #: RCS, SMTP and CAMARA doors; default none, so a carrier is only its SMSC.
    doors: Doors = field(default_factory=Doors)


@dataclass(frozen=True, slots=True)
class Population:
    """The phones: how many, how they split over carriers, and what share is in each subscriber condition."""

    phones: int
    mix: dict[str, float]
    absent: float = 0.0
    barred: float = 0.0
    roaming: float = 0.0


@dataclass(frozen=True, slots=True)
class SystemUnderTest:
    """``bundled``: the runner starts identity-core; ``external``: a service already running binds to the
    emulated SMSCs with ``system_id``/``password`` and serves HTTP at ``api``."""

    kind: Literal["bundled", "external"] = "bundled"
    api: str | None = None
    system_id: str = "identity"
    password: str = "secret"
    limits: dict[str, list[float] | float | int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Phase:
    """A stretch of the load: the arrival rate ramps linearly from ``rate_from`` to ``rate_to`` (open model) or
    ``concurrency`` phones run flows back to back (closed model)."""

    name: str
    duration: float
    rate_from: float = 0.0
    rate_to: float = 0.0
    concurrency: int = 0


@dataclass(frozen=True, slots=True)
class Load:
    """How phones arrive."""

    model: Literal["open", "closed"]
    phases: tuple[Phase, ...]


@dataclass(frozen=True, slots=True)
class Flow:
    """A flow phones run, with its share of arrivals and think time between steps."""

    name: Literal["activation", "renewal", "mo_mt", "rcs_cellular", "rcs_otp", "email"]
    weight: float = 1.0
    think_time: Distribution = field(default_factory=Distribution)


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happens at ``at`` seconds into the run: SIM swaps or port-outs of a share of the phones
    already activated, or an SMSC outage of ``duration`` seconds."""

    at: float
    kind: Literal["sim_swap", "port_out", "smsc_outage"]
    share: float = 0.0
    carrier: str | None = None
    duration: float = 0.0
    where: str = ""
    #: For sim_swap: "events_api" (the runner tells the SUT) or "network_api" (the SUT must ask the carrier).
    via: Literal["events_api", "network_api"] = "events_api"


@dataclass(frozen=True, slots=True)
class Check:
    """A threshold on a named metric: pass when ``metric op value`` holds."""

    name: str
    metric: str
    op: Literal["<", "<=", ">", ">=", "==", "!="]
    value: float
    where: str = ""


@dataclass(frozen=True, slots=True)
class Scenario:
    """A whole scenario file, resolved (includes merged, overrides applied, validated)."""

    name: str
    seed: int
    clock: Literal["wall", "virtual"]
    carriers: tuple[Carrier, ...]
    population: Population
    system_under_test: SystemUnderTest
    load: Load
    flows: tuple[Flow, ...]
    events: tuple[Event, ...] = ()
    checks: tuple[Check, ...] = ()
    source: str = ""
    #: Every file read to make the scenario, the scenario file first, then its includes in reading order, each with
    #: every symbolic link followed: what a run's outputs must never be written over. Not part of the scenario's
    #: value: the same scenario may be spelt in other files.
    files: tuple[Path, ...] = field(default=(), compare=False)


#: Every flow a scenario may name; each is also the prefix of its metrics.
#: The largest scenario seed (a signed 64-bit number, as the schema and --seed allow).
SEED_MAX: int = (1 << 63) - 1

FLOW_NAMES: tuple[str, ...] = ("activation", "renewal", "mo_mt", "rcs_cellular", "rcs_otp", "email")


def _flow_metrics() -> dict[str, str]:
    metrics: dict[str, str] = {}
    for flow in FLOW_NAMES:
        metrics |= {f"{flow}.started": "count", f"{flow}.completed": "count", f"{flow}.failed": "count",
                    f"{flow}.success_ratio": "ratio"}
        metrics |= {f"{flow}.latency.{p}": "s" for p in ("p50", "p90", "p99", "p999")}
    return metrics


#: Every metric a check may name, with its unit. A check naming anything else is a scenario error.
METRICS: dict[str, str] = {
    **_flow_metrics(),
    "reg_resp.latency.p50": "s",
    "reg_resp.latency.p99": "s",
    "authenticate.latency.p50": "s",
    "authenticate.latency.p99": "s",
    "auth_queue.latency.p50": "s",
    "auth_queue.latency.p99": "s",
    "mo.sent": "count",
    "mt.delivered": "count",
    "mt.undeliverable": "count",
    "receipts.sent": "count",
    "smpp.throttled": "count",
    "smpp.binds": "count",
    "smpp.conformance.pass": "count",
    "smpp.conformance.fail": "count",
    "smpp.conformance.inconc": "count",
    "events.revoked": "count",
    "events.revocation_ratio": "ratio",
    "risk_checks.untrusted": "count",
    "risk_checks.false_alarms": "count",
    "risk_checks.unavailable": "count",
    "rcs.documents_invalid": "count",
    "load.achieved_ratio": "ratio",
    "load.planned": "count",
    "load.arrived": "count",
    "load.on_time": "count",
}
