"""Sender numbers: the network's source_addr (TON/NPI) to E.164, or None."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_core.numbers import address_of, normalise_number, normalise_sender


@pytest.mark.parametrize(
    ("source_addr", "ton", "npi", "country", "expected"),
    [
        # TON 1: digits with the country code, no '+'.
        ("447700900123", 1, 1, "GB", "+447700900123"),
        ("447700900123", 1, 1, None, "+447700900123"),
        ("+447700900123", 1, 1, None, "+447700900123"),
        ("12015550123", 1, 1, "GB", "+12015550123"),  # the carrier's country does not matter for TON 1
        ("4930123456", 1, 0, None, "+4930123456"),
        ("49030123456", 1, 1, None, "+4930123456"),  # a trunk '0' after the country code, as phonenumbers drops it
        # TON 2: national format, needs the carrier's country.
        ("07700900123", 2, 1, "GB", "+447700900123"),
        ("7700900123", 2, 1, "GB", "+447700900123"),
        ("2015550123", 2, 1, "US", "+12015550123"),
        ("030123456", 2, 1, "DE", "+4930123456"),
        ("07700900123", 2, 1, None, None),
        # TON 0: whatever the SMSC wrote.
        ("+447700900123", 0, 0, "GB", "+447700900123"),
        ("00447700900123", 0, 1, "GB", "+447700900123"),
        ("07700900123", 0, 1, "GB", "+447700900123"),
        ("447700900123", 0, 1, "GB", "+447700900123"),
        ("447700900123", 0, 1, None, "+447700900123"),
        # TON 0, NPI 1: digits that are no GB number but a valid international one (a German roamer).
        ("4915112345678", 0, 1, "GB", "+4915112345678"),
        ("12025550123", 0, 1, "GB", "+12025550123"),
        ("4915112345678", 0, 0, "GB", None),  # unknown plan: no guessing
        ("4915112345678", 2, 1, "GB", None),  # said to be national: it is not
        ("4900000000000", 0, 1, "GB", None),  # neither national nor a valid international number
        # Not phone numbers.
        ("IDENTITY", 5, 0, "GB", None),
        ("12345", 3, 0, "GB", None),
        ("123", 6, 0, "GB", None),
        ("900123", 4, 1, "GB", None),
        ("234150000000001", 1, 6, "GB", None),  # E.212: an IMSI, not a number
        ("4477009001234567", 1, 1, None, None),  # 16 digits: longer than E.164 allows
        ("44", 1, 1, None, None),
        ("999123456", 1, 1, None, None),  # no country code 999
        ("44770090O123", 1, 1, None, None),  # a letter O
        ("", 1, 1, "GB", None),
        ("   ", 0, 1, "GB", None),
        ("0", 2, 1, "GB", None),
    ],
)
def test_normalise_sender(source_addr: str, ton: int, npi: int, country: str | None, expected: str | None) -> None:
    assert normalise_sender(source_addr, ton, npi, country) == expected


def _reference(digits: str) -> str | None:
    """What phonenumbers alone says of '+digits'."""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except phonenumbers.NumberParseException:
        return None
    # IS_POSSIBLE only: a number possible only when dialled locally (no area code) is not a whole phone number.
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return e164 if len(e164) <= 16 else None  # '+' and at most 15 digits (ITU-T E.164 section 6)


@pytest.mark.parametrize(
    ("source_addr", "ton", "npi", "country"),
    [
        ("4933333333333333", 1, 1, None),  # +49 and 14 digits: phonenumbers calls it possible (DE runs to 15)
        ("49333333333333333", 1, 1, "GB"),
        ("+49301111111111111", 0, 0, "GB"),
        ("49301111111111111", 0, 1, None),
        ("0301111111111111", 2, 1, "DE"),  # national: +49 and 15 digits
        ("0301111111111111", 0, 1, "DE"),
        ("62" + "8" * 15, 1, 1, None),  # Indonesia and Japan allow 17 national digits
        ("81" + "9" * 15, 1, 1, None),
    ],
)
def test_a_sender_longer_than_e164_allows_is_not_a_phone_number(
    source_addr: str, ton: int, npi: int, country: str | None
) -> None:
    # No proof, binding or API route takes more than 15 digits: such a sender must be refused as a wrong sender
    # before anything is spent on it, not found out by the proof signer after a rate-limit token was taken.
    assert normalise_sender(source_addr, ton, npi, country) is None


def test_a_trunk_prefix_written_past_15_digits_still_leaves_a_number_within_them() -> None:
    # Judged on the result: 16 digits written, the trunk '0' after the country code goes, 15 remain.
    assert normalise_sender("490" + "3" * 13, 1, 1, None) == "+49" + "3" * 13


@pytest.mark.parametrize(("sender", "country"), [("5550123", "US"), ("79460000", "GB")])
def test_a_national_sender_without_its_area_code_is_not_a_phone_number(sender: str, country: str) -> None:
    # Dialable only inside an area: as +1 5550123 every subscriber with that local number would share one identity.
    assert normalise_sender(sender, 2, 1, country) is None
    assert normalise_sender(sender, 0, 1, country) is None


def test_a_national_sender_with_its_area_code_is_read() -> None:
    assert normalise_sender("2125550123", 2, 1, "US") == "+12125550123"


@settings(max_examples=2000, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=17))
def test_the_international_shortcut_agrees_with_phonenumbers(digits: str) -> None:
    assert normalise_sender(digits, 1, 1, None) == _reference(digits)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(["GB", "US", "DE", "FR", "IN", "BR", "NG", "JP"]), st.data())
def test_national_numbers_round_trip(country: str, data: st.DataObject) -> None:
    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    assert example is not None
    national = phonenumbers.national_significant_number(example)
    e164 = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
    ton = data.draw(st.sampled_from([0, 2]))
    assert normalise_sender(national, ton, 1, country) == e164
    assert normalise_sender(e164[1:], 1, 1, None) == e164


def test_normalise_number_reads_written_forms() -> None:
    assert normalise_number("+44 7700 900123") == "+447700900123"
    assert normalise_number("(201) 555-0123", "US") == "+12015550123"
    assert normalise_number("07700 900123") is None  # national without a country
    assert normalise_number("not a number", "GB") is None


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+447700900123", (1, 1, "447700900123")),
        ("447700900000", (1, 1, "447700900000")),
        ("12345", (3, 0, "12345")),
        ("IDENTITY", (5, 0, "IDENTITY")),
    ],
)
def test_address_of(number: str, expected: tuple[int, int, str]) -> None:
    assert address_of(number) == expected
