"""User Data Header: byte-exact parse/build, typed IEs, TS 23.040 ignore rules, malformed headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError, SmppError
from carrier_sim.smpp.udh import (
    ESM_CLASS_UDHI,
    Concatenation,
    Iei,
    InformationElement,
    InvalidUserDataHeader,
    PortAddressing,
    Udh,
    split_udh,
    split_user_data,
)


def test_concatenation_8bit() -> None:
    udh, rest = split_udh(bytes.fromhex("050003cc0302") + b"text")
    assert rest == b"text"
    assert udh.elements == (InformationElement(0x00, bytes.fromhex("cc0302")),)
    assert udh.concatenation == Concatenation(0xCC, 3, 2, 8)
    assert udh.port_addressing is None
    assert udh.octet_length == 6


def test_concatenation_16bit() -> None:
    udh, rest = split_udh(bytes.fromhex("060804abcd0201"))
    assert rest == b""
    assert udh.concatenation == Concatenation(0xABCD, 2, 1, 16)


def test_wap_push_ports_and_concatenation() -> None:
    raw = bytes.fromhex("0b05040b8423f00003070201")
    udh = Udh.from_bytes(raw)
    assert udh.port_addressing == PortAddressing(2948, 9200, 16)
    assert udh.concatenation == Concatenation(7, 2, 1, 8)
    assert Udh.of(PortAddressing(2948, 9200), Concatenation(7, 2, 1)).to_bytes() == raw


def test_port_addressing_8bit() -> None:
    udh = Udh.from_bytes(bytes.fromhex("0404021005"))
    assert udh.port_addressing == PortAddressing(0x10, 0x05, 8)
    assert udh.port_addressing.to_element().to_bytes() == bytes.fromhex("04021005")


def test_unknown_ies_kept_in_order_byte_exact() -> None:
    raw = bytes.fromhex("0f7003aabbcc0003010201240105ff00")
    udh = Udh.from_bytes(raw)
    assert [element.iei for element in udh.elements] == [0x70, 0x00, Iei.NATIONAL_LANGUAGE_SINGLE_SHIFT, 0xFF]
    assert udh.elements[3].data == b""
    assert udh.to_bytes() == raw
    assert udh.without(Iei.CONCATENATED_8BIT).to_bytes() == bytes.fromhex("0a7003aabbcc240105ff00")
    assert udh.find_all(0x70) == (InformationElement(0x70, bytes.fromhex("aabbcc")),)


def test_repeated_concatenation_uses_the_last() -> None:
    # TS 23.040 9.2.3.24: "the last occurrence of the IE shall be used".
    udh = Udh.from_bytes(bytes.fromhex("0a00030102010003020202"))
    assert udh.concatenation == Concatenation(2, 2, 2)


@pytest.mark.parametrize("ie_data", ["010001", "010000", "010203"])
def test_concatenation_the_spec_says_to_ignore(ie_data: str) -> None:
    # Total 0, sequence 0, sequence past total: "the receiving entity shall ignore the whole IE".
    assert Udh.from_bytes(bytes.fromhex("050003" + ie_data)).concatenation is None


def test_empty_header_is_allowed() -> None:
    assert split_udh(b"\x00abc") == (Udh(()), b"abc")


@pytest.mark.parametrize(
    "hex_message",
    [
        "",  # no UDHL
        "05000301",  # UDHL past the end
        "0100",  # IE header cut by UDHL
        "03000501",  # IE data past the UDH end
        "0400020102",  # concatenation of 2 octets
        "050803010201",  # 16-bit concatenation of 3 octets
        "0405020102",  # 16-bit ports of 2 octets
        "050403010203",  # 8-bit ports of 3 octets
    ],
)
def test_malformed_headers_are_typed_peer_errors(hex_message: str) -> None:
    with pytest.raises(InvalidUserDataHeader) as caught:
        split_udh(bytes.fromhex(hex_message))
    assert caught.value.command_status is CommandStatus.ESME_RINVMSGLEN


def test_from_bytes_refuses_trailing_octets() -> None:
    with pytest.raises(InvalidUserDataHeader):
        Udh.from_bytes(bytes.fromhex("00ff"))


def test_split_user_data_follows_udhi() -> None:
    message = bytes.fromhex("050003010101") + b"x"
    assert split_user_data(message, 0x00) == (None, message)
    assert split_user_data(message, ESM_CLASS_UDHI | 0x03) == (Udh.of(Concatenation(1, 1, 1)), b"x")


def test_building_invalid_ies_is_a_local_error() -> None:
    with pytest.raises(LocalProtocolError):
        Concatenation(256, 2, 1, 8)
    with pytest.raises(LocalProtocolError):
        Concatenation(1, 0, 1)
    with pytest.raises(LocalProtocolError):
        Concatenation(1, 2, 3)
    with pytest.raises(LocalProtocolError):
        PortAddressing(256, 1, 8)
    with pytest.raises(LocalProtocolError):
        InformationElement(0x100, b"")
    with pytest.raises(LocalProtocolError):
        InformationElement(0x70, bytes(256))
    with pytest.raises(LocalProtocolError):
        Udh((InformationElement(0x70, bytes(200)), InformationElement(0x71, bytes(200)))).to_bytes()


elements = st.builds(InformationElement, st.integers(0, 255), st.binary(max_size=20)).filter(
    lambda element: element.iei not in (0x00, 0x04, 0x05, 0x08)
)
typed = st.one_of(
    st.builds(
        lambda ref, total, seq, bits: Concatenation(ref % (1 << bits), total, min(seq, total), bits),
        st.integers(0, 0xFFFF),
        st.integers(1, 255),
        st.integers(1, 255),
        st.sampled_from([8, 16]),
    ).map(Concatenation.to_element),
    st.builds(
        lambda dst, src, bits: PortAddressing(dst % (1 << bits), src % (1 << bits), bits),
        st.integers(0, 0xFFFF),
        st.integers(0, 0xFFFF),
        st.sampled_from([8, 16]),
    ).map(PortAddressing.to_element),
)


@given(st.lists(st.one_of(elements, typed), max_size=8), st.binary(max_size=40))
def test_build_parse_round_trip(parts: list[InformationElement], payload: bytes) -> None:
    udh = Udh(tuple(parts))
    raw = udh.to_bytes()
    assert len(raw) == udh.octet_length
    assert split_udh(raw + payload) == (udh, payload)


@given(st.binary(max_size=300))
def test_arbitrary_octets_parse_or_raise_typed_errors(data: bytes) -> None:
    try:
        udh, rest = split_udh(data)
        _ = udh.concatenation, udh.port_addressing
    except SmppError as exc:
        caught: SmppError | None = exc
    else:
        caught = None
        assert udh.to_bytes() + rest == data
    assert caught is None or isinstance(caught, InvalidUserDataHeader)
