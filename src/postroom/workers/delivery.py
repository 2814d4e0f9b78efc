"""DeliveryWorker: leases due deliveries and hands them to the delivery mode's engine.

Lifecycle: ``run(stop)`` loops until ``stop`` is set. Each round leases up to
``worker_batch`` due deliveries (one short write transaction), prepares their outcome off
the writer thread, and completes them in a second transaction. If the process dies
between the two, the leases expire and another round (here or in another process) takes
the rows again; capture is idempotent, so nothing is lost and nothing is doubled. When
nothing is due the worker sleeps ``poll_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from postroom.config import DeliveryMode
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
        if services.settings.delivery.mode is not DeliveryMode.SANDBOX:
            raise ValueError(f"delivery mode {services.settings.delivery.mode} is not available")

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.services.settings.delivery.poll_interval
        while not stop.is_set():
            try:
                done = await self.run_once()
            except Exception:
                log.exception("delivery round failed; retrying")
                done = 0
            if done == 0:
                await sleep_unless_stopped(stop, interval)

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
        plans = await self.services.db.read(
            lambda conn: sandbox_delivery.plan_capture(self.services, conn, leased, now)
        )
        await self.services.db.write(
            lambda conn: sandbox_delivery.apply_capture(self.services, conn, plans, now)
        )
        return len(leased)
