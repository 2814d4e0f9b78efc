"""Relay mode: every message goes to the configured smarthost, with SMTP AUTH.

The smarthost is an aiosmtpd server on loopback that requires AUTH (allowed without TLS
here: ``auth_require_tls=False``; ``relay_tls = "none"``). Mail is accepted in sandbox mode
and the mode switched to ``relay`` before delivery (see test_mx_delivery.py).
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword
from aiosmtpd.smtp import Session as SmtpSession
from sqlalchemy import select
from starlette.testclient import TestClient

from postroom.config import DeliveryMode
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import deliveries, events
from postroom.workers.delivery import DeliveryWorker


class Smarthost:
    def __init__(self) -> None:
        self.received: list[tuple[str, list[str], bytes]] = []
        self.logins: list[str] = []

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: SmtpSession, envelope: Envelope
    ) -> str:
        self.received.append(
            (str(envelope.mail_from), list(envelope.rcpt_tos), envelope.original_content or b"")
        )
        return "250 2.0.0 Ok: relayed"

    def authenticate(
        self, server: SMTP, session: SmtpSession, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"relay-user",
            b"s3cret",
        )
        if ok:
            self.logins.append(data.login.decode())
        return AuthResult(success=ok)


def _start_smarthost(
    services: Services, tls: str, context: ssl.SSLContext | None = None
) -> tuple[Smarthost, Controller]:
    """An AUTH-requiring smarthost on a free port, and delivery settings pointing at it.

    aiosmtpd only counts STARTTLS as TLS for its ``auth_require_tls``, hence False: with
    an ``ssl_context`` (implicit TLS) the connection is TLS from the start anyway.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    handler = Smarthost()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=handler.authenticate,
        auth_require_tls=False,
        ssl_context=context,
    )
    controller.start()
    cfg = services.settings.delivery
    cfg.relay_host, cfg.relay_port, cfg.relay_tls = "127.0.0.1", port, tls
    cfg.relay_username, cfg.relay_password = "relay-user", "s3cret"
    cfg.connect_timeout, cfg.command_timeout = 2.0, 5.0
    return handler, controller


@pytest.fixture
def smarthost(services: Services) -> Iterator[Smarthost]:
    handler, controller = _start_smarthost(services, "none")
    yield handler
    controller.stop()


def test_relay_mode_delivers_through_the_smarthost_with_auth(
    client: TestClient, boot: Bootstrap, services: Services, smarthost: Smarthost
) -> None:
    mail = {
        "from": {"email": "orders@shop.example"},
        "to": [{"email": "ana@dest.example"}, {"email": "bo@elsewhere.example"}],
        "subject": "Relayed",
        "text": "Via the smarthost.",
    }
    assert client.post("/api/send", json=mail).status_code == 200
    services.settings.delivery.mode = DeliveryMode.RELAY
    assert asyncio.run(DeliveryWorker(services).run_once()) == 2

    rows = services.db.read_sync(lambda c: c.execute(select(deliveries)).mappings().all())
    assert {r["state"] for r in rows} == {"delivered"}
    query = select(events.c.details).where(events.c.kind == "delivery")
    details = services.db.read_sync(lambda c: c.execute(query).scalars().all())
    assert [d["recipient_mx"] for d in details] == ["127.0.0.1", "127.0.0.1"]
    # One transaction per recipient domain, over one authenticated session.
    assert sorted(r for _, rcpts, _ in smarthost.received for r in rcpts) == [
        "ana@dest.example",
        "bo@elsewhere.example",
    ]
    assert smarthost.logins == ["relay-user"]
    assert all(b"Subject: Relayed" in raw for _, _, raw in smarthost.received)


def test_wrong_smarthost_credentials_defer_rather_than_bounce(
    client: TestClient, boot: Bootstrap, services: Services, smarthost: Smarthost
) -> None:
    services.settings.delivery.relay_password = "wrong"
    services.settings.delivery.command_timeout = 1.0  # aiosmtpd stalls after a failed AUTH
    mail = {
        "from": {"email": "o@shop.example"},
        "to": [{"email": "a@d.example"}],
        "text": "x",
        "subject": "x",
    }
    assert client.post("/api/send", json=mail).status_code == 200
    services.settings.delivery.mode = DeliveryMode.RELAY
    asyncio.run(DeliveryWorker(services).run_once())
    [row] = services.db.read_sync(lambda c: c.execute(select(deliveries)).mappings().all())
    assert row["state"] == "queued" and row["attempts"] == 1
    assert smarthost.received == []


def test_relay_over_implicit_tls_verifies_the_smarthost_and_authenticates(
    client: TestClient, boot: Bootstrap, services: Services, tmp_path: Path
) -> None:
    # A port-465 style smarthost: TLS from the first byte, its certificate issued by a
    # private CA that relay_ca_file names.
    ca = trustme.CA()
    ca_file = tmp_path / "relay-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    handler, controller = _start_smarthost(services, "implicit", server_context)
    try:
        cfg = services.settings.delivery
        cfg.relay_ca_file = str(ca_file)
        mail = {
            "from": {"email": "o@shop.example"},
            "to": [{"email": "a@d.example"}],
            "subject": "Over 465",
            "text": "TLS all the way.",
        }
        assert client.post("/api/send", json=mail).status_code == 200
        cfg.mode = DeliveryMode.RELAY
        asyncio.run(DeliveryWorker(services).run_once())
        rows = services.db.read_sync(lambda c: c.execute(select(deliveries)).mappings().all())
        assert [r["state"] for r in rows] == ["delivered"], rows[0]["last_response"]
        assert handler.logins == ["relay-user"]
        query = select(events.c.details).where(events.c.kind == "delivery")
        [details] = services.db.read_sync(lambda c: c.execute(query).scalars().all())
        assert str(details["tls"]).startswith("TLSv1")

        # The same smarthost with an untrusted certificate: deferred, nothing sent.
        cfg.relay_ca_file = None
        handler.received.clear()
        cfg.mode = DeliveryMode.SANDBOX
        assert client.post("/api/send", json=mail).status_code == 200
        cfg.mode = DeliveryMode.RELAY
        asyncio.run(DeliveryWorker(services).run_once())
        rows = services.db.read_sync(lambda c: c.execute(select(deliveries)).mappings().all())
        assert sorted(r["state"] for r in rows) == ["delivered", "queued"]
        assert handler.received == []
    finally:
        controller.stop()
