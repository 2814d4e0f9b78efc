"""The audit log: the ONE way an entry is written (:func:`append`), listing, verification.

Entries are only ever inserted. Each carries ``prev_hash`` (the previous entry's hash)
and ``hash`` (domain/audit.py :func:`entry_hash`), and ``audit_head`` keeps the newest
entry's id and hash, so :func:`verify` notices an edited field, a removed entry and a
removed tail. Appends are serialized: the single writer thread within a process, and on
PostgreSQL a transaction-scoped advisory lock across processes (a CLI beside a server).

Webhooks: :func:`append` is also where an entry is handed to ``audit_log`` webhooks, by
recording an ``events`` row in the same transaction (:func:`_announce`), once the event
vocabulary has an ``audit`` kind (F9).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection

from postroom.domain import audit
from postroom.domain.audit import Actor
from postroom.storage.repos import insert_id
from postroom.storage.tables import audit_head, audit_log

# An arbitrary constant naming Postroom's audit-chain lock among PostgreSQL advisory locks.
_PG_LOCK = 0x50524155  # "PRAU"
HEAD_ID = 1


def append(
    conn: Connection,
    *,
    account_id: int | None,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object = "",
    before: Any = None,
    after: Any = None,
    now: datetime,
) -> int:
    """Record one change (secrets in ``before``/``after`` redacted); returns its id."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK})
    head = conn.execute(select(audit_head).where(audit_head.c.id == HEAD_ID)).mappings().first()
    prev_hash = head["last_hash"] if head else audit.GENESIS
    values: dict[str, Any] = {
        "account_id": account_id,
        "created_at": now,
        "actor_type": actor.kind,
        "actor_id": str(actor.id),
        "actor_name": actor.name,
        "source_ip": actor.source_ip,
        "action": action,
        "target_type": target_type,
        "target_id": "" if target_id is None else str(target_id),
        "before": audit.redact(before),
        "after": audit.redact(after),
        "prev_hash": prev_hash,
        "hash": "",
    }
    entry_id = insert_id(conn, audit_log, values)
    digest = audit.entry_hash(prev_hash, {**values, "id": entry_id})
    conn.execute(update(audit_log).where(audit_log.c.id == entry_id).values(hash=digest))
    if head is None:
        conn.execute(audit_head.insert().values(id=HEAD_ID, last_id=entry_id, last_hash=digest))
    else:
        conn.execute(
            update(audit_head)
            .where(audit_head.c.id == HEAD_ID)
            .values(last_id=entry_id, last_hash=digest)
        )
    _announce(conn, entry_id, values, now)
    return entry_id


def _announce(conn: Connection, entry_id: int, values: dict[str, Any], now: datetime) -> None:
    """Hand the entry to ``audit_log`` webhooks (F9): the single call site for that.

    Nothing to do until ``EventKind.AUDIT`` exists; then this records an ``events`` row
    of that kind for the entry's account, in this same transaction.
    """
    del conn, entry_id, values, now


def entries(
    conn: Connection,
    *,
    account_id: int | None = None,
    action: str | None = None,
    target_type: str | None = None,
    actor_type: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    before_id: int | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first, filtered; ``before_id`` pages backwards."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if account_id is not None:
        query = query.where(audit_log.c.account_id == account_id)
    if action:
        query = query.where(audit_log.c.action == action)
    if target_type:
        query = query.where(audit_log.c.target_type == target_type)
    if actor_type:
        query = query.where(audit_log.c.actor_type == actor_type)
    if since is not None:
        query = query.where(audit_log.c.created_at >= since)
    if until is not None:
        query = query.where(audit_log.c.created_at < until)
    if before_id is not None:
        query = query.where(audit_log.c.id < before_id)
    return [dict(row) for row in conn.execute(query).mappings()]


@dataclass(frozen=True, slots=True)
class Problem:
    """One break in the chain: the entry where it shows, and what is wrong."""

    entry_id: int | None
    reason: str


def verify(conn: Connection, batch: int = 1000) -> tuple[int, list[Problem]]:
    """Walk the whole chain; returns how many entries were checked and every break."""
    problems: list[Problem] = []
    prev_hash = audit.GENESIS
    checked = 0
    last_id: int | None = None
    for row in _all(conn, batch):
        checked += 1
        last_id = int(row["id"])
        if row["prev_hash"] != prev_hash:
            problems.append(Problem(last_id, "an earlier entry was removed or altered"))
        if audit.entry_hash(row["prev_hash"], row) != row["hash"]:
            problems.append(Problem(last_id, "the entry was altered"))
        prev_hash = row["hash"]
    head = conn.execute(select(audit_head).where(audit_head.c.id == HEAD_ID)).mappings().first()
    if head is None:
        if checked:
            problems.append(Problem(None, "the chain head is missing"))
    elif head["last_id"] != last_id or head["last_hash"] != prev_hash:
        problems.append(Problem(last_id, "the newest entries were removed or altered"))
    return checked, problems


def _all(conn: Connection, batch: int) -> Iterator[dict[str, Any]]:
    after = 0
    while True:
        query = select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id)
        rows = [dict(row) for row in conn.execute(query.limit(batch)).mappings()]
        if not rows:
            return
        yield from rows
        after = int(rows[-1]["id"])
