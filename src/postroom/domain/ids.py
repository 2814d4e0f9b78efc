"""Identifier generation. Randomness is injectable so tests can pin it."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable

# Every integer id the API shows comes from the database (autoincrement), never from
# here: JavaScript clients (the official Node SDK) hold numbers exactly only below 2^53.


class IdFactory:
    """Makes every id Postroom hands out; tests pass a seeded ``randbits``."""

    def __init__(self, randbits: Callable[[int], int] = secrets.randbits) -> None:
        self._randbits = randbits

    def message_id(self) -> str:
        """A UUID (version 4) string: the contract's message_id of one recipient."""
        return str(uuid.UUID(int=self._randbits(128), version=4))

    def hex(self, nbytes: int) -> str:
        return f"{self._randbits(nbytes * 8):0{nbytes * 2}x}"
