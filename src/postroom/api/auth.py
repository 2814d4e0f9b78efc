"""Request authentication (``Authorization: Bearer <token>`` or ``Api-Token: <token>``) and
the account a request may act on."""

from __future__ import annotations

from fastapi import Request

from postroom.errors import Forbidden, NotFound
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
    """FastAPI dependency: the authenticated caller, or 401."""
    authenticator: Authenticator = request.app.state.authenticator
    found = await authenticator.authenticate(presented_token(request))
    request.state.principal = found
    return found


def account_scope(found: Principal, account_id: int, scope: str = "read") -> None:
    """Refuse another tenant's account with 404 (never confirm it exists) and check scope."""
    if not found.may_access(account_id):
        raise NotFound("account")
    if scope == "read":
        if not ({"read", "admin"} & found.scopes):
            raise Forbidden("read")
    else:
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
