"""Billing usage (spec §4.7 ``GET /api/billing/usage``) from Postroom's own counts.

The cycle is the calendar month (UTC). ``sending`` counts recipients accepted for
delivery this cycle (transactional and bulk; per stream in Postroom's ``streams``
addition); ``testing`` counts messages captured into sandboxes and captured messages
forwarded. ``limit`` is the account's monthly quota, 0 when it has none (Postroom has no
plans: the plan's name is "Postroom").
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from postroom.storage.repos import accounts as repo
from postroom.storage.repos import sandbox as sandbox_repo
from postroom.storage.tables import deliveries, sandbox_messages

PLAN = {"name": "Postroom"}


def cycle(now: datetime) -> tuple[datetime, datetime]:
    """The calendar month (UTC) holding ``now``: [start, end)."""
    start = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    end = (
        start.replace(year=start.year + 1, month=1)
        if start.month == 12
        else start.replace(month=start.month + 1)
    )
    return start, end


def sent_per_stream(conn: Connection, account_id: int, since: datetime) -> dict[str, int]:
    query = (
        select(deliveries.c.stream, func.count())
        .where(deliveries.c.account_id == account_id, deliveries.c.created_at >= since)
        .group_by(deliveries.c.stream)
    )
    return {str(stream): int(count) for stream, count in conn.execute(query)}


def usage(account_id: int, now: datetime) -> Callable[[Connection], dict[str, Any]]:
    start, end = cycle(now)

    def run(conn: Connection) -> dict[str, Any]:
        account = repo.get_account(conn, account_id) or {}
        limit = int(account.get("monthly_quota") or 0)
        streams = sent_per_stream(conn, account_id, start)
        captured = conn.execute(
            select(func.count()).where(
                sandbox_messages.c.account_id == account_id,
                sandbox_messages.c.created_at >= start,
            )
        ).scalar_one()
        forwarded = sandbox_repo.forwards_since(conn, account_id, start)

        def count(current: int, cap: int = 0) -> dict[str, int]:
            return {"current": current, "limit": cap}

        return {
            "billing": {
                "cycle_start": start.isoformat().replace("+00:00", "Z"),
                "cycle_end": end.isoformat().replace("+00:00", "Z"),
            },
            "testing": {
                "plan": PLAN,
                "usage": {
                    "sent_messages_count": count(int(captured)),
                    "forwarded_messages_count": count(forwarded),
                },
            },
            "sending": {
                "plan": PLAN,
                "usage": {"sent_messages_count": count(sum(streams.values()), limit)},
                "streams": streams,
            },
        }

    return run
