"""What a :class:`~carrier_sim.smpp.session.Session` reports: typed events, named in the past tense.

Every event is a frozen dataclass. ``receive_data`` and ``handle_timers`` return them in the order things
happened; a caller dispatches on the type (``match event: case PduReceived(pdu=pdu): ...``). Anything the session
already answered on the wire on its own (an enquire_link, a misplaced PDU, garbage) is still reported, so that an
oracle watching the peer sees everything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import SmppError
from carrier_sim.smpp.pdu import Pdu
from carrier_sim.smpp.session_table import SessionState

__all__ = [
    "BindAccepted",
    "BindRejected",
    "BindRequested",
    "CloseReason",
    "EnquireLinkSent",
    "Event",
    "InactivityTimedOut",
    "LateResponseReceived",
    "OutbindReceived",
    "PduReceived",
    "PduRejected",
    "ResponseReceived",
    "ResponseTimedOut",
    "SessionClosed",
    "SessionInitTimedOut",
    "UnbindRequested",
]


class CloseReason(enum.Enum):
    """Why a session reached CLOSED."""

    #: The unbind handshake completed (whoever started it).
    UNBOUND = "unbound"
    #: A command_length the stream cannot survive (3.4 section 4.3: "it should assume that the data is corrupt").
    FRAMING_ERROR = "framing error"
    #: No bind completed within session_init_timeout (3.4 section 7.2).
    SESSION_INIT_TIMEOUT = "session init timeout"
    #: No traffic within inactivity_timeout while the session could not unbind (3.4 section 7.2).
    INACTIVITY = "inactivity"
    #: Our unbind was not answered within response_timeout.
    RESPONSE_TIMEOUT = "response timeout"
    #: ESME: our bind was not answered within response_timeout. The connection is dropped rather than left open
    #: for a retry: a bind_resp ESME_ROK may still be on its way, binding the SMSC's end while ours stays open
    #: (a retry then gets ESME_RALYBND, and deliver_sm to us are refused). A retry binds on a fresh connection.
    BIND_TIMEOUT = "bind timeout"
    #: The I/O layer reported the transport gone.
    CONNECTION_LOST = "connection lost"
    #: Our caller closed the session.
    LOCAL = "closed locally"


@dataclass(frozen=True, slots=True)
class PduReceived:
    """A legal request arrived for the application: submit_sm, deliver_sm, data_sm, alert_notification, ...

    ``auto_answered`` is True when the session already queued the response (enquire_link with
    ``auto_answer_enquire_link``); otherwise the application answers with ``Session.respond``.
    """

    pdu: Pdu
    auto_answered: bool = False


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """A response (or a generic_nack) matched one of our outstanding requests."""

    request: Pdu
    response: Pdu
    round_trip: float


@dataclass(frozen=True, slots=True)
class BindRequested:
    """SMSC side: the ESME asked to bind. Answer with ``Session.accept_bind`` or ``Session.reject_bind``."""

    request: Pdu


@dataclass(frozen=True, slots=True)
class BindAccepted:
    """ESME side: the SMSC accepted our bind; the session is now in ``state``."""

    request: Pdu
    response: Pdu
    state: SessionState


@dataclass(frozen=True, slots=True)
class BindRejected:
    """ESME side: the SMSC refused our bind (a non-zero status, or a generic_nack); the session is not bound."""

    request: Pdu
    response: Pdu


@dataclass(frozen=True, slots=True)
class OutbindReceived:
    """ESME side: the SMSC asks us to bind (3.4 section 2.2.1); we are in OUTBOUND."""

    pdu: Pdu


@dataclass(frozen=True, slots=True)
class UnbindRequested:
    """The peer sent unbind; we are UNBOUND. The session answers it once nothing is left in flight either way:
    answer what the peer is owed (``Session.respond``) and send no new requests."""

    request: Pdu


@dataclass(frozen=True, slots=True)
class PduRejected:
    """Something the peer sent that the session refused: a PDU illegal in the state, a PDU that failed to
    decode, a response nothing was waiting for.

    ``pdu`` is the decoded PDU when there was one; ``error`` says what was wrong (its ``command_status`` is what
    the peer was, or would have been, told); ``reply`` is what the session queued in answer, None when SMPP
    gives no answer (responses are never answered). A response with command_status 0 and no body
    (:class:`~carrier_sim.smpp.errors.ResponseBodyMissing`) is reported so and still answers its request: a
    ResponseReceived follows.
    """

    pdu: Pdu | None
    error: SmppError
    reply: Pdu | None

    @property
    def status(self) -> CommandStatus:
        """The command_status the refusal carries."""
        return self.error.command_status


@dataclass(frozen=True, slots=True)
class ResponseTimedOut:
    """One of our requests went unanswered for response_timeout (3.4 section 7.2 response_timer); it no longer
    counts against the window."""

    request: Pdu


@dataclass(frozen=True, slots=True)
class LateResponseReceived:
    """A response to one of our requests that had already timed out (ResponseTimedOut was reported for it): it
    echoes the request's sequence_number as it should, only too late (3.4 section 7.2 response_timer)."""

    request: Pdu
    response: Pdu
    #: Seconds from sending the request to this response.
    round_trip: float


@dataclass(frozen=True, slots=True)
class EnquireLinkSent:
    """The session was idle for enquire_link_interval and sent this enquire_link (3.4 section 7.2)."""

    request: Pdu


@dataclass(frozen=True, slots=True)
class InactivityTimedOut:
    """No traffic for inactivity_timeout (3.4 section 7.2). ``unbind`` is the unbind the session sent when it was
    bound; when it was not, a SessionClosed follows."""

    unbind: Pdu | None


@dataclass(frozen=True, slots=True)
class SessionInitTimedOut:
    """No bind completed within session_init_timeout (3.4 section 7.2); a SessionClosed follows."""


@dataclass(frozen=True, slots=True)
class SessionClosed:
    """The session reached CLOSED. ``unanswered`` are our requests that will now never be answered.

    The I/O layer should send whatever ``data_to_send`` still holds, then close the transport.
    """

    reason: CloseReason
    unanswered: tuple[Pdu, ...] = ()


Event = (
    PduReceived
    | ResponseReceived
    | LateResponseReceived
    | BindRequested
    | BindAccepted
    | BindRejected
    | OutbindReceived
    | UnbindRequested
    | PduRejected
    | ResponseTimedOut
    | EnquireLinkSent
    | InactivityTimedOut
    | SessionInitTimedOut
    | SessionClosed
)
