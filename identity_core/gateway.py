"""The carrier gateway: one SMPP ESME per carrier, speaking to the carrier's SMSC exactly as a customer's would.

Theory of operation
-------------------
Phones send ``REG-REQ?...`` to the service's gateway number; the carrier's SMSC delivers each as a deliver_sm
(an MO) to our bind, and we answer by submit_sm (an MT, ``REG-RESP?...``) whose delivery the SMSC later reports
in a receipt. Per configured carrier (:class:`CarrierLink`) a :class:`CarrierGateway` keeps one bind -- a
transceiver, or a transmitter/receiver pair -- and:

* reconnects forever with exponential back-off and jitter (the SMSC restarted, the TCP connection was reset, the
  bind was refused), resetting the back-off once a session has stayed up for ``reconnect_max`` seconds;
* submits with registered_delivery=1, GSM 7-bit when the text fits the default alphabet, else UCS-2; text longer
  than one SMS travels in message_payload so that one MT has one message_id and one receipt;
* keeps at most ``window`` submits outstanding, and on ESME_RTHROTTLED (or ESME_RMSGQFUL) pauses *the whole link*
  -- not only the refused message -- for an exponentially growing, jittered interval, then retries: a throttle is
  the SMSC asking the bind to slow down;
* answers deliver_sm at once and hands the work (an MO, a receipt) to a bounded queue served by worker tasks, so a
  slow ``on_mo`` never stalls the SMPP session;
* sheds load rather than collapse: an MO that waited in that queue longer than ``mo_max_wait`` is dropped unhandled
  (counted in ``mo_shed`` and reported to ``on_shed``) when a worker takes it. Past that age its phone is about to
  give up on the REG-RESP; serving it anyway would spend the same work on an answer nobody reads and make every MO
  behind it late too, which is how an overloaded FIFO ends up completing almost nothing. Shedding by age at the
  head of the queue costs microseconds and keeps the MO that are served young. The deliver_sm was already
  answered ESME_ROK by smpp34 (it cannot be answered otherwise, see below), so the phone's answer is the absence
  of a REG-RESP -- the same as for a lost SMS, which the phone's own retry handles -- and nothing was recorded or
  promised for it. Receipts are never shed. The age counts from when the gateway pulled the MO from smpp34, so
  the readers (``readers``, 256) must pull faster than the SMSC delivers even when the event loop is saturated;
  otherwise the backlog ages unseen inside smpp34 and every MO looks fresh (see ``_serve``). An optional
  ``admit`` hook lets the service hold new MOs back while it finishes work already started (the service's
  ``mo_admission``: authenticate calls first); held MOs keep ageing meanwhile;
* reassembles concatenated MO (UDH 8/16-bit references, SAR TLVs; :mod:`identity_core.mo_reassembly`), decodes
  the text per data_coding (:mod:`identity_core.sms_text`) and normalises the sender to E.164
  (:mod:`identity_core.numbers`);
* matches delivery receipts to the MTs it sent (receipted_message_id and message_state TLVs first, the Appendix B
  text ``id:... stat:... err:...`` when the TLVs are missing) and reports them to ``on_receipt``.

The SMPP library, and why
-------------------------
The identity core must not use the project's own SMPP code (import-linter forbids ``carrier_sim``): it has to
meet the SMSC as third-party software would. Two third-party ESMEs were considered:

* ``smpp34`` -- its Rust/tokio core does framing, windowing, timers and PDU codec; Python crosses into it once per
  message, which is what ~17k MO + 17k MT + 17k receipts a second on two cores needs. It exposes a request/response
  ``submit_sm`` (so the window and the throttle policy stay ours), TRX/TX/RX binds, the deliver_sm TLVs (SAR,
  receipt TLVs) and ``command_status`` of each response. **Chosen.**
* ``aiosmpplib`` -- pure Python; sending goes through a broker queue with results reported to a hook rather than
  returned, it awaits the user's hook *before* answering deliver_sm (a slow handler stalls the session), and it
  cannot answer deliver_sm with any status but ESME_ROK either. Slower and a worse fit.

What smpp34 (1.5.0) cannot do, and how this module copes:

* The deliver_sm_resp is sent by the Rust core before Python sees the PDU, always ESME_ROK -- except when its
  inbound queue (``inbound_capacity``) is full, when it answers ESME_RMSGQFUL (0x14) itself. So the choice the
  issue asks for is made as follows: **when the gateway's own bounded queue is full, the reader stops pulling from
  smpp34; smpp34 buffers up to ``inbound_capacity`` further PDUs, then refuses with ESME_RMSGQFUL** (the right
  status: "try again later", which SMSCs retry). RX_T_APPN (0x64) cannot be chosen at all. However, smpp34's
  ESME_RMSGQFUL deliver_sm_resp is malformed: command_length says 16 while 17 octets (a NUL message_id) follow,
  so the SMSC's framing breaks and it drops the session. ``inbound_capacity`` is therefore set large (65,536) so
  that this path is reached only under sustained overload.
* The enquire_link interval is fixed by smpp34's Python binding (every 30 s on the wire); it cannot be set.
  ``CarrierLink.enquire_link_interval`` drives this module's liveness check instead (``Client.is_alive()``), which
  also catches a session that died without smpp34 reporting ``Disconnected``.
* A submit in flight when the connection drops raises ``SmppError`` (ESME_RSYSERR): the SMSC may or may not have
  accepted it, so it is sent again after the rebind -- MT delivery is at least once, never silently lost. A
  submit left unanswered on a session that is still up is not sent again on it (the SMSC may yet take it, and a
  second copy would be a second REG-RESP on the phone): it goes again only once that session is replaced, after
  a per-message back-off (exponential from ``throttle_initial`` to ``throttle_max``, jittered; every back-off here
  is :mod:`identity_core.backoff`'s). Any other status an SMSC answers with, a generic_nack's included, is its
  verdict on the message.
* smpp34 raises that same ESME_RSYSERR while the session stays up when the SMSC answers a submit with a
  generic_nack ESME_RSYSERR, *and* when it answers with a submit_sm_resp smpp34 cannot decode -- an ESME_ROK
  resp whose message_id lacks its NUL, or with no body at all: the SMSC took the message. The three cannot be
  told apart, so such an answer on a live session is an **unknown outcome**: the MT is not sent again (each copy
  the SMSC took would be another REG-RESP on the phone; resending every 50 ms once flooded one phone with
  hundreds), :class:`MtOutcomeUnknown` is raised at once, carrying ESME_RSYSERR as a submit_sm_resp's
  ESME_RSYSERR's :class:`MtRejected` does, and ``mt_outcome_unknown`` counts it. This is what a careful ESME does
  with an answer it cannot read: it cannot claim the message failed, must not claim it succeeded (there is no
  message_id to match a receipt to), and must not guess by sending it again. Whether the session is up is asked
  of smpp34 (``Client.is_alive()``, a flag its connection task clears as the socket closes), so a dropped
  connection is still told apart and its submit resent after the rebind.
* smpp34 also gives up on a request by itself after a fixed 30 s and says so with the same ESME_RSYSERR. So
  ``response_timeout`` must be below 30 s (25 s by default; ``CarrierLink`` refuses more), and should smpp34's
  timer fire anyway, an ESME_RSYSERR that took that long on the still-bound session is read as "unanswered",
  not as a dropped connection: not sent again on that session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

import smpp34

from identity_core.backoff import ThrottlePause, jittered, resend_delay
from identity_core.cancellation import cancel_pending, next_item
from identity_core.mo_reassembly import InvalidSegment, MoReassembler, parse_segment
from identity_core.numbers import address_of, normalise_sender
from identity_core.sms_text import UndecodableText, decode_text, encode_mt_text, text_alphabet

__all__ = [
    "ESME_RMSGQFUL",
    "ESME_ROK",
    "ESME_RTHROTTLED",
    "CarrierGateway",
    "CarrierLink",
    "GatewayError",
    "GatewayUnavailable",
    "MoHandler",
    "MoMessage",
    "MtOutcomeUnknown",
    "MtRejected",
    "ReceiptHandler",
    "ReceiptReport",
    "ReceiptTracker",
    "ShedHandler",
    "TrackedReceiptHandler",
    "parse_receipt",
]

_log = logging.getLogger(__name__)

ESME_ROK: Final = 0x00000000
ESME_RMSGQFUL: Final = 0x00000014
ESME_RTHROTTLED: Final = 0x00000058
ESME_RSYSERR: Final = 0x00000008
#: smpp34 (1.5.0) gives up on a request by itself after this many seconds -- fixed, not settable -- and reports it as
#: SmppError("ESME_RSYSERR ..."), the very error it raises for a dropped connection. response_timeout must stay below
#: it so that our own timer (which knows the session is alive) fires first; see _submit for the backstop.
_SMPP34_REQUEST_TIMEOUT: Final = 30.0
#: Statuses that mean "later", not "never": the link pauses and the message is retried.
_RETRY_LATER: Final = frozenset({ESME_RTHROTTLED, ESME_RMSGQFUL})

# SMPP 3.4 section 5.3.2 tags the gateway reads or writes.
_TLV_RECEIPTED_MESSAGE_ID: Final = 0x001E
_TLV_NETWORK_ERROR_CODE: Final = 0x0423
_TLV_MESSAGE_PAYLOAD: Final = 0x0424
_TLV_MESSAGE_STATE: Final = 0x0427

# esm_class message type bits (SMPP 3.4 section 5.2.12): 0x04 SMSC delivery receipt, 0x20 intermediate
# delivery notification. SME acknowledgements (0x08, 0x10) are not receipts of ours.
_ESM_TYPE_MASK: Final = 0x3C
_ESM_DELIVERY_RECEIPT: Final = 0x04
_ESM_INTERMEDIATE: Final = 0x20

# message_state (SMPP 3.4 section 5.2.28) to the Appendix B "stat:" word; 9 (SKIPPED) is SMPP 5.0.
_STATE_WORDS: Final[dict[int, str]] = {
    1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD", 7: "UNKNOWN", 8: "REJECTD",
    9: "SKIPPED",
}
# Long or odd spellings SMSCs write in the receipt text, to the canonical seven-letter word.
_STATE_ALIASES: Final[dict[str, str]] = {
    "DELIVERED": "DELIVRD", "UNDELIVERABLE": "UNDELIV", "ACCEPTED": "ACCEPTD", "REJECTED": "REJECTD",
    "ENROUTE": "ENROUTE", "EN_ROUTE": "ENROUTE", "DELETED": "DELETED", "EXPIRED": "EXPIRED", "UNKNOWN": "UNKNOWN",
}
_NOT_FINAL: Final = frozenset({"ENROUTE"})
_RECEIPT_FIELD = re.compile(r"(?i)(?:^|\s)(id|stat|err):(\S*)")
_RECEIPT_TEXT = re.compile(r"(?i)\stext:")
#: SMPP 3.4 Appendix B: the receipt text's ``err:`` is "3 digits". A longer value (leading zeros aside) is no code
#: we can read; the receipt still reports its MT, with this as its error.
_ERR_LENGTH: Final = 3
_UNKNOWN_ERROR: Final = "unknown"

_STATUS_NAMES: Final[dict[int, str]] = {
    0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID", 0x04: "ESME_RINVBNDSTS",
    0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x14: "ESME_RMSGQFUL",
    0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI", 0x50: "ESME_RINVDSTTON",
    0x51: "ESME_RINVDSTNPI", 0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY",
    0xC4: "ESME_RINVOPTPARAMVAL", 0xFF: "ESME_RUNKNOWNERR",
}


# -- configuration and values ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CarrierLink:
    """How to reach one carrier's SMSC, and how hard to try.

    Field names follow :class:`identity_core.config.CarrierConfig` where the two overlap.
    """

    name: str
    smsc_host: str
    smsc_port: int
    system_id: str
    password: str
    #: The number phones send REG-REQ to (MO to it are registrations); also the source of every MT.
    gateway: str
    #: ISO 3166 region of the carrier (``"GB"``): turns national-format senders (TON 2) into E.164.
    country: str | None = None
    system_type: str = ""
    bind: Literal["transceiver", "pair"] = "transceiver"
    #: Submits outstanding at once (SMPP 3.4 section 2.7: the window both ends agree to keep).
    window: int = 10
    #: Seconds between liveness checks of each session (smpp34 sends enquire_link on its own 30 s timer).
    enquire_link_interval: float = 30.0
    reconnect_initial: float = 0.5
    reconnect_max: float = 30.0
    throttle_initial: float = 0.05
    throttle_max: float = 5.0
    connect_timeout: float = 10.0
    #: Seconds to wait for one submit_sm_resp; unanswered, the submit is sent again once its session is replaced.
    #: Below smpp34's own fixed 30 s request timeout (see __post_init__).
    response_timeout: float = 25.0
    #: Seconds send_mt may take in all (waiting for a bind, throttled pauses, retries) before it gives up.
    send_timeout: float = 120.0
    #: address_range of the bind: some SMSCs route MO by it (a regular expression on our SMSC emulator).
    address_range: str = ""
    #: Work (MO, receipts) waiting for the handlers; past it the reader stops pulling from the session.
    queue_size: int = 10_000
    #: Handler tasks. Each MO holds one for a store commit and a submit_sm round trip (tens of milliseconds
    #: under load), so by Little's law this caps MO/s at about workers / that time: 32 capped the bundled
    #: service near 650 MO/s on two cores while the CPU was still half idle (docs/performance.md).
    workers: int = 256
    #: Seconds an MO may wait in the queue before it is shed instead of handled: past this its phone is about
    #: to give up on the REG-RESP, and answering it would only delay the phones behind it (load shedding; see
    #: the module docstring). Receipts are never shed.
    mo_max_wait: float = 4.0
    #: Reader tasks per session, each with one smpp34 ``next()`` outstanding (see ``_serve``).
    readers: int = 256
    #: PDUs smpp34 may hold for us before it refuses deliver_sm itself (see the module docstring).
    inbound_capacity: int = 65_536
    reassembly_timeout: float = 120.0
    reassembly_max_groups: int = 10_000
    #: MT message ids remembered while their receipt is awaited; past it the oldest are forgotten.
    receipt_tracking: int = 1_000_000

    def __post_init__(self) -> None:
        if self.bind not in ("transceiver", "pair"):
            raise ValueError(f"bind must be 'transceiver' or 'pair', not {self.bind!r}")
        positive = ("window", "queue_size", "workers", "readers", "inbound_capacity", "reassembly_max_groups",
                    "receipt_tracking")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        timings = ("enquire_link_interval", "reconnect_initial", "reconnect_max", "throttle_initial",
                   "throttle_max", "connect_timeout", "response_timeout", "send_timeout", "reassembly_timeout",
                   "mo_max_wait")
        for name in timings:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.reconnect_max < self.reconnect_initial or self.throttle_max < self.throttle_initial:
            raise ValueError("a back-off maximum is below its initial value")
        if self.response_timeout >= _SMPP34_REQUEST_TIMEOUT:
            # smpp34 times a submit out itself after 30 s and reports it like a dropped connection: a longer
            # response_timeout would never be reached, and the submit would look lost rather than unanswered.
            raise ValueError(f"response_timeout must be below smpp34's fixed {_SMPP34_REQUEST_TIMEOUT:g} s "
                             "request timeout")


@dataclass(frozen=True, slots=True)
class MoMessage:
    """One whole MO, reassembled and decoded."""

    carrier: str
    #: source_addr exactly as the network stamped it, with its TON and NPI.
    source: str
    source_ton: int
    source_npi: int
    #: The sender in E.164 (``+`` and digits), or None when the source cannot be a phone number.
    sender: str | None
    destination: str
    text: str
    #: Wall-clock time (seconds since the epoch) the last segment arrived.
    received_at: float
    #: How many deliver_sm carried it.
    segments: int = 1
    #: Whether it was addressed to the carrier's gateway number (MO to other numbers are not registrations).
    to_gateway: bool = True


@dataclass(frozen=True, slots=True)
class ReceiptReport:
    """A delivery receipt as read from a deliver_sm: which MT, what became of it, and the network's error."""

    message_id: str
    state: str
    error: str | None
    final: bool
    #: True when the message id came from the receipted_message_id TLV (exact), False from the text.
    id_from_tlv: bool


MoHandler = Callable[[MoMessage], Awaitable[None]]
#: (message id, state, error): the receipt handler of ESMEs of this service's shape that do not report finality.
ReceiptHandler = Callable[[str, str, "str | None"], Awaitable[None]]
#: (message id, state, error, final): CarrierGateway's receipt handler. ``final`` False (ENROUTE, ACCEPTED, an
#: intermediate notification) means the gateway is still waiting for this MT's receipt, so the handler must not
#: forget the MT either.
TrackedReceiptHandler = Callable[[str, str, "str | None", bool], Awaitable[None]]
#: Told of every MO shed unhandled (see :attr:`CarrierLink.mo_max_wait`) and how long it had waited, in seconds.
ShedHandler = Callable[[MoMessage, float], None]


class GatewayError(Exception):
    """An MT the gateway could not get accepted. ``command_status`` is the SMSC's answer, when there was one."""

    def __init__(self, carrier: str, message: str, command_status: int | None = None) -> None:
        super().__init__(f"{carrier}: {message}")
        self.carrier = carrier
        self.command_status = command_status


class MtRejected(GatewayError):
    """The SMSC answered submit_sm with an error that retrying will not cure."""

    def __init__(self, carrier: str, command_status: int) -> None:
        name = _STATUS_NAMES.get(command_status, "unknown status")
        super().__init__(carrier, f"submit_sm refused with {name} (0x{command_status:08X})", command_status)


class MtOutcomeUnknown(GatewayError):
    """The SMSC answered submit_sm on a live session with something that may mean it took the message or not:
    a generic_nack ESME_RSYSERR or a response smpp34 could not decode (which smpp34 reports alike). Not sent
    again: see the module docstring."""

    def __init__(self, carrier: str, detail: str) -> None:
        super().__init__(carrier, f"submit_sm outcome unknown ({detail}); not sent again", ESME_RSYSERR)


class GatewayUnavailable(GatewayError):
    """No bound transmitter within send_timeout, or the gateway is stopping."""


# -- receipts (pure) --------------------------------------------------------------------------------------------


def _state_word(raw: str) -> str:
    word = raw.strip().upper()
    return _STATE_ALIASES.get(word, word)


def parse_receipt(short_message: bytes, esm_class: int, tlvs: Mapping[int, bytes]) -> ReceiptReport | None:
    """The receipt a deliver_sm carries, or None when it is not one (an MO).

    A receipt is a deliver_sm whose esm_class says "SMSC delivery receipt" or "intermediate notification", or one
    carrying receipted_message_id. The TLVs are preferred: receipted_message_id is the submit_sm_resp id verbatim,
    whereas the text's ``id:`` is "vendor specific" and often written in another base (SMPP 3.4 Appendix B).
    """
    message_type = esm_class & _ESM_TYPE_MASK
    tlv_id = tlvs.get(_TLV_RECEIPTED_MESSAGE_ID)
    if message_type not in (_ESM_DELIVERY_RECEIPT, _ESM_INTERMEDIATE) and tlv_id is None:
        return None
    # Receipt text is ASCII in practice (GSM 7-bit unpacked agrees with ASCII on every character it uses);
    # latin-1 never fails, so an odd octet cannot hide the fields.
    text = short_message.decode("latin-1")
    cut = _RECEIPT_TEXT.search(text)
    head = text[: cut.start()] if cut else text  # the quoted message excerpt may contain "stat:" itself
    fields: dict[str, str] = {}
    for key, value in _RECEIPT_FIELD.findall(head):
        fields.setdefault(key.lower(), value)
    message_id = tlv_id.rstrip(b"\x00").decode("latin-1") if tlv_id is not None else fields.get("id", "")
    if not message_id:
        return None
    raw_state = tlvs.get(_TLV_MESSAGE_STATE)
    if raw_state is not None and len(raw_state) == 1 and raw_state[0] in _STATE_WORDS:
        state = _STATE_WORDS[raw_state[0]]
    elif "stat" in fields:
        state = _state_word(fields["stat"])
    else:
        state = "ENROUTE" if message_type == _ESM_INTERMEDIATE else "UNKNOWN"
    error: str | None = None
    network_error = tlvs.get(_TLV_NETWORK_ERROR_CODE)
    if network_error is not None and len(network_error) == 3:
        code = int.from_bytes(network_error[1:], "big")  # octet 0 is the network type (GSM, ANSI-136, ...)
        error = str(code) if code else None
    elif fields.get("err"):
        error = _text_error(fields["err"])
    final = message_type != _ESM_INTERMEDIATE and state not in _NOT_FINAL
    return ReceiptReport(message_id, state, error, final, tlv_id is not None)


def _text_error(err: str) -> str | None:
    """The receipt text's ``err:`` value as a report's error: None for none (all zeros), the code without its
    leading zeros, a short non-numeric value as written, and :data:`_UNKNOWN_ERROR` past Appendix B's three.

    No int(): past 4,300 digits it raises ValueError (CPython's conversion limit), and a receipt in message_payload
    can carry that many; the receipt was then dropped as unreadable and its MT stayed awaited. isascii too: the
    text is decoded as Latin-1, and '²' (0xB2) is a digit to str.isdigit(), which once ended the reader.
    """
    if err.isascii() and err.isdigit():
        code = err.lstrip("0")
        if not code:
            return None
        return code if len(code) <= _ERR_LENGTH else _UNKNOWN_ERROR
    return err if len(err) <= _ERR_LENGTH else _UNKNOWN_ERROR


#: smpp34 reports an SMSC's error answer (a generic_nack, an error *_resp) as SmppError("ESME_X (0x0000000N)").
_STATUS_IN_ERROR: Final = re.compile(r"\(0x([0-9A-Fa-f]{8})\)\s*$")


def _status_of(err: smpp34.SmppError) -> int | None:
    """The command_status an SMSC answered with, when ``err`` carries one; None when it may not have answered.

    smpp34 says ESME_RSYSERR for its own failures (a connection reset under a submit, its request timer), for a
    response it could not decode and for a generic_nack ESME_RSYSERR alike, so that status is None here: the
    caller tells the cases apart by the state of the session (see ``CarrierGateway._submit``). Any other status
    is the SMSC's verdict on the message."""
    match = _STATUS_IN_ERROR.search(str(err))
    if match is None:
        return None
    status = int(match.group(1), 16)
    return None if status == ESME_RSYSERR else status


_HEX_ID: Final = re.compile(r"[0-9A-Fa-f]+")
_DEC_ID: Final = re.compile(r"[0-9]+")


def _hex_value(message_id: str) -> int | None:
    """The id read as hexadecimal, when it is written in hex digits only."""
    if not _HEX_ID.fullmatch(message_id):
        return None
    return int(message_id, 16)


def _dec_value(message_id: str) -> int | None:
    """The id read as decimal, when it is written in decimal digits only."""
    if not _DEC_ID.fullmatch(message_id):
        return None
    with contextlib.suppress(ValueError):  # past int()'s digit limit: no number we could have issued
        return int(message_id, 10)
    return None


def _hex_letters(message_id: str) -> bool:
    """Whether the id can only be hexadecimal (hex digits, at least one a letter)."""
    return _HEX_ID.fullmatch(message_id) is not None and _DEC_ID.fullmatch(message_id) is None


class ReceiptTracker:
    """MT message ids awaiting a receipt, bounded (the oldest forgotten, counted in ``forgotten``); finds an id the
    receipt text writes in another base. Public so that other ESMEs of this service's shape can share it.

    Which base is "the other" is learnt from the ids themselves: once one submit_sm_resp id has a hex letter, the
    link's ids are hex (``hex_ids``) and a text id of decimal digits only is read as decimal; until then they are
    decimal, and only a text id with hex letters is read as hex. A text id of the link's own form is matched only
    to the same number in that form (letter case, leading zeros): read in the other base, "10" in a link of
    decimal ids would be 16 and close another MT's receipt.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.forgotten = 0
        #: Whether the link's ids have been seen to be hexadecimal (a submit_sm_resp id with a hex letter).
        self.hex_ids = False
        self._ids: OrderedDict[str, float] = OrderedDict()
        self._by_hex: dict[int, str] = {}  # tracked ids by their hexadecimal reading
        self._by_dec: dict[int, str] = {}  # tracked ids of decimal digits by their decimal reading

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, message_id: str, now: float) -> None:
        """Wait for ``message_id``'s receipt (sent at ``now``)."""
        if not self.hex_ids and _hex_letters(message_id):
            self.hex_ids = True
        self._ids[message_id] = now
        _index(message_id, self._by_hex, self._by_dec)
        while len(self._ids) > self.capacity:
            old, _ = self._ids.popitem(last=False)
            _unindex(old, self._by_hex, self._by_dec)
            self.forgotten += 1

    def find(self, message_id: str, exact: bool) -> str | None:
        """The tracked id ``message_id`` stands for (``exact``: only as written, as a receipt TLV gives it)."""
        if message_id in self._ids:
            return message_id
        value = _hex_value(message_id)
        same = self._by_hex.get(value) if value is not None else None
        if exact:
            # A TLV id is the response's id verbatim, but for the case of its letters: "ABC1" is "abc1" (hex
            # digits know no case), while "10" is not "0A" (another base's reading of another id).
            return same if same is not None and same.casefold() == message_id.casefold() else None
        if same is not None:
            return same  # the same number in the same base (letter case, leading zeros)
        if self.hex_ids:
            # Hex ids, a decimal-digit text id: SMSCs that answer in hex often write the receipt's id in decimal.
            value = _dec_value(message_id)
            return self._by_hex.get(value) if value is not None else None
        if _hex_letters(message_id):
            return self._by_dec.get(_hex_value(message_id) or 0)  # decimal ids, a text id in hex
        return None  # decimal ids and a decimal text id: only the same number (above)

    def remove(self, message_id: str) -> None:
        """Stop waiting for ``message_id``'s receipt."""
        if self._ids.pop(message_id, None) is not None:
            _unindex(message_id, self._by_hex, self._by_dec)


def _index(message_id: str, by_hex: dict[int, str], by_dec: dict[int, str]) -> None:
    value = _hex_value(message_id)
    if value is not None:
        by_hex.setdefault(value, message_id)
    value = _dec_value(message_id)
    if value is not None:
        by_dec.setdefault(value, message_id)


def _unindex(message_id: str, by_hex: dict[int, str], by_dec: dict[int, str]) -> None:
    for table, value in ((by_hex, _hex_value(message_id)), (by_dec, _dec_value(message_id))):
        if value is not None and table.get(value) == message_id:
            del table[value]


class _EarlyReceipts:
    """Receipts that arrived before the submit_sm_resp announcing their id (SMPP does not order the two), held
    until that response or for a while; found by exact id or, for ids read from receipt text, by number.

    Several may be held for one id (an intermediate and the final receipt can both overtake the response); they
    are released together, in arrival order. When full, the oldest held receipt makes room for the new one: it is
    the likeliest to be for no MT in flight at all (one from before a restart), whereas the newest is the likeliest
    to be waiting for a response still on its way.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._seq = 0
        # Every held receipt by arrival number (oldest first: eviction and expiry order), with its key and time.
        self._order: OrderedDict[int, tuple[str, ReceiptReport, float]] = OrderedDict()
        self._held: dict[str, list[int]] = {}  # receipt id -> its receipts' arrival numbers, in arrival order
        self._by_hex: dict[int, str] = {}  # held receipt ids by their readings, as in ReceiptTracker
        self._by_dec: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self._order)

    def hold(self, receipt: ReceiptReport, now: float) -> ReceiptReport | None:
        """Hold a receipt; when full, the oldest receipt held is let go to make room and returned (the caller
        reports it at once)."""
        evicted = self._pop_oldest() if len(self._order) >= self.capacity else None
        key = receipt.message_id
        self._seq += 1
        self._order[self._seq] = (key, receipt, now)
        if key not in self._held:
            self._held[key] = []
            _index(key, self._by_hex, self._by_dec)
        self._held[key].append(self._seq)
        return evicted

    def _pop_oldest(self) -> ReceiptReport:
        _, (key, receipt, _) = self._order.popitem(last=False)
        seqs = self._held[key]
        seqs.pop(0)  # the oldest overall is the oldest of its id
        if not seqs:
            del self._held[key]
            _unindex(key, self._by_hex, self._by_dec)
        return receipt

    def _release(self, key: str, text_only: bool) -> list[ReceiptReport]:
        out: list[ReceiptReport] = []
        kept: list[int] = []
        for seq in self._held.pop(key):
            receipt = self._order[seq][1]
            if text_only and receipt.id_from_tlv:
                kept.append(seq)  # a TLV id matches verbatim but for letter case (see ReceiptTracker.find)
                continue
            del self._order[seq]
            out.append(receipt)
        if kept:
            self._held[key] = kept
        else:
            _unindex(key, self._by_hex, self._by_dec)
        return out

    def take(self, message_id: str, hex_ids: bool) -> list[ReceiptReport]:
        """The held receipts for a message id just announced, in arrival order (none: empty). ``hex_ids``: the
        link's ids are hexadecimal (:attr:`ReceiptTracker.hex_ids`), which says which text ids are in the other
        base, as in :meth:`ReceiptTracker.find`."""
        if not self._held:
            return []
        if message_id in self._held:
            return self._release(message_id, text_only=False)
        value = _hex_value(message_id)
        key = self._by_hex.get(value) if value is not None else None
        if key is not None:
            # The same number in the same base; a TLV id only if it differs from the response's in letter case.
            released = self._release(key, text_only=key.casefold() != message_id.casefold())
            if released:
                return released
        if hex_ids:
            # A hex response id; held text ids of decimal digits are its decimal writing.
            key = self._by_dec.get(value) if value is not None else None
        else:
            # A decimal response id; held text ids with hex letters are its hex writing.
            value = _dec_value(message_id)
            key = self._by_hex.get(value) if value is not None else None
            key = key if key is not None and _hex_letters(key) else None
        return self._release(key, text_only=True) if key is not None else []

    def expire(self, limit: float) -> list[ReceiptReport]:
        """Receipts held since before ``limit``: their response is not coming (or came before we held them)."""
        out = []
        while self._order:
            _, _, held_at = next(iter(self._order.values()))
            if held_at > limit:
                break
            out.append(self._pop_oldest())
        return out


# -- the gateway -----------------------------------------------------------------------------------------------

_BindType = Literal["TRX", "TX", "RX"]


@dataclass(slots=True)
class _Leg:
    """One SMPP session of the link: the transceiver, or one half of a transmitter/receiver pair."""

    bind_type: _BindType
    bound: asyncio.Event
    session: smpp34.Smsc | None = None
    #: The client that bound ``session``: asked whether that session is still up after a submit failed on it.
    client: smpp34.Client | None = None
    task: asyncio.Task[None] | None = None


@dataclass(frozen=True, slots=True)
class _ReceiptWork:
    message_id: str
    state: str
    error: str | None
    final: bool


class CarrierGateway:
    """The ESME side of one carrier link. See the module docstring."""

    def __init__(self, link: CarrierLink, on_mo: MoHandler, on_receipt: TrackedReceiptHandler | None = None, *,
                 rng: random.Random | None = None, on_shed: ShedHandler | None = None,
                 admit: Callable[[], Awaitable[None]] | None = None) -> None:
        self.link = link
        self.on_mo = on_mo
        self.on_receipt = on_receipt
        self.on_shed = on_shed
        #: Awaited before each MO is handled (never before a receipt): the service holds MOs back with it.
        self.admit = admit
        #: Set while every session of the link is bound (both halves of a pair).
        self.bound = asyncio.Event()
        self._rng = rng or random.Random()
        if link.bind == "transceiver":
            self._legs = [_Leg("TRX", asyncio.Event())]
        else:
            self._legs = [_Leg("TX", asyncio.Event()), _Leg("RX", asyncio.Event())]
        self._tx = self._legs[0]
        self._source = address_of(link.gateway)
        self._gateway_digits = self._source[2]
        self._reassembler = MoReassembler(link.reassembly_timeout, link.reassembly_max_groups)
        self._tracker = ReceiptTracker(link.receipt_tracking)
        self._early = _EarlyReceipts(link.queue_size)
        self._window = asyncio.Semaphore(link.window)
        # Each item with the monotonic time it was queued, so that a worker can tell a stale MO (mo_max_wait).
        # Bounded by the readers, not by the queue (see _read): at most queue_size + readers - 1 from the session,
        # plus receipts released from _early, which are bounded by the window.
        self._queue: asyncio.Queue[tuple[float, MoMessage | _ReceiptWork]] = asyncio.Queue()
        #: Set when a worker takes work from the queue: a reader waiting for room looks again.
        self._room = asyncio.Event()
        self._readers_waiting = 0  # readers held back by a full queue (see _read)
        self._closing = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._service_tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        # Throttling: no submit leaves before _pause.until (monotonic).
        self._pause = ThrottlePause(link.throttle_initial, link.throttle_max)
        # Metrics: plain counters, read by the service's /metrics and by tests.
        self.binds = 0
        self.connect_failures = 0
        self.reconnects = 0
        self.liveness_failures = 0
        self.deliver_sm_received = 0
        self.deliver_sm_unreadable = 0
        self.mo_segments = 0
        self.mo_received = 0
        self.mo_rejected = 0
        self.mo_incomplete = 0
        self.queue_full = 0
        self.mo_shed = 0
        self.mo_dropped_at_stop = 0
        self.handler_errors = 0
        self.mt_sent = 0
        self.mt_throttled = 0
        self.mt_queue_full = 0
        self.mt_retried = 0
        self.mt_outcome_unknown = 0
        self.mt_failed = 0
        self.receipts = 0
        self.receipts_matched = 0
        self.receipts_unmatched = 0

    # -- lifecycle ---------------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start binding (and rebinding) in the background; wait on :attr:`bound` for the first bind."""
        if self._runner is not None:
            raise RuntimeError("a CarrierGateway starts once")
        self._runner = asyncio.create_task(self._run(), name=f"gateway {self.link.name}")
        self._runner.add_done_callback(self._runner_done)
        await asyncio.sleep(0)  # let the runner create its tasks, so that stop() right after start() finds them

    def _runner_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            _log.error("gateway %s stopped on an error", self.link.name, exc_info=task.exception())

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for leg in self._legs:
                leg.task = group.create_task(self._run_leg(leg), name=f"{self.link.name} {leg.bind_type}")
            self._service_tasks = [group.create_task(self._work()) for _ in range(self.link.workers)]
            self._service_tasks.append(group.create_task(self._housekeep()))

    async def stop(self, grace: float = 5.0) -> None:
        """Unbind every session, let the handlers finish the work already taken (up to ``grace`` seconds), stop.

        Work already taken matters: smpp34 acknowledged those deliver_sm, so the SMSC will not send them again. MO
        still queued or being handled when ``grace`` runs out are lost: counted in ``mo_dropped_at_stop`` and logged.
        """
        if self._runner is None or self._closing.is_set():
            return
        self._closing.set()
        self.bound.clear()
        for leg in self._legs:
            session = leg.session
            if session is not None:
                with contextlib.suppress(smpp34.SmppError, TimeoutError, OSError):
                    async with asyncio.timeout(grace):
                        await session.unbind()
        # A leg returns by itself: its reader saw Disconnected after the unbind, or its back-off sleep saw
        # _closing. One still connecting gets the grace period -- cancelling smpp34's connect() could leave a
        # bound session behind that nobody unbinds -- and is cancelled only after it.
        tasks = [leg.task for leg in self._legs if leg.task is not None]
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await asyncio.gather(*tasks, return_exceptions=True)
        for task in tasks:
            task.cancel()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(grace):
                await self._queue.join()
        for task in self._service_tasks:
            task.cancel()
        # Grace ran out with work still queued. Its deliver_sm were acknowledged, so the SMSC will not send those MO
        # again: they are lost, and counted so that a stop that loses registrations is seen (the workers count the
        # MO whose handling they were cancelled in). Receipts left here are lost too; the MT stays unconfirmed.
        dropped_receipts = 0
        while not self._queue.empty():
            _, item = self._queue.get_nowait()
            self._queue.task_done()
            if isinstance(item, MoMessage):
                self.mo_dropped_at_stop += 1
            else:
                dropped_receipts += 1
        # Bounded, as every wait above: a task that outlives its cancellation must not hold stop() forever.
        await asyncio.wait({self._runner}, timeout=grace)
        if self.mo_dropped_at_stop or dropped_receipts:
            _log.warning("%s: stopped with %d acknowledged MO and %d receipts unhandled (grace of %s s ran out)",
                         self.link.name, self.mo_dropped_at_stop, dropped_receipts, grace)
        if not self._runner.done():
            _log.error("gateway %s: tasks still running %s s after they were cancelled", self.link.name, grace)
        elif not self._runner.cancelled():
            self._runner.result()  # a crash of the runner is the caller's to see, as _runner_done logged it

    async def __aenter__(self) -> CarrierGateway:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def metrics(self) -> dict[str, int]:
        """Every counter, plus the current sizes of the queues and tables."""
        names = ("binds", "connect_failures", "reconnects", "liveness_failures", "deliver_sm_received",
                 "deliver_sm_unreadable", "mo_segments", "mo_received", "mo_rejected", "mo_incomplete", "queue_full",
                 "mo_shed", "mo_dropped_at_stop",
                 "handler_errors", "mt_sent", "mt_throttled", "mt_queue_full", "mt_retried", "mt_outcome_unknown",
                 "mt_failed", "receipts", "receipts_matched", "receipts_unmatched")
        out = {name: int(getattr(self, name)) for name in names}
        out.update(queue=self._queue.qsize(), in_flight=self._in_flight, awaiting_receipt=len(self._tracker),
                   reassembly_pending=self._reassembler.pending_groups,
                   mo_duplicate_segments=self._reassembler.duplicates)
        return out

    # -- sessions ----------------------------------------------------------------------------------------------

    def _client(self, bind_type: _BindType) -> smpp34.Client:
        link = self.link
        return smpp34.Client(
            link.smsc_host, link.smsc_port, link.system_id, link.password,
            bind_type=bind_type, system_type=link.system_type, address_range=link.address_range,
            window_size=link.window, inbound_capacity=link.inbound_capacity,
            connect_timeout_ms=int(link.connect_timeout * 1000),
        )

    async def _run_leg(self, leg: _Leg) -> None:
        link = self.link
        delay = link.reconnect_initial
        attempt = 0
        while not self._closing.is_set():
            if attempt:
                # Back-off that ends early when the gateway stops, so stop() never waits out a long back-off.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(jittered(delay, self._rng, link.reconnect_max)):
                        await self._closing.wait()
                if self._closing.is_set():
                    return
                delay = min(delay * 2, link.reconnect_max)
            attempt += 1
            client = self._client(leg.bind_type)
            try:
                # smpp34 has its own connect timeout; ours is the backstop should its future never resolve.
                async with asyncio.timeout(link.connect_timeout * 2):
                    session = await client.connect()
            except (smpp34.SmppError, OSError, TimeoutError) as err:
                self.connect_failures += 1
                # smpp34 does not surface a bind_resp's error status: a refused bind (wrong system_id or password)
                # looks like a bind that timed out, so say both when the TCP connection itself was made.
                hint = ("" if isinstance(err, OSError) else
                        " (no bind_resp in time, or a refusal smpp34 does not report: check system_id and password)")
                _log.warning("%s: %s bind to %s:%s failed: %s%s", link.name, leg.bind_type, link.smsc_host,
                             link.smsc_port, err, hint)
                await self._close_client(client)
                continue
            if self._closing.is_set():
                with contextlib.suppress(smpp34.SmppError, TimeoutError):
                    async with asyncio.timeout(link.connect_timeout):
                        await session.unbind()
                await self._close_client(client)
                return
            self.binds += 1
            bound_at = time.monotonic()
            leg.session, leg.client = session, client
            leg.bound.set()
            self._update_bound()
            _log.info("%s: bound %s to %s:%s", link.name, leg.bind_type, link.smsc_host, link.smsc_port)
            try:
                await self._serve(leg, client, session)
            finally:
                leg.session, leg.client = None, None
                leg.bound.clear()
                self._update_bound()
                await self._close_client(client)
            if self._closing.is_set():
                return
            self.reconnects += 1
            _log.warning("%s: %s session lost; rebinding", link.name, leg.bind_type)
            if time.monotonic() - bound_at >= link.reconnect_max:
                delay = link.reconnect_initial  # it was a stable session: start the back-off afresh

    def _update_bound(self) -> None:
        if all(leg.bound.is_set() for leg in self._legs) and not self._closing.is_set():
            self.bound.set()
        else:
            self.bound.clear()

    async def _close_client(self, client: smpp34.Client) -> None:
        with contextlib.suppress(smpp34.SmppError, TimeoutError, OSError, RuntimeError):
            async with asyncio.timeout(self.link.connect_timeout):
                await client.stop()

    async def _serve(self, leg: _Leg, client: smpp34.Client, session: smpp34.Smsc) -> None:
        """Read the session until it ends; every enquire_link_interval check that it is still alive."""
        # Many readers, each with a next() outstanding. smpp34 completes each next() through the event loop, so
        # one loop iteration hands Python at most `readers` PDUs. One reader capped the link near 2,000
        # deliver_sm/s; 8 were still too few once the loop was saturated (iterations of tens of milliseconds):
        # in a 100k-phone storm the SMSC's MOs then waited seconds inside smpp34, where no age is visible, so
        # none was ever shed, all were answered late and 70 % of the phones gave up (docs/performance.md).
        readers = {
            asyncio.create_task(self._read(session), name=f"{self.link.name} {leg.bind_type} reader {i}")
            for i in range(self.link.readers)
        }
        dead_checks = 0
        try:
            while True:
                done, _ = await asyncio.wait(
                    readers, timeout=self.link.enquire_link_interval, return_when=asyncio.FIRST_COMPLETED
                )
                if done:
                    for reader in done:
                        reader.result()  # surfaces a bug in a reader rather than rebinding over it
                    return
                try:
                    async with asyncio.timeout(self.link.enquire_link_interval):
                        alive = await client.is_alive()
                except TimeoutError:
                    alive = False
                # Two checks in a row: a session that just died gets one interval to report Disconnected itself.
                dead_checks = 0 if alive else dead_checks + 1
                if dead_checks >= 2:
                    self.liveness_failures += 1
                    _log.warning("%s: %s session is dead but never said so; rebinding", self.link.name,
                                 leg.bind_type)
                    return
        finally:
            for reader in readers:
                reader.cancel()
            leg_cancelled = False
            for reader in readers:
                try:
                    await reader
                except asyncio.CancelledError:
                    # The reader's own cancellation is expected; the leg's is not ours to swallow: a leg cancelled
                    # here would otherwise return as if its session had merely ended, and rebind.
                    leg_cancelled = leg_cancelled or cancel_pending()
            if leg_cancelled:
                raise asyncio.CancelledError

    async def _read(self, session: smpp34.Smsc) -> None:
        limit = self.link.queue_size
        queue = self._queue
        while True:
            if queue.qsize() >= limit:
                # The handlers are behind: stop pulling, so that smpp34 holds further PDUs (module docstring).
                # Checked before pulling rather than by a blocking put after it, so that a reader cancelled at
                # the end of a session never holds a PDU smpp34 has already acknowledged.
                if self._readers_waiting == 0:
                    # Once per overload, not once per reader: it lasts until every reader pulls again.
                    self.queue_full += 1
                self._readers_waiting += 1
                try:
                    while queue.qsize() >= limit:
                        self._room.clear()
                        await self._room.wait()
                finally:
                    self._readers_waiting -= 1
            try:
                event = await session.next()
            except smpp34.SmppError as err:
                _log.warning("%s: session ended with %s", self.link.name, err)
                return
            if isinstance(event, smpp34.Disconnected):
                return
            self.deliver_sm_received += 1
            try:
                work = self._on_deliver_sm(event)
            except Exception:
                # smpp34 has acknowledged it already; a defect of ours in reading it is logged and counted, and
                # the session goes on rather than the gateway stopping with nothing to rebind it.
                self.deliver_sm_unreadable += 1
                _log.exception("%s: deliver_sm from %s could not be read; dropped", self.link.name,
                               getattr(event, "source_addr", "?"))
                continue
            if work is None:
                continue
            queue.put_nowait((time.monotonic(), work))

    # -- inbound: MO and receipts ------------------------------------------------------------------------------

    def _on_deliver_sm(self, event: smpp34.DeliverSmEvent) -> MoMessage | _ReceiptWork | None:
        tlvs = {tlv.tag: tlv.value for tlv in event.tlvs}
        esm_class = event.esm_class
        short_message = event.short_message
        payload = tlvs.get(_TLV_MESSAGE_PAYLOAD)
        if payload is not None and not short_message:
            # SMPP 3.4 5.3.2.32: message_payload instead of short_message -- for a receipt's text as for an MO's,
            # so substituted before the receipt is read.
            short_message = payload
        receipt = parse_receipt(short_message, esm_class, tlvs)
        if receipt is not None:
            # parse_receipt reads the id as Latin-1, octet for octet; smpp34 hands a submit_sm_resp's message_id
            # over as lossy UTF-8 (each invalid octet U+FFFD). Read alike, or a receipt for an id with a non-UTF-8
            # octet never matches its MT ('\xff' against '\ufffd'). Latin-1 round-trips, so the octets are intact.
            smpp34_id = receipt.message_id.encode("latin-1").decode("utf-8", "replace")
            if smpp34_id != receipt.message_id:
                receipt = replace(receipt, message_id=smpp34_id)
            return self._take_receipt(receipt)
        if esm_class & _ESM_TYPE_MASK in (_ESM_DELIVERY_RECEIPT, _ESM_INTERMEDIATE):
            # The SMSC says receipt but no id can be read from it: it cannot be matched to an MT, and it is not an
            # MO either (handed on as one it would be a message from the phone to the gateway number).
            self.deliver_sm_unreadable += 1
            _log.warning("%s: receipt from %s without a readable message id (esm_class 0x%02X); dropped",
                         self.link.name, event.source_addr, esm_class)
            return None
        try:
            segment = parse_segment(short_message, esm_class, event.data_coding, tlvs)
        except InvalidSegment as err:
            self.mo_rejected += 1
            _log.info("%s: MO from %s refused: %s", self.link.name, event.source_addr, err)
            return None
        if segment.concatenation is not None:
            self.mo_segments += 1
        origin = (event.source_addr, event.source_addr_ton, event.source_addr_npi, event.destination_addr)
        whole = self._reassembler.add(origin, segment, time.monotonic())
        if whole is None:
            return None
        try:
            alphabets = {text_alphabet(coding) for coding, _ in whole.parts}
            if len(alphabets) == 1:
                # Joined before decoding: a UCS-2 surrogate pair or a GSM escape may straddle two segments. By
                # alphabet, not data_coding: parts that differ only in message class (0x08, 0x18) are one text.
                text = decode_text(whole.body, whole.parts[0][0])
            else:
                text = "".join(decode_text(body, coding) for coding, body in whole.parts)
        except UndecodableText as err:
            self.mo_rejected += 1
            _log.info("%s: MO from %s refused: %s", self.link.name, event.source_addr, err)
            return None
        self.mo_received += 1
        destination = event.destination_addr
        return MoMessage(
            carrier=self.link.name,
            source=event.source_addr,
            source_ton=event.source_addr_ton,
            source_npi=event.source_addr_npi,
            sender=normalise_sender(event.source_addr, event.source_addr_ton, event.source_addr_npi,
                                    self.link.country),
            destination=destination,
            text=text,
            received_at=time.time(),
            segments=len(whole.parts),
            to_gateway=destination.lstrip("+") == self._gateway_digits,
        )

    def _take_receipt(self, receipt: ReceiptReport) -> _ReceiptWork | None:
        self.receipts += 1
        found = self._tracker.find(receipt.message_id, exact=receipt.id_from_tlv)
        if found is None and self._in_flight > 0:
            # A receipt may overtake the submit_sm_resp that announces its id: held until that response.
            evicted = self._early.hold(receipt, time.monotonic())
            if evicted is None:
                return None
            # Full: the oldest held receipt made room and is reported now, in the new one's place.
            return self._receipt_work(evicted, self._tracker.find(evicted.message_id, exact=evicted.id_from_tlv))
        return self._receipt_work(receipt, found)

    def _receipt_work(self, receipt: ReceiptReport, found: str | None) -> _ReceiptWork:
        if found is None:
            # Not one we are waiting for: a duplicate, one from before a restart, or an id we never issued.
            # Still reported -- the service's store may know it -- but counted apart.
            self.receipts_unmatched += 1
            return _ReceiptWork(receipt.message_id, receipt.state, receipt.error, receipt.final)
        self.receipts_matched += 1
        if receipt.final:
            self._tracker.remove(found)
        return _ReceiptWork(found, receipt.state, receipt.error, receipt.final)

    async def _work(self) -> None:
        max_wait = self.link.mo_max_wait
        while True:
            queued_at, item = await next_item(self._queue)  # not queue.get(): see identity_core.cancellation
            if not self._room.is_set():
                self._room.set()
            try:
                if isinstance(item, MoMessage):
                    if await self._admitted(queued_at, max_wait):
                        await self.on_mo(item)
                    else:
                        self._shed(item, time.monotonic() - queued_at)
                elif self.on_receipt is not None:
                    await self.on_receipt(item.message_id, item.state, item.error, item.final)
            except asyncio.CancelledError:
                if isinstance(item, MoMessage):
                    self.mo_dropped_at_stop += 1  # cancelled by stop() mid-way: its handling did not finish
                raise
            except Exception:
                # A handler's bug must not take the carrier link down with it; it is counted and logged.
                self.handler_errors += 1
                _log.exception("%s: handler failed", self.link.name)
            finally:
                self._queue.task_done()

    async def _admitted(self, queued_at: float, max_wait: float) -> bool:
        """Whether an MO queued at ``queued_at`` is still worth handling, after ``admit`` let it through.

        A stale MO is shed without asking ``admit``, and ``admit`` is waited for no longer than the MO's remaining
        life. Otherwise every worker could sit at a closed gate while the MOs behind them went stale unshed: the
        queue would fill, the readers stop, and the backlog move back into smpp34, where its age is invisible.
        """
        remaining = max_wait - (time.monotonic() - queued_at)
        if remaining < 0:
            return False  # past mo_max_wait: shed, as before there was a gate
        if self.admit is None or self._closing.is_set():
            return True  # stopping: handle what was taken (see stop()), gate or not
        try:
            async with asyncio.timeout(remaining):
                await self.admit()
        except TimeoutError:
            return False
        return True

    def _shed(self, mo: MoMessage, waited: float) -> None:
        self.mo_shed += 1
        if self.on_shed is not None:
            self.on_shed(mo, waited)

    async def _housekeep(self) -> None:
        period = min(1.0, self.link.reassembly_timeout / 4, self.link.response_timeout / 4)
        while True:
            await asyncio.sleep(period)
            self.mo_incomplete += len(self._reassembler.expire(time.monotonic()))
            for receipt in self._early.expire(time.monotonic() - self.link.response_timeout):
                found = self._tracker.find(receipt.message_id, exact=receipt.id_from_tlv)
                self._queue.put_nowait((time.monotonic(), self._receipt_work(receipt, found)))

    # -- outbound: MT ------------------------------------------------------------------------------------------

    async def send_mt(self, destination: str, text: str) -> str:
        """Submit ``text`` to ``destination`` (E.164) with a receipt requested; the SMSC's message_id.

        Waits for a bind, honours the window and throttling, and resends after a lost connection, all within
        ``send_timeout``. Raises :class:`MtRejected` when the SMSC refuses for good, :class:`GatewayUnavailable`
        when no attempt could be completed in time or the gateway is stopping.
        """
        link = self.link
        if self._runner is None or self._closing.is_set():
            raise GatewayUnavailable(link.name, "the gateway is not running")
        dest_ton, dest_npi, dest_addr = address_of(destination)
        data_coding, data, fits = encode_mt_text(text)
        short_message, tlvs = (data, []) if fits else (b"", [smpp34.Tlv(_TLV_MESSAGE_PAYLOAD, data)])
        source_ton, source_npi, source_addr = self._source
        fields: dict[str, Any] = {
            "source_addr": source_addr, "source_addr_ton": source_ton, "source_addr_npi": source_npi,
            "dest_addr_ton": dest_ton, "dest_addr_npi": dest_npi, "registered_delivery": 1,
            "data_coding": data_coding, "tlvs": tlvs,
        }
        try:
            async with asyncio.timeout(link.send_timeout):
                return await self._submit(dest_addr, short_message, fields)
        except TimeoutError:
            self.mt_failed += 1
            raise GatewayUnavailable(link.name, f"no submit accepted within {link.send_timeout} s") from None
        except GatewayError:
            self.mt_failed += 1
            raise

    async def _submit(self, destination: str, short_message: bytes, fields: dict[str, Any]) -> str:
        unanswered_on: smpp34.Smsc | None = None
        resends = 0
        while True:
            if unanswered_on is not None:
                # The last submit went unanswered, or its connection dropped: the SMSC may yet take it (or have
                # taken it), so a second copy goes only on another session (after a rebind), never beside the
                # first -- and after a back-off of its own, growing with each copy of this MT, so that an SMSC
                # that fails every submit is not met with a resend the moment each new session is bound.
                await self._session_other_than(unanswered_on)
                unanswered_on = None
                await asyncio.sleep(resend_delay(resends, self.link.throttle_initial, self.link.throttle_max,
                                                 self._rng))
                resends += 1
            message_id: str | None = None
            async with self._window:
                # Checked with the window slot in hand: a sender that queued for the slot before a throttle
                # arrived must not slip through the moment the throttled submit releases it.
                await self._wait_unpaused()
                session = await self._transmitter()
                sent_at = time.monotonic()
                self._in_flight += 1
                try:
                    async with asyncio.timeout(self.link.response_timeout):
                        response = await session.submit_sm(destination, short_message, **fields)
                except TimeoutError:
                    self.mt_retried += 1
                    _log.info("%s: submit to %s unanswered in %s s; sending again once the session is replaced",
                              self.link.name, destination, self.link.response_timeout)
                    unanswered_on = session
                    continue
                except smpp34.SmppError as err:
                    answered = _status_of(err)
                    if answered is None:
                        if not await self._still_up(session):
                            # The connection dropped: the SMSC may have taken the message or not; sending it
                            # again after the rebind (at least once) is the only way not to lose it.
                            self.mt_retried += 1
                            _log.info("%s: submit to %s failed (%s); sending again once the session is replaced",
                                      self.link.name, destination, err)
                            unanswered_on = session
                            continue
                        if time.monotonic() - sent_at >= _SMPP34_REQUEST_TIMEOUT * 0.9:
                            # smpp34's own request timer ran out on the still-bound session: unanswered, not
                            # lost -- as in the TimeoutError branch it goes again only on another session.
                            self.mt_retried += 1
                            _log.info("%s: submit to %s unanswered (smpp34 gave up: %s); sending again once the "
                                      "session is replaced", self.link.name, destination, err)
                            unanswered_on = session
                            continue
                        # The session is up, so the SMSC answered: a generic_nack ESME_RSYSERR, or a response
                        # smpp34 could not decode, perhaps an ESME_ROK. Unknown outcome (module docstring): not
                        # sent again, on this session or another.
                        self.mt_outcome_unknown += 1
                        _log.warning("%s: submit to %s answered with %s or a response smpp34 could not read, "
                                     "on a live session; outcome unknown, not sent again",
                                     self.link.name, destination, err)
                        raise MtOutcomeUnknown(self.link.name, str(err)) from None
                    # The SMSC answered, with a generic_nack or an error response smpp34 reports as an error: a
                    # verdict like any other status, not a lost connection (resending would be refused again).
                    status = answered
                else:
                    status, message_id = response.command_status, response.message_id
                finally:
                    self._in_flight -= 1
            if status == ESME_ROK and message_id:
                return await self._accepted(message_id, sent_at)
            if status in _RETRY_LATER:
                if status == ESME_RTHROTTLED:
                    self.mt_throttled += 1
                else:
                    self.mt_queue_full += 1
                self._pause.throttled(sent_at, time.monotonic(), self._rng)
                continue
            raise MtRejected(self.link.name, status if status != ESME_ROK else 0xFF)

    async def _still_up(self, session: smpp34.Smsc) -> bool:
        """Whether ``session`` is still the transmitting leg's and its connection is up (smpp34's own flag)."""
        leg = self._tx
        client = leg.client
        if leg.session is not session or client is None:
            return False
        try:
            async with asyncio.timeout(self.link.connect_timeout):
                return await client.is_alive()
        except (smpp34.SmppError, TimeoutError, OSError):
            return False

    async def _session_other_than(self, stale: smpp34.Smsc) -> None:
        """Return once the transmitting leg's session is not ``stale`` (replaced, or gone for a rebind)."""
        while self._tx.session is stale and not self._closing.is_set():
            await asyncio.sleep(jittered(self.link.throttle_initial, self._rng, self.link.throttle_max))

    async def _accepted(self, message_id: str, sent_at: float) -> str:
        self.mt_sent += 1
        self._pause.accepted(sent_at)
        self._tracker.add(message_id, time.monotonic())
        for early in self._early.take(message_id, self._tracker.hex_ids):
            # Queued behind the id's own announcement, in arrival order (the queue takes them even when the readers
            # find it full: held receipts are bounded by _early's capacity). Looked up again for each: once a final
            # receipt has closed the MT, a further copy is a duplicate, reported unmatched.
            found = self._tracker.find(message_id, exact=True)
            self._queue.put_nowait((time.monotonic(), self._receipt_work(early, found)))
        return message_id

    async def _wait_unpaused(self) -> None:
        while (wait := self._pause.until - time.monotonic()) > 0:
            await asyncio.sleep(wait)

    async def _transmitter(self) -> smpp34.Smsc:
        leg = self._tx
        while True:
            if self._closing.is_set():
                raise GatewayUnavailable(self.link.name, "the gateway is stopping")
            session = leg.session
            if session is not None and leg.bound.is_set():
                return session
            bound = asyncio.ensure_future(leg.bound.wait())
            closing = asyncio.ensure_future(self._closing.wait())
            try:
                await asyncio.wait({bound, closing}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                bound.cancel()
                closing.cancel()
