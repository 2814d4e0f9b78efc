"""Accounts, the first-run bootstrap, and API token issue.

A token is shown exactly once, when it is created; only the hash of its secret is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import access
from postroom.domain.access import Permission
from postroom.domain.audit import Actor
from postroom.errors import Conflict, Forbidden, NotFound
from postroom.sandbox.credentials import new_password
from postroom.services import Services
from postroom.services import tokens as token_service
from postroom.storage.repos import accounts as repo
from postroom.storage.repos import audit
from postroom.storage.repos import domains as domain_repo
from postroom.storage.repos import sandbox as sandbox_repo

# Scopes a token may carry. "admin" may do everything in its account; "send" may only
# send (transactional, bulk and sandbox); "read" may read management resources.
SCOPES = token_service.SCOPES

# The installation is one organization (the contract's organization of sub-accounts).
ORGANIZATION_ID = 1


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
    expires_at: datetime | None = None,
) -> str:
    """Insert a new token for ``account_id`` and return its full value (shown once)."""
    issued = token_service.insert(
        services,
        conn,
        account_id,
        name,
        scopes=scopes,
        expires_at=expires_at,
        created_by=created_by,
    )
    audit.append(
        conn,
        account_id=account_id,
        actor=Actor.cli() if created_by == "cli" else Actor.system(),
        action="api_token.created",
        target_type="api_token",
        target_id=issued.row["id"],
        after={"name": name, "scopes": list(scopes), "expires_at": expires_at},
        now=services.clock.now(),
    )
    return issued.value


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
        if repo.list_accounts(conn):
            return None
        now = services.clock.now()
        account_id = repo.insert_account(conn, "Postroom", now)
        admin_email = "admin@localhost"
        user_id = repo.insert_user(
            conn, account_id, admin_email, "owner", now, name="Administrator"
        )
        user_access = repo.insert_access(conn, account_id, "User", user_id, now)
        repo.set_permission(conn, user_access, Permission(access.ACCOUNT, account_id, access.OWNER))
        inbox_id = create_default_inbox(services, conn, account_id)
        issued = token_service.insert(
            services,
            conn,
            account_id,
            "Default token",
            permissions=[
                Permission(access.ACCOUNT, account_id, access.ADMIN),
                # The first token is the installation admin's: it may manage accounts.
                Permission(access.ORGANIZATION, ORGANIZATION_ID, access.ADMIN),
            ],
            created_by=admin_email,
        )
        audit.append(
            conn,
            account_id=account_id,
            actor=Actor.system(),
            action="account.created",
            target_type="account",
            target_id=account_id,
            after={"name": "Postroom", "first_token": issued.row["id"]},
            now=now,
        )
        return Bootstrap(account_id, inbox_id, issued.value, admin_email)

    return services.db.write_sync(run)


def list_accounts(services: Services) -> list[dict[str, Any]]:
    return services.db.read_sync(repo.list_accounts)


def issue_token(
    services: Services,
    name: str,
    account_id: int | None,
    scopes: tuple[str, ...],
    domains: tuple[str, ...] = (),
    expires_at: datetime | None = None,
) -> str:
    """Create a token from the CLI: the account defaults to the first one."""

    def run(conn: Connection) -> str:
        all_accounts = repo.list_accounts(conn)
        if not all_accounts:
            raise LookupError("no account yet: run `postroom serve` once to create one")
        target = account_id if account_id is not None else int(all_accounts[0]["id"])
        if repo.get_account(conn, target) is None:
            raise LookupError(f"no account with id {target}")
        if not domains:
            return create_token(services, conn, target, name, scopes, "cli", expires_at)
        # A token that may only send, from these domains (domain/access.py).
        permissions = [
            Permission(access.DOMAIN, _domain_id(conn, target, domain), access.ADMIN)
            for domain in domains
        ]
        issued = token_service.insert(
            services,
            conn,
            target,
            name,
            permissions=permissions,
            expires_at=expires_at,
            created_by="cli",
        )
        audit.append(
            conn,
            account_id=target,
            actor=Actor.cli(),
            action="api_token.created",
            target_type="api_token",
            target_id=issued.row["id"],
            after={"name": name, "scopes": ["send"], "domains": list(domains)},
            now=services.clock.now(),
        )
        return issued.value

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


def _domain_id(conn: Connection, account_id: int, name: str) -> int:
    found = domain_repo.find_by_name(conn, [name.strip().lower()], account_id)
    if not found:
        raise LookupError(f"account {account_id} has no sending domain {name!r}")
    return int(found[0]["id"])


# --- accounts: create, rename, disable, list ------------------------------------------


def create_account(
    services: Services, name: Any, actor: Actor
) -> Callable[[Connection], dict[str, Any]]:
    """Make an account (with its default project and inbox); the unit of work."""
    clean = _name(name)

    def run(conn: Connection) -> dict[str, Any]:
        now = services.clock.now()
        account_id = repo.insert_account(conn, clean, now)
        create_default_inbox(services, conn, account_id)
        audit.append(
            conn,
            account_id=account_id,
            actor=actor,
            action="account.created",
            target_type="account",
            target_id=account_id,
            after={"name": clean},
            now=now,
        )
        found = repo.get_account(conn, account_id)
        assert found is not None
        return found

    return run


def change_account(
    services: Services,
    account_id: int,
    actor: Actor,
    *,
    name: str | None = None,
    disabled: bool | None = None,
) -> Callable[[Connection], dict[str, Any]]:
    """Rename, disable or enable an account (recorded in the audit log)."""
    clean = _name(name) if name is not None else None

    def run(conn: Connection) -> dict[str, Any]:
        before = repo.get_account(conn, account_id)
        if before is None:
            raise NotFound("account")
        values: dict[str, Any] = {}
        if clean is not None:
            values["name"] = clean
        if disabled is not None:
            values["disabled_at"] = services.clock.now() if disabled else None
        if values:
            repo.update_account(conn, account_id, **values)
        after = repo.get_account(conn, account_id)
        assert after is not None
        audit.append(
            conn,
            account_id=account_id,
            actor=actor,
            action="account.updated",
            target_type="account",
            target_id=account_id,
            before=_account_audit(before),
            after=_account_audit(after),
            now=services.clock.now(),
        )
        return after

    return run


def _account_audit(row: dict[str, Any]) -> dict[str, Any]:
    return {"name": row["name"], "disabled": row["disabled_at"] is not None}


def _name(name: Any) -> str:
    if not isinstance(name, str) or not name.strip() or len(name.strip()) > 255:
        raise Conflict({"name": ["can't be blank (at most 255 characters)"]})
    return name.strip()


def visible_accounts(
    account_id: int, organization_admin: bool, level: int
) -> Callable[[Connection], list[dict[str, Any]]]:
    """The accounts a token sees (spec: ``GET /api/accounts``): its own, or, for the
    installation admin's token, every account; each with the token's access level."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        rows = repo.list_accounts(conn) if organization_admin else []
        if not organization_admin:
            own = repo.get_account(conn, account_id)
            rows = [own] if own is not None else []
        return [
            {
                "id": row["id"],
                "name": row["name"],
                "access_levels": [level if row["id"] == account_id else access.ADMIN],
                "disabled_at": row["disabled_at"],
            }
            for row in rows
        ]

    return run


def organization_check(organization_id: int, organization_admin: bool) -> None:
    """Only the installation admin, and only for this installation's organization."""
    if organization_id != ORGANIZATION_ID or not organization_admin:
        raise Forbidden("organization")
