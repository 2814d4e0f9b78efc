"""The delivery engine's shaping: concurrent lanes, throttle postponement, IP pools and
warm-up, retry windows per stream, and MTA-STS, against real receivers and DNS.

Receivers (tests/smtppeers.py) listen on 127.0.0.2 and 127.0.0.3; sending addresses of
IP pools are other loopback addresses (127.0.0.1, 127.0.0.4, 127.0.0.5), which Linux lets
a socket bind to, so the receiver sees which one a message left from.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from httpsserver import LocalHttpsServer
from postroom.api.app import create_app
from postroom.clock import FrozenClock, SystemClock
from postroom.config import DeliveryMode, IpPoolSettings, SourceIpSettings
from postroom.domain.streams import Stream
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.services.dns import DnsPythonResolver
from postroom.storage.repos import accounts as account_repo
from postroom.storage.repos import ipvolume
from postroom.storage.tables import deliveries, events
from postroom.workers.delivery import DeliveryWorker
from smtppeers import Receivers, postfix_sink

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def _route(services: Services, dns_server: LocalDnsServer, receivers: Receivers) -> None:
    dns_server.add_mx("dest.example", 10, "mx1.dest.example")
    dns_server.add_a("mx1.dest.example", "127.0.0.2")
    services.resolver = DnsPythonResolver(dns_server.address, timeout=1.0)
    services.clock = FrozenClock(NOW)
    cfg = services.settings.delivery
    cfg.port = receivers.port
    cfg.connect_timeout, cfg.command_timeout = 2.0, 5.0
    cfg.retry_first_delay, cfg.retry_max_delay = 60.0, 600.0


@pytest.fixture
def mx(services: Services, dns_server: LocalDnsServer) -> Iterator[Receivers]:
    receivers = Receivers()
    receivers.start("127.0.0.2")
    _route(services, dns_server, receivers)
    yield receivers
    receivers.close()


def _send(client: TestClient, count: int, domain: str = "dest.example") -> list[str]:
    """``count`` single-recipient messages (each its own SMTP transaction)."""
    ids: list[str] = []
    for i in range(count):
        mail = {
            "from": {"email": "orders@shop.example"},
            "to": [{"email": f"user{i}@{domain}"}],
            "subject": f"Order {i}",
            "text": "Shipped.",
        }
        response = client.post("/api/send", json=mail)
        assert response.status_code == 200, response.text
        ids += response.json()["message_ids"]
    return ids


def _deliver(services: Services, rounds: int = 1) -> None:
    services.settings.delivery.mode = DeliveryMode.MX  # accepted in sandbox mode, see above
    worker = DeliveryWorker(services)
    for _ in range(rounds):
        asyncio.run(worker.run_once())


def _rows(services: Services) -> list[dict[str, Any]]:
    query = select(deliveries).order_by(deliveries.c.created_at)
    return [dict(r) for r in services.db.read_sync(lambda c: c.execute(query).mappings().all())]


def _events(services: Services, kind: str) -> list[dict[str, Any]]:
    query = select(events.c.details).where(events.c.kind == kind)
    return list(services.db.read_sync(lambda c: c.execute(query).scalars().all()))


def _states(services: Services) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in _rows(services):
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return counts


# --- lanes and throttles


def test_a_busy_site_gets_several_connections_up_to_its_limit(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    services.settings.delivery.site_max_connections = 3
    mx.primary.delay = 0.05  # replies take a while, so lanes overlap
    _send(client, 40)
    _deliver(services)
    assert _states(services) == {"delivered": 40}
    assert mx.primary.most_sessions == 3
    assert len(mx.primary.received) == 40


def test_a_light_site_shares_one_connection(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    _send(client, 5)
    _deliver(services)
    assert _states(services) == {"delivered": 5}
    assert mx.primary.most_sessions == 1


def test_what_the_site_cannot_take_this_round_is_postponed_without_an_attempt(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    cfg = services.settings.delivery
    cfg.site_messages_per_minute = 60.0  # one message a second, a burst of one
    cfg.round_seconds = 0.3
    _send(client, 4)
    _deliver(services)
    rows = _rows(services)
    assert [r["state"] for r in rows].count("delivered") == 1
    waiting = [r for r in rows if r["state"] == "queued"]
    assert len(waiting) == 3
    assert all(r["attempts"] == 0 and r["lease_owner"] is None for r in waiting)
    assert all(r["next_attempt_at"] > NOW for r in waiting)
    assert _events(services, "soft_bounce") == []  # not a failure: nothing was tried


# --- IP pools and warm-up


def _pool(*members: tuple[str, int, date | None]) -> IpPoolSettings:
    return IpPoolSettings(
        addresses=[SourceIpSettings(address=a, weight=w, warmup_start=s) for a, w, s in members]
    )


def test_a_pool_spreads_mail_over_its_addresses_and_events_name_them(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    services.settings.delivery.ip_pools = {
        "default": _pool(("127.0.0.1", 1, None), ("127.0.0.4", 3, None))
    }
    _send(client, 60)
    _deliver(services)
    assert _states(services) == {"delivered": 60}
    peers = mx.primary.peers
    assert set(peers) == {"127.0.0.1", "127.0.0.4"}
    assert peers.count("127.0.0.4") > peers.count("127.0.0.1")  # weight 3 vs 1
    sending = sorted(d["sending_ip"] for d in _events(services, "delivery"))
    assert sending == sorted(peers)


def test_an_accounts_own_pool_wins_over_the_default(
    client: TestClient, boot: Bootstrap, services: Services, mx: Receivers
) -> None:
    services.settings.delivery.ip_pools = {
        "default": _pool(("127.0.0.1", 1, None)),
        "dedicated": _pool(("127.0.0.5", 1, None)),
    }
    services.db.write_sync(lambda c: account_repo.set_ip_pool(c, boot.account_id, "dedicated"))
    _send(client, 5)
    _deliver(services)
    assert set(mx.primary.peers) == {"127.0.0.5"}


def test_the_bulk_stream_uses_its_pool(services: Services, boot: Bootstrap, mx: Receivers) -> None:
    cfg = services.settings.delivery
    cfg.ip_pools = {"default": _pool(("127.0.0.1", 1, None)), "bulk": _pool(("127.0.0.4", 1, None))}
    cfg.stream_pools = {"bulk": "bulk"}
    with TestClient(create_app(services, Stream.BULK)) as bulk:
        bulk.headers["Authorization"] = f"Bearer {boot.token}"
        _send(bulk, 3)
    _deliver(services)
    assert mx.primary.peers == ["127.0.0.4"] * 3


def test_a_warming_address_stops_at_its_daily_cap_and_warm_ones_take_the_rest(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    cfg = services.settings.delivery
    cfg.warmup_caps = [3, 6]
    cfg.ip_pools = {"default": _pool(("127.0.0.1", 1, None), ("127.0.0.4", 10, NOW.date()))}
    _send(client, 20)
    _deliver(services)
    assert _states(services) == {"delivered": 20}
    assert mx.primary.peers.count("127.0.0.4") == 3  # weight 10: it fills its cap first
    assert mx.primary.peers.count("127.0.0.1") == 17
    volume = services.db.read_sync(lambda c: ipvolume.sent_on(c, NOW.date()))
    assert volume == {"127.0.0.4": 3, "127.0.0.1": 17}


def test_a_pool_of_warming_addresses_waits_for_the_next_day(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    cfg = services.settings.delivery
    cfg.warmup_caps = [2, 4]
    cfg.ip_pools = {"default": _pool(("127.0.0.4", 1, NOW.date()))}
    _send(client, 5)
    _deliver(services)
    rows = _rows(services)
    assert [r["state"] for r in rows].count("delivered") == 2
    tomorrow = datetime(2026, 3, 3, tzinfo=UTC)
    waiting = [r for r in rows if r["state"] == "queued"]
    assert [(r["next_attempt_at"], r["attempts"]) for r in waiting] == [(tomorrow, 0)] * 3

    # Day two: the cap is 4, and today's count starts from zero.
    assert isinstance(services.clock, FrozenClock)
    services.clock.advance(timedelta(days=1).total_seconds())
    _deliver(services)
    assert _states(services) == {"delivered": 5}
    assert mx.primary.peers == ["127.0.0.4"] * 5


# --- retry windows per stream


def test_the_retry_window_is_configurable_per_stream(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    mx.primary.always_defer = True
    services.settings.delivery.retry_window_by_stream = {"transactional": 1.0}
    _send(client, 1)
    _deliver(services)
    [row] = _rows(services)
    assert row["state"] == "failed"  # the next retry (60 s) would be past its window
    [bounce] = _events(services, "bounce")
    assert bounce["expired"] is True


# --- MTA-STS


@pytest.fixture
def sts(
    services: Services, dns_server: LocalDnsServer, tmp_path: Path
) -> Iterator[tuple[LocalHttpsServer, Receivers]]:
    """A policy host and a STARTTLS receiver whose certificates one private CA issued."""
    with LocalHttpsServer(tmp_path, ["mta-sts.dest.example"]) as https:
        server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        https.ca.issue_cert("mx1.dest.example").configure_cert(server_context)
        receivers = Receivers(tls=server_context)
        receivers.start("127.0.0.2")
        _route(services, dns_server, receivers)
        dns_server.add_txt("_mta-sts.dest.example", "v=STSv1; id=1")
        dns_server.add_a("mta-sts.dest.example", "127.0.0.1")
        settings = services.settings
        settings.mta_sts.port = https.port
        settings.egress.ca_bundle = https.ca_path
        settings.egress.allowed_networks = ["127.0.0.0/8"]  # type: ignore[list-item]
        try:
            yield https, receivers
        finally:
            receivers.close()


def _policy(mode: str, mx: str) -> bytes:
    return f"version: STSv1\r\nmode: {mode}\r\nmx: {mx}\r\nmax_age: 86400\r\n".encode()


def test_enforced_policy_delivers_over_verified_tls_to_a_listed_mx(
    client: TestClient, services: Services, sts: tuple[LocalHttpsServer, Receivers]
) -> None:
    https, receivers = sts
    https.reply("/.well-known/mta-sts.txt", body=_policy("enforce", "*.dest.example"))
    _send(client, 2)
    _deliver(services)
    assert _states(services) == {"delivered": 2}
    assert receivers.primary.tls_sessions == 2
    assert all(d["tls"] for d in _events(services, "delivery"))


def test_enforced_policy_that_lists_no_mx_defers_without_connecting(
    client: TestClient, services: Services, sts: tuple[LocalHttpsServer, Receivers]
) -> None:
    https, receivers = sts
    https.reply("/.well-known/mta-sts.txt", body=_policy("enforce", "mx.elsewhere.example"))
    _send(client, 1)
    _deliver(services)
    [row] = _rows(services)
    assert row["state"] == "queued" and row["attempts"] == 1
    [soft] = _events(services, "soft_bounce")
    assert soft["enhanced_status"] == "4.7.5"
    assert "not in MTA-STS policy" in soft["mta_sts"]
    assert receivers.primary.most_sessions == 0


def test_enforced_policy_refuses_a_certificate_for_another_name(
    client: TestClient,
    services: Services,
    dns_server: LocalDnsServer,
    sts: tuple[LocalHttpsServer, Receivers],
) -> None:
    https, receivers = sts
    # mx2 is listed by the policy but serves the certificate of mx1.
    dns_server.remove("dest.example")
    dns_server.add_mx("dest.example", 10, "mx2.dest.example")
    dns_server.add_a("mx2.dest.example", "127.0.0.2")
    https.reply("/.well-known/mta-sts.txt", body=_policy("enforce", "*.dest.example"))
    _send(client, 1)
    _deliver(services)
    [row] = _rows(services)
    assert row["state"] == "queued"  # a temporary failure: never a downgrade
    assert receivers.primary.received == []


def test_testing_mode_delivers_anyway_and_notes_the_failure(
    client: TestClient, services: Services, sts: tuple[LocalHttpsServer, Receivers]
) -> None:
    https, receivers = sts
    https.reply("/.well-known/mta-sts.txt", body=_policy("testing", "mx.elsewhere.example"))
    _send(client, 1)
    _deliver(services)
    assert _states(services) == {"delivered": 1}
    [delivered] = _events(services, "delivery")
    assert "not in MTA-STS policy" in delivered["mta_sts"]


# --- Postfix's smtp-sink, an independent SMTP implementation


def test_delivery_to_postfix_smtp_sink(
    client: TestClient, services: Services, dns_server: LocalDnsServer
) -> None:
    with postfix_sink("127.0.0.2") as (port, dumps):
        receivers = Receivers()  # only for _route's port: the sink has its own
        receivers.port = port
        _route(services, dns_server, receivers)
        receivers.close()
        ids = _send(client, 30)
        _deliver(services, rounds=2)
        assert _states(services) == {"delivered": 30}, _rows(services)[0]["last_response"]
        responses = [d["response"] for d in _events(services, "delivery")]
        assert all(r.startswith("250") for r in responses), responses[:3]
        bodies = [f.read_bytes() for f in sorted(dumps.rglob("*")) if f.is_file()]
        assert len(bodies) == len(ids) == 30
        assert all(b"Subject: Order " in body for body in bodies)


# --- leases outlive a slow round


def test_a_round_slower_than_its_lease_keeps_its_deliveries(
    client: TestClient, services: Services, mx: Receivers
) -> None:
    services.clock = SystemClock()  # leases are compared with real time here
    services.settings.delivery.lease_seconds = 0.6
    mx.primary.delay = 1.5  # the receiver takes longer than a lease to answer
    _send(client, 1)
    services.settings.delivery.mode = DeliveryMode.MX

    async def main() -> int:
        first, second = DeliveryWorker(services), DeliveryWorker(services)
        sending = asyncio.create_task(first.run_once())
        await asyncio.sleep(1.0)  # the first lease would have expired by now
        taken = await second.run_once()
        await sending
        return taken

    assert asyncio.run(main()) == 0  # renewed: nothing for the second worker to take
    assert len(mx.primary.received) == 1
    assert _states(services) == {"delivered": 1}
