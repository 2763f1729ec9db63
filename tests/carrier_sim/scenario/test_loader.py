"""The scenario loader: every kind of mistake is reported with its exact file:line:col, all at once; includes,
cycles and --set overrides; and no input makes it raise anything but ScenarioError."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from carrier_sim.mail import GatewayConfig
from carrier_sim.scenario.loader import ScenarioError, ScenarioProblem, load_scenario, parse_number_range
from carrier_sim.scenario.model import (
    Account,
    CamaraDoor,
    Distribution,
    Doors,
    NumberRange,
    RcsDoor,
    Scenario,
    SmtpDoor,
)
from carrier_sim.scenario.schema import SCHEMA

# Line numbers below are those of this text; tests edit single lines so the numbers stay put.
BASE = """\
name: t
seed: 1
carriers:
  - name: carrier-a
    mcc: "234"
    mnc: "15"
    country: GB
    numbering: ["447700900000-447700900999"]
    gateway: "447786205094"
    smsc:
      accounts: [{system_id: identity, password: secret}]
  - name: carrier-b
    mcc: "234"
    mnc: "20"
    country: GB
    numbering: ["447700901000-447700901999"]
    gateway: "447786205095"
population:
  phones: 1000
  mix: {carrier-a: 0.5, carrier-b: 0.5}
load:
  phases:
    - {name: ramp, duration: 10, rate: {from: 10, to: 100}}
    - {name: steady, duration: 20, rate: 100}
flows:
  - {name: activation, think_time: 0.5}
events:
  - {at: 15, type: smsc_outage, carrier: carrier-a, duration: 5}
checks:
  - {metric: activation.success_ratio, op: ">=", value: 0.99}
"""


def _edit(old: str, new: str, text: str = BASE) -> str:
    assert text.count(old) == 1, f"{old!r} must occur once"
    return text.replace(old, new)


@pytest.fixture
def here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run in a temporary directory, so file names in messages are short and exact."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _write(name: str, text: str | bytes) -> Path:
    path = Path(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _load(text: str, overrides: tuple[str, ...] = ()) -> Scenario:
    return load_scenario(_write("s.yaml", text), overrides)


def _problems(text: str | bytes, overrides: tuple[str, ...] = (), name: str = "s.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        load_scenario(_write(name, text), overrides)
    assert str(info.value) == "\n".join(str(e) for e in info.value.errors)
    return [str(e) for e in info.value.errors]


# ----------------------------------------------------------------------------------------------- a valid file


def test_base_loads_into_the_model(here: Path) -> None:
    scenario = _load(BASE)
    assert scenario.name == "t"
    assert scenario.seed == 1
    assert scenario.clock == "wall"
    assert scenario.source == "s.yaml"
    a, b = scenario.carriers
    assert (a.name, a.mcc, a.mnc, a.country, a.gateway) == ("carrier-a", "234", "15", "GB", "447786205094")
    assert a.ranges == (NumberRange(447700900000, 447700900999),)
    assert a.where == "s.yaml:4:5"
    assert a.smsc.accounts == (Account("identity", "secret"),)
    # No accounts declared: the system under test's own account.
    assert b.smsc.accounts == (Account("identity", "secret"),)
    assert b.smsc.port == 0
    assert b.smsc.dialect == "kannel-like"
    assert scenario.population.phones == 1000
    assert scenario.population.mix == {"carrier-a": 0.5, "carrier-b": 0.5}
    assert scenario.load.model == "open"  # inferred from the phases
    ramp, steady = scenario.load.phases
    assert (ramp.name, ramp.duration, ramp.rate_from, ramp.rate_to) == ("ramp", 10.0, 10.0, 100.0)
    assert (steady.rate_from, steady.rate_to) == (100.0, 100.0)
    assert scenario.flows[0].think_time == Distribution("fixed", value=0.5)
    (event,) = scenario.events
    assert (event.kind, event.carrier, event.at, event.duration, event.where) == (
        "smsc_outage",
        "carrier-a",
        15.0,
        5.0,
        "s.yaml:28:5",
    )
    (check,) = scenario.checks
    assert check.name == "activation.success_ratio >= 0.99"
    assert (check.metric, check.op, check.value, check.where) == ("activation.success_ratio", ">=", 0.99, "s.yaml:30:5")
    assert scenario.system_under_test.kind == "bundled"


def test_every_optional_section_is_read(here: Path) -> None:
    text = _edit(
        "      accounts: [{system_id: identity, password: secret}]\n",
        "      accounts: [{system_id: identity, password: secret, throughput: 50, bind_throughput: 10, max_binds: 2}]\n"
        '      port: 2775\n      tls_port: 3550\n      host: 0.0.0.0\n      interface_version: "5.0"\n'
        "      window: 20\n      dialect: terse\n"
        "      receipts: {delay: {distribution: lognormal, median: 0.3, sigma: 0.2}}\n"
        "      faults: {tcp_reset: 0.001, split_max: 3}\n",
    )
    # An external system under test runs on the wall clock and binds to ports it is told in advance.
    text = _edit('    gateway: "447786205095"\n', '    gateway: "447786205095"\n    smsc: {port: 2776}\n', text)
    text += (
        "clock: wall\n"
        "system_under_test: {kind: external, api: 'http://127.0.0.1:8080', system_id: identity, password: secret}\n"
    )
    text = _edit("    - {name: steady, duration: 20, rate: 100}\n", "", text)
    text = _edit(
        "  - {at: 15, type: smsc_outage, carrier: carrier-a, duration: 5}\n",
        "  - {at: 5, type: sim_swap, share: 0.1, carrier: carrier-b}\n  - {at: 6, type: port_out, share: 0.2}\n",
        text,
    )
    text = _edit(
        "  - {name: activation, think_time: 0.5}\n",
        "  - {name: activation, weight: 3, think_time: {distribution: exponential, mean: 2}}\n"
        "  - {name: renewal, think_time: {distribution: uniform, low: 1, high: 2}}\n",
        text,
    )
    scenario = _load(text)
    smsc = scenario.carriers[0].smsc
    assert smsc.accounts == (Account("identity", "secret", 50.0, 10.0, 2),)
    assert (smsc.port, smsc.tls_port, smsc.host, smsc.interface_version, smsc.window, smsc.dialect) == (
        2775,
        3550,
        "0.0.0.0",
        "5.0",
        20,
        "terse",
    )
    assert smsc.receipt_delay == Distribution("lognormal", median=0.3, sigma=0.2)
    assert smsc.faults == {"tcp_reset": 0.001, "split_max": 3}
    assert scenario.clock == "wall"
    assert scenario.carriers[1].smsc.port == 2776
    assert scenario.system_under_test.api == "http://127.0.0.1:8080"
    assert _load(BASE + "clock: virtual\n").clock == "virtual"
    assert [(e.kind, e.share, e.carrier) for e in scenario.events] == [
        ("sim_swap", 0.1, "carrier-b"),
        ("port_out", 0.2, None),
    ]
    assert [(f.name, f.weight, f.think_time) for f in scenario.flows] == [
        ("activation", 3.0, Distribution("exponential", mean=2.0)),
        ("renewal", 1.0, Distribution("uniform", low=1.0, high=2.0)),
    ]


def test_closed_model_and_defaults(here: Path) -> None:
    text = _edit(
        "    - {name: ramp, duration: 10, rate: {from: 10, to: 100}}\n", "    - {duration: 10, concurrency: 50}\n"
    )
    text = _edit("    - {name: steady, duration: 20, rate: 100}\n", "    - {duration: 20, concurrency: 100}\n", text)
    text = _edit("  mix: {carrier-a: 0.5, carrier-b: 0.5}\n", "  conditions: {absent: 0.1, barred: 0.2}\n", text)
    scenario = _load(text)
    assert scenario.load.model == "closed"
    assert [(p.name, p.concurrency) for p in scenario.load.phases] == [("phase-1", 50), ("phase-2", 100)]
    assert scenario.population.mix == {"carrier-a": 0.5, "carrier-b": 0.5}  # equal shares by default
    assert (scenario.population.absent, scenario.population.barred, scenario.population.roaming) == (0.1, 0.2, 0.0)


def test_roaming_delay_is_read_and_defaults_to_a_second_or_two(here: Path) -> None:
    text = _edit("      accounts: [{system_id: identity, password: secret}]\n",
                 "      accounts: [{system_id: identity, password: secret}]\n"
                 "      roaming: {delay: {distribution: uniform, low: 1, high: 3}}\n")
    text = _edit('    gateway: "447786205095"\n', '    gateway: "447786205095"\n    smsc: {roaming: {delay: 2.5}}\n',
                 text)
    configured, fixed = (c.smsc.roaming_delay for c in _load(text).carriers)
    assert configured == Distribution("uniform", low=1.0, high=3.0)
    assert fixed == Distribution("fixed", value=2.5)
    assert {c.smsc.roaming_delay for c in _load(BASE).carriers} == {Distribution("uniform", low=0.5, high=2.0)}


def test_roaming_delay_takes_any_distribution_and_refuses_bad_ones(here: Path) -> None:
    line = "      accounts: [{system_id: identity, password: secret}]\n"
    scenario = load_scenario(_write("s.yaml", _edit(line, line + "      roaming: {delay: {distribution: exponential, "
                                                                "mean: 1}}\n")))
    assert scenario.carriers[0].smsc.roaming_delay == Distribution("exponential", mean=1.0)
    assert _problems(_edit(line, line + "      roaming: {delay: {distribution: exponential, mean: 0}}\n")) == [
        "s.yaml:12:58: carriers.0.smsc.roaming.delay.mean: must be > 0, got 0",
    ]
    assert _problems(_edit(line, line + "      roaming: {delay: {distribution: uniform, low: 2, high: 1}}\n")) == [
        "s.yaml:12:53: carriers.0.smsc.roaming.delay: low (2) is above high (1)",
    ]
    assert _problems(_edit(line, line + "      roaming: {delay: -1}\n")) == [
        "s.yaml:12:24: carriers.0.smsc.roaming.delay: must be >= 0, got -1",
    ]


# ------------------------------------------------------------------------------------------ schema mistakes


def test_unknown_top_level_key_did_you_mean(here: Path) -> None:
    assert _problems(_edit("seed: 1", "sed: 1")) == ["s.yaml:2:1: unknown key 'sed'; did you mean 'seed'?"]


def test_unknown_nested_key_and_the_missing_one(here: Path) -> None:
    assert _problems(_edit("  phases:", "  phasse:")) == [
        "s.yaml:21:1: load: missing required key 'phases'",
        "s.yaml:22:3: load: unknown key 'phasse'; did you mean 'phases'?",
    ]


def test_unknown_key_without_a_close_match(here: Path) -> None:
    assert _problems(_edit('    gateway: "447786205095"', '    gateway: "447786205095"\n    zzz: 1')) == [
        "s.yaml:18:5: carriers.1: unknown key 'zzz'",
    ]


def test_unknown_metric_did_you_mean(here: Path) -> None:
    assert _problems(_edit("metric: activation.success_ratio", "metric: activation.sucess_ratio")) == [
        "s.yaml:30:14: checks.0.metric: unknown metric 'activation.sucess_ratio'; "
        "did you mean 'activation.success_ratio'?",
    ]


def test_unknown_metric_far_from_any(here: Path) -> None:
    assert _problems(_edit("metric: activation.success_ratio", "metric: zebra")) == [
        "s.yaml:30:14: checks.0.metric: unknown metric 'zebra' (see docs/scenarios.md for the list)",
    ]


def test_digits_written_as_a_number(here: Path) -> None:
    assert _problems(_edit('    mcc: "234"\n    mnc: "15"', '    mcc: 234\n    mnc: "15"')) == [
        "s.yaml:5:10: carriers.0.mcc: expected a string, got 234 (put it in quotes to make it a string)",
    ]


def test_pattern_mismatch_uses_the_description(here: Path) -> None:
    assert _problems(
        _edit('    country: GB\n    numbering: ["4477009000', '    country: gb\n    numbering: ["4477009000')
    ) == [
        "s.yaml:7:14: carriers.0.country: expected an ISO 3166 country: 2 letters, got 'gb'",
    ]


def test_a_trailing_newline_does_not_pass_a_pattern(here: Path) -> None:
    # Python's re.search lets "$" match before a final newline, so "234\n" passed "^[0-9]{3}$" and the run then
    # crashed (exit 3) or failed every activation (exit 1). JSON Schema patterns are ECMA-262, where "$" is the end.
    text = BASE.replace('mcc: "234"\n    mnc: "15"', 'mcc: "234\\n"\n    mnc: "15\\n"', 1)
    text = _edit('country: GB\n    numbering: ["447700900000-447700900999"]\n    gateway: "447786205094"',
                 'country: "GB\\n"\n    numbering: ["447700900000-447700900999\\n"]\n    gateway: "447786205094\\n"',
                 text)
    assert _problems(text) == [
        "s.yaml:5:10: carriers.0.mcc: expected a mobile country code: 3 digits, got '234\\n'",
        "s.yaml:6:10: carriers.0.mnc: expected a mobile network code: 2-3 digits, got '15\\n'",
        "s.yaml:7:14: carriers.0.country: expected an ISO 3166 country: 2 letters, got 'GB\\n'",
        "s.yaml:8:17: carriers.0.numbering.0: expected a number range FIRST-LAST (inclusive) or a single number, got "
        "'447700900000-447700900999\\n'",
        "s.yaml:9:14: carriers.0.gateway: expected the number its phones send REG-REQ to, got '447786205094\\n'",
    ]
    [name] = _problems(BASE, ('carriers.1.name="carrier-b\\n"', 'population.mix={carrier-a: 1}'))
    assert name == ("--set:1:17: carriers.1.name: expected a name: a letter, then up to 63 letters, digits, '-' or "
                    "'_', got 'carrier-b\\n'")
    doors = _edit("    smsc:\n      accounts",
                  '    doors: {smtp: {domain: a.example, short_code: "6245\\n"}, camara: {token: "abcdefgh\\n"}}\n'
                  "    smsc:\n      accounts")
    assert _problems(doors) == [
        "s.yaml:10:51: carriers.0.doors.smtp.short_code: expected a short code of 3 to 15 digits, got '6245\\n'",
        "s.yaml:10:78: carriers.0.doors.camara.token: expected the two-legged bearer token its APIs accept from "
        "servers, got 'abcdefgh\\n'",
    ]


def test_every_schema_pattern_is_read_as_json_schema_reads_it() -> None:
    """Each pattern of the schema judges a value as an ECMA-262 engine does: "$" is the end of the text (compared
    with jsonschema-rs, the Rust validator, on every pattern), and "." matches no line terminator (ECMA-262
    section 22.2.2.7; the Rust regex engine differs there, so those are written out, as node's RegExp answers)."""
    jsonschema_rs = pytest.importorskip("jsonschema_rs")
    from carrier_sim.scenario.loader import _VALIDATOR

    validator = type(_VALIDATOR)  # the validator class the loader checks scenarios with

    def patterns(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
            return own + [p for child in node.values() for p in patterns(child)]
        return [p for child in node for p in patterns(child)] if isinstance(node, list) else []

    found = sorted(set(patterns(SCHEMA)))
    assert len(found) >= 8
    samples = ["", "ca", "ca\n", "234", "234\n", "\n234", "GB", "GB\n\n", "+447700900000",
               "447700900000-447700900099", "447700900000-447700900099\n", "abcdefgh==", "abcdefgh==\n", "http://x",
               "https://h:1/\n", "https://\n", "id\x00", "\u00e9t\u00e9", "a$", "a.b", "ca\\n"]
    for pattern in found:
        reference = jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
        ours = validator({"type": "string", "pattern": pattern})
        for sample in samples:
            assert ours.is_valid(sample) == reference.is_valid(sample), (pattern, sample)
    api = validator({"type": "string", "pattern": "^https?://.+"})
    assert [api.is_valid(text) for text in ("http://\r", "http://\u2028", "http://\u2029", "http://x\r")] == [
        False, False, False, True]
    # In a character class, "$" and "." are plain characters; an escaped one is too.
    plain = validator({"type": "string", "pattern": "^[$.]\\.\\$$"})
    assert plain.is_valid("$.$")
    assert not plain.is_valid("$.$\n")


def test_unknown_dialect(here: Path) -> None:
    text = _edit("      accounts: [{system_id: identity, password: secret}]", "      dialect: kanel-like")
    assert _problems(text) == [
        "s.yaml:11:16: carriers.0.smsc.dialect: unknown dialect 'kanel-like'; did you mean 'kannel-like'?"
    ]


def test_unknown_fault_and_out_of_range_probability(here: Path) -> None:
    text = _edit(
        "      accounts: [{system_id: identity, password: secret}]",
        "      faults: {duplicate_reciept: 0.1, tcp_reset: 2}",
    )
    assert _problems(text) == [
        "s.yaml:11:16: carriers.0.smsc.faults: unknown key 'duplicate_reciept'; did you mean 'duplicate_receipt'?",
        "s.yaml:11:51: carriers.0.smsc.faults.tcp_reset: must be <= 1, got 2",
    ]


def test_interface_version_as_number(here: Path) -> None:
    text = _edit("      accounts: [{system_id: identity, password: secret}]", "      interface_version: 3.4")
    assert _problems(text) == [
        "s.yaml:11:26: carriers.0.smsc.interface_version: expected one of 3.3, 3.4, 5.0, got 3.4 "
        "(put it in quotes to make it a string)",
    ]


def test_negative_duration(here: Path) -> None:
    assert _problems(_edit("{name: steady, duration: 20", "{name: steady, duration: -20")) == [
        "s.yaml:24:32: load.phases.1.duration: must be > 0, got -20",
    ]


def test_distribution_kind_did_you_mean(here: Path) -> None:
    assert _problems(_edit("think_time: 0.5", "think_time: {distribution: lognormel, median: 1, sigma: 1}")) == [
        "s.yaml:26:51: flows.0.think_time.distribution: unknown distribution 'lognormel'; did you mean 'lognormal'?",
    ]


def test_distribution_missing_its_parameter(here: Path) -> None:
    assert _problems(_edit("think_time: 0.5", "think_time: {distribution: uniform, low: 1}")) == [
        "s.yaml:26:24: flows.0.think_time: missing required key 'high'",
    ]


def test_distribution_of_the_wrong_type(here: Path) -> None:
    assert _problems(_edit("think_time: 0.5", "think_time: soon")) == [
        "s.yaml:26:36: flows.0.think_time: expected a number or a mapping, got 'soon'",
    ]


def test_rate_ramp_missing_to(here: Path) -> None:
    assert _problems(_edit("rate: {from: 10, to: 100}", "rate: {from: 10}")) == [
        "s.yaml:23:34: load.phases.0.rate: missing required key 'to'",
    ]


def test_event_type_and_its_keys(here: Path) -> None:
    text = _edit(
        "  - {at: 15, type: smsc_outage, carrier: carrier-a, duration: 5}", "  - {at: 15, type: sim_swop, share: 0.1}"
    )
    assert _problems(text) == [
        "s.yaml:28:20: events.0.type: unknown type 'sim_swop'; did you mean 'sim_swap'?",
    ]
    text = _edit(
        "  - {at: 15, type: smsc_outage, carrier: carrier-a, duration: 5}",
        "  - {at: 15, type: smsc_outage, share: 0.1}",
    )
    assert _problems(text) == [
        "s.yaml:28:5: events.0: missing required key 'carrier'",
        "s.yaml:28:5: events.0: missing required key 'duration'",
        "s.yaml:28:33: events.0: unknown key 'share'",
    ]


def test_missing_required_sections(here: Path) -> None:
    assert _problems("name: x\n") == [
        "s.yaml:1:1: the scenario: missing required key 'carriers'",
        "s.yaml:1:1: the scenario: missing required key 'population'",
        "s.yaml:1:1: the scenario: missing required key 'load'",
        "s.yaml:1:1: the scenario: missing required key 'flows'",
    ]


def test_empty_list(here: Path) -> None:
    assert _problems(_edit("  - {name: activation, think_time: 0.5}\n", "", _edit("flows:", "flows: []"))) == [
        "s.yaml:25:8: flows: must not be empty",
        # A check on a flow that is not there could never be measured.
        "s.yaml:29:14: checks.0.metric: activation.success_ratio needs the activation flow, which flows does not "
        "declare (none)",
    ]


def test_external_sut_needs_an_api_and_takes_no_limits(here: Path) -> None:
    text = BASE + "system_under_test:\n  kind: external\n  limits: {reg_per_number: [1, 2]}\n"
    port = ("carriers.{}.smsc.port: an external system under test binds to a port it is told in advance; give this "
            "SMSC a fixed port (1..65535), not 0 (any free port)")
    assert _problems(text) == [
        f"s.yaml:4:5: {port.format(0)}",
        f"s.yaml:12:5: {port.format(1)}",
        "s.yaml:31:1: system_under_test: missing required key 'api' "
        "(an external system under test needs api: its HTTP URL)",
        "s.yaml:33:3: system_under_test.limits: configures the bundled identity core; an external system ignores it",
    ]


def test_external_sut_on_virtual_time_or_free_ports_is_refused_where_it_is_written(here: Path) -> None:
    text = _edit("    smsc:\n      accounts:", "    smsc:\n      port: 0\n      accounts:")
    text += "clock: virtual\nsystem_under_test: {kind: external, api: 'http://127.0.0.1:8080'}\n"
    problems = _problems(text)
    assert problems[0].startswith("s.yaml:11:13: carriers.0.smsc.port: an external system under test binds to a port")
    assert problems[1].startswith("s.yaml:13:5: carriers.1.smsc.port:")
    assert problems[2].startswith("s.yaml:32:8: clock: virtual runs every party in the runner's loop")
    assert len(problems) == 3


def test_an_external_sut_is_told_its_tls_and_camara_ports_too(here: Path) -> None:
    text = _edit("    smsc:\n      accounts: [{system_id: identity, password: secret}]\n",
                 "    smsc:\n      port: 2775\n      tls_port: 0\n"
                 "      accounts: [{system_id: identity, password: secret}]\n    doors: {camara: {}, rcs: {port: 0}}\n")
    text = _edit("    gateway: \"447786205095\"\n", "    gateway: \"447786205095\"\n    smsc: {port: 2776}\n", text)
    text += "system_under_test: {kind: external, api: 'http://127.0.0.1:8080'}\n"
    problems = _problems(text)
    assert problems == [
        "s.yaml:12:17: carriers.0.smsc.tls_port: an external system under test connects to a port it is told in "
        "advance; give SMPP over TLS a fixed port, not 0 (any free port)",
        "s.yaml:14:21: carriers.0.doors.camara.port: an external system under test calls the CAMARA door at an "
        "address it is told in advance; give it a fixed port, not 0",
    ]  # (the RCS door is the phones' business: port 0 is fine there)


@pytest.mark.parametrize(
    ("check", "why"),
    [
        ("renewal.success_ratio", "needs the renewal flow, which flows does not declare (activation)"),
        ("rcs.documents_invalid", "is counted by the rcs_cellular and rcs_otp flows, and flows declares neither"),
        ("events.revocation_ratio", "needs a sim_swap or port_out event, and events has none"),
        ("risk_checks.false_alarms", "comes from SIM swaps with via: network_api, and events has none"),
    ],
)
def test_a_check_no_run_of_the_scenario_could_measure_is_an_error(here: Path, check: str, why: str) -> None:
    text = BASE + f"  - {{metric: {check}, op: \">=\", value: 0}}\n"
    assert _problems(text) == [f"s.yaml:31:14: checks.1.metric: {check} {why}"]


def test_checks_on_what_the_scenario_declares_are_fine(here: Path) -> None:
    text = _edit("  - {at: 15, type: smsc_outage, carrier: carrier-a, duration: 5}\n",
                 "  - {at: 15, type: sim_swap, share: 0.1, via: network_api}\n")
    text = _edit("      accounts: [{system_id: identity, password: secret}]\n",
                 "      accounts: [{system_id: identity, password: secret}]\n    doors: {camara: {}}\n", text)
    text = _edit("  - {name: activation, think_time: 0.5}\n",
                 "  - {name: activation, think_time: 0.5}\n  - {name: renewal, think_time: 0.5}\n", text)
    for metric in ("renewal.latency.p99", "events.revoked", "risk_checks.untrusted", "auth_queue.latency.p99",
                   "smpp.throttled", "load.on_time"):
        _load(text + f"  - {{metric: {metric}, op: \">=\", value: 0}}\n")


def test_flows_and_events_through_a_door_no_carrier_opens_are_errors(here: Path) -> None:
    flows = _edit("  - {name: activation, think_time: 0.5}\n",
                  "  - {name: activation, think_time: 0.5}\n  - {name: email}\n  - {name: rcs_otp}\n")
    assert _problems(flows) == [
        "s.yaml:27:12: flows.1: the email flow goes through a carrier's smtp door, and no carrier declares doors.smtp",
        "s.yaml:28:12: flows.2: the rcs_otp flow goes through a carrier's rcs door, and no carrier declares doors.rcs",
    ]
    swap = "  - {at: 15, type: sim_swap, share: 0.1, via: network_api, carrier: carrier-b}\n"
    events = _edit("  - {at: 15, type: smsc_outage, carrier: carrier-a, duration: 5}\n", swap)
    assert _problems(events) == [
        "s.yaml:28:47: events.0.via: network_api asks carrier-b's CAMARA SIM Swap API, and carrier-b declares no "
        "doors.camara",
    ]
    doors = "    doors: {camara: {}, smtp: {domain: sms.a.example}, rcs: {}}\n"
    accounts = "      accounts: [{system_id: identity, password: secret}]\n"
    _load(_edit(accounts, accounts + doors, flows))  # one carrier opening the doors is enough for the flows


def test_limits_pair(here: Path) -> None:
    text = BASE + "system_under_test:\n  limits: {reg_per_number: [1], pump_bloc: 3}\n"
    assert _problems(text) == [
        "s.yaml:32:28: system_under_test.limits.reg_per_number: needs at least 2 items",
        "s.yaml:32:33: system_under_test.limits: unknown key 'pump_bloc'; did you mean 'pump_block'?",
    ]



def test_limits_identity_core_refuses_are_scenario_errors(here: Path) -> None:
    # Each of these once passed validate and made the bundled identity core refuse to start: run failed with a
    # harness error (exit 3) naming no key. Now each is reported at its key, by the schema or identity core's
    # rules.
    limits = "{prefix_digits: 16, pump_floor: 0, pump_block: 0, reg_per_number: [1, 0.5]}"
    assert _problems(BASE + f"system_under_test:\n  limits: {limits}\n") == [
        "s.yaml:32:27: system_under_test.limits.prefix_digits: must be <= 15, got 16",
        "s.yaml:32:43: system_under_test.limits.pump_floor: must be > 0, got 0",
        "s.yaml:32:81: system_under_test.limits.reg_per_number.1: must be >= 1, got 0.5",
    ]
    # Rules relating two keys are beyond the schema: identity core's own check names the key.
    text = BASE + "system_under_test:\n  limits: {pump_window: 100, pump_baseline: 10}\n"
    assert _problems(text) == [
        "s.yaml:32:45: system_under_test.limits.pump_baseline: at least pump_window (100 s), got 10",
    ]
    # Every problem once, each at its key (identity core stops at the first; the loader asks again without it).
    assert _problems(BASE, ("system_under_test.limits={pump_floor: 0.01, pump_window: 0.5, pump_baseline: 0.1}",)) == [
        "--set:1:39: system_under_test.limits: pump_floor x pump_window must be at least 2 REG-REQs, so that a new "
        "prefix is allowed its first attempts; got 0.01/s x 0.5 s = 0.005",
        "--set:1:78: system_under_test.limits.pump_baseline: at least pump_window (0.5 s), got 0.1",
    ]
    # A rate of 0 is a bucket that never refills, which identity core refuses: so does the schema.
    assert _problems(BASE, ("system_under_test.limits.auth_per_prefix=[0, 5]",)) == [
        "--set:1:43: system_under_test.limits.auth_per_prefix.0: must be > 0, got 0",
    ]
    _load(BASE + "system_under_test:\n  limits: {pump_window: 1, pump_floor: 3, pump_baseline: 1}\n")


def test_one_mistake_in_the_limits_is_one_message(here: Path) -> None:
    # A pump_window far too short made three messages: the rule it breaks, then -- pump_floor set aside -- the
    # same rule about an "unset" pump_floor the scenario sets, then pump_baseline against a 10 s pump_window the
    # scenario does not have.
    assert _problems(BASE, ("system_under_test.limits={pump_window: 1e-320, pump_baseline: 1e-320, pump_floor: 1e8}",)
                     ) == [
        "--set:1:83: system_under_test.limits: pump_floor x pump_window must be at least 2 REG-REQs, so that a new "
        "prefix is allowed its first attempts; got 1e+08/s x 9.99989e-321 s = 9.99989e-313",
    ]
    # A key the schema refused is not replaced by identity core's default to judge the others by.
    assert _problems(BASE, ("system_under_test.limits={pump_window: -1, pump_baseline: 5}",)) == [
        "--set:1:40: system_under_test.limits.pump_window: must be > 0, got -1",
    ]


def test_a_population_the_schema_refused_is_not_judged_again_by_the_rules(here: Path) -> None:
    # phones over the schema's bound were still split over the carriers' numbering (and compared with a
    # concurrency): a second message about the same number.
    assert _problems(BASE, ("population.phones=100000000000000",)) == [
        "--set:1:19: population.phones: must be <= 1000000000, got 100000000000000",
    ]
    closed = ("load.phases=[{duration: 30, concurrency: 10}]", "population.phones=-5")
    assert _problems(BASE, closed) == ["--set:2:19: population.phones: must be >= 1, got -5"]
    # A range the schema refused is not counted among what its carrier holds (nor what overlaps).
    text = _edit('numbering: ["447700900000-447700900999"]',
                 'numbering: ["447700900000-447700900009", "447700900010-447700900999x"]')
    assert _problems(text) == [
        "s.yaml:8:46: carriers.0.numbering.1: expected a number range FIRST-LAST (inclusive) or a single number, got "
        "'447700900010-447700900999x'",
    ]
    text = _edit('numbering: ["447700900000-447700900999"]', 'numbering: [" 447700900000-447700900999"]')
    text = _edit('numbering: ["447700901000-447700901999"]', 'numbering: ["447700900500-447700901999"]', text)
    assert _problems(text) == [
        "s.yaml:8:17: carriers.0.numbering.0: expected a number range FIRST-LAST (inclusive) or a single number, "
        "got ' 447700900000-447700900999'",
    ]


# --------------------------------------------------------------------------------------- semantic mistakes


def test_mix_names_an_undeclared_carrier(here: Path) -> None:
    assert _problems(_edit("carrier-b: 0.5}", "carrier-c: 0.5}")) == [
        "s.yaml:20:25: population.mix: 'carrier-c' is not a declared carrier; did you mean 'carrier-a'?",
    ]


def test_mix_does_not_sum_to_one(here: Path) -> None:
    assert _problems(_edit("carrier-b: 0.5}", "carrier-b: 0.4}")) == [
        "s.yaml:20:3: population.mix: shares sum to 0.9, not 1",
    ]


def test_mix_within_tolerance(here: Path) -> None:
    assert _load(_edit("carrier-b: 0.5}", "carrier-b: 0.5000000001}")).population.mix["carrier-b"] == 0.5000000001


def test_conditions_sum_above_one(here: Path) -> None:
    text = _edit("  mix: {carrier-a: 0.5, carrier-b: 0.5}", "  conditions: {absent: 0.6, roaming: 0.5}")
    assert _problems(text) == ["s.yaml:20:3: population.conditions: shares sum to 1.1, more than 1"]


def test_ranges_overlap_between_carriers(here: Path) -> None:
    assert _problems(_edit("447700901000-447700901999", "447700900900-447700901999")) == [
        "s.yaml:16:17: carriers.1.numbering.0: overlaps 447700900000-447700900999 of carrier-a (s.yaml:8:17)",
    ]


def test_every_overlap_is_reported_not_only_a_neighbours(here: Path) -> None:
    # carrier-a's range covers a single number of its own and carrier-b's range: sorted, the single number sits
    # between them, yet carrier-b's range overlaps carrier-a's first one too.
    text = _edit('numbering: ["447700900000-447700900999"]', 'numbering: ["447700900000-447700900999", "447700900100"]')
    text = _edit("447700901000-447700901999", "447700900500-447700901499", text)
    assert _problems(text) == [
        "s.yaml:8:46: carriers.0.numbering.1: overlaps 447700900000-447700900999 of carrier-a (s.yaml:8:17)",
        "s.yaml:16:17: carriers.1.numbering.0: overlaps 447700900000-447700900999 of carrier-a (s.yaml:8:17)",
    ]


def test_a_listen_host_must_be_an_address_or_a_host_name(here: Path) -> None:
    bad = _edit("      accounts: [{system_id: identity, password: secret}]\n",
                "      accounts: [{system_id: identity, password: secret}]\n      host: \"not a host!!\"\n")
    assert _problems(bad) == [
        "s.yaml:12:13: carriers.0.smsc.host: 'not a host!!' is not an IP address or a host name to listen on "
        "(e.g. 127.0.0.1)",
    ]
    for host in ("127.0.0.1", "::1", "localhost", "smsc.carrier.example"):
        _load(BASE, (f"carriers.carrier-a.smsc.host={host}", f"carriers.carrier-b.doors.rcs.host={host}"))


def test_ranges_too_small_for_the_share(here: Path) -> None:
    assert _problems(_edit("phones: 1000", "phones: 2001")) == [
        "s.yaml:8:5: carriers.0.numbering: carrier-a needs 1001 numbers for its share of the phones, but holds 1000",
    ]


def test_the_capacity_check_splits_a_tie_as_the_run_does(here: Path) -> None:
    # The run gives the odd phone to the carrier declared first, whatever order the mix lists: once the check gave
    # it to the mix's first and blamed carrier-b for a number the run would take from carrier-a.
    text = _edit("phones: 1000", "phones: 2001")
    text = _edit("  mix: {carrier-a: 0.5, carrier-b: 0.5}\n", "  mix: {carrier-b: 0.5, carrier-a: 0.5}\n", text)
    assert _problems(text) == [
        "s.yaml:8:5: carriers.0.numbering: carrier-a needs 1001 numbers for its share of the phones, but holds 1000",
    ]


def test_at_most_nine_sim_swap_events(here: Path) -> None:
    # The IMSI and ICCID hold one SIM-generation digit; a renewed phone can be swapped by every event.
    swaps = ", ".join(f"{{at: {i + 1}, type: sim_swap, share: 0.01}}" for i in range(9))
    _load(BASE, (f"events=[{swaps}]",))
    problems = _problems(BASE, (f"events=[{swaps}, {{at: 10, type: sim_swap, share: 0.01}}]",))
    assert len(problems) == 1, problems
    assert "events.9.type: at most 9 sim_swap events" in problems[0]


def test_malformed_ranges(here: Path) -> None:
    text = _edit(
        '["447700900000-447700900999"]', '["447700900999-447700900000", "4477009-447700900000", "447700909000"]'
    )
    # What carrier-a holds is unknown until its ranges are mended: no "needs 500 numbers, but holds 1" beside them.
    assert _problems(text) == [
        "s.yaml:8:17: carriers.0.numbering.0: '447700900999-447700900000': the range ends before it starts",
        "s.yaml:8:46: carriers.0.numbering.1: '4477009-447700900000': "
        "both ends of a range need the same number of digits",
    ]


def test_numbers_outside_the_country(here: Path) -> None:
    text = _edit('    country: GB\n    numbering: ["4477009000', '    country: FR\n    numbering: ["4477009000')
    assert _problems(text) == [
        "s.yaml:8:17: carriers.0.numbering.0: '447700900000-447700900999' is not a number of FR (+33)",
        "s.yaml:9:14: carriers.0.gateway: '447786205094' is not a number of FR (+33)",
    ]


def test_unknown_country(here: Path) -> None:
    text = _edit('    country: GB\n    numbering: ["4477009000', '    country: ZZ\n    numbering: ["4477009000')
    assert _problems(text) == ["s.yaml:7:14: carriers.0.country: unknown country 'ZZ'"]


def test_gateway_is_a_phone_number(here: Path) -> None:
    assert _problems(_edit('gateway: "447786205095"', 'gateway: "447700900001"')) == [
        "s.yaml:17:14: carriers.1.gateway: 447700900001 is also a phone number of carriers.0",
    ]


def test_duplicate_carrier_names(here: Path) -> None:
    problems = _problems(_edit("  - name: carrier-b", "  - name: carrier-a"))
    assert "s.yaml:12:11: carriers.1.name: duplicate carrier 'carrier-a' (first at s.yaml:4:11)" in problems


def test_duplicate_phase_flow_and_check_names(here: Path) -> None:
    text = _edit("{name: steady,", "{name: ramp,")
    text = _edit("  - {name: activation, think_time: 0.5}\n", "  - {name: activation}\n  - {name: activation}\n", text)
    text += (
        '  - {name: same, metric: mo.sent, op: ">", value: 1}\n  - {name: same, metric: mo.sent, op: ">", value: 2}\n'
    )
    assert _problems(text) == [
        "s.yaml:24:14: load.phases.1.name: duplicate phase 'ramp' (first at s.yaml:23:14)",
        "s.yaml:27:12: flows.1.name: duplicate flow 'activation' (first at s.yaml:26:12)",
        "s.yaml:33:12: checks.2.name: duplicate check 'same' (first at s.yaml:32:12)",
    ]


def test_names_given_by_default_are_compared_too(here: Path) -> None:
    check = "  - {metric: activation.success_ratio, op: \">=\", value: 0.99}\n"
    assert _problems(BASE + check) == [
        "s.yaml:31:5: checks.1.name: duplicate check 'activation.success_ratio >= 0.99' (first at s.yaml:30:5)",
    ]
    phases = _edit("    - {name: steady, duration: 20, rate: 100}", "    - {duration: 20, rate: 100}\n"
                   "    - {name: phase-2, duration: 20, rate: 100}")
    assert _problems(phases) == [
        "s.yaml:25:14: load.phases.2.name: duplicate phase 'phase-2' (first at s.yaml:24:7)",
    ]


def test_a_value_the_schema_refused_gets_no_second_message_from_the_rules(here: Path) -> None:
    assert _problems(BASE, ("population.mix={carrier-a: 1.5, carrier-b: 0.5}",)) == [
        "--set:1:28: population.mix.carrier-a: must be <= 1, got 1.5",
    ]
    assert _problems(BASE, ("flows.0=",)) == ["--set:1:9: flows.0: expected a mapping, got null"]
    [problem] = _problems(BASE, ('population.mix={"1bad": 1}',))
    assert "'1bad' is not a name" in problem


def test_names_hold_no_control_characters(here: Path) -> None:
    # Checks "x\x01" and "x\x02" became two JUnit testcases of one name (XML cannot carry either character, so
    # both were written as U+FFFD); a terminal acts on them. Free-text names are refused where they are written.
    checks = ('checks=[{name: "x\\x01", metric: activation.success_ratio, op: ">=", value: 0.5}, '
              '{name: "x\\x02", metric: activation.success_ratio, op: ">=", value: 0.9}]')
    assert _problems(_edit("name: t\n", 'name: "t\\t"\n'), (checks, 'load.phases.0.name="ramp\\u0085"',
                                                            'load.phases.1.name="\\uffffsteady"')) == [
        "s.yaml:1:7: name: not a printable name (a control character, U+0009 at character 2)",
        "--set:1:16: checks.0.name: not a printable name (a control character, U+0001 at character 2)",
        "--set:1:89: checks.1.name: not a printable name (a control character, U+0002 at character 2)",
        "--set:2:20: load.phases.0.name: not a printable name (a control character, U+0085 at character 5)",
        "--set:3:20: load.phases.1.name: not a printable name (a noncharacter, U+FFFF at character 1)",
    ]
    # Any other character is fine: names are for people, in any script.
    assert _load(BASE, ('name="Prüfung – 検査 ✓"',)).name == "Prüfung – 検査 ✓"


def test_events_name_unknown_carriers_and_fall_after_the_load(here: Path) -> None:
    assert _problems(
        _edit("{at: 15, type: smsc_outage, carrier: carrier-a", "{at: 31, type: smsc_outage, carrier: carrier-x")
    ) == [
        "s.yaml:28:10: events.0.at: 31 s is after the load ends (30 s)",
        "s.yaml:28:42: events.0.carrier: no carrier named 'carrier-x'; did you mean 'carrier-a'?",
    ]


def test_phases_of_mixed_models(here: Path) -> None:
    assert _problems(
        _edit("{name: steady, duration: 20, rate: 100}", "{name: steady, duration: 20, concurrency: 100}")
    ) == [
        "s.yaml:24:36: load.phases.1.concurrency: a closed-model phase, but the first phase is open; "
        "phases cannot mix models",
    ]
    text = _edit("  phases:", "  model: closed\n  phases:")
    assert _problems(text) == [
        "s.yaml:24:34: load.phases.0.rate: a open-model phase, but load.model is closed; phases cannot mix models",
        "s.yaml:25:36: load.phases.1.rate: a open-model phase, but load.model is closed; phases cannot mix models",
    ]


def test_phase_needs_exactly_one_of_rate_and_concurrency(here: Path) -> None:
    text = _edit("{name: steady, duration: 20, rate: 100}", "{name: steady, duration: 20}")
    assert _problems(text) == ["s.yaml:24:7: load.phases.1: needs rate (open model) or concurrency (closed model)"]
    text = _edit("{name: steady, duration: 20, rate: 100}", "{name: steady, duration: 20, rate: 1, concurrency: 1}")
    assert _problems(text) == [
        "s.yaml:24:7: load.phases.1: a phase has rate (open model) or concurrency (closed model), not both",
    ]


def test_concurrency_above_the_population(here: Path) -> None:
    text = _edit(
        "{name: ramp, duration: 10, rate: {from: 10, to: 100}}", "{name: ramp, duration: 10, concurrency: 1001}"
    )
    text = _edit("{name: steady, duration: 20, rate: 100}", "{name: steady, duration: 20, concurrency: 5}", text)
    assert _problems(text) == ["s.yaml:23:47: load.phases.0.concurrency: 1001 is more than the 1000 phones"]


def test_uniform_low_above_high(here: Path) -> None:
    assert _problems(_edit("think_time: 0.5", "think_time: {distribution: uniform, low: 2, high: 1}")) == [
        "s.yaml:26:65: flows.0.think_time: low (2) is above high (1)",
    ]


def test_check_thresholds_that_cannot_decide(here: Path) -> None:
    text = _edit("value: 0.99}", "value: 99}") + '  - {metric: mo.sent, op: ">", value: -1}\n'
    assert _problems(text) == [
        "s.yaml:30:57: checks.0.value: activation.success_ratio is a ratio, 0..1, so a threshold of 99 would "
        "decide nothing",
        "s.yaml:31:39: checks.1.value: mo.sent is never negative",
    ]


def test_credentials_smpp_cannot_carry_are_refused_where_they_are_written(here: Path) -> None:
    # SMPP's system_id and password are Latin-1 C-Octet Strings: a character outside Latin-1 cannot be encoded,
    # a NUL would end the string early. Either way no bind could succeed, so the run must not start.
    text = _edit("[{system_id: identity, password: secret}]", '[{system_id: "日本語", password: "€"}]')
    assert _problems(text) == [
        "s.yaml:11:7: carriers.0.smsc.accounts: no account for the system under test's system_id 'identity'",
        "s.yaml:11:30: carriers.0.smsc.accounts.0.system_id: expected an SMPP system_id: 1 to 15 Latin-1 "
        "(ISO 8859-1) characters, no NUL, got '日本語'",
        "s.yaml:11:47: carriers.0.smsc.accounts.0.password: expected an SMPP password: up to 8 Latin-1 "
        "(ISO 8859-1) characters, no NUL, got '€'",
    ]
    sut = ('system_under_test.system_id="a\\0b"', 'system_under_test.password="p\\0w"',
           'carriers.0.smsc.accounts=[{system_id: "a\\0b", password: "p\\0w"}]')
    assert _problems(BASE, sut) == [
        "--set:1:29: system_under_test.system_id: expected an SMPP system_id: 1 to 15 Latin-1 (ISO 8859-1) "
        "characters, no NUL, got 'a\\x00b'",
        "--set:2:28: system_under_test.password: expected an SMPP password: up to 8 Latin-1 (ISO 8859-1) "
        "characters, no NUL, got 'p\\x00w'",
        "--set:3:39: carriers.0.smsc.accounts.0.system_id: expected an SMPP system_id: 1 to 15 Latin-1 "
        "(ISO 8859-1) characters, no NUL, got 'a\\x00b'",
        "--set:3:57: carriers.0.smsc.accounts.0.password: expected an SMPP password: up to 8 Latin-1 "
        "(ISO 8859-1) characters, no NUL, got 'p\\x00w'",
    ]
    # Latin-1 beyond ASCII is one octet a character, and fits.
    latin = ("system_under_test.system_id=ÿdentité", "system_under_test.password=sécret",
             "carriers.0.smsc.accounts=[{system_id: ÿdentité, password: sécret}]")
    assert _load(BASE, latin).system_under_test.system_id == "ÿdentité"


def test_accounts_must_include_the_system_under_test(here: Path) -> None:
    text = _edit(
        "[{system_id: identity, password: secret}]",
        "[{system_id: other, password: x}, {system_id: other, password: y}]",
    )
    assert _problems(text) == [
        "s.yaml:11:7: carriers.0.smsc.accounts: no account for the system under test's system_id 'identity'",
        "s.yaml:11:63: carriers.0.smsc.accounts.1: duplicate system_id 'other' (first at s.yaml:11:30)",
    ]
    text = _edit("[{system_id: identity, password: secret}]", "[{system_id: identity, password: wrong}]")
    assert _problems(text) == [
        "s.yaml:11:7: carriers.0.smsc.accounts: the password of account 'identity' is not system_under_test.password",
    ]


def test_every_problem_is_reported_in_file_order(here: Path) -> None:
    text = _edit("seed: 1", "seed: -1")
    text = _edit('mnc: "20"', 'mnc: "2"', text)
    text = _edit("carrier-b: 0.5}", "carrier-b: 0.4}", text)
    text = _edit("metric: activation.success_ratio", "metric: nope", text)
    problems = _problems(text)
    assert [p.split(":")[1] for p in problems] == ["2", "14", "20", "30"]


# ----------------------------------------------------------------------------------------- reading failures


def test_yaml_syntax_error(here: Path) -> None:
    assert _problems("name: t\nseed: [1, 2\n") == [
        "s.yaml:3:1: invalid YAML: expected ',' or ']', but got '<stream end>'",
    ]


def test_duplicate_yaml_keys(here: Path) -> None:
    problems = _problems("name: t\nname: u\n")
    assert len(problems) == 1
    assert problems[0].startswith('s.yaml:2:1: invalid YAML: found duplicate key "name"')


def test_top_level_must_be_a_mapping(here: Path) -> None:
    assert _problems("- a\n") == ["s.yaml:1:1: a scenario file holds a mapping of keys, not a list"]
    assert _problems("") == ["s.yaml:1:1: a scenario file holds a mapping of keys, not nothing"]


def test_not_utf8(here: Path) -> None:
    assert _problems(b"name: t\nseed: \xff\n") == ["s.yaml:2:7: not UTF-8 text: invalid start byte"]


def test_missing_file(here: Path) -> None:
    with pytest.raises(ScenarioError) as info:
        load_scenario(Path("nope.yaml"))
    assert [str(e) for e in info.value.errors] == ["nope.yaml:1:1: cannot read nope.yaml: No such file or directory"]


def test_non_finite_numbers_and_odd_keys(here: Path) -> None:
    text = _edit("seed: 1", "seed: .nan") + "1: x\n"
    assert _problems(text) == [
        "s.yaml:2:7: seed: nan is not a finite number",
        "s.yaml:31:1: the scenario: a key must be a string, got 1",
    ]


def test_complex_keys_are_named_by_their_kind(here: Path) -> None:
    text = _edit("mix: {carrier-a: 0.5, carrier-b: 0.5}", "mix: {carrier-a: 0.5, carrier-b: 0.5, ? [a, b] : 0.5}")
    problems = _problems(_edit("seed: 1", "seed: {? {x: 1} : 2}", text))
    assert "s.yaml:2:10: seed: a key must be a string, got a mapping" in problems
    assert "s.yaml:20:43: population.mix: a key must be a string, got a sequence" in problems
    assert not [p for p in problems if "object at 0x" in p]


def test_unsupported_yaml_values(here: Path) -> None:
    assert _problems(_edit("seed: 1", "seed: !!binary aGVsbG8=")) == [
        "s.yaml:2:7: seed: unsupported YAML value (bytes); use a string, number or boolean",
    ]


def test_the_core_schemas_str_tag_is_a_string_and_other_tags_are_refused_by_name(here: Path) -> None:
    # ``!!str`` is YAML's standard way to say "a string" (as quotes are); it was refused as "unsupported YAML value
    # (TaggedScalar); use a string", which it is. The other core tags are taken as their untagged values are.
    tagged = _edit('    mcc: "234"\n    mnc: "15"', "    mcc: !!str 234\n    mnc: !!str '15'",
                   _edit("name: t\n", "name: !!str t\n"))
    tagged = _edit("seed: 1\n", "seed: !!int 1\n", tagged)
    scenario = _load(tagged, ("carriers.1.gateway=!!str 447786205095", "load.phases.1.rate=!!float 100",
                              "population.conditions={absent: !!float 0}"))
    assert (scenario.name, scenario.seed, scenario.carriers[0].mcc, scenario.carriers[0].mnc) == ("t", 1, "234", "15")
    assert scenario.carriers[1].gateway == "447786205095"
    assert scenario == _load(BASE, ("population.conditions={absent: 0}",))
    # A string is then judged as any other: !!str 1a is no mcc, and !!str 3 is no seed.
    assert _problems(BASE, ("carriers.0.mcc=!!str 2a4", "seed=!!str 3", "population.phones=!!null")) == [
        "--set:1:16: carriers.0.mcc: expected a mobile country code: 3 digits, got '2a4'",
        "--set:2:6: seed: expected a whole number, got '3'",
        "--set:3:19: population.phones: expected a whole number, got null",
    ]
    assert _load(_edit("seed: 1\n", "!!str seed: 1\n")).seed == 1  # a key, too
    assert _problems(_edit("name: t\n", "name: !custom t\n")) == [
        "s.yaml:1:7: name: unsupported YAML tag !custom; use a string, number or boolean",
    ]
    assert _problems(_edit("seed: 1\n", "!custom seed: 1\n")) == [
        "s.yaml:2:1: the scenario: a key must be a string, got a value tagged !custom",
    ]
    assert _problems(_edit("name: t\n", "name: !!python/name:os.system t\n")) == [
        "s.yaml:1:7: name: unsupported YAML tag !!python/name:os.system; use a string, number or boolean",
    ]


def test_a_lone_surrogate_is_not_text_wherever_it_is_written(here: Path) -> None:
    # YAML's \\u escapes can write half a UTF-16 pair, which no output (terminal, report, PDU) can encode.
    assert _problems(_edit("name: t\n", 'name: "x\\ud800"\n')) == [
        "s.yaml:1:7: name: not valid Unicode text (a lone surrogate U+D800 at character 2)",
    ]
    assert _problems(_edit("seed: 1", '"s\\udfff": 1')) == [
        "s.yaml:2:1: the scenario: key 's\\udfff' is not valid Unicode text (a lone surrogate U+DFFF at character 2)",
    ]
    assert _problems('include: ["\\udc80.yaml"]\n' + BASE) == [
        "s.yaml:1:11: include.0: not valid Unicode text (a lone surrogate U+DC80 at character 1)",
    ]
    # --set values are YAML too; a path from argv bytes that are not UTF-8 arrives with surrogates in it.
    assert _problems(BASE, ('name="\\ud800"', "checks.0.name=\udcff")) == [
        "--set:1:6: name: not valid Unicode text (a lone surrogate U+D800 at character 1)",
        "--set:2:15: --set 'checks.0.name=\\udcff': invalid YAML: character #xdcff is not allowed",
    ]
    assert _problems(BASE, ("na\udcffme=x",)) == [
        "--set:1:1: --set 'na\\udcffme=x': the path is not valid Unicode text (a lone surrogate U+DCFF at "
        "character 3)",
    ]
    for problem in _problems(BASE, ('name="\\ud800"', "na\udcffme=x")):
        problem.encode("utf-8")  # every message can be printed


def test_alias_bombs_are_refused(here: Path) -> None:
    # Nine levels of ten aliases each: 10**9 values from ten short lines.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    problems = _problems("\n".join(lines) + "\n")
    assert problems == ["s.yaml:1:1: YAML aliases expand the scenario to more than 100000 values"]


def test_the_alias_bound_holds_for_the_scenario_with_its_includes(here: Path) -> None:
    # 7 x 10**4 values in one file is under the bound; the same file included twice is over it.
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 4)]
    lines.append(f"a4: [{', '.join(['*a3'] * 7)}]")
    _write("aliases.yaml", "\n".join(lines) + "\n")
    _write("twice.yaml", "include: aliases.yaml\n")
    assert "aliases.yaml:1:1: YAML aliases expand the scenario to more than 100000 values" not in _problems(
        "include: aliases.yaml\n" + BASE)
    problems = _problems("include: [aliases.yaml, twice.yaml]\n" + BASE)
    assert "aliases.yaml:1:1: YAML aliases expand the scenario to more than 100000 values" in problems


_TOO_MANY_NODES = (
    "too large: more than 20000 YAML nodes (keys, values, list items) in the scenario, its includes and --set "
    "values; stopped here"
)


def test_a_file_of_too_many_nodes_is_refused_where_the_bound_is_hit(here: Path) -> None:
    # 150,000 list items, 900 KB: once parsed whole (minutes) before the bound on values was checked, and then
    # blamed on aliases. Nodes are counted while composing: the mapping, its key and the list are nodes 1-3, so
    # node 20,001 is item 19,998, on line 19,999.
    _write("s.yaml", "a:\n" + "  - 1\n" * 150_000)
    with pytest.raises(ScenarioError) as info:
        load_scenario(Path("s.yaml"))
    assert [str(e) for e in info.value.errors] == [f"s.yaml:19999:5: {_TOO_MANY_NODES}"]
    # A --set value is YAML too, and counted with the rest: BASE holds 103 nodes, so the value may compose 19,897,
    # the list and 19,896 items; item 19,897, at column 7 + 2 x 19,896, is where it stops.
    assert _problems(BASE, ("name=[" + "1," * 30_000 + "1]",)) == [
        f"--set:1:39799: --set 'name=[{'1,' * 30_000}1]': {_TOO_MANY_NODES}",
    ]


def test_the_node_bound_holds_for_the_scenario_with_its_includes(here: Path) -> None:
    # s.yaml has 5 nodes and a.yaml 12,003, so b.yaml may compose 7,992: its mapping, key and list, then the list's
    # first 7,989 items; item 7,990 is where it stops.
    _write("a.yaml", "a:\n" + "  - 1\n" * 12_000)
    _write("b.yaml", "b:\n" + "  - 1\n" * 100_000)
    problems = _problems("include: [a.yaml, b.yaml]\n")
    assert f"b.yaml:7991:5: {_TOO_MANY_NODES}" in problems
    assert not [p for p in problems if p.startswith(("a.yaml", "s.yaml")) and "nodes" in p]


def test_the_byte_bound_holds_for_the_scenario_with_its_includes(here: Path) -> None:
    # Half a MiB of comment each: either file alone is readable, the two together are over the 1 MiB.
    _write("a.yaml", "seed: 2\n# " + "x" * (512 * 1024) + "\n")
    _write("b.yaml", "seed: 3\n# " + "x" * (512 * 1024) + "\n")
    text = "include: [a.yaml, b.yaml]\n" + BASE
    left = 1024 * 1024 - len(text) - Path("a.yaml").stat().st_size
    assert _problems(text) == [
        f"s.yaml:1:19: cannot include b.yaml: larger than the {left} bytes left of the 1 MiB a scenario and its "
        "includes may hold in all",
    ]


def test_integers_too_large_for_any_key_are_refused_where_they_are_written(here: Path) -> None:
    huge = "1" + "0" * 400
    assert _problems(_edit("phones: 1000", f"phones: {huge}")) == [
        "s.yaml:19:11: population.phones: a number of 401 digits is too large (at most 9223372036854775807)",
    ]
    assert _problems(_edit("value: 0.99", f"value: -{huge}")) == [
        "s.yaml:30:57: checks.0.value: a negative number of 401 digits is too large (at most 9223372036854775807)",
    ]
    assert _problems(BASE, (f"population.mix.carrier-a={huge}",)) == [
        "--set:1:26: population.mix.carrier-a: a number of 401 digits is too large (at most 9223372036854775807)",
    ]


def test_whole_numbers_written_as_floats_meet_every_rule_an_integer_meets(here: Path) -> None:
    # JSON Schema takes 2001.0 as an integer; the rules after it must too, not skip it.
    assert _problems(_edit("phones: 1000", "phones: 2.001e3")) == [
        "s.yaml:8:5: carriers.0.numbering: carrier-a needs 1001 numbers for its share of the phones, but holds 1000",
    ]
    scenario = _load(_edit("phones: 1000", "phones: 1e3"))
    assert scenario.population.phones == 1000
    assert type(scenario.population.phones) is int


def test_yaml_errors_without_a_mark_still_point_at_the_value(here: Path) -> None:
    bad_date = _edit("seed: 1", "seed: 2001-02-30")
    assert _problems(bad_date) == ["s.yaml:2:7: invalid YAML: day is out of range for month"]
    too_long = _edit("seed: 1", "seed: " + "9" * 5001)
    assert _problems(too_long) == ["s.yaml:2:7: invalid YAML: a number with too many digits"]
    assert _problems(_edit("name: t", "name: t\x01")) == ["s.yaml:1:8: invalid YAML: character #x0001 is not allowed"]


def test_a_symlink_loop_is_a_file_that_cannot_be_read(here: Path) -> None:
    os.symlink("loop2.yaml", "loop1.yaml")
    os.symlink("loop1.yaml", "loop2.yaml")
    with pytest.raises(ScenarioError) as info:
        load_scenario(Path("loop1.yaml"))
    [problem] = info.value.errors
    assert (problem.file, problem.line, problem.col) == ("loop1.yaml", 1, 1)
    assert "cannot read loop1.yaml" in problem.message
    [included] = [p for p in _problems("include: loop1.yaml\n" + BASE) if "include" in p]
    assert included.startswith("s.yaml:1:10: cannot include 'loop1.yaml': ")


def test_an_include_through_a_symlinked_directory_names_the_file_read(here: Path) -> None:
    _write("real/deep/x.yaml", "")
    _write("real/other.yaml", "population: {bogus: 1}\n")
    _write("main/other.yaml", "population: {}\n")  # what the text "link/../other.yaml" seems to name
    os.symlink("../real/deep", "main/link")
    problems = _problems("include: link/../other.yaml\n" + BASE, name="main/top.yaml")
    assert problems == ["real/other.yaml:1:14: population: unknown key 'bogus'"]


def test_number_range_parsing() -> None:
    assert parse_number_range("+447700900000") == NumberRange(447700900000, 447700900000)
    assert parse_number_range("447700900000-447700900009").size == 10
    for bad in ("", "-", "12a4-1234", "1234-123", "1235-1234", "١٢٣٤"):
        with pytest.raises(ValueError, match=r"."):
            parse_number_range(bad)


def test_problem_and_error_text() -> None:
    problem = ScenarioProblem("a.yaml", 3, 7, "boom")
    error = ScenarioError([problem, ScenarioProblem("b.yaml", 1, 1, "bang")])
    assert str(problem) == "a.yaml:3:7: boom"
    assert str(error) == "a.yaml:3:7: boom\nb.yaml:1:1: bang"
    assert error.errors == [problem, ScenarioProblem("b.yaml", 1, 1, "bang")]


# ---------------------------------------------------------------------------------------------------- includes

CARRIER_B = """\
carriers:
  - name: carrier-b
    mcc: "234"
    mnc: "20"
    country: GB
    numbering: ["447700901000-447700901999"]
    gateway: "447786205095"
    smsc: {window: 5, dialect: terse}
population:
  phones: 7
"""


def _without_carrier_b(text: str = BASE) -> str:
    start = text.index("  - name: carrier-b")
    return text[:start] + text[text.index("population:") :]


def test_include_merges_named_items_and_the_including_file_wins(here: Path) -> None:
    _write("common/carriers.yaml", CARRIER_B)
    text = "include: [common/carriers.yaml]\n" + _without_carrier_b().replace(
        "population:", "  - name: carrier-b\n    smsc: {window: 9}\npopulation:", 1
    )
    scenario = _load(text)
    assert [c.name for c in scenario.carriers] == ["carrier-b", "carrier-a"]
    b = scenario.carriers[0]
    assert b.smsc.window == 9  # the including file wins
    assert b.smsc.dialect == "terse"  # merged from the include
    assert b.where == "s.yaml:13:5"
    assert scenario.population.phones == 1000  # including file wins on scalars


def test_errors_in_an_included_file_point_into_it(here: Path) -> None:
    _write(
        "common/carriers.yaml", CARRIER_B.replace('mnc: "20"', 'mnc: "2"').replace("dialect: terse", "dialekt: terse")
    )
    text = "include: common/carriers.yaml\n" + _without_carrier_b()
    assert _problems(text) == [
        "common/carriers.yaml:4:10: carriers.0.mnc: expected a mobile network code: 2-3 digits, got '2'",
        "common/carriers.yaml:8:23: carriers.0.smsc: unknown key 'dialekt'; did you mean 'dialect'?",
    ]


def test_includes_are_relative_to_the_including_file_and_nest(here: Path) -> None:
    _write("sub/a.yaml", "include: [deeper/b.yaml]\nseed: 5\n")
    _write("sub/deeper/b.yaml", "seed: 6\nclock: virtual\n")
    scenario = _load("include: sub/a.yaml\n" + _edit("seed: 1\n", ""))
    assert (scenario.seed, scenario.clock) == (5, "virtual")


def test_later_includes_override_earlier_ones_and_scalar_lists_are_replaced(here: Path) -> None:
    _write("one.yaml", "seed: 1\ncarriers: [{name: carrier-a, numbering: ['447700900000']}]\n")
    _write("two.yaml", "seed: 2\n")
    scenario = _load("include: [one.yaml, two.yaml]\n" + _edit("seed: 1\n", ""))
    assert scenario.seed == 2
    assert scenario.carriers[0].ranges == (NumberRange(447700900000, 447700900999),)


def test_include_cycle_names_every_step(here: Path) -> None:
    _write("a.yaml", "include: b.yaml\n")
    _write("b.yaml", "x: 1\ninclude: [a.yaml]\n")
    assert _problems("include: [a.yaml]\n" + BASE) == [
        "b.yaml:1:1: unknown key 'x'",
        "b.yaml:2:11: include cycle: a.yaml:1:10 includes b.yaml, b.yaml:2:11 includes a.yaml",
    ]


def test_file_including_itself(here: Path) -> None:
    assert _problems("include: s.yaml\n" + BASE) == ["s.yaml:1:10: include cycle: s.yaml:1:10 includes s.yaml"]


def test_diamond_includes_are_not_cycles(here: Path) -> None:
    _write("a.yaml", "include: c.yaml\n")
    _write("b.yaml", "include: c.yaml\n")
    _write("c.yaml", "clock: virtual\n")
    assert _load("include: [a.yaml, b.yaml]\n" + BASE).clock == "virtual"


def test_a_file_included_twice_adds_its_items_once(here: Path) -> None:
    # Its account (no name, so appended) came twice: "accounts.1: duplicate system_id 'identity' (first at
    # common.yaml:4:30)", the position of the very entry reported; its event was silently applied twice.
    _write("common.yaml", "carriers:\n  - name: carrier-a\n    smsc:\n      accounts: [{system_id: identity, "
                          "password: secret}]\nevents:\n  - {at: 5, type: sim_swap, share: 0.1}\n")
    text = _edit("    smsc:\n      accounts: [{system_id: identity, password: secret}]\n", "", BASE)
    text = _edit("events:\n  - {at: 15, type: smsc_outage, carrier: carrier-a, duration: 5}\n", "", text)
    once = _load("include: common.yaml\n" + text)
    assert len(once.carriers[0].smsc.accounts) == 1
    assert len(once.events) == 1
    assert _load("include: [common.yaml, common.yaml]\n" + text) == once
    _write("a.yaml", "include: common.yaml\n")
    _write("b.yaml", "include: common.yaml\n")
    assert _load("include: [a.yaml, b.yaml]\n" + text) == once
    # The same item written again in another file is still an item of its own (and a duplicate account).
    _write("again.yaml", "carriers:\n  - name: carrier-a\n    smsc:\n      accounts: [{system_id: identity, "
                         "password: secret}]\n")
    assert _problems("include: [common.yaml, again.yaml]\n" + text) == [
        "again.yaml:4:30: carriers.0.smsc.accounts.1: duplicate system_id 'identity' (first at common.yaml:4:30)",
    ]


def test_missing_and_malformed_includes(here: Path) -> None:
    assert _problems("include: [gone.yaml, 3]\n" + BASE) == [
        "s.yaml:1:11: cannot include gone.yaml: No such file or directory",
        "s.yaml:1:22: include: expected a file name, got 3",
    ]
    assert _problems("include: {a: 1}\n" + BASE) == [
        "s.yaml:1:10: include: expected a file name or a list of them, got a mapping",
    ]


def test_includes_that_are_not_regular_files_are_refused(here: Path) -> None:
    os.mkfifo("pipe.yaml")  # opening it for reading would wait for a writer forever
    Path("dir.yaml").mkdir()
    assert _problems("include: [/dev/zero, pipe.yaml, dir.yaml]\n" + BASE) == [
        "s.yaml:1:11: cannot include /dev/zero: not a regular file (a character device)",
        "s.yaml:1:22: cannot include pipe.yaml: not a regular file (a FIFO)",
        "s.yaml:1:33: cannot include dir.yaml: not a regular file (a directory)",
    ]
    with pytest.raises(ScenarioError) as info:
        load_scenario(Path("pipe.yaml"))
    assert [str(e) for e in info.value.errors] == ["pipe.yaml:1:1: cannot read pipe.yaml: not a regular file (a FIFO)"]


def test_files_over_1_mib_are_refused(here: Path) -> None:
    with open("big.yaml", "wb") as big:
        big.truncate(1024 * 1024 + 1)  # sparse: nothing written to disk
    text = "include: big.yaml\n" + BASE
    assert _problems(text) == [
        f"s.yaml:1:10: cannot include big.yaml: larger than the {1024 * 1024 - len(text)} bytes left of the 1 MiB "
        "a scenario and its includes may hold in all",
    ]
    with pytest.raises(ScenarioError) as info:
        load_scenario(Path("big.yaml"))
    assert [str(e) for e in info.value.errors] == ["big.yaml:1:1: cannot read big.yaml: larger than 1 MiB"]


# ---------------------------------------------------------------------------------------------------- --set


def test_set_by_key_index_and_name(here: Path) -> None:
    scenario = _load(
        BASE,
        (
            "population.phones=500",
            "load.phases.1.duration=60",
            "load.phases.ramp.rate={from: 1, to: 2}",
            "carriers.carrier-a.smsc.window=50",
            "carriers.carrier-b.smsc.faults.tcp_reset=0.5",
            "seed=9",
        ),
    )
    assert scenario.population.phones == 500
    assert scenario.load.phases[1].duration == 60.0
    assert (scenario.load.phases[0].rate_from, scenario.load.phases[0].rate_to) == (1.0, 2.0)
    assert scenario.carriers[0].smsc.window == 50
    assert scenario.carriers[1].smsc.faults == {"tcp_reset": 0.5}
    assert scenario.seed == 9


def test_set_a_name_containing_dots(here: Path) -> None:
    text = BASE + '  - {name: p99 under 0.5, metric: activation.latency.p99, op: "<=", value: 0.5}\n'
    assert _load(text, ("checks.p99 under 0.5.value=0.25",)).checks[1].value == 0.25


def test_set_an_item_by_its_default_name(here: Path) -> None:
    # plan shows an unnamed phase as phase-N, and scenarios.md says a segment may be an item's name: the default
    # name is one too. Before, load.phases.phase-2 was "no item 'phase-2'". Likewise a check's default name.
    text = _edit("    - {name: ramp, duration: 10, rate: {from: 10, to: 100}}\n    - {name: steady, duration: 20, "
                 "rate: 100}\n", "    - {duration: 10, rate: {from: 10, to: 100}}\n    - {duration: 20, rate: 100}\n")
    text += '  - {metric: activation.latency.p99, op: "<", value: 2}\n'
    scenario = _load(text, ("load.phases.phase-2.duration=10", "checks.activation.latency.p99 < 2.value=3"))
    assert [(p.name, p.duration) for p in scenario.load.phases] == [("phase-1", 10.0), ("phase-2", 10.0)]
    assert scenario.checks[1].value == 3.0
    assert _problems(text, ("load.phases.phase-3.duration=10",)) == [
        "--set:1:1: --set 'load.phases.phase-3.duration=10': load.phases has no item 'phase-3' (2 items, from 0); "
        "did you mean 'phase-1'?",
    ]
    # A written name is taken first: "phase-1" written on the second phase is that phase.
    named = _edit("    - {duration: 20, rate: 100}\n", "    - {name: phase-1, duration: 20, rate: 100}\n", text)
    problems = _problems(named, ("load.phases.phase-1.duration=5",))
    assert problems == ["s.yaml:24:14: load.phases.1.name: duplicate phase 'phase-1' (first at s.yaml:23:7)"]


def test_set_values_are_validated_at_their_position(here: Path) -> None:
    assert _problems(BASE, ("population.phones=abc", 'seed="5"')) == [
        "--set:1:19: population.phones: expected a whole number, got 'abc'",
        "--set:2:6: seed: expected a whole number, got '5'",
    ]


def test_set_unknown_key_did_you_mean(here: Path) -> None:
    assert _problems(BASE, ("populaton.phones=1",)) == [
        "--set:1:1: unknown key 'populaton'; did you mean 'population'?",
    ]


def test_set_bad_paths_name_the_override(here: Path) -> None:
    assert _problems(
        BASE,
        (
            "carriers.carrier-z.smsc.window=1",
            "load.phases.7.duration=1",
            "population.phones.x=1",
            "nokey",
            "include=a.yaml",
            "load..phases=1",
            "seed=[1",
        ),
    ) == [
        "--set:1:1: --set 'carriers.carrier-z.smsc.window=1': carriers has no item 'carrier-z' (2 items, from 0); "
        "did you mean 'carrier-a'?",
        "--set:2:1: --set 'load.phases.7.duration=1': load.phases has no item '7' (2 items, from 0) "
        "(names: ramp, steady)",
        "--set:3:1: --set 'population.phones.x=1': population.phones is 1000, which has no 'x'",
        "--set:4:1: --set 'nokey': expected PATH=VALUE, e.g. population.phones=1000",
        "--set:5:1: --set 'include=a.yaml': include cannot be overridden (it is read before overrides apply)",
        "--set:6:1: --set 'load..phases=1': empty segment in path 'load..phases'",
        "--set:7:8: --set 'seed=[1': invalid YAML: expected ',' or ']', but got '<stream end>'",
    ]


def test_set_problems_come_after_file_problems(here: Path) -> None:
    problems = _problems(_edit("seed: 1", "seed: -1"), ("population.phones=0",))
    assert problems == [
        "s.yaml:2:7: seed: must be >= 0, got -1",
        "--set:1:19: population.phones: must be >= 1, got 0",
    ]


# ------------------------------------------------------------------------------------------------- robustness

_KEYS: list[str] = sorted(
    {"name", "carriers", "load", "phases", "rate", "from", "to", "mix", "smsc", "accounts", "metric", "include", "x"}
    | set(SCHEMA["properties"])
)
_scalars = st.none() | st.booleans() | st.integers(-(10**20), 10**20) | st.floats(allow_nan=True) | st.text(max_size=8)
_trees = st.recursive(
    _scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(_KEYS) | st.text(max_size=5), children, max_size=5)
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=300))
def test_garbage_bytes_never_crash(here: Path, blob: bytes) -> None:
    _write("g.yaml", blob)
    try:
        load_scenario(Path("g.yaml"))
    except ScenarioError as err:
        assert err.errors
        assert all(e.line >= 1 and e.col >= 1 for e in err.errors)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_trees)
def test_arbitrary_documents_never_crash(here: Path, tree: Any) -> None:
    _write("g.yaml", json.dumps(tree, allow_nan=True))
    try:
        load_scenario(Path("g.yaml"))
    except ScenarioError as err:
        assert err.errors


def _base_tree() -> dict[str, Any]:
    """BASE as plain JSON data, a fresh copy each time."""
    tree: dict[str, Any] = json.loads(json.dumps(YAML(typ="safe", pure=True).load(BASE)))
    return tree


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            out += _paths(child, (*prefix, i))
    return out


_BASE_PATHS = _paths(_base_tree())[1:]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(_BASE_PATHS), replacement=_trees, overrides=st.lists(st.text(max_size=30), max_size=2))
def test_mutated_valid_documents_never_crash(
    here: Path, where: tuple[Any, ...], replacement: Any, overrides: list[str]
) -> None:
    # Starting from a valid document gets past the schema into the semantic checks and the model builder, where a
    # wrongly-typed value would otherwise surface as a TypeError.
    tree = _base_tree()
    node = tree
    for segment in where[:-1]:
        node = node[segment]
    node[where[-1]] = replacement
    _write("g.yaml", json.dumps(tree, allow_nan=True))
    try:
        scenario = load_scenario(Path("g.yaml"), overrides)
    except ScenarioError as err:
        assert err.errors
    else:
        assert scenario.population.phones >= 1


# ---------------------------------------------------------------------------------------------------- doors


def test_doors_load_into_the_model(here: Path) -> None:
    text = _edit(
        "    smsc:\n      accounts",
        "    doors:\n      rcs: {port: 8080}\n      smtp: {domain: SMS.Carrier-A.example, host: 0.0.0.0}\n"
        "      camara: {}\n    smsc:\n      accounts",
    )
    a, b = _load(text).carriers
    assert a.doors == Doors(rcs=RcsDoor(port=8080), smtp=SmtpDoor("sms.carrier-a.example", 0, "0.0.0.0"),
                            camara=CamaraDoor())
    assert b.doors == Doors()  # no doors: the carrier is only its SMSC


def test_duplicate_fixed_ports_across_carriers_and_doors(here: Path) -> None:
    # Port 0 (any free port) never clashes; a fixed port is taken once, whatever listens on it.
    text = _edit(
        "    smsc:\n      accounts",
        "    doors: {rcs: {port: 2775}, camara: {port: 0}}\n    smsc:\n      port: 2775\n      accounts",
    )
    gateway = '    gateway: "447786205095"\n'
    text = _edit(gateway, gateway + "    doors: {camara: {port: 2775}}\n", text)
    assert _problems(text) == [
        "s.yaml:10:25: carriers.0.doors.rcs.port: port 2775 is already taken by carriers.0.smsc.port (s.yaml:12:13)",
        "s.yaml:20:28: carriers.1.doors.camara.port: port 2775 is already taken by carriers.0.smsc.port "
        "(s.yaml:12:13)",
    ]


def test_smtp_domain_must_be_a_host_name(here: Path) -> None:
    text = _edit("    smsc:\n      accounts", "    doors: {smtp: {domain: sms_a}}\n    smsc:\n      accounts")
    assert _problems(text) == [
        "s.yaml:10:28: carriers.0.doors.smtp.domain: 'sms_a' is not a valid host name (e.g. sms.carrier.example)"
    ]


def test_smtp_short_code_loads_and_must_be_digits(here: Path) -> None:
    text = _edit("    smsc:\n      accounts",
                 "    doors: {smtp: {domain: sms.a.example, short_code: '6245'}}\n    smsc:\n      accounts")
    assert _load(text).carriers[0].doors.smtp == SmtpDoor("sms.a.example", short_code="6245")
    text = _edit("    smsc:\n      accounts",
                 "    doors: {smtp: {domain: sms.a.example, short_code: MAIL}}\n    smsc:\n      accounts")
    assert _problems(text) == [
        "s.yaml:10:55: carriers.0.doors.smtp.short_code: expected a short code of 3 to 15 digits, got 'MAIL'"]


def test_smtp_max_recipients_loads_and_must_be_at_least_one(here: Path) -> None:
    # GatewayConfig.max_recipients was out of a scenario's reach: the schema had no key for it, so a scenario could
    # not emulate a gateway stricter (or laxer) than the RFC's 100.
    door = "    doors: {smtp: {domain: sms.a.example%s}}\n    smsc:\n      accounts"
    text = _edit("    smsc:\n      accounts", door % ", max_recipients: 3")
    assert _load(text).carriers[0].doors.smtp == SmtpDoor("sms.a.example", max_recipients=3)
    # Left out, it is the gateway's own default: RFC 5321 section 4.5.3.1.8's minimum.
    smtp = _load(_edit("    smsc:\n      accounts", door % "")).carriers[0].doors.smtp
    assert smtp is not None
    assert smtp.max_recipients == GatewayConfig(domains=("sms.a.example",)).max_recipients == 100
    assert _problems(_edit("    smsc:\n      accounts", door % ", max_recipients: 0")) == [
        "s.yaml:10:59: carriers.0.doors.smtp.max_recipients: must be >= 1, got 0"]


def test_door_port_out_of_range(here: Path) -> None:
    text = _edit("    smsc:\n      accounts", "    doors: {rcs: {port: 70000}}\n    smsc:\n      accounts")
    [problem] = _problems(text)
    assert problem == "s.yaml:10:25: carriers.0.doors.rcs.port: must be <= 65535, got 70000"


def test_camara_fault_shares_load_and_must_not_exceed_one(here: Path) -> None:
    text = _edit(
        "    smsc:\n      accounts",
        "    doors:\n      camara: {too_many_requests: 0.1, unavailable: 0.05}\n    smsc:\n      accounts",
    )
    camara = _load(text).carriers[0].doors.camara
    assert camara == CamaraDoor(too_many_requests=0.1, unavailable=0.05)
    too_much = _edit("{too_many_requests: 0.1, unavailable: 0.05}", "{too_many_requests: 0.7, unavailable: 0.5}", text)
    assert any("too_many_requests + unavailable is 1.2, more than 1" in p for p in _problems(too_much))
    assert _problems(_edit("unavailable: 0.05", "unavailable: 1.5", text))
