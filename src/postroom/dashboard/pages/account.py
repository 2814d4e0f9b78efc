"""The signed-in user's own page: who they are, their role, and the second factor
(TOTP, F11's services/users.py): begin shows the secret and its otpauth URI once;
confirming with a code enables it and shows the one-time recovery codes once."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.dashboard.pages.tokens import actor_of
from postroom.errors import NotFound, Unauthorized
from postroom.services import users as user_service

router = APIRouter()


@router.get("/ui/account")
async def account(request: Request) -> Response:
    await web.viewer_of(request)
    return web.render(request, "account.html", title="Account")


@router.post("/ui/account/totp")
async def totp_begin(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    if viewer.totp_enabled:
        return web.redirect("/ui/account", request)
    enrolment = await services.db.write(user_service.begin_totp(services, viewer.user_id))
    return web.render(request, "account.html", title="Account", enrolment=enrolment)


@router.post("/ui/account/totp/confirm")
async def totp_confirm(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    services = web.services_of(request)
    form = await request.form()
    code = str(form.get("code") or "").strip().replace(" ", "")
    try:
        codes = await services.db.write(
            user_service.confirm_totp(services, viewer.user_id, code, actor_of(request, viewer))
        )
    except (Unauthorized, NotFound):
        return web.render(
            request,
            "account.html",
            422,
            title="Account",
            error="That code did not match; start again.",
        )
    return web.render(request, "account.html", title="Account", recovery=codes, enabled=True)
