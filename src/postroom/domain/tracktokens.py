"""Tracking tokens: opaque, signed names of one delivery (and one of its links).

Every tracking URL (open pixel, click redirect, unsubscribe, tracking opt-out) and the
``mailto:`` unsubscribe address carry one token and nothing else: no URL, no address,
no account. The tracking listener looks the delivery and the link up server-side, so
a token can only ever lead to a URL the message itself linked to (no open redirect),
and a token that does not verify leads nowhere.

Layout, 35 bytes before encoding:

====== ======= ==========================================================
bytes  field   meaning
====== ======= ==========================================================
1      kind    :class:`Kind` (high nibble: format version, now 1)
4      key id  which key signed it (big-endian; see :func:`key_id_at`)
16     uuid    the delivery (the contract's message_id of one recipient)
2      link    the link's position in the message (0 for other kinds)
12     MAC     HMAC-SHA256(key, the 23 bytes above), first 96 bits
====== ======= ==========================================================

The kind is signed: a click token cannot be replayed as an unsubscribe token. Keys
rotate: the key id is the number of whole rotation periods since the Unix epoch when
the link was made, and a verifier accepts ids from the current one back over the
validity window (the caller's ``keys`` function decides). The text form is lower-case
base32 without padding (56 characters), parsed case-insensitively and canonically:
some mail systems change the case of local parts, and one token has one spelling.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

VERSION = 1
MAC_BYTES = 12
TOKEN_CHARS = 56  # base32 of 35 bytes, padding removed
_HEAD = struct.Struct(">BI16sH")


class Kind(IntEnum):
    """What a token does when it is presented."""

    OPEN = 1
    CLICK = 2
    UNSUBSCRIBE = 3
    OPT_OUT = 4


@dataclass(frozen=True, slots=True)
class Token:
    """What a verified token names."""

    kind: Kind
    delivery_id: str
    position: int
    key_id: int


def key_id_at(timestamp: float, rotation_seconds: float) -> int:
    """The id of the key that signs links made at ``timestamp``."""
    return int(timestamp // rotation_seconds)


def encode(kind: Kind, delivery_id: str, position: int, *, key_id: int, key: bytes) -> str:
    """The token for ``delivery_id`` (a UUID string); ValueError for bad fields or key."""
    if not key:
        raise ValueError("the tracking key must not be empty")
    if not 0 <= position < 2**16 or not 0 <= key_id < 2**32:
        raise ValueError("link position or key id out of range")
    head = _HEAD.pack(VERSION << 4 | kind, key_id, uuid.UUID(delivery_id).bytes, position)
    mac = hmac.new(key, head, hashlib.sha256).digest()[:MAC_BYTES]
    return base64.b32encode(head + mac).decode("ascii").rstrip("=").lower()


# RFC 4648 base32 letters (either case) to the digits of Python's int(..., 32); every
# other ASCII character to "z", which int() refuses, so signs, "_" and spaces (which
# int() would accept) cannot slip through. The standard library's b32decode is pure
# Python and was a third of a click's own time.
_B32_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_TO_INT = str.maketrans(
    {
        **{chr(c): "z" for c in range(128)},
        **{ch: "0123456789abcdefghijklmnopqrstuv"[i] for i, ch in enumerate(_B32_ALPHABET)},
        **{ch.lower(): "0123456789abcdefghijklmnopqrstuv"[i] for i, ch in enumerate(_B32_ALPHABET)},
    }
)
_RAW_BYTES = TOKEN_CHARS * 5 // 8


def _b32decode(text: str) -> bytes | None:
    """The 35 bytes of 56 base32 characters (any case), or None. 56 characters carry
    exactly 280 bits: no spare bits, so every spelling that decodes is canonical once
    the letter case is folded."""
    try:
        return int(text.translate(_B32_TO_INT), 32).to_bytes(_RAW_BYTES, "big")
    except ValueError:
        return None


def decode(text: str, keys: Callable[[int], bytes | None]) -> Token | None:
    """The token's facts when it verifies, else None (never raises on hostile input).

    ``keys(key_id)`` returns the key with that id, or None when the id is unknown,
    expired or from the future.
    """
    if len(text) != TOKEN_CHARS or not text.isascii():
        return None
    raw = _b32decode(text)
    if raw is None:
        return None
    head, mac = raw[: _HEAD.size], raw[_HEAD.size :]
    version_kind, key_id, delivery, position = _HEAD.unpack(head)
    if version_kind >> 4 != VERSION or (version_kind & 0x0F) not in Kind._value2member_map_:
        return None
    key = keys(key_id)
    if not key:
        return None
    # hmac.new, not the one-shot hmac.digest: the one-shot releases the GIL around even a
    # 23-byte MAC, and on a listener whose writer thread is busy, getting it back cost
    # ~100 µs per click.
    expected = hmac.new(key, head, hashlib.sha256).digest()[:MAC_BYTES]
    if not hmac.compare_digest(expected, mac):
        return None
    return Token(Kind(version_kind & 0x0F), str(uuid.UUID(bytes=delivery)), position, key_id)
