"""Map Postroom's exceptions to the contract's status codes and error shapes.

Routes of the sending hosts (``/api/send``, ``/api/batch`` and their sandbox forms)
answer in the sending family; everything else in the general family (spec §2).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from postroom.api.responses import field_errors, general_error, json_response, sending_error
from postroom.errors import (
    Conflict,
    FeatureUnavailable,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    StoreUnavailable,
    Unauthorized,
    ValidationFailed,
)
from postroom.services.idempotency import KeyReused
from postroom.services.ratelimit import RateLimited

log = logging.getLogger("postroom.api")

# What a client is told to wait while the database is unreachable: a PostgreSQL restart
# or fail-over takes seconds.
UNAVAILABLE_RETRY_AFTER = 5


def is_sending_path(path: str) -> bool:
    return path.startswith(("/api/send", "/api/batch"))


def _respond(request: Request, status: int, sending: list[str], general: str) -> Response:
    if is_sending_path(request.url.path):
        return sending_error(status, sending)
    return general_error(status, general)


async def on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationFailed)
    if is_sending_path(request.url.path):
        return sending_error(400, exc.errors)
    return field_errors({"base": exc.errors})


async def on_key_reused(request: Request, exc: Exception) -> Response:
    # 422: the request is well-formed but cannot be processed with this key (Stripe's and
    # Resend's answer to a reused Idempotency-Key).
    return _respond(request, 422, [str(exc)], str(exc))


async def on_rate_limited(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RateLimited)
    if is_sending_path(request.url.path):
        response = sending_error(429, ["Rate limit exceeded"])
    else:
        response = json_response({"errors": "Rate limit exceeded"}, 429)
    # What mailtrap.io sends (informational: no SDK reads them).
    response.headers["X-Ratelimit-Limit"] = str(exc.limit)
    response.headers["X-Ratelimit-Remaining"] = "0"
    if exc.retry_after is not None:
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


async def on_too_large(request: Request, exc: Exception) -> Response:
    return _respond(request, 413, ["Message too large"], "Payload Too Large")


async def on_unauthorized(request: Request, exc: Exception) -> Response:
    return _respond(request, 401, ["Unauthorized"], "Incorrect API token")


async def on_forbidden(request: Request, exc: Exception) -> Response:
    if is_sending_path(request.url.path):
        return sending_error(403, ["Forbidden"])
    return json_response({"errors": "Account access forbidden"}, 403)


async def on_not_found(request: Request, exc: Exception) -> Response:
    return _respond(request, 404, ["Not Found"], "Not Found")


async def on_conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Conflict)
    return field_errors(exc.field_errors)


async def on_request_validation(request: Request, exc: Exception) -> Response:
    # FastAPI's own parameter validation (path ids, query types): the contract's 400.
    assert isinstance(exc, RequestValidationError)
    if any(_in_path(e) for e in exc.errors()):
        # A path that cannot name anything (an id past 2^63, a word where an id goes, an
        # unknown group) is a resource that does not exist (postroom.api.params).
        return await on_not_found(request, exc)
    messages = [_describe(e) for e in exc.errors()]
    if is_sending_path(request.url.path):
        return sending_error(400, messages)
    return general_error(400, "; ".join(messages) or "Bad Request")


def _in_path(error: object) -> bool:
    return isinstance(error, dict) and tuple(error.get("loc", ()))[:1] == ("path",)


def _describe(error: object) -> str:
    if isinstance(error, dict):
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("path", "query", "body"))
        return f"'{where}' {error.get('msg', 'is invalid')}".strip()
    return str(error)


async def on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    messages = {404: "Not Found", 405: "Method Not Allowed"}
    text = messages.get(exc.status_code, str(exc.detail))
    return _respond(request, exc.status_code, [text], text)


async def on_unavailable(request: Request, exc: Exception) -> Response:
    # Logged once per outage by storage/db.py, not here per request.
    if is_sending_path(request.url.path):
        response = sending_error(503, ["Service temporarily unavailable"])
    else:
        response = json_response({"errors": "Service temporarily unavailable"}, 503)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER)
    return response


async def on_feature_unavailable(request: Request, exc: Exception) -> Response:
    # The message names the missing part (it holds no secret: an operator's setting).
    return json_response({"errors": str(exc)}, 503)


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    if is_sending_path(request.url.path):
        return sending_error(500, ["Internal server error"])
    return json_response({"errors": "Unexpected error"}, 500)


def install(app: FastAPI) -> None:
    """Register every handler on ``app``."""
    app.add_exception_handler(ValidationFailed, on_validation)
    app.add_exception_handler(PayloadTooLarge, on_too_large)
    app.add_exception_handler(KeyReused, on_key_reused)
    app.add_exception_handler(RateLimited, on_rate_limited)
    app.add_exception_handler(Unauthorized, on_unauthorized)
    app.add_exception_handler(Forbidden, on_forbidden)
    app.add_exception_handler(NotFound, on_not_found)
    app.add_exception_handler(Conflict, on_conflict)
    app.add_exception_handler(StoreUnavailable, on_unavailable)
    app.add_exception_handler(FeatureUnavailable, on_feature_unavailable)
    app.add_exception_handler(RequestValidationError, on_request_validation)
    app.add_exception_handler(HTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
