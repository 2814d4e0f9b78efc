"""The contract's rate limits (§7): 429 in the right shape, per token and per account."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from postroom.api.auth import limit_group
from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_token


@pytest.fixture
def limited(services: Services) -> Services:
    services.settings.ratelimits.enabled = True
    services.rate_limiter = None  # rebuilt from the settings on first use
    return services


def _token(services: Services, boot: Bootstrap) -> str:
    return services.db.write_sync(
        lambda conn: create_token(services, conn, boot.account_id, "second")
    )


def test_stats_allow_ten_a_minute_per_account_then_429(
    client: TestClient, boot: Bootstrap, limited: Services
) -> None:
    path = f"/api/accounts/{boot.account_id}/stats?start_date=2026-01-01&end_date=2026-01-31"
    assert [client.get(path).status_code for _ in range(10)] == [200] * 10
    refused = client.get(path)
    assert refused.status_code == 429
    assert refused.json() == {"errors": "Rate limit exceeded"}
    assert refused.headers["X-Ratelimit-Limit"] == "10"
    # Per account: another token of the same account shares the budget.
    other = {"Authorization": f"Bearer {_token(limited, boot)}"}
    assert client.get(path, headers=other).status_code == 429
    # Other endpoints are not in the stats budget.
    assert client.get(f"/api/accounts/{boot.account_id}/sending_domains").status_code == 200


def test_contacts_share_one_budget_per_account(
    client: TestClient, boot: Bootstrap, limited: Services
) -> None:
    limited.settings.ratelimits.contacts = "3/minute"
    limited.rate_limiter = None
    paths = ["/api/contacts/lists", f"/api/accounts/{boot.account_id}/contacts/fields"] * 2
    assert [client.get(p).status_code for p in paths] == [200, 200, 200, 429]
    assert client.get(f"/api/accounts/{boot.account_id}/sending_domains").status_code == 200


def test_every_general_endpoint_counts_per_token(
    client: TestClient, boot: Bootstrap, limited: Services
) -> None:
    limited.settings.ratelimits.per_token = "5/10 seconds"
    limited.rate_limiter = None
    path = f"/api/accounts/{boot.account_id}/sending_domains"
    assert [client.get(path).status_code for _ in range(5)] == [200] * 5
    assert client.get("/api/accounts").status_code == 429
    other = {"Authorization": f"Bearer {_token(limited, boot)}"}
    assert client.get(path, headers=other).status_code == 200  # its own budget


def test_sending_is_unlimited_unless_configured(client: TestClient, limited: Services) -> None:
    mail: dict[str, Any] = {
        "from": {"email": "a@shop.example"},
        "to": [{"email": "b@dest.example"}],
        "subject": "s",
        "text": "t",
    }
    assert all(client.post("/api/send", json=mail).status_code == 200 for _ in range(12))
    limited.settings.ratelimits.sending = "2/minute"
    limited.rate_limiter = None
    assert [client.post("/api/send", json=mail).status_code for _ in range(3)] == [200, 200, 429]
    refused = client.post("/api/send", json=mail)
    assert refused.json() == {"success": False, "errors": ["Rate limit exceeded"]}


@pytest.mark.parametrize(
    ("path", "group"),
    [
        ("/api/accounts/1/stats", "stats"),
        ("/api/stats/domains", "stats"),
        ("/api/accounts/1/suppressions/abc", "suppressions"),
        ("/api/email_logs", "email_logs"),
        ("/api/accounts/1/email_logs/export", "email_logs"),
        ("/api/accounts/1/email_logs/0f9d", "email_log"),
        ("/api/accounts/1/sending_domains", None),
        ("/api/accounts/1/contacts/lists", "contacts"),
        ("/api/contacts/stats@example.com", "contacts"),
        ("/api/inbound/folders", None),
    ],
)
def test_limit_groups(path: str, group: str | None) -> None:
    assert limit_group(path) == group
