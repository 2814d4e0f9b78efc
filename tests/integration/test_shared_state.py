"""Shared state of several processes through a real Redis (``scale.redis_url``).

Two instances of each piece stand for two processes: API rate limits counted once for
both, a site's connection slots and rate shared by two workers (and slots of a killed
worker expiring), and a cache entry dropped in one process when the other changes it.
Skipped when no Redis answers, unless POSTROOM_TEST_REQUIRE_POSTGRES=1 (CI, which also
runs Redis) makes that a failure.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from postroom.config import RateLimitSettings, Settings
from postroom.mta.sitebudget import SharedSites
from postroom.services import Services
from postroom.services.cache import TtlCache
from postroom.services.ratelimit import RateLimited, RateLimiter
from postroom.storage.db import Database

REDIS_URL = os.environ.get("POSTROOM_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError:
        if os.environ.get("POSTROOM_TEST_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"Redis is required but unreachable at {REDIS_URL}")
        pytest.skip("Redis unreachable")
    yield REDIS_URL


def test_rate_limits_are_counted_once_for_every_process(redis_url: str) -> None:
    settings = RateLimitSettings(stats="3/minute")
    first, second = RateLimiter(settings, redis_url), RateLimiter(settings, redis_url)
    key = f"account-{secrets.token_hex(4)}"
    assert first.hit("stats", key).remaining == 2
    assert second.hit("stats", key).remaining == 1
    assert first.hit("stats", key).remaining == 0
    with pytest.raises(RateLimited):
        second.hit("stats", key)
    # In memory (no Redis) each process would have counted alone.
    alone = RateLimiter(settings)
    assert alone.hit("stats", key).remaining == 2


def test_a_sites_connections_and_rate_are_shared_by_workers(redis_url: str) -> None:
    async def scenario() -> None:
        prefix = f"test-{secrets.token_hex(4)}"
        one = SharedSites.from_url(redis_url, prefix)
        two = SharedSites(SharedSites.from_url(redis_url).redis, prefix, slot_ttl=0.6)
        try:
            a, b, c = one.new_holder(), two.new_holder(), two.new_holder()
            assert await one.connect("example.net", a, 2)
            assert await two.connect("example.net", b, 2)
            assert not await two.connect("example.net", c, 2)  # the site allows 2 in all
            assert await two.connect("other.net", c, 2)  # another site: its own budget
            await one.release("example.net", a)
            assert await two.connect("example.net", c, 2)

            # A worker killed while holding slots: they expire (slot_ttl) for the others.
            dead = SharedSites(SharedSites.from_url(redis_url).redis, prefix, slot_ttl=0.6)
            ghost = dead.new_holder()
            assert await dead.connect("killed.net", ghost, 1)
            assert dead._heartbeat is not None
            dead._heartbeat.cancel()  # the process is gone: no more renewals
            assert not await one.connect("killed.net", one.new_holder(), 1)
            await asyncio.sleep(0.8)
            assert await one.connect("killed.net", one.new_holder(), 1)
            await dead.close()

            # 60/minute: a one-message burst, then one a second, whoever takes it.
            assert await one.take("rate.net", 60) == 0.0
            wait = await two.take("rate.net", 60)
            assert 0.5 < wait <= 1.0
        finally:
            await one.close()
            await two.close()

    asyncio.run(scenario())


def test_a_change_in_one_process_drops_the_cache_entry_in_the_others(
    redis_url: str, tmp_path: Path
) -> None:
    settings = Settings(
        storage={"data_dir": tmp_path, "database_url": f"sqlite:///{tmp_path / 'x.db'}"},
        scale={"redis_url": redis_url},
    )
    db = Database.from_url(settings.database_url)
    listener, changer = Services(settings=settings, db=db), Services(settings=settings, db=db)
    listener.account_modes.put(7, ("mx",))
    listener.get_template_cache()
    listener.template_cache.put((7, "uuid-1"), object())  # type: ignore[union-attr,arg-type]
    # A revoked token is known by id, not by its cache key: the whole cache goes.
    tokens: TtlCache[str, object] = TtlCache(60)
    tokens.put("hash-a", object())
    tokens.put("hash-b", object())
    listener.token_caches.append(tokens)  # type: ignore[arg-type]

    async def scenario() -> None:
        stop = asyncio.Event()
        from postroom.services.shared import Invalidations

        listener.invalidations = Invalidations(redis_url)
        task = asyncio.create_task(listener.invalidations.listen(listener.forget_here, stop))
        await asyncio.sleep(0.5)  # subscribed
        await asyncio.to_thread(changer.forget, "account_modes", 7)
        await asyncio.to_thread(changer.forget, "templates", (7, "uuid-1"))
        await asyncio.to_thread(changer.forget, "tokens", None)
        deadline = time.monotonic() + 5
        while listener.invalidations.received < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        stop.set()
        await task

    try:
        asyncio.run(scenario())
        assert changer.invalidations is not None
        changer.invalidations.close()
        assert listener.account_modes.get(7) is None
        assert listener.template_cache is not None
        assert listener.template_cache.get((7, "uuid-1")) is None
        assert tokens.get("hash-a") is None and tokens.get("hash-b") is None
    finally:
        db.close()


def test_lanes_of_two_workers_share_a_sites_connections(redis_url: str) -> None:
    """Two workers' runners for one site (each allowed 2 connections by its own throttle)
    open at most 2 at once between them when they share the site's budget."""
    from postroom.domain.throttle import SiteLimits, SiteThrottle
    from postroom.mta.lanes import SiteRunner
    from postroom.mta.pool import SessionPool
    from postroom.mta.session import SessionConfig

    open_now = 0
    most = 0

    async def send(job: int, pool: SessionPool) -> list[int]:
        nonlocal open_now, most
        if not getattr(pool, "counted", False):
            pool.counted = True  # type: ignore[attr-defined]
            open_now += 1
            most = max(most, open_now)
        await asyncio.sleep(0.01)  # a message takes a while: lanes overlap
        return [job]

    async def scenario() -> list[int]:
        nonlocal open_now
        prefix = f"test-{secrets.token_hex(4)}"
        config = SessionConfig(ehlo_name="test", tls="none")

        class CountedPool(SessionPool):
            async def close_all(self) -> None:
                nonlocal open_now
                if getattr(self, "counted", False):
                    open_now -= 1
                await super().close_all()

        workers = [SharedSites.from_url(redis_url, prefix) for _ in range(2)]
        limits = SiteLimits(max_connections=2, messages_per_minute=60_000)
        runners = [
            SiteRunner[int, int](
                "example.net",
                SiteThrottle(limits),
                asyncio.Semaphore(10),
                asyncio.Condition(),
                time.monotonic() + 30,
                lambda: CountedPool(config),
                send,
                shared=shared,
            )
            for shared in workers
        ]
        try:
            await asyncio.gather(
                runners[0].run(list(range(64))), runners[1].run(list(range(64, 128)))
            )
        finally:
            for shared in workers:
                await shared.close()
        return sorted(runners[0].results + runners[1].results)

    delivered = asyncio.run(scenario())
    assert delivered == list(range(128))  # every job sent once
    assert most == 2  # each would have opened 2 alone: 4 without the shared budget
