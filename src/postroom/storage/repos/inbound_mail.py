"""Inbound folders, inboxes and received messages (rows only; rules in
:mod:`postroom.services.inbound_mail`). Every query is scoped by account."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import inbound_threads as thread_repo
from postroom.storage.repos import insert_id
from postroom.storage.tables import inbound_folders, inbound_inboxes, inbound_messages

# --- folders ------------------------------------------------------------------------------


def folders_of(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (
        select(inbound_folders)
        .where(inbound_folders.c.account_id == account_id)
        .order_by(inbound_folders.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def folder(conn: Connection, account_id: int, folder_id: int) -> dict[str, Any] | None:
    query = select(inbound_folders).where(
        inbound_folders.c.account_id == account_id, inbound_folders.c.id == folder_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_folder(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, inbound_folders, row)


def rename_folder(conn: Connection, folder_id: int, name: str) -> None:
    conn.execute(update(inbound_folders).where(inbound_folders.c.id == folder_id).values(name=name))


def delete_folder(conn: Connection, folder_id: int) -> None:
    inboxes = select(inbound_inboxes.c.id).where(inbound_inboxes.c.folder_id == folder_id)
    conn.execute(delete(inbound_messages).where(inbound_messages.c.inbox_id.in_(inboxes)))
    thread_repo.delete_inbox_rows(conn, inboxes)
    conn.execute(delete(inbound_inboxes).where(inbound_inboxes.c.folder_id == folder_id))
    conn.execute(delete(inbound_folders).where(inbound_folders.c.id == folder_id))


# --- inboxes ------------------------------------------------------------------------------


def inboxes_of(conn: Connection, folder_id: int) -> list[dict[str, Any]]:
    query = (
        select(inbound_inboxes)
        .where(inbound_inboxes.c.folder_id == folder_id)
        .order_by(inbound_inboxes.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def inbox(conn: Connection, account_id: int, inbox_id: int) -> dict[str, Any] | None:
    query = select(inbound_inboxes).where(
        inbound_inboxes.c.account_id == account_id, inbound_inboxes.c.id == inbox_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def inbox_by_local_part(conn: Connection, local_part: str) -> dict[str, Any] | None:
    query = select(inbound_inboxes).where(inbound_inboxes.c.local_part == local_part)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_inbox(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, inbound_inboxes, row)


def rename_inbox(conn: Connection, inbox_id: int, name: str) -> None:
    conn.execute(update(inbound_inboxes).where(inbound_inboxes.c.id == inbox_id).values(name=name))


def delete_inbox(conn: Connection, inbox_id: int) -> None:
    conn.execute(delete(inbound_messages).where(inbound_messages.c.inbox_id == inbox_id))
    thread_repo.delete_inbox_rows(conn, [inbox_id])
    conn.execute(delete(inbound_inboxes).where(inbound_inboxes.c.id == inbox_id))


# --- messages -----------------------------------------------------------------------------

_LISTED = [c for c in inbound_messages.c if c.name != "raw"]


def insert_message(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, inbound_messages, row)


def trim(conn: Connection, inbox_id: int, keep: int) -> int:
    """Remove the inbox's oldest messages past the newest ``keep``; how many went."""
    newest = (
        select(inbound_messages.c.id)
        .where(inbound_messages.c.inbox_id == inbox_id)
        .order_by(inbound_messages.c.id.desc())
        .limit(keep)
    )
    kept = {int(i) for i in conn.execute(newest).scalars()}
    if len(kept) < keep:
        return 0
    result = conn.execute(
        delete(inbound_messages).where(
            inbound_messages.c.inbox_id == inbox_id, inbound_messages.c.id < min(kept)
        )
    )
    return int(result.rowcount or 0)


def page(
    conn: Connection, inbox_id: int, before: int | None, limit: int
) -> tuple[list[dict[str, Any]], int]:
    """The newest messages (older than ``before``), up to ``limit``, and the total."""
    query = select(*_LISTED).where(inbound_messages.c.inbox_id == inbox_id)
    if before is not None:
        query = query.where(inbound_messages.c.id < before)
    query = query.order_by(inbound_messages.c.id.desc()).limit(limit)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    total = conn.execute(
        select(func.count())
        .select_from(inbound_messages)
        .where(inbound_messages.c.inbox_id == inbox_id)
    ).scalar_one()
    return rows, int(total)


def message(conn: Connection, inbox_id: int, message_id: int) -> dict[str, Any] | None:
    query = select(inbound_messages).where(
        inbound_messages.c.inbox_id == inbox_id, inbound_messages.c.id == message_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def delete_message(conn: Connection, message_id: int) -> None:
    conn.execute(delete(inbound_messages).where(inbound_messages.c.id == message_id))
