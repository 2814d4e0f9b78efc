"""Failed API authentications are throttled per client address, and unknown tokens are
remembered briefly, so a flood of wrong tokens costs no database reads; a correct token
from the same address keeps working.

Real app (Starlette's TestClient, which sets the client address), both database backends;
the reads are counted with a SQLAlchemy event listener.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from querycount import counting

ATTACKER = ("198.51.100.7", 40000)
NEIGHBOUR = ("198.51.100.8", 40000)
MAIL = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "b@dest.example"}],
    "subject": "s",
    "text": "t",
}


def random_token() -> str:
    return "pr_" + secrets.token_hex(20)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def throttled(services: Services) -> Services:
    services.settings.ratelimits.failed_auth = "10/minute"
    return services


@pytest.fixture
def attacker(throttled: Services, boot: Bootstrap) -> Iterator[TestClient]:
    with TestClient(create_app(throttled), client=ATTACKER) as client:
        yield client


def test_many_wrong_tokens_get_429_after_the_threshold_without_database_reads(
    attacker: TestClient, throttled: Services, boot: Bootstrap
) -> None:
    accounts = "/api/accounts"
    # The right token was in use before the flood began.
    assert attacker.get(accounts, headers=bearer(boot.token)).status_code == 200
    assert [
        attacker.get(accounts, headers=bearer(random_token())).status_code for _ in range(10)
    ] == [401] * 10
    refused = attacker.get(accounts, headers=bearer(random_token()))
    assert refused.status_code == 429
    assert refused.json() == {"errors": "Rate limit exceeded"}
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    with counting(throttled.db.engine) as seen:
        codes = {
            attacker.get(accounts, headers=bearer(random_token())).status_code for _ in range(200)
        }
    assert codes == {429}
    assert seen.n == 0
    # The sending host answers in its own family.
    sent = attacker.post("/api/send", json=MAIL, headers=bearer(random_token()))
    assert sent.status_code == 429
    assert sent.json() == {"success": False, "errors": ["Rate limit exceeded"]}
    assert "Retry-After" in sent.headers
    # The right token from the same address still works, on both hosts.
    assert attacker.get(accounts, headers=bearer(boot.token)).status_code == 200
    assert attacker.post("/api/send", json=MAIL, headers=bearer(boot.token)).status_code == 200


def test_other_addresses_are_not_throttled(
    attacker: TestClient, throttled: Services, boot: Bootstrap
) -> None:
    for _ in range(11):
        attacker.get("/api/accounts", headers=bearer(random_token()))
    with TestClient(create_app(throttled), client=NEIGHBOUR) as neighbour:
        assert neighbour.get("/api/accounts", headers=bearer(random_token())).status_code == 401


def test_a_wrong_token_is_looked_up_once_then_remembered(
    throttled: Services, boot: Bootstrap
) -> None:
    throttled.settings.ratelimits.failed_auth = None  # the cache alone
    wrong = bearer("pr_" + boot.token[3:11] + "0" * 32)  # an existing key id, wrong secret
    with TestClient(create_app(throttled), client=ATTACKER) as client:
        with counting(throttled.db.engine) as first:
            assert client.get("/api/accounts", headers=wrong).status_code == 401
        with counting(throttled.db.engine) as again:
            assert [client.get("/api/accounts", headers=wrong).status_code for _ in range(50)] == [
                401
            ] * 50
    assert first.n >= 1 and again.n == 0
