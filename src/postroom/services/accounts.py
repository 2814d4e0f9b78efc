"""Accounts, the first-run bootstrap, and API token issue.

A token is shown exactly once, when it is created; only the hash of its secret is kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from postroom.domain import tokens
from postroom.sandbox.credentials import new_password
from postroom.services import Services
from postroom.storage.leadership import lock_key
from postroom.storage.repos import accounts as repo
from postroom.storage.repos import sandbox as sandbox_repo

# Scopes a token may carry. "admin" may do everything in its account; "send" may only
# send (transactional, bulk and sandbox); "read" may read management resources.
SCOPES = ("admin", "send", "read")


@dataclass(frozen=True)
class Bootstrap:
    """What the first start created (the token is the only copy of the secret)."""

    account_id: int
    inbox_id: int
    token: str
    admin_email: str


def create_token(
    services: Services,
    conn: Connection,
    account_id: int,
    name: str,
    scopes: tuple[str, ...] = ("admin",),
    created_by: str = "",
) -> str:
    """Insert a new token for ``account_id`` and return its full value (shown once)."""
    unknown = set(scopes) - set(SCOPES)
    if unknown:
        raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")
    key_id, secret = services.ids.hex(tokens.KEY_ID_LEN // 2), services.ids.hex(16)
    repo.insert_token(
        conn,
        account_id=account_id,
        name=name,
        key_id=key_id,
        secret_hash=tokens.hash_secret(secret),
        last_4_digits=secret[-4:],
        scopes=list(scopes),
        created_by=created_by,
        created_at=services.clock.now(),
        expires_at=None,
    )
    return tokens.compose(key_id, secret)


def create_default_inbox(services: Services, conn: Connection, account_id: int) -> int:
    """A project and inbox named as Mailtrap names a new account's first ones."""
    now = services.clock.now()
    project_id = sandbox_repo.insert_project(
        conn, account_id=account_id, name="My Project", created_at=now, updated_at=now
    )
    return sandbox_repo.insert_inbox(
        conn, **inbox_values(services, account_id, project_id, "My Inbox", is_default=True)
    )


def inbox_values(
    services: Services, account_id: int, project_id: int, name: str, *, is_default: bool = False
) -> dict[str, Any]:
    """Column values of a new inbox, with fresh SMTP credentials."""
    now = services.clock.now()
    return {
        "account_id": account_id,
        "project_id": project_id,
        "name": name,
        "is_default": is_default,
        "username": services.ids.hex(7),
        **new_password(services),
        "email_username": services.ids.hex(5),
        "email_username_enabled": False,
        "max_size": 1000,
        "max_message_size": services.settings.limits.max_message_bytes,
        "sent_messages_count": 0,
        "created_at": now,
        "updated_at": now,
    }


def bootstrap(services: Services) -> Bootstrap | None:
    """On an empty database, create the first account, admin, inbox and token."""

    def run(conn: Connection) -> Bootstrap | None:
        if conn.dialect.name == "postgresql":
            # Processes that start together on one empty database bootstrap one at a
            # time (the lock ends with the transaction): one first account, not several.
            key = lock_key(conn, "bootstrap")
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
        if repo.list_accounts(conn):
            return None
        now = services.clock.now()
        account_id = repo.insert_account(conn, "Postroom", now)
        admin_email = "admin@localhost"
        repo.insert_user(conn, account_id, admin_email, "owner", now, name="Administrator")
        inbox_id = create_default_inbox(services, conn, account_id)
        token = create_token(services, conn, account_id, "Default token", created_by=admin_email)
        return Bootstrap(account_id, inbox_id, token, admin_email)

    return services.db.write_sync(run)


def list_accounts(services: Services) -> list[dict[str, Any]]:
    return services.db.read_sync(repo.list_accounts)


def issue_token(
    services: Services, name: str, account_id: int | None, scopes: tuple[str, ...]
) -> str:
    """Create a token from the CLI: the account defaults to the first one."""

    def run(conn: Connection) -> str:
        all_accounts = repo.list_accounts(conn)
        if not all_accounts:
            raise LookupError("no account yet: run `postroom serve` once to create one")
        target = account_id if account_id is not None else int(all_accounts[0]["id"])
        if repo.get_account(conn, target) is None:
            raise LookupError(f"no account with id {target}")
        return create_token(services, conn, target, name, scopes, created_by="cli")

    return services.db.write_sync(run)


def set_ip_pool(services: Services, account_id: int, pool: str | None) -> None:
    """Send ``account_id``'s mail from IP pool ``pool`` (None: its stream's pool).

    Raises ValueError for an unknown account or a pool the settings do not define.
    """
    if pool is not None and pool not in services.settings.delivery.ip_pools:
        known = ", ".join(sorted(services.settings.delivery.ip_pools)) or "none configured"
        raise ValueError(f"no IP pool named {pool!r} in delivery.ip_pools ({known})")
    if not services.db.write_sync(lambda conn: repo.set_ip_pool(conn, account_id, pool)):
        raise ValueError(f"no account with id {account_id}")
