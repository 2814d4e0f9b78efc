"""Audit every change made in the dashboard, as the API's audit trail does for tokens
(api/audittrail.py): an ASGI middleware records each successful (2xx or 3xx) post under
``/ui/`` made by a signed-in user, with the user, their address, the route
(``POST /ui/domains/{domain_id}/{action}``), the object and the form's fields.

The form is re-parsed from the bytes the route read (the route's own parse is not
reachable here); values of secret-looking fields are redacted on append
(domain/audit.py) and the CSRF token and uploads are never kept. Routes whose service
writes a richer entry itself (tokens, invitations, TOTP) and sign-in forms are skipped.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Receive, Scope, Send

from postroom.domain.audit import Actor
from postroom.net.capture import call_capturing
from postroom.storage.repos import audit

log = logging.getLogger(__name__)

# Audited by their services, or not changes of the account (preview renders, sign-in).
SKIPPED = (
    "/ui/login",
    "/ui/logout",
    "/ui/invitation/",
    "/ui/tokens",
    "/ui/users/invite",
    "/ui/account/",
    "/ui/templates-preview",
)
_BODY_KEPT = 64 * 1024


class DashboardAudit:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith("/ui/")
            or path.startswith(SKIPPED)
        ):
            await self.app(scope, receive, send)
            return
        status, body = await call_capturing(self.app, scope, receive, send, _BODY_KEPT)
        if 200 <= status < 400:
            await self._record(scope, body)

    async def _record(self, scope: Scope, body: bytes) -> None:
        state = scope.get("state") or {}
        viewer = state.get("viewer")
        route = scope.get("route")
        if viewer is None or route is None:
            return
        template = str(getattr(route, "path", scope["path"]))
        params = dict(scope.get("path_params") or {})
        client = scope.get("client")
        actor = Actor("user", str(viewer.user_id), viewer.email, client[0] if client else "")
        services = scope["app"].state.services
        target_type = template.removeprefix("/ui/").split("/")[0] or "dashboard"
        target_id = next((v for k, v in params.items() if k.endswith("_id")), "")
        after = _form(scope, body)
        try:
            await services.db.write(
                lambda conn: audit.append(
                    conn,
                    account_id=viewer.account_id,
                    actor=actor,
                    action=f"POST {template}"[:64],
                    target_type=target_type[:32],
                    target_id=str(target_id)[:64],
                    after={"via": "dashboard", **params, **after},
                    now=services.clock.now(),
                )
            )
        except Exception:
            log.exception("could not record POST %s in the audit log", template)


def _form(scope: Scope, body: bytes) -> dict[str, Any]:
    headers = dict(scope.get("headers") or [])
    kind = headers.get(b"content-type", b"").decode("latin-1")
    if not kind.startswith("application/x-www-form-urlencoded"):
        return {"body_bytes": len(body)} if body else {}
    fields = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[:500] for k, v in fields if k != "csrf"}
