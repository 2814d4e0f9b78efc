"""SQL of per-domain alerts: the window's counts per sender domain, rules and state."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from postroom.storage.tables import (
    deliveries,
    domain_alerts,
    events,
    messages,
    sending_domains,
    users,
)

WATCHED = ("delivery", "bounce", "soft_bounce", "spam")


def watched_domains(conn: Connection) -> list[dict[str, Any]]:
    """Sending domains with at least one kind of alert enabled."""
    query = select(sending_domains).where(
        sending_domains.c.health_alerts_enabled | sending_domains.c.critical_alerts_enabled
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def window_counts(conn: Connection, account_id: int, since: datetime) -> dict[str, dict[str, int]]:
    """lower-case sender domain → event kind → events since ``since`` (this account)."""
    query = (
        select(messages.c.sender, events.c.kind, func.count())
        .select_from(
            events.join(deliveries, deliveries.c.id == events.c.message_id).join(
                messages, messages.c.id == deliveries.c.message_id
            )
        )
        .where(
            events.c.account_id == account_id,
            events.c.created_at >= since,
            events.c.kind.in_(WATCHED),
        )
        .group_by(messages.c.sender, events.c.kind)
    )
    found: dict[str, dict[str, int]] = {}
    for sender, kind, count in conn.execute(query):
        domain = str(sender).rpartition("@")[2].lower()
        per_kind = found.setdefault(domain, {})
        per_kind[kind] = per_kind.get(kind, 0) + int(count)
    return found


def failed_domain_ids(conn: Connection, account_ids: Iterable[int]) -> set[int]:
    """Domains that lost verification at some point (a ``domain_failed`` event)."""
    query = select(events.c.details).where(
        events.c.account_id.in_(list(set(account_ids))), events.c.kind == "domain_failed"
    )
    return {
        int(d["domain_id"])
        for (d,) in conn.execute(query)
        if isinstance(d, dict) and isinstance(d.get("domain_id"), int)
    }


def states(conn: Connection, domain_ids: Iterable[int]) -> dict[tuple[int, str], dict[str, Any]]:
    query = select(domain_alerts).where(domain_alerts.c.domain_id.in_(list(set(domain_ids))))
    return {(int(r["domain_id"]), r["alert"]): dict(r) for r in conn.execute(query).mappings()}


def upsert(conn: Connection, domain_id: int, alert: str, account_id: int, **values: Any) -> None:
    """Create or update the (domain, alert) row with ``values``."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    row = {"domain_id": domain_id, "alert": alert, "account_id": account_id, "raised": False}
    statement = dialect.insert(domain_alerts).values({**row, **values})
    conn.execute(
        statement.on_conflict_do_update(index_elements=["domain_id", "alert"], set_=values)
        if values
        else statement.on_conflict_do_nothing()
    )


def admin_email(conn: Connection, account_id: int) -> str | None:
    query = (
        select(users.c.email)
        .where(users.c.account_id == account_id)
        .order_by(users.c.role != "admin", users.c.id)
        .limit(1)
    )
    found = conn.execute(query).scalar()
    return str(found) if found else None
