"""The scapy SMPP layers dissect what the codec encodes, split segments into PDUs, and build what it decodes."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import NoPayload, Packet, Padding, Raw
from scapy.sendrecv import sniff
from scapy.sessions import TCPSession
from scapy.utils import rdpcap

from carrier_sim.capture.layers import (
    BODY_LAYERS,
    SMPP,
    SMPP_PORT,
    SMPPTLV,
    SMPPBody,
    SMPPDestAddress,
    SMPPUnsuccessSme,
    pdu_layers,
)
from carrier_sim.capture.pcap import PcapFile
from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.pdu import DistributionList, Pdu, SmeAddress, UnsuccessSme
from carrier_sim.smpp.pdu_table import PDU_TABLE, FieldKind
from carrier_sim.smpp.tlv import TLV_BY_NAME
from carrier_sim.testing.smpp_strategies import pdus

C = CommandId


def _segment(payload: bytes, *, sport: int = 40000, dport: int = SMPP_PORT) -> Packet:
    """A TCP segment carrying ``payload``, dissected from its octets as a capture would be."""
    # Explicit MACs: left out, scapy would consult the host's routes and ARP for them.
    ether = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    built = ether / IP(src="192.0.2.1", dst="192.0.2.2") / TCP(sport=sport, dport=dport, flags="PA") / payload
    return Ether(bytes(built))


def _expected_scalar(pdu: Pdu, name: str) -> object:
    value = pdu.params[name]
    return value.encode("latin-1") if isinstance(value, str) else value


@settings(max_examples=300)
@given(pdus())
def test_every_pdu_dissects_to_its_header_and_table_fields(pdu: Pdu) -> None:
    raw = encode(pdu)
    layer = SMPP(raw)
    assert layer.command_length == len(raw)
    assert layer.command_id == pdu.command_id.value
    assert layer.command_status == pdu.command_status
    assert layer.sequence_number == pdu.sequence_number
    assert bytes(layer) == raw  # the dissected stack rebuilds byte-exact
    assert layer.to_pdu() == decode(raw)
    if len(raw) == 16:
        # An error response without body (SMPP 3.4 4.4.2) or a header-only command: no body layer.
        assert isinstance(layer.payload, NoPayload)
        return
    body = layer.payload
    assert type(body) is BODY_LAYERS[pdu.command_id]
    for field in PDU_TABLE[pdu.command_id].fields:
        if field.kind in (FieldKind.INT1, FieldKind.COCTET, FieldKind.TIME, FieldKind.OCTETS):
            assert getattr(body, field.name) == _expected_scalar(pdu, field.name), field.name
        else:
            entries = pdu.params[field.name]
            assert isinstance(entries, tuple)
            assert len(getattr(body, field.name)) == len(entries)
    if PDU_TABLE[pdu.command_id].tlvs_allowed:
        assert [t.tag for t in body.tlvs] == [tag for tag, _ in pdu.tlvs]
    assert Raw not in layer  # nothing left undissected


def test_tlv_layer_names_standard_tags_and_keeps_vendor_octets() -> None:
    pdu = Pdu.make(C.submit_sm, 7, tlvs=((TLV_BY_NAME["sar_msg_ref_num"].tag, 5), (0x1400, b"\x01\x02")))
    tlvs = SMPP(encode(pdu))[BODY_LAYERS[C.submit_sm]].tlvs
    assert [(t.tag, t.length, t.value) for t in tlvs] == [(0x020C, 2, b"\x00\x05"), (0x1400, 2, b"\x01\x02")]
    assert isinstance(tlvs[0], SMPPTLV)
    assert "sar_msg_ref_num" in tlvs[0].sprintf("%tag%")


def test_submit_multi_lists_dissect_entry_by_entry() -> None:
    multi = Pdu.make(C.submit_multi, 8, dest_address=(SmeAddress(1, 1, "447700900123"), DistributionList("ops")))
    body = SMPP(encode(multi)).payload
    assert body.number_of_dests == 2
    sme, dl = body.dest_address
    assert isinstance(sme, SMPPDestAddress)
    assert (sme.dest_flag, sme.dest_addr_ton, sme.destination_addr) == (1, 1, b"447700900123")
    assert (dl.dest_flag, dl.dl_name) == (2, b"ops")
    assert dl.destination_addr is None  # the SME fields are absent from a distribution-list entry

    resp = Pdu.make(C.submit_multi_resp, 8, message_id="m1",
                    unsuccess_sme=(UnsuccessSme(1, 1, "447700900124", CommandStatus.ESME_RINVDSTADR),))
    (entry,) = SMPP(encode(resp)).payload.unsuccess_sme
    assert isinstance(entry, SMPPUnsuccessSme)
    assert (entry.destination_addr, entry.error_status_code) == (b"447700900124", CommandStatus.ESME_RINVDSTADR)


def test_header_shows_spec_names() -> None:
    layer = SMPP(encode(Pdu.make(C.submit_sm_resp, 3, CommandStatus.ESME_RTHROTTLED)))
    assert layer.sprintf("%command_id% %command_status%") == "submit_sm_resp ESME_RTHROTTLED"


@given(st.lists(pdus(), min_size=1, max_size=8), st.booleans())
def test_several_pdus_in_one_segment_split_by_command_length(sent: list[Pdu], to_server: bool) -> None:
    ports = {"dport": SMPP_PORT, "sport": 40000} if to_server else {"dport": 40000, "sport": SMPP_PORT}
    segment = _segment(b"".join(encode(p) for p in sent), **ports)
    layers = list(pdu_layers(segment))
    assert [(x.command_id, x.sequence_number) for x in layers] == [(p.command_id, p.sequence_number) for p in sent]
    assert [x.to_pdu() for x in layers] == [decode(encode(p)) for p in sent]
    assert Padding not in segment


def test_an_incomplete_trailing_pdu_stays_padding() -> None:
    first = encode(Pdu.make(C.enquire_link, 1))
    second = encode(Pdu.make(C.submit_sm, 2, short_message=b"cut in half"))
    segment = _segment(first + second[:20])
    assert [x.sequence_number for x in pdu_layers(segment)] == [1]
    assert segment[Padding].load == second[:20]


def test_other_ports_are_not_smpp() -> None:
    segment = _segment(encode(Pdu.make(C.enquire_link, 1)), sport=40000, dport=8080)
    assert SMPP not in segment


def test_building_sets_command_id_and_length_per_pdu() -> None:
    submit = BODY_LAYERS[C.submit_sm](source_addr=b"IDCORE", destination_addr=b"447700900123", short_message=b"hi")
    stack = SMPP(sequence_number=3) / submit / SMPP(sequence_number=4) / BODY_LAYERS[C.enquire_link]()
    raw = bytes(stack)
    first_length = int.from_bytes(raw[:4], "big")
    assert decode(raw[:first_length]) == Pdu.make(
        C.submit_sm, 3, source_addr="IDCORE", destination_addr="447700900123", short_message=b"hi"
    )
    assert decode(raw[first_length:]) == Pdu.make(C.enquire_link, 4)
    assert [x.pdu_bytes() for x in pdu_layers(SMPP(raw))] == [raw[:first_length], raw[first_length:]]


def test_from_pdu_round_trips() -> None:
    pdu = Pdu.make(C.data_sm, 9, source_addr="1", destination_addr="2", tlvs={"message_payload": b"x" * 300})
    assert SMPP.from_pdu(pdu).to_pdu() == pdu


def test_every_command_has_a_body_layer_named_after_it() -> None:
    assert set(BODY_LAYERS) == set(CommandId)
    for command_id, layer in BODY_LAYERS.items():
        assert issubclass(layer, SMPPBody)
        assert layer.__name__ == f"SMPP_{command_id.name}"


def test_tcp_session_reassembles_pdus_split_across_segments(tmp_path: Path) -> None:
    """scapy's TCPSession uses SMPP.tcp_reassemble to rebuild PDUs cut at the MSS."""
    big = Pdu.make(C.data_sm, 2, tlvs={"message_payload": bytes(range(256)) * 12})
    sent = [Pdu.make(C.enquire_link, 1), big, Pdu.make(C.unbind, 3)]
    path = tmp_path / "split.pcap"
    with PcapFile(path) as pcap:
        conversation = pcap.conversation(("192.0.2.1", 40000), ("192.0.2.2", SMPP_PORT))
        conversation.client_sends(b"".join(encode(p) for p in sent), acknowledge=False)
    assert sum(1 for frame in rdpcap(str(path)) if TCP in frame and len(frame[TCP].payload)) > 2
    packets = sniff(offline=str(path), session=TCPSession)
    reassembled = [x.to_pdu() for packet in packets for x in pdu_layers(packet)]
    assert reassembled == sent


@pytest.mark.parametrize("length", [0, 15])
def test_tcp_reassemble_does_not_wait_for_an_impossible_length(length: int) -> None:
    data = length.to_bytes(4, "big") + bytes(12)
    metadata: dict[str, object] = {}
    got = SMPP.tcp_reassemble(data, metadata, {})
    # Not SMPP framing: the octets there are, dissected as one SMPP header, and no wait for more.
    assert isinstance(got, SMPP)
    assert bytes(got) == data
    assert (got.command_length, got.command_id, got.command_status, got.sequence_number) == (length, 0, 0, 0)
    assert "tcp_min_len" not in metadata


def test_tcp_reassemble_waits_for_the_whole_pdu() -> None:
    raw = encode(Pdu.make(C.submit_sm, 5, short_message=b"abc"))
    metadata: dict[str, object] = {}
    assert SMPP.tcp_reassemble(raw[:10], metadata, {}) is None
    assert SMPP.tcp_reassemble(raw[:-1], metadata, {}) is None
    assert metadata["tcp_min_len"] == len(raw)
    whole = SMPP.tcp_reassemble(raw, metadata, {})
    assert whole is not None
    assert whole.to_pdu() == decode(raw)
