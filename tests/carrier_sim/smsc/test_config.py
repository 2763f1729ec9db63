"""The SMSC's TOML configuration: the documented example is valid, and every mistake names its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carrier_sim.scenario.schema import FAULTS, SCHEMA
from carrier_sim.smpp.constants import InterfaceVersion
from carrier_sim.smsc.accounts import BindKind, MoDelivery
from carrier_sim.smsc.centre import DelayDistribution
from carrier_sim.smsc.config import ConfigError, load_smsc_config, parse_account_flag, smsc_config_from_mapping
from carrier_sim.smsc.subscribers import Condition

DOC = Path(__file__).resolve().parents[3] / "docs" / "smsc.md"


def _documented_example() -> str:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    return str(blocks[0])


def test_documented_example_loads(tmp_path: Path) -> None:
    path = tmp_path / "smsc.toml"
    path.write_text(_documented_example(), encoding="utf-8")
    config, subscribers = load_smsc_config(path)
    assert config.name == "carrier-a"
    assert config.interface_version is InterfaceVersion.V34
    account = config.accounts[0]
    assert account.system_id == "identity"
    assert account.bind_kinds == frozenset(BindKind)
    assert account.mo_delivery is MoDelivery.DELIVER_SM
    assert account.source_allowed("447786205094")
    assert not account.source_allowed("447786205095")
    assert config.dlr_delay.low == 0.5
    assert config.dlr_delay.high == 2.0
    assert config.dialect.name == "kannel-like"
    assert subscribers.condition("447700900013") is Condition.ABSENT
    assert subscribers.condition("447700900017") is Condition.BARRED
    assert subscribers.condition("447700900099") is Condition.REACHABLE
    assert config.outbind == (("127.0.0.1", 2776, "identity", "secret"),)
    assert config.enquire_link_misses == 3
    assert (config.roaming_delay.low, config.roaming_delay.high) == (0.5, 2.0)
    assert subscribers.condition("447700900021") is Condition.ROAMING


def test_enquire_link_misses_is_read() -> None:
    config, _ = smsc_config_from_mapping({"smsc": {"enquire_link_misses": 5}})
    assert config.enquire_link_misses == 5
    with pytest.raises(ConfigError, match=re.escape("config.smsc.enquire_link_misses: expected int")):
        smsc_config_from_mapping({"smsc": {"enquire_link_misses": 2.5}})


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ({"smsc": {"windo": 3}}, "config.smsc: unknown key(s) windo"),
        ({"smsc": {"window": "ten"}}, "config.smsc.window: expected int"),
        ({"smsc": {"interface_version": "4.0"}}, "config.smsc.interface_version"),
        ({"account": [{"system_id": "a"}]}, "config.account[0]: system_id and password are required"),
        ({"account": [{"system_id": "a", "password": "b", "bind_types": ["sideways"]}]}, "config.account[0]"),
        ({"receipts": {"dialect": "nope"}}, "config.receipts.dialect"),
        ({"receipts": {"delay": [1]}}, "config.receipts.delay"),
        ({"subscribers": {"default": "asleep"}}, "config.subscribers.default"),
        ({"faults": {"drop_everything": 1.0}}, "config.faults: unknown key(s) drop_everything"),
        ({"outbind": [{"host": "127.0.0.1"}]}, "config.outbind[0]: port is required"),
        ({"smsc": {"window": True}}, "config.smsc.window: expected int, got bool"),
        # A route with regex characters is a regular expression: "+44..." is not one (nothing to repeat).
        ({"account": [{"system_id": "a", "password": "b", "routes": ["+447700900123"]}]},
         "config.account[0].routes: '+447700900123' is not a regular expression"),
        ({"account": [{"system_id": "a", "password": "b", "source_allow": ["(unclosed"]}]},
         "config.account[0].source_allow: '(unclosed' is not a regular expression"),
    ],
)
def test_mistakes_name_the_key(doc: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        smsc_config_from_mapping(doc)
    assert names in str(info.value)


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[smsc\nname=", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_smsc_config(path)
    assert "bad.toml" in str(info.value)


def test_account_flag() -> None:
    assert parse_account_flag("esme1:secret").password == "secret"
    for bad in ("nocolon", ":pw", "a" * 16 + ":pw", "id:" + "p" * 9):
        with pytest.raises(ConfigError):
            parse_account_flag(bad)


def test_roaming_delay_and_roaming_subscribers_are_read() -> None:
    config, subscribers = smsc_config_from_mapping({"roaming": {"delay": [1, 3]},
                                                    "subscribers": {"roaming": ["+44 7700 900021"]}})
    assert (config.roaming_delay.low, config.roaming_delay.high) == (1.0, 3.0)
    assert subscribers.condition("447700900021") is Condition.ROAMING
    fixed, everyone = smsc_config_from_mapping({"roaming": {"delay": 0}, "subscribers": {"default": "roaming"}})
    assert (fixed.roaming_delay.low, fixed.roaming_delay.high) == (0.0, 0.0)
    assert everyone.condition("447700900099") is Condition.ROAMING


def test_exponential_and_lognormal_delays_are_read_as_tables() -> None:
    config, _ = smsc_config_from_mapping({"receipts": {"delay": {"distribution": "exponential", "mean": 0.3}},
                                          "roaming": {"delay": {"distribution": "lognormal", "median": 1,
                                                                "sigma": 0.5}}})
    assert config.dlr_delay == DelayDistribution(kind="exponential", mean=0.3)
    assert config.roaming_delay == DelayDistribution(kind="lognormal", median=1.0, sigma=0.5)


@pytest.mark.parametrize(("delay", "reason"), [
    ({"distribution": "exponential", "mean": 0}, "config.receipts.delay.mean: seconds, a number > 0"),
    ({"distribution": "exponential"}, "config.receipts.delay.mean"),
    ({"distribution": "exponential", "mean": 1, "median": 2}, "unknown key(s) median"),
    ({"distribution": "lognormal", "median": 1, "sigma": 11}, "median > 0 seconds and 0 <= sigma <= 10"),
    ({"distribution": "gamma", "shape": 2}, "config.receipts.delay: a number of seconds, [low, high]"),
    ({"distribution": "exponential", "mean": float("nan")}, "must be a finite number"),
])
def test_a_bad_delay_table_is_refused_naming_the_key(delay: dict[str, object], reason: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(reason)):
        smsc_config_from_mapping({"receipts": {"delay": delay}})


def test_faults_parse_to_the_plan() -> None:
    config, _ = smsc_config_from_mapping({"faults": {"drop_response": 0.5, "split_max": 3}})
    assert config.faults.drop_response == 0.5
    assert config.faults.split_max == 3


_ACCOUNT = {"system_id": "a", "password": "b"}
_OUTBIND = {"host": "127.0.0.1", "port": 2776, "system_id": "a", "password": "b"}
_NAN = float("nan")
_INF = float("inf")


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        # A table or an array of tables of the wrong shape: once a TypeError traceback (exit 1, not 2).
        ({"smsc": 5}, "config.smsc: expected a table, got int"),
        ({"receipts": [1]}, "config.receipts: expected a table, got list"),
        ({"faults": [1]}, "config.faults: expected a table, got list"),
        ({"subscribers": "absent"}, "config.subscribers: expected a table, got str"),
        ({"account": [1, 2]}, "config.account[0]: expected a table, got int"),
        ({"account": {"system_id": "a"}}, "config.account: expected an array of tables, got dict"),
        ({"account": 7}, "config.account: expected an array of tables, got int"),
        ({"outbind": "127.0.0.1:2776"}, "config.outbind: expected an array of tables, got str"),
        ({"outbind": [_OUTBIND, 3]}, "config.outbind[1]: expected a table, got int"),
        ({"account": [{**_ACCOUNT, "bind_types": [1]}]}, "config.account[0].bind_types[0]: expected str, got int"),
        ({"account": [{**_ACCOUNT, "routes": [{"a": 1}]}]}, "config.account[0].routes[0]: expected str, got dict"),
        ({"subscribers": {"absent": [["447700900013"]]}}, "config.subscribers.absent[0]: expected str, got list"),
        ({"subscribers": {"default": ["absent"]}}, "config.subscribers.default: expected str, got list"),
        ({"receipts": {"dialect": ["terse"]}}, "config.receipts.dialect: expected str, got list"),
        # Out of range.
        ({"smsc": {"window": -1}}, "config.smsc.window: must be >= 1, got -1"),
        ({"smsc": {"window": 0}}, "config.smsc.window: must be >= 1"),
        ({"smsc": {"peer_window": 0}}, "config.smsc.peer_window: must be >= 1"),
        ({"smsc": {"store_capacity": 0}}, "config.smsc.store_capacity: must be >= 1"),
        ({"smsc": {"enquire_link_misses": -1}}, "config.smsc.enquire_link_misses: must be >= 0"),
        ({"smsc": {"seed": -1}}, "config.smsc.seed: must be between 0 and 9223372036854775807"),
        ({"smsc": {"response_timeout": -0.5}}, "config.smsc.response_timeout: must be >= 0"),
        ({"smsc": {"default_validity": _NAN}}, "config.smsc.default_validity: must be a finite number"),
        ({"smsc": {"hold_mo": _INF}}, "config.smsc.hold_mo: must be a finite number"),
        ({"account": [{**_ACCOUNT, "max_binds": -1}]}, "config.account[0].max_binds: must be >= 1"),
        ({"account": [{**_ACCOUNT, "throughput": -1.0}]}, "config.account[0].throughput: must be >= 0"),
        ({"account": [{**_ACCOUNT, "bind_throughput": _NAN}]}, "config.account[0].bind_throughput: must be a finite"),
        ({"account": [{"system_id": "x" * 26, "password": "b"}]}, "config.account[0].system_id: 1 to 15 characters"),
        ({"account": [{"system_id": "", "password": "b"}]}, "config.account[0].system_id: 1 to 15 characters"),
        ({"account": [{"system_id": "a", "password": "p" * 9}]}, "config.account[0].password: at most 8 characters"),
        ({"outbind": [{**_OUTBIND, "port": 99999}]}, "config.outbind[0].port: must be between 0 and 65535"),
        ({"outbind": [{**_OUTBIND, "port": -1}]}, "config.outbind[0].port: must be between 0 and 65535"),
        ({"outbind": [{**_OUTBIND, "system_id": "x" * 16}]}, "config.outbind[0].system_id: 1 to 15 characters"),
        ({"outbind": [{**_OUTBIND, "password": "p" * 9}]}, "config.outbind[0].password: at most 8 characters"),
        ({"receipts": {"delay": -5}}, "config.receipts.delay: must be >= 0"),
        ({"receipts": {"delay": _NAN}}, "config.receipts.delay: must be a finite number"),
        ({"receipts": {"delay": [0.5, _INF]}}, "config.receipts.delay[1]: must be a finite number"),
        ({"receipts": {"delay": [-1, 2]}}, "config.receipts.delay[0]: must be >= 0"),
        ({"receipts": {"delay": [2.0, 0.5]}}, "config.receipts.delay: [low, high] with low <= high"),
        ({"receipts": {"delay": [True, 2]}}, "config.receipts.delay[0]: expected float, got bool"),
        ({"receipts": {"delay": "1s"}}, "config.receipts.delay: a number of seconds, [low, high]"),
        ({"roaming": {"delay": -1}}, "config.roaming.delay: must be >= 0"),
        ({"roaming": {"delay": [2.0, 0.5]}}, "config.roaming.delay: [low, high] with low <= high"),
        ({"roaming": {"delay": [0.5, _NAN]}}, "config.roaming.delay[1]: must be a finite number"),
        ({"roaming": {"delay": "2s"}}, "config.roaming.delay: a number of seconds, [low, high]"),
        ({"roaming": {"dealy": 1.0}}, "config.roaming: unknown key(s) dealy"),
        ({"roaming": [1.0]}, "config.roaming: expected a table"),
        ({"faults": {"tcp_reset": 5.0}}, "config.faults.tcp_reset: must be between 0 and 1, got 5.0"),
        ({"faults": {"drop_response": -0.1}}, "config.faults.drop_response: must be between 0 and 1"),
        ({"faults": {"generic_nack": _NAN}}, "config.faults.generic_nack: must be a finite number"),
        ({"faults": {"split_max": -3}}, "config.faults.split_max: must be between 1 and 65536, got -3"),
        ({"faults": {"split_max": 0}}, "config.faults.split_max: must be between 1 and 65536"),
        ({"faults": {"response_delay": -1.0}}, "config.faults.response_delay: must be >= 0"),
        ({"faults": {"late_receipt_delay": _INF}}, "config.faults.late_receipt_delay: must be a finite number"),
    ],
)
def test_garbage_is_a_config_error_naming_the_key(doc: dict[str, object], names: str) -> None:
    with pytest.raises(ConfigError) as info:
        smsc_config_from_mapping(doc)
    assert names in str(info.value)


def test_the_edges_of_each_range_are_accepted() -> None:
    config, subscribers = smsc_config_from_mapping({
        "smsc": {"window": 1, "peer_window": 1, "store_capacity": 1, "enquire_link_misses": 0, "response_timeout": 0},
        "account": [{"system_id": "x" * 15, "password": "p" * 8, "max_binds": 1, "throughput": 0}],
        "receipts": {"delay": [1, 1]},
        "faults": {"tcp_reset": 1, "drop_response": 0, "split_max": 1, "response_delay": 0},
        "outbind": [{**_OUTBIND, "port": 65535}, {**_OUTBIND, "port": 0}],
        "subscribers": {"absent": [447700900013]},  # a bare number is a number
    })
    assert config.window == 1
    assert config.accounts[0].system_id == "x" * 15
    assert config.faults.tcp_reset == 1.0
    assert config.faults.split_max == 1
    assert [port for _, port, _, _ in config.outbind] == [65535, 0]
    assert subscribers.condition("447700900013") is Condition.ABSENT


def _scenario_fault_bounds() -> dict[str, tuple[float, float]]:
    found: list[dict[str, object]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "description" in node and "FaultPlan" in str(node["description"]):
                found.append(node)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(SCHEMA)
    assert found, "the scenario schema's faults object"
    properties = found[0]["properties"]
    assert isinstance(properties, dict)
    return {name: (prop["minimum"], prop["maximum"]) for name, prop in properties.items()}


def test_faults_take_the_ranges_a_scenario_does() -> None:
    """--config's [faults] and a scenario's smsc.faults refuse the same values below and at 0..1 / sizes."""
    bounds = _scenario_fault_bounds()
    assert set(bounds) == set(FAULTS)
    for name, (low, high) in bounds.items():
        smsc_config_from_mapping({"faults": {name: low}})
        with pytest.raises(ConfigError, match=re.escape(f"config.faults.{name}")):
            smsc_config_from_mapping({"faults": {name: low - 1}})
        if high <= 1 << 16:  # probabilities and sizes; seconds are capped only by being finite
            smsc_config_from_mapping({"faults": {name: high}})
            with pytest.raises(ConfigError, match=re.escape(f"config.faults.{name}")):
                smsc_config_from_mapping({"faults": {name: high + 1}})


@pytest.mark.parametrize(
    ("doc", "names"),
    [
        ({"subscribers": {"absent": ["abc", "1"]}},
         "config.subscribers.absent[0]: expected a phone number (digits, an optional leading '+'), got 'abc'"),
        ({"subscribers": {"barred": [-447700900013]}}, "config.subscribers.barred[0]: expected a phone number"),
        ({"subscribers": {"roaming": ["٤٤٧٧"]}}, "config.subscribers.roaming[0]: expected a phone number"),
        ({"subscribers": {"unknown": [""]}}, "config.subscribers.unknown[0]: expected a phone number"),
        ({"account": [{"system_id": "日本語", "password": "x"}]},
         "config.account[0].system_id: Latin-1 (ISO 8859-1) characters without NUL, as SMPP carries it; got '日本語'"),
        ({"account": [{"system_id": "a\x00", "password": "x"}]},
         "config.account[0].system_id: Latin-1 (ISO 8859-1) characters without NUL, as SMPP carries it; "
         "got 'a\\x00'"),
        ({"account": [{"system_id": "a", "password": "€"}]},
         "config.account[0].password: Latin-1 (ISO 8859-1) characters without NUL, as SMPP carries it; got '€'"),
        ({"account": [{"system_id": "a", "password": "p\x00w"}]}, "config.account[0].password: Latin-1"),
        ({"outbind": [{**_OUTBIND, "system_id": "日本語"}]}, "config.outbind[0].system_id: Latin-1"),
        ({"outbind": [{**_OUTBIND, "password": "€"}]}, "config.outbind[0].password: Latin-1"),
        ({"smsc": {"seed": 99999999999999999999}},
         "config.smsc.seed: must be between 0 and 9223372036854775807, got 99999999999999999999"),
        ({"smsc": {"seed": 1 << 63}}, "config.smsc.seed: must be between 0 and 9223372036854775807"),
    ],
)
def test_values_no_peer_could_use_are_refused_naming_the_key(doc: dict[str, object], names: str) -> None:
    # Each was accepted, and then no ESME could bind (SMPP carries Latin-1 C-Octet Strings), the number matched no
    # subscriber, or the seed was beyond the signed 64 bits a scenario's seed is held to.
    with pytest.raises(ConfigError) as info:
        smsc_config_from_mapping(doc)
    assert names in str(info.value)


def test_what_smpp_and_the_registry_can_use_is_accepted() -> None:
    config, subscribers = smsc_config_from_mapping({
        "smsc": {"seed": (1 << 63) - 1},
        "account": [{"system_id": "ÿdentité", "password": "sécret"}],
        "outbind": [{**_OUTBIND, "system_id": "ÿdentité", "password": "sécret"}],
        "subscribers": {"absent": ["+44 7700 900013", "447700-900014"]},
    })
    assert config.seed == (1 << 63) - 1
    assert config.accounts[0].system_id == "ÿdentité"
    assert subscribers.condition("447700900013") is Condition.ABSENT
    assert subscribers.condition("447700900014") is Condition.ABSENT
    assert parse_account_flag("ÿdentité:sécret").password == "sécret"
    for bad in ("日本語:pw", "id:€", "a\x00b:pw", "id:p\x00w"):
        with pytest.raises(ConfigError):
            parse_account_flag(bad)
