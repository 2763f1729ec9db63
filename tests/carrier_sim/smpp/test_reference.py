"""docs/smpp-reference.md is the tables' own output, so it cannot drift from the codec."""

from __future__ import annotations

from pathlib import Path

from carrier_sim.smpp.pdu_table import PDU_TABLE
from carrier_sim.smpp.reference import render_reference
from carrier_sim.smpp.tlv import TLV_BY_NAME

DOC = Path(__file__).resolve().parents[3] / "docs" / "smpp-reference.md"


def test_reference_page_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render_reference(), (
        "regenerate: python -m carrier_sim.smpp.reference > docs/smpp-reference.md"
    )


def test_reference_names_every_pdu_and_tlv() -> None:
    text = render_reference()
    for spec in PDU_TABLE.values():
        assert f"### {spec.command_id.name} " in text
    for name in TLV_BY_NAME:
        assert f"| {name} |" in text
