"""IP pools and warm-up: which local address a message leaves from (pure policy).

A *pool* is a set of local source addresses with weights. Streams and accounts map to
pools (an account's own pool wins over its stream's, which wins over ``default``), so a
dedicated customer or the bulk stream keeps its reputation apart from the rest.

A new address has no reputation, and the large receivers throttle or junk sudden volume
from it. Warm-up caps what an address may send per UTC day, ramping day by day along a
schedule (``caps[0]`` on its first day, ``caps[1]`` on the second, …; no cap once the
schedule is over). An address that reached today's cap drops out of the weighted choice,
so its share overflows to the warm addresses of the pool. When every address of a pool is
capped, nothing is sent from it until the next UTC day: sending from an address outside
the pool would defeat the point of having one.

The counts are per recipient (one RCPT is one unit of volume for the receivers) and live
in the ``ip_volume`` table, so a restart does not reset a warm-up day.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True)
class SourceIp:
    """One local address of a pool; ``warmup_start`` is None for a warm address."""

    address: str
    weight: int = 1
    warmup_start: date | None = None

    def __post_init__(self) -> None:
        if self.weight < 1:
            raise ValueError(f"weight of {self.address} must be at least 1")


@dataclass(frozen=True, slots=True)
class IpPool:
    name: str
    members: tuple[SourceIp, ...]

    def __post_init__(self) -> None:
        if not self.members:
            raise ValueError(f"IP pool {self.name!r} has no addresses")


def daily_cap(ip: SourceIp, today: date, caps: Sequence[int]) -> int | None:
    """Recipients ``ip`` may send on ``today``; None when it is not (or no longer) capped."""
    if ip.warmup_start is None:
        return None
    day = (today - ip.warmup_start).days
    if day < 0:
        return 0  # its warm-up has not started: it must not send yet
    if day >= len(caps):
        return None
    return caps[day]


def pool_for(
    pools: Mapping[str, IpPool],
    *,
    account_pool: str | None,
    stream_pools: Mapping[str, str],
    stream: str,
) -> IpPool | None:
    """The pool a message uses; None means no pool (the system's default route)."""
    for name in (account_pool, stream_pools.get(stream), "default"):
        if name and name in pools:
            return pools[name]
    return None


@dataclass
class Allocator:
    """Hands out source addresses for one delivery round, counting today's volume.

    ``sent`` starts from the stored counts of today and is updated as addresses are
    taken, so one round cannot overshoot a cap either.
    """

    today: date
    caps: Sequence[int]
    sent: dict[str, int] = field(default_factory=dict)
    rand: Callable[[], float] = random.random

    def room(self, ip: SourceIp) -> int | None:
        """How many more recipients ``ip`` may take today (None: unlimited)."""
        cap = daily_cap(ip, self.today, self.caps)
        return None if cap is None else max(0, cap - self.sent.get(ip.address, 0))

    def take(self, pool: IpPool, recipients: int = 1) -> str | None:
        """A source address with room for ``recipients``, weighted; None if all are full."""
        open_ = [ip for ip in pool.members if _fits(self.room(ip), recipients)]
        if not open_:
            return None
        point = self.rand() * sum(ip.weight for ip in open_)
        chosen = open_[-1]
        for ip in open_:
            point -= ip.weight
            if point < 0:
                chosen = ip
                break
        self.sent[chosen.address] = self.sent.get(chosen.address, 0) + recipients
        return chosen.address


def _fits(room: int | None, recipients: int) -> bool:
    return room is None or room >= recipients
