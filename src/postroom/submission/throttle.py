"""Failed-login throttle: a client address with too many recent AUTH failures is refused.

In-process and per listener process, like the other counters without Redis; the window
slides, so an address is let in again once its oldest failures are old enough.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable


class AuthThrottle:
    """Counts AUTH failures per client address over a sliding window."""

    def __init__(
        self,
        max_failures: int,
        window_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = 100_000,
    ) -> None:
        self._max = max_failures
        self._window = window_seconds
        self._clock = clock
        self._max_addresses = max_addresses
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        """Whether ``address`` has used up its failures for now."""
        recent = self._recent(address)
        return recent is not None and len(recent) >= self._max

    def failed(self, address: str) -> None:
        """Record one failed AUTH from ``address``."""
        recent = self._recent(address)
        if recent is None:
            if len(self._failures) >= self._max_addresses:
                self._evict()
            recent = self._failures[address] = deque()
        recent.append(self._clock())

    def _recent(self, address: str) -> deque[float] | None:
        recent = self._failures.get(address)
        if recent is None:
            return None
        horizon = self._clock() - self._window
        while recent and recent[0] <= horizon:
            recent.popleft()
        if not recent:
            del self._failures[address]
            return None
        return recent

    def _evict(self) -> None:
        # Bounded memory under a spray of addresses: forget the expired, then the oldest.
        for address in list(self._failures):
            self._recent(address)
        while len(self._failures) >= self._max_addresses:
            del self._failures[next(iter(self._failures))]
