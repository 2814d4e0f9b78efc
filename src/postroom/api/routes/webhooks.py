"""Webhooks API (the spec's `webhooks` tag) and Postroom's delivery log, replay and test.

Paths, each declared once for both families (``/api/accounts/{account_id}/webhooks…``
and the token-scoped ``/api/webhooks…``, :class:`~postroom.api.families.Routes`):

- ``POST``/``GET`` ``…/webhooks``, ``GET``/``PATCH``/``DELETE`` ``…/webhooks/{id}``: the
  contract's shapes, ``{"data": Webhook}`` (create adds ``signing_secret``, shown only
  there, and Postroom's ``standard_webhooks_secret``, the same secret in Standard
  Webhooks' ``whsec_`` form). Postroom adds ``paused_at`` and ``pause_reason``.
- ``GET …/webhooks/{id}/deliveries?limit=&before_id=``: the delivery log, newest first.
- ``POST …/webhooks/{id}/replay`` ``{"since": ISO, "until": ISO}``: send the range again.
- ``POST …/webhooks/{id}/test``: send one test event now; answers the logged attempt.

Reading needs the ``read`` scope, anything else ``admin``; another tenant's webhook is a 404.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.docs import ReplayBody, WebhookBody, json_body
from postroom.api.families import Acting, Routes
from postroom.api.params import MAX_ID, Id
from postroom.api.responses import json_response
from postroom.api.routes.sandbox import iso
from postroom.domain.webhooks import standard_secret
from postroom.errors import Conflict
from postroom.services import webhooks

router = APIRouter(tags=["webhooks"])
routes = Routes(router, "/webhooks")

BODY_LIMIT = 16 * 1024
BODY = json_body(WebhookBody)
REPLAY = json_body(ReplayBody)
Limit = Annotated[int, Query(ge=1, le=1000)]
Before = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def webhook_json(row: dict[str, Any]) -> dict[str, Any]:
    """A Webhook as the spec's schema has it, plus Postroom's pause facts."""
    body: dict[str, Any] = {
        "id": row["id"],
        "url": row["url"],
        "active": bool(row["active"]),
        "webhook_type": row["webhook_type"],
        "payload_format": row["payload_format"],
    }
    wtype = row["webhook_type"]
    if wtype == "email_sending":
        body["sending_stream"] = row["sending_stream"]
        body["domain_id"] = row["domain_id"]
        body["event_types"] = list(row["event_types"] or [])
    if wtype == "inbound_receiving":
        body["inbound_inbox_id"] = row["inbound_inbox_id"]
    body["paused_at"] = iso(row["paused_at"])
    body["pause_reason"] = row["pause_reason"]
    return body


def attempt_json(row: dict[str, Any]) -> dict[str, Any]:
    """One delivery-log entry."""
    return {
        "id": row.get("id"),
        "time": iso(row["started_at"]),
        "batch_id": row["batch_id"],
        "kind": row["kind"],
        "attempt": row["attempt"],
        "events": row["event_count"],
        "status": row["status"],
        "ok": bool(row["ok"]),
        "error": row["error"],
        "latency_ms": row["latency_ms"],
        "response_excerpt": row["response_excerpt"],
    }


def parse_time(value: object, name: str) -> datetime:
    """An ISO 8601 time (``Z`` or an offset; naive means UTC)."""
    if not isinstance(value, str) or not value:
        raise Conflict({name: ["must be an ISO 8601 time"]})
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise Conflict({name: ["must be an ISO 8601 time"]}) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


async def _object(request: Request) -> dict[str, Any]:
    return await read_json_object(request, BODY_LIMIT)


# --- routes: declared once, answered on both path families -------------------------------


@routes.post("", scope="admin", summary="Create a webhook", openapi_extra=BODY)
async def create_webhook(request: Request, caller: Acting) -> Response:
    created = await webhooks.create(services_of(request), caller.account_id, await _object(request))
    data = webhook_json(created.row)
    data["signing_secret"] = created.secret
    data["standard_webhooks_secret"] = standard_secret(created.secret)
    return json_response({"data": data})


@routes.get("", scope="read", summary="List webhooks")
async def list_webhooks(request: Request, caller: Acting) -> Response:
    rows = await webhooks.list_webhooks(services_of(request), caller.account_id)
    return json_response({"data": [webhook_json(r) for r in rows]})


@routes.get("/{webhook_id}", scope="read", summary="Get a webhook")
async def get_webhook(webhook_id: Id, request: Request, caller: Acting) -> Response:
    row = await webhooks.get(services_of(request), caller.account_id, webhook_id)
    return json_response({"data": webhook_json(row)})


@routes.patch("/{webhook_id}", scope="admin", summary="Update a webhook", openapi_extra=BODY)
async def update_webhook(webhook_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    row = await webhooks.update(services_of(request), caller.account_id, webhook_id, body)
    return json_response({"data": webhook_json(row)})


@routes.delete("/{webhook_id}", scope="admin", summary="Delete a webhook")
async def delete_webhook(webhook_id: Id, request: Request, caller: Acting) -> Response:
    row = await webhooks.delete(services_of(request), caller.account_id, webhook_id)
    return json_response({"data": webhook_json(row)})


@routes.get("/{webhook_id}/deliveries", scope="read", summary="Delivery log (Postroom)")
async def webhook_deliveries(
    webhook_id: Id,
    request: Request,
    caller: Acting,
    limit: Limit = 100,
    before_id: Before = None,
) -> Response:
    rows = await webhooks.delivery_log(
        services_of(request), caller.account_id, webhook_id, limit=limit, before_id=before_id
    )
    return json_response({"data": [attempt_json(r) for r in rows]})


@routes.post(
    "/{webhook_id}/replay",
    scope="admin",
    summary="Send a time range again (Postroom)",
    openapi_extra=REPLAY,
)
async def replay_webhook(webhook_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    since, until = parse_time(body.get("since"), "since"), parse_time(body.get("until"), "until")
    done = await webhooks.replay(services_of(request), caller.account_id, webhook_id, since, until)
    return json_response({"data": {"events": done.events, "batches": done.batches}})


@routes.post("/{webhook_id}/test", scope="admin", summary="Send a test event (Postroom)")
async def test_webhook(webhook_id: Id, request: Request, caller: Acting) -> Response:
    entry = await webhooks.send_test(services_of(request), caller.account_id, webhook_id)
    return json_response({"data": attempt_json(entry)})
