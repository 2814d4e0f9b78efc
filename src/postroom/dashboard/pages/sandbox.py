"""Sandbox: projects and inboxes, an inbox's captured mail (the list refreshes itself
every few seconds with htmx, so new mail appears without a reload), one message in
HTML / text / raw / headers / attachments tabs, and the inbox's credentials.

Use cases are the sandbox API's (postroom.sandbox.inboxes and .messages).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.dashboard.pages import preview
from postroom.errors import Conflict, NotFound
from postroom.sandbox import inboxes, messages
from postroom.sandbox.credentials import smtp_password

router = APIRouter()

POLL_SECONDS = 3


def _not_found(request: Request) -> Response:
    return web.render(
        request, "error.html", 404, title="Not found", message="No such inbox or message here."
    )


async def _form(request: Request) -> dict[str, str]:
    form = await request.form()
    return {k: v for k, v in form.items() if isinstance(v, str)}


@router.get("/ui/sandbox")
async def projects(request: Request, error: str = "") -> Response:
    viewer = await web.viewer_of(request)
    found = await inboxes.list_projects(web.services_of(request), viewer.account_id)
    return web.render(request, "sandbox.html", title="Sandbox", projects=found, error=error)


@router.post("/ui/sandbox/projects")
async def create_project(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    form = await _form(request)
    try:
        await inboxes.create_project(web.services_of(request), viewer.account_id, form.get("name"))
    except Conflict as exc:
        return await _sandbox_error(request, exc)
    return web.redirect("/ui/sandbox", request)


async def _sandbox_error(request: Request, exc: Conflict) -> Response:
    viewer = await web.viewer_of(request)
    found = await inboxes.list_projects(web.services_of(request), viewer.account_id)
    message = "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())
    return web.render(request, "sandbox.html", 422, title="Sandbox", projects=found, error=message)


@router.post("/ui/sandbox/projects/{project_id}/inboxes")
async def create_inbox(request: Request, project_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    form = await _form(request)
    try:
        view = await inboxes.create_inbox(
            web.services_of(request), viewer.account_id, project_id, form.get("name")
        )
    except NotFound:
        return _not_found(request)
    except Conflict as exc:
        return await _sandbox_error(request, exc)
    return web.redirect(f"/ui/sandbox/{view.row['id']}", request)


@router.post("/ui/sandbox/projects/{project_id}/delete")
async def delete_project(request: Request, project_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    try:
        await inboxes.delete_project(web.services_of(request), viewer.account_id, project_id)
    except NotFound:
        return _not_found(request)
    return web.redirect("/ui/sandbox", request)


async def _inbox_context(
    request: Request, inbox_id: int, search: str, before: int = 0
) -> dict[str, Any]:
    """The inbox and one page of its messages (newest first; ``before``: older than it)."""
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    view = await inboxes.get_inbox(services, viewer.account_id, inbox_id)
    rows = await messages.list_messages(
        services, viewer.account_id, inbox_id, search=search or None, last_id=before or None
    )
    older = int(rows[-1]["id"]) if len(rows) == messages.PAGE_SIZE else 0
    return {"inbox": view, "messages": rows, "search": search, "before": before, "older": older}


@router.get("/ui/sandbox/{inbox_id}")
async def inbox(
    request: Request, inbox_id: int, q: str = "", open: int = 0, before: int = 0
) -> Response:
    try:
        context = await _inbox_context(request, inbox_id, q, before)
    except NotFound:
        return _not_found(request)
    viewer: web.Viewer = request.state.viewer
    services = web.services_of(request)
    row = context["inbox"].row
    password = smtp_password(services.get_sealer(), row) if viewer.can_write else None
    host = request.url.hostname or "localhost"
    return web.render(
        request,
        "inbox.html",
        title=row["name"],
        poll=POLL_SECONDS,
        selected=open,
        password=password,
        smtp_host=host,
        smtp_port=services.settings.submission.port,
        base_url=str(request.base_url).rstrip("/"),
        **context,
    )


@router.get("/ui/sandbox/{inbox_id}/messages")
async def inbox_messages(request: Request, inbox_id: int, q: str = "", open: int = 0) -> Response:
    """The message list alone: what the inbox page polls."""
    try:
        context = await _inbox_context(request, inbox_id, q)
    except NotFound:
        return _not_found(request)
    return web.render(request, "_inbox_messages.html", selected=open, poll=POLL_SECONDS, **context)


@router.post("/ui/sandbox/{inbox_id}/{action}")
async def inbox_action(request: Request, inbox_id: int, action: str) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    services = web.services_of(request)
    actions = {
        "clean": inboxes.clean_inbox,
        "read": inboxes.mark_all_read,
        "reset-credentials": inboxes.reset_credentials,
        "delete": inboxes.delete_inbox,
    }
    act = actions.get(action)
    if act is None:
        return _not_found(request)
    try:
        await act(services, viewer.account_id, inbox_id)
    except NotFound:
        return _not_found(request)
    return web.redirect("/ui/sandbox" if action == "delete" else f"/ui/sandbox/{inbox_id}", request)


def _parts(raw: bytes) -> dict[str, Any]:
    return {
        "headers": list(messages.mail_headers(raw).items()),
        "text": messages.body_text(raw, "plain"),
        "raw": raw.decode("utf-8", "replace"),
        "attachments": messages.attachments(raw),
    }


@router.get("/ui/sandbox/{inbox_id}/m/{message_id}")
async def message(request: Request, inbox_id: int, message_id: int, images: int = 0) -> Response:
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    try:
        row, parts = await messages.read_part(
            services, viewer.account_id, inbox_id, message_id, _parts
        )
        if viewer.can_write and not row["is_read"]:
            await messages.set_read(services, viewer.account_id, inbox_id, message_id, True)
        view = await inboxes.get_inbox(services, viewer.account_id, inbox_id)
    except NotFound:
        return _not_found(request)
    base = f"/ui/sandbox/{inbox_id}/m/{message_id}"
    return web.render(
        request,
        "sandbox_message.html",
        title=row["subject"] or "(no subject)",
        inbox=view,
        m=row,
        parts=parts,
        images=bool(images),
        preview_url=f"{base}/preview",
        attachment_base=f"{base}/attachments",
    )


@router.get("/ui/sandbox/{inbox_id}/m/{message_id}/preview")
async def message_preview(
    request: Request, inbox_id: int, message_id: int, images: int = 0
) -> Response:
    viewer = await web.viewer_of(request)
    try:
        _, body = await messages.read_part(
            web.services_of(request),
            viewer.account_id,
            inbox_id,
            message_id,
            lambda raw: messages.body_text(raw, "html"),
        )
    except NotFound:
        return preview.missing()
    return preview.html(body, remote_images=bool(images))


@router.get("/ui/sandbox/{inbox_id}/m/{message_id}/attachments/{attachment_id}")
async def message_attachment(
    request: Request, inbox_id: int, message_id: int, attachment_id: int
) -> Response:
    viewer = await web.viewer_of(request)
    try:
        _, part = await messages.read_part(
            web.services_of(request),
            viewer.account_id,
            inbox_id,
            message_id,
            lambda raw: messages.attachment(raw, attachment_id),
        )
    except NotFound:
        return _not_found(request)
    return preview.download(part.content, part.filename)


@router.post("/ui/sandbox/{inbox_id}/m/{message_id}/{action}")
async def message_action(request: Request, inbox_id: int, message_id: int, action: str) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    services = web.services_of(request)
    try:
        if action == "delete":
            await messages.delete_message(services, viewer.account_id, inbox_id, message_id)
            return web.redirect(f"/ui/sandbox/{inbox_id}", request)
        if action == "unread":
            await messages.set_read(services, viewer.account_id, inbox_id, message_id, False)
            return web.redirect(f"/ui/sandbox/{inbox_id}", request)
    except NotFound:
        return _not_found(request)
    return _not_found(request)
