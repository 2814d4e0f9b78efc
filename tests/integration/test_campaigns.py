"""Email campaigns: drafts, validation, the state machine, sending (deduplicated, never to
an unsubscribed or suppressed contact, personalised), resuming after a crash without
repeating anyone, the gradual throttle and scheduled launches. Both path families, both
backends; time is a FrozenClock, everything else is real."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from mailtrap.models.email_campaigns import EmailCampaign, EmailCampaignListResponse
from sqlalchemy import select
from starlette.testclient import TestClient
from test_domains_api import tenant

from postroom.clock import FrozenClock
from postroom.config import DeliveryMode
from postroom.services import Services, campaign_sending, campaigns
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import deliveries, email_campaign_recipients, messages
from postroom.workers.scheduler import Scheduler

ALIAS = "/api/email_campaigns"


def _base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/email_campaigns"


@pytest.fixture
def clock(services: Services) -> FrozenClock:
    services.clock = FrozenClock()
    return services.clock


def _domain(client: TestClient, boot: Bootstrap, name: str = "shop.example") -> int:
    response = client.post(
        f"/api/accounts/{boot.account_id}/sending_domains",
        json={"sending_domain": {"domain_name": name}},
    )
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _list(client: TestClient, boot: Bootstrap, name: str) -> int:
    response = client.post(f"/api/accounts/{boot.account_id}/contacts/lists", json={"name": name})
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _contact(client: TestClient, boot: Bootstrap, email: str, **extra: Any) -> None:
    response = client.post(
        f"/api/accounts/{boot.account_id}/contacts", json={"contact": {"email": email, **extra}}
    )
    assert response.status_code == 201, response.text


def _first_name(client: TestClient, boot: Bootstrap) -> None:
    field = {"name": "First name", "data_type": "text", "merge_tag": "first_name"}
    response = client.post(f"/api/accounts/{boot.account_id}/contacts/fields", json=field)
    assert response.status_code == 201, response.text


def _draft(domain_id: int, lists: list[int], **extra: Any) -> dict[str, Any]:
    return {
        "name": "Spring news",
        "domain_id": domain_id,
        "from_local_part": "news",
        "from_display_name": "Shop News",
        "reply_to": {"local_part": "help", "domain": "shop.example"},
        "template_attributes": {
            "subject": "Hi {{first_name}}",
            "body_html": '<p>Hello {{first_name}}</p><a href="__unsubscribe_url__">bye</a>',
            "body_text": "Hello {{first_name}}",
            "merge_tags": ["first_name"],
        },
        "contact_list_ids": lists,
        **extra,
    }


def _create(client: TestClient, boot: Bootstrap, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(_base(boot), json=body)
    assert response.status_code == 201, response.text
    data: dict[str, Any] = response.json()["data"]
    EmailCampaign(**data)  # the SDK's model reads it
    return data


def _post(client: TestClient, path: str, body: Any = None) -> Any:
    return client.post(path, json=body) if body is not None else client.post(path)


def _sent(services: Services, campaign_id: int) -> list[tuple[str, str]]:
    """(recipient, delivery state) of every message the campaign became."""
    query = (
        select(deliveries.c.recipient, deliveries.c.state)
        .select_from(
            email_campaign_recipients.join(
                deliveries, deliveries.c.id == email_campaign_recipients.c.message_id
            )
        )
        .where(email_campaign_recipients.c.campaign_id == campaign_id)
    )
    return sorted(tuple(r) for r in services.db.read_sync(lambda c: c.execute(query).all()))


def _all_messages(services: Services) -> Counter[str]:
    query = select(messages.c.first_to)
    return Counter(str(r) for r in services.db.read_sync(lambda c: c.execute(query).scalars()))


# --- drafts -------------------------------------------------------------------------------


def test_create_get_list_update_delete_in_both_families(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain = _domain(client, boot)
    news = _list(client, boot, "News")
    made = _create(client, boot, _draft(domain, [news]))
    assert made["current_state"] == "draft" and made["domain_name"] == "shop.example"
    assert made["template"]["body_html"].startswith("<p>Hello")
    assert made["reply_to"] == {
        "display_name": None,
        "local_part": "help",
        "domain": "shop.example",
    }
    assert made["delivery_mode"] == "rapid" and made["contact_segment_ids"] == []
    assert made["recipient_total_count"] is None and made["last_started_at"] is None
    second = _create(client, boot, _draft(domain, [], name="Autumn sale"))
    # Alias family, newest first, paged, and searched by name.
    listed = client.get(ALIAS, params={"per_page": 1})
    assert listed.status_code == 200
    page = EmailCampaignListResponse(**listed.json())
    assert [c.id for c in page.data] == [second["id"]]
    assert page.pagination is not None and page.pagination.next_token == 2
    assert "body_html" not in listed.json()["data"][0]["template"]
    two = client.get(ALIAS, params={"per_page": 1, "token": 2}).json()
    assert [c["id"] for c in two["data"]] == [made["id"]]
    assert two["pagination"]["next_token"] is None and two["pagination"]["prev_token"] == 1
    found = client.get(ALIAS, params={"search": "SPRING"}).json()["data"]
    assert [c["id"] for c in found] == [made["id"]]
    # Partial update: only the given template parts change; merge_tags replaced whole.
    patched = client.patch(
        f"{ALIAS}/{made['id']}",
        json={"name": "Spring!", "template_attributes": {"subject": "New {{first_name}}",
              "merge_tags": []}, "delivery_mode": "gradual",
              "delivery_options": {"emails_per_hour": 100}},
    )  # fmt: skip
    assert patched.status_code == 200, patched.text
    data = patched.json()["data"]
    assert data["name"] == "Spring!" and data["template"]["subject"] == "New {{first_name}}"
    assert data["template"]["body_text"] == "Hello {{first_name}}"
    assert data["template"]["merge_tags"] == []
    assert data["delivery_options"] == {"emails_per_hour": 100}
    assert client.get(f"{_base(boot)}/{made['id']}").json()["data"]["name"] == "Spring!"
    # Another account sees none of it.
    other = {"Authorization": f"Bearer {tenant(services)}"}
    for method, path in (
        ("GET", f"{ALIAS}/{made['id']}"),
        ("PATCH", f"{ALIAS}/{made['id']}"),
        ("DELETE", f"{ALIAS}/{made['id']}"),
        ("POST", f"{ALIAS}/{made['id']}/start"),
        ("GET", f"{ALIAS}/{made['id']}/stats"),
    ):
        answer = client.request(method, path, headers=other, json={} if method == "PATCH" else None)
        assert answer.status_code == 404, (method, path, answer.text)
    assert client.get(ALIAS, headers=other).json()["data"] == []
    assert client.delete(f"{ALIAS}/{second['id']}").status_code == 204
    assert client.get(f"{ALIAS}/{second['id']}").status_code == 404


def test_validation_answers_422_with_field_errors(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain = _domain(client, boot)
    news = _list(client, boot, "News")
    foreign = {"Authorization": f"Bearer {tenant(services)}"}
    their_domain = client.post(
        "/api/sending_domains",
        json={"sending_domain": {"domain_name": "theirs.example"}},
        headers=foreign,
    ).json()["id"]
    cases: list[tuple[dict[str, Any], str]] = [
        ({**_draft(domain, [news]), "name": " "}, "name"),
        (_draft(their_domain, [news]), "domain_id"),
        (_draft(domain, [999_999]), "contact_list_ids"),
        ({**_draft(domain, [news]), "from_local_part": "a b@c"}, "from_local_part"),
        ({**_draft(domain, [news]), "template_attributes": {"body_html": "x"}},
         "template_attributes.subject"),
        ({**_draft(domain, [news]), "template_attributes": {"subject": "{{#if}}"}},
         "template_attributes.subject"),
        (_draft(domain, [news], delivery_mode="turbo"), "delivery_mode"),
        (_draft(domain, [news], delivery_options={"emails_per_hour": 0}),
         "delivery_options.emails_per_hour"),
        (_draft(domain, [news], reply_to={"local_part": "x"}), "reply_to"),
        (_draft(domain, [news], contact_segment_ids=[1]), "contact_segment_ids"),
    ]  # fmt: skip
    for body, field in cases:
        response = client.post(ALIAS, json=body)
        assert response.status_code == 422, (field, response.text)
        assert field in response.json()["errors"], (field, response.json())
    segments = client.post(ALIAS, json=_draft(domain, [news], contact_segment_ids=[4]))
    assert "not supported" in segments.json()["errors"]["contact_segment_ids"][0]
    # Empty segment lists are fine (the SDKs may send them).
    assert (
        client.post(ALIAS, json=_draft(domain, [news], contact_segment_ids=[])).status_code == 201
    )
    assert client.post(ALIAS, json=[1]).status_code == 422


# --- the state machine --------------------------------------------------------------------


def test_state_machine(
    client: TestClient, boot: Bootstrap, services: Services, clock: FrozenClock
) -> None:
    domain = _domain(client, boot)
    news = _list(client, boot, "News")
    _contact(client, boot, "ann@example.com", list_ids=[news])
    bare = _create(client, boot, _draft(domain, [], template_attributes={"subject": "S"}))
    one = f"{ALIAS}/{bare['id']}"
    # Start runs the sending checks; the campaign stays a draft.
    refused = _post(client, f"{one}/start")
    assert refused.status_code == 422
    assert set(refused.json()["errors"]) == {"template_attributes.body_html", "contact_list_ids"}
    assert client.get(one).json()["data"]["current_state"] == "draft"
    for action in ("cancel", "reset", "terminate"):
        wrong = _post(client, f"{one}/{action}")
        assert wrong.status_code == 422 and "draft" in wrong.json()["errors"]["base"][0]
    made = _create(client, boot, _draft(domain, [news]))
    one = f"{ALIAS}/{made['id']}"
    now = clock.now()
    for when in (now - timedelta(minutes=1), now + timedelta(days=32), "tomorrow"):
        text = when if isinstance(when, str) else when.isoformat()
        assert _post(client, f"{one}/schedule", {"datetime": text}).status_code == 422
    later = (now + timedelta(hours=2)).isoformat().replace("+00:00", "Z")
    scheduled = _post(client, f"{one}/schedule", {"datetime": later})
    assert scheduled.status_code == 200, scheduled.text
    data = scheduled.json()["data"]
    assert data["current_state"] == "scheduled"
    assert data["current_state_metadata"]["scheduled_at"].startswith(later[:19])
    assert client.patch(one, json={"name": "x"}).status_code == 422
    assert client.delete(one).status_code == 422
    assert _post(client, f"{one}/start").status_code == 422
    assert _post(client, f"{one}/cancel").json()["data"]["current_state"] == "draft"
    _post(client, f"{one}/schedule", {"datetime": later})
    reset = _post(client, f"{one}/reset").json()["data"]
    assert (
        reset["current_state"] == "draft" and "scheduled_at" not in reset["current_state_metadata"]
    )
    started = _post(client, f"{one}/start")
    assert started.status_code == 200, started.text
    data = started.json()["data"]
    # One recipient: the start's own slice sent it, so it is finished already.
    assert data["current_state"] == "finished" and data["recipient_total_count"] == 1
    assert data["last_started_at"] is not None and data["last_started_at_date"] == "2026-01-01"
    for action in ("start", "cancel", "terminate"):
        assert _post(client, f"{one}/{action}").status_code == 422
    assert client.delete(one).status_code == 422
    # Terminate: a gradual campaign still sending stops releasing recipients.
    _contact(client, boot, "bob@example.com", list_ids=[news])
    slow = _create(client, boot, _draft(domain, [news], delivery_mode="gradual",
                   delivery_options={"emails_per_hour": 1}))  # fmt: skip
    assert _post(client, f"{ALIAS}/{slow['id']}/start").json()["data"]["current_state"] == (
        "started"
    )
    stopped = _post(client, f"{ALIAS}/{slow['id']}/terminate").json()["data"]
    assert stopped["current_state"] == "terminated"
    clock.advance(7200)
    asyncio.run(campaign_sending.send_round(services))
    assert len(_sent(services, slow["id"])) == 1


def test_start_needs_a_verified_domain_when_mail_leaves_the_machine(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain = _domain(client, boot)
    news = _list(client, boot, "News")
    made = _create(client, boot, _draft(domain, [news]))
    services.settings.delivery.mode = DeliveryMode.MX
    refused = _post(client, f"{ALIAS}/{made['id']}/start")
    assert refused.status_code == 422
    assert "not verified" in refused.json()["errors"]["domain_id"][0]


# --- sending ------------------------------------------------------------------------------


def test_sends_once_to_each_subscribed_contact_personalised(
    client: TestClient, boot: Bootstrap, services: Services, clock: FrozenClock
) -> None:
    domain = _domain(client, boot)
    _first_name(client, boot)
    one, two = _list(client, boot, "One"), _list(client, boot, "Two")
    _contact(client, boot, "ann@example.com", fields={"first_name": "Ann"}, list_ids=[one, two])
    _contact(client, boot, "bob@example.com", fields={"first_name": "Bob"}, list_ids=[two])
    _contact(client, boot, "gone@example.com", list_ids=[one])
    client.patch(
        f"/api/accounts/{boot.account_id}/contacts/gone@example.com",
        json={"contact": {"unsubscribed": True}},
    )
    _contact(client, boot, "blocked@example.com", list_ids=[one])
    _contact(client, boot, "elsewhere@example.com")  # on no list of the campaign
    client.post(
        f"/api/accounts/{boot.account_id}/suppressions",
        json={"email": "blocked@example.com", "sending_stream": "bulk"},
    )
    made = _create(client, boot, _draft(domain, [one, two]))
    started = _post(client, f"{ALIAS}/{made['id']}/start").json()["data"]
    assert started["recipient_total_count"] == 2, _sent(services, made["id"])
    assert started["current_state"] == "finished"
    assert _sent(services, made["id"]) == [
        ("ann@example.com", "queued"),
        ("bob@example.com", "queued"),
    ]
    rows = services.db.read_sync(
        lambda c: c.execute(
            select(messages.c.first_to, messages.c.subject, messages.c.stream, messages.c.sender,
                   messages.c.sender_name)
        ).all()
    )  # fmt: skip
    assert sorted(tuple(r) for r in rows) == [
        ("ann@example.com", "Hi Ann", "bulk", "news@shop.example", "Shop News"),
        ("bob@example.com", "Hi Bob", "bulk", "news@shop.example", "Shop News"),
    ]
    message_id = _sent_ids(services, made["id"])[0]
    log = client.get(f"/api/accounts/{boot.account_id}/email_logs/{message_id}").json()
    assert log["subject"].startswith("Hi ")


def _sent_ids(services: Services, campaign_id: int) -> list[str]:
    query = (
        select(email_campaign_recipients.c.message_id)
        .where(email_campaign_recipients.c.campaign_id == campaign_id)
        .order_by(email_campaign_recipients.c.seq)
    )
    return [str(m) for m in services.db.read_sync(lambda c: c.execute(query).scalars())]


def _audience(client: TestClient, boot: Bootstrap, count: int) -> int:
    news = _list(client, boot, "News")
    response = client.post(
        f"/api/accounts/{boot.account_id}/contacts/imports",
        json={"contacts": [{"email": f"r{i}@example.com", "list_ids_included": [news]}
                           for i in range(count)]},
    )  # fmt: skip
    assert response.status_code in (200, 201), response.text
    return news


def test_a_crash_mid_round_neither_loses_nor_repeats_recipients(
    client: TestClient, boot: Bootstrap, services: Services, clock: FrozenClock
) -> None:
    domain = _domain(client, boot)
    news = _audience(client, boot, 7)
    made = _create(client, boot, _draft(domain, [news]))
    campaign_id = int(made["id"])
    # Started through the service: no slice is sent by the request.
    asyncio.run(campaigns.start(services, boot.account_id, campaign_id))

    def row() -> dict[str, Any]:
        found = asyncio.run(campaigns.get(services, boot.account_id, campaign_id))
        return found.row

    # Crash 1: a slice taken, then the process dies before sending it.
    taken = asyncio.run(campaign_sending.take(services, row(), 3))
    assert taken is not None and [r["seq"] for r in taken.rows] == [0, 1, 2]
    # Crash 2 (on resume): the slice is sent, and the process dies before recording it.
    again = asyncio.run(campaign_sending.take(services, row(), 3))
    assert again is not None and again.number == taken.number
    outcomes = asyncio.run(campaign_sending.send(services, row(), again))
    assert all(isinstance(o, list) and o for o in outcomes)
    assert sum(_all_messages(services).values()) == 3
    # Resume: the unrecorded slice is replayed (same message ids), then the rest goes.
    assert asyncio.run(campaign_sending.run_campaign(services, boot.account_id, campaign_id)) == 3
    assert _sent_ids(services, campaign_id)[:3] == [o[0] for o in outcomes]
    assert sum(_all_messages(services).values()) == 3
    asyncio.run(campaign_sending.run_campaign(services, boot.account_id, campaign_id))
    sent = _all_messages(services)
    assert sorted(sent) == sorted(f"r{i}@example.com" for i in range(7))
    assert set(sent.values()) == {1}
    assert row()["state"] == "finished"
    assert asyncio.run(campaign_sending.run_campaign(services, boot.account_id, campaign_id)) == 0


def test_gradual_campaigns_release_recipients_at_their_pace(
    client: TestClient, boot: Bootstrap, services: Services, clock: FrozenClock
) -> None:
    domain = _domain(client, boot)
    news = _audience(client, boot, 30)
    body = _draft(
        domain, [news], delivery_mode="gradual", delivery_options={"emails_per_hour": 360}
    )
    made = _create(client, boot, body)
    started = _post(client, f"{ALIAS}/{made['id']}/start").json()["data"]
    assert started["current_state"] == "started" and started["recipient_total_count"] == 30
    assert len(_sent(services, made["id"])) == 1  # the first at once
    scheduler = Scheduler(services)
    asyncio.run(scheduler.run_once())
    assert len(_sent(services, made["id"])) == 1  # no time passed: nothing more is due
    clock.advance(60)  # 360 an hour: 6 a minute
    asyncio.run(scheduler.run_once())
    assert len(_sent(services, made["id"])) == 7
    # A contact suppressed after the start is screened when their slice goes.
    later = select(email_campaign_recipients.c.email).where(
        email_campaign_recipients.c.campaign_id == made["id"], email_campaign_recipients.c.seq == 20
    )
    victim = str(services.db.read_sync(lambda c: c.execute(later).scalar_one()))
    client.post(
        f"/api/accounts/{boot.account_id}/suppressions",
        json={"email": victim, "sending_stream": "bulk"},
    )
    clock.advance(300)
    asyncio.run(scheduler.run_once())
    sent = _sent(services, made["id"])
    assert len(sent) == 30 and (victim, "suppressed") in sent
    got = client.get(f"{ALIAS}/{made['id']}").json()["data"]
    assert got["current_state"] == "finished"


def test_a_scheduled_campaign_launches_when_its_time_comes(
    client: TestClient, boot: Bootstrap, services: Services, clock: FrozenClock
) -> None:
    domain = _domain(client, boot)
    news = _audience(client, boot, 3)
    made = _create(client, boot, _draft(domain, [news]))
    when = (clock.now() + timedelta(hours=1)).isoformat()
    assert _post(client, f"{ALIAS}/{made['id']}/schedule", {"datetime": when}).status_code == 200
    asyncio.run(campaign_sending.send_round(services))
    assert client.get(f"{ALIAS}/{made['id']}").json()["data"]["current_state"] == "scheduled"
    # A contact added before the launch is in the audience: it is resolved at launch.
    _contact(client, boot, "late@example.com", list_ids=[news])
    clock.advance(3600)
    asyncio.run(campaign_sending.send_round(services))
    data = client.get(f"{ALIAS}/{made['id']}").json()["data"]
    assert data["current_state"] == "finished" and data["recipient_total_count"] == 4
    assert data["last_started_at"].startswith("2026-01-01T01:00:00")
    assert len(_sent(services, made["id"])) == 4
    # A scheduled campaign whose domain went away fails at launch, saying why.
    other = _create(client, boot, _draft(_domain(client, boot, "gone.example"), [news]))
    _post(client, f"{ALIAS}/{other['id']}/schedule", {"datetime": (clock.now() + timedelta(
        minutes=5)).isoformat()})  # fmt: skip
    client.delete(f"/api/accounts/{boot.account_id}/sending_domains/{other['domain_id']}")
    clock.advance(600)
    asyncio.run(campaign_sending.send_round(services))
    failed = client.get(f"{ALIAS}/{other['id']}").json()["data"]
    assert failed["current_state"] == "failed"
    assert "domain_id" in failed["current_state_metadata"]["error"]


def test_stats_are_zero_before_a_start_and_validate_dates(
    client: TestClient, boot: Bootstrap
) -> None:
    domain = _domain(client, boot)
    made = _create(client, boot, _draft(domain, []))
    stats = client.get(f"{ALIAS}/{made['id']}/stats")
    assert stats.status_code == 200
    assert set(stats.json()["data"].values()) == {0}
    assert len(stats.json()["data"]) == 13
    bad = client.get(f"{ALIAS}/{made['id']}/stats", params={"start_date": "yesterday"})
    assert bad.status_code == 422 and "start_date" in bad.json()["errors"]
    backwards = {"start_date": "2026-02-02", "end_date": "2026-02-01"}
    assert client.get(f"{ALIAS}/{made['id']}/stats", params=backwards).status_code == 422
