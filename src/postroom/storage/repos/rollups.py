"""SQL of the stats consumer: its cursor, the facts it needs, and the rollup upserts.

The upsert is ``INSERT … ON CONFLICT (key) DO UPDATE SET n = n + excluded.n`` on both
backends (SQLite ≥ 3.24 and PostgreSQL speak the same clause), so counters only grow and
no row is read back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import Row, and_, bindparam, case, func, insert, null, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.domain.stats import COUNTERS
from postroom.storage.tables import (
    deliveries,
    event_cursors,
    events,
    messages,
    sending_domains,
    stats_daily,
)

KEY = ("account_id", "day", "sending_domain_id", "stream", "category", "provider")
CHUNK = 500  # ids per IN (…) list: far under both backends' parameter limits


class CursorMoved(RuntimeError):
    """Another consumer advanced the cursor first; this batch must not be applied."""


def has_cursor(conn: Connection, name: str) -> bool:
    query = select(event_cursors.c.name).where(event_cursors.c.name == name)
    return conn.execute(query).first() is not None


def ensure_cursor(conn: Connection, name: str, now: datetime) -> None:
    if has_cursor(conn, name):
        return
    conn.execute(insert(event_cursors).values(name=name, last_event_id=0, updated_at=now))


def cursor(conn: Connection, name: str) -> int:
    query = select(event_cursors.c.last_event_id).where(event_cursors.c.name == name)
    return int(conn.execute(query).scalar() or 0)


def advance(conn: Connection, name: str, old: int, new: int, now: datetime) -> None:
    """Move the cursor from ``old`` to ``new``, or raise CursorMoved (optimistic lock)."""
    result = conn.execute(
        update(event_cursors)
        .where(and_(event_cursors.c.name == name, event_cursors.c.last_event_id == old))
        .values(last_event_id=new, updated_at=now)
    )
    if result.rowcount != 1:
        raise CursorMoved(name)


def events_after(
    conn: Connection, after: int, limit: int, with_details: Sequence[str]
) -> list[Row[Any]]:
    """Events past ``after`` in id order; ``details`` only for the kinds named (the
    others' JSON is never decoded: most of the log is ``accepted`` events)."""
    details = case((events.c.kind.in_(list(with_details)), events.c.details), else_=null())
    query = (
        select(
            events.c.id,
            events.c.kind,
            events.c.message_id,
            events.c.created_at,
            details.label("details"),
        )
        .where(events.c.id > after)
        .order_by(events.c.id)
        .limit(limit)
    )
    return list(conn.execute(query))


def delivery_facts(conn: Connection, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """What a rollup key needs about each delivery (deleted ones are simply absent)."""
    wanted = list(dict.fromkeys(ids))
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), CHUNK):
        query = (
            select(
                deliveries.c.id,
                deliveries.c.account_id,
                deliveries.c.stream,
                deliveries.c.recipient_domain,
                deliveries.c.created_at,
                deliveries.c.mailbox_provider,
                deliveries.c.opens_count,
                deliveries.c.clicks_count,
                messages.c.sender,
                messages.c.category,
            )
            .join(messages, messages.c.id == deliveries.c.message_id)
            .where(deliveries.c.id.in_(wanted[start : start + CHUNK]))
        )
        found.update({r["id"]: dict(r) for r in conn.execute(query).mappings()})
    return found


def domain_ids(conn: Connection, account_ids: Iterable[int]) -> dict[tuple[int, str], int]:
    """(account, lower-case domain name) → sending domain id."""
    wanted = list(set(account_ids))
    if not wanted:
        return {}
    query = select(
        sending_domains.c.account_id, sending_domains.c.domain_name, sending_domains.c.id
    ).where(sending_domains.c.account_id.in_(wanted))
    return {(int(a), str(n).lower()): int(i) for a, n, i in conn.execute(query)}


def update_deliveries(conn: Connection, changes: Sequence[dict[str, Any]]) -> None:
    """Copy event facts onto deliveries: provider, IP and MX when known; count opens."""
    if not changes:
        return
    statement = (
        update(deliveries)
        .where(deliveries.c.id == bindparam("b_id"))
        .values(
            mailbox_provider=func.coalesce(bindparam("b_provider"), deliveries.c.mailbox_provider),
            sending_ip=func.coalesce(bindparam("b_ip"), deliveries.c.sending_ip),
            recipient_mx=func.coalesce(bindparam("b_mx"), deliveries.c.recipient_mx),
            opens_count=deliveries.c.opens_count + bindparam("b_opens"),
            clicks_count=deliveries.c.clicks_count + bindparam("b_clicks"),
        )
    )
    conn.execute(statement, list(changes))


def upsert_rollups(conn: Connection, deltas: dict[tuple[Any, ...], dict[str, int]]) -> None:
    """Add each key's counters to its ``stats_daily`` row, creating it when new."""
    if not deltas:
        return
    rows = [
        {**dict(zip(KEY, key, strict=True)), **{c: counts.get(c, 0) for c in COUNTERS}}
        for key, counts in deltas.items()
    ]
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(stats_daily)
    statement = statement.on_conflict_do_update(
        index_elements=list(KEY),
        set_={c: stats_daily.c[c] + statement.excluded[c] for c in COUNTERS},
    )
    conn.execute(statement, rows)


def sum_by(
    conn: Connection,
    account_id: int,
    start: date,
    end: date,
    group: str | None,
    where: Sequence[Any] = (),
) -> list[dict[str, Any]]:
    """Summed counters over days [start, end], optionally grouped by one key column."""
    sums = [func.sum(stats_daily.c[c]).label(c) for c in COUNTERS]
    conditions = [
        stats_daily.c.account_id == account_id,
        stats_daily.c.day >= start,
        stats_daily.c.day <= end,
        *where,
    ]
    if group is None:
        query = select(*sums).where(*conditions)
    else:
        column = stats_daily.c[group]
        query = (
            select(column.label("key"), *sums).where(*conditions).group_by(column).order_by(column)
        )
    return [dict(r) for r in conn.execute(query).mappings()]
