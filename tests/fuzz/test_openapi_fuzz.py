"""Schemathesis against Postroom's own /openapi.json: no input answers a 5xx.

Every operation of the document is called with generated input (schemathesis's
examples, coverage and fuzzing phases, a bounded number of examples each, with a fixed
seed so a CI run is repeatable) on a real app over a real SQLite database,
authenticated with a real admin token of an account that has an inbox with a captured
message, a sending domain, a template and a suppression to find. A response fails the
run when it is a server error, or when it contradicts the schema the document declares
for its status.

The engine is driven in-process (schemathesis's pytest plugin does not run on pytest 9).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.config import Settings
from postroom.services import Services
from postroom.services.accounts import bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade

# Examples per operation and phase; ~100 operations make a run of about a minute here.
EXAMPLES = 10
SEED = 20260611


@pytest.fixture(scope="module")
def fuzzed(
    tmp_path_factory: pytest.TempPathFactory, spamd: int
) -> Iterator[tuple[FastAPI, str, Ids]]:
    root: Path = tmp_path_factory.mktemp("fuzz")
    config = Settings(
        storage={"data_dir": root / "data", "database_url": f"sqlite:///{root / 'p.db'}"},
        ratelimits={"enabled": False},
        # A generated ?wait= may ask for 30 s: the listing's wait is real, so keep it short.
        limits={"sandbox_max_wait_seconds": 0.2},
        # A generated webhook test event connects out: keep each attempt short.
        webhooks={"timeout": 1.0},
        # Spam reports are scored by a real spamd (tests/spamd.py).
        sandbox={"spamd_port": spamd},
    )
    db = Database.from_url(config.database_url)
    upgrade(db.engine)
    services = Services(settings=config, db=db)
    boot = bootstrap(services)
    assert boot is not None
    app = create_app(services)
    yield app, boot.token, _seed(app, boot.token, boot.account_id, boot.inbox_id)
    db.close()


Ids = dict[str, list[Any]]


def _seed(app: FastAPI, token: str, account: int, inbox: int) -> Ids:
    """Objects for the generated requests to find (and change, and delete)."""
    with TestClient(app, headers={"Authorization": f"Bearer {token}"}) as http:

        def made(method: str, path: str, body: Any) -> Any:
            response = http.request(method, f"/api/accounts/{account}{path}", json=body)
            assert response.status_code in (200, 201), response.text
            return response.json()

        domain = made("POST", "/sending_domains", {"sending_domain": {"domain_name": "fz.test"}})
        template = made(
            "POST",
            "/email_templates",
            {
                "email_template": {
                    "name": "T",
                    "subject": "Hi",
                    "category": "c",
                    "body_text": "{{n}}",
                }
            },
        )
        suppression = made(
            "POST", "/suppressions", {"email": "gone@fz.test", "sending_stream": "bulk"}
        )
        mail = {
            "from": {"email": "app@fz.test"},
            "to": [{"email": "ann@fz.test"}],
            "subject": "Hello",
            "text": "Hello",
            "attachments": [{"content": "aGVsbG8=", "filename": "a.txt"}],
        }
        captured = http.post(f"/api/send/{inbox}", json=mail).json()["message_ids"]
        sent = http.post("/api/send", json=mail).json()["message_ids"]
        project = made("GET", "/projects", None)[0]["id"]
        webhook = made(
            "POST",
            "/webhooks",
            {"webhook": {"url": "https://hooks.fz.test/", "webhook_type": "audit_log"}},
        )
    return {
        "account_id": [account],
        "inbox_id": [inbox],
        "project_id": [project],
        "domain_id": [domain["id"]],
        "template_id": [template["id"]],
        "suppression_id": [suppression["data"]["id"]],
        "message_id": [int(captured[0]), *sent],
        "attachment_id": [1],
        "webhook_id": [webhook["data"]["id"]],
    }


def _config(token: str, ids: Ids) -> SchemathesisConfig:
    # Half of the generated path ids are the seeded objects' (the rest are generated).
    bindings = {f"path.{name}": {"dictionary": name, "probability": 0.5} for name in ids}
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "dictionaries": {name: {"values": values} for name, values in ids.items()},
            "parameters": bindings,
            "headers": {"Authorization": f"Bearer {token}"},
            "generation": {"max-examples": EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
        }
    )


def _describe(event: events.ScenarioFinished) -> set[str]:
    """One line per failed check: the operation, the check, how to reproduce it."""
    found = set()
    for checks in event.recorder.checks.values():
        for check in checks:
            if check.failure_info is not None:
                sample = check.failure_info.code_sample
                found.add(f"{event.recorder.label}: {check.name}: {sample}")
    return found


# A failing example's repr can be large; Hypothesis warns about it (an error here).
@pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")
def test_no_generated_input_is_a_server_error(fuzzed: tuple[FastAPI, str, Ids]) -> None:
    app, token, ids = fuzzed
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(token, ids))
    # The in-process transport raises what the app raised (its 500s): each distinct one
    # is reported once, with the operation it came from.
    failures: set[str] = set()
    operations = 0
    started = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            operations += 1
            failures |= _describe(event)
        elif isinstance(event, events.NonFatalError):
            failures.add(f"{event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            failures.add(f"fatal: {event.exception!r}")
    elapsed = time.monotonic() - started
    assert operations > 100, operations  # every phase reached every operation
    report = "\n".join(sorted(failures))
    assert not failures, f"{report}\n({len(failures)} failures, {elapsed:.0f} s)"
