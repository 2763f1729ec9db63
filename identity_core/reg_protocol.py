"""The registration SMS protocol, version 3: REG-REQ (phone to service, MO) and REG-RESP (service to phone, MT).

Pure text in, values out: no I/O, no clock. The SMPP edge decodes the short message (GSM 7-bit, UCS-2) into text
first; this module sees that text, or raw octets when the edge could not decode them.

Grammar (ABNF, RFC 5234; literal strings are case-sensitive here, as in RFC 7405 ``%s"..."``)::

    reg-req    = *WSP %s"REG-REQ?" version-v3 ";" req-fields [";"] *WSP
    req-fields = token ";" req-id / req-id ";" token      ; t and r in either order, once each
    version-v3 = %s"v=3"
    token      = %s"t=" 64HEXDIG                          ; either case, normalised to lower case
    req-id     = %s"r=" dec-id                            ; 1 .. 2^63-1
    dec-id     = %x31-39 *18DIGIT                         ; no sign, no leading zero

    reg-resp   = *WSP %s"REG-RESP?" %s"v=3" ";" resp-fields [";"] *WSP
    resp-fields= r, n and s, in any order, once each
    number     = %s"n=" "+" %x31-39 1*14DIGIT             ; +E.164 as the network stamped the sender
    proof      = %s"s=" 2*HEXDIG (even count)

    WSP here   = SP / HTAB / CR / LF

Decisions, and why:

* ``v`` comes first. A later version may change everything after it, so the parser reads the version before
  anything else and answers UNKNOWN_VERSION for ``REG-REQ?v=4;<anything>`` rather than MALFORMED: the phone
  learns what to fix. A ``v`` that is not a canonical decimal is MALFORMED.
* After ``v`` the other keys may come in any order: a phone that builds the text from a map should not fail.
  Every key must appear exactly once; a repeated key, an unknown key, an empty field (``;;``) are MALFORMED,
  because a lenient "last one wins" rule is how two parsers come to disagree about one message.
* Whitespace (SP, HTAB, CR, LF) is tolerated around the message, never inside it. Handsets and gateways append
  CR/LF, and GSM 7-bit packing pads with CR when the last septet would otherwise read as '@' (3GPP TS 23.038
  §6.1.2.3.1).
* Keywords and keys are case-sensitive; only the hex digits of ``t`` and ``s`` are case-insensitive, as the
  issue requires. Numbers have exactly one spelling (no sign, no leading zero, ASCII digits only — ``int()``
  alone would accept ``"+1"``, ``"1_0"``, ``" 1"`` and Arabic-Indic digits).
* At most :data:`MAX_MESSAGE_LENGTH` (160) characters or octets, checked before anything else so that a
  hostile megabyte costs nothing: a REG-REQ is at most 101 characters and every message travels in one SMS.
* Octets must be ASCII: anything else is MALFORMED (the grammar has no non-ASCII character, so valid non-ASCII
  UTF-8 could only ever be refused later anyway).

REG-RESP length, worst case (one SMS holds 160 GSM 7-bit characters; every character of a REG-RESP is in the
GSM 7-bit default alphabet and none needs the escape table)::

    "REG-RESP?v=3;r=;n=;s="             21
    r: 2**63-1                          19 digits
    n: "+" and 15 digits                16
    s: the proof, 30 octets in hex      60
                                       ---
                                       116  <= 160, 44 to spare
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from identity_core.proofs import MAX_REQUEST_ID, PROOF_HEX_LENGTH
from identity_core.refusals import Refusal, RefusalReason

__all__ = [
    "MAX_MESSAGE_LENGTH",
    "MAX_REG_REQ_LENGTH",
    "MAX_REG_RESP_LENGTH",
    "PROTOCOL_VERSION",
    "REG_REQ_KEYWORD",
    "REG_RESP_KEYWORD",
    "RegRequest",
    "RegResponse",
    "format_reg_req",
    "format_reg_resp",
    "parse_reg_req",
    "parse_reg_resp",
]

#: The only protocol version this service speaks.
PROTOCOL_VERSION: Final = 3
REG_REQ_KEYWORD: Final = "REG-REQ?"
REG_RESP_KEYWORD: Final = "REG-RESP?"
#: Longest input the parsers look at, in characters or octets: one single-part GSM 7-bit SMS.
MAX_MESSAGE_LENGTH: Final = 160
#: Longest well-formed REG-REQ without surrounding whitespace (keyword, v=3, 64 hex, a 19-digit id, ';').
MAX_REG_REQ_LENGTH: Final = len(f"{REG_REQ_KEYWORD}v=3;t=;r=;") + 64 + len(str(MAX_REQUEST_ID))
#: Longest REG-RESP :func:`format_reg_resp` makes (see the module docstring for the arithmetic).
MAX_REG_RESP_LENGTH: Final = len(f"{REG_RESP_KEYWORD}v=3;r=;n=;s=") + len(str(MAX_REQUEST_ID)) + 16 + PROOF_HEX_LENGTH

# The promise of the protocol, checked where a change to the proof layout would break it.
if MAX_REG_RESP_LENGTH > MAX_MESSAGE_LENGTH:  # pragma: no cover
    raise RuntimeError(f"a REG-RESP could be {MAX_REG_RESP_LENGTH} characters, more than one SMS")

_WHITESPACE: Final = " \t\r\n"
# Explicit [0-9] ranges and fullmatch throughout: \d matches non-ASCII digits and $ matches before a final "\n".
_VERSION = re.compile(r"0|[1-9][0-9]*")
_DECIMAL_ID = re.compile(r"[1-9][0-9]{0,18}")
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_HEX_OCTETS = re.compile(r"(?:[0-9a-fA-F]{2})+")
_REQ_KEYS: Final = frozenset({"t", "r"})
_RESP_KEYS: Final = frozenset({"r", "n", "s"})


@dataclass(frozen=True, slots=True)
class RegRequest:
    """A well-formed REG-REQ: protocol version, the device's push token (lower-case hex), the phone's request id."""

    version: int
    push_token: str
    request_id: int


@dataclass(frozen=True, slots=True)
class RegResponse:
    """A well-formed REG-RESP: the echoed request id, the number as the network saw it, the proof (lower-case)."""

    version: int
    request_id: int
    e164: str
    proof_hex: str


def parse_reg_req(data: str | bytes | bytearray | memoryview) -> RegRequest | Refusal:
    """Parse the text of an MO short message as a REG-REQ. Never raises, whatever ``data`` holds.

    Refusals are MALFORMED (grammar, encoding, length) or UNKNOWN_VERSION (a well-formed ``v`` other than 3).
    The sender check (WRONG_SENDER) is the caller's: this text says nothing about who sent it.
    """
    fields = _parse_envelope(data, REG_REQ_KEYWORD, _REQ_KEYS)
    if isinstance(fields, Refusal):
        return fields
    push_token = fields["t"]
    if not _HEX64.fullmatch(push_token):
        return Refusal(RefusalReason.MALFORMED, "t must be exactly 64 hex digits")
    request_id = _request_id(fields["r"])
    if request_id is None:
        return Refusal(RefusalReason.MALFORMED, "r must be a decimal 1..2^63-1 without sign or leading zero")
    return RegRequest(version=PROTOCOL_VERSION, push_token=push_token.lower(), request_id=request_id)


def format_reg_req(push_token: str, request_id: int) -> str:
    """The REG-REQ a phone sends (used by simulated phones and tests). Raises ValueError on bad arguments."""
    if not _HEX64.fullmatch(push_token):
        raise ValueError("push_token must be 64 hex digits")
    _check_request_id(request_id)
    return f"{REG_REQ_KEYWORD}v={PROTOCOL_VERSION};t={push_token.lower()};r={request_id};"


def format_reg_resp(request_id: int, e164: str, proof_hex: str) -> str:
    """The REG-RESP text the service sends back to the phone.

    Raises ValueError when an argument could not have come from a valid exchange — these are the service's own
    values, so a bad one is a bug to surface, not input to refuse.
    """
    _check_request_id(request_id)
    if not _E164.fullmatch(e164):
        raise ValueError(f"not a +E.164 number: {e164!r}")
    if not _HEX_OCTETS.fullmatch(proof_hex):
        raise ValueError("proof_hex must be an even number of hex digits")
    text = f"{REG_RESP_KEYWORD}v={PROTOCOL_VERSION};r={request_id};n={e164};s={proof_hex.lower()}"
    if len(text) > MAX_MESSAGE_LENGTH:
        raise ValueError(f"REG-RESP would be {len(text)} characters, more than one SMS")
    return text


def parse_reg_resp(data: str | bytes | bytearray | memoryview) -> RegResponse | Refusal:
    """Parse a REG-RESP as a phone receives it. Never raises; same envelope rules as :func:`parse_reg_req`."""
    fields = _parse_envelope(data, REG_RESP_KEYWORD, _RESP_KEYS)
    if isinstance(fields, Refusal):
        return fields
    request_id = _request_id(fields["r"])
    if request_id is None:
        return Refusal(RefusalReason.MALFORMED, "r must be a decimal 1..2^63-1 without sign or leading zero")
    e164 = fields["n"]
    if not _E164.fullmatch(e164):
        return Refusal(RefusalReason.MALFORMED, "n must be a +E.164 number")
    proof_hex = fields["s"]
    if not _HEX_OCTETS.fullmatch(proof_hex):
        return Refusal(RefusalReason.MALFORMED, "s must be an even number of hex digits")
    return RegResponse(version=PROTOCOL_VERSION, request_id=request_id, e164=e164, proof_hex=proof_hex.lower())


def _parse_envelope(data: object, keyword: str, keys: frozenset[str]) -> dict[str, str] | Refusal:
    """Everything both messages share: type, length, encoding, whitespace, keyword, version, the key=value list.

    Returns the fields other than ``v`` (exactly ``keys``, each once) with their raw values.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        # Length first, so that decoding a hostile megabyte never happens.
        if len(data) > MAX_MESSAGE_LENGTH:
            return Refusal(RefusalReason.MALFORMED, f"longer than {MAX_MESSAGE_LENGTH} octets")
        try:
            text = bytes(data).decode("ascii")
        except UnicodeDecodeError as err:
            return Refusal(RefusalReason.MALFORMED, f"non-ASCII octet at offset {err.start}")
    elif isinstance(data, str):
        if len(data) > MAX_MESSAGE_LENGTH:
            return Refusal(RefusalReason.MALFORMED, f"longer than {MAX_MESSAGE_LENGTH} characters")
        if not data.isascii():
            return Refusal(RefusalReason.MALFORMED, "non-ASCII character")
        text = data
    else:
        # The signature says str | bytes, but the edges feed this from the network: refuse, never raise.
        return Refusal(RefusalReason.MALFORMED, f"expected text or octets, got {type(data).__name__}")

    text = text.strip(_WHITESPACE)
    if not text.startswith(keyword):
        return Refusal(RefusalReason.MALFORMED, f"does not start with {keyword!r}")
    body = text[len(keyword) :]

    # The version decides the grammar of everything after it, so it is read before the rest is split.
    first, _, rest = body.partition(";")
    key, equals, version = first.partition("=")
    if key != "v" or not equals:
        return Refusal(RefusalReason.MALFORMED, "the first field must be v=<version>")
    if not _VERSION.fullmatch(version):
        return Refusal(RefusalReason.MALFORMED, "v must be a decimal without sign or leading zero")
    if version != str(PROTOCOL_VERSION):
        return Refusal(RefusalReason.UNKNOWN_VERSION, f"version {version[:10]} (this service speaks 3)")

    if rest.endswith(";"):
        rest = rest[:-1]
    fields: dict[str, str] = {}
    # An empty rest means no fields at all, which the "missing" check below reports better than "empty field".
    for item in rest.split(";") if rest else ():
        key, equals, value = item.partition("=")
        if not equals:
            return Refusal(RefusalReason.MALFORMED, "a field is not key=value" if item else "empty field")
        if key not in keys:
            # v lands here too: it was consumed above, so a second v is a repeated key like any other.
            what = "repeated" if key == "v" else "unknown"
            return Refusal(RefusalReason.MALFORMED, f"{what} key {key[:10]!r}")
        if key in fields:
            return Refusal(RefusalReason.MALFORMED, f"repeated key {key!r}")
        fields[key] = value
    if len(fields) != len(keys):
        missing = ",".join(sorted(keys - fields.keys()))
        return Refusal(RefusalReason.MALFORMED, f"missing key(s) {missing}")
    return fields


def _request_id(text: str) -> int | None:
    """The request id if ``text`` is its one canonical spelling and in range, else None."""
    if not _DECIMAL_ID.fullmatch(text):
        return None
    value = int(text)
    return value if value <= MAX_REQUEST_ID else None


def _check_request_id(request_id: int) -> None:
    # bool is an int; True as a request id is a bug somewhere upstream.
    if isinstance(request_id, bool) or not isinstance(request_id, int) or not 1 <= request_id <= MAX_REQUEST_ID:
        raise ValueError(f"request_id must be an int 1..2**63-1, got {request_id!r}")
