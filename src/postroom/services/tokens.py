"""API token management (spec §4.7): create, list, get, reset, delete, with permissions.

A token's value is shown once (on create and on reset); only its secret's SHA-256 is
stored (domain/tokens.py). Its permissions live on its account access
(``account_accesses`` + ``access_permissions``), in the contract's vocabulary, and
domain/access.py turns them into the scopes requests are checked against. Every change
is written to the audit log.

Expiry (spec §4.7): omitted → one year; ``null`` → never; in the past or more than five
years ahead → 422. A reset expires the old token after ``RESET_GRACE`` (so deployed
clients can switch) and makes a new one with the same permissions; a token that was
already reset cannot be reset again.

Each operation returns its unit of work (a function of a connection), which the API runs
with ``await services.db.write(...)`` and the CLI with ``services.db.write_sync(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from postroom.domain import access, tokens
from postroom.domain.access import Permission
from postroom.domain.audit import Actor
from postroom.errors import Conflict, NotFound
from postroom.services import Services
from postroom.storage.repos import accounts as repo
from postroom.storage.repos import audit
from postroom.storage.repos import sandbox as sandbox_repo

# Scopes a token made without permissions may carry (the CLI's --scope).
SCOPES = ("admin", "send", "read")
DEFAULT_LIFETIME = timedelta(days=365)
MAX_LIFETIME = timedelta(days=5 * 365)
RESET_GRACE = timedelta(minutes=10)
NO_PERMISSIONS = "No permissions selected. Please choose at least one."

_UNSET: Any = object()
UNSET: Any = _UNSET

T = TypeVar("T")
Work = Callable[[Connection], T]


@dataclass(frozen=True, slots=True)
class Issued:
    """A token just made: its row, permissions, and the only copy of its value."""

    row: dict[str, Any]
    permissions: list[Permission]
    value: str


def insert(
    services: Services,
    conn: Connection,
    account_id: int,
    name: str,
    *,
    scopes: tuple[str, ...] | None = None,
    permissions: list[Permission] | None = None,
    expires_at: datetime | None = None,
    created_by: str = "",
) -> Issued:
    """Insert a token with ``permissions`` (or, without, legacy ``scopes``), and its access.

    With permissions, the stored scopes are what they grant (domain/access.py); with
    scopes only, the access gets the account-level permission they imply.
    """
    now = services.clock.now()
    if permissions is None:
        unknown = set(scopes or ()) - set(SCOPES)
        if unknown:
            raise ValueError(f"unknown scope(s): {', '.join(sorted(unknown))}")
        held = tuple(scopes or ("admin",))
        level = access.scopes_level(held)
        permissions = [] if level is None else [Permission(access.ACCOUNT, account_id, level)]
        stored = list(held)
    else:
        stored = sorted(access.grant(permissions, ()).scopes)
    key_id, secret = services.ids.hex(tokens.KEY_ID_LEN // 2), services.ids.hex(16)
    values = {
        "account_id": account_id,
        "name": name,
        "key_id": key_id,
        "secret_hash": tokens.hash_secret(secret),
        "last_4_digits": secret[-4:],
        "scopes": stored,
        "created_by": created_by,
        "created_at": now,
        "expires_at": expires_at,
    }
    token_id = repo.insert_token(conn, **values)
    access_id = repo.insert_access(conn, account_id, "ApiToken", token_id, now)
    for permission in permissions:
        repo.set_permission(conn, access_id, permission)
    row = {**values, "id": token_id, "revoked_at": None, "last_used_at": None, "reset_at": None}
    return Issued(row, permissions, tokens.compose(key_id, secret))


def expiry(services: Services, given: Any = _UNSET) -> datetime | None:
    """``expires_at`` as the API takes it: omitted (``_UNSET``), null, or ISO 8601."""
    now = services.clock.now()
    if given is _UNSET:
        return now + DEFAULT_LIFETIME
    if given is None:
        return None
    if not isinstance(given, str):
        raise Conflict({"expires_at": ["must be an ISO 8601 time or null"]})
    try:
        parsed = datetime.fromisoformat(given.replace("Z", "+00:00"))
    except ValueError:
        raise Conflict({"expires_at": ["must be an ISO 8601 time or null"]}) from None
    if parsed.tzinfo is None:
        raise Conflict({"expires_at": ["must include a time zone"]})
    if parsed <= now or parsed > now + MAX_LIFETIME:
        raise Conflict({"expires_at": ["must be in the future and at most 5 years ahead"]})
    return parsed


def checked_permissions(conn: Connection, account_id: int, resources: Any) -> list[Permission]:
    """The ``resources`` of a create request as permissions on ``account_id``'s own
    resources (422 for anything else: another account's resource never resolves)."""
    if not isinstance(resources, list) or not resources:
        raise Conflict({"base": [NO_PERMISSIONS]})
    found: dict[tuple[str, int], Permission] = {}
    for item in resources:
        permission = _permission(item)
        if permission is None or not _owned(conn, account_id, permission):
            raise Conflict({"resources": ["each needs a resource of this account, 10 or 100"]})
        found[(permission.resource_type, permission.resource_id)] = permission
    return list(found.values())


def _permission(item: Any) -> Permission | None:
    if not isinstance(item, dict):
        return None
    kind = access.resource_type(str(item.get("resource_type", "")))
    level = access.level(item.get("access_level"))
    raw_id = item.get("resource_id")
    if isinstance(raw_id, str) and raw_id.isdigit():
        raw_id = int(raw_id)
    if kind is None or level is None or not isinstance(raw_id, int) or isinstance(raw_id, bool):
        return None
    return Permission(kind, raw_id, level)


def _owned(conn: Connection, account_id: int, permission: Permission) -> bool:
    """Whether the permission names a resource of ``account_id``."""
    kind, rid = permission.resource_type, permission.resource_id
    if kind == access.ACCOUNT:
        return rid == account_id
    if kind == access.DOMAIN:
        return bool(repo.domain_names(conn, account_id, [rid]))
    if kind == access.PROJECT:
        return sandbox_repo.get_project(conn, account_id, rid) is not None
    if kind == access.SANDBOX:
        return sandbox_repo.get_inbox(conn, account_id, rid) is not None
    return False


def view(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    """A token with its permissions, for the API's ApiToken (api/routes/api_tokens.py)."""
    return {**row, "permissions": repo.token_permissions(conn, row)}


def create(
    services: Services,
    account_id: int,
    actor: Actor,
    name: Any,
    resources: Any,
    expires: Any = _UNSET,
) -> Work[Issued]:
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise Conflict({"name": ["can't be blank (at most 255 characters)"]})
    expires_at = expiry(services, expires)

    def run(conn: Connection) -> Issued:
        permissions = checked_permissions(conn, account_id, resources)
        issued = insert(
            services,
            conn,
            account_id,
            name.strip(),
            permissions=permissions,
            expires_at=expires_at,
            created_by=actor.name,
        )
        _record(services, conn, account_id, actor, "api_token.created", issued.row, None, issued)
        return issued

    return run


def reset(
    services: Services, account_id: int, token_id: int, actor: Actor, expires: Any = _UNSET
) -> Work[Issued]:
    """Expire ``token_id`` after RESET_GRACE and issue its successor (same permissions)."""
    expires_at = expiry(services, expires)

    def run(conn: Connection) -> Issued:
        row = _live(services, conn, account_id, token_id)
        if row["reset_at"] is not None:
            raise Conflict({"base": ["This token has already been reset."]})
        now = services.clock.now()
        grace = now + RESET_GRACE
        old_expiry = row["expires_at"] if row["expires_at"] and row["expires_at"] < grace else grace
        repo.update_token(conn, token_id, reset_at=now, expires_at=old_expiry)
        permissions = repo.token_permissions(conn, row)
        issued = insert(
            services,
            conn,
            account_id,
            row["name"],
            scopes=None if permissions else tuple(row["scopes"]),
            permissions=permissions or None,
            expires_at=expires_at,
            created_by=actor.name,
        )
        _record(services, conn, account_id, actor, "api_token.reset", issued.row, row, issued)
        return issued

    return run


def revoke(
    services: Services, account_id: int, token_id: int, actor: Actor
) -> Work[dict[str, Any]]:
    """Stop a token now (the API's delete): kept, marked revoked, its access removed."""

    def run(conn: Connection) -> dict[str, Any]:
        row = _live(services, conn, account_id, token_id, expired_too=True)
        now = services.clock.now()
        repo.update_token(conn, token_id, revoked_at=now)
        found = repo.access_of(conn, account_id, "ApiToken", token_id)
        if found is not None:
            repo.delete_access(conn, int(found["id"]))
        _record(services, conn, account_id, actor, "api_token.revoked", None, row, None)
        return row

    return run


def listed(account_id: int) -> Work[list[dict[str, Any]]]:
    def run(conn: Connection) -> list[dict[str, Any]]:
        return [view(conn, row) for row in repo.list_tokens(conn, account_id)]

    return run


def shown(services: Services, account_id: int, token_id: int) -> Work[dict[str, Any]]:
    def run(conn: Connection) -> dict[str, Any]:
        return view(conn, _live(services, conn, account_id, token_id, expired_too=True))

    return run


def _live(
    services: Services,
    conn: Connection,
    account_id: int,
    token_id: int,
    *,
    expired_too: bool = False,
) -> dict[str, Any]:
    row = repo.get_token(conn, account_id, token_id)
    if row is None:
        raise NotFound("api token")
    expired = row["expires_at"] is not None and row["expires_at"] <= services.clock.now()
    if expired and not expired_too:
        raise NotFound("api token")
    return row


def _record(
    services: Services,
    conn: Connection,
    account_id: int,
    actor: Actor,
    action: str,
    after: dict[str, Any] | None,
    before: dict[str, Any] | None,
    issued: Issued | None,
) -> None:
    def summary(row: dict[str, Any] | None) -> dict[str, Any] | None:
        if row is None:
            return None
        return {
            "name": row["name"],
            "last_4_digits": row["last_4_digits"],
            "scopes": list(row["scopes"]),
            "expires_at": row["expires_at"],
        }

    shown_after = summary(after)
    if shown_after is not None and issued is not None:
        shown_after["resources"] = [
            {
                "resource_type": p.resource_type,
                "resource_id": p.resource_id,
                "access_level": p.level,
            }
            for p in issued.permissions
        ]
    target = (after or before or {}).get("id", "")
    audit.append(
        conn,
        account_id=account_id,
        actor=actor,
        action=action,
        target_type="api_token",
        target_id=target,
        before=summary(before),
        after=shown_after,
        now=services.clock.now(),
    )
