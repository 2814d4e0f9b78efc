"""Sending domains, their DKIM keys, and the events their lifecycle records.

The queries behind :mod:`postroom.services.domains`. Lookups by id take the account too,
so another tenant's domain reads as absent; updates and deletes go by id once the
service has checked ownership.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, exists, not_, or_, select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import insert_id, messages
from postroom.storage.tables import dkim_keys, sending_domains

# --- domains ----------------------------------------------------------------------------


def insert_domain(conn: Connection, **values: Any) -> int:
    return insert_id(conn, sending_domains, values)


def get_domain(conn: Connection, account_id: int, domain_id: int) -> dict[str, Any] | None:
    query = select(sending_domains).where(
        sending_domains.c.id == domain_id, sending_domains.c.account_id == account_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def list_domains(conn: Connection, account_id: int | None = None) -> list[dict[str, Any]]:
    """An account's domains (every account's when ``account_id`` is None), oldest first."""
    query = select(sending_domains).order_by(sending_domains.c.id)
    if account_id is not None:
        query = query.where(sending_domains.c.account_id == account_id)
    return [dict(row) for row in conn.execute(query).mappings()]


def find_by_name(
    conn: Connection, names: Iterable[str], account_id: int | None = None
) -> list[dict[str, Any]]:
    """Domains whose stored name is one of ``names`` (in one account, or in any)."""
    query = select(sending_domains).where(sending_domains.c.domain_name.in_(list(names)))
    if account_id is not None:
        query = query.where(sending_domains.c.account_id == account_id)
    return [dict(row) for row in conn.execute(query.order_by(sending_domains.c.id)).mappings()]


def find_by_id(conn: Connection, domain_id: int) -> dict[str, Any] | None:
    """A domain by id alone: for operators (the CLI), never for API callers."""
    row = conn.execute(select(sending_domains).where(sending_domains.c.id == domain_id))
    found = row.mappings().first()
    return dict(found) if found else None


def name_taken(conn: Connection, ascii_name: str) -> bool:
    """Whether any account has the domain (one owner per domain, installation-wide)."""
    query = select(sending_domains.c.id).where(sending_domains.c.ascii_name == ascii_name)
    return conn.execute(query.limit(1)).first() is not None


def update_domain(conn: Connection, domain_id: int, **values: Any) -> None:
    conn.execute(update(sending_domains).where(sending_domains.c.id == domain_id).values(**values))


def delete_domain(conn: Connection, domain_id: int) -> None:
    # Children first: the same on every backend, whatever its foreign-key enforcement.
    conn.execute(delete(dkim_keys).where(dkim_keys.c.domain_id == domain_id))
    conn.execute(delete(sending_domains).where(sending_domains.c.id == domain_id))


def verified_names(conn: Connection, account_id: int) -> set[str]:
    query = select(sending_domains.c.domain_name).where(
        sending_domains.c.account_id == account_id, sending_domains.c.dns_verified.is_(True)
    )
    return {str(name) for name in conn.execute(query).scalars()}


def due_for_check(
    conn: Connection, *, settled_before: datetime, awaiting_before: datetime, limit: int
) -> list[tuple[int, int]]:
    """``(account_id, domain_id)`` of domains due a DNS check, least recently checked first.

    Due: never checked; checked at or before ``awaiting_before`` while unverified or
    while a key awaits its record; or checked at or before ``settled_before`` in any case.
    """
    checked = sending_domains.c.dns_checked_at
    key_pending = exists().where(
        dkim_keys.c.domain_id == sending_domains.c.id, dkim_keys.c.state == "pending"
    )
    awaiting = or_(not_(sending_domains.c.dns_verified), key_pending)
    query = (
        select(sending_domains.c.account_id, sending_domains.c.id)
        .where(
            or_(
                checked.is_(None),
                checked <= settled_before,
                and_(awaiting, checked <= awaiting_before),
            )
        )
        .order_by(checked.asc().nulls_first(), sending_domains.c.id)
        .limit(limit)
    )
    return [(int(account), int(domain)) for account, domain in conn.execute(query)]


# --- DKIM keys --------------------------------------------------------------------------


def insert_key(conn: Connection, **values: Any) -> int:
    return insert_id(conn, dkim_keys, values)


def list_keys(conn: Connection, domain_ids: list[int]) -> list[dict[str, Any]]:
    """Every key of the domains, retired ones included, by domain then generation."""
    if not domain_ids:
        return []
    query = (
        select(dkim_keys)
        .where(dkim_keys.c.domain_id.in_(domain_ids))
        .order_by(dkim_keys.c.domain_id, dkim_keys.c.generation, dkim_keys.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def update_key(conn: Connection, key_id: int, **values: Any) -> None:
    conn.execute(update(dkim_keys).where(dkim_keys.c.id == key_id).values(**values))


# --- events -----------------------------------------------------------------------------


def insert_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Append event rows (built by :func:`postroom.events.recorder.event_row`).

    The one event writer is :func:`postroom.storage.repos.messages.insert_events` (it
    fills the webhook outbox too); this name stays for the domain service's callers.
    """
    messages.insert_events(conn, rows)
