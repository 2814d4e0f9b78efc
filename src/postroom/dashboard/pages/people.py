"""Users and roles (the account's users, pending invitations, invite by link) and the
audit log (newest first, paged, filtered by action), on F11's services.

An invitation link is shown once to whoever made it; the invitee opens it, chooses a
password and is signed in. Invited users act in the account the invitation was for
only when it is their home account (a user belongs to one account here).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.requests import Request
from starlette.responses import Response

from postroom.dashboard import web
from postroom.dashboard.pages.tokens import actor_of
from postroom.domain import access
from postroom.errors import Conflict, Forbidden, NotFound, Unauthorized
from postroom.services import accesses
from postroom.services import users as user_service
from postroom.storage.repos import accounts as account_repo
from postroom.storage.repos import audit as audit_repo
from postroom.storage.tables import invitations, users

router = APIRouter()

AUDIT_PAGE = 50
_NAMES = {access.OWNER: "owner", access.ADMIN: "admin", access.VIEWER: "viewer"}


def _people(conn: Connection, account_id: int) -> dict[str, Any]:
    accesses = account_repo.list_accesses(conn, account_id, ("User",))
    perms = account_repo.permissions(conn, [int(a["id"]) for a in accesses])
    role_of: dict[int, str] = {}
    access_of: dict[int, int] = {}
    for found in accesses:
        access_of[int(found["specifier_id"])] = int(found["id"])
        levels = [
            p.level for p in perms.get(int(found["id"]), []) if p.resource_type == access.ACCOUNT
        ]
        role_of[int(found["specifier_id"])] = _NAMES.get(max(levels, default=0), "none")
    rows = (
        conn.execute(
            select(users).where(users.c.id.in_(list(role_of)) | (users.c.account_id == account_id))
        )
        .mappings()
        .all()
    )
    pending = (
        conn.execute(
            select(invitations)
            .where(invitations.c.account_id == account_id, invitations.c.accepted_at.is_(None))
            .order_by(invitations.c.id.desc())
        )
        .mappings()
        .all()
    )
    return {
        "users": [
            {
                **dict(r),
                "access": role_of.get(int(r["id"]), str(r["role"])),
                "access_id": access_of.get(int(r["id"])),
            }
            for r in rows
        ],
        "invitations": [dict(r) for r in pending],
    }


async def _page(request: Request, status: int = 200, **extra: object) -> Response:
    viewer: web.Viewer = request.state.viewer
    found = await web.services_of(request).db.read(lambda c: _people(c, viewer.account_id))
    return web.render(
        request, "users.html", status, title="Users", roles=tuple(access.ROLES), **found, **extra
    )


@router.get("/ui/users")
async def people(request: Request) -> Response:
    await web.viewer_of(request)
    return await _page(request)


@router.post("/ui/users/invite")
async def invite(request: Request) -> Response:
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    form = await request.form()
    role = str(form.get("role") or "viewer")
    if role == "owner" and viewer.role != "owner":
        raise web.NotAllowed()
    services = web.services_of(request)
    try:
        work = user_service.invite(
            services,
            viewer.account_id,
            str(form.get("email") or ""),
            role,
            actor_of(request, viewer),
        )
        invited = await services.db.write(work)
    except Conflict as exc:
        message = "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())
        return await _page(request, 422, error=message)
    link = f"{str(request.base_url).rstrip('/')}/ui/invitation/{invited.token}"
    return await _page(request, invitation_link=link)


@router.post("/ui/users/{user_id}/role")
async def change_role(request: Request, user_id: int) -> Response:
    """Make a user of this account an admin or a viewer (F11's bulk permissions update:
    the user's role follows). The owner's role is not changed here: ownership moves only
    from the command line, as the API has it."""
    viewer = await web.viewer_of(request)
    web.require_write(viewer)
    role = str((await request.form()).get("role") or "")
    if role not in ("admin", "viewer"):
        return await _page(request, 422, error="role must be admin or viewer")
    services = web.services_of(request)
    found = await services.db.read(lambda c: _people(c, viewer.account_id))
    access_id = next(
        (u["access_id"] for u in found["users"] if int(u["id"]) == user_id and u["access_id"]),
        None,
    )
    if access_id is None:
        raise NotFound("user")
    item = {"resource_type": "account", "resource_id": viewer.account_id, "access_level": role}
    try:
        await services.db.write(
            accesses.update_permissions(
                services, viewer.account_id, access_id, [item], actor_of(request, viewer)
            )
        )
    except Forbidden:
        return await _page(request, 403, error="The owner's role is changed from the command line.")
    return web.redirect("/ui/users", request)


@router.get("/ui/invitation/{token}")
async def invitation_form(request: Request, token: str) -> Response:
    return _invitation(request, token)


def _invitation(request: Request, token: str, status: int = 200, error: str = "") -> Response:
    seed = request.cookies.get(web.login_cookie(request)) or web.new_secret()
    response = web.render(
        request,
        "invitation.html",
        status,
        title="Accept invitation",
        token=token,
        csrf=web.csrf_for(web.services_of(request), "login:" + seed),
        error=error,
    )
    if not request.cookies.get(web.login_cookie(request)):
        web.set_cookie(response, request, web.login_cookie(request), seed, 3600)
    return response


@router.post("/ui/invitation/{token}")
async def invitation_accept(request: Request, token: str) -> Response:
    services = web.services_of(request)
    seed = request.cookies.get(web.login_cookie(request), "")
    if not seed:
        return _invitation(request, token, 403, "The form expired; try again.")
    await web.check_csrf(request, web.csrf_for(services, "login:" + seed))
    form = await request.form()
    password = str(form.get("password") or "")
    try:
        work = user_service.accept_invitation(
            services, token, password, str(form.get("name") or "")
        )
        await services.db.write(work)
    except Conflict as exc:
        message = "; ".join(f"{k} {', '.join(v)}" for k, v in exc.field_errors.items())
        return _invitation(request, token, 422, message)
    except Unauthorized:
        return _invitation(request, token, 410, "This invitation was used or has expired.")
    return web.redirect("/ui/login")


@router.get("/ui/audit")
async def audit_log(request: Request, action: str = "", before: int = 0) -> Response:
    viewer = await web.viewer_of(request)

    def read(conn: Connection) -> list[dict[str, Any]]:
        return audit_repo.entries(
            conn,
            account_id=viewer.account_id,
            action=action or None,
            before_id=before or None,
            limit=AUDIT_PAGE + 1,
        )

    rows = await web.services_of(request).db.read(read)
    more = len(rows) > AUDIT_PAGE
    rows = rows[:AUDIT_PAGE]
    return web.render(
        request,
        "audit.html",
        title="Audit log",
        rows=rows,
        action=action,
        before=before,
        next_before=int(rows[-1]["id"]) if more and rows else 0,
    )
