"""Cache invalidation across processes, through Redis publish/subscribe.

Each process keeps short-lived caches on its hot paths (services/cache.py): tokens,
accounts' verified sending domains and delivery modes, compiled templates. A change
made in one process drops the entry there at once; with ``scale.redis_url`` it is also
published on ``CHANNEL`` and every other process (another API process, a worker, a
local command's change seen by the running server) drops it on receipt, instead of
serving the stale value until its TTL ends. Without Redis the TTLs bound staleness.

Messages are JSON ``{"cache": name, "key": key, "origin": process id}``; tuple keys
travel as lists and come back as tuples. A process ignores its own messages (it dropped
the entry already). Publishing is a short blocking call (changes are rare management
operations); listening is a task of every serving process (cli/runner.py) that
reconnects after a Redis failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import redis
import redis.asyncio
from redis.exceptions import RedisError

log = logging.getLogger("postroom.shared")

CHANNEL = "postroom:invalidate"
RECONNECT_SECONDS = 1.0


def _as_key(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_key(v) for v in value)
    return value


class Invalidations:
    """Publish and receive cache invalidations on one Redis."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.origin = uuid.uuid4().hex
        self._publisher: redis.Redis | None = None
        self.received = 0  # messages from other processes acted on (for tests, metrics)

    def publish(self, cache: str, key: Any) -> None:
        """Tell every other process to drop ``key`` from its cache ``cache``."""
        message = orjson.dumps({"cache": cache, "key": key, "origin": self.origin})
        try:
            if self._publisher is None:
                self._publisher = redis.Redis.from_url(self.url)
            self._publisher.publish(CHANNEL, message)
        except RedisError:
            log.warning("could not publish a cache invalidation (%s); TTLs bound staleness", cache)

    def close(self) -> None:
        """Close the publishing connection (listening ends with ``stop``)."""
        if self._publisher is not None:
            self._publisher.close()
            self._publisher = None

    async def listen(self, forget: Callable[[str, Any], None], stop: asyncio.Event) -> None:
        """Call ``forget(cache, key)`` for each invalidation from elsewhere until ``stop``."""
        while not stop.is_set():
            client = redis.asyncio.Redis.from_url(self.url)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
                    if message is not None:
                        self._handle(message["data"], forget)
            except (RedisError, OSError):
                log.warning("cache invalidation channel failed; reconnecting")
                await asyncio.sleep(RECONNECT_SECONDS)
            finally:
                # The connection may be gone already: closing is best effort.
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
                    await client.aclose()

    def _handle(self, data: bytes, forget: Callable[[str, Any], None]) -> None:
        try:
            body = orjson.loads(data)
            if body.get("origin") == self.origin:
                return
            forget(str(body["cache"]), _as_key(body["key"]))
            self.received += 1
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("ignored a malformed cache invalidation")
