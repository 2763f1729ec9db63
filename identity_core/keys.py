"""The service's secrets on disk: the proof MAC secret and the certificate signing keys, one directory.

Both are created on first start (mode 0600, the directory 0700) and loaded afterwards, so a restarted service
verifies the proofs it sent before the restart and keeps its published JWKS.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from identity_core.certificates import CertificateIssuer
from identity_core.proofs import ProofSigner

__all__ = ["load_or_create_keys"]

_PROOF_SECRET = "proof.key"
_SIGNING_KEYS = "signing.pem"


def _proof_secret(path: Path) -> bytes:
    if not path.exists():
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # publish whole, and let a concurrent starter win cleanly
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    secret = path.read_bytes()
    if len(secret) < 32:
        raise ValueError(f"{path}: a proof secret needs at least 32 octets")
    return secret


def load_or_create_keys(
    directory: Path, *, proof_validity: float, certificate_validity: float, issuer: str
) -> tuple[ProofSigner, CertificateIssuer]:
    """The proof signer and the certificate issuer whose secrets live in ``directory``."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    signer = ProofSigner(_proof_secret(directory / _PROOF_SECRET), proof_validity)
    certificates = CertificateIssuer.load_or_create(
        directory / _SIGNING_KEYS, issuer=issuer, validity=certificate_validity
    )
    return signer, certificates
