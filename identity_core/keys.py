"""The service's secrets on disk: the proof MAC secret and the certificate signing keys, one directory.

Both are created on first start and loaded afterwards, so a restarted service verifies the proofs it sent before
the restart and keeps its published JWKS.

Modes. A key file is created 0600 and the directory 0700, set explicitly once created (``fchmod``/``chmod``), not
left to ``open``'s and ``mkdir``'s mode argument, which the process's umask narrows: a umask of 0277 made the
directory 0500, in which the service could not write its own keys. A key file or the directory found accessible to
group or others when the service starts is loaded with a warning, not refused -- as
:meth:`~identity_core.certificates.CertificateIssuer.load` does for the signing keys: mounted secrets (Kubernetes
defaults to 0644) often look like this, and refusing to start would take the service down over a mode the operator
may have chosen. Existing files and directories are never chmod'ed: their mode is the operator's.

Links and other non-files. A key file that is a symbolic link is refused at start with
:class:`~identity_core.key_files.SymlinkedKeyFile`, naming the path (:mod:`identity_core.key_files` says why); one
that is a directory, a FIFO or a device, with :class:`~identity_core.key_files.NotARegularKeyFile`, naming it too.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path
from typing import Final

from identity_core.certificates import CertificateIssuer
from identity_core.key_files import KEY_FILE_MODE, read_key_file, write_temporary_key_file
from identity_core.proofs import ProofSigner

__all__ = ["DIRECTORY_MODE", "FILE_MODE", "load_or_create_keys"]

_log = logging.getLogger(__name__)

_PROOF_SECRET = "proof.key"
_SIGNING_KEYS = "signing.pem"
#: Mode of a key file this module creates: read and write for the owner only.
FILE_MODE: Final = KEY_FILE_MODE
#: Mode of the key directory this module creates: the owner only.
DIRECTORY_MODE: Final = 0o700
_GROUP_OR_OTHERS: Final = stat.S_IRWXG | stat.S_IRWXO


def _warn_if_shared(path: Path, what: str, mode: int) -> None:
    if mode & _GROUP_OR_OTHERS:
        _log.warning("%s %s is accessible to group or others (mode %o)", what, path, stat.S_IMODE(mode))


def _private_directory(directory: Path) -> None:
    """``directory``, created with :data:`DIRECTORY_MODE` whatever the umask if it did not exist; an existing one
    is left as it is, with a warning if group or others may use it."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    try:
        directory.mkdir(mode=DIRECTORY_MODE)
    except FileExistsError:
        _warn_if_shared(directory, "key directory", directory.stat().st_mode)
        return
    os.chmod(directory, DIRECTORY_MODE)  # mkdir's mode went through the umask


def _proof_secret(path: Path) -> bytes:
    if not os.path.lexists(path):  # a dangling link is not missing: read_key_file refuses it below
        temporary = write_temporary_key_file(path, secrets.token_bytes(32))
        try:
            os.link(temporary, path)  # publish whole, and let a concurrent starter win cleanly
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    secret, mode = read_key_file(path)
    _warn_if_shared(path, "proof secret file", mode)
    if len(secret) < 32:
        raise ValueError(f"{path}: a proof secret needs at least 32 octets")
    return secret


def load_or_create_keys(
    directory: Path, *, proof_validity: float, certificate_validity: float, issuer: str
) -> tuple[ProofSigner, CertificateIssuer]:
    """The proof signer and the certificate issuer whose secrets live in ``directory`` (created 0700, the files in
    it 0600, if missing; see the module's docstring for what looser modes get)."""
    _private_directory(directory)
    signer = ProofSigner(_proof_secret(directory / _PROOF_SECRET), proof_validity)
    certificates = CertificateIssuer.load_or_create(
        directory / _SIGNING_KEYS, issuer=issuer, validity=certificate_validity
    )
    return signer, certificates
