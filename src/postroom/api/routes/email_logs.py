"""Email logs API (spec §4.6): list with filters and cursor, one message, raw body, export.

- ``GET /api/accounts/{id}/email_logs?search_after=…&filters[…]`` (and ``/api/email_logs``)
  → ``{"messages": […], "total_count": n, "next_page_cursor": id|null}``.
- ``GET …/email_logs/{message_id}`` → the message, its ``events`` and ``raw_message_url``.
- ``GET …/email_logs/{message_id}/raw?expires=…&signature=…`` → the RFC 5322 bytes; the
  signature is the credential (the link may be handed to a browser), and it binds the
  account and the message; 410 once body retention removed the body.
- ``GET …/email_logs/export?format=csv|json&filters[…]`` (Postroom's addition) streams
  every matching message.

Reads need the ``read`` scope; another account's message is a 404. Bad filters answer
Mailtrap's ``422 {"errors": {"filters": "invalid"}}``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from postroom.api.docs import LOGS_FILTERS, LOGS_QUERY
from postroom.api.families import Acting, Routes
from postroom.api.params import Id, MessageId
from postroom.api.responses import general_error, json_response
from postroom.domain import querystring
from postroom.domain.logfilters import InvalidFilters, LogQuery, parse_filters
from postroom.services import Services, logs

router = APIRouter(tags=["email logs"])

Format = Literal["csv", "json"]

CSV_FIELDS = (
    "message_id",
    "status",
    "from",
    "to",
    "subject",
    "sent_at",
    "sending_stream",
    "sending_domain_id",
    "category",
    "client_ip",
    "opens_count",
    "clicks_count",
    "email_service_provider",
    "sending_ip",
    "recipient_mx",
)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _filters(request: Request) -> LogQuery | Response:
    try:
        return parse_filters(querystring.parse(request.url.query))
    except InvalidFilters:
        return json_response({"errors": {"filters": "invalid"}}, 422)
    except ValueError:
        return general_error(400, "Bad Request")


async def _list(request: Request, account_id: int) -> Response:
    query = _filters(request)
    if isinstance(query, Response):
        return query
    search_after = request.query_params.get("search_after") or None
    try:
        found = await logs.list_messages(_services(request), account_id, query, search_after)
    except logs.BadCursor:
        return general_error(400, "Invalid search_after")
    return json_response(
        {
            "messages": found.messages,
            "total_count": found.total_count,
            "next_page_cursor": found.next_page_cursor,
        }
    )


async def _export(request: Request, account_id: int, fmt: str) -> Response:
    query = _filters(request)
    if isinstance(query, Response):
        return query
    rows = logs.export_rows(_services(request), account_id, query)
    if fmt == "json":
        return StreamingResponse(_json_lines(rows), media_type="application/json")
    headers = {"Content-Disposition": 'attachment; filename="email_logs.csv"'}
    return StreamingResponse(_csv_lines(rows), media_type="text/csv", headers=headers)


async def _json_lines(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    """One JSON array, written a message at a time."""
    yield b"["
    first = True
    async for row in rows:
        yield (b"" if first else b",") + orjson.dumps(row)
        first = False
    yield b"]"


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    # A cell starting with = + - @ is a formula to spreadsheets (CSV injection): quote it.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def _csv_lines(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_FIELDS)
    async for row in rows:
        writer.writerow([_cell(row.get(f)) for f in CSV_FIELDS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode()


async def _detail(request: Request, account_id: int, message_id: str) -> Response:
    base_url = _services(request).settings.server.public_url or str(request.base_url)
    shown = await logs.detail(_services(request), account_id, message_id, base_url)
    return json_response(shown)


# Declared once, both path families (api/families.py); the raw link below is not: its
# signature is the credential, and it names the account.
routes = Routes(router, "/email_logs")


@routes.get("", scope="read", summary="List email logs", openapi_extra=LOGS_QUERY)
async def list_logs(request: Request, caller: Acting) -> Response:
    return await _list(request, caller.account_id)


@routes.get("/export", scope="read", summary="Export email logs", openapi_extra=LOGS_FILTERS)
async def export_logs(
    request: Request, caller: Acting, format: Annotated[Format, Query()] = "csv"
) -> Response:
    return await _export(request, caller.account_id, format)


@routes.get("/{message_id}", scope="read", summary="One email log")
async def get_log(request: Request, message_id: MessageId, caller: Acting) -> Response:
    return await _detail(request, caller.account_id, message_id)


@router.get(
    "/api/accounts/{account_id}/email_logs/{message_id}/raw",
    summary="The raw message, through a signed expiring link",
)
async def raw_message(
    request: Request,
    account_id: Id,
    message_id: MessageId,
    expires: Annotated[int, Query(ge=0, le=2**40)],
    signature: Annotated[str, Query(min_length=64, max_length=64)],
) -> Response:
    services = _services(request)
    if not logs.link_valid(services, account_id, message_id, expires, signature):
        return general_error(403, "This link is invalid or has expired")
    raw = await logs.raw_body(services, account_id, message_id)
    if raw is None:
        return general_error(410, "The message body is no longer stored (body retention)")
    headers = {"Content-Disposition": f'attachment; filename="{message_id}.eml"'}
    return Response(raw, media_type="message/rfc822", headers=headers)
