"""Typed errors of the SMPP core, each carrying its wire meaning.

Theory: like h2's exceptions that know their HTTP/2 error code, every error here knows the command_status an
SMPP peer should see, and (where the header could be read) the sequence_number and command_id of the PDU that
caused it. The I/O adapter turns an error into the right ``generic_nack`` or ``*_resp`` without any table of its
own. Errors split, as in h11, into "the peer broke the protocol" (:class:`PeerProtocolError`, answered on the
wire) and "we were asked to break it" (:class:`LocalProtocolError`, a bug in our caller, raised before any byte
is written).
"""

from __future__ import annotations

from typing import ClassVar

from carrier_sim.smpp.constants import CommandId, CommandStatus

__all__ = [
    "FrameTooLarge",
    "InvalidCommandId",
    "InvalidCommandLength",
    "InvalidField",
    "InvalidOptionalParameterStream",
    "InvalidOptionalParameterValue",
    "InvalidParameterLength",
    "InvalidState",
    "LocalProtocolError",
    "MessageLengthError",
    "MissingOptionalParameter",
    "PeerProtocolError",
    "ResponseBodyMissing",
    "SmppError",
    "TextCodingError",
]


class SmppError(Exception):
    """Base of every error the SMPP core raises.

    ``command_status`` is what the peer should be told; ``sequence_number`` and ``command_id`` identify the
    offending PDU when its header was readable (None otherwise).
    """

    command_status: CommandStatus = CommandStatus.ESME_RSYSERR
    #: Whether the error is answered with :attr:`command_status`. False for one that is only reported (a stray
    #: response gets no reply): no status was sent, so its text names none.
    status_on_the_wire: ClassVar[bool] = True

    def __init__(
        self,
        message: str,
        *,
        sequence_number: int | None = None,
        command_id: int | None = None,
        command_status: CommandStatus | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.sequence_number = sequence_number
        self.command_id = command_id
        if command_status is not None:
            self.command_status = command_status

    def with_header(self, *, sequence_number: int | None, command_id: int | None) -> SmppError:
        """Attach the offending PDU's header, once the caller that knows it catches the error."""
        if self.sequence_number is None:
            self.sequence_number = sequence_number
        if self.command_id is None:
            self.command_id = command_id
        return self

    def __str__(self) -> str:
        where = ""
        if self.command_id is not None:
            try:
                where = f" in {CommandId(self.command_id).name}"
            except ValueError:
                where = f" in command_id 0x{self.command_id:08x}"
        if self.sequence_number is not None:
            where += f" (sequence_number {self.sequence_number})"
        if not self.status_on_the_wire:
            return f"{self.message}{where}"
        return f"{self.command_status.name}: {self.message}{where}"


class PeerProtocolError(SmppError):
    """The bytes or PDUs the peer sent break SMPP; answer with :attr:`command_status`."""


class LocalProtocolError(SmppError):
    """Our own caller asked for something SMPP forbids (sending a PDU illegal in the state, a field too long)."""


class InvalidCommandLength(PeerProtocolError):
    """command_length below 16, above the configured maximum, or disagreeing with the body."""

    command_status = CommandStatus.ESME_RINVCMDLEN


class FrameTooLarge(InvalidCommandLength):
    """command_length above the configured maximum: the frame is refused before it is buffered."""


class ResponseBodyMissing(InvalidCommandLength):
    """A response with command_status 0 and no body at all (command_length 16): a deliver_sm_resp without even
    the NULL message_id. SMPP 3.4 4.4.2 omits the body only with a non-zero command_status, but many ESMEs send
    exactly this to acknowledge a deliver_sm. The session still takes it as the answer to its request, its fields
    at NULL, and reports this error beside it so that an oracle can judge the peer (``wellformed``)."""


class InvalidCommandId(PeerProtocolError):
    """command_id names no SMPP operation."""

    command_status = CommandStatus.ESME_RINVCMDID


class MessageLengthError(PeerProtocolError):
    """sm_length disagrees with the bytes that follow, or exceeds 254 (SMPP 3.4 section 5.2.21)."""

    command_status = CommandStatus.ESME_RINVMSGLEN


class InvalidField(PeerProtocolError):
    """A mandatory field is malformed: a C-octet string without its NUL, longer than its maximum, truncated."""

    command_status = CommandStatus.ESME_RSYSERR


class InvalidParameterLength(PeerProtocolError):
    """A TLV's length is not one its tag allows."""

    command_status = CommandStatus.ESME_RINVPARLEN


class InvalidOptionalParameterStream(PeerProtocolError):
    """The TLV area is truncated: a tag or length or value runs past the end of the PDU."""

    command_status = CommandStatus.ESME_RINVOPTPARSTREAM


class MissingOptionalParameter(PeerProtocolError):
    """A TLV the operation requires (e.g. broadcast_area_identifier in broadcast_sm) is absent."""

    command_status = CommandStatus.ESME_RMISSINGOPTPARAM


class InvalidOptionalParameterValue(PeerProtocolError):
    """A TLV's value is outside what its tag allows."""

    command_status = CommandStatus.ESME_RINVOPTPARAMVAL


class InvalidState(PeerProtocolError):
    """A PDU arrived that the session state does not allow (SMPP 3.4 section 2.3, 5.0 section 2.4)."""

    command_status = CommandStatus.ESME_RINVBNDSTS


class TextCodingError(LocalProtocolError):
    """A text cannot be represented in the asked-for data_coding, or bytes are not valid in it."""

    command_status = CommandStatus.ESME_RINVDCS
