"""Delivery receipts: SMPP 3.4 Appendix B text, the receipt TLVs, and the bits that ask for and mark them.

Theory of operation
-------------------
A delivery receipt travels SMSC -> ESME in a deliver_sm (or data_sm) whose esm_class message-type bits say
"SMSC Delivery Receipt" (SMPP 3.4 section 5.2.12) and whose short_message holds one line of text. SMPP 3.4
Appendix B gives that text only as an example, and calls its format "SMSC vendor specific":

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E Text: . . .

Every SMSC therefore writes its own variant, and this module splits accordingly:

* Writing is dialect-driven. A :class:`ReceiptDialect` records one SMSC's habits (message id base, case and
  padding; sub/dlvrd present or not; ``text:`` or ``Text:``; 10- or 12-digit dates; err width; field order) and
  :func:`format_receipt` obeys it exactly, so a scenario can make an emulated carrier look like a given vendor.
* Reading is dialect-blind. :func:`parse_receipt` accepts whatever the dialects write plus the variations seen
  in the wild (fields missing, keys in any case, extra spaces and line breaks, fields reordered, colons inside
  the text, empty dates). Anything it cannot read raises :class:`InvalidReceipt`, never another exception.

Message ids. :attr:`Receipt.message_id` is the id the SMSC issued in submit_sm_resp (and the one that goes into
the receipted_message_id TLV). Many real SMSCs write that same number in a different base inside the receipt
text (hex in submit_sm_resp, decimal in the receipt, or the reverse; Kannel's ``msg-id-type`` and Jasmin's
``dlr_msgid`` settings exist only to undo this). :meth:`ReceiptDialect.id_in_receipt` reproduces that on the
writing side; :func:`ids_match` undoes it on the reading side. :func:`parse_receipt` cannot know the dialect, so
it returns the id exactly as written.

Dates carry no time zone on the wire (they are the SMSC's local clock), so they are naive ``datetime`` values;
``YY`` is read as 20YY. Nothing here reads a clock: the caller supplies every date.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import (
    InvalidOptionalParameterValue,
    LocalProtocolError,
    PeerProtocolError,
)
from carrier_sim.smpp.tlv import NetworkErrorCode, NetworkType

__all__ = [
    "DECIMAL_12",
    "ESM_CLASS_CONVERSATION_ABORT",
    "ESM_CLASS_DEFAULT_MESSAGE_TYPE",
    "ESM_CLASS_INTERMEDIATE_NOTIFICATION",
    "ESM_CLASS_MESSAGE_TYPE_MASK",
    "ESM_CLASS_SME_DELIVERY_ACK",
    "ESM_CLASS_SME_MANUAL_ACK",
    "ESM_CLASS_SMSC_DELIVERY_RECEIPT",
    "KANNEL_LIKE",
    "MIXED_ID_BASES",
    "PRESETS",
    "RECEIPT_NONE",
    "RECEIPT_ON_FAILURE",
    "RECEIPT_ON_SUCCESS",
    "RECEIPT_ON_SUCCESS_OR_FAILURE",
    "REGISTERED_DELIVERY_INTERMEDIATE",
    "REGISTERED_DELIVERY_RECEIPT_MASK",
    "SPEC_V34",
    "TERSE",
    "IdBase",
    "IdFormat",
    "InvalidReceipt",
    "MessageState",
    "NetworkErrorCode",
    "NetworkType",
    "Receipt",
    "ReceiptDialect",
    "ReceiptField",
    "ReceiptTemplate",
    "format_receipt",
    "ids_match",
    "is_receipt",
    "message_type",
    "parse_receipt",
    "receipt_tlv_values",
    "receipt_wanted",
]


# --------------------------------------------------------------------------------------------------------------
# Errors


class InvalidReceipt(PeerProtocolError):
    """The peer sent receipt text that cannot be read as a delivery receipt.

    command_status is ESME_RX_P_APPN ("ESME Receiver Permanent App Error", SMPP 3.4 section 5.1.3): the PDU
    itself is valid SMPP, it is the application content of short_message that is unusable, and it will be just
    as unusable on every retry. ESME_RSYSERR would read as a transient fault and invite the SMSC to redeliver the
    same receipt forever; ESME_RINVOPTPARAMVAL would blame a TLV, while the receipt text lives in the mandatory
    short_message field.
    """

    command_status = CommandStatus.ESME_RX_P_APPN


# --------------------------------------------------------------------------------------------------------------
# message_state


class MessageState(enum.IntEnum):
    """message_state values (SMPP 3.4 section 5.2.28; SKIPPED added by SMPP 5.0).

    The same states appear in a receipt's ``stat:`` field as 7-character words (SMPP 3.4 Appendix B, message
    states table): :attr:`stat` gives the word, :meth:`from_stat` reads one.
    """

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8
    SKIPPED = 9

    @property
    def stat(self) -> str:
        """The 7-character ``stat:`` word of Appendix B (``DELIVRD``, ``UNDELIV``...)."""
        return _STAT_WORDS[self]

    @property
    def is_final(self) -> bool:
        """False only for ENROUTE: "the message is in enroute state", every other state ends the message."""
        return self is not MessageState.ENROUTE

    @property
    def is_success(self) -> bool:
        """DELIVERED, and ACCEPTED ("manually read on behalf of the subscriber by customer service").

        ACCEPTED counts as success because the message reached a person and will not be retried; gateways that
        publish their receipt semantics treat ``DELIVRD`` and ``ACCEPTD`` alike as the non-error states.
        """
        return self in (MessageState.DELIVERED, MessageState.ACCEPTED)

    @classmethod
    def from_stat(cls, word: str) -> MessageState:
        """Read a ``stat:`` word, case-insensitively.

        Besides the 7-character words, the full state names (``DELIVERED``) and ``UNDELIVERED`` are accepted,
        because some SMSCs write those instead. Anything else raises :class:`InvalidReceipt`.
        """
        state = _STAT_LOOKUP.get(word.upper()) if word.isascii() else None
        if state is None:
            raise InvalidReceipt(f"unknown receipt stat {_snippet(word)}")
        return state

    @classmethod
    def from_tlv(cls, value: int) -> MessageState:
        """Read a message_state TLV value; outside 1..9 raises InvalidOptionalParameterValue (ESME_RINVOPTPARAMVAL)."""
        try:
            return cls(value)
        except ValueError:
            raise InvalidOptionalParameterValue(f"message_state {value} is not a defined state") from None


# SMPP 3.4 Appendix B, message states table: the words are the state names squeezed into 7 characters.
_STAT_WORDS: Final[dict[MessageState, str]] = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
    MessageState.SKIPPED: "SKIPPED",
}

_STAT_LOOKUP: Final[dict[str, MessageState]] = {
    **{word: state for state, word in _STAT_WORDS.items()},
    **{state.name: state for state in MessageState},
    "UNDELIVERED": MessageState.UNDELIVERABLE,
}


# --------------------------------------------------------------------------------------------------------------
# Message ids


class IdBase(enum.Enum):
    """The number base an SMSC writes a numeric message id in."""

    DECIMAL = 10
    HEX = 16


# message_id is a C-Octet String of at most 65 octets including the NUL (SMPP 3.4 section 5.2.23).
_MESSAGE_ID_MAX: Final = 64
_DECIMAL_ID = re.compile(r"[0-9]{1,64}", re.ASCII)
_HEX_ID = re.compile(r"[0-9A-Fa-f]{1,64}", re.ASCII)
# What a receipt id may contain so that the parser finds it again: printable ASCII without blanks (the field
# ends at a blank) and without ':' (so no part of it can be mistaken for a "key:").
_WRITABLE_ID = re.compile(r"[!-9;-~]{1,64}", re.ASCII)
_ID_LIMIT: Final = 1 << 256


@dataclass(frozen=True, slots=True)
class IdFormat:
    """How one SMSC writes a numeric message id: base, hex letter case, and zero padding.

    ``width`` pads with leading zeros to at least that many digits (0: no padding); Appendix B's
    ``id:IIIIIIIIII`` shows ten characters.
    """

    base: IdBase = IdBase.DECIMAL
    uppercase: bool = True
    width: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.width <= _MESSAGE_ID_MAX:
            raise LocalProtocolError(f"id width {self.width} outside 0..{_MESSAGE_ID_MAX}")

    def render(self, number: int) -> str:
        """Write ``number`` in this format."""
        # 64 hex digits is the longest id SMPP can carry; the bound also keeps int->str far from Python's
        # digit limit for huge ints.
        if not 0 <= number < _ID_LIMIT:
            raise LocalProtocolError(f"message id {number} is negative or too large")
        spec = "d" if self.base is IdBase.DECIMAL else "X" if self.uppercase else "x"
        text = format(number, spec)
        return text.rjust(self.width, "0") if self.width else text

    def read(self, text: str) -> int | None:
        """The number ``text`` denotes in this base, or None if it is not such a number (letter case ignored)."""
        pattern = _DECIMAL_ID if self.base is IdBase.DECIMAL else _HEX_ID
        # fullmatch first: int() alone would also accept "+5", " 5" and "5_0".
        if pattern.fullmatch(text) is None:
            return None
        return int(text, self.base.value)


def _numeric_readings(message_id: str) -> set[int]:
    readings: set[int] = set()
    for base in IdBase:
        number = IdFormat(base).read(message_id)
        if number is not None:
            readings.add(number)
    return readings


def ids_match(receipt_id: str, submit_resp_id: str) -> bool:
    """Whether a receipt's ``id:`` and a submit_sm_resp message_id name the same message.

    Equal strings match. Otherwise both are read as numbers, each in decimal and in hex where its digits allow,
    and they match if any reading of one equals any reading of the other. That absorbs the mismatches real SMSCs
    produce: zero padding (``0000029095`` / ``29095``), hex letter case, and a decimal id in one place with the
    hex id of the same number in the other (``972660181`` / ``39f99dd5``). The price is that two unrelated short
    ids can collide (``16`` read as decimal equals ``10`` read as hex), so compare a receipt only against the
    messages still awaiting receipts on the same bind. Non-numeric ids (UUIDs) match only when equal.
    """
    a = receipt_id.strip()
    b = submit_resp_id.strip()
    if not a or not b:
        return False
    if a == b:
        return True
    return not _numeric_readings(a).isdisjoint(_numeric_readings(b))


# --------------------------------------------------------------------------------------------------------------
# Receipt value and dialects


@dataclass(frozen=True, slots=True)
class Receipt:
    """One delivery receipt, as an SMSC reports it.

    - ``message_id``: the id issued in submit_sm_resp when formatting; the id exactly as written in the text
      when parsed (see :func:`ids_match` for comparing the two).
    - ``submitted`` / ``delivered``: the ``sub:`` and ``dlvrd:`` counts (Appendix B: "number of short messages
      originally submitted" / "delivered", only meaningful for distribution lists); None when absent.
    - ``submit_date`` / ``done_date``: naive datetimes in the SMSC's local time, minute or second precision
      depending on the dialect; None when absent or written empty.
    - ``stat``: the final (or, for an intermediate notification, current) state.
    - ``err``: the ``err:`` token verbatim (usually digits; "network or SMSC specific"), so ``075`` and
      ``0075`` stay distinguishable; ``""`` when absent.
    - ``text``: the excerpt of the original message after ``text:``, None when the field is absent.
    """

    message_id: str
    submitted: int | None
    delivered: int | None
    submit_date: datetime | None
    done_date: datetime | None
    stat: MessageState
    err: str
    text: str | None = None

    @property
    def err_code(self) -> int | None:
        """``err`` as a number when it is all decimal digits, else None."""
        return int(self.err) if _DIGITS.fullmatch(self.err) else None


class ReceiptField(enum.StrEnum):
    """The keys of Appendix B's receipt, spelled as they appear before the ':'."""

    ID = "id"
    SUB = "sub"
    DLVRD = "dlvrd"
    SUBMIT_DATE = "submit date"
    DONE_DATE = "done date"
    STAT = "stat"
    ERR = "err"
    TEXT = "text"


#: Appendix B's order. ``text`` is not part of any order: it always comes last, because it may contain anything.
_SPEC_ORDER: Final[tuple[ReceiptField, ...]] = (
    ReceiptField.ID,
    ReceiptField.SUB,
    ReceiptField.DLVRD,
    ReceiptField.SUBMIT_DATE,
    ReceiptField.DONE_DATE,
    ReceiptField.STAT,
    ReceiptField.ERR,
)


@dataclass(frozen=True, slots=True)
class ReceiptDialect:
    """How one SMSC writes receipt text.

    - ``submit_id`` / ``receipt_id``: how the SMSC writes its numeric message id in submit_sm_resp and in the
      receipt's ``id:``. When they differ, the receipt carries the same number re-written (see
      :meth:`id_in_receipt`).
    - ``counts``: whether ``sub:`` and ``dlvrd:`` are written.
    - ``text_label``: ``"Text"`` (Appendix B's example) or ``"text"`` (what most SMSCs write); ``include_text``
      whether the field is written at all; ``text_length`` how many characters of the message it quotes (20 in
      Appendix B).
    - ``date_digits``: 10 (``YYMMDDhhmm``, Appendix B) or 12 (``YYMMDDhhmmss``).
    - ``err_width``: digits of zero padding for ``err:`` (3 in Appendix B's table, 4 on some SMSCs).
    - ``order``: the order of the fields before ``text``, a permutation of Appendix B's.
    """

    name: str
    submit_id: IdFormat = IdFormat()
    receipt_id: IdFormat = IdFormat()
    counts: bool = True
    text_label: Literal["text", "Text"] = "text"
    include_text: bool = True
    text_length: int = 20
    date_digits: Literal[10, 12] = 10
    err_width: Literal[3, 4] = 3
    order: tuple[ReceiptField, ...] = field(default=_SPEC_ORDER)

    def __post_init__(self) -> None:
        if sorted(self.order) != sorted(_SPEC_ORDER) or len(self.order) != len(_SPEC_ORDER):
            raise LocalProtocolError(f"dialect {self.name!r}: order must be a permutation of {_SPEC_ORDER}")
        if self.text_length < 0:
            raise LocalProtocolError(f"dialect {self.name!r}: negative text_length")
        if self.date_digits not in (10, 12) or self.err_width not in (3, 4):
            raise LocalProtocolError(f"dialect {self.name!r}: date_digits must be 10/12, err_width 3/4")

    def id_in_receipt(self, message_id: str) -> str:
        """The ``id:`` this SMSC writes for the message it answered with ``message_id`` in submit_sm_resp.

        A ``message_id`` that is not a number in :attr:`submit_id`'s base (say a UUID) is written unchanged.
        """
        number = self.submit_id.read(message_id)
        return message_id if number is None else self.receipt_id.render(number)


#: Appendix B taken literally: ten-character ids (hex here, as 32-bit SMSC counters are usually shown), both
#: counts, ``Text:`` as in the appendix's example, 10-digit dates, 3-digit err.
SPEC_V34: Final = ReceiptDialect(
    name="spec-v34",
    submit_id=IdFormat(IdBase.HEX, uppercase=True, width=10),
    receipt_id=IdFormat(IdBase.HEX, uppercase=True, width=10),
    text_label="Text",
)

#: What Kannel's SMPP client expects with its default ``msg-id-type`` (decimal in submit_sm_resp and in the
#: receipt), lower-case ``text:``, 10-digit dates.
KANNEL_LIKE: Final = ReceiptDialect(
    name="kannel-like",
    submit_id=IdFormat(IdBase.DECIMAL),
    receipt_id=IdFormat(IdBase.DECIMAL),
)

#: The classic mismatch: hex (lower case, unpadded) in submit_sm_resp, the same number in zero-padded decimal in
#: the receipt. Kannel needs ``msg-id-type = 0x01`` for such an SMSC.
MIXED_ID_BASES: Final = ReceiptDialect(
    name="mixed-id-bases",
    submit_id=IdFormat(IdBase.HEX, uppercase=False),
    receipt_id=IdFormat(IdBase.DECIMAL, width=10),
)

#: Decimal ids, ``Text:``, 12-digit dates with seconds.
DECIMAL_12: Final = ReceiptDialect(
    name="decimal-12",
    submit_id=IdFormat(IdBase.DECIMAL),
    receipt_id=IdFormat(IdBase.DECIMAL),
    text_label="Text",
    date_digits=12,
)

#: Every optional axis at once, to exercise readers: 8-digit upper-case hex ids, no sub/dlvrd, no text, 12-digit
#: dates, 4-digit err, and stat/err written before the dates.
TERSE: Final = ReceiptDialect(
    name="terse",
    submit_id=IdFormat(IdBase.HEX, uppercase=True, width=8),
    receipt_id=IdFormat(IdBase.HEX, uppercase=True, width=8),
    counts=False,
    include_text=False,
    date_digits=12,
    err_width=4,
    order=(
        ReceiptField.ID,
        ReceiptField.STAT,
        ReceiptField.ERR,
        ReceiptField.SUBMIT_DATE,
        ReceiptField.DONE_DATE,
        ReceiptField.SUB,
        ReceiptField.DLVRD,
    ),
)

#: Every preset, for scenario files (by :attr:`ReceiptDialect.name`) and tests.
PRESETS: Final[tuple[ReceiptDialect, ...]] = (SPEC_V34, KANNEL_LIKE, MIXED_ID_BASES, DECIMAL_12, TERSE)


# --------------------------------------------------------------------------------------------------------------
# Writing


_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_ERR_TOKEN = re.compile(r"[0-9A-Za-z]*", re.ASCII)


def _excerpt(text: str, length: int) -> str:
    # short_message of a receipt is plain ASCII in the SMSC default alphabet; anything else (and any control
    # character, which would break the one-line format) becomes '?', one for one, so the excerpt keeps its length.
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text[:length])


def _format_date(value: datetime, digits: int) -> str:
    # Appendix B: "YYMMDDhhmm"; a two-digit year only round-trips inside one century, read back as 20YY.
    if not 2000 <= value.year <= 2099:
        raise LocalProtocolError(f"receipt date {value.isoformat()} outside 2000..2099, not writable as YY")
    text = f"{value.year % 100:02d}{value.month:02d}{value.day:02d}{value.hour:02d}{value.minute:02d}"
    return text + f"{value.second:02d}" if digits == 12 else text


def _format_count(key: str, value: int) -> str:
    if value < 0:
        raise LocalProtocolError(f"receipt {key} count {value} is negative")
    # Appendix B: "padded with leading zeros if necessary" to 3 digits; a larger count is written whole.
    return f"{value:03d}"


def format_receipt(receipt: Receipt, dialect: ReceiptDialect) -> str:
    """The receipt text ``dialect``'s SMSC would put in short_message (pure ASCII).

    Fields whose value is None are left out, as are sub/dlvrd when the dialect omits them and text when it
    omits text. The id is written per :meth:`ReceiptDialect.id_in_receipt`; a digit-only ``err`` is zero-padded
    to the dialect's width (an empty one written as zeros); the text is cut to ``dialect.text_length``
    characters. Raises LocalProtocolError for values no receipt can carry (an id with blanks, ':' or non-ASCII,
    negative counts, years outside 2000..2099, err that is not alphanumeric).
    """
    message_id = dialect.id_in_receipt(receipt.message_id)
    if _WRITABLE_ID.fullmatch(message_id) is None:
        raise LocalProtocolError(f"message id {_snippet(message_id)} cannot be written in a receipt")
    if _ERR_TOKEN.fullmatch(receipt.err) is None:
        raise LocalProtocolError(f"receipt err {_snippet(receipt.err)} is not alphanumeric")
    # Zero padding only makes sense for a number; a vendor's alphanumeric code is written as it is.
    padded = not receipt.err or _DIGITS.fullmatch(receipt.err) is not None
    err = receipt.err.rjust(dialect.err_width, "0") if padded else receipt.err

    values: dict[ReceiptField, str | None] = {
        ReceiptField.ID: message_id,
        ReceiptField.SUB: None,
        ReceiptField.DLVRD: None,
        ReceiptField.SUBMIT_DATE: None,
        ReceiptField.DONE_DATE: None,
        ReceiptField.STAT: receipt.stat.stat,
        ReceiptField.ERR: err,
    }
    if dialect.counts and receipt.submitted is not None:
        values[ReceiptField.SUB] = _format_count("sub", receipt.submitted)
    if dialect.counts and receipt.delivered is not None:
        values[ReceiptField.DLVRD] = _format_count("dlvrd", receipt.delivered)
    if receipt.submit_date is not None:
        values[ReceiptField.SUBMIT_DATE] = _format_date(receipt.submit_date, dialect.date_digits)
    if receipt.done_date is not None:
        values[ReceiptField.DONE_DATE] = _format_date(receipt.done_date, dialect.date_digits)

    parts = [f"{key}:{values[key]}" for key in dialect.order if values[key] is not None]
    if dialect.include_text and receipt.text is not None:
        parts.append(f"{dialect.text_label}:{_excerpt(receipt.text, dialect.text_length)}")
    return " ".join(parts)


#: Ids below this are written by :class:`ReceiptTemplate` (a decimal or hex rendering of them is far inside the
#: 64 characters a receipt id may have); larger ones go through :func:`format_receipt`.
_TEMPLATE_ID_LIMIT: Final = 10**18
#: Texts around the id a template keeps before its cache starts again (a run writes receipts for a few seconds
#: at a time, in a few states).
_TEMPLATE_CACHE: Final = 256
#: The instants a two-digit receipt year can name (2000-01-01 and 2100-01-01 00:00 UTC).
_YEAR_2000: Final = 946684800.0
_YEAR_2100: Final = 4102444800.0


class ReceiptTemplate:
    """:func:`format_receipt` for one dialect and the receipts an SMSC writes for its own messages, compiled once.

    An SMSC writes a receipt per message; :func:`format_receipt` takes every decision again each time and
    re-validates an id the SMSC rendered itself. Here the dialect's field order, labels and widths become format
    strings at construction, and since all but the id and the excerpt repeat from message to message (the dates
    change once a second), the text around the id is cached by those values.
    :meth:`text` gives exactly what ``format_receipt(Receipt(...), dialect)`` gives for the same values, and
    returns None -- leaving the message to :func:`format_receipt`, and any error to it -- whenever a value is
    out of the ordinary (a huge id, a negative count or err, a date it does not cache).
    tests/carrier_sim/smpp/test_receipt_template.py checks the two against each other.
    """

    __slots__ = ("_around_id", "_head", "_id", "_same_id", "_tail", "_text_label", "_text_length", "dialect")

    def __init__(self, dialect: ReceiptDialect) -> None:
        self.dialect = dialect
        self._id = dialect.receipt_id
        # id_in_receipt re-renders the submit id in receipt_id's format: the same string when the formats agree.
        self._same_id = dialect.receipt_id == dialect.submit_id
        keys = [k for k in dialect.order if dialect.counts or k not in (ReceiptField.SUB, ReceiptField.DLVRD)]
        # format_receipt's "key:value" parts joined by blanks, as two format strings: before the id, after it.
        fields = " ".join(f"{key.value}:{{{key.name}}}" for key in keys)
        self._head, self._tail = fields.split("{ID}")
        self._text_label = dialect.text_label if dialect.include_text else None
        self._text_length = dialect.text_length
        self._around_id: dict[tuple[int, int, int, int, MessageState, int], tuple[str, str]] = {}

    def text(
        self,
        number: int,
        message_id: str,
        submitted: int,
        delivered: int,
        submit_time: float,
        done_time: float,
        stat: MessageState,
        err: int,
        excerpt: str | None,
    ) -> str | None:
        """The text of the receipt for the message the SMSC answered with ``message_id``, which must be
        ``dialect.submit_id.render(number)``; dates are POSIX timestamps, written as UTC wall time; ``err`` is
        zero-padded. None: use :func:`format_receipt` instead."""
        if not 0 <= number < _TEMPLATE_ID_LIMIT or submitted < 0 or delivered < 0 or err < 0:
            return None
        # _whole_second of each, inline: this runs for every receipt.
        if not (_YEAR_2000 <= submit_time < _YEAR_2100 and _YEAR_2000 <= done_time < _YEAR_2100):
            return None
        submit_second = int(submit_time)
        done_second = int(done_time)
        if submit_time - submit_second >= 0.999999 or done_time - done_second >= 0.999999:
            return None
        key = (submitted, delivered, submit_second, done_second, stat, err)
        around = self._around_id.get(key)
        if around is None:
            if len(self._around_id) >= _TEMPLATE_CACHE:
                self._around_id.clear()
            around = self._around_id[key] = self._fill(*key)
        receipt_id = message_id if self._same_id else self._id.render(number)
        if self._text_label is None or excerpt is None:
            return f"{around[0]}{receipt_id}{around[1]}"
        cut = excerpt[: self._text_length]
        if not (cut.isascii() and cut.isprintable()):  # printable ASCII is exactly " ".."~"
            cut = _excerpt(cut, self._text_length)
        return f"{around[0]}{receipt_id}{around[1]} {self._text_label}:{cut}"

    def _fill(
        self, submitted: int, delivered: int, submit_second: int, done_second: int, stat: MessageState, err: int
    ) -> tuple[str, str]:
        digits = self.dialect.date_digits
        values = {
            "SUB": f"{submitted:03d}",
            "DLVRD": f"{delivered:03d}",
            "SUBMIT_DATE": _format_date(datetime.fromtimestamp(submit_second, UTC).replace(tzinfo=None), digits),
            "DONE_DATE": _format_date(datetime.fromtimestamp(done_second, UTC).replace(tzinfo=None), digits),
            "STAT": stat.stat,
            "ERR": f"{err:0{self.dialect.err_width}d}",
        }
        return self._head.format(**values), self._tail.format(**values)


def _whole_second(timestamp: float) -> int | None:
    """The second of the UTC wall time ``datetime.fromtimestamp`` gives, if a receipt can write it (years
    2000..2099) and it is simply the integer part: fromtimestamp rounds to the microsecond, which carries into the
    next second only for a fraction of at least 0.9999995."""
    if not _YEAR_2000 <= timestamp < _YEAR_2100:  # also refuses NaN
        return None
    second = int(timestamp)
    return second if timestamp - second < 0.999999 else None


# --------------------------------------------------------------------------------------------------------------
# Reading


# A key is one of Appendix B's words, not glued to a preceding letter or digit (so "msgid:" is not "id:"),
# followed by optional blanks and ':'. Blanks inside "submit date" may be any run of whitespace (the appendix
# itself breaks "done date" across lines) or '_'. re.ASCII keeps IGNORECASE from matching look-alikes such as
# U+017F LATIN SMALL LETTER LONG S for 's'.
_KEY = re.compile(
    r"(?<![0-9A-Za-z_])(id|sub|dlvrd|submit[\s_]*date|done[\s_]*date|stat|err|text)\s*:",
    re.ASCII | re.IGNORECASE,
)
_BLANKS = re.compile(r"[\s_]+", re.ASCII)
_FIRST_TOKEN = re.compile(r"\s*(\S*)", re.ASCII)
_COUNT = re.compile(r"[0-9]{1,9}", re.ASCII)
_DATE = re.compile(r"[0-9]{10}(?:[0-9]{2})?", re.ASCII)


def _snippet(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def _first_token(value: str) -> str:
    # Tolerates trailing words some SMSCs append after a value (unknown "key:value" pairs, stray words): the
    # value of a known key is its first blank-delimited token.
    match = _FIRST_TOKEN.match(value)
    return match.group(1) if match else ""


def _parse_count(key: str, token: str) -> int | None:
    if not token:
        return None
    if _COUNT.fullmatch(token) is None:
        raise InvalidReceipt(f"receipt {key}: {_snippet(token)} is not a count")
    return int(token)


def _parse_date(key: str, token: str) -> datetime | None:
    if not token:
        # Seen in the wild: "done date:" left empty while the message is still ENROUTE/ACCEPTD.
        return None
    if _DATE.fullmatch(token) is None:
        raise InvalidReceipt(f"receipt {key}: {_snippet(token)} is not YYMMDDhhmm or YYMMDDhhmmss")
    numbers = [int(token[i : i + 2]) for i in range(0, len(token), 2)]
    year, month, day, hour, minute = numbers[:5]
    second = numbers[5] if len(numbers) == 6 else 0
    try:
        return datetime(2000 + year, month, day, hour, minute, second)
    except ValueError as exc:
        raise InvalidReceipt(f"receipt {key}: {_snippet(token)} is not a valid date ({exc})") from None


def parse_receipt(text: str) -> Receipt:
    """Read receipt text written in any dialect.

    Keys are matched case-insensitively wherever they stand; ``id`` and ``stat`` are required, everything else
    may be missing. ``text:`` ends the parse: all that follows it, colons and key-like words included, is the
    excerpt (stripped of surrounding blanks). The first occurrence of a repeated key wins. Trailing NULs (some
    SMSCs NUL-terminate short_message) are ignored. Raises :class:`InvalidReceipt` when the text is not a
    receipt: a required key missing, a count or date that is not digits of the right length, an impossible
    date, an unknown stat word.
    """
    text = text.rstrip("\x00")
    raw: dict[ReceiptField, str] = {}
    matches = list(_KEY.finditer(text))
    for index, match in enumerate(matches):
        key = ReceiptField(_BLANKS.sub(" ", match.group(1).lower()))
        if key is ReceiptField.TEXT:
            raw.setdefault(key, text[match.end() :])
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        raw.setdefault(key, text[match.end() : end])

    if ReceiptField.ID not in raw or ReceiptField.STAT not in raw:
        raise InvalidReceipt(f"not a delivery receipt (needs id: and stat:): {_snippet(text)}")
    message_id = _first_token(raw[ReceiptField.ID])
    if not message_id:
        raise InvalidReceipt(f"receipt with an empty id: {_snippet(text)}")
    stat = MessageState.from_stat(_first_token(raw[ReceiptField.STAT]))

    def token(key: ReceiptField) -> str:
        return _first_token(raw.get(key, ""))

    excerpt = raw.get(ReceiptField.TEXT)
    return Receipt(
        message_id=message_id,
        submitted=_parse_count("sub", token(ReceiptField.SUB)),
        delivered=_parse_count("dlvrd", token(ReceiptField.DLVRD)),
        submit_date=_parse_date("submit date", token(ReceiptField.SUBMIT_DATE)),
        done_date=_parse_date("done date", token(ReceiptField.DONE_DATE)),
        stat=stat,
        err=token(ReceiptField.ERR),
        text=None if excerpt is None else excerpt.strip(),
    )


# --------------------------------------------------------------------------------------------------------------
# Receipt TLVs


def receipt_tlv_values(receipt: Receipt, network_error: NetworkErrorCode | None = None) -> dict[str, object]:
    """TLV name -> value for the receipt TLVs of a receipt-carrying deliver_sm or data_sm.

    SMPP 3.4 section 4.6.1 (deliver_sm optional parameters): receipted_message_id (5.3.2.12, the SMSC message id
    of the receipted message, i.e. the submit_sm_resp id: a ``str``), message_state (5.3.2.35, an ``int``) and,
    when given, network_error_code (5.3.2.31, a :class:`NetworkErrorCode`).
    """
    values: dict[str, object] = {
        "receipted_message_id": receipt.message_id,
        "message_state": int(receipt.stat),
    }
    if network_error is not None:
        values["network_error_code"] = network_error
    return values


# --------------------------------------------------------------------------------------------------------------
# esm_class and registered_delivery


#: esm_class bits 5-2 are the message type (SMPP 3.4 section 5.2.12). They form one 4-bit code, not independent
#: flags: 0x18 is "Conversation Abort", not SME ack + manual ack. Compare the masked value, never test a bit.
ESM_CLASS_MESSAGE_TYPE_MASK: Final = 0x3C
ESM_CLASS_DEFAULT_MESSAGE_TYPE: Final = 0x00
#: "xx0001xx SMSC Delivery Receipt".
ESM_CLASS_SMSC_DELIVERY_RECEIPT: Final = 0x04
#: "xx0010xx SME Delivery Acknowledgement".
ESM_CLASS_SME_DELIVERY_ACK: Final = 0x08
#: "xx0100xx SME Manual/User Acknowledgment".
ESM_CLASS_SME_MANUAL_ACK: Final = 0x10
#: "xx0110xx Conversation Abort (Korean CDMA)".
ESM_CLASS_CONVERSATION_ABORT: Final = 0x18
#: "xx1000xx Intermediate Delivery Notification".
ESM_CLASS_INTERMEDIATE_NOTIFICATION: Final = 0x20


def message_type(esm_class: int) -> int:
    """The message-type code of an esm_class (bits 5-2, left in place: compare with the ``ESM_CLASS_*`` values)."""
    return esm_class & ESM_CLASS_MESSAGE_TYPE_MASK


def is_receipt(esm_class: int) -> bool:
    """Whether a deliver_sm with this esm_class carries an SMSC-generated receipt.

    True for "SMSC Delivery Receipt" and "Intermediate Delivery Notification": both are written by the SMSC in
    the Appendix B format. SME acknowledgements are not: they come from the recipient's handset or application
    and carry its content.
    """
    return message_type(esm_class) in (ESM_CLASS_SMSC_DELIVERY_RECEIPT, ESM_CLASS_INTERMEDIATE_NOTIFICATION)


#: registered_delivery bits 1-0, "SMSC Delivery Receipt" (SMPP 3.4 section 5.2.17; value 3 is defined by
#: SMPP 5.0 and reserved in 3.4).
REGISTERED_DELIVERY_RECEIPT_MASK: Final = 0x03
#: "00 No SMSC Delivery Receipt requested (default)".
RECEIPT_NONE: Final = 0x00
#: "01 SMSC Delivery Receipt requested where final delivery outcome is delivery success or failure".
RECEIPT_ON_SUCCESS_OR_FAILURE: Final = 0x01
#: "10 SMSC Delivery Receipt requested where the final delivery outcome is delivery failure".
RECEIPT_ON_FAILURE: Final = 0x02
#: "11 SMSC Delivery Receipt requested where the final delivery outcome is success" (SMPP 5.0).
RECEIPT_ON_SUCCESS: Final = 0x03
#: "xxx1xxxx Intermediate notification requested" (bit 4).
REGISTERED_DELIVERY_INTERMEDIATE: Final = 0x10


def receipt_wanted(registered_delivery: int, final_state: MessageState, intermediate: bool) -> bool:
    """Whether the SMSC owes the submitter a receipt for a message that reached ``final_state``.

    ``intermediate`` asks about an intermediate notification (esm_class 0x20) instead, which bit 4 alone governs,
    whatever the state. Otherwise bits 1-0 decide: none; success or failure; failure only; success only
    (success as :attr:`MessageState.is_success`). Asking about a final receipt for a state that is not final
    (ENROUTE) is our caller's bug and raises LocalProtocolError.
    """
    if intermediate:
        return bool(registered_delivery & REGISTERED_DELIVERY_INTERMEDIATE)
    if not final_state.is_final:
        raise LocalProtocolError(f"{final_state.name} is not a final state; no final receipt can report it")
    selection = registered_delivery & REGISTERED_DELIVERY_RECEIPT_MASK
    if selection == RECEIPT_ON_SUCCESS_OR_FAILURE:
        return True
    if selection == RECEIPT_ON_FAILURE:
        return not final_state.is_success
    if selection == RECEIPT_ON_SUCCESS:
        return final_state.is_success
    return False
