"""The webhook dispatcher: a task of every ``postroom serve``.

Each round (every ``webhooks.flush_seconds``, sooner while there is a backlog) it turns
the outbox into batches and sends every due batch (:mod:`postroom.services.webhooks`);
about once a minute it forgets delivered batches and log entries past
``webhooks.log_days``. Several processes may run it against one PostgreSQL database:
outbox rows are taken with SKIP LOCKED and batches are leased before they are sent.
"""

from __future__ import annotations

import asyncio
import logging
import time

from postroom.errors import StoreUnavailable
from postroom.services import Services, webhooks
from postroom.services.egress import EgressClient
from postroom.workers import sleep_unless_stopped

log = logging.getLogger("postroom.webhooks")

PURGE_EVERY_SECONDS = 60.0


class WebhookDispatcher:
    """Batches and sends webhook events until stopped."""

    def __init__(self, services: Services, client: EgressClient | None = None) -> None:
        self.services = services
        self.client = client or webhooks.egress_client(services)
        self._purged = 0.0

    async def run_once(self) -> int:
        """One round; returns how much work it did (outbox rows + batches attempted)."""
        work = await webhooks.batch_outbox(self.services)
        work += await webhooks.send_due(self.services, self.client)
        if time.monotonic() - self._purged > PURGE_EVERY_SECONDS:
            self._purged = time.monotonic()
            await webhooks.purge(self.services)
        return work

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.services.settings.webhooks.flush_seconds
        while not stop.is_set():
            work = 0
            try:
                work = await self.run_once()
            except StoreUnavailable:  # logged once per outage by storage
                pass
            except Exception:
                log.exception("webhook dispatcher round failed")
            # A full round means a backlog: go again at once (yielding to the loop).
            await sleep_unless_stopped(stop, 0 if work >= webhooks.OUTBOX_ROUND else interval)
