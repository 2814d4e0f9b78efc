"""API tokens (spec §4.7) and accounts: shapes (the SDK's models), permissions mapped onto
scopes, expiry, reset, delete, last use, disabled accounts, and the audit trail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from mailtrap.models.accounts import Account
from mailtrap.models.api_tokens import ApiToken, ApiTokenWithToken
from sqlalchemy import select, update
from starlette.testclient import TestClient
from test_domains_api import tenant

from postroom.api.app import create_app
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage.repos import audit as audit_repo
from postroom.storage.tables import api_tokens, audit_log, sending_domains

SEND = {
    "from": {"email": "hello@shop.example"},
    "to": [{"email": "jane@example.org"}],
    "subject": "Hi",
    "text": "Hello.",
}


def _tokens(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/api_tokens"


def _create(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    response = client.post(path, json=body)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


def _as(client: TestClient, token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _verified_domain(services: Services, client: TestClient, boot: Bootstrap, name: str) -> int:
    response = client.post(
        f"/api/accounts/{boot.account_id}/sending_domains",
        json={"sending_domain": {"domain_name": name}},
    )
    assert response.status_code == 200, response.text
    domain_id = int(response.json()["id"])
    services.db.write_sync(
        lambda conn: conn.execute(
            update(sending_domains)
            .where(sending_domains.c.id == domain_id)
            .values(dns_verified=True, dns_verified_at=services.clock.now())
        )
    )
    return domain_id


def test_create_list_get_in_the_contract_shapes(client: TestClient, boot: Bootstrap) -> None:
    body = _create(
        client,
        _tokens(boot),
        name="CI",
        resources=[
            {"resource_type": "account", "resource_id": boot.account_id, "access_level": 10}
        ],
    )
    made = ApiTokenWithToken(**body)  # the SDK's model accepts it
    assert made.token.startswith("pr_") and made.token.endswith(made.last_4_digits)
    assert made.resources[0].access_level == 10
    assert body["scopes"] == ["read"]
    # Omitted expires_at: one year (spec §4.7).
    expires = datetime.fromisoformat(body["expires_at"].replace("Z", "+00:00"))
    assert timedelta(days=364) < expires - datetime.now(UTC) <= timedelta(days=366)

    listed = client.get(_tokens(boot)).json()
    assert [t["name"] for t in listed] == ["Default token", "CI"]
    assert all("token" not in t for t in listed)
    [ApiToken(**t) for t in listed]
    got = client.get(f"{_tokens(boot)}/{made.id}").json()
    assert got == {k: v for k, v in body.items() if k != "token"}
    # The alias family answers the same.
    assert client.get("/api/api_tokens").json() == listed

    # The new token reads but cannot write.
    viewer = _as(client, made.token)
    assert (
        client.get(f"/api/accounts/{boot.account_id}/suppressions", headers=viewer).status_code
        == 200
    )
    response = client.post(
        f"/api/accounts/{boot.account_id}/suppressions",
        json={"email": "a@example.org", "sending_stream": "transactional"},
        headers=viewer,
    )
    assert response.status_code == 403
    assert client.get(_tokens(boot), headers=viewer).status_code == 403


def test_validation_follows_the_contract(client: TestClient, boot: Bootstrap) -> None:
    response = client.post(_tokens(boot), json={"name": "x", "resources": []})
    assert response.status_code == 422
    assert response.json() == {
        "errors": {"base": ["No permissions selected. Please choose at least one."]}
    }
    account = {"resource_type": "account", "resource_id": boot.account_id, "access_level": 100}
    for expires in ("2001-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "tomorrow"):
        response = client.post(
            _tokens(boot), json={"name": "x", "resources": [account], "expires_at": expires}
        )
        assert response.status_code == 422, expires
    never = _create(client, _tokens(boot), name="x", resources=[account], expires_at=None)
    assert never["expires_at"] is None
    # Strings and the old spellings are accepted ("admin", "inbox").
    same = {
        "resource_type": "account",
        "resource_id": str(boot.account_id),
        "access_level": "admin",
    }
    assert _create(client, _tokens(boot), name="y", resources=[same])["scopes"] == ["admin"]


def test_another_accounts_resources_and_tokens_are_not_reachable(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    other = tenant(services)
    other_id = client.get("/api/accounts", headers=_as(client, other)).json()[0]["id"]
    foreign = {"resource_type": "account", "resource_id": other_id, "access_level": 100}
    response = client.post(_tokens(boot), json={"name": "x", "resources": [foreign]})
    assert response.status_code == 422
    their_tokens = client.get("/api/api_tokens", headers=_as(client, other)).json()
    their_id = their_tokens[0]["id"]
    for method, path in (
        ("GET", f"{_tokens(boot)}/{their_id}"),
        ("DELETE", f"{_tokens(boot)}/{their_id}"),
        ("POST", f"{_tokens(boot)}/{their_id}/reset"),
        ("GET", f"/api/accounts/{other_id}/api_tokens"),
    ):
        assert client.request(method, path).status_code == 404, (method, path)
    assert client.get("/api/api_tokens", headers=_as(client, other)).status_code == 200


def test_reset_gives_a_new_value_and_the_old_one_lapses(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    account = {"resource_type": "account", "resource_id": boot.account_id, "access_level": 100}
    old = _create(client, _tokens(boot), name="deploy", resources=[account])
    response = client.post(f"{_tokens(boot)}/{old['id']}/reset")
    assert response.status_code == 200, response.text
    new = ApiTokenWithToken(**response.json())
    assert new.token != old["token"] and new.name == "deploy"
    assert [r.access_level for r in new.resources] == [100]
    # The old token works during the grace period, then not.
    assert client.get("/api/accounts", headers=_as(client, old["token"])).status_code == 200
    again = client.post(f"{_tokens(boot)}/{old['id']}/reset")
    assert again.status_code == 422
    services.db.write_sync(
        lambda conn: conn.execute(
            update(api_tokens)
            .where(api_tokens.c.id == old["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    )
    fresh = TestClient(create_app(services))
    assert fresh.get("/api/accounts", headers=_as(fresh, old["token"])).status_code == 401
    assert fresh.get("/api/accounts", headers=_as(fresh, new.token)).status_code == 200


def test_delete_stops_the_token_and_records_last_use(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    account = {"resource_type": "account", "resource_id": boot.account_id, "access_level": 10}
    made = _create(client, _tokens(boot), name="short", resources=[account])
    assert client.get("/api/accounts", headers=_as(client, made["token"])).status_code == 200
    assert client.get(f"{_tokens(boot)}/{made['id']}").json()["last_used_at"] is not None
    assert client.delete(f"{_tokens(boot)}/{made['id']}").status_code == 204
    assert client.get("/api/accounts", headers=_as(client, made["token"])).status_code == 401
    assert client.get(f"{_tokens(boot)}/{made['id']}").status_code == 404
    assert client.delete(f"{_tokens(boot)}/{made['id']}").status_code == 404


def test_a_domain_token_sends_only_from_its_domain(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    services.settings.delivery.mode  # noqa: B018 - (sandbox by default: every From is fine)
    shop = _verified_domain(services, client, boot, "shop.example")
    _verified_domain(services, client, boot, "news.example")
    made = _create(
        client,
        _tokens(boot),
        name="shop sender",
        resources=[{"resource_type": "domain", "resource_id": shop, "access_level": 100}],
    )
    assert made["scopes"] == ["send"]
    headers = _as(client, made["token"])
    assert client.post("/api/send", json=SEND, headers=headers).status_code == 200
    other = {**SEND, "from": {"email": "hello@news.example"}}
    assert client.post("/api/send", json=other, headers=headers).status_code == 401
    # It manages nothing, not even reads.
    assert (
        client.get(f"/api/accounts/{boot.account_id}/email_logs", headers=headers).status_code
        == 403
    )
    assert client.get("/api/suppressions", headers=headers).status_code == 403


def test_accounts_list_and_sub_accounts(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    accounts = client.get("/api/accounts").json()
    [Account(**a) for a in accounts]
    assert [a["id"] for a in accounts] == [boot.account_id]
    response = client.post(
        "/api/organizations/1/sub_accounts", json={"account": {"name": "Staging"}}
    )
    assert response.status_code == 200, response.text
    staging = response.json()
    assert staging["name"] == "Staging"
    # The installation admin's token sees every account; another account's token only its own.
    assert {a["id"] for a in client.get("/api/accounts").json()} == {boot.account_id, staging["id"]}
    listed = client.get("/api/organizations/1/sub_accounts").json()
    assert [a["name"] for a in listed] == ["Postroom", "Staging"]
    other = tenant(services)
    assert len(client.get("/api/accounts", headers=_as(client, other)).json()) == 1
    assert (
        client.get("/api/organizations/1/sub_accounts", headers=_as(client, other)).status_code
        == 403
    )
    assert client.get("/api/organizations/2/sub_accounts").status_code == 403
    assert (
        client.post("/api/organizations/1/sub_accounts", json={"account": {"name": ""}}).status_code
        == 422
    )


def test_disabling_an_account_stops_its_tokens_and_sending(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    staging = client.post(
        "/api/organizations/1/sub_accounts", json={"account": {"name": "Staging"}}
    ).json()
    token = tenant(services, "Customer")
    customer_id = client.get("/api/accounts", headers=_as(client, token)).json()[0]["id"]
    assert client.post("/api/send", json=SEND, headers=_as(client, token)).status_code == 200
    response = client.patch(
        f"/api/organizations/1/sub_accounts/{customer_id}", json={"account": {"disabled": True}}
    )
    assert response.status_code == 200 and response.json()["disabled"] is True
    assert client.post("/api/send", json=SEND, headers=_as(client, token)).status_code == 401
    assert client.get("/api/accounts", headers=_as(client, token)).status_code == 401
    # Re-enabled, and renamed.
    response = client.patch(
        f"/api/organizations/1/sub_accounts/{customer_id}",
        json={"account": {"disabled": False, "name": "Customer A"}},
    )
    assert response.json() == {"id": customer_id, "name": "Customer A", "disabled": False}
    assert client.post("/api/send", json=SEND, headers=_as(client, token)).status_code == 200
    assert (
        client.patch(f"/api/organizations/1/sub_accounts/{staging['id'] + 99}", json={}).status_code
        == 404
    )


def test_changes_are_audited_with_actor_and_no_secret(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    account = {"resource_type": "account", "resource_id": boot.account_id, "access_level": 100}
    made = _create(client, _tokens(boot), name="audited", resources=[account])
    client.post(f"{_tokens(boot)}/{made['id']}/reset")
    client.delete(f"{_tokens(boot)}/{made['id']}")
    entries = client.get(f"/api/accounts/{boot.account_id}/audit_log?target_type=api_token").json()
    actions = [e["action"] for e in entries]
    assert actions[:3] == ["api_token.revoked", "api_token.reset", "api_token.created"]
    newest = entries[0]
    assert newest["actor"]["type"] == "token" and newest["actor"]["name"] == "Default token"
    assert newest["source_ip"] == "testclient"
    assert newest["before"]["name"] == "audited"
    everything = services.db.read_sync(lambda conn: list(conn.execute(select(audit_log))))
    assert made["token"] not in repr(everything)
    assert made["token"][3:] not in repr(everything)
    # Another account's token sees none of these entries.
    other = tenant(services)
    assert (
        client.get("/api/audit_log", headers=_as(client, other)).json()[-1]["action"]
        == "api_token.created"
    )
    assert all(
        e["account_id"] != boot.account_id
        for e in client.get("/api/audit_log", headers=_as(client, other)).json()
    )
    checked, problems = services.db.read_sync(audit_repo.verify)
    assert checked >= 4 and problems == []


@pytest.mark.parametrize("tamper", ["edit", "delete_middle", "delete_newest"])
def test_audit_verify_detects_an_edited_or_removed_row(
    services: Services, client: TestClient, boot: Bootstrap, tamper: str
) -> None:
    account = {"resource_type": "account", "resource_id": boot.account_id, "access_level": 10}
    for name in ("one", "two", "three"):
        _create(client, _tokens(boot), name=name, resources=[account])
    checked, problems = services.db.read_sync(audit_repo.verify)
    assert problems == [] and checked == 4
    ids = services.db.read_sync(
        lambda conn: [r.id for r in conn.execute(select(audit_log.c.id).order_by(audit_log.c.id))]
    )
    sql = {
        "edit": f"UPDATE audit_log SET actor_name = 'someone else' WHERE id = {ids[1]}",
        "delete_middle": f"DELETE FROM audit_log WHERE id = {ids[1]}",
        "delete_newest": f"DELETE FROM audit_log WHERE id = {ids[-1]}",
    }[tamper]
    services.db.write_sync(lambda conn: conn.exec_driver_sql(sql))
    checked, problems = services.db.read_sync(audit_repo.verify)
    assert problems, tamper


def test_every_api_change_is_audited_once(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    base = f"/api/accounts/{boot.account_id}"
    response = client.post(
        "/api/suppressions", json={"email": "gone@example.org", "sending_stream": "transactional"}
    )
    assert response.status_code == 201
    inbox = client.get(f"{base}/inboxes").json()[0]
    reset = client.patch(f"{base}/inboxes/{inbox['id']}/reset_credentials")
    assert reset.status_code == 200
    assert client.post(f"{base}/suppressions", json={"email": "bad"}).status_code >= 400
    account = {"resource_type": "account", "resource_id": boot.account_id, "access_level": 10}
    _create(client, _tokens(boot), name="once", resources=[account])
    entries = client.get("/api/audit_log").json()
    actions = [e["action"] for e in entries]
    assert actions[:3] == [
        "api_token.created",
        "PATCH /inboxes/{inbox_id}/reset_credentials",
        "POST /suppressions",
    ]
    assert actions.count("api_token.created") == 1  # by its service; the trail skips it
    added = entries[2]
    assert added["after"] == {"email": "gone@example.org", "sending_stream": "transactional"}
    assert added["target"] == {"type": "suppressions", "id": ""}
    assert entries[1]["target"] == {"type": "inboxes", "id": str(inbox["id"])}
    assert reset.json().get("password", "") not in repr(entries) or not reset.json().get("password")
    checked, problems = services.db.read_sync(audit_repo.verify)
    assert problems == [] and checked == len(entries)
