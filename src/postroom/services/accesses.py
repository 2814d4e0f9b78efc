"""Account accesses and permissions (spec §4.7), and the resource tree they refer to.

An access is a user, an invitation or an API token with permissions on the account's
resources (domain/access.py). Listing shows users and invitations (as the contract does);
bulk updates create, change or (``_destroy``) remove permissions, and deleting an
access removes a user's permissions, or the invitation or token itself. A token's
stored scopes follow its permissions (services/auth.py reads them when it has none), and
a user's role follows their account-level permission. Every change is audited.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from postroom.domain import access
from postroom.domain.access import Permission
from postroom.domain.audit import Actor
from postroom.errors import Conflict, NotFound
from postroom.services import Services
from postroom.storage.repos import accounts as repo
from postroom.storage.repos import audit
from postroom.storage.repos import domains as domain_repo
from postroom.storage.repos import sandbox as sandbox_repo
from postroom.storage.repos import users as user_repo

T = TypeVar("T")
Work = Callable[[Connection], T]
SHOWN_TYPES = ("User", "Invite")
UPDATED = "Permissions have been updated!"
_ROLE_OF_LEVEL = {level: role for role, level in access.ROLES.items()}


def listed(
    account_id: int,
    project_ids: list[int] | None = None,
    sandbox_ids: list[int] | None = None,
    domain_ids: list[int] | None = None,
) -> Work[list[dict[str, Any]]]:
    """Users' and invitations' accesses; with filters, those holding a permission on one
    of the named resources."""
    wanted = {
        (kind, rid)
        for kind, ids in (
            (access.PROJECT, project_ids),
            (access.SANDBOX, sandbox_ids),
            (access.DOMAIN, domain_ids),
        )
        for rid in ids or ()
    }

    def run(conn: Connection) -> list[dict[str, Any]]:
        rows = repo.list_accesses(conn, account_id, SHOWN_TYPES)
        perms = repo.permissions(conn, [int(r["id"]) for r in rows])
        shown = []
        for row in rows:
            held = perms[int(row["id"])]
            if wanted and not {(p.resource_type, p.resource_id) for p in held} & wanted:
                continue
            shown.append(_json(conn, row, held))
        return shown

    return run


def _json(conn: Connection, row: dict[str, Any], held: list[Permission]) -> dict[str, Any]:
    kind, specifier_id = row["specifier_type"], int(row["specifier_id"])
    specifier: dict[str, Any] = {"id": specifier_id}
    if kind == "User":
        user = user_repo.by_id(conn, specifier_id) or {}
        specifier |= {
            "email": user.get("email", ""),
            "name": user.get("name", ""),
            "two_factor_authentication_enabled": user.get("totp_enabled_at") is not None,
        }
    elif kind == "Invite":
        invitation = user_repo.get_invitation(conn, int(row["account_id"]), specifier_id) or {}
        # name and 2FA are not the contract's for invitations; the SDK's model wants them.
        specifier |= {
            "email": invitation.get("email", ""),
            "name": "",
            "two_factor_authentication_enabled": False,
        }
    owner = any(p.resource_type == access.ACCOUNT and p.level >= access.OWNER for p in held)
    return {
        "id": row["id"],
        "specifier_type": kind,
        "specifier": specifier,
        "resources": [
            {
                "resource_id": p.resource_id,
                "resource_type": p.resource_type,
                "access_level": p.level,
            }
            for p in held
        ],
        "permissions": {
            "can_read": True,
            "can_update": not owner,
            "can_destroy": not owner,
            "can_leave": False,
        },
    }


def update_permissions(
    services: Services, account_id: int, access_id: int, items: Any, actor: Actor
) -> Work[str]:
    if not isinstance(items, list) or not items:
        raise Conflict({"base": ["No permissions selected. Please choose at least one."]})

    def run(conn: Connection) -> str:
        row = _access(conn, account_id, access_id)
        before = repo.permissions(conn, [access_id])[access_id]
        for item in items:
            permission, destroy = _parsed(conn, account_id, item)
            if destroy:
                repo.remove_permission(
                    conn, access_id, permission.resource_type, permission.resource_id
                )
            else:
                repo.set_permission(conn, access_id, permission)
        after = repo.permissions(conn, [access_id])[access_id]
        _follow(conn, row, after)
        audit.append(
            conn,
            account_id=account_id,
            actor=actor,
            action="account_access.permissions_updated",
            target_type="account_access",
            target_id=access_id,
            before=_shown(before),
            after=_shown(after),
            now=services.clock.now(),
        )
        return UPDATED

    return run


def delete(services: Services, account_id: int, access_id: int, actor: Actor) -> Work[int]:
    def run(conn: Connection) -> int:
        row = _access(conn, account_id, access_id)
        held = repo.permissions(conn, [access_id])[access_id]
        if any(p.resource_type == access.ACCOUNT and p.level >= access.OWNER for p in held):
            raise Conflict({"base": ["The account owner's access cannot be removed."]})
        kind, specifier_id = row["specifier_type"], int(row["specifier_id"])
        now = services.clock.now()
        if kind == "Invite":
            user_repo.delete_invitation(conn, specifier_id)
        elif kind == "ApiToken":
            repo.update_token(conn, specifier_id, revoked_at=now)
        repo.delete_access(conn, access_id)
        audit.append(
            conn,
            account_id=account_id,
            actor=actor,
            action="account_access.deleted",
            target_type="account_access",
            target_id=access_id,
            before={"specifier_type": kind, "specifier_id": specifier_id, **_shown(held)},
            now=now,
        )
        return access_id

    return run


def _access(conn: Connection, account_id: int, access_id: int) -> dict[str, Any]:
    row = repo.get_access(conn, account_id, access_id)
    if row is None:
        raise NotFound("account access")
    return row


def _parsed(conn: Connection, account_id: int, item: Any) -> tuple[Permission, bool]:
    """One bulk item as a permission on this account's own resource (422 otherwise)."""
    bad = Conflict({"permissions": ["each needs a resource of this account and a level"]})
    if not isinstance(item, dict):
        raise bad
    kind = access.resource_type(str(item.get("resource_type", "")))
    raw = item.get("resource_id")
    rid = int(raw) if isinstance(raw, str) and raw.isdigit() else raw
    if kind is None or not isinstance(rid, int) or isinstance(rid, bool):
        raise bad
    destroy = item.get("_destroy") is True
    level = access.VIEWER if destroy else access.level(item.get("access_level"))
    if level is None or not _owned(conn, account_id, kind, rid):
        raise bad
    return Permission(kind, rid, level), destroy


def _owned(conn: Connection, account_id: int, kind: str, rid: int) -> bool:
    if kind == access.ACCOUNT:
        return rid == account_id
    if kind == access.DOMAIN:
        return domain_repo.get_domain(conn, account_id, rid) is not None
    if kind == access.PROJECT:
        return sandbox_repo.get_project(conn, account_id, rid) is not None
    return sandbox_repo.get_inbox(conn, account_id, rid) is not None


def _follow(conn: Connection, row: dict[str, Any], held: list[Permission]) -> None:
    """Keep a token's stored scopes and a user's role in step with the permissions."""
    specifier_id = int(row["specifier_id"])
    if row["specifier_type"] == "ApiToken":
        repo.update_token(conn, specifier_id, scopes=sorted(access.grant(held, ()).scopes))
    elif row["specifier_type"] == "User":
        levels = [p.level for p in held if p.resource_type == access.ACCOUNT]
        role = _ROLE_OF_LEVEL.get(max(levels)) if levels else None
        if role is not None:
            user_repo.update_user(conn, specifier_id, role=role)


def _shown(held: list[Permission]) -> dict[str, Any]:
    return {"resources": [[p.resource_type, p.resource_id, p.level] for p in held]}


def resource_tree(account_id: int, level: int) -> Work[list[dict[str, Any]]]:
    """``GET /api/permissions/resources``: the account, its projects and their sandboxes,
    and its sending domains, each with the calling token's access level."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        account = repo.get_account(conn, account_id)
        if account is None:
            raise NotFound("account")
        sandboxes = sandbox_repo.list_inboxes(conn, account_id)

        def node(rid: int, name: str, kind: str, children: list[Any]) -> dict[str, Any]:
            return {
                "id": rid,
                "name": name,
                "type": kind,
                "access_level": level,
                "resources": children,
            }

        projects = [
            node(
                int(p["id"]),
                p["name"],
                access.PROJECT,
                [
                    node(int(i["id"]), i["name"], access.SANDBOX, [])
                    for i in sandboxes
                    if i["project_id"] == p["id"]
                ],
            )
            for p in sandbox_repo.list_projects(conn, account_id)
        ]
        domains = [
            node(int(d["id"]), d["domain_name"], access.DOMAIN, [])
            for d in domain_repo.list_domains(conn, account_id)
        ]
        return [node(account_id, account["name"], access.ACCOUNT, projects + domains)]

    return run
