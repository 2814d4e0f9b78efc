"""TtlCache: entries expire after their time and the cache stays bounded."""

from __future__ import annotations

from postroom.services.cache import TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_entries_expire() -> None:
    clock = Clock()
    cache: TtlCache[str, int] = TtlCache(10, clock=clock)
    cache.put("a", 1)
    assert cache.get("a") == 1
    clock.now += 9.9
    assert cache.get("a") == 1
    clock.now += 0.1
    assert cache.get("a") is None
    assert cache.get("missing") is None


def test_bounded() -> None:
    cache: TtlCache[int, int] = TtlCache(10, max_entries=3, clock=Clock())
    for key in range(3):
        cache.put(key, key)
    cache.put(3, 3)
    assert [cache.get(k) for k in range(4)] == [None, None, None, 3]
