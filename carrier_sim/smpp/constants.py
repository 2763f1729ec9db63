"""Numeric vocabulary of SMPP 3.4 and 5.0: command ids, command statuses, interface versions.

Values are from the SMPP v3.4 specification (section 5.1.2.1 command ids, 5.1.3 command_status) and the
SMPP v5.0 specification (section 4.7.5 and table 4-45). Names are the spec's, so that a log line, a test and a
Wireshark trace all say the same word.
"""

from __future__ import annotations

import enum
from functools import cached_property

__all__ = [
    "RESPONSE_BIT",
    "SEQUENCE_MAX",
    "CommandId",
    "CommandStatus",
    "InterfaceVersion",
]

#: Bit 31 of command_id marks a response (SMPP 3.4 section 5.1.2.1).
RESPONSE_BIT = 0x80000000

#: Sequence numbers run 0x00000001..0x7FFFFFFF (SMPP 3.4 section 3.2: "the range ... is 0x00000001 to
#: 0x7FFFFFFF"); 0 is only legal in a generic_nack that answers an unreadable header.
SEQUENCE_MAX = 0x7FFFFFFF


class CommandId(enum.IntEnum):
    """Every command_id of SMPP 3.4 and 5.0."""

    generic_nack = 0x80000000
    bind_receiver = 0x00000001
    bind_receiver_resp = 0x80000001
    bind_transmitter = 0x00000002
    bind_transmitter_resp = 0x80000002
    query_sm = 0x00000003
    query_sm_resp = 0x80000003
    submit_sm = 0x00000004
    submit_sm_resp = 0x80000004
    deliver_sm = 0x00000005
    deliver_sm_resp = 0x80000005
    unbind = 0x00000006
    unbind_resp = 0x80000006
    replace_sm = 0x00000007
    replace_sm_resp = 0x80000007
    cancel_sm = 0x00000008
    cancel_sm_resp = 0x80000008
    bind_transceiver = 0x00000009
    bind_transceiver_resp = 0x80000009
    outbind = 0x0000000B
    enquire_link = 0x00000015
    enquire_link_resp = 0x80000015
    submit_multi = 0x00000021
    submit_multi_resp = 0x80000021
    alert_notification = 0x00000102
    data_sm = 0x00000103
    data_sm_resp = 0x80000103
    broadcast_sm = 0x00000111
    broadcast_sm_resp = 0x80000111
    query_broadcast_sm = 0x00000112
    query_broadcast_sm_resp = 0x80000112
    cancel_broadcast_sm = 0x00000113
    cancel_broadcast_sm_resp = 0x80000113

    # The three below are cached per member (enum members have a __dict__, and a cached_property is not a data
    # descriptor, so after the first call a read is a plain attribute lookup): the session and the SMSC ask them
    # for every PDU. All are filled at import, below the class.

    @cached_property
    def is_response(self) -> bool:
        """True for *_resp and generic_nack."""
        return bool(self.value & RESPONSE_BIT)

    @cached_property
    def response(self) -> CommandId | None:
        """The response command that answers this request, or None (outbind, alert_notification, responses)."""
        if self.is_response or self in _NO_RESPONSE:
            return None
        return CommandId(self.value | RESPONSE_BIT)

    @cached_property
    def request(self) -> CommandId | None:
        """The request a response answers; None for requests and generic_nack."""
        if not self.is_response or self is CommandId.generic_nack:
            return None
        return CommandId(self.value & ~RESPONSE_BIT)


_NO_RESPONSE = frozenset({CommandId.outbind, CommandId.alert_notification})
for _command in CommandId:
    _command.is_response, _command.response, _command.request  # noqa: B018 -- fill the caches at import
del _command


class CommandStatus(enum.IntEnum):
    """command_status values (SMPP 3.4 section 5.1.3, SMPP 5.0 section 4.7.6)."""

    ESME_ROK = 0x00000000
    ESME_RINVMSGLEN = 0x00000001
    ESME_RINVCMDLEN = 0x00000002
    ESME_RINVCMDID = 0x00000003
    ESME_RINVBNDSTS = 0x00000004
    ESME_RALYBND = 0x00000005
    ESME_RINVPRTFLG = 0x00000006
    ESME_RINVREGDLVFLG = 0x00000007
    ESME_RSYSERR = 0x00000008
    ESME_RINVSRCADR = 0x0000000A
    ESME_RINVDSTADR = 0x0000000B
    ESME_RINVMSGID = 0x0000000C
    ESME_RBINDFAIL = 0x0000000D
    ESME_RINVPASWD = 0x0000000E
    ESME_RINVSYSID = 0x0000000F
    ESME_RCANCELFAIL = 0x00000011
    ESME_RREPLACEFAIL = 0x00000013
    ESME_RMSGQFUL = 0x00000014
    ESME_RINVSERTYP = 0x00000015
    ESME_RINVNUMDESTS = 0x00000033
    ESME_RINVDLNAME = 0x00000034
    ESME_RINVDESTFLAG = 0x00000040
    ESME_RINVSUBREP = 0x00000042
    ESME_RINVESMCLASS = 0x00000043
    ESME_RCNTSUBDL = 0x00000044
    ESME_RSUBMITFAIL = 0x00000045
    ESME_RINVSRCTON = 0x00000048
    ESME_RINVSRCNPI = 0x00000049
    ESME_RINVDSTTON = 0x00000050
    ESME_RINVDSTNPI = 0x00000051
    ESME_RINVSYSTYP = 0x00000053
    ESME_RINVREPFLAG = 0x00000054
    ESME_RINVNUMMSGS = 0x00000055
    ESME_RTHROTTLED = 0x00000058
    ESME_RINVSCHED = 0x00000061
    ESME_RINVEXPIRY = 0x00000062
    ESME_RINVDFTMSGID = 0x00000063
    ESME_RX_T_APPN = 0x00000064
    ESME_RX_P_APPN = 0x00000065
    ESME_RX_R_APPN = 0x00000066
    ESME_RQUERYFAIL = 0x00000067
    ESME_RINVOPTPARSTREAM = 0x000000C0
    ESME_ROPTPARNOTALLWD = 0x000000C1
    ESME_RINVPARLEN = 0x000000C2
    ESME_RMISSINGOPTPARAM = 0x000000C3
    ESME_RINVOPTPARAMVAL = 0x000000C4
    ESME_RDELIVERYFAILURE = 0x000000FE
    ESME_RUNKNOWNERR = 0x000000FF
    # SMPP 5.0 additions (section 4.7.6).
    ESME_RSERTYPUNAUTH = 0x00000100
    ESME_RPROHIBITED = 0x00000101
    ESME_RSERTYPUNAVAIL = 0x00000102
    ESME_RSERTYPDENIED = 0x00000103
    ESME_RINVDCS = 0x00000104
    ESME_RINVSRCADDRSUBUNIT = 0x00000105
    ESME_RINVDSTADDRSUBUNIT = 0x00000106
    ESME_RINVBCASTFREQINT = 0x00000107
    ESME_RINVBCASTALIAS_NAME = 0x00000108
    ESME_RINVBCASTAREAFMT = 0x00000109
    ESME_RINVNUMBCAST_AREAS = 0x0000010A
    ESME_RINVBCASTCNTTYPE = 0x0000010B
    ESME_RINVBCASTMSGCLASS = 0x0000010C
    ESME_RBCASTFAIL = 0x0000010D
    ESME_RBCASTQUERYFAIL = 0x0000010E
    ESME_RBCASTCANCELFAIL = 0x0000010F
    ESME_RINVBCAST_REP = 0x00000110
    ESME_RINVBCASTSRVGRP = 0x00000111
    ESME_RINVBCASTCHANIND = 0x00000112


class InterfaceVersion(enum.IntEnum):
    """interface_version in binds and sc_interface_version (SMPP 3.4 section 5.2.4)."""

    V33 = 0x33
    V34 = 0x34
    V50 = 0x50
