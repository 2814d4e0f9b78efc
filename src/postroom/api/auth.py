"""Request authentication (``Authorization: Bearer <token>`` or ``Api-Token: <token>``) and
the account a request may act on."""

from __future__ import annotations

from fastapi import Request

from postroom.domain.audit import Actor
from postroom.errors import NotFound
from postroom.services import Services
from postroom.services.auth import Authenticator, Principal


def presented_token(request: Request) -> str | None:
    """The token the client sent, from either header the contract allows."""
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    token = request.headers.get("api-token")
    return token.strip() if token else None


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the authenticated caller (401 if none; 429 once its address has
    failed too often, services/auth.py), within its rate limits."""
    authenticator: Authenticator = request.app.state.authenticator
    client = request.client.host if request.client is not None else ""
    found = await authenticator.authenticate(presented_token(request), client)
    request.state.principal = found
    _count_request(request, found)
    return found


def _count_request(request: Request, found: Principal) -> None:
    """Count the request against the limits of its token and account (429 when over)."""
    limiter = services_of(request).get_rate_limiter()
    if not limiter.enabled:
        return
    path = request.url.path
    if path.startswith(("/api/send", "/api/batch")):
        if limiter.has("sending"):
            limiter.hit("sending", f"token:{found.token_id}")
        return
    limiter.hit("token", f"token:{found.token_id}")
    group = limit_group(path)
    if group is not None and limiter.has(group):
        limiter.hit(group, f"account:{found.account_id}")


def limit_group(path: str) -> str | None:
    """The per-account limit (spec §7) a general-host path counts against, if any."""
    parts = [p for p in path.split("/") if p]
    for i, part in enumerate(parts):
        if part == "stats":
            return "stats"
        if part == "suppressions":
            return "suppressions"
        if part == "email_logs":
            rest = parts[i + 1 :]
            return "email_log" if rest and rest[0] != "export" else "email_logs"
    return None


def account_scope(found: Principal, account_id: int, scope: str = "read") -> None:
    """Refuse another tenant's account with 404 (never confirm it exists) and check scope."""
    if not found.may_access(account_id):
        raise NotFound("account")
    found.require(scope)


def acting_account(found: Principal, account_id: int | None, scope: str) -> int:
    """The account a request acts on, once allowed (:func:`account_scope`): the path's, or
    on the token-scoped aliases (``/api/suppressions``, no account in the path) the
    token's own."""
    target = found.account_id if account_id is None else account_id
    account_scope(found, target, scope)
    return target


def services_of(request: Request) -> Services:
    """The application's services (``create_app`` puts them on ``app.state``)."""
    services: Services = request.app.state.services
    return services


def actor_of(request: Request, found: Principal) -> Actor:
    """The audit log's actor for a request made with token ``found``."""
    client = request.client.host if request.client is not None else ""
    return Actor("token", str(found.token_id), found.token_name, client)
