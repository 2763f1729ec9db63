"""The published JSON Schema: current, valid draft 2020-12, closed everywhere, and in step with the code and the
documentation it is derived from."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from ruamel.yaml import YAML

from carrier_sim.scenario.model import METRICS
from carrier_sim.scenario.schema import DIALECTS, FAULTS, LIMITS, SCHEMA, schema_json
from carrier_sim.smpp.receipt import PRESETS
from carrier_sim.smsc.faults import FaultPlan
from identity_core.config import LimitsConfig

ROOT = Path(__file__).resolve().parents[3]
PUBLISHED = ROOT / "docs" / "scenario.schema.json"
REFERENCE = ROOT / "docs" / "scenarios.md"


def test_published_schema_is_current() -> None:
    assert PUBLISHED.read_text(encoding="utf-8") == schema_json(), (
        "regenerate: python -m carrier_sim.scenario.schema > docs/scenario.schema.json"
    )


def test_module_prints_the_schema() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "carrier_sim.scenario.schema"], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert result.stdout == schema_json()


def test_schema_is_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def _objects(node: Any, path: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(node, dict):
        if node.get("type") == "object":
            yield path, node
        for key, child in node.items():
            yield from _objects(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _objects(child, f"{path}/{i}")


def test_every_object_is_closed() -> None:
    objects = list(_objects(SCHEMA))
    assert len(objects) > 15
    for path, node in objects:
        if path.endswith("/mix"):
            # Its keys are carrier names: closed by propertyNames, each value a share.
            assert node["propertyNames"] == {"$ref": "#/$defs/name"}
            assert node["additionalProperties"]["maximum"] == 1
        else:
            assert node.get("additionalProperties") is False, path


def test_derived_vocabularies_match_the_code() -> None:
    defs = SCHEMA["$defs"]
    assert defs["check"]["properties"]["metric"]["enum"] == list(METRICS)
    assert defs["smsc"]["properties"]["dialect"]["enum"] == [d.name for d in PRESETS] == list(DIALECTS)
    assert set(defs["smsc"]["properties"]["faults"]["properties"]) == {f.name for f in dataclasses.fields(FaultPlan)}
    assert FAULTS["split_max"] is int
    assert defs["smsc"]["properties"]["faults"]["properties"]["split_max"]["type"] == "integer"


def test_limits_match_identity_core() -> None:
    # The scenario format does not import identity_core at run time; this test is what keeps the two in step.
    defaults = LimitsConfig()
    assert set(LIMITS) == {f.name for f in dataclasses.fields(LimitsConfig)}
    for name, kind in LIMITS.items():
        default = getattr(defaults, name)
        expected = "pair" if isinstance(default, tuple) else ("integer" if isinstance(default, int) else "number")
        assert kind == expected, name


def _documented_example() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", REFERENCE.read_text(encoding="utf-8"), re.S)
    document: dict[str, Any] = YAML(typ="safe", pure=True).load(blocks[0])
    included: dict[str, Any] = YAML(typ="safe", pure=True).load(blocks[1])
    document.pop("include")
    document["carriers"] += included["carriers"]
    return document


def test_documented_example_satisfies_the_schema() -> None:
    assert list(Draft202012Validator(SCHEMA).iter_errors(_documented_example())) == []


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("load", "phasse"), []),
        (("carriers", 0, "smsc", "faults", "tcp_rest"), 0.1),
        (("checks", 0, "metric"), "activation.sucess_ratio"),
        (("events", 0, "type"), "sim_swop"),
        (("flows", 0, "think_time"), {"distribution": "uniform", "low": 1}),
        (("carriers", 0, "mcc"), 234),
        (("load", "phases", 0, "duration"), 0),
        (("system_under_test", "kind"), "external"),
    ],
)
def test_schema_rejects(path: tuple[Any, ...], value: Any) -> None:
    document = _documented_example()
    node = document
    for segment in path[:-1]:
        node = node[segment]
    node[path[-1]] = value
    assert list(Draft202012Validator(SCHEMA).iter_errors(document)) != []


def test_reference_lists_every_metric_exactly() -> None:
    table = re.findall(r"^\| `([a-z0-9_.]+)` \| (count|ratio|s) \|$", REFERENCE.read_text(encoding="utf-8"), re.M)
    assert dict(table) == METRICS


def test_reference_names_every_key_of_the_schema() -> None:
    text = REFERENCE.read_text(encoding="utf-8")
    keys: set[str] = set()
    for _, node in _objects(SCHEMA):
        keys |= set(node.get("properties", {}))
    # A key counts as documented when it appears as a word inside some `code span` (`receipts.delay`,
    # `{distribution: uniform, low: 0.1, high: 0.3}`).
    words: set[str] = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        words |= set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", span))
    assert sorted(keys - words) == []
