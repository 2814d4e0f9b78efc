"""JSON responses exactly as the contract's clients expect them.

``Content-Type: application/json; charset=utf-8`` (the Ruby SDK only parses
``application/json``), serialised once with orjson, and the two error families of
spec §2: the sending hosts' ``{"success": false, "errors": [...]}`` and the general
host's ``{"error": "..."}`` / ``{"errors": ...}``.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

JSON_TYPE = "application/json; charset=utf-8"


def json_response(content: Any, status_code: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status_code, media_type=JSON_TYPE)


def sending_error(status_code: int, errors: list[str]) -> Response:
    """An error of the sending family (send, batch, sandbox send)."""
    return json_response({"success": False, "errors": errors}, status_code)


def general_error(status_code: int, message: str) -> Response:
    """An error of the general family: ``{"error": "..."}``."""
    return json_response({"error": message}, status_code)


def field_errors(field_errors: dict[str, list[str]], status_code: int = 422) -> Response:
    """A general-family validation error: ``{"errors": {"field": ["..."]}}``."""
    return json_response({"errors": field_errors}, status_code)


def token_pagination(request: Request, token: int, per_page: int, more: bool) -> dict[str, Any]:
    """The ``pagination`` object of the contract's token-paged lists (templates,
    campaigns): page numbers as tokens, and each neighbour's URL with this request's
    other parameters kept."""

    def url(page: int | None) -> str | None:
        if page is None:
            return None
        return str(request.url.include_query_params(token=page, per_page=per_page))

    previous, following = (token - 1 if token > 1 else None), (token + 1 if more else None)
    return {
        "token": token,
        "prev_token": previous,
        "next_token": following,
        "first_url": url(1),
        "prev_url": url(previous),
        "current_url": url(token),
        "next_url": url(following),
    }
