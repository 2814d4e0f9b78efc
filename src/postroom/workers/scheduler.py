"""Scheduler: periodic housekeeping in every `postroom serve` (or `postroom scheduler`).

It shunts crash-looping deliveries (leased ``max_leases`` times without completing)
so that one poisonous message cannot occupy a worker forever; an operator sees them in
the queue and can requeue them. It re-checks sending domains' DNS, which is also how DKIM
keys activate, rotate and retire (:func:`postroom.services.domains.verify`). It folds
new events into the stats rollups, enforces log and body retention, and judges
per-domain alerts. It launches scheduled email campaigns and sends the next slice of each
campaign being sent.

Several schedulers may run (one per ``postroom serve`` child, or ``postroom scheduler``
on several hosts): each round, only the one that leads (storage/leadership.py: a
PostgreSQL advisory lock, taken over when its holder dies) runs the jobs; the others
stand by.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from postroom.errors import StoreUnavailable
from postroom.queue import leases
from postroom.services import (
    Services,
    alerts,
    campaign_sending,
    domains,
    idempotency,
    retention,
    rollups,
    suppressions,
)
from postroom.storage.leadership import Leadership
from postroom.workers import sleep_unless_stopped

log = logging.getLogger("postroom.scheduler")


async def shunt_crash_loops(services: Services) -> int:
    now = services.clock.now()
    max_leases = services.settings.delivery.max_leases
    shunted = await services.db.write(lambda conn: leases.shunt_crash_loops(conn, now, max_leases))
    for row in shunted:
        log.warning(
            "shunted delivery %s to %s after %d leases", row["id"], row["recipient"], max_leases
        )
    return len(shunted)


async def recheck_domains(services: Services) -> int:
    """Verify the domains due a DNS check, a bounded batch per round."""
    checked = await domains.recheck_due(services, domains.RECHECK_BATCH)
    if checked:
        log.info("re-checked DNS of %d sending domain(s)", checked)
    return checked


async def expire_suppressions(services: Services) -> int:
    """Remove soft-bounce suppressions whose time is over (logged as expired)."""
    return await suppressions.expire_due(services)


async def purge_idempotency_keys(services: Services) -> int:
    """Forget Idempotency-Keys older than limits.idempotency_hours (a bounded batch)."""
    now = services.clock.now()
    ttl = timedelta(hours=services.settings.limits.idempotency_hours)
    return await services.db.write(lambda conn: idempotency.purge(conn, now, ttl))


async def send_campaigns(services: Services) -> int:
    """Launch the scheduled email campaigns that are due; send each sending campaign's
    next slice (throttled; resumable: postroom.services.campaign_sending)."""
    return await campaign_sending.send_round(services)


async def fold_stats(services: Services) -> int:
    """Fold new events into the stats rollups (bounded batches)."""
    return await rollups.consume(services)


async def enforce_retention(services: Services) -> int:
    """Delete logs and bodies past each account's retention (bounded batches)."""
    swept = await retention.enforce(services)
    return swept.messages + swept.bodies


async def judge_alerts(services: Services) -> int:
    """Raise or clear per-domain alerts; mail and record each change."""
    return len(await alerts.evaluate(services))


# Stats fold before retention (which deletes only what the rollups already counted)
# and before alerts.
JOBS = (
    shunt_crash_loops,
    recheck_domains,
    expire_suppressions,
    purge_idempotency_keys,
    send_campaigns,
    fold_stats,
    enforce_retention,
    judge_alerts,
)


LEADERSHIP = "scheduler"


class Scheduler:
    """Runs every job in ``JOBS`` each ``interval`` seconds until stopped, while it leads."""

    def __init__(self, services: Services) -> None:
        self.services = services
        self.leadership = Leadership(services.db.engine, LEADERSHIP)

    @property
    def active(self) -> bool:
        """Whether this scheduler leads (runs the jobs) rather than stands by."""
        return self.leadership.leading

    async def run_once(self) -> None:
        for job in JOBS:
            try:
                await job(self.services)
            except StoreUnavailable:  # logged once per outage by storage
                return
            except Exception:
                log.exception("scheduler job %s failed", job.__name__)

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                if await asyncio.to_thread(self.leadership.try_lead):
                    await self.run_once()
                await sleep_unless_stopped(stop, self.services.settings.scheduler.interval)
        finally:
            # Hand over at once rather than when the process's connections close.
            await asyncio.to_thread(self.leadership.release)
