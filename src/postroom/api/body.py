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
    return parse_json(await read_body(request, limit))


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
