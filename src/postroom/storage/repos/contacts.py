"""Contacts, their custom fields, lists and list memberships, imports, exports, events.

Rows only: the rules (what a field value may be, who is "unsubscribed") are in
:mod:`postroom.services.contacts`. Every query is scoped by account, so another
tenant's object is simply not found.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import among, insert_id
from postroom.storage.tables import (
    contact_events,
    contact_exports,
    contact_fields,
    contact_imports,
    contact_list_members,
    contact_lists,
    contacts,
)

# --- fields -------------------------------------------------------------------------------


def fields_of(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (
        select(contact_fields)
        .where(contact_fields.c.account_id == account_id)
        .order_by(contact_fields.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def field(conn: Connection, account_id: int, field_id: int) -> dict[str, Any] | None:
    query = select(contact_fields).where(
        contact_fields.c.account_id == account_id, contact_fields.c.id == field_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_field(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, contact_fields, row)


def update_field(conn: Connection, field_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(contact_fields).where(contact_fields.c.id == field_id).values(**values))


def delete_field(conn: Connection, field_id: int) -> None:
    conn.execute(delete(contact_fields).where(contact_fields.c.id == field_id))


# --- lists --------------------------------------------------------------------------------


def lists_of(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (
        select(contact_lists)
        .where(contact_lists.c.account_id == account_id)
        .order_by(contact_lists.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def contact_list(conn: Connection, account_id: int, list_id: int) -> dict[str, Any] | None:
    query = select(contact_lists).where(
        contact_lists.c.account_id == account_id, contact_lists.c.id == list_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def existing_list_ids(conn: Connection, account_id: int, ids: Iterable[int]) -> set[int]:
    wanted = sorted(set(ids))
    if not wanted:
        return set()
    query = select(contact_lists.c.id).where(
        contact_lists.c.account_id == account_id, contact_lists.c.id.in_(wanted)
    )
    return {int(i) for i in conn.execute(query).scalars()}


def insert_list(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, contact_lists, row)


def rename_list(conn: Connection, list_id: int, name: str) -> None:
    conn.execute(update(contact_lists).where(contact_lists.c.id == list_id).values(name=name))


def delete_list(conn: Connection, list_id: int) -> None:
    conn.execute(delete(contact_list_members).where(contact_list_members.c.list_id == list_id))
    conn.execute(delete(contact_lists).where(contact_lists.c.id == list_id))


def members(conn: Connection, account_id: int, list_ids: Sequence[int]) -> list[dict[str, Any]]:
    """The contacts in any of the lists (each once), oldest first."""
    inside = select(contact_list_members.c.contact_id).where(
        contact_list_members.c.list_id.in_(sorted(set(list_ids)))
    )
    query = (
        select(contacts)
        .where(contacts.c.account_id == account_id, contacts.c.id.in_(inside))
        .order_by(contacts.c.created_at, contacts.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# --- contacts -----------------------------------------------------------------------------


def by_id(conn: Connection, account_id: int, contact_id: str) -> dict[str, Any] | None:
    query = select(contacts).where(contacts.c.account_id == account_id, contacts.c.id == contact_id)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def by_email(conn: Connection, account_id: int, email: str) -> dict[str, Any] | None:
    query = select(contacts).where(contacts.c.account_id == account_id, contacts.c.email == email)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def by_emails(
    conn: Connection, account_id: int, emails: Iterable[str]
) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    wanted = sorted(set(emails))
    for start in range(0, len(wanted), 500):  # bound the IN list
        query = select(contacts).where(
            contacts.c.account_id == account_id, contacts.c.email.in_(wanted[start : start + 500])
        )
        found.update({str(r["email"]): dict(r) for r in conn.execute(query).mappings()})
    return found


def count(conn: Connection, account_id: int) -> int:
    query = select(func.count()).select_from(contacts).where(contacts.c.account_id == account_id)
    return int(conn.execute(query).scalar_one())


def all_of(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = select(contacts).where(contacts.c.account_id == account_id).order_by(contacts.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def insert_contact(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(contacts).values(**row))


def update_contact(conn: Connection, contact_id: str, values: dict[str, Any]) -> None:
    conn.execute(update(contacts).where(contacts.c.id == contact_id).values(**values))


def delete_contact(conn: Connection, contact_id: str) -> None:
    conn.execute(
        delete(contact_list_members).where(contact_list_members.c.contact_id == contact_id)
    )
    conn.execute(delete(contact_events).where(contact_events.c.contact_id == contact_id))
    conn.execute(delete(contacts).where(contacts.c.id == contact_id))


def unsubscribed_emails(conn: Connection, account_id: int, emails: Iterable[str]) -> set[str]:
    """Which of the (lower-case) addresses are contacts of the account who unsubscribed."""
    wanted = sorted(set(emails))
    if not wanted:
        return set()
    query = select(contacts.c.email).where(
        contacts.c.account_id == account_id,
        among(conn, contacts.c.email, wanted),
        contacts.c.unsubscribed.is_(True),
    )
    return {str(e) for e in conn.execute(query).scalars()}


# --- memberships --------------------------------------------------------------------------


def list_ids_of(conn: Connection, contact_ids: Sequence[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {c: [] for c in contact_ids}
    if not contact_ids:
        return found
    for start in range(0, len(contact_ids), 500):
        query = (
            select(contact_list_members.c.contact_id, contact_list_members.c.list_id)
            .where(contact_list_members.c.contact_id.in_(list(contact_ids[start : start + 500])))
            .order_by(contact_list_members.c.list_id)
        )
        for contact_id, list_id in conn.execute(query):
            found[str(contact_id)].append(int(list_id))
    return found


def add_memberships(conn: Connection, contact_id: str, list_ids: Iterable[int]) -> None:
    current = set(list_ids_of(conn, [contact_id])[contact_id])
    rows = [{"list_id": i, "contact_id": contact_id} for i in sorted(set(list_ids) - current)]
    if rows:
        conn.execute(insert(contact_list_members), rows)


def remove_memberships(conn: Connection, contact_id: str, list_ids: Iterable[int]) -> None:
    ids = sorted(set(list_ids))
    if ids:
        conn.execute(
            delete(contact_list_members).where(
                contact_list_members.c.contact_id == contact_id,
                contact_list_members.c.list_id.in_(ids),
            )
        )


# --- imports, exports, events -------------------------------------------------------------


def insert_import(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, contact_imports, row)


def update_import(conn: Connection, import_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(contact_imports).where(contact_imports.c.id == import_id).values(**values))


def get_import(conn: Connection, account_id: int, import_id: int) -> dict[str, Any] | None:
    query = select(contact_imports).where(
        contact_imports.c.account_id == account_id, contact_imports.c.id == import_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_export(conn: Connection, row: dict[str, Any]) -> int:
    return insert_id(conn, contact_exports, row)


def update_export(conn: Connection, export_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(contact_exports).where(contact_exports.c.id == export_id).values(**values))


def get_export(conn: Connection, account_id: int, export_id: int) -> dict[str, Any] | None:
    query = select(contact_exports).where(
        contact_exports.c.account_id == account_id, contact_exports.c.id == export_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def insert_event(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(insert(contact_events).values(**row))


def events_of(conn: Connection, contact_id: str) -> list[dict[str, Any]]:
    query = (
        select(contact_events)
        .where(contact_events.c.contact_id == contact_id)
        .order_by(contact_events.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]
