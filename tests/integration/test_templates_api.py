"""Email templates over HTTP on SQLite and PostgreSQL: CRUD shapes, validation, versions,
preview, the paginated variant, scopes, tenant isolation, and sending with templates.
"""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_token
from postroom.storage.repos import accounts as account_repo
from postroom.storage.tables import messages, sandbox_messages

FIELDS = {
    "id", "uuid", "name", "category", "subject", "body_html", "body_text",
    "created_at", "updated_at", "version",
}  # fmt: skip
WELCOME = {
    "name": "Welcome",
    "subject": "Welcome, {{user.name}}!",
    "category": "onboarding",
    "body_html": "<p>Hello <b>{{user.name}}</b></p>{{#each items}}<li>{{this}}</li>{{/each}}",
    "body_text": "Hello {{user.name}}\n{{#each items}}\n- {{this}}\n{{/each}}\n",
}
SENDER = {"email": "sender@example.com", "name": "Sender"}


def base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/email_templates"


def create(client: TestClient, boot: Bootstrap, **fields: Any) -> dict[str, Any]:
    response = client.post(base(boot), json={"email_template": {**WELCOME, **fields}})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def tenant(services: Services, scopes: tuple[str, ...] = ("admin",)) -> str:
    def run(conn: Connection) -> str:
        account_id = account_repo.insert_account(conn, "Other", services.clock.now())
        return create_token(services, conn, account_id, "other", scopes)

    return services.db.write_sync(run)


def token_for(services: Services, boot: Bootstrap, scopes: tuple[str, ...]) -> str:
    return services.db.write_sync(
        lambda conn: create_token(services, conn, boot.account_id, "scoped", scopes)
    )


def captured(services: Services, sandbox_id: str) -> EmailMessage:
    query = select(sandbox_messages.c.raw).where(sandbox_messages.c.id == int(sandbox_id))
    raw = services.db.read_sync(lambda conn: conn.execute(query).scalar_one())
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def message_row(services: Services, message_id: str) -> dict[str, Any]:
    query = select(messages).where(messages.c.id == message_id)
    return dict(services.db.read_sync(lambda conn: conn.execute(query).mappings().one()))


def part(message: EmailMessage, kind: str) -> str:
    found = message.get_body(preferencelist=(kind,))
    assert found is not None, f"no text/{kind} part"
    content = found.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


# --- CRUD ---------------------------------------------------------------------------------


def test_create_returns_201_and_the_template(client: TestClient, boot: Bootstrap) -> None:
    body = create(client, boot)
    assert set(body) == FIELDS
    assert body["name"] == "Welcome" and body["category"] == "onboarding"
    assert body["version"] == 1 and len(body["uuid"]) == 36
    assert body["created_at"].endswith("Z") and body["created_at"] == body["updated_at"]


def test_list_get_update_delete(client: TestClient, boot: Bootstrap) -> None:
    first, second = create(client, boot), create(client, boot, name="Second", body_html=None)
    listed = client.get(base(boot))
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [first["id"], second["id"]]
    assert second["body_html"] is None

    got = client.get(f"{base(boot)}/{first['id']}").json()
    assert got == first
    patched = client.patch(
        f"{base(boot)}/{first['id']}", json={"email_template": {"subject": "New {{x}}"}}
    )
    assert patched.status_code == 200
    assert patched.json()["subject"] == "New {{x}}" and patched.json()["name"] == "Welcome"
    assert patched.json()["version"] == 2 and patched.json()["uuid"] == first["uuid"]

    deleted = client.delete(f"{base(boot)}/{first['id']}")
    assert deleted.status_code == 204 and deleted.content == b""
    assert client.get(f"{base(boot)}/{first['id']}").status_code == 404
    assert [t["id"] for t in client.get(base(boot)).json()] == [second["id"]]


def test_every_save_keeps_a_version(client: TestClient, boot: Bootstrap) -> None:
    template = create(client, boot)
    url = f"{base(boot)}/{template['id']}"
    client.patch(url, json={"email_template": {"body_text": "v2"}})
    unchanged = client.patch(url, json={"email_template": {"body_text": "v2"}})
    assert unchanged.json()["version"] == 2, "a save that changes nothing is no new version"
    client.patch(url, json={"email_template": {"name": "Renamed", "body_html": ""}})
    versions = client.get(f"{url}/versions").json()
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[0]["body_text"] == WELCOME["body_text"]
    assert versions[1]["body_text"] == "v2" and versions[1]["body_html"] == WELCOME["body_html"]
    assert versions[2]["name"] == "Renamed" and versions[2]["body_html"] is None


def test_versions_are_listed_a_page_at_a_time(client: TestClient, boot: Bootstrap) -> None:
    # Every save keeps a version with both bodies: the list must not return them all.
    template = create(client, boot)
    url = f"{base(boot)}/{template['id']}"
    for n in range(2, 53):
        saved = client.patch(url, json={"email_template": {"body_text": f"v{n}"}})
        assert saved.json()["version"] == n
    first = client.get(f"{url}/versions").json()
    assert [v["version"] for v in first] == list(range(1, 51))
    rest = client.get(f"{url}/versions", params={"after_version": 50}).json()
    assert [v["version"] for v in rest] == [51, 52]
    page = client.get(f"{url}/versions", params={"per_page": 2, "after_version": 10}).json()
    assert [v["version"] for v in page] == [11, 12]
    alias = client.get(f"/api/email_templates/{template['id']}/versions", params={"per_page": 1})
    assert [v["version"] for v in alias.json()] == [1]
    assert client.get(f"{url}/versions", params={"per_page": 51}).status_code == 400


@pytest.mark.parametrize(
    ("fields", "errors"),
    [
        ({"name": ""}, {"name": ["can't be blank"]}),
        (
            {"name": None, "subject": "  "},
            {"name": ["can't be blank"], "subject": ["can't be blank"]},
        ),  # noqa: E501
        ({"category": "x" * 256}, {"category": ["is too long (maximum is 255 characters)"]}),
        ({"subject": "a\r\nBcc: x@example.com"}, {"subject": ["contains invalid characters"]}),
        ({"body_html": 5}, {"body_html": ["must be a string"]}),
    ],
)
def test_validation_is_422_per_field(
    client: TestClient, boot: Bootstrap, fields: dict[str, Any], errors: dict[str, list[str]]
) -> None:
    response = client.post(base(boot), json={"email_template": {**WELCOME, **fields}})
    assert response.status_code == 422
    assert response.json() == {"errors": errors}


def test_broken_handlebars_is_refused_with_its_position(
    client: TestClient, boot: Bootstrap
) -> None:
    response = client.post(
        base(boot), json={"email_template": {**WELCOME, "body_html": "<p>\n{{#if a}}x"}}
    )
    assert response.status_code == 422
    [message] = response.json()["errors"]["body_html"]
    assert message == "has invalid Handlebars syntax: '{{#if}}' is not closed at line 2, column 1"
    template = create(client, boot)
    patched = client.patch(
        f"{base(boot)}/{template['id']}", json={"email_template": {"subject": "{{> p}}"}}
    )
    assert patched.status_code == 422 and "partials" in patched.text


def test_missing_wrapper_and_limit(client: TestClient, boot: Bootstrap, services: Services) -> None:
    response = client.post(base(boot), json={})
    assert response.status_code == 422
    services.settings.templates.max_per_account = 2
    create(client, boot)
    create(client, boot)
    refused = client.post(base(boot), json={"email_template": WELCOME})
    assert refused.status_code == 422
    assert refused.json() == {"errors": {"base": ["Templates limit reached (2)"]}}


def test_token_scoped_alias(client: TestClient, boot: Bootstrap) -> None:
    made = client.post("/api/email_templates", json={"email_template": WELCOME})
    assert made.status_code == 201
    assert [t["id"] for t in client.get(base(boot)).json()] == [made.json()["id"]]
    assert client.get(f"/api/email_templates/{made.json()['id']}").json()["name"] == "Welcome"
    assert client.delete(f"/api/email_templates/{made.json()['id']}").status_code == 204


def test_paginated_variant(client: TestClient, boot: Bootstrap) -> None:
    url = f"/api/accounts/{boot.account_id}/templates"
    made = [client.post(url, json={**WELCOME, "name": f"T{i}"}) for i in range(5)]
    assert all(r.status_code == 201 for r in made)
    ids = [r.json()["data"]["id"] for r in made]
    first = client.get(url, params={"per_page": 2}).json()
    assert [t["id"] for t in first["data"]] == ids[:2]
    pagination = first["pagination"]
    assert (pagination["token"], pagination["prev_token"], pagination["next_token"]) == (1, None, 2)
    assert "token=2" in pagination["next_url"] and pagination["prev_url"] is None
    last = client.get(url, params={"per_page": 2, "token": 3}).json()
    assert [t["id"] for t in last["data"]] == ids[4:]
    assert last["pagination"]["next_token"] is None and last["pagination"]["prev_token"] == 2
    assert client.get(url, params={"per_page": 500}).json()["pagination"]["next_token"] is None

    one = client.get(f"{url}/{ids[0]}").json()["data"]
    assert one["name"] == "T0"
    patched = client.patch(f"{url}/{ids[0]}", json={"category": "other"})
    assert patched.json()["data"]["category"] == "other"
    assert client.delete(f"{url}/{ids[0]}").status_code == 204


# --- preview ------------------------------------------------------------------------------


def test_preview_renders_current_and_older_versions(client: TestClient, boot: Bootstrap) -> None:
    template = create(client, boot)
    url = f"{base(boot)}/{template['id']}"
    variables = {"user": {"name": "<Ann>"}, "items": ["a", "b"]}
    shown = client.post(f"{url}/preview", json={"template_variables": variables})
    assert shown.status_code == 200, shown.text
    assert shown.json() == {
        "id": template["id"],
        "uuid": template["uuid"],
        "version": 1,
        "subject": "Welcome, &lt;Ann&gt;!",
        "html": "<p>Hello <b>&lt;Ann&gt;</b></p><li>a</li><li>b</li>",
        "text": "Hello &lt;Ann&gt;\n- a\n- b\n",
        "category": "onboarding",
    }
    client.patch(url, json={"email_template": {"subject": "v2 {{{user.name}}}"}})
    assert (
        client.post(f"{url}/preview", json={"template_variables": variables}).json()["subject"]
        == "v2 <Ann>"
    )
    old = client.post(f"{url}/preview", json={"template_variables": variables, "version": 1})
    assert old.json()["subject"] == "Welcome, &lt;Ann&gt;!" and old.json()["version"] == 1
    assert client.post(f"{url}/preview", json={"version": 9}).status_code == 404
    assert client.post(f"{url}/preview", json={"template_variables": [1]}).status_code == 422


def test_preview_reports_limits(client: TestClient, boot: Bootstrap, services: Services) -> None:
    services.settings.templates.max_render_chars = 100
    template = create(client, boot, body_text="{{#each items}}{{{../big}}}{{/each}}")
    response = client.post(
        f"{base(boot)}/{template['id']}/preview",
        json={"template_variables": {"items": [1, 2, 3], "big": "x" * 40}},
    )
    assert response.status_code == 422
    assert response.json() == {"errors": {"base": ["rendered output exceeds 100 characters"]}}


# --- scopes and tenants -------------------------------------------------------------------


def test_another_account_cannot_see_or_use_the_template(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    template = create(client, boot)
    other = {"Authorization": f"Bearer {tenant(services)}"}
    url = f"{base(boot)}/{template['id']}"
    assert client.get(base(boot), headers=other).status_code == 404
    assert client.get("/api/email_templates", headers=other).json() == []
    for method in ("GET", "PATCH", "DELETE"):
        alias = client.request(
            method, f"/api/email_templates/{template['id']}", headers=other,
            json={"email_template": {"name": "stolen"}},
        )  # fmt: skip
        assert alias.status_code == 404, method
    assert (
        client.post(f"/api/email_templates/{template['id']}/preview", headers=other).status_code
        == 404
    )  # noqa: E501
    sent = client.post(
        "/api/send",
        headers=other,
        json={"from": SENDER, "to": [{"email": "a@x.org"}], "template_uuid": template["uuid"]},
    )
    assert sent.status_code == 400
    assert sent.json() == {
        "success": False,
        "errors": [f"template with uuid '{template['uuid']}' not found"],
    }
    assert client.get(url).json()["name"] == "Welcome"


def test_read_scope_reads_and_previews_but_does_not_write(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    template = create(client, boot)
    reader = {"Authorization": f"Bearer {token_for(services, boot, ('read',))}"}
    url = f"{base(boot)}/{template['id']}"
    assert client.get(url, headers=reader).status_code == 200
    assert client.post(f"{url}/preview", headers=reader, json={}).status_code == 200
    assert (
        client.patch(url, headers=reader, json={"email_template": {"name": "x"}}).status_code == 403
    )  # noqa: E501
    assert client.delete(url, headers=reader).status_code == 403
    assert (
        client.post(base(boot), headers=reader, json={"email_template": WELCOME}).status_code == 403
    )  # noqa: E501
    sender = {"Authorization": f"Bearer {token_for(services, boot, ('send',))}"}
    assert client.get(url, headers=sender).status_code == 403


# --- sending ------------------------------------------------------------------------------


def test_send_with_a_template_renders_it(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    template = create(client, boot)
    response = client.post(
        f"/api/send/{boot.inbox_id}",
        json={
            "from": SENDER,
            "to": [{"email": "ann@example.org"}],
            "template_uuid": template["uuid"],
            "template_variables": {"user": {"name": "Ann & Bob"}, "items": ["x", "y"]},
        },
    )
    assert response.status_code == 200, response.text
    message = captured(services, response.json()["message_ids"][0])
    assert message["Subject"] == "Welcome, Ann &amp; Bob!"
    assert part(message, "plain") == "Hello Ann &amp; Bob\n- x\n- y\n"
    assert "<p>Hello <b>Ann &amp; Bob</b></p><li>x</li><li>y</li>" in part(message, "html")


def test_sent_messages_record_template_version_and_category(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    template = create(client, boot)
    mail = {"from": SENDER, "to": [{"email": "a@example.org"}], "template_uuid": template["uuid"]}
    first = client.post("/api/send", json={**mail, "template_variables": {"user": {"name": "A"}}})
    client.patch(
        f"{base(boot)}/{template['id']}",
        json={"email_template": {"subject": "Changed {{user.name}}", "category": "changed"}},
    )
    second = client.post("/api/send", json={**mail, "template_variables": {"user": {"name": "B"}}})
    one = message_row(services, first.json()["message_ids"][0])
    two = message_row(services, second.json()["message_ids"][0])
    assert (one["subject"], one["category"], one["template_version"]) == (
        "Welcome, A!", "onboarding", 1,
    )  # fmt: skip
    assert (two["subject"], two["category"], two["template_version"]) == ("Changed B", "changed", 2)
    assert one["template_id"] == two["template_id"] == template["id"]
    assert one["template_uuid"] == template["uuid"]
    assert two["template_variables"] == {"user": {"name": "B"}}
    # The email log names the template (spec §4.6 template_id).
    log = client.get(f"/api/accounts/{boot.account_id}/email_logs/{first.json()['message_ids'][0]}")
    assert log.json()["template_id"] == template["id"]


def test_html_only_template_gets_a_text_part_and_inlined_css(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    html = (
        "<html><head><style>.hi { color: #c00 }</style></head><body>"
        '<p class="hi">Hi {{name}}</p><p><a href="{{url}}">Reset password</a></p></body></html>'
    )
    template = create(client, boot, body_html=html, body_text=None)
    response = client.post(
        f"/api/send/{boot.inbox_id}",
        json={
            "from": SENDER,
            "to": [{"email": "a@example.org"}],
            "template_uuid": template["uuid"],
            "template_variables": {"name": "Ann", "url": "https://app.test/reset?t=1"},
        },
    )
    message = captured(services, response.json()["message_ids"][0])
    assert part(message, "plain") == "Hi Ann\n\nReset password (https://app.test/reset?t=1)\n"
    assert '<p class="hi" style="color: #c00;">Hi Ann</p>' in part(message, "html")


@pytest.mark.parametrize("field", ["subject", "text", "html", "category"])
def test_fields_the_template_provides_are_refused(client: TestClient, field: str) -> None:
    response = client.post(
        "/api/send",
        json={
            "from": SENDER,
            "to": [{"email": "a@example.org"}],
            "template_uuid": "any",
            field: "value",
        },
    )
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "errors": [f"'{field}' is not allowed with 'template_uuid'"],
    }


def test_unknown_template_and_render_failure_are_400(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    mail = {"from": SENDER, "to": [{"email": "a@example.org"}]}
    unknown = client.post("/api/send", json={**mail, "template_uuid": "no-such-uuid"})
    assert unknown.status_code == 400
    assert unknown.json()["errors"] == ["template with uuid 'no-such-uuid' not found"]
    services.settings.templates.max_render_steps = 50
    template = create(client, boot, body_text="{{#each a}}{{#each ../a}}.{{/each}}{{/each}}")
    failed = client.post(
        "/api/send",
        json={**mail, "template_uuid": template["uuid"], "template_variables": {"a": [0] * 20}},
    )
    assert failed.status_code == 400
    [error] = failed.json()["errors"]
    assert error.startswith(f"template with uuid '{template['uuid']}' cannot be rendered: ")


def test_batch_merges_base_and_request_variables(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    """A request's template_variables replace the base's wholesale (spec §3.3)."""
    template = create(client, boot, subject="{{greeting}} {{user.name}}", body_text="{{user.name}}")
    other = create(client, boot, subject="Other {{user.name}}", body_text="o")
    response = client.post(
        f"/api/batch/{boot.inbox_id}",
        json={
            "base": {
                "from": SENDER,
                "template_uuid": template["uuid"],
                "template_variables": {"greeting": "Hi", "user": {"name": "Base"}},
            },
            "requests": [
                {"to": [{"email": "a@example.org"}]},
                {"to": [{"email": "b@example.org"}], "template_variables": {"user": {"name": "B"}}},
                {"to": [{"email": "c@example.org"}], "template_uuid": other["uuid"]},
                {"to": [{"email": "d@example.org"}], "subject": "not allowed"},
                {"to": [{"email": "e@example.org"}], "template_uuid": "missing"},
            ],
        },
    )
    assert response.status_code == 200, response.text
    results = response.json()["responses"]
    assert [r["success"] for r in results] == [True, True, True, False, False]
    subjects = [captured(services, r["message_ids"][0])["Subject"] for r in results[:3]]
    # The second request's variables have no greeting: " B", trimmed as a header line.
    assert subjects == ["Hi Base", "B", "Other Base"]
    assert results[3]["errors"] == ["'subject' is not allowed with 'template_uuid'"]
    assert results[4]["errors"] == ["template with uuid 'missing' not found"]


def test_an_update_applies_to_the_next_send_at_once(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    """The compiled-template cache is dropped by changes made through this process."""
    template = create(client, boot, subject="first")
    mail = {"from": SENDER, "to": [{"email": "a@example.org"}], "template_uuid": template["uuid"]}
    one = client.post(f"/api/send/{boot.inbox_id}", json=mail).json()["message_ids"][0]
    cache = services.get_template_cache()
    assert cache.get((boot.account_id, template["uuid"])) is not None
    client.patch(f"{base(boot)}/{template['id']}", json={"email_template": {"subject": "second"}})
    two = client.post(f"/api/send/{boot.inbox_id}", json=mail).json()["message_ids"][0]
    assert captured(services, one)["Subject"] == "first"
    assert captured(services, two)["Subject"] == "second"
    client.delete(f"{base(boot)}/{template['id']}")
    gone = client.post("/api/send", json=mail)
    assert gone.status_code == 400 and "not found" in gone.text
