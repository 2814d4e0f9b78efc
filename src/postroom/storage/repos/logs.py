"""SQL of the email-logs API: one row per delivery (the contract's message), filtered.

:func:`conditions` turns a :class:`~postroom.domain.logfilters.LogQuery` into WHERE
clauses over ``deliveries`` joined to ``messages``; pages are keyset-paginated on
(``created_at``, ``id``) descending, which ``ix_deliveries_account_created`` serves.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, func, not_, or_, select, true
from sqlalchemy.engine import Connection
from sqlalchemy.sql import Select

from postroom.domain.logfilters import Filter, LogQuery
from postroom.storage import search
from postroom.storage.tables import deliveries, events, message_bodies, messages

d, m = deliveries.c, messages.c

# The contract's status → the delivery states it covers.
STATES_OF_STATUS = {
    "delivered": ("delivered",),
    "enqueued": ("queued",),
    "opted_out": ("suppressed", "opted_out"),
    "not_delivered": ("bounced", "failed", "rejected", "shunted"),
}
STATUS_OF_STATE = {state: status for status, states in STATES_OF_STATUS.items() for state in states}

COLUMNS = (
    d.id,
    d.state,
    d.recipient,
    d.created_at,
    d.stream,
    d.opens_count,
    d.clicks_count,
    d.mailbox_provider,
    d.sending_ip,
    d.recipient_mx,
    d.last_response,
    d.message_id.label("message_pk"),
    m.sender,
    m.subject,
    m.rfc_message_id,
    m.client_ip,
    m.category,
    m.custom_variables,
    m.template_uuid,
    m.template_id,
    m.template_variables,
)

# Filter field → the column it reads (fields handled specially are absent).
COLUMN_OF: dict[str, Any] = {
    "to": d.recipient,
    "from": m.sender,
    "subject": m.subject,
    "client_ip": m.client_ip,
    "sending_ip": d.sending_ip,
    "recipient_mx": d.recipient_mx,
    "email_service_provider_response": d.last_response,
    "email_service_provider": d.mailbox_provider,
    "category": m.category,
    "sending_stream": d.stream,
    "opens_count": d.opens_count,
    "clicks_count": d.clicks_count,
}


def base(account_id: int, where: list[ColumnElement[bool]] | None = None) -> Select[Any]:
    return (
        select(*COLUMNS)
        .select_from(deliveries.join(messages, messages.c.id == deliveries.c.message_id))
        .where(account_filter(account_id, where or []))
    )


def account_filter(account_id: int, where: list[ColumnElement[bool]]) -> ColumnElement[bool]:
    """The account's deliveries. Once a search index narrowed ``where`` to a known few
    rows (storage/search.py), ``+ 0`` keeps SQLite from walking the (account, created_at)
    index, which it prefers for the page's order and which would read every delivery of
    the account for a rare term: it reads the few rows by rowid and sorts them."""
    if any(search.is_narrowing(w) for w in where):
        return (d.account_id + 0) == account_id
    return d.account_id == account_id


# Text fields whose "contains" a search index serves (storage/search.py): the searched
# table and column of each.
SEARCHED: dict[str, tuple[str, str]] = {
    "to": ("deliveries", "recipient"),
    "from": ("messages", "sender"),
    "subject": ("messages", "subject"),
}


def conditions(
    conn: Connection, query: LogQuery, domain_names: dict[int, str]
) -> list[ColumnElement[bool]]:
    """WHERE clauses for ``query``; ``domain_names`` maps the account's domain ids.

    A case-insensitive "contains" or "equal" on a searched field also gets the search
    index's narrowing condition (on SQLite; PostgreSQL's index serves the LIKE itself):
    the field's own condition stays, so what matches is the same either way.
    """
    where: list[ColumnElement[bool]] = []
    if query.sent_after is not None:
        where.append(d.created_at >= query.sent_after)
    if query.sent_before is not None:
        where.append(d.created_at <= query.sent_before)
    for f in query.filters:
        where.append(_condition(f, domain_names))
        if f.field in SEARCHED and f.operator in ("ci_contain", "ci_equal"):
            table, column = SEARCHED[f.field]
            narrowed = search.narrowing(conn, table, [column], [str(v) for v in f.values])
            if narrowed is not None:
                where.append(narrowed)
    return where


def _condition(f: Filter, domain_names: dict[int, str]) -> ColumnElement[bool]:
    if f.field == "status":
        states = [s for v in f.values for s in STATES_OF_STATUS[str(v)]]
        return d.state.not_in(states) if f.negative else d.state.in_(states)
    if f.field == "events":
        found = exists().where(events.c.message_id == d.id, events.c.kind.in_(f.values))
        return not_(found) if f.negative else found
    if f.field == "sending_domain_id":
        names = [domain_names[int(v)] for v in f.values if int(v) in domain_names]
        matched = or_(false(), *(func.lower(m.sender).endswith("@" + n.lower()) for n in names))
        return not_(matched) if f.negative else matched
    if f.operator in ("empty", "not_empty"):
        blank = or_(m.subject.is_(None), m.subject == "")
        return blank if f.operator == "empty" else not_(blank)
    column = COLUMN_OF[f.field]
    matches = [_match(column, f.operator, v) for v in f.values]
    if f.negative:
        # A missing value (NULL) is "not equal" to anything, not unknown.
        return or_(column.is_(None), and_(true(), *(not_(x) for x in matches)))
    return or_(false(), *matches)


def _match(column: Any, operator: str, value: str | int) -> ColumnElement[bool]:
    """The positive form of ``operator`` (the caller negates ``not_`` operators)."""
    if operator in ("greater_than", "less_than"):
        return column > value if operator == "greater_than" else column < value  # type: ignore[no-any-return]
    if operator in ("equal", "not_equal"):
        return column == value  # type: ignore[no-any-return]
    if operator in ("contain", "not_contain"):
        return column.contains(str(value), autoescape=True)  # type: ignore[no-any-return]
    lowered = func.lower(column)
    if operator in ("ci_equal", "ci_not_equal"):
        return lowered == str(value).lower()
    return lowered.contains(str(value).lower(), autoescape=True)


def page(
    conn: Connection,
    account_id: int,
    where: list[ColumnElement[bool]],
    after: tuple[datetime, str] | None,
    limit: int,
) -> list[dict[str, Any]]:
    """Up to ``limit`` rows, newest first, strictly after the ``after`` position."""
    query = base(account_id, where).where(*where)
    if after is not None:
        at, last_id = after
        query = query.where(or_(d.created_at < at, and_(d.created_at == at, d.id < last_id)))
    query = query.order_by(d.created_at.desc(), d.id.desc()).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


# Filter fields read from ``messages``; without them a count needs no join (20 ms instead
# of a second over a million deliveries on SQLite).
MESSAGE_FIELDS = frozenset({"from", "subject", "client_ip", "category", "sending_domain_id"})


def count(
    conn: Connection, account_id: int, where: list[ColumnElement[bool]], query: LogQuery
) -> int:
    """How many messages match (``total_count``), ignoring the cursor."""
    source: Any = deliveries
    if any(f.field in MESSAGE_FIELDS for f in query.filters):
        source = deliveries.join(messages, messages.c.id == deliveries.c.message_id)
    counted = (
        select(func.count()).select_from(source).where(account_filter(account_id, where), *where)
    )
    return int(conn.execute(counted).scalar() or 0)


def position(conn: Connection, account_id: int, delivery_id: str) -> tuple[datetime, str] | None:
    """Where ``delivery_id`` sits in the order (its send time and id), in this account."""
    row = conn.execute(
        select(d.created_at, d.id).where(d.account_id == account_id, d.id == delivery_id)
    ).first()
    return (row[0], row[1]) if row else None


def one(conn: Connection, account_id: int, delivery_id: str) -> dict[str, Any] | None:
    row = conn.execute(base(account_id).where(d.id == delivery_id)).mappings().first()
    return dict(row) if row else None


def message_events(conn: Connection, delivery_id: str) -> list[dict[str, Any]]:
    query = (
        select(events.c.kind, events.c.created_at, events.c.details)
        .where(events.c.message_id == delivery_id)
        .order_by(events.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def body_of(conn: Connection, account_id: int, delivery_id: str) -> tuple[bool, bytes | None]:
    """(the delivery exists in this account, its raw body or None once retention took it)."""
    row = conn.execute(
        select(d.message_id).where(d.account_id == account_id, d.id == delivery_id)
    ).first()
    if row is None:
        return False, None
    raw = conn.execute(
        select(message_bodies.c.raw).where(message_bodies.c.message_id == row[0])
    ).scalar()
    return True, bytes(raw) if raw is not None else None
