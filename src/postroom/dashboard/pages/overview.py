"""The overview: sending over time (from the daily rollups of services/stats.py, never
raw events), per stream and per domain, and the account's queue depth.

One read: the rollup sums by day, by domain and by stream, and a count of the account's
queued deliveries (by the state index; the queued set is small).
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import charts, web
from postroom.domain.deliveries import DeliveryState
from postroom.domain.stats import Counts, sending_stats
from postroom.services import stats
from postroom.storage.repos import domains as domain_repo
from postroom.storage.repos import rollups as rollup_repo
from postroom.storage.tables import deliveries, stats_daily

router = APIRouter()

RANGES = (7, 30, 90)
RATES = (
    ("delivery_rate", "Delivered"),
    ("bounce_rate", "Bounced"),
    ("spam_rate", "Complaints"),
    ("open_rate", "Opened"),
    ("click_rate", "Clicked"),
)


def _queued(conn: Connection, account_id: int) -> dict[str, int]:
    query = (
        select(deliveries.c.stream, func.count())
        .where(deliveries.c.state == DeliveryState.QUEUED.value)
        # "+ 0" keeps SQLite off the (account, created_at) index, which would walk every
        # delivery the account ever made: the state index finds the few queued ones.
        .where((deliveries.c.account_id + 0) == account_id)
        .group_by(deliveries.c.stream)
    )
    return {str(stream): int(n) for stream, n in conn.execute(query)}


def _read(conn: Connection, account_id: int, query: stats.StatsQuery) -> dict[str, Any]:
    by_day = {d["date"]: d["stats"] for d in stats.grouped_sync(conn, account_id, query, "date")}
    names = {
        int(row["id"]): str(row["domain_name"])
        for row in domain_repo.list_domains(conn, account_id)
    }
    by_domain = [
        {"name": names.get(int(d["domain_id"]), f"#{d['domain_id']}"), "stats": d["stats"]}
        for d in stats.grouped_sync(conn, account_id, query, "domains")
    ]
    # Per stream and the total from one grouped read (the total is their sum).
    filters = [stats_daily.c.sending_domain_id.in_(query.domain_ids)] if query.domain_ids else []
    if query.streams:
        filters.append(stats_daily.c.stream.in_(query.streams))
    per_stream = {
        str(r["key"]): Counts.of(r)
        for r in rollup_repo.sum_by(conn, account_id, query.start, query.end, "stream", filters)
    }
    total = Counts()
    for counts in per_stream.values():
        total.add(counts)
    by_stream = {
        stream: sending_stats(per_stream.get(stream, Counts()))
        for stream in ("transactional", "bulk")
    }
    return {
        "by_day": by_day,
        "by_domain": by_domain,
        "by_stream": by_stream,
        "total": sending_stats(total),
        "queued": _queued(conn, account_id),
        "domains": names,
    }


@router.get("/")
async def overview(request: Request, days: int = 30, stream: str = "", domain: int = 0) -> Response:
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    days = days if days in RANGES else 30
    today = services.clock.now().date()
    start = today - timedelta(days=days - 1)
    streams = (stream,) if stream in ("transactional", "bulk") else ()
    query = stats.StatsQuery(start, today, (domain,) if domain else (), streams)
    data = await services.db.read(lambda conn: _read(conn, viewer.account_id, query))
    labels = [(start + timedelta(days=i)) for i in range(days)]
    keys = [d.isoformat() for d in labels]
    empty: dict[str, Any] = {}
    daily = [data["by_day"].get(k, empty) for k in keys]
    volume = [float(d.get("delivery_count", 0) + d.get("bounce_count", 0)) for d in daily]
    short = [_short(d) for d in labels]
    volume_chart = charts.bars(short, volume, title="Messages per day (delivered + bounced)")
    rate_chart = charts.lines(
        short,
        [charts.Series(label, [float(d.get(key, 0.0)) for d in daily]) for key, label in RATES],
        percent=True,
        title="Rates per day",
    )
    return web.render(
        request,
        "overview.html",
        title="Overview",
        days=days,
        ranges=RANGES,
        stream=stream,
        domain=domain,
        data=data,
        rates=RATES,
        volume_chart=web.markup(volume_chart),
        rate_chart=web.markup(rate_chart),
        sent_any=sum(volume) > 0,
        base_url=str(request.base_url).rstrip("/"),
    )


def _short(day: date) -> str:
    return day.strftime("%b %d")
