"""Suppression entries, their audit log, and mailbox-full strikes.

Entries are unique per (account, email, stream, domain): adding one that exists is a
no-op (``ON CONFLICT DO NOTHING`` on both backends), so a duplicate bounce or a
concurrent worker never fails the transaction it shares with a delivery round.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.storage.repos import among
from postroom.storage.tables import (
    bounce_strikes,
    deliveries,
    events,
    messages,
    suppression_log,
    suppressions,
)


def _insert(conn: Connection, table: Any) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


# The facts of the message come from remote text (a DSN's Remote-MTA, an MX's reply):
# cut to their columns, so that one over-long field never fails the transaction.
_FACT_LENGTHS = {
    column.name: length
    for column in suppressions.columns
    if column.name.startswith("message_") and (length := getattr(column.type, "length", None))
}


def add(conn: Connection, row: dict[str, Any], actor: str, now: datetime) -> bool:
    """Insert ``row`` unless its scope already has an entry; log it. True when added."""
    row = {
        key: value[: _FACT_LENGTHS[key]]
        if key in _FACT_LENGTHS and isinstance(value, str)
        else value
        for key, value in row.items()
    }
    statement = _insert(conn, suppressions).values(**row).on_conflict_do_nothing()
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT … ON CONFLICT here.
    if conn.execute(statement.returning(suppressions.c.id)).first() is None:
        return False
    log(conn, row, "added", actor, now)
    return True


def log(conn: Connection, row: dict[str, Any], action: str, actor: str, now: datetime) -> None:
    conn.execute(
        suppression_log.insert().values(
            account_id=row["account_id"],
            suppression_id=row["id"],
            email=row["email"],
            action=action,
            type=row["type"],
            sending_stream=row["sending_stream"],
            origin=row["origin"],
            actor=actor[:255],
            created_at=now,
        )
    )


def find_scope(
    conn: Connection, account_id: int, email: str, stream: str, domain_name: str
) -> dict[str, Any] | None:
    query = select(suppressions).where(
        suppressions.c.account_id == account_id,
        suppressions.c.email == email,
        suppressions.c.sending_stream == stream,
        suppressions.c.domain_name == domain_name,
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def get(conn: Connection, account_id: int, suppression_id: str) -> dict[str, Any] | None:
    query = select(suppressions).where(
        suppressions.c.account_id == account_id, suppressions.c.id == suppression_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def remove(conn: Connection, row: dict[str, Any], action: str, actor: str, now: datetime) -> None:
    conn.execute(delete(suppressions).where(suppressions.c.id == row["id"]))
    log(conn, row, action, actor, now)


def active_for(
    conn: Connection, pairs: Iterable[tuple[int, str]], now: datetime
) -> list[dict[str, Any]]:
    """Unexpired entries of the (account, email) pairs: one indexed query per account
    (a group commit nearly always holds one account)."""
    by_account: dict[int, set[str]] = {}
    for account_id, email in pairs:
        by_account.setdefault(account_id, set()).add(email)
    found: list[dict[str, Any]] = []
    for account_id, emails in sorted(by_account.items()):
        query = select(
            suppressions.c.account_id,
            suppressions.c.email,
            suppressions.c.type,
            suppressions.c.sending_stream,
            suppressions.c.domain_name,
        ).where(
            suppressions.c.account_id == account_id,
            among(conn, suppressions.c.email, sorted(emails)),
            or_(suppressions.c.expires_at.is_(None), suppressions.c.expires_at > now),
        )
        found += [dict(r) for r in conn.execute(query).mappings()]
    return found


def page(
    conn: Connection,
    account_id: int,
    *,
    email: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Entries oldest first, after the cursor (created_at, id) when given."""
    query = select(suppressions).where(suppressions.c.account_id == account_id)
    if email is not None:
        query = query.where(suppressions.c.email == email)
    if start is not None:
        query = query.where(suppressions.c.created_at >= start)
    if end is not None:
        query = query.where(suppressions.c.created_at <= end)
    if after is not None:
        stamp, last = after
        query = query.where(
            or_(
                suppressions.c.created_at > stamp,
                and_(suppressions.c.created_at == stamp, suppressions.c.id > last),
            )
        )
    query = query.order_by(suppressions.c.created_at, suppressions.c.id).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def expired(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    query = (
        select(suppressions)
        .where(suppressions.c.expires_at.is_not(None), suppressions.c.expires_at <= now)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def history(conn: Connection, account_id: int, email: str, limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` log entries of one address, oldest first."""
    query = (
        select(suppression_log)
        .where(suppression_log.c.account_id == account_id, suppression_log.c.email == email)
        .order_by(suppression_log.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in reversed(conn.execute(query).mappings().all())]


def message_facts(conn: Connection, delivery_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Delivery id → the facts of its message a suppression entry records."""
    if not delivery_ids:
        return {}
    query = (
        select(
            deliveries.c.id,
            deliveries.c.stream,
            deliveries.c.recipient,
            messages.c.sender,
            messages.c.subject,
            messages.c.category,
            messages.c.client_ip,
            messages.c.created_at,
        )
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.id.in_(set(delivery_ids)))
    )
    return {r["id"]: dict(r) for r in conn.execute(query).mappings()}


def strike(
    conn: Connection,
    account_id: int,
    email: str,
    stream: str,
    window_start: datetime,
    now: datetime,
) -> int:
    """Count one mailbox-full bounce; a window older than ``window_start`` starts over."""
    key = (
        (bounce_strikes.c.account_id == account_id)
        & (bounce_strikes.c.email == email)
        & (bounce_strikes.c.sending_stream == stream)
    )
    row = conn.execute(select(bounce_strikes).where(key)).mappings().first()
    if row is None:
        conn.execute(
            _insert(conn, bounce_strikes)
            .values(
                account_id=account_id,
                email=email,
                sending_stream=stream,
                strikes=1,
                window_start=now,
            )
            .on_conflict_do_nothing()
        )
        return 1
    if row["window_start"] < window_start:
        conn.execute(update(bounce_strikes).where(key).values(strikes=1, window_start=now))
        return 1
    conn.execute(update(bounce_strikes).where(key).values(strikes=bounce_strikes.c.strikes + 1))
    return int(row["strikes"]) + 1


def clear_strikes(conn: Connection, account_id: int, email: str, stream: str) -> None:
    conn.execute(
        delete(bounce_strikes).where(
            bounce_strikes.c.account_id == account_id,
            bounce_strikes.c.email == email,
            bounce_strikes.c.sending_stream == stream,
        )
    )


def last_delivery_details(conn: Connection, delivery_id: str) -> dict[str, Any]:
    """The details of the delivery's last ``delivery`` event (sending IP, MX), if any."""
    query = (
        select(events.c.details)
        .where(events.c.message_id == delivery_id, events.c.kind == "delivery")
        .order_by(events.c.id.desc())
        .limit(1)
    )
    details = conn.execute(query).scalar()
    return dict(details) if isinstance(details, dict) else {}


def count(conn: Connection, account_id: int) -> int:
    query = select(func.count()).select_from(suppressions)
    return int(conn.execute(query.where(suppressions.c.account_id == account_id)).scalar() or 0)
