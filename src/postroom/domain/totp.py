"""Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): SHA-1, 30 s, 6 digits.

What authenticator apps implement. A code is accepted in the current step and one step
either side (clock drift); the caller remembers the last step used so a code cannot be
replayed (services/users.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from datetime import datetime
from urllib.parse import quote

STEP_SECONDS = 30
DIGITS = 6
WINDOW = 1


def new_secret(random_bytes: bytes) -> str:
    """A base32 secret (no padding) from 20 random bytes, as apps expect."""
    return base64.b32encode(random_bytes).decode("ascii").rstrip("=")


def _key(secret: str) -> bytes:
    padded = secret.upper() + "=" * (-len(secret) % 8)
    return base64.b32decode(padded)


def hotp(secret: str, counter: int) -> str:
    """RFC 4226: the code for ``counter``."""
    digest = hmac.new(_key(secret), struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    value = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**DIGITS).zfill(DIGITS)


def step(now: datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, now: datetime) -> str:
    return hotp(secret, step(now))


def matching_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step ``code`` belongs to (within the window), or None; constant-time
    comparison for each candidate."""
    code = code.strip().replace(" ", "")
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = step(now)
    found = None
    for candidate in range(current - WINDOW, current + WINDOW + 1):
        if hmac.compare_digest(hotp(secret, candidate), code):
            found = candidate
    return found


def provisioning_uri(secret: str, account_name: str, issuer: str = "Postroom") -> str:
    """The ``otpauth://`` URI authenticator apps read from a QR code."""
    label = quote(f"{issuer}:{account_name}")
    return f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer)}"
