"""Certificates: EdDSA JWTs that any JOSE library verifies with the published JWKS; expiry, tampering, rotation."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import stat
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from identity_core.certificates import (
    CertificateIssuer,
    CertificateRejected,
    SigningKey,
    load_or_create,
    push_token_hash,
)
from identity_core.refusals import RefusalReason

NUMBER = "+447700900123"
TOKEN = "00112233445566778899aabbccddeeff" * 2
NOW = 1_700_000_000.5
DAY = 86400.0

# RFC 8037 Appendix A.1 (private key), A.2 (public key), A.3 (its RFC 7638 thumbprint), A.4 (a signature).
RFC8037_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
RFC8037_JWS = (
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc."
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
)


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def rfc8037_key() -> SigningKey:
    return SigningKey(Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_D)))


@pytest.fixture
def issuer() -> CertificateIssuer:
    return CertificateIssuer([SigningKey.generate()], issuer="https://id.example", validity=DAY, leeway=0)


def rejected(issuer: CertificateIssuer, token: str, now: float, reason: RefusalReason) -> None:
    with pytest.raises(CertificateRejected) as caught:
        issuer.verify(token, now)
    assert caught.value.refusal.reason is reason, caught.value.refusal


# ---------------------------------------------------------------------------------------- keys and the JWKS


def test_kid_is_the_rfc7638_thumbprint_of_the_rfc8037_example_key() -> None:
    key = rfc8037_key()
    assert key.public_jwk["x"] == RFC8037_X
    assert key.kid == RFC8037_THUMBPRINT
    assert key.public_jwk == {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": RFC8037_X,
        "kid": RFC8037_THUMBPRINT,
        "alg": "EdDSA",
        "use": "sig",
    }
    # Ed25519 is deterministic, so the RFC's example signature is reproducible with this key.
    assert key.private_key.sign(b"eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc") == b64url_decode(
        RFC8037_JWS.rsplit(".", 1)[1]
    )


def test_jwks_publishes_public_keys_only(issuer: CertificateIssuer) -> None:
    jwks = issuer.jwks()
    assert [jwk["kid"] for jwk in jwks["keys"]] == [issuer.current_kid]
    (jwk,) = jwks["keys"]
    assert set(jwk) == {"kty", "crv", "x", "kid", "alg", "use"}
    assert "d" not in jwk
    json.dumps(jwks)  # served as JSON as is


def test_certificate_verifies_with_pyjwt_and_the_published_jwks() -> None:
    # A relying server's view: real time, PyJWT's own exp/nbf/iat checks, the key taken from the JWKS.
    issuer = CertificateIssuer([SigningKey.generate()], issuer="https://id.example", validity=DAY)
    token = issuer.issue(NUMBER, TOKEN, time.time())
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "EdDSA", "kid": issuer.current_kid, "typ": "JWT"}
    jwk_set = jwt.PyJWKSet.from_dict(issuer.jwks())
    public = jwk_set[header["kid"]]
    claims = jwt.decode(
        token,
        public.key,
        algorithms=["EdDSA"],
        issuer="https://id.example",
        options={"require": ["exp", "iat", "nbf", "sub", "jti"]},
    )
    assert claims["sub"] == NUMBER
    # The same key also loads one JWK at a time.
    single = jwt.PyJWK(issuer.jwks()["keys"][0])
    assert jwt.decode(token, single.key, algorithms=["EdDSA"], issuer="https://id.example") == claims


def test_claims(issuer: CertificateIssuer) -> None:
    token = issuer.issue(NUMBER, TOKEN, NOW, jti="fixed")
    claims = issuer.verify(token, NOW)
    assert claims == {
        "iss": "https://id.example",
        "sub": NUMBER,
        "push_token_sha256": push_token_hash(TOKEN),
        "iat": 1_700_000_000,
        "nbf": 1_700_000_000,
        "exp": 1_700_000_000 + 86400,
        "jti": "fixed",
    }
    expected_hash = base64.urlsafe_b64encode(hashlib.sha256(bytes.fromhex(TOKEN)).digest()).rstrip(b"=").decode()
    assert claims["push_token_sha256"] == expected_hash
    assert push_token_hash(TOKEN.upper()) == expected_hash
    assert TOKEN not in json.dumps(claims)  # only its hash travels


def test_jti_is_unique(issuer: CertificateIssuer) -> None:
    jtis = {issuer.verify(issuer.issue(NUMBER, TOKEN, NOW), NOW)["jti"] for _ in range(50)}
    assert len(jtis) == 50


# --------------------------------------------------------------------------------------------------- expiry


def test_expiry_and_not_before(issuer: CertificateIssuer) -> None:
    token = issuer.issue(NUMBER, TOKEN, NOW)
    exp = 1_700_000_000 + 86400
    assert issuer.verify(token, exp - 0.001)["sub"] == NUMBER
    rejected(issuer, token, exp, RefusalReason.EXPIRED)
    rejected(issuer, token, exp + 365 * DAY, RefusalReason.EXPIRED)
    rejected(issuer, token, 1_700_000_000 - 0.001, RefusalReason.NOT_YET_VALID)


def test_leeway_tolerates_clock_difference() -> None:
    key = SigningKey.generate()
    strict = CertificateIssuer([key], validity=DAY, leeway=0)
    lenient = CertificateIssuer([key], validity=DAY, leeway=60)
    token = strict.issue(NUMBER, TOKEN, NOW)
    exp = 1_700_000_000 + 86400
    assert lenient.verify(token, exp + 59)["sub"] == NUMBER
    assert lenient.verify(token, 1_700_000_000 - 59)["sub"] == NUMBER
    rejected(lenient, token, exp + 60, RefusalReason.EXPIRED)
    rejected(strict, token, exp + 1, RefusalReason.EXPIRED)


def test_renewal_is_a_new_certificate_with_a_later_expiry(issuer: CertificateIssuer) -> None:
    first = issuer.verify(issuer.issue(NUMBER, TOKEN, NOW), NOW)
    later = NOW + DAY - 10
    second = issuer.verify(issuer.issue(NUMBER, TOKEN, later), later)
    assert second["exp"] > first["exp"]
    assert second["jti"] != first["jti"]


# -------------------------------------------------------------------------------------------------- tampering


def test_every_character_change_is_rejected(issuer: CertificateIssuer) -> None:
    token = issuer.issue(NUMBER, TOKEN, NOW)
    for index, char in enumerate(token):
        if char == ".":
            continue
        # A different base64url character; the last one of a segment may only change padding bits, so change it
        # to one that differs in its top bits too.
        replacement = "A" if char not in "ABCD" else "w"
        tampered = token[:index] + replacement + token[index + 1 :]
        with pytest.raises(CertificateRejected):
            issuer.verify(tampered, NOW)


def test_swapped_payload_is_forged(issuer: CertificateIssuer) -> None:
    header, _, signature = issuer.issue(NUMBER, TOKEN, NOW).split(".")
    other_payload = issuer.issue("+447700900999", TOKEN, NOW).split(".")[1]
    rejected(issuer, f"{header}.{other_payload}.{signature}", NOW, RefusalReason.FORGED)


def test_foreign_key_alg_none_hs256_and_other_issuer_are_forged(issuer: CertificateIssuer) -> None:
    claims = issuer.verify(issuer.issue(NUMBER, TOKEN, NOW), NOW)
    kid = issuer.current_kid
    impostor = Ed25519PrivateKey.generate()
    rejected(issuer, jwt.encode(claims, impostor, algorithm="EdDSA", headers={"kid": kid}), NOW, RefusalReason.FORGED)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid})  # type: ignore[arg-type]
    rejected(issuer, unsigned, NOW, RefusalReason.FORGED)
    # The public x used as an HMAC secret: the classic algorithm-confusion attack.
    secret = issuer.jwks()["keys"][0]["x"].encode()
    rejected(issuer, jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid}), NOW, RefusalReason.FORGED)
    rejected(
        issuer, jwt.encode(claims, impostor, algorithm="EdDSA", headers={"kid": "nope"}), NOW, RefusalReason.FORGED
    )
    other = CertificateIssuer(issuer.keys, issuer="https://evil.example", validity=DAY, leeway=0)
    rejected(issuer, other.issue(NUMBER, TOKEN, NOW), NOW, RefusalReason.FORGED)


def test_missing_claims_are_malformed(issuer: CertificateIssuer) -> None:
    key = issuer.keys[0]
    claims = issuer.verify(issuer.issue(NUMBER, TOKEN, NOW), NOW)
    for name in ("sub", "exp", "nbf", "push_token_sha256", "jti"):
        partial = {k: v for k, v in claims.items() if k != name}
        token = jwt.encode(partial, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
        rejected(issuer, token, NOW, RefusalReason.MALFORMED)
    mistyped = dict(claims, exp="tomorrow")
    token = jwt.encode(mistyped, key.private_key, algorithm="EdDSA", headers={"kid": key.kid})
    with pytest.raises(CertificateRejected):
        issuer.verify(token, NOW)


@settings(max_examples=500)
@given(st.one_of(st.text(max_size=300), st.none(), st.binary(max_size=50)))
def test_garbage_raises_only_certificate_rejected(token: object) -> None:
    issuer = CertificateIssuer([rfc8037_key()], validity=DAY)
    with pytest.raises(CertificateRejected) as caught:
        issuer.verify(token, NOW)  # type: ignore[arg-type]
    assert caught.value.refusal.reason in {RefusalReason.MALFORMED, RefusalReason.FORGED}


# --------------------------------------------------------------------------------------------------- rotation


def test_rotation_publishes_both_keys_and_old_certificates_stay_valid(issuer: CertificateIssuer) -> None:
    old_kid = issuer.current_kid
    old_token = issuer.issue(NUMBER, TOKEN, NOW)
    rotated = issuer.rotate()
    assert rotated.current_kid != old_kid
    assert [k["kid"] for k in rotated.jwks()["keys"]] == [rotated.current_kid, old_kid]
    new_token = rotated.issue(NUMBER, TOKEN, NOW)
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.current_kid
    assert rotated.verify(old_token, NOW)["sub"] == NUMBER
    assert rotated.verify(new_token, NOW)["sub"] == NUMBER
    rejected(issuer, new_token, NOW, RefusalReason.FORGED)  # the old issuer never saw the new key
    # A relying server that refreshed the JWKS verifies both.
    keys = jwt.PyJWKSet.from_dict(rotated.jwks())
    for token in (old_token, new_token):
        kid = jwt.get_unverified_header(token)["kid"]
        options = {"verify_exp": False, "verify_nbf": False, "verify_iat": False}
        jwt.decode(token, keys[kid].key, algorithms=["EdDSA"], options=options)  # type: ignore[arg-type]

    retired = rotated.retire(old_kid)
    assert [k["kid"] for k in retired.jwks()["keys"]] == [rotated.current_kid]
    rejected(retired, old_token, NOW, RefusalReason.FORGED)
    with pytest.raises(ValueError, match="signing key"):
        retired.retire(retired.current_kid)
    with pytest.raises(KeyError):
        retired.retire("nope")


def test_issuer_validation() -> None:
    key = SigningKey.generate()
    with pytest.raises(ValueError, match="at least one key"):
        CertificateIssuer([])
    with pytest.raises(ValueError, match="twice"):
        CertificateIssuer([key, key])
    with pytest.raises(ValueError, match="validity"):
        CertificateIssuer([key], validity=0)
    with pytest.raises(ValueError, match="leeway"):
        CertificateIssuer([key], leeway=-1)
    with pytest.raises(ValueError, match="64 hex"):
        CertificateIssuer([key]).issue(NUMBER, "abc", NOW)


# -------------------------------------------------------------------------------------------------- key files


def test_load_or_create_creates_a_private_file_and_then_loads_it(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    created = load_or_create(path, validity=DAY)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = CertificateIssuer.load_or_create(path, validity=DAY)
    assert loaded.current_kid == created.current_kid
    # Same key: a certificate from one verifies with the other.
    assert loaded.verify(created.issue(NUMBER, TOKEN, NOW), NOW)["sub"] == NUMBER
    assert [p.name for p in path.parent.iterdir()] == ["signing.pem"]  # no temporary file left behind


def test_save_and_load_keep_every_key_in_order(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    issuer = load_or_create(path).rotate().rotate()
    issuer.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = CertificateIssuer.load(path)
    assert [k.kid for k in loaded.keys] == [k.kid for k in issuer.keys]
    assert len(loaded.jwks()["keys"]) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["signing.pem"]


def test_loose_permissions_are_warned_about(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "signing.pem"
    load_or_create(path)
    os.chmod(path, 0o644)
    with caplog.at_level(logging.WARNING, logger="identity_core.certificates"):
        CertificateIssuer.load(path)
    assert "accessible to group or others" in caplog.text


def test_bad_key_files_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"nothing here")
    empty.chmod(0o600)
    with pytest.raises(ValueError, match="no PKCS#8"):
        CertificateIssuer.load(empty)
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        SigningKey.from_pem(ec_pem)
