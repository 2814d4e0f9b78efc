"""Once the API has answered 200, the message survives ``kill -9`` of the server.

A real ``postroom serve`` takes a burst of concurrent sends; while requests are still in
flight it gets SIGKILL (no shutdown code runs). It is restarted on the same storage and
killed again while its worker captures a larger backlog; a third start must then show
every acknowledged message in the queue, and the worker must capture each one into the
default inbox exactly once (leases expire, capture is idempotent). Runs on SQLite and,
when reachable, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from server import Server, Store, start_server

pytestmark = pytest.mark.slow

log = logging.getLogger(__name__)

CONCURRENCY = 32
MAIL = {
    "from": {"email": "durable@example.com", "name": "Durable"},
    "to": [{"email": "to@example.org"}],
    "cc": [{"email": "cc@example.org"}],
    "subject": "Survives kill -9",
    "text": "If you can read this after a crash, the 200 meant something.",
}
BATCH = {
    "base": {k: v for k, v in MAIL.items() if k not in ("to", "cc")},
    "requests": [{"to": MAIL["to"], "cc": MAIL["cc"]}] * 20,
}
# Short leases so deliveries leased by a killed worker are taken again within a second.
SERVER_ENV = {"POSTROOM_DELIVERY__LEASE_SECONDS": "1"}
DRAIN_TIMEOUT = 20.0


@dataclass
class Burst:
    """What one burst of sends saw before and after the server was killed."""

    acknowledged: list[list[str]] = field(default_factory=list)  # message_ids per 200
    in_flight_at_kill: int = 0  # requests sent and not yet answered when SIGKILL went out
    unanswered: int = 0  # requests that never got an answer (connection died)
    throttled: int = 0  # 429 answers (a rate limit, if one is configured): not acknowledged
    unexpected: list[str] = field(default_factory=list)  # any other non-200 answer
    queue_at_kill: tuple[int, int] = (-1, -1)  # (queued, delivered) just before the kill


async def _burst(
    server: Server, token: str, seconds: float, cap: int, kill_when: Store | None = None
) -> Burst:
    """Send concurrently for ``seconds`` (or until ``cap`` messages are acknowledged, so a
    fast server does not make the test slow), then SIGKILL the server mid-flight.

    With ``kill_when`` set, half the senders use ``/api/batch`` (20 messages a call) to
    build a larger backlog, and the kill waits (up to 5 s more) until the worker is
    visibly busy: deliveries are still queued and some are already delivered.
    """
    result = Burst()
    in_flight = 0
    killed = asyncio.Event()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=server.url(), headers=headers, limits=limits, timeout=30
    ) as client:

        async def sender(batch: bool) -> None:
            nonlocal in_flight
            while not killed.is_set():
                in_flight += 1
                try:
                    if batch:
                        response = await client.post("/api/batch", json=BATCH)
                    else:
                        response = await client.post("/api/send", json=MAIL)
                except httpx.TransportError:
                    result.unanswered += 1
                    return
                finally:
                    in_flight -= 1
                if response.status_code == 200 and batch:
                    items = response.json()["responses"]
                    assert all(item["success"] for item in items), items
                    result.acknowledged.extend(item["message_ids"] for item in items)
                elif response.status_code == 200:
                    result.acknowledged.append(response.json()["message_ids"])
                elif response.status_code == 429:
                    result.throttled += 1
                else:
                    result.unexpected.append(f"{response.status_code} {response.text[:200]}")

        tasks = [
            asyncio.create_task(sender(batch=kill_when is not None and n % 2 == 1))
            for n in range(CONCURRENCY)
        ]
        end = time.monotonic() + seconds
        while time.monotonic() < end and len(result.acknowledged) < cap:
            await asyncio.sleep(0.01)
        deadline = time.monotonic() + 5
        while kill_when is not None and time.monotonic() < deadline:
            result.queue_at_kill = await asyncio.to_thread(_queue_counts, kill_when)
            if result.queue_at_kill[0] > 0 and result.queue_at_kill[1] > 0:
                break
            await asyncio.sleep(0.05)
        result.in_flight_at_kill = in_flight
        server.kill9()
        killed.set()
        await asyncio.gather(*tasks)
    return result


def _queue_counts(store: Store) -> tuple[int, int]:
    rows = dict(store.rows("SELECT state, count(*) FROM deliveries GROUP BY state"))
    return int(rows.get("queued", 0)), int(rows.get("delivered", 0))


def _deliveries(store: Store) -> dict[str, tuple[str, str]]:
    """Every delivery (the ids the API answered with): id -> (message id, state)."""
    return {
        row.id: (row.message_id, row.state)
        for row in store.rows("SELECT id, message_id, state FROM deliveries")
    }


def _assert_none_lost(store: Store, acknowledged: list[list[str]]) -> None:
    stored = _deliveries(store)
    expected = {i for ids in acknowledged for i in ids}
    lost = expected - stored.keys()
    assert not lost, (
        f"{len(lost)} of {len(expected)} acknowledged deliveries lost: {sorted(lost)[:5]}"
    )


def _wait_drained(store: Store) -> float:
    start = time.monotonic()
    while time.monotonic() - start < DRAIN_TIMEOUT:
        queued, _ = _queue_counts(store)
        if queued == 0:
            return time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"still {queued} queued deliveries after {DRAIN_TIMEOUT} s")


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts; whatever is still running at the end is killed."""
    started: list[Server] = []
    yield started
    for server in started:
        server.kill9()


def test_acknowledged_messages_survive_kill_9(
    tmp_path: Path,
    database_url: str | None,
    servers: list[Server],
    record_property: Callable[[str, object], None],
) -> None:
    """Every 200-acknowledged send survives two SIGKILLs and is captured exactly once."""
    data_dir = tmp_path / "data"

    def start() -> Server:
        server = start_server(data_dir, database_url=database_url, env=SERVER_ENV, wait=False)
        servers.append(server)
        server.wait_ready()
        return server

    first = start()
    token = first.first_start_token()
    assert token, first.output()
    store = Store(data_dir, database_url)
    try:
        # Round 1: kill -9 in the middle of a burst of sends.
        burst1 = asyncio.run(_burst(first, token, 1.5, cap=1000))
        assert burst1.acknowledged, f"no send was acknowledged\n{first.output()}"
        assert not burst1.unexpected, burst1.unexpected[:5]

        # Round 2: restart on the same storage; nothing acknowledged may be missing. Then a
        # bigger burst while the worker captures the backlog, and kill -9 again.
        second = start()
        _assert_none_lost(store, burst1.acknowledged)
        burst2 = asyncio.run(_burst(second, token, 2.0, cap=2000, kill_when=store))
        assert not burst2.unexpected, burst2.unexpected[:5]

        # Round 3: everything acknowledged is there and gets captured exactly once.
        third = start()
        acknowledged = burst1.acknowledged + burst2.acknowledged
        _assert_none_lost(store, acknowledged)
        drain_seconds = _wait_drained(store)

        deliveries = _deliveries(store)
        acked_ids = [i for ids in acknowledged for i in ids]
        not_delivered = [i for i in acked_ids if deliveries[i][1] != "delivered"]
        assert not not_delivered, f"not delivered: {not_delivered[:5]}"

        inbox_id = store.scalar("SELECT id FROM inboxes WHERE is_default ORDER BY id LIMIT 1")
        captured = {
            row.message_id: (int(row.n), {row.lo, row.hi})
            for row in store.rows(
                "SELECT message_id, count(*) AS n, min(inbox_id) AS lo, max(inbox_id) AS hi "
                "FROM sandbox_messages GROUP BY message_id"
            )
        }
        message_ids = {deliveries[i][0] for i in acked_ids}
        missing = [m for m in message_ids if m not in captured]
        duplicates = {m: n for m, (n, _) in captured.items() if n != 1}
        assert not missing, f"{len(missing)} acknowledged messages never captured"
        assert not duplicates, f"captured more than once: {list(duplicates.items())[:5]}"
        assert set().union(*(inboxes for _, inboxes in captured.values())) == {inbox_id}
        committed_unacknowledged = len(captured) - len(message_ids)
        # Deliveries leased more than once: taken again after a killed worker's lease expired.
        released = store.scalar("SELECT count(*) FROM deliveries WHERE lease_count > 1")

        code = third.stop()
        assert code == 0, f"postroom serve exited {code} on SIGTERM\n{third.output()}"
    finally:
        store.close()

    report = {
        "backend": "postgres" if database_url else "sqlite",
        "acknowledged_round1": len(burst1.acknowledged),
        "in_flight_at_kill1": burst1.in_flight_at_kill,
        "unanswered_round1": burst1.unanswered,
        "acknowledged_round2": len(burst2.acknowledged),
        "in_flight_at_kill2": burst2.in_flight_at_kill,
        "unanswered_round2": burst2.unanswered,
        "queued_at_kill2": burst2.queue_at_kill[0],
        "delivered_at_kill2": burst2.queue_at_kill[1],
        "committed_but_unacknowledged": committed_unacknowledged,
        "re_leased_after_crash": released,
        "throttled": burst1.throttled + burst2.throttled,
        "lost": 0,
        "duplicates": 0,
        "drain_seconds": round(drain_seconds, 2),
    }
    for key, value in report.items():
        record_property(key, value)
    log.info("kill -9 durability: %s", report)
