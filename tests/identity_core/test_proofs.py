"""Registration proofs: they verify for exactly what they were issued for, until they expire, with a stable id."""

from __future__ import annotations

import hashlib
import hmac
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_core.proofs import (
    PROOF_HEX_LENGTH,
    PROOF_LENGTH,
    Proof,
    ProofKey,
    ProofSigner,
    VerifiedProof,
)
from identity_core.refusals import Refusal, RefusalReason

SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
NUMBER = "+447700900123"
TOKEN = "00112233445566778899aabbccddeeff" * 2
OTHER_TOKEN = "f" * 64
NOW = 1_700_000_000.25
TTL = 600.0


@pytest.fixture
def signer() -> ProofSigner:
    return ProofSigner(SECRET, TTL, key_id=7)


def refused(result: object, reason: RefusalReason) -> Refusal:
    assert isinstance(result, Refusal), result
    assert result.reason is reason, result
    return result


# ------------------------------------------------------------------------------------------------ happy path


def test_issued_proof_verifies_and_says_what_it_vouches_for(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 42, NOW)
    assert len(proof.hex) == PROOF_HEX_LENGTH == 60
    assert proof.expires_at == 1_700_000_600
    result = signer.verify(NUMBER, TOKEN, proof.hex, NOW + 1)
    assert result == VerifiedProof(request_id=42, expires_at=1_700_000_600, proof_id=proof.proof_id, key_id=7)


def test_layout_is_as_documented(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 0x0102030405060708, NOW)
    raw = bytes.fromhex(proof.hex)
    assert len(raw) == PROOF_LENGTH == 30
    version, key_id, expires_at, request_id = struct.unpack(">BBIQ", raw[:14])
    assert (version, key_id, expires_at, request_id) == (1, 7, 1_700_000_600, 0x0102030405060708)
    # The MAC is recomputable from the documented input alone (an independent implementation could verify).
    message = (
        b"identity-core/registration-proof/v1\x00"
        + raw[:14]
        + bytes([len(NUMBER)])
        + NUMBER.encode()
        + bytes.fromhex(TOKEN)
    )
    assert raw[14:] == hmac.new(SECRET, message, hashlib.sha256).digest()[:16]
    assert proof.proof_id == raw[14:]


@settings(max_examples=300)
@given(
    number=st.from_regex(r"\+[1-9][0-9]{1,14}", fullmatch=True),
    token=st.text(alphabet="0123456789abcdefABCDEF", min_size=64, max_size=64),
    request_id=st.integers(1, 2**63 - 1),
    now=st.floats(0, 4_000_000_000.0),
    age=st.floats(0, TTL - 1),
)
def test_any_issued_proof_verifies_within_its_lifetime(
    number: str, token: str, request_id: int, now: float, age: float
) -> None:
    signer = ProofSigner(SECRET, TTL)
    proof = signer.issue(number, token, request_id, now)
    result = signer.verify(number, token, proof.hex, now + age)
    assert isinstance(result, VerifiedProof)
    assert result.request_id == request_id
    assert result.proof_id == proof.proof_id


def test_hex_case_of_token_and_signature_does_not_matter(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN.upper(), 1, NOW)
    assert proof == signer.issue(NUMBER, TOKEN, 1, NOW)
    upper = signer.verify(NUMBER, TOKEN.upper(), proof.hex.upper(), NOW)
    lower = signer.verify(NUMBER, TOKEN, proof.hex, NOW)
    assert isinstance(upper, VerifiedProof)
    assert upper == lower


# ------------------------------------------------------------------------------------------------- proof id


def test_proof_id_is_stable_and_distinguishes_proofs(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    first = signer.verify(NUMBER, TOKEN, proof.hex, NOW)
    second = signer.verify(NUMBER, TOKEN, proof.hex, NOW + 100)
    assert isinstance(first, VerifiedProof)
    assert isinstance(second, VerifiedProof)
    # Verifying is stateless: replay is for the store to catch, and it can, because the id does not move.
    assert first.proof_id == second.proof_id == proof.proof_id
    assert len(proof.proof_id) == 16
    # A duplicate MO in the same second yields the same proof, so one usable proof.
    assert signer.issue(NUMBER, TOKEN, 1, NOW + 0.5).proof_id == proof.proof_id
    others = {
        signer.issue(NUMBER, TOKEN, 2, NOW).proof_id,
        signer.issue(NUMBER, TOKEN, 1, NOW + 1).proof_id,
        signer.issue("+447700900124", TOKEN, 1, NOW).proof_id,
        signer.issue(NUMBER, OTHER_TOKEN, 1, NOW).proof_id,
        ProofSigner(OTHER_SECRET, TTL, key_id=7).issue(NUMBER, TOKEN, 1, NOW).proof_id,
    }
    assert len(others) == 5
    assert proof.proof_id not in others


# --------------------------------------------------------------------------------------------------- forged


def test_every_single_bit_flip_is_forged(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1234, NOW)
    raw = bytes.fromhex(proof.hex)
    for bit in range(len(raw) * 8):
        tampered = bytearray(raw)
        tampered[bit // 8] ^= 1 << (bit % 8)
        result = signer.verify(NUMBER, TOKEN, tampered.hex(), NOW)
        refused(result, RefusalReason.FORGED)


def test_a_bit_flipped_expiry_in_the_past_is_forged_not_expired(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    raw = bytearray.fromhex(proof.hex)
    raw[2] ^= 0x40  # the top of the expiry: now far in the past
    refused(signer.verify(NUMBER, TOKEN, raw.hex(), NOW), RefusalReason.FORGED)


def test_other_number_or_token_is_forged(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    refused(signer.verify("+447700900124", TOKEN, proof.hex, NOW), RefusalReason.FORGED)
    refused(signer.verify(NUMBER, OTHER_TOKEN, proof.hex, NOW), RefusalReason.FORGED)
    # Numbers that could never have been issued for are refused the same way, whatever they hold.
    for number in ("447700900123", "+447700900123 ", "", "+٤٤٧٧", "+" + "1" * 16):
        refused(signer.verify(number, TOKEN, proof.hex, NOW), RefusalReason.FORGED)


@pytest.mark.parametrize(
    "signature",
    ["", "00", "zz" * 30, "0" * 59, "0" * 61, " " + "0" * 59, "0" * 58 + "\n0", "00 " * 20, "0" * 60],
)
def test_garbage_signatures_are_forged(signer: ProofSigner, signature: str) -> None:
    refused(signer.verify(NUMBER, TOKEN, signature, NOW), RefusalReason.FORGED)


def test_whitespace_inside_a_valid_proof_is_forged(signer: ProofSigner) -> None:
    # bytes.fromhex would skip the space; the verifier must not, or a proof would have two spellings.
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    refused(signer.verify(NUMBER, TOKEN, proof.hex[:30] + " " + proof.hex[30:], NOW), RefusalReason.FORGED)


def test_a_malformed_push_token_is_malformed(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    for token in ("", TOKEN[:-1], TOKEN + "0", TOKEN[:-1] + "g"):
        refused(signer.verify(NUMBER, token, proof.hex, NOW), RefusalReason.MALFORMED)


@settings(max_examples=2000)
@given(st.one_of(st.text(max_size=80), st.none(), st.integers()), st.text(max_size=80), st.text(max_size=80))
def test_verify_never_raises(signature: object, number: str, token: str) -> None:
    signer = ProofSigner(SECRET, TTL)
    result = signer.verify(number, token, signature, NOW)  # type: ignore[arg-type]
    assert isinstance(result, Refusal)
    assert result.reason in {RefusalReason.FORGED, RefusalReason.MALFORMED}


@settings(max_examples=2000)
@given(st.binary(min_size=PROOF_LENGTH, max_size=PROOF_LENGTH))
def test_random_proofs_of_the_right_length_are_forged(raw: bytes) -> None:
    signer = ProofSigner(SECRET, TTL, key_id=raw[1])  # even with the key id right
    refused(signer.verify(NUMBER, TOKEN, raw.hex(), NOW), RefusalReason.FORGED)


# -------------------------------------------------------------------------------------------------- expired


def test_expiry_boundary(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    assert isinstance(signer.verify(NUMBER, TOKEN, proof.hex, proof.expires_at - 0.001), VerifiedProof)
    refused(signer.verify(NUMBER, TOKEN, proof.hex, proof.expires_at), RefusalReason.EXPIRED)
    refused(signer.verify(NUMBER, TOKEN, proof.hex, proof.expires_at + 86400), RefusalReason.EXPIRED)


def test_expired_and_for_another_number_is_forged(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    refused(signer.verify("+447700900124", TOKEN, proof.hex, NOW + 2 * TTL), RefusalReason.FORGED)


# ---------------------------------------------------------------------------------------- keys and rotation


def test_wrong_key_id_is_forged(signer: ProofSigner) -> None:
    proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    other_id = ProofSigner(SECRET, TTL, key_id=8)
    assert (
        "unknown or retired key id 7"
        in refused(other_id.verify(NUMBER, TOKEN, proof.hex, NOW), RefusalReason.FORGED).detail
    )
    # Same key id, another secret: the MAC is what decides.
    other_secret = ProofSigner(OTHER_SECRET, TTL, key_id=7)
    assert "MAC" in refused(other_secret.verify(NUMBER, TOKEN, proof.hex, NOW), RefusalReason.FORGED).detail


def test_rotation_keeps_old_proofs_valid_until_the_key_is_retired(signer: ProofSigner) -> None:
    old_proof = signer.issue(NUMBER, TOKEN, 1, NOW)
    rotated = signer.rotate(OTHER_SECRET)
    assert rotated.current_key_id == 8
    assert rotated.key_ids == {7, 8}
    new_proof = rotated.issue(NUMBER, TOKEN, 2, NOW)
    assert bytes.fromhex(new_proof.hex)[1] == 8
    assert isinstance(rotated.verify(NUMBER, TOKEN, old_proof.hex, NOW), VerifiedProof)
    assert isinstance(rotated.verify(NUMBER, TOKEN, new_proof.hex, NOW), VerifiedProof)
    # The signer before rotation does not know the new key.
    refused(signer.verify(NUMBER, TOKEN, new_proof.hex, NOW), RefusalReason.FORGED)

    retired = rotated.retire(7)
    assert retired.key_ids == {8}
    refused(retired.verify(NUMBER, TOKEN, old_proof.hex, NOW), RefusalReason.FORGED)
    assert isinstance(retired.verify(NUMBER, TOKEN, new_proof.hex, NOW), VerifiedProof)


def test_rotation_key_ids() -> None:
    signer = ProofSigner(SECRET, TTL, key_id=255, previous=[ProofKey(0, OTHER_SECRET)])
    assert signer.rotate(b"n" * 32).current_key_id == 1  # wraps past 255 and skips 0, which is kept
    assert signer.rotate(b"n" * 32, key_id=9).current_key_id == 9
    with pytest.raises(ValueError, match="share key id"):
        signer.rotate(b"n" * 32, key_id=0)
    with pytest.raises(ValueError, match="current key"):
        signer.retire(255)
    with pytest.raises(KeyError):
        signer.retire(3)
    full = ProofSigner(SECRET, TTL, key_id=0, previous=[ProofKey(i, SECRET) for i in range(1, 256)])
    with pytest.raises(ValueError, match="all 256"):
        full.rotate(b"n" * 32)


def test_key_validation_and_secrecy() -> None:
    with pytest.raises(ValueError, match="at least 32"):
        ProofSigner(b"short", TTL)
    with pytest.raises(ValueError, match="one octet"):
        ProofKey(256, SECRET)
    with pytest.raises(ValueError, match="ttl"):
        ProofSigner(SECRET, 0.5)
    with pytest.raises(ValueError, match="ttl"):
        ProofSigner(SECRET, float("nan"))
    key = ProofKey.generate(3)
    assert len(key.secret) == 32
    assert key.secret.hex() not in repr(key)
    assert repr(SECRET) not in repr(ProofKey(1, SECRET))


@pytest.mark.parametrize(
    ("number", "token", "request_id", "now", "problem"),
    [
        ("447700900123", TOKEN, 1, NOW, "E.164"),
        (NUMBER, "abc", 1, NOW, "64 hex"),
        (NUMBER, TOKEN, 0, NOW, "request_id"),
        (NUMBER, TOKEN, 2**63, NOW, "request_id"),
        (NUMBER, TOKEN, 1, 2.0**32, "32 bits"),
        (NUMBER, TOKEN, 1, -1000.0, "32 bits"),
    ],
)
def test_issue_rejects_values_that_are_bugs(
    signer: ProofSigner, number: str, token: str, request_id: int, now: float, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        signer.issue(number, token, request_id, now)


def test_proof_is_a_plain_value() -> None:
    proof = ProofSigner(SECRET, TTL).issue(NUMBER, TOKEN, 1, NOW)
    assert isinstance(proof, Proof)
    assert proof == Proof(proof.hex, proof.expires_at, proof.proof_id)
