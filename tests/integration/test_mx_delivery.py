"""MX delivery end to end: real DNS (tests/dnsserver.py) and real SMTP receivers.

Two aiosmtpd receivers listen on 127.0.0.2 and 127.0.0.3 (Linux routes all of 127/8 to
loopback) on one free port; the name server publishes MX records pointing at hosts with
those addresses, and ``delivery.port`` sends there instead of 25.

Mail is accepted in sandbox mode (any From is accepted) and the mode is switched to
``mx`` afterwards: acceptance checks the mode when mail arrives, the worker when it
delivers, so the tests need no verified sender domain, except the DKIM one, which
verifies ``shop.example`` the way test_domain_sending.py does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import dkim as dkimpy  # type: ignore[import-untyped]
import pytest
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from postroom.clock import FrozenClock
from postroom.config import DeliveryMode
from postroom.domain import returnpath
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.services.dns import DnsPythonResolver
from postroom.storage.tables import deliveries, events
from postroom.workers.delivery import DeliveryWorker
from smtppeers import Receivers


@pytest.fixture
def mx(services: Services, dns_server: LocalDnsServer) -> Iterator[Receivers]:
    receivers = Receivers()
    receivers.start("127.0.0.2")
    receivers.start("127.0.0.3")
    dns_server.add_mx("dest.example", 10, "mx1.dest.example")
    dns_server.add_a("mx1.dest.example", "127.0.0.2")
    dns_server.add_mx("backup.example", 10, "mxa.backup.example")
    dns_server.add_mx("backup.example", 20, "mxb.backup.example")
    dns_server.add_a("mxa.backup.example", "127.0.0.2")
    dns_server.add_a("mxb.backup.example", "127.0.0.3")
    dns_server.add_mx("nomail.example", 0, ".")
    services.resolver = DnsPythonResolver(dns_server.address, timeout=1.0)
    services.clock = FrozenClock()
    cfg = services.settings.delivery
    cfg.port = receivers.port
    cfg.connect_timeout, cfg.command_timeout = 2.0, 5.0
    cfg.retry_first_delay, cfg.retry_max_delay, cfg.retry_window = 1.0, 60.0, 5.0
    yield receivers
    receivers.close()


def _mail(*to: str, sender: str = "orders@shop.example") -> dict[str, Any]:
    return {
        "from": {"email": sender, "name": "Shop"},
        "to": [{"email": address} for address in to],
        "subject": "Your order",
        "text": "Shipped.",
    }


def _send(client: TestClient, services: Services, *to: str) -> list[str]:
    response = client.post("/api/send", json=_mail(*to))
    assert response.status_code == 200, response.text
    services.settings.delivery.mode = DeliveryMode.MX  # see the module docstring
    ids: list[str] = response.json()["message_ids"]
    return ids


def _rows(services: Services) -> dict[str, dict[str, Any]]:
    rows = services.db.read_sync(lambda c: c.execute(select(deliveries)).mappings().all())
    return {row["recipient"]: dict(row) for row in rows}


def _events(services: Services, kind: str) -> dict[str, dict[str, Any]]:
    query = select(events).where(events.c.kind == kind).order_by(events.c.id)
    rows = services.db.read_sync(lambda c: c.execute(query).mappings().all())
    return {row["recipient"]: dict(row["details"]) for row in rows}


def _round(worker: DeliveryWorker) -> int:
    return asyncio.run(worker.run_once())


def test_accepted_by_the_mx_is_delivered_signed_with_a_verp_return_path(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    dns_server: LocalDnsServer,
    mx: Receivers,
) -> None:
    services.settings.domains.rsa_bits = 1024
    base = f"/api/accounts/{boot.account_id}/sending_domains"
    domain = client.post(base, json={"sending_domain": {"domain_name": "shop.example"}}).json()
    dns_server.publish(domain["dns_records"])
    assert client.post(f"{base}/{domain['id']}/verify").json()["dns_verified"] is True

    [delivery_id] = _send(client, services, "ana@dest.example")
    assert _round(DeliveryWorker(services)) == 1

    assert _rows(services)["ana@dest.example"]["state"] == "delivered"
    details = _events(services, "delivery")["ana@dest.example"]
    assert details["recipient_mx"] == "mx1.dest.example"
    assert details["response"].startswith("250 ")
    assert details["sending_ip"] == "127.0.0.1"
    [(mail_from, rcpts, raw)] = mx.primary.received
    assert rcpts == ["ana@dest.example"]
    key = services.get_sealer().derive("return-path")
    label = services.settings.domains.return_path_label
    assert returnpath.decode(mail_from, key=key, label=label) == delivery_id
    assert raw.count(b"DKIM-Signature:") == 2
    dnsfunc = dns_server.dkim_dnsfunc()

    assert dkimpy.DKIM(raw).verify(idx=0, dnsfunc=dnsfunc)


def test_one_recipient_bounces_and_the_other_is_delivered(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    mx.primary.unknown.add("gone@dest.example")
    _send(client, services, "gone@dest.example", "ana@dest.example")
    _round(DeliveryWorker(services))
    rows = _rows(services)
    assert rows["gone@dest.example"]["state"] == "bounced"
    assert rows["ana@dest.example"]["state"] == "delivered"
    bounce = _events(services, "bounce")["gone@dest.example"]
    assert bounce["bounce_category"] == "bad_mailbox"
    assert bounce["response_code"] == 550
    assert bounce["enhanced_status"] == "5.1.1"
    assert bounce["recipient_mx"] == "mx1.dest.example"
    assert list(_events(services, "delivery")) == ["ana@dest.example"]
    [(_, rcpts, _)] = mx.primary.received  # one transaction carried both recipients
    assert rcpts == ["ana@dest.example"]


def test_a_deferral_is_retried_and_then_delivered(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    mx.primary.defer_data = 1
    _send(client, services, "ana@dest.example")
    worker = DeliveryWorker(services)
    _round(worker)
    row = _rows(services)["ana@dest.example"]
    assert row["state"] == "queued" and row["attempts"] == 1
    assert row["next_attempt_at"] > services.clock.now()
    soft = _events(services, "soft_bounce")["ana@dest.example"]
    assert soft["response_code"] == 451 and soft["bounce_category"] == "other"
    assert _round(worker) == 0  # not due yet
    assert isinstance(services.clock, FrozenClock)
    services.clock.advance(2)
    assert _round(worker) == 1
    assert _rows(services)["ana@dest.example"]["state"] == "delivered"
    assert len(mx.primary.received) == 1


def test_deferred_past_the_retry_window_fails(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    mx.primary.always_defer = True
    _send(client, services, "ana@dest.example")
    worker = DeliveryWorker(services)
    clock = services.clock
    assert isinstance(clock, FrozenClock)
    rounds = 0
    while _rows(services)["ana@dest.example"]["state"] == "queued" and rounds < 10:
        _round(worker)
        clock.advance(2)
        rounds += 1
    row = _rows(services)["ana@dest.example"]
    assert row["state"] == "failed"
    assert rounds >= 2
    final = _events(services, "bounce")["ana@dest.example"]
    assert final["expired"] is True and final["response_code"] == 451


def test_an_unreachable_first_mx_falls_back_to_the_second(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    mx.stop("127.0.0.2")
    _send(client, services, "bo@backup.example")
    _round(DeliveryWorker(services))
    assert _rows(services)["bo@backup.example"]["state"] == "delivered"
    assert _events(services, "delivery")["bo@backup.example"]["recipient_mx"] == (
        "mxb.backup.example"
    )
    assert len(mx.secondary.received) == 1


def test_a_null_mx_domain_bounces_as_bad_domain(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    _send(client, services, "x@nomail.example")
    _round(DeliveryWorker(services))
    assert _rows(services)["x@nomail.example"]["state"] == "bounced"
    assert _events(services, "bounce")["x@nomail.example"]["bounce_category"] == "bad_domain"


def test_unknown_sites_get_the_configured_limits(services: Services) -> None:
    """Sites outside the built-in table are shaped by the delivery settings."""
    from postroom.mta.deliver import MxEngine

    services.settings.delivery.mode = DeliveryMode.MX
    services.settings.delivery.site_messages_per_minute = 6000
    services.settings.delivery.site_max_connections = 3
    throttle = MxEngine(services).throttles.for_site("mx.unknown-site.example")
    assert throttle.effective_rate == 6000
    assert throttle.effective_connections == 3


def test_open_connections_are_reported_per_site_during_a_round(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    """While a round talks to an MX, the worker reports that connection under its site."""
    _send(client, services, "ana@dest.example")
    worker = DeliveryWorker(services)
    seen: list[dict[str, int]] = []
    original = mx.primary.handle_DATA

    async def spy(server: SMTP, session: SmtpSession, envelope: Envelope) -> str:
        seen.append(worker.open_connections())
        return await original(server, session, envelope)

    mx.primary.handle_DATA = spy  # type: ignore[method-assign]
    assert _round(worker) == 1
    assert seen == [{"dest.example": 1}]
    assert worker.open_connections() == {}


def test_the_mailbox_provider_is_read_from_the_mx_set(
    client: TestClient, services: Services, dns_server: LocalDnsServer, mx: Receivers
) -> None:
    # Our name server answers for Google's MX host name too, pointing it at a receiver.
    dns_server.add_mx("acme.example", 10, "aspmx.l.google.com")
    dns_server.add_a("aspmx.l.google.com", "127.0.0.2")
    mx.primary.unknown.add("gone@acme.example")
    _send(client, services, "ana@acme.example", "gone@acme.example", "bo@dest.example")
    _round(DeliveryWorker(services))
    delivered = _events(services, "delivery")
    assert delivered["ana@acme.example"]["email_service_provider"] == "Google Workspace"
    assert delivered["bo@dest.example"]["email_service_provider"] == "Other"
    bounce = _events(services, "bounce")["gone@acme.example"]
    assert bounce["email_service_provider"] == "Google Workspace"
