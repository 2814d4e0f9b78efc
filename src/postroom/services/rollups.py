"""The stats consumer: folds the event log into daily rollups, a bounded batch at a time.

Nothing on the send path waits for it. The scheduler (and tests, directly) call
:func:`consume`, which reads events past a stored cursor, looks up each one's delivery,
and in one transaction per batch adds to ``stats_daily`` rows keyed by (account, day the
message was sent, sending domain, stream, category, mailbox provider), copies the facts
email-log filters need onto the delivery (provider, sending IP, MX host, open and click
counts), and advances the cursor. The cursor moves only if nobody else moved it
(optimistic lock), so two schedulers never count an event twice.

The mailbox provider is the one the MX engine recorded on the delivery's events (read
from the recipient's MX set); mail delivered without an MX lookup (sandbox) falls back to
:func:`postroom.domain.providers.provider_of` on the recipient domain.

Opens and clicks by people are counted once per delivery in the contract's counters
(unique, as its rates are) and every time in Postroom's totals; machines' opens and
clicks (``machine`` in the event, :mod:`postroom.domain.machines`) only in their own.
Events younger than ``stats_settle_seconds`` wait for the next round: on PostgreSQL an
event id taken by a transaction that commits late must not be skipped by the cursor.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Row
from sqlalchemy.engine import Connection

from postroom.domain.events import EventKind
from postroom.domain.providers import provider_of
from postroom.services import Services
from postroom.storage.repos import rollups as repo

log = logging.getLogger("postroom.stats")

CURSOR = "stats"

# Which counter each event kind adds to; kinds absent here (accepted, domain and alert
# events) only move the cursor.
COUNTER_OF = {
    EventKind.DELIVERY.value: "delivered",
    EventKind.BOUNCE.value: "bounced",
    EventKind.SOFT_BOUNCE.value: "soft_bounced",
    EventKind.REJECT.value: "rejected",
    EventKind.SUSPENSION.value: "rejected",
    EventKind.OPEN.value: "opened",
    EventKind.CLICK.value: "clicked",
    EventKind.SPAM.value: "spam",
    EventKind.UNSUBSCRIBE.value: "unsubscribed",
}
# Events whose details name the MX the delivery went to.
_ROUTED = frozenset({"delivery", "bounce", "soft_bounce"})
# Events whose details say who opened or clicked (postroom.services.hits).
_ENGAGED = {EventKind.OPEN.value: "opens", EventKind.CLICK.value: "clicks"}


@dataclass(slots=True)
class _Batch:
    """One batch folded in memory, ready for its transaction."""

    first: int
    last: int
    deltas: dict[tuple[Any, ...], dict[str, int]] = field(default_factory=dict)
    changes: dict[str, dict[str, Any]] = field(default_factory=dict)
    counted: int = 0


async def consume(services: Services, max_batches: int | None = None) -> int:
    """Fold pending events into rollups; returns how many events were counted."""
    settings = services.settings.insights
    now = services.clock.now()
    if not await services.db.read(lambda conn: repo.has_cursor(conn, CURSOR)):
        await services.db.write(lambda conn: repo.ensure_cursor(conn, CURSOR, now))
    total = 0
    for _ in range(max_batches or settings.stats_batches):
        horizon = services.clock.now() - timedelta(seconds=settings.stats_settle_seconds)
        batch = await services.db.read(partial(_fold, limit=settings.stats_batch, horizon=horizon))
        if batch is None:
            break
        try:
            await services.db.write(partial(_apply, batch=batch, now=now))
        except repo.CursorMoved:
            log.info("stats cursor moved by another consumer; yielding this round")
            break
        total += batch.counted
    return total


def _fold(conn: Connection, limit: int, horizon: datetime) -> _Batch | None:
    start = repo.cursor(conn, CURSOR)
    rows = repo.events_after(conn, start, limit, (*_ROUTED, *_ENGAGED))
    settled = []
    for row in rows:
        # Only what is counted waits to settle: an event of another kind (an audit entry
        # written by a process whose clock runs ahead, say) must not hold the cursor.
        if row.kind in COUNTER_OF and row.created_at > horizon:
            break
        settled.append(row)
    if not settled:
        return None
    counted = [r for r in settled if r.kind in COUNTER_OF and r.message_id]
    facts = repo.delivery_facts(conn, (r.message_id for r in counted))
    domains = repo.domain_ids(conn, (f["account_id"] for f in facts.values()))
    batch = _Batch(first=start, last=int(settled[-1].id))
    for row in counted:
        fact = facts.get(row.message_id)
        if fact is not None:
            _count(batch, row, fact, domains)
    return batch


def _count(
    batch: _Batch, row: Row[Any], fact: dict[str, Any], domains: dict[tuple[int, str], int]
) -> None:
    kind = row.kind
    details = row.details if isinstance(row.details, dict) else {}
    change = batch.changes.setdefault(
        fact["id"],
        {"b_id": fact["id"], "b_provider": None, "b_ip": None, "b_mx": None},
    )
    change.setdefault("b_opens", 0)
    change.setdefault("b_clicks", 0)
    if kind in _ROUTED:
        change["b_provider"] = details.get("email_service_provider") or change["b_provider"]
        change["b_ip"] = details.get("sending_ip") or change["b_ip"]
        change["b_mx"] = details.get("recipient_mx") or change["b_mx"]
    counters = _counters(kind, details, fact, change)
    if not counters:
        return
    provider = (
        change["b_provider"] or fact["mailbox_provider"] or provider_of(fact["recipient_domain"])
    )
    if change["b_provider"] is None and fact["mailbox_provider"] is None:
        change["b_provider"] = provider
    sender_domain = str(fact["sender"]).rpartition("@")[2].lower()
    key = (
        int(fact["account_id"]),
        fact["created_at"].date(),
        domains.get((int(fact["account_id"]), sender_domain), 0),
        fact["stream"],
        fact["category"] or "",
        provider,
    )
    counts = batch.deltas.setdefault(key, {})
    for counter in counters:
        counts[counter] = counts.get(counter, 0) + 1
    batch.counted += 1


def _counters(
    kind: str, details: dict[str, Any], fact: dict[str, Any], change: dict[str, Any]
) -> list[str]:
    """The rollup counters one event adds to.

    Opens and clicks say who made them (``machine``, ``unique``): a machine's counts
    apart; a person's counts in the total, and in the contract's unique count when it was
    the delivery's first. Older events without those details count once per delivery.
    """
    counter = COUNTER_OF[kind]
    total = _ENGAGED.get(kind)
    if total is None:
        return [counter]
    stored, pending = ("opens_count", "b_opens") if kind == "open" else ("clicks_count", "b_clicks")
    if "machine" in details:
        if details["machine"] is not None:
            return [f"machine_{total}"]
        change[pending] += 1
        return [counter, total] if details.get("unique") else [total]
    first = not _not_first(fact, change, stored, pending)
    return [counter, total] if first else [total]


def _not_first(fact: dict[str, Any], change: dict[str, Any], stored: str, pending: str) -> bool:
    """Count the open (click); True when it is not the delivery's first (not unique)."""
    seen = int(fact[stored] or 0) + int(change[pending])
    change[pending] += 1
    return seen > 0


def _apply(conn: Connection, batch: _Batch, now: datetime) -> None:
    repo.advance(conn, CURSOR, batch.first, batch.last, now)
    repo.update_deliveries(conn, list(batch.changes.values()))
    repo.upsert_rollups(conn, batch.deltas)
