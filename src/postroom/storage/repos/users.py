"""Users' credentials: recovery codes, sessions and invitations (hashes only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import insert_id
from postroom.storage.tables import invitations, user_recovery_codes, user_sessions, users


def by_email(conn: Connection, email: str) -> dict[str, Any] | None:
    query = select(users).where(func.lower(users.c.email) == email.strip().lower())
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def by_id(conn: Connection, user_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(users).where(users.c.id == user_id)).mappings().first()
    return dict(row) if row else None


def update_user(conn: Connection, user_id: int, **values: Any) -> None:
    conn.execute(update(users).where(users.c.id == user_id).values(**values))


def replace_recovery_codes(conn: Connection, user_id: int, hashes: list[bytes]) -> None:
    conn.execute(delete(user_recovery_codes).where(user_recovery_codes.c.user_id == user_id))
    for code_hash in hashes:
        conn.execute(user_recovery_codes.insert().values(user_id=user_id, code_hash=code_hash))


def unused_recovery_codes(conn: Connection, user_id: int) -> list[dict[str, Any]]:
    query = select(user_recovery_codes).where(
        user_recovery_codes.c.user_id == user_id, user_recovery_codes.c.used_at.is_(None)
    )
    return [dict(row) for row in conn.execute(query).mappings()]


def use_recovery_code(conn: Connection, code_id: int, now: datetime) -> bool:
    result = conn.execute(
        update(user_recovery_codes)
        .where(user_recovery_codes.c.id == code_id, user_recovery_codes.c.used_at.is_(None))
        .values(used_at=now)
    )
    return bool(result.rowcount)


def insert_session(conn: Connection, **values: Any) -> int:
    return insert_id(conn, user_sessions, values)


def session_by_hash(conn: Connection, token_hash: bytes) -> dict[str, Any] | None:
    query = select(user_sessions).where(user_sessions.c.token_hash == token_hash)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def set_session_account(conn: Connection, session_id: int, account_id: int | None) -> None:
    conn.execute(
        update(user_sessions).where(user_sessions.c.id == session_id).values(account_id=account_id)
    )


def revoke_sessions(conn: Connection, user_id: int, now: datetime) -> None:
    conn.execute(
        update(user_sessions)
        .where(user_sessions.c.user_id == user_id, user_sessions.c.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def revoke_session(conn: Connection, session_id: int, now: datetime) -> None:
    conn.execute(
        update(user_sessions).where(user_sessions.c.id == session_id).values(revoked_at=now)
    )


def insert_invitation(conn: Connection, **values: Any) -> int:
    return insert_id(conn, invitations, values)


def invitation_by_hash(conn: Connection, token_hash: bytes) -> dict[str, Any] | None:
    query = select(invitations).where(invitations.c.token_hash == token_hash)
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def get_invitation(conn: Connection, account_id: int, invitation_id: int) -> dict[str, Any] | None:
    query = select(invitations).where(
        invitations.c.id == invitation_id, invitations.c.account_id == account_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def accept_invitation(conn: Connection, invitation_id: int, now: datetime) -> bool:
    result = conn.execute(
        update(invitations)
        .where(invitations.c.id == invitation_id, invitations.c.accepted_at.is_(None))
        .values(accepted_at=now)
    )
    return bool(result.rowcount)


def delete_invitation(conn: Connection, invitation_id: int) -> None:
    conn.execute(delete(invitations).where(invitations.c.id == invitation_id))
