"""Webhooks: list and create (the signing secret is shown once), and per webhook its
delivery log, a test event, replay of a time range, pause/resume and delete.

Use cases are F9's webhook service (services/webhooks.py), the same the API calls, so
the page checks what the API checks (URL forms, SSRF, event types); its refusals are
shown on the page. Owners and admins change, viewers read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.errors import Conflict
from postroom.services import webhooks

router = APIRouter()

EVENT_TYPES = (
    "delivery",
    "soft_bounce",
    "bounce",
    "suspension",
    "unsubscribe",
    "open",
    "spam_complaint",
    "click",
    "reject",
)
TYPES = ("email_sending", "audit_log", "inbound_receiving")
LOG_ROWS = 50


def _refusal(exc: Conflict) -> str:
    return "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())


def _body(form: FormData) -> dict[str, Any]:
    """The API's create body (``{"webhook": …}``) from the form; the service checks it."""
    kind = str(form.get("webhook_type") or "email_sending")
    body: dict[str, Any] = {
        "url": str(form.get("url") or "").strip(),
        "webhook_type": kind,
        "payload_format": str(form.get("payload_format") or "json"),
    }
    if kind == "email_sending":
        body["sending_stream"] = str(form.get("sending_stream") or "transactional")
        body["event_types"] = [str(e) for e in form.getlist("event_types")]
    if kind == "inbound_receiving":
        inbox = str(form.get("inbound_inbox_id") or "")
        body["inbound_inbox_id"] = int(inbox) if inbox.isdigit() else None
    return {"webhook": body}


async def _list(request: Request, status: int = 200, **extra: object) -> Response:
    viewer: web.Viewer = request.state.viewer
    rows = await webhooks.list_webhooks(web.services_of(request), viewer.account_id)
    return web.render(
        request,
        "webhooks.html",
        status,
        title="Webhooks",
        rows=rows,
        event_types=EVENT_TYPES,
        types=TYPES,
        **extra,
    )


@router.get("/ui/webhooks")
async def webhook_list(request: Request) -> Response:
    await web.viewer_of(request)
    return await _list(request)


@router.post("/ui/webhooks")
async def webhook_create(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    body = _body(await request.form())
    try:
        made = await webhooks.create(web.services_of(request), viewer.account_id, body)
    except Conflict as exc:
        return await _list(request, 422, error=_refusal(exc))
    return await _list(request, created=made.row, secret=made.secret)


async def _detail(
    request: Request, webhook_id: int, status: int = 200, **extra: object
) -> Response:
    viewer: web.Viewer = request.state.viewer
    services = web.services_of(request)
    row = await webhooks.get(services, viewer.account_id, webhook_id)
    log = await webhooks.delivery_log(services, viewer.account_id, webhook_id, limit=LOG_ROWS)
    return web.render(
        request,
        "webhook.html",
        status,
        title=f"Webhook {webhook_id}",
        hook=row,
        log=log,
        **extra,
    )


@router.get("/ui/webhooks/{webhook_id}")
async def webhook_detail(request: Request, webhook_id: int) -> Response:
    await web.viewer_of(request)
    return await _detail(request, webhook_id)


@router.post("/ui/webhooks/{webhook_id}/test")
async def webhook_test(request: Request, webhook_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    entry = await webhooks.send_test(web.services_of(request), viewer.account_id, webhook_id)
    outcome = "answered 2xx" if entry["ok"] else f"failed: {entry['error'] or entry['status']}"
    return await _detail(request, webhook_id, notice=f"Test event sent: {outcome}.")


def _stamp(value: object, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value or ""))
    except ValueError:
        raise Conflict({name: ["must be a date and time"]}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@router.post("/ui/webhooks/{webhook_id}/replay")
async def webhook_replay(request: Request, webhook_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    form = await request.form()
    try:
        since, until = _stamp(form.get("since"), "since"), _stamp(form.get("until"), "until")
        done = await webhooks.replay(
            web.services_of(request), viewer.account_id, webhook_id, since, until
        )
    except Conflict as exc:
        return await _detail(request, webhook_id, 422, error=_refusal(exc))
    notice = f"Replaying {done.events} event(s) in {done.batches} batch(es)."
    return await _detail(request, webhook_id, notice=notice)


@router.post("/ui/webhooks/{webhook_id}/active")
async def webhook_active(request: Request, webhook_id: int) -> Response:
    """Pause or resume (an update also resumes a webhook paused for failing)."""
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    active = (await request.form()).get("active") == "true"
    await webhooks.update(
        web.services_of(request), viewer.account_id, webhook_id, {"webhook": {"active": active}}
    )
    return web.redirect(f"/ui/webhooks/{webhook_id}", request)


@router.post("/ui/webhooks/{webhook_id}/delete")
async def webhook_delete(request: Request, webhook_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    await webhooks.delete(web.services_of(request), viewer.account_id, webhook_id)
    return web.redirect("/ui/webhooks", request)
