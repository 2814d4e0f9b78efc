"""Forward rules of an inbound inbox (``…/inbound/inboxes/{inbox_id}/forward_rules``), on
both path families, in the Python SDK's shapes: a rule is ``{"id", "name", "created_at",
"updated_at", "conditions", "destinations"}`` plus Postroom's ``from``; lists and single
rules are wrapped in ``{"data": …}``. Create answers 201, delete an empty 204. Bodies are
flat (``{"name", "conditions", "destinations", "from"?}``) or wrapped in
``forward_rule``. Reading needs ``read``, changing ``admin``; what a rule does is
:mod:`postroom.services.inbound_rules`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.api.routes.inbound import iso
from postroom.services import inbound_rules

router = APIRouter(tags=["inbound"])
routes = Routes(router, "/inbound")
RULES = "/inboxes/{inbox_id}/forward_rules"
RULE = RULES + "/{rule_id}"
BODY_LIMIT = 64 * 1024


def rule_json(row: dict[str, Any]) -> dict[str, Any]:
    sender = None
    if row["from_email"]:
        sender = {"email": row["from_email"], "name": row["from_name"]}
    return {
        "id": int(row["id"]),
        "name": row["name"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "conditions": row["conditions"],
        "destinations": row["destinations"],
        "from": sender,
    }


async def _object(request: Request) -> dict[str, Any]:
    return await read_json_object(request, BODY_LIMIT)


@routes.get(RULES, scope="read", summary="List an inbox's forward rules")
async def list_rules(inbox_id: Id, request: Request, caller: Acting) -> Response:
    rows = await inbound_rules.list_rules(services_of(request), caller.account_id, inbox_id)
    return json_response({"data": [rule_json(r) for r in rows]})


@routes.post(RULES, scope="admin", summary="Create a forward rule", status_code=201)
async def create_rule(inbox_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    services = services_of(request)
    row = await inbound_rules.create_rule(services, caller.account_id, inbox_id, body)
    return json_response({"data": rule_json(row)}, 201)


@routes.get(RULE, scope="read", summary="Get a forward rule")
async def get_rule(inbox_id: Id, rule_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    row = await inbound_rules.get_rule(services, caller.account_id, inbox_id, rule_id)
    return json_response({"data": rule_json(row)})


@routes.patch(RULE, scope="admin", summary="Update a forward rule")
async def update_rule(inbox_id: Id, rule_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    services = services_of(request)
    row = await inbound_rules.update_rule(services, caller.account_id, inbox_id, rule_id, body)
    return json_response({"data": rule_json(row)})


@routes.delete(RULE, scope="admin", summary="Delete a forward rule", status_code=204)
async def delete_rule(inbox_id: Id, rule_id: Id, request: Request, caller: Acting) -> Response:
    await inbound_rules.delete_rule(services_of(request), caller.account_id, inbox_id, rule_id)
    return Response(status_code=204)
