"""Identifier generation. Randomness is injectable so tests can pin it."""

from __future__ import annotations

import os
from collections.abc import Callable

# Every integer id the API shows comes from the database (autoincrement), never from
# here: JavaScript clients (the official Node SDK) hold numbers exactly only below 2^53.

# RFC 9562 5.4: version 4 in bits 48-51, variant 0b10 in bits 64-65 (counted from the
# most significant bit); the same masks uuid.UUID(int=..., version=4) applies.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def system_randbits(k: int) -> int:
    """``k`` random bits from the OS CSPRNG: what ``secrets.randbits`` returns, without
    its method look-ups (four ids per accepted message make them show in profiles)."""
    return int.from_bytes(os.urandom((k + 7) // 8)) >> (-k % 8)


_BITS_128 = (1 << 128) - 1


def _uuid4_text(bits: int) -> str:
    """``str(uuid.UUID(int=bits, version=4))``, without building the UUID object."""
    h = f"{bits & _V4_CLEAR | _V4_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class IdFactory:
    """Makes every id Postroom hands out; tests pass a seeded ``randbits``."""

    def __init__(self, randbits: Callable[[int], int] = system_randbits) -> None:
        self._randbits = randbits

    def message_id(self) -> str:
        """A UUID (version 4) string: the contract's message_id of one recipient.

        Formatted here rather than through ``str(uuid.UUID(...))`` (same text, half the
        time: the UUID object's checks and properties are not needed)."""
        return _uuid4_text(self._randbits(128))

    def message_ids(self, count: int) -> list[str]:
        """``count`` message ids from one draw of randomness (one system call, not
        ``count``): each id is 128 of its bits, the least significant first."""
        bits = self._randbits(128 * count)
        return [_uuid4_text(bits >> (128 * i) & _BITS_128) for i in range(count)]

    def hex(self, nbytes: int) -> str:
        return f"{self._randbits(nbytes * 8):0{nbytes * 2}x}"
