"""The deliveries table as a queue: leases, priority, expiry, crash-loop shunting."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.domain.streams import Stream
from postroom.queue import leases
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import deliveries
from postroom.workers.scheduler import Scheduler

MAIL: dict[str, Any] = {
    "from": {"email": "s@example.com"},
    "to": [{"email": "r@example.org"}],
    "subject": "S",
    "text": "T",
}


def _send(services: Services, boot: Bootstrap, stream: Stream, count: int = 1) -> list[str]:
    ids = []
    with TestClient(create_app(services, stream)) as client:
        client.headers["Authorization"] = f"Bearer {boot.token}"
        for _ in range(count):
            ids += client.post("/api/send", json=MAIL).json()["message_ids"]
    return ids


def _lease(services: Services, owner: str, seconds: float = 60, **kw: Any) -> list[dict[str, Any]]:
    now = kw.pop("now", services.clock.now())
    return services.db.write_sync(
        lambda c: leases.lease_due(
            c,
            owner=owner,
            now=now,
            lease_seconds=seconds,
            limit=kw.get("limit", 100),
            max_leases=kw.get("max_leases", 10),
        )
    )


def test_transactional_is_leased_before_bulk(services: Services, boot: Bootstrap) -> None:
    """Bulk mail queued first still waits for transactional mail."""
    bulk = _send(services, boot, Stream.BULK, 3)
    transactional = _send(services, boot, Stream.TRANSACTIONAL, 2)
    leased = [r["id"] for r in _lease(services, "w1", limit=2)]
    assert sorted(leased) == sorted(transactional)
    assert sorted(r["id"] for r in _lease(services, "w1")) == sorted(bulk)


def test_a_lease_hides_a_delivery_until_it_expires(services: Services, boot: Bootstrap) -> None:
    """A leased row is invisible to other workers until its lease runs out."""
    [delivery_id] = _send(services, boot, Stream.TRANSACTIONAL)
    assert [r["id"] for r in _lease(services, "w1", seconds=30)] == [delivery_id]
    assert _lease(services, "w2") == []
    later = services.clock.now() + timedelta(seconds=31)
    again = _lease(services, "w2", now=later)
    assert [(r["id"], r["lease_owner"], r["lease_count"]) for r in again] == [
        (delivery_id, "w2", 2)
    ]


def test_crash_looping_delivery_is_shunted_not_deleted(services: Services, boot: Bootstrap) -> None:
    """After max_leases expired leases the scheduler shunts the row; it is kept."""
    [delivery_id] = _send(services, boot, Stream.TRANSACTIONAL)
    services.settings.delivery.max_leases = 2
    now = services.clock.now()
    for step in range(2):
        assert _lease(services, f"w{step}", seconds=0, now=now, max_leases=2)
    assert _lease(services, "w9", now=now, max_leases=2) == []
    asyncio.run(Scheduler(services).run_once())
    state = services.db.read_sync(
        lambda c: c.execute(
            select(deliveries.c.state).where(deliveries.c.id == delivery_id)
        ).scalar()
    )
    assert state == "shunted"


def test_defer_makes_a_delivery_due_later(services: Services, boot: Bootstrap) -> None:
    [delivery_id] = _send(services, boot, Stream.TRANSACTIONAL)
    _lease(services, "w1")
    now = services.clock.now()
    services.db.write_sync(
        lambda c: leases.defer(c, delivery_id, now + timedelta(seconds=60), now, "451 try later")
    )
    assert _lease(services, "w2") == []
    [row] = _lease(services, "w2", now=now + timedelta(seconds=61))
    assert (row["attempts"], row["lease_count"]) == (1, 1)


def test_queue_depth_counts_queued_per_stream(services: Services, boot: Bootstrap) -> None:
    _send(services, boot, Stream.BULK, 2)
    _send(services, boot, Stream.TRANSACTIONAL, 1)
    assert services.db.read_sync(leases.queue_depth) == {"bulk": 2, "transactional": 1}
