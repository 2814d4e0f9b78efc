"""Idempotency-Key on /api/send and /api/batch: a retry gets the first answer, sends nothing.

Counted in the database: a replay must not add a message, a delivery or an event.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from starlette.testclient import TestClient

from postroom.clock import FrozenClock
from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_default_inbox, create_token
from postroom.storage.repos import accounts as account_repo
from postroom.storage.tables import deliveries, idempotency_keys, messages
from postroom.workers.scheduler import purge_idempotency_keys

MAIL = {
    "from": {"email": "orders@shop.example"},
    "to": [{"email": "ana@dest.example"}, {"email": "bo@dest.example"}],
    "subject": "Your order",
    "text": "Shipped.",
}


def _count(services: Services, table: Any) -> int:
    query = select(func.count()).select_from(table)
    return int(services.db.read_sync(lambda c: c.execute(query).scalar_one()))


def _send(
    client: TestClient, key: str | None, body: dict[str, Any] = MAIL, token: str | None = None
) -> Any:
    headers = {"Idempotency-Key": key} if key is not None else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return client.post("/api/send", json=body, headers=headers)


def test_a_retry_with_the_same_key_answers_the_same_ids_and_sends_nothing(
    client: TestClient, services: Services
) -> None:
    first = _send(client, "order-42")
    again = _send(client, "order-42")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert len(first.json()["message_ids"]) == 2
    assert _count(services, messages) == 1
    assert _count(services, deliveries) == 2


def test_without_a_key_every_request_sends(client: TestClient, services: Services) -> None:
    _send(client, None)
    _send(client, None)
    assert _count(services, messages) == 2


def test_the_same_key_with_another_request_is_refused(
    client: TestClient, services: Services
) -> None:
    assert _send(client, "k1").status_code == 200
    other = _send(client, "k1", {**MAIL, "subject": "Another order"})
    assert other.status_code == 422
    assert other.json()["success"] is False
    assert "already used with a different request" in other.json()["errors"][0]
    # The same body on another path (the sandbox send) is another request too.
    assert (
        client.post("/api/send/1", json=MAIL, headers={"Idempotency-Key": "k1"}).status_code == 422
    )
    assert _count(services, messages) == 1


@pytest.mark.parametrize("key", [b"", b"x" * 257, "naïve".encode("latin-1"), b"tab\there"])
def test_malformed_keys_are_refused_in_the_contract_shape(client: TestClient, key: bytes) -> None:
    response = client.post("/api/send", json=MAIL, headers={b"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "errors": ["Idempotency-Key must be 1 to 256 printable ASCII characters"],
    }


def test_keys_belong_to_one_account(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    def second(conn: Any) -> str:
        account_id = account_repo.insert_account(conn, "Other", services.clock.now())
        create_default_inbox(services, conn, account_id)
        return create_token(services, conn, account_id, "other")

    other_token = services.db.write_sync(second)
    mine = _send(client, "shared-key").json()["message_ids"]
    theirs = _send(client, "shared-key", token=other_token).json()["message_ids"]
    assert set(mine).isdisjoint(theirs)
    assert _count(services, messages) == 2


def test_a_batch_replays_every_item_including_the_failed_ones(
    client: TestClient, services: Services
) -> None:
    batch = {
        "base": {"from": {"email": "orders@shop.example"}, "subject": "Hi", "text": "Hello"},
        "requests": [
            {"to": [{"email": "ana@dest.example"}]},
            {"to": [{"email": "not-an-address"}]},
        ],
    }
    headers = {"Idempotency-Key": "batch-7"}
    first = client.post("/api/batch", json=batch, headers=headers)
    again = client.post("/api/batch", json=batch, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert [r["success"] for r in first.json()["responses"]] == [True, False]
    assert _count(services, deliveries) == 1


def test_concurrent_requests_with_one_key_send_once(client: TestClient, services: Services) -> None:
    from postroom.api.app import create_app
    from postroom.domain.streams import Stream

    async def main() -> list[Any]:
        import httpx

        app = create_app(services, Stream.TRANSACTIONAL)
        transport = httpx.ASGITransport(app=app)
        headers = {**client.headers, "Idempotency-Key": "race"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            return await asyncio.gather(
                *(http.post("/api/send", json=MAIL, headers=headers) for _ in range(8))
            )

    responses = asyncio.run(main())
    assert {r.status_code for r in responses} == {200}
    assert len({tuple(r.json()["message_ids"]) for r in responses}) == 1
    assert _count(services, messages) == 1


def test_keys_expire_and_the_scheduler_purges_them(client: TestClient, services: Services) -> None:
    clock = FrozenClock()
    services.clock = clock
    first = _send(client, "daily").json()["message_ids"]
    clock.advance(timedelta(hours=25).total_seconds())
    later = _send(client, "daily", {**MAIL, "subject": "Next day"})  # reusable after 24 h
    assert later.status_code == 200 and later.json()["message_ids"] != first
    clock.advance(timedelta(hours=25).total_seconds())
    assert asyncio.run(purge_idempotency_keys(services)) == 1
    assert _count(services, idempotency_keys) == 0
