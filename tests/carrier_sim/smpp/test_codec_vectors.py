"""Known wire bytes for PDUs, laid out by hand from SMPP 3.4 sections 3.2, 4 and 5.3 (and 5.0 where said).

The round-trip properties of test_codec.py go through our encoder and decoder, both generated from pdu_table.py,
and so are the strategies that feed them: a wrong field size or order in the table would pass them all. These
vectors are an oracle of their own: each body is written here octet by octet from the specification, with no
help from the table, and must encode to exactly these bytes and decode back to the same PDU.
"""

from __future__ import annotations

import struct

import pytest

from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.pdu import DistributionList, Pdu, SmeAddress, UnsuccessSme
from carrier_sim.smpp.tlv import (
    BroadcastAreaIdentifier,
    BroadcastContentType,
    BroadcastFrequencyInterval,
    NetworkErrorCode,
)


def cstr(text: str) -> bytes:
    """A C-Octet String: the characters, then NUL (3.4 section 3.1)."""
    return text.encode("ascii") + b"\x00"


def tlv(tag: int, value: bytes) -> bytes:
    """Tag, length, value, each length a 2-octet integer (3.4 section 3.3)."""
    return struct.pack(">HH", tag, len(value)) + value


def frame(command_id: int, status: int, sequence: int, body: bytes) -> bytes:
    """The 16-octet header (command_length counts itself, 3.4 section 3.2) and the body."""
    return struct.pack(">IIII", 16 + len(body), command_id, status, sequence) + body


def _deliver_sm_receipt() -> tuple[Pdu, bytes]:
    text = b"id:ab12 sub:001 dlvrd:001 submit date:2611241200 done date:2611241201 stat:DELIVRD err:000 text:Hi"
    pdu = Pdu.make(
        CommandId.deliver_sm, 7,
        source_addr_ton=1, source_addr_npi=1, source_addr="447700900002",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr="447700900001",
        esm_class=0x04, short_message=text,
        tlvs={"receipted_message_id": "ab12", "message_state": 2,
              "network_error_code": NetworkErrorCode(3, 0x0001)},
    )
    body = (
        cstr("")  # service_type
        + b"\x01\x01" + cstr("447700900002")  # source_addr_ton, source_addr_npi, source_addr
        + b"\x01\x01" + cstr("447700900001")  # dest_addr_ton, dest_addr_npi, destination_addr
        + b"\x04\x00\x00"  # esm_class (SMSC delivery receipt, 5.2.12), protocol_id, priority_flag
        + cstr("") + cstr("")  # schedule_delivery_time, validity_period
        + b"\x00\x00\x00\x00"  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
        + bytes([len(text)]) + text  # sm_length, short_message
        + tlv(0x001E, cstr("ab12"))  # receipted_message_id (5.3.2.12): a C-Octet String
        + tlv(0x0427, b"\x02")  # message_state (5.3.2.35): DELIVERED
        + tlv(0x0423, b"\x03\x00\x01")  # network_error_code (5.3.2.31): type GSM, error 1
    )
    return pdu, frame(0x00000005, 0, 7, body)


def _submit_multi() -> tuple[Pdu, bytes]:
    pdu = Pdu.make(
        CommandId.submit_multi, 3,
        source_addr_ton=5, source_addr_npi=0, source_addr="Carrier",
        dest_address=(SmeAddress(1, 1, "447700900001"), DistributionList("friends")),
        registered_delivery=1, data_coding=0x08, short_message="Hé".encode("utf-16-be"),
    )
    body = (
        cstr("")
        + b"\x05\x00" + cstr("Carrier")
        + b"\x02"  # number_of_dests (4.5.1)
        + b"\x01\x01\x01" + cstr("447700900001")  # dest_flag 1: SME address, ton, npi, address
        + b"\x02" + cstr("friends")  # dest_flag 2: distribution list name
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + cstr("") + cstr("")
        + b"\x01\x00\x08\x00"  # registered_delivery, replace_if_present_flag, data_coding (UCS2), sm_default_msg_id
        + b"\x04" + "Hé".encode("utf-16-be")
    )
    return pdu, frame(0x00000021, 0, 3, body)


def _submit_multi_resp() -> tuple[Pdu, bytes]:
    pdu = Pdu.make(CommandId.submit_multi_resp, 3, message_id="9",
                   unsuccess_sme=(UnsuccessSme(1, 1, "447700900009", 0x0000000B),))
    body = (
        cstr("9")
        + b"\x01"  # no_unsuccess (4.5.2)
        + b"\x01\x01" + cstr("447700900009") + struct.pack(">I", 0x0B)  # ton, npi, address, ESME_RINVDSTADR
    )
    return pdu, frame(0x80000021, 0, 3, body)


def _query_sm_resp() -> tuple[Pdu, bytes]:
    pdu = Pdu.make(CommandId.query_sm_resp, 4, message_id="ab12", final_date="261124120100000+",
                   message_state=2, error_code=0)
    body = cstr("ab12") + cstr("261124120100000+") + b"\x02\x00"  # message_state, error_code (4.8.2)
    return pdu, frame(0x80000003, 0, 4, body)


def _data_sm() -> tuple[Pdu, bytes]:
    payload = b"x" * 300  # longer than any short_message: only message_payload carries it
    pdu = Pdu.make(CommandId.data_sm, 9, source_addr="447700900001", destination_addr="447786205094",
                   registered_delivery=1, tlvs={"message_payload": payload})
    body = (
        cstr("")
        + b"\x00\x00" + cstr("447700900001")
        + b"\x00\x00" + cstr("447786205094")
        + b"\x00\x01\x00"  # esm_class, registered_delivery, data_coding (4.7.1: no short_message in data_sm)
        + tlv(0x0424, payload)  # message_payload (5.3.2.32)
    )
    return pdu, frame(0x00000103, 0, 9, body)


def _bind_transceiver() -> tuple[Pdu, bytes]:
    pdu = Pdu.make(CommandId.bind_transceiver, 1, system_id="esme1", password="secret", interface_version=0x34,
                   addr_ton=1, addr_npi=1)
    body = cstr("esme1") + cstr("secret") + cstr("") + b"\x34\x01\x01" + cstr("")  # 4.1.5
    return pdu, frame(0x00000009, 0, 1, body)


def _bind_transceiver_resp() -> tuple[Pdu, bytes]:
    pdu = Pdu.make(CommandId.bind_transceiver_resp, 1, system_id="SMSC", tlvs={"sc_interface_version": 0x50})
    body = cstr("SMSC") + tlv(0x0210, b"\x50")  # sc_interface_version (5.3.2.25)
    return pdu, frame(0x80000009, 0, 1, body)


def _generic_nack() -> tuple[Pdu, bytes]:
    return Pdu.make(CommandId.generic_nack, 12, 0x00000003), frame(0x80000000, 3, 12, b"")  # header only (4.3)


def _broadcast_sm() -> tuple[Pdu, bytes]:
    # SMPP 5.0 4.6.1: broadcast_area_identifier is (format, area), broadcast_rep_num 2 octets, broadcast_frequency
    # _interval (unit, value) 3 octets; the message in message_payload.
    pdu = Pdu.make(
        CommandId.broadcast_sm, 5, source_addr="Alerts", message_id="",
        tlvs={"broadcast_area_identifier": BroadcastAreaIdentifier(0x00, b"\x00\x01"),
              "broadcast_content_type": BroadcastContentType(0x00, 0x0001), "broadcast_rep_num": 3,
              "broadcast_frequency_interval": BroadcastFrequencyInterval(0x08, 30), "message_payload": b"Flood"},
    )
    body = (
        cstr("")
        + b"\x00\x00" + cstr("Alerts")
        + cstr("")  # message_id
        + b"\x00"  # priority_flag
        + cstr("") + cstr("")  # schedule_delivery_time, validity_period
        + b"\x00\x00\x00"  # replace_if_present_flag, data_coding, sm_default_msg_id
        + tlv(0x0606, b"\x00\x00\x01")  # broadcast_area_identifier
        + tlv(0x0601, b"\x00\x00\x01")  # broadcast_content_type: network type, content type
        + tlv(0x0604, b"\x00\x03")  # broadcast_rep_num
        + tlv(0x0605, b"\x08\x00\x1e")  # broadcast_frequency_interval: unit 0x08 (seconds), 30
        + tlv(0x0424, b"Flood")
    )
    return pdu, frame(0x00000111, 0, 5, body)


VECTORS = {
    "deliver_sm receipt": _deliver_sm_receipt,
    "submit_multi": _submit_multi,
    "submit_multi_resp": _submit_multi_resp,
    "query_sm_resp": _query_sm_resp,
    "data_sm": _data_sm,
    "bind_transceiver": _bind_transceiver,
    "bind_transceiver_resp": _bind_transceiver_resp,
    "generic_nack": _generic_nack,
    "broadcast_sm": _broadcast_sm,
}


@pytest.mark.parametrize("name", list(VECTORS))
def test_the_bytes_the_specification_lays_out(name: str) -> None:
    pdu, wire = VECTORS[name]()
    assert encode(pdu).hex() == wire.hex()
    assert decode(wire) == pdu
