"""The API apps do not consult OpenTelemetry per request (api/app.py: NO_TELEMETRY).

FastAPI asks OpenTelemetry on every request whether a tracer, meter or logger provider
is configured (reading the environment each time); Postroom configures none, and that
question was ~4% of the event loop's time under load. The apps switch it off.
"""

from __future__ import annotations

from typing import Any

import opentelemetry.trace
import pytest
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.services import Services
from postroom.services.accounts import Bootstrap


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_requests_do_not_ask_opentelemetry(
    services: Services, boot: Bootstrap, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked: list[int] = []
    real = opentelemetry.trace.get_tracer_provider

    def counting() -> Any:
        asked.append(1)
        return real()

    monkeypatch.setattr(opentelemetry.trace, "get_tracer_provider", counting)
    with TestClient(create_app(services)) as client:
        client.headers["Authorization"] = f"Bearer {boot.token}"
        for _ in range(3):
            assert client.get("/api/accounts").status_code == 200
    assert asked == []
