"""Delivery modes per account and per stream: the account's own, its stream's, the default.

A second account is created beside the bootstrap one; its mail and the first account's
leave in the same worker round, each the way of its mode: captured into the account's
inbox (sandbox) or delivered to a real receiver (mx).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from postroom.api.app import create_app
from postroom.config import DeliveryMode
from postroom.domain.streams import Stream
from postroom.services import Services, modes
from postroom.services.accounts import Bootstrap, create_default_inbox, create_token
from postroom.services.dns import DnsPythonResolver
from postroom.storage.repos import accounts as account_repo
from postroom.storage.tables import deliveries, sandbox_messages
from postroom.workers.delivery import DeliveryWorker
from smtppeers import Receivers

MAIL = {
    "from": {"email": "news@unverified.example"},
    "to": [{"email": "ana@dest.example"}],
    "subject": "Hello",
    "text": "Hi.",
}


@pytest.fixture
def mx(services: Services, dns_server: LocalDnsServer) -> Iterator[Receivers]:
    receivers = Receivers()
    receivers.start("127.0.0.2")
    dns_server.add_mx("dest.example", 10, "mx1.dest.example")
    dns_server.add_a("mx1.dest.example", "127.0.0.2")
    services.resolver = DnsPythonResolver(dns_server.address, timeout=1.0)
    cfg = services.settings.delivery
    cfg.port = receivers.port
    cfg.connect_timeout, cfg.command_timeout = 2.0, 5.0
    yield receivers
    receivers.close()


def _second_account(services: Services) -> tuple[int, str]:
    def run(conn: Any) -> tuple[int, str]:
        account_id = account_repo.insert_account(conn, "Staging", services.clock.now())
        create_default_inbox(services, conn, account_id)
        return account_id, create_token(services, conn, account_id, "staging")

    return services.db.write_sync(run)


def _states(services: Services) -> dict[int, list[str]]:
    rows = services.db.read_sync(lambda c: c.execute(select(deliveries)).mappings().all())
    states: dict[int, list[str]] = {}
    for row in rows:
        states.setdefault(int(row["account_id"]), []).append(row["state"])
    return states


def _captured(services: Services) -> int:
    query = select(sandbox_messages.c.id)
    return len(services.db.read_sync(lambda c: c.execute(query).all()))


def test_an_account_in_the_sandbox_beside_one_that_delivers(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    services.settings.delivery.mode = DeliveryMode.MX
    staging_id, staging_token = _second_account(services)
    modes.set_for_account(services, staging_id, DeliveryMode.SANDBOX)

    # The sandboxed account may send from any domain; the delivering one may not.
    staging = client.post(
        "/api/send", json=MAIL, headers={"Authorization": f"Bearer {staging_token}"}
    )
    assert staging.status_code == 200, staging.text
    refused = client.post("/api/send", json=MAIL)
    assert refused.status_code == 401

    # Mail accepted earlier for the first account (then in the sandbox) now goes to MX.
    modes.set_for_account(services, boot.account_id, DeliveryMode.SANDBOX)
    assert client.post("/api/send", json=MAIL).status_code == 200
    modes.set_for_account(services, boot.account_id, None)

    asyncio.run(DeliveryWorker(services).run_once())
    assert _states(services) == {staging_id: ["delivered"], boot.account_id: ["delivered"]}
    assert _captured(services) == 1  # the staging account's, in its inbox
    assert len(mx.primary.received) == 1  # the first account's, at the receiver


def test_a_stream_mode_applies_unless_the_account_has_its_own(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    services.settings.delivery.stream_modes = {"bulk": DeliveryMode.MX}
    assert client.post("/api/send", json=MAIL).status_code == 200  # transactional: sandbox
    with TestClient(create_app(services, Stream.BULK)) as bulk:
        bulk.headers["Authorization"] = f"Bearer {boot.token}"
        assert bulk.post("/api/send", json=MAIL).status_code == 401  # bulk: mx, unverified
        modes.set_for_account(services, boot.account_id, DeliveryMode.SANDBOX)
        assert bulk.post("/api/send", json=MAIL).status_code == 200
    asyncio.run(DeliveryWorker(services).run_once())
    assert _captured(services) == 2
    assert mx.primary.received == []


def test_setting_the_mode_of_an_unknown_account_is_refused(services: Services) -> None:
    with pytest.raises(ValueError, match="no account with id 999"):
        modes.set_for_account(services, 999, DeliveryMode.MX)


def test_resolution_order() -> None:
    from postroom.config import Settings

    settings = Settings()
    settings.delivery.mode = DeliveryMode.RELAY
    settings.delivery.stream_modes = {"bulk": DeliveryMode.SANDBOX}
    assert modes.resolve(settings, "mx", "bulk") is DeliveryMode.MX
    assert modes.resolve(settings, None, "bulk") is DeliveryMode.SANDBOX
    assert modes.resolve(settings, None, "transactional") is DeliveryMode.RELAY
