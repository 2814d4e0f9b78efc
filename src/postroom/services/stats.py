"""The stats API's use case (spec §4.3): sums of the daily rollups, never of raw events.

Every answer reads ``stats_daily`` only (kept by :mod:`postroom.services.rollups`), so
its cost grows with days × domains × categories × providers, not with messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain.querystring import QueryParams, integer
from postroom.domain.stats import Counts, sending_stats
from postroom.domain.streams import Stream
from postroom.services import Services
from postroom.storage.repos import rollups as repo
from postroom.storage.tables import stats_daily

# Group name in the path → (rollup column, the key names of each item). A domain is
# answered under both names: the SDKs read sending_domain_id, the current contract's
# OpenAPI says domain_id (extra keys are ignored by the SDKs).
GROUPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "domains": ("sending_domain_id", ("sending_domain_id", "domain_id")),
    "categories": ("category", ("category",)),
    "email_service_providers": ("provider", ("email_service_provider",)),
    "date": ("day", ("date",)),
}


class BadStatsRequest(ValueError):
    """A missing or malformed parameter; the message is the contract's error text."""


@dataclass(frozen=True, slots=True)
class StatsQuery:
    """Dates (inclusive) and the optional array filters."""

    start: date
    end: date
    domain_ids: tuple[int, ...] = ()
    streams: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()


def parse_query(params: QueryParams) -> StatsQuery:
    """Read the query; raises BadStatsRequest with the contract's message."""
    start, end = _date(params, "start_date"), _date(params, "end_date")
    if end < start:
        raise BadStatsRequest("end_date must not be before start_date")
    # The newer docs call the domain filter domain_ids[]; both spellings are taken.
    raw_ids = params.all("sending_domain_ids") + params.all("domain_ids")
    try:
        ids = tuple(integer(v) for v in raw_ids)
    except ValueError:
        raise BadStatsRequest("sending_domain_ids must be integers") from None
    streams = tuple(params.all("sending_streams"))
    if any(s not in {m.value for m in Stream} for s in streams):
        raise BadStatsRequest("sending_streams must be transactional or bulk")
    return StatsQuery(
        start,
        end,
        ids,
        streams,
        tuple(params.all("categories")),
        tuple(params.all("email_service_providers")),
    )


def _date(params: QueryParams, name: str) -> date:
    raw = params.one(name)
    if not raw:
        raise BadStatsRequest(f"Missing required parameter: {name}")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise BadStatsRequest(f"Invalid parameter: {name} must be YYYY-MM-DD") from None


def _conditions(query: StatsQuery) -> list[Any]:
    c = stats_daily.c
    where: list[Any] = []
    for column, values in (
        (c.sending_domain_id, query.domain_ids),
        (c.stream, query.streams),
        (c.category, query.categories),
        (c.provider, query.providers),
    ):
        if values:
            where.append(column.in_(values))
    return where


def aggregate_sync(conn: Connection, account_id: int, query: StatsQuery) -> dict[str, Any]:
    [row] = repo.sum_by(conn, account_id, query.start, query.end, None, _conditions(query))
    return sending_stats(Counts.of(row))


def grouped_sync(
    conn: Connection, account_id: int, query: StatsQuery, group: str
) -> list[dict[str, Any]]:
    column, names = GROUPS[group]
    rows = repo.sum_by(conn, account_id, query.start, query.end, column, _conditions(query))
    return [
        {**dict.fromkeys(names, _key(group, r["key"])), "stats": sending_stats(Counts.of(r))}
        for r in rows
    ]


def _key(group: str, value: Any) -> Any:
    if group == "date":
        return value.isoformat() if isinstance(value, date) else str(value)
    if group == "domains":
        return int(value)
    return value


async def aggregate(services: Services, account_id: int, query: StatsQuery) -> dict[str, Any]:
    return await services.db.read(lambda conn: aggregate_sync(conn, account_id, query))


async def grouped(
    services: Services, account_id: int, query: StatsQuery, group: str
) -> list[dict[str, Any]]:
    return await services.db.read(lambda conn: grouped_sync(conn, account_id, query, group))
