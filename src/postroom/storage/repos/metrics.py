"""Aggregates for the Prometheus scrape: a few GROUP BY queries, portable to both backends.

Each function is one statement; :func:`snapshot` runs them on one read connection so a
scrape sees the queue and the event log as of (roughly) one moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from postroom.domain.deliveries import DeliveryState
from postroom.storage.tables import deliveries, events


@dataclass(frozen=True)
class MetricsRows:
    """What one scrape reads from the database."""

    # (stream, state) -> deliveries currently in that state.
    deliveries: dict[tuple[str, str], int]
    # stream -> created_at of the oldest queued delivery (streams with none are absent).
    oldest_queued: dict[str, datetime]
    # event kind -> rows in the (append-only) events table.
    events: dict[str, int]


def deliveries_by_state(conn: Connection) -> dict[tuple[str, str], int]:
    """Deliveries per (stream, state)."""
    query = select(deliveries.c.stream, deliveries.c.state, func.count()).group_by(
        deliveries.c.stream, deliveries.c.state
    )
    return {(stream, state): int(count) for stream, state, count in conn.execute(query)}


def oldest_queued(conn: Connection) -> dict[str, datetime]:
    """The ``created_at`` of the oldest queued delivery, per stream."""
    query = (
        select(deliveries.c.stream, func.min(deliveries.c.created_at))
        .where(deliveries.c.state == DeliveryState.QUEUED.value)
        .group_by(deliveries.c.stream)
    )
    return {stream: oldest for stream, oldest in conn.execute(query) if oldest is not None}


def events_by_kind(conn: Connection) -> dict[str, int]:
    """Events per kind, over the whole table."""
    query = select(events.c.kind, func.count()).group_by(events.c.kind)
    return {kind: int(count) for kind, count in conn.execute(query)}


def snapshot(conn: Connection) -> MetricsRows:
    """Every aggregate a scrape needs, read on one connection."""
    return MetricsRows(
        deliveries=deliveries_by_state(conn),
        oldest_queued=oldest_queued(conn),
        events=events_by_kind(conn),
    )
