"""Postroom's own settings routes for F6: log/body retention and per-domain alerts.

- ``GET|PATCH /api/accounts/{id}/retention`` → ``{"data": {"log_retention_days",
  "body_retention_days", "effective_…"}}``; PATCH takes either field (null: default).
- ``GET|PATCH /api/accounts/{id}/sending_domains/{domain_id}/alerts`` → the domain's
  alert flags, recipient, thresholds and current state; PATCH takes
  ``health_alerts_enabled``, ``critical_alerts_enabled``, ``alert_recipient_email`` and
  ``thresholds: {"bounce_rate": 0.1, "complaint_rate": null, …}``.

GETs need ``read``, PATCHes ``admin``; another account is a 404. Bodies may be wrapped
(``{"retention": {…}}``, ``{"alerts": {…}}``) or flat.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from postroom.api.auth import account_scope, principal
from postroom.api.body import read_json
from postroom.api.docs import AlertsBody, RetentionBody, json_body
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.errors import ValidationFailed
from postroom.services import Services, alerts, retention
from postroom.services.auth import Principal

router = APIRouter(tags=["retention and alerts"])

Who = Annotated[Principal, Depends(principal)]
BODY_LIMIT = 16 * 1024


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _body(request: Request, wrapper: str) -> dict[str, Any]:
    body = await read_json(request, BODY_LIMIT)
    if isinstance(body, dict) and isinstance(body.get(wrapper), dict):
        body = body[wrapper]
    if not isinstance(body, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    return body


def _policy_json(policy: retention.Policy) -> dict[str, Any]:
    return {
        "data": {
            "log_retention_days": policy.log_days,
            "body_retention_days": policy.body_days,
            "effective_log_retention_days": policy.effective_log_days,
            "effective_body_retention_days": policy.effective_body_days,
        }
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    return value


@router.get("/api/accounts/{account_id}/retention", summary="Log and body retention")
async def get_retention(request: Request, account_id: Id, who: Who) -> Response:
    account_scope(who, account_id, "read")
    return json_response(_policy_json(await retention.get_policy(_services(request), account_id)))


@router.patch(
    "/api/accounts/{account_id}/retention",
    summary="Set log and body retention",
    openapi_extra=json_body(RetentionBody),
)
async def set_retention(request: Request, account_id: Id, who: Who) -> Response:
    account_scope(who, account_id, "admin")
    changes = await _body(request, "retention")
    policy = await retention.set_policy(_services(request), account_id, changes)
    return json_response(_policy_json(policy))


ALERTS = "/api/accounts/{account_id}/sending_domains/{domain_id}/alerts"


@router.get(ALERTS, summary="A sending domain's alert settings and state")
async def get_alerts(request: Request, account_id: Id, domain_id: Id, who: Who) -> Response:
    account_scope(who, account_id, "read")
    rules = await alerts.get_rules(_services(request), account_id, domain_id)
    return json_response({"data": _jsonable(rules)})


@router.patch(
    ALERTS, summary="Set a sending domain's alert settings", openapi_extra=json_body(AlertsBody)
)
async def set_alerts(request: Request, account_id: Id, domain_id: Id, who: Who) -> Response:
    account_scope(who, account_id, "admin")
    changes = await _body(request, "alerts")
    rules = await alerts.set_rules(_services(request), account_id, domain_id, changes)
    return json_response({"data": _jsonable(rules)})
