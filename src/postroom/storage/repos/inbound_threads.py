"""Inbound threads, their Message-ID keys, answers sent from inboxes, and forward rules
(rows only; rules in :mod:`postroom.services.inbound_threads` and
:mod:`postroom.services.inbound_rules`). Queries are scoped by inbox, whose account the
services check first."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, or_, select, tuple_, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import insert_id
from postroom.storage.tables import (
    inbound_forward_rules,
    inbound_messages,
    inbound_sent,
    inbound_thread_keys,
    inbound_threads,
)

_LISTED = [c for c in inbound_messages.c if c.name != "raw"]

# --- threads ------------------------------------------------------------------------------


def thread(conn: Connection, inbox_id: int, thread_id: int) -> dict[str, Any] | None:
    query = select(inbound_threads).where(
        inbound_threads.c.inbox_id == inbox_id, inbound_threads.c.id == thread_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_thread(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, inbound_threads, row)


def touch_thread(conn: Connection, thread_id: int, at: datetime) -> None:
    """Move the thread's last activity forward to ``at`` (never back)."""
    conn.execute(
        update(inbound_threads)
        .where(inbound_threads.c.id == thread_id, inbound_threads.c.last_activity_at < at)
        .values(last_activity_at=at)
    )


def set_subject(conn: Connection, thread_id: int, subject: str) -> None:
    conn.execute(
        update(inbound_threads).where(inbound_threads.c.id == thread_id).values(subject=subject)
    )


def threads_by_keys(conn: Connection, inbox_id: int, keys: Sequence[str]) -> list[int]:
    """The threads (oldest first) of the inbox holding any of ``keys``."""
    if not keys:
        return []
    query = (
        select(inbound_thread_keys.c.thread_id)
        .where(inbound_thread_keys.c.inbox_id == inbox_id, inbound_thread_keys.c.rfc_id.in_(keys))
        .distinct()
    )
    return sorted(int(i) for i in conn.execute(query).scalars())


def known_keys(conn: Connection, inbox_id: int, keys: Sequence[str]) -> set[str]:
    if not keys:
        return set()
    query = select(inbound_thread_keys.c.rfc_id).where(
        inbound_thread_keys.c.inbox_id == inbox_id, inbound_thread_keys.c.rfc_id.in_(keys)
    )
    return {str(k) for k in conn.execute(query).scalars()}


def insert_keys(conn: Connection, inbox_id: int, thread_id: int, keys: Sequence[str]) -> None:
    if keys:
        conn.execute(
            inbound_thread_keys.insert(),
            [{"inbox_id": inbox_id, "thread_id": thread_id, "rfc_id": k} for k in keys],
        )


def recent_by_subject(
    conn: Connection, inbox_id: int, subject_key: str, since: datetime
) -> int | None:
    query = (
        select(inbound_threads.c.id)
        .where(
            inbound_threads.c.inbox_id == inbox_id,
            inbound_threads.c.subject_key == subject_key,
            inbound_threads.c.last_activity_at >= since,
        )
        .order_by(inbound_threads.c.last_activity_at.desc(), inbound_threads.c.id.desc())
        .limit(1)
    )
    found = conn.execute(query).scalar()
    return int(found) if found is not None else None


def _search(inbox_id: int, search: str | None) -> Any:
    where = inbound_threads.c.inbox_id == inbox_id
    if not search:
        return where
    pattern = "%" + search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    pattern += "%"
    senders = select(inbound_messages.c.thread_id).where(
        inbound_messages.c.inbox_id == inbox_id,
        func.lower(inbound_messages.c.mail_from).like(pattern, escape="\\"),
    )
    return and_(
        where,
        or_(
            func.lower(inbound_threads.c.subject).like(pattern, escape="\\"),
            inbound_threads.c.id.in_(senders),
        ),
    )


def thread_page(
    conn: Connection, inbox_id: int, after: dict[str, Any] | None, search: str | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """Threads most recently active first, after the cursor thread ``after``; the total."""
    where = _search(inbox_id, search)
    query = select(inbound_threads).where(where)
    if after is not None:
        query = query.where(
            tuple_(inbound_threads.c.last_activity_at, inbound_threads.c.id)
            < tuple_(after["last_activity_at"], after["id"])
        )
    query = query.order_by(
        inbound_threads.c.last_activity_at.desc(), inbound_threads.c.id.desc()
    ).limit(limit)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    total = conn.execute(select(func.count()).select_from(inbound_threads).where(where))
    return rows, int(total.scalar_one())


def received_in(conn: Connection, thread_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The received messages (without raw bytes) of these threads, oldest first."""
    if not thread_ids:
        return []
    query = (
        select(*_LISTED)
        .where(inbound_messages.c.thread_id.in_(thread_ids))
        .order_by(inbound_messages.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def raw_in(conn: Connection, thread_id: int) -> dict[int, bytes]:
    query = select(inbound_messages.c.id, inbound_messages.c.raw).where(
        inbound_messages.c.thread_id == thread_id
    )
    return {int(r.id): bytes(r.raw) for r in conn.execute(query)}


def sent_in(conn: Connection, thread_ids: Sequence[int]) -> list[dict[str, Any]]:
    if not thread_ids:
        return []
    query = (
        select(inbound_sent)
        .where(inbound_sent.c.thread_id.in_(thread_ids))
        .order_by(inbound_sent.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def delete_thread(conn: Connection, thread_id: int) -> None:
    conn.execute(delete(inbound_messages).where(inbound_messages.c.thread_id == thread_id))
    conn.execute(delete(inbound_sent).where(inbound_sent.c.thread_id == thread_id))
    conn.execute(delete(inbound_thread_keys).where(inbound_thread_keys.c.thread_id == thread_id))
    conn.execute(delete(inbound_threads).where(inbound_threads.c.id == thread_id))


def delete_empty_threads(conn: Connection, inbox_id: int) -> int:
    """Remove the inbox's threads left with no message (after deletes and trims)."""
    used = select(inbound_messages.c.thread_id).where(
        inbound_messages.c.inbox_id == inbox_id, inbound_messages.c.thread_id.is_not(None)
    )
    sent = select(inbound_sent.c.thread_id).where(
        inbound_sent.c.inbox_id == inbox_id, inbound_sent.c.thread_id.is_not(None)
    )
    empty = [
        int(i)
        for i in conn.execute(
            select(inbound_threads.c.id).where(
                inbound_threads.c.inbox_id == inbox_id,
                inbound_threads.c.id.not_in(used),
                inbound_threads.c.id.not_in(sent),
            )
        ).scalars()
    ]
    for thread_id in empty:
        delete_thread(conn, thread_id)
    return len(empty)


def delete_inbox_rows(conn: Connection, inbox_ids: Any) -> None:
    """Everything of these inboxes this module keeps (before the inboxes go)."""
    conn.execute(delete(inbound_sent).where(inbound_sent.c.inbox_id.in_(inbox_ids)))
    conn.execute(delete(inbound_thread_keys).where(inbound_thread_keys.c.inbox_id.in_(inbox_ids)))
    conn.execute(delete(inbound_threads).where(inbound_threads.c.inbox_id.in_(inbox_ids)))
    conn.execute(
        delete(inbound_forward_rules).where(inbound_forward_rules.c.inbox_id.in_(inbox_ids))
    )


# --- messages: thread and forwards --------------------------------------------------------


def set_message_thread(conn: Connection, message_id: int, thread_id: int) -> None:
    conn.execute(
        update(inbound_messages)
        .where(inbound_messages.c.id == message_id)
        .values(thread_id=thread_id)
    )


def set_forwards(conn: Connection, message_id: int, forwards: list[dict[str, Any]]) -> None:
    conn.execute(
        update(inbound_messages)
        .where(inbound_messages.c.id == message_id)
        .values(forwards=forwards)
    )


def insert_sent(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, inbound_sent, row)


# --- forward rules ------------------------------------------------------------------------


def rules_of(conn: Connection, inbox_id: int) -> list[dict[str, Any]]:
    query = (
        select(inbound_forward_rules)
        .where(inbound_forward_rules.c.inbox_id == inbox_id)
        .order_by(inbound_forward_rules.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def rule(conn: Connection, inbox_id: int, rule_id: int) -> dict[str, Any] | None:
    query = select(inbound_forward_rules).where(
        inbound_forward_rules.c.inbox_id == inbox_id, inbound_forward_rules.c.id == rule_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_rule(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, inbound_forward_rules, row)


def update_rule(conn: Connection, rule_id: int, values: dict[str, Any]) -> None:
    conn.execute(
        update(inbound_forward_rules).where(inbound_forward_rules.c.id == rule_id).values(**values)
    )


def delete_rule(conn: Connection, rule_id: int) -> None:
    conn.execute(delete(inbound_forward_rules).where(inbound_forward_rules.c.id == rule_id))
