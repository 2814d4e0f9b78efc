"""Postroom's own settings routes for F6: log/body retention and per-domain alerts.

- ``GET|PATCH /api/accounts/{id}/retention`` → ``{"data": {"log_retention_days",
  "body_retention_days", "effective_…"}}``; PATCH takes either field (null: default).
- ``GET|PATCH /api/accounts/{id}/sending_domains/{domain_id}/alerts`` → the domain's
  alert flags, recipient, thresholds and current state; PATCH takes
  ``health_alerts_enabled``, ``critical_alerts_enabled``, ``alert_recipient_email`` and
  ``thresholds: {"bounce_rate": 0.1, "complaint_rate": null, …}``.

Both answer in both path families (``/api/retention``, ``/api/domains/{id}/alerts``, …);
GETs need ``read``, PATCHes ``admin``; another account is a 404. Bodies may be wrapped
(``{"retention": {…}}``, ``{"alerts": {…}}``) or flat.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.api.body import read_json_object
from postroom.api.docs import AlertsBody, RetentionBody, json_body
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.services import Services, alerts, retention

router = APIRouter(tags=["retention and alerts"])

BODY_LIMIT = 16 * 1024


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _body(request: Request, wrapper: str) -> dict[str, Any]:
    body = await read_json_object(request, BODY_LIMIT, wrapper)
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


# Declared once, both path families (api/families.py); alerts under both domain names.
retention_routes = Routes(router, "/retention")
alert_routes = Routes(router, "/sending_domains", also=("/domains",))
ALERTS = "/{domain_id}/alerts"


@retention_routes.get("", scope="read", summary="Log and body retention")
async def get_retention(request: Request, caller: Acting) -> Response:
    policy = await retention.get_policy(_services(request), caller.account_id)
    return json_response(_policy_json(policy))


@retention_routes.patch(
    "",
    scope="admin",
    summary="Set log and body retention",
    openapi_extra=json_body(RetentionBody),
)
async def set_retention(request: Request, caller: Acting) -> Response:
    changes = await _body(request, "retention")
    policy = await retention.set_policy(_services(request), caller.account_id, changes)
    return json_response(_policy_json(policy))


@alert_routes.get(ALERTS, scope="read", summary="A sending domain's alert settings and state")
async def get_alerts(request: Request, domain_id: Id, caller: Acting) -> Response:
    rules = await alerts.get_rules(_services(request), caller.account_id, domain_id)
    return json_response({"data": _jsonable(rules)})


@alert_routes.patch(
    ALERTS,
    scope="admin",
    summary="Set a sending domain's alert settings",
    openapi_extra=json_body(AlertsBody),
)
async def set_alerts(request: Request, domain_id: Id, caller: Acting) -> Response:
    changes = await _body(request, "alerts")
    rules = await alerts.set_rules(_services(request), caller.account_id, domain_id, changes)
    return json_response({"data": _jsonable(rules)})
