"""Suppressions: search by address, pages of 50, add, remove, import a CSV (the upload
shows its progress) and export the account's list as CSV.

Use cases are the suppressions API's (services/suppressions.py).
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from postroom.dashboard import web
from postroom.errors import Conflict, NotFound, ValidationFailed
from postroom.services import suppressions

router = APIRouter()

PER_PAGE = 50
# The largest CSV accepted from the form (the import itself caps its rows).
IMPORT_MAX_BYTES = 20 * 1024 * 1024


async def _page(request: Request, viewer: web.Viewer, email: str, after: str) -> Response:
    return await _render(request, viewer, email, after)


async def _render(
    request: Request, viewer: web.Viewer, email: str, after: str, status: int = 200, **extra: object
) -> Response:
    services = web.services_of(request)
    try:
        rows = await suppressions.list_page(
            services,
            viewer.account_id,
            email=email or None,
            last_id=after or None,
            limit=PER_PAGE + 1,
        )
    except ValidationFailed:
        rows = await suppressions.list_page(
            services, viewer.account_id, email=email or None, limit=PER_PAGE + 1
        )
    more = len(rows) > PER_PAGE
    rows = rows[:PER_PAGE]
    return web.render(
        request,
        "suppressions.html",
        status,
        title="Suppressions",
        rows=rows,
        email=email,
        next_after=str(rows[-1]["id"]) if more and rows else "",
        after=after,
        streams=suppressions.STREAMS,
        **extra,
    )


@router.get("/ui/suppressions")
async def suppression_list(request: Request, email: str = "", after: str = "") -> Response:
    viewer = await web.viewer_of(request)
    return await _page(request, viewer, email.strip(), after)


@router.post("/ui/suppressions")
async def suppression_add(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    form = await request.form()
    email = str(form.get("email") or "")
    stream = str(form.get("stream") or "")
    try:
        for one in suppressions.STREAMS if stream == "both" else (stream,):
            await suppressions.create(
                web.services_of(request), viewer.account_id, viewer.actor, email, one
            )
    except Conflict as exc:
        message = "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())
        return await _render(request, viewer, "", "", 422, error=message)
    return web.redirect("/ui/suppressions", request)


@router.post("/ui/suppressions/{suppression_id}/delete")
async def suppression_remove(request: Request, suppression_id: str) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    with contextlib.suppress(NotFound):
        await suppressions.remove(
            web.services_of(request), viewer.account_id, viewer.actor, suppression_id
        )
    return web.redirect("/ui/suppressions", request)


@router.post("/ui/suppressions/import")
async def suppression_import(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    form = await request.form(max_part_size=IMPORT_MAX_BYTES)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        return await _render(request, viewer, "", "", 422, error="Choose a CSV file to import.")
    data = await upload.read(IMPORT_MAX_BYTES + 1)
    if len(data) > IMPORT_MAX_BYTES:
        return await _render(request, viewer, "", "", 413, error="That file is too large.")
    try:
        result = await suppressions.import_csv(
            web.services_of(request),
            viewer.account_id,
            viewer.actor,
            data.decode("utf-8-sig", "replace"),
        )
    except ValidationFailed as exc:
        return await _render(request, viewer, "", "", 422, error="; ".join(exc.errors))
    return await _render(request, viewer, "", "", imported=result)


@router.get("/ui/suppressions/export.csv")
async def suppression_export(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    stream = suppressions.export_csv(web.services_of(request), viewer.account_id)
    response = StreamingResponse(
        stream,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )
    return web.security_headers(response)
