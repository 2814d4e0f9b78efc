"""SQL of tracking: tracked links, what a tracking hit needs to know, first opens and
clicks, and the tracking opt-outs list (spec §4.10)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.storage.tables import (
    deliveries,
    messages,
    sending_domains,
    tracked_links,
    tracking_opt_outs,
)

CHUNK = 500


# --- links --------------------------------------------------------------------------------


def save_links(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert (message, position, url) rows; ones already there are left as they are
    (a re-leased delivery round writes the same rows again)."""
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(tracked_links).on_conflict_do_nothing(
        index_elements=["message_id", "position"]
    )
    conn.execute(statement, list(rows))


# --- hits ---------------------------------------------------------------------------------

# Every hit on a link nobody clicked before reads these facts, so the statement is built
# once: constructing a select per call cost more than running it (bench/tracking.py).
_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.message_id,
    deliveries.c.account_id,
    deliveries.c.stream,
    deliveries.c.recipient,
    deliveries.c.state,
    deliveries.c.updated_at,
    messages.c.sender,
)
_DELIVERY = (
    select(*_DELIVERY_COLUMNS)
    .join(messages, messages.c.id == deliveries.c.message_id)
    .where(deliveries.c.id == bindparam("delivery_id"))
)
_LINK_URL = (
    select(tracked_links.c.url)
    .where(
        tracked_links.c.message_id == deliveries.c.message_id,
        tracked_links.c.position == bindparam("position"),
    )
    .scalar_subquery()
)
_LINK_COUNT = (
    select(func.count())
    .where(tracked_links.c.message_id == deliveries.c.message_id)
    .scalar_subquery()
)
_CLICKED = (
    select(*_DELIVERY_COLUMNS, _LINK_URL.label("url"), _LINK_COUNT.label("links"))
    .join(messages, messages.c.id == deliveries.c.message_id)
    .where(deliveries.c.id == bindparam("delivery_id"))
)


def delivery(conn: Connection, delivery_id: str) -> dict[str, Any] | None:
    """One delivery with the facts of its message a tracking hit records."""
    row = conn.execute(_DELIVERY, {"delivery_id": delivery_id}).mappings().first()
    return dict(row) if row else None


def clicked(conn: Connection, delivery_id: str, position: int) -> dict[str, Any] | None:
    """What a click needs in one round trip: the delivery's facts (as :func:`delivery`),
    ``url``, the link's original URL (None: no such link), and ``links``, how many
    tracked links its message has."""
    params = {"delivery_id": delivery_id, "position": position}
    row = conn.execute(_CLICKED, params).mappings().first()
    return dict(row) if row else None


def mark_first(conn: Connection, delivery_id: str, column: str, now: datetime) -> bool:
    """Set ``opened_at``/``clicked_at`` unless set: True when this call set it (the first)."""
    target = deliveries.c[column]
    result = conn.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, target.is_(None))
        .values({column: now})
    )
    return result.rowcount == 1


# --- domains ------------------------------------------------------------------------------


def domains_named(conn: Connection, pairs: Iterable[tuple[int, str]]) -> list[dict[str, Any]]:
    """Sending domains by (account, stored name)."""
    wanted = list(set(pairs))
    found: list[dict[str, Any]] = []
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        query = select(sending_domains).where(
            tuple_(sending_domains.c.account_id, sending_domains.c.domain_name).in_(chunk)
        )
        found += [dict(r) for r in conn.execute(query).mappings()]
    return found


# --- opt-outs -----------------------------------------------------------------------------


def opted_out(conn: Connection, pairs: Iterable[tuple[int, str]]) -> set[tuple[int, str]]:
    """The (domain id, lower-case email) pairs on the tracking opt-out list."""
    wanted = list(set(pairs))
    found: set[tuple[int, str]] = set()
    for start in range(0, len(wanted), CHUNK):
        chunk = wanted[start : start + CHUNK]
        query = select(tracking_opt_outs.c.domain_id, tracking_opt_outs.c.email).where(
            tuple_(tracking_opt_outs.c.domain_id, tracking_opt_outs.c.email).in_(chunk)
        )
        found |= {(int(d), str(e)) for d, e in conn.execute(query)}
    return found


def _shown(account_id: int) -> Any:
    return (
        select(tracking_opt_outs, sending_domains.c.domain_name)
        .join(sending_domains, sending_domains.c.id == tracking_opt_outs.c.domain_id)
        .where(tracking_opt_outs.c.account_id == account_id)
    )


def opt_out(conn: Connection, account_id: int, opt_out_id: str) -> dict[str, Any] | None:
    query = _shown(account_id).where(tracking_opt_outs.c.id == opt_out_id)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def find_opt_out(conn: Connection, domain_id: int, email: str) -> dict[str, Any] | None:
    query = select(tracking_opt_outs.c.id, tracking_opt_outs.c.account_id).where(
        tracking_opt_outs.c.domain_id == domain_id, tracking_opt_outs.c.email == email
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def add_opt_out(conn: Connection, row: dict[str, Any]) -> bool:
    """Insert unless the (domain, email) pair is there; True when inserted."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(tracking_opt_outs).on_conflict_do_nothing(
        index_elements=["domain_id", "email"]
    )
    return conn.execute(statement, [row]).rowcount == 1


def remove_opt_out(conn: Connection, opt_out_id: str) -> None:
    conn.execute(tracking_opt_outs.delete().where(tracking_opt_outs.c.id == opt_out_id))


def opt_out_page(
    conn: Connection,
    account_id: int,
    *,
    email: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Entries oldest first, after the (created_at, id) cursor."""
    c = tracking_opt_outs.c
    query = _shown(account_id)
    if email is not None:
        query = query.where(c.email == email)
    if start is not None:
        query = query.where(c.created_at >= start)
    if end is not None:
        query = query.where(c.created_at <= end)
    if after is not None:
        query = query.where(
            or_(c.created_at > after[0], and_(c.created_at == after[0], c.id > after[1]))
        )
    query = query.order_by(c.created_at, c.id).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]
