"""The sending domains API (spec §4.4) over HTTP, on SQLite and PostgreSQL: shapes,
validation, company info, the /api/domains alias, scopes and tenant isolation.

DNS verification and key rotation are in test_domains_dns.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import mailtrap as mt
import mailtrap.client
import mailtrap.http
import pytest
import uvicorn
from mailtrap.models.company_info import CompanyInfo, CreateCompanyInfoParams
from mailtrap.models.sending_domains import (
    CreateSendingDomainParams,
    SendingDomain,
    SendSetupInstructionsParams,
    UpdateSendingDomainParams,
)
from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.config import Settings
from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_token
from postroom.storage.repos import accounts as account_repo
from postroom.storage.tables import dkim_keys, events
from postroom.workers.delivery import DeliveryWorker

DOMAIN_FIELDS = {
    "id", "domain_name", "demo", "compliance_status", "dns_verified", "dns_verified_at",
    "dns_records", "open_tracking_enabled", "click_tracking_enabled",
    "auto_unsubscribe_link_enabled", "custom_domain_tracking_enabled", "health_alerts_enabled",
    "critical_alerts_enabled", "alert_recipient_email", "tracking_opt_out_enabled",
    "inbound_enabled", "inbound_verified", "permissions",
}  # fmt: skip
COMPANY = {
    "name": "Example Ltd",
    "address": "1 Main St",
    "city": "Springfield",
    "country": "US",
    "zip_code": "12345",
    "website_url": "https://example.com",
}


@pytest.fixture(autouse=True)
def fast_keys(settings: Settings) -> None:
    # 1024-bit RSA keys generate ~10x faster; the DNS tests keep the 2048-bit default.
    settings.domains.rsa_bits = 1024


def base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/sending_domains"


def create(client: TestClient, boot: Bootstrap, name: str = "example.com") -> dict[str, Any]:
    response = client.post(base(boot), json={"sending_domain": {"domain_name": name}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def tenant(services: Services, name: str = "Other", scopes: tuple[str, ...] = ("admin",)) -> str:
    """A second account's token."""

    def run(conn: Connection) -> str:
        account_id = account_repo.insert_account(conn, name, services.clock.now())
        return create_token(services, conn, account_id, "other", scopes)

    return services.db.write_sync(run)


def token_for(services: Services, boot: Bootstrap, scopes: tuple[str, ...]) -> str:
    return services.db.write_sync(
        lambda conn: create_token(services, conn, boot.account_id, "scoped", scopes)
    )


# --- shapes ------------------------------------------------------------------------------


def test_create_returns_the_domain_with_its_records(client: TestClient, boot: Bootstrap) -> None:
    body = create(client, boot, "Example.COM")
    assert set(body) >= DOMAIN_FIELDS
    domain = SendingDomain(**body)  # the SDK's model accepts it
    assert domain.domain_name == "example.com"
    assert body["demo"] is False and body["inbound_verified"] is False
    assert body["compliance_status"] == "unverified_dns"
    assert body["dns_verified"] is False and body["dns_verified_at"] is None
    assert body["permissions"] == {"can_read": True, "can_update": True, "can_destroy": True}
    assert body["health_alerts_enabled"] is True and body["open_tracking_enabled"] is False

    records = {r["key"]: r for r in body["dns_records"]}
    assert list(records) == ["verification", "spf", "dkim1", "dkim2", "dmarc", "link_verification"]
    for record in body["dns_records"]:
        assert set(record) == {"key", "domain", "type", "value", "status", "name"}
        assert record["status"] == "unchecked"
    assert records["verification"] == {
        "key": "verification",
        "domain": "pr-bounces.example.com",
        "type": "CNAME",
        "value": "mail.postroom.test",
        "status": "unchecked",
        "name": "pr-bounces",
    }
    assert records["spf"]["domain"] == "example.com" and records["spf"]["name"] == "@"
    assert records["spf"]["value"] == "v=spf1 include:_spf.mail.postroom.test ~all"
    assert records["dkim1"]["domain"] == "pr1r._domainkey.example.com"
    assert records["dkim1"]["name"] == "pr1r._domainkey"
    assert records["dkim1"]["value"].startswith("v=DKIM1; k=rsa; p=")
    assert records["dkim2"]["domain"] == "pr1e._domainkey.example.com"
    assert records["dkim2"]["value"].startswith("v=DKIM1; k=ed25519; p=")
    assert records["dmarc"]["domain"] == "_dmarc.example.com"
    assert records["link_verification"]["domain"] == "pr-track.example.com"


def test_list_get_update_delete(client: TestClient, boot: Bootstrap) -> None:
    first = create(client, boot, "one.example")
    second = create(client, boot, "two.example")

    listed = client.get(base(boot))
    assert listed.status_code == 200
    assert [d["id"] for d in listed.json()["data"]] == [first["id"], second["id"]]
    assert [SendingDomain(**d).domain_name for d in listed.json()["data"]] == [
        "one.example",
        "two.example",
    ]

    got = client.get(f"{base(boot)}/{first['id']}")
    assert got.status_code == 200 and got.json() == first

    changes = {
        "open_tracking_enabled": True,
        "click_tracking_enabled": "true",  # form-style strings are accepted too
        "tracking_opt_out_enabled": True,
        "auto_unsubscribe_link_enabled": True,
        "inbound_enabled": True,
        "health_alerts_enabled": False,
        "alert_recipient_email": "ops@example.com",
        "unknown_field": "ignored",
    }
    patched = client.patch(f"{base(boot)}/{first['id']}", json={"sending_domain": changes})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert body["open_tracking_enabled"] is True and body["click_tracking_enabled"] is True
    assert body["tracking_opt_out_enabled"] is True and body["inbound_enabled"] is True
    assert body["auto_unsubscribe_link_enabled"] is True
    assert body["health_alerts_enabled"] is False
    assert body["alert_recipient_email"] == "ops@example.com"
    assert client.get(f"{base(boot)}/{first['id']}").json() == body

    deleted = client.delete(f"{base(boot)}/{first['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"{base(boot)}/{first['id']}").status_code == 404
    assert [d["id"] for d in client.get(base(boot)).json()["data"]] == [second["id"]]


def test_delete_removes_the_keys(client: TestClient, boot: Bootstrap, services: Services) -> None:
    domain = create(client, boot)
    assert client.delete(f"{base(boot)}/{domain['id']}").status_code == 204
    left = services.db.read_sync(
        lambda conn: conn.execute(
            select(dkim_keys.c.id).where(dkim_keys.c.domain_id == domain["id"])
        ).all()
    )
    assert left == []


def test_create_publishes_generation_one(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain = create(client, boot)

    def read(conn: Connection) -> tuple[list[Any], list[Any]]:
        keys = conn.execute(
            select(dkim_keys.c.selector, dkim_keys.c.algorithm, dkim_keys.c.state)
            .where(dkim_keys.c.domain_id == domain["id"])
            .order_by(dkim_keys.c.id)
        ).all()
        logged = conn.execute(
            select(events.c.kind, events.c.details).where(events.c.kind == "dkim_published")
        ).all()
        return [tuple(k) for k in keys], [tuple(e) for e in logged]

    keys, logged = services.db.read_sync(read)
    assert keys == [("pr1r", "rsa-sha256", "pending"), ("pr1e", "ed25519-sha256", "pending")]
    assert [details["selector"] for _, details in logged] == ["pr1r", "pr1e"]
    assert all(details["domain_id"] == domain["id"] for _, details in logged)


# --- validation ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", [None, "", "   "])
def test_blank_domain_name(client: TestClient, boot: Bootstrap, name: str | None) -> None:
    response = client.post(base(boot), json={"sending_domain": {"domain_name": name}})
    assert response.status_code == 422
    assert response.json() == {
        "errors": {"base": ["Validation failed: Domain name can't be blank"]}
    }


@pytest.mark.parametrize(
    "name",
    [
        "localhost",
        "192.168.1.10",
        "::1",
        "exa mple.com",
        "-bad.example.com",
        "bad-.example.com",
        "a..example.com",
        "under_score.example.com",
        "example.123",
        ("a" * 64) + ".example.com",
        ".".join(["a" * 60] * 5),  # 304 characters
        "user@example.com",
        12345,
    ],
)
def test_invalid_domain_names(client: TestClient, boot: Bootstrap, name: object) -> None:
    response = client.post(base(boot), json={"sending_domain": {"domain_name": name}})
    assert response.status_code == 422, response.text
    assert "errors" in response.json()


def test_idna_name_is_stored_as_given_lowercased(client: TestClient, boot: Bootstrap) -> None:
    body = create(client, boot, "Bücher.Example")
    assert body["domain_name"] == "bücher.example"
    # DNS holds A-labels, so that is what the records name.
    spf = next(r for r in body["dns_records"] if r["key"] == "spf")
    assert spf["domain"] == "xn--bcher-kva.example"


def test_duplicate_in_the_account(client: TestClient, boot: Bootstrap) -> None:
    create(client, boot, "example.com")
    again = client.post(base(boot), json={"sending_domain": {"domain_name": "EXAMPLE.com."}})
    assert again.status_code == 422
    assert again.json() == {"errors": {"domain_name": ["has already been taken"]}}


def add_as(client: TestClient, token: str, name: str) -> Any:
    """Another account's attempt to add ``name`` (through the /api/domains alias)."""
    return client.post(
        "/api/domains",
        json={"domain": {"domain_name": name}},
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.mark.parametrize("spelling", ["example.com", "Example.COM.", " example.com "])
def test_one_owner_per_domain_across_accounts(
    client: TestClient, boot: Bootstrap, services: Services, spelling: str
) -> None:
    """A sending domain belongs to one account of the installation: another account's
    attempt, in any spelling, is the contract's 422 (and the first owner keeps it)."""
    mine = create(client, boot, "example.com")
    theirs = add_as(client, tenant(services), spelling)
    assert theirs.status_code == 422, theirs.text
    assert theirs.json() == {"errors": {"domain_name": ["has already been taken"]}}
    assert client.get(f"{base(boot)}/{mine['id']}").status_code == 200


@pytest.mark.parametrize(
    ("owned", "wanted", "status"),
    [
        # A U-label name and its A-label form are the same DNS name: the same domain.
        ("bücher.example", "xn--bcher-kva.example", 422),
        ("bücher.example", "BÜCHER.example", 422),
        # A subdomain is another sending domain (its own DNS records), as is a lookalike.
        ("example.com", "mail.example.com", 200),
        ("example.com", "example.co", 200),
    ],
)
def test_what_counts_as_the_same_domain(
    client: TestClient, boot: Bootstrap, services: Services, owned: str, wanted: str, status: int
) -> None:
    create(client, boot, owned)
    theirs = add_as(client, tenant(services), wanted)
    assert theirs.status_code == status, theirs.text


def test_a_deleted_domain_may_be_added_by_another_account(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    mine = create(client, boot, "example.com")
    assert client.delete(f"{base(boot)}/{mine['id']}").status_code == 204
    theirs = add_as(client, tenant(services), "example.com")
    assert theirs.status_code == 200, theirs.text


def test_missing_wrapper_and_bad_flags(client: TestClient, boot: Bootstrap) -> None:
    missing = client.post(base(boot), json={"domain_name": "example.com"})
    assert missing.status_code == 422
    assert "sending_domain" in missing.json()["errors"]["base"][0]
    domain = create(client, boot)
    bad = client.patch(
        f"{base(boot)}/{domain['id']}",
        json={
            "sending_domain": {"open_tracking_enabled": "maybe", "alert_recipient_email": "nope"}
        },
    )
    assert bad.status_code == 422
    assert bad.json() == {
        "errors": {"open_tracking_enabled": ["is invalid"], "alert_recipient_email": ["is invalid"]}
    }


# --- company info ---------------------------------------------------------------------------


def test_company_info_lifecycle(client: TestClient, boot: Bootstrap) -> None:
    domain = create(client, boot)
    path = f"/api/domains/{domain['id']}/company_info"  # what the Python and Node SDKs call

    empty = client.get(path)
    assert empty.status_code == 200
    assert empty.json() == {"data": {field.name: None for field in dataclasses.fields(CompanyInfo)}}

    created = client.post(path, json={"company_info": {**COMPANY, "info_level": "business"}})
    assert created.status_code == 200, created.text
    info = CompanyInfo(**created.json()["data"])
    assert info.name == "Example Ltd" and info.info_level == "business" and info.phone is None

    patched = client.patch(path, json={"company_info": {"phone": "+1 555 0100", "city": "Shelby"}})
    assert patched.status_code == 200
    assert patched.json()["data"] == {
        **COMPANY,
        "city": "Shelby",
        "phone": "+1 555 0100",
        "info_level": "business",
        "privacy_policy_url": None,
        "terms_of_service_url": None,
    }
    # The Ruby SDK's path reaches the same data.
    ruby = client.get(f"{base(boot)}/{domain['id']}/company_info")
    assert ruby.json() == patched.json()

    # POST replaces: fields not given are cleared.
    replaced = client.post(path, json={"company_info": COMPANY})
    assert replaced.json()["data"]["phone"] is None


def test_company_info_validation(client: TestClient, boot: Bootstrap) -> None:
    domain = create(client, boot)
    path = f"{base(boot)}/{domain['id']}/company_info"
    partial = client.post(path, json={"company_info": {"name": "X", "city": ""}})
    assert partial.status_code == 422
    assert partial.json() == {
        "errors": {
            field: ["can't be blank"]
            for field in ("address", "city", "country", "zip_code", "website_url")
        }
    }
    bad_level = client.post(path, json={"company_info": {**COMPANY, "info_level": "corporate"}})
    assert bad_level.json() == {"errors": {"info_level": ["is not included in the list"]}}
    blank = client.patch(path, json={"company_info": {"name": " "}})
    assert blank.json() == {"errors": {"name": ["can't be blank"]}}
    assert client.get(path).json()["data"]["name"] is None  # nothing was stored


# --- setup instructions -------------------------------------------------------------------


def test_send_setup_instructions(client: TestClient, boot: Bootstrap, services: Services) -> None:
    """The instructions are mailed through Postroom itself: here, captured in the inbox."""
    domain = create(client, boot)
    path = f"{base(boot)}/{domain['id']}/send_setup_instructions"
    ok = client.post(path, json={"email": "devops@example.com"})
    assert ok.status_code == 204 and ok.content == b""
    asyncio.run(DeliveryWorker(services).run_once())
    inbox = f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages"
    [mail] = client.get(inbox).json()
    assert mail["to_email"] == "devops@example.com"
    assert mail["subject"] == "DNS records to publish for example.com"
    text = client.get(f"{inbox}/{mail['id']}/body.txt").text
    for record in domain["dns_records"]:
        assert record["value"] in text
    bad = client.post(path, json={"email": "not an address"})
    assert bad.status_code == 422 and bad.json() == {"errors": {"email": ["is invalid"]}}
    missing = client.post(f"{base(boot)}/999999/send_setup_instructions", json={"email": "a@b.co"})
    assert missing.status_code == 404


# --- the /api/domains alias -----------------------------------------------------------------


def test_token_scoped_alias(client: TestClient, boot: Bootstrap) -> None:
    created = client.post("/api/domains", json={"domain": {"domain_name": "alias.example"}})
    assert created.status_code == 200, created.text
    domain_id = created.json()["id"]
    assert [d["id"] for d in client.get("/api/domains").json()["data"]] == [domain_id]
    assert client.get(f"{base(boot)}/{domain_id}").json() == created.json()
    patched = client.patch(f"/api/domains/{domain_id}", json={"domain": {"inbound_enabled": True}})
    assert patched.json()["inbound_enabled"] is True
    assert client.delete(f"/api/domains/{domain_id}").status_code == 204
    assert client.get(f"/api/domains/{domain_id}").status_code == 404


# --- tenants and scopes ---------------------------------------------------------------------


def test_another_account_cannot_see_or_touch_the_domain(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain = create(client, boot)
    other = {"Authorization": f"Bearer {tenant(services)}"}
    mine = f"{base(boot)}/{domain['id']}"
    for method, path in [
        ("GET", base(boot)),
        ("GET", mine),
        ("PATCH", mine),
        ("DELETE", mine),
        ("POST", f"{mine}/verify"),
        ("POST", f"{mine}/rotate_dkim"),
        ("GET", f"{mine}/company_info"),
    ]:
        response = client.request(method, path, headers=other, json={"sending_domain": {}})
        assert response.status_code == 404, (method, path)
    for method, path in [
        ("GET", f"/api/domains/{domain['id']}"),
        ("DELETE", f"/api/domains/{domain['id']}"),
        ("POST", f"/api/domains/{domain['id']}/verify"),
        ("GET", f"/api/domains/{domain['id']}/company_info"),
        ("POST", f"/api/domains/{domain['id']}/company_info"),
    ]:
        response = client.request(method, path, headers=other, json={"company_info": COMPANY})
        assert response.status_code == 404, (method, path)
    assert client.get("/api/domains", headers=other).json() == {"data": []}
    assert client.get(mine).status_code == 200  # still there, unchanged


def test_read_scope_reads_but_does_not_write(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain = create(client, boot)
    reader = {"Authorization": f"Bearer {token_for(services, boot, ('read',))}"}
    got = client.get(f"{base(boot)}/{domain['id']}", headers=reader)
    assert got.status_code == 200
    assert got.json()["permissions"] == {
        "can_read": True,
        "can_update": False,
        "can_destroy": False,
    }
    denied = [
        client.post(base(boot), headers=reader, json={"sending_domain": {"domain_name": "x.io"}}),
        client.patch(f"{base(boot)}/{domain['id']}", headers=reader, json={"sending_domain": {}}),
        client.delete(f"{base(boot)}/{domain['id']}", headers=reader),
        client.post(f"{base(boot)}/{domain['id']}/verify", headers=reader),
    ]
    assert [r.status_code for r in denied] == [403] * 4
    # The general host's 403 shape (spec §2.2): ``errors`` is a string.
    assert denied[0].json() == {"errors": "Account access forbidden"}
    sender = {"Authorization": f"Bearer {token_for(services, boot, ('send',))}"}
    assert client.get(base(boot), headers=sender).status_code == 403


def test_unauthenticated(client: TestClient, boot: Bootstrap) -> None:
    response = client.get(base(boot), headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"error": "Incorrect API token"}


# --- the official SDK, over a real socket ----------------------------------------------------


@pytest.fixture
def live_server(services: Services, boot: Bootstrap) -> Iterator[str]:
    """The API on a real loopback port (plain HTTP), as ``host:port``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(create_app(services), log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.started
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_the_python_sdk_round_trip(
    live_server: str, boot: Bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mailtrap.client, "GENERAL_HOST", live_server)
    monkeypatch.setattr(
        mailtrap.http.HttpClient,
        "_url",
        lambda self, path: f"http://{self._host}/{path.lstrip('/')}",
    )
    client = mt.MailtrapClient(token=boot.token, account_id=str(boot.account_id))
    domains = client.sending_domains_api.sending_domains

    created = domains.create(CreateSendingDomainParams(domain_name="sdk.example"))
    assert created.domain_name == "sdk.example" and created.dns_verified is False
    assert [d.id for d in domains.get_list()] == [created.id]
    assert domains.get_by_id(created.id).dns_records == created.dns_records
    updated = domains.update(created.id, UpdateSendingDomainParams(open_tracking_enabled=True))
    assert updated.open_tracking_enabled is True
    sent = domains.send_setup_instructions(
        created.id, SendSetupInstructionsParams(email="ops@example.com")
    )
    assert sent.message

    company = client.company_info_api.company_info
    info = company.create(created.id, CreateCompanyInfoParams(**COMPANY))
    assert info.website_url == "https://example.com"
    assert company.get(created.id).name == "Example Ltd"

    assert domains.delete(created.id).id == created.id
    assert domains.get_list() == []
