"""SQL of retention: find an account's oldest finished messages, delete them in batches.

A message is eligible only when none of its deliveries is still queued (the worker
needs the body to send it) and every event of its deliveries has been folded into the
stats rollups (ids at or below the stats cursor), so retention never loses a count.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, exists, not_, select
from sqlalchemy.engine import Connection

from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.storage.tables import (
    accounts,
    deliveries,
    events,
    message_bodies,
    messages,
    tracked_links,
    webhook_outbox,
)


def policies(conn: Connection) -> list[dict[str, Any]]:
    query = select(accounts.c.id, accounts.c.log_retention_days, accounts.c.body_retention_days)
    return [dict(r) for r in conn.execute(query).mappings()]


def _finished(cursor: int) -> list[Any]:
    queued = exists().where(
        deliveries.c.message_id == messages.c.id,
        deliveries.c.state == DeliveryState.QUEUED.value,
    )
    unfolded = exists().where(
        deliveries.c.message_id == messages.c.id,
        events.c.message_id == deliveries.c.id,
        events.c.id > cursor,
    )
    return [not_(queued), not_(unfolded)]


def old_messages(
    conn: Connection,
    account_id: int,
    before: datetime,
    cursor: int,
    limit: int,
    with_body: bool = False,
) -> list[str]:
    """Ids of up to ``limit`` finished messages created before ``before``, oldest first."""
    query = select(messages.c.id).where(
        messages.c.account_id == account_id,
        messages.c.created_at < before,
        *_finished(cursor),
    )
    if with_body:
        query = query.where(exists().where(message_bodies.c.message_id == messages.c.id))
    query = query.order_by(messages.c.created_at).limit(limit)
    return [str(i) for i in conn.execute(query).scalars()]


def delete_bodies(conn: Connection, ids: Sequence[str]) -> int:
    result = conn.execute(delete(message_bodies).where(message_bodies.c.message_id.in_(ids)))
    return int(result.rowcount or 0)


def delete_messages(conn: Connection, ids: Sequence[str]) -> int:
    """Delete the messages, their bodies, tracked links, deliveries and events (explicitly,
    in order): their tracking links answer 404 from then on."""
    delivery_ids = select(deliveries.c.id).where(deliveries.c.message_id.in_(ids))
    conn.execute(delete(events).where(events.c.message_id.in_(delivery_ids)))
    conn.execute(delete(message_bodies).where(message_bodies.c.message_id.in_(ids)))
    conn.execute(delete(tracked_links).where(tracked_links.c.message_id.in_(ids)))
    conn.execute(delete(deliveries).where(deliveries.c.message_id.in_(ids)))
    result = conn.execute(delete(messages).where(messages.c.id.in_(ids)))
    return int(result.rowcount or 0)


DOMAIN_HISTORY = [
    kind.value
    for kind in (
        EventKind.DOMAIN_VERIFIED,
        EventKind.DOMAIN_FAILED,
        EventKind.DKIM_PUBLISHED,
        EventKind.DKIM_ACTIVATED,
        EventKind.DKIM_RETIRING,
        EventKind.DKIM_RETIRED,
    )
]


def old_loose_events(
    conn: Connection, account_id: int, before: datetime, cursor: int, limit: int
) -> list[int]:
    """Row ids of up to ``limit`` events created before ``before`` that belong to no
    message still kept: domain, alert, quota, suppression and audit events, and events
    whose message is gone. Only events the stats have folded and that no webhook outbox
    row still waits for qualify. A domain's lifecycle events (verified, failed, DKIM
    keys published, activated, retired) stay: they are its history, a few per key
    rotation, and the "verification lost" alert reads ``domain_failed``."""
    of_kept_delivery = exists().where(deliveries.c.id == events.c.message_id)
    awaited = exists().where(webhook_outbox.c.event_id == events.c.event_id)
    query = (
        select(events.c.id)
        .where(
            events.c.account_id == account_id,
            events.c.created_at < before,
            events.c.id <= cursor,
            not_(of_kept_delivery),
            not_(awaited),
            events.c.kind.not_in(DOMAIN_HISTORY),
        )
        .order_by(events.c.created_at)
        .limit(limit)
    )
    return [int(i) for i in conn.execute(query).scalars()]


def delete_events(conn: Connection, ids: Sequence[int]) -> int:
    result = conn.execute(delete(events).where(events.c.id.in_(ids)))
    return int(result.rowcount or 0)


def set_policy(
    conn: Connection, account_id: int, log_days: int | None, body_days: int | None
) -> None:
    conn.execute(
        accounts.update()
        .where(accounts.c.id == account_id)
        .values(log_retention_days=log_days, body_retention_days=body_days)
    )


def get_policy(conn: Connection, account_id: int) -> dict[str, Any] | None:
    query = select(accounts.c.log_retention_days, accounts.c.body_retention_days).where(
        accounts.c.id == account_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None
