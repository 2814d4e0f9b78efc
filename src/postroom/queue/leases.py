"""Lease, complete, defer and shunt deliveries (see the package docstring)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.engine import Connection

from postroom.domain.deliveries import DeliveryState
from postroom.storage.tables import deliveries

_QUEUED = DeliveryState.QUEUED.value


def _due(now: datetime, max_leases: int) -> Any:
    return and_(
        deliveries.c.state == _QUEUED,
        deliveries.c.next_attempt_at <= now,
        deliveries.c.lease_count < max_leases,
        or_(deliveries.c.lease_expires_at.is_(None), deliveries.c.lease_expires_at <= now),
    )


def lease_due(
    conn: Connection,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    max_leases: int,
) -> list[dict[str, Any]]:
    """Lease up to ``limit`` due deliveries, transactional before bulk, oldest first."""
    candidates = (
        select(deliveries.c.id)
        .where(_due(now, max_leases))
        .order_by(deliveries.c.priority, deliveries.c.next_attempt_at)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(deliveries)
        .where(deliveries.c.id.in_(candidates.scalar_subquery()))
        .values(
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            lease_count=deliveries.c.lease_count + 1,
            updated_at=now,
        )
        .returning(*deliveries.c)
    )
    rows = [dict(r) for r in conn.execute(statement).mappings()]
    rows.sort(key=lambda r: (r["priority"], r["next_attempt_at"]))
    return rows


def complete(
    conn: Connection,
    ids: Sequence[str],
    state: DeliveryState,
    now: datetime,
    response: str | None = None,
) -> int:
    """Move leased deliveries to a final state; returns how many were still queued."""
    statement = (
        update(deliveries)
        .where(deliveries.c.id.in_(list(ids)), deliveries.c.state == _QUEUED)
        .values(
            state=state.value,
            attempts=deliveries.c.attempts + 1,
            lease_owner=None,
            lease_expires_at=None,
            last_response=response,
            updated_at=now,
        )
    )
    return conn.execute(statement).rowcount


def defer(
    conn: Connection, delivery_id: str, until: datetime, now: datetime, response: str
) -> None:
    """Give a delivery back to the queue, due again at ``until`` (a retry)."""
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.state == _QUEUED)
        .values(
            next_attempt_at=until,
            attempts=deliveries.c.attempts + 1,
            lease_count=0,
            lease_owner=None,
            lease_expires_at=None,
            last_response=response,
            updated_at=now,
        )
    )


def renew(conn: Connection, ids: Sequence[str], owner: str, until: datetime, now: datetime) -> int:
    """Extend the leases ``owner`` still holds on ``ids`` to ``until`` (a heartbeat).

    A round that outlives its lease (a slow receiver, a long throttle wait) must keep its
    deliveries, or another round would lease and send them a second time while the
    first is still sending. Rows completed, deferred or re-leased by someone else are
    left alone.
    """
    if not ids:
        return 0
    statement = (
        update(deliveries)
        .where(
            deliveries.c.id.in_(list(ids)),
            deliveries.c.state == _QUEUED,
            deliveries.c.lease_owner == owner,
        )
        .values(lease_expires_at=until, updated_at=now)
    )
    return conn.execute(statement).rowcount


def postpone(conn: Connection, delivery_id: str, until: datetime, now: datetime) -> None:
    """Give a leased delivery back unattempted (its site or IP had no room), due at ``until``.

    Unlike :func:`defer` this is not a retry: ``attempts`` is unchanged and the lease count
    is reset, since the lease ended normally rather than in a crash.
    """
    conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, deliveries.c.state == _QUEUED)
        .values(
            next_attempt_at=until,
            lease_count=0,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=now,
        )
    )


def shunt_crash_loops(conn: Connection, now: datetime, max_leases: int) -> list[dict[str, Any]]:
    """Shunt queued rows whose last lease expired after ``max_leases`` leases."""
    statement = (
        update(deliveries)
        .where(
            deliveries.c.state == _QUEUED,
            deliveries.c.lease_count >= max_leases,
            or_(deliveries.c.lease_expires_at.is_(None), deliveries.c.lease_expires_at <= now),
        )
        .values(state=DeliveryState.SHUNTED.value, lease_owner=None, updated_at=now)
        .returning(
            deliveries.c.id, deliveries.c.account_id, deliveries.c.stream, deliveries.c.recipient
        )
    )
    return [dict(r) for r in conn.execute(statement).mappings()]


def queue_depth(conn: Connection) -> dict[str, int]:
    """Queued deliveries per stream (for status output and metrics)."""
    from sqlalchemy import func

    query = (
        select(deliveries.c.stream, func.count())
        .where(deliveries.c.state == _QUEUED)
        .group_by(deliveries.c.stream)
    )
    return {stream: int(count) for stream, count in conn.execute(query)}


def still_queued(conn: Connection, ids: Sequence[str]) -> set[str]:
    """The ids among ``ids`` that are still queued (not completed by another round)."""
    if not ids:
        return set()
    query = select(deliveries.c.id).where(
        deliveries.c.id.in_(list(ids)), deliveries.c.state == _QUEUED
    )
    return {row[0] for row in conn.execute(query)}
