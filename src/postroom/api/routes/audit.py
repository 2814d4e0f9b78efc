"""The audit log (Postroom's own): ``GET …/audit_log`` on both path families.

Newest first, at most ``limit`` (≤ 500) per page, ``before_id`` pages backwards;
filters: ``action``, ``target_type``, ``actor_type``, ``since`` and ``until`` (ISO 8601).
Reading it needs the ``admin`` scope: it names every token and user that changed
anything. Only the account's own entries are listed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.families import Acting, Routes
from postroom.api.responses import json_response
from postroom.domain.audit import stamp
from postroom.errors import ValidationFailed
from postroom.storage.repos import audit

router = APIRouter(tags=["audit log"])
routes = Routes(router, "/audit_log")


def entry_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "account_id": row["account_id"],
        "created_at": stamp(row["created_at"]),
        "actor": {"type": row["actor_type"], "id": row["actor_id"], "name": row["actor_name"]},
        "source_ip": row["source_ip"],
        "action": row["action"],
        "target": {"type": row["target_type"], "id": row["target_id"]},
        "before": row["before"],
        "after": row["after"],
        "hash": row["hash"],
    }


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed([f"{name} must be an ISO 8601 time"]) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@routes.get("", scope="admin", summary="List audit log entries (Postroom)")
async def list_entries(
    request: Request,
    caller: Acting,
    action: str | None = None,
    target_type: str | None = None,
    actor_type: str | None = None,
    since: str | None = None,
    until: str | None = None,
    before_id: int | None = Query(None, ge=1, le=2**63 - 1),
    limit: int = Query(100, ge=1, le=500),
) -> Response:
    start, end = _time(since, "since"), _time(until, "until")

    def run(conn: Any) -> list[dict[str, Any]]:
        return audit.entries(
            conn,
            account_id=caller.account_id,
            action=action,
            target_type=target_type,
            actor_type=actor_type,
            since=start,
            until=end,
            before_id=before_id,
            limit=limit,
        )

    rows = await services_of(request).db.read(run)
    return json_response([entry_json(row) for row in rows])
