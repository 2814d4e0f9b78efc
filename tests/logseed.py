"""A small seeded data set for email logs and stats, with answers known by construction.

Messages go in through the real :func:`accept_message`; outcomes are recorded the way
the delivery engines record them (``leases.complete`` + ``delivery_event``), on a frozen
clock. ``Seeded`` names each message so tests can state the expected answers.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from postroom.clock import FrozenClock
from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.streams import Stream
from postroom.events.recorder import delivery_event
from postroom.queue import leases
from postroom.services import Services, domains
from postroom.services.accept import Origin, accept_message
from postroom.storage.repos import accounts as account_repo
from postroom.storage.repos import messages as message_repo
from postroom.storage.tables import deliveries

DAY1 = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
DAY2 = datetime(2026, 3, 11, 9, 0, tzinfo=UTC)

FINAL = {
    EventKind.DELIVERY: DeliveryState.DELIVERED,
    EventKind.BOUNCE: DeliveryState.BOUNCED,
    EventKind.REJECT: DeliveryState.REJECTED,
}


@dataclass
class Seeded:
    account_id: int
    shop_id: int  # sending domain shop.example
    news_id: int  # sending domain news.example
    ids: dict[str, str] = field(default_factory=dict)  # m1..m7 -> message_id

    def names(self, message_ids: list[str]) -> set[str]:
        back = {v: k for k, v in self.ids.items()}
        return {back[i] for i in message_ids}


async def send(
    services: Services,
    account_id: int,
    sender: str,
    to: str,
    *,
    subject: str = "Hello",
    category: str | None = None,
    stream: Stream = Stream.TRANSACTIONAL,
    client_ip: str | None = None,
) -> str:
    draft = MessageDraft(
        sender=Address(sender), to=(Address(to),), subject=subject, text="t", category=category
    )
    [message_id] = await accept_message(
        services, Origin(account_id, stream, client_ip=client_ip), draft
    )
    return message_id


async def happen(services: Services, delivery_id: str, kind: EventKind, **details: Any) -> None:
    """Record ``kind`` for the delivery as the engines do (final state + event)."""
    now = services.clock.now()

    def run(conn: Connection) -> None:
        row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).mappings()
        delivery = dict(row.one())
        state = FINAL.get(kind)
        response = details.get("email_service_provider_response") or details.get("response")
        if state is not None:
            leases.complete(conn, [delivery_id], state, now, response)
        message_repo.insert_events(
            conn, [delivery_event(services.ids, delivery, kind, dict(details), now)]
        )

    await services.db.write(run)


def _to(clock: FrozenClock, moment: datetime) -> None:
    clock.advance((moment - clock.now()).total_seconds())


def gmail(ip: str = "192.0.2.1") -> dict[str, Any]:
    return {
        "sending_ip": ip,
        "recipient_mx": "gmail-smtp-in.l.google.com",
        "email_service_provider": "Google",
    }


async def seed(services: Services, account_id: int, clock: FrozenClock) -> Seeded:
    """The data set (see tests/integration/test_logs_api.py for the answers)."""
    shop = await domains.create(services, account_id, "shop.example")
    news = await domains.create(services, account_id, "news.example")
    s = Seeded(account_id, int(shop.row["id"]), int(news.row["id"]))
    _to(clock, DAY1)
    a = account_id

    s.ids["m1"] = await send(services, a, "hi@shop.example", "alice@gmail.com", category="welcome")
    clock.advance(60)
    s.ids["m2"] = await send(services, a, "hi@shop.example", "bob@acme.test", category="welcome")
    clock.advance(60)
    s.ids["m3"] = await send(services, a, "hi@Shop.example", "carol@yahoo.com", category="receipt")
    clock.advance(60)
    s.ids["m4"] = await send(
        services, a, "news@news.example", "dave@outlook.com", category="digest", stream=Stream.BULK
    )
    clock.advance(60)
    await happen(services, s.ids["m1"], EventKind.DELIVERY, **gmail())
    await happen(
        services,
        s.ids["m2"],
        EventKind.DELIVERY,
        sending_ip="192.0.2.2",
        recipient_mx="aspmx.l.google.com",
        email_service_provider="Google Workspace",
    )
    await happen(
        services,
        s.ids["m3"],
        EventKind.BOUNCE,
        sending_ip="198.51.100.7",
        recipient_mx="mta5.am0.yahoodns.net",
        email_service_provider="Yahoo",
        email_service_provider_status="5.1.1",
        email_service_provider_response="550 5.1.1 No such user here",
        bounce_category="bad_mailbox",
    )
    outlook = {
        "sending_ip": "198.51.100.8",
        "recipient_mx": "outlook-com.olc.protection.outlook.com",
        "email_service_provider": "Outlook",
    }
    await happen(services, s.ids["m4"], EventKind.SOFT_BOUNCE, **outlook)
    clock.advance(600)
    await happen(services, s.ids["m4"], EventKind.DELIVERY, **outlook)
    await happen(services, s.ids["m1"], EventKind.OPEN, web_ip_address="203.0.113.50")
    await happen(services, s.ids["m1"], EventKind.OPEN, web_ip_address="203.0.113.50")
    await happen(
        services, s.ids["m1"], EventKind.CLICK, click_url="https://x.test", web_ip_address="1.2.3.4"
    )
    await happen(services, s.ids["m2"], EventKind.OPEN, web_ip_address="203.0.113.51")
    await happen(services, s.ids["m4"], EventKind.SPAM, spam_feedback_type="abuse")

    _to(clock, DAY2)
    s.ids["m5"] = await send(
        services, a, "news@news.example", "erin@gmail.com", category="digest", stream=Stream.BULK
    )
    clock.advance(60)
    s.ids["m6"] = await send(
        services, a, "hi@shop.example", "frank@example.net", subject="", client_ip="203.0.113.9"
    )
    clock.advance(60)
    s.ids["m7"] = await send(
        services, a, "other@unregistered.test", "gina@icloud.com", category="receipt"
    )
    clock.advance(60)
    # Delivered into a sandbox inbox: no MX, so no provider on the event.
    await happen(services, s.ids["m5"], EventKind.DELIVERY, mode="sandbox")
    await happen(services, s.ids["m7"], EventKind.REJECT, reject_reason="no inbox")
    clock.advance(60)
    return s


def seed_sync(services: Services, account_id: int, clock: FrozenClock) -> Seeded:
    services.clock = clock
    return asyncio.run(seed(services, account_id, clock))


def other_account(services: Services) -> tuple[int, str]:
    """A second tenant with an admin token."""
    from postroom.services.accounts import create_token

    def run(conn: Connection) -> tuple[int, str]:
        account_id = account_repo.insert_account(conn, "Other", services.clock.now())
        return account_id, create_token(services, conn, account_id, "other")

    return services.db.write_sync(run)
