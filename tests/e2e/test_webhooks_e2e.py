"""Webhooks end to end: a real ``postroom serve`` in mx mode, a real SMTP receiver that
bounces some recipients, and a real webhook receiver that fails, then recovers.

1. ``serve`` runs in mx mode; a name server on loopback (tests/dnsserver.py) points the
   recipients' domain at an aiosmtpd receiver on 127.0.0.2 (tests/smtppeers.py) that
   answers ``550 5.1.1`` for some recipients. The sender domain is verified through
   the same name server.
2. A webhook (created with the API; its URL on 127.0.0.5, the only non-public network
   the server allows) gets every delivery and bounce. The receiver answers 503 at
   first; once a few POSTs have failed the server is killed with SIGKILL (no shutdown
   code), restarted on the same storage, and the receiver recovers.
3. Every event the database recorded arrives exactly once in 2xx-answered POSTs, with
   the contract's fields; every such POST verifies with the official Python SDK, the
   official Node SDK and the ``standardwebhooks`` library.
4. A replay of a chosen time range re-sends exactly that range's events.
5. Every SSRF form is refused by the live API (422), and a name that resolves to a
   private address is refused when connecting.

On SQLite and on PostgreSQL.
"""

from __future__ import annotations

import base64
import json
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks
from mailtrap.webhooks import verify_signature
from server import Server, Store, start_server
from test_node_sdk_e2e import NODE_DIR, node_sdk  # noqa: F401  (the fixture)

from dnsserver import LocalDnsServer
from smtppeers import Receivers
from webhookreceiver import Post, WebhookReceiver

pytestmark = pytest.mark.slow

SENDER_DOMAIN = "shop.test"
RCPT_DOMAIN = "dest.test"
HOOK_HOST = "127.0.0.5"
GOOD = [f"ok{i}@{RCPT_DOMAIN}" for i in range(12)]
BAD = [f"gone{i}@{RCPT_DOMAIN}" for i in range(4)]
WAIT = 60.0

SSRF_URLS = [
    "http://127.0.0.1/",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",
    "http://[64:ff9b::7f00:1]/",
    "http://[2002:7f00:1::]/",
    "http://[fe80::1%25eth0]/",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "ftp://hooks.example.com/",
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/",
    "http://hooks.example.com/\r\nX-Injected: 1",
]


@pytest.fixture
def dns() -> Iterator[LocalDnsServer]:
    with LocalDnsServer() as server:
        server.add_mx(RCPT_DOMAIN, 10, f"mx.{RCPT_DOMAIN}")
        server.add_a(f"mx.{RCPT_DOMAIN}", "127.0.0.2")
        server.add_a("hooks.rebind.test", "127.0.0.1")
        yield server


@pytest.fixture
def smtp() -> Iterator[Receivers]:
    receivers = Receivers()
    receivers.primary.unknown.update(BAD)
    receivers.start("127.0.0.2")
    try:
        yield receivers
    finally:
        receivers.close()


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(HOOK_HOST) as server:
        yield server


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    started: list[Server] = []
    yield started
    for server in started:
        server.kill9()


def _until(what: str, check: Any, server: Server, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert server.running, server.output()
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{server.output()}"
        time.sleep(0.1)


def _verify_domain(http: httpx.Client, account_id: int, dns: LocalDnsServer) -> None:
    base = f"/api/accounts/{account_id}/sending_domains"
    created = http.post(base, json={"sending_domain": {"domain_name": SENDER_DOMAIN}})
    assert created.status_code in (200, 201), created.text
    domain = created.json()
    dns.publish(domain["dns_records"])
    checked = http.post(f"{base}/{domain['id']}/verify")
    assert checked.json()["dns_verified"] is True, checked.text


def _events(post: Post) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = json.loads(post.body)["events"]
    return found


def _recorded(store: Store) -> dict[str, tuple[str, str, datetime]]:
    """event_id → (kind, recipient, time) of every delivery and bounce in the database."""
    rows = store.rows(
        "SELECT event_id, kind, recipient, created_at FROM events "
        "WHERE kind IN ('delivery', 'bounce') ORDER BY id"
    )
    return {str(r.event_id): (str(r.kind), str(r.recipient), _aware(r.created_at)) for r in rows}


def _aware(value: Any) -> datetime:
    parsed = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _node_verdicts(node: str, posts: list[Post], secret: str) -> list[bool]:
    payload = [
        {
            "body_b64": base64.b64encode(p.body).decode(),
            "signature": p.headers["Mailtrap-Signature"],
            "secret": secret,
        }
        for p in posts
    ]
    done = subprocess.run(
        [node, str(NODE_DIR / "verify_webhooks.js")],
        input=json.dumps(payload),
        capture_output=True,
        text=True,
        cwd=NODE_DIR,
        timeout=60,
        check=True,
    )
    verdicts: list[bool] = json.loads(done.stdout)
    return verdicts


def test_every_event_arrives_once_signed_after_failures_and_a_kill(
    tmp_path: Path,
    dns: LocalDnsServer,
    smtp: Receivers,
    hook: WebhookReceiver,
    servers: list[Server],
    database_url: str | None,
    node_sdk: str,  # noqa: F811
) -> None:
    data_dir = tmp_path / "data"
    env = {
        "POSTROOM_DELIVERY__MODE": "mx",
        "POSTROOM_DNS__SERVER": dns.address,
        "POSTROOM_DELIVERY__PORT": str(smtp.port),
        "POSTROOM_DOMAINS__RSA_BITS": "1024",
        "POSTROOM_WEBHOOKS__ALLOWED_NETWORKS": f'["{HOOK_HOST}/32"]',
        "POSTROOM_WEBHOOKS__ALLOWED_PORTS": "[]",
        "POSTROOM_WEBHOOKS__FLUSH_SECONDS": "0.2",
        "POSTROOM_WEBHOOKS__RETRY_FIRST_DELAY": "0.5",
        "POSTROOM_WEBHOOKS__RETRY_MAX_DELAY": "1",
        "POSTROOM_WEBHOOKS__TIMEOUT": "3",
    }

    def start() -> Server:
        server = start_server(data_dir, env=env, wait=False, database_url=database_url)
        servers.append(server)
        server.wait_ready()
        return server

    first = start()
    token = first.first_start_token()
    assert token, first.output()
    store = Store(data_dir, database_url)
    auth = {"Authorization": f"Bearer {token}"}
    try:
        with httpx.Client(base_url=first.url(), headers=auth, timeout=30) as http:
            account_id = int(http.get("/api/accounts").json()[0]["id"])
            _verify_domain(http, account_id, dns)
            # Every SSRF form is refused by the live API.
            for url in SSRF_URLS:
                refused = http.post(
                    "/api/webhooks",
                    json={"webhook": {"url": url, "webhook_type": "audit_log"}},
                )
                assert refused.status_code == 422, (url, refused.text)
            rebinding = http.post(
                "/api/webhooks",
                json={
                    "webhook": {
                        "url": f"http://hooks.rebind.test:{hook.port}/",
                        "webhook_type": "audit_log",
                    }
                },
            )
            assert rebinding.status_code == 200, rebinding.text
            tried = http.post(f"/api/webhooks/{rebinding.json()['data']['id']}/test").json()
            assert tried["data"]["ok"] is False
            assert tried["data"]["error"].startswith("refused"), tried
            http.delete(f"/api/webhooks/{rebinding.json()['data']['id']}")

            created = http.post(
                f"/api/accounts/{account_id}/webhooks",
                json={
                    "webhook": {
                        "url": hook.url,
                        "webhook_type": "email_sending",
                        "sending_stream": "transactional",
                        "event_types": ["delivery", "bounce", "soft_bounce"],
                    }
                },
            )
            assert created.status_code == 200, created.text
            webhook = created.json()["data"]
        secret = webhook["signing_secret"]

        hook.answer(503, b"down for maintenance")
        client_base = first.url()
        for i, rcpt in enumerate(GOOD + BAD):
            response = httpx.post(
                f"{client_base}/api/send",
                headers=auth,
                json={
                    "from": {"email": f"orders@{SENDER_DOMAIN}"},
                    "to": [{"email": rcpt}],
                    "subject": f"Order {i}",
                    "text": "Thanks",
                    "category": "orders",
                    "custom_variables": {"n": i},
                },
                timeout=30,
            )
            assert response.status_code == 200, response.text

        total = len(GOOD) + len(BAD)
        _until("all deliveries and bounces recorded", lambda: len(_recorded(store)) == total, first)
        _until("a few failed POSTs", lambda: len(hook.posts) >= 3, first)
        assert hook.accepted() == []
        first.kill9()

        hook.answer(200, b"thanks")
        second = start()
        _until(
            "every event delivered",
            lambda: sum(len(_events(p)) for p in hook.accepted()) >= total,
            second,
        )
        time.sleep(1.0)  # nothing more may come

        recorded = _recorded(store)
        accepted = hook.accepted()
        got = Counter(e["event_id"] for p in accepted for e in _events(p))
        assert set(got) == set(recorded) and set(got.values()) == {1}, got
        for post in accepted:
            for event in _events(post):
                kind, rcpt, _ = recorded[event["event_id"]]
                assert event["event"] == kind and event["email"] == rcpt
                assert event["sending_domain_name"] == SENDER_DOMAIN
                assert event["category"] == "orders" and "n" in event["custom_variables"]
                if kind == "bounce":
                    assert event["response_code"] == 550 and rcpt in BAD
                    assert event["bounce_category"] and "5.1.1" in event["response"]
        # Signatures: the Python SDK, the Node SDK and Standard Webhooks all accept them.
        wh = standardwebhooks.Webhook(webhook["standard_webhooks_secret"])
        for post in accepted:
            assert verify_signature(post.body, post.headers["Mailtrap-Signature"], secret)
            wh.verify(post.body, post.headers, json_parse=False)
        assert _node_verdicts(node_sdk, accepted, secret) == [True] * len(accepted)
        assert _node_verdicts(node_sdk, accepted[:1], "wrong" + secret[5:]) == [False]

        # Replay a chosen range: the later half of the events, by the time recorded.
        times = sorted(t for _, _, t in recorded.values())
        since = times[len(times) // 2]
        until = times[-1] + timedelta(seconds=1)
        wanted = {eid for eid, (_, _, t) in recorded.items() if since <= t < until}
        before = len(hook.accepted())
        with httpx.Client(base_url=second.url(), headers=auth, timeout=30) as http:
            replayed = http.post(
                f"/api/webhooks/{webhook['id']}/replay",
                json={"since": since.isoformat(), "until": until.isoformat()},
            )
            assert replayed.status_code == 200, replayed.text
            assert replayed.json()["data"]["events"] == len(wanted)
            _until(
                "the replay",
                lambda: sum(len(_events(p)) for p in hook.accepted()[before:]) >= len(wanted),
                second,
            )
            again = [e["event_id"] for p in hook.accepted()[before:] for e in _events(p)]
            assert sorted(again) == sorted(wanted)
            log = http.get(f"/api/webhooks/{webhook['id']}/deliveries?limit=1000").json()["data"]
        statuses = Counter(entry["status"] for entry in log)
        assert statuses[503] >= 3 and statuses[200] == len(hook.accepted())
        assert {e["kind"] for e in log} == {"events", "replay"}
        code = second.stop()
        assert code == 0, second.output()
    finally:
        store.close()
