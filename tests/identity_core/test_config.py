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


BASE = {
    "api": {"listen": "127.0.0.1:8080", "tokens": ["long-enough-token"]},
    "store": {"path": "x.db"},
    "carrier": [{"name": "a", "smsc": "127.0.0.1:2775", "system_id": "s", "password": "p", "gateway": "123",
                 "country": "GB"}],
}


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
    ],
)
def test_mistakes_name_the_key(change: object, message: str) -> None:
    import copy

    doc = copy.deepcopy(BASE)
    change(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        parse_config(doc)
    assert message in str(info.value)
