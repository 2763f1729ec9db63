"""SMPP absolute and relative times (SMPP 3.4 7.1.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carrier_sim.smpp.constants import CommandStatus
from carrier_sim.smpp.errors import LocalProtocolError
from carrier_sim.smpp.times import InvalidTime, format_absolute, format_relative, parse_time, resolve
from carrier_sim.testing.smpp_strategies import smpp_times

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_absolute_time_with_offset_is_converted_to_utc() -> None:
    # 2026-11-24 14:30:00.5 at UTC+2h (8 quarter hours) is 12:30:00.5 UTC.
    assert resolve("261124143000508+", NOW) == datetime(2026, 11, 24, 12, 30, 0, 500_000, tzinfo=UTC)


def test_relative_time_adds_to_now() -> None:
    assert resolve("000001020000000R", NOW) == NOW + timedelta(days=1, hours=2)


def test_null_is_none() -> None:
    assert resolve("", NOW) is None


def test_a_negative_offset_is_behind_utc() -> None:
    # 2026-11-24 08:30 at UTC-4h (16 quarter hours) is 12:30 UTC; and the extremes, 48 quarter hours either way.
    assert resolve("261124083000016-", NOW) == datetime(2026, 11, 24, 12, 30, tzinfo=UTC)
    assert resolve("261124000000048-", NOW) == datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
    assert resolve("261124000000048+", NOW) == datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_february_29_only_in_leap_years() -> None:
    assert resolve("280229120000000+", NOW) == datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    for bad in ("270229120000000+", "280230120000000+"):
        with pytest.raises(InvalidTime):
            parse_time(bad)


@pytest.mark.parametrize("bad", [
    "2611241430", "26112414300500x+", "261324143005008+", "261124143005049+",
    "¹50101120000000+",  # a superscript one: str.isdigit() says yes, int() says no
    "٢٦١١٢٤١٤٣٠٠٥٠٠٨+",  # Arabic-Indic digits
    "000001000000123R",  # a relative time's tenths and offset are 000
])
def test_invalid_times_carry_the_callers_status(bad: str) -> None:
    with pytest.raises(InvalidTime) as info:
        parse_time(bad, CommandStatus.ESME_RINVEXPIRY)
    assert info.value.command_status == CommandStatus.ESME_RINVEXPIRY


@given(smpp_times())
def test_generated_times_parse(value: str) -> None:
    parsed = parse_time(value)
    assert (parsed is None) == (value == "")


@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)))
def test_absolute_round_trip_to_the_tenth(at: datetime) -> None:
    at = at.replace(tzinfo=UTC, microsecond=(at.microsecond // 100_000) * 100_000)
    assert resolve(format_absolute(at), NOW) == at


@given(st.integers(0, 100 * 365 * 86400 - 1))
def test_relative_round_trip(seconds: int) -> None:
    assert resolve(format_relative(timedelta(seconds=seconds)), NOW) == NOW + timedelta(seconds=seconds)


@pytest.mark.parametrize("delta", [timedelta(seconds=-1), timedelta(days=-1), timedelta(days=100 * 365)])
def test_a_relative_time_the_field_cannot_hold_is_refused(delta: timedelta) -> None:
    with pytest.raises(LocalProtocolError):
        format_relative(delta)
