"""API tokens: list, create (the value is shown once), revoke.

Use cases are F11's token service (services/tokens.py): a token made here gets an
account-level permission (admin: manage and send; viewer: read) and is audited with the
user who made it.
"""

from __future__ import annotations

import contextlib
from datetime import timedelta

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.domain import access
from postroom.domain.audit import Actor
from postroom.errors import Conflict, NotFound
from postroom.services import tokens

router = APIRouter()

LEVELS = {"admin": access.ADMIN, "viewer": access.VIEWER}


def actor_of(request: Request, viewer: web.Viewer) -> Actor:
    source = request.client.host if request.client else ""
    return Actor("user", str(viewer.user_id), viewer.email, source)


async def _page(request: Request, status: int = 200, **extra: object) -> Response:
    viewer: web.Viewer = request.state.viewer
    rows = await web.services_of(request).db.read(tokens.listed(viewer.account_id))
    now = web.services_of(request).clock.now()
    live = [
        r
        for r in rows
        if r["revoked_at"] is None and (r["expires_at"] is None or r["expires_at"] > now)
    ]
    return web.render(
        request,
        "tokens.html",
        status,
        title="API tokens",
        rows=live,
        base_url=str(request.base_url).rstrip("/"),
        **extra,
    )


@router.get("/ui/tokens")
async def token_list(request: Request) -> Response:
    await web.viewer_of(request)
    return await _page(request)


@router.post("/ui/tokens")
async def token_create(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    form = await request.form()
    level = LEVELS.get(str(form.get("level") or "admin"), access.ADMIN)
    days = str(form.get("expires_days") or "")
    services = web.services_of(request)
    expires: object = tokens.UNSET
    if days.isdigit() and int(days) > 0:
        expires = (services.clock.now() + timedelta(days=int(days))).isoformat()
    elif days == "never":
        expires = None
    resources = [
        {"resource_type": "account", "resource_id": viewer.account_id, "access_level": level}
    ]
    try:
        issued = await services.db.write(
            tokens.create(
                services,
                viewer.account_id,
                actor_of(request, viewer),
                form.get("name"),
                resources,
                expires,
            )
        )
    except Conflict as exc:
        message = "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())
        return await _page(request, 422, error=message)
    return await _page(request, created=issued.value, created_name=issued.row["name"])


@router.post("/ui/tokens/{token_id}/revoke")
async def token_revoke(request: Request, token_id: int) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    services = web.services_of(request)
    with contextlib.suppress(NotFound):
        await services.db.write(
            tokens.revoke(services, viewer.account_id, token_id, actor_of(request, viewer))
        )
    # The API's cached answer for the token is dropped now, not in a few seconds.
    authenticator = getattr(request.app.state, "authenticator", None)
    if authenticator is not None:
        authenticator.forget()
    return web.redirect("/ui/tokens", request)
