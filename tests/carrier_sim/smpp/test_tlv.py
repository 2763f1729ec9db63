"""The TLV table's value rules: which broadcast TLV values SMPP 5.0 defines, and the status for one it does not."""

from __future__ import annotations

import pytest

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import InvalidOptionalParameterValue
from carrier_sim.smpp.tlv import (
    TLV_BY_NAME,
    BroadcastAreaIdentifier,
    BroadcastContentType,
    BroadcastFrequencyInterval,
    FrequencyUnit,
    TlvValue,
    check_broadcast_values,
)


def tlvs(**values: TlvValue) -> tuple[tuple[int, TlvValue], ...]:
    return tuple((TLV_BY_NAME[name].tag, value) for name, value in values.items())


@pytest.mark.parametrize(("name", "value", "status"), [
    ("broadcast_area_identifier", BroadcastAreaIdentifier(3, b"x"), CommandStatus.ESME_RINVBCASTAREAFMT),
    ("broadcast_area_identifier", BroadcastAreaIdentifier(0, b""), CommandStatus.ESME_RINVBCASTALIAS_NAME),
    ("broadcast_frequency_interval", BroadcastFrequencyInterval(0x07, 1), CommandStatus.ESME_RINVBCASTFREQINT),
    ("broadcast_frequency_interval", BroadcastFrequencyInterval(0x0F, 1), CommandStatus.ESME_RINVBCASTFREQINT),
    ("broadcast_frequency_interval", BroadcastFrequencyInterval(0x08, 0), CommandStatus.ESME_RINVBCASTFREQINT),
    ("broadcast_content_type", BroadcastContentType(4, 0), CommandStatus.ESME_RINVBCASTCNTTYPE),
    ("broadcast_message_class", 4, CommandStatus.ESME_RINVBCASTMSGCLASS),
    ("broadcast_channel_indicator", 2, CommandStatus.ESME_RINVBCASTCHANIND),
])
def test_an_undefined_broadcast_value_raises_with_its_dedicated_status(name: str, value: TlvValue,
                                                                       status: CommandStatus) -> None:
    with pytest.raises(InvalidOptionalParameterValue) as caught:
        check_broadcast_values(tlvs(message_payload=b"hi", **{name: value}))
    assert caught.value.command_status == status


def test_every_defined_broadcast_value_passes_and_other_tlvs_are_not_looked_at() -> None:
    for unit in FrequencyUnit:
        check_broadcast_values(tlvs(broadcast_frequency_interval=BroadcastFrequencyInterval(unit, 1)))
    check_broadcast_values(tlvs(broadcast_frequency_interval=BroadcastFrequencyInterval(0x00, 0)))
    for fmt in (0, 1, 2):
        check_broadcast_values(tlvs(broadcast_area_identifier=BroadcastAreaIdentifier(fmt, b"area")))
    for n in range(4):
        check_broadcast_values(tlvs(broadcast_content_type=BroadcastContentType(n, 0xFFFF), broadcast_message_class=n))
    for n in (0, 1):
        check_broadcast_values(tlvs(broadcast_channel_indicator=n))
    check_broadcast_values((*tlvs(message_state=99, broadcast_area_success=200), (0x1400, b"vendor")))
