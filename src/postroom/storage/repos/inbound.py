"""Deliveries as inbound bounces and reports see them: found by id or by message."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from postroom.domain.deliveries import DeliveryState
from postroom.storage.tables import deliveries, messages


def delivery(conn: Connection, delivery_id: str) -> dict[str, Any] | None:
    row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).mappings().first()
    return dict(row) if row else None


def deliveries_of_message(conn: Connection, message_id: str) -> list[dict[str, Any]]:
    query = select(deliveries).where(deliveries.c.message_id == message_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def rfc_message_id(conn: Connection, message_id: str) -> str | None:
    """The Message-ID header the message was sent with, or None for no such message."""
    query = select(messages.c.rfc_message_id).where(messages.c.id == message_id)
    found = conn.execute(query).scalar()
    return str(found) if found is not None else None


def mark_bounced(conn: Connection, delivery_id: str, response: str, now: datetime) -> None:
    """An accepted (or still queued) delivery that bounced afterwards: ``bounced`` now."""
    conn.execute(
        update(deliveries)
        .where(
            deliveries.c.id == delivery_id,
            deliveries.c.state.in_([DeliveryState.DELIVERED.value, DeliveryState.QUEUED.value]),
        )
        .values(
            state=DeliveryState.BOUNCED.value,
            last_response=response[:2000],
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )
