"""Scenarios for the population tests, built in code so each test says exactly what it needs."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from carrier_sim.scenario import model

ScenarioFactory = Callable[..., model.Scenario]


def _carriers() -> tuple[model.Carrier, ...]:
    # Three carriers with deliberately awkward ranges: two ranges out of order, MNCs of 2 and 3 digits, and the
    # ITU-T/ITU test MCC 001 beside the reserved 999.
    return (
        model.Carrier(
            name="carrier-a",
            mcc="001",
            mnc="01",
            country="GB",
            ranges=(model.NumberRange(447700900000, 447700900999), model.NumberRange(447700000000, 447700099999)),
            smsc=model.Smsc(),
            gateway="447700900000",
        ),
        model.Carrier(
            name="carrier-b",
            mcc="001",
            mnc="001",
            country="US",
            ranges=(model.NumberRange(12015550000, 12015649999),),
            smsc=model.Smsc(),
            gateway="12015550100",
        ),
        model.Carrier(
            name="carrier-c",
            mcc="999",
            mnc="99",
            country="DE",
            ranges=(model.NumberRange(4915100000000, 4915100199999),),
            smsc=model.Smsc(),
            gateway="4915100000000",
        ),
    )


def build_scenario(
    phones: int = 1000,
    seed: int = 1,
    mix: dict[str, float] | None = None,
    absent: float = 0.05,
    barred: float = 0.02,
    roaming: float = 0.1,
    phases: Sequence[model.Phase] = (model.Phase("ramp", 10.0, 0.0, 100.0), model.Phase("flat", 20.0, 100.0, 100.0)),
    model_kind: str = "open",
) -> model.Scenario:
    """A scenario of ``phones`` over the three carriers above."""
    return model.Scenario(
        name="population-test",
        seed=seed,
        clock="virtual",
        carriers=_carriers(),
        population=model.Population(
            phones=phones,
            mix={"carrier-a": 0.5, "carrier-b": 0.3, "carrier-c": 0.2} if mix is None else mix,
            absent=absent,
            barred=barred,
            roaming=roaming,
        ),
        system_under_test=model.SystemUnderTest(),
        load=model.Load("open" if model_kind == "open" else "closed", tuple(phases)),
        flows=(
            model.Flow("activation", 3.0, model.Distribution("exponential", mean=2.0)),
            model.Flow("renewal", 1.0, model.Distribution("uniform", low=1.0, high=3.0)),
        ),
    )


@pytest.fixture(scope="session")
def make_scenario() -> ScenarioFactory:
    """The scenario builder (session-scoped so Hypothesis tests may use it)."""
    return build_scenario
