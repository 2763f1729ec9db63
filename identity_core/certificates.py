"""Certificates: the signed statement "this number is bound to this device", as an EdDSA (Ed25519) JWT.

Theory of operation
-------------------
After ``authenticate`` accepts a proof, the service gives the phone a JWT (RFC 7519) signed with Ed25519
(RFC 8037 ``"alg": "EdDSA"``), written byte for byte as PyJWT would write it and verified by PyJWT. Anyone can
check it offline with the public keys the service publishes at ``GET /v1/keys`` as a JWK Set
(:meth:`CertificateIssuer.jwks`), so relying servers never call back.

Claims::

    header   alg=EdDSA, typ=JWT, kid=<RFC 7638 thumbprint of the signing key>
    iss      the service's issuer name
    sub      the +E.164 number
    push_token_sha256   base64url(SHA-256(the push token's 32 raw octets)), no padding
    iat, nbf the issue time (whole seconds)
    exp      iat + validity
    jti      128 random bits, base64url

* The push token goes in hashed: a JWT is readable by whoever holds it, and a push token lets its holder wake the
  device. 256 random bits hashed with SHA-256 cannot be recovered, yet a relying server that knows the token can
  check the binding (:func:`push_token_hash`). It is a private claim rather than RFC 7800 ``cnf`` because a push
  token is not a proof-of-possession key, which is what ``cnf`` promises.
* ``kid`` is the key's RFC 7638 JWK thumbprint: derived from the key, so the same key always has the same id, on
  every replica, with nothing to keep in step.
* Renewal is a new registration (a new proof, a new certificate); there is no refresh endpoint.

Keys and rotation
-----------------
The key file holds one or more PKCS#8 PEM Ed25519 private keys; the first signs, all are published and all
verify, so certificates signed before a rotation stay valid until they expire. :meth:`CertificateIssuer.rotate`
adds a key in front, :meth:`CertificateIssuer.retire` drops an old one (do it once ``validity`` has passed since
the rotation), :meth:`CertificateIssuer.save` writes the file atomically with mode 0600.

Signing and verification cost one Ed25519 operation each plus JSON and base64 work (PyJWT's, for verification); ``bench/
identity_crypto.py`` measures both. Only the clock and ``jti`` make issue impure: ``now`` is an argument and
``jti`` may be passed in.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from identity_core.key_files import read_key_file, write_temporary_key_file
from identity_core.refusals import Refusal, RefusalReason

__all__ = [
    "ALGORITHM",
    "DEFAULT_ISSUER",
    "DEFAULT_VALIDITY",
    "CertificateIssuer",
    "CertificateRejected",
    "SigningKey",
    "load_or_create",
    "push_token_hash",
]

_log = logging.getLogger(__name__)

#: The JWS algorithm of every certificate (RFC 8037 §3.1).
ALGORITHM: Final = "EdDSA"
DEFAULT_ISSUER: Final = "identity-core"
#: Thirty days: long enough that phones renew rarely, short enough that a stolen certificate ages out.
DEFAULT_VALIDITY: Final = 30 * 24 * 3600.0
#: Allowed clock difference between the issuer and a relying server when checking exp and nbf.
DEFAULT_LEEWAY: Final = 60.0
_REQUIRED_CLAIMS: Final = ["iss", "sub", "iat", "nbf", "exp", "jti", "push_token_sha256"]
_PUSH_TOKEN_HEX = re.compile(r"[0-9a-fA-F]{64}")
_PEM_BLOCK = re.compile(rb"-----BEGIN PRIVATE KEY-----\r?\n.*?-----END PRIVATE KEY-----\r?\n?", re.DOTALL)


def _b64url(data: bytes) -> str:
    """Base64url without padding, as JOSE spells binary values (RFC 7515 §2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def push_token_hash(push_token: str) -> str:
    """The ``push_token_sha256`` claim for a push token (64 hex digits, either case)."""
    if not _PUSH_TOKEN_HEX.fullmatch(push_token):
        raise ValueError("push_token must be 64 hex digits")
    return _b64url(hashlib.sha256(bytes.fromhex(push_token)).digest())


class CertificateRejected(Exception):
    """A certificate failed verification; :attr:`refusal` says why (MALFORMED, FORGED, EXPIRED, NOT_YET_VALID)."""

    def __init__(self, refusal: Refusal) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class SigningKey:
    """An Ed25519 private key with its public JWK and thumbprint key id, computed once."""

    __slots__ = ("jws_header", "kid", "private_key", "public_jwk", "public_key")

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        if not isinstance(private_key, Ed25519PrivateKey):
            raise TypeError(f"certificates are signed with Ed25519 keys, not {type(private_key).__name__}")
        self.private_key = private_key
        self.public_key: Ed25519PublicKey = private_key.public_key()
        x = _b64url(self.public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
        # RFC 7638 §3.2: the required members only, in lexicographic order, no whitespace.
        canonical = json.dumps({"crv": "Ed25519", "kty": "OKP", "x": x}, separators=(",", ":"), sort_keys=True)
        self.kid: str = _b64url(hashlib.sha256(canonical.encode("ascii")).digest())
        self.public_jwk: dict[str, str] = {
            "kty": "OKP",
            "crv": "Ed25519",
            "x": x,
            "kid": self.kid,
            "alg": ALGORITHM,
            "use": "sig",
        }
        #: The first segment of every JWS this key signs (RFC 7515 §7.1), encoded once: base64url of the JOSE
        #: header, members sorted and without whitespace as PyJWT writes them.
        header = json.dumps({"alg": ALGORITHM, "kid": self.kid, "typ": "JWT"}, separators=(",", ":"), sort_keys=True)
        self.jws_header: bytes = base64.urlsafe_b64encode(header.encode("ascii")).rstrip(b"=")

    @classmethod
    def generate(cls) -> SigningKey:
        """A new key from the operating system's CSPRNG."""
        return cls(Ed25519PrivateKey.generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """One unencrypted PKCS#8 PEM private key."""
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise ValueError(f"expected an Ed25519 private key, found {type(key).__name__}")
        return cls(key)

    def to_pem(self) -> bytes:
        """Unencrypted PKCS#8 PEM; the file's 0600 mode is what protects it."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


class CertificateIssuer:
    """Issues and verifies certificates and publishes the public keys. Immutable: rotation returns a new issuer.

    ``keys[0]`` signs; every key in ``keys`` is published and verifies.
    """

    __slots__ = ("_by_kid", "_current", "_issuer", "_keys", "_leeway", "_validity")

    def __init__(
        self,
        keys: Sequence[SigningKey],
        *,
        issuer: str = DEFAULT_ISSUER,
        validity: float = DEFAULT_VALIDITY,
        leeway: float = DEFAULT_LEEWAY,
    ) -> None:
        if not keys:
            raise ValueError("a certificate issuer needs at least one key")
        if not (math.isfinite(validity) and validity >= 1):
            raise ValueError(f"validity must be a finite number of seconds >= 1, got {validity!r}")
        if not (math.isfinite(leeway) and leeway >= 0):
            raise ValueError(f"leeway must be a finite number of seconds >= 0, got {leeway!r}")
        by_kid = {key.kid: key for key in keys}
        if len(by_kid) != len(keys):
            raise ValueError("the same key appears twice")
        self._keys: tuple[SigningKey, ...] = tuple(keys)
        self._current = self._keys[0]
        self._by_kid = by_kid
        self._issuer = issuer
        self._validity = float(validity)
        self._leeway = float(leeway)

    # ------------------------------------------------------------------------------------------------ properties

    @property
    def issuer(self) -> str:
        """The ``iss`` of every certificate."""
        return self._issuer

    @property
    def validity(self) -> float:
        """Seconds from issue to expiry."""
        return self._validity

    @property
    def current_kid(self) -> str:
        """The key id new certificates are signed with."""
        return self._current.kid

    @property
    def keys(self) -> tuple[SigningKey, ...]:
        """All keys, the signing one first."""
        return self._keys

    # ---------------------------------------------------------------------------------------------- certificates

    def issue(self, e164: str, push_token: str, now: float, *, jti: str | None = None) -> str:
        """A certificate binding ``e164`` to ``push_token`` from ``now`` for :attr:`validity` seconds.

        The caller has just verified a proof for these values, so bad arguments are a bug: ValueError.
        """
        issued_at = math.floor(now)
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "sub": e164,
            "push_token_sha256": push_token_hash(push_token),
            "iat": issued_at,
            "nbf": issued_at,
            "exp": math.floor(now + self._validity),
            "jti": jti if jti is not None else _b64url(secrets.token_bytes(16)),
        }
        # The JWS compact serialisation (RFC 7515 §7.1) written here rather than by jwt.encode: the same bytes
        # a PyJWT-built token would have (header members sorted, no whitespace), for about a third less CPU per
        # certificate (PyJWT re-validates the key, the algorithm and the header on every call). The signature
        # is the same one Ed25519 operation; tests decode these tokens with PyJWT.
        key = self._current
        payload = base64.urlsafe_b64encode(json.dumps(claims, separators=(",", ":")).encode("ascii")).rstrip(b"=")
        signing_input = key.jws_header + b"." + payload
        signature = base64.urlsafe_b64encode(key.private_key.sign(signing_input)).rstrip(b"=")
        return (signing_input + b"." + signature).decode("ascii")

    def verify(self, token: str, now: float) -> dict[str, Any]:
        """The claims of a certificate this issuer (any of its keys) signed and that is valid at ``now``.

        Raises :class:`CertificateRejected`: MALFORMED (not a JWT, or a required claim missing or mistyped),
        FORGED (unknown key, bad signature, other issuer, other algorithm), EXPIRED, NOT_YET_VALID. ``exp`` and
        ``nbf`` are checked here against ``now`` with the configured leeway (PyJWT would read the wall clock).
        """
        if not isinstance(token, str):
            raise CertificateRejected(Refusal(RefusalReason.MALFORMED, "a certificate is a string"))
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as err:
            raise CertificateRejected(Refusal(RefusalReason.MALFORMED, f"not a JWT: {err}")) from None
        kid = header.get("kid")
        key = self._by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise CertificateRejected(Refusal(RefusalReason.FORGED, f"unknown key id {str(kid)[:64]!r}"))
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                options={
                    "require": list(_REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                },
            )
        except (jwt.InvalidSignatureError, jwt.InvalidAlgorithmError, jwt.InvalidIssuerError) as err:
            raise CertificateRejected(Refusal(RefusalReason.FORGED, str(err))) from None
        except jwt.PyJWTError as err:
            raise CertificateRejected(Refusal(RefusalReason.MALFORMED, str(err))) from None

        times = {name: claims[name] for name in ("iat", "nbf", "exp")}
        for name, value in times.items():
            # bool is an int in Python but not a NumericDate (RFC 7519 §2).
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise CertificateRejected(Refusal(RefusalReason.MALFORMED, f"{name} is not a NumericDate"))
        if not isinstance(claims["sub"], str):
            raise CertificateRejected(Refusal(RefusalReason.MALFORMED, "sub is not a string"))
        # RFC 7519 §4.1.4: valid only while now is before exp; §4.1.5: from nbf on.
        if now >= times["exp"] + self._leeway:
            raise CertificateRejected(Refusal(RefusalReason.EXPIRED, f"expired at {times['exp']}"))
        if now < times["nbf"] - self._leeway:
            raise CertificateRejected(Refusal(RefusalReason.NOT_YET_VALID, f"valid from {times['nbf']}"))
        return claims

    def jwks(self) -> dict[str, Any]:
        """The JWK Set served at ``GET /v1/keys``: every key that may have signed a live certificate."""
        return {"keys": [dict(key.public_jwk) for key in self._keys]}

    # -------------------------------------------------------------------------------------------------- rotation

    def rotate(self, new_key: SigningKey | None = None) -> CertificateIssuer:
        """An issuer that signs with ``new_key`` (a fresh one by default) and still publishes every current key."""
        key = new_key if new_key is not None else SigningKey.generate()
        return self._with_keys([key, *self._keys])

    def retire(self, kid: str) -> CertificateIssuer:
        """An issuer without the key ``kid`` (not the signing key): its certificates stop verifying."""
        if kid == self._current.kid:
            raise ValueError("cannot retire the signing key; rotate first")
        if kid not in self._by_kid:
            raise KeyError(kid)
        return self._with_keys([key for key in self._keys if key.kid != kid])

    def _with_keys(self, keys: Sequence[SigningKey]) -> CertificateIssuer:
        return CertificateIssuer(keys, issuer=self._issuer, validity=self._validity, leeway=self._leeway)

    # ------------------------------------------------------------------------------------------------- key files

    def save(self, path: Path) -> None:
        """Write every key to ``path`` (signing key first), atomically and durably, readable by the owner only."""
        temporary = write_temporary_key_file(path, b"".join(key.to_pem() for key in self._keys))
        try:
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
            raise
        _fsync_directory(path.parent)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        issuer: str = DEFAULT_ISSUER,
        validity: float = DEFAULT_VALIDITY,
        leeway: float = DEFAULT_LEEWAY,
    ) -> CertificateIssuer:
        """The issuer whose keys are in ``path`` (one or more PKCS#8 PEM blocks, the signing key first); a
        ``path`` that is a symbolic link is refused (:class:`~identity_core.key_files.SymlinkedKeyFile`)."""
        data, mode = read_key_file(path)
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            # A warning, not a refusal: mounted secrets (Kubernetes defaults to 0644) are often like this, and
            # refusing to start would take the service down over something the operator may have chosen.
            _log.warning("certificate key file %s is accessible to group or others (mode %o)", path, mode & 0o777)
        blocks = _PEM_BLOCK.findall(data)
        if not blocks:
            raise ValueError(f"{path}: no PKCS#8 PEM private key found")
        keys = [SigningKey.from_pem(block) for block in blocks]
        return cls(keys, issuer=issuer, validity=validity, leeway=leeway)

    @classmethod
    def load_or_create(
        cls,
        path: Path,
        *,
        issuer: str = DEFAULT_ISSUER,
        validity: float = DEFAULT_VALIDITY,
        leeway: float = DEFAULT_LEEWAY,
    ) -> CertificateIssuer:
        """Load the keys in ``path``, or create the file with one fresh key (mode 0600) if it does not exist."""
        if not os.path.lexists(path):  # a dangling link is not missing: load() refuses it below
            path.parent.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                path.parent.mkdir(mode=0o700)
                os.chmod(path.parent, 0o700)  # a directory made here is 0700 whatever the umask made of mkdir's mode
            fresh = cls([SigningKey.generate()], issuer=issuer, validity=validity, leeway=leeway)
            temporary = write_temporary_key_file(path, fresh.keys[0].to_pem())
            try:
                # link() publishes the complete file or fails if the name exists: when two replicas start
                # together, one creates the key and the other loads it, and neither can read a half-written file.
                os.link(temporary, path)
            except FileExistsError:
                pass
            else:
                _fsync_directory(path.parent)
                return fresh
            finally:
                temporary.unlink()
        return cls.load(path, issuer=issuer, validity=validity, leeway=leeway)


def load_or_create(
    path: Path,
    *,
    issuer: str = DEFAULT_ISSUER,
    validity: float = DEFAULT_VALIDITY,
    leeway: float = DEFAULT_LEEWAY,
) -> CertificateIssuer:
    """Module-level spelling of :meth:`CertificateIssuer.load_or_create`."""
    return CertificateIssuer.load_or_create(path, issuer=issuer, validity=validity, leeway=leeway)


def _fsync_directory(directory: Path) -> None:
    """Make a rename or a creation in ``directory`` durable (POSIX needs the directory itself synced)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
