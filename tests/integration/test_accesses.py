"""Account accesses, permissions, the resource tree and billing usage (spec §4.7), read
with the official SDK's models, on both backends."""

from __future__ import annotations

from typing import Any

from mailtrap.models.accounts import AccountAccess
from mailtrap.models.billing import BillingCycleUsage
from mailtrap.models.permissions import PermissionResource
from starlette.testclient import TestClient
from test_domains_api import tenant

from postroom.domain.audit import Actor
from postroom.services import Services
from postroom.services import users as user_service
from postroom.services.accounts import Bootstrap

SEND = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "x@example.org"}, {"email": "y@example.org"}],
    "subject": "s",
    "text": "t",
}


def _base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}"


def _token_access(client: TestClient, boot: Bootstrap, level: int) -> tuple[str, int]:
    """A new token and its access id (found through the audit trail of its creation)."""
    made = client.post(
        f"{_base(boot)}/api_tokens",
        json={
            "name": "t",
            "resources": [
                {"resource_type": "account", "resource_id": boot.account_id, "access_level": level}
            ],
        },
    ).json()
    return made["token"], made["id"]


def test_accesses_list_users_and_invitations(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    services.db.write_sync(
        user_service.invite(services, boot.account_id, "new@example.com", "viewer", Actor.cli())
    )
    listed = client.get(f"{_base(boot)}/account_accesses").json()
    accesses = [AccountAccess(**a) for a in listed]  # the SDK's model accepts them
    assert [a.specifier_type for a in accesses] == ["User", "Invite"]
    owner = accesses[0]
    assert owner.specifier.email == "admin@localhost"
    assert owner.resources[0].access_level == 1000 and owner.permissions.can_destroy is False
    assert accesses[1].specifier.email == "new@example.com"
    # The owner's access cannot be removed; the invitation's can.
    assert client.delete(f"{_base(boot)}/account_accesses/{owner.id}").status_code == 422
    demote = {"resource_id": boot.account_id, "resource_type": "account", "access_level": 10}
    bulk = f"{_base(boot)}/account_accesses/{owner.id}/permissions/bulk"
    assert client.put(bulk, json={"permissions": [demote]}).status_code == 403
    response = client.delete(f"/api/account_accesses/{accesses[1].id}")
    assert response.status_code == 200 and response.json() == {"id": accesses[1].id}
    assert len(client.get("/api/account_accesses").json()) == 1
    inbox = client.get(f"{_base(boot)}/inboxes").json()[0]
    filtered = client.get(f"/api/account_accesses?inbox_ids={inbox['id']}").json()
    assert filtered == []


def test_bulk_permissions_change_what_a_token_may_do(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    token, token_id = _token_access(client, boot, 100)
    headers = {"Authorization": f"Bearer {token}"}
    # The token's access: the one the service made for it (not listed: users and invites only).
    access_id = services.db.read_sync(
        lambda conn: conn.exec_driver_sql(
            "SELECT id FROM account_accesses WHERE specifier_type = 'ApiToken'"
            f" AND specifier_id = {token_id}"
        ).scalar_one()
    )
    url = f"{_base(boot)}/account_accesses/{access_id}/permissions/bulk"
    body: dict[str, Any] = {
        "permissions": [
            {
                "resource_id": str(boot.account_id),
                "resource_type": "account",
                "access_level": "viewer",
            }
        ]
    }
    response = client.put(url, json=body)
    assert response.status_code == 200
    assert response.json() == {"message": "Permissions have been updated!"}
    # Now a viewer: it reads, and cannot create a suppression.
    assert client.get("/api/suppressions", headers=headers).status_code == 200
    denied = client.post(
        "/api/suppressions",
        json={"email": "a@example.org", "sending_stream": "transactional"},
        headers=headers,
    )
    assert denied.status_code == 403
    # Destroyed: nothing left, and it may do nothing (no fallback to old scopes).
    body["permissions"][0] |= {"_destroy": True}
    assert client.put(url, json=body).status_code == 200
    assert client.get("/api/suppressions", headers=headers).status_code == 403
    assert client.post("/api/send", json=SEND, headers=headers).status_code == 403
    # Another account's resource is refused.
    other = tenant(services)
    other_id = client.get("/api/accounts", headers={"Authorization": f"Bearer {other}"}).json()
    foreign = {"resource_id": other_id[0]["id"], "resource_type": "account", "access_level": 100}
    assert client.put(url, json={"permissions": [foreign]}).status_code == 422
    assert client.put(url, json={"permissions": []}).status_code == 422


def test_resource_tree_and_billing_usage(client: TestClient, boot: Bootstrap) -> None:
    domain = client.post(
        f"{_base(boot)}/sending_domains", json={"sending_domain": {"domain_name": "shop.example"}}
    ).json()
    tree = client.get("/api/permissions/resources").json()
    [PermissionResource(**node) for node in tree]
    [account] = tree
    assert account["type"] == "account" and account["access_level"] == 100
    kinds = {(r["type"], r["name"]) for r in account["resources"]}
    assert ("project", "My Project") in kinds and ("domain", "shop.example") in kinds
    project = next(r for r in account["resources"] if r["type"] == "project")
    assert [s["name"] for s in project["resources"]] == ["My Inbox"]
    assert domain["id"] in {r["id"] for r in account["resources"]}

    assert client.post("/api/send", json=SEND).status_code == 200
    inbox = client.get(f"{_base(boot)}/inboxes").json()[0]
    assert client.post(f"/api/send/{inbox['id']}", json=SEND).status_code == 200
    usage = client.get(f"{_base(boot)}/billing/usage").json()
    BillingCycleUsage(**usage)
    assert usage["sending"]["usage"]["sent_messages_count"] == {"current": 2, "limit": 0}
    assert usage["sending"]["streams"] == {"transactional": 2}
    assert usage["testing"]["usage"]["sent_messages_count"]["current"] >= 1


def test_domain_filter_in_the_node_sdk_spelling(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    """The Node SDK sends its domain filter as ``domain_uuids[]`` (the Python SDK and the
    spec: ``domain_ids``); Postroom's domains have integer ids, which either name takes.
    Ignoring the Node spelling answered every access, unfiltered."""
    services.db.write_sync(
        user_service.invite(services, boot.account_id, "dom@example.com", "viewer", Actor.cli())
    )
    domain = client.post(
        f"{_base(boot)}/sending_domains", json={"sending_domain": {"domain_name": "d.example"}}
    ).json()
    invite = client.get(f"{_base(boot)}/account_accesses").json()[1]
    grant = {"resource_id": domain["id"], "resource_type": "sending_domain", "access_level": 10}
    bulk = f"{_base(boot)}/account_accesses/{invite['id']}/permissions/bulk"
    assert client.put(bulk, json={"permissions": [grant]}).status_code == 200
    for query in (
        f"domain_uuids[]={domain['id']}",
        f"domain_uuids={domain['id']}",
        f"domain_ids={domain['id']}",
    ):
        listed = client.get(f"{_base(boot)}/account_accesses?{query}").json()
        assert [a["id"] for a in listed] == [invite["id"]], query
    other = domain["id"] + 1000
    assert client.get(f"{_base(boot)}/account_accesses?domain_uuids[]={other}").json() == []
    refused = client.get(f"{_base(boot)}/account_accesses?domain_uuids[]=not-an-id")
    assert refused.status_code == 422
