"""Sending quotas and disabled accounts at accept time (services/quotas.py)."""

from __future__ import annotations

from sqlalchemy import select
from starlette.testclient import TestClient

from postroom.domain.audit import Actor
from postroom.services import Services, quotas
from postroom.services.accounts import Bootstrap
from postroom.storage.tables import events, messages

SEND = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "x@example.org"}],
    "subject": "s",
    "text": "t",
}


def test_a_hard_daily_quota_refuses_with_429(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    quotas.set_quotas(services, boot.account_id, Actor.cli(), daily=3, monthly=None, mode="hard")
    two = {**SEND, "to": [{"email": "x@example.org"}, {"email": "y@example.org"}]}
    assert client.post("/api/send", json=two).status_code == 200
    refused = client.post("/api/send", json=two)
    assert refused.status_code == 429
    assert refused.json() == {"success": False, "errors": ["Rate limit exceeded"]}
    assert int(refused.headers["retry-after"]) > 0
    assert client.post("/api/send", json=SEND).status_code == 200  # exactly the third
    assert client.post("/api/send", json=SEND).status_code == 429
    # Sandbox sends do not count.
    inbox = client.get(f"/api/accounts/{boot.account_id}/inboxes").json()[0]
    assert client.post(f"/api/send/{inbox['id']}", json=SEND).status_code == 200
    entries = client.get("/api/audit_log?action=account.quotas_changed").json()
    assert entries[0]["after"] == {"daily": 3, "monthly": None, "mode": "hard"}


def test_a_soft_quota_warns_at_80_and_100_percent(
    services: Services, client: TestClient, boot: Bootstrap
) -> None:
    quotas.set_quotas(services, boot.account_id, Actor.cli(), daily=None, monthly=5, mode="soft")
    for _ in range(6):
        assert client.post("/api/send", json=SEND).status_code == 200

    def warnings(conn: object) -> list[dict[str, object]]:
        query = select(events.c.details).where(events.c.kind == "quota_warning")
        return [row[0] for row in conn.execute(query)]  # type: ignore[attr-defined]

    found = services.db.read_sync(warnings)
    assert [w["percent"] for w in found] == [80, 100]
    assert all(w["period"] == "monthly" and w["quota"] == 5 for w in found)
    mails = services.db.read_sync(
        lambda conn: list(
            conn.execute(select(messages.c.subject).where(messages.c.category == "postroom-quota"))
        )
    )
    assert len(mails) == 2 and "80 %" in mails[0][0]
