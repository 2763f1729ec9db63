"""The SMSC's TOML configuration: the documented example is valid, and every mistake names its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from carrier_sim.smpp.constants import InterfaceVersion
from carrier_sim.smsc.accounts import BindKind, MoDelivery
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


def test_faults_parse_to_the_plan() -> None:
    config, _ = smsc_config_from_mapping({"faults": {"drop_response": 0.5, "split_max": 3}})
    assert config.faults.drop_response == 0.5
    assert config.faults.split_max == 3
