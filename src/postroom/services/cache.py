"""A small in-process cache whose entries expire, for lookups on the hot send path.

Used where a database read per request would cost more than the request itself and a
few seconds of staleness is acceptable: authenticated tokens, a account's verified
sending domains. Bounded: past ``max_entries`` it starts over rather than grow.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    """Entries live ``seconds`` (monotonic time); ``clock`` is injectable for tests."""

    def __init__(
        self,
        seconds: float,
        *,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._seconds, self._max, self._clock = seconds, max_entries, clock
        self._entries: dict[K, tuple[float, V]] = {}

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            return None
        return entry[1]

    def discard(self, key: K) -> None:
        """Forget ``key`` now (its value changed in this process)."""
        self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything now."""
        self._entries.clear()

    def put(self, key: K, value: V) -> None:
        if len(self._entries) >= self._max:
            self._entries.clear()
        self._entries[key] = (self._clock() + self._seconds, value)
