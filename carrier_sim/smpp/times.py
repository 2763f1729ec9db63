"""SMPP time fields: schedule_delivery_time, validity_period, final_date, broadcast_end_time.

SMPP 3.4 section 7.1.1: "YYMMDDhhmmsstnnp" where t is tenths of a second, nn the offset from UTC in quarter
hours and p is ``+`` or ``-`` (absolute, 7.1.1.1) or ``R`` (relative to the SMSC's current time, 7.1.1.2, in
which case tnn are "000"). A NULL (empty) field means "immediately" / "the SMSC's default".

Pure: the SMSC's current time comes in as ``now`` (an aware datetime); nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Final

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError, PeerProtocolError

__all__ = ["InvalidTime", "SmppTime", "format_absolute", "format_relative", "parse_time", "resolve"]


class InvalidTime(PeerProtocolError):
    """A time field that is neither NULL nor a valid SMPP time. The caller picks the field's status
    (ESME_RINVSCHED for schedule_delivery_time, ESME_RINVEXPIRY for validity_period)."""

    command_status = CommandStatus.ESME_RINVSCHED


@dataclass(frozen=True, slots=True)
class SmppTime:
    """A parsed time field: either an absolute instant (``at``) or a duration relative to the SMSC clock."""

    at: datetime | None = None
    relative: timedelta | None = None


# Cached because an ESME sends the same few values (its fixed validity period, NULL) with every message; the
# result is immutable, and an invalid value raises afresh on every call (lru_cache keeps no exceptions).
@lru_cache(maxsize=1024)
def parse_time(value: str, status: CommandStatus = CommandStatus.ESME_RINVSCHED) -> SmppTime | None:
    """Parse a time field; None for NULL. Raises InvalidTime carrying ``status``."""
    if value == "":
        return None
    # isascii too: str.isdigit() also takes digits of other scripts and superscripts ('¹', decoded from a Latin-1
    # octet on the wire), which int() then refuses with a bare ValueError (7.1.1: every position is an ASCII digit).
    digits = value[:15]
    if len(value) != 16 or not digits.isascii() or not digits.isdigit() or value[15] not in "+-R":
        raise InvalidTime(f"{value!r} is not YYMMDDhhmmsstnnp", command_status=status)
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, p = int(value[12]), int(value[13:15]), value[15]
    if p == "R":
        if value[12:15] != "000":
            # 7.1.1.2: a relative time is "YYMMDDhhmmss000R"; tenths and an offset mean nothing in it.
            raise InvalidTime(f"{value!r}: a relative time ends in 000R", command_status=status)
        # 7.1.1.2: relative times count years as 365 days and months as 30 days is not stated; real SMSCs
        # (and we) add calendar-free durations: years*365 + months*30 days.
        return SmppTime(relative=timedelta(days=yy * 365 + mo * 30 + dd, hours=hh, minutes=mi, seconds=ss))
    if quarters > 48:
        raise InvalidTime(f"UTC offset {quarters} quarter hours exceeds 48", command_status=status)
    try:
        local = datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000)
    except ValueError:
        raise InvalidTime(f"{value!r} is not a calendar date and time", command_status=status) from None
    offset = timedelta(minutes=15 * quarters) * (1 if p == "+" else -1)
    return SmppTime(at=(local - offset).replace(tzinfo=UTC))


def resolve(value: str, now: datetime, status: CommandStatus = CommandStatus.ESME_RINVSCHED) -> datetime | None:
    """The absolute UTC instant a time field names, given the SMSC's current time; None for NULL."""
    parsed = parse_time(value, status)
    if parsed is None:
        return None
    if parsed.relative is not None:
        return now + parsed.relative
    return parsed.at


#: 100 years of 365 days: the first duration YY cannot express.
_RELATIVE_LIMIT: Final = 100 * 365 * 86400


def format_absolute(at: datetime) -> str:
    """An absolute SMPP time in UTC ("+00" offset)."""
    at = at.astimezone(UTC)
    return at.strftime("%y%m%d%H%M%S") + f"{at.microsecond // 100_000}00+"


def format_relative(delta: timedelta) -> str:
    """A relative SMPP time (days beyond 99 are folded into years of 365 days). Raises LocalProtocolError for a
    negative delta or one of 100 years or more, which the 16-character field cannot hold."""
    total = int(delta.total_seconds())
    if total < 0 or total >= _RELATIVE_LIMIT:
        raise LocalProtocolError(f"a relative SMPP time is 0 up to 99 years, not {delta}")
    days, rest = divmod(total, 86400)
    years, days = divmod(days, 365)
    months, days = divmod(days, 30)
    hh, rest = divmod(rest, 3600)
    mi, ss = divmod(rest, 60)
    return f"{years:02}{months:02}{days:02}{hh:02}{mi:02}{ss:02}000R"
