"""Inbound API (the official inbound spec): folders, inboxes with their own address, and
the messages they received, on both path families (api/families.py): ``/api/inbound/…``
(what the spec and the Python SDK call) and ``/api/accounts/{account_id}/inbound/…``.

Shapes as the spec has them: folders and inboxes are flat, creates answer 201, deletes an
empty 204; the message list is ``{"data", "total_count", "last_id"}``, newest first, 50 a
page (``?last_id=`` the previous page's cursor; ``null`` at the end).

Postroom's additions: an inbox shows its ``folder_id`` and ``mx`` (the DNS record that
brings its mail here; also ``GET …/inbound/setup``); a message shows ``spam_score``,
``spam_rules`` and ``authentication`` (SPF, DKIM, DMARC results). Its
``raw_message_url`` and attachments' ``download_url`` are Postroom routes read with the
same token (``…/messages/{id}/raw``, ``…/messages/{id}/attachments/{attachment_id}``);
they do not expire (``*_expires_at`` null). Reading needs ``read``, changing ``admin``.
A message also shows ``rfc_message_id`` (the SDK's name), ``thread_id`` and ``forwards``.
Threads and answers are :mod:`postroom.api.routes.inbound_threads`, forward rules
:mod:`postroom.api.routes.inbound_rules`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import read_json_object
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.responses import json_response
from postroom.errors import NotFound, ValidationFailed
from postroom.services import Services, inbound_mail

router = APIRouter(tags=["inbound"])
routes = Routes(router, "/inbound")
BODY_LIMIT = 16 * 1024


def iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def folder_json(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": int(row["id"]), "name": row["name"]}


def inbox_json(services: Services, row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": int(row["id"]),
        "name": row["name"],
        "address": inbound_mail.address_of(services, row),
        # The installation has one inbound domain; the Python SDK requires its id.
        "domain_id": inbound_mail.INBOUND_DOMAIN_ID,
        "folder_id": int(row["folder_id"]),
        "mx": inbound_mail.mx_instructions(services),
    }


def message_json(row: dict[str, Any]) -> dict[str, Any]:
    summary = dict(row["summary"])
    auth = dict(row["auth"])
    return {
        "id": str(row["id"]),
        "inbox_id": int(row["inbox_id"]),
        "from": summary.get("from"),
        "to": summary.get("to") or [],
        "cc": summary.get("cc") or [],
        "bcc": [],  # a received message does not say (Bcc is not sent)
        "reply_to": summary.get("reply_to"),
        "subject": summary.get("subject"),
        "message_id": summary.get("message_id"),
        "rfc_message_id": summary.get("message_id"),  # the Python SDK's name for it
        "in_reply_to": summary.get("in_reply_to"),
        "references": summary.get("references") or [],
        "headers": summary.get("headers") or {},
        "size": int(row["size"]),
        "html_size": int(summary.get("html_size") or 0),
        "text_size": int(summary.get("text_size") or 0),
        "received_at": iso(row["received_at"]),
        "thread_id": str(row["thread_id"]) if row.get("thread_id") is not None else None,
        "attachments": summary.get("attachments") or [],
        "forwards": row.get("forwards") or [],
        "spam_score": float(row["spam_score"]),
        "spam_rules": auth.pop("spam_rules", []),
        "authentication": auth,
    }


def message_link(request: Request, account_id: int, inbox_id: int, message_id: int) -> str:
    """The API URL of a received message (its raw and attachment links start with it)."""
    base = services_of(request).settings.server.public_url or str(request.base_url)
    return (
        f"{base.rstrip('/')}/api/accounts/{account_id}/inbound/inboxes/{inbox_id}"
        f"/messages/{message_id}"
    )


def detail_json(request: Request, account_id: int, shown: inbound_mail.Shown) -> dict[str, Any]:
    row = shown.row
    link = message_link(request, account_id, int(row["inbox_id"]), int(row["id"]))
    out = message_json(row)
    out["attachments"] = [
        {
            **a.as_json(),
            "download_url": f"{link}/attachments/{a.attachment_id}",
            "download_url_expires_at": None,
        }
        for a in shown.mail.attachments
    ]
    out.update(
        raw_message_url=f"{link}/raw",
        raw_message_expires_at=None,
        html_body=shown.mail.html,
        text_body=shown.mail.text,
    )
    return out


async def _object(request: Request) -> dict[str, Any]:
    return await read_json_object(request, BODY_LIMIT)


# --- setup and folders --------------------------------------------------------------------


@routes.get("/setup", scope="read", summary="The MX record inbound inboxes need")
async def setup(request: Request, caller: Acting) -> Response:
    services = services_of(request)
    return json_response(
        {
            "inbound_domain": inbound_mail.inbound_domain(services),
            "mx": inbound_mail.mx_instructions(services),
        }
    )


@routes.get("/folders", scope="read", summary="List inbound folders")
async def list_folders(request: Request, caller: Acting) -> Response:
    rows = await inbound_mail.list_folders(services_of(request), caller.account_id)
    return json_response([folder_json(r) for r in rows])


@routes.post("/folders", scope="admin", summary="Create an inbound folder", status_code=201)
async def create_folder(request: Request, caller: Acting) -> Response:
    body = await _object(request)
    row = await inbound_mail.create_folder(services_of(request), caller.account_id, body)
    return json_response(folder_json(row), 201)


@routes.get("/folders/{folder_id}", scope="read", summary="Get an inbound folder")
async def get_folder(folder_id: Id, request: Request, caller: Acting) -> Response:
    row = await inbound_mail.get_folder(services_of(request), caller.account_id, folder_id)
    return json_response(folder_json(row))


@routes.patch("/folders/{folder_id}", scope="admin", summary="Rename an inbound folder")
async def update_folder(folder_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    services = services_of(request)
    row = await inbound_mail.update_folder(services, caller.account_id, folder_id, body)
    return json_response(folder_json(row))


@routes.delete(
    "/folders/{folder_id}",
    scope="admin",
    summary="Delete an inbound folder, its inboxes and their mail",
    status_code=204,
)
async def delete_folder(folder_id: Id, request: Request, caller: Acting) -> Response:
    await inbound_mail.delete_folder(services_of(request), caller.account_id, folder_id)
    return Response(status_code=204)


# --- inboxes ------------------------------------------------------------------------------


@routes.get("/folders/{folder_id}/inboxes", scope="read", summary="List a folder's inboxes")
async def list_inboxes(folder_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    rows = await inbound_mail.list_inboxes(services, caller.account_id, folder_id)
    return json_response([inbox_json(services, r) for r in rows])


@routes.post(
    "/folders/{folder_id}/inboxes",
    scope="admin",
    summary="Create an inbound inbox",
    status_code=201,
)
async def create_inbox(folder_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    services = services_of(request)
    row = await inbound_mail.create_inbox(services, caller.account_id, folder_id, body)
    return json_response(inbox_json(services, row), 201)


@routes.get("/folders/{folder_id}/inboxes/{inbox_id}", scope="read", summary="Get an inbound inbox")
async def get_inbox(folder_id: Id, inbox_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    row = await inbound_mail.get_inbox(services, caller.account_id, folder_id, inbox_id)
    return json_response(inbox_json(services, row))


@routes.patch(
    "/folders/{folder_id}/inboxes/{inbox_id}", scope="admin", summary="Rename an inbound inbox"
)
async def update_inbox(folder_id: Id, inbox_id: Id, request: Request, caller: Acting) -> Response:
    body = await _object(request)
    services = services_of(request)
    row = await inbound_mail.update_inbox(services, caller.account_id, folder_id, inbox_id, body)
    return json_response(inbox_json(services, row))


@routes.delete(
    "/folders/{folder_id}/inboxes/{inbox_id}",
    scope="admin",
    summary="Delete an inbound inbox and its mail",
    status_code=204,
)
async def delete_inbox(folder_id: Id, inbox_id: Id, request: Request, caller: Acting) -> Response:
    services = services_of(request)
    await inbound_mail.delete_inbox(services, caller.account_id, folder_id, inbox_id)
    return Response(status_code=204)


# --- messages -----------------------------------------------------------------------------


@routes.get("/inboxes/{inbox_id}/messages", scope="read", summary="List received messages")
async def list_messages(
    inbox_id: Id,
    request: Request,
    caller: Acting,
    last_id: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    before = None
    if last_id:
        if not last_id.isdigit():
            raise ValidationFailed(["last_id must be a message id"])
        before = int(last_id)
    rows, total, cursor = await inbound_mail.list_messages(
        services_of(request), caller.account_id, inbox_id, before
    )
    return json_response(
        {
            "data": [message_json(r) for r in rows],
            "total_count": total,
            "last_id": str(cursor) if cursor is not None else None,
        }
    )


@routes.get("/inboxes/{inbox_id}/messages/{message_id}", scope="read", summary="Get a message")
async def get_message(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    shown = await inbound_mail.get_message(
        services_of(request), caller.account_id, inbox_id, message_id
    )
    return json_response(detail_json(request, caller.account_id, shown))


@routes.delete(
    "/inboxes/{inbox_id}/messages/{message_id}",
    scope="admin",
    summary="Delete a message",
    status_code=204,
)
async def delete_message(
    inbox_id: Id, message_id: Id, request: Request, caller: Acting
) -> Response:
    await inbound_mail.delete_message(services_of(request), caller.account_id, inbox_id, message_id)
    return Response(status_code=204)


@routes.get(
    "/inboxes/{inbox_id}/messages/{message_id}/raw",
    scope="read",
    summary="The message as received (.eml)",
)
async def raw_message(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    shown = await inbound_mail.get_message(
        services_of(request), caller.account_id, inbox_id, message_id
    )
    return Response(
        bytes(shown.row["raw"]),
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{message_id}.eml"'},
    )


@routes.get(
    "/inboxes/{inbox_id}/messages/{message_id}/attachments/{attachment_id}",
    scope="read",
    summary="One attachment of a message",
)
async def attachment(
    inbox_id: Id, message_id: Id, attachment_id: str, request: Request, caller: Acting
) -> Response:
    shown = await inbound_mail.get_message(
        services_of(request), caller.account_id, inbox_id, message_id
    )
    for item in shown.mail.attachments:
        if item.attachment_id == attachment_id:
            # Never rendered by the browser as the API's own content (stored XSS).
            return Response(
                item.data,
                media_type="application/octet-stream",
                headers={
                    "Content-Disposition": "attachment",
                    "X-Content-Type-Options": "nosniff",
                },
            )
    raise NotFound("attachment")
