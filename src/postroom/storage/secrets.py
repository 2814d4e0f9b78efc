"""Encryption of secrets at rest (DKIM private keys) with a key from the settings.

The key is a Fernet key (AES-128-CBC with HMAC-SHA256, from ``cryptography``). It comes
from ``security.secret_key``, or from ``<data_dir>/secret.key``, which the first
``postroom serve`` creates with mode 0600. It seals DKIM private keys and sandbox inboxes'
SMTP passwords. Losing the key makes the stored private keys unreadable (rotate them)
and the inbox passwords too (reset them); leaking the database alone reveals none.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from postroom.config import Settings
from postroom.storage.datadir import private_directory

KEY_FILE = "secret.key"


class SecretKeyMissing(RuntimeError):
    """No key is configured and none may be created here."""


class Sealer:
    """Encrypts and decrypts small secrets with one Fernet key."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)
        self._key = key

    def derive(self, purpose: str) -> bytes:
        """A separate 32-byte key for ``purpose`` (e.g. signing return paths), so one
        installation secret serves several uses without reusing a key across them."""
        return hmac.new(self._key, purpose.encode(), hashlib.sha256).digest()

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, sealed: bytes) -> bytes:
        try:
            return self._fernet.decrypt(sealed)
        except InvalidToken:
            raise SecretKeyMissing(
                "a stored secret does not decrypt with this installation's key: "
                "check security.secret_key or <data_dir>/secret.key"
            ) from None


def load_sealer(settings: Settings, *, create: bool = False) -> Sealer:
    """The installation's sealer; ``create`` makes the key file when none exists."""
    if settings.security.secret_key:
        return Sealer(settings.security.secret_key.encode())
    path = Path(settings.storage.data_dir) / KEY_FILE
    if path.exists():
        return Sealer(path.read_bytes().strip())
    if not create:
        raise SecretKeyMissing(f"no secret key: set POSTROOM_SECURITY__SECRET_KEY or create {path}")
    private_directory(path.parent)
    key = Fernet.generate_key()
    # O_EXCL: two processes starting at once must not each write a different key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key + b"\n")
    return Sealer(key)
