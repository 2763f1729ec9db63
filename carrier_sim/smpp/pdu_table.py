"""The one table that describes every SMPP 3.4 and 5.0 PDU body.

Each PDU is the ordered list of its mandatory fields, with the field names exactly as the specifications spell
them, the wire type, the maximum size (for C-Octet Strings the maximum *including* the terminating NUL, as the
spec's tables give it), the field that carries another field's length or count, and the command_status a peer
should receive when that field is malformed. The encoder, the decoder, the docs and the Hypothesis strategies
are all driven from here; nothing else in the project lists PDU fields.

Sources: SMPP 3.4 section 4 (PDU definitions) and SMPP 5.0 section 4 (broadcast_sm, query_broadcast_sm,
cancel_broadcast_sm and the TLVs they require).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

from carrier_sim.smpp.constants import CommandId
from carrier_sim.smpp.constants import CommandStatus as S

__all__ = [
    "PDU_TABLE",
    "Field",
    "FieldKind",
    "PduSpec",
]


class FieldKind(enum.Enum):
    """Wire layout of a mandatory field."""

    INT1 = "Integer 1"
    INT4 = "Integer 4"
    COCTET = "C-Octet String"
    #: schedule_delivery_time, validity_period, final_date: a C-Octet String of exactly 1 (NULL) or 17 octets.
    TIME = "C-Octet String (time)"
    #: short_message: raw octets whose length is carried by ``length_field``.
    OCTETS = "Octet String"
    #: submit_multi dest_address list, counted by number_of_dests.
    DEST_ADDRESSES = "dest_address list"
    #: submit_multi_resp unsuccess_sme list, counted by no_unsuccess.
    UNSUCCESS_SMES = "unsuccess_sme list"


@dataclass(frozen=True, slots=True)
class Field:
    """One mandatory field: its spec name, layout, maximum size and the status its malformation earns.

    ``length_field`` names the (derived, not stored) field that carries this field's length or count.
    """

    name: str
    kind: FieldKind
    max_size: int = 0
    error: S = S.ESME_RSYSERR
    length_field: str | None = None


@dataclass(frozen=True, slots=True)
class PduSpec:
    """A PDU body: mandatory fields in order, whether TLVs may follow, which TLVs it must carry."""

    command_id: CommandId
    fields: tuple[Field, ...]
    tlvs_allowed: bool
    required_tlvs: tuple[str, ...] = ()
    version: str = "3.4"

    @property
    def payload_excludes_short_message(self) -> bool:
        """Whether the PDU has a short_message field and may carry the message_payload TLV, which exclude each
        other (SMPP 3.4 4.4.1 and 5.3.2.32): submit_sm, submit_multi, deliver_sm, replace_sm."""
        return self.tlvs_allowed and any(f.name == "short_message" for f in self.fields)

    @property
    def derived_fields(self) -> frozenset[str]:
        """Length and count fields the codec computes (sm_length, number_of_dests, no_unsuccess)."""
        return frozenset(f.length_field for f in self.fields if f.length_field)


def _i1(name: str, error: S = S.ESME_RSYSERR) -> Field:
    return Field(name, FieldKind.INT1, 1, error)


def _c(name: str, size: int, error: S = S.ESME_RSYSERR) -> Field:
    return Field(name, FieldKind.COCTET, size, error)


def _t(name: str, error: S) -> Field:
    return Field(name, FieldKind.TIME, 17, error)


# Field groups that recur across PDUs, named as the spec's tables lay them out.
_SOURCE_21 = (
    _i1("source_addr_ton", S.ESME_RINVSRCTON),
    _i1("source_addr_npi", S.ESME_RINVSRCNPI),
    _c("source_addr", 21, S.ESME_RINVSRCADR),
)
_DEST_21 = (
    _i1("dest_addr_ton", S.ESME_RINVDSTTON),
    _i1("dest_addr_npi", S.ESME_RINVDSTNPI),
    _c("destination_addr", 21, S.ESME_RINVDSTADR),
)
_SERVICE_TYPE = _c("service_type", 6, S.ESME_RINVSERTYP)
_MESSAGE_ID = _c("message_id", 65, S.ESME_RINVMSGID)
_SHORT_MESSAGE = (
    _i1("sm_default_msg_id", S.ESME_RINVDFTMSGID),
    Field("short_message", FieldKind.OCTETS, 254, S.ESME_RINVMSGLEN, length_field="sm_length"),
)
_SM_TAIL = (
    _i1("esm_class", S.ESME_RINVESMCLASS),
    _i1("protocol_id"),
    _i1("priority_flag", S.ESME_RINVPRTFLG),
    _t("schedule_delivery_time", S.ESME_RINVSCHED),
    _t("validity_period", S.ESME_RINVEXPIRY),
    _i1("registered_delivery", S.ESME_RINVREGDLVFLG),
    _i1("replace_if_present_flag", S.ESME_RINVREPFLAG),
    _i1("data_coding", S.ESME_RINVDCS),
    *_SHORT_MESSAGE,
)
_SUBMIT_SM = (_SERVICE_TYPE, *_SOURCE_21, *_DEST_21, *_SM_TAIL)
_BIND = (
    _c("system_id", 16, S.ESME_RINVSYSID),
    _c("password", 9, S.ESME_RINVPASWD),
    _c("system_type", 13, S.ESME_RINVSYSTYP),
    _i1("interface_version"),
    _i1("addr_ton"),
    _i1("addr_npi"),
    _c("address_range", 41),
)
_BIND_RESP = (_c("system_id", 16, S.ESME_RINVSYSID),)
_MESSAGE_ID_ONLY = (_MESSAGE_ID,)


def _spec(
    command_id: CommandId,
    fields: tuple[Field, ...] = (),
    *,
    tlvs: bool = False,
    required: tuple[str, ...] = (),
    version: str = "3.4",
) -> PduSpec:
    return PduSpec(command_id, fields, tlvs, required, version)


C = CommandId
_SPECS: tuple[PduSpec, ...] = (
    _spec(C.generic_nack),
    _spec(C.bind_receiver, _BIND),
    _spec(C.bind_receiver_resp, _BIND_RESP, tlvs=True),
    _spec(C.bind_transmitter, _BIND),
    _spec(C.bind_transmitter_resp, _BIND_RESP, tlvs=True),
    _spec(C.bind_transceiver, _BIND),
    _spec(C.bind_transceiver_resp, _BIND_RESP, tlvs=True),
    _spec(C.outbind, (_c("system_id", 16, S.ESME_RINVSYSID), _c("password", 9, S.ESME_RINVPASWD))),
    _spec(C.unbind),
    _spec(C.unbind_resp),
    _spec(C.enquire_link),
    _spec(C.enquire_link_resp),
    _spec(C.submit_sm, _SUBMIT_SM, tlvs=True),
    # SMPP 5.0 (4.2.4.2) allows TLVs in submit_sm_resp and deliver_sm_resp; 3.4 peers simply send none.
    _spec(C.submit_sm_resp, _MESSAGE_ID_ONLY, tlvs=True),
    _spec(
        C.submit_multi,
        (
            _SERVICE_TYPE,
            *_SOURCE_21,
            Field("dest_address", FieldKind.DEST_ADDRESSES, 254, S.ESME_RINVNUMDESTS, "number_of_dests"),
            *_SM_TAIL,
        ),
        tlvs=True,
    ),
    _spec(
        C.submit_multi_resp,
        (_MESSAGE_ID, Field("unsuccess_sme", FieldKind.UNSUCCESS_SMES, 254, S.ESME_RSYSERR, "no_unsuccess")),
        tlvs=True,
    ),
    _spec(C.deliver_sm, _SUBMIT_SM, tlvs=True),
    _spec(C.deliver_sm_resp, _MESSAGE_ID_ONLY, tlvs=True),
    _spec(
        C.data_sm,
        (
            _SERVICE_TYPE,
            _i1("source_addr_ton", S.ESME_RINVSRCTON),
            _i1("source_addr_npi", S.ESME_RINVSRCNPI),
            _c("source_addr", 65, S.ESME_RINVSRCADR),
            _i1("dest_addr_ton", S.ESME_RINVDSTTON),
            _i1("dest_addr_npi", S.ESME_RINVDSTNPI),
            _c("destination_addr", 65, S.ESME_RINVDSTADR),
            _i1("esm_class", S.ESME_RINVESMCLASS),
            _i1("registered_delivery", S.ESME_RINVREGDLVFLG),
            _i1("data_coding", S.ESME_RINVDCS),
        ),
        tlvs=True,
    ),
    _spec(C.data_sm_resp, _MESSAGE_ID_ONLY, tlvs=True),
    _spec(C.query_sm, (_MESSAGE_ID, *_SOURCE_21)),
    _spec(
        C.query_sm_resp,
        (_MESSAGE_ID, _t("final_date", S.ESME_RSYSERR), _i1("message_state"), _i1("error_code")),
    ),
    _spec(C.cancel_sm, (_SERVICE_TYPE, _MESSAGE_ID, *_SOURCE_21, *_DEST_21)),
    _spec(C.cancel_sm_resp),
    # SMPP 5.0 (4.5.3.1) adds message_payload as a TLV of replace_sm.
    _spec(
        C.replace_sm,
        (
            _MESSAGE_ID,
            *_SOURCE_21,
            _t("schedule_delivery_time", S.ESME_RINVSCHED),
            _t("validity_period", S.ESME_RINVEXPIRY),
            _i1("registered_delivery", S.ESME_RINVREGDLVFLG),
            *_SHORT_MESSAGE,
        ),
        tlvs=True,
    ),
    _spec(C.replace_sm_resp),
    _spec(
        C.alert_notification,
        (
            _i1("source_addr_ton", S.ESME_RINVSRCTON),
            _i1("source_addr_npi", S.ESME_RINVSRCNPI),
            _c("source_addr", 65, S.ESME_RINVSRCADR),
            _i1("esme_addr_ton"),
            _i1("esme_addr_npi"),
            _c("esme_addr", 65),
        ),
        tlvs=True,
    ),
    # SMPP 5.0 section 4.6: the broadcast family.
    _spec(
        C.broadcast_sm,
        (
            _SERVICE_TYPE,
            *_SOURCE_21,
            _MESSAGE_ID,
            _i1("priority_flag", S.ESME_RINVPRTFLG),
            _t("schedule_delivery_time", S.ESME_RINVSCHED),
            _t("validity_period", S.ESME_RINVEXPIRY),
            _i1("replace_if_present_flag", S.ESME_RINVREPFLAG),
            _i1("data_coding", S.ESME_RINVDCS),
            _i1("sm_default_msg_id", S.ESME_RINVDFTMSGID),
        ),
        tlvs=True,
        required=(
            "broadcast_area_identifier",
            "broadcast_content_type",
            "broadcast_rep_num",
            "broadcast_frequency_interval",
        ),
        version="5.0",
    ),
    _spec(C.broadcast_sm_resp, _MESSAGE_ID_ONLY, tlvs=True, version="5.0"),
    _spec(C.query_broadcast_sm, (_MESSAGE_ID, *_SOURCE_21), tlvs=True, version="5.0"),
    _spec(
        C.query_broadcast_sm_resp,
        _MESSAGE_ID_ONLY,
        tlvs=True,
        required=("message_state", "broadcast_area_identifier", "broadcast_area_success"),
        version="5.0",
    ),
    _spec(
        C.cancel_broadcast_sm, (_SERVICE_TYPE, _MESSAGE_ID, *_SOURCE_21), tlvs=True, version="5.0"
    ),
    _spec(C.cancel_broadcast_sm_resp, version="5.0"),
)

PDU_TABLE: Mapping[int, PduSpec] = {spec.command_id.value: spec for spec in _SPECS}

assert set(PDU_TABLE) == {c.value for c in CommandId}, "every command_id has exactly one row"
