"""Audit every successful change made through the API (the routes' own services need not).

An ASGI middleware: for a POST, PUT, PATCH or DELETE under ``/api/`` that succeeds (2xx),
it appends one audit entry (storage/repos/audit.py :func:`append`, the only writer)
naming the token and address that made it, the operation
(``PATCH /sending_domains/{domain_id}``: the same on both path families), the object it
touched (the last path parameter) and the request body, with secrets redacted
(domain/audit.py). So domains, suppressions, templates, sandbox inboxes and their
credentials, settings such as retention, and any route added later are on the record
without touching their code.

Operations whose service writes a richer entry itself (before/after values: accounts,
API tokens, users) say so with ``x-postroom-audited`` in their OpenAPI operation and are
skipped here. Sending (``/api/send``, ``/api/batch``) is not a change of configuration
and is not audited.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from postroom.api.families import ACCOUNT_PREFIX, ALIAS_PREFIX
from postroom.domain.audit import Actor
from postroom.net.capture import call_capturing
from postroom.storage.repos import audit

AUDITED_KEY = "x-postroom-audited"
AUDITED: dict[str, Any] = {AUDITED_KEY: True}
_CHANGES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_NOT_CHANGES = ("/api/send", "/api/batch")
_BODY_KEPT = 64 * 1024

log = logging.getLogger(__name__)


class AuditTrail:
    """Records successful API changes in the audit log (see the module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if (
            scope["type"] != "http"
            or scope["method"] not in _CHANGES
            or not path.startswith("/api/")
            or path.startswith(_NOT_CHANGES)
        ):
            await self.app(scope, receive, send)
            return
        status, body = await call_capturing(self.app, scope, receive, send, _BODY_KEPT)
        if 200 <= status < 300:
            await self._record(scope, body)

    async def _record(self, scope: Scope, body: bytes) -> None:
        route = scope.get("route")
        extra = getattr(route, "openapi_extra", None) or {}
        state = scope.get("state") or {}
        who = state.get("principal")
        if route is None or who is None or extra.get(AUDITED_KEY):
            return
        caller = state.get("caller")
        account_id = caller.account_id if caller is not None else who.account_id
        template = str(getattr(route, "path", ""))
        for prefix in (ACCOUNT_PREFIX, ALIAS_PREFIX):
            if template.startswith(prefix + "/"):
                template = template[len(prefix) :]
                break
        params = {k: v for k, v in (scope.get("path_params") or {}).items() if k != "account_id"}
        client = scope.get("client")
        actor = Actor("token", str(who.token_id), who.token_name, client[0] if client else "")
        services = scope["app"].state.services
        target_type = template.strip("/").split("/")[0] or "api"
        target_id = list(params.values())[-1] if params else ""
        after = _shown(body)
        try:
            await services.db.write(
                lambda conn: audit.append(
                    conn,
                    account_id=account_id,
                    actor=actor,
                    action=f"{scope['method']} {template}",
                    target_type=target_type,
                    target_id=target_id,
                    after=after,
                    now=services.clock.now(),
                )
            )
        except Exception:
            # The change itself is committed; losing its record is logged loudly.
            log.exception("could not record %s %s in the audit log", scope["method"], template)


def _shown(body: bytes) -> Any:
    """The request body as recorded: JSON as is (secrets redacted on append), else its size."""
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"body_bytes": len(body)}
