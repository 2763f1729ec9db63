"""A receipt deliver_sm's body written straight to octets: the SMSC's commonest outgoing PDU, without the codec.

The SMSC sends one receipt per message, a deliver_sm whose body is always the same shape: most fields at their
NULL values, two addresses, esm_class, a short GSM text and two or three TLVs. The codec's general encoder walks
the PDU table's 18 fields for it; this module writes the same octets from the handful of values that vary, for
the session to put behind the header (:meth:`carrier_sim.smpp.session.Session.send_if_allowed`'s ``body``).

It is only an accelerator: whatever it is not sure to write exactly as :func:`carrier_sim.smpp.codec.encode`
would (an address that is not short plain ASCII, a value out of its range, an unknown TLV) gives None, and the
codec encodes the PDU as before, refusing what it refuses. ``tests/carrier_sim/smsc/test_receipt_wire.py`` holds
it to the codec's bytes.
"""

from __future__ import annotations

import struct
from typing import Final

from carrier_sim.smpp.tlv import TLV_BY_NAME, NetworkErrorCode, TlvValue

__all__ = ["receipt_body"]

_RECEIPTED_MESSAGE_ID: Final = TLV_BY_NAME["receipted_message_id"].tag
_MESSAGE_STATE: Final = TLV_BY_NAME["message_state"].tag
_NETWORK_ERROR_CODE: Final = TLV_BY_NAME["network_error_code"].tag
#: deliver_sm's source_addr and destination_addr: C-Octet Strings of at most 21 octets, the NUL included.
_ADDRESS_MAX: Final = 20
#: receipted_message_id: a C-Octet String of at most 65 octets, the NUL included (SMPP 3.4 5.3.2.12).
_ID_MAX: Final = 64
#: deliver_sm's short_message: at most 254 octets (its sm_length is one octet, 255 reserved).
_SHORT_MESSAGE_MAX: Final = 254

#: protocol_id, priority_flag, schedule_delivery_time (NULL), validity_period (NULL), registered_delivery,
#: replace_if_present_flag, data_coding, sm_default_msg_id: all zero in a receipt (their NULL values).
_AFTER_ESM_CLASS: Final = bytes(8)
_TLV_HEAD: Final = struct.Struct(">HH")
_STATE_TLV: Final = struct.Struct(">HHB")
_ERROR_TLV: Final = struct.Struct(">HHBH")


def receipt_body(
    source_ton: int,
    source_npi: int,
    source_addr: str,
    dest_ton: int,
    dest_npi: int,
    destination_addr: str,
    esm_class: int,
    short_message: bytes,
    tlvs: tuple[tuple[int, TlvValue], ...],
) -> bytes | None:
    """The octets after the header of the deliver_sm with these fields (service_type and every other field at
    its NULL value) and these TLVs -- receipted_message_id, message_state, network_error_code, in any order --
    or None to leave the PDU to the codec."""
    if (
        len(source_addr) > _ADDRESS_MAX or len(destination_addr) > _ADDRESS_MAX
        or len(short_message) > _SHORT_MESSAGE_MAX
        or not (source_addr.isascii() and destination_addr.isascii())
        or "\0" in source_addr or "\0" in destination_addr
        # Plain ints only: the codec refuses a bool (True is no octet), and an IntEnum it takes is rare here.
        or not (type(source_ton) is type(source_npi) is type(dest_ton) is type(dest_npi) is type(esm_class) is int)
    ):
        return None
    try:
        parts = [
            b"\0",  # service_type: NULL
            bytes((source_ton, source_npi)), source_addr.encode(), b"\0",
            bytes((dest_ton, dest_npi)), destination_addr.encode(), b"\0",
            bytes((esm_class,)), _AFTER_ESM_CLASS, bytes((len(short_message),)), short_message,
        ]
        for tag, value in tlvs:
            if tag == _RECEIPTED_MESSAGE_ID and type(value) is str:
                if len(value) > _ID_MAX or not value.isascii() or "\0" in value:
                    return None
                parts += (_TLV_HEAD.pack(tag, len(value) + 1), value.encode(), b"\0")
            elif tag == _MESSAGE_STATE and type(value) is int:
                parts.append(_STATE_TLV.pack(tag, 1, value))
            elif tag == _NETWORK_ERROR_CODE and type(value) is NetworkErrorCode:
                parts.append(_ERROR_TLV.pack(tag, 3, value.network_type, value.error_code))
            else:
                return None
    except (ValueError, TypeError, struct.error):  # an integer out of its octet(s), or not an integer at all
        return None
    return b"".join(parts)
