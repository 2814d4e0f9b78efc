"""IP pool choice and warm-up caps (pure policy)."""

from __future__ import annotations

from datetime import date

import pytest

from postroom.domain.ippools import Allocator, IpPool, SourceIp, daily_cap, pool_for

DAY = date(2026, 3, 2)
CAPS = [10, 20, 40]


def test_daily_cap_follows_the_schedule_and_opens_after_it() -> None:
    ip = SourceIp("192.0.2.1", warmup_start=DAY)
    assert daily_cap(SourceIp("192.0.2.9"), DAY, CAPS) is None  # a warm address
    assert daily_cap(ip, date(2026, 3, 1), CAPS) == 0  # warm-up not started yet
    assert [daily_cap(ip, date(2026, 3, d), CAPS) for d in (2, 3, 4)] == [10, 20, 40]
    assert daily_cap(ip, date(2026, 3, 5), CAPS) is None


def test_weights_share_traffic() -> None:
    pool = IpPool("p", (SourceIp("a", 1), SourceIp("b", 3)))
    points = iter(i / 100 for i in range(100))
    allocator = Allocator(DAY, CAPS, rand=lambda: next(points))
    taken = [allocator.take(pool) for _ in range(100)]
    assert taken.count("a") == 25 and taken.count("b") == 75


def test_a_capped_address_overflows_to_the_warm_ones() -> None:
    pool = IpPool("p", (SourceIp("warm", 1), SourceIp("new", 100, warmup_start=DAY)))
    allocator = Allocator(DAY, CAPS, sent={"new": 8}, rand=lambda: 0.5)
    assert allocator.take(pool, 2) == "new"  # 8 + 2 reaches its cap of 10
    assert allocator.take(pool, 1) == "warm"
    assert allocator.sent == {"new": 10, "warm": 1}


def test_a_transaction_larger_than_the_room_left_goes_elsewhere_or_waits() -> None:
    only_new = IpPool("p", (SourceIp("new", 1, warmup_start=DAY),))
    allocator = Allocator(DAY, CAPS, sent={"new": 9}, rand=lambda: 0.0)
    assert allocator.take(only_new, 2) is None
    assert allocator.take(only_new, 1) == "new"
    assert allocator.take(only_new, 1) is None


def test_pool_choice_account_then_stream_then_default() -> None:
    pools = {n: IpPool(n, (SourceIp(n),)) for n in ("default", "bulk", "vip")}
    streams = {"bulk": "bulk"}

    def chosen(account: str | None, stream: str) -> str | None:
        pool = pool_for(pools, account_pool=account, stream_pools=streams, stream=stream)
        return pool.name if pool else None

    assert chosen("vip", "bulk") == "vip"
    assert chosen(None, "bulk") == "bulk"
    assert chosen(None, "transactional") == "default"
    assert chosen("gone", "transactional") == "default"  # an unknown pool name is ignored
    assert pool_for({}, account_pool=None, stream_pools={}, stream="bulk") is None


def test_invalid_pools_are_refused() -> None:
    with pytest.raises(ValueError, match="weight"):
        SourceIp("a", 0)
    with pytest.raises(ValueError, match="no addresses"):
        IpPool("empty", ())
