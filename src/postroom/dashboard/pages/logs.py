"""Email logs: the API's filters as a form, pages of 50 (keyset, newest first), and one
message with its event timeline, headers, raw source and HTML/text preview.

Everything comes from services/logs.py (the email-logs API's use cases). The HTML
preview is its own response (:mod:`postroom.dashboard.pages.preview`) shown in a
sandboxed iframe.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.dashboard.pages import preview
from postroom.domain.logfilters import EVENT_TYPES, STATUSES, Filter, LogQuery
from postroom.errors import NotFound
from postroom.sandbox.messages import attachment, attachments, body_text, mail_headers
from postroom.services import logs
from postroom.services.logs import Page
from postroom.storage.repos import logs as log_repo
from postroom.storage.repos import rollups as rollup_repo
from postroom.storage.tables import deliveries, messages

router = APIRouter()

COUNT_CAP = 1000
TEXT_FILTERS = (("to", "Recipient"), ("from", "Sender"), ("subject", "Subject"))


def _query(request: Request) -> tuple[LogQuery, dict[str, str]]:
    given = {k: v.strip() for k, v in request.query_params.items() if isinstance(v, str)}
    found: list[Filter] = []
    for name, _ in TEXT_FILTERS:
        if given.get(name):
            found.append(Filter(name, "ci_contain", (given[name],)))
    if given.get("status") in STATUSES:
        found.append(Filter("status", "equal", (given["status"],)))
    if given.get("event") in EVENT_TYPES:
        found.append(Filter("events", "include_event", (given["event"],)))
    if given.get("stream") in ("transactional", "bulk"):
        found.append(Filter("sending_stream", "equal", (given["stream"],)))
    if given.get("category"):
        found.append(Filter("category", "equal", (given["category"],)))
    after = None
    days = given.get("days", "")
    if days.isdigit() and int(days) > 0:
        after = datetime.now(UTC) - timedelta(days=int(days))
    return LogQuery(sent_after=after, filters=tuple(found)), given


def _count(conn: Connection, account_id: int, where: list[Any], query: LogQuery) -> int:
    """How many match, counted up to COUNT_CAP (then shown as "COUNT_CAP+"): an exact
    count walks every matching delivery of the account, seconds over a million."""
    source: Any = deliveries
    if any(f.field in log_repo.MESSAGE_FIELDS for f in query.filters):
        source = deliveries.join(messages, messages.c.id == deliveries.c.message_id)
    capped = (
        select(deliveries.c.id)
        .select_from(source)
        .where(log_repo.account_filter(account_id, where), *where)
        .limit(COUNT_CAP + 1)
        .subquery()
    )
    return int(conn.execute(select(func.count()).select_from(capped)).scalar() or 0)


def _list(conn: Connection, account_id: int, query: LogQuery, after: str) -> Page:
    """One page of 50, newest first, as services/logs.py lists them, with a capped count."""
    # The account's domains as services/logs.py reads them (id <-> name both ways).
    by_key = rollup_repo.domain_ids(conn, [account_id])
    names = {i: n for (_, n), i in by_key.items()}
    ids = {n: i for (_, n), i in by_key.items()}
    where = log_repo.conditions(conn, query, names)
    position = log_repo.position(conn, account_id, after) if after else None
    rows = log_repo.page(conn, account_id, where, position, logs.PAGE_SIZE + 1)
    more = len(rows) > logs.PAGE_SIZE
    rows = rows[: logs.PAGE_SIZE]
    return Page(
        messages=[logs.message_json(r, ids) for r in rows],
        total_count=_count(conn, account_id, where, query),
        next_page_cursor=rows[-1]["id"] if more and rows else None,
    )


@router.get("/ui/logs")
async def log_list(request: Request, after: str = "") -> Response:
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    query, given = _query(request)
    page = await services.db.read(lambda conn: _list(conn, viewer.account_id, query, after))
    keep = {k: v for k, v in given.items() if k != "after" and v}
    return web.render(
        request,
        "logs.html",
        title="Email logs",
        page=page,
        given=given,
        keep=keep,
        text_filters=TEXT_FILTERS,
        statuses=STATUSES,
        events=EVENT_TYPES,
        filtered=bool(query.filters or query.sent_after),
        cap=COUNT_CAP,
    )


async def _raw(request: Request, account_id: int, message_id: str) -> bytes | None:
    return await logs.raw_body(web.services_of(request), account_id, message_id)


@router.get("/ui/logs/{message_id}")
async def log_detail(request: Request, message_id: str, images: int = 0) -> Response:
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    try:
        shown = await logs.detail(services, viewer.account_id, message_id, str(request.base_url))
        raw = await _raw(request, viewer.account_id, message_id)
    except NotFound:
        return web.render(
            request, "error.html", 404, title="No such message", message="It may have expired."
        )
    parts: dict[str, Any] = {}
    if raw is not None:
        parts = {
            "headers": list(mail_headers(raw).items()),
            "text": body_text(raw, "plain"),
            "has_html": bool(body_text(raw, "html")),
            "raw": raw.decode("utf-8", "replace"),
            "attachments": attachments(raw),
        }
    return web.render(
        request,
        "log_detail.html",
        title=shown["subject"] or "(no subject)",
        m=shown,
        parts=parts,
        preview_url=f"/ui/logs/{message_id}/preview",
        images=bool(images),
    )


@router.get("/ui/logs/{message_id}/preview")
async def log_preview(request: Request, message_id: str, images: int = 0) -> Response:
    viewer = await web.viewer_of(request)
    try:
        raw = await _raw(request, viewer.account_id, message_id)
    except NotFound:
        return preview.missing()
    if raw is None:
        return preview.missing()
    return preview.html(body_text(raw, "html"), remote_images=bool(images))


@router.get("/ui/logs/{message_id}/attachments/{attachment_id}")
async def log_attachment(request: Request, message_id: str, attachment_id: int) -> Response:
    viewer = await web.viewer_of(request)
    try:
        raw = await _raw(request, viewer.account_id, message_id)
        if raw is None:
            raise NotFound("message")
        part = attachment(raw, attachment_id)
    except NotFound:
        return web.render(
            request, "error.html", 404, title="Not found", message="No such attachment."
        )
    return preview.download(part.content, part.filename)
