"""What a scenario will do, worked out before running it: ``carrier-sim plan FILE``.

Everything here is arithmetic on the resolved :class:`~carrier_sim.scenario.model.Scenario`: how many phones each
carrier gets, how many arrivals each phase should produce (the integral of its rate ramp) and how many the run
really offers (each phone arrives at most once, so a load that declares more arrivals than there are phones is
thinned: :func:`carrier_sim.population.arrivals.carried_share`), when events fire, and which ports the emulated
SMSCs take. :func:`phones_per_carrier` is the one split of the population the loader
(to check numbering capacity) and the runner (to build the population) must both use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from carrier_sim.population.arrivals import carried_share
from carrier_sim.population.identities import carrier_weights, largest_remainder
from carrier_sim.scenario.model import METRICS, Carrier, Distribution, Scenario

__all__ = ["THINNING_WARNING", "phones_per_carrier", "plan_totals", "render_plan"]

#: Thinning that drops more than this share of the declared arrivals is a warning in the plan, not a note.
THINNING_WARNING = 0.03


def phones_per_carrier(phones: int, mix: Mapping[str, float], carriers: Sequence[str] | None = None) -> dict[str, int]:
    """Split ``phones`` over ``carriers`` (names in declaration order; the mix's order when None) by their shares,
    exactly: the run's own split (:func:`~carrier_sim.population.identities.largest_remainder` over
    :func:`~carrier_sim.population.identities.carrier_weights`), so ties go to the carrier declared first.

    Shares are normalised by their sum, so a mix that sums to 1 within rounding still hands out every phone.
    """
    # The same function and order as NumberingPlan: a split of its own, breaking ties in mix order, printed
    # per-carrier counts that differed from what the run used.
    names = list(mix) if carriers is None else list(carriers)
    weights = [max(w, 0.0) for w in carrier_weights(names, mix)]
    if phones <= 0 or sum(weights) <= 0:
        return dict.fromkeys(names, 0)
    return dict(zip(names, (int(n) for n in largest_remainder(phones, weights)), strict=True))


def _phase_arrivals(rate_from: float, rate_to: float, duration: float) -> float:
    # The rate ramps linearly, so the expected number of arrivals is the area of a trapezoid.
    return (rate_from + rate_to) / 2.0 * duration


def plan_totals(scenario: Scenario) -> dict[str, Any]:
    """The plan as numbers: per-carrier phones and ports, per-phase arrivals, flows, events, totals.

    ``arrivals`` values are the declared expectations (the integral of each ramp) for the open model and ``None``
    for the closed model, where arrivals depend on how fast the system under test answers. ``run_arrivals``,
    ``run_rate_from`` and ``run_rate_to`` are what the run offers: the declared figures times ``carried_share``
    (below 1 when the phases declare more arrivals than there are phones, each phone arriving at most once).
    Ports are as declared: 0 means any free port.
    """
    population = scenario.population
    per_carrier = phones_per_carrier(population.phones, population.mix, [c.name for c in scenario.carriers])
    open_model = scenario.load.model == "open"
    declared = sum(_phase_arrivals(p.rate_from, p.rate_to, p.duration) for p in scenario.load.phases)
    share = carried_share(declared, population.phones) if open_model else None
    phases: list[dict[str, Any]] = []
    start = 0.0
    for phase in scenario.load.phases:
        end = start + phase.duration
        phases.append(
            {
                "name": phase.name,
                "start": start,
                "end": end,
                "duration": phase.duration,
                "rate_from": phase.rate_from,
                "rate_to": phase.rate_to,
                "concurrency": phase.concurrency,
                "arrivals": _phase_arrivals(phase.rate_from, phase.rate_to, phase.duration) if open_model else None,
                "run_arrivals": None if share is None else
                _phase_arrivals(phase.rate_from, phase.rate_to, phase.duration) * share,
                "run_rate_from": None if share is None else phase.rate_from * share,
                "run_rate_to": None if share is None else phase.rate_to * share,
            }
        )
        start = end
    arrivals = sum(p["arrivals"] for p in phases) if open_model else None
    run_arrivals = sum(p["run_arrivals"] for p in phases) if open_model else None
    weights = sum(f.weight for f in scenario.flows)
    flows = {
        f.name: {
            "share": f.weight / weights,
            "arrivals": None if arrivals is None else arrivals * f.weight / weights,
            "run_arrivals": None if run_arrivals is None else run_arrivals * f.weight / weights,
        }
        for f in scenario.flows
    }
    events = []
    for event in sorted(scenario.events, key=lambda e: e.at):
        base = per_carrier.get(event.carrier, 0) if event.carrier else population.phones
        events.append(
            {
                "at": event.at,
                "type": event.kind,
                "carrier": event.carrier,
                "phones": round(event.share * base) if event.kind != "smsc_outage" else 0,
                "until": event.at + event.duration if event.kind == "smsc_outage" else None,
            }
        )
    return {
        "duration": start,
        "phones": population.phones,
        "phones_per_carrier": per_carrier,
        "numbers_per_carrier": {c.name: sum(r.size for r in c.ranges) for c in scenario.carriers},
        "conditions": {
            "absent": round(population.absent * population.phones),
            "barred": round(population.barred * population.phones),
            "roaming": round(population.roaming * population.phones),
        },
        "ports": {
            c.name: {"host": c.smsc.host, "smpp": c.smsc.port, "tls": c.smsc.tls_port} for c in scenario.carriers
        },
        "doors": {c.name: _doors(c) for c in scenario.carriers},
        "phases": phases,
        "arrivals": arrivals,
        "carried_share": share,
        "run_arrivals": run_arrivals,
        "peak_rate": max((max(p["rate_from"], p["rate_to"]) for p in phases), default=0.0) if open_model else None,
        "peak_concurrency": None if open_model else max(p["concurrency"] for p in phases),
        "flows": flows,
        "events": events,
    }


def _doors(carrier: Carrier) -> dict[str, dict[str, Any]]:
    """The carrier's declared doors besides its SMSC: door name -> host, port (0: any free one), extras."""
    doors: dict[str, dict[str, Any]] = {}
    if carrier.doors.rcs is not None:
        doors["rcs"] = {"host": carrier.doors.rcs.host, "port": carrier.doors.rcs.port}
    if carrier.doors.smtp is not None:
        smtp = carrier.doors.smtp
        doors["smtp"] = {"host": smtp.host, "port": smtp.port, "domain": smtp.domain}
    if carrier.doors.camara is not None:
        doors["camara"] = {"host": carrier.doors.camara.host, "port": carrier.doors.camara.port}
    return doors


def _n(value: float) -> str:
    """A number as people read it: thousands separated, no needless decimals."""
    if abs(value - round(value)) < 1e-9:
        return f"{round(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) >= 0.01 else f"{value:g}"


def _rate(rate_from: float, rate_to: float) -> str:
    return _n(rate_from) if rate_from == rate_to else f"{_n(rate_from)} -> {_n(rate_to)}"


def _percent(share: float) -> str:
    """A share as a percentage, with a decimal only where it matters (95.2 %, 50 %)."""
    return f"{_n(round(share * 100, 1))} %"


def _port(port: int | None) -> str:
    return "any free port" if port == 0 or port is None else str(port)


def _distribution(d: Distribution) -> str:
    if d.kind == "fixed":
        return f"{_n(d.value)} s"
    if d.kind == "uniform":
        return f"uniform {_n(d.low)}..{_n(d.high)} s"
    if d.kind == "exponential":
        return f"exponential, mean {_n(d.mean)} s"
    return f"lognormal, median {_n(d.median)} s, sigma {_n(d.sigma)}"


def _table(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    out = []
    for row in rows:
        cells = [
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        out.append((indent + "  ".join(cells)).rstrip())
    return out


def render_plan(scenario: Scenario) -> str:
    """The resolved scenario as text for people: carriers, population, system under test, load, flows, events,
    checks."""
    totals = plan_totals(scenario)
    lines = [f"scenario {scenario.name}" + (f"  ({scenario.source})" if scenario.source else "")]
    lines.append(f"  seed {scenario.seed}, {scenario.clock} clock")
    lines.append("")
    lines.append("carriers")
    for carrier in scenario.carriers:
        smsc = carrier.smsc
        phones = totals["phones_per_carrier"].get(carrier.name, 0)
        share = scenario.population.mix.get(carrier.name, 0.0)
        lines.append(
            f"  {carrier.name}  MCC {carrier.mcc} MNC {carrier.mnc}  {carrier.country}  gateway {carrier.gateway}"
        )
        tls = f", TLS {smsc.host}:{_port(smsc.tls_port)}" if smsc.tls_port is not None else ""
        lines.append(
            f"    SMSC      {smsc.host}:{_port(smsc.port)}{tls}, SMPP {smsc.interface_version}, "
            f"window {smsc.window}, dialect {smsc.dialect}"
        )
        for door, info in totals["doors"][carrier.name].items():
            domain = f", mail to NUMBER@{info['domain']}" if "domain" in info else ""
            lines.append(f"    {door:<9} {info['host']}:{_port(info['port'])}{domain}")
        for account in smsc.accounts:
            limit = f"{_n(account.throughput)}/s" if account.throughput else "unthrottled"
            per_bind = f", {_n(account.bind_throughput)}/s per bind" if account.bind_throughput else ""
            lines.append(f"    account   {account.system_id}: up to {account.max_binds} binds, {limit}{per_bind}")
        lines.append(f"    receipts  after {_distribution(smsc.receipt_delay)}")
        if scenario.population.roaming:
            # Only news when some phones roam: the visited network delays their MTs (and so their receipts).
            lines.append(f"    roaming   MTs delivered {_distribution(smsc.roaming_delay)} later")
        if smsc.faults:
            lines.append("    faults    " + ", ".join(f"{k} {_n(v)}" for k, v in smsc.faults.items()))
        if smsc.timers:
            lines.append("    timers    " + ", ".join(f"{k} {_n(v)}" for k, v in smsc.timers.items()))
        ranges = ", ".join(f"{r.first}-{r.last}" if r.size > 1 else str(r.first) for r in carrier.ranges)
        lines.append(f"    numbers   {ranges} ({_n(totals['numbers_per_carrier'][carrier.name])} numbers)")
        lines.append(f"    phones    {_n(phones)} ({share:.1%} of the population)")
    population = scenario.population
    lines.append("")
    conditions = totals["conditions"]
    lines.append(
        f"population  {_n(population.phones)} phones; absent {_n(conditions['absent'])}, "
        f"barred {_n(conditions['barred'])}, roaming {_n(conditions['roaming'])}"
    )
    sut = scenario.system_under_test
    lines.append("")
    where = (
        "the bundled identity-core, started by the runner" if sut.kind == "bundled" else f"external, HTTP at {sut.api}"
    )
    lines.append(f"system under test  {where}; binds as {sut.system_id}")
    if sut.limits:
        lines.append("  limits  " + ", ".join(f"{k}={v}" for k, v in sut.limits.items()))
    lines.append("")
    lines.append(f"load  {scenario.load.model} model")
    thinned = totals["carried_share"] is not None and totals["carried_share"] < 1.0
    if scenario.load.model == "open":
        rows = [["phase", "start s", "end s", "rate /s", "expected arrivals"]]
        if thinned:
            rows[0] += ["thinned rate /s", "thinned arrivals"]
        for p in totals["phases"]:
            row = [p["name"], _n(p["start"]), _n(p["end"]), _rate(p["rate_from"], p["rate_to"]), _n(p["arrivals"])]
            if thinned:
                row += [_rate(p["run_rate_from"], p["run_rate_to"]), _n(p["run_arrivals"])]
            rows.append(row)
        row = ["total", "", _n(totals["duration"]), f"peak {_n(totals['peak_rate'])}", _n(totals["arrivals"])]
        if thinned:
            row += [f"peak {_n(totals['peak_rate'] * totals['carried_share'])}", _n(totals["run_arrivals"])]
        rows.append(row)
    else:
        rows = [["phase", "start s", "end s", "concurrent phones"]]
        for p in totals["phases"]:
            rows.append([p["name"], _n(p["start"]), _n(p["end"]), _n(p["concurrency"])])
        rows.append(["total", "", _n(totals["duration"]), f"peak {_n(totals['peak_concurrency'])}"])
    lines.extend(_table(rows))
    if thinned:
        # Each phone arrives at most once (population/arrivals.py), so the population caps the offered load; the
        # reader must see the load the run really offers, not only the one the file declares.
        share = totals["carried_share"]
        level = "warning" if 1.0 - share > THINNING_WARNING else "note"
        lines.append(
            f"  {level}: {_n(totals['arrivals'])} arrivals declared for {_n(population.phones)} phones; each phone "
            f"arrives at most once, so the run offers {_n(totals['run_arrivals'])}:"
        )
        lines.append(
            f"  {' ' * len(level)}  every phase's rate is thinned to {_percent(share)} of the declared one "
            f"({_percent(1.0 - share)} less load)"
        )
    lines.append("")
    lines.append("flows")
    for flow in scenario.flows:
        info = totals["flows"][flow.name]
        expected = f", ~{_n(info['run_arrivals'])} arrivals" if info["run_arrivals"] is not None else ""
        lines.append(
            f"  {flow.name}  {info['share']:.1%} of arrivals{expected}; think time {_distribution(flow.think_time)}"
        )
    lines.append("")
    lines.append("events" if totals["events"] else "events  none")
    for event in totals["events"]:
        if event["type"] == "smsc_outage":
            what = f"SMSC of {event['carrier']} down until t={_n(event['until'])} s"
        else:
            scope = f" of {event['carrier']}" if event["carrier"] else ""
            what = f"{event['type']} of up to ~{_n(event['phones'])} activated phones{scope}"
        lines.append(f"  t={_n(event['at'])} s  {what}")
    lines.append("")
    lines.append("checks" if scenario.checks else "checks  none")
    for check in scenario.checks:
        unit = METRICS.get(check.metric, "")
        suffix = " s" if unit == "s" else ""
        condition = f"{check.metric} {check.op} {_n(check.value)}{suffix}"
        # An unnamed check is named after its condition by the loader; saying it twice helps nobody.
        label = "" if check.name.startswith(f"{check.metric} {check.op} ") else f"{check.name}: "
        lines.append(f"  {label}{condition}  ({unit})")
    return "\n".join(lines) + "\n"
