"""Phone numbers as the network stamps them on an MO, turned into E.164 (``+`` and digits), or refused.

The SMSC writes the sender of an MO into source_addr with a type of number (TON) and numbering plan (NPI),
SMPP 3.4 section 5.2.5-6:

* TON 1 (international), NPI 1 (E.164): the digits with the country code and no ``+`` -- the usual case;
* TON 2 (national): the national number as dialled at home (often with a trunk prefix such as the UK's ``0``),
  which only the carrier's country turns into E.164;
* TON 0 (unknown): anything -- ``+44...``, ``0044...``, ``07700...`` or bare ``447700...`` -- read with the
  carrier's country as context; with NPI 1 (E.164), digits that are no national number of that country are read
  as international when that makes a valid number (a roamer's ``4915112345678`` on a GB carrier);
* TON 5 (alphanumeric), 6 (abbreviated), 3 (network specific) and 4 (subscriber number): not a phone number the
  service can bind to a device, so :func:`normalise_sender` returns None.

A number is accepted when it is *possible* (a country code that exists, a length that country uses) and no longer
than E.164's 15 digits, not when the metadata says it is *valid*: numbering plans open new ranges faster than any
library's metadata follows, and refusing a real subscriber is worse than letting the service's own checks (an SMS
round trip) decide.

The international case is the hot path (one call per MO, tens of thousands per second), so it is answered from
a per-country-code table of possible lengths built from ``phonenumbers``' metadata, the same table
``phonenumbers.is_possible_number`` consults; everything else goes through ``phonenumbers.parse``.
"""

from __future__ import annotations

from functools import cache
from typing import Final

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE

__all__ = [
    "NPI_E164",
    "NPI_NATIONAL",
    "NPI_UNKNOWN",
    "TON_ABBREVIATED",
    "TON_ALPHANUMERIC",
    "TON_INTERNATIONAL",
    "TON_NATIONAL",
    "TON_NETWORK_SPECIFIC",
    "TON_SUBSCRIBER",
    "TON_UNKNOWN",
    "address_of",
    "normalise_number",
    "normalise_sender",
]

TON_UNKNOWN: Final = 0
TON_INTERNATIONAL: Final = 1
TON_NATIONAL: Final = 2
TON_NETWORK_SPECIFIC: Final = 3
TON_SUBSCRIBER: Final = 4
TON_ALPHANUMERIC: Final = 5
TON_ABBREVIATED: Final = 6
NPI_UNKNOWN: Final = 0
NPI_E164: Final = 1
NPI_NATIONAL: Final = 8

#: Numbering plans whose addresses can be telephone numbers (E.212 is an IMSI, X.121 a data address, ...).
_PHONE_PLANS: Final = frozenset({NPI_UNKNOWN, NPI_E164, NPI_NATIONAL})
_MAX_E164_DIGITS: Final = 15  # ITU-T E.164 section 6
_VISUAL_SEPARATORS: Final = str.maketrans("", "", " -.()\t")


@cache
def _fast_rules(country_code: int) -> tuple[frozenset[int], frozenset[str] | None]:
    """(national significant number lengths, first digits that may start a national prefix) of a country code.

    The second item is None when the national prefix is a pattern this shortcut does not read: every number of
    that country code then takes the full parse. Empty lengths: no such country code.
    """
    regions = COUNTRY_CODE_TO_REGION_CODE.get(country_code)
    if not regions:
        return frozenset(), None
    # is_possible_number judges by the main region of a shared code (the US for +1); do the same.
    metadata = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, regions[0])
    if metadata is None or metadata.general_desc is None:
        return frozenset(), None
    lengths = frozenset(n for n in (metadata.general_desc.possible_length or ()) if n > 0)
    # A plain alternation of digit strings ("0|180020") is read; any other pattern is not.
    prefixes = [alt for p in (metadata.national_prefix, metadata.national_prefix_for_parsing) if p
                for alt in p.split("|")]
    if any(not p.isdigit() for p in prefixes):
        return lengths, None
    # phonenumbers strips a national (trunk) prefix written after the country code ("+49 0221..." is
    # "+49221..."): a number starting with one is left to it, so that both paths always agree.
    return lengths, frozenset({"0", *(p[0] for p in prefixes)})


def _international(digits: str) -> str | None:
    """'+digits' when ``digits`` (country code first) is a possible E.164 number, normalised as phonenumbers
    would (a trunk prefix after the country code removed)."""
    if not digits.isdigit() or not digits.isascii():
        return None
    if len(digits) <= _MAX_E164_DIGITS and digits[0] != "0":
        for width in (1, 2, 3):  # E.164 country codes are prefix-free, 1 to 3 digits
            lengths, risky = _fast_rules(int(digits[:width]))
            if lengths:
                if risky is not None and len(digits) - width in lengths and digits[width] not in risky:
                    return "+" + digits
                break
    # Anything the shortcut cannot settle -- including every refusal -- gets the full parse.
    return _parsed("+" + digits, None)


def _parsed(text: str, country: str | None) -> str | None:
    try:
        number = phonenumbers.parse(text, country)
    except NumberParseException:
        return None
    # Not is_possible_number(): it also says yes to IS_POSSIBLE_LOCAL_ONLY, a number dialable only inside its
    # area (US 555-0123 with no area code), which made every subscriber with that local number the same +1 5550123.
    if phonenumbers.is_possible_number_with_reason(number) != ValidationResult.IS_POSSIBLE:
        return None
    return _e164(number)


def _valid_international(digits: str) -> str | None:
    """'+digits' in E.164 when ``digits`` (country code first) is a valid number by phonenumbers' metadata."""
    try:
        number = phonenumbers.parse("+" + digits, None)
    except NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return _e164(number)


def _e164(number: phonenumbers.PhoneNumber) -> str | None:
    """``number`` as '+digits', or None past E.164's 15 digits.

    phonenumbers' metadata calls longer numbers possible (Germany's national numbers run to 15 digits, so
    +49 and 15 digits is 17; Indonesia and Japan allow 17 national digits): no proof, binding or API route takes
    such a number, so a sender that is one is no phone number the service can bind. Judged on the result, not the
    input: ``+49 0`` and 13 digits is 16 digits written, but its trunk prefix goes and 15 remain.
    """
    formatted = phonenumbers.format_number(number, PhoneNumberFormat.E164)
    return formatted if len(formatted) - 1 <= _MAX_E164_DIGITS else None


def normalise_number(text: str, country: str | None = None) -> str | None:
    """Any written phone number (``+44 7700 900123``, ``07700900123`` with country GB) to E.164, or None."""
    cleaned = text.strip().translate(_VISUAL_SEPARATORS)
    if cleaned.startswith("+"):
        return _international(cleaned[1:])
    if not cleaned or country is None:
        return None
    return _parsed(cleaned, country)


def normalise_sender(source_addr: str, ton: int, npi: int, country: str | None) -> str | None:
    """The E.164 form (``+`` and digits) of an MO's source_addr, or None when it cannot be a phone number.

    ``country`` is the carrier's ISO 3166 region (``"GB"``), needed for national (TON 2) and unknown (TON 0)
    numbers written without a country code.
    """
    if npi not in _PHONE_PLANS:
        return None
    address = source_addr.strip()
    if not address:
        return None
    if ton == TON_INTERNATIONAL:
        return _international(address[1:] if address.startswith("+") else address)
    if ton == TON_NATIONAL:
        if country is None or not address.isdigit():
            return None
        return _parsed(address, country)
    if ton == TON_UNKNOWN:
        if address.startswith("+"):
            return _international(address[1:])
        if not address.isdigit():
            return None
        if country is None:
            return _international(address)
        national = _parsed(address, country)
        if national is None and npi == NPI_E164:
            # Many SMSCs leave TON 0 on international digits of the E.164 plan ('4915112345678' from a German
            # roamer on a GB carrier). Read that way only when the metadata calls the result a *valid* number:
            # unlike the other paths this is a guess, and a possible length alone would accept nearly anything.
            return _valid_international(address)
        return national
    return None  # alphanumeric, abbreviated, network-specific, subscriber number: not bindable


def address_of(number: str) -> tuple[int, int, str]:
    """(TON, NPI, address) to put a number on the wire: E.164 (or more than 8 digits) as TON 1/NPI 1 digits, a
    short code as TON 3 (network specific)/NPI 0, anything else as TON 5 (alphanumeric)/NPI 0."""
    stripped = number.strip()
    if stripped.startswith("+") and stripped[1:].isdigit():
        return TON_INTERNATIONAL, NPI_E164, stripped[1:]
    if stripped.isdigit():
        # Long numbers without '+' are international by the convention carriers use for gateway numbers;
        # short codes (up to 8 digits) are meaningful only inside the carrier's network.
        if len(stripped) > 8:
            return TON_INTERNATIONAL, NPI_E164, stripped
        return TON_NETWORK_SPECIFIC, NPI_UNKNOWN, stripped
    return TON_ALPHANUMERIC, NPI_UNKNOWN, stripped
