"""Sending domains: add, the DNS records to publish (each with a copy button and the
status of its last check), verify now, DKIM keys and rotation, delete.

Use cases are the domains API's (services/domains.py).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.errors import Conflict, NotFound, ValidationFailed
from postroom.services import domains

router = APIRouter()


def _problem(exc: Exception) -> str:
    if isinstance(exc, Conflict):
        return "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())
    if isinstance(exc, ValidationFailed):
        return "; ".join(exc.errors)
    return str(exc)


@router.get("/ui/domains")
async def domain_list(request: Request, error: str = "") -> Response:
    viewer = await web.viewer_of(request)
    found = await domains.list_domains(web.services_of(request), viewer.account_id)
    return web.render(request, "domains.html", title="Sending domains", domains=found, error=error)


@router.post("/ui/domains")
async def domain_create(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    services = web.services_of(request)
    form = await request.form()
    try:
        view = await domains.create(services, viewer.account_id, form.get("name"))
    except (Conflict, ValidationFailed) as exc:
        found = await domains.list_domains(services, viewer.account_id)
        return web.render(
            request,
            "domains.html",
            422,
            title="Sending domains",
            domains=found,
            error=_problem(exc),
        )
    return web.redirect(f"/ui/domains/{view.row['id']}", request)


@router.get("/ui/domains/{domain_id}")
async def domain_detail(request: Request, domain_id: int) -> Response:
    viewer = await web.viewer_of(request)
    try:
        view = await domains.get(web.services_of(request), viewer.account_id, domain_id)
    except NotFound:
        return web.render(request, "error.html", 404, title="Not found", message="No such domain.")
    return web.render(request, "domain.html", title=view.row["domain_name"], d=view)


@router.post("/ui/domains/{domain_id}/{action}")
async def domain_action(request: Request, domain_id: int, action: str) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    services = web.services_of(request)
    try:
        if action == "verify":
            await domains.verify(services, viewer.account_id, domain_id)
        elif action == "rotate":
            await domains.rotate(services, viewer.account_id, domain_id)
        elif action == "delete":
            await domains.delete(services, viewer.account_id, domain_id)
            return web.redirect("/ui/domains", request)
        else:
            raise NotFound("action")
    except NotFound:
        return web.render(request, "error.html", 404, title="Not found", message="No such domain.")
    except (Conflict, ValidationFailed) as exc:
        view = await domains.get(services, viewer.account_id, domain_id)
        return web.render(
            request,
            "domain.html",
            409,
            title=view.row["domain_name"],
            d=view,
            error=_problem(exc),
        )
    return web.redirect(f"/ui/domains/{domain_id}", request)
