"""Users: the people who sign in to the dashboard (its HTTP side comes with the dashboard).

* Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106's second
  recommended profile); a hash made with older parameters is upgraded at the next login.
* The optional second factor is TOTP (domain/totp.py). Its secret is sealed with the
  installation key (storage/secrets.py); each code is good once. Enabling it hands out
  ``RECOVERY_CODES`` one-time recovery codes, stored as SHA-256 only.
* Sessions and invitation links are 256-bit random tokens shown once, stored as SHA-256;
  sessions expire after ``SESSION_LIFETIME``, invitations after ``INVITATION_LIFETIME``.
* A user's role in an account is their account access (``account_accesses``) with the
  account-level permission of the role (domain/access.py ROLES). A user with accesses in
  several accounts acts in one at a time: their session keeps the account selected
  (:func:`select_account`), checked again against their accesses at every request.

Nothing secret is logged or audited: the audit log records that a password or second
factor changed, never a value. Each operation returns a unit of work (a function of a
connection), run by the CLI with ``services.db.write_sync`` or by the API with
``await services.db.write``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.engine import Connection

from postroom.domain import access, totp
from postroom.domain.access import Permission
from postroom.domain.addresses import is_valid_email
from postroom.domain.audit import Actor
from postroom.errors import Conflict, NotFound, Unauthorized
from postroom.services import Services
from postroom.storage.repos import accounts as account_repo
from postroom.storage.repos import audit
from postroom.storage.repos import users as repo

MIN_PASSWORD = 12
MAX_PASSWORD = 1024
RECOVERY_CODES = 10
SESSION_LIFETIME = timedelta(hours=12)
INVITATION_LIFETIME = timedelta(days=7)

T = TypeVar("T")
Work = Callable[[Connection], T]

_hasher = PasswordHasher()
# Compared against when the user does not exist, so timing does not tell who does.
_DUMMY_HASH = _hasher.hash("postroom-dummy-password")


def _sha256(value: str) -> bytes:
    return hashlib.sha256(value.encode()).digest()


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def check_password(password: str) -> None:
    if not (MIN_PASSWORD <= len(password) <= MAX_PASSWORD):
        raise Conflict({"password": [f"must be {MIN_PASSWORD} to {MAX_PASSWORD} characters"]})


def password_matches(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _email(value: str) -> str:
    address = value.strip()
    if not is_valid_email(address):
        raise Conflict({"email": ["is not an email address"]})
    return address.lower()


def _role(role: str) -> int:
    if role not in access.ROLES:
        raise Conflict({"role": [f"must be one of {', '.join(access.ROLES)}"]})
    return access.ROLES[role]


def _grant_role(
    services: Services, conn: Connection, account_id: int, user_id: int, role: str
) -> None:
    level = _role(role)
    found = account_repo.access_of(conn, account_id, "User", user_id)
    access_id = (
        int(found["id"])
        if found is not None
        else account_repo.insert_access(conn, account_id, "User", user_id, services.clock.now())
    )
    account_repo.set_permission(conn, access_id, Permission(access.ACCOUNT, account_id, level))


def create_user(
    services: Services,
    account_id: int,
    email: str,
    password: str | None,
    role: str,
    actor: Actor,
    name: str = "",
) -> Work[int]:
    """A user with ``role`` in ``account_id`` (and, with ``password``, able to sign in)."""
    address = _email(email)
    _role(role)
    password_hash = hash_password(password) if password is not None else None

    def run(conn: Connection) -> int:
        if account_repo.get_account(conn, account_id) is None:
            raise NotFound("account")
        if repo.by_email(conn, address) is not None:
            raise Conflict({"email": ["is already taken"]})
        now = services.clock.now()
        user_id = account_repo.insert_user(conn, account_id, address, role, now, name=name)
        if password_hash is not None:
            repo.update_user(conn, user_id, password_hash=password_hash)
        _grant_role(services, conn, account_id, user_id, role)
        audit.append(
            conn,
            account_id=account_id,
            actor=actor,
            action="user.created",
            target_type="user",
            target_id=user_id,
            after={"email": address, "role": role, "name": name, "password_set": bool(password)},
            now=now,
        )
        return user_id

    return run


def set_password(services: Services, email: str, password: str, actor: Actor) -> Work[int]:
    """Set a user's password and end their sessions."""
    password_hash = hash_password(password)

    def run(conn: Connection) -> int:
        user = _user(conn, email)
        now = services.clock.now()
        repo.update_user(conn, int(user["id"]), password_hash=password_hash)
        repo.revoke_sessions(conn, int(user["id"]), now)
        _audit(conn, services, user, actor, "user.password_changed")
        return int(user["id"])

    return run


def reset_mfa(services: Services, email: str, actor: Actor) -> Work[int]:
    """Remove a user's second factor and recovery codes (they may enrol again)."""

    def run(conn: Connection) -> int:
        user = _user(conn, email)
        user_id = int(user["id"])
        repo.update_user(conn, user_id, totp_secret=None, totp_enabled_at=None, totp_last_step=None)
        repo.replace_recovery_codes(conn, user_id, [])
        repo.revoke_sessions(conn, user_id, services.clock.now())
        _audit(conn, services, user, actor, "user.mfa_reset")
        return user_id

    return run


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A second factor being set up: the secret to show (once) and its QR URI."""

    secret: str
    uri: str


def begin_totp(services: Services, user_id: int) -> Work[Enrolment]:
    """Store a new (sealed, not yet enabled) TOTP secret for the user."""
    secret = totp.new_secret(secrets.token_bytes(20))
    sealed = services.get_sealer().seal(secret.encode()).decode("ascii")

    def run(conn: Connection) -> Enrolment:
        user = repo.by_id(conn, user_id)
        if user is None:
            raise NotFound("user")
        repo.update_user(conn, user_id, totp_secret=sealed, totp_enabled_at=None)
        return Enrolment(secret, totp.provisioning_uri(secret, user["email"]))

    return run


def confirm_totp(services: Services, user_id: int, code: str, actor: Actor) -> Work[list[str]]:
    """Enable the second factor once a code checks out; returns the recovery codes
    (shown once)."""
    codes = [secrets.token_hex(5) for _ in range(RECOVERY_CODES)]

    def run(conn: Connection) -> list[str]:
        user = repo.by_id(conn, user_id)
        if user is None or not user["totp_secret"]:
            raise NotFound("user")
        now = services.clock.now()
        secret = _secret(services, user)
        used = totp.matching_step(secret, code, now)
        if used is None:
            raise Unauthorized()
        repo.update_user(conn, user_id, totp_enabled_at=now, totp_last_step=used)
        repo.replace_recovery_codes(conn, user_id, [_sha256(c) for c in codes])
        _audit(conn, services, user, actor, "user.mfa_enabled")
        return codes

    return run


def _secret(services: Services, user: dict[str, Any]) -> str:
    return services.get_sealer().open(str(user["totp_secret"]).encode("ascii")).decode()


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A new session: the cookie value (shown once) and who it is for."""

    token: str
    user_id: int


def sign_in(
    services: Services, email: str, password: str, code: str | None, source_ip: str
) -> Work[SignedIn]:
    """Check password and (when enabled) the second factor; open a session.

    Every failure is the same Unauthorized, whichever part was wrong.
    """
    token = secrets.token_urlsafe(32)

    def run(conn: Connection) -> SignedIn:
        user = repo.by_email(conn, email)
        stored = user["password_hash"] if user is not None else None
        if not password_matches(stored, password) or user is None or user["disabled_at"]:
            raise Unauthorized()
        user_id = int(user["id"])
        now = services.clock.now()
        if user["totp_enabled_at"] is not None and not _second_factor(
            services, conn, user, code or ""
        ):
            raise Unauthorized()
        if _hasher.check_needs_rehash(str(stored)):
            repo.update_user(conn, user_id, password_hash=_hasher.hash(password))
        repo.insert_session(
            conn,
            user_id=user_id,
            token_hash=_sha256(token),
            source_ip=source_ip,
            created_at=now,
            expires_at=now + SESSION_LIFETIME,
        )
        return SignedIn(token, user_id)

    return run


def _second_factor(services: Services, conn: Connection, user: dict[str, Any], code: str) -> bool:
    """A fresh TOTP code, or an unused recovery code (then spent)."""
    user_id = int(user["id"])
    used = totp.matching_step(_secret(services, user), code, services.clock.now())
    last = user["totp_last_step"]
    if used is not None and (last is None or used > int(last)):
        repo.update_user(conn, user_id, totp_last_step=used)
        return True
    presented = _sha256(code.strip().lower())
    for row in repo.unused_recovery_codes(conn, user_id):
        if hmac.compare_digest(bytes(row["code_hash"]), presented):
            return repo.use_recovery_code(conn, int(row["id"]), services.clock.now())
    return False


def session_user(services: Services, token: str) -> Work[dict[str, Any] | None]:
    """The user of a live session, or None (unknown, expired or revoked)."""

    def run(conn: Connection) -> dict[str, Any] | None:
        found = _live_session(services, conn, token)
        return None if found is None else found[1]

    return run


def _live_session(
    services: Services, conn: Connection, token: str
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(session, user) of ``token`` if the session is live and its user not disabled."""
    session = repo.session_by_hash(conn, _sha256(token))
    now = services.clock.now()
    if session is None or session["revoked_at"] is not None or session["expires_at"] <= now:
        return None
    user = repo.by_id(conn, int(session["user_id"]))
    return None if user is None or user["disabled_at"] else (session, user)


# --- the accounts a user acts in (the dashboard's account switcher) ------------------------


@dataclass(frozen=True, slots=True)
class Membership:
    """An account the user may act in, and their role there."""

    account_id: int
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class Current:
    """A live session: its user, the account it acts in, and every account it could."""

    session_id: int
    user: dict[str, Any]
    account: Membership
    accounts: tuple[Membership, ...]


def _role_of_level(level: int) -> str:
    return "owner" if level >= access.OWNER else "admin" if level >= access.ADMIN else "viewer"


def memberships(conn: Connection, user: dict[str, Any]) -> list[Membership]:
    """The user's own account first (its account access, else the role the user was made
    with), then every other account where one of their accesses holds an account-level
    permission and which is not disabled. An access on a domain or project alone makes
    no membership: the dashboard shows whole accounts."""
    home = int(user["account_id"])
    found = account_repo.accesses_of(conn, "User", int(user["id"]))
    held = account_repo.permissions(conn, [int(a["id"]) for a in found])
    levels: dict[int, int] = {}
    for row in found:
        account_id = int(row["account_id"])
        for p in held.get(int(row["id"]), []):
            if p.resource_type == access.ACCOUNT and p.resource_id == account_id:
                levels[account_id] = max(levels.get(account_id, 0), p.level)
    names = account_repo.accounts_by_id(conn, [home, *levels])
    own = names.get(home, {})
    role = _role_of_level(levels[home]) if home in levels else str(user["role"])
    shown = [Membership(home, str(own.get("name", "")), role)]
    for account_id, level in sorted(levels.items()):
        other = names.get(account_id)
        if account_id != home and other is not None and other["disabled_at"] is None:
            shown.append(Membership(account_id, str(other["name"]), _role_of_level(level)))
    return shown


def current(services: Services, token: str) -> Work[Current | None]:
    """The session of ``token`` with the account it acts in: the one it selected while
    the user still holds an access there, else the user's own account."""

    def run(conn: Connection) -> Current | None:
        found = _live_session(services, conn, token)
        if found is None:
            return None
        session, user = found
        choices = memberships(conn, user)
        selected = session["account_id"]
        account = next((m for m in choices if m.account_id == selected), choices[0])
        return Current(int(session["id"]), user, account, tuple(choices))

    return run


def select_account(services: Services, token: str, account_id: int) -> Work[Membership]:
    """Make the session of ``token`` act in ``account_id``: only an account among the
    user's memberships (NotFound otherwise, the same answer whether or not it exists)."""
    lookup = current(services, token)

    def run(conn: Connection) -> Membership:
        now = lookup(conn)
        if now is None:
            raise Unauthorized()
        chosen = next((m for m in now.accounts if m.account_id == account_id), None)
        if chosen is None:
            raise NotFound("account")
        home = int(now.user["account_id"])
        repo.set_session_account(conn, now.session_id, None if account_id == home else account_id)
        return chosen

    return run


def sign_out(services: Services, token: str) -> Work[None]:
    def run(conn: Connection) -> None:
        session = repo.session_by_hash(conn, _sha256(token))
        if session is not None:
            repo.revoke_session(conn, int(session["id"]), services.clock.now())

    return run


@dataclass(frozen=True, slots=True)
class Invited:
    invitation_id: int
    token: str  # the link's secret, shown once


def invite(
    services: Services, account_id: int, email: str, role: str, actor: Actor
) -> Work[Invited]:
    address = _email(email)
    _role(role)
    token = secrets.token_urlsafe(32)

    def run(conn: Connection) -> Invited:
        now = services.clock.now()
        invitation_id = repo.insert_invitation(
            conn,
            account_id=account_id,
            email=address,
            role=role,
            token_hash=_sha256(token),
            created_by=actor.name,
            created_at=now,
            expires_at=now + INVITATION_LIFETIME,
        )
        account_repo.insert_access(conn, account_id, "Invite", invitation_id, now)
        audit.append(
            conn,
            account_id=account_id,
            actor=actor,
            action="invitation.created",
            target_type="invitation",
            target_id=invitation_id,
            after={"email": address, "role": role},
            now=now,
        )
        return Invited(invitation_id, token)

    return run


def accept_invitation(services: Services, token: str, password: str, name: str = "") -> Work[int]:
    """Turn an invitation into a user (or give an existing user the role); returns the
    user's id. An unknown, used or expired link is Unauthorized."""
    password_hash = hash_password(password)

    def run(conn: Connection) -> int:
        invitation = repo.invitation_by_hash(conn, _sha256(token))
        now = services.clock.now()
        if (
            invitation is None
            or invitation["accepted_at"] is not None
            or invitation["expires_at"] <= now
        ):
            raise Unauthorized()
        account_id = int(invitation["account_id"])
        repo.accept_invitation(conn, int(invitation["id"]), now)
        found = account_repo.access_of(conn, account_id, "Invite", int(invitation["id"]))
        if found is not None:
            account_repo.delete_access(conn, int(found["id"]))
        user = repo.by_email(conn, invitation["email"])
        if user is None:
            user_id = account_repo.insert_user(
                conn, account_id, invitation["email"], invitation["role"], now, name=name
            )
            repo.update_user(conn, user_id, password_hash=password_hash)
        else:
            user_id = int(user["id"])
        _grant_role(services, conn, account_id, user_id, invitation["role"])
        audit.append(
            conn,
            account_id=account_id,
            actor=Actor("user", str(user_id), invitation["email"]),
            action="invitation.accepted",
            target_type="user",
            target_id=user_id,
            after={"email": invitation["email"], "role": invitation["role"]},
            now=now,
        )
        return user_id

    return run


def _user(conn: Connection, email: str) -> dict[str, Any]:
    user = repo.by_email(conn, email)
    if user is None:
        raise NotFound("user")
    return user


def _audit(
    conn: Connection, services: Services, user: dict[str, Any], actor: Actor, action: str
) -> None:
    audit.append(
        conn,
        account_id=int(user["account_id"]),
        actor=actor,
        action=action,
        target_type="user",
        target_id=user["id"],
        after={"email": user["email"]},
        now=services.clock.now(),
    )
