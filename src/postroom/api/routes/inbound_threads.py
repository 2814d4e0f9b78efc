"""Inbound threads, and reply / reply-all / forward of a received message, on both path
families (``/api/inbound/…`` as the Python SDK calls them, and
``/api/accounts/{account_id}/inbound/…``). Shapes are the SDK's (``mailtrap.models.inbound``).

* ``GET …/inboxes/{inbox_id}/threads?last_id=&search=`` → ``{"data": [summary],
  "total_count", "last_id"}``, most recently active first, 50 a page; ``search`` matches
  the subject or a sender's address.
* ``GET …/threads/{thread_id}`` → the summary plus ``messages``, oldest first: received
  ones (``direction`` ``inbound``, bodies, attachments with download links, forward
  outcomes) and answers sent from the inbox (``outbound``, with their ``delivery``).
* ``DELETE …/threads/{thread_id}`` → 204.
* ``POST …/messages/{message_id}/reply|reply_all|forward`` → ``{"message_ids": [...]}``.

Reading needs ``read``, deleting ``admin``. Answering needs ``admin`` too, as the
sandbox's forward does: an answer quotes or carries the message to an address the caller
chooses, so a send-only token (an application's) could otherwise read the inbox through
it, and a viewer could send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from postroom.api.auth import services_of
from postroom.api.body import parse_json, read_body
from postroom.api.families import Acting, Routes
from postroom.api.params import Id
from postroom.api.payload import parse_send
from postroom.api.responses import json_response
from postroom.api.routes.inbound import iso, message_link
from postroom.domain.streams import Stream
from postroom.errors import ValidationFailed
from postroom.services import inbound_replies, inbound_threads
from postroom.services.accept import Origin

router = APIRouter(tags=["inbound"])
routes = Routes(router, "/inbound")
THREAD = "/inboxes/{inbox_id}/threads/{thread_id}"
MESSAGE = "/inboxes/{inbox_id}/messages/{message_id}"

# deliveries.state → the SDK's InboundThreadMessageDelivery.status
_DELIVERY_STATUS = {
    "queued": "enqueued",
    "delivered": "delivered",
    "shunted": "delivered",
    "suppressed": "opted_out",
    "rejected": "not_delivered",
    "bounced": "not_delivered",
    "failed": "not_delivered",
}


def _items(thread: inbound_threads.Thread) -> list[tuple[datetime, str, dict[str, Any]]]:
    """The thread's messages, oldest first: (when, direction, row)."""
    items = [(r["received_at"], "inbound", r) for r in thread.received]
    items += [(s["created_at"], "outbound", s) for s in thread.sent]
    return sorted(items, key=lambda i: (i[0], 0 if i[1] == "inbound" else 1, int(i[2]["id"])))


def _id_of(direction: str, row: dict[str, Any]) -> str:
    # A sent answer is known by its sending message id (what reply/forward answered).
    return str(row["id"]) if direction == "inbound" else str(row["message_id"])


def _unique(values: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for value in values:
        if value and value.lower() not in seen:
            seen[value.lower()] = value
    return list(seen.values())


def summary_json(thread: inbound_threads.Thread) -> dict[str, Any]:
    items = _items(thread)
    summaries = [row["summary"] for _, _, row in items]
    received = [r["received_at"] for r in thread.received]
    sent = [s["created_at"] for s in thread.sent]
    row = thread.row
    return {
        "id": str(row["id"]),
        "subject": row["subject"],
        "message_count": len(items),
        "size": sum(int(r["size"]) for _, _, r in items),
        "first_message_at": iso(items[0][0] if items else row["created_at"]),
        "last_received_at": iso(max(received)) if received else None,
        "last_sent_at": iso(max(sent)) if sent else None,
        "last_activity_at": iso(row["last_activity_at"]),
        "last_message_id": _id_of(items[-1][1], items[-1][2]) if items else None,
        "senders": _unique([str(s.get("from") or "") for s in summaries]),
        "recipients": _unique([str(a) for s in summaries for a in [*s["to"], *s["cc"]]]),
        "attachments": [a for s in summaries for a in s.get("attachments") or []],
    }


def _delivery(row: dict[str, Any] | None, to: str) -> dict[str, Any] | None:
    if row is None:
        return None
    state = str(row["state"])
    return {
        "to": str(row["recipient"]) or to,
        "status": _DELIVERY_STATUS.get(state, "enqueued"),
        "delivered_at": iso(row["updated_at"]) if state in ("delivered", "shunted") else None,
        "bounced_at": iso(row["updated_at"]) if state == "bounced" else None,
    }


def _message_json(
    request: Request,
    account_id: int,
    detail: inbound_threads.ThreadDetail,
    direction: str,
    row: dict[str, Any],
) -> dict[str, Any]:
    summary = row["summary"]
    out: dict[str, Any] = {
        "visibility_status": "available",
        "direction": direction,
        "id": _id_of(direction, row),
        "message_group_id": None,
        "subject": summary.get("subject"),
        "rfc_message_id": summary.get("message_id"),
        "in_reply_to": summary.get("in_reply_to"),
        "references": summary.get("references") or [],
        "from": summary.get("from"),
        "to": summary.get("to") or [],
        "cc": summary.get("cc") or [],
        "bcc": summary.get("bcc") or [],
        "reply_to": summary.get("reply_to"),
        "email_size": int(row["size"]),
    }
    if direction == "inbound":
        mail = detail.mails.get(int(row["id"]))
        link = message_link(request, account_id, int(row["inbox_id"]), int(row["id"]))
        attachments = [
            {
                **a.as_json(),
                "download_url": f"{link}/attachments/{a.attachment_id}",
                "download_url_expires_at": None,
            }
            for a in (mail.attachments if mail else [])
        ]
        out.update(
            created_at=iso(row["received_at"]),
            text_body=mail.text if mail else None,
            html_body=mail.html if mail else None,
            attachments=attachments,
            forwards=row.get("forwards") or [],
        )
    else:
        first = (summary.get("to") or summary.get("cc") or summary.get("bcc") or [""])[0]
        out.update(
            created_at=iso(row["created_at"]),
            text_body=summary.get("text"),
            html_body=summary.get("html"),
            attachments=summary.get("attachments") or [],
            delivery=_delivery(detail.deliveries.get(str(row["message_id"])), str(first)),
        )
    return out


@routes.get("/inboxes/{inbox_id}/threads", scope="read", summary="List an inbox's threads")
async def list_threads(
    inbox_id: Id,
    request: Request,
    caller: Acting,
    last_id: Annotated[str | None, Query(max_length=20)] = None,
    search: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    after = None
    if last_id:
        if not last_id.isdigit() or len(last_id) > 18:
            raise ValidationFailed(["last_id must be a thread id"])
        after = int(last_id)
    page = await inbound_threads.list_threads(
        services_of(request), caller.account_id, inbox_id, after, (search or "").strip() or None
    )
    return json_response(
        {
            "data": [summary_json(t) for t in page.threads],
            "total_count": page.total,
            "last_id": str(page.last_id) if page.last_id is not None else None,
        }
    )


@routes.get(THREAD, scope="read", summary="A thread with its messages (oldest first)")
async def get_thread(inbox_id: Id, thread_id: Id, request: Request, caller: Acting) -> Response:
    detail = await inbound_threads.get_thread(
        services_of(request), caller.account_id, inbox_id, thread_id
    )
    out = summary_json(detail.thread)
    out["messages"] = [
        _message_json(request, caller.account_id, detail, direction, row)
        for _, direction, row in _items(detail.thread)
    ]
    return json_response(out)


@routes.delete(THREAD, scope="admin", summary="Delete a thread and its messages", status_code=204)
async def delete_thread(inbox_id: Id, thread_id: Id, request: Request, caller: Acting) -> Response:
    await inbound_threads.delete_thread(
        services_of(request), caller.account_id, inbox_id, thread_id
    )
    return Response(status_code=204)


# --- reply, reply-all, forward ------------------------------------------------------------


async def _answer(
    kind: inbound_replies.Kind, inbox_id: int, message_id: int, request: Request, caller: Acting
) -> Response:
    services = services_of(request)
    limits = services.settings.limits
    # Base64 inflates attachments by 4/3; allow for it and the JSON around them (as /api/send).
    body = parse_json(await read_body(request, limits.max_message_bytes * 3 // 2 + 65536))
    found = await inbound_replies.original(services, caller.account_id, inbox_id, message_id)
    draft = parse_send(inbound_replies.compose(kind, body, found), limits)
    draft = inbound_replies.finish(services, kind, draft, found)
    origin = Origin(
        caller.account_id,
        Stream.TRANSACTIONAL,
        request.client.host if request.client else None,
        sender_domains=caller.principal.sender_domains,
    )
    ids = await inbound_replies.send(services, origin, kind, draft, found)
    return json_response({"message_ids": ids})


@routes.post(MESSAGE + "/reply", scope="admin", summary="Reply to a received message")
async def reply(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    return await _answer("reply", inbox_id, message_id, request, caller)


@routes.post(
    MESSAGE + "/reply_all", scope="admin", summary="Reply to a received message and its recipients"
)
async def reply_all(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    return await _answer("reply_all", inbox_id, message_id, request, caller)


@routes.post(MESSAGE + "/forward", scope="admin", summary="Forward a received message")
async def forward(inbox_id: Id, message_id: Id, request: Request, caller: Acting) -> Response:
    return await _answer("forward", inbox_id, message_id, request, caller)
