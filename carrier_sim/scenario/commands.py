"""``carrier-sim validate FILE`` and ``carrier-sim plan FILE``: the scenario commands, ready for the CLI to call.

Both take the same ``--set path=value`` overrides as ``run``, so what is validated or planned is exactly what
would run. Exit status: 0 when the scenario is valid, 2 (the usual "bad input" status) with every problem on
stderr, one ``file:line:col: message`` per line, when it is not.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from carrier_sim.scenario.loader import ScenarioError, load_scenario
from carrier_sim.scenario.model import Scenario
from carrier_sim.scenario.plan import plan_totals, render_plan

__all__ = ["EXIT_INVALID", "plan_command", "validate_command"]

#: Exit status for a scenario with problems.
EXIT_INVALID = 2


def _load(path: Path, overrides: Sequence[str], err: TextIO) -> Scenario | None:
    try:
        return load_scenario(path, overrides)
    except ScenarioError as error:
        print(str(error), file=err)
        count = len(error.errors)
        print(f"{path}: {count} problem{'s' if count != 1 else ''}", file=err)
        return None


def validate_command(
    path: Path, overrides: Sequence[str] = (), *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Check a scenario; print a one-line summary (0) or every problem to stderr (2)."""
    out, err = out or sys.stdout, err or sys.stderr
    scenario = _load(path, overrides, err)
    if scenario is None:
        return EXIT_INVALID
    totals = plan_totals(scenario)
    if totals["arrivals"] is None:
        arrivals = ""
    elif totals["run_arrivals"] < totals["arrivals"]:
        # What the run will offer: each phone arrives at most once (plan shows the thinned rates).
        arrivals = f", ~{round(totals['run_arrivals']):,} arrivals (~{round(totals['arrivals']):,} declared)"
    else:
        arrivals = f", ~{round(totals['arrivals']):,} arrivals"
    print(
        f"{path}: ok: scenario {scenario.name}: {len(scenario.carriers)} carriers, {scenario.population.phones:,} "
        f"phones, {scenario.load.model} load over {totals['duration']:g} s{arrivals}, {len(scenario.checks)} checks",
        file=out,
    )
    return 0


def plan_command(
    path: Path, overrides: Sequence[str] = (), *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Print the resolved scenario (0), or every problem to stderr (2)."""
    out, err = out or sys.stdout, err or sys.stderr
    scenario = _load(path, overrides, err)
    if scenario is None:
        return EXIT_INVALID
    out.write(render_plan(scenario))
    return 0
