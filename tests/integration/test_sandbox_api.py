"""The sandbox management API (spec §4.9) over HTTP, on SQLite and PostgreSQL.

Messages are seeded through the sandbox send endpoint, so these tests also prove that
what the sending API captures is what the management API shows.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import logging
from typing import Any

import pytest
from cryptography.fernet import Fernet
from mailtrap.models.attachments import Attachment
from mailtrap.models.common import DeletedObject
from mailtrap.models.inboxes import Inbox
from mailtrap.models.messages import EmailMessage
from mailtrap.models.projects import Project
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from postroom.sandbox.smtp_login import inbox_login
from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_default_inbox, create_token
from postroom.storage.repos import accounts as account_repo
from postroom.storage.secrets import Sealer

MESSAGE_FIELDS = {
    "id", "inbox_id", "subject", "sent_at", "from_email", "from_name", "to_email", "to_name",
    "email_size", "is_read", "created_at", "updated_at", "html_body_size", "text_body_size",
    "human_size", "html_path", "txt_path", "raw_path", "download_path", "html_source_path",
    "blacklists_report_info", "smtp_information",
}  # fmt: skip
INBOX_FIELDS = {
    "id", "name", "username", "password", "max_size", "status", "email_username",
    "email_username_enabled", "sent_messages_count", "forwarded_messages_count", "used",
    "forward_from_email_address", "project_id", "domain", "pop3_domain", "email_domain",
    "api_domain", "emails_count", "emails_unread_count", "smtp_ports", "pop3_ports",
    "max_message_size", "permissions", "last_message_sent_at",
}  # fmt: skip


def send(client: TestClient, inbox_id: int, **overrides: Any) -> int:
    """Capture one message into ``inbox_id``; returns its sandbox message id."""
    body: dict[str, Any] = {
        "from": {"email": "a@example.com", "name": "A"},
        "to": [{"email": "b@example.com", "name": "B"}],
        "subject": "Hi",
        "text": "plain body",
        "html": "<b>html body</b>",
    }
    body.update(overrides)
    response = client.post(f"/api/send/{inbox_id}", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["message_ids"][0])


def base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}"


def msg_url(boot: Bootstrap, message_id: int, inbox_id: int | None = None) -> str:
    return f"{base(boot)}/inboxes/{inbox_id or boot.inbox_id}/messages/{message_id}"


@pytest.fixture
def other(services: Services, boot: Bootstrap) -> tuple[int, int, str]:
    """A second tenant: (account id, its inbox id, its admin token)."""

    def run(conn: Connection) -> tuple[int, int, str]:
        account_id = account_repo.insert_account(conn, "Other", services.clock.now())
        inbox_id = create_default_inbox(services, conn, account_id)
        return account_id, inbox_id, create_token(services, conn, account_id, "other")

    return services.db.write_sync(run)


# --- projects ----------------------------------------------------------------------------


def test_project_lifecycle(client: TestClient, boot: Bootstrap) -> None:
    listed = client.get(f"{base(boot)}/projects")
    assert listed.status_code == 200
    assert listed.headers["content-type"] == "application/json; charset=utf-8"
    [first] = listed.json()
    assert first["name"] == "My Project"
    assert [i["id"] for i in first["inboxes"]] == [boot.inbox_id]
    assert set(first["share_links"]) == {"admin", "viewer"}
    assert first["permissions"]["can_update"] is True

    created = client.post(f"{base(boot)}/projects", json={"project": {"name": "QA"}})
    assert created.status_code == 200
    project = created.json()
    assert project["name"] == "QA" and project["inboxes"] == []
    url = f"{base(boot)}/projects/{project['id']}"
    assert client.get(url).json()["name"] == "QA"

    renamed = client.patch(url, json={"project": {"name": "Staging"}})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Staging"
    assert len(client.get(f"{base(boot)}/projects").json()) == 2

    assert client.delete(url).json() == {"id": project["id"]}
    assert client.get(url).status_code == 404
    assert client.get(url).json() == {"error": "Not Found"}


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("x", "is too short (minimum is 2 characters)"),
        ("x" * 101, "is too long (maximum is 100 characters)"),
        ("", "can't be blank"),
        (None, "can't be blank"),
    ],
)
def test_project_name_is_validated(
    client: TestClient, boot: Bootstrap, name: str | None, error: str
) -> None:
    response = client.post(f"{base(boot)}/projects", json={"project": {"name": name}})
    assert response.status_code == 422
    assert response.json() == {"errors": {"name": [error]}}


def test_project_body_must_be_wrapped(client: TestClient, boot: Bootstrap) -> None:
    response = client.post(f"{base(boot)}/projects", json={"name": "QA"})
    assert response.status_code == 422
    assert "project" in response.json()["errors"]["base"][0]


def test_deleting_a_project_deletes_its_inboxes_and_messages(
    client: TestClient, boot: Bootstrap
) -> None:
    project = client.post(f"{base(boot)}/projects", json={"project": {"name": "Gone"}}).json()
    inbox = client.post(
        f"{base(boot)}/projects/{project['id']}/inboxes", json={"inbox": {"name": "In"}}
    ).json()
    message_id = send(client, inbox["id"])
    client.delete(f"{base(boot)}/projects/{project['id']}")
    assert client.get(f"{base(boot)}/inboxes/{inbox['id']}").status_code == 404
    assert client.get(msg_url(boot, message_id, inbox["id"])).status_code == 404


# --- inboxes -----------------------------------------------------------------------------


def test_inbox_json_has_every_field(client: TestClient, boot: Bootstrap) -> None:
    inbox = client.get(f"{base(boot)}/inboxes/{boot.inbox_id}").json()
    assert set(inbox) >= INBOX_FIELDS
    assert inbox["status"] == "active"
    assert inbox["smtp_ports"] == [2525, 2526] and inbox["pop3_ports"] == []
    assert inbox["used"] is False and inbox["emails_count"] == 0
    assert inbox["last_message_sent_at"] is None
    assert inbox["domain"] == "127.0.0.1"
    assert inbox["password"]


def test_inbox_counts_follow_messages(client: TestClient, boot: Bootstrap) -> None:
    send(client, boot.inbox_id)
    send(client, boot.inbox_id)
    inbox = client.get(f"{base(boot)}/inboxes/{boot.inbox_id}").json()
    assert inbox["emails_count"] == 2 and inbox["emails_unread_count"] == 2
    assert inbox["used"] is True and inbox["sent_messages_count"] == 2
    assert inbox["last_message_sent_at"].endswith("Z")


def test_inbox_create_update_delete(client: TestClient, boot: Bootstrap) -> None:
    project_id = client.get(f"{base(boot)}/projects").json()[0]["id"]
    created = client.post(
        f"{base(boot)}/projects/{project_id}/inboxes", json={"inbox": {"name": "Second"}}
    )
    assert created.status_code == 200
    inbox = created.json()
    assert inbox["name"] == "Second" and inbox["project_id"] == project_id
    url = f"{base(boot)}/inboxes/{inbox['id']}"
    assert {i["id"] for i in client.get(f"{base(boot)}/inboxes").json()} == {
        boot.inbox_id,
        inbox["id"],
    }

    patched = client.patch(url, json={"inbox": {"name": "Renamed", "email_username": "qa-team"}})
    assert patched.status_code == 200
    assert patched.json()["name"] == "Renamed"
    assert patched.json()["email_username"] == "qa-team"

    deleted = client.delete(url)
    assert deleted.status_code == 200 and deleted.json()["id"] == inbox["id"]
    assert client.get(url).status_code == 404


def test_inbox_update_validation(client: TestClient, boot: Bootstrap) -> None:
    url = f"{base(boot)}/inboxes/{boot.inbox_id}"
    bad = client.patch(url, json={"inbox": {"email_username": "no spaces!"}})
    assert bad.status_code == 422
    assert bad.json() == {"errors": {"email_username": ["is invalid"]}}
    project_id = client.get(f"{base(boot)}/projects").json()[0]["id"]
    other = client.post(
        f"{base(boot)}/projects/{project_id}/inboxes", json={"inbox": {"name": "B"}}
    ).json()
    taken = client.patch(url, json={"inbox": {"email_username": other["email_username"]}})
    assert taken.status_code == 422
    assert taken.json() == {"errors": {"email_username": ["has already been taken"]}}
    blank = client.post(f"{base(boot)}/projects/{project_id}/inboxes", json={"inbox": {}})
    assert blank.json() == {"errors": {"name": ["can't be blank"]}}


def test_inbox_in_unknown_project_is_404(client: TestClient, boot: Bootstrap) -> None:
    response = client.post(f"{base(boot)}/projects/999999/inboxes", json={"inbox": {"name": "X"}})
    assert response.status_code == 404


def test_clean_and_all_read(client: TestClient, boot: Bootstrap) -> None:
    send(client, boot.inbox_id)
    send(client, boot.inbox_id)
    url = f"{base(boot)}/inboxes/{boot.inbox_id}"
    read = client.patch(f"{url}/all_read")
    assert read.status_code == 200
    assert read.json()["emails_unread_count"] == 0 and read.json()["emails_count"] == 2
    messages = client.get(f"{url}/messages").json()
    assert all(m["is_read"] for m in messages)

    cleaned = client.patch(f"{url}/clean")
    assert cleaned.status_code == 200 and cleaned.json()["emails_count"] == 0
    assert client.get(f"{url}/messages").json() == []


def test_credentials_and_email_username_actions(client: TestClient, boot: Bootstrap) -> None:
    url = f"{base(boot)}/inboxes/{boot.inbox_id}"
    before = client.get(url).json()
    reset = client.patch(f"{url}/reset_credentials").json()
    assert reset["password"] != before["password"] and reset["username"] == before["username"]

    toggled = client.patch(f"{url}/toggle_email_username").json()
    assert toggled["email_username_enabled"] is (not before["email_username_enabled"])
    again = client.patch(f"{url}/toggle_email_username").json()
    assert again["email_username_enabled"] is before["email_username_enabled"]

    renamed = client.patch(f"{url}/reset_email_username").json()
    assert renamed["email_username"] != before["email_username"]


def test_a_process_with_another_key_shows_no_password_and_logs_no_one_in(
    client: TestClient, boot: Bootstrap, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    """Sealed passwords need this installation's key; a process started with another one
    (a wrong data directory or secret_key) degrades to no password, never a 500."""
    url = f"{base(boot)}/inboxes/{boot.inbox_id}"
    shown = client.get(url).json()
    services.sealer = Sealer(Fernet.generate_key())
    with caplog.at_level(logging.ERROR, logger="postroom.sandbox"):
        response = client.get(url)
    assert response.status_code == 200 and response.json()["password"] is None
    assert "SMTP password unreadable" in caplog.text
    login = inbox_login(services, shown["username"], shown["password"].encode())
    assert asyncio.run(login) is None


def test_deleting_the_default_inbox_moves_capture(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    from postroom.storage.repos import sandbox as sandbox_repo

    project_id = client.get(f"{base(boot)}/projects").json()[0]["id"]
    second = client.post(
        f"{base(boot)}/projects/{project_id}/inboxes", json={"inbox": {"name": "Next"}}
    ).json()
    assert client.delete(f"{base(boot)}/inboxes/{boot.inbox_id}").status_code == 200
    target = services.db.read_sync(lambda c: sandbox_repo.default_inbox_id(c, boot.account_id))
    assert target == second["id"]


# --- messages ----------------------------------------------------------------------------


def test_message_json(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id)
    message = client.get(msg_url(boot, message_id)).json()
    assert set(message) >= MESSAGE_FIELDS
    assert message["id"] == message_id and message["inbox_id"] == boot.inbox_id
    assert (message["from_email"], message["from_name"]) == ("a@example.com", "A")
    assert (message["to_email"], message["to_name"]) == ("b@example.com", "B")
    assert message["subject"] == "Hi" and message["is_read"] is False
    assert message["html_path"] == msg_url(boot, message_id) + "/body.html"
    assert message["download_path"] == msg_url(boot, message_id) + "/body.eml"
    assert message["blacklists_report_info"] is False
    assert message["smtp_information"]["data"]["mail_from_addr"] == "a@example.com"
    assert message["created_at"].endswith("Z") and len(message["created_at"]) == 24
    assert message["human_size"].endswith(("Bytes", "KB"))
    assert (message["template_id"], message["template_variables"]) == (0, None)


def test_message_sent_from_a_template_names_it(client: TestClient, boot: Bootstrap) -> None:
    template = client.post(
        f"{base(boot)}/email_templates",
        json={
            "email_template": {
                "name": "Welcome",
                "subject": "Hi {{name}}",
                "category": "welcome",
                "body_text": "Hello {{name}}",
            }
        },
    ).json()
    variables = {"name": "Jörg"}
    message_id = send(
        client,
        boot.inbox_id,
        subject=None,
        text=None,
        html=None,
        template_uuid=template["uuid"],
        template_variables=variables,
    )
    for url in (msg_url(boot, message_id), f"/api/sandboxes/{boot.inbox_id}/messages/{message_id}"):
        shown = client.get(url).json()
        assert shown["template_id"] == template["id"], url
        assert shown["template_variables"] == variables and shown["subject"] == "Hi Jörg"
    [listed] = client.get(f"/api/sandboxes/{boot.inbox_id}/messages").json()
    assert listed["template_id"] == template["id"]


def test_listing_pages_newest_first(client: TestClient, boot: Bootstrap) -> None:
    ids = [send(client, boot.inbox_id, subject=f"n{i}") for i in range(33)]
    assert ids == sorted(ids)  # ids grow with time: newest first is by id
    url = f"{base(boot)}/inboxes/{boot.inbox_id}/messages"
    first = client.get(url).json()
    assert len(first) == 30
    assert [m["id"] for m in first] == sorted(ids, reverse=True)[:30]
    second = client.get(url, params={"page": 2}).json()
    assert [m["id"] for m in second] == sorted(ids, reverse=True)[30:]
    after = client.get(url, params={"last_id": first[-1]["id"]}).json()
    assert [m["id"] for m in after] == [m["id"] for m in second]
    # last_id wins over page
    both = client.get(url, params={"last_id": first[-1]["id"], "page": 5}).json()
    assert [m["id"] for m in both] == [m["id"] for m in second]
    assert client.get(url, params={"page": 3}).json() == []


def test_search(client: TestClient, boot: Bootstrap) -> None:
    welcome = send(client, boot.inbox_id, subject="Welcome aboard")
    invoice = send(client, boot.inbox_id, subject="Invoice", to=[{"email": "Billing@Corp.example"}])
    url = f"{base(boot)}/inboxes/{boot.inbox_id}/messages"
    assert [m["id"] for m in client.get(url, params={"search": "WELCOME"}).json()] == [welcome]
    assert [m["id"] for m in client.get(url, params={"search": "billing@corp"}).json()] == [invoice]
    assert client.get(url, params={"search": "100%"}).json() == []
    assert len(client.get(url, params={"search": "a@example.com"}).json()) == 2


@pytest.mark.parametrize(("sent", "expected"), [("true", True), (True, True), ("false", False)])
def test_mark_read(client: TestClient, boot: Bootstrap, sent: object, expected: bool) -> None:
    message_id = send(client, boot.inbox_id)
    if not expected:
        client.patch(msg_url(boot, message_id), json={"message": {"is_read": True}})
    response = client.patch(msg_url(boot, message_id), json={"message": {"is_read": sent}})
    assert response.status_code == 200
    assert response.json()["is_read"] is expected
    assert client.get(msg_url(boot, message_id)).json()["is_read"] is expected


def test_mark_read_rejects_nonsense(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id)
    response = client.patch(msg_url(boot, message_id), json={"message": {"is_read": "maybe"}})
    assert response.status_code == 422
    assert response.json() == {"errors": {"is_read": ["is invalid"]}}


def test_delete_message(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id)
    deleted = client.delete(msg_url(boot, message_id))
    assert deleted.status_code == 200 and deleted.json()["id"] == message_id
    assert client.get(msg_url(boot, message_id)).status_code == 404


def test_message_in_wrong_inbox_is_404(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id)
    project_id = client.get(f"{base(boot)}/projects").json()[0]["id"]
    second = client.post(
        f"{base(boot)}/projects/{project_id}/inboxes", json={"inbox": {"name": "B"}}
    ).json()
    response = client.get(msg_url(boot, message_id, second["id"]))
    assert response.status_code == 404 and response.json() == {"error": "Not Found"}
    assert client.get(msg_url(boot, 2**70)).status_code == 404


# --- parts -------------------------------------------------------------------------------


def test_bodies(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id, text="héllo text", html="<p>héllo</p>")
    url = msg_url(boot, message_id)
    text = client.get(f"{url}/body.txt")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text.strip() == "héllo text"
    source = client.get(f"{url}/body.htmlsource")
    # The spec's content type (text/html), under the same sandbox policy as body.html.
    assert source.headers["content-type"] == "text/html; charset=utf-8"
    assert "sandbox" in source.headers["content-security-policy"]
    assert "script-src" not in source.headers["content-security-policy"]
    assert source.text.strip() == "<p>héllo</p>"
    raw = client.get(f"{url}/body.raw")
    assert raw.headers["content-type"].startswith("text/plain")
    assert "Subject: Hi" in raw.text
    eml = client.get(f"{url}/body.eml")
    assert eml.headers["content-type"] == "message/rfc822"
    assert eml.headers["content-disposition"] == f'attachment; filename="{message_id}.eml"'
    assert eml.content == raw.content
    for response in (text, source, raw, eml):
        assert response.headers["x-content-type-options"] == "nosniff"


def test_html_body_is_sandboxed(client: TestClient, boot: Bootstrap) -> None:
    evil = "<script>alert(document.cookie)</script><b>hi</b>"
    message_id = send(client, boot.inbox_id, html=evil)
    response = client.get(f"{msg_url(boot, message_id)}/body.html")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    csp = response.headers["content-security-policy"]
    assert csp == "default-src 'none'; img-src data: cid:; style-src 'unsafe-inline'; sandbox"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<b>hi</b>" in response.text


def test_missing_body_is_empty(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id, html=None)
    response = client.get(f"{msg_url(boot, message_id)}/body.html")
    assert response.status_code == 200 and response.text == ""


def test_mail_headers(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id, subject="Grüße")
    response = client.get(f"{msg_url(boot, message_id)}/mail_headers")
    headers = response.json()["headers"]
    assert headers["subject"] == "Grüße"
    assert headers["from"] == "A <a@example.com>"
    assert headers["to"] == "B <b@example.com>"
    assert "date" in headers and "message-id" in headers


def test_attachments(client: TestClient, boot: Bootstrap) -> None:
    pixel = base64.b64encode(b"\x89PNG fake").decode()
    message_id = send(
        client,
        boot.inbox_id,
        attachments=[
            {"content": "aGVsbG8=", "filename": "a.txt", "type": "text/plain"},
            {
                "content": pixel,
                "filename": "logo.png",
                "type": "image/png",
                "disposition": "inline",
                "content_id": "logo",
            },
        ],
    )
    url = f"{msg_url(boot, message_id)}/attachments"
    listed = client.get(url).json()
    # Ids are positions in the MIME tree (inline parts sit with the HTML body, first).
    assert sorted(a["id"] for a in listed) == [1, 2]
    by_name = {a["filename"]: a for a in listed}
    first, second = by_name["a.txt"], by_name["logo.png"]
    assert first["filename"] == "a.txt" and first["content_type"] == "text/plain"
    assert first["attachment_type"] == "attachment" and first["attachment_size"] == 5
    assert first["attachment_human_size"] == "5 Bytes"
    assert first["message_id"] == message_id
    assert second["attachment_type"] == "inline" and second["content_id"] == "logo"
    assert first["download_path"] == f"{url}/{first['id']}/download"
    assert client.get(url, params={"attachment_type": "inline"}).json() == [second]

    assert client.get(f"{url}/{second['id']}").json() == second
    assert client.get(f"{url}/3").status_code == 404
    download = client.get(first["download_path"])
    assert download.content == b"hello"
    assert download.headers["content-type"].startswith("text/plain")
    assert download.headers["content-disposition"].startswith('attachment; filename="a.txt"')
    assert download.headers["x-content-type-options"] == "nosniff"
    assert client.get(second["download_path"]).content == b"\x89PNG fake"


def test_message_without_attachments(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id)
    assert client.get(f"{msg_url(boot, message_id)}/attachments").json() == []


# --- security ----------------------------------------------------------------------------


def test_requires_a_token(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id)
    del client.headers["Authorization"]
    for path in (
        f"{base(boot)}/projects",
        f"{base(boot)}/inboxes",
        msg_url(boot, message_id),
        f"{msg_url(boot, message_id)}/body.html",
    ):
        response = client.get(path)
        assert response.status_code == 401
        assert response.json() == {"error": "Incorrect API token"}


def test_tenants_are_isolated(
    client: TestClient, boot: Bootstrap, other: tuple[int, int, str]
) -> None:
    other_account, other_inbox, other_token = other
    message_id = send(client, boot.inbox_id)
    client.headers["Authorization"] = f"Bearer {other_token}"
    foreign = [
        f"{base(boot)}/inboxes",
        f"{base(boot)}/inboxes/{boot.inbox_id}",
        msg_url(boot, message_id),
        f"{msg_url(boot, message_id)}/body.raw",
    ]
    own = f"/api/accounts/{other_account}"
    mine_but_wrong_ids = [
        f"{own}/inboxes/{boot.inbox_id}",
        f"{own}/inboxes/{boot.inbox_id}/messages",
        f"{own}/inboxes/{boot.inbox_id}/messages/{message_id}",
        f"{own}/inboxes/{other_inbox}/messages/{message_id}",
        f"{own}/inboxes/{other_inbox}/messages/{message_id}/attachments",
    ]
    for path in foreign + mine_but_wrong_ids:
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json() == {"error": "Not Found"}
    assert client.delete(f"{own}/inboxes/{boot.inbox_id}").status_code == 404
    assert client.patch(f"{own}/inboxes/{boot.inbox_id}/clean").status_code == 404
    assert [i["id"] for i in client.get(f"{own}/inboxes").json()] == [other_inbox]
    # Nothing of the first account was touched.
    client.headers["Authorization"] = f"Bearer {boot.token}"
    assert client.get(msg_url(boot, message_id)).status_code == 200


def test_read_token_cannot_write(client: TestClient, boot: Bootstrap, services: Services) -> None:
    token = services.db.write_sync(
        lambda conn: create_token(services, conn, boot.account_id, "ro", ("read",))
    )
    client.headers["Authorization"] = f"Bearer {token}"
    inbox = client.get(f"{base(boot)}/inboxes/{boot.inbox_id}")
    assert inbox.status_code == 200 and inbox.json()["password"] is None
    assert inbox.json()["permissions"]["can_update"] is False
    assert client.patch(f"{base(boot)}/inboxes/{boot.inbox_id}/clean").status_code == 403


# --- the official SDK's models -----------------------------------------------------------


def test_responses_parse_with_the_sdk_models(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(
        client,
        boot.inbox_id,
        attachments=[{"content": "aGVsbG8=", "filename": "a.txt", "type": "text/plain"}],
    )
    projects = [Project(**p) for p in client.get(f"{base(boot)}/projects").json()]
    assert projects[0].inboxes[0].id == boot.inbox_id
    inbox = Inbox(**client.get(f"{base(boot)}/inboxes/{boot.inbox_id}").json())
    assert inbox.emails_count == 1 and inbox.password
    message = EmailMessage(**client.get(msg_url(boot, message_id)).json())
    assert message.id == message_id and message.smtp_information.ok
    listing = client.get(f"{base(boot)}/inboxes/{boot.inbox_id}/messages").json()
    listed = [EmailMessage(**m) for m in listing]
    assert listed[0].id == message_id
    [attachment] = [
        Attachment(**a) for a in client.get(f"{msg_url(boot, message_id)}/attachments").json()
    ]
    assert attachment.attachment_type.value == "attachment"
    patched = client.patch(msg_url(boot, message_id), json={"message": {"is_read": "true"}})
    assert EmailMessage(**patched.json()).is_read is True
    created = client.post(f"{base(boot)}/projects", json={"project": {"name": "SDK"}}).json()
    deleted = DeletedObject(**client.delete(f"{base(boot)}/projects/{created['id']}").json())
    assert dataclasses.asdict(deleted) == {"id": created["id"]}


# --- the specs' account-less family (/api/projects, /api/sandboxes/…) --------------------


def test_account_less_family_answers_as_the_account_family(
    client: TestClient, boot: Bootstrap, other: tuple[int, int, str]
) -> None:
    message_id = send(client, boot.inbox_id, subject="both families")
    sandbox = f"/api/sandboxes/{boot.inbox_id}"
    for short, long in [
        ("/api/projects", f"{base(boot)}/projects"),
        ("/api/sandboxes", f"{base(boot)}/inboxes"),
        ("/api/inboxes", f"{base(boot)}/sandboxes"),
        (sandbox, f"{base(boot)}/inboxes/{boot.inbox_id}"),
        (f"{sandbox}/messages", f"{base(boot)}/inboxes/{boot.inbox_id}/messages"),
        (f"{sandbox}/messages/{message_id}", msg_url(boot, message_id)),
        (
            f"{sandbox}/messages/{message_id}/mail_headers",
            f"{msg_url(boot, message_id)}/mail_headers",
        ),
    ]:
        answer = client.get(short)
        assert answer.status_code == 200, short
        assert answer.json() == client.get(long).json(), short
    created = client.post("/api/projects", json={"project": {"name": "Spec"}}).json()
    inbox = client.post(
        f"/api/projects/{created['id']}/sandboxes", json={"inbox": {"name": "Spec box"}}
    )
    assert inbox.status_code == 200 and inbox.json()["project_id"] == created["id"]
    renamed = client.patch(f"/api/sandboxes/{inbox.json()['id']}", json={"inbox": {"name": "Re"}})
    assert renamed.json()["name"] == "Re"
    assert client.patch(f"/api/sandboxes/{inbox.json()['id']}/clean").status_code == 200
    assert client.delete(f"/api/projects/{created['id']}").json() == {"id": created["id"]}
    # The token's own account only: another tenant's sandbox is a 404 there too.
    client.headers["Authorization"] = f"Bearer {other[2]}"
    assert client.get(sandbox).status_code == 404
    assert client.get(f"{sandbox}/messages/{message_id}").status_code == 404
    assert [i["id"] for i in client.get("/api/sandboxes").json()] == [other[1]]
