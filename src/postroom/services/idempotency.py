"""Idempotency keys for the sending API: a retried request sends nothing twice.

A client that times out on ``POST /api/send`` (or ``/api/batch``) cannot know whether
its mail was accepted. With an ``Idempotency-Key`` header it can retry safely: the first
request to commit with a key stores the outcome it answered, and every later request
with that key (for ``limits.idempotency_hours``, 24 h by default) gets the same answer
(the same message ids) without sending again. A key reused with a different request
(another body, path, stream or sandbox inbox) is refused with 422: that is a client bug,
and guessing which request was meant would be worse.

Keys belong to an account (another account's key of the same spelling is another key).
The key is claimed in the same transaction that stores the messages, so "answered 200"
and "key stored" are one fact: two concurrent requests with one key cannot both send
(the loser's insert conflicts, and it answers the winner's outcome).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.errors import PayloadTooLarge, PostroomError, Unauthorized, ValidationFailed
from postroom.storage.tables import idempotency_keys

MAX_KEY_CHARS = 256
HEADER = "Idempotency-Key"


@dataclass(frozen=True, slots=True)
class Claim:
    """An Idempotency-Key, the fingerprint of the request carrying it, and its lifetime."""

    key: str
    fingerprint: str
    ttl: timedelta


class KeyReused(PostroomError):
    """The key was used before with a different request."""


class Replayed(PostroomError):
    """Another request with this key committed first; answer its stored outcome."""


def parse_key(value: str | None) -> str | None:
    """The header's key, or None when absent; ValidationFailed when it is malformed."""
    if value is None:
        return None
    if not 1 <= len(value) <= MAX_KEY_CHARS or not value.isascii() or not value.isprintable():
        raise ValidationFailed(
            [f"{HEADER} must be 1 to {MAX_KEY_CHARS} printable ASCII characters"]
        )
    return value


def fingerprint(*parts: bytes) -> str:
    """A digest of what makes two requests "the same" (path, stream, inbox, body)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def item_errors(outcome: object) -> list[str] | None:
    """The client-facing errors of a failed batch item (None for a success)."""
    if isinstance(outcome, ValidationFailed):
        return outcome.errors
    if isinstance(outcome, PayloadTooLarge):
        return ["Message too large"]
    if isinstance(outcome, Unauthorized):
        return ["Unauthorized"]
    return None


def encode(outcomes: Sequence[object]) -> list[dict[str, Any]]:
    """Outcomes (message id lists or item errors) as stored JSON."""
    stored: list[dict[str, Any]] = []
    for outcome in outcomes:
        if isinstance(outcome, list):
            stored.append({"message_ids": outcome})
            continue
        errors = item_errors(outcome)
        if errors is None:  # an unexpected exception: never cached as an answer
            raise outcome if isinstance(outcome, Exception) else TypeError(outcome)
        stored.append({"errors": errors})
    return stored


def decode(stored: list[dict[str, Any]]) -> list[list[str] | ValidationFailed]:
    """Stored JSON back to outcomes, in the shapes the routes already render."""
    return [
        list(item["message_ids"]) if "message_ids" in item else ValidationFailed(item["errors"])
        for item in stored
    ]


def lookup(
    conn: Connection, account_id: int, request: Claim, now: datetime
) -> list[dict[str, Any]] | None:
    """The stored outcomes of an earlier request with this key, if it is the same request.

    Raises KeyReused when the key came with a different request within its lifetime.
    """
    row = conn.execute(
        select(idempotency_keys.c.fingerprint, idempotency_keys.c.outcomes).where(
            idempotency_keys.c.account_id == account_id,
            idempotency_keys.c.key == request.key,
            idempotency_keys.c.created_at > now - request.ttl,
        )
    ).first()
    if row is None or row.outcomes is None:
        return None
    if row.fingerprint != request.fingerprint:
        raise KeyReused(f"{HEADER} {request.key!r} was already used with a different request")
    return list(row.outcomes)


def claim(conn: Connection, account_id: int, request: Claim, now: datetime) -> bool:
    """Take the key for this request in the current transaction; False if it is taken.

    An expired row of the same key is replaced (the key may be reused after its lifetime).
    """
    ttl = request.ttl
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(idempotency_keys).values(
        account_id=account_id, key=request.key, fingerprint=request.fingerprint, created_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=[idempotency_keys.c.account_id, idempotency_keys.c.key],
        set_={
            "fingerprint": statement.excluded.fingerprint,
            "outcomes": None,
            "created_at": statement.excluded.created_at,
        },
        where=idempotency_keys.c.created_at <= now - ttl,
    )
    # RETURNING, not rowcount: psycopg reports -1 for this statement through SQLAlchemy.
    return conn.execute(statement.returning(idempotency_keys.c.key)).first() is not None


def record(conn: Connection, account_id: int, key: str, outcomes: Sequence[object]) -> None:
    """Store what was answered to the request that claimed ``key``."""
    conn.execute(
        update(idempotency_keys)
        .where(idempotency_keys.c.account_id == account_id, idempotency_keys.c.key == key)
        .values(outcomes=encode(outcomes))
    )


def purge(conn: Connection, now: datetime, ttl: timedelta, limit: int = 5000) -> int:
    """Delete up to ``limit`` expired keys (a bounded batch: never a long lock)."""
    expired = (
        select(idempotency_keys.c.account_id, idempotency_keys.c.key)
        .where(idempotency_keys.c.created_at <= now - ttl)
        .limit(limit)
    )
    rows = [tuple(row) for row in conn.execute(expired)]
    if rows:
        conn.execute(
            delete(idempotency_keys).where(
                tuple_(idempotency_keys.c.account_id, idempotency_keys.c.key).in_(rows)
            )
        )
    return len(rows)
