"""Registration proofs: the ``s=`` value of a REG-RESP, which the phone hands back to ``authenticate``.

Theory of operation
-------------------
A proof says "this service sent an SMS carrying this proof to this number, for this push token, in answer to this
request, and it is good until then". The service keeps no state per proof: everything the verifier needs except
the number and the push token (which ``authenticate`` carries anyway) travels inside the proof, authenticated by a
truncated HMAC-SHA256. Verification therefore costs one HMAC and touches no storage; the only state is the
single-use check, which belongs to the store and is keyed by :attr:`VerifiedProof.proof_id`.

Layout (30 octets, sent as 60 lowercase hex digits)::

    offset  size  field
    0       1     format version, 0x01
    1       1     key id (which secret made the MAC; lets previous keys verify during a rotation)
    2       4     expires_at, unsigned big-endian, whole seconds since the Unix epoch (good until 2106)
    6       8     request_id, unsigned big-endian, 1..2**63-1 (the r= of the REG-REQ)
    14      16    MAC = HMAC-SHA256(secret, DOMAIN | octets 0..13 | len(e164) | e164 | push token)[:16]

* The number is length-prefixed and the push token is its fixed 32 raw octets, so no two different
  (number, token) pairs feed the same bytes to the MAC. Hashing the raw token octets also makes the token's hex
  case irrelevant, as the protocol requires.
* 128 bits of MAC: a forger's chance per attempt is 2**-128, and the velocity limits cap the attempts anyway.
  Truncating HMAC-SHA256 is allowed by NIST SP 800-107 §5.3.4; 128 bits keeps a REG-RESP inside one SMS.
* A domain string prefixes the MAC input so that a secret reused by mistake for another purpose can never make
  a MAC that verifies here.
* The MAC is checked, in constant time, *before* any field of the proof is believed: an expired forged proof is
  FORGED, not EXPIRED, and nothing about the secret leaks through timing.

Single use: the MAC itself is the proof id. Two issues of the same request give the same proof only when their
issue times give the same whole-second expiry (``floor(now + ttl)``: usually within one second, never across a
second boundary); any other proof has another id. This module alone therefore does not make a carrier's MO
delivered twice yield one proof: :mod:`identity_core.recent_requests` does, by issuing a repeat of a request at its
first issue time. The store marks an id consumed and may forget it once :attr:`VerifiedProof.expires_at` has
passed, because the proof is refused as EXPIRED from then on without the store's help.

Pure: time is the ``now`` argument; the only randomness is :meth:`ProofKey.generate`, which nothing on the
request path calls.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from identity_core.refusals import Refusal, RefusalReason

__all__ = [
    "MAX_REQUEST_ID",
    "MIN_SECRET_LENGTH",
    "PROOF_FORMAT_VERSION",
    "PROOF_HEX_LENGTH",
    "PROOF_LENGTH",
    "Proof",
    "ProofKey",
    "ProofSigner",
    "VerifiedProof",
]

#: The first octet of every proof this module makes; another value is refused as FORGED.
PROOF_FORMAT_VERSION: Final = 1
#: Octets of MAC kept from HMAC-SHA256's 32.
MAC_LENGTH: Final = 16
_HEADER: Final = struct.Struct(">BBIQ")
#: Octets in a proof: header (version, key id, expiry, request id) plus the truncated MAC.
PROOF_LENGTH: Final = _HEADER.size + MAC_LENGTH
#: Hex digits in a proof as it appears in ``s=`` and in ``authenticate``'s ``signature``.
PROOF_HEX_LENGTH: Final = 2 * PROOF_LENGTH
#: Largest request id (the protocol's r= is 1..2**63-1, so it fits a signed 64-bit column in any database).
MAX_REQUEST_ID: Final = 2**63 - 1
#: Shortest secret accepted: as long as the hash's output, RFC 2104 §3's recommendation.
MIN_SECRET_LENGTH: Final = 32
_MAX_EXPIRY: Final = 2**32 - 1
_DOMAIN: Final = b"identity-core/registration-proof/v1\x00"
_PUSH_TOKEN_HEX = re.compile(r"[0-9a-fA-F]{64}")
_PROOF_HEX = re.compile(rf"[0-9a-fA-F]{{{PROOF_HEX_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class ProofKey:
    """One MAC secret and the key id that names it inside proofs."""

    key_id: int
    # repr=False: a secret must not end up in a log line or a traceback by way of repr().
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if not 0 <= self.key_id <= 255:
            raise ValueError(f"key_id must fit one octet (0..255), got {self.key_id}")
        if len(self.secret) < MIN_SECRET_LENGTH:
            raise ValueError(f"a proof secret needs at least {MIN_SECRET_LENGTH} octets, got {len(self.secret)}")

    @classmethod
    def generate(cls, key_id: int) -> ProofKey:
        """A fresh key with a secret from the operating system's CSPRNG."""
        return cls(key_id, secrets.token_bytes(MIN_SECRET_LENGTH))


@dataclass(frozen=True, slots=True)
class Proof:
    """An issued proof: what goes into ``s=``, when it stops being accepted, and the id the store tracks."""

    hex: str
    expires_at: int
    proof_id: bytes


@dataclass(frozen=True, slots=True)
class VerifiedProof:
    """What a valid proof vouches for beyond the number and token the caller already had."""

    request_id: int
    expires_at: int
    proof_id: bytes
    key_id: int


class ProofSigner:
    """Issues proofs with the current key and verifies proofs made with the current or any previous key.

    Rotation: build the new signer with :meth:`rotate` (the current key becomes a previous one and keeps
    verifying the proofs already in flight), then :meth:`retire` the old key once ``ttl`` has passed, when no
    proof it made can still be accepted. Instances are immutable, so a rotation is an atomic swap of one object.
    """

    __slots__ = ("_current", "_keys", "_macs", "_ttl")

    def __init__(self, secret: bytes, ttl: float, *, key_id: int = 0, previous: Iterable[ProofKey] = ()) -> None:
        if not (math.isfinite(ttl) and ttl >= 1):
            # Expiry is kept in whole seconds, so anything under a second could expire before it is sent.
            raise ValueError(f"ttl must be a finite number of seconds >= 1, got {ttl!r}")
        current = ProofKey(key_id, secret)
        keys: dict[int, ProofKey] = {current.key_id: current}
        for key in previous:
            if key.key_id in keys:
                raise ValueError(f"two proof keys share key id {key.key_id}")
            keys[key.key_id] = key
        self._current = current
        self._ttl = float(ttl)
        self._keys: Mapping[int, ProofKey] = keys
        # HMAC of the domain prefix computed once per key; each proof copies the state instead of re-deriving
        # the padded key, which makes issue and verify about a third faster.
        self._macs = {kid: hmac.new(key.secret, _DOMAIN, hashlib.sha256) for kid, key in keys.items()}

    @property
    def ttl(self) -> float:
        """Seconds between issue and expiry (rounded down to a whole second per proof)."""
        return self._ttl

    @property
    def current_key_id(self) -> int:
        """The key id new proofs are made with."""
        return self._current.key_id

    @property
    def key_ids(self) -> frozenset[int]:
        """Every key id whose proofs still verify (current and previous)."""
        return frozenset(self._keys)

    def rotate(self, secret: bytes, *, key_id: int | None = None) -> ProofSigner:
        """A signer whose current key is ``secret`` and whose previous keys are all of this signer's keys.

        ``key_id`` defaults to the next id after the current one (mod 256) that no kept key uses.
        """
        if key_id is None:
            free = [(self._current.key_id + step) % 256 for step in range(1, 256)]
            free = [candidate for candidate in free if candidate not in self._keys]
            if not free:
                raise ValueError("all 256 key ids are in use; retire some keys first")
            key_id = free[0]
        return ProofSigner(secret, self._ttl, key_id=key_id, previous=self._keys.values())

    def retire(self, key_id: int) -> ProofSigner:
        """A signer that no longer accepts proofs made with ``key_id`` (which must not be the current key)."""
        if key_id == self._current.key_id:
            raise ValueError("cannot retire the current key; rotate first")
        if key_id not in self._keys:
            raise KeyError(key_id)
        kept = [key for kid, key in self._keys.items() if kid not in (key_id, self._current.key_id)]
        return ProofSigner(self._current.secret, self._ttl, key_id=self._current.key_id, previous=kept)

    def issue(self, e164: str, push_token: str, request_id: int, now: float) -> Proof:
        """Make the proof for a REG-RESP.

        The arguments come from our own parser and the network's sender address, so a bad one is a bug in the
        caller and raises :class:`ValueError` rather than returning a refusal.
        """
        number = _number_octets(e164)
        if number is None:
            raise ValueError(f"not a +E.164 number: {e164!r}")
        if not _PUSH_TOKEN_HEX.fullmatch(push_token):
            raise ValueError("push_token must be 64 hex digits")
        if not 1 <= request_id <= MAX_REQUEST_ID:
            raise ValueError(f"request_id must be 1..2**63-1, got {request_id}")
        expires_at = math.floor(now + self._ttl)
        if not 0 <= expires_at <= _MAX_EXPIRY:
            raise ValueError(f"expiry {expires_at} does not fit 32 bits; is the clock right?")
        header = _HEADER.pack(PROOF_FORMAT_VERSION, self._current.key_id, expires_at, request_id)
        mac = self._mac(self._current.key_id, header, number, bytes.fromhex(push_token))
        return Proof(hex=(header + mac).hex(), expires_at=expires_at, proof_id=mac)

    def verify(self, e164: str, push_token: str, signature_hex: str, now: float) -> VerifiedProof | Refusal:
        """Check a proof presented with ``authenticate``. Never raises, whatever the three strings hold.

        Refusals: MALFORMED for a push token that is not 64 hex digits (the request itself is broken); FORGED for
        anything the MAC does not vouch for (garbage, wrong length, unknown format or key id, another number,
        another token, any altered bit); EXPIRED for a genuine proof whose time is up. Replay is the store's
        check, on :attr:`VerifiedProof.proof_id`.
        """
        if not isinstance(push_token, str) or not _PUSH_TOKEN_HEX.fullmatch(push_token):
            return Refusal(RefusalReason.MALFORMED, "push_token must be 64 hex digits")
        if not isinstance(signature_hex, str) or not _PROOF_HEX.fullmatch(signature_hex):
            # fullmatch, not bytes.fromhex alone: fromhex skips whitespace, and a proof has exactly one spelling.
            return Refusal(RefusalReason.FORGED, f"signature is not {PROOF_HEX_LENGTH} hex digits")
        number = _number_octets(e164) if isinstance(e164, str) else None
        if number is None:
            # We only ever issue for +E.164 numbers, so no valid proof exists for this one.
            return Refusal(RefusalReason.FORGED, "no proof is issued for a number of this form")
        raw = bytes.fromhex(signature_hex)
        version, key_id, expires_at, request_id = _HEADER.unpack_from(raw)
        if version != PROOF_FORMAT_VERSION:
            return Refusal(RefusalReason.FORGED, f"unknown proof format {version}")
        if key_id not in self._macs:
            return Refusal(RefusalReason.FORGED, f"unknown or retired key id {key_id}")
        presented = raw[_HEADER.size :]
        expected = self._mac(key_id, raw[: _HEADER.size], number, bytes.fromhex(push_token))
        if not hmac.compare_digest(presented, expected):
            return Refusal(RefusalReason.FORGED, "MAC does not match this number, token and proof")
        if now >= expires_at:
            return Refusal(RefusalReason.EXPIRED, f"proof expired at {expires_at}, now {now:.0f}")
        return VerifiedProof(request_id=request_id, expires_at=expires_at, proof_id=expected, key_id=key_id)

    def _mac(self, key_id: int, header: bytes, number: bytes, token: bytes) -> bytes:
        state = self._macs[key_id].copy()
        state.update(header)
        state.update(bytes((len(number),)))
        state.update(number)
        state.update(token)
        return state.digest()[:MAC_LENGTH]


_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def _number_octets(e164: str) -> bytes | None:
    """The number as MAC input, or None when it is not +E.164 (ITU-T E.164: at most 15 digits, no leading 0)."""
    if not _E164.fullmatch(e164):
        return None
    return e164.encode("ascii")
