"""Stats API (spec §4.3) over the seeded data set: every group and filter, known answers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.testclient import TestClient

from logseed import Seeded, other_account, seed_sync
from postroom.clock import FrozenClock
from postroom.services import Services, rollups
from postroom.services.accounts import Bootstrap

RANGE = "start_date=2026-03-10&end_date=2026-03-11"


@pytest.fixture
def seeded(services: Services, boot: Bootstrap) -> Seeded:
    services.settings.insights.stats_settle_seconds = 0
    data = seed_sync(services, boot.account_id, FrozenClock())
    asyncio.run(rollups.consume(services))
    return data


def _stats(client: TestClient, account_id: int, path: str = "", query: str = RANGE) -> Any:
    response = client.get(f"/api/accounts/{account_id}/stats{path}?{query}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    return response.json()


def _counts(stats: dict[str, Any]) -> tuple[int, int, int, int, int]:
    return (
        stats["delivery_count"],
        stats["bounce_count"],
        stats["open_count"],
        stats["click_count"],
        stats["spam_count"],
    )


def test_aggregate_counts_and_rates(client: TestClient, seeded: Seeded) -> None:
    stats = _stats(client, seeded.account_id)
    assert stats == {
        "delivery_count": 4,
        "delivery_rate": 0.8,
        "bounce_count": 1,
        "bounce_rate": 0.2,
        "open_count": 2,  # m1 opened twice counts once
        "open_rate": 0.5,
        "click_count": 1,
        "click_rate": 0.5,
        "spam_count": 1,
        "spam_rate": 0.25,
        # Postroom's extras: every open by people (m1's two), machines', unsubscribes
        "total_open_count": 3,
        "total_click_count": 1,
        "machine_open_count": 0,
        "machine_click_count": 0,
        "unsubscribe_count": 0,
        "unsubscribe_rate": 0.0,
    }


def test_by_domain_category_provider_and_date(client: TestClient, seeded: Seeded) -> None:
    a = seeded.account_id
    by_domain = {i["sending_domain_id"]: _counts(i["stats"]) for i in _stats(client, a, "/domains")}
    assert by_domain == {
        seeded.shop_id: (2, 1, 2, 1, 0),
        seeded.news_id: (2, 0, 0, 0, 1),
        0: (0, 0, 0, 0, 0),  # m7, from a domain the account has not registered (rejected)
    }
    by_category = {i["category"]: _counts(i["stats"]) for i in _stats(client, a, "/categories")}
    assert by_category == {
        "digest": (2, 0, 0, 0, 1),
        "receipt": (0, 1, 0, 0, 0),
        "welcome": (2, 0, 2, 1, 0),
    }
    by_esp = {
        i["email_service_provider"]: _counts(i["stats"])
        for i in _stats(client, a, "/email_service_providers")
    }
    assert by_esp == {
        "Google": (2, 0, 1, 1, 0),  # m5 delivered to a sandbox: provider from gmail.com
        "Google Workspace": (1, 0, 1, 0, 0),
        "Outlook": (1, 0, 0, 0, 1),
        "Yahoo": (0, 1, 0, 0, 0),
        "iCloud": (0, 0, 0, 0, 0),
    }
    by_date = [(i["date"], _counts(i["stats"])) for i in _stats(client, a, "/date")]
    assert by_date == [("2026-03-10", (3, 1, 2, 1, 1)), ("2026-03-11", (1, 0, 0, 0, 0))]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ("sending_streams%5B%5D=bulk", (2, 0, 0, 0, 1)),
        ("categories%5B%5D=welcome&categories%5B%5D=receipt", (2, 1, 2, 1, 0)),
        ("categories[]=welcome&categories[]=receipt", (2, 1, 2, 1, 0)),
        ("categories%5B0%5D=welcome&categories%5B1%5D=receipt", (2, 1, 2, 1, 0)),
        ("email_service_providers%5B%5D=Google", (2, 0, 1, 1, 0)),
        (
            "sending_streams%5B%5D=transactional&email_service_providers%5B%5D=Yahoo",
            (0, 1, 0, 0, 0),
        ),
    ],
)
def test_array_filters_in_every_encoding(
    client: TestClient, seeded: Seeded, filters: str, expected: tuple[int, ...]
) -> None:
    assert _counts(_stats(client, seeded.account_id, "", f"{RANGE}&{filters}")) == expected


def test_domain_filter_and_date_range(client: TestClient, seeded: Seeded) -> None:
    a = seeded.account_id
    shop = _stats(client, a, "", f"{RANGE}&sending_domain_ids%5B%5D={seeded.shop_id}")
    assert _counts(shop) == (2, 1, 2, 1, 0)
    alias = _stats(client, a, "", f"{RANGE}&domain_ids[]={seeded.news_id}")
    assert _counts(alias) == (2, 0, 0, 0, 1)
    day2 = _stats(client, a, "", "start_date=2026-03-11&end_date=2026-03-11")
    assert _counts(day2) == (1, 0, 0, 0, 0)
    empty = _stats(client, a, "", "start_date=2025-01-01&end_date=2025-01-31")
    assert _counts(empty) == (0, 0, 0, 0, 0) and empty["delivery_rate"] == 0.0


def test_token_scoped_alias(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/api/stats/categories?{RANGE}")
    assert response.status_code == 200
    assert {i["category"] for i in response.json()} == {"digest", "receipt", "welcome"}


def test_missing_or_bad_dates_answer_400(client: TestClient, boot: Bootstrap) -> None:
    url = f"/api/accounts/{boot.account_id}/stats"
    response = client.get(url)
    assert response.status_code == 400
    assert response.json() == {"error": "Missing required parameter: start_date"}
    assert client.get(f"{url}?start_date=2026-01-01").json() == {
        "error": "Missing required parameter: end_date"
    }
    assert client.get(f"{url}?start_date=2026-13-01&end_date=2026-01-02").status_code == 400
    assert client.get(f"{url}?{RANGE}&sending_domain_ids[]=x").status_code == 400


def test_another_account_is_not_found(
    services: Services, client: TestClient, seeded: Seeded
) -> None:
    other_id, other_token = other_account(services)
    response = client.get(f"/api/accounts/{other_id}/stats?{RANGE}")
    assert response.status_code == 404
    # The other tenant sees none of the seeded account's counts.
    mine = client.get(
        f"/api/accounts/{other_id}/stats?{RANGE}",
        headers={"Authorization": f"Bearer {other_token}"},
    )
    assert mine.status_code == 200 and _counts(mine.json()) == (0, 0, 0, 0, 0)


def test_the_consumer_is_incremental_and_counts_once(
    services: Services, client: TestClient, seeded: Seeded
) -> None:
    before = _stats(client, seeded.account_id)
    assert asyncio.run(rollups.consume(services)) == 0  # nothing new: nothing counted twice
    assert _stats(client, seeded.account_id) == before
