"""Access levels and resources in the contract's vocabulary, and what they mean here.

The contract grants an *access* (a user, an invitation or an API token) a level on
*resources*: the account itself, a sending domain, a sandbox project or a sandbox
(inbox), and, for the installation admin, the organization. Levels: 1000 owner, 100
admin, 10 viewer.

Postroom authorizes requests with three scopes (services/auth.py): ``admin`` (anything
in the account), ``read`` (read management resources) and ``send`` (send mail only).
:func:`grant` is the one mapping from the contract's permissions onto them, so there is
one system, seen two ways:

* admin (or owner) on the account → ``admin``; viewer on the account → ``read``;
* admin on a sending domain, project or sandbox → ``send``, limited to those domains
  (the From address) and sandboxes (a project stands for its sandboxes);
* viewer on a domain, project or sandbox alone grants nothing yet (there is no per-domain
  read API); such a token is kept and listed, but every call answers 403;
* a send-only token made by ``postroom token create --scope send`` has no resources
  (it manages nothing): it sends from any of the account's domains.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

OWNER = 1000
ADMIN = 100
VIEWER = 10

ACCOUNT = "account"
DOMAIN = "domain"
PROJECT = "project"
SANDBOX = "sandbox"
ORGANIZATION = "organization"

# What token permissions may name (the contract's ResourceType), and older spellings the
# SDKs still send.
RESOURCE_TYPES = (ACCOUNT, DOMAIN, PROJECT, SANDBOX)
_ALIASES = {"inbox": SANDBOX, "sending_domain": DOMAIN, "mailsend_domain": DOMAIN}
_LEVEL_NAMES = {"owner": OWNER, "admin": ADMIN, "viewer": VIEWER}

# Roles of users in an account, and their account-level access.
ROLES = {"owner": OWNER, "admin": ADMIN, "viewer": VIEWER}


@dataclass(frozen=True, slots=True)
class Permission:
    """One resource permission: ``level`` on (``resource_type``, ``resource_id``)."""

    resource_type: str
    resource_id: int
    level: int


@dataclass(frozen=True, slots=True)
class Grant:
    """What a set of permissions allows, in scopes, and where ``send`` is limited to."""

    scopes: frozenset[str]
    # None: any of the account's domains (sandboxes); else only these ids.
    domain_ids: frozenset[int] | None
    sandbox_ids: frozenset[int] | None
    project_ids: frozenset[int] | None
    # The token may act account-wide (False: only sending, and only where listed).
    account_wide: bool
    organization_admin: bool


def resource_type(name: str) -> str | None:
    """The canonical resource type of ``name`` (aliases included), or None."""
    name = _ALIASES.get(name, name)
    return name if name in RESOURCE_TYPES else None


def level(value: object) -> int | None:
    """An access level given as 100/10 or "admin"/"viewer" (strings of digits too)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        if value in _LEVEL_NAMES:
            return _LEVEL_NAMES[value]
        if not value.isdigit():
            return None
        value = int(value)
    if isinstance(value, int) and value in (ADMIN, VIEWER):
        return value
    return None


def scopes_level(scopes: Iterable[str]) -> int | None:
    """The account-level access a legacy scope list implies (None for send-only)."""
    held = set(scopes)
    if "admin" in held:
        return ADMIN
    if "read" in held:
        return VIEWER
    return None


def grant(permissions: Iterable[Permission], scopes: Iterable[str]) -> Grant:
    """What a token with ``permissions`` may do.

    A token without permissions (made before accesses existed, or ``--scope send``) keeps
    the ``scopes`` stored with it, account-wide.
    """
    perms = list(permissions)
    organization_admin = any(p.resource_type == ORGANIZATION and p.level >= ADMIN for p in perms)
    account = max((p.level for p in perms if p.resource_type == ACCOUNT), default=None)
    below = [p for p in perms if p.resource_type in (DOMAIN, PROJECT, SANDBOX)]
    if not [p for p in perms if p.resource_type != ORGANIZATION]:
        return Grant(frozenset(scopes), None, None, None, True, organization_admin)
    if account is not None and account >= ADMIN:
        return Grant(frozenset({"admin"}), None, None, None, True, organization_admin)
    granted: set[str] = set()
    if account is not None:
        granted.add("read")
    senders = [p for p in below if p.level >= ADMIN]
    if not senders:
        return Grant(frozenset(granted), None, None, None, account is not None, organization_admin)
    granted.add("send")

    def ids(kind: str) -> frozenset[int]:
        return frozenset(p.resource_id for p in senders if p.resource_type == kind)

    return Grant(
        frozenset(granted),
        ids(DOMAIN),
        ids(SANDBOX),
        ids(PROJECT),
        account is not None,
        organization_admin,
    )
