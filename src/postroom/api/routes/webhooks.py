"""Webhooks API (the spec's `webhooks` tag) and Postroom's delivery log, replay and test.

Paths, each in both families (``/api/accounts/{account_id}/webhooks…`` and the
token-scoped ``/api/webhooks…``):

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

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from postroom.api.auth import acting_account, principal, services_of
from postroom.api.body import read_json
from postroom.api.docs import ReplayBody, WebhookBody, json_body
from postroom.api.params import MAX_ID, Id
from postroom.api.responses import json_response
from postroom.api.routes.sandbox import iso
from postroom.domain.webhooks import standard_secret
from postroom.errors import Conflict, ValidationFailed
from postroom.services import webhooks
from postroom.services.auth import Principal

router = APIRouter(tags=["webhooks"])

Who = Annotated[Principal, Depends(principal)]
BODY_LIMIT = 16 * 1024
ACCOUNT = "/api/accounts/{account_id}/webhooks"
ALIAS = "/api/webhooks"
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
    body = await read_json(request, BODY_LIMIT)
    if not isinstance(body, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    return body


# --- shared handlers (account_id None: the token's account) -------------------------------


async def _create(request: Request, who: Principal, account_id: int | None) -> Response:
    target = acting_account(who, account_id, "admin")
    created = await webhooks.create(services_of(request), target, await _object(request))
    data = webhook_json(created.row)
    data["signing_secret"] = created.secret
    data["standard_webhooks_secret"] = standard_secret(created.secret)
    return json_response({"data": data})


async def _list(request: Request, who: Principal, account_id: int | None) -> Response:
    target = acting_account(who, account_id, "read")
    rows = await webhooks.list_webhooks(services_of(request), target)
    return json_response({"data": [webhook_json(r) for r in rows]})


async def _get(request: Request, who: Principal, account_id: int | None, wid: int) -> Response:
    target = acting_account(who, account_id, "read")
    return json_response(
        {"data": webhook_json(await webhooks.get(services_of(request), target, wid))}
    )


async def _update(request: Request, who: Principal, account_id: int | None, wid: int) -> Response:
    target = acting_account(who, account_id, "admin")
    row = await webhooks.update(services_of(request), target, wid, await _object(request))
    return json_response({"data": webhook_json(row)})


async def _delete(request: Request, who: Principal, account_id: int | None, wid: int) -> Response:
    target = acting_account(who, account_id, "admin")
    row = await webhooks.delete(services_of(request), target, wid)
    return json_response({"data": webhook_json(row)})


async def _log(
    request: Request,
    who: Principal,
    account_id: int | None,
    wid: int,
    limit: int,
    before_id: int | None,
) -> Response:
    target = acting_account(who, account_id, "read")
    rows = await webhooks.delivery_log(
        services_of(request), target, wid, limit=limit, before_id=before_id
    )
    return json_response({"data": [attempt_json(r) for r in rows]})


async def _replay(request: Request, who: Principal, account_id: int | None, wid: int) -> Response:
    target = acting_account(who, account_id, "admin")
    body = await _object(request)
    since, until = parse_time(body.get("since"), "since"), parse_time(body.get("until"), "until")
    done = await webhooks.replay(services_of(request), target, wid, since, until)
    return json_response({"data": {"events": done.events, "batches": done.batches}})


async def _test(request: Request, who: Principal, account_id: int | None, wid: int) -> Response:
    target = acting_account(who, account_id, "admin")
    entry = await webhooks.send_test(services_of(request), target, wid)
    return json_response({"data": attempt_json(entry)})


# --- /api/accounts/{account_id}/webhooks --------------------------------------------------


@router.post(ACCOUNT, summary="Create a webhook", openapi_extra=BODY)
async def create_webhook(account_id: Id, request: Request, who: Who) -> Response:
    return await _create(request, who, account_id)


@router.get(ACCOUNT, summary="List webhooks")
async def list_webhooks(account_id: Id, request: Request, who: Who) -> Response:
    return await _list(request, who, account_id)


@router.get(ACCOUNT + "/{webhook_id}", summary="Get a webhook")
async def get_webhook(account_id: Id, webhook_id: Id, request: Request, who: Who) -> Response:
    return await _get(request, who, account_id, webhook_id)


@router.patch(ACCOUNT + "/{webhook_id}", summary="Update a webhook", openapi_extra=BODY)
async def update_webhook(account_id: Id, webhook_id: Id, request: Request, who: Who) -> Response:
    return await _update(request, who, account_id, webhook_id)


@router.delete(ACCOUNT + "/{webhook_id}", summary="Delete a webhook")
async def delete_webhook(account_id: Id, webhook_id: Id, request: Request, who: Who) -> Response:
    return await _delete(request, who, account_id, webhook_id)


@router.get(ACCOUNT + "/{webhook_id}/deliveries", summary="A webhook's delivery log (Postroom)")
async def webhook_deliveries(
    account_id: Id,
    webhook_id: Id,
    request: Request,
    who: Who,
    limit: Limit = 100,
    before_id: Before = None,
) -> Response:
    return await _log(request, who, account_id, webhook_id, limit, before_id)


@router.post(
    ACCOUNT + "/{webhook_id}/replay",
    summary="Send a time range again (Postroom)",
    openapi_extra=REPLAY,
)
async def replay_webhook(account_id: Id, webhook_id: Id, request: Request, who: Who) -> Response:
    return await _replay(request, who, account_id, webhook_id)


@router.post(ACCOUNT + "/{webhook_id}/test", summary="Send a test event (Postroom)")
async def test_webhook(account_id: Id, webhook_id: Id, request: Request, who: Who) -> Response:
    return await _test(request, who, account_id, webhook_id)


# --- /api/webhooks (token-scoped alias) ---------------------------------------------------


@router.post(ALIAS, summary="Create a webhook (token's account)", openapi_extra=BODY)
async def create_webhook_alias(request: Request, who: Who) -> Response:
    return await _create(request, who, None)


@router.get(ALIAS, summary="List webhooks (token's account)")
async def list_webhooks_alias(request: Request, who: Who) -> Response:
    return await _list(request, who, None)


@router.get(ALIAS + "/{webhook_id}", summary="Get a webhook (token's account)")
async def get_webhook_alias(webhook_id: Id, request: Request, who: Who) -> Response:
    return await _get(request, who, None, webhook_id)


@router.patch(
    ALIAS + "/{webhook_id}", summary="Update a webhook (token's account)", openapi_extra=BODY
)
async def update_webhook_alias(webhook_id: Id, request: Request, who: Who) -> Response:
    return await _update(request, who, None, webhook_id)


@router.delete(ALIAS + "/{webhook_id}", summary="Delete a webhook (token's account)")
async def delete_webhook_alias(webhook_id: Id, request: Request, who: Who) -> Response:
    return await _delete(request, who, None, webhook_id)


@router.get(ALIAS + "/{webhook_id}/deliveries", summary="A webhook's delivery log (token's)")
async def webhook_deliveries_alias(
    webhook_id: Id, request: Request, who: Who, limit: Limit = 100, before_id: Before = None
) -> Response:
    return await _log(request, who, None, webhook_id, limit, before_id)


@router.post(
    ALIAS + "/{webhook_id}/replay",
    summary="Send a time range again (token's)",
    openapi_extra=REPLAY,
)
async def replay_webhook_alias(webhook_id: Id, request: Request, who: Who) -> Response:
    return await _replay(request, who, None, webhook_id)


@router.post(ALIAS + "/{webhook_id}/test", summary="Send a test event (token's account)")
async def test_webhook_alias(webhook_id: Id, request: Request, who: Who) -> Response:
    return await _test(request, who, None, webhook_id)
