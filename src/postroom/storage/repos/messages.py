"""Accepted messages, their bodies, their per-recipient deliveries, and events."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from postroom.storage.tables import deliveries, events, message_bodies, messages


def insert_accepted(
    conn: Connection,
    message_rows: list[dict[str, Any]],
    body_rows: list[dict[str, Any]],
    delivery_rows: list[dict[str, Any]],
    event_rows: list[dict[str, Any]],
) -> None:
    """Insert everything one acceptance produced; the caller's transaction makes it atomic."""
    for table, rows in (
        (messages, message_rows),
        (message_bodies, body_rows),
        (deliveries, delivery_rows),
        (events, event_rows),
    ):
        if rows:
            conn.execute(table.insert(), rows)


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(events.insert(), rows)


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
