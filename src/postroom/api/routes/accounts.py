"""Accounts (spec §4.7): the accounts the token can reach."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from postroom.api.auth import principal
from postroom.api.responses import json_response
from postroom.services import Services
from postroom.services.auth import Principal
from postroom.storage.repos import accounts as repo

router = APIRouter(tags=["accounts"])

# Mailtrap's access levels: 1000 owner, 100 admin, 10 viewer.
_LEVELS = {"admin": 1000, "read": 10, "send": 10}


@router.get("/api/accounts", summary="List accounts")
async def list_accounts(request: Request, who: Principal = Depends(principal)) -> Any:
    services: Services = request.app.state.services
    account = await services.db.read(lambda conn: repo.get_account(conn, who.account_id))
    if account is None:
        return json_response([])
    level = max(_LEVELS.get(s, 10) for s in who.scopes) if who.scopes else 10
    return json_response([{"id": account["id"], "name": account["name"], "access_levels": [level]}])


@router.get("/api/token", summary="The calling token: its account, name and scopes (Postroom)")
async def current_token(who: Principal = Depends(principal)) -> Any:
    """What a client may do with its token (``postroom mcp`` offers its sending tools only
    when the token holds ``send`` or ``admin``)."""
    return json_response(
        {
            "account_id": who.account_id,
            "name": who.token_name,
            "scopes": sorted(who.scopes),
        }
    )
