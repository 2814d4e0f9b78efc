"""``postroom webhook list|log|replay|test|resume`` against a booted data directory and a
real receiver on loopback (allowed through the environment, as an operator would)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from postroom.cli.main import app
from postroom.config import Settings
from postroom.domain.events import EventKind
from postroom.events.recorder import event_row
from postroom.services import Services
from postroom.services import webhooks as service
from postroom.services.accounts import bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from postroom.storage.repos import messages as message_repo
from postroom.storage.tables import webhook_batches, webhooks
from webhookreceiver import WebhookReceiver

runner = CliRunner()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture
def instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, receiver: WebhookReceiver
) -> Iterator[tuple[Path, Services, int]]:
    monkeypatch.setenv("POSTROOM_WEBHOOKS__ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    monkeypatch.setenv("POSTROOM_WEBHOOKS__ALLOWED_PORTS", "[]")
    data = tmp_path / "data"
    settings = Settings(storage={"data_dir": data})
    db = Database.from_url(settings.database_url)
    upgrade(db.engine)
    services = Services(settings=settings, db=db)
    boot = bootstrap(services)
    assert boot is not None
    body = {
        "webhook": {
            "url": receiver.url,
            "webhook_type": "email_sending",
            "sending_stream": "transactional",
            "event_types": ["delivery"],
        }
    }
    created = asyncio.run(service.create(services, boot.account_id, body))
    yield data, services, int(created.row["id"])
    db.close()


def _run(data: Path, *args: str) -> str:
    result = runner.invoke(app, ["webhook", *args, "--data-dir", str(data)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_list_test_log_replay_resume(
    instance: tuple[Path, Services, int], receiver: WebhookReceiver
) -> None:
    data, services, wid = instance
    listed = _run(data, "list")
    assert f"127.0.0.1:{receiver.port}" in listed and "active" in listed
    assert "delivered: HTTP 200" in _run(data, "test", str(wid))
    [post] = receiver.posts
    assert json.loads(post.body)["events"][0]["email"] == "test@example.com"
    log = _run(data, "log", str(wid))
    assert "test" in log and "200" in log
    # Replay: an event recorded an hour ago is queued again for the server to send.
    then = datetime.now(UTC) - timedelta(hours=1)
    row = event_row(
        services.ids, 1, EventKind.DELIVERY, "d-1", "transactional", "a@b.example", {}, then
    )
    services.db.write_sync(lambda c: message_repo.insert_events(c, [row]))
    since = (then - timedelta(minutes=1)).isoformat()
    until = (then + timedelta(minutes=1)).isoformat()
    assert "queued 1 event(s) in 1 batch(es)" in _run(
        data, "replay", str(wid), "--since", since, "--until", until
    )
    kinds = services.db.read_sync(lambda c: c.execute(select(webhook_batches.c.kind)).scalars())
    assert list(kinds) == ["replay"]
    # Resume clears a pause.
    services.db.write_sync(
        lambda c: c.execute(webhooks.update().values(paused_at=then, pause_reason="x"))
    )
    assert "paused" in _run(data, "list")
    assert "resumed" in _run(data, "resume", str(wid))
    assert "paused" not in _run(data, "list")


def test_unknown_webhook_and_bad_times_exit_2(instance: tuple[Path, Services, int]) -> None:
    data, _, wid = instance
    missing = runner.invoke(app, ["webhook", "log", "999", "--data-dir", str(data)])
    assert missing.exit_code == 2 and "no webhook 999" in missing.output
    bad = runner.invoke(
        app,
        [
            "webhook",
            "replay",
            str(wid),
            "--since",
            "yesterday",
            "--until",
            "now",
            "--data-dir",
            str(data),
        ],
    )
    assert bad.exit_code == 2
