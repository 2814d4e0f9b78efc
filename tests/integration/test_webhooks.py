"""Webhooks on both backends: the API, the outbox, signed batched delivery, retries,
pausing, the delivery log, replay and the test event, against a real HTTP receiver.

Responses are validated against the contract's Webhook schemas (tests/data/spec, copied
from the official OpenAPI; a test checks the copy). Signatures are checked with the
official Python SDK's ``verify_signature`` and with the ``standardwebhooks`` library.
Time is a FrozenClock moved by hand, so retries and the pause are exact.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import standardwebhooks
from mailtrap.webhooks import verify_signature
from sqlalchemy import func, select
from starlette.testclient import TestClient
from test_domains_api import tenant

from postroom.clock import FrozenClock
from postroom.config import Settings
from postroom.domain.events import EventKind
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.streams import Stream
from postroom.events.recorder import delivery_event, event_row
from postroom.services import Services
from postroom.services import webhooks as service
from postroom.services.accept import Origin, accept_message
from postroom.services.accounts import Bootstrap
from postroom.storage.repos import messages as message_repo
from postroom.storage.tables import deliveries, messages, webhook_batches, webhook_outbox, webhooks
from postroom.workers.webhooks import WebhookDispatcher
from webhookreceiver import WebhookReceiver

SCHEMAS = json.loads((Path(__file__).parents[1] / "data/spec/webhook_schemas.json").read_text())
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    # The receiver is on loopback: allowed here (and only here), on any port.
    return Settings(
        storage={"data_dir": tmp_path / "data", "database_url": db_url},
        ratelimits={"enabled": False},
        webhooks={
            "allowed_networks": ["127.0.0.0/8"],
            "allowed_ports": [],
            "retry_first_delay": 60,
            "retry_max_delay": 600,
            "retry_window": 3600,
            "timeout": 5,
            "notification_email": "ops@example.net",
        },
    )


@pytest.fixture
def clock(services: Services) -> FrozenClock:
    frozen = FrozenClock(START)
    services.clock = frozen
    return frozen


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def _validate(name: str, instance: Any) -> None:
    root = {**SCHEMAS[name], "components": {"schemas": SCHEMAS}}
    errors = [e.message for e in jsonschema_rs.validator_for(root).iter_errors(instance)]
    assert not errors, (name, errors[:5])


def _create(client: TestClient, url: str, **fields: Any) -> dict[str, Any]:
    body = {
        "url": url,
        "webhook_type": "email_sending",
        "sending_stream": "transactional",
        "event_types": ["delivery", "bounce", "soft_bounce", "reject", "click"],
        **fields,
    }
    response = client.post("/api/webhooks", json={"webhook": body})
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def _send(services: Services, account_id: int, recipients: list[str]) -> list[dict[str, Any]]:
    """Accept one message (the installation's own mail: no verified domain needed) and
    return its deliveries."""
    draft = MessageDraft(
        sender=Address("news@sender.example"),
        to=tuple(Address(r) for r in recipients),
        subject="Hello",
        text="Hi",
        category="welcome",
        custom_variables={"user_id": 42},
    )
    origin = Origin(account_id, Stream.TRANSACTIONAL, system=True)
    ids = asyncio.run(accept_message(services, origin, draft))
    rows = services.db.read_sync(
        lambda c: [dict(r) for r in c.execute(select(deliveries)).mappings()]
    )
    return [r for r in rows if r["id"] in ids]


def _record(
    services: Services, delivery: dict[str, Any], kind: EventKind, details: dict[str, Any]
) -> str:
    row = delivery_event(services.ids, delivery, kind, details, services.clock.now())
    services.db.write_sync(lambda c: message_repo.insert_events(c, [row]))
    return str(row["event_id"])


def _dispatch(services: Services) -> None:
    asyncio.run(WebhookDispatcher(services).run_once())


def _events(post_body: bytes) -> list[dict[str, Any]]:
    events_: list[dict[str, Any]] = json.loads(post_body)["events"]
    return events_


# --- API ---------------------------------------------------------------------------------


def test_crud_in_both_families_matches_the_contract(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    created = client.post(
        f"/api/accounts/{boot.account_id}/webhooks",
        json={
            "webhook": {
                "url": "https://hooks.example.com/in",
                "webhook_type": "email_sending",
                "sending_stream": "bulk",
                "event_types": ["bounce", "delivery", "spam_complaint"],
                "payload_format": "jsonlines",
            }
        },
    )
    assert created.status_code == 200, created.text
    data = created.json()["data"]
    _validate("WebhookCreateResponse", created.json())
    assert len(data["signing_secret"]) == 32 and int(data["signing_secret"], 16) >= 0
    assert data["event_types"] == ["delivery", "bounce", "spam_complaint"]
    assert data["active"] is True and data["domain_id"] is None
    wid = data["id"]
    # The secret is sealed at rest and never shown again.
    sealed = services.db.read_sync(
        lambda c: bytes(c.execute(select(webhooks.c.secret_sealed)).scalar_one())
    )
    assert data["signing_secret"].encode() not in sealed
    for path in (f"/api/accounts/{boot.account_id}/webhooks", "/api/webhooks"):
        listed = client.get(path).json()["data"]
        assert [w["id"] for w in listed] == [wid]
        assert "signing_secret" not in listed[0]
        for item in listed:
            _validate("Webhook", item)
        one = client.get(f"{path}/{wid}").json()["data"]
        assert "signing_secret" not in one
        _validate("Webhook", one)
    updated = client.patch(
        f"/api/webhooks/{wid}", json={"webhook": {"active": False, "event_types": ["open"]}}
    )
    assert updated.status_code == 200
    assert updated.json()["data"]["active"] is False
    assert updated.json()["data"]["event_types"] == ["open"]
    audit = _create(client, "https://audit.example.com/", webhook_type="audit_log")
    assert audit["webhook_type"] == "audit_log" and "event_types" not in audit
    gone = client.delete(f"/api/accounts/{boot.account_id}/webhooks/{wid}")
    assert gone.status_code == 200 and gone.json()["data"]["id"] == wid
    _validate("Webhook", gone.json()["data"])
    assert client.get(f"/api/webhooks/{wid}").status_code == 404


def test_tenants_and_scopes(client: TestClient, boot: Bootstrap, services: Services) -> None:
    wid = _create(client, "https://hooks.example.com/")["id"]
    other = {"Authorization": f"Bearer {tenant(services)}"}
    assert client.get(f"/api/webhooks/{wid}", headers=other).status_code == 404
    assert (
        client.patch(
            f"/api/webhooks/{wid}", json={"webhook": {"active": False}}, headers=other
        ).status_code
        == 404
    )
    assert client.delete(f"/api/webhooks/{wid}", headers=other).status_code == 404
    assert client.get("/api/webhooks", headers=other).json() == {"data": []}
    path = f"/api/accounts/{boot.account_id}/webhooks"
    assert client.get(path, headers=other).status_code in (403, 404)
    reader = {"Authorization": f"Bearer {tenant(services, 'R', ('read',))}"}
    refused = client.post("/api/webhooks", json={"webhook": {"url": "x"}}, headers=reader)
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"webhook_type": "campaigns"}, "webhook_type"),
        ({"webhook_type": "nope"}, "webhook_type"),
        ({"sending_stream": None}, "sending_stream"),
        ({"event_types": []}, "event_types"),
        ({"event_types": ["spam"]}, "event_types"),
        ({"payload_format": "xml"}, "payload_format"),
        ({"domain_id": 999}, "domain_id"),
        ({"inbound_inbox_id": 1}, "inbound_inbox_id"),
        ({"webhook_type": "inbound_receiving", "sending_stream": None}, "inbound_inbox_id"),
    ],
)
def test_invalid_configuration_is_422(
    client: TestClient, fields: dict[str, Any], field: str
) -> None:
    body = {
        "url": "https://hooks.example.com/",
        "webhook_type": "email_sending",
        "sending_stream": "transactional",
        "event_types": ["delivery"],
        **fields,
    }
    body = {k: v for k, v in body.items() if v is not None}
    response = client.post("/api/webhooks", json={"webhook": body})
    assert response.status_code == 422, response.text
    assert field in response.json()["errors"]


SSRF_URLS = [
    "http://127.0.0.1/",
    "http://localhost./",  # a name: allowed at create, refused at connect (tested below)
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1%25eth0]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0x7f.0.0.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.0.0.1.:80/",
    "ftp://hooks.example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
    "http://hooks.example.com:25/",
    "javascript:alert(1)",
    "http://hooks.example.com/a b",
    "http://hooks.example.com/\r\nX-Injected: 1",
]


@pytest.fixture
def strict(services: Services) -> Services:
    """The default egress rules: public addresses, ports 80 and 443 only."""
    services.settings = Settings(
        storage=services.settings.storage.model_dump(), ratelimits={"enabled": False}
    )
    return services


@pytest.mark.parametrize("url", SSRF_URLS)
def test_every_ssrf_form_is_refused_at_create(
    client: TestClient, strict: Services, url: str
) -> None:
    response = client.post(
        "/api/webhooks",
        json={
            "webhook": {
                "url": url,
                "webhook_type": "email_sending",
                "sending_stream": "transactional",
                "event_types": ["delivery"],
            }
        },
    )
    if url == "http://localhost./":
        assert response.status_code == 200  # a name; see the connect-time test
        return
    assert response.status_code == 422, (url, response.text)
    assert "url" in response.json()["errors"]


# --- outbox ------------------------------------------------------------------------------


def test_the_outbox_row_is_written_with_the_event_or_not_at_all(
    services: Services, boot: Bootstrap
) -> None:
    row = event_row(
        services.ids,
        boot.account_id,
        EventKind.BOUNCE,
        "d-1",
        "transactional",
        "a@b.example",
        {"response": "550 no"},
        services.clock.now(),
    )

    class Boom(Exception):
        pass

    def fail(conn: Any) -> None:
        message_repo.insert_events(conn, [row])
        raise Boom

    # What the first start recorded (its audit entries) is in the outbox already.
    count = select(func.count()).select_from(webhook_outbox)
    before = services.db.read_sync(lambda c: c.execute(count).scalar())
    with pytest.raises(Boom):
        services.db.write_sync(fail)
    assert services.db.read_sync(lambda c: c.execute(count).scalar()) == before
    services.db.write_sync(lambda c: message_repo.insert_events(c, [row]))
    assert services.db.read_sync(lambda c: c.execute(count).scalar()) == before + 1
    # Sandbox mail and Postroom's own kinds never reach the outbox.
    quiet = [
        event_row(
            services.ids,
            boot.account_id,
            EventKind.DELIVERY,
            "d-2",
            "transactional",
            "a@b",
            {"mode": "sandbox"},
            services.clock.now(),
        ),
        event_row(
            services.ids,
            boot.account_id,
            EventKind.ACCEPTED,
            "d-2",
            "transactional",
            "a@b",
            {},
            services.clock.now(),
        ),
    ]
    services.db.write_sync(lambda c: message_repo.insert_events(c, quiet))
    assert services.db.read_sync(lambda c: c.execute(count).scalar()) == before + 1


# --- delivery ----------------------------------------------------------------------------


def test_events_are_batched_signed_and_delivered_once(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    hook = _create(client, receiver.url)
    secret = hook["signing_secret"]
    sent = _send(services, boot.account_id, ["a@rcpt.example", "b@rcpt.example"])
    first, second = sent
    bounce = {
        "response": "550 5.1.1 no such user",
        "response_code": 550,
        "bounce_category": "bad_mailbox",
    }
    ids = [
        _record(services, first, EventKind.DELIVERY, {"response": "250 ok"}),
        _record(services, second, EventKind.BOUNCE, bounce),
        _record(
            services,
            first,
            EventKind.CLICK,
            {"url": "https://x.example/", "ip": "1.2.3.4", "user_agent": "UA"},
        ),
        _record(services, first, EventKind.OPEN, {"ip": "1.2.3.4"}),  # not subscribed
    ]
    _dispatch(services)
    [post] = receiver.accepted()
    assert verify_signature(post.body, post.headers["Mailtrap-Signature"], secret)
    wh = standardwebhooks.Webhook(service.rules.standard_secret(secret))
    headers = {k.lower(): v for k, v in post.headers.items()}
    # standardwebhooks checks the timestamp against the real clock; ours is frozen.
    assert headers["webhook-timestamp"] == str(int(START.timestamp()))
    signed = standardwebhooks.Webhook(service.rules.standard_secret(secret)).sign(
        headers["webhook-id"], START, post.body.decode()
    )
    assert headers["webhook-signature"] == signed
    assert wh is not None
    got = _events(post.body)
    assert [e["event_id"] for e in got] == ids[:3]
    delivery, bounced, click = got
    assert delivery == {
        "event": "delivery",
        "message_id": first["id"],
        "email": "a@rcpt.example",
        "event_id": ids[0],
        "timestamp": int(START.timestamp()),
        "sending_stream": "transactional",
        "sending_domain_name": "sender.example",
        "category": "welcome",
        "custom_variables": {"user_id": 42},
        "response": "250 ok",
    }
    assert bounced["event"] == "bounce" and bounced["response_code"] == 550
    assert bounced["bounce_category"] == "bad_mailbox"
    assert bounced["response"] == "550 5.1.1 no such user"
    assert click["url"] == "https://x.example/" and click["ip"] == "1.2.3.4"
    assert headers["webhook-id"] == headers["x-postroom-batch-id"]
    # Delivered once: nothing more goes out, however often the dispatcher runs.
    clock.advance(3600)
    _dispatch(services)
    assert len(receiver.posts) == 1
    log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"]
    assert [(e["status"], e["events"], e["attempt"], e["ok"]) for e in log] == [(200, 3, 1, True)]
    assert log[0]["batch_id"] == headers["webhook-id"] and log[0]["response_excerpt"] == "ok"


def test_standard_webhooks_library_verifies_a_live_post(
    client: TestClient, boot: Bootstrap, services: Services, receiver: WebhookReceiver
) -> None:
    """With the real clock, standardwebhooks.verify accepts the POST as received."""
    hook = _create(client, receiver.url, payload_format="jsonlines")
    [d] = _send(services, boot.account_id, ["c@rcpt.example"])
    _record(services, d, EventKind.DELIVERY, {})
    _dispatch(services)
    [post] = receiver.accepted()
    wh = standardwebhooks.Webhook(hook["standard_webhooks_secret"])
    wh.verify(post.body, post.headers, json_parse=False)
    assert verify_signature(post.body, post.headers["Mailtrap-Signature"], hook["signing_secret"])
    assert post.headers["Content-Type"] == "application/jsonl"
    lines = post.body.decode().splitlines()
    assert [json.loads(line)["email"] for line in lines] == ["c@rcpt.example"]
    tampered = post.body.replace(b"c@rcpt", b"x@rcpt")
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        wh.verify(tampered, post.headers, json_parse=False)
    assert not verify_signature(
        tampered, post.headers["Mailtrap-Signature"], hook["signing_secret"]
    )


def test_failures_retry_with_backoff_then_every_event_arrives_once_in_order(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    hook = _create(client, receiver.url)
    receiver.fail_next(3, 500)
    sent = _send(services, boot.account_id, ["a@rcpt.example"])
    first = _record(services, sent[0], EventKind.SOFT_BOUNCE, {"response": "451 later"})
    _dispatch(services)
    second = _record(services, sent[0], EventKind.DELIVERY, {})
    _dispatch(services)  # the head batch is not due yet; the second waits behind it
    assert len(receiver.posts) == 1
    waits = []
    head = (
        select(webhook_batches.c.next_attempt_at)
        .where(webhook_batches.c.state == "pending")
        .order_by(webhook_batches.c.seq)
        .limit(1)
    )
    for _ in range(3):
        batch = services.db.read_sync(lambda c: c.execute(head).scalar_one())
        waits.append((batch - clock.now()).total_seconds())
        clock.advance(waits[-1])
        _dispatch(services)
    # 60 s, then 120 s, then 240 s (±20 % jitter).
    assert 48 <= waits[0] <= 72 and 96 <= waits[1] <= 144 and 192 <= waits[2] <= 288
    _dispatch(services)
    accepted = [e["event_id"] for p in receiver.accepted() for e in _events(p.body)]
    assert accepted == [first, second]
    bodies = [p.body for p in receiver.posts[:4]]
    assert len(set(bodies)) == 1  # the same batch, byte for byte, every attempt
    log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"]
    assert [e["attempt"] for e in reversed(log)] == [1, 2, 3, 4, 1]
    assert [e["status"] for e in reversed(log)] == [500, 500, 500, 200, 200]


def test_a_webhook_failing_past_the_window_is_paused_and_resumed_by_update(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    hook = _create(client, receiver.url)
    audit_receiver = WebhookReceiver().__enter__()
    try:
        audit = _create(client, audit_receiver.url, webhook_type="audit_log")
        receiver.answer(502)
        [d] = _send(services, boot.account_id, ["a@rcpt.example"])
        event = _record(services, d, EventKind.DELIVERY, {})
        for _ in range(40):
            _dispatch(services)
            clock.advance(600)
        state = client.get(f"/api/webhooks/{hook['id']}").json()["data"]
        assert state["paused_at"] is not None and "HTTP 502" in state["pause_reason"]
        tries = len(receiver.posts)
        assert 5 <= tries <= 12  # backoff: 60, 120, 240, 480, 600… within the hour
        clock.advance(3600)
        _dispatch(services)
        assert len(receiver.posts) == tries  # paused: nothing more is sent
        # The owner is told: an audit event reaches audit_log webhooks, and a notice is mailed.
        # (The audit stream also carries the API changes this test made: filter.)
        notes = [e for p in audit_receiver.accepted() for e in _events(p.body)]
        notes = [n for n in notes if n["event"] == "activity_log.webhook.paused"]
        assert len(notes) == 1
        assert notes[0]["resource"]["id"] == hook["id"]
        assert audit["id"] != hook["id"]
        mailed = services.db.read_sync(
            lambda c: c.execute(select(messages.c.first_to, messages.c.subject)).all()
        )
        assert ("ops@example.net", f"Webhook {hook['id']} paused") in [tuple(m) for m in mailed]
        # An update resumes it: the kept batch goes out at once.
        receiver.answer(200)
        resumed = client.patch(f"/api/webhooks/{hook['id']}", json={"webhook": {"active": True}})
        assert resumed.json()["data"]["paused_at"] is None
        _dispatch(services)
        got = [e["event_id"] for p in receiver.accepted() for e in _events(p.body)]
        assert got == [event]
    finally:
        audit_receiver.__exit__(None, None, None)


def test_replay_resends_a_chosen_range_under_new_batch_ids(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    hook = _create(client, receiver.url)
    [d] = _send(services, boot.account_id, ["a@rcpt.example"])
    early = _record(services, d, EventKind.SOFT_BOUNCE, {"response": "451"})
    clock.advance(600)
    middle = _record(services, d, EventKind.DELIVERY, {})
    clock.advance(600)
    _record(services, d, EventKind.CLICK, {"url": "https://x.example/"})
    _dispatch(services)
    assert len(receiver.accepted()) == 1
    since = (START + timedelta(seconds=300)).isoformat()
    until = (START + timedelta(seconds=900)).isoformat()
    replayed = client.post(
        f"/api/accounts/{boot.account_id}/webhooks/{hook['id']}/replay",
        json={"since": since, "until": until},
    )
    assert replayed.json() == {"data": {"events": 1, "batches": 1}}
    _dispatch(services)
    first, again = receiver.accepted()
    assert [e["event_id"] for e in _events(again.body)] == [middle]
    assert early in [e["event_id"] for e in _events(first.body)]
    assert again.headers["webhook-id"] != first.headers["webhook-id"]
    bad = client.post(f"/api/webhooks/{hook['id']}/replay", json={"since": until, "until": since})
    assert bad.status_code == 422


def test_send_a_test_event(
    client: TestClient, boot: Bootstrap, services: Services, receiver: WebhookReceiver
) -> None:
    hook = _create(client, receiver.url)
    answered = client.post(f"/api/webhooks/{hook['id']}/test")
    assert answered.status_code == 200, answered.text
    data = answered.json()["data"]
    assert data["ok"] is True and data["status"] == 200 and data["kind"] == "test"
    [post] = receiver.posts
    [event] = _events(post.body)
    assert event["event"] == "delivery" and event["email"] == "test@example.com"
    assert verify_signature(post.body, post.headers["Mailtrap-Signature"], hook["signing_secret"])
    log = client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"]
    assert log[0]["batch_id"] == data["batch_id"]


def test_basic_auth_in_the_url_is_sent_as_a_header(
    client: TestClient, boot: Bootstrap, services: Services, receiver: WebhookReceiver
) -> None:
    url = receiver.url.replace("http://", "http://user:p%40ss@")
    hook = _create(client, url)
    client.post(f"/api/webhooks/{hook['id']}/test")
    [post] = receiver.posts
    assert post.headers["Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss


def test_a_receivers_answer_is_capped_and_redirects_are_not_followed(
    client: TestClient, boot: Bootstrap, services: Services, receiver: WebhookReceiver
) -> None:
    hook = _create(client, receiver.url)
    receiver.answer(200, b"x" * (1024 * 1024))
    data = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
    assert data["ok"] is True and len(data["response_excerpt"]) == 512
    receiver.answer(302, b"", {"Location": "http://169.254.169.254/"})
    data = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
    assert data["ok"] is False and data["status"] == 302
    assert len(receiver.posts) == 2
    receiver.answer(200, b"slow", delay=7)  # past webhooks.timeout (5 s)
    data = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
    assert data["ok"] is False and "timed out" in data["error"]


def test_names_resolving_to_private_addresses_are_refused_when_connecting(
    client: TestClient, boot: Bootstrap, services: Services, dns_server: Any, strict: Services
) -> None:
    """A name is checked on every connection, with the address then connected to: a name
    that turns private after the webhook was made (DNS rebinding) is refused."""
    services.settings = services.settings.model_copy(
        update={
            "dns": services.settings.dns.model_copy(update={"server": dns_server.address}),
            "webhooks": services.settings.webhooks.model_copy(update={"timeout": 3}),
        }
    )
    services.resolver = None
    dns_server.add_a("hooks.rebind.example", "93.184.216.34")
    hook = _create(client, "http://hooks.rebind.example/")
    for address in ("127.0.0.1", "169.254.169.254", "10.1.2.3", "0.0.0.0"):
        dns_server.remove("hooks.rebind.example")
        dns_server.add_a("hooks.rebind.example", address)
        data = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
        assert data["ok"] is False and data["error"].startswith("refused"), data
        assert address in data["error"]
    dns_server.remove("hooks.rebind.example")
    dns_server.add_aaaa("hooks.rebind.example", "::ffff:7f00:1")
    data = client.post(f"/api/webhooks/{hook['id']}/test").json()["data"]
    assert data["ok"] is False and "embedded 127.0.0.1" in data["error"], data
    localhost = _create(client, "http://localhost./")
    data = client.post(f"/api/webhooks/{localhost['id']}/test").json()["data"]
    assert data["ok"] is False


def test_the_copied_schemas_match_the_contract() -> None:
    spec = next(
        (
            parent / "shared/spec/mailtrap-openapi/email-sending.openapi.yml"
            for parent in Path(__file__).resolve().parents
            if (parent / "shared/spec/mailtrap-openapi/email-sending.openapi.yml").exists()
        ),
        None,
    )
    if spec is None:
        pytest.skip("shared/spec is not beside this checkout")
    import yaml

    schemas = yaml.safe_load(spec.read_text())["components"]["schemas"]
    assert schemas["Webhook"] == SCHEMAS["Webhook"]
    assert schemas["WebhookCreateResponse"] == SCHEMAS["WebhookCreateResponse"]


@pytest.mark.parametrize(
    "fields",
    [
        {"webhook_type": ["email_sending"]},
        {"payload_format": {"a": 1}},
        {"sending_stream": ["bulk"]},
        {"event_types": [["delivery"]]},
        {"url": ["https://x.example/"]},
    ],
)
def test_wrong_json_types_are_422_not_500(client: TestClient, fields: dict[str, Any]) -> None:
    """Found by the fuzz run: a list where a string goes was a TypeError (500)."""
    body = {
        "url": "https://hooks.example.com/",
        "webhook_type": "email_sending",
        "sending_stream": "transactional",
        "event_types": ["delivery"],
        **fields,
    }
    assert client.post("/api/webhooks", json={"webhook": body}).status_code == 422


def test_a_failing_webhook_does_not_hold_back_another(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    with WebhookReceiver() as broken:
        broken.answer(500)
        _create(client, broken.url)
        _create(client, receiver.url)
        [d] = _send(services, boot.account_id, ["a@rcpt.example"])
        first = _record(services, d, EventKind.DELIVERY, {})
        _dispatch(services)
        second = _record(services, d, EventKind.CLICK, {"url": "https://x.example/"})
        _dispatch(services)
        got = [e["event_id"] for p in receiver.accepted() for e in _events(p.body)]
        assert got == [first, second]
        assert len(broken.posts) == 1  # its first batch waits for its retry


def test_inbound_and_audit_events_reach_only_their_webhooks(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    with WebhookReceiver() as other:
        inbound = _create(
            client, receiver.url, webhook_type="inbound_receiving", inbound_inbox_id=5
        )
        _create(client, other.url, webhook_type="inbound_receiving", inbound_inbox_id=6)
        assert inbound["inbound_inbox_id"] == 5
        _validate("Webhook", inbound)
        now = clock.now()
        rows = [
            event_row(
                services.ids,
                boot.account_id,
                EventKind.INBOUND_RECEIVED,
                None,
                None,
                "in@x.example",
                {"inbox_id": 5, "subject": "Hi"},
                now,
            ),
            event_row(
                services.ids,
                boot.account_id,
                EventKind.AUDIT,
                None,
                None,
                None,
                {"event": "activity_log.user.updated", "description": "d"},
                now,
            ),
        ]
        services.db.write_sync(lambda c: message_repo.insert_events(c, rows))
        _dispatch(services)
        [post] = receiver.accepted()
        [event] = _events(post.body)
        assert event["event"] == "inbound_received" and event["inbox_id"] == 5
        assert event["subject"] == "Hi" and event["event_id"] == rows[0]["event_id"]
        assert other.posts == []


def test_delivered_batches_and_old_log_entries_are_purged(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    clock: FrozenClock,
    receiver: WebhookReceiver,
) -> None:
    hook = _create(client, receiver.url)
    [d] = _send(services, boot.account_id, ["a@rcpt.example"])
    _record(services, d, EventKind.DELIVERY, {})
    _dispatch(services)
    count = select(func.count()).select_from(webhook_batches)
    assert services.db.read_sync(lambda c: c.execute(count).scalar()) == 1
    clock.advance(29 * 86400)
    asyncio.run(service.purge(services))
    assert services.db.read_sync(lambda c: c.execute(count).scalar()) == 1
    clock.advance(2 * 86400)
    asyncio.run(service.purge(services))
    assert services.db.read_sync(lambda c: c.execute(count).scalar()) == 0
    assert client.get(f"/api/webhooks/{hook['id']}/deliveries").json()["data"] == []


def test_audit_entries_reach_audit_log_webhooks(
    client: TestClient, boot: Bootstrap, services: Services, receiver: WebhookReceiver
) -> None:
    """Every audited change is delivered to the account's audit_log webhooks in the
    contract's shape (spec §5: activity_log.<action>, actor, resource, changes)."""
    _create(client, receiver.url, webhook_type="audit_log")
    made = client.post(
        f"/api/accounts/{boot.account_id}/api_tokens",
        json={"name": "ci", "resources": [{"resource_type": "account",
              "resource_id": boot.account_id, "access_level": 100}]},
    )  # fmt: skip
    assert made.status_code in (200, 201), made.text
    _dispatch(services)
    events = [e for post in receiver.accepted() for e in _events(post.body)]
    created = [e for e in events if e["event"] == "activity_log.api_token.created"]
    assert len(created) == 1, events
    [event] = created
    assert event["actor"]["type"] == "api_token" and event["resource"]["type"] == "api_token"
    assert event["resource"]["id"] == str(made.json()["id"])
    assert "timestamp" in event and "token" not in json.dumps(event["changes"]).lower().replace(
        "api_token", ""
    )
