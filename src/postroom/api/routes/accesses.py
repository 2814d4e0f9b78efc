"""Account accesses, permissions and billing usage (spec §4.7), on both path families.

``GET …/account_accesses`` (filters ``project_ids``, ``sandbox_ids`` or ``inbox_ids``,
``domain_ids`` or the Node SDK's ``domain_uuids`` (a domain's id: Postroom's domains have
no uuid); repeated or ``[]`` spellings), ``DELETE …/account_accesses/{id}``,
``PUT …/account_accesses/{id}/permissions/bulk``, ``GET …/permissions/resources`` and
``GET …/billing/usage``. Accesses and permissions need the ``admin`` scope (the contract:
"account admin/owner"); usage needs ``read``. Services: services/accesses.py,
services/usage.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.api.accountdocs import BULK_PERMISSIONS
from postroom.api.audittrail import AUDITED
from postroom.api.auth import actor_of, services_of
from postroom.api.body import read_json
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.domain import access
from postroom.errors import ValidationFailed
from postroom.services import accesses, usage

router = APIRouter(tags=["account accesses"])
account_accesses = Routes(router, "/account_accesses")
permissions = Routes(router, "/permissions")
billing = Routes(router, "/billing")
BODY_LIMIT = 64 * 1024


def _ids(request: Request, *names: str) -> list[int] | None:
    """A list filter given as ``name=1&name=2`` or ``name[]=1`` (None when absent)."""
    values: list[str] = []
    for name in names:
        values += request.query_params.getlist(name) + request.query_params.getlist(name + "[]")
    if not values:
        return None
    parsed = []
    for value in values:
        for part in value.split(","):
            if not part.strip().isdigit():
                raise ValidationFailed([f"{names[0]} must be ids"])
            parsed.append(int(part))
    return parsed


@account_accesses.get("", scope="admin", summary="List User & Invite account accesses")
async def list_accesses(request: Request, caller: Acting) -> Response:
    work = accesses.listed(
        caller.account_id,
        _ids(request, "project_ids"),
        _ids(request, "sandbox_ids", "inbox_ids"),
        _ids(request, "domain_ids", "domain_uuids"),
    )
    return json_response(await services_of(request).db.read(work))


@account_accesses.delete(
    "/{access_id}", scope="admin", summary="Remove account access", openapi_extra=AUDITED
)
async def delete_access(request: Request, caller: Acting, access_id: Id) -> Response:
    services = services_of(request)
    actor = actor_of(request, caller.principal)
    removed = await services.db.write(
        accesses.delete(services, caller.account_id, access_id, actor)
    )
    request.app.state.authenticator.forget()
    return json_response({"id": removed})


@account_accesses.put(
    "/{access_id}/permissions/bulk",
    scope="admin",
    summary="Manage user or token permissions",
    openapi_extra=AUDITED | BULK_PERMISSIONS,
)
async def update_permissions(request: Request, caller: Acting, access_id: Id) -> Response:
    body = await read_json(request, BODY_LIMIT)
    items: Any = body.get("permissions") if isinstance(body, dict) else None
    services = services_of(request)
    actor = actor_of(request, caller.principal)
    message = await services.db.write(
        accesses.update_permissions(services, caller.account_id, access_id, items, actor)
    )
    request.app.state.authenticator.forget()
    return json_response({"message": message})


@permissions.get("/resources", scope="admin", summary="Get resources")
async def resources(request: Request, caller: Acting) -> Response:
    level = access.ADMIN if "admin" in caller.principal.scopes else access.VIEWER
    tree = await services_of(request).db.read(accesses.resource_tree(caller.account_id, level))
    return json_response(tree)


@billing.get("/usage", scope="read", summary="Get current billing cycle usage")
async def billing_usage(request: Request, caller: Acting) -> Response:
    services = services_of(request)
    work = usage.usage(caller.account_id, services.clock.now())
    return json_response(await services.db.read(work))
