"""Suppressions API (spec §4.2), with CSV import and export and an audit trail.

Paths: ``/api/accounts/{account_id}/suppressions`` (what the SDKs call) and the
token-scoped alias ``/api/suppressions`` (the token's own account). Envelopes follow the
contract exactly: the list is a flat array (≤ 1000, oldest first, ``last_id`` cursor),
create answers ``201 {"data": Suppression}``, delete answers ``200`` with the flat
Suppression. Reading needs the ``read`` scope, changing needs ``admin`` (403 otherwise);
another tenant's account or entry is a 404.

Postroom's additions, on both path families: ``GET …/suppressions/export`` (CSV),
``POST …/suppressions/import`` (CSV body; columns ``email`` and optionally
``sending_stream``, ``type``, ``domain_name``) and ``GET …/suppressions/history?email=``
(every addition and removal with who made it).

Not yet: the contract's 10 requests/minute/account rate limit (Postroom has no rate
limiter yet).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request
from starlette.responses import Response, StreamingResponse

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.docs import SuppressionBody, csv_body, json_body
from postroom.api.families import Acting, Routes
from postroom.api.responses import json_response
from postroom.errors import NotFound, PayloadTooLarge, ValidationFailed
from postroom.services import suppressions
from postroom.services.auth import Principal

router = APIRouter(tags=["suppressions"])
routes = Routes(router, "/suppressions")
BODY_LIMIT = 16 * 1024
CSV_LIMIT = 20 * 1024 * 1024
BODY = json_body(SuppressionBody)
CSV = csv_body()


def _actor(who: Principal) -> str:
    return f"api token {who.token_id} ({who.token_name})"


def _stamp(value: datetime | None) -> str:
    """The contract's suppression timestamps: seconds, ``Z`` (``2025-06-27T07:56:17Z``)."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def suppression_json(row: dict[str, Any]) -> dict[str, Any]:
    """A Suppression as spec §4.2 has it (empty strings, not null, for absent facts)."""
    return {
        "id": str(row["id"]),
        "type": row["type"],
        "created_at": _stamp(row["created_at"]),
        "email": row["email"],
        "sending_stream": row["sending_stream"],
        "domain_name": row["domain_name"] or "",
        "message_bounce_category": row.get("message_bounce_category") or "",
        "message_category": row.get("message_category") or "",
        "message_client_ip": row.get("message_client_ip") or "",
        "message_created_at": _stamp(row.get("message_created_at")),
        "message_esp_response": row.get("message_esp_response") or "",
        "message_esp_server_type": row.get("message_esp_server_type") or "",
        "message_outgoing_ip": row.get("message_outgoing_ip") or "",
        "message_recipient_mx_name": row.get("message_recipient_mx_name") or "",
        "message_sender_email": row.get("message_sender_email") or "",
        "message_subject": row.get("message_subject") or "",
        # Postroom's additions: when a soft-bounce entry lapses, who made the entry.
        "expires_at": _stamp(row.get("expires_at")) or None,
        "created_by": row.get("created_by") or "",
    }


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed([f"{name} must be an ISO 8601 time"]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _uuid(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(UUID(value))
    except ValueError:
        raise ValidationFailed(["last_id must be a suppression id"]) from None


# --- routes: declared once, both path families (api/families.py) -------------------------

Email = Annotated[str | None, Query(max_length=320)]
Stamp = Annotated[str | None, Query(max_length=64)]
Cursor = Annotated[str | None, Query(max_length=64)]


@routes.get("", scope="read", summary="List suppressions")
async def list_suppressions(
    request: Request,
    caller: Acting,
    email: Email = None,
    start_time: Stamp = None,
    end_time: Stamp = None,
    last_id: Cursor = None,
) -> Response:
    rows = await suppressions.list_page(
        services_of(request),
        caller.account_id,
        email=email,
        start=_time(start_time, "start_time"),
        end=_time(end_time, "end_time"),
        last_id=_uuid(last_id),
    )
    return json_response([suppression_json(r) for r in rows])


@routes.post("", scope="admin", summary="Add a suppression", status_code=201, openapi_extra=BODY)
async def create_suppression(request: Request, caller: Acting) -> Response:
    body = await read_json_object(request, BODY_LIMIT, "suppression")
    domain_id = body.get("domain_id")
    if domain_id is not None and (not isinstance(domain_id, int) or isinstance(domain_id, bool)):
        raise ValidationFailed(["domain_id must be an integer"])
    row = await suppressions.create(
        services_of(request),
        caller.account_id,
        _actor(caller.principal),
        str(body.get("email") or ""),
        str(body.get("sending_stream") or ""),
        str(body.get("type") or suppressions.MANUAL_IMPORT),
        domain_id,
    )
    return json_response({"data": suppression_json(row)}, 201)


@routes.get("/export", scope="read", summary="Export suppressions as CSV")
async def export_suppressions(request: Request, caller: Acting) -> Response:
    return StreamingResponse(
        suppressions.export_csv(services_of(request), caller.account_id),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="suppressions.csv"'},
    )


@routes.post("/import", scope="admin", summary="Import suppressions from CSV", openapi_extra=CSV)
async def import_suppressions(request: Request, caller: Acting) -> Response:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > CSV_LIMIT:
            raise PayloadTooLarge("CSV too large")
        chunks.append(chunk)
    text = b"".join(chunks).decode("utf-8-sig", "replace")
    result = await suppressions.import_csv(
        services_of(request), caller.account_id, _actor(caller.principal), text
    )
    return json_response({"data": result})


@routes.get("/history", scope="read", summary="Additions and removals of one address")
async def suppression_history(
    request: Request, caller: Acting, email: Annotated[str, Query(max_length=320)]
) -> Response:
    rows = await suppressions.history(services_of(request), caller.account_id, email)
    return json_response(
        [
            {
                "suppression_id": r["suppression_id"],
                "email": r["email"],
                "action": r["action"],
                "type": r["type"],
                "sending_stream": r["sending_stream"],
                "origin": r["origin"],
                "actor": r["actor"],
                "created_at": _stamp(r["created_at"]),
            }
            for r in rows
        ]
    )


@routes.delete("/{suppression_id}", scope="admin", summary="Remove a suppression")
async def delete_suppression(suppression_id: str, request: Request, caller: Acting) -> Response:
    try:
        key = str(UUID(suppression_id))
    except ValueError:
        raise NotFound("suppression") from None
    row = await suppressions.remove(
        services_of(request), caller.account_id, _actor(caller.principal), key
    )
    return json_response(suppression_json(row))
