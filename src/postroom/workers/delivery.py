"""DeliveryWorker: leases due deliveries and hands them to the delivery mode's engine.

Lifecycle: ``run(stop)`` loops until ``stop`` is set (``rounds_in_flight`` loops at
once, so one round's SMTP traffic overlaps another's planning). Each round leases up to
``worker_batch`` due deliveries (one short write transaction), prepares their outcome off
the writer thread, and completes them in a second transaction. If the process dies
between the two, the leases expire and another round (here or in another process) takes
the rows again; capture is idempotent, so nothing is lost and nothing is doubled. When
nothing is due the worker sleeps ``poll_interval`` seconds.

Each leased delivery goes the way of its delivery mode (postroom.services.modes: the
account's own, else its stream's, else ``delivery.mode``), decided at every round:
``sandbox`` captures into inboxes (postroom.sandbox.deliver); ``mx`` and ``relay`` send
over SMTP (postroom.mta.deliver, one engine per mode, built on first use and kept for the
worker's life, so its route cache and site throttles persist across rounds). In those
modes a crash mid-round may send a message twice (at-least-once, like every MTA), but
never loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from postroom.config import DeliveryMode
from postroom.errors import StoreUnavailable
from postroom.mta.deliver import MxEngine
from postroom.queue import leases
from postroom.sandbox import deliver as sandbox_delivery
from postroom.services import Services, modes
from postroom.workers import sleep_unless_stopped

log = logging.getLogger("postroom.worker")


class DeliveryWorker:
    """One delivery worker; several may run against one PostgreSQL database."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._engines: dict[DeliveryMode, MxEngine] = {}

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
            except StoreUnavailable:  # logged once per outage by storage
                done = 0
            except Exception:
                log.exception("delivery round failed; retrying")
                done = 0
            if done == 0:
                await sleep_unless_stopped(stop, interval)

    def open_connections(self) -> dict[str, int]:
        """Outbound SMTP connections open now, per destination site (none in sandbox)."""
        counts: dict[str, int] = {}
        for engine in self._engines.values():
            for site, n in engine.open_connections().items():
                counts[site] = counts.get(site, 0) + n
        return counts

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
        split = await self.services.db.read(
            lambda conn: modes.of_deliveries(self.services.settings, conn, leased)
        )
        heartbeat = asyncio.create_task(self._renew_leases([str(r["id"]) for r in leased]))
        try:
            for mode, rows in split.items():
                if mode is DeliveryMode.SANDBOX:
                    await self._capture(rows, now)
                else:
                    await self._engine_for(mode).run_round(rows, now)
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
        return len(leased)

    async def _renew_leases(self, ids: list[str]) -> None:
        """Every third of a lease, extend the round's leases (see leases.renew)."""
        seconds = self.services.settings.delivery.lease_seconds
        while True:
            await asyncio.sleep(seconds / 3)
            now = self.services.clock.now()
            until = now + timedelta(seconds=seconds)
            try:
                await self.services.db.write(
                    functools.partial(leases.renew, ids=ids, owner=self.owner, until=until, now=now)
                )
            except Exception:  # a failed heartbeat must not fail the round
                log.exception("renewing delivery leases failed")

    def _engine_for(self, mode: DeliveryMode) -> MxEngine:
        """The worker's engine for ``mode`` (made on first use, kept: its route cache and
        site throttles persist across rounds)."""
        engine = self._engines.get(mode)
        if engine is None:
            engine = self._engines[mode] = MxEngine(self.services, mode)
        return engine

    async def _capture(self, rows: list[dict[str, Any]], now: datetime) -> None:
        plans = await self.services.db.read(
            lambda conn: sandbox_delivery.plan_capture(self.services, conn, rows, now)
        )
        await self.services.db.write(
            lambda conn: sandbox_delivery.apply_capture(self.services, conn, plans, now)
        )
