"""API tokens (spec §4.7): list, get, create, reset and delete, on both path families.

``/api/accounts/{account_id}/api_tokens`` (the SDKs) and ``/api/api_tokens`` (the
official OpenAPI file) are one declaration (api/families.py). Managing tokens needs the
``admin`` scope, and so does listing them (a viewer does not see who else holds access).
The token's value appears only in the create and reset answers. Postroom adds
``last_used_at`` and ``scopes`` (what the permissions allow here, domain/access.py) to
the contract's ApiToken.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.api.audittrail import AUDITED
from postroom.api.auth import actor_of, services_of
from postroom.api.body import parse_json, read_body
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.errors import ValidationFailed
from postroom.services import tokens
from postroom.services.tokens import Issued

router = APIRouter(tags=["api tokens"])
routes = Routes(router, "/api_tokens")
BODY_LIMIT = 64 * 1024


def _stamp(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def token_json(row: dict[str, Any]) -> dict[str, Any]:
    """The contract's ApiToken (plus Postroom's ``last_used_at`` and ``scopes``)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "last_4_digits": row["last_4_digits"],
        "created_by": row["created_by"] or "",
        "expires_at": _stamp(row["expires_at"]),
        "resources": [
            {
                "resource_type": p.resource_type,
                "resource_id": p.resource_id,
                "access_level": p.level,
            }
            for p in row["permissions"]
            if p.resource_type != "organization"
        ],
        "last_used_at": _stamp(row.get("last_used_at")),
        "scopes": sorted(row["scopes"]),
    }


def _issued_json(issued: Issued) -> dict[str, Any]:
    return {**token_json({**issued.row, "permissions": issued.permissions}), "token": issued.value}


async def _body(request: Request) -> dict[str, Any]:
    raw = await read_body(request, BODY_LIMIT)
    if not raw.strip():
        return {}
    body = parse_json(raw)
    if isinstance(body, dict) and isinstance(body.get("api_token"), dict):
        body = body["api_token"]  # a Rails-style wrapper is accepted too
    if not isinstance(body, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    return body


@routes.get("", scope="admin", summary="List API tokens")
async def list_tokens(request: Request, caller: Acting) -> Response:
    rows = await services_of(request).db.read(tokens.listed(caller.account_id))
    return json_response([token_json(row) for row in rows])


@routes.post("", scope="admin", summary="Create API token", openapi_extra=AUDITED)
async def create_token(request: Request, caller: Acting) -> Response:
    services = services_of(request)
    body = await _body(request)
    work = tokens.create(
        services,
        caller.account_id,
        actor_of(request, caller.principal),
        body.get("name"),
        body.get("resources"),
        body.get("expires_at", tokens.UNSET),
    )
    issued = await services.db.write(work)
    return json_response(_issued_json(issued))


@routes.get("/{token_id}", scope="admin", summary="Get API token")
async def get_token(request: Request, caller: Acting, token_id: Id) -> Response:
    services = services_of(request)
    row = await services.db.read(tokens.shown(services, caller.account_id, token_id))
    return json_response(token_json(row))


@routes.post("/{token_id}/reset", scope="admin", summary="Reset API token", openapi_extra=AUDITED)
async def reset_token(request: Request, caller: Acting, token_id: Id) -> Response:
    services = services_of(request)
    body = await _body(request)
    work = tokens.reset(
        services,
        caller.account_id,
        token_id,
        actor_of(request, caller.principal),
        body.get("expires_at", tokens.UNSET),
    )
    issued = await services.db.write(work)
    return json_response(_issued_json(issued))


@routes.delete(
    "/{token_id}",
    scope="admin",
    summary="Delete API token",
    status_code=204,
    openapi_extra=AUDITED,
)
async def delete_token(request: Request, caller: Acting, token_id: Id) -> Response:
    services = services_of(request)
    await services.db.write(
        tokens.revoke(services, caller.account_id, token_id, actor_of(request, caller.principal))
    )
    request.app.state.authenticator.forget()
    return Response(status_code=204)
