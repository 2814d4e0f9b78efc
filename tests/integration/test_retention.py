"""Retention on a fake clock: bodies first, then whole logs, in bounded batches.

Queued mail and events the stats have not yet counted are never removed; the rollups
outlive the logs.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from logseed import happen, other_account, send
from postroom.clock import FrozenClock
from postroom.domain.events import EventKind
from postroom.services import Services, retention, rollups
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import (
    deliveries,
    events,
    message_bodies,
    messages,
    stats_daily,
    webhook_outbox,
)
from postroom.workers.scheduler import Scheduler

DAY = 86400.0


def _count(services: Services, table: object) -> int:
    return int(
        services.db.read_sync(lambda c: c.execute(select(func.count()).select_from(table)).scalar())
    )  # type: ignore[arg-type]


def _delivered(services: Services, total: int) -> tuple[list[str], str]:
    """``total`` delivered messages and one still queued."""

    async def run() -> tuple[list[str], str]:
        done = []
        for i in range(total):
            message_id = await send(services, 1, "a@shop.example", f"r{i}@gmail.com")
            await happen(services, message_id, EventKind.DELIVERY, mode="sandbox")
            done.append(message_id)
        queued = await send(services, 1, "a@shop.example", "late@gmail.com")
        return done, queued

    return asyncio.run(run())


@pytest.fixture
def clock(services: Services, boot: Bootstrap) -> FrozenClock:
    assert boot.account_id == 1
    clock = FrozenClock()
    services.clock = clock
    services.settings.insights.stats_settle_seconds = 0
    return clock


def test_bodies_then_logs_expire_and_queued_mail_stays(
    services: Services, clock: FrozenClock
) -> None:
    done, queued = _delivered(services, 4)
    asyncio.run(rollups.consume(services))
    asyncio.run(
        retention.set_policy(services, 1, {"log_retention_days": 3, "body_retention_days": 1})
    )
    rollup_rows = services.db.read_sync(lambda c: c.execute(select(stats_daily)).all())

    clock.advance(DAY / 2)
    assert asyncio.run(retention.enforce(services)) == retention.Swept(0, 0)

    clock.advance(DAY)  # 1.5 days: bodies of finished mail go, the queued one keeps its body
    swept = asyncio.run(retention.enforce(services))
    assert swept == retention.Swept(messages=0, bodies=4)
    assert _count(services, message_bodies) == 1
    assert _count(services, messages) == 5

    clock.advance(2 * DAY)  # 3.5 days: whole logs go, except the queued message
    swept = asyncio.run(retention.enforce(services))
    assert swept.messages == 4
    assert _count(services, messages) == 1 and _count(services, deliveries) == 1
    # (Events that name no message have their own sweep: the last test.)
    of_messages = select(events.c.message_id).where(events.c.message_id.is_not(None))
    remaining = services.db.read_sync(lambda c: c.execute(of_messages).all())
    assert {r[0] for r in remaining} == {queued}
    # The stats survive the logs.
    assert services.db.read_sync(lambda c: c.execute(select(stats_daily)).all()) == rollup_rows
    assert done


def test_events_not_yet_counted_hold_retention_back(services: Services, clock: FrozenClock) -> None:
    _delivered(services, 2)
    clock.advance(40 * DAY)
    assert asyncio.run(retention.enforce(services)).messages == 0  # the stats come first
    asyncio.run(rollups.consume(services))
    assert asyncio.run(retention.enforce(services)).messages == 2


def test_batches_are_bounded(services: Services, clock: FrozenClock) -> None:
    _delivered(services, 5)
    asyncio.run(rollups.consume(services))
    services.settings.insights.retention_batch = 2
    services.settings.insights.retention_batches = 1
    clock.advance(31 * DAY)  # past the default 30 days
    assert asyncio.run(retention.enforce(services)).messages == 2
    assert asyncio.run(retention.enforce(services)).messages == 2
    assert asyncio.run(retention.enforce(services)).messages == 1
    assert _count(services, messages) == 1  # the queued one


def test_the_scheduler_folds_stats_then_enforces_retention(
    services: Services, clock: FrozenClock
) -> None:
    _delivered(services, 3)
    clock.advance(31 * DAY)
    asyncio.run(Scheduler(services).run_once())
    assert _count(services, messages) == 1
    delivered = services.db.read_sync(
        lambda c: c.execute(select(func.sum(stats_daily.c.delivered))).scalar()
    )
    assert delivered == 3


def test_retention_api(services: Services, client: TestClient, boot: Bootstrap) -> None:
    url = f"/api/accounts/{boot.account_id}/retention"
    assert client.get(url).json() == {
        "data": {
            "log_retention_days": None,
            "body_retention_days": None,
            "effective_log_retention_days": 30,
            "effective_body_retention_days": 30,
        }
    }
    changed = client.patch(
        url, json={"retention": {"log_retention_days": 5, "body_retention_days": 15}}
    )
    assert changed.status_code == 200
    # Bodies are never kept longer than the log they belong to.
    assert changed.json()["data"]["effective_body_retention_days"] == 5
    assert client.patch(url, json={"log_retention_days": 0}).status_code == 422
    assert client.patch(url, json={"log_retention_days": "3"}).status_code == 422
    reset = client.patch(url, json={"log_retention_days": None}).json()["data"]
    assert reset["log_retention_days"] is None and reset["body_retention_days"] == 15
    other_id, _ = other_account(services)
    assert client.get(f"/api/accounts/{other_id}/retention").status_code == 404
    assert client.patch(f"/api/accounts/{other_id}/retention", json={}).status_code == 404


def test_events_of_no_message_expire_with_the_logs(services: Services, clock: FrozenClock) -> None:
    """Audit and suppression events grow with use; they go with the logs of their age
    once the stats have read them, unless a webhook outbox row still waits for them. A
    domain's lifecycle events stay."""

    def loose(conn: Connection, event_id: str, kind: EventKind = EventKind.AUDIT) -> None:
        conn.execute(
            events.insert().values(
                event_id=event_id,
                account_id=1,
                kind=kind.value,
                message_id=None,
                details={},
                created_at=clock.now(),
            )
        )

    services.db.write_sync(lambda c: loose(c, "loose-1"))
    services.db.write_sync(lambda c: loose(c, "loose-2"))
    services.db.write_sync(lambda c: loose(c, "failed", EventKind.DOMAIN_FAILED))
    services.db.write_sync(lambda c: loose(c, "published", EventKind.DKIM_PUBLISHED))
    services.db.write_sync(
        lambda c: c.execute(
            webhook_outbox.insert().values(event_id="loose-2", account_id=1, created_at=clock.now())
        )
    )
    asyncio.run(retention.set_policy(services, 1, {"log_retention_days": 2}))
    clock.advance(DAY)
    asyncio.run(rollups.consume(services))
    assert asyncio.run(retention.enforce(services)).events == 0  # younger than the logs kept

    clock.advance(2 * DAY)
    assert asyncio.run(retention.enforce(services)).events == 1
    left = services.db.read_sync(lambda c: c.execute(select(events.c.event_id)).scalars().all())
    assert "loose-1" not in left
    assert "loose-2" in left  # a webhook still waits for it
    assert {"failed", "published"} <= set(left)  # a domain's history stays
