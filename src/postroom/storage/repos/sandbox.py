"""Sandbox projects, inboxes and captured messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import case, delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.storage import search as search_index
from postroom.storage.repos import insert_id
from postroom.storage.tables import (
    deliveries,
    inboxes,
    messages,
    projects,
    sandbox_forwards,
    sandbox_messages,
)


def insert_project(conn: Connection, **values: Any) -> int:
    return insert_id(conn, projects, values)


def insert_inbox(conn: Connection, **values: Any) -> int:
    return insert_id(conn, inboxes, values)


def default_inbox_id(conn: Connection, account_id: int) -> int | None:
    """The inbox that captures an account's mail in sandbox delivery mode."""
    query = (
        select(inboxes.c.id)
        .where(inboxes.c.account_id == account_id)
        .order_by(inboxes.c.is_default.desc(), inboxes.c.id)
        .limit(1)
    )
    found = conn.execute(query).scalar()
    return int(found) if found is not None else None


def get_inbox(conn: Connection, account_id: int, inbox_id: int) -> dict[str, Any] | None:
    query = select(inboxes).where(inboxes.c.id == inbox_id, inboxes.c.account_id == account_id)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_captured(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Insert captured messages, skipping any already captured (a re-leased delivery)."""
    if not rows:
        return
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(sandbox_messages).on_conflict_do_nothing(
        index_elements=["inbox_id", "message_id"]
    )
    # The conflict clause is the backstop for two workers racing on PostgreSQL; callers
    # filter out known captures first, so counts stay exact.
    conn.execute(statement, rows)


def insert_capture(conn: Connection, row: dict[str, Any]) -> int:
    """Insert one captured message (a sandbox send) and return the id it was given."""
    return insert_id(conn, sandbox_messages, row)


def record_forwards(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Record forwards of captured messages (``account_id``, ``inbox_id``, ``message_id``
    of the accepted copy, ``created_at``)."""
    if rows:
        conn.execute(sandbox_forwards.insert(), rows)


def forward_counts(conn: Connection, inbox_ids: list[int]) -> dict[int, int]:
    """``{inbox_id: forwards}`` for the given inboxes (absent means none)."""
    if not inbox_ids:
        return {}
    query = (
        select(sandbox_forwards.c.inbox_id, func.count())
        .where(sandbox_forwards.c.inbox_id.in_(inbox_ids))
        .group_by(sandbox_forwards.c.inbox_id)
    )
    return {int(i): int(n) for i, n in conn.execute(query)}


def forwards_since(conn: Connection, account_id: int, since: Any) -> int:
    """How many messages the account forwarded since ``since`` (billing usage)."""
    query = select(func.count()).where(
        sandbox_forwards.c.account_id == account_id, sandbox_forwards.c.created_at >= since
    )
    return int(conn.execute(query).scalar_one())


def bump_inbox(conn: Connection, inbox_id: int, count: int, now: Any) -> None:
    conn.execute(
        update(inboxes)
        .where(inboxes.c.id == inbox_id)
        .values(
            sent_messages_count=inboxes.c.sent_messages_count + count,
            last_message_sent_at=now,
            updated_at=now,
        )
    )


# --- Management API (spec §4.9): projects, inboxes and captured messages by account. ---

# Columns of a message listing: everything but the raw bytes, which only parts need.
_SUMMARY = [c for c in sandbox_messages.c if c.name != "raw"]
# What the captured message was rendered from: read from the accepted message's record
# (gone with it when retention deletes that record, and then None).
_TEMPLATE = [messages.c.template_id, messages.c.template_variables]
_WITH_MESSAGE = sandbox_messages.outerjoin(messages, messages.c.id == sandbox_messages.c.message_id)


def list_projects(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = select(projects).where(projects.c.account_id == account_id).order_by(projects.c.id)
    return [dict(row) for row in conn.execute(query).mappings()]


def get_project(conn: Connection, account_id: int, project_id: int) -> dict[str, Any] | None:
    query = select(projects).where(projects.c.id == project_id, projects.c.account_id == account_id)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def update_project(conn: Connection, project_id: int, **values: Any) -> None:
    conn.execute(update(projects).where(projects.c.id == project_id).values(**values))


def delete_project(conn: Connection, project_id: int) -> None:
    """Delete a project, its inboxes and their messages (children first, on every backend)."""
    inbox_ids = select(inboxes.c.id).where(inboxes.c.project_id == project_id)
    conn.execute(delete(sandbox_messages).where(sandbox_messages.c.inbox_id.in_(inbox_ids)))
    conn.execute(delete(sandbox_forwards).where(sandbox_forwards.c.inbox_id.in_(inbox_ids)))
    conn.execute(delete(inboxes).where(inboxes.c.project_id == project_id))
    conn.execute(delete(projects).where(projects.c.id == project_id))


def list_inboxes(
    conn: Connection, account_id: int, project_ids: list[int] | None = None
) -> list[dict[str, Any]]:
    """The account's inboxes (optionally only those of ``project_ids``), oldest first."""
    query = select(inboxes).where(inboxes.c.account_id == account_id).order_by(inboxes.c.id)
    if project_ids is not None:
        query = query.where(inboxes.c.project_id.in_(project_ids))
    return [dict(row) for row in conn.execute(query).mappings()]


def update_inbox(conn: Connection, inbox_id: int, **values: Any) -> None:
    conn.execute(update(inboxes).where(inboxes.c.id == inbox_id).values(**values))


def delete_inbox(conn: Connection, inbox_id: int) -> None:
    conn.execute(delete(sandbox_messages).where(sandbox_messages.c.inbox_id == inbox_id))
    conn.execute(delete(sandbox_forwards).where(sandbox_forwards.c.inbox_id == inbox_id))
    conn.execute(delete(inboxes).where(inboxes.c.id == inbox_id))


def email_username_taken(conn: Connection, email_username: str, except_inbox: int) -> bool:
    """Whether another inbox already receives mail at ``email_username``."""
    query = select(inboxes.c.id).where(
        inboxes.c.email_username == email_username, inboxes.c.id != except_inbox
    )
    return conn.execute(query.limit(1)).first() is not None


def message_counts(conn: Connection, inbox_ids: list[int]) -> dict[int, tuple[int, int]]:
    """``{inbox_id: (messages, unread)}`` for the given inboxes (absent means none)."""
    if not inbox_ids:
        return {}
    unread = func.sum(case((sandbox_messages.c.is_read.is_(False), 1), else_=0))
    query = (
        select(sandbox_messages.c.inbox_id, func.count(), unread)
        .where(sandbox_messages.c.inbox_id.in_(inbox_ids))
        .group_by(sandbox_messages.c.inbox_id)
    )
    return {int(i): (int(n), int(u or 0)) for i, n, u in conn.execute(query)}


def list_messages(
    conn: Connection,
    inbox_id: int,
    *,
    search: str | None,
    before_id: int | None,
    offset: int,
    limit: int,
    message_id: str | None = None,
) -> list[dict[str, Any]]:
    """One page of an inbox's messages, newest first (ids are assigned in insertion order).

    ``message_id`` keeps the capture of one accepted message: the id the sending API
    answered (one per recipient, a delivery) or the message's own.
    """
    query = select(*_SUMMARY, *_TEMPLATE).select_from(_WITH_MESSAGE)
    in_inbox = sandbox_messages.c.inbox_id == inbox_id
    if message_id:
        sent = select(deliveries.c.message_id).where(deliveries.c.id == message_id)
        query = query.where(
            or_(
                sandbox_messages.c.message_id == message_id, sandbox_messages.c.message_id.in_(sent)
            )
        )
    if search:
        fields = ("subject", "from_email", "from_name", "to_email", "to_name")
        query = query.where(
            or_(*(sandbox_messages.c[f].icontains(search, autoescape=True) for f in fields))
        )
        # The search index (storage/search.py) narrows the rows that LIKE then checks;
        # they are then read by id (+ 0: not by walking the inbox's index in id order).
        narrowed = search_index.narrowing(conn, "sandbox_messages", fields, [search])
        if narrowed is not None:
            query = query.where(narrowed)
            in_inbox = (sandbox_messages.c.inbox_id + 0) == inbox_id
    query = query.where(in_inbox)
    if before_id is not None:
        query = query.where(sandbox_messages.c.id < before_id)
    query = query.order_by(sandbox_messages.c.id.desc()).offset(offset).limit(limit)
    return [dict(row) for row in conn.execute(query).mappings()]


def get_message(
    conn: Connection, account_id: int, inbox_id: int, message_id: int, *, with_raw: bool = False
) -> dict[str, Any] | None:
    """A captured message, only if it is in ``inbox_id`` of ``account_id``."""
    columns = list(sandbox_messages.c) if with_raw else _SUMMARY
    query = (
        select(*columns, *_TEMPLATE)
        .select_from(_WITH_MESSAGE)
        .where(
            sandbox_messages.c.id == message_id,
            sandbox_messages.c.inbox_id == inbox_id,
            sandbox_messages.c.account_id == account_id,
        )
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def update_message(conn: Connection, message_id: int, **values: Any) -> None:
    conn.execute(
        update(sandbox_messages).where(sandbox_messages.c.id == message_id).values(**values)
    )


def store_blacklists_report(
    conn: Connection, message_id: int, report: dict[str, Any], now: Any
) -> None:
    """Store a captured message's blocklist report (not a change the user made: the
    message's ``updated_at`` stays)."""
    conn.execute(
        update(sandbox_messages)
        .where(sandbox_messages.c.id == message_id)
        .values(blacklists_report=report, blacklists_checked_at=now)
    )


def delete_message(conn: Connection, message_id: int) -> None:
    conn.execute(delete(sandbox_messages).where(sandbox_messages.c.id == message_id))


def delete_inbox_messages(conn: Connection, inbox_id: int) -> None:
    conn.execute(delete(sandbox_messages).where(sandbox_messages.c.inbox_id == inbox_id))


def mark_inbox_read(conn: Connection, inbox_id: int, now: Any) -> None:
    conn.execute(
        update(sandbox_messages)
        .where(sandbox_messages.c.inbox_id == inbox_id, sandbox_messages.c.is_read.is_(False))
        .values(is_read=True, updated_at=now)
    )


def inbox_by_username(conn: Connection, username: str) -> dict[str, Any] | None:
    """The inbox whose SMTP user name is ``username`` (unique across accounts)."""
    query = select(
        inboxes.c.id, inboxes.c.account_id, inboxes.c.password, inboxes.c.password_sealed
    ).where(inboxes.c.username == username)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def plaintext_passwords(conn: Connection) -> list[tuple[int, str]]:
    """``(inbox id, password)`` of inboxes whose password is not sealed yet."""
    query = select(inboxes.c.id, inboxes.c.password).where(
        inboxes.c.password_sealed.is_(None), inboxes.c.password.is_not(None)
    )
    return [(int(i), str(p)) for i, p in conn.execute(query)]


def seal_password(conn: Connection, inbox_id: int, sealed: bytes) -> None:
    """Store the sealed password and drop the plaintext in the same statement."""
    conn.execute(
        update(inboxes)
        .where(inboxes.c.id == inbox_id)
        .values(password=None, password_sealed=sealed)
    )
