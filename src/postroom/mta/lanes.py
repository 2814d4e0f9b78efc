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

With several worker processes (``--redis-url``), a lane also claims a slot of the site's
budget shared by every worker, and takes each message from the site's shared rate
(mta/sitebudget.py), so N workers together stay within the site's limits.

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
from postroom.mta.sitebudget import SharedSites

J = TypeVar("J")
R = TypeVar("R")

# A new lane (connection) per this many queued transactions of a site: one connection
# carries a light site's traffic without a handshake per message; a busy site gets more
# connections, up to what its throttle allows.
JOBS_PER_LANE = 8

# When every lane left (a site slowed down hard) with work still queued, that work is
# retried this many seconds later rather than in the same round.
RETRY_AFTER_SLOWDOWN = 5.0

# How often a lane asks again for a slot of a site's shared budget while it is full.
SHARED_SLOT_POLL = 0.1


@dataclass(eq=False)  # runners are compared by identity
class SiteRunner(Generic[J, R]):
    """Runs one site's jobs over concurrent lanes; see the module docstring."""

    site: str
    throttle: SiteThrottle
    connections: asyncio.Semaphore
    freed: asyncio.Condition  # notified when a lane of this throttle's site ends
    deadline: float  # on ``clock``
    new_pool: Callable[[], SessionPool]
    send: Callable[[J, SessionPool], Awaitable[list[R]]]
    clock: Callable[[], float] = time.monotonic
    results: list[R] = field(default_factory=list)
    postponed: list[tuple[J, float]] = field(default_factory=list)  # (job, seconds)
    pools: list[SessionPool] = field(default_factory=list)
    shared: SharedSites | None = None

    @property
    def open_connections(self) -> int:
        return sum(pool.open_count for pool in self.pools)

    async def run(self, jobs: list[J]) -> None:
        queue = deque(jobs)
        wanted = -(-len(queue) // JOBS_PER_LANE)  # ceil
        await asyncio.gather(*(self._lane(queue) for _ in range(wanted)))
        if queue:  # no slot freed up before the deadline, or all gave up after a slow-down
            self.postponed += [(job, RETRY_AFTER_SLOWDOWN) for job in queue]

    async def _lane(self, queue: deque[J]) -> None:
        # A site slot first (another round may hold them all; wait for one, not past the
        # deadline), then a worker-wide one, so a lane waiting for its site holds nothing.
        if not await self._site_slot(queue):
            return
        holder = None
        try:
            if self.shared is not None:
                holder = await self._shared_slot(queue)
                if holder is None:
                    return
            async with self.connections:
                if not queue:
                    return
                pool = self.new_pool()
                self.pools.append(pool)
                try:
                    await self._drain(queue, pool)
                finally:
                    await pool.close_all()
                    self.pools.remove(pool)
        finally:
            if holder is not None and self.shared is not None:
                await self.shared.release(self.site, holder)
            self.throttle.close_connection()
            async with self.freed:
                self.freed.notify_all()

    async def _shared_slot(self, queue: deque[J]) -> str | None:
        """Claim a slot of the site's budget shared by every worker (polled: the other
        holders are in other processes); None if there is no work or no time."""
        assert self.shared is not None
        holder = self.shared.new_holder()
        while queue:
            if await self.shared.connect(self.site, holder, self.throttle.effective_connections):
                return holder
            if self.clock() + SHARED_SLOT_POLL > self.deadline:
                return None
            await asyncio.sleep(SHARED_SLOT_POLL)
        return None

    async def _site_slot(self, queue: deque[J]) -> bool:
        """Claim a connection slot of the site; False if there is no work or no time."""
        async with self.freed:
            while queue and not self.throttle.connection_available():
                left = self.deadline - self.clock()
                if left <= 0:
                    return False
                try:
                    await asyncio.wait_for(self.freed.wait(), timeout=left)
                except TimeoutError:
                    return False
            if not queue:
                return False
            self.throttle.open_connection()
            return True

    async def _drain(self, queue: deque[J], pool: SessionPool) -> None:
        while queue:
            if self.throttle.open_connections > self.throttle.effective_connections:
                return  # the site slowed down: this lane is one too many
            if self.shared is not None:
                # The site's rate is shared by every worker: take from it, not our own.
                wait = await self.shared.take(self.site, self.throttle.effective_rate)
            else:
                wait = self.throttle.try_take(self.clock())
            if wait > 0:
                if self.clock() + wait > self.deadline:
                    self.postponed += [(job, wait) for job in queue]
                    queue.clear()
                    return
                await asyncio.sleep(wait)
                continue
            if not queue:  # another lane took the last job while we asked Redis
                return
            job = queue.popleft()
            self.results += await self.send(job, pool)
