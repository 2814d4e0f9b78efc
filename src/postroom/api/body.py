"""Read a JSON request body without trusting its size.

The body is read in chunks and abandoned as soon as it passes the limit, so a client
cannot make the server buffer more than the limit (Mailpit GHSA-fpxj-m5q8-fphw).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from postroom.errors import PayloadTooLarge, ValidationFailed


async def read_json(request: Request, limit: int) -> Any:
    """A management route's JSON body; strings holding NUL are refused (422).

    NUL is not text: PostgreSQL refuses it in every text value, so a name or template
    holding one would fail at the database. (The sending routes check their own fields.)
    """
    body = await read_body(request, limit)
    value = parse_json(body)
    # The escape is the only way JSON carries a NUL: look closer only when it is there.
    if b"\\u0000" in body and _has_nul(value):
        raise ValidationFailed(["NUL characters are not allowed"])
    return value


def _has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` holds NUL (a loop: JSON nests deeply)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


async def read_json_object(
    request: Request, limit: int, wrapper: str | None = None
) -> dict[str, Any]:
    """A JSON object body (422 otherwise). With ``wrapper``, a Rails-style
    ``{wrapper: {...}}`` is unwrapped and the flat object is accepted too."""
    body = await read_json(request, limit)
    if wrapper is not None and isinstance(body, dict) and isinstance(body.get(wrapper), dict):
        body = body[wrapper]
    if not isinstance(body, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    return body


async def read_body(request: Request, limit: int) -> bytes:
    """The raw request body, refused (PayloadTooLarge) past ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge("request body too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge("request body too large")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise ValidationFailed(["request body must be valid JSON"]) from None
