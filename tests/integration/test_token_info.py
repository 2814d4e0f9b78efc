"""``GET /api/token``: the calling token's account, name and scopes (what ``postroom mcp``
reads to decide whether to offer its sending tools)."""

from __future__ import annotations

from starlette.testclient import TestClient

from postroom.services import Services
from postroom.services.accounts import Bootstrap, issue_token


def test_the_token_describes_itself(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    assert client.get("/api/token").json() == {
        "account_id": boot.account_id,
        "name": "Default token",
        "scopes": ["admin"],
    }
    reader = issue_token(services, "ci", boot.account_id, ("read", "send"))
    answer = client.get("/api/token", headers={"Authorization": f"Bearer {reader}"})
    assert answer.json()["scopes"] == ["read", "send"]
    assert answer.json()["name"] == "ci"
    assert client.get("/api/token", headers={"Authorization": "Bearer nope"}).status_code == 401
