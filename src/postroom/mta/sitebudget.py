"""A destination site's limits shared by every worker process, through Redis.

Each worker's :class:`~postroom.domain.throttle.SiteThrottle` shapes its own traffic; N
workers would together open N times a site's connections and send N times its rate.
With ``--redis-url`` the lanes (mta/lanes.py) also claim from one budget per site:

- connections: a sorted set per site of the lanes holding a connection slot, each with
  an expiry; a lane joins only while the set has fewer members than the site allows.
  Slots of a process killed outright expire (``scale.site_slot_seconds``); live ones
  are renewed by a heartbeat, so a long session keeps its slot.
- rate: one token bucket per site (the same shape as the local one: a second's worth of
  burst, refilled continuously), so the site's messages per minute hold across workers.

Both are Lua scripts, atomic in Redis, and use Redis's clock (one clock for every
host). The limit passed in is the calling worker's current (possibly slowed-down) one.
If Redis fails, a lane falls back on its worker's own throttle and this is logged: a
Redis outage slows nothing down, but for its length the limits hold per worker only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("postroom.sitebudget")

SLOT_TTL = 30.0
HEARTBEAT = 10.0

_CONNECT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return 1 end
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 2))
  return 1
end
return 0
"""

_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[i - 1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
  redis.call('EXPIRE', KEYS[i - 1], math.ceil(tonumber(ARGV[1]) * 2))
end
return 1
"""

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local rate = tonumber(ARGV[1]) / 60
local cap = math.max(1, rate)
local b = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(b[1]) or cap
local ts = tonumber(b[2]) or now
tokens = math.min(cap, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('EXPIRE', KEYS[1], 3600)
return tostring(wait)
"""


class SharedSites:
    """Connection slots and message rate per site, shared through Redis."""

    def __init__(
        self, client: Redis, prefix: str = "postroom", *, slot_ttl: float = SLOT_TTL
    ) -> None:
        self.redis = client
        self.slot_ttl = slot_ttl
        self.prefix = prefix
        self._held: dict[str, str] = {}  # holder -> site
        self._heartbeat: asyncio.Task[None] | None = None
        self._connect = client.register_script(_CONNECT)
        self._renew = client.register_script(_RENEW)
        self._take = client.register_script(_TAKE)
        self._failing = False

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "postroom", *, slot_ttl: float = SLOT_TTL
    ) -> SharedSites:
        return cls(Redis.from_url(url), prefix, slot_ttl=slot_ttl)

    def _key(self, site: str, what: str) -> str:
        return f"{self.prefix}:site:{site}:{what}"

    def new_holder(self) -> str:
        return uuid.uuid4().hex

    async def connect(self, site: str, holder: str, limit: int) -> bool:
        """Claim one of the site's ``limit`` connection slots for ``holder``; True if
        claimed (or Redis is down: the worker's own throttle then decides alone)."""
        try:
            got = await self._connect(
                keys=[self._key(site, "conns")], args=[holder, limit, self.slot_ttl]
            )
        except RedisError:
            self._failed("claiming a connection slot")
            return True
        self._recovered()
        if got:
            self._held[holder] = site
            if self._heartbeat is None or self._heartbeat.done():
                self._heartbeat = asyncio.create_task(self._beat(), name="site-budget")
        return bool(got)

    async def release(self, site: str, holder: str) -> None:
        self._held.pop(holder, None)
        with contextlib.suppress(RedisError):
            await self.redis.zrem(self._key(site, "conns"), holder)

    async def take(self, site: str, per_minute: float) -> float:
        """Take one message of the site's rate: 0.0 to send now, else seconds to wait;
        None-equivalent (0.0) when Redis is down (the local throttle still applies)."""
        try:
            wait = await self._take(keys=[self._key(site, "rate")], args=[per_minute])
        except RedisError:
            self._failed("taking from a site's rate")
            return 0.0
        self._recovered()
        return float(wait)

    async def _beat(self) -> None:
        while self._held:
            await asyncio.sleep(min(HEARTBEAT, self.slot_ttl / 3))
            held = list(self._held.items())
            if not held:
                return
            try:
                await self._renew(
                    keys=[self._key(site, "conns") for _, site in held],
                    args=[self.slot_ttl, *(holder for holder, _ in held)],
                )
            except RedisError:
                self._failed("renewing connection slots")

    def _failed(self, doing: str) -> None:
        if not self._failing:
            log.warning("Redis failed %s; site limits hold per worker until it is back", doing)
            self._failing = True

    def _recovered(self) -> None:
        if self._failing:
            log.warning("Redis is back: site limits are shared again")
            self._failing = False

    async def close(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
        await self.redis.aclose()
