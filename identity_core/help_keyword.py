"""The HELP keyword: a person who texts HELP (or INFO) to the gateway number gets one SMS saying what it is.

Carriers expect a short-code or long-number service to answer HELP (and operators' own acceptable-use rules
ask for it). The answer goes through the same per-number, per-prefix and per-carrier velocity limits as
REG-REQ, so the keyword cannot turn the gateway into an SMS pump aimed at someone else's number (the carrier
stamps the true sender, so an answer only ever goes to the phone that asked, and only as often as REG-RESP may).

Pure: which texts are the keyword and whether a configured answer fits one SMS.
"""

from __future__ import annotations

from typing import Final

from identity_core.sms_text import MAX_SINGLE_GSM7_SEPTETS, encode_mt_text

__all__ = ["DEFAULT_HELP_TEXT", "HELP_KEYWORDS", "help_text_problem", "is_help_request"]

#: The keywords, compared case-insensitively after stripping surrounding whitespace.
HELP_KEYWORDS: Final = frozenset({"help", "info"})

#: 141 GSM 7-bit characters: one SMS.
DEFAULT_HELP_TEXT: Final = (
    "identity-core: this number verifies phone numbers for secure messaging apps. "
    "Your app sends and reads these texts itself; you need not reply."
)


def is_help_request(text: str) -> bool:
    """Whether an MO's text is the HELP keyword (``HELP``, ``help``, `` Info ``...)."""
    # casefold, not upper(): "ınfo".upper() is "INFO", and a dotless i is not the keyword.
    return text.strip().casefold() in HELP_KEYWORDS


def help_text_problem(text: str) -> str | None:
    """Why ``text`` cannot be the HELP answer, or None if it fits one SMS (160 GSM 7-bit or 70 UCS-2 characters)."""
    if not text.strip():
        return "must not be empty"
    _, _, fits = encode_mt_text(text)
    if not fits:
        return (
            f"must fit one SMS: at most {MAX_SINGLE_GSM7_SEPTETS} GSM 7-bit characters "
            "(^{}\\[~]|€ count twice), or 70 characters if any is outside the GSM alphabet"
        )
    return None
