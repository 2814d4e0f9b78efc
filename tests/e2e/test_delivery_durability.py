"""A delivery worker killed mid-delivery loses nothing; duplicates are bounded by what was
in flight.

A real ``postroom serve --delivery-mode mx`` delivers over SMTP to an aiosmtpd receiver on
127.0.0.2 (found through a real name server on loopback, tests/dnsserver.py). Once a few
hundred of the 2,000 acknowledged deliveries have arrived, the server gets SIGKILL (no
shutdown code runs). The deliveries it had leased and not yet completed are counted from
the database right after the kill. Restarted on the same storage, it must deliver every
acknowledged delivery: none is lost (each recipient address is unique, so the receiver
sees each one at least once) and the recipients received twice are at most the ones that
were in flight at the kill (sent, but their outcome not yet committed).

The recipients are spread over 400 domains, each with its own MX host: every domain is
its own throttling site, so the per-site rate limit (600 messages a minute by default)
does not slow the test down. SQLite only: the queue's lease logic is the same on
PostgreSQL, which test_durability.py covers for acceptance.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SmtpSession
from server import Server, Store, start_server

from dnsserver import LocalDnsServer

pytestmark = pytest.mark.slow

log = logging.getLogger(__name__)

RECEIVER_HOST = "127.0.0.2"
SENDER_DOMAIN = "shop.test"
DOMAINS = 400
PER_DOMAIN = 5  # 2,000 deliveries in all
BATCH_SIZE = 500  # /api/batch allows 500 requests a call
KILL_AFTER = 200  # received messages before the SIGKILL
DRAIN_TIMEOUT = 40.0


def _recipient(i: int) -> str:
    return f"rcpt{i}@d{i % DOMAINS}.test"


class Receiver:
    """An aiosmtpd handler recording (Message-ID, RCPT) pairs; a little slow on purpose, so
    deliveries are in flight when the server is killed."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, str]] = []

    async def handle_DATA(  # noqa: N802 (aiosmtpd's hook name)
        self, server: SMTP, session: SmtpSession, envelope: Envelope
    ) -> str:
        await asyncio.sleep(0.004)
        content = envelope.original_content or b""
        message_id = ""
        for line in content.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
            if line.lower().startswith(b"message-id:"):
                message_id = line.split(b":", 1)[1].strip().decode(errors="replace")
        with self.lock:
            self.received.extend((message_id, str(rcpt).lower()) for rcpt in envelope.rcpt_tos)
        return "250 2.0.0 Ok: queued"

    def count(self) -> int:
        with self.lock:
            return len(self.received)

    def recipients(self) -> Counter[str]:
        with self.lock:
            return Counter(rcpt for _, rcpt in self.received)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    handler = Receiver()
    port = _free_port(RECEIVER_HOST)
    controller = Controller(handler, hostname=RECEIVER_HOST, port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


@pytest.fixture
def dns() -> Iterator[LocalDnsServer]:
    with LocalDnsServer() as server:
        for k in range(DOMAINS):
            server.add_mx(f"d{k}.test", 10, f"mx.d{k}.test")
            server.add_a(f"mx.d{k}.test", RECEIVER_HOST)
        yield server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server the test starts; whatever is still running at the end is killed."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill9()


def _verify_sending_domain(http: httpx.Client, account_id: int, dns: LocalDnsServer) -> None:
    base = f"/api/accounts/{account_id}/sending_domains"
    created = http.post(base, json={"sending_domain": {"domain_name": SENDER_DOMAIN}})
    assert created.status_code in (200, 201), created.text
    domain = created.json()
    dns.publish(domain["dns_records"])
    checked = http.post(f"{base}/{domain['id']}/verify")
    assert checked.status_code == 200, checked.text
    assert checked.json()["dns_verified"] is True, checked.json()["dns_records"]


def _enqueue(http: httpx.Client, total: int) -> dict[str, str]:
    """Send ``total`` one-recipient messages through /api/batch: delivery id -> recipient."""
    acknowledged: dict[str, str] = {}
    base = {
        "from": {"email": f"orders@{SENDER_DOMAIN}", "name": "Shop"},
        "subject": "Delivered once, at least",
        "text": "A killed worker must not lose this.",
    }
    for start in range(0, total, BATCH_SIZE):
        recipients = [_recipient(i) for i in range(start, min(start + BATCH_SIZE, total))]
        body = {"base": base, "requests": [{"to": [{"email": r}]} for r in recipients]}
        response = http.post("/api/batch", json=body, timeout=60)
        assert response.status_code == 200, response.text[:500]
        items = response.json()["responses"]
        assert len(items) == len(recipients)
        for rcpt, item in zip(recipients, items, strict=True):
            assert item["success"], item
            [delivery_id] = item["message_ids"]
            acknowledged[delivery_id] = rcpt
    return acknowledged


def _in_flight(store: Store, moment: datetime) -> tuple[int, int]:
    """Deliveries leased and not completed when the server was killed.

    Returns (queued rows holding a lease, those whose lease had not expired at
    ``moment``). A completed or deferred delivery gives its lease up in the same
    transaction, and serve runs one worker that leases its next batch only after
    committing the last, so the first number is exactly the batch that was in flight
    (even if a slow round outlived its leases); the second is reported alongside.
    """
    naive = moment.astimezone(UTC).replace(tzinfo=None)
    rows = store.rows(
        "SELECT lease_expires_at FROM deliveries "
        "WHERE state = 'queued' AND lease_expires_at IS NOT NULL"
    )
    return len(rows), sum(1 for (expires,) in rows if _as_naive(expires) > naive)


def _as_naive(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.astimezone(UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _states(store: Store) -> dict[str, int]:
    return {
        str(state): int(n)
        for state, n in store.rows("SELECT state, count(*) FROM deliveries GROUP BY state")
    }


def test_killed_worker_loses_nothing_and_duplicates_are_bounded(
    tmp_path: Path,
    receiver: tuple[Receiver, int],
    dns: LocalDnsServer,
    servers: list[Server],
    record_property: Callable[[str, object], None],
) -> None:
    handler, smtp_port = receiver
    data_dir = tmp_path / "data"
    env = {
        # The --delivery-mode and --dns-server options, through their environment variables.
        "POSTROOM_DELIVERY__MODE": "mx",
        "POSTROOM_DNS__SERVER": dns.address,
        "POSTROOM_DELIVERY__PORT": str(smtp_port),
        "POSTROOM_DELIVERY__LEASE_SECONDS": "2",
        "POSTROOM_DELIVERY__RETRY_FIRST_DELAY": "1",
        "POSTROOM_DELIVERY__RETRY_MAX_DELAY": "2",
        "POSTROOM_DOMAINS__RSA_BITS": "1024",  # key generation speed; signing is the same
    }

    def start() -> Server:
        server = start_server(data_dir, env=env, wait=False)
        servers.append(server)
        server.wait_ready()
        return server

    started = time.monotonic()
    first = start()
    token = first.first_start_token()
    assert token, first.output()
    store = Store(data_dir)
    try:
        with httpx.Client(
            base_url=first.url(), headers={"Authorization": f"Bearer {token}"}, timeout=30
        ) as http:
            accounts = http.get("/api/accounts")
            assert accounts.status_code == 200, accounts.text
            account_id = int(accounts.json()[0]["id"])
            _verify_sending_domain(http, account_id, dns)
            acknowledged = _enqueue(http, DOMAINS * PER_DOMAIN)
        assert len(acknowledged) == DOMAINS * PER_DOMAIN

        deadline = time.monotonic() + 30
        while handler.count() <= KILL_AFTER:
            assert first.running, first.output()
            assert time.monotonic() < deadline, (
                f"only {handler.count()} received after 30 s\n{first.output()}"
            )
            time.sleep(0.005)
        killed_at = datetime.now(UTC)
        first.kill9()
        received_before_kill = handler.count()
        in_flight, lease_unexpired = _in_flight(store, killed_at)
        states_at_kill = _states(store)
        assert received_before_kill < len(acknowledged), "everything arrived before the kill"

        second = start()
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while True:
            states = _states(store)
            if states.get("delivered", 0) == len(acknowledged):
                break
            assert second.running, second.output()
            assert time.monotonic() < deadline, (
                f"not all delivered after {DRAIN_TIMEOUT} s: {states}\n{second.output()}"
            )
            time.sleep(0.1)

        rows = store.rows("SELECT id, recipient, state FROM deliveries")
        code = second.stop()
        assert code == 0, f"postroom serve exited {code} on SIGTERM\n{second.output()}"
    finally:
        store.close()

    by_id = {row.id: (str(row.recipient).lower(), row.state) for row in rows}
    assert set(by_id) == set(acknowledged), "deliveries other than the acknowledged ones"
    not_delivered = [i for i, (_, state) in by_id.items() if state != "delivered"]
    assert not not_delivered, f"not delivered: {not_delivered[:5]}"

    received = handler.recipients()
    lost = [rcpt for rcpt in acknowledged.values() if received[rcpt] == 0]
    unexpected = set(received) - set(acknowledged.values())
    duplicates = sum(1 for n in received.values() if n > 1)
    report = {
        "acknowledged": len(acknowledged),
        "received_before_kill": received_before_kill,
        "in_flight_at_kill": in_flight,
        "lease_unexpired_at_kill": lease_unexpired,
        "states_at_kill": states_at_kill,
        "received_total": sum(received.values()),
        "duplicates": duplicates,
        "lost": len(lost),
        "seconds": round(time.monotonic() - started, 1),
    }
    for key, value in report.items():
        record_property(key, value)
    log.info("delivery kill -9: %s", report)
    assert not lost, f"{len(lost)} acknowledged deliveries never reached the receiver: {lost[:5]}"
    assert not unexpected, sorted(unexpected)[:5]
    assert duplicates <= in_flight, report
