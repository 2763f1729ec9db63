"""identity.toml: the documented example is valid, every mistake names its key."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

from identity_core.certificates import CertificateIssuer, SigningKey
from identity_core.cli import _link, _service
from identity_core.config import CarrierConfig, ConfigError, OverloadConfig, load_config, parse_config
from identity_core.gateway import CarrierLink
from identity_core.memory_store import MemoryStorage
from identity_core.proofs import ProofSigner
from identity_core.service import IdentityService

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
    assert config.overload == OverloadConfig(max_auth_in_flight=2048, auth_first=64, mo_max_wait=4.0)
    assert (carrier.mo_max_wait, carrier.workers, carrier.readers, carrier.queue_size) == (4.0, 256, 256, 10_000)


BASE = {
    "api": {"listen": "127.0.0.1:8080", "tokens": ["long-enough-token"]},
    "store": {"path": "x.db"},
    "carrier": [{"name": "a", "smsc": "127.0.0.1:2775", "system_id": "s", "password": "p", "gateway": "123",
                 "country": "GB"}],
}

API = "http://127.0.0.1:8443"


def test_sim_swap_and_messages_keys() -> None:
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


def test_overload_defaults_are_the_code_defaults() -> None:
    # Without the keys the service must behave exactly as before they existed: same values as the classes'.
    config = parse_config(BASE)
    service_defaults = inspect.signature(IdentityService).parameters
    assert config.overload.max_auth_in_flight == service_defaults["max_auth_in_flight"].default
    assert config.overload.auth_first == service_defaults["auth_first"].default
    link_defaults = {f.name: f.default for f in dataclasses.fields(CarrierLink)}
    assert config.overload.mo_max_wait == link_defaults["mo_max_wait"]
    [carrier] = config.carriers
    for key in ("mo_max_wait", "workers", "readers", "queue_size"):
        assert getattr(carrier, key) == link_defaults[key], key
        assert {f.name: f.default for f in dataclasses.fields(CarrierConfig)}[key] == link_defaults[key], key


def _two_carriers() -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc["carrier"].append(dict(doc["carrier"][0], name="b"))
    return doc


def test_overload_table_and_carrier_overrides() -> None:
    doc = _two_carriers()
    doc["overload"] = {"max_auth_in_flight": 100, "auth_first": 8, "mo_max_wait": 2}
    doc["carrier"][1].update(mo_max_wait=1.5, workers=64, readers=16, queue_size=500)
    config = parse_config(doc)
    assert config.overload == OverloadConfig(max_auth_in_flight=100, auth_first=8, mo_max_wait=2.0)
    inherits, overrides = config.carriers
    # [overload] mo_max_wait is every carrier's unless it sets its own; the others keep the link defaults.
    assert (inherits.mo_max_wait, inherits.workers, inherits.readers, inherits.queue_size) == (2.0, 256, 256, 10_000)
    assert (overrides.mo_max_wait, overrides.workers, overrides.readers, overrides.queue_size) == (1.5, 64, 16, 500)
    assert isinstance(inherits.mo_max_wait, float)


def test_overload_values_reach_the_link_and_the_service(tmp_path: Path) -> None:
    doc = _two_carriers()
    doc["overload"] = {"max_auth_in_flight": 100, "auth_first": 8, "mo_max_wait": 2.5}
    doc["carrier"][1].update(mo_max_wait=1.5, workers=64, readers=16, queue_size=500, window=7)
    config = parse_config(doc, tmp_path)
    inherits, overrides = (_link(carrier) for carrier in config.carriers)
    assert (inherits.mo_max_wait, inherits.workers, inherits.readers, inherits.queue_size) == (2.5, 256, 256, 10_000)
    assert (overrides.mo_max_wait, overrides.workers, overrides.readers, overrides.queue_size, overrides.window) == (
        1.5, 64, 16, 500, 7)
    service = _service(
        config, MemoryStorage(), ProofSigner(b"k" * 32, 600.0), CertificateIssuer([SigningKey.generate()])
    )
    assert (service.max_auth_in_flight, service.auth_first) == (100, 8)
    plain = _service(
        parse_config(BASE), MemoryStorage(), ProofSigner(b"k" * 32, 600.0), CertificateIssuer([SigningKey.generate()])
    )
    assert (plain.max_auth_in_flight, plain.auth_first) == (2048, 64)


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
        (lambda d: d["carrier"][0].update(window=0), "carrier[0].window: a whole number of at least 1, got 0"),
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
        (lambda d: d.update(overload="fast"), "overload: expected a table"),
        (lambda d: d.update(overload={"max_auth": 5}), "overload: unknown key(s) max_auth"),
        (lambda d: d.update(overload={"workers": 5}), "overload: unknown key(s) workers"),
        (lambda d: d.update(overload={"max_auth_in_flight": "2048"}), "overload.max_auth_in_flight: expected int"),
        (lambda d: d.update(overload={"max_auth_in_flight": 2048.0}), "overload.max_auth_in_flight: expected int"),
        (lambda d: d.update(overload={"max_auth_in_flight": True}), "overload.max_auth_in_flight: expected int"),
        (lambda d: d.update(overload={"max_auth_in_flight": 0}), "overload.max_auth_in_flight: a whole number"),
        (lambda d: d.update(overload={"max_auth_in_flight": -1}), "overload.max_auth_in_flight: a whole number"),
        (lambda d: d.update(overload={"auth_first": "64"}), "overload.auth_first: expected int"),
        (lambda d: d.update(overload={"auth_first": 0}), "overload.auth_first: a whole number of at least 1, got 0"),
        (lambda d: d.update(overload={"auth_first": -64}), "overload.auth_first: a whole number"),
        (lambda d: d.update(overload={"mo_max_wait": "4"}), "overload.mo_max_wait: expected float"),
        (lambda d: d.update(overload={"mo_max_wait": 0}), "overload.mo_max_wait: seconds"),
        (lambda d: d.update(overload={"mo_max_wait": -1.0}), "overload.mo_max_wait: seconds"),
        (lambda d: d.update(overload={"mo_max_wait": float("nan")}), "overload.mo_max_wait: seconds"),
        (lambda d: d.update(overload={"mo_max_wait": float("inf")}), "overload.mo_max_wait: seconds"),
        (lambda d: d["carrier"][0].update(mo_max_wait="4"), "carrier[0].mo_max_wait: expected float"),
        (lambda d: d["carrier"][0].update(mo_max_wait=0), "carrier[0].mo_max_wait: seconds"),
        (lambda d: d["carrier"][0].update(mo_max_wait=-0.5), "carrier[0].mo_max_wait: seconds"),
        (lambda d: d["carrier"][0].update(workers="256"), "carrier[0].workers: expected int"),
        (lambda d: d["carrier"][0].update(workers=0), "carrier[0].workers: a whole number"),
        (lambda d: d["carrier"][0].update(workers=-1), "carrier[0].workers: a whole number"),
        (lambda d: d["carrier"][0].update(readers=8.0), "carrier[0].readers: expected int"),
        (lambda d: d["carrier"][0].update(readers=0), "carrier[0].readers: a whole number"),
        (lambda d: d["carrier"][0].update(readers=-8), "carrier[0].readers: a whole number"),
        (lambda d: d["carrier"][0].update(queue_size=False), "carrier[0].queue_size: expected int"),
        (lambda d: d["carrier"][0].update(queue_size=0), "carrier[0].queue_size: a whole number"),
        (lambda d: d["carrier"][0].update(queue_size=-10), "carrier[0].queue_size: a whole number"),
        (lambda d: d["carrier"][0].update(auth_first=8), "carrier[0]: unknown key(s) auth_first"),
        (lambda d: d["carrier"][0].update(worker=8), "carrier[0]: unknown key(s) worker"),
        # A key above every [table] header is top level, where it used to be ignored (tokens: the API answered 401).
        (lambda d: d.update(tokens=["long-enough-token"]), "config: unknown key(s) tokens; did you mean api.tokens?"),
        (lambda d: d.update(listen="127.0.0.1:1"), "did you mean api.listen?"),
        (lambda d: d.update(window=5), "did you mean [[carrier]] window?"),
        (lambda d: d.update(path="x"), "did you mean store.path or keys.path?"),
        (lambda d: d.update(colour="blue"), "unknown key(s) colour; allowed at the top level:"),
        (lambda d: d.update(limits={"prefix_digits": 0}), "limits.prefix_digits: 1 to 15"),
        (lambda d: d.update(limits={"prefix_digits": 16}), "limits.prefix_digits: 1 to 15"),
        (lambda d: d.update(limits={"prefix_digits": 7.0}), "limits.prefix_digits: expected int"),
        (lambda d: d.update(limits={"pump_window": 0}), "limits.pump_window: seconds"),
        (lambda d: d.update(limits={"pump_window": float("inf")}), "limits.pump_window: seconds"),
        (lambda d: d.update(limits={"pump_baseline": 5.0}), "limits.pump_baseline: at least pump_window"),
        (lambda d: d.update(limits={"pump_factor": 0.5}), "limits.pump_factor"),
        (lambda d: d.update(limits={"pump_floor": 0}), "limits.pump_floor"),
        (lambda d: d.update(limits={"pump_floor": float("nan")}), "limits.pump_floor"),
        (lambda d: d.update(limits={"pump_block": -1}), "limits.pump_block"),
        (lambda d: d.update(limits={"pump_floor": 0.05}), "pump_floor x pump_window must be at least 2"),
        (lambda d: d.update(limits={"pump_window": 0.005, "pump_baseline": 60.0}),
         "limits: pump_floor (unset: a fifth of reg_per_prefix) x pump_window must be at least 2"),
        (lambda d: d.update(limits={"pump_threshold": 20000}), "limits: unknown key(s) pump_threshold"),
        (lambda d: d.update(limits={"reg_per_prefix": [500.0, 0.5]}), "limits.reg_per_prefix[1]: burst"),
        (lambda d: d.update(limits={"reg_per_number": [-1, 3]}), "limits.reg_per_number[0]"),
        (lambda d: d.update(limits={"auth_per_carrier": [0, 3]}), "auth_per_carrier[0]: a rate of 0 never refills"),
        (lambda d: d.update(limits={"auth_per_carrier": [float("inf"), 3]}), "limits.auth_per_carrier[0]"),
        (lambda d: d.update(keys={"proof_validity": 0}), "keys.proof_validity: seconds"),
        (lambda d: d.update(keys={"proof_validity": -600}), "keys.proof_validity: seconds"),
        (lambda d: d.update(keys={"certificate_validity": float("nan")}), "keys.certificate_validity: seconds"),
        (lambda d: d.update(keys={"proof_validity": 0.5}), "keys.proof_validity: seconds, from 1 to 86400"),
        (lambda d: d.update(keys={"proof_validity": 1e12}), "keys.proof_validity: seconds, from 1 to 86400"),
        (lambda d: d.update(keys={"certificate_validity": 0.25}), "keys.certificate_validity: seconds, from 1 to"),
        (lambda d: d.update(keys={"certificate_validity": 1e15}), "keys.certificate_validity: seconds, from 1 to"),
        (lambda d: d["carrier"][0].update(country="XX"), "carrier[0].country: an ISO 3166 region code"),
        (lambda d: d["carrier"][0].update(country="gb"), "carrier[0].country: an ISO 3166 region code"),
        (lambda d: d.update(keys={"issuer": ""}), "keys.issuer"),
        (lambda d: d["carrier"][0].update(enquire_link_interval=0), "carrier[0].enquire_link_interval: seconds"),
        (lambda d: d["carrier"][0].update(enquire_link_interval=-30.0), "carrier[0].enquire_link_interval: seconds"),
        (lambda d: d["carrier"][0].update(enquire_link_interval=float("inf")), "carrier[0].enquire_link_interval"),
        (lambda d: d["carrier"][0].update(window=0), "carrier[0].window: a whole number"),
        (lambda d: d["carrier"][0].update(window=10**6), "carrier[0].window: at most 65535"),
        (lambda d: d["carrier"][0].update(system_type="x" * 13), "carrier[0].system_type: at most 12"),
        (lambda d: d["carrier"][0].update(smsc="127.0.0.1:0"), "carrier[0].smsc: port 0"),
    ],
)
def test_mistakes_name_the_key(change: object, message: str) -> None:
    doc = copy.deepcopy(BASE)
    change(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert message in str(info.value)


def test_a_valid_limits_table_reaches_the_limiter() -> None:
    doc = copy.deepcopy(BASE)
    doc["limits"] = {"pump_window": 5, "pump_baseline": 600, "pump_factor": 2, "pump_floor": 40, "pump_block": 0}
    config = parse_config(doc)
    assert (config.limits.pump_window, config.limits.pump_baseline, config.limits.pump_factor,
            config.limits.pump_floor, config.limits.pump_block) == (5.0, 600.0, 2.0, 40.0, 0.0)
    assert parse_config(copy.deepcopy(BASE)).limits.pump_floor is None  # derived from reg_per_prefix
