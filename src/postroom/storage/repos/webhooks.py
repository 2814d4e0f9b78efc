"""Webhooks, their outbox, batches and delivery log: the queries of services/webhooks.py.

Lookups by id take the account too, so another tenant's webhook reads as absent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import insert_id
from postroom.storage.tables import (
    deliveries,
    events,
    messages,
    sending_domains,
    webhook_attempts,
    webhook_batches,
    webhook_outbox,
    webhooks,
)

PENDING, DELIVERED = "pending", "delivered"

# --- webhooks ---------------------------------------------------------------------------


def insert_webhook(conn: Connection, **values: Any) -> int:
    return insert_id(conn, webhooks, values)


def get_webhook(conn: Connection, account_id: int, webhook_id: int) -> dict[str, Any] | None:
    query = select(webhooks).where(webhooks.c.id == webhook_id, webhooks.c.account_id == account_id)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def find_by_id(conn: Connection, webhook_id: int) -> dict[str, Any] | None:
    """A webhook by id alone: for operators (the CLI) and the dispatcher, never for API."""
    row = conn.execute(select(webhooks).where(webhooks.c.id == webhook_id)).mappings().first()
    return dict(row) if row else None


def list_webhooks(conn: Connection, account_id: int | None = None) -> list[dict[str, Any]]:
    query = select(webhooks).order_by(webhooks.c.id)
    if account_id is not None:
        query = query.where(webhooks.c.account_id == account_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def update_webhook(conn: Connection, webhook_id: int, **values: Any) -> None:
    conn.execute(update(webhooks).where(webhooks.c.id == webhook_id).values(**values))


def delete_webhook(conn: Connection, webhook_id: int) -> None:
    # Children first: the same on every backend, whatever its foreign-key enforcement.
    conn.execute(delete(webhook_attempts).where(webhook_attempts.c.webhook_id == webhook_id))
    conn.execute(delete(webhook_batches).where(webhook_batches.c.webhook_id == webhook_id))
    conn.execute(delete(webhooks).where(webhooks.c.id == webhook_id))


def enabled_for(conn: Connection, account_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The active webhooks (paused ones included: they keep collecting) of the accounts."""
    if not account_ids:
        return []
    query = (
        select(webhooks)
        .where(webhooks.c.account_id.in_(list(account_ids)), webhooks.c.active.is_(True))
        .order_by(webhooks.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# --- outbox -----------------------------------------------------------------------------


def take_outbox(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """The oldest outbox rows with their events and their messages' facts, in one query
    (``outbox_id``; the event columns are None when the event is gone, e.g. by retention).
    Locked on PostgreSQL, skipping rows another dispatcher holds."""
    joined = (
        webhook_outbox.outerjoin(events, events.c.event_id == webhook_outbox.c.event_id)
        .outerjoin(deliveries, deliveries.c.id == events.c.message_id)
        .outerjoin(messages, messages.c.id == deliveries.c.message_id)
    )
    query = (
        select(webhook_outbox.c.id.label("outbox_id"), *_FACTS)
        .select_from(joined)
        .order_by(webhook_outbox.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(of=webhook_outbox, skip_locked=True)
    return [dict(r) for r in conn.execute(query).mappings()]


def delete_outbox(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(delete(webhook_outbox).where(webhook_outbox.c.id.in_(list(ids))))


def outbox_depth(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(webhook_outbox)).scalar() or 0)


_FACTS = (
    events,
    messages.c.category,
    messages.c.custom_variables,
    messages.c.sender,
)


def _with_facts() -> Any:
    joined = events.outerjoin(deliveries, deliveries.c.id == events.c.message_id).outerjoin(
        messages, messages.c.id == deliveries.c.message_id
    )
    return select(*_FACTS).select_from(joined)


def events_between(
    conn: Connection,
    account_id: int,
    kinds: Sequence[str],
    since: datetime,
    until: datetime,
    after_id: int,
    limit: int,
) -> list[dict[str, Any]]:
    """An account's events of ``kinds`` recorded in [since, until), by id after ``after_id``."""
    query = (
        _with_facts()
        .where(
            events.c.account_id == account_id,
            events.c.kind.in_(list(kinds)),
            events.c.created_at >= since,
            events.c.created_at < until,
            events.c.id > after_id,
        )
        .order_by(events.c.id)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def domain_ids(conn: Connection, pairs: set[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """``(account_id, domain name)`` → sending domain id, for the pairs that exist."""
    if not pairs:
        return {}
    names = {name for _, name in pairs}
    query = select(
        sending_domains.c.account_id, sending_domains.c.ascii_name, sending_domains.c.id
    ).where(sending_domains.c.ascii_name.in_(list(names)))
    found = {(int(a), str(n)): int(i) for a, n, i in conn.execute(query)}
    return {pair: found[pair] for pair in pairs if pair in found}


# --- batches ----------------------------------------------------------------------------


def insert_batches(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(webhook_batches.insert(), rows)


def due_heads(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """The oldest pending batch of each active, unpaused webhook, when it is due.

    One batch per webhook at a time keeps each receiver's events in order.
    """
    heads = (
        select(func.min(webhook_batches.c.seq).label("seq"))
        .where(webhook_batches.c.state == PENDING)
        .group_by(webhook_batches.c.webhook_id)
        .subquery()
    )
    query = (
        select(webhook_batches)
        .join(heads, heads.c.seq == webhook_batches.c.seq)
        .join(webhooks, webhooks.c.id == webhook_batches.c.webhook_id)
        .where(
            webhooks.c.active.is_(True),
            webhooks.c.paused_at.is_(None),
            webhook_batches.c.next_attempt_at <= now,
            or_(webhook_batches.c.lease_until.is_(None), webhook_batches.c.lease_until <= now),
        )
        .order_by(webhook_batches.c.next_attempt_at, webhook_batches.c.seq)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def next_due(conn: Connection, webhook_id: int, now: datetime) -> dict[str, Any] | None:
    """The webhook's oldest pending batch, when it is due and not leased and the webhook
    is still active and unpaused."""
    query = (
        select(webhook_batches)
        .join(webhooks, webhooks.c.id == webhook_batches.c.webhook_id)
        .where(
            webhook_batches.c.webhook_id == webhook_id,
            webhook_batches.c.state == PENDING,
            webhooks.c.active.is_(True),
            webhooks.c.paused_at.is_(None),
        )
        .order_by(webhook_batches.c.seq)
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    if row is None or row["next_attempt_at"] > now:
        return None
    if row["lease_until"] is not None and row["lease_until"] > now:
        return None
    return dict(row)


def lease_batch(conn: Connection, seq: int, now: datetime, until: datetime) -> bool:
    """Claim a pending batch until ``until``; False when another dispatcher holds it."""
    result = conn.execute(
        update(webhook_batches)
        .where(
            webhook_batches.c.seq == seq,
            webhook_batches.c.state == PENDING,
            or_(webhook_batches.c.lease_until.is_(None), webhook_batches.c.lease_until <= now),
        )
        .values(lease_until=until)
    )
    return bool(result.rowcount == 1)


def batch_delivered(conn: Connection, seq: int, attempts: int, now: datetime) -> None:
    conn.execute(
        update(webhook_batches)
        .where(webhook_batches.c.seq == seq)
        .values(state=DELIVERED, attempts=attempts, delivered_at=now, lease_until=None, body=None)
    )


def batch_failed(
    conn: Connection, seq: int, attempts: int, next_at: datetime, first_failed_at: datetime
) -> None:
    conn.execute(
        update(webhook_batches)
        .where(webhook_batches.c.seq == seq)
        .values(
            attempts=attempts,
            next_attempt_at=next_at,
            first_failed_at=first_failed_at,
            lease_until=None,
        )
    )


def resume_batches(conn: Connection, webhook_id: int, now: datetime) -> None:
    """After a resume: pending batches are due now, with a fresh retry window."""
    conn.execute(
        update(webhook_batches)
        .where(webhook_batches.c.webhook_id == webhook_id, webhook_batches.c.state == PENDING)
        .values(next_attempt_at=now, first_failed_at=None, lease_until=None)
    )


def pending_count(conn: Connection, webhook_id: int) -> tuple[int, int]:
    """(pending batches, pending events) of a webhook."""
    query = select(func.count(), func.coalesce(func.sum(webhook_batches.c.event_count), 0)).where(
        webhook_batches.c.webhook_id == webhook_id, webhook_batches.c.state == PENDING
    )
    batches, count = conn.execute(query).one()
    return int(batches), int(count)


def purge_delivered(conn: Connection, before: datetime, limit: int) -> int:
    """Forget delivered batches and log entries older than ``before`` (a bounded batch)."""
    old = (
        select(webhook_batches.c.seq)
        .where(webhook_batches.c.state == DELIVERED, webhook_batches.c.delivered_at < before)
        .limit(limit)
    )
    gone = conn.execute(delete(webhook_batches).where(webhook_batches.c.seq.in_(old))).rowcount
    old_log = select(webhook_attempts.c.id).where(webhook_attempts.c.started_at < before)
    gone += conn.execute(
        delete(webhook_attempts).where(webhook_attempts.c.id.in_(old_log.limit(limit)))
    ).rowcount
    return int(gone)


# --- delivery log -----------------------------------------------------------------------


def insert_attempt(conn: Connection, **values: Any) -> None:
    conn.execute(webhook_attempts.insert().values(**values))


def attempts(
    conn: Connection,
    webhook_id: int,
    *,
    limit: int,
    before_id: int | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    """A webhook's log, newest first (``before_id`` pages back)."""
    conditions = [webhook_attempts.c.webhook_id == webhook_id]
    if before_id is not None:
        conditions.append(webhook_attempts.c.id < before_id)
    if since is not None:
        conditions.append(webhook_attempts.c.started_at >= since)
    query = (
        select(webhook_attempts)
        .where(and_(*conditions))
        .order_by(webhook_attempts.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]
