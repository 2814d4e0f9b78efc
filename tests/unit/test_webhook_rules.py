"""The pure webhook rules: URL checks, payloads, both signatures, matching."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
import standardwebhooks
from mailtrap.webhooks import verify_signature

from postroom.domain import webhooks as rules
from postroom.domain.events import EventKind

WHEN = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def test_the_contracts_signature_vector() -> None:
    """Spec §5.4's test vector, computed with both official SDKs."""
    secret = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    body = b'{"events":[{"event":"delivery","email":"user@example.com"}]}'
    expected = "15c8c2b7501d8397e3521569cda2c6652c46187b8c50a0de9ff6d399cce44fb3"
    assert rules.mailtrap_signature(secret, body) == expected
    assert verify_signature(body, expected, secret)


def test_standard_webhooks_signature_matches_the_reference_library() -> None:
    secret = "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6"
    wh = standardwebhooks.Webhook(rules.standard_secret(secret))
    body = b'{"events":[]}'
    assert rules.standard_signature(secret, "msg_1", int(WHEN.timestamp()), body) == wh.sign(
        "msg_1", WHEN, body.decode()
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/in",
        "http://hooks.example.com/in?token=abc",
        "https://user:pass@hooks.example.com/",
        "https://93.184.216.34/x",
        "https://[2606:4700::1111]/",
        "https://hooks.example.com./",
        "https://1.example/",  # a name whose first label is a number is still a name
    ],
)
def test_urls_accepted(url: str) -> None:
    assert rules.url_refusal(url, [80, 443]) is None


@pytest.mark.parametrize(
    "url",
    [
        "ftp://hooks.example.com/",
        "file:///etc/passwd",
        "gopher://hooks.example.com/",
        "javascript:alert(1)",
        "http:///nohost",
        "http://hooks.example.com:8080/",
        "http://hooks.example.com:25/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7f.0.0.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.1/",
        "http://1.2.3.4.5/",
        "http://256.1.1.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[::ffff:7f00:1]/",
        "http://[::127.0.0.1]/",
        "http://[fe80::1%25eth0]/",
        "http://hooks.example.com/a b",
        "http://hooks.example.com/\r\nX: 1",
        "http://hooks.example.com\\@127.0.0.1/",
        "https://" + "a" * 2100 + ".example/",
    ],
)
def test_urls_refused(url: str) -> None:
    assert rules.url_refusal(url, [80, 443]) is not None, url


def test_any_port_when_no_ports_are_listed() -> None:
    assert rules.url_refusal("http://hooks.example.com:8080/", []) is None


def _event(kind: EventKind, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "account_id": 1,
        "kind": kind.value,
        "message_id": "m-1",
        "stream": "transactional",
        "recipient": "a@b.example",
        "details": details or {},
        "created_at": WHEN,
        "sending_domain_id": 7,
    }


def test_payload_spellings_follow_the_contract() -> None:
    facts = {"sending_domain_name": "s.example", "category": "c", "custom_variables": {"k": 1}}
    soft = rules.event_payload(
        _event(EventKind.SOFT_BOUNCE, {"response": "451", "response_code": 451}), facts
    )
    assert soft["event"] == "soft bounce" and soft["response_code"] == 451
    assert rules.event_payload(_event(EventKind.SPAM), facts)["event"] == "spam"
    reject = rules.event_payload(_event(EventKind.REJECT, {"reject_reason": "r"}), facts)
    assert reject["reason"] == "r"
    assert set(rules.event_payload(_event(EventKind.OPEN, {"ip": "1.1.1.1"}), facts)) >= {
        "ip",
        "user_agent",
    }
    audit = rules.event_payload(
        _event(EventKind.AUDIT, {"event": "activity_log.user.updated", "actor": {"id": 1}}), None
    )
    assert audit == {
        "event": "activity_log.user.updated",
        "actor": {"id": 1},
        "timestamp": int(WHEN.timestamp()),
    }


def test_jsonlines_is_one_object_per_line() -> None:
    body = rules.render_body([{"a": 1}, {"b": "é"}], "jsonlines")
    assert [json.loads(line) for line in body.decode().splitlines()] == [{"a": 1}, {"b": "é"}]
    assert json.loads(rules.render_body([{"a": 1}], "json")) == {"events": [{"a": 1}]}


def test_matching() -> None:
    hook = {
        "webhook_type": "email_sending",
        "sending_stream": "transactional",
        "domain_id": 7,
        "event_types": ["bounce", "spam_complaint"],
        "inbound_inbox_id": None,
    }
    assert rules.matches(hook, _event(EventKind.BOUNCE))
    assert rules.matches(hook, _event(EventKind.SPAM))
    assert not rules.matches(hook, _event(EventKind.DELIVERY))
    assert not rules.matches({**hook, "domain_id": 8}, _event(EventKind.BOUNCE))
    assert not rules.matches({**hook, "sending_stream": "bulk"}, _event(EventKind.BOUNCE))
    assert not rules.matches(hook, _event(EventKind.AUDIT))
    audit = {**hook, "webhook_type": "audit_log"}
    assert rules.matches(audit, _event(EventKind.AUDIT))
    inbound = {**hook, "webhook_type": "inbound_receiving", "inbound_inbox_id": 3}
    assert rules.matches(inbound, _event(EventKind.INBOUND_RECEIVED, {"inbox_id": 3}))
    assert not rules.matches(inbound, _event(EventKind.INBOUND_RECEIVED, {"inbox_id": 4}))
    assert not rules.wants_outbox("delivery", {"mode": "sandbox"})
    assert not rules.wants_outbox("accepted", {})
    assert rules.wants_outbox("inbound_received", {"inbox_id": 3})
