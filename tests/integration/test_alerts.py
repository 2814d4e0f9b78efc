"""Per-domain alerts on a fake clock: thresholds, minimum volume, hysteresis, mail, events."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from logseed import happen, other_account, send
from postroom.clock import FrozenClock
from postroom.domain.alerts import Alert
from postroom.domain.events import EventKind
from postroom.events.recorder import event_row
from postroom.services import Services, alerts, domains
from postroom.services.accounts import Bootstrap
from postroom.storage.repos import messages as message_repo
from postroom.storage.tables import deliveries, events, messages, sending_domains

MINUTE = 60.0


@pytest.fixture
def shop(services: Services, boot: Bootstrap) -> int:
    services.clock = FrozenClock()
    settings = services.settings.insights
    settings.alert_min_volume = 10
    settings.alert_window_minutes = 60
    settings.alert_hold_minutes = 30
    view = asyncio.run(domains.create(services, boot.account_id, "shop.example"))
    return int(view.row["id"])


def _traffic(services: Services, delivered: int, bounced: int, soft: int = 0) -> None:
    async def run() -> None:
        for i in range(delivered + bounced + soft):
            message_id = await send(services, 1, "a@shop.example", f"r{i}@example.net")
            if i < delivered:
                await happen(services, message_id, EventKind.DELIVERY)
            elif i < delivered + bounced:
                await happen(services, message_id, EventKind.BOUNCE, bounce_category="bad_mailbox")
            else:
                await happen(services, message_id, EventKind.SOFT_BOUNCE)

    asyncio.run(run())


def _alert_mail(services: Services) -> list[dict[str, Any]]:
    query = (
        select(messages.c.subject, deliveries.c.recipient)
        .join(deliveries, deliveries.c.message_id == messages.c.id)
        .where(messages.c.category == alerts.ALERT_CATEGORY)
        .order_by(messages.c.created_at)
    )
    return [dict(r) for r in services.db.read_sync(lambda c: c.execute(query).mappings().all())]


def _alert_events(services: Services) -> list[tuple[str, dict[str, Any]]]:
    query = (
        select(events.c.kind, events.c.details)
        .where(events.c.kind.in_(["alert_raised", "alert_cleared"]))
        .order_by(events.c.id)
    )
    return [(k, d) for k, d in services.db.read_sync(lambda c: c.execute(query).all())]


def _evaluate(services: Services) -> list[tuple[str, bool]]:
    return [(c.alert.value, c.raised) for c in asyncio.run(alerts.evaluate(services))]


def test_bounce_alert_raises_once_then_clears_with_hysteresis(
    services: Services, boot: Bootstrap, shop: int
) -> None:
    clock = services.clock
    assert isinstance(clock, FrozenClock)
    _traffic(services, delivered=16, bounced=4)  # 20 % bounces
    assert _evaluate(services) == [("bounce_rate", True)]
    [mail] = _alert_mail(services)
    assert mail["recipient"] == boot.admin_email  # no alert_recipient_email: the admin
    assert "shop.example: bounce rate 20.0%" in mail["subject"]
    [(kind, details)] = _alert_events(services)
    assert kind == "alert_raised"
    assert details["domain_id"] == shop and details["alert"] == "bounce_rate"
    assert details["value"] == 0.2 and details["threshold"] == 0.05

    # Still bad: nothing new. A minute of worse mail: still nothing new (already raised).
    assert _evaluate(services) == []
    clock.advance(MINUTE)
    _traffic(services, delivered=0, bounced=10)
    assert _evaluate(services) == []

    # The window moves past the bad mail and good mail follows; the 30-minute hold since
    # raising is over, so the alert clears.
    clock.advance(61 * MINUTE)
    _traffic(services, delivered=20, bounced=0)
    assert _evaluate(services) == [("bounce_rate", False)]
    assert [k for k, _ in _alert_events(services)] == ["alert_raised", "alert_cleared"]
    assert len(_alert_mail(services)) == 2

    # A bad minute right after clearing does not raise again within the hold time.
    clock.advance(MINUTE)
    _traffic(services, delivered=0, bounced=30)
    assert _evaluate(services) == []
    clock.advance(30 * MINUTE)
    assert _evaluate(services) == [("bounce_rate", True)]


def test_small_volume_is_not_judged_and_rates_below_threshold_stay_quiet(
    services: Services, shop: int
) -> None:
    _traffic(services, delivered=3, bounced=3)  # 50 %, but only 6 messages
    assert _evaluate(services) == []
    _traffic(services, delivered=60, bounced=2)  # 5/68 = 7 % bounces: raises
    assert _evaluate(services) == [("bounce_rate", True)]


def test_deferral_and_complaint_alerts(services: Services, shop: int) -> None:
    _traffic(services, delivered=10, bounced=0, soft=10)  # 50 % deferrals
    assert _evaluate(services) == [("deferral_rate", True)]

    async def complain() -> None:
        query = select(deliveries.c.id).where(deliveries.c.state == "delivered").limit(1)
        [delivery_id] = await services.db.read(lambda c: list(c.execute(query).scalars()))
        await happen(services, delivery_id, EventKind.SPAM, spam_feedback_type="abuse")

    asyncio.run(complain())  # 1 complaint over 10 delivered: 10 % > 0.3 %
    assert _evaluate(services) == [("complaint_rate", True)]
    [_, complaint] = _alert_events(services)
    assert complaint[1]["alert"] == "complaint_rate" and complaint[1]["value"] == 0.1


def test_per_domain_settings_through_the_api(
    services: Services, client: TestClient, boot: Bootstrap, shop: int
) -> None:
    url = f"/api/accounts/{boot.account_id}/sending_domains/{shop}/alerts"
    shown = client.get(url).json()["data"]
    assert shown["alerts"]["bounce_rate"]["threshold"] == 0.05
    assert shown["alerts"]["bounce_rate"]["custom_threshold"] is False
    changed = client.patch(
        url,
        json={
            "alerts": {
                "alert_recipient_email": "ops@shop.example",
                "thresholds": {"bounce_rate": 0.5},
            }
        },
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["data"]["alerts"]["bounce_rate"]["threshold"] == 0.5
    _traffic(services, delivered=16, bounced=4)
    assert _evaluate(services) == []  # 20 % is under this domain's 50 %
    client.patch(url, json={"thresholds": {"bounce_rate": 0.1}})
    assert _evaluate(services) == [("bounce_rate", True)]
    assert _alert_mail(services)[0]["recipient"] == "ops@shop.example"
    state = client.get(url).json()["data"]["alerts"]["bounce_rate"]
    assert state["raised"] is True and state["value"] == 0.2

    # Health alerts off: the raised alert is no longer judged, new ones never fire.
    client.patch(url, json={"health_alerts_enabled": False, "thresholds": {"deferral_rate": 0.01}})
    _traffic(services, delivered=0, bounced=0, soft=20)
    assert _evaluate(services) == []

    bads = ({"thresholds": {"bounce_rate": 2}}, {"thresholds": {"nope": 0.1}})
    for bad in (*bads, {"thresholds": True}, {"thresholds": 0.5}, {"thresholds": [1]}):
        assert client.patch(url, json=bad).status_code == 422, bad
    # The specs' family and name answer the same.
    alias = f"/api/domains/{shop}/alerts"
    assert client.get(alias).json() == client.get(url).json()
    assert client.patch(url, json={"health_alerts_enabled": "yes"}).status_code == 422
    other_id, other_token = other_account(services)
    theirs = {"Authorization": f"Bearer {other_token}"}
    assert client.get(url, headers=theirs).status_code == 404
    other_url = f"/api/accounts/{other_id}/sending_domains/{shop}/alerts"
    assert client.get(other_url, headers=theirs).status_code == 404
    assert client.patch(other_url, headers=theirs, json={}).status_code == 404


def test_losing_dns_verification_is_a_critical_alert(
    services: Services, boot: Bootstrap, shop: int
) -> None:
    clock = services.clock
    assert isinstance(clock, FrozenClock)
    now = clock.now()

    def lose(conn: Any) -> None:
        conn.execute(
            sending_domains.update().where(sending_domains.c.id == shop).values(dns_verified=False)
        )
        failed = event_row(
            services.ids,
            boot.account_id,
            EventKind.DOMAIN_FAILED,
            None,
            None,
            None,
            {"domain_id": shop, "domain_name": "shop.example"},
            now,
        )
        message_repo.insert_events(conn, [failed])

    # Never verified: not "lost".
    assert _evaluate(services) == []
    services.db.write_sync(lose)
    assert _evaluate(services) == [(Alert.DNS_LOST.value, True)]
    assert "DNS no longer verifies" in _alert_mail(services)[0]["subject"]
    clock.advance(31 * MINUTE)
    services.db.write_sync(
        lambda c: c.execute(
            sending_domains.update().where(sending_domains.c.id == shop).values(dns_verified=True)
        )
    )
    assert _evaluate(services) == [(Alert.DNS_LOST.value, False)]
