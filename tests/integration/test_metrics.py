"""GET /metrics: Prometheus text format, computed from the database on each scrape."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.clock import FrozenClock
from postroom.domain.streams import Stream
from postroom.services import Services
from postroom.services.accounts import Bootstrap
from postroom.workers.delivery import DeliveryWorker

MAIL: dict[str, Any] = {
    "from": {"email": "a@example.com"},
    "to": [{"email": "b@example.org"}],
    "subject": "S",
    "text": "T",
}

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _scrape(client: TestClient) -> Samples:
    response = client.get("/metrics", headers={"Authorization": ""})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def test_metrics_follow_the_queue_and_the_events(services: Services, client: TestClient) -> None:
    clock = FrozenClock()
    services.clock = clock

    before = _scrape(client)
    assert _value(before, "postroom_queue_depth", stream="transactional") == 0
    assert _value(before, "postroom_queue_oldest_age_seconds", stream="transactional") == 0
    assert _value(before, "postroom_events_total", kind="accepted") == 0

    assert client.post("/api/send", json=MAIL).status_code == 200
    assert client.post("/api/send", json=MAIL).status_code == 200
    clock.advance(90)

    queued = _scrape(client)
    assert _value(queued, "postroom_queue_depth", stream="transactional") == 2
    assert _value(queued, "postroom_queue_depth", stream="bulk") == 0
    assert _value(queued, "postroom_queue_oldest_age_seconds", stream="transactional") == 90
    assert _value(queued, "postroom_queue_oldest_age_seconds", stream="bulk") == 0
    assert _value(queued, "postroom_deliveries", state="queued", stream="transactional") == 2
    assert _value(queued, "postroom_deliveries", state="delivered", stream="transactional") == 0
    assert _value(queued, "postroom_events_total", kind="accepted") == 2
    assert _value(queued, "postroom_events_total", kind="delivery") == 0

    assert asyncio.run(DeliveryWorker(services).run_once()) == 2

    after = _scrape(client)
    assert _value(after, "postroom_queue_depth", stream="transactional") == 0
    assert _value(after, "postroom_queue_oldest_age_seconds", stream="transactional") == 0
    assert _value(after, "postroom_deliveries", state="queued", stream="transactional") == 0
    assert _value(after, "postroom_deliveries", state="delivered", stream="transactional") == 2
    for state in ("rejected", "bounced", "failed", "shunted"):
        assert _value(after, "postroom_deliveries", state=state, stream="transactional") == 0
    assert _value(after, "postroom_events_total", kind="accepted") == 2
    assert _value(after, "postroom_events_total", kind="delivery") == 2
    # No connections provider: the family is declared but has no samples.
    assert not any(name == "postroom_smtp_connections_open" for name, _ in after)


def test_bulk_stream_is_reported_separately(services: Services, boot: Bootstrap) -> None:
    with TestClient(create_app(services, Stream.BULK)) as bulk:
        bulk.headers["Authorization"] = f"Bearer {boot.token}"
        assert bulk.post("/api/send", json=MAIL).status_code == 200
    with TestClient(create_app(services)) as transactional:
        samples = _scrape(transactional)
    assert _value(samples, "postroom_queue_depth", stream="bulk") == 1
    assert _value(samples, "postroom_queue_depth", stream="transactional") == 0
    assert _value(samples, "postroom_queue_oldest_age_seconds", stream="bulk") >= 0
    assert _value(samples, "postroom_deliveries", state="queued", stream="bulk") == 1


def test_connections_provider_is_reported(services: Services, boot: Bootstrap) -> None:
    app = create_app(services)
    app.state.smtp_connections = lambda: {"gmail.com": 3, "outlook.com": 1}
    with TestClient(app) as client:
        samples = _scrape(client)
    assert _value(samples, "postroom_smtp_connections_open", site="gmail.com") == 3
    assert _value(samples, "postroom_smtp_connections_open", site="outlook.com") == 1


def test_failing_connections_provider_does_not_break_the_scrape(
    services: Services, boot: Bootstrap
) -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("pool gone")

    app = create_app(services)
    app.state.smtp_connections = broken
    with TestClient(app) as client:
        samples = _scrape(client)
    assert _value(samples, "postroom_queue_depth", stream="transactional") == 0
    assert not any(name == "postroom_smtp_connections_open" for name, _ in samples)


def test_metrics_are_not_served_on_the_bulk_listener(services: Services, boot: Bootstrap) -> None:
    with TestClient(create_app(services, Stream.BULK)) as bulk:
        assert bulk.get("/metrics").status_code == 404


def test_metrics_stay_out_of_the_openapi_document(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
