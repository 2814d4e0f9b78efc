"""Reading back what was just sent: the sandbox message list's ``message_id`` and ``wait``.

Mail sent through ``/api/send`` in sandbox mode is captured by the delivery worker, after
the send has answered. A newcomer who sends and reads at once finds an empty inbox, so
the list can wait for mail (``wait``, bounded) and pick the capture of one send by the id
the send answered (``message_id``). Both backends; the worker is the real one.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.workers.delivery import DeliveryWorker

MAIL = {
    "from": {"email": "hello@example.com"},
    "to": [{"email": "you@example.com"}, {"email": "them@example.com"}],
    "subject": "Hello",
    "text": "It works.",
}


def _messages_url(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages"


def test_message_id_finds_the_capture_of_a_send(
    client: TestClient, services: Services, boot: Bootstrap
) -> None:
    first = client.post("/api/send", json=MAIL).json()["message_ids"]
    other = client.post("/api/send", json={**MAIL, "subject": "Other"}).json()["message_ids"]
    asyncio.run(DeliveryWorker(services).run_once())
    url = _messages_url(boot)
    assert len(client.get(url).json()) == 2
    # Either recipient's message_id leads to the one captured copy of that message.
    for sent in first:
        found = client.get(url, params={"message_id": sent}).json()
        assert [m["subject"] for m in found] == ["Hello"]
    assert [m["subject"] for m in client.get(url, params={"message_id": other[0]}).json()] == [
        "Other"
    ]
    assert client.get(url, params={"message_id": str(uuid.uuid4())}).json() == []


def test_message_id_of_another_tenant_finds_nothing(
    client: TestClient, services: Services, boot: Bootstrap, other_tenant: tuple[int, int, str]
) -> None:
    account_id, inbox_id, token = other_tenant
    sent = client.post("/api/send", json=MAIL).json()["message_ids"][0]
    asyncio.run(DeliveryWorker(services).run_once())
    theirs = f"/api/accounts/{account_id}/inboxes/{inbox_id}/messages"
    found = client.get(theirs, params={"message_id": sent}, headers=_bearer(token))
    assert found.status_code == 200 and found.json() == []


def test_wait_returns_as_soon_as_the_worker_captures(services: Services, boot: Bootstrap) -> None:
    async def scenario() -> None:
        async with _client(services, boot) as http:
            started = time.monotonic()
            reading = asyncio.create_task(http.get(_messages_url(boot), params={"wait": 10}))
            sent = (await http.post("/api/send", json=MAIL)).json()["message_ids"][0]
            await asyncio.sleep(0.3)
            assert not reading.done()  # nothing captured yet: still waiting
            await DeliveryWorker(services).run_once()
            response = await reading
            elapsed = time.monotonic() - started
            assert response.status_code == 200
            assert [m["subject"] for m in response.json()] == ["Hello"]
            assert elapsed < 5, f"answered after {elapsed:.1f} s"
            params: dict[str, Any] = {"message_id": sent, "wait": 5}
            assert len((await http.get(_messages_url(boot), params=params)).json()) == 1

    asyncio.run(scenario())


def test_wait_gives_up_after_its_time(services: Services, boot: Bootstrap) -> None:
    async def scenario() -> None:
        async with _client(services, boot) as http:
            started = time.monotonic()
            response = await http.get(_messages_url(boot), params={"wait": 0.5})
            assert response.status_code == 200 and response.json() == []
            assert time.monotonic() - started >= 0.5

    asyncio.run(scenario())


def _client(services: Services, boot: Bootstrap) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://testserver",
        headers=_bearer(boot.token),
    )


@pytest.mark.parametrize("wait", ["31", "-1", "nan", "inf", "soon"])
def test_wait_is_bounded(client: TestClient, boot: Bootstrap, wait: str) -> None:
    response = client.get(_messages_url(boot), params={"wait": wait})
    assert response.status_code in (400, 422), response.text
    assert "errors" in response.json() or "error" in response.json()


def _bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def other_tenant(services: Services) -> tuple[int, int, str]:
    from sqlalchemy.engine import Connection

    from postroom.services.accounts import create_default_inbox, create_token
    from postroom.storage.repos import accounts as account_repo

    def run(conn: Connection) -> tuple[int, int, str]:
        account_id = account_repo.insert_account(conn, "Other", services.clock.now())
        inbox_id = create_default_inbox(services, conn, account_id)
        return account_id, inbox_id, create_token(services, conn, account_id, "other")

    return services.db.write_sync(run)
