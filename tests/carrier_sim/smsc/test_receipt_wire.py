"""receipt_body against the codec: the same octets, or None -- never other octets, whatever the fields."""

from __future__ import annotations

from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import HEADER_SIZE, encode
from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smpp.pdu import Pdu, default_params
from carrier_sim.smpp.pdu_table import PDU_TABLE
from carrier_sim.smpp.tlv import TLV_BY_NAME, NetworkErrorCode, TlvValue
from carrier_sim.smsc.receipt_wire import receipt_body

_ID = TLV_BY_NAME["receipted_message_id"].tag
_STATE = TLV_BY_NAME["message_state"].tag
_ERROR = TLV_BY_NAME["network_error_code"].tag

#: Mostly what receipts carry, and the edges: empty, the longest that fits, one too long, non-ASCII, a NUL.
addresses = st.one_of(
    st.sampled_from(["447700900123", "VerifySvc", "", "1" * 20, "1" * 21, "caf\u00e9", "a\0b", "\u20ac1"]),
    st.text(max_size=24),
)
octet_ints = st.one_of(st.integers(min_value=0, max_value=255), st.sampled_from([-1, 256, True, False]))
ids = st.one_of(st.sampled_from(["1", "ff", "9" * 64, "9" * 65, "", "\u00e9", "x\0"]), st.text(max_size=70))
tlv_items = st.one_of(
    st.tuples(st.just(_ID), ids),
    st.tuples(st.just(_STATE), octet_ints),
    st.tuples(st.just(_ERROR), st.builds(NetworkErrorCode, st.integers(0, 255), st.integers(0, 0xFFFF))),
    st.tuples(st.just(_STATE), st.just("2")),  # a value of the wrong type
    st.tuples(st.just(0x1403), st.binary(max_size=4)),  # a vendor tag the writer does not know
)


def _codec_body(fields: dict[str, Any], tlvs: tuple[tuple[int, TlvValue], ...]) -> bytes | None:
    values = default_params(PDU_TABLE[CommandId.deliver_sm])
    values.update(fields)
    try:
        return encode(Pdu(CommandId.deliver_sm, 1, 0, values, tlvs))[HEADER_SIZE:]
    except SmppError:
        return None


@settings(max_examples=1500)
@given(octet_ints, octet_ints, addresses, octet_ints, octet_ints, addresses, octet_ints,
       st.binary(max_size=256), st.lists(tlv_items, max_size=4).map(tuple))
@example(1, 1, "447700900123", 5, 0, "VerifySvc", 4, b"id:1 sub:001", ((_ID, "1"), (_STATE, 2)))
@example(1, 1, "447700900123", 5, 0, "VerifySvc", 4, b"", ((_ID, "1"), (_STATE, 5), (_ERROR, NetworkErrorCode(3, 1))))
def test_the_body_is_the_codecs_or_none(source_ton: Any, source_npi: Any, source_addr: str, dest_ton: Any,
                                        dest_npi: Any, destination_addr: str, esm_class: Any, short_message: bytes,
                                        tlvs: tuple[tuple[int, TlvValue], ...]) -> None:
    fields = {"source_addr_ton": source_ton, "source_addr_npi": source_npi, "source_addr": source_addr,
              "dest_addr_ton": dest_ton, "dest_addr_npi": dest_npi, "destination_addr": destination_addr,
              "esm_class": esm_class, "short_message": short_message}
    body = receipt_body(source_ton, source_npi, source_addr, dest_ton, dest_npi, destination_addr, esm_class,
                        short_message, tlvs)
    if body is not None:
        assert body == _codec_body(fields, tlvs)


def test_an_ordinary_receipt_is_written_not_left_to_the_codec() -> None:
    # Without this the property above holds for a writer that always says None: the SMSC's receipts must take it.
    tlvs: tuple[tuple[int, TlvValue], ...] = ((_ID, "12345"), (_STATE, 2))
    body = receipt_body(1, 1, "447700900123", 5, 0, "VerifySvc", 4, b"id:12345 sub:001 dlvrd:001", tlvs)
    assert body is not None
    assert body == _codec_body({"source_addr_ton": 1, "source_addr_npi": 1, "source_addr": "447700900123",
                                "dest_addr_ton": 5, "dest_addr_npi": 0, "destination_addr": "VerifySvc",
                                "esm_class": 4, "short_message": b"id:12345 sub:001 dlvrd:001"}, tlvs)
    failed = (*tlvs, (_ERROR, NetworkErrorCode(3, 0x0102)))
    assert receipt_body(1, 1, "447700900123", 5, 0, "VerifySvc", 4, b"x", failed) is not None


def test_what_the_codec_must_judge_is_left_to_it() -> None:
    ok: tuple[tuple[int, TlvValue], ...] = ((_ID, "1"),)
    assert receipt_body(1, 1, "1" * 21, 5, 0, "VerifySvc", 4, b"", ok) is None  # too long for deliver_sm
    assert receipt_body(1, 1, "caf\u00e9", 5, 0, "VerifySvc", 4, b"", ok) is None  # not ASCII
    assert receipt_body(256, 1, "1", 5, 0, "VerifySvc", 4, b"", ok) is None  # not one octet
    assert receipt_body(1, 1, "1", 5, 0, "VerifySvc", 4, bytes(255), ok) is None  # sm_length is one octet
    assert receipt_body(1, 1, "1", 5, 0, "VerifySvc", 4, b"", ((_ID, "9" * 65),)) is None
    assert receipt_body(1, 1, "1", 5, 0, "VerifySvc", 4, b"", ((0x1403, b"\x01"),)) is None
