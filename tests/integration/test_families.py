"""api/families.py: one declaration answers on both path families, behind its scope,
with the real authenticator and tokens of two real accounts."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import APIRouter, Request
from sqlalchemy import Connection
from starlette.responses import JSONResponse, Response
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.api.families import FAMILY_KEY, SCOPE_KEY, Acting, Routes
from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_token
from postroom.storage.repos.accounts import insert_account


@pytest.fixture
def app_client(services: Services, boot: Bootstrap) -> Iterator[TestClient]:
    router = APIRouter()
    routes = Routes(router, "/things")

    @routes.get("/{thing_id}", scope="read", summary="Read a thing")
    async def read_thing(thing_id: int, request: Request, caller: Acting) -> Response:
        return JSONResponse({"account": caller.account_id, "thing": thing_id})

    @routes.post("", scope="admin", summary="Make a thing")
    async def make_thing(caller: Acting) -> Response:
        return JSONResponse({"made_for": caller.account_id}, 201)

    app = create_app(services)
    app.include_router(router)
    with TestClient(app) as client:
        yield client


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _tokens(services: Services, boot: Bootstrap) -> tuple[str, str]:
    """A read-only token of the first account, and an admin token of a second account."""

    def make(conn: Connection) -> tuple[str, str]:
        reader = create_token(services, conn, boot.account_id, "reader", ("read",))
        other = insert_account(conn, "other", services.clock.now())
        return reader, create_token(services, conn, other, "other")

    result: tuple[str, str] = services.db.write_sync(make)
    return result


def test_both_families_answer_from_one_declaration(
    app_client: TestClient, services: Services, boot: Bootstrap
) -> None:
    reader, _ = _tokens(services, boot)
    by_account = app_client.get(
        f"/api/accounts/{boot.account_id}/things/3", headers=_bearer(reader)
    )
    by_alias = app_client.get("/api/things/3", headers=_bearer(reader))
    assert by_account.json() == by_alias.json() == {"account": boot.account_id, "thing": 3}


def test_another_account_is_not_found_and_scope_is_enforced(
    app_client: TestClient, services: Services, boot: Bootstrap
) -> None:
    reader, other = _tokens(services, boot)
    mine = f"/api/accounts/{boot.account_id}/things"
    assert app_client.get(mine + "/3", headers=_bearer(other)).status_code == 404
    assert app_client.post(mine, headers=_bearer(other)).status_code == 404
    assert app_client.post(mine, headers=_bearer(reader)).status_code == 403
    assert app_client.post("/api/things", headers=_bearer(reader)).status_code == 403
    made = app_client.post("/api/things", headers=_bearer(boot.token))
    assert (made.status_code, made.json()) == (201, {"made_for": boot.account_id})
    assert app_client.get("/api/things/3").status_code == 401


def test_openapi_records_scope_and_family(app_client: TestClient) -> None:
    paths = app_client.app.openapi()["paths"]  # type: ignore[attr-defined]
    account = paths["/api/accounts/{account_id}/things/{thing_id}"]["get"]
    alias = paths["/api/things/{thing_id}"]["get"]
    assert (account[SCOPE_KEY], account[FAMILY_KEY]) == ("read", "account")
    assert (alias[SCOPE_KEY], alias[FAMILY_KEY]) == ("read", "alias")
    assert {p["name"] for p in account["parameters"]} == {"account_id", "thing_id"}
    assert account["operationId"] != alias["operationId"]


def test_an_unknown_scope_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError):
        Routes(APIRouter(), "/x").route("GET", "", scope="root")  # type: ignore[arg-type]


def test_every_account_route_of_the_app_is_declared_for_both_families(
    client: TestClient,
) -> None:
    # The real application: every operation under /api/accounts/{account_id}/ comes from a
    # Routes declaration (its scope recorded) and has its account-less twin, and back.
    paths = client.get("/openapi.json").json()["paths"]
    prefix = "/api/accounts/{account_id}"
    account_ops = 0
    for path, item in paths.items():
        if not path.startswith(prefix + "/"):
            continue
        twin = "/api" + path.removeprefix(prefix)
        for method, operation in item.items():
            if path.endswith("/raw"):  # the signed email-log link: the signature is the key
                continue
            account_ops += 1
            assert operation.get(FAMILY_KEY) == "account", (method, path)
            assert operation.get(SCOPE_KEY) in ("read", "send", "admin"), (method, path)
            alias = paths.get(twin, {}).get(method)
            assert alias is not None, (method, path, "no account-less twin")
            assert (alias[FAMILY_KEY], alias[SCOPE_KEY]) == ("alias", operation[SCOPE_KEY])
    assert account_ops > 100


def test_other_names_of_a_resource_answer_in_both_families(
    services: Services, boot: Bootstrap
) -> None:
    router = APIRouter()
    routes = Routes(router, "/widgets", also=("/gadgets",))

    @routes.get("", scope="read", summary="List")
    async def listing(caller: Acting) -> Response:
        return JSONResponse({"account": caller.account_id})

    app = create_app(services)
    app.include_router(router)
    with TestClient(app) as client:
        client.headers["Authorization"] = f"Bearer {boot.token}"
        for path in ("/api/widgets", "/api/gadgets"):
            for url in (path, path.replace("/api", f"/api/accounts/{boot.account_id}")):
                answer = client.get(url)
                assert answer.json() == {"account": boot.account_id}, url
