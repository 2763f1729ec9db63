"""CommandId's per-member answers (cached at import) agree with their definitions in SMPP 3.4 5.1.2.1."""

from __future__ import annotations

from carrier_sim.smpp.constants import RESPONSE_BIT, CommandId
from carrier_sim.smpp.pdu import Pdu, default_params
from carrier_sim.smpp.pdu_table import PDU_TABLE


def test_response_and_request_follow_the_response_bit() -> None:
    for command in CommandId:
        assert command.is_response is bool(command.value & RESPONSE_BIT)
        if command.is_response or command in (CommandId.outbind, CommandId.alert_notification):
            assert command.response is None
        else:
            assert command.response is CommandId(command.value | RESPONSE_BIT)
        if not command.is_response or command is CommandId.generic_nack:
            assert command.request is None
        else:
            assert command.request is CommandId(command.value & ~RESPONSE_BIT)


def test_default_params_hands_out_fresh_copies() -> None:
    spec = PDU_TABLE[CommandId.submit_sm]
    first = default_params(spec)
    first["short_message"] = b"changed"
    assert default_params(spec)["short_message"] == b""
    assert Pdu.make(CommandId.submit_sm, 1).params["short_message"] == b""
    assert default_params(spec) is not default_params(spec)
