"""Tracking opt-outs API (spec §4.10), what the SDKs' ``tracking_opt_outs_api`` calls.

``GET /api/tracking_opt_outs?email&start_time&end_time&last_id`` lists up to 1,000
entries oldest first as ``{"data": [{"id", "email", "created_at", "domain_name"}],
"last_id"}`` (``last_id`` is the cursor of the next page, null on the last);
``POST {"email", "domain_id"}`` answers ``201 {"data": {…}}``; ``DELETE /{id}`` answers
the entry, flat. The token's own account; ``/api/accounts/{account_id}/tracking_opt_outs``
is the same for an account named in the path. Reading needs ``read``, changing
``admin``; another tenant's entry is a 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.families import Acting, Routes
from postroom.api.responses import json_response
from postroom.errors import NotFound, ValidationFailed
from postroom.services import optouts

router = APIRouter(tags=["tracking opt-outs"])

BODY_LIMIT = 16 * 1024


def opt_out_json(row: dict[str, Any]) -> dict[str, Any]:
    created: datetime = row["created_at"]
    return {
        "id": str(row["id"]),
        "email": row["email"],
        "created_at": created.astimezone(UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "domain_name": row["domain_name"],
    }


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed([f"{name} must be an ISO 8601 time"]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _uuid(value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return str(UUID(value))
    except ValueError:
        raise ValidationFailed([f"{name} must be a tracking opt-out id"]) from None


# Declared once, both path families (api/families.py).
routes = Routes(router, "/tracking_opt_outs")


@routes.get("", scope="read", summary="List tracking opt-outs")
async def list_opt_outs(request: Request, caller: Acting) -> Response:
    query = request.query_params
    rows = await optouts.list_page(
        services_of(request),
        caller.account_id,
        email=query.get("email") or None,
        start=_time(query.get("start_time"), "start_time"),
        end=_time(query.get("end_time"), "end_time"),
        last_id=_uuid(query.get("last_id") or None, "last_id"),
    )
    last = str(rows[-1]["id"]) if len(rows) >= optouts.PAGE_LIMIT else None
    return json_response({"data": [opt_out_json(r) for r in rows], "last_id": last})


@routes.post("", scope="admin", summary="Add a tracking opt-out", status_code=201)
async def create_opt_out(request: Request, caller: Acting) -> Response:
    body = await read_json_object(request, BODY_LIMIT, "tracking_opt_out")
    row = await optouts.create(
        services_of(request), caller.account_id, body.get("email"), body.get("domain_id")
    )
    return json_response({"data": opt_out_json(row)}, 201)


@routes.delete("/{opt_out_id}", scope="admin", summary="Remove a tracking opt-out")
async def delete_opt_out(opt_out_id: str, request: Request, caller: Acting) -> Response:
    try:
        found = str(UUID(opt_out_id))
    except ValueError:
        raise NotFound("tracking opt-out") from None
    row = await optouts.remove(services_of(request), caller.account_id, found)
    return json_response(opt_out_json(row))
