"""Email campaigns API (spec §4.10), on both path families (api/families.py).

``/api/email_campaigns[/{id}[/start|schedule|cancel|terminate|reset|stats]]`` as the
official SDKs call it: flat request bodies, ``{"data": …}`` responses, the list paged
with ``?per_page=&search=&token=`` and a ``pagination`` object. Create answers 201 and
delete an empty 204. Reads need the ``read`` scope, changes ``admin``; another tenant's
campaign is a 404. The rules are in :mod:`postroom.services.campaigns`, the sending and
stats in :mod:`postroom.services.campaign_sending`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.docs import CampaignFields, CampaignSchedule, json_body
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response, token_pagination
from postroom.api.routes.sandbox import iso
from postroom.services import campaign_sending, campaigns
from postroom.services.campaigns import Campaign

router = APIRouter(tags=["email campaigns"])
routes = Routes(router, "/email_campaigns")
ONE = "/{campaign_id}"
FIELDS = json_body(CampaignFields)
SCHEDULE = json_body(CampaignSchedule)


async def _body(request: Request) -> dict[str, Any]:
    limit = 3 * services_of(request).settings.templates.max_body_chars + 1024 * 1024
    return await read_json_object(request, limit)


def campaign_json(found: Campaign, *, bodies: bool = True) -> dict[str, Any]:
    """An EmailCampaign as the SDKs read it (the list leaves the bodies out)."""
    row = found.row
    metadata: dict[str, Any] = {
        "errors": [{"message": e["error"], "rcpt_index": e["seq"]} for e in found.errors]
    }
    if row["state_reason"]:
        metadata["reason"] = row["state_reason"]
    if row["state_error"]:
        metadata["error"] = row["state_error"]
    if row["state"] == campaigns.SCHEDULED and row["scheduled_at"] is not None:
        metadata["scheduled_at"] = iso(row["scheduled_at"])
    reply = row["reply_to"] or {}
    template: dict[str, Any] = {
        "id": row["id"],
        "subject": row["subject"],
        "merge_tags": list(row["merge_tags"] or []),
    }
    if bodies:
        template.update(body_html=row["body_html"], body_text=row["body_text"])
    shown: dict[str, Any] = {
        "id": row["id"],
        "domain_id": row["domain_id"],
        "domain_name": row["domain_name"],
        "name": row["name"],
        "from_local_part": row["from_local_part"],
        "from_display_name": row["from_display_name"],
        "reply_to": {k: reply.get(k) for k in ("display_name", "local_part", "domain")},
        "current_state": row["state"],
        "current_state_metadata": metadata,
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
        "last_started_at": iso(row["last_started_at"]),
        "recipient_total_count": row["recipient_total_count"],
        "contact_list_ids": list(row["contact_list_ids"] or []),
        "contact_segment_ids": [],
        "delivery_mode": row["delivery_mode"],
        "delivery_options": {"emails_per_hour": row["emails_per_hour"]},
        "template": template,
    }
    if row["last_started_at"] is not None:
        shown["last_started_at_date"] = row["last_started_at"].date().isoformat()
    return shown


def _one(found: Campaign, status: int = 200) -> Response:
    return json_response({"data": campaign_json(found)}, status)


@routes.get("", scope="read", summary="List email campaigns, newest first")
async def list_email_campaigns(
    request: Request,
    caller: Acting,
    per_page: Annotated[int, Query(ge=1, le=1_000_000)] = campaigns.PER_PAGE_DEFAULT,
    token: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    search: Annotated[str | None, Query(max_length=255)] = None,
) -> Response:
    per_page = min(per_page, campaigns.PER_PAGE_MAX)
    found, more = await campaigns.page(
        services_of(request), caller.account_id, search, token, per_page
    )
    pagination = token_pagination(request, token, per_page, more)
    data = [campaign_json(c, bodies=False) for c in found]
    return json_response({"data": data, "pagination": pagination})


@routes.post(
    "",
    scope="admin",
    summary="Create an email campaign (a draft)",
    status_code=201,
    openapi_extra=FIELDS,
)
async def create_email_campaign(request: Request, caller: Acting) -> Response:
    body = await _body(request)
    return _one(await campaigns.create(services_of(request), caller.account_id, body), 201)


@routes.get(ONE, scope="read", summary="Get an email campaign")
async def get_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    return _one(await campaigns.get(services_of(request), caller.account_id, campaign_id))


@routes.patch(ONE, scope="admin", summary="Update a draft email campaign", openapi_extra=FIELDS)
async def update_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    body = await _body(request)
    services = services_of(request)
    return _one(await campaigns.update(services, caller.account_id, campaign_id, body))


@routes.delete(ONE, scope="admin", summary="Delete a draft email campaign", status_code=204)
async def delete_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    await campaigns.delete(services_of(request), caller.account_id, campaign_id)
    return Response(status_code=204)


@routes.post(ONE + "/start", scope="admin", summary="Start sending a draft campaign now")
async def start_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    await campaigns.start(services, caller.account_id, campaign_id)
    # The first slice goes at once; the scheduler's rounds send the rest.
    await campaign_sending.run_campaign(
        services, caller.account_id, campaign_id, campaign_sending.START_SLICE
    )
    return _one(await campaigns.get(services, caller.account_id, campaign_id))


@routes.post(
    ONE + "/schedule",
    scope="admin",
    summary="Schedule a draft campaign",
    openapi_extra=SCHEDULE,
)
async def schedule_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    body = await _body(request)
    services = services_of(request)
    return _one(await campaigns.schedule(services, caller.account_id, campaign_id, body))


@routes.post(ONE + "/cancel", scope="admin", summary="Cancel a scheduled campaign (a draft again)")
async def cancel_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    return _one(await campaigns.cancel(services_of(request), caller.account_id, campaign_id))


@routes.post(ONE + "/reset", scope="admin", summary="Reset a scheduled campaign to a draft")
async def reset_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    return _one(await campaigns.cancel(services_of(request), caller.account_id, campaign_id))


@routes.post(ONE + "/terminate", scope="admin", summary="Terminate a campaign being sent")
async def terminate_email_campaign(campaign_id: Id, request: Request, caller: Acting) -> Response:
    return _one(await campaigns.terminate(services_of(request), caller.account_id, campaign_id))


@routes.get(ONE + "/stats", scope="read", summary="A campaign's delivery and engagement stats")
async def email_campaign_stats(
    campaign_id: Id,
    request: Request,
    caller: Acting,
    start_date: Annotated[str | None, Query(max_length=10)] = None,
    end_date: Annotated[str | None, Query(max_length=10)] = None,
) -> Response:
    found = await campaign_sending.stats(
        services_of(request), caller.account_id, campaign_id, start_date, end_date
    )
    return json_response({"data": found})
