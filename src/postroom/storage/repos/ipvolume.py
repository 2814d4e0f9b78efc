"""Per-address daily sending volume (``ip_volume``): the memory of warm-up caps."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.storage.tables import ip_volume


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
