"""Contacts API: fields, lists, contacts, imports, exports, events; list sends; never
mailing a contact who unsubscribed or is suppressed. Both path families, both backends."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from test_domains_api import tenant, token_for

from postroom.services import Services
from postroom.services import contacts as contact_service
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import deliveries, events


def _base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/contacts"


def _field(client: TestClient, boot: Bootstrap, tag: str, data_type: str) -> dict[str, Any]:
    body = {"name": tag.replace("_", " ").title(), "data_type": data_type, "merge_tag": tag}
    response = client.post(f"{_base(boot)}/fields", json=body)
    assert response.status_code == 201, response.text
    found: dict[str, Any] = response.json()
    return found


def _list(client: TestClient, boot: Bootstrap, name: str) -> int:
    response = client.post(f"{_base(boot)}/lists", json={"name": name})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _contact(client: TestClient, boot: Bootstrap, email: str, **extra: Any) -> dict[str, Any]:
    response = client.post(_base(boot), json={"contact": {"email": email, **extra}})
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def test_fields_lifecycle_limits_and_tenancy(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    made = _field(client, boot, "first_name", "text")
    assert set(made) == {"id", "name", "data_type", "merge_tag"}
    assert made["merge_tag"] == "first_name" and made["data_type"] == "text"
    # Both path families answer the same.
    assert client.get("/api/contacts/fields").json() == [made]
    assert client.get(f"{_base(boot)}/fields/{made['id']}").json() == made

    taken = client.post(
        f"{_base(boot)}/fields",
        json={"name": "Other", "data_type": "text", "merge_tag": "FIRST_NAME"},
    )
    assert taken.status_code == 422
    assert taken.json() == {"errors": {"merge_tag": ["has already been taken"]}}
    bad = client.post(
        f"{_base(boot)}/fields", json={"name": "X", "data_type": "money", "merge_tag": "x"}
    )
    assert bad.status_code == 422 and "data_type" in bad.json()["errors"]
    bad_tag = client.post(
        f"{_base(boot)}/fields", json={"name": "Y", "data_type": "text", "merge_tag": "a b"}
    )
    assert bad_tag.status_code == 422 and bad_tag.json()["errors"] == {"merge_tag": ["is invalid"]}

    # Renaming the merge tag moves the contacts' values with it.
    _contact(client, boot, "ann@example.com", fields={"first_name": "Ann"})
    renamed = client.patch(f"{_base(boot)}/fields/{made['id']}", json={"merge_tag": "given"})
    assert renamed.status_code == 200 and renamed.json()["merge_tag"] == "given"
    assert client.get(f"{_base(boot)}/ann@example.com").json()["data"]["fields"] == {"given": "Ann"}
    immutable = client.patch(f"{_base(boot)}/fields/{made['id']}", json={"data_type": "integer"})
    assert immutable.status_code == 422

    # Another account sees none of it.
    other = {"Authorization": f"Bearer {tenant(services)}"}
    assert client.get("/api/contacts/fields", headers=other).json() == []
    assert client.get(f"/api/contacts/fields/{made['id']}", headers=other).status_code == 404
    assert client.delete(f"/api/contacts/fields/{made['id']}", headers=other).status_code == 404
    # A read-only token reads but does not change.
    reader = {"Authorization": f"Bearer {token_for(services, boot, ('read',))}"}
    assert client.get(f"{_base(boot)}/fields", headers=reader).status_code == 200
    body = {"name": "Z", "data_type": "text", "merge_tag": "z"}
    assert client.post(f"{_base(boot)}/fields", json=body, headers=reader).status_code == 403

    deleted = client.delete(f"{_base(boot)}/fields/{made['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"{_base(boot)}/ann@example.com").json()["data"]["fields"] == {}
    assert client.get(f"{_base(boot)}/fields/{made['id']}").status_code == 404

    for n in range(contact_service.MAX_FIELDS):
        _field(client, boot, f"f{n}", "integer")
    over = client.post(
        f"{_base(boot)}/fields", json={"name": "last", "data_type": "text", "merge_tag": "last"}
    )
    assert over.status_code == 422 and over.json()["errors"]["base"]


def test_lists_lifecycle_and_search(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    news = _list(client, boot, "Newsletter")
    _list(client, boot, "VIP")
    listed = client.get(f"{_base(boot)}/lists").json()
    assert [x["name"] for x in listed] == ["Newsletter", "VIP"]
    assert client.get("/api/contacts/lists", params={"search": "news"}).json() == [
        {"id": news, "name": "Newsletter"}
    ]
    renamed = client.patch(f"{_base(boot)}/lists/{news}", json={"name": "Weekly"})
    assert renamed.json() == {"id": news, "name": "Weekly"}
    assert client.post(f"{_base(boot)}/lists", json={"name": ""}).status_code == 422
    other = {"Authorization": f"Bearer {tenant(services)}"}
    assert client.get(f"/api/contacts/lists/{news}", headers=other).status_code == 404
    assert client.delete(f"{_base(boot)}/lists/{news}").status_code == 204
    assert client.get(f"{_base(boot)}/lists/{news}").status_code == 404


def test_contacts_create_get_update_delete(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    _field(client, boot, "first_name", "text")
    _field(client, boot, "age", "integer")
    _field(client, boot, "vip", "boolean")
    _field(client, boot, "born", "date")
    one, two = _list(client, boot, "One"), _list(client, boot, "Two")

    made = _contact(
        client,
        boot,
        "John.Smith+news@Example.com",
        fields={"first_name": "John", "age": 41, "born": "1984-02-29"},
        list_ids=[one],
    )
    assert set(made) == {"id", "email", "fields", "list_ids", "status", "created_at", "updated_at"}
    assert made["email"] == "john.smith+news@example.com"
    assert made["fields"] == {"first_name": "John", "age": 41, "born": "1984-02-29"}
    assert made["list_ids"] == [one] and made["status"] == "subscribed"
    assert isinstance(made["created_at"], int) and made["created_at"] > 1_600_000_000_000

    # By id, by raw address (a literal '+', as the Node SDK sends it), URL-encoded (Python).
    assert client.get(f"{_base(boot)}/{made['id']}").json()["data"] == made
    assert client.get(f"{_base(boot)}/john.smith+news@example.com").json()["data"] == made
    assert client.get("/api/contacts/john.smith%2Bnews%40example.com").json()["data"] == made

    again = client.post(_base(boot), json={"contact": {"email": "john.smith+news@example.com"}})
    assert again.status_code == 422
    assert again.json() == {"errors": {"email": ["has already been taken"]}}
    for fields, problem in (
        ({"nope": 1}, "contains invalid values: nope"),
        ({"age": "41"}, "age must be a integer"),
        ({"vip": 1}, "vip must be a boolean"),
        ({"born": "29.02.1984"}, "born must be a date"),
    ):
        refused = client.post(
            _base(boot), json={"contact": {"email": "x@example.com", "fields": fields}}
        )
        assert refused.status_code == 422
        assert refused.json() == {"errors": {"fields": [problem]}}
    unknown_list = client.post(
        _base(boot), json={"contact": {"email": "x@example.com", "list_ids": [999]}}
    )
    assert unknown_list.status_code == 422 and "list_ids" in unknown_list.json()["errors"]
    assert (
        client.post(_base(boot), json={"contact": {"email": "not an address"}}).status_code == 422
    )

    changed = client.patch(
        f"{_base(boot)}/{made['id']}",
        json={
            "contact": {
                "fields": {"age": None, "vip": True},
                "list_ids_included": [two],
                "list_ids_excluded": [one],
            }
        },
    )
    assert changed.status_code == 200
    assert changed.json()["action"] == "updated"
    data = changed.json()["data"]
    assert data["fields"] == {"first_name": "John", "born": "1984-02-29", "vip": True}
    assert data["list_ids"] == [two]
    both = client.patch(
        f"{_base(boot)}/{made['id']}",
        json={"contact": {"list_ids_included": [one], "list_ids_excluded": [one]}},
    )
    assert both.status_code == 422 and "base" in both.json()["errors"]

    # PATCH of an address that is no contact yet creates it.
    created = client.patch(
        f"{_base(boot)}/new@example.com", json={"contact": {"email": "new@example.com"}}
    )
    assert created.status_code == 200 and created.json()["action"] == "created"
    assert (
        client.patch(
            f"{_base(boot)}/018dd5e3-f6d2-7c00-8f9b-e5c3f2d8a132",
            json={"contact": {"email": "a@b.example"}},
        ).status_code
        == 404
    )

    # Unsubscribing shows in the status; a suppression of the address does too.
    gone = client.patch(f"{_base(boot)}/new@example.com", json={"contact": {"unsubscribed": True}})
    assert gone.json()["data"]["status"] == "unsubscribed"
    supp = client.post(
        f"/api/accounts/{boot.account_id}/suppressions",
        json={"email": "john.smith+news@example.com", "sending_stream": "transactional"},
    )
    assert supp.status_code == 201
    assert client.get(f"{_base(boot)}/{made['id']}").json()["data"]["status"] == "unsubscribed"

    other = {"Authorization": f"Bearer {tenant(services)}"}
    assert client.get(f"/api/contacts/{made['id']}", headers=other).status_code == 404
    assert client.delete(f"/api/contacts/{made['id']}", headers=other).status_code == 404
    deleted = client.delete(f"{_base(boot)}/{made['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"{_base(boot)}/{made['id']}").status_code == 404
    assert client.get(f"{_base(boot)}/{made['id']}").json() == {"error": "Not Found"}


def test_contact_events(client: TestClient, boot: Bootstrap) -> None:
    made = _contact(client, boot, "eve@example.com")
    params = {"user_id": 101, "user_name": "Eve", "is_active": True, "last_seen": None}
    response = client.post(
        f"{_base(boot)}/eve@example.com/events", json={"name": "UserLogin", "params": params}
    )
    assert response.status_code == 201, response.text
    assert response.json() == {
        "contact_id": made["id"],
        "contact_email": "eve@example.com",
        "name": "UserLogin",
        "params": params,
    }
    nested = client.post(
        f"/api/contacts/{made['id']}/events", json={"name": "X", "params": {"a": {"b": 1}}}
    )
    assert nested.status_code == 422 and "params" in nested.json()["errors"]
    assert (
        client.post(f"{_base(boot)}/eve@example.com/events", json={"params": {}}).status_code == 422
    )
    assert (
        client.post(f"{_base(boot)}/nobody@example.com/events", json={"name": "X"}).status_code
        == 404
    )


def test_json_import_with_progress_and_row_errors(
    client: TestClient, boot: Bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    _field(client, boot, "first_name", "text")
    _field(client, boot, "zip", "integer")
    one, two = _list(client, boot, "One"), _list(client, boot, "Two")
    _contact(client, boot, "old@example.com", fields={"first_name": "Old"}, list_ids=[two])

    refused = client.post(
        f"{_base(boot)}/imports",
        json={
            "contacts": [
                {"email": "fine@example.com"},
                {"email": "broken", "fields": {"zip": "x", "nope": 1}},
                {
                    "email": "both@example.com",
                    "list_ids_included": [one],
                    "list_ids_excluded": [one],
                },
            ]
        },
    )
    assert refused.status_code == 422
    errors = refused.json()["errors"]
    assert [e["email"] for e in errors] == ["broken", "both@example.com"]
    assert errors[0]["errors"]["email"] == ["is invalid"]
    assert errors[0]["errors"]["fields"] == [
        "contains invalid values: nope",
        "zip must be a integer",
    ]
    assert "specified both as included and excluded" in errors[1]["errors"]["base"][0]
    assert client.get(f"{_base(boot)}/fine@example.com").status_code == 404  # nothing imported

    monkeypatch.setattr(contact_service, "IMPORT_CHUNK", 2)  # several transactions
    rows = [
        {"email": f"p{n}@example.com", "fields": {"zip": n}, "list_ids_included": [one]}
        for n in range(5)
    ]
    rows.append({"email": "OLD@example.com", "fields": {"zip": 7}, "list_ids_excluded": [two]})
    made = client.post(f"{_base(boot)}/imports", json={"contacts": rows})
    assert made.status_code == 201, made.text
    job = made.json()
    assert job["status"] == "finished"
    assert job["created_contacts_count"] == 5 and job["updated_contacts_count"] == 1
    assert job["contacts_over_limit_count"] == 0
    assert job["total_count"] == job["processed_count"] == 6
    assert client.get(f"/api/contacts/imports/{job['id']}").json() == job
    old = client.get(f"{_base(boot)}/old@example.com").json()["data"]
    assert old["fields"] == {"first_name": "Old", "zip": 7} and old["list_ids"] == []
    assert client.get(f"{_base(boot)}/p3@example.com").json()["data"]["list_ids"] == [one]
    assert client.get(f"{_base(boot)}/imports/999").status_code == 404


def test_import_past_the_account_limit_counts_the_rest(
    client: TestClient, boot: Bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(contact_service, "MAX_CONTACTS", 2)
    rows = [{"email": f"c{n}@example.com"} for n in range(3)]
    job = client.post(f"{_base(boot)}/imports", json={"contacts": rows}).json()
    assert job["created_contacts_count"] == 2 and job["contacts_over_limit_count"] == 1


def test_csv_import(client: TestClient, boot: Bootstrap) -> None:
    _field(client, boot, "first_name", "text")
    _field(client, boot, "zip", "integer")
    _field(client, boot, "vip", "boolean")
    one = _list(client, boot, "One")
    text = (
        "email,first_name,zip,vip,list_ids_included\r\n"
        f"a@example.com,Ann,12345,true,{one}\r\n"
        "b@example.com,,,,\r\n"
    )
    made = client.post(
        f"{_base(boot)}/imports", content=text.encode(), headers={"Content-Type": "text/csv"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["created_contacts_count"] == 2
    ann = client.get(f"{_base(boot)}/a@example.com").json()["data"]
    assert ann["fields"] == {"first_name": "Ann", "zip": 12345, "vip": True}
    assert ann["list_ids"] == [one]
    bad = client.post(
        f"{_base(boot)}/imports",
        content=b"email,zip\r\nc@example.com,twelve\r\n",
        headers={"Content-Type": "text/csv"},
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["errors"]["fields"] == ["zip must be a integer"]


def test_exports_with_filters_and_download(client: TestClient, boot: Bootstrap) -> None:
    _field(client, boot, "first_name", "text")
    one = _list(client, boot, "One")
    _contact(client, boot, "in@example.com", fields={"first_name": "=SUM(A1)"}, list_ids=[one])
    _contact(client, boot, "out@example.com")
    client.patch(f"{_base(boot)}/out@example.com", json={"contact": {"unsubscribed": True}})

    made = client.post(
        f"{_base(boot)}/exports",
        json={"filters": [{"name": "list_id", "operator": "equal", "value": [one]}]},
    )
    assert made.status_code == 201, made.text
    export = made.json()
    assert set(export) == {"id", "status", "created_at", "updated_at", "url"}
    assert export["status"] == "finished" and export["created_at"].endswith("Z")
    assert client.get(f"/api/contacts/exports/{export['id']}").json() == export
    path = export["url"].removeprefix("http://testserver")
    download = client.get(path)
    assert download.status_code == 200
    assert download.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [r["email"] for r in rows] == ["in@example.com"]
    assert rows[0]["first_name"] == "'=SUM(A1)"  # never a formula in a spreadsheet
    assert rows[0]["list_ids"] == str(one) and rows[0]["status"] == "subscribed"

    status = client.post(
        f"{_base(boot)}/exports",
        json={
            "filters": [
                {"name": "subscription_status", "operator": "equal", "value": "unsubscribed"}
            ]
        },
    ).json()
    text = client.get(status["url"].removeprefix("http://testserver")).text
    assert [r["email"] for r in csv.DictReader(io.StringIO(text))] == ["out@example.com"]
    bad = client.post(
        f"{_base(boot)}/exports",
        json={"filters": [{"name": "age", "operator": "equal", "value": 1}]},
    )
    assert bad.status_code == 422
    assert client.get(f"{_base(boot)}/exports/999").status_code == 404


# --- mail ---------------------------------------------------------------------------------


def _state(services: Services, delivery_id: str) -> str:
    query = select(deliveries.c.state).where(deliveries.c.id == delivery_id)
    return str(services.db.read_sync(lambda c: c.execute(query).scalar_one()))


def _send(client: TestClient, to: str, *, bulk: bool) -> str:
    body = {
        "from": {"email": "news@shop.example"},
        "to": [{"email": to}],
        "subject": "Hi",
        "text": "x",
    }
    headers = {"Host": "bulk.api.mailtrap.io"} if bulk else {}
    response = client.post("/api/send", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["message_ids"][0])


def test_a_contact_who_unsubscribed_gets_no_bulk_mail(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    _contact(client, boot, "reader@example.com")
    assert _state(services, _send(client, "reader@example.com", bulk=True)) == "queued"
    client.patch(f"{_base(boot)}/reader@example.com", json={"contact": {"unsubscribed": True}})
    rejected = _send(client, "Reader@Example.com", bulk=True)
    assert _state(services, rejected) == "suppressed"
    query = select(events.c.kind, events.c.details).where(events.c.message_id == rejected)
    kinds = services.db.read_sync(lambda c: c.execute(query.order_by(events.c.id)).all())
    reason = "Recipient in suppression list. Reason: contact unsubscribed"
    assert [(k, d) for k, d in kinds] == [("accepted", {}), ("reject", {"reject_reason": reason})]
    # A receipt or a password reset still reaches them.
    assert _state(services, _send(client, "reader@example.com", bulk=False)) == "queued"
    # Subscribing again lets bulk mail through.
    client.patch(f"{_base(boot)}/reader@example.com", json={"contact": {"unsubscribed": False}})
    assert _state(services, _send(client, "reader@example.com", bulk=True)) == "queued"


def test_batch_to_a_list_reaches_each_subscribed_contact_once(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    _field(client, boot, "first_name", "text")
    one, two = _list(client, boot, "One"), _list(client, boot, "Two")
    _contact(client, boot, "a@example.com", fields={"first_name": "Ann"}, list_ids=[one, two])
    _contact(client, boot, "b@example.com", fields={"first_name": "Bob"}, list_ids=[two])
    _contact(client, boot, "gone@example.com", list_ids=[one])
    _contact(client, boot, "blocked@example.com", list_ids=[one])
    client.patch(f"{_base(boot)}/gone@example.com", json={"contact": {"unsubscribed": True}})
    client.post(
        f"/api/accounts/{boot.account_id}/suppressions",
        json={"email": "blocked@example.com", "sending_stream": "bulk"},
    )
    template = client.post(
        f"/api/accounts/{boot.account_id}/email_templates",
        json={
            "email_template": {
                "name": "T",
                "subject": "Hi {{first_name}}",
                "body_text": "x",
                "category": "news",
            }
        },
    )
    assert template.status_code == 201, template.text
    body = {
        "base": {"from": {"email": "news@shop.example"}},
        "requests": [
            {"list_ids": [one, two], "template_uuid": template.json()["uuid"]},
            {"to": [{"email": "direct@example.com"}], "subject": "S", "text": "t"},
            {"list_ids": [999], "subject": "S", "text": "t"},
            {"list_ids": [one], "to": [{"email": "x@example.com"}], "subject": "S", "text": "t"},
        ],
    }
    response = client.post("/api/batch", json=body, headers={"Host": "bulk.api.mailtrap.io"})
    assert response.status_code == 200, response.text
    first, direct, unknown, mixed = response.json()["responses"]
    assert first["success"] is True and len(first["message_ids"]) == 2
    assert direct["success"] is True and len(direct["message_ids"]) == 1
    assert unknown["success"] is False and "999" in unknown["errors"][0]
    assert mixed["success"] is False
    query = select(deliveries.c.recipient, deliveries.c.state).where(
        deliveries.c.id.in_(first["message_ids"])
    )
    sent = sorted(services.db.read_sync(lambda c: c.execute(query).all()))
    assert sent == [("a@example.com", "queued"), ("b@example.com", "queued")]
    subjects = client.get(f"/api/accounts/{boot.account_id}/email_logs/{first['message_ids'][0]}")
    assert subjects.status_code == 200
    assert subjects.json()["subject"] in ("Hi Ann", "Hi Bob")
