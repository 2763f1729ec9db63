"""identity.toml: the documented example is valid, every mistake names its key."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from identity_core.config import ConfigError, load_config, parse_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "identity-core.md"


def test_documented_example_loads(tmp_path: Path) -> None:
    [example] = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    path = tmp_path / "identity.toml"
    path.write_text(example, encoding="utf-8")
    config = load_config(path)
    assert (config.api.host, config.api.port, config.api.tokens) == ("127.0.0.1", 8080, ("a-bearer-token",))
    assert config.store_path == tmp_path / "identity.db"
    [carrier] = config.carriers
    assert (carrier.name, carrier.smsc_port, carrier.gateway, carrier.country) == ("carrier-a", 2775,
                                                                                    "447786205094", "GB")
    assert config.limits.reg_per_number == (0.2, 3.0)
    assert (carrier.sim_swap_api, carrier.sim_swap_max_age, carrier.sim_swap_token, carrier.sim_swap_timeout) == (
        "http://127.0.0.1:8443", 240, "camara-access-token", 5.0)
    assert config.messages.help.startswith("identity-core")


BASE = {
    "api": {"listen": "127.0.0.1:8080", "tokens": ["long-enough-token"]},
    "store": {"path": "x.db"},
    "carrier": [{"name": "a", "smsc": "127.0.0.1:2775", "system_id": "s", "password": "p", "gateway": "123",
                 "country": "GB"}],
}

API = "http://127.0.0.1:8443"


def test_sim_swap_and_messages_keys() -> None:
    import copy

    doc = copy.deepcopy(BASE)
    doc["carrier"][0].update(sim_swap_api=API, sim_swap_max_age=24, sim_swap_token="tok", sim_swap_timeout=2)
    doc["messages"] = {"help": "Help: example.org"}
    config = parse_config(doc)
    [carrier] = config.carriers
    assert (carrier.sim_swap_api, carrier.sim_swap_max_age, carrier.sim_swap_token, carrier.sim_swap_timeout) == (
        API, 24, "tok", 2.0)
    assert config.messages.help == "Help: example.org"
    [plain] = parse_config(BASE).carriers
    assert (plain.sim_swap_api, plain.sim_swap_max_age, plain.sim_swap_token, plain.sim_swap_timeout) == (
        None, 240, None, 5.0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(apii={}), "unknown key(s) apii"),
        (lambda d: d["api"].update(listen="nowhere"), "api.listen"),
        (lambda d: d["api"].update(tokens=["short"]), "api.tokens"),
        (lambda d: d.update(carrier=[]), "at least one [[carrier]]"),
        (lambda d: d["carrier"][0].pop("gateway"), "carrier[0]: missing required key(s) gateway"),
        (lambda d: d["carrier"][0].update(country="gb"), "carrier[0].country"),
        (lambda d: d["carrier"][0].update(bind="both"), "carrier[0].bind"),
        (lambda d: d["carrier"][0].update(window="10"), "carrier[0].window: expected int"),
        (lambda d: d.update(limits={"reg_per_number": 5}), "limits.reg_per_number"),
        (lambda d: d["carrier"].append(dict(d["carrier"][0])), "used twice"),
        (lambda d: d["carrier"][0].update(sim_swap_api=8443), "carrier[0].sim_swap_api: expected str"),
        (lambda d: d["carrier"][0].update(sim_swap_api="127.0.0.1:8443"), "carrier[0].sim_swap_api: '127.0.0.1:8443'"),
        (lambda d: d["carrier"][0].update(sim_swap_api="ftp://h/"), "carrier[0].sim_swap_api"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_max_age="240"),
         "carrier[0].sim_swap_max_age: expected int"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_max_age=True),
         "carrier[0].sim_swap_max_age: expected int"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_max_age=240.0),
         "carrier[0].sim_swap_max_age: expected int"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_max_age=0), "carrier[0].sim_swap_max_age: whole"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_max_age=2401), "1 to 2400"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_token=5),
         "carrier[0].sim_swap_token: expected str"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_token="two words"), "carrier[0].sim_swap_token"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_token=""), "carrier[0].sim_swap_token"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_timeout="5"),
         "carrier[0].sim_swap_timeout: expected float"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_timeout=0), "carrier[0].sim_swap_timeout"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_timeout=float("nan")),
         "carrier[0].sim_swap_timeout"),
        (lambda d: d["carrier"][0].update(sim_swap_token="t0k3n"), "sim_swap_token given without sim_swap_api"),
        (lambda d: d["carrier"][0].update(sim_swap_api=API, sim_swap_maxage=24), "unknown key(s) sim_swap_maxage"),
        (lambda d: d.update(messages={"help": 5}), "messages.help: expected str"),
        (lambda d: d.update(messages={"help": "x" * 161}), "messages.help: must fit one SMS"),
        (lambda d: d.update(messages={"help": ""}), "messages.help: must not be empty"),
        (lambda d: d.update(messages={"halp": "x"}), "messages: unknown key(s) halp"),
        (lambda d: d.update(messages="help"), "messages: expected a table"),
    ],
)
def test_mistakes_name_the_key(change: object, message: str) -> None:
    import copy

    doc = copy.deepcopy(BASE)
    change(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert message in str(info.value)
