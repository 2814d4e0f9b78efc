"""Stats API (spec §4.3): aggregate, and grouped by domain, category, provider or date.

``/api/accounts/{account_id}/stats[/…]`` is what the SDKs call; ``/api/stats[/…]`` is the
token-scoped alias of the newer docs. Needs the ``read`` scope; another account is a 404.
A missing date answers 400 ``{"error": "Missing required parameter: start_date"}``.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.api.docs import STATS_QUERY
from postroom.api.families import Acting, Routes
from postroom.api.responses import general_error, json_response
from postroom.domain import querystring
from postroom.services import Services, stats

router = APIRouter(tags=["stats"])

Group = Literal["domains", "categories", "email_service_providers", "date"]


def _query(request: Request) -> stats.StatsQuery:
    try:
        return stats.parse_query(querystring.parse(request.url.query))
    except ValueError as exc:  # BadStatsRequest, or too many parameters
        raise stats.BadStatsRequest(str(exc)) from None


async def _answer(request: Request, account_id: int, group: str | None) -> Response:
    services: Services = request.app.state.services
    try:
        query = _query(request)
    except stats.BadStatsRequest as exc:
        return general_error(400, str(exc))
    if group is None:
        return json_response(await stats.aggregate(services, account_id, query))
    return json_response(await stats.grouped(services, account_id, query, group))


# Declared once, both path families (api/families.py).
routes = Routes(router, "/stats")


@routes.get("", scope="read", summary="Sending stats over a date range", openapi_extra=STATS_QUERY)
async def account_stats(request: Request, caller: Acting) -> Response:
    return await _answer(request, caller.account_id, None)


@routes.get("/{group}", scope="read", summary="Sending stats, grouped", openapi_extra=STATS_QUERY)
async def account_stats_grouped(request: Request, group: Group, caller: Acting) -> Response:
    return await _answer(request, caller.account_id, group)
