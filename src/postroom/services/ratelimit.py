"""Request rate limits of the API (the contract's §7), counted in moving windows.

The contract's limits: every general-host endpoint 150 requests per 10 s per API token;
per account, stats 10/min, suppressions 10/min, contacts 200/min, the email-log list
60/min and one email log 1,000/min. Over a limit the API answers 429. The sending API
is not limited by default: a self-hosted installation's sending volume is its own to
decide (Mailtrap's hosted limit would cap it at 15 requests/s), but
``ratelimits.sending`` applies one per token when set.

Counters live in this process (the ``limits`` library's moving-window strategy over its
in-memory storage) unless ``scale.redis_url`` names a Redis: then every API process
counts in it (the same strategy over ``limits``' Redis storage), so N processes together
allow what one would. Without it each process counts its own share, so a client could
do up to N times the limit across N processes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import MovingWindowRateLimiter

from postroom.config import RateLimitSettings
from postroom.errors import PostroomError


def storage(url: str | None) -> Storage:
    """Counters in Redis for a ``redis://`` URL (shared by every process), else in memory."""
    if not url:
        return MemoryStorage()
    # A key prefix of our own: other applications may count in the same Redis.
    shared = storage_from_string(url, key_prefix="postroom-limits")
    if not isinstance(shared, Storage):  # an async scheme (async+redis://) was named
        raise ValueError(f"not a synchronous limits storage URL: {url}")
    return shared


class RateLimited(PostroomError):
    """A limit was reached; ``limit`` is its size (for X-Ratelimit-Limit), ``retry_after``
    the seconds until it lets a request through again, when known (for Retry-After)."""

    def __init__(self, limit: int, retry_after: int | None = None) -> None:
        super().__init__("Rate limit exceeded")
        self.limit = limit
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Verdict:
    limit: int
    remaining: int


class RateLimiter:
    """Named limits (from settings) checked and counted per key."""

    def __init__(self, settings: RateLimitSettings, storage_url: str | None = None) -> None:
        self.enabled = settings.enabled
        self._storage = storage(storage_url)
        self._window = MovingWindowRateLimiter(self._storage)
        named = {
            "token": settings.per_token,
            "stats": settings.stats,
            "suppressions": settings.suppressions,
            "contacts": settings.contacts,
            "email_logs": settings.email_logs,
            "email_log": settings.email_log,
            "sending": settings.sending,
        }
        self._items: dict[str, RateLimitItem] = {
            name: parse(spec) for name, spec in named.items() if spec
        }

    def has(self, name: str) -> bool:
        return self.enabled and name in self._items

    def hit(self, name: str, key: str) -> Verdict:
        """Count one request of ``key`` against limit ``name``; RateLimited when over."""
        item = self._items[name]
        if not self._window.hit(item, name, key):
            raise RateLimited(item.amount)
        stats = self._window.get_window_stats(item, name, key)
        return Verdict(item.amount, max(0, stats.remaining))


class FailureThrottle:
    """Failures per client (failed authentications), counted in a moving window.

    Unlike :class:`RateLimiter` it counts only what failed, and it is asked before the
    work rather than counting it: :meth:`blocked` says whether (and for how long) the
    client has used up its failures.
    """

    def __init__(self, spec: str | None, storage_url: str | None = None) -> None:
        self._item = parse(spec) if spec else None
        self._window = MovingWindowRateLimiter(storage(storage_url))

    def blocked(self, client: str) -> int | None:
        """Seconds until ``client`` may fail again, or None while it may."""
        if self._item is None or self._window.test(self._item, "failures", client):
            return None
        stats = self._window.get_window_stats(self._item, "failures", client)
        return max(1, math.ceil(stats.reset_time - time.time()))

    def failed(self, client: str) -> None:
        if self._item is not None:
            self._window.hit(self._item, "failures", client)

    @property
    def limit(self) -> int:
        return self._item.amount if self._item is not None else 0
