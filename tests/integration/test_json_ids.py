"""Every number the API answers fits a JavaScript number exactly (below 2^53).

The official Node SDK parses JSON into IEEE doubles: an id at or above 2^53 comes back
rounded, and the next call with it answers 404. Data of every kind is made through the
API (sandbox and transactional sends with an attachment, a domain, a template, a
suppression, a project and inbox), then every GET operation of /openapi.json is called
with real ids, and every integer in every JSON answer (and every numeric id string, as
sandbox sends answer) is checked.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator
from typing import Any

from starlette.testclient import TestClient
from test_inbound_mail import _message, _send

from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.workers.delivery import DeliveryWorker

JS_SAFE = 2**53
_PARAM = re.compile(r"\{(\w+)\}")
# Query parameters the operations need, by a part of their path.
QUERIES = {
    "/suppressions/history": {"email": "gone@example.org"},
    "/stats": {"start_date": "2000-01-01", "end_date": "2100-01-01"},
}


def integers(value: Any) -> Iterator[int]:
    """Every integer in a JSON value, and every string of digits (ids sent as strings)."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, str) and value.isdigit():
        yield int(value)
    elif isinstance(value, dict):
        for item in value.values():
            yield from integers(item)
    elif isinstance(value, list):
        for item in value:
            yield from integers(item)


def seed(client: TestClient, boot: Bootstrap, services: Services) -> dict[str, Any]:
    """One of everything; returns the path parameters that name them."""
    base = f"/api/accounts/{boot.account_id}"
    answers: list[Any] = []

    def call(method: str, url: str, **kwargs: Any) -> Any:
        response = client.request(method, url, **kwargs)
        assert response.status_code in (200, 201), (url, response.text)
        answers.append(response.json())
        return response.json()

    mail = {
        "from": {"email": "app@example.com"},
        "to": [{"email": "ann@example.org"}],
        "subject": "ids",
        "text": "body",
        "attachments": [{"filename": "a.txt", "content": base64.b64encode(b"attached").decode()}],
    }
    [sandbox_id] = call("POST", f"/api/send/{boot.inbox_id}", json=mail)["message_ids"]
    call("POST", f"/api/batch/{boot.inbox_id}", json={"requests": [mail]})
    [delivery_id] = call("POST", "/api/send", json=mail)["message_ids"]
    asyncio.run(DeliveryWorker(services).run_once())  # captured, and in the email logs
    project = call("POST", f"{base}/projects", json={"project": {"name": "Ids"}})
    inbox = call("POST", f"{base}/projects/{project['id']}/inboxes", json={"inbox": {"name": "I"}})
    domain = call(
        "POST", f"{base}/sending_domains", json={"sending_domain": {"domain_name": "ids.example"}}
    )
    template = call(
        "POST",
        f"{base}/email_templates",
        json={"email_template": {"name": "T", "subject": "S", "category": "c", "body_text": "t"}},
    )
    suppression = {"email": "gone@example.org", "sending_stream": "bulk", "type": "unsubscription"}
    call("POST", f"{base}/suppressions", json=suppression)
    contacts = f"{base}/contacts"
    field = call(
        "POST",
        f"{contacts}/fields",
        json={"name": "First", "data_type": "text", "merge_tag": "first"},
    )
    contact_list = call("POST", f"{contacts}/lists", json={"name": "Ids"})
    contact = call("POST", contacts, json={"contact": {"email": "c@example.org"}})
    imported = call("POST", f"{contacts}/imports", json={"contacts": [{"email": "i@example.org"}]})
    exported = call("POST", f"{contacts}/exports", json={"filters": []})
    folder = call("POST", f"{base}/inbound/folders", json={"name": "Ids"})
    desk = call("POST", f"{base}/inbound/folders/{folder['id']}/inboxes", json={"name": "Desk"})
    services.settings.inbound.check_authentication = False  # no DNS here
    assert _send(services, [desk["address"]], _message(desk["address"]))[1] == 250
    listed = call("GET", f"{base}/inbound/inboxes/{desk['id']}/messages")
    [received] = listed.get("data", listed) if isinstance(listed, dict) else listed
    [thread] = call("GET", f"{base}/inbound/inboxes/{desk['id']}/threads")["data"]
    rule = call(
        "POST",
        f"{base}/inbound/inboxes/{desk['id']}/forward_rules",
        json={"name": "Ids", "destinations": [{"email": "ids@example.net"}]},
    )["data"]
    webhook = call(
        "POST",
        f"{base}/webhooks",
        json={"webhook": {"url": "https://hooks.example/in", "webhook_type": "email_sending",
                          "sending_stream": "transactional", "event_types": ["delivery"]}},
    )  # fmt: skip
    campaign = call(
        "POST",
        f"{base}/email_campaigns",
        json={"name": "Ids", "domain_id": domain["id"], "from_local_part": "news",
              "template_attributes": {"subject": "S", "body_text": "t"},
              "contact_list_ids": [contact_list["id"]]},
    )  # fmt: skip
    return {
        "campaign_id": campaign["data"]["id"],
        "field_id": field["id"],
        "list_id": contact_list["id"],
        "contact_identifier": contact.get("data", contact)["id"],
        "import_id": imported["id"],
        "export_id": exported["id"],
        "folder_id": folder["id"],
        "inbound_inbox_id": desk["id"],
        "inbound_message_id": received["id"],
        "thread_id": thread["id"],
        "rule_id": rule["id"],
        "webhook_id": webhook["data"]["id"],
        "access_id": call("GET", f"{base}/account_accesses")[0]["id"],
        "answers": answers,
        "account_id": boot.account_id,
        "inbox_id": boot.inbox_id,
        "message_id": sandbox_id,
        "log_message_id": delivery_id,
        "attachment_id": 1,
        "project_id": project["id"],
        "new_inbox_id": inbox["id"],
        "domain_id": domain["id"],
        "template_id": template["id"],
        "group": "domains",
        "organization_id": 1,
        "token_id": call("GET", f"{base}/api_tokens")[0]["id"],
    }


def _fill(path: str, made: dict[str, Any]) -> str:
    """The path with real ids; an email log's ``message_id`` is a delivery's UUID."""
    names = dict(made, message_id=made["log_message_id"]) if "email_logs" in path else made
    if "/inbound/" in path:  # an inbound inbox's ids, not a sandbox inbox's
        names = dict(made, inbox_id=made["inbound_inbox_id"], message_id=made["inbound_message_id"])
    return _PARAM.sub(lambda m: str(names[m.group(1)]), path)


def test_every_number_the_api_answers_is_below_2_53(
    client: TestClient, boot: Bootstrap, services: Services, spamd: int
) -> None:
    services.settings.domains.rsa_bits = 1024  # faster keys; their size is not the point
    services.settings.sandbox.spamd_port = spamd  # spam reports answer from a real spamd
    made = seed(client, boot, services)
    answers: list[Any] = list(made["answers"])
    called = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        # The email log's raw link is signed (its URL is in the log entry) and answers bytes.
        if "get" not in operations or not path.startswith("/api/") or path.endswith("/raw"):
            continue
        if "/inbound/" in path and path.endswith("{attachment_id}"):
            continue  # a download of the attachment's bytes (the seeded mail has none)
        url = _fill(path, made)
        params = next((q for part, q in QUERIES.items() if part in path), {})
        response = client.get(url, params=params)
        assert response.status_code == 200, (url, response.text)
        called.append(path)
        if response.headers["content-type"].startswith("application/json"):
            answers.append(response.json())
    assert len(called) >= 30  # the crawl reached the API, not only a handful of routes
    numbers = [n for answer in answers for n in integers(answer)]
    assert int(made["message_id"]) in numbers
    assert [n for n in numbers if n >= JS_SAFE] == []
