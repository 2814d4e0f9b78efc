"""Accounts and the organization's sub-accounts (spec §4.7).

``GET /api/accounts`` lists what the token may see: its own account, or every account
for the installation admin's token (the organization level). The installation is one
organization (``ORGANIZATION_ID``); its sub-accounts API creates accounts, and Postroom's
``PATCH …/sub_accounts/{account_id}`` renames, disables and re-enables one. A disabled
account's tokens answer 401 and its sending is refused (services/accept.py).

These routes act on no single account, so they are not declared with api/families.py;
each records its access in ``x-postroom-scope`` itself (``token``: any valid token;
``organization``: the installation admin).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from postroom.api.audittrail import AUDITED
from postroom.api.auth import actor_of, principal, services_of
from postroom.api.body import read_json
from postroom.api.families import SCOPE_KEY
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.errors import ValidationFailed
from postroom.services import accounts as service
from postroom.services.auth import Principal

router = APIRouter(tags=["accounts"])

# Mailtrap's access levels: 1000 owner, 100 admin, 10 viewer.
_LEVELS = {"admin": 1000, "read": 10, "send": 10}
BODY_LIMIT = 16 * 1024
ANY_TOKEN = {SCOPE_KEY: "token"}
ORGANIZATION = {SCOPE_KEY: "organization", **AUDITED}
SUB_ACCOUNTS = "/api/organizations/{organization_id}/sub_accounts"


@router.get("/api/accounts", summary="List accounts", openapi_extra=ANY_TOKEN)
async def list_accounts(request: Request, who: Principal = Depends(principal)) -> Any:
    level = max(_LEVELS.get(s, 10) for s in who.scopes) if who.scopes else 10
    work = service.visible_accounts(who.account_id, who.organization_admin, level)
    rows = await services_of(request).db.read(work)
    return json_response([{k: row[k] for k in ("id", "name", "access_levels")} for row in rows])


@router.get(SUB_ACCOUNTS, summary="List sub accounts", openapi_extra=ORGANIZATION)
async def list_sub_accounts(
    request: Request, organization_id: Id, who: Principal = Depends(principal)
) -> Response:
    service.organization_check(organization_id, who.organization_admin)
    work = service.visible_accounts(who.account_id, True, 100)
    rows = await services_of(request).db.read(work)
    return json_response([_sub_account(row) for row in rows])


@router.post(SUB_ACCOUNTS, summary="Create sub account", openapi_extra=ORGANIZATION)
async def create_sub_account(
    request: Request, organization_id: Id, who: Principal = Depends(principal)
) -> Response:
    service.organization_check(organization_id, who.organization_admin)
    body = await read_json(request, BODY_LIMIT)
    account = body.get("account") if isinstance(body, dict) else None
    if not isinstance(account, dict):
        raise ValidationFailed(["account is missing"])
    services = services_of(request)
    work = service.create_account(services, account.get("name"), actor_of(request, who))
    row = await services.db.write(work)
    return json_response(_sub_account(row))


@router.patch(
    SUB_ACCOUNTS + "/{account_id}",
    summary="Rename, disable or enable a sub account (Postroom)",
    openapi_extra=ORGANIZATION,
)
async def change_sub_account(
    request: Request, organization_id: Id, account_id: Id, who: Principal = Depends(principal)
) -> Response:
    service.organization_check(organization_id, who.organization_admin)
    body = await read_json(request, BODY_LIMIT)
    account = body.get("account", body) if isinstance(body, dict) else None
    if not isinstance(account, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    disabled = account.get("disabled")
    if disabled is not None and not isinstance(disabled, bool):
        raise ValidationFailed(["disabled must be true or false"])
    services = services_of(request)
    work = service.change_account(
        services, account_id, actor_of(request, who), name=account.get("name"), disabled=disabled
    )
    row = await services.db.write(work)
    services.account_states.discard(account_id)
    request.app.state.authenticator.forget()
    return json_response(_sub_account(row))


def _sub_account(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "disabled": row.get("disabled_at") is not None}
