"""DeliveryWorker: leases due deliveries and hands them to the delivery mode's engine.

Lifecycle: ``run(stop)`` loops until ``stop`` is set (``rounds_in_flight`` loops at
once, so one round's SMTP traffic overlaps another's planning). Each round leases up to
``worker_batch`` due deliveries (one short write transaction), prepares their outcome off
the writer thread, and completes them in a second transaction. If the process dies
between the two, the leases expire and another round (here or in another process) takes
the rows again; capture is idempotent, so nothing is lost and nothing is doubled. When
nothing is due the worker sleeps ``poll_interval`` seconds.

The engine follows ``settings.delivery.mode`` at every round: ``sandbox`` captures into
inboxes (postroom.sandbox.deliver); ``mx`` and ``relay`` send over SMTP
(postroom.mta.deliver, built on first use and kept for the worker's life, so its route
cache and site throttles persist across rounds). In those modes a crash mid-round may
send a message twice (at-least-once, like every MTA), but never loses one.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from postroom.config import DeliveryMode
from postroom.mta.deliver import MxEngine
from postroom.queue import leases
from postroom.sandbox import deliver as sandbox_delivery
from postroom.services import Services
from postroom.workers import sleep_unless_stopped

log = logging.getLogger("postroom.worker")


class DeliveryWorker:
    """One delivery worker; several may run against one PostgreSQL database."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._engine: MxEngine | None = None

    async def run(self, stop: asyncio.Event) -> None:
        """Run ``delivery.rounds_in_flight`` round loops until ``stop`` is set.

        Two loops overlap one round's database work and DKIM signing (in worker threads)
        with the other's SMTP traffic (on the event loop); one loop would leave the
        event loop idle while it plans and records. Each loop leases its own batch, so
        they never share a delivery.
        """
        loops = max(1, self.services.settings.delivery.rounds_in_flight)
        await asyncio.gather(*(self._loop(stop) for _ in range(loops)))

    async def _loop(self, stop: asyncio.Event) -> None:
        interval = self.services.settings.delivery.poll_interval
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:
                log.exception("delivery round failed; retrying")
                done = 0
            if done == 0:
                await sleep_unless_stopped(stop, interval)

    def open_connections(self) -> dict[str, int]:
        """Outbound SMTP connections open now, per destination site (none in sandbox)."""
        return self._engine.open_connections() if self._engine is not None else {}

    async def run_once(self) -> int:
        """Lease and deliver one batch; returns how many deliveries were leased."""
        cfg = self.services.settings.delivery
        now = self.services.clock.now()
        leased = await self.services.db.write(
            lambda conn: leases.lease_due(
                conn,
                owner=self.owner,
                now=now,
                lease_seconds=cfg.lease_seconds,
                limit=cfg.worker_batch,
                max_leases=cfg.max_leases,
            )
        )
        if not leased:
            return 0
        if cfg.mode is not DeliveryMode.SANDBOX:
            if self._engine is None or self._engine.mode is not cfg.mode:
                self._engine = MxEngine(self.services)
            await self._engine.run_round(leased, now)
            return len(leased)
        plans = await self.services.db.read(
            lambda conn: sandbox_delivery.plan_capture(self.services, conn, leased, now)
        )
        await self.services.db.write(
            lambda conn: sandbox_delivery.apply_capture(self.services, conn, plans, now)
        )
        return len(leased)
