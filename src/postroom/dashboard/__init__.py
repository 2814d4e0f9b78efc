"""The web dashboard: server-rendered pages (Jinja2 + the vendored htmx) at ``/`` and
``/ui/…`` on the transactional listener, behind F11's users and sessions.

:func:`install` adds the pages to the API's app. Routes are left out of the OpenAPI
document (they are not API). web.py holds the security plumbing (CSP, cookies, CSRF,
roles); each module of pages/ one section of the dashboard.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.dashboard.audit import DashboardAudit
from postroom.dashboard.pages import (
    account,
    auth,
    domains,
    logs,
    overview,
    people,
    sandbox,
    static,
    suppressions,
    templates,
    tokens,
    webhooks,
)


def install(app: FastAPI) -> None:
    """Mount the dashboard's routes and its error pages on ``app``."""
    for module in (
        static,
        auth,
        overview,
        logs,
        sandbox,
        domains,
        templates,
        suppressions,
        tokens,
        webhooks,
        people,
        account,
    ):
        app.include_router(module.router, include_in_schema=False)
    app.add_middleware(DashboardAudit)
    app.add_exception_handler(web.NeedLogin, _need_login)
    app.add_exception_handler(web.NotAllowed, _not_allowed)
    app.add_exception_handler(web.BadCsrf, _bad_csrf)


async def _need_login(request: Request, exc: Exception) -> Response:
    if request.headers.get("hx-request"):
        return web.security_headers(Response(status_code=401, headers={"HX-Redirect": "/ui/login"}))
    return web.redirect("/ui/login")


async def _not_allowed(request: Request, exc: Exception) -> Response:
    return web.render(
        request,
        "error.html",
        status=403,
        title="Not allowed",
        message="Your role in this account (viewer) may look, not change.",
    )


async def _bad_csrf(request: Request, exc: Exception) -> Response:
    return web.render(
        request,
        "error.html",
        status=403,
        title="Form expired",
        message="This form was not sent from this dashboard session. Reload the page "
        "and try again.",
    )
