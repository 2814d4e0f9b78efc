"""API token format and hashing. Only the hash of the secret is ever stored.

A token reads ``pr_<key id: 8 hex><secret: 32 hex>``. The key id locates the row; the
secret's SHA-256 is compared in constant time. Tokens are 128-bit random secrets, so a
fast hash is enough (no password KDF needed), and the ``pr_`` prefix lets secret
scanners recognise a leaked Postroom token.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

PREFIX = "pr_"
KEY_ID_LEN = 8
SECRET_LEN = 32


@dataclass(frozen=True, slots=True)
class TokenParts:
    key_id: str
    secret: str


def compose(key_id: str, secret: str) -> str:
    return f"{PREFIX}{key_id}{secret}"


def split(token: str) -> TokenParts | None:
    """Split a presented token, or None if it cannot be one of ours."""
    if not token.startswith(PREFIX) or len(token) != len(PREFIX) + KEY_ID_LEN + SECRET_LEN:
        return None
    body = token[len(PREFIX) :]
    return TokenParts(body[:KEY_ID_LEN], body[KEY_ID_LEN:])


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


def secret_matches(secret: str, stored_hash: bytes) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
