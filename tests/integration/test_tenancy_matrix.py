"""The tenancy matrix, generated from the app's own OpenAPI document.

Every ``/api`` operation × every token kind (admin, viewer, send-only, domain-limited,
another account's admin) is called with the ids of the victim account's objects. Two
rules hold for each call:

* another account's token never reads or writes the victim's data: it gets 404 for the
  victim's account and objects (401/403 are allowed only where no victim id is in the
  path), no response carries a victim marker, and the victim's rows are unchanged;
* the victim's own restricted tokens stay within the scope each operation declares in
  ``x-postroom-scope`` (api/families.py): a viewer cannot call ``admin`` operations, a
  send-only token can call nothing but ``send`` ones (so no logs), a domain-limited token
  likewise, and it cannot send From another of the account's domains.

Nothing here names a route: a new route is covered as soon as it exists (a path
parameter this file does not seed is filled from the collection the path lists it in,
:func:`_discover`). An operation
without ``x-postroom-scope`` fails :func:`test_every_operation_declares_its_access`,
except those in ``UNDECLARED`` (routes written before the declaration existed); that
list may only shrink (the test fails when an entry is declared or gone). Restricted
tokens are checked on those too, with the scope they must need (:func:`_scope`).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.api.families import SCOPE_KEY
from postroom.domain import access
from postroom.domain.access import Permission
from postroom.services import Services, inbound_mail
from postroom.services import tokens as token_service
from postroom.services.accounts import Bootstrap, bootstrap
from postroom.storage import tables
from postroom.storage.repos import accounts as account_repo

MARKER = "victimmarker"
METHODS = ("get", "post", "put", "patch", "delete")

# Operations written before x-postroom-scope existed (method, path). Only shrinks.
# The email log's raw link is signed (its signature is its credential, no token).
UNDECLARED = {("GET", "/api/accounts/{account_id}/email_logs/{message_id}/raw")}


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    scope: str | None

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class World:
    """The victim account, its objects, and the tokens that try them."""

    client: TestClient
    victim: int
    ids: dict[str, Any]
    tokens: dict[str, str]
    services: Services


def operations(client: TestClient) -> list[Operation]:
    """Every /api operation of the app, from its OpenAPI document."""
    doc = client.app.openapi()  # type: ignore[attr-defined]
    found = []
    for path, item in doc["paths"].items():
        if not path.startswith("/api/"):
            continue
        for method in METHODS:
            if method in item:
                found.append(Operation(method.upper(), path, item[method].get(SCOPE_KEY)))
    return found


# --- the victim's world -------------------------------------------------------------------


def _ok(response: Any) -> Any:
    assert response.status_code in (200, 201), response.text
    return response.json()


def _token(services: Services, account_id: int, name: str, **kind: Any) -> str:
    def run(conn: Connection) -> str:
        return token_service.insert(services, conn, account_id, name, **kind).value

    return services.db.write_sync(run)


def _inbound(services: Services, client: TestClient, base: str, folder_id: int) -> tuple[int, int]:
    """A thread (one received message) and a forward rule of a victim's inbound inbox."""
    inbox = _ok(client.post(f"{base}/folders/{folder_id}/inboxes", json={"name": MARKER}))
    rule = _ok(
        client.post(
            f"{base}/inboxes/{inbox['id']}/forward_rules",
            json={"name": MARKER, "destinations": [{"email": f"{MARKER}@example.net"}]},
        )
    )["data"]
    services.settings.inbound.check_authentication = False
    raw = (
        f"From: {MARKER}@example.org\r\nTo: {inbox['address']}\r\nSubject: {MARKER}\r\n"
        f"Message-ID: <{MARKER}@example.org>\r\n\r\n{MARKER}\r\n"
    ).encode()
    row = asyncio.run(inbound_mail.inbox_for_address(services, inbox["address"]))
    assert row is not None
    received = asyncio.run(
        inbound_mail.receive(services, [row], raw, client_ip="", helo="", mail_from="")
    )
    [thread] = client.get(f"{base}/inboxes/{inbox['id']}/threads").json()["data"]
    assert received.message_ids
    return int(thread["id"]), int(rule["id"])


@pytest.fixture
def world(services: Services) -> Iterator[World]:
    boot: Bootstrap | None = bootstrap(services)
    assert boot is not None
    victim = boot.account_id
    services.db.write_sync(
        lambda conn: account_repo.update_account(conn, victim, name=f"{MARKER} account")
    )
    app = create_app(services)
    with TestClient(app, base_url="http://testserver") as client:
        client.headers["Authorization"] = f"Bearer {boot.token}"
        base = f"/api/accounts/{victim}"
        domain = _ok(
            client.post(
                f"{base}/sending_domains",
                json={"sending_domain": {"domain_name": f"{MARKER}.example"}},
            )
        )
        other_domain = _ok(
            client.post(
                f"{base}/sending_domains",
                json={"sending_domain": {"domain_name": f"second-{MARKER}.example"}},
            )
        )
        services.db.write_sync(
            lambda conn: conn.execute(
                update(tables.sending_domains)
                .where(tables.sending_domains.c.account_id == victim)
                .values(dns_verified=True)
            )
        )
        inbox = client.get(f"{base}/inboxes").json()[0]
        project_id = inbox["project_id"]
        mail = {
            "from": {"email": f"{MARKER}@{MARKER}.example"},
            "to": [{"email": f"{MARKER}@example.org"}],
            "subject": f"{MARKER} subject",
            "text": f"{MARKER} text",
            "attachments": [{"content": "aGVsbG8=", "filename": f"{MARKER}.txt"}],
        }
        sent = _ok(client.post("/api/send", json=mail))["message_ids"][0]
        _ok(client.post(f"/api/send/{inbox['id']}", json=mail))
        sandbox_message = client.get(f"{base}/inboxes/{inbox['id']}/messages").json()[0]
        attachment = client.get(
            f"{base}/inboxes/{inbox['id']}/messages/{sandbox_message['id']}/attachments"
        ).json()[0]
        template = _ok(
            client.post(
                f"{base}/email_templates",
                json={
                    "email_template": {
                        "name": f"{MARKER} template",
                        "subject": MARKER,
                        "category": MARKER,
                        "body_text": MARKER,
                    }
                },
            )
        )
        suppression = _ok(
            client.post(
                f"{base}/suppressions",
                json={"email": f"{MARKER}@example.net", "sending_stream": "transactional"},
            )
        )["data"]
        opt_out = _ok(
            client.post(
                "/api/tracking_opt_outs",
                json={"email": f"{MARKER}@example.com", "domain_id": domain["id"]},
            )
        )["data"]
        contacts = f"{base}/contacts"
        field = _ok(
            client.post(
                f"{contacts}/fields",
                json={"name": f"{MARKER} field", "data_type": "text", "merge_tag": MARKER},
            )
        )
        contact_list = _ok(client.post(f"{contacts}/lists", json={"name": f"{MARKER} list"}))
        contact = _ok(
            client.post(contacts, json={"contact": {"email": f"{MARKER}@contacts.example"}})
        )
        contact = contact.get("data", contact)
        contact_import = _ok(
            client.post(
                f"{contacts}/imports", json={"contacts": [{"email": f"{MARKER}@import.example"}]}
            )
        )
        contact_export = _ok(client.post(f"{contacts}/exports", json={"filters": []}))
        folder = _ok(client.post(f"{base}/inbound/folders", json={"name": f"{MARKER} folder"}))
        thread_id, rule_id = _inbound(services, client, f"{base}/inbound", folder["id"])
        webhook = _ok(
            client.post(
                f"{base}/webhooks",
                json={
                    "webhook": {
                        "url": f"https://{MARKER}.example/hook",
                        "webhook_type": "email_sending",
                        "sending_stream": "transactional",
                        "event_types": ["delivery"],
                    }
                },
            )
        )["data"]
        campaign = _ok(
            client.post(
                f"{base}/email_campaigns",
                json={
                    "name": f"{MARKER} campaign",
                    "domain_id": domain["id"],
                    "from_local_part": "news",
                    "template_attributes": {"subject": MARKER, "body_html": MARKER},
                    "contact_list_ids": [contact_list["id"]],
                },
            )
        )["data"]
        token_id = client.get(f"{base}/api_tokens").json()[0]["id"]
        access_id = client.get(f"{base}/account_accesses").json()[0]["id"]
        ids: dict[str, Any] = {
            "account_id": victim,
            "organization_id": 1,
            "domain_id": domain["id"],
            "second_domain": f"second-{MARKER}.example",
            "project_id": project_id,
            "inbox_id": inbox["id"],
            "sandbox_message_id": sandbox_message["id"],
            "message_id": sent,
            "attachment_id": attachment["id"],
            "template_id": template["id"],
            "suppression_id": suppression["id"],
            "opt_out_id": opt_out["id"],
            "token_id": token_id,
            "access_id": access_id,
            "group": "domains",
            "field_id": field["id"],
            "list_id": contact_list["id"],
            "contact_identifier": contact["id"],
            "import_id": contact_import["id"],
            "export_id": contact_export["id"],
            "folder_id": folder["id"],
            "thread_id": thread_id,
            "rule_id": rule_id,
            "webhook_id": webhook["id"],
            "campaign_id": campaign["id"],
        }
        attacker = services.db.write_sync(
            lambda conn: account_repo.insert_account(conn, "attacker", services.clock.now())
        )
        tokens = {
            "admin": boot.token,
            "viewer": _token(services, victim, "viewer", scopes=("read",)),
            "send-only": _token(services, victim, "sender", scopes=("send",)),
            "domain": _token(
                services,
                victim,
                "domain",
                permissions=[Permission(access.DOMAIN, int(domain["id"]), access.ADMIN)],
            ),
            "other-account": _token(services, attacker, "attacker", scopes=("admin",)),
        }
        assert other_domain
        yield World(client, victim, ids, tokens, services)


def _url(world: World, op: Operation) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "message_id" and "/inboxes/" in op.path:
            name = "sandbox_message_id"
        if name not in world.ids:
            world.ids[name] = _discover(world, op, match.start(), name)
        return str(world.ids[name])

    return re.sub(r"\{([a-z_]+)\}", value, op.path)


def _discover(world: World, op: Operation, at: int, name: str) -> Any:
    """The id of one of the victim's objects for a path parameter this file does not
    know (a route added later): the first item the collection before it lists, read
    with the victim's admin token. Without one, an id that exists nowhere (the route is
    still checked for answering like any unknown id), and a warning."""
    collection = _url(world, Operation("GET", op.path[:at].rstrip("/"), None))
    response = world.client.get(collection)
    body = response.json() if response.status_code == 200 else None
    if isinstance(body, dict):
        body = body.get("data")
    if isinstance(body, list) and body and isinstance(body[0], dict) and "id" in body[0]:
        return body[0]["id"]
    warnings.warn(f"{op}: no victim object found for {{{name}}}; seed one", stacklevel=2)
    return 10**12 + 7


def _body(op: Operation, sender_domain: str = f"{MARKER}.example") -> Any:
    if "/send" in op.path or "/batch" in op.path:
        mail = {
            "from": {"email": f"x@{sender_domain}"},
            "to": [{"email": "x@example.org"}],
            "subject": "s",
            "text": "t",
        }
        return {"requests": [mail]} if "/batch" in op.path else mail
    return {"name": "x", "email": "x@example.org", "account": {"name": "x"}}


def _victim_rows(conn: Connection, victim: int) -> str:
    """A digest of every row that belongs to the victim account (writes show here)."""
    digest = hashlib.sha256()
    for table in tables.metadata.sorted_tables:
        if "account_id" not in table.c or table.name == "audit_log":
            continue
        rows = conn.execute(
            select(table).where(table.c.account_id == victim).order_by(*table.primary_key.columns)
        )
        for row in rows:
            values = dict(row._mapping)
            values.pop("last_used_at", None)  # the victim's tokens' use, not a change
            digest.update(repr(sorted(values.items())).encode())
    return digest.hexdigest()


def _audited(conn: Connection, victim: int) -> int:
    query = select(tables.audit_log.c.id).where(tables.audit_log.c.account_id == victim)
    return len(list(conn.execute(query)))


# --- the tests ----------------------------------------------------------------------------


def test_every_operation_declares_its_access(world: World) -> None:
    ops = operations(world.client)
    undeclared = {(op.method, op.path) for op in ops if op.scope is None}
    assert undeclared <= UNDECLARED, (
        f"declare x-postroom-scope on: {sorted(undeclared - UNDECLARED)}"
    )
    stale = UNDECLARED - undeclared
    assert not stale, f"declared or gone now, remove from UNDECLARED: {sorted(stale)}"
    scopes = {op.scope for op in ops} - {None}
    assert scopes <= {"read", "send", "admin", "token", "organization"}


def _ghost(value: Any) -> Any:
    """An id like ``value`` that names nothing anywhere."""
    if isinstance(value, int):
        return 10**12 + 7
    if isinstance(value, str) and re.fullmatch(r"[0-9a-f-]{36}", value):
        return "00000000-0000-4000-8000-000000000000"
    return value


def test_another_account_reads_and_writes_nothing(world: World) -> None:
    """Another account's token learns nothing and changes nothing: with the victim's ids
    it gets exactly what ids that exist nowhere get (404, or the same 400/422 when the
    request fails validation first), and never a success."""
    client, services = world.client, world.services
    before = services.db.read_sync(lambda conn: _victim_rows(conn, world.victim))
    audited = services.db.read_sync(lambda conn: _audited(conn, world.victim))
    headers = {"Authorization": f"Bearer {world.tokens['other-account']}"}
    failures = []
    for op in operations(client):
        body = _body(op, "attacker.example") if op.method != "GET" else None
        url = _url(world, op)  # first: it may discover ids the ghost then mirrors
        ghost = World(
            client, world.victim, {k: _ghost(v) for k, v in world.ids.items()}, {}, services
        )
        response = client.request(op.method, url, headers=headers, json=body)
        status = response.status_code
        if MARKER in response.text:
            failures.append(f"{op}: {status} shows the victim's data")
        if "{" not in op.path or op.path.startswith("/api/organizations"):
            continue  # the attacker's own account (or the organization's rule)
        nowhere = client.request(op.method, _url(ghost, op), headers=headers, json=body)
        if status < 400 or (status, response.text) != (nowhere.status_code, nowhere.text):
            failures.append(f"{op}: {status} for the victim's ids, {nowhere.status_code} for none")
    after = services.db.read_sync(lambda conn: _victim_rows(conn, world.victim))
    assert not failures, "\n".join(failures)
    assert after == before, "another account's token changed the victim's rows"
    assert services.db.read_sync(lambda conn: _audited(conn, world.victim)) == audited


def _scope(op: Operation) -> str:
    """The declared scope; for an UNDECLARED operation, what it must need: GET reads,
    a template preview reads, an email log's raw link is signed (no token), else admin."""
    if op.scope is not None:
        return op.scope
    if op.path.endswith("/preview"):
        return "read"
    if op.path.endswith("/raw"):
        return "link"
    return "read" if op.method == "GET" else "admin"


@pytest.mark.parametrize("kind", ["viewer", "send-only", "domain"])
def test_restricted_tokens_stay_within_the_declared_scope(world: World, kind: str) -> None:
    client = world.client
    headers = {"Authorization": f"Bearer {world.tokens[kind]}"}
    allowed = {
        "viewer": {"read", "token"},
        "send-only": {"send", "token"},
        "domain": {"send", "token"},
    }
    failures = []
    for op in operations(client):
        op = Operation(op.method, op.path, _scope(op))
        if op.scope in ("organization", "link"):
            continue
        before = world.services.db.read_sync(lambda conn: _victim_rows(conn, world.victim))
        response = client.request(
            op.method,
            _url(world, op),
            headers=headers,
            json=_body(op) if op.method != "GET" else None,
        )
        status = response.status_code
        # A domain-limited token holds no sandbox: an operation on one is outside it.
        outside = kind == "domain" and "{inbox_id}" in op.path
        if op.scope in allowed[kind] and not outside:
            if status in (401, 403):
                failures.append(f"{kind} {op}: {status} although it holds {op.scope}")
            continue
        if status != 403:
            failures.append(f"{kind} {op} (needs {op.scope}): {status}, not 403")
        after = world.services.db.read_sync(lambda conn: _victim_rows(conn, world.victim))
        if after != before:
            failures.append(f"{kind} {op}: changed the account without {op.scope}")
    assert not failures, "\n".join(failures)


def test_a_domain_token_cannot_send_from_another_domain(world: World) -> None:
    client = world.client
    headers = {"Authorization": f"Bearer {world.tokens['domain']}"}
    mail = {"to": [{"email": "x@example.org"}], "subject": "s", "text": "t"}
    own = {**mail, "from": {"email": f"x@{MARKER}.example"}}
    other = {**mail, "from": {"email": f"x@{world.ids['second_domain']}"}}
    assert client.post("/api/send", json=own, headers=headers).status_code == 200
    assert client.post("/api/send", json=other, headers=headers).status_code == 401
    batch = client.post("/api/batch", json={"requests": [other]}, headers=headers).json()
    assert batch["responses"][0]["success"] is False
    # Nor into the account's sandbox (it holds no sandbox permission).
    inbox = world.ids["inbox_id"]
    assert client.post(f"/api/send/{inbox}", json=own, headers=headers).status_code == 403
    # The unrestricted send-only token may use either domain.
    sender = {"Authorization": f"Bearer {world.tokens['send-only']}"}
    assert client.post("/api/send", json=other, headers=sender).status_code == 200
