"""The signed-in user's own page: who they are, their role, and the second factor
(TOTP, F11's services/users.py): begin shows the secret and its otpauth URI once;
confirming with a code enables it and shows the one-time recovery codes once.

Also the account switcher's action (the form is in the layout): the session then acts in
the chosen account, one the user holds an access in; any other is refused.
"""

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


@router.post("/ui/account/switch")
async def switch(request: Request) -> Response:
    await web.viewer_of(request)
    services = web.services_of(request)
    form = await request.form()
    chosen = str(form.get("account_id") or "")
    token = request.cookies.get(web.session_cookie(request), "")
    try:
        if not chosen.isdigit():
            raise NotFound("account")
        await services.db.write(user_service.select_account(services, token, int(chosen)))
    except NotFound:
        # The same answer for an account that does not exist and one of someone else.
        return web.render(
            request,
            "error.html",
            403,
            title="Not allowed",
            message="You have no access to that account.",
        )
    # The overview: the page shown before may be an object of the other account.
    return web.redirect("/", request)
