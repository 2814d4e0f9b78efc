"""Concurrent delivery lanes for one destination site, inside the site's throttle.

A round's transactions are grouped by the site's throttle (the MX set's shaping key, see
:mod:`postroom.domain.throttle`); each site gets up to as many *lanes* as it allows
connections, and every site runs at the same time. A lane takes the site's next
transaction, waits for the site's rate if it must, sends it over the lane's own
connection (reused for the following ones, see :mod:`postroom.mta.pool`) and goes on
until the site's work is done.

Why lanes and not one task per message: a lane is a connection slot, so the number of
open connections to a site is exactly the number of lanes, and a site that pushed back
(421, rate-limit 4xx) loses lanes as soon as its throttle lowers the allowed
connections: the lane that notices it is over the limit finishes its current message and
closes.

Waiting is bounded by the round's deadline: what a site cannot take before it is
*postponed* (put back in the queue, due when the site has room, no attempt counted),
so a slow site never holds a round, nor the fast sites in it. The order of a site's
transactions is kept, so transactional mail still goes before bulk (the lease order).

Every lane also holds one slot of the worker-wide connection limit (a semaphore), so a
round with many sites cannot open more than ``delivery.max_connections`` connections.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from postroom.domain.throttle import SiteThrottle
from postroom.mta.pool import SessionPool

J = TypeVar("J")
R = TypeVar("R")

# A new lane (connection) per this many queued transactions of a site: one connection
# carries a light site's traffic without a handshake per message; a busy site gets more
# connections, up to what its throttle allows.
JOBS_PER_LANE = 8

# When every lane left (a site slowed down hard) with work still queued, that work is
# retried this many seconds later rather than in the same round.
RETRY_AFTER_SLOWDOWN = 5.0


@dataclass
class SiteRunner(Generic[J, R]):
    """Runs one site's jobs over concurrent lanes; see the module docstring."""

    site: str
    throttle: SiteThrottle
    connections: asyncio.Semaphore
    deadline: float  # on ``clock``
    new_pool: Callable[[], SessionPool]
    send: Callable[[J, SessionPool], Awaitable[list[R]]]
    clock: Callable[[], float] = time.monotonic
    results: list[R] = field(default_factory=list)
    postponed: list[tuple[J, float]] = field(default_factory=list)  # (job, seconds)
    pools: list[SessionPool] = field(default_factory=list)

    @property
    def open_connections(self) -> int:
        return sum(pool.open_count for pool in self.pools)

    async def run(self, jobs: list[J]) -> None:
        queue = deque(jobs)
        free = self.throttle.effective_connections - self.throttle.open_connections
        wanted = -(-len(queue) // JOBS_PER_LANE)  # ceil
        lanes = max(0, min(wanted, free))
        await asyncio.gather(*(self._lane(queue) for _ in range(lanes)))
        if queue:  # no lane could run (slots taken) or all gave up after a slow-down
            self.postponed += [(job, RETRY_AFTER_SLOWDOWN) for job in queue]

    async def _lane(self, queue: deque[J]) -> None:
        async with self.connections:
            if not queue or not self.throttle.connection_available():
                return
            self.throttle.open_connection()
            pool = self.new_pool()
            self.pools.append(pool)
            try:
                await self._drain(queue, pool)
            finally:
                self.throttle.close_connection()
                await pool.close_all()
                self.pools.remove(pool)

    async def _drain(self, queue: deque[J], pool: SessionPool) -> None:
        while queue:
            if self.throttle.open_connections > self.throttle.effective_connections:
                return  # the site slowed down: this lane is one too many
            wait = self.throttle.try_take(self.clock())
            if wait > 0:
                if self.clock() + wait > self.deadline:
                    self.postponed += [(job, wait) for job in queue]
                    queue.clear()
                    return
                await asyncio.sleep(wait)
                continue
            job = queue.popleft()
            self.results += await self.send(job, pool)
