"""Interop with python-smpplib (PyPI ``smpplib``): bytes we encode, smpplib parses; bytes smpplib builds, we decode.

Both directions compare every field value, header included: mandatory parameters and the optional parameters
(TLVs) smpplib knows for that command. smpplib spells the header differently, represents C-Octet Strings as
``bytes`` when it parses and wants ``str`` when it writes, and reads a few TLVs as integers where the spec (and
our table) has octets; :data:`HEADER_NAMES`, :data:`FIELD_CONVERSIONS` and :data:`TLV_CONVERSIONS` map all of it
explicitly. Body field and TLV names are the spec's in both libraries (``test_names_and_codes_agree`` checks).

Coverage. smpplib's ``command.factory`` builds 20 PDU types (:data:`SUPPORTED`); each is tested both ways.
smpplib lacks (``test_smpplib_lacks_these_pdu_types`` pins it, so an smpplib that learns one fails here and the
type can move to :data:`SUPPORTED`):

* outbind, replace_sm, replace_sm_resp, cancel_sm, cancel_sm_resp, submit_multi, submit_multi_resp: their
  command_ids are in ``smpplib.command_codes`` but ``factory`` has no class, so parsing raises
  ``UnknownCommandError``;
* the SMPP 5.0 broadcast family (broadcast_sm, query_broadcast_sm, cancel_broadcast_sm and their responses):
  unknown command_ids to smpplib.

Restrictions, each forced by an smpplib behaviour stated where it is applied:

* TLVs whose smpplib definition cannot carry the spec's octets are left out of both directions
  (:data:`SMPPLIB_TLV_DEFECTS`; ``test_tlv_layouts_are_classified`` proves each one really is broken and every
  other one really agrees).
* smpplib parses an unknown TLV only with ``allow_unknown_opt_params=True`` (what ``Client`` passes when asked),
  and cannot parse a TLV it knows by name but not for this command (``KeyError``); it cannot write unknown TLVs.
* smpplib keeps TLVs as attributes, so a tag repeated in one PDU keeps only its last value: drawn TLVs are unique.
* Writing: see :func:`smpplib_writable` (field truncation, UTF-8 TLV strings, empty TLVs omitted, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from carrier_sim.smpp.codec import decode, encode
from carrier_sim.smpp.constants import CommandId, CommandStatus
from carrier_sim.smpp.errors import InvalidOptionalParameterValue
from carrier_sim.smpp.pdu import ParamValue, Pdu
from carrier_sim.smpp.pdu_table import PDU_TABLE, FieldKind
from carrier_sim.smpp.tlv import TLV_BY_NAME, TLV_BY_TAG, NetworkErrorCode, TlvKind, TlvSpec, TlvValue
from carrier_sim.testing.smpp_strategies import pdus, tlv_octets, tlv_values
from tests.interop.conftest import require_module

smpplib = require_module("smpplib")
# ``import smpplib`` loads command, client, smpp and pdu, and through them consts and command_codes.
sl_command: Any = smpplib.command
sl_consts: Any = smpplib.consts
sl_codes: Any = smpplib.command_codes
sl_exceptions: Any = smpplib.exceptions
sl_ptypes: Any = smpplib.ptypes
parse_pdu: Callable[..., Any] = smpplib.smpp.parse_pdu
SequenceGenerator: Callable[[], Any] = smpplib.client.SimpleSequenceGenerator

pytestmark = pytest.mark.interop

C = CommandId

#: The PDU types ``smpplib.command.factory`` can build and parse.
SUPPORTED: tuple[CommandId, ...] = (
    C.generic_nack,
    C.bind_receiver, C.bind_receiver_resp,
    C.bind_transmitter, C.bind_transmitter_resp,
    C.bind_transceiver, C.bind_transceiver_resp,
    C.unbind, C.unbind_resp,
    C.enquire_link, C.enquire_link_resp,
    C.submit_sm, C.submit_sm_resp,
    C.deliver_sm, C.deliver_sm_resp,
    C.data_sm, C.data_sm_resp,
    C.query_sm, C.query_sm_resp,
    C.alert_notification,
)  # fmt: skip

#: The PDU types smpplib cannot build or parse (see the module docstring).
LACKING: tuple[CommandId, ...] = tuple(c for c in CommandId if c not in SUPPORTED)

#: Header fields: our name -> smpplib's attribute. smpplib's ``command`` holds the command *name* (a str), which
#: equals our ``CommandId`` member name. command_length is derived on both sides (smpplib's ``length``).
HEADER_NAMES: dict[str, str] = {
    "command_id": "command",
    "command_status": "status",
    "sequence_number": "sequence",
    "command_length": "length",
}

#: smpplib's field for the length our codec derives (and so never stores): short_message's length.
SMPPLIB_DERIVED_FIELDS = frozenset({"sm_length"})


@dataclass(frozen=True)
class Conversion:
    """How one value travels: ``to_ours`` maps what smpplib parsed to our value, ``to_smpplib`` maps our value to
    what smpplib must be given to write the same octets."""

    to_ours: Callable[[Any], Any]
    to_smpplib: Callable[[Any], Any]


def _same(value: Any) -> Any:
    return value


def _int_or_null(value: int | None) -> int:
    # smpplib parses nothing past the end of a body, leaving those fields None: the NULL value (SMPP 3.4 4.4.2
    # lets an error response omit its body).
    return 0 if value is None else value


def _latin1_or_null(value: bytes | None) -> str:
    # smpplib parses a C-Octet String to the bytes before its NUL; both sides treat octets as Latin-1.
    return "" if value is None else value.decode("latin-1")


def _octets_or_null(value: bytes | None) -> bytes:
    return b"" if value is None else value


#: Mandatory fields by our wire layout. smpplib writes a str field with ``six.b`` (Latin-1), so it is given str.
FIELD_CONVERSIONS: dict[FieldKind, Conversion] = {
    FieldKind.INT1: Conversion(_int_or_null, _same),
    FieldKind.COCTET: Conversion(_latin1_or_null, _same),
    FieldKind.TIME: Conversion(_latin1_or_null, _same),
    FieldKind.OCTETS: Conversion(_octets_or_null, _same),
}


def _nec_to_ours(raw: bytes) -> NetworkErrorCode:
    return NetworkErrorCode(raw[0], int.from_bytes(raw[1:3], "big"))


def _nec_to_smpplib(value: NetworkErrorCode) -> bytes:
    return bytes([value.network_type]) + value.error_code.to_bytes(2, "big")


def _int_as_octets(size: int) -> Conversion:
    return Conversion(lambda v: int(v).to_bytes(size, "big"), lambda b: int.from_bytes(b, "big"))


#: TLVs whose value smpplib represents differently from us, by name; the rest go by :data:`TLV_KIND_CONVERSIONS`.
TLV_CONVERSIONS: dict[str, Conversion] = {
    # smpplib: Param(type=int, size=1); ours: Octet String of 1 or 4 octets (SMPP 5.0 extended ms_validity).
    "ms_validity": _int_as_octets(1),
    # smpplib: Param(type=int, size=2); ours: the spec's 2-octet Octet String.
    "its_session_info": _int_as_octets(2),
    # smpplib: 3 raw octets (deliver_sm, data_sm); ours: (network type, error code).
    "network_error_code": Conversion(_nec_to_ours, _nec_to_smpplib),
}

#: TLV values by our layout. smpplib parses a C-Octet String TLV to bytes (NUL dropped) and writes a str.
TLV_KIND_CONVERSIONS: dict[TlvKind, Conversion] = {
    TlvKind.INT1: Conversion(_same, _same),
    TlvKind.INT2: Conversion(_same, _same),
    TlvKind.INT4: Conversion(_same, _same),
    TlvKind.COCTET: Conversion(lambda raw: raw.decode("latin-1"), _same),
    TlvKind.OCTET: Conversion(_same, _same),
}


def tlv_conversion(name: str) -> Conversion:
    """The conversion of one TLV's value."""
    return TLV_CONVERSIONS.get(name) or TLV_KIND_CONVERSIONS[TLV_BY_NAME[name].kind]


_SUBADDRESS = (
    "Param(type=str) for an Octet String: parsing drops the last octet as if it were a NUL; writing appends one"
)
_FLAG = (
    "Param(type=flag): parse_optional_params neither stores it nor steps over a value (a 1-octet SMPP 5.0 value "
    "misaligns the TLVs after it); generate_params never writes it"
)

#: smpplib TLV definitions that cannot carry the spec's octets: (command, TLV) -> what smpplib does. Left out of
#: both directions.
SMPPLIB_TLV_DEFECTS: dict[tuple[CommandId, str], str] = {
    (C.submit_sm, "source_addr_subunit"): (
        "Param(type=int, size=2) but the spec's value is 1 octet: smpplib reads 2 octets whatever the TLV length "
        "says, so this and every later TLV is misread"
    ),
    (C.data_sm, "source_telematics_id"): (
        "Param(type=int, size=2) where our table has a 1-octet Integer: the same misalignment"
    ),
    (C.data_sm, "callback_num_atag"): _SUBADDRESS,
    (C.data_sm_resp, "delivery_failure_reason"): (
        "Param(type=str, max=256) for an Integer 1: parsed as a C string (value lost), written with a NUL "
        "(2 octets, which we rightly refuse with ESME_RINVPARLEN)"
    ),
    (C.data_sm_resp, "network_error_code"): (
        "Param(type=str, max=3) for 3 octets: parsing drops the error code's last octet as if it were a NUL"
    ),
    **{(c, name): _SUBADDRESS for c in (C.submit_sm, C.deliver_sm, C.data_sm)
       for name in ("source_subaddress", "dest_subaddress")},
    **{(c, "alert_on_message_delivery"): _FLAG for c in (C.submit_sm, C.data_sm)},
}  # fmt: skip


# ------------------------------------------------------------------------------------------ smpplib's tables


def smpplib_class(command_id: CommandId) -> Any:
    """smpplib's command class for a PDU type."""
    return type(new_smpplib_command(command_id))


def new_smpplib_command(command_id: CommandId, **kwargs: Any) -> Any:
    """An smpplib command object, made as smpplib's Client makes them (with a sequence generator as client)."""
    return sl_command.factory(command_id.name, client=SequenceGenerator(), **kwargs)


def smpplib_mandatory_names(command_id: CommandId) -> list[str]:
    """smpplib's mandatory parameters in wire order, without the length it derives."""
    cmd = new_smpplib_command(command_id)
    return [
        name for name in cmd.params_order
        if not cmd.field_is_optional(name) and name not in SMPPLIB_DERIVED_FIELDS
    ]  # fmt: skip


def smpplib_tlv_names(command_id: CommandId) -> list[str]:
    """The TLVs smpplib knows for this command."""
    cmd = new_smpplib_command(command_id)
    return [name for name in cmd.params_order if cmd.field_is_optional(name)]


def compatible_tlvs(command_id: CommandId) -> list[str]:
    """The TLVs of this command both libraries read and write alike (smpplib's minus its defects)."""
    return [name for name in smpplib_tlv_names(command_id) if (command_id, name) not in SMPPLIB_TLV_DEFECTS]


#: Every tag smpplib knows by name; any other tag it can only skip.
SMPPLIB_KNOWN_TAGS = frozenset(sl_consts.OPTIONAL_PARAMS.values())


def layout_agrees(param: Any, spec: TlvSpec) -> bool:
    """Whether an smpplib ``Param`` reads and writes the octets our TLV spec describes.

    smpplib reads an int TLV with its declared size (ignoring the TLV's length), a str TLV as a C string of the
    TLV's length, an ostr TLV as that many raw octets, and a flag TLV not at all.
    """
    if param.type is int:
        if spec.kind in (TlvKind.INT1, TlvKind.INT2, TlvKind.INT4):
            return bool(param.size == spec.min_length)
        # ms_validity, its_session_info: octets read as a big-endian integer, fine when the sizes can agree.
        return spec.kind is TlvKind.OCTET and spec.allows(param.size)
    if param.type is sl_ptypes.ostr:
        return spec.kind in (TlvKind.OCTET, TlvKind.NETWORK_ERROR)
    if param.type is str:
        return spec.kind is TlvKind.COCTET
    return False


# ------------------------------------------------------------------------------------------ conversions


def to_smpplib(pdu: Pdu) -> Any:
    """The smpplib command object carrying the same values as ``pdu``, built as smpplib's users build them."""
    kwargs: dict[str, Any] = {f.name: FIELD_CONVERSIONS[f.kind].to_smpplib(pdu.params[f.name]) for f in pdu.spec.fields}
    for tag, value in pdu.tlvs:
        name = TLV_BY_TAG[tag].name
        kwargs[name] = tlv_conversion(name).to_smpplib(value)
    cmd = new_smpplib_command(pdu.command_id, status=pdu.command_status, **kwargs)
    # smpplib ignores the ``sequence=`` argument (its getter falls back to the client's counter, which is never
    # None, so Command._set_vars never sets it), and BindTransmitter.__init__ overwrites interface_version with
    # 0x34 after applying the arguments. Both must be set on the object afterwards.
    cmd.sequence = pdu.sequence_number
    if "interface_version" in kwargs:
        cmd.interface_version = kwargs["interface_version"]
    return cmd


@dataclass(frozen=True)
class Seen:
    """What a PDU's fields look like once mapped to our names and types."""

    command_id: CommandId
    command_status: int
    sequence_number: int
    command_length: int
    params: dict[str, ParamValue]
    tlvs: dict[int, TlvValue]


def from_smpplib(parsed: Any, tlv_names: Iterable[str]) -> Seen:
    """smpplib's parsed object in our names and types (``tlv_names``: the TLVs to read back)."""
    command_id = CommandId[getattr(parsed, HEADER_NAMES["command_id"])]
    params = {f.name: FIELD_CONVERSIONS[f.kind].to_ours(getattr(parsed, f.name)) for f in PDU_TABLE[command_id].fields}
    tlvs = {
        TLV_BY_NAME[name].tag: tlv_conversion(name).to_ours(getattr(parsed, name))
        for name in tlv_names
        if getattr(parsed, name) is not None
    }
    return Seen(
        command_id,
        getattr(parsed, HEADER_NAMES["command_status"]),
        getattr(parsed, HEADER_NAMES["sequence_number"]),
        getattr(parsed, HEADER_NAMES["command_length"]),
        params,
        tlvs,
    )


def smpplib_parse(wire: bytes) -> Any:
    """Parse as smpplib's Client.read_pdu does, with unknown TLVs skipped rather than fatal."""
    return parse_pdu(wire, client=SequenceGenerator(), allow_unknown_opt_params=True)


# ------------------------------------------------------------------------------------------ strategies


_ASCII = st.characters(min_codepoint=1, max_codepoint=0x7F)


def _tlv_strategy(spec: TlvSpec, *, smpplib_writes: bool) -> st.SearchStrategy[TlvValue]:
    if spec.name == "ms_validity":
        return st.binary(min_size=1, max_size=1)  # smpplib: Param(type=int, size=1)
    if smpplib_writes and spec.kind is TlvKind.COCTET:
        # smpplib writes a str TLV as UTF-8 octets under a length counting characters (wrong past ASCII), and
        # omits an empty one entirely.
        return st.text(_ASCII, min_size=1, max_size=spec.max_length - 1)
    if smpplib_writes and spec.kind is TlvKind.OCTET:
        # smpplib omits an empty octet-string TLV entirely (``if field_value:``).
        return tlv_octets(spec, min_size=1)
    return tlv_values(spec)


def _known_tlvs(command_id: CommandId, *, smpplib_writes: bool) -> st.SearchStrategy[dict[str, TlvValue]]:
    # Each compatible TLV independently present or absent, so every one is exercised, each at most once.
    optional = {
        name: _tlv_strategy(TLV_BY_NAME[name], smpplib_writes=smpplib_writes) for name in compatible_tlvs(command_id)
    }
    return st.fixed_dictionaries({}, optional=optional)


def smpplib_readable(command_id: CommandId) -> st.SearchStrategy[Pdu]:
    """Our PDUs of this type, with TLVs smpplib can parse: its compatible ones for the command, in any order,
    among tags it does not know at all (SMPP 5.0 ones, vendor-specific ones), which it skips."""
    spec = PDU_TABLE[command_id]
    if not spec.tlvs_allowed:
        return pdus(command_id)

    def merge(drawn: tuple[Pdu, dict[str, TlvValue]]) -> st.SearchStrategy[Pdu]:
        base, known = drawn
        # A tag smpplib knows by name but not for this command raises KeyError in parse_optional_params.
        skipped = [(tag, value) for tag, value in base.tlvs if tag not in SMPPLIB_KNOWN_TAGS]
        area = skipped + [(TLV_BY_NAME[name].tag, value) for name, value in known.items()]
        if "message_payload" in known and spec.payload_excludes_short_message:
            # SMPP 3.4 4.4.1: with message_payload, short_message stays empty (our encoder refuses both).
            base = replace(base, params={**base.params, "short_message": b""})
        return st.permutations(area).map(lambda order: replace(base, tlvs=tuple(order)))

    return st.tuples(pdus(command_id), _known_tlvs(command_id, smpplib_writes=False)).flatmap(merge)


def _clip_to_smpplib(pdu: Pdu) -> Pdu:
    # smpplib truncates a mandatory C-Octet String to its Param max minus the NUL; for data_sm and
    # alert_notification addresses that max is 21 where SMPP 3.4 allows 65.
    params = dict(pdu.params)
    defs = smpplib_class(pdu.command_id).params
    for f in pdu.spec.fields:
        limit = getattr(defs[f.name], "max", None)
        value = params[f.name]
        if f.kind is FieldKind.COCTET and limit is not None and isinstance(value, str):
            params[f.name] = value[: limit - 1]
    return replace(pdu, params=params)


def smpplib_writable(command_id: CommandId) -> st.SearchStrategy[Pdu]:
    """Our PDUs of this type restricted to what smpplib can write.

    Beyond :func:`_tlv_strategy` and :func:`_clip_to_smpplib`: no unknown TLVs (``_generate_opt_header`` raises
    "Vendors not supported"); query_sm needs a message_id (``QuerySM.prep`` raises ValueError on an empty one);
    submit_sm/deliver_sm never carry short_message with message_payload (``SubmitSM.prep`` raises ValueError,
    and SMPP 3.4 4.4.1 and 5.3.2.32 make them exclusive: our encoder refuses both).
    """
    spec = PDU_TABLE[command_id]
    base = pdus(command_id).map(_clip_to_smpplib)
    if command_id is C.query_sm:
        base = base.filter(lambda p: p["message_id"] != "")
    if not spec.tlvs_allowed:
        return base

    def merge(drawn: tuple[Pdu, dict[str, TlvValue]]) -> Pdu:
        pdu, known = drawn
        params = dict(pdu.params)
        if "message_payload" in known and spec.payload_excludes_short_message:
            params["short_message"] = b""
        return replace(pdu, params=params, tlvs=tuple((TLV_BY_NAME[n].tag, v) for n, v in known.items()))

    return st.tuples(base, _known_tlvs(command_id, smpplib_writes=True)).map(merge)


# ------------------------------------------------------------------------------------------ the tests

_PER_TYPE = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("command_id", SUPPORTED, ids=lambda c: c.name)
@_PER_TYPE
@given(data=st.data())
def test_smpplib_parses_what_we_encode(command_id: CommandId, data: st.DataObject) -> None:
    pdu = data.draw(smpplib_readable(command_id))
    wire = encode(pdu)
    parsed = smpplib_parse(wire)
    compatible = compatible_tlvs(command_id)
    seen = from_smpplib(parsed, compatible)

    assert seen.command_id is pdu.command_id
    assert seen.command_status == pdu.command_status
    assert seen.sequence_number == pdu.sequence_number
    assert seen.command_length == len(wire)
    assert seen.params == pdu.params
    compatible_tags = {TLV_BY_NAME[name].tag for name in compatible}
    assert seen.tlvs == {tag: value for tag, value in pdu.tlvs if tag in compatible_tags}
    # The TLVs smpplib skipped did not spill into any attribute of the ones it knows.
    for name in smpplib_tlv_names(command_id):
        if name not in compatible:
            assert getattr(parsed, name) is None, name


@pytest.mark.parametrize("command_id", SUPPORTED, ids=lambda c: c.name)
@_PER_TYPE
@given(data=st.data())
def test_we_decode_what_smpplib_builds(command_id: CommandId, data: st.DataObject) -> None:
    pdu = data.draw(smpplib_writable(command_id))
    wire = to_smpplib(pdu).generate()
    ours = decode(wire)

    assert ours.command_id is pdu.command_id
    assert ours.command_status == pdu.command_status
    assert ours.sequence_number == pdu.sequence_number
    assert ours.params == pdu.params
    # smpplib writes TLVs in its params_order, not ours: compare them as a mapping, each exactly once.
    assert len(ours.tlvs) == len(pdu.tlvs)
    assert dict(ours.tlvs) == dict(pdu.tlvs)


def test_names_and_codes_agree() -> None:
    """The explicit maps above rest on smpplib using the spec's names and codes; check that they do."""
    for name, code in sl_codes.commands.items():
        assert CommandId[name].value == code, name
    for name, tag in sl_consts.OPTIONAL_PARAMS.items():
        assert TLV_BY_NAME[name].tag == tag, name
    for command_id in SUPPORTED:
        assert smpplib_mandatory_names(command_id) == [f.name for f in PDU_TABLE[command_id].fields], command_id
        assert set(smpplib_tlv_names(command_id)) <= set(TLV_BY_NAME), command_id
        if smpplib_tlv_names(command_id):
            assert PDU_TABLE[command_id].tlvs_allowed, command_id
    assert set(HEADER_NAMES.values()) <= set(dir(smpplib_parse(encode(Pdu.make(C.enquire_link, 1)))))


def test_tlv_layouts_are_classified() -> None:
    """Every smpplib TLV definition either agrees with our table or is a listed defect, and not both."""
    listed = set(SMPPLIB_TLV_DEFECTS)
    for command_id in SUPPORTED:
        defs = smpplib_class(command_id).params
        for name in smpplib_tlv_names(command_id):
            agrees = layout_agrees(defs[name], TLV_BY_NAME[name])
            assert agrees != ((command_id, name) in listed), (command_id.name, name)
            listed.discard((command_id, name))
    assert not listed, f"defects listed for TLVs smpplib does not define: {listed}"
    # Each command under test exercises a real TLV set, not an accidentally empty one.
    assert len(compatible_tlvs(C.submit_sm)) >= 20
    assert len(compatible_tlvs(C.data_sm)) >= 30


@pytest.mark.parametrize("command_id", LACKING, ids=lambda c: c.name)
def test_smpplib_lacks_these_pdu_types(command_id: CommandId) -> None:
    wire = encode(Pdu.make(command_id, 1))
    with pytest.raises(sl_exceptions.UnknownCommandError):
        smpplib_parse(wire)


def test_misaligned_tlv_defect_is_real() -> None:
    """The evidence behind leaving source_addr_subunit out: one 1-octet TLV garbles the next."""
    pdu = Pdu.make(C.submit_sm, 1, tlvs={"source_addr_subunit": 3, "source_port": 0x0102})
    parsed = smpplib_parse(encode(pdu))
    assert parsed.source_addr_subunit == 0x0300 | 0x02  # its octet plus the next TLV's first
    assert parsed.source_port is None


def test_smpplib_miscounts_non_ascii_tlv_strings() -> None:
    """Why TLV strings smpplib writes are drawn from ASCII: it counts characters but writes UTF-8 octets."""
    cmd = new_smpplib_command(C.deliver_sm, receipted_message_id="é")
    wire = cmd.generate()
    # Length 2 is len("é\0"); the octets are c3 a9 00, so the NUL falls outside the TLV.
    assert wire.endswith(b"\x00\x1e\x00\x02\xc3\xa9\x00")
    with pytest.raises(InvalidOptionalParameterValue) as caught:
        decode(wire)
    assert caught.value.command_status is CommandStatus.ESME_RINVOPTPARAMVAL


def test_smpplib_ignores_sequence_argument() -> None:
    """Why :func:`to_smpplib` sets ``sequence`` on the object instead of passing it to the factory."""
    assert new_smpplib_command(C.enquire_link, sequence=77).sequence != 77
    cmd = new_smpplib_command(C.bind_transmitter, interface_version=0x50)
    assert cmd.interface_version == 0x34


def test_smpplib_cannot_parse_a_known_tlv_foreign_to_the_command() -> None:
    """Why drawn PDUs carry only unknown tags besides the command's own: smpplib's lookup raises KeyError."""
    wire = encode(Pdu.make(C.submit_sm, 1, tlvs={"receipted_message_id": "x"}))
    with pytest.raises(KeyError):
        smpplib_parse(wire)
