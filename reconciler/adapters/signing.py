"""Commit signing with SSH keys (``ssh-keygen -Y sign``) or GnuPG, as git itself does.

Git shells out to these same programs for ``commit -S``; a signature is an armored
detached signature over the commit object's bytes, stored in its ``gpgsig`` header, and
``git verify-commit`` checks either kind. A failed signing raises: nothing is committed
unsigned when signing is configured.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.core import errors


class SigningError(errors.PermanentError):
    """The commit could not be signed (missing key, wrong passphrase, no program)."""


class Signer(Protocol):
    """Produces an armored detached signature over bytes."""

    @property
    def description(self) -> str:
        """What signs, for logs (never key material)."""

    def sign(self, payload: bytes) -> str:
        """The signature of ``payload``."""


@dataclass(frozen=True)
class SshSigner:
    """Signs with an SSH private key, namespace ``git`` (gpg.format=ssh)."""

    key_file: Path

    @property
    def description(self) -> str:
        """What signs, for logs (never the key itself)."""
        return f"ssh:{self.key_file}"

    def sign(self, payload: bytes) -> str:
        """``ssh-keygen -Y sign -n git -f KEY`` over stdin."""
        if not self.key_file.is_file():
            raise SigningError(f"SSH signing key {self.key_file} does not exist")
        return _run(["ssh-keygen", "-Y", "sign", "-n", "git", "-f", str(self.key_file),
                     "-q"], payload, "ssh-keygen", "-----BEGIN SSH SIGNATURE-----")


@dataclass(frozen=True)
class GpgSigner:
    """Signs with a GnuPG key from the keyring (gpg.format=openpgp)."""

    key_id: str
    homedir: Path | None = None

    @property
    def description(self) -> str:
        """What signs, for logs."""
        return f"gpg:{self.key_id}"

    def sign(self, payload: bytes) -> str:
        """``gpg --batch -bsau KEYID`` over stdin, as git does."""
        command = ["gpg", "--batch", "--yes", "--pinentry-mode", "loopback", "-bsau", self.key_id]
        if self.homedir is not None:
            command[1:1] = ["--homedir", str(self.homedir)]
        return _run(command, payload, "gpg", "-----BEGIN PGP SIGNATURE-----")


def _run(command: list[str], payload: bytes, program: str, marker: str) -> str:
    if shutil.which(command[0]) is None:
        raise SigningError(f"{program} is not installed; it is needed to sign commits")
    try:
        done = subprocess.run(command, input=payload, capture_output=True, timeout=60,
                              check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SigningError(f"{program} failed: {exc}") from exc
    signature = done.stdout.decode("ascii", "replace")
    if done.returncode != 0 or marker not in signature:
        reason = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SigningError(f"{program} could not sign: {reason[-1] if reason else 'no output'}")
    return signature


def signer_from_spec(spec: str, *, gpg_home: Path | None = None) -> Signer:
    """``ssh:KEYFILE`` or ``gpg:KEYID`` (the ``--sign`` flag) to a Signer."""
    method, _, value = spec.partition(":")
    if method == "ssh" and value:
        key = Path(value).expanduser()
        if not key.is_file():
            raise errors.UserInputError(f"--sign {spec}: no such key file")
        return SshSigner(key)
    if method == "gpg" and value:
        return GpgSigner(value, gpg_home)
    raise errors.UserInputError(f"--sign {spec!r}: expected ssh:KEYFILE or gpg:KEYID")
