"""The FastAPI example of docs/testing.md: an app that sends with httpx, configured from
the environment, tested with FastAPI's TestClient and the pytest plugin's fixtures."""

from __future__ import annotations

import os

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from postroom.testing.plugin import PostroomServer
from postroom.testing.sandbox import Sandbox

app = FastAPI()


@app.post("/invite")
def invite(email: str) -> dict[str, bool]:
    httpx.post(
        f"{os.environ['MAIL_API_URL']}/api/send",
        headers={"Authorization": f"Bearer {os.environ['MAIL_API_TOKEN']}"},
        json={
            "from": {"email": "team@example.com"},
            "to": [{"email": email}],
            "subject": "You're invited",
            "text": "Join us: https://app.example.com/join?code=abc",
        },
    ).raise_for_status()
    return {"ok": True}


def test_invite_mails_a_join_link(
    postroom_server: PostroomServer, postroom_sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAIL_API_URL", postroom_server.url)
    monkeypatch.setenv("MAIL_API_TOKEN", postroom_server.token)
    with TestClient(app) as client:
        assert client.post("/invite", params={"email": "bob@example.org"}).json() == {"ok": True}
    mail = postroom_sandbox.next_mail(to="bob@example.org")
    assert mail.subject == "You're invited"
    assert mail.links == ["https://app.example.com/join?code=abc"]
