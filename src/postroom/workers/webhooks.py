"""The webhook dispatcher: a task of every ``postroom serve``.

Every ``webhooks.flush_seconds`` (sooner while there is a backlog) it turns the outbox
into batches, and it sends every due batch (:mod:`postroom.services.webhooks`), the two
in separate loops so that they overlap; about once a minute it forgets delivered batches
and log entries past ``webhooks.log_days``. Several processes may run it against one
PostgreSQL database: outbox rows are taken with SKIP LOCKED and batches are leased
before they are sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from postroom.errors import StoreUnavailable
from postroom.services import Services, webhooks
from postroom.services.egress import EgressClient
from postroom.workers import sleep_unless_stopped

log = logging.getLogger("postroom.webhooks")

PURGE_EVERY_SECONDS = 60.0


class WebhookDispatcher:
    """Batches and sends webhook events until stopped.

    Two loops share the work: the batcher turns the outbox into batches every
    ``flush_seconds`` (at once again while there is a backlog) and wakes the sender, which
    sends every due batch; so rendering the next batches overlaps sending the last ones.
    """

    def __init__(self, services: Services, client: EgressClient | None = None) -> None:
        self.services = services
        self.client = client or webhooks.egress_client(services)
        self._purged = 0.0
        self._wake = asyncio.Event()

    async def run_once(self) -> int:
        """One round of both loops; returns how much work it did (rows + batches)."""
        work = await webhooks.batch_outbox(self.services)
        work += await webhooks.send_due(self.services, self.client)
        await self._purge()
        return work

    async def _purge(self) -> None:
        if time.monotonic() - self._purged > PURGE_EVERY_SECONDS:
            self._purged = time.monotonic()
            await webhooks.purge(self.services)

    async def _guarded(self, step: Any) -> int:
        try:
            return int(await step() or 0)
        except StoreUnavailable:  # logged once per outage by storage
            return 0
        except Exception:
            log.exception("webhook dispatcher round failed")
            return 0

    async def _batcher(self, stop: asyncio.Event) -> None:
        interval = self.services.settings.webhooks.flush_seconds
        while not stop.is_set():
            done = await self._guarded(lambda: webhooks.batch_outbox(self.services))
            if done:
                self._wake.set()
            await self._guarded(self._purge)
            # A full round means a backlog: go again at once (yielding to the loop).
            await sleep_unless_stopped(stop, 0 if done >= webhooks.OUTBOX_ROUND else interval)

    async def _sender(self, stop: asyncio.Event) -> None:
        interval = self.services.settings.webhooks.flush_seconds
        while not stop.is_set():
            self._wake.clear()
            await self._guarded(lambda: webhooks.send_due(self.services, self.client))
            # Woken by new batches; otherwise retries fall due with time.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    async def run(self, stop: asyncio.Event) -> None:
        stopper = asyncio.create_task(self._relay(stop))
        await asyncio.gather(self._batcher(stop), self._sender(stop))
        stopper.cancel()

    async def _relay(self, stop: asyncio.Event) -> None:
        """Wake the sender when stopping, so it notices at once."""
        await stop.wait()
        self._wake.set()
