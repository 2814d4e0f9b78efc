"""Email templates: list, create, edit with a live preview rendered with sample
variables (JSON), versions, delete.

The live preview renders the draft in the editor (not yet saved) with the same engine
and limits as sending (domain/emailtemplates.py, services/templates.py's options). The
rendered HTML is kept for a few minutes under a random handle bound to the user and
shown from its own URL in a sandboxed iframe under the preview CSP, like any email.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.dashboard.pages import preview
from postroom.domain.emailtemplates import Rendered, compile_email_template
from postroom.domain.handlebars import TemplateError
from postroom.errors import Conflict, NotFound
from postroom.services import templates
from postroom.services.cache import TtlCache

router = APIRouter()

DRAFT_SECONDS = 600.0
PER_PAGE = 25
FIELDS = ("name", "subject", "category", "body_html", "body_text")
SAMPLE = '{"name": "Ada", "company": "Example Ltd"}'


def _drafts(request: Request) -> TtlCache[str, tuple[int, str]]:
    state = request.app.state
    if not hasattr(state, "dashboard_drafts"):
        state.dashboard_drafts = TtlCache(DRAFT_SECONDS, max_entries=2_000)
    drafts: TtlCache[str, tuple[int, str]] = state.dashboard_drafts
    return drafts


def _problem(exc: Conflict) -> str:
    return "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())


@router.get("/ui/templates")
async def template_list(request: Request, page: int = 1) -> Response:
    viewer = await web.viewer_of(request)
    page = max(page, 1)
    rows, more = await templates.page(web.services_of(request), viewer.account_id, page, PER_PAGE)
    return web.render(request, "templates.html", title="Templates", rows=rows, page=page, more=more)


def _editor(
    request: Request, status: int = 200, *, t: dict[str, Any] | None, **context: Any
) -> Response:
    return web.render(
        request,
        "template_edit.html",
        status,
        title=(t or {}).get("name") or "New template",
        t=t or {"name": "", "subject": "", "category": "", "body_html": "", "body_text": ""},
        sample=context.pop("sample", SAMPLE),
        **context,
    )


@router.get("/ui/templates/new")
async def template_new(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    return _editor(request, t=None)


async def _fields(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: str(form.get(k) or "") for k in FIELDS}


@router.post("/ui/templates/new")
async def template_create(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    fields = await _fields(request)
    try:
        row = await templates.create(web.services_of(request), viewer.account_id, fields)
    except Conflict as exc:
        return _editor(request, 422, t=dict(fields), error=_problem(exc))
    return web.redirect(f"/ui/templates/{row['id']}", request)


@router.get("/ui/templates/{template_id}")
async def template_edit(request: Request, template_id: int) -> Response:
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    try:
        row = await templates.get(services, viewer.account_id, template_id)
        versions = await templates.versions(services, viewer.account_id, template_id)
    except NotFound:
        return web.render(
            request, "error.html", 404, title="Not found", message="No such template."
        )
    return _editor(request, t=row, versions=versions)


@router.post("/ui/templates/{template_id}")
async def template_save(request: Request, template_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    fields = await _fields(request)
    try:
        await templates.update(web.services_of(request), viewer.account_id, template_id, fields)
    except NotFound:
        return web.render(
            request, "error.html", 404, title="Not found", message="No such template."
        )
    except Conflict as exc:
        return _editor(request, 422, t={**fields, "id": template_id}, error=_problem(exc))
    return web.redirect(f"/ui/templates/{template_id}", request)


@router.post("/ui/templates/{template_id}/delete")
async def template_delete(request: Request, template_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    with contextlib.suppress(NotFound):
        await templates.delete(web.services_of(request), viewer.account_id, template_id)
    return web.redirect("/ui/templates", request)


def _render_draft(fields: dict[str, str], sample: str, request: Request) -> Rendered:
    try:
        variables = json.loads(sample or "{}")
    except ValueError as exc:
        raise Conflict({"sample variables": ["are not JSON"]}) from exc
    if not isinstance(variables, dict):
        raise Conflict({"sample variables": ["must be a JSON object"]})
    try:
        compiled = compile_email_template(
            id=0,
            uuid="",
            version=0,
            category=fields["category"] or None,
            subject=fields["subject"],
            body_html=fields["body_html"] or None,
            body_text=fields["body_text"] or None,
        )
        options = templates.render_options(web.services_of(request).settings.templates)
        return compiled.render(variables, options)
    except TemplateError as exc:
        raise Conflict({"template": [str(exc)]}) from exc


@router.post("/ui/templates-preview")
async def template_preview(request: Request) -> Response:
    """The live preview (htmx): subject, text and a sandboxed iframe of the HTML."""
    viewer = await web.viewer_of(request)
    fields = await _fields(request)
    form = await request.form()
    sample = str(form.get("sample") or "")
    try:
        rendered = await asyncio.to_thread(_render_draft, fields, sample, request)
    except Conflict as exc:
        return web.render(request, "_template_preview.html", error=_problem(exc))
    handle = web.new_secret()
    _drafts(request).put(handle, (viewer.user_id, rendered.html or ""))
    return web.render(request, "_template_preview.html", rendered=rendered, handle=handle)


@router.get("/ui/templates-preview/{handle}")
async def template_preview_html(request: Request, handle: str) -> Response:
    viewer = await web.viewer_of(request)
    found = _drafts(request).get(handle)
    if found is None or found[0] != viewer.user_id:
        return preview.missing()
    return preview.html(found[1], remote_images=False)
