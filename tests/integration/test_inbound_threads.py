"""Inbound threads, reply / reply-all / forward and forward rules, on SQLite and PostgreSQL:
mail arrives over real SMTP on the inbound listener; answers and forwards go through
accept_message (sandbox delivery mode unless a test says otherwise) and are read back
from the store as the bytes that would leave."""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from test_domains_api import tenant, token_for
from test_inbound_mail import _inbox, _send

from postroom.clock import FrozenClock
from postroom.config import DeliveryMode
from postroom.services import Services, inbound_threads
from postroom.services.accounts import Bootstrap
from postroom.storage.repos import messages as message_repo
from postroom.storage.tables import (
    deliveries,
    inbound_forward_rules,
    inbound_messages,
    inbound_sent,
    inbound_thread_keys,
)
from postroom.storage.tables import inbound_threads as inbound_threads_t


@pytest.fixture(autouse=True)
def _quiet(services: Services) -> None:
    # No DNS here: authentication is test_inbound_mail's subject.
    services.settings.inbound.check_authentication = False
    services.clock = FrozenClock()


def _mail(
    to: str,
    message_id: str,
    subject: str,
    *,
    headers: str = "",
    sender: str = "alice@sender.example",
    text: str = "Where is my order?",
) -> bytes:
    return (
        f"From: Alice <{sender}>\r\n"
        f"To: {to}\r\n"
        "Cc: Bob <bob@elsewhere.example>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n"
        f"Message-ID: {message_id}\r\n"
        f"{headers}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{text}\r\n"
    ).encode()


def _receive(
    services: Services, inbox: dict[str, Any], raw: bytes, mail_from: str = "alice@sender.example"
) -> None:
    codes, data, text = _send(services, [inbox["address"]], raw, mail_from)
    assert codes == [250] and data == 250, text
    assert isinstance(services.clock, FrozenClock)
    services.clock.advance(60)


def _messages(client: TestClient, inbox: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Received messages by Message-ID."""
    data = client.get(f"/api/inbound/inboxes/{inbox['id']}/messages").json()["data"]
    return {m["rfc_message_id"]: m for m in data}


def _sent(services: Services, message_id: str) -> Any:
    raw = services.db.read_sync(lambda conn: message_repo.get_raw(conn, message_id))
    assert raw is not None
    return BytesParser(policy=policy.default).parsebytes(raw)


def test_messages_are_threaded_by_headers_then_subject(
    client: TestClient, boot: Bootstrap, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    inbox = _inbox(client)
    to = inbox["address"]
    _receive(services, inbox, _mail(to, "<m1@sender.example>", "Order 42"))
    reply = "In-Reply-To: <m1@sender.example>\r\nReferences: <m1@sender.example>\r\n"
    _receive(services, inbox, _mail(to, "<m2@sender.example>", "Re: Order 42", headers=reply))
    # No reply headers but an answer's subject: the subject fallback.
    _receive(services, inbox, _mail(to, "<m3@sender.example>", "RE: order   42"))
    # Same subject without "Re:": a new conversation.
    _receive(services, inbox, _mail(to, "<m4@sender.example>", "Order 42"))
    # A reply that arrives before its parent; the parent joins it.
    child = "In-Reply-To: <p@other.example>\r\nReferences: <p@other.example>\r\n"
    _receive(services, inbox, _mail(to, "<c@other.example>", "Re: Invoice", headers=child))
    _receive(
        services,
        inbox,
        _mail(to, "<p@other.example>", "Invoice", sender="carol@o.example"),
        "carol@o.example",
    )
    # Headers win over a changed subject.
    late = "References: <m1@sender.example> <m2@sender.example>\r\n"
    _receive(services, inbox, _mail(to, "<m5@sender.example>", "Something else", headers=late))

    byid = _messages(client, inbox)
    first = byid["<m1@sender.example>"]["thread_id"]
    assert isinstance(first, str) and first.isdigit()
    assert {byid[f"<m{i}@sender.example>"]["thread_id"] for i in (1, 2, 3, 5)} == {first}
    assert byid["<m4@sender.example>"]["thread_id"] not in (None, first)
    assert byid["<c@other.example>"]["thread_id"] == byid["<p@other.example>"]["thread_id"]

    base = f"/api/inbound/inboxes/{inbox['id']}/threads"
    listed = client.get(base).json()
    assert listed["total_count"] == 3 and listed["last_id"] is None
    # Most recently active first: m5 made the first thread the latest.
    assert [t["id"] for t in listed["data"]][0] == first
    head = listed["data"][0]
    assert head["subject"] == "Order 42" and head["message_count"] == 4
    assert head["senders"] == ["alice@sender.example"]
    assert head["recipients"] == [to, "bob@elsewhere.example"]
    assert head["last_sent_at"] is None and head["last_received_at"] == head["last_activity_at"]
    assert head["last_message_id"] == byid["<m5@sender.example>"]["id"]

    shown = client.get(f"{base}/{first}").json()
    assert [m["rfc_message_id"] for m in shown["messages"]] == [
        f"<m{i}@sender.example>" for i in (1, 2, 3, 5)
    ]
    assert {m["direction"] for m in shown["messages"]} == {"inbound"}
    assert shown["messages"][0]["text_body"].strip() == "Where is my order?"
    assert shown["messages"][1]["in_reply_to"] == "<m1@sender.example>"
    # Both path families answer the same.
    account = f"/api/accounts/{boot.account_id}/inbound/inboxes/{inbox['id']}/threads/{first}"
    assert client.get(account).json()["messages"] == shown["messages"]

    assert [
        t["subject"] for t in client.get(base, params={"search": "invoice"}).json()["data"]
    ] == ["Invoice"]
    assert client.get(base, params={"search": "carol@"}).json()["total_count"] == 1
    assert client.get(base, params={"search": "nobody"}).json()["data"] == []

    monkeypatch.setattr(inbound_threads, "PAGE_SIZE", 2)
    page = client.get(base).json()
    assert len(page["data"]) == 2 and page["last_id"] == page["data"][1]["id"]
    rest = client.get(base, params={"last_id": page["last_id"]}).json()
    assert len(rest["data"]) == 1 and rest["last_id"] is None
    seen = [t["id"] for t in page["data"] + rest["data"]]
    assert sorted(seen) == sorted(t["id"] for t in listed["data"])
    assert client.get(base, params={"last_id": "999999"}).status_code == 422


def test_deleting_messages_and_threads(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    inbox = _inbox(client)
    to = inbox["address"]
    _receive(services, inbox, _mail(to, "<d1@sender.example>", "Bye"))
    _receive(
        services,
        inbox,
        _mail(to, "<d2@sender.example>", "Re: Bye", headers="In-Reply-To: <d1@sender.example>\r\n"),
    )
    _receive(services, inbox, _mail(to, "<lone@sender.example>", "Lonely"))
    byid = _messages(client, inbox)
    base = f"/api/inbound/inboxes/{inbox['id']}"
    thread_id = byid["<d1@sender.example>"]["thread_id"]
    lone = byid["<lone@sender.example>"]

    other = {"Authorization": f"Bearer {tenant(services)}"}
    reader = {"Authorization": f"Bearer {token_for(services, boot, ('read',))}"}
    for method in ("get", "delete"):
        assert (
            client.request(method, f"{base}/threads/{thread_id}", headers=other).status_code == 404
        )
    assert client.get(f"{base}/threads", headers=other).status_code == 404
    assert client.get(f"{base}/threads", headers=reader).status_code == 200
    assert client.delete(f"{base}/threads/{thread_id}", headers=reader).status_code == 403

    # The last message of a thread goes: so does the thread.
    assert client.delete(f"{base}/messages/{lone['id']}").status_code == 204
    assert client.get(f"{base}/threads/{lone['thread_id']}").status_code == 404

    assert client.delete(f"{base}/threads/{thread_id}").status_code == 204
    assert client.get(f"{base}/threads/{thread_id}").status_code == 404
    assert client.get(f"{base}/messages").json()["total_count"] == 0
    assert client.get(f"{base}/threads").json() == {"data": [], "total_count": 0, "last_id": None}
    # A new message naming the deleted ones starts afresh.
    _receive(
        services,
        inbox,
        _mail(to, "<d3@sender.example>", "Re: Bye", headers="In-Reply-To: <d2@sender.example>\r\n"),
    )
    assert client.get(f"{base}/threads").json()["total_count"] == 1


def test_reply_reply_all_and_forward(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    inbox = _inbox(client)
    to = inbox["address"]
    attached = (
        "Content-Type: multipart/mixed; boundary=B\r\n\r\n"
        "--B\r\nContent-Type: text/plain\r\n\r\nSee the invoice.\r\n"
        "--B\r\nContent-Type: application/pdf\r\n"
        'Content-Disposition: attachment; filename="inv.pdf"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--B--\r\n"
    )
    raw = _mail(
        to, "<q1@sender.example>", "Invoice 7", headers="References: <q0@sender.example>\r\n"
    )
    raw = raw.replace(
        b"Content-Type: text/plain; charset=utf-8\r\n\r\nWhere is my order?\r\n", attached.encode()
    )
    _receive(services, inbox, raw)
    [original] = _messages(client, inbox).values()
    base = f"/api/inbound/inboxes/{inbox['id']}/messages/{original['id']}"

    answered = client.post(f"{base}/reply", json={"text": "It is on its way."})
    assert answered.status_code == 200, answered.text
    [reply_id] = answered.json()["message_ids"]
    sent = _sent(services, reply_id)
    assert sent["From"].addresses[0].addr_spec == to
    assert str(sent["To"]) == "alice@sender.example" and sent["Cc"] is None
    assert sent["Subject"] == "Re: Invoice 7"
    assert sent["In-Reply-To"] == "<q1@sender.example>"
    assert sent["References"] == "<q0@sender.example> <q1@sender.example>"
    text = sent.get_body(("plain",)).get_content()
    assert text.startswith("It is on its way.") and "> See the invoice." in text
    assert not list(sent.iter_attachments())

    everyone = client.post(
        f"/api/accounts/{boot.account_id}/inbound/inboxes/{inbox['id']}/messages/{original['id']}/reply_all",
        json={"html": "<p>Thanks all</p>", "category": "support"},
    )
    assert everyone.status_code == 200, everyone.text
    sent = _sent(services, everyone.json()["message_ids"][0])
    assert [a.addr_spec for a in sent["Cc"].addresses] == ["bob@elsewhere.example"]
    assert "<blockquote" in sent.get_body(("html",)).get_content()

    forwarded = client.post(
        f"{base}/forward",
        json={
            "to": [{"email": "accounts@dest.example"}],
            "text": "FYI",
            "from": {"email": "desk@shop.example"},
        },
    )
    assert forwarded.status_code == 200, forwarded.text
    fwd_id = forwarded.json()["message_ids"][0]
    sent = _sent(services, fwd_id)
    assert sent["Subject"] == "Fwd: Invoice 7" and str(sent["To"]) == "accounts@dest.example"
    assert sent["References"] == "<q1@sender.example>" and sent["In-Reply-To"] is None
    # Sent as someone else: answers to it come back to the inbox.
    assert str(sent["Reply-To"]) == to
    assert "---------- Forwarded message ---------" in sent.get_body(("plain",)).get_content()
    [carried] = list(sent.iter_attachments())
    assert carried.get_filename() == "inv.pdf" and carried.get_content() == b"%PDF-1.4"
    assert client.post(f"{base}/forward", json={"text": "x"}).status_code == 422

    # The answers are in the thread, after the message, with their delivery.
    thread = client.get(
        f"/api/inbound/inboxes/{inbox['id']}/threads/{original['thread_id']}"
    ).json()
    assert [m["direction"] for m in thread["messages"]] == [
        "inbound",
        "outbound",
        "outbound",
        "outbound",
    ]
    assert thread["messages"][1]["id"] == reply_id and thread["last_message_id"] == fwd_id
    assert thread["messages"][1]["delivery"]["to"] == "alice@sender.example"
    assert thread["messages"][1]["delivery"]["status"] in ("enqueued", "delivered")
    assert thread["messages"][3]["attachments"][0]["filename"] == "inv.pdf"
    assert thread["last_sent_at"] is not None and thread["message_count"] == 4
    assert "desk@shop.example" in thread["senders"]

    # Alice answers our reply: the answer joins the thread by its In-Reply-To.
    ours = _sent(services, reply_id)["Message-ID"]
    _receive(
        services,
        inbox,
        _mail(to, "<q2@sender.example>", "Thanks", headers=f"In-Reply-To: {ours}\r\n"),
    )
    assert _messages(client, inbox)["<q2@sender.example>"]["thread_id"] == original["thread_id"]

    # Access: another account 404, a send-only or read-only token 403.
    other = {"Authorization": f"Bearer {tenant(services)}"}
    assert client.post(f"{base}/reply", json={"text": "x"}, headers=other).status_code == 404
    for scopes in (("send",), ("read",)):
        limited = {"Authorization": f"Bearer {token_for(services, boot, scopes)}"}
        assert client.post(f"{base}/reply", json={"text": "x"}, headers=limited).status_code == 403
    assert (
        client.post(
            f"/api/inbound/inboxes/{inbox['id']}/messages/999999/reply", json={}
        ).status_code
        == 404
    )

    # For real delivery the From must be on a verified sending domain of the account.
    services.settings.delivery.mode = DeliveryMode.MX
    refused = client.post(f"{base}/reply", json={"text": "x"})
    assert refused.status_code == 422
    assert "not a verified sending domain" in str(refused.json())
    bad = client.post(f"{base}/reply", json={"headers": {"Bcc": "x@y.example"}})
    assert bad.status_code in (400, 422)


def _rule(client: TestClient, inbox: dict[str, Any], body: dict[str, Any]) -> Any:
    return client.post(f"/api/inbound/inboxes/{inbox['id']}/forward_rules", json=body)


def test_forward_rules_crud(client: TestClient, boot: Bootstrap, services: Services) -> None:
    inbox = _inbox(client)
    base = f"/api/inbound/inboxes/{inbox['id']}/forward_rules"
    made = _rule(
        client,
        inbox,
        {
            "name": "Billing",
            "conditions": [
                {
                    "match_type": "header",
                    "operator": "contains",
                    "value": "urgent",
                    "header_key": "X-Priority-Tag",
                }
            ],
            "destinations": [{"email": "billing@dest.example"}, {"email": "BILLING@dest.example"}],
        },
    )
    assert made.status_code == 201, made.text
    rule = made.json()["data"]
    assert rule["name"] == "Billing" and rule["destinations"] == [{"email": "billing@dest.example"}]
    assert rule["conditions"] == [
        {
            "match_type": "header",
            "operator": "contains",
            "value": "urgent",
            "header_key": "x-priority-tag",
        }
    ]
    assert rule["from"] is None and rule["created_at"] == rule["updated_at"]
    assert client.get(base).json() == {"data": [rule]}
    assert client.get(f"{base}/{rule['id']}").json() == {"data": rule}
    changed = client.patch(
        f"{base}/{rule['id']}", json={"name": "Money", "from": {"email": "fwd@shop.example"}}
    )
    assert changed.json()["data"]["name"] == "Money"
    assert changed.json()["data"]["from"] == {"email": "fwd@shop.example", "name": None}
    assert changed.json()["data"]["destinations"] == rule["destinations"]

    for body, field in (
        ({"name": "", "destinations": [{"email": "a@b.example"}]}, "name"),
        ({"name": "x", "destinations": []}, "destinations"),
        ({"name": "x", "destinations": [{"email": inbox["address"].upper()}]}, "destinations[0]"),
        (
            {
                "name": "x",
                "destinations": [{"email": "a@b.example"}],
                "conditions": [{"match_type": "sender", "operator": "like", "value": "a"}],
            },
            "conditions[0]",
        ),
        (
            {
                "name": "x",
                "destinations": [{"email": "a@b.example"}],
                "conditions": [{"match_type": "header", "operator": "empty"}],
            },
            "conditions[0]",
        ),
        (
            {
                "name": "x",
                "destinations": [{"email": "a@b.example"}],
                "conditions": [{"match_type": "sender", "operator": "equal"}],
            },
            "conditions[0]",
        ),
    ):
        refused = _rule(client, inbox, body)
        assert refused.status_code == 422 and field in refused.json()["errors"], (
            body,
            refused.text,
        )

    other = {"Authorization": f"Bearer {tenant(services)}"}
    reader = {"Authorization": f"Bearer {token_for(services, boot, ('read',))}"}
    assert client.get(f"{base}/{rule['id']}", headers=other).status_code == 404
    assert (
        client.patch(f"{base}/{rule['id']}", json={"name": "y"}, headers=other).status_code == 404
    )
    assert client.get(base, headers=reader).status_code == 200
    assert client.delete(f"{base}/{rule['id']}", headers=reader).status_code == 403
    assert client.delete(f"{base}/{rule['id']}").status_code == 204
    assert client.get(f"{base}/{rule['id']}").status_code == 404
    assert client.get(base).json() == {"data": []}


def test_forward_rules_forward_new_mail_without_loops(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    inbox = _inbox(client)
    to = inbox["address"]
    billing = _rule(
        client,
        inbox,
        {
            "name": "Billing",
            "conditions": [
                {"match_type": "sender", "operator": "ends_with", "value": "@sender.example"},
                {"match_type": "recipient", "operator": "contains", "value": "bob@"},
            ],
            "destinations": [{"email": "billing@dest.example"}, {"email": "blocked@dest.example"}],
        },
    ).json()["data"]
    _rule(
        client,
        inbox,
        {
            "name": "Never",
            "conditions": [
                {"match_type": "header", "operator": "not_empty", "header_key": "X-Nope"}
            ],
            "destinations": [{"email": "never@dest.example"}],
        },
    )
    supp = client.post(
        f"/api/accounts/{boot.account_id}/suppressions",
        json={"email": "blocked@dest.example", "sending_stream": "transactional"},
    )
    assert supp.status_code in (200, 201), supp.text

    _receive(services, inbox, _mail(to, "<f1@sender.example>", "Pay me"))
    _receive(
        services, inbox, _mail(to, "<f2@carol.example>", "Other", sender="carol@carol.example")
    )
    looped = "X-Postroom-Forwarded: 3\r\n"
    _receive(services, inbox, _mail(to, "<f3@sender.example>", "Loop", headers=looped))

    byid = _messages(client, inbox)
    outcomes = byid["<f1@sender.example>"]["forwards"]
    assert [(o["destination"], o["status"]) for o in outcomes] == [
        ("billing@dest.example", "forwarded"),
        ("blocked@dest.example", "rejected"),
    ]
    assert outcomes[0]["rule_id"] == billing["id"] and outcomes[0]["rule_name"] == "Billing"
    assert "suppressed" in outcomes[1]["reason"]
    assert byid["<f2@carol.example>"]["forwards"] == []
    [loop] = byid["<f3@sender.example>"]["forwards"][:1]
    assert loop["status"] == "rejected" and "loop" in loop["reason"]

    sent = _sent(services, outcomes[0]["message_id"])
    assert sent["X-Postroom-Forwarded"] == "1" and sent["Subject"] == "Pay me"
    assert (
        sent["From"].addresses[0].addr_spec == to
        and str(sent["Reply-To"]) == "alice@sender.example"
    )
    assert sent.get_body(("plain",)).get_content().strip() == "Where is my order?"
    rows = services.db.read_sync(
        lambda conn: list(
            conn.execute(
                select(deliveries.c.recipient).where(deliveries.c.id == outcomes[0]["message_id"])
            )
        )
    )
    assert [r.recipient for r in rows] == ["billing@dest.example"]
    # The SDK's get-by-id shows the outcomes too.
    detail = client.get(
        f"/api/inbound/inboxes/{inbox['id']}/messages/{byid['<f1@sender.example>']['id']}"
    )
    assert detail.json()["forwards"] == outcomes

    # For real delivery the forward's From must be verified: rejected, the message kept.
    services.settings.delivery.mode = DeliveryMode.MX
    _receive(services, inbox, _mail(to, "<f4@sender.example>", "Pay again"))
    stored = services.db.read_sync(
        lambda conn: conn.execute(
            select(inbound_messages.c.forwards)
            .where(inbound_messages.c.inbox_id == inbox["id"])
            .order_by(inbound_messages.c.id.desc())
        ).scalar()
    )
    assert stored[0]["status"] == "rejected" and "verified sending domain" in stored[0]["reason"]

    # The folder goes with its inbox's threads, keys, rules and answers' records.
    services.settings.delivery.mode = DeliveryMode.SANDBOX
    first = byid["<f1@sender.example>"]
    answered = client.post(
        f"/api/inbound/inboxes/{inbox['id']}/messages/{first['id']}/reply", json={"text": "ok"}
    )
    assert answered.status_code == 200
    assert client.delete(f"/api/inbound/folders/{inbox['folder_id']}").status_code == 204

    def left(conn: Any) -> list[int]:
        tables = (inbound_threads_t, inbound_thread_keys, inbound_sent, inbound_forward_rules)
        return [
            len(list(conn.execute(select(t).where(t.c.inbox_id == inbox["id"])))) for t in tables
        ]

    assert services.db.read_sync(left) == [0, 0, 0, 0]
