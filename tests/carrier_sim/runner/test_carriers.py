"""The runner's carriers: what a scenario's ``smsc`` section makes of the SMSC each carrier runs."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest

from carrier_sim.population.columns import Population
from carrier_sim.runner.carriers import CONDITION_CODES, start_carriers
from carrier_sim.scenario.loader import ScenarioError, load_scenario
from carrier_sim.smpp.codec import HEADER_SIZE, decode, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smsc.centre import DelayDistribution, SmscConfig
from carrier_sim.smsc.subscribers import Condition

ROOT = Path(__file__).resolve().parents[3]
QUICKSTART = ROOT / "scenarios" / "quickstart.yaml"
SHORT = "carriers.carrier-a.smsc.timers={enquire_link_interval: 0.2, response_timeout: 0.2, enquire_link_misses: 1}"


async def _read(reader: asyncio.StreamReader) -> Pdu:
    async with asyncio.timeout(5):
        header = await reader.readexactly(HEADER_SIZE)
        body = await reader.readexactly(struct.unpack(">I", header[:4])[0] - HEADER_SIZE)
    return decode(header + body)


async def test_scenario_timers_reach_the_smsc_and_a_mute_peer_is_unbound() -> None:
    scenario = load_scenario(QUICKSTART, ["population.phones=20", SHORT])
    population = Population(scenario)
    running = await start_carriers(scenario, ("identity", "secret"), population.msisdn, population.carrier,
                                   population.condition, lambda _: lambda *_: None)
    try:
        short, untouched = (c.server.smsc.config for c in running)
        assert (short.enquire_link_interval, short.response_timeout, short.enquire_link_misses) == (0.2, 0.2, 1)
        assert isinstance(short.enquire_link_misses, int)
        default = SmscConfig()
        assert (untouched.enquire_link_interval, untouched.response_timeout, untouched.enquire_link_misses) == (
            default.enquire_link_interval, default.response_timeout, default.enquire_link_misses)
        # A peer that binds, then never answers: one missed enquire_link and the SMSC unbinds, then hangs up.
        reader, writer = await asyncio.open_connection(running[0].host, running[0].port)
        writer.write(encode(Pdu.make(CommandId.bind_transceiver, 1, system_id="identity", password="secret",
                                     interface_version=0x34)))
        bound = await _read(reader)
        assert (bound.command_id, bound.command_status) == (CommandId.bind_transceiver_resp, CommandStatus.ESME_ROK)
        assert [(await _read(reader)).command_id for _ in range(2)] == [CommandId.enquire_link, CommandId.unbind]
        async with asyncio.timeout(5):
            assert await reader.read() == b""
        writer.close()
        assert running[0].server.smsc.stats.dead_links == 1
    finally:
        for carrier in running:
            await carrier.server.shutdown()


@pytest.mark.parametrize(("timers", "message"), [
    ("{enquire_link_interval: 0}", "enquire_link_interval: must be > 0, got 0"),
    ("{enquire_link_misses: 1.5}", "enquire_link_misses: expected a whole number, got 1.5"),
    ("{inactivity_timeout: -1}", "inactivity_timeout: must be >= 0, got -1"),
    ("{enquire_link_intreval: 5}", "unknown key 'enquire_link_intreval'; did you mean 'enquire_link_interval'?"),
])
def test_bad_timers_are_scenario_errors(timers: str, message: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(QUICKSTART, [f"carriers.carrier-a.smsc.timers={timers}"])
    assert message in str(caught.value)


async def test_roaming_phones_are_roaming_subscribers_of_their_smsc_with_the_scenarios_delay() -> None:
    scenario = load_scenario(QUICKSTART, [
        "population.phones=200", "population.conditions={absent: 0.1, barred: 0.1, roaming: 0.2}",
        "carriers.carrier-a.smsc.roaming={delay: {distribution: uniform, low: 1, high: 4}}",
    ])
    population = Population(scenario)
    running = await start_carriers(scenario, ("identity", "secret"), population.msisdn, population.carrier,
                                   population.condition, lambda _: lambda *_: None)
    try:
        seen: dict[Condition, int] = {}
        for number, carrier, code in zip(population.msisdn.tolist(), population.carrier.tolist(),
                                         population.condition.tolist(), strict=True):
            condition = running[carrier].smsc.subscribers.condition(str(number))
            assert condition is CONDITION_CODES[code]
            seen[condition] = seen.get(condition, 0) + 1
        assert seen[Condition.ROAMING] == 40
        configured, default = (c.smsc.config.roaming_delay for c in running)
        assert (configured.low, configured.high) == (1.0, 4.0)
        assert (default.low, default.high) == (0.5, 2.0)
    finally:
        for carrier in running:
            await carrier.server.shutdown()


@pytest.mark.parametrize(("delay", "expected"), [
    ("{distribution: exponential, mean: 0.3}", DelayDistribution(kind="exponential", mean=0.3)),
    ("{distribution: lognormal, median: 0.2, sigma: 0.5}", DelayDistribution(kind="lognormal", median=0.2,
                                                                             sigma=0.5)),
    ("{distribution: uniform, low: 0.1, high: 0.4}", DelayDistribution(0.1, 0.4)),
    ("0.7", DelayDistribution(0.7, 0.7)),
])
async def test_every_kind_of_scenario_delay_reaches_the_smsc(delay: str, expected: DelayDistribution) -> None:
    # An exponential or lognormal receipt delay once became a fixed 0 s here, silently.
    scenario = load_scenario(QUICKSTART, ["population.phones=20",
                                          f"carriers.carrier-a.smsc.receipts={{delay: {delay}}}",
                                          f"carriers.carrier-a.smsc.roaming={{delay: {delay}}}"])
    population = Population(scenario)
    running = await start_carriers(scenario, ("identity", "secret"), population.msisdn, population.carrier,
                                   population.condition, lambda _: lambda *_: None)
    try:
        config = running[0].smsc.config
        assert (config.dlr_delay, config.roaming_delay) == (expected, expected)
    finally:
        for carrier in running:
            await carrier.server.shutdown()
