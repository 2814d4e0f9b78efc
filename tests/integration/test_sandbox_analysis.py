"""Sandbox message analysis and forwarding over HTTP, on SQLite and PostgreSQL: the spam
report (a real spamd), the HTML analysis (the vendored caniemail data) and forward
(through accept_message), on both path families, parsed with the official SDK's models.
"""

from __future__ import annotations

from typing import Any

import pytest
from mailtrap.models.billing import BillingCycleUsage
from mailtrap.models.inboxes import Inbox
from mailtrap.models.messages import AnalysisReportResponse, ForwardedMessage, SpamReport
from sqlalchemy import select
from starlette.testclient import TestClient

from postroom.config import DeliveryMode
from postroom.services import Services
from postroom.services.accounts import Bootstrap, create_token
from postroom.storage.tables import deliveries

SPAMMY = "Buy viagra now!!! Cheap viagra, FREE money, click here to claim your prize."
EMAIL_HTML = """<!DOCTYPE html>
<html>
<head>
<style>
.card:hover { color: red; }
</style>
</head>
<body>
<div style="display: flex; margin: 0">
<form action="https://example.com"><input type="text" name="q"></form>
</div>
</body>
</html>
"""


def send(client: TestClient, inbox_id: int, **overrides: Any) -> int:
    body: dict[str, Any] = {
        "from": {"email": "promo@example.com", "name": "Promo"},
        "to": [{"email": "b@example.com", "name": "B"}],
        "subject": "Hi",
        "text": "plain body",
    }
    body.update(overrides)
    response = client.post(f"/api/send/{inbox_id}", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["message_ids"][0])


def both(boot: Bootstrap, message_id: int) -> list[str]:
    """The message's URL in the SDKs' family and in the spec's."""
    return [
        f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages/{message_id}",
        f"/api/sandboxes/{boot.inbox_id}/messages/{message_id}",
    ]


# --- spam report ---------------------------------------------------------------------------


def test_spam_report_comes_from_spamassassin(
    client: TestClient, boot: Bootstrap, services: Services, spamd: int
) -> None:
    services.settings.sandbox.spamd_port = spamd
    message_id = send(client, boot.inbox_id, subject="FREE viagra", text=SPAMMY)
    for url in both(boot, message_id):
        answer = client.get(f"{url}/spam_report")
        assert answer.status_code == 200, answer.text
        report = answer.json()["report"]
        rules = {d["RuleName"]: d for d in report["Details"]}
        # SpamAssassin's own drug rule, with its own description and points.
        assert "DRUGS_ERECTILE" in rules, rules
        assert "erectile" in rules["DRUGS_ERECTILE"]["Description"].lower()
        assert report["Threshold"] == 5.0
        assert report["Score"] == pytest.approx(sum(d["Pts"] for d in report["Details"]), abs=0.11)
        assert report["Spam"] is (report["Score"] >= 5.0)
        parsed = SpamReport(**report)
        assert parsed.threshold == 5 and parsed.details[0].rule_name in rules
    clean = send(client, boot.inbox_id, subject="Minutes", text="The meeting notes are attached.")
    report = client.get(f"{both(boot, clean)[1]}/spam_report").json()["report"]
    assert "DRUGS_ERECTILE" not in {d["RuleName"] for d in report["Details"]}
    assert report["Spam"] is False and report["ResponseMessage"] == "Not spam"


def test_spam_report_without_spamc_says_what_is_missing(
    client: TestClient, boot: Bootstrap, services: Services, tmp_path: Any
) -> None:
    services.settings.sandbox.spamc_path = str(tmp_path / "no-spamc")
    message_id = send(client, boot.inbox_id)
    answer = client.get(f"{both(boot, message_id)[0]}/spam_report")
    assert answer.status_code == 503
    assert "spamc" in answer.json()["errors"] and "spamassassin" in answer.json()["errors"]


def test_spam_report_when_spamd_is_down(
    client: TestClient, boot: Bootstrap, services: Services, spamd: int
) -> None:
    services.settings.sandbox.spamd_port = 9  # discard: nothing listens
    message_id = send(client, boot.inbox_id)
    answer = client.get(f"{both(boot, message_id)[1]}/spam_report")
    assert answer.status_code == 503
    assert "spamd" in answer.json()["errors"]


# --- HTML analysis -------------------------------------------------------------------------


def test_html_analysis_names_the_clients_lacking_each_feature(
    client: TestClient, boot: Bootstrap
) -> None:
    message_id = send(client, boot.inbox_id, html=EMAIL_HTML)
    for url in both(boot, message_id):
        answer = client.get(f"{url}/analyze")
        assert answer.status_code == 200
        report = answer.json()["report"]
        assert report["status"] == "success"
        errors = {e["rule_name"]: e for e in report["errors"]}
        # caniemail: Outlook on Windows renders with Word, which has no flexbox or forms.
        assert "Outlook (Windows)" in errors["display:flex"]["email_clients"]["desktop"]
        assert errors["display:flex"]["error_line"] == 9
        assert errors["<form> element"]["error_line"] == 10
        assert errors[":hover"]["error_line"] == 5
        assert set(errors["<form> element"]["email_clients"]) == {"desktop", "mobile", "web"}
        assert [e["error_line"] for e in report["errors"]] == sorted(
            e["error_line"] for e in report["errors"]
        )
        parsed = AnalysisReportResponse(**answer.json()).report
        assert parsed.status == "success"


def test_html_analysis_of_a_text_message_finds_nothing(client: TestClient, boot: Bootstrap) -> None:
    message_id = send(client, boot.inbox_id)
    answer = client.get(f"{both(boot, message_id)[0]}/analyze")
    assert answer.json() == {"report": {"status": "success", "errors": []}}


# --- forward -------------------------------------------------------------------------------


def _queued_to(services: Services, email: str) -> list[str]:
    query = select(deliveries.c.state).where(deliveries.c.recipient == email)
    return services.db.read_sync(lambda conn: list(conn.execute(query).scalars()))


def test_forward_goes_through_the_installations_delivery(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    message_id = send(client, boot.inbox_id, subject="Forward me", bcc=[{"email": "x@example.org"}])
    for url, email in zip(
        both(boot, message_id), ["qa@example.org", "dev@example.org"], strict=True
    ):
        answer = client.post(f"{url}/forward", json={"email": email})
        assert answer.status_code == 200, answer.text
        assert ForwardedMessage(**answer.json()).message.startswith("Your email message")
        # Accepted like any send: one queued delivery to that address and nobody else
        # (the sandbox delivery mode then captures it; nothing leaves the machine).
        assert _queued_to(services, email) == ["queued"]
    assert _queued_to(services, "b@example.com") == []
    assert _queued_to(services, "x@example.org") == []


def _forwarded(client: TestClient, boot: Bootstrap) -> list[int]:
    """The inbox's ``forwarded_messages_count`` in both families (parsed by the SDK's
    model), then the billing cycle's, in both families."""
    counts = []
    for url in (
        f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}",
        f"/api/sandboxes/{boot.inbox_id}",
    ):
        inbox = client.get(url).json()
        counts.append(Inbox(**inbox).forwarded_messages_count)
    for url in (f"/api/accounts/{boot.account_id}/billing/usage", "/api/billing/usage"):
        usage = BillingCycleUsage(**client.get(url).json())
        counts.append(usage.testing.usage.forwarded_messages_count.current)
    return counts


def test_forwards_are_counted_on_the_inbox_and_the_billing_cycle(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    assert _forwarded(client, boot) == [0, 0, 0, 0]
    message_id = send(client, boot.inbox_id, subject="Count me")
    for number, url in enumerate(both(boot, message_id), start=1):
        assert client.post(f"{url}/forward", json={"email": "qa@example.org"}).status_code == 200
        assert _forwarded(client, boot) == [number] * 4
    # A refused forward (the From is not a verified domain, mail would leave) counts nothing.
    services.settings.delivery.mode = DeliveryMode.MX
    refused = client.post(f"{both(boot, message_id)[0]}/forward", json={"email": "qa@example.org"})
    assert refused.status_code in (400, 422)
    services.settings.delivery.mode = DeliveryMode.SANDBOX
    assert _forwarded(client, boot) == [2, 2, 2, 2]
    # Forwards are history: cleaning the inbox's messages keeps the count.
    inbox_url = f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}"
    cleaned = client.patch(f"{inbox_url}/clean").json()
    assert (cleaned["emails_count"], cleaned["forwarded_messages_count"]) == (0, 2)
    # Another inbox of the account counts its own forwards only.
    other = client.post(
        f"/api/accounts/{boot.account_id}/projects/{cleaned['project_id']}/inboxes",
        json={"inbox": {"name": "Other"}},
    ).json()
    assert other["forwarded_messages_count"] == 0


def test_forward_checks_the_address_and_the_sender(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    message_id = send(client, boot.inbox_id)
    url = both(boot, message_id)[0]
    for body in ({}, {"email": ""}, {"email": "not an address"}, {"email": "a@b.c\r\nBcc: x@y.z"}):
        answer = client.post(f"{url}/forward", json=body)
        assert answer.status_code in (400, 422), body
    # Mail that leaves for real must come from a verified domain of the account.
    services.settings.delivery.mode = DeliveryMode.MX
    answer = client.post(f"{url}/forward", json={"email": "qa@example.org"})
    assert answer.status_code in (400, 422)
    assert "verified sending domain" in answer.text
    assert _queued_to(services, "qa@example.org") == []
    missing = client.post(
        f"{both(boot, message_id + 1000)[1]}/forward", json={"email": "qa@example.org"}
    )
    assert missing.status_code == 404


def test_forward_needs_the_admin_scope(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    message_id = send(client, boot.inbox_id)
    url = f"{both(boot, message_id)[1]}/forward"
    # It sends the sandbox's content elsewhere: neither an app's send-only token nor a
    # viewer may, nor read+send without admin.
    cases = ((("send",), 403), (("read",), 403), (("read", "send"), 403), (("admin",), 200))
    for scopes, status in cases:
        token = services.db.write_sync(
            lambda conn, s=scopes: create_token(services, conn, boot.account_id, "t", s)
        )
        answer = client.post(
            url, json={"email": "qa@example.org"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == status, (scopes, answer.text)
