"""Accounts, users and API tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import insert_id
from postroom.storage.tables import accounts, api_tokens, users


def insert_account(conn: Connection, name: str, now: datetime) -> int:
    return insert_id(conn, accounts, {"name": name, "created_at": now})


def list_accounts(conn: Connection) -> list[dict[str, Any]]:
    rows = conn.execute(select(accounts).order_by(accounts.c.id)).mappings()
    return [dict(r) for r in rows]


def get_account(conn: Connection, account_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(accounts).where(accounts.c.id == account_id)).mappings().first()
    return dict(row) if row else None


def insert_user(
    conn: Connection, account_id: int, email: str, role: str, now: datetime, name: str = ""
) -> int:
    values = {
        "account_id": account_id,
        "email": email,
        "name": name,
        "role": role,
        "created_at": now,
    }
    return insert_id(conn, users, values)


def insert_token(conn: Connection, **values: Any) -> int:
    return insert_id(conn, api_tokens, values)


def token_by_key_id(conn: Connection, key_id: str) -> dict[str, Any] | None:
    query = select(api_tokens).where(api_tokens.c.key_id == key_id)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def revoke_token(conn: Connection, token_id: int, now: datetime) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(revoked_at=now))


def delivery_modes(conn: Connection, account_ids: Iterable[int]) -> dict[int, str | None]:
    """Each account's own delivery mode (None: it follows its stream's or the default)."""
    return _by_account(conn, accounts.c.delivery_mode, account_ids)


def ip_pools(conn: Connection, account_ids: Iterable[int]) -> dict[int, str]:
    """The IP pool of each of ``account_ids`` that has one."""
    found = _by_account(conn, accounts.c.ip_pool, account_ids)
    return {account_id: pool for account_id, pool in found.items() if pool is not None}


def set_delivery_mode(conn: Connection, account_id: int, mode: str | None) -> bool:
    """Set (None: clear) an account's delivery mode; False when there is no such account."""
    return _update(conn, account_id, delivery_mode=mode)


def set_ip_pool(conn: Connection, account_id: int, pool: str | None) -> bool:
    """Set (None: clear) an account's IP pool; False when there is no such account."""
    return _update(conn, account_id, ip_pool=pool)


def _by_account(conn: Connection, column: Any, account_ids: Iterable[int]) -> dict[int, Any]:
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = select(accounts.c.id, column).where(accounts.c.id.in_(ids))
    return {int(account_id): value for account_id, value in conn.execute(query)}


def _update(conn: Connection, account_id: int, **values: Any) -> bool:
    result = conn.execute(update(accounts).where(accounts.c.id == account_id).values(**values))
    return bool(result.rowcount)
