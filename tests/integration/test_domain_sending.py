"""Sending as a domain: only verified domains send for real, and what leaves is signed.

A domain is created through the API, its records are published in a real name server
on loopback (tests/dnsserver.py) and verified. Then:
- in ``mx`` delivery mode, a From on that domain is accepted and any other is 401;
- in ``sandbox`` mode any From is accepted, and the captured message carries an RSA and
  an Ed25519 DKIM signature that dkimpy verifies against the same name server.
"""

from __future__ import annotations

import asyncio
from typing import Any

import dkim as dkimpy  # type: ignore[import-untyped]
import pytest
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from postroom.config import DeliveryMode
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.services.dns import DnsPythonResolver
from postroom.workers.delivery import DeliveryWorker


def _mail(sender: str) -> dict[str, Any]:
    return {
        "from": {"email": sender, "name": "Shop"},
        "to": [{"email": "ana@example.org"}],
        "subject": "Your order",
        "text": "Shipped.",
        "html": "<p>Shipped.</p>",
        "headers": {"List-Unsubscribe": "<mailto:unsub@shop.example>"},
    }


@pytest.fixture
def verified(
    client: TestClient, boot: Bootstrap, services: Services, dns_server: LocalDnsServer
) -> dict[str, Any]:
    """shop.example, created, published in the zone and verified."""
    services.settings.domains.rsa_bits = 1024  # key generation speed; signing is the same
    services.resolver = DnsPythonResolver(dns_server.address, timeout=1.0)
    base = f"/api/accounts/{boot.account_id}/sending_domains"
    domain = client.post(base, json={"sending_domain": {"domain_name": "shop.example"}}).json()
    dns_server.publish(domain["dns_records"])
    checked: dict[str, Any] = client.post(f"{base}/{domain['id']}/verify").json()
    assert checked["dns_verified"] is True, checked["dns_records"]
    return checked


def test_mx_mode_accepts_only_verified_from_domains(
    client: TestClient, services: Services, verified: dict[str, Any]
) -> None:
    """In mx mode a verified From is accepted; an unverified one is 401, in both APIs."""
    services.settings.delivery.mode = DeliveryMode.MX
    assert client.post("/api/send", json=_mail("orders@shop.example")).status_code == 200
    refused = client.post("/api/send", json=_mail("orders@other.example"))
    assert refused.status_code == 401
    assert refused.json() == {"success": False, "errors": ["Unauthorized"]}
    batch = client.post(
        "/api/batch", json={"requests": [_mail("orders@SHOP.example"), _mail("x@other.example")]}
    ).json()
    assert [r["success"] for r in batch["responses"]] == [True, False]
    assert batch["responses"][1]["errors"] == ["Unauthorized"]


def test_display_name_tricks_do_not_pass_the_domain_check(
    client: TestClient, services: Services, verified: dict[str, Any]
) -> None:
    """The addr-spec's domain decides: a verified domain in the name does not help."""
    services.settings.delivery.mode = DeliveryMode.MX
    mail = _mail("evil@attacker.example")
    mail["from"]["name"] = "orders@shop.example"
    assert client.post("/api/send", json=mail).status_code == 401


def test_sandbox_mode_accepts_any_from(client: TestClient, services: Services) -> None:
    assert services.settings.delivery.mode is DeliveryMode.SANDBOX
    assert client.post("/api/send", json=_mail("anyone@unverified.example")).status_code == 200


def test_captured_mail_is_dkim_signed_and_verifies(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    dns_server: LocalDnsServer,
    verified: dict[str, Any],
) -> None:
    """Delivered (captured) mail carries RSA and Ed25519 signatures that verify in DNS."""
    client.post("/api/send", json=_mail("orders@shop.example"))
    asyncio.run(DeliveryWorker(services).run_once())
    inbox = f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages"
    [message] = client.get(inbox).json()
    raw = client.get(f"{inbox}/{message['id']}/body.raw").content
    assert raw.count(b"DKIM-Signature:") == 2
    dnsfunc = dns_server.dkim_dnsfunc()

    signed = dkimpy.DKIM(raw)
    for index in (0, 1):
        assert signed.verify(idx=index, dnsfunc=dnsfunc)
    assert b"list-unsubscribe" in raw.split(b"\r\n\r\n", 1)[0].lower()


def test_unverified_domain_mail_is_captured_unsigned(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    client.post("/api/send", json=_mail("orders@nowhere.example"))
    asyncio.run(DeliveryWorker(services).run_once())
    inbox = f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages"
    [message] = client.get(inbox).json()
    raw = client.get(f"{inbox}/{message['id']}/body.raw").content
    assert b"DKIM-Signature" not in raw
