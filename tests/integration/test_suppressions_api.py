"""Suppressions API (spec §4.2): shapes, scopes, tenancy, cursor, CSV, audit, rejection."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient
from test_domains_api import tenant, token_for

from postroom.clock import FrozenClock
from postroom.services import Services, suppressions
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import deliveries, events

REQUIRED = {"id", "type", "created_at", "email", "sending_stream"}
FACTS = {
    "domain_name",
    "message_bounce_category",
    "message_category",
    "message_client_ip",
    "message_created_at",
    "message_esp_response",
    "message_esp_server_type",
    "message_outgoing_ip",
    "message_recipient_mx_name",
    "message_sender_email",
    "message_subject",
}


def _base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/suppressions"


def _domain(client: TestClient, boot: Bootstrap, name: str = "shop.example") -> int:
    base = f"/api/accounts/{boot.account_id}/sending_domains"
    response = client.post(base, json={"sending_domain": {"domain_name": name}})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _create(client: TestClient, boot: Bootstrap, email: str, **extra: Any) -> dict[str, Any]:
    body = {"email": email, "sending_stream": "transactional", **extra}
    response = client.post(_base(boot), json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_create_list_delete_in_the_contract_shapes(client: TestClient, boot: Bootstrap) -> None:
    domain_id = _domain(client, boot)
    created = _create(client, boot, "Gone@Example.com", domain_id=domain_id)
    assert set(created) >= REQUIRED | FACTS
    assert created["type"] == "manual import"
    assert created["email"] == "gone@example.com"
    assert created["domain_name"] == "shop.example"
    assert created["message_subject"] == "" and created["message_created_at"] == ""
    assert created["created_at"].endswith("Z") and len(created["created_at"]) == 20

    listed = client.get(_base(boot))
    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/json; charset=utf-8"
    assert [s["id"] for s in listed.json()] == [created["id"]]
    assert (
        client.get(_base(boot), params={"email": "GONE@example.com"}).json()[0]["id"]
        == (created["id"])
    )
    assert client.get(_base(boot), params={"email": "other@example.com"}).json() == []

    deleted = client.delete(f"{_base(boot)}/{created['id']}")
    assert deleted.status_code == 200
    assert deleted.json()["id"] == created["id"]  # flat, as the Python SDK parses it
    assert client.get(_base(boot)).json() == []
    assert client.delete(f"{_base(boot)}/{created['id']}").status_code == 404


def test_alias_path_and_validation(client: TestClient, boot: Bootstrap) -> None:
    response = client.post(
        "/api/suppressions",
        json={"email": "a@example.com", "sending_stream": "bulk", "type": "unsubscription"},
    )
    assert response.status_code == 201
    assert client.get("/api/suppressions").json()[0]["sending_stream"] == "bulk"
    bad = client.post(_base(boot), json={"email": "nope", "sending_stream": "loud", "type": "whim"})
    assert bad.status_code == 422
    assert set(bad.json()["errors"]) == {"email", "sending_stream", "type"}
    unknown_domain = client.post(
        _base(boot),
        json={"email": "b@example.com", "sending_stream": "bulk", "domain_id": 999},
    )
    assert unknown_domain.status_code == 422
    assert unknown_domain.json() == {"errors": {"domain_id": ["is invalid"]}}


def test_scopes_and_tenants(client: TestClient, boot: Bootstrap, services: Services) -> None:
    mine = _create(client, boot, "x@example.com")
    reader = token_for(services, boot, ("read",))
    as_reader = {"Authorization": f"Bearer {reader}"}
    assert client.get(_base(boot), headers=as_reader).status_code == 200
    denied = client.post(
        _base(boot), json={"email": "y@example.com", "sending_stream": "bulk"}, headers=as_reader
    )
    assert denied.status_code == 403
    assert client.delete(f"{_base(boot)}/{mine['id']}", headers=as_reader).status_code == 403

    other_token = tenant(services)
    as_other = {"Authorization": f"Bearer {other_token}"}
    assert client.get(_base(boot), headers=as_other).status_code == 404
    assert client.get("/api/suppressions", headers=as_other).json() == []
    gone = client.delete(f"/api/suppressions/{mine['id']}", headers=as_other)
    assert gone.status_code == 404
    assert len(client.get(_base(boot)).json()) == 1


def test_time_range_and_cursor(client: TestClient, boot: Bootstrap, services: Services) -> None:
    clock = FrozenClock()
    services.clock = clock
    start = clock.now()
    made = []
    for n in range(5):
        made.append(_create(client, boot, f"user{n}@example.com")["id"])
        clock.advance(60)
    page = client.get(
        _base(boot), params={"start_time": (start + timedelta(minutes=2)).isoformat()}
    )
    assert [s["id"] for s in page.json()] == made[2:]
    window = client.get(
        _base(boot),
        params={
            "start_time": (start + timedelta(minutes=1)).isoformat(),
            "end_time": (start + timedelta(minutes=3)).isoformat(),
        },
    )
    assert [s["id"] for s in window.json()] == made[1:4]
    assert [s["id"] for s in client.get(_base(boot), params={"last_id": made[2]}).json()] == (
        made[3:]
    )
    assert client.get(_base(boot), params={"start_time": "yesterday"}).status_code == 422


def test_csv_export_import_and_history(client: TestClient, boot: Bootstrap) -> None:
    _create(client, boot, "=cmd@example.com")  # a formula-looking cell is neutralised
    _create(client, boot, "kept@example.com")
    exported = client.get(f"{_base(boot)}/export")
    assert exported.status_code == 200
    assert exported.headers["content-type"].startswith("text/csv")
    lines = exported.text.splitlines()
    assert lines[0].startswith("email,type,sending_stream")
    assert any(line.startswith("'=cmd@example.com,") for line in lines)

    csv_body = (
        "email,sending_stream,type\r\n"
        "new@example.com,bulk,unsubscription\r\n"
        "both@example.com,,\r\n"
        "kept@example.com,transactional,\r\n"
        "broken,bulk,\r\n"
    )
    imported = client.post(f"{_base(boot)}/import", content=csv_body.encode())
    assert imported.status_code == 200, imported.text
    result = imported.json()["data"]
    assert result["imported"] == 3  # new (bulk) + both (two streams)
    assert result["skipped"] == 1  # kept@ was there already
    assert len(result["errors"]) == 1 and "line 5" in result["errors"][0]
    emails = {(s["email"], s["sending_stream"]) for s in client.get(_base(boot)).json()}
    assert ("both@example.com", "transactional") in emails
    assert ("both@example.com", "bulk") in emails

    [entry] = [s for s in client.get(_base(boot)).json() if s["email"] == "kept@example.com"]
    client.delete(f"{_base(boot)}/{entry['id']}")
    history = client.get(f"{_base(boot)}/history", params={"email": "kept@example.com"}).json()
    assert [h["action"] for h in history] == ["added", "removed"]
    assert all(h["actor"].startswith("api token ") for h in history)


def _send(client: TestClient, to: str, sender: str = "orders@shop.example") -> str:
    body = {"from": {"email": sender}, "to": [{"email": to}], "subject": "Hi", "text": "Hello"}
    response = client.post("/api/send", json=body)
    assert response.status_code == 200, response.text
    [message_id] = response.json()["message_ids"]
    return str(message_id)


def _delivery(services: Services, delivery_id: str) -> dict[str, Any]:
    query = select(deliveries).where(deliveries.c.id == delivery_id)
    return dict(services.db.read_sync(lambda c: c.execute(query).mappings().one()))


def _kinds(services: Services, delivery_id: str) -> list[tuple[str, dict[str, Any]]]:
    query = select(events.c.kind, events.c.details).where(events.c.message_id == delivery_id)
    rows = services.db.read_sync(lambda c: c.execute(query.order_by(events.c.id)).all())
    return [(row[0], row[1]) for row in rows]


def test_a_suppressed_recipient_is_accepted_then_rejected(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    _create(client, boot, "blocked@example.com")
    rejected = _send(client, "Blocked@Example.com")
    row = _delivery(services, rejected)
    assert row["state"] == "suppressed"
    reason = "Recipient in suppression list. Reason: manual import"
    assert row["last_response"] == reason
    assert _kinds(services, rejected) == [("accepted", {}), ("reject", {"reject_reason": reason})]
    # The email log shows it as the contract's "opted_out", not as a failed delivery.
    log = client.get(f"/api/accounts/{boot.account_id}/email_logs/{rejected}")
    assert log.status_code == 200 and log.json()["status"] == "opted_out"
    assert _delivery(services, _send(client, "fine@example.com"))["state"] == "queued"
    # The other stream is not suppressed: the entry was for transactional mail.
    bulk = client.post(
        "/api/send",
        json={
            "from": {"email": "a@shop.example"},
            "to": [{"email": "blocked@example.com"}],
            "subject": "Hi",
            "text": "x",
        },
        headers={"Host": "bulk.api.mailtrap.io"},
    )
    assert _delivery(services, bulk.json()["message_ids"][0])["state"] == "queued"


def test_unsubscriptions_are_per_domain_and_batches_are_screened(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain_id = _domain(client, boot, "news.example")
    _create(client, boot, "reader@example.com", type="unsubscription", domain_id=domain_id)
    assert _delivery(services, _send(client, "reader@example.com", "a@news.example"))["state"] == (
        "suppressed"
    )
    assert _delivery(services, _send(client, "reader@example.com", "a@shop.example"))["state"] == (
        "queued"
    )
    _create(client, boot, "gone@example.com", type="hard bounce")
    batch = client.post(
        "/api/batch",
        json={
            "base": {"from": {"email": "a@shop.example"}, "subject": "Hi", "text": "x"},
            "requests": [
                {"to": [{"email": "gone@example.com"}, {"email": "ok@example.com"}]},
                {"to": [{"email": "gone@example.com"}]},
            ],
        },
    )
    assert batch.status_code == 200, batch.text
    ids = [i for r in batch.json()["responses"] for i in r["message_ids"]]
    states = [_delivery(services, i)["state"] for i in ids]
    assert states == ["suppressed", "queued", "suppressed"]


def test_soft_bounce_entries_expire_and_the_expiry_is_logged(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    clock = FrozenClock()
    services.clock = clock
    services.settings.bounces.soft_bounce_threshold = 2
    services.settings.bounces.soft_bounce_ttl_days = 1
    full = {"bounce_category": "mailbox_full", "response_code": 452, "response": "452 4.2.2 full"}

    def bounce() -> int:
        delivery_id = _send(client, "full@example.com")
        event = {
            "kind": "soft_bounce",
            "account_id": boot.account_id,
            "message_id": delivery_id,
            "stream": "transactional",
            "recipient": "full@example.com",
            "details": full,
        }
        now = clock.now()
        return services.db.write_sync(
            lambda c: suppressions.record_from_events(services, c, [event], now)
        )

    assert bounce() == 0  # one strike is not enough
    assert bounce() == 1
    [entry] = client.get(_base(boot)).json()
    assert entry["type"] == "hard bounce" and entry["expires_at"]
    assert entry["message_bounce_category"] == "mailbox_full"
    assert entry["message_sender_email"] == "orders@shop.example"
    assert _delivery(services, _send(client, "full@example.com"))["state"] == "suppressed"

    clock.advance(2 * 86400)
    # Expired: no longer applied, even before the scheduler removes it.
    assert _delivery(services, _send(client, "full@example.com"))["state"] == "queued"
    assert asyncio.run(suppressions.expire_due(services)) == 1
    assert client.get(_base(boot)).json() == []
    history = client.get(f"{_base(boot)}/history", params={"email": "full@example.com"}).json()
    assert [(h["action"], h["actor"]) for h in history] == [
        ("added", "system"),
        ("expired", "system"),
    ]


def test_csv_import_checks_domain_names_and_is_bounded(
    client: TestClient, boot: Bootstrap, monkeypatch: Any
) -> None:
    long_domain = "d" * 300 + ".example"
    body = (
        "email,sending_stream,type,domain_name\r\n"
        f"a@example.com,bulk,unsubscription,{long_domain}\r\n"
        "b@example.com,bulk,unsubscription,=HYPERLINK(1)\r\n"
        "c@example.com,bulk,unsubscription,Shop.Example\r\n"
    )
    imported = client.post(f"{_base(boot)}/import", content=body.encode())
    assert imported.status_code == 200, imported.text
    result = imported.json()["data"]
    assert result["imported"] == 1
    assert [e.split(":")[0] for e in result["errors"]] == ["line 2", "line 3"]
    assert all("domain_name is invalid" in e for e in result["errors"])
    [entry] = client.get(_base(boot)).json()
    assert (entry["email"], entry["domain_name"]) == ("c@example.com", "shop.example")

    monkeypatch.setattr(suppressions, "IMPORT_MAX_ROWS", 3)
    monkeypatch.setattr(suppressions, "IMPORT_MAX_ERRORS", 1)
    broken = "email\r\nnot-an-address\r\nalso-not\r\nthird-not\r\n"
    capped = client.post(f"{_base(boot)}/import", content=broken.encode())
    assert capped.status_code == 200, capped.text
    assert capped.json()["data"]["errors"] == [
        "line 2: email is invalid",
        "… and 2 more lines with errors",
    ]
    too_many = client.post(f"{_base(boot)}/import", content=(broken + "d@example.com\r\n").encode())
    assert too_many.status_code == 422
    assert "more than 3 rows" in too_many.json()["errors"]["base"][0]
    assert len(client.get(_base(boot)).json()) == 1  # nothing of the refused file was added


def test_history_shows_the_newest_entries_only(
    client: TestClient, boot: Bootstrap, monkeypatch: Any
) -> None:
    monkeypatch.setattr(suppressions, "HISTORY_LIMIT", 3)
    for _ in range(2):
        entry = _create(client, boot, "flip@example.com")
        assert client.delete(f"{_base(boot)}/{entry['id']}").status_code == 200
    history = client.get(f"{_base(boot)}/history", params={"email": "flip@example.com"}).json()
    assert [h["action"] for h in history] == ["removed", "added", "removed"]


def test_csv_import_with_an_unreadable_file_is_a_client_error(
    client: TestClient, boot: Bootstrap
) -> None:
    huge_cell = "email\r\n" + "a" * 200_000 + "@example.com\r\n"  # over csv's field limit
    response = client.post(f"{_base(boot)}/import", content=huge_cell.encode())
    assert response.status_code == 422, response.text
    assert "line 2" in response.json()["errors"]["base"][0]
    assert client.get(_base(boot)).json() == []


def test_csv_export_is_streamed_a_page_at_a_time(
    client: TestClient, boot: Bootstrap, services: Services, monkeypatch: Any
) -> None:
    clock = FrozenClock()
    services.clock = clock
    for n in range(5):
        _create(client, boot, f"user{n}@example.com")
        clock.advance(1)
    monkeypatch.setattr(suppressions, "PAGE_LIMIT", 2)
    exported = client.get("/api/suppressions/export")
    assert exported.status_code == 200
    assert "content-length" not in exported.headers  # chunks, not one buffered body
    assert [line.split(",")[0] for line in exported.text.splitlines()] == [
        "email",
        *(f"user{n}@example.com" for n in range(5)),
    ]
