"""Accepted messages, their bodies, their per-recipient deliveries, and events.

:func:`insert_events` is the one way an event is recorded: with each event a webhook may
deliver it writes the webhook outbox row in the same transaction (the durable outbox of
:mod:`postroom.services.webhooks`), so no event can be recorded and then lost to webhooks.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from postroom.domain.webhooks import wants_outbox
from postroom.storage.bulk import insert_rows
from postroom.storage.tables import deliveries, events, message_bodies, messages, webhook_outbox


def insert_accepted(
    conn: Connection,
    message_rows: list[dict[str, Any]],
    body_rows: list[dict[str, Any]],
    delivery_rows: list[dict[str, Any]],
    event_rows: list[dict[str, Any]],
) -> None:
    """Insert everything one acceptance produced; the caller's transaction makes it atomic.

    A group commit calls this once for every acceptance queued together, so each table
    gets one bulk insert (COPY on PostgreSQL, storage/bulk.py)."""
    for table, rows in (
        (messages, message_rows),
        (message_bodies, body_rows),
        (deliveries, delivery_rows),
    ):
        insert_rows(conn, table, rows)
    insert_events(conn, event_rows)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append event rows (from :mod:`postroom.events.recorder`) and their outbox rows."""
    if not rows:
        return
    insert_rows(conn, events, rows)
    outbox = [
        {"event_id": r["event_id"], "account_id": r["account_id"], "created_at": r["created_at"]}
        for r in rows
        if wants_outbox(r["kind"], r["details"])
    ]
    insert_rows(conn, webhook_outbox, outbox)


def get_raw(conn: Connection, message_id: str) -> bytes | None:
    query = select(message_bodies.c.raw).where(message_bodies.c.message_id == message_id)
    raw = conn.execute(query).scalar()
    return bytes(raw) if raw is not None else None


def get_message(conn: Connection, message_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(messages).where(messages.c.id == message_id)).mappings().first()
    return dict(row) if row else None


def events_for(conn: Connection, delivery_id: str) -> list[dict[str, Any]]:
    query = select(events).where(events.c.message_id == delivery_id).order_by(events.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def deliveries_for(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    query = (
        select(deliveries)
        .where(deliveries.c.message_id == message_id)
        .order_by(deliveries.c.position)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def deliveries_by_ids(conn: Connection, delivery_ids: list[str]) -> list[dict[str, Any]]:
    """The delivery rows with these ids (the contract's message ids), in no order."""
    if not delivery_ids:
        return []
    query = select(deliveries).where(deliveries.c.id.in_(delivery_ids))
    return [dict(r) for r in conn.execute(query).mappings()]
