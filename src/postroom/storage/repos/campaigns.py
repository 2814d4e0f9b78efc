"""Email campaigns and their resolved audiences (one row per recipient, with its progress).

Rows only: the lifecycle and validation are in :mod:`postroom.services.campaigns`, the
sending in :mod:`postroom.services.campaign_sending`. Every campaign query is scoped by
account, so another tenant's campaign is simply not found. State changes are
compare-and-set (``WHERE state IN …``): of two concurrent transitions, one wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from postroom.storage.repos import insert_id
from postroom.storage.tables import (
    deliveries,
    email_campaign_recipients,
    email_campaigns,
    events,
    sending_domains,
)

_recipients = email_campaign_recipients
_SHOWN = (email_campaigns, sending_domains.c.domain_name)


def _shown_query() -> Any:
    return select(*_SHOWN).select_from(
        email_campaigns.outerjoin(
            sending_domains, sending_domains.c.id == email_campaigns.c.domain_id
        )
    )


def get(conn: Connection, account_id: int, campaign_id: int) -> dict[str, Any] | None:
    query = _shown_query().where(
        email_campaigns.c.account_id == account_id, email_campaigns.c.id == campaign_id
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def page(
    conn: Connection, account_id: int, search: str | None, offset: int, limit: int
) -> list[dict[str, Any]]:
    """Newest first; ``search`` matches names case-insensitively (a substring)."""
    query = _shown_query().where(email_campaigns.c.account_id == account_id)
    if search:
        escaped = search.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(func.lower(email_campaigns.c.name).like(f"%{escaped}%", escape="\\"))
    query = query.order_by(email_campaigns.c.id.desc()).offset(offset).limit(limit)
    return [dict(r) for r in conn.execute(query).mappings()]


def insert_campaign(conn: Connection, values: dict[str, Any]) -> int:
    return insert_id(conn, email_campaigns, values)


def update_campaign(
    conn: Connection,
    account_id: int,
    campaign_id: int,
    values: Mapping[str, Any],
    *,
    states: Iterable[str],
) -> bool:
    """Apply ``values`` if the campaign is in one of ``states``; False when it is not."""
    statement = (
        update(email_campaigns)
        .where(
            email_campaigns.c.account_id == account_id,
            email_campaigns.c.id == campaign_id,
            email_campaigns.c.state.in_(list(states)),
        )
        .values(**values)
        .returning(email_campaigns.c.id)
    )
    return conn.execute(statement).first() is not None


def delete_campaign(conn: Connection, account_id: int, campaign_id: int, state: str) -> bool:
    statement = (
        delete(email_campaigns)
        .where(
            email_campaigns.c.account_id == account_id,
            email_campaigns.c.id == campaign_id,
            email_campaigns.c.state == state,
        )
        .returning(email_campaigns.c.id)
    )
    return conn.execute(statement).first() is not None


def due_scheduled(conn: Connection, now: datetime, limit: int) -> list[dict[str, Any]]:
    """Scheduled campaigns whose time has come (any account), oldest schedule first."""
    query = (
        select(email_campaigns.c.id, email_campaigns.c.account_id)
        .where(email_campaigns.c.state == "scheduled", email_campaigns.c.scheduled_at <= now)
        .order_by(email_campaigns.c.scheduled_at, email_campaigns.c.id)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def sending(conn: Connection, limit: int) -> list[dict[str, Any]]:
    """Campaigns being sent (any account)."""
    query = (
        select(email_campaigns.c.id, email_campaigns.c.account_id)
        .where(email_campaigns.c.state == "started")
        .order_by(email_campaigns.c.id)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# --- the audience ---------------------------------------------------------------------------


def insert_recipients(
    conn: Connection, campaign_id: int, people: Sequence[tuple[str, dict[str, Any]]]
) -> None:
    for start in range(0, len(people), 1000):  # bounded statements, however large the list
        chunk = people[start : start + 1000]
        conn.execute(
            insert(_recipients),
            [
                {"campaign_id": campaign_id, "seq": start + i, "email": email, "fields": fields}
                for i, (email, fields) in enumerate(chunk)
            ],
        )


def taken_unfinished(conn: Connection, campaign_id: int) -> list[dict[str, Any]]:
    """Recipients of the lowest slice that was taken but has no outcome recorded."""
    unfinished = and_(
        _recipients.c.campaign_id == campaign_id,
        _recipients.c.slice.is_not(None),
        _recipients.c.message_id.is_(None),
        _recipients.c.error.is_(None),
    )
    lowest = conn.execute(select(func.min(_recipients.c.slice)).where(unfinished)).scalar()
    if lowest is None:
        return []
    query = select(_recipients).where(unfinished, _recipients.c.slice == lowest)
    return [dict(r) for r in conn.execute(query.order_by(_recipients.c.seq)).mappings()]


def take_slice(conn: Connection, campaign_id: int, slice_no: int, limit: int) -> int:
    """Mark the next ``limit`` pending recipients as slice ``slice_no``; how many."""
    pending = (
        select(_recipients.c.seq)
        .where(_recipients.c.campaign_id == campaign_id, _recipients.c.slice.is_(None))
        .order_by(_recipients.c.seq)
        .limit(limit)
    )
    seqs = list(conn.execute(pending).scalars())
    if not seqs:
        return 0
    conn.execute(
        update(_recipients)
        .where(
            _recipients.c.campaign_id == campaign_id,
            _recipients.c.seq.in_(seqs),
            _recipients.c.slice.is_(None),
        )
        .values(slice=slice_no)
    )
    return len(seqs)


def record_outcome(
    conn: Connection,
    campaign_id: int,
    seq: int,
    *,
    message_id: str | None,
    error: str | None,
    now: datetime,
) -> None:
    conn.execute(
        update(_recipients)
        .where(_recipients.c.campaign_id == campaign_id, _recipients.c.seq == seq)
        .values(message_id=message_id, error=error, sent_at=now)
    )


def remaining(conn: Connection, campaign_id: int) -> int:
    """Recipients without an outcome (pending or taken)."""
    query = select(func.count()).where(
        _recipients.c.campaign_id == campaign_id,
        _recipients.c.message_id.is_(None),
        _recipients.c.error.is_(None),
    )
    return int(conn.execute(query).scalar_one())


def errors(conn: Connection, campaign_id: int, limit: int) -> list[dict[str, Any]]:
    query = (
        select(_recipients.c.seq, _recipients.c.error)
        .where(_recipients.c.campaign_id == campaign_id, _recipients.c.error.is_not(None))
        .order_by(_recipients.c.seq)
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


# --- stats ----------------------------------------------------------------------------------


def _window(column: Any, start: datetime | None, end: datetime | None) -> list[Any]:
    found = []
    if start is not None:
        found.append(column >= start)
    if end is not None:
        found.append(column < end)
    return found


def event_counts(
    conn: Connection,
    campaign_id: int,
    kinds: Sequence[str],
    start: datetime | None,
    end: datetime | None,
) -> dict[str, int]:
    """Per event kind: how many of the campaign's messages had one in the window."""
    query = (
        select(events.c.kind, func.count(func.distinct(events.c.message_id)))
        .select_from(_recipients.join(events, events.c.message_id == _recipients.c.message_id))
        .where(
            _recipients.c.campaign_id == campaign_id,
            events.c.kind.in_(list(kinds)),
            *_window(events.c.created_at, start, end),
        )
        .group_by(events.c.kind)
    )
    return {str(kind): int(count) for kind, count in conn.execute(query)}


def delivery_counts(
    conn: Connection, campaign_id: int, start: datetime | None, end: datetime | None
) -> dict[str, int]:
    """Sent (accepted, not suppressed), first opens and first clicks by people."""
    joined = _recipients.join(deliveries, deliveries.c.id == _recipients.c.message_id)
    mine = _recipients.c.campaign_id == campaign_id

    def count(*where: Any) -> int:
        query = select(func.count()).select_from(joined).where(mine, *where)
        return int(conn.execute(query).scalar_one())

    return {
        "sent": count(
            deliveries.c.state != "suppressed", *_window(deliveries.c.created_at, start, end)
        ),
        "opened": count(
            deliveries.c.opened_at.is_not(None), *_window(deliveries.c.opened_at, start, end)
        ),
        "clicked": count(
            deliveries.c.clicked_at.is_not(None), *_window(deliveries.c.clicked_at, start, end)
        ),
    }


def advance_release(
    conn: Connection, campaign_id: int, seen: Mapping[str, Any], taken: int
) -> bool:
    """Count a slice of ``taken`` recipients as released, if nobody else released one since
    ``seen`` was read and the campaign is still sending (an optimistic lock)."""
    statement = (
        update(email_campaigns)
        .where(
            email_campaigns.c.id == campaign_id,
            email_campaigns.c.state == "started",
            email_campaigns.c.released == seen["released"],
            email_campaigns.c.slices == seen["slices"],
        )
        .values(released=int(seen["released"]) + taken, slices=int(seen["slices"]) + 1)
        .returning(email_campaigns.c.id)
    )
    return conn.execute(statement).first() is not None
