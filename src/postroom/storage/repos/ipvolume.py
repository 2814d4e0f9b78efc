"""Per-address daily sending volume (``ip_volume``) and accounts' IP pools."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.storage.tables import accounts, ip_volume


def sent_on(conn: Connection, day: date) -> dict[str, int]:
    """Recipients sent per local address on ``day`` (UTC)."""
    query = select(ip_volume.c.address, ip_volume.c.sent).where(ip_volume.c.day == day.isoformat())
    return {address: int(sent) for address, sent in conn.execute(query)}


def add(conn: Connection, day: date, counts: Mapping[str, int]) -> None:
    """Add ``counts`` to the day's totals (one upsert per address)."""
    rows = [
        {"address": a, "day": day.isoformat(), "sent": n} for a, n in sorted(counts.items()) if n
    ]
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(ip_volume)
    statement = statement.on_conflict_do_update(
        index_elements=[ip_volume.c.address, ip_volume.c.day],
        set_={"sent": ip_volume.c.sent + statement.excluded.sent},
    )
    conn.execute(statement, rows)


def pools_of(conn: Connection, account_ids: Iterable[int]) -> dict[int, str]:
    """The IP pool of each of ``account_ids`` that has one."""
    ids = sorted(set(account_ids))
    if not ids:
        return {}
    query = select(accounts.c.id, accounts.c.ip_pool).where(
        accounts.c.id.in_(ids), accounts.c.ip_pool.is_not(None)
    )
    return {int(account_id): str(pool) for account_id, pool in conn.execute(query)}


def set_pool(conn: Connection, account_id: int, pool: str | None) -> bool:
    """Set (or clear, with None) an account's pool; False when the account does not exist."""
    result = conn.execute(accounts.update().where(accounts.c.id == account_id).values(ip_pool=pool))
    return bool(result.rowcount)
