"""The sending API (spec §3): /api/send and /api/batch, and their sandbox forms.

The stream is the listener's (transactional on the main port, bulk on the bulk port),
unless the Host header names a bulk host (``bulk.…``), as Mailtrap's hosts do.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response
from starlette.routing import Route

from postroom.api import listsend
from postroom.api.auth import principal
from postroom.api.body import parse_json, read_body
from postroom.api.docs import BATCH_EXAMPLE, SEND_EXAMPLE, json_body
from postroom.api.families import SCOPE_KEY
from postroom.api.params import Id
from postroom.api.payload import parse_batch, parse_send
from postroom.api.responses import json_response
from postroom.api.schemas import (
    BatchRequestDoc,
    BatchResponse,
    SendingError,
    SendRequestDoc,
    SendResponse,
)
from postroom.domain.streams import Stream
from postroom.errors import Forbidden, ValidationFailed
from postroom.services import Services, idempotency
from postroom.services.accept import Origin, accept_message, accept_messages
from postroom.services.auth import Principal

router = APIRouter(tags=["sending"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": SendingError} for code in (400, 401, 403, 413, 429, 500)
}


# The access these routes need, recorded as api/families.py records it (the tenancy tests
# walk it): the ``send`` scope, on the token's own account.
_SENDS: dict[str, Any] = {SCOPE_KEY: "send"}


def stream_of(request: Request) -> Stream:
    """The request's stream: the listener's, unless the Host header says bulk."""
    services: Services = request.app.state.services
    host = (request.headers.get("host") or "").rsplit(":", 1)[0].lower()
    if host in services.settings.server.bulk_hosts or host.startswith("bulk."):
        return Stream.BULK
    stream: Stream = request.app.state.stream
    return stream


def _origin(
    request: Request, who: Principal, inbox_id: int | None = None, body: bytes = b""
) -> Origin:
    who.require("send")
    if inbox_id is not None and not who.may_send_into(inbox_id):
        # A token limited to other sandboxes (domain/access.py) may not send here.
        raise Forbidden("send")
    client = request.client.host if request.client else None
    stream = Stream.TRANSACTIONAL if inbox_id is not None else stream_of(request)
    return Origin(
        who.account_id,
        stream,
        client,
        inbox_id,
        idempotency=_claim(request, body),
        sender_domains=who.sender_domains,
    )


def _claim(request: Request, body: bytes) -> idempotency.Claim | None:
    """The request's Idempotency-Key, fingerprinted by path, stream, inbox and body."""
    key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
    if key is None:
        return None
    services: Services = request.app.state.services
    hours = services.settings.limits.idempotency_hours
    fingerprint = idempotency.fingerprint(
        request.url.path.encode(), str(stream_of(request)).encode(), body
    )
    return idempotency.Claim(key, fingerprint, timedelta(hours=hours))


async def _send(request: Request, who: Principal, inbox_id: int | None) -> Any:
    services: Services = request.app.state.services
    limits = services.settings.limits
    # Base64 inflates attachments by 4/3; allow for it and the JSON around them.
    body = await read_body(request, limits.max_message_bytes * 3 // 2 + 65536)
    draft = parse_send(parse_json(body), limits)
    ids = await accept_message(services, _origin(request, who, inbox_id, body), draft)
    return json_response({"success": True, "message_ids": ids})


async def _batch(request: Request, who: Principal, inbox_id: int | None) -> Any:
    services: Services = request.app.state.services
    limits = services.settings.limits
    body = await read_body(request, limits.max_batch_bytes)
    origin = _origin(request, who, inbox_id, body)
    parsed = parse_json(body)
    expanded = await listsend.expand(services, origin.account_id, parsed)
    if expanded is not None:  # requests naming contact lists (api/listsend.py)
        if len(expanded.spans) > limits.max_batch_requests:
            raise ValidationFailed(
                [f"'requests' must contain at most {limits.max_batch_requests} items"]
            )
        parsed = expanded.body
        wide = max(limits.max_batch_requests, listsend.MAX_LIST_RECIPIENTS + len(expanded.spans))
        limits = limits.model_copy(update={"max_batch_requests": wide})
    drafts = parse_batch(parsed, limits)
    outcomes = await accept_messages(services, origin, drafts)
    items = [_item(o) for o in outcomes]
    if expanded is not None:
        items = listsend.fold(expanded, items)
    return json_response({"success": True, "responses": items, "errors": []})


async def _plain_send(request: Request) -> Response:
    response: Response = await _send(request, await principal(request), None)
    return response


async def _plain_batch(request: Request) -> Response:
    response: Response = await _batch(request, await principal(request), None)
    return response


def plain_routes() -> list[Route]:
    """``POST /api/send`` and ``/api/batch`` as plain Starlette routes.

    ``create_app`` puts them ahead of the FastAPI routes below, which stay for the OpenAPI
    document (and answer nothing these do not). The handlers are the same; what the
    plain routes skip is FastAPI's dependency solving and its per-request exit stacks,
    ~17% of the event loop's time per send (docs/benchmarks.md, F13). Errors still go
    through the app's exception handlers, as Starlette routes' do.
    """
    return [
        Route("/api/send", _plain_send, methods=["POST"]),
        Route("/api/batch", _plain_batch, methods=["POST"]),
    ]


def _item(outcome: object) -> dict[str, Any]:
    if isinstance(outcome, list):
        return {"success": True, "message_ids": outcome}
    errors = idempotency.item_errors(outcome)
    if errors is not None:
        return {"success": False, "errors": errors}
    raise outcome if isinstance(outcome, Exception) else TypeError(outcome)


@router.post(
    "/api/send",
    response_model=SendResponse,
    responses=_ERRORS,
    openapi_extra=_SENDS | json_body(SendRequestDoc, example=SEND_EXAMPLE),
    summary="Send one message",
)
async def send(request: Request, who: Principal = Depends(principal)) -> Any:
    return await _send(request, who, None)


@router.post(
    "/api/batch",
    response_model=BatchResponse,
    responses=_ERRORS,
    openapi_extra=_SENDS | json_body(BatchRequestDoc, example=BATCH_EXAMPLE),
    summary="Send up to 500 messages",
)
async def batch(request: Request, who: Principal = Depends(principal)) -> Any:
    return await _batch(request, who, None)


@router.post(
    "/api/send/{inbox_id}",
    response_model=SendResponse,
    responses=_ERRORS,
    openapi_extra=_SENDS | json_body(SendRequestDoc, example=SEND_EXAMPLE),
    summary="Send into a sandbox inbox",
)
async def sandbox_send(inbox_id: Id, request: Request, who: Principal = Depends(principal)) -> Any:
    return await _send(request, who, inbox_id)


@router.post(
    "/api/batch/{inbox_id}",
    response_model=BatchResponse,
    responses=_ERRORS,
    openapi_extra=_SENDS | json_body(BatchRequestDoc, example=BATCH_EXAMPLE),
    summary="Batch into a sandbox inbox",
)
async def sandbox_batch(inbox_id: Id, request: Request, who: Principal = Depends(principal)) -> Any:
    return await _batch(request, who, inbox_id)
