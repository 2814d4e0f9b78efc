"""Accounts, account accesses and their permissions, users and API tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.engine import Connection

from postroom.domain.access import Permission
from postroom.storage.repos import insert_id
from postroom.storage.tables import (
    access_permissions,
    account_accesses,
    accounts,
    api_tokens,
    inboxes,
    sending_domains,
    users,
)


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


# --- accounts: create, rename, disable, quotas ----------------------------------------


def update_account(conn: Connection, account_id: int, **values: Any) -> bool:
    """Change an account's columns; False when there is no such account."""
    return _update(conn, account_id, **values)


def is_disabled(conn: Connection, account_id: int) -> bool:
    query = select(accounts.c.disabled_at).where(accounts.c.id == account_id)
    return conn.execute(query).scalar_one_or_none() is not None


# --- account accesses and their permissions -------------------------------------------


def insert_access(
    conn: Connection, account_id: int, specifier_type: str, specifier_id: int, now: datetime
) -> int:
    values = {
        "account_id": account_id,
        "specifier_type": specifier_type,
        "specifier_id": specifier_id,
        "created_at": now,
    }
    return insert_id(conn, account_accesses, values)


def access_of(
    conn: Connection, account_id: int, specifier_type: str, specifier_id: int
) -> dict[str, Any] | None:
    query = select(account_accesses).where(
        account_accesses.c.account_id == account_id,
        account_accesses.c.specifier_type == specifier_type,
        account_accesses.c.specifier_id == specifier_id,
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def accesses_of(conn: Connection, specifier_type: str, specifier_id: int) -> list[dict[str, Any]]:
    """Every account access of one user, invitation or token (in any account)."""
    query = (
        select(account_accesses)
        .where(
            account_accesses.c.specifier_type == specifier_type,
            account_accesses.c.specifier_id == specifier_id,
        )
        .order_by(account_accesses.c.account_id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def accounts_by_id(conn: Connection, account_ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    rows = conn.execute(select(accounts).where(accounts.c.id.in_(ids))).mappings()
    return {int(r["id"]): dict(r) for r in rows}


def get_access(conn: Connection, account_id: int, access_id: int) -> dict[str, Any] | None:
    """The access ``access_id`` if it belongs to ``account_id`` (None otherwise)."""
    query = select(account_accesses).where(
        account_accesses.c.id == access_id, account_accesses.c.account_id == account_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def list_accesses(
    conn: Connection, account_id: int, specifier_types: tuple[str, ...]
) -> list[dict[str, Any]]:
    query = (
        select(account_accesses)
        .where(
            account_accesses.c.account_id == account_id,
            account_accesses.c.specifier_type.in_(specifier_types),
        )
        .order_by(account_accesses.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def delete_access(conn: Connection, access_id: int) -> None:
    conn.execute(delete(access_permissions).where(access_permissions.c.access_id == access_id))
    conn.execute(delete(account_accesses).where(account_accesses.c.id == access_id))


def permissions(conn: Connection, access_ids: Iterable[int]) -> dict[int, list[Permission]]:
    """Each access's permissions, in a stable order."""
    ids = sorted(set(access_ids))
    found: dict[int, list[Permission]] = {access_id: [] for access_id in ids}
    if not ids:
        return found
    query = (
        select(access_permissions)
        .where(access_permissions.c.access_id.in_(ids))
        .order_by(
            access_permissions.c.access_id,
            access_permissions.c.resource_type,
            access_permissions.c.resource_id,
        )
    )
    for row in conn.execute(query).mappings():
        found[int(row["access_id"])].append(
            Permission(row["resource_type"], int(row["resource_id"]), int(row["access_level"]))
        )
    return found


def set_permission(conn: Connection, access_id: int, permission: Permission) -> None:
    """Create or update one permission of an access."""
    key = (
        access_permissions.c.access_id == access_id,
        access_permissions.c.resource_type == permission.resource_type,
        access_permissions.c.resource_id == permission.resource_id,
    )
    result = conn.execute(
        update(access_permissions).where(*key).values(access_level=permission.level)
    )
    if not result.rowcount:
        conn.execute(
            access_permissions.insert().values(
                access_id=access_id,
                resource_type=permission.resource_type,
                resource_id=permission.resource_id,
                access_level=permission.level,
            )
        )


def remove_permission(
    conn: Connection, access_id: int, resource_type: str, resource_id: int
) -> None:
    conn.execute(
        delete(access_permissions).where(
            access_permissions.c.access_id == access_id,
            access_permissions.c.resource_type == resource_type,
            access_permissions.c.resource_id == resource_id,
        )
    )


def token_permissions(conn: Connection, token: dict[str, Any]) -> list[Permission]:
    """The permissions of an API token (through its account access)."""
    access = access_of(conn, int(token["account_id"]), "ApiToken", int(token["id"]))
    if access is None:
        return []
    return permissions(conn, [int(access["id"])])[int(access["id"])]


# --- API tokens -----------------------------------------------------------------------


def get_token(conn: Connection, account_id: int, token_id: int) -> dict[str, Any] | None:
    """A live (not revoked) token of ``account_id``."""
    query = select(api_tokens).where(
        api_tokens.c.id == token_id,
        api_tokens.c.account_id == account_id,
        api_tokens.c.revoked_at.is_(None),
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def list_tokens(conn: Connection, account_id: int) -> list[dict[str, Any]]:
    query = (
        select(api_tokens)
        .where(api_tokens.c.account_id == account_id, api_tokens.c.revoked_at.is_(None))
        .order_by(api_tokens.c.id)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def update_token(conn: Connection, token_id: int, **values: Any) -> None:
    conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(**values))


def touch_tokens(conn: Connection, used: dict[int, datetime]) -> None:
    """Record when tokens were last used (a batch, from services/auth.py)."""
    for token_id, at in used.items():
        conn.execute(update(api_tokens).where(api_tokens.c.id == token_id).values(last_used_at=at))


def domain_names(conn: Connection, account_id: int, domain_ids: Iterable[int]) -> dict[int, str]:
    ids = sorted(set(domain_ids))
    if not ids:
        return {}
    query = select(sending_domains.c.id, sending_domains.c.domain_name).where(
        sending_domains.c.account_id == account_id, sending_domains.c.id.in_(ids)
    )
    return {int(i): str(name) for i, name in conn.execute(query)}


def project_inboxes(conn: Connection, account_id: int, project_ids: Iterable[int]) -> set[int]:
    ids = sorted(set(project_ids))
    if not ids:
        return set()
    query = select(inboxes.c.id).where(
        inboxes.c.account_id == account_id, inboxes.c.project_id.in_(ids)
    )
    return {int(i) for i in conn.execute(query).scalars()}


def token_account(conn: Connection, token_id: int) -> int | None:
    """The account of live token ``token_id``, if there is one."""
    query = select(api_tokens.c.account_id).where(
        api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None)
    )
    found = conn.execute(query).scalar_one_or_none()
    return int(found) if found is not None else None
