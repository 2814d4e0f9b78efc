"""Inbound email end to end: folders and inboxes through the API, real SMTP to the inbound
listener, SPF/DKIM/DMARC against a real name server on loopback, the stored message
listed and fetched, the inbound_received event, size limits and spam refusals."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient
from test_domains_api import tenant, token_for

from dnsserver import LocalDnsServer
from postroom.domain import dkim as dkim_signer
from postroom.inbound import listener
from postroom.mta import listen
from postroom.services import Services, inbound_mail
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import events

SENDER_DOMAIN = "sender.example"


@pytest.fixture
def dns(services: Services, dns_server: LocalDnsServer) -> LocalDnsServer:
    services.settings.dns.server = dns_server.address
    services.settings.dns.timeout = 2.0
    services.resolver = None
    return dns_server


def _inbox(client: TestClient, name: str = "Support tickets") -> dict[str, Any]:
    folder = client.post("/api/inbound/folders", json={"name": f"F {name}"})
    assert folder.status_code == 201, folder.text
    inbox = client.post(f"/api/inbound/folders/{folder.json()['id']}/inboxes", json={"name": name})
    assert inbox.status_code == 201, inbox.text
    found: dict[str, Any] = inbox.json()
    return found


def _message(
    to: str,
    *,
    sender: str = f"alice@{SENDER_DOMAIN}",
    subject: str = "Hello",
    extra: str = "",
    body: str | None = None,
) -> bytes:
    content = body or (
        "Content-Type: multipart/mixed; boundary=B\r\n"
        "\r\n"
        "--B\r\n"
        "Content-Type: multipart/alternative; boundary=A\r\n"
        "\r\n"
        "--A\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "Hi there\r\n"
        "--A\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "\r\n"
        "<p>Hi <b>there</b></p>\r\n"
        "--A--\r\n"
        "--B\r\n"
        "Content-Type: image/png\r\n"
        'Content-Disposition: inline; filename="logo.png"\r\n'
        "Content-ID: <logo@sender.example>\r\n"
        "Content-Transfer-Encoding: base64\r\n"
        "\r\n"
        "iVBORw0KGgo=\r\n"
        "--B--\r\n"
    )
    return (
        f"From: Alice <{sender}>\r\n"
        f"To: {to}\r\n"
        "Cc: Bob <bob@elsewhere.example>\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n"
        f"Message-ID: <abc@{SENDER_DOMAIN}>\r\n"
        "References: <r1@x.example> <r2@x.example>\r\n"
        "MIME-Version: 1.0\r\n"
        f"{extra}"
        f"{content}"
    ).encode()


async def _session(
    port: int, mail_from: str, rcpts: list[str], raw: bytes
) -> tuple[list[int], int | None, str]:
    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, timeout=10, local_hostname="mx.sender.example"
    )
    await smtp.connect()
    try:
        await smtp.mail(mail_from)
        codes = []
        for rcpt in rcpts:
            try:
                codes.append((await smtp.rcpt(rcpt)).code)
            except aiosmtplib.SMTPRecipientRefused as exc:
                codes.append(exc.code)
        if 250 not in codes:
            return codes, None, ""
        try:
            reply = await smtp.data(raw)
            return codes, reply.code, reply.message
        except aiosmtplib.SMTPResponseException as exc:
            return codes, exc.code, exc.message
    finally:
        smtp.close()


def _send(
    services: Services, rcpts: list[str], raw: bytes, mail_from: str = f"alice@{SENDER_DOMAIN}"
) -> tuple[list[int], int | None, str]:
    async def run() -> tuple[list[int], int | None, str]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        server = await listener.start(services, sock)
        try:
            return await _session(int(sock.getsockname()[1]), mail_from, rcpts, raw)
        finally:
            await listen.stop([server])

    return asyncio.run(run())


def _publish(dns: LocalDnsServer, *, spf: str, dmarc: str | None) -> dkim_signer.DkimKey:
    dns.add_txt(SENDER_DOMAIN, spf)
    if dmarc is not None:
        dns.add_txt(f"_dmarc.{SENDER_DOMAIN}", dmarc)
    key = dkim_signer.DkimKey("s1", SENDER_DOMAIN, "rsa-sha256", dkim_signer.generate_rsa(2048))
    dns.add_txt(f"s1._domainkey.{SENDER_DOMAIN}", dkim_signer.public_record(key.private_key))
    return key


def test_folders_and_inboxes_with_their_address(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    inbox = _inbox(client)
    local, _, domain = inbox["address"].partition("@")
    assert domain == "inbound.mail.postroom.test"
    assert local.startswith("support-tickets-") and len(local) == len("support-tickets-") + 8
    assert inbox["mx"]["value"] == "mail.postroom.test" and inbox["mx"]["type"] == "MX"
    folder_id = inbox["folder_id"]
    account = f"/api/accounts/{boot.account_id}/inbound"
    assert client.get(f"{account}/folders/{folder_id}/inboxes").json() == [inbox]
    renamed = client.patch(
        f"/api/inbound/folders/{folder_id}/inboxes/{inbox['id']}", json={"name": "Help"}
    )
    assert renamed.json()["name"] == "Help" and renamed.json()["address"] == inbox["address"]
    assert client.get("/api/inbound/setup").json()["inbound_domain"] == "inbound.mail.postroom.test"
    dup = client.post("/api/inbound/folders", json={"name": "F Support tickets"})
    assert dup.status_code == 422 and dup.json() == {"errors": {"name": ["has already been taken"]}}
    assert client.post("/api/inbound/folders", json={"name": ""}).status_code == 422

    other = {"Authorization": f"Bearer {tenant(services)}"}
    assert client.get(f"/api/inbound/folders/{folder_id}", headers=other).status_code == 404
    assert (
        client.get(f"/api/inbound/inboxes/{inbox['id']}/messages", headers=other).status_code == 404
    )
    reader = {"Authorization": f"Bearer {token_for(services, boot, ('read',))}"}
    assert client.get("/api/inbound/folders", headers=reader).status_code == 200
    assert (
        client.post("/api/inbound/folders", json={"name": "X"}, headers=reader).status_code == 403
    )

    assert client.delete(f"{account}/folders/{folder_id}").status_code == 204
    assert client.get(f"/api/inbound/folders/{folder_id}").status_code == 404


def test_received_mail_is_parsed_authenticated_stored_and_listed(
    client: TestClient, boot: Bootstrap, services: Services, dns: LocalDnsServer
) -> None:
    key = _publish(dns, spf="v=spf1 ip4:127.0.0.1 -all", dmarc="v=DMARC1; p=reject")
    inbox = _inbox(client)
    raw = dkim_signer.sign(_message(inbox["address"]), [key])
    codes, data, _ = _send(services, [inbox["address"].upper()], raw)
    assert codes == [250] and data == 250

    listed = client.get(f"/api/inbound/inboxes/{inbox['id']}/messages").json()
    assert listed["total_count"] == 1 and listed["last_id"] is None
    [item] = listed["data"]
    assert item["from"] == f"alice@{SENDER_DOMAIN}"
    assert item["to"] == [inbox["address"]] and item["cc"] == ["bob@elsewhere.example"]
    assert item["subject"] == "Hello" and item["message_id"] == f"<abc@{SENDER_DOMAIN}>"
    assert item["references"] == ["<r1@x.example>", "<r2@x.example>"]
    assert item["headers"]["mime-version"] == "1.0" and item["size"] == len(raw)
    assert item["text_size"] > 0 and item["html_size"] > 0
    assert item["attachments"] == [
        {
            "attachment_id": "att-1",
            "size": 8,
            "filename": "logo.png",
            "content_type": "image/png",
            "content_disposition": "inline",
            "content_id": "logo@sender.example",
        }
    ]
    auth = item["authentication"]
    assert auth["spf"] == {"result": "pass", "domain": SENDER_DOMAIN}
    assert auth["dkim"]["result"] == "pass"
    assert auth["dkim"]["signatures"] == [
        {"domain": SENDER_DOMAIN, "selector": "s1", "result": "pass"}
    ]
    assert auth["dmarc"] == {"result": "pass", "policy": "reject", "domain": SENDER_DOMAIN}
    assert item["spam_score"] == 0.0 and item["spam_rules"] == []

    one = client.get(
        f"/api/accounts/{boot.account_id}/inbound/inboxes/{inbox['id']}/messages/{item['id']}"
    ).json()
    assert (
        one["text_body"].strip() == "Hi there"
        and one["html_body"].strip() == "<p>Hi <b>there</b></p>"
    )
    raw_back = client.get(one["raw_message_url"].removeprefix("http://testserver"))
    assert raw_back.status_code == 200 and raw_back.content == raw
    assert raw_back.headers["content-type"].startswith("message/rfc822")
    logo = client.get(one["attachments"][0]["download_url"].removeprefix("http://testserver"))
    assert logo.status_code == 200 and logo.content == b"\x89PNG\r\n\x1a\n"
    assert logo.headers["content-type"] == "application/octet-stream"

    # One inbound_received event, in the transaction that stored the message.
    query = select(events.c.kind, events.c.details, events.c.account_id).where(
        events.c.kind == "inbound_received"
    )
    rows = services.db.read_sync(lambda c: c.execute(query).all())
    assert [(r[1], r[2]) for r in rows] == [
        ({"inbox_id": inbox["id"], "inbound_message_id": item["id"]}, boot.account_id)
    ]

    gone = client.delete(f"/api/inbound/inboxes/{inbox['id']}/messages/{item['id']}")
    assert gone.status_code == 204
    assert (
        client.get(f"/api/inbound/inboxes/{inbox['id']}/messages/{item['id']}").status_code == 404
    )


def test_unknown_addresses_size_limit_and_paging(
    client: TestClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.settings.inbound.check_authentication = False
    inbox = _inbox(client)
    codes, data, _ = _send(services, ["nobody-12345678@inbound.mail.postroom.test"], b"x")
    assert codes == [550] and data is None
    services.settings.inbound.max_message_bytes = 2000
    big = _message(
        inbox["address"], body="Content-Type: text/plain\r\n\r\n" + ("x" * 70 + "\r\n") * 40
    )
    assert _send(services, [inbox["address"]], big)[1] == 552

    monkeypatch.setattr(inbound_mail, "PAGE_SIZE", 2)
    services.settings.inbound.max_messages_per_inbox = 4
    for n in range(5):
        assert (
            _send(services, [inbox["address"]], _message(inbox["address"], subject=f"n{n}"))[1]
            == 250
        )
    base = f"/api/inbound/inboxes/{inbox['id']}/messages"
    first = client.get(base).json()
    assert first["total_count"] == 4  # the oldest went: the inbox keeps 4
    assert [m["subject"] for m in first["data"]] == ["n4", "n3"]
    second = client.get(base, params={"last_id": first["last_id"]}).json()
    assert [m["subject"] for m in second["data"]] == ["n2", "n1"] and second["last_id"] is None


def test_spam_and_dmarc_reject_are_refused(
    client: TestClient, services: Services, dns: LocalDnsServer
) -> None:
    _publish(dns, spf="v=spf1 ip4:192.0.2.1 -all", dmarc="v=DMARC1; p=reject")
    inbox = _inbox(client)
    # SPF fails for 127.0.0.1, no DKIM signature: DMARC fails and the domain says reject.
    codes, data, message = _send(services, [inbox["address"]], _message(inbox["address"]))
    assert (codes, data) == ([250], 550) and "DMARC" in message

    services.settings.inbound.enforce_dmarc_reject = False
    # Without enforcement: SPF_FAIL (3) + DMARC_FAIL (3) = 6 ≥ 5: refused as spam.
    codes, data, message = _send(services, [inbox["address"]], _message(inbox["address"]))
    assert data == 550 and "spam" in message and "SPF_FAIL" in message

    services.settings.inbound.spam_threshold = 10.0
    assert _send(services, [inbox["address"]], _message(inbox["address"]))[1] == 250
    [item] = client.get(f"/api/inbound/inboxes/{inbox['id']}/messages").json()["data"]
    assert item["spam_score"] == 6.0 and item["spam_rules"] == ["SPF_FAIL", "DMARC_FAIL"]
    assert item["authentication"]["dmarc"]["result"] == "fail"
