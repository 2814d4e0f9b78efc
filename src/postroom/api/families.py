"""One route declaration, both path families, and the access it needs.

The contract has two spellings of every account resource: the SDKs call
``/api/accounts/{account_id}/suppressions`` and the official OpenAPI files name
``/api/suppressions`` (the token's own account). A route module declares each operation
once with :class:`Routes`; it is registered under both prefixes with the same handler, so
the two can never drift apart.

Each declaration also names the scope it needs (``read``, ``send`` or ``admin``). Before
the handler runs, a guard authenticates the caller, resolves the account the request acts
on (the path's, or the token's own on the account-less family) and checks the scope:
another tenant's account is a 404 that never confirms it exists, a missing scope is a 403
(api/auth.py ``account_scope``). The scope and family are recorded in the OpenAPI
operation (``x-postroom-scope``, ``x-postroom-family``), which is what the tenancy tests
walk: a route without them is a route whose access nobody declared.

    routes = Routes(router, "/suppressions")

    @routes.get("", scope="read", summary="List suppressions")
    async def list_suppressions(request: Request, caller: Acting) -> Response:
        rows = await service.list(caller.account_id)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from itertools import product
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, Request

from postroom.api.auth import acting_account, principal
from postroom.api.params import Id
from postroom.services.auth import Principal

Scope = Literal["read", "send", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "send", "admin")
ACCOUNT_PREFIX = "/api/accounts/{account_id}"
ALIAS_PREFIX = "/api"
SCOPE_KEY = "x-postroom-scope"
FAMILY_KEY = "x-postroom-family"

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


@dataclass(frozen=True)
class Caller:
    """Who is calling and the account the request acts on, once allowed."""

    principal: Principal
    account_id: int


_UNRESOLVED: Any = None


def _caller(request: Request) -> Caller:
    # Absent only when the guard was skipped because a parameter failed validation
    # (e.g. an account id past 2^63); FastAPI then answers that error and never calls the
    # handler, so nothing sees the placeholder.
    found: Caller = getattr(request.state, "caller", _UNRESOLVED)
    return found


# The handler's view of the request's account: set by the route's guard, which FastAPI
# runs before the handler's own parameters (route-level dependencies come first).
Acting = Annotated[Caller, Depends(_caller)]
Who = Annotated[Principal, Depends(principal)]


def _account_guard(scope: Scope) -> Callable[..., Awaitable[None]]:
    async def guard(request: Request, account_id: Id, who: Who) -> None:
        request.state.caller = Caller(who, acting_account(who, account_id, scope))

    return guard


def _alias_guard(scope: Scope) -> Callable[..., Awaitable[None]]:
    async def guard(request: Request, who: Who) -> None:
        request.state.caller = Caller(who, acting_account(who, None, scope))

    return guard


_GUARDS = {
    (family, scope): (_account_guard(scope) if family == "account" else _alias_guard(scope))
    for family in ("account", "alias")
    for scope in SCOPES
}


class Routes:
    """Declares a resource's operations once, under both path families."""

    def __init__(self, router: APIRouter, base: str, *, also: tuple[str, ...] = ()) -> None:
        # ``also``: other names of the same resource, each answered on both families too
        # (the SDKs' ``/inboxes`` are the specs' ``/sandboxes``, ``/sending_domains`` the
        # specs' ``/domains``): still one declaration and one handler per operation.
        self.router = router
        self.base = base
        self.bases = (base, *also)

    def get(self, path: str, *, scope: Scope, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, scope=scope, **options)

    def post(self, path: str, *, scope: Scope, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, scope=scope, **options)

    def put(self, path: str, *, scope: Scope, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, scope=scope, **options)

    def patch(self, path: str, *, scope: Scope, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, scope=scope, **options)

    def delete(self, path: str, *, scope: Scope, **options: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, scope=scope, **options)

    def route(
        self, method: str, path: str, *, scope: Scope, **options: Any
    ) -> Callable[[Handler], Handler]:
        """Register the handler under ``/api/accounts/{account_id}<base><path>`` and
        ``/api<base><path>`` (for every name in ``bases``), each behind the guard for
        ``scope``."""
        if scope not in SCOPES:
            raise ValueError(f"unknown scope {scope!r}")
        extra = dict(options.pop("openapi_extra", None) or {})

        def register(handler: Handler) -> Handler:
            for base, (family, prefix) in product(
                self.bases, (("account", ACCOUNT_PREFIX), ("alias", ALIAS_PREFIX))
            ):
                self.router.add_api_route(
                    prefix + base + path,
                    handler,
                    methods=[method],
                    dependencies=[Depends(_GUARDS[(family, scope)])],
                    openapi_extra={**extra, SCOPE_KEY: scope, FAMILY_KEY: family},
                    **options,
                )
            return handler

        return register
