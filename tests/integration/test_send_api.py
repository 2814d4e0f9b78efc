"""The sending API end to end in-process: acceptance, streams, queue rows, events, capture.

Each test runs on SQLite and PostgreSQL (see conftest). The worker is driven by hand
(``run_once``) so each step can be observed.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.config import Settings
from postroom.domain.streams import Stream
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.storage.db import Database
from postroom.storage.tables import deliveries, events, messages, sandbox_messages
from postroom.workers.delivery import DeliveryWorker

MAIL: dict[str, Any] = {
    "from": {"email": "sender@example.com", "name": "Sender"},
    "to": [{"email": "a@example.org"}, {"email": "b@example.org", "name": "B"}],
    "cc": [{"email": "c@example.org"}],
    "bcc": [{"email": "d@example.org"}],
    "subject": "Hello",
    "text": "Plain body",
    "html": "<p>HTML body</p>",
    "category": "welcome",
    "custom_variables": {"user_id": 42},
}


def _count(services: Services, table: Any, *where: Any) -> int:
    query = select(func.count()).select_from(table).where(*where)
    return int(services.db.read_sync(lambda conn: conn.execute(query).scalar() or 0))


def test_send_returns_one_id_per_recipient_in_to_cc_bcc_order(
    client: TestClient, services: Services
) -> None:
    """A send with to, cc and bcc answers one id per recipient, in to → cc → bcc order."""
    response = client.post("/api/send", json=MAIL)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert body["success"] is True
    ids = body["message_ids"]
    assert len(ids) == 4 and len(set(ids)) == 4
    rows = services.db.read_sync(
        lambda conn: conn.execute(
            select(deliveries.c.id, deliveries.c.recipient, deliveries.c.recipient_kind).where(
                deliveries.c.id.in_(ids)
            )
        ).all()
    )
    by_id = {r.id: (r.recipient, r.recipient_kind) for r in rows}
    assert [by_id[i] for i in ids] == [
        ("a@example.org", "to"),
        ("b@example.org", "to"),
        ("c@example.org", "cc"),
        ("d@example.org", "bcc"),
    ]


def test_accepted_message_is_stored_queued_and_recorded(
    client: TestClient, services: Services
) -> None:
    """Acceptance writes the message, one queued delivery and one accepted event each."""
    ids = client.post("/api/send", json=MAIL).json()["message_ids"]
    assert _count(services, messages) == 1
    assert _count(services, deliveries, deliveries.c.state == "queued") == 4
    assert _count(services, events, events.c.kind == "accepted") == 4
    stream = services.db.read_sync(
        lambda conn: conn.execute(
            select(deliveries.c.stream).where(deliveries.c.id == ids[0])
        ).scalar()
    )
    assert stream == "transactional"


@pytest.mark.parametrize("header", ["Authorization", "Api-Token"])
def test_both_token_headers_are_accepted(services: Services, boot: Bootstrap, header: str) -> None:
    """The token works as `Authorization: Bearer` and as `Api-Token`."""
    value = f"Bearer {boot.token}" if header == "Authorization" else boot.token
    with TestClient(create_app(services)) as plain:
        response = plain.post("/api/send", json=MAIL, headers={header: value})
    assert response.status_code == 200


@pytest.mark.parametrize("token", [None, "nope", "pr_" + "0" * 40])
def test_bad_tokens_get_the_sending_401(
    services: Services, boot: Bootstrap, token: str | None
) -> None:
    """Missing or unknown tokens answer 401 in the sending family's shape."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with TestClient(create_app(services)) as plain:
        response = plain.post("/api/send", json=MAIL, headers=headers)
    assert response.status_code == 401
    assert response.json() == {"success": False, "errors": ["Unauthorized"]}


def test_validation_errors_are_400_in_the_contract_shape(client: TestClient) -> None:
    """An empty body lists every missing field, as the contract's strings."""
    response = client.post("/api/send", json={})
    assert response.status_code == 400
    body = response.json()
    assert body["success"] is False
    assert "'from' is required" in body["errors"]
    assert "'subject' is required" in body["errors"]


def test_invalid_json_is_400(client: TestClient) -> None:
    response = client.post(
        "/api/send", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_oversized_body_is_413(client: TestClient, services: Services) -> None:
    """A body over the limit is refused before it is buffered whole."""
    services.settings.limits.max_message_bytes = 1000
    big = dict(MAIL, text="x" * 5000)
    response = client.post("/api/send", json=big)
    assert response.status_code == 413
    assert response.json()["success"] is False


def test_bulk_listener_records_the_bulk_stream(services: Services, boot: Bootstrap) -> None:
    """The bulk app (second listener) and a bulk Host header both select the bulk stream."""
    with TestClient(create_app(services, Stream.BULK)) as bulk:
        bulk.headers["Authorization"] = f"Bearer {boot.token}"
        first = bulk.post("/api/send", json=MAIL).json()["message_ids"][0]
    with TestClient(create_app(services)) as main:
        main.headers["Authorization"] = f"Bearer {boot.token}"
        second = main.post("/api/send", json=MAIL, headers={"Host": "bulk.api.mailtrap.io"}).json()[
            "message_ids"
        ][0]
    streams = services.db.read_sync(
        lambda conn: dict(
            conn.execute(
                select(deliveries.c.id, deliveries.c.stream).where(
                    deliveries.c.id.in_([first, second])
                )
            ).all()
        )
    )
    assert streams == {first: "bulk", second: "bulk"}


def test_batch_answers_per_item_in_order(client: TestClient) -> None:
    """A batch is 200 with one result per request, failures in place."""
    payload = {
        "base": {"from": {"email": "s@example.com"}, "subject": "S", "text": "T"},
        "requests": [
            {"to": [{"email": "one@example.org"}]},
            {"to": [{"email": "not-an-address"}]},
            {"to": [{"email": "two@example.org"}], "subject": "Own subject"},
        ],
    }
    response = client.post("/api/batch", json=payload)
    assert response.status_code == 200
    results = response.json()["responses"]
    assert [r["success"] for r in results] == [True, False, True]
    assert results[1]["errors"] == ["address is invalid in 'to' 0"]
    assert len(results[0]["message_ids"]) == 1


def test_batch_without_requests_is_a_general_error(client: TestClient) -> None:
    response = client.post("/api/batch", json={"base": {}})
    assert response.status_code == 400
    assert response.json()["success"] is False


def test_worker_captures_into_the_default_inbox(
    client: TestClient, services: Services, boot: Bootstrap
) -> None:
    """In sandbox mode the worker captures each message once and records deliveries."""
    ids = client.post("/api/send", json=MAIL).json()["message_ids"]
    worker = DeliveryWorker(services)
    assert asyncio.run(worker.run_once()) == 4
    assert asyncio.run(worker.run_once()) == 0
    assert _count(services, sandbox_messages, sandbox_messages.c.inbox_id == boot.inbox_id) == 1
    assert _count(services, deliveries, deliveries.c.state == "delivered") == 4
    assert _count(services, events, events.c.kind == "delivery", events.c.message_id.in_(ids)) == 4
    captured = client.get(f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages")
    assert captured.status_code == 200
    [message] = captured.json()
    assert message["subject"] == "Hello"
    assert message["to_email"] == "a@example.org"


def test_capture_is_idempotent_when_a_lease_expires(
    client: TestClient, services: Services, boot: Bootstrap
) -> None:
    """A delivery leased again after its lease expired is not captured twice."""
    client.post("/api/send", json=MAIL)
    worker = DeliveryWorker(services)
    from postroom.queue import leases
    from postroom.sandbox import deliver

    now = services.clock.now()
    leased = services.db.write_sync(
        lambda c: leases.lease_due(
            c, owner="dead", now=now, lease_seconds=0, limit=10, max_leases=10
        )
    )
    plans = services.db.read_sync(lambda c: deliver.plan_capture(services, c, leased, now))
    # The first worker captured but "crashed" before completing: simulate by inserting only.
    services.db.write_sync(lambda c: deliver.sandbox_repo.insert_captured(c, plans.captures))
    assert asyncio.run(worker.run_once()) == 4
    assert _count(services, sandbox_messages) == 1
    assert _count(services, deliveries, deliveries.c.state == "delivered") == 4


def test_reject_when_the_account_has_no_inbox(
    client: TestClient, services: Services, boot: Bootstrap
) -> None:
    """With no inbox to capture into, deliveries are rejected with a reject event."""
    from postroom.storage.tables import inboxes

    services.db.write_sync(lambda c: c.execute(inboxes.delete()))
    client.post("/api/send", json=MAIL)
    asyncio.run(DeliveryWorker(services).run_once())
    assert _count(services, deliveries, deliveries.c.state == "rejected") == 4
    assert _count(services, events, events.c.kind == "reject") == 4


def test_sandbox_send_captures_directly_and_returns_one_id(
    client: TestClient, services: Services, boot: Bootstrap
) -> None:
    """POST /api/send/{inbox_id} captures at once and answers a single numeric id."""
    response = client.post(f"/api/send/{boot.inbox_id}", json=MAIL)
    assert response.status_code == 200, response.text
    [sandbox_id] = response.json()["message_ids"]
    # Above 2^32 as the contract's ids are, and exact in a JavaScript number (< 2^53).
    assert 2**32 < int(sandbox_id) < 2**53
    assert _count(services, deliveries) == 0
    assert _count(services, sandbox_messages, sandbox_messages.c.id == int(sandbox_id)) == 1


def test_sandbox_ids_stay_unique_when_two_processes_capture_at_once(
    services: Services, boot: Bootstrap, settings: Settings
) -> None:
    """Ids come from the database (a sequence; SQLite's AUTOINCREMENT under its write
    lock), so two processes sending at once never collide and each sees them grow."""
    second = Services(settings=settings, db=Database.from_url(settings.database_url))

    def send_many(app_services: Services) -> list[int]:
        with TestClient(create_app(app_services)) as http:
            http.headers["Authorization"] = f"Bearer {boot.token}"
            return [
                int(http.post(f"/api/send/{boot.inbox_id}", json=MAIL).json()["message_ids"][0])
                for _ in range(25)
            ]

    try:
        with ThreadPoolExecutor(2) as pool:
            first_ids, second_ids = pool.map(send_many, [services, second])
    finally:
        second.db.close()
    assert len(set(first_ids) | set(second_ids)) == 50
    assert first_ids == sorted(first_ids) and second_ids == sorted(second_ids)


def test_sandbox_send_to_unknown_inbox_is_404(client: TestClient) -> None:
    response = client.post("/api/send/999999", json=MAIL)
    assert response.status_code == 404
    assert response.json() == {"success": False, "errors": ["Not Found"]}
