"""Identifier generation. Randomness is injectable so tests can pin it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

# Sandbox message ids are 64-bit "snowflakes": milliseconds since 2020 in the high bits
# and 22 random bits below. They sort by time and exceed 2^32 as the contract's do.
_EPOCH_MS = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)


class IdFactory:
    """Makes every id Postroom hands out; tests pass a seeded ``randbits``."""

    def __init__(self, randbits: Callable[[int], int] = secrets.randbits) -> None:
        self._randbits = randbits

    def message_id(self) -> str:
        """A UUID (version 4) string: the contract's message_id of one recipient."""
        return str(uuid.UUID(int=self._randbits(128), version=4))

    def snowflake(self, now: datetime) -> int:
        millis = int(now.timestamp() * 1000) - _EPOCH_MS
        return (millis << 22) | self._randbits(22)

    def hex(self, nbytes: int) -> str:
        return f"{self._randbits(nbytes * 8):0{nbytes * 2}x}"
