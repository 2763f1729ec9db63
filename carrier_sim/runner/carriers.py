"""The emulated carriers of a run: one SMSC server per declared carrier, with its subscribers' conditions."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from carrier_sim.net.smsc_server import SmscServer
from carrier_sim.scenario.model import Carrier, Distribution, Scenario
from carrier_sim.smpp.constants import InterfaceVersion
from carrier_sim.smpp.receipt import PRESETS
from carrier_sim.smsc.accounts import Account
from carrier_sim.smsc.centre import DelayDistribution, MtListener, Smsc, SmscConfig
from carrier_sim.smsc.faults import FaultPlan
from carrier_sim.smsc.subscribers import Condition, SubscriberRegistry

__all__ = ["CONDITION_CODES", "RunningCarrier", "start_carriers"]

#: Condition column codes (population) -> the SMSC's subscriber condition.
CONDITION_CODES: dict[int, Condition] = {
    0: Condition.REACHABLE,
    1: Condition.ABSENT,
    2: Condition.BARRED,
    3: Condition.ROAMING,
}
_VERSIONS = {"3.3": InterfaceVersion.V33, "3.4": InterfaceVersion.V34, "5.0": InterfaceVersion.V50}


@dataclass
class RunningCarrier:
    """A carrier's SMSC, listening."""

    carrier: Carrier
    server: SmscServer
    host: str
    port: int
    saved_port: int

    @property
    def smsc(self) -> Smsc:
        """The pure SMSC behind the server."""
        return self.server.smsc


def _delay(d: Distribution) -> DelayDistribution:
    """The scenario's distribution as the SMSC draws it: every kind the format names (an exponential or lognormal
    delay once became a fixed 0 s here, silently)."""
    if d.kind == "uniform":
        return DelayDistribution(d.low, d.high)
    if d.kind == "exponential":
        return DelayDistribution(kind="exponential", mean=d.mean)
    if d.kind == "lognormal":
        return DelayDistribution(kind="lognormal", median=d.median, sigma=d.sigma)
    return DelayDistribution(d.value, d.value)


def _timers(values: dict[str, float]) -> dict[str, Any]:
    """The scenario's ``smsc.timers`` as SmscConfig fields (the schema has checked names and ranges)."""
    return {name: int(value) if name == "enquire_link_misses" else float(value) for name, value in values.items()}


def _faults(values: dict[str, float]) -> FaultPlan:
    known = {f.name for f in fields(FaultPlan)}
    chosen: dict[str, Any] = {k: (int(v) if k == "split_max" else float(v)) for k, v in values.items() if k in known}
    return replace(FaultPlan(), **chosen)


async def start_carriers(
    scenario: Scenario,
    sut_account: tuple[str, str],
    msisdns: npt.NDArray[np.int64],
    carrier_of: npt.NDArray[np.integer[Any]],
    conditions: npt.NDArray[np.int8],
    mt_listener: Callable[[int], MtListener],
    clock: Callable[[], float] = time.time,
) -> list[RunningCarrier]:
    """Start one SMSC per carrier on its declared port (0: any free one). Subscribers in any condition but
    reachable (absent, barred, roaming) are registered with their SMSC; the SUT's account is added to every SMSC.
    ``clock`` is the run's (the wall clock, or a virtual loop's). ``carrier_of`` is only compared with carrier
    positions, so any integer dtype serves (the population's int16 column, ``carriers``' empty arrays)."""
    running: list[RunningCarrier] = []
    try:
        await _start_each(scenario, sut_account, msisdns, carrier_of, conditions, mt_listener, running, clock)
    except BaseException:
        # One carrier could not start (its port is taken): the ones already listening must not outlive the call.
        for started in reversed(running):
            await started.server.shutdown()
        raise
    return running


async def _start_each(
    scenario: Scenario,
    sut_account: tuple[str, str],
    msisdns: npt.NDArray[np.int64],
    carrier_of: npt.NDArray[np.integer[Any]],
    conditions: npt.NDArray[np.int8],
    mt_listener: Callable[[int], MtListener],
    running: list[RunningCarrier],
    clock: Callable[[], float],
) -> None:
    dialects = {d.name: d for d in PRESETS}
    for index, carrier in enumerate(scenario.carriers):
        subscribers = SubscriberRegistry()
        mine = carrier_of == index
        for code in (1, 2, 3):
            for number in msisdns[mine & (conditions == code)]:
                subscribers.set(str(int(number)), CONDITION_CODES[code])
        accounts = tuple(
            Account(a.system_id, a.password, throughput=a.throughput, bind_throughput=a.bind_throughput,
                    max_binds=a.max_binds, routes=(carrier.gateway,))
            for a in carrier.smsc.accounts
        )
        if not any(a.system_id == sut_account[0] for a in accounts):
            accounts += (Account(sut_account[0], sut_account[1], routes=(carrier.gateway,)),)
        config = SmscConfig(
            name=carrier.name[:15],
            accounts=accounts,
            dialect=dialects.get(carrier.smsc.dialect, dialects["kannel-like"]),
            dlr_delay=_delay(carrier.smsc.receipt_delay),
            roaming_delay=_delay(carrier.smsc.roaming_delay),
            interface_version=_VERSIONS.get(carrier.smsc.interface_version, InterfaceVersion.V34),
            window=carrier.smsc.window,
            # The window the scenario declares is the agreement with the bound ESME, in both directions.
            peer_window=carrier.smsc.window,
            faults=_faults(carrier.smsc.faults),
            **_timers(carrier.smsc.timers),
            seed=scenario.seed * 1000 + index,
            # Phones' MO wait out an outage or a reconnect of the SUT in the SMSC, as on a real network.
            hold_mo=120.0,
        )
        server = SmscServer(Smsc(config, subscribers, mt_listener(index)), clock)
        host, port = await server.listen(carrier.smsc.host, carrier.smsc.port)
        running.append(RunningCarrier(carrier, server, host, port, port))
