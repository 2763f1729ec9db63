"""The table-driven codec: round trips for every PDU, exact bytes for known vectors, typed errors for garbage."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import HEADER, decode, encode, encode_into
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import InvalidParameterLength, LocalProtocolError, SmppError
from carrier_sim.smpp.pdu import DistributionList, Pdu, SmeAddress, UnsuccessSme
from carrier_sim.smpp.pdu_table import PDU_TABLE
from carrier_sim.smpp.tlv import TLV_BY_NAME, NetworkErrorCode, decode_tlv_value, encode_tlv_value
from carrier_sim.testing.smpp_strategies import pdus, tlv_values


@pytest.mark.parametrize("command_id", list(CommandId), ids=lambda c: c.name)
@settings(max_examples=60)
@given(data=st.data())
def test_every_pdu_type_round_trips(command_id: CommandId, data: st.DataObject) -> None:
    pdu = data.draw(pdus(command_id))
    wire = encode(pdu)
    assert decode(wire) == pdu
    assert HEADER.unpack_from(wire)[0] == len(wire)


@settings(max_examples=500)
@given(pdus())
def test_reencoding_decoded_bytes_is_byte_exact(pdu: Pdu) -> None:
    wire = encode(pdu)
    assert encode(decode(wire)) == wire


@settings(max_examples=2000)
@given(st.binary(min_size=0, max_size=300))
def test_arbitrary_bytes_raise_only_typed_errors(data: bytes) -> None:
    try:
        decode(data)
    except SmppError as err:
        assert isinstance(err.command_status, CommandStatus)


@settings(max_examples=2000)
@given(pdus(), st.data())
def test_corrupted_pdus_raise_only_typed_errors_with_sequence(pdu: Pdu, data: st.DataObject) -> None:
    wire = bytearray(encode(pdu))
    # Corrupt the body only, keep command_length honest: the decoder must name the sequence number.
    if len(wire) > 16:
        index = data.draw(st.integers(16, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
        cut = data.draw(st.integers(16, len(wire)))
        wire = wire[:cut]
        HEADER.pack_into(wire, 0, len(wire), pdu.command_id, pdu.command_status, pdu.sequence_number)
    try:
        decode(bytes(wire))
    except SmppError as err:
        assert err.sequence_number == pdu.sequence_number
        assert err.command_id == pdu.command_id


def test_submit_sm_known_bytes() -> None:
    pdu = Pdu.make(
        CommandId.submit_sm,
        2,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="447700900001",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="447700900002",
        registered_delivery=1,
        short_message=b"Hi",
        tlvs={"user_message_reference": 0x0102},
    )
    body = (
        b"\x00"  # service_type NULL
        + b"\x01\x01447700900001\x00"
        + b"\x01\x01447700900002\x00"
        + b"\x00\x00\x00"  # esm_class, protocol_id, priority_flag
        + b"\x00\x00"  # schedule_delivery_time, validity_period NULL
        + b"\x01\x00\x00\x00"  # registered_delivery, replace_if_present_flag, data_coding, sm_default_msg_id
        + b"\x02Hi"
        + b"\x02\x04\x00\x02\x01\x02"
    )
    assert encode(pdu) == HEADER.pack(16 + len(body), 4, 0, 2) + body


def test_enquire_link_is_header_only() -> None:
    assert encode(Pdu.make(CommandId.enquire_link, 0x7FFFFFFF)).hex() == "0000001000000015000000007fffffff"


def test_error_response_without_body_decodes_with_null_fields() -> None:
    wire = HEADER.pack(16, CommandId.submit_sm_resp, CommandStatus.ESME_RTHROTTLED, 9)
    pdu = decode(wire)
    assert pdu.command_status == CommandStatus.ESME_RTHROTTLED
    assert pdu["message_id"] == ""
    assert encode(pdu) == wire  # and SMPP 3.4 4.4.2: the body is not returned with an error


def test_submit_multi_lists() -> None:
    pdu = Pdu.make(
        CommandId.submit_multi,
        5,
        dest_address=(SmeAddress(1, 1, "447700900003"), DistributionList("friends")),
        short_message=b"x",
    )
    assert decode(encode(pdu))["dest_address"] == pdu["dest_address"]
    resp = Pdu.make(
        CommandId.submit_multi_resp,
        5,
        message_id="abc",
        unsuccess_sme=(UnsuccessSme(1, 1, "447700900003", CommandStatus.ESME_RINVDSTADR),),
    )
    assert decode(encode(resp)) == resp


def test_unknown_and_vendor_tlvs_kept_byte_exact_in_order() -> None:
    pdu = Pdu.make(
        CommandId.deliver_sm,
        1,
        tlvs=((0x1402, b"\x00\xff"), (0x0427, 2), (0x7777, b""), (0x0423, NetworkErrorCode(3, 0x0001))),
    )
    back = decode(encode(pdu))
    assert back.tlvs == pdu.tlvs
    assert back.tlv("message_state") == 2
    assert back.tlv_names() == ["0x1402", "message_state", "0x7777", "network_error_code"]


def _raw(command_id: int, body: bytes, seq: int = 42, status: int = 0) -> bytes:
    return HEADER.pack(16 + len(body), command_id, status, seq) + body


@pytest.mark.parametrize(
    ("wire", "status"),
    [
        pytest.param(_raw(0x00000999, b""), CommandStatus.ESME_RINVCMDID, id="unknown-command-id"),
        pytest.param(HEADER.pack(20, 0x15, 0, 42), CommandStatus.ESME_RINVCMDLEN, id="length-disagrees"),
        pytest.param(_raw(0x15, b"\x00"), CommandStatus.ESME_RINVCMDLEN, id="body-on-enquire-link"),
        pytest.param(_raw(0x09, b"a" * 20), CommandStatus.ESME_RINVSYSID, id="system-id-no-nul"),
        pytest.param(_raw(0x09, b"sys\x00" + b"p" * 12), CommandStatus.ESME_RINVPASWD, id="password-too-long"),
        pytest.param(_raw(0x04, b"\x00\x01\x014477"), CommandStatus.ESME_RINVSRCADR, id="truncated-source-addr"),
        pytest.param(
            _raw(0x04, b"\x00\x01\x01a\x00\x01\x01b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05hi"),
            CommandStatus.ESME_RINVMSGLEN,
            id="sm-length-past-end",
        ),
        pytest.param(
            _raw(0x04, b"\x00\x01\x01a\x00\x01\x01b\x00\x00\x00\x00" + b"12\x00" + b"\x00\x00\x00\x00\x00\x00"),
            CommandStatus.ESME_RINVSCHED,
            id="schedule-not-16-chars",
        ),
        pytest.param(
            _raw(0x04, b"\x00\x01\x01a\x00\x01\x01b\x00" + b"\x00" * 9 + b"\x00" + b"\x04\x24\x00"),
            CommandStatus.ESME_RINVOPTPARSTREAM,
            id="tlv-header-truncated",
        ),
        pytest.param(
            _raw(0x04, b"\x00\x01\x01a\x00\x01\x01b\x00" + b"\x00" * 9 + b"\x00" + b"\x02\x0c\x00\x05\x00\x01"),
            CommandStatus.ESME_RINVOPTPARSTREAM,
            id="tlv-value-truncated",
        ),
        pytest.param(
            _raw(0x04, b"\x00\x01\x01a\x00\x01\x01b\x00" + b"\x00" * 9 + b"\x00" + b"\x02\x0c\x00\x01\x00"),
            CommandStatus.ESME_RINVPARLEN,
            id="tlv-wrong-length",
        ),
        pytest.param(
            _raw(0x04, b"\x00\x01\x01a\x00\x01\x01b\x00" + b"\x00" * 9 + b"\x00" + b"\x00\x1e\x00\x02ab"),
            CommandStatus.ESME_RINVOPTPARAMVAL,
            id="tlv-cstring-without-nul",
        ),
        pytest.param(
            _raw(0x111, b"\x00\x00\x00\x00id\x00" + b"\x00" * 6),
            CommandStatus.ESME_RMISSINGOPTPARAM,
            id="broadcast-without-area",
        ),
        pytest.param(
            _raw(0x21, b"\x00\x01\x01a\x00\x01\x07"), CommandStatus.ESME_RINVDESTFLAG, id="bad-dest-flag"
        ),
    ],
)
def test_malformed_pdus_get_their_status_and_sequence(wire: bytes, status: CommandStatus) -> None:
    with pytest.raises(SmppError) as info:
        decode(wire)
    assert info.value.command_status == status
    if len(wire) >= 16:
        assert info.value.sequence_number == 42


def test_encoder_refuses_illegal_pdus() -> None:
    with pytest.raises(LocalProtocolError):
        encode(Pdu.make(CommandId.submit_sm, 1, source_addr="x" * 21))
    with pytest.raises(LocalProtocolError):
        encode(Pdu.make(CommandId.submit_sm, 1, short_message=b"x" * 255))
    with pytest.raises(LocalProtocolError):
        encode(Pdu.make(CommandId.enquire_link, 1, tlvs={"sar_msg_ref_num": 1}))
    with pytest.raises(LocalProtocolError):
        encode(Pdu.make(CommandId.submit_sm, 1, tlvs={"sar_msg_ref_num": 70000}))
    with pytest.raises(LocalProtocolError):
        Pdu.make(CommandId.submit_sm, 1, no_such_field=1)
    with pytest.raises(LocalProtocolError):
        encode(Pdu.make(CommandId.submit_sm, 1, short_message=b"x", tlvs={"message_payload": b"y"}))
    with pytest.raises(LocalProtocolError):
        encode(Pdu.make(CommandId.deliver_sm, 1, tlvs={"ms_validity": b"\x00\x01"}))
    # data_sm has no short_message: message_payload is its only place for text.
    assert decode(encode(Pdu.make(CommandId.data_sm, 1, tlvs={"message_payload": b"y"}))).tlv("message_payload") == b"y"


# ms_validity (0x1204): SMPP 3.4 5.3.2.27 defines 1 octet (validity behaviour); SMPP 5.0 4.8.4.40 adds validity
# information, units of time (1 octet) and number of time units (2 octets): 1 or 4 octets, nothing between.
_MS_VALIDITY = TLV_BY_NAME["ms_validity"]


@given(tlv_values(_MS_VALIDITY))
def test_ms_validity_strategy_draws_only_1_or_4_octets(value: object) -> None:
    assert isinstance(value, bytes)
    assert len(value) in (1, 4)


@given(st.integers(0, 8).flatmap(lambda n: st.binary(min_size=n, max_size=n)), st.integers(0, 0x7FFFFFFF))
@example(b"\x02\x00", 42)
@example(b"\x02\x08\x00", 42)
@example(b"\x02\x08\x00\x05", 42)  # behaviour 2, units 0x08 (seconds), 5 of them: SMPP 5.0's 4-octet form
@example(b"\x00", 42)
def test_ms_validity_lengths_on_the_wire(raw: bytes, seq: int) -> None:
    """1 and 4 octets round-trip; any other length is refused both ways, 2 and 3 included."""
    legal = len(raw) in (1, 4)
    pdu = Pdu.make(CommandId.submit_sm, seq, tlvs={"ms_validity": raw})
    wire = _raw(CommandId.submit_sm, encode(Pdu.make(CommandId.submit_sm, seq))[16:]
                + b"\x12\x04" + len(raw).to_bytes(2, "big") + raw, seq=seq)
    if legal:
        assert encode(pdu) == wire
        assert decode(wire).tlv("ms_validity") == raw
        assert decode_tlv_value(_MS_VALIDITY.tag, raw) == raw
        return
    with pytest.raises(LocalProtocolError):
        encode(pdu)
    with pytest.raises(LocalProtocolError):
        encode_tlv_value(_MS_VALIDITY.tag, raw)
    out = bytearray(b"kept")
    with pytest.raises(LocalProtocolError):
        encode_into(pdu, out)
    assert out == b"kept"
    with pytest.raises(InvalidParameterLength) as info:
        decode(wire)
    assert info.value.command_status == CommandStatus.ESME_RINVPARLEN
    assert (info.value.sequence_number, info.value.command_id) == (seq, CommandId.submit_sm)


# short_message and message_payload: SMPP 3.4 4.4.1 (and 5.3.2.32) "Both fields should not be used simultaneously";
# with message_payload "the sm_length field should be set to zero".
_MESSAGE_PAYLOAD = TLV_BY_NAME["message_payload"].tag
_EXCLUSIVE = [spec.command_id for spec in PDU_TABLE.values() if spec.payload_excludes_short_message]


def test_exclusive_rows_are_the_four_message_pdus() -> None:
    assert set(_EXCLUSIVE) == {CommandId.submit_sm, CommandId.submit_multi, CommandId.deliver_sm, CommandId.replace_sm}


def _with_payload_appended(wire: bytes, payload: bytes) -> bytes:
    """What a peer that breaks the rule sends: our legal bytes with a message_payload TLV appended by hand and
    command_length fixed, since our encoder refuses to write such a PDU."""
    tlv = _MESSAGE_PAYLOAD.to_bytes(2, "big") + len(payload).to_bytes(2, "big") + payload
    out = bytearray(wire + tlv)
    out[0:4] = len(out).to_bytes(4, "big")
    return bytes(out)


@settings(max_examples=300)
@given(st.sampled_from(_EXCLUSIVE).flatmap(pdus), st.binary(min_size=1, max_size=254), st.binary(max_size=300),
       st.data())
def test_encoder_refuses_short_message_with_message_payload(pdu: Pdu, short: bytes, payload: bytes,
                                                           data: st.DataObject) -> None:
    tlvs = [t for t in pdu.tlvs if t[0] != _MESSAGE_PAYLOAD]  # exactly one message_payload: the drawn one
    tlvs.insert(data.draw(st.integers(0, len(tlvs))), (_MESSAGE_PAYLOAD, payload))
    both = Pdu(pdu.command_id, pdu.sequence_number, pdu.command_status, {**pdu.params, "short_message": short},
               tuple(tlvs))
    with pytest.raises(LocalProtocolError, match="message_payload"):
        encode(both)
    out = bytearray(b"kept")
    with pytest.raises(LocalProtocolError):
        encode_into(both, out)
    assert out == b"kept"
    # Either one alone is legal.
    assert decode(encode(Pdu(both.command_id, both.sequence_number, both.command_status,
                             {**both.params, "short_message": b""}, both.tlvs))).tlv(_MESSAGE_PAYLOAD) == payload
    alone = Pdu(both.command_id, both.sequence_number, both.command_status, both.params,
                tuple(t for t in both.tlvs if t[0] != _MESSAGE_PAYLOAD))
    assert decode(encode(alone)) == alone


@settings(max_examples=300)
@given(st.sampled_from(_EXCLUSIVE).flatmap(pdus), st.binary(min_size=1, max_size=254), st.binary(max_size=300))
def test_decoder_keeps_short_message_with_message_payload(pdu: Pdu, short: bytes, payload: bytes) -> None:
    """The decoder reads such a PDU as sent, so that the SMSC can judge the peer (oracle: payload_exclusive) and
    answer the request instead of nacking a PDU whose octets are well-formed."""
    legal = Pdu(pdu.command_id, pdu.sequence_number, pdu.command_status, {**pdu.params, "short_message": short},
                tuple(t for t in pdu.tlvs if t[0] != _MESSAGE_PAYLOAD))
    back = decode(_with_payload_appended(encode(legal), payload))
    assert back.params == legal.params
    assert back.tlvs == (*legal.tlvs, (_MESSAGE_PAYLOAD, payload))


def test_table_covers_every_command() -> None:
    assert {spec.command_id for spec in PDU_TABLE.values()} == set(CommandId)
