"""Email logs API (spec §4.6) over the seeded data set: every filter, cursor, detail, raw link.

The data set (tests/logseed.py), newest first: m7 rejected (unregistered domain, iCloud),
m6 queued (empty subject, client IP), m5 delivered to a sandbox (bulk, gmail), m4 soft
bounce then delivered, spam (bulk, Outlook), m3 bounced (Yahoo), m2 delivered (Google
Workspace, opened), m1 delivered (Google, opened twice, clicked).
"""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from logseed import Seeded, other_account, seed_sync
from postroom.clock import FrozenClock
from postroom.services import Services, logs, retention, rollups
from postroom.services.accounts import Bootstrap

ALL = ["m7", "m6", "m5", "m4", "m3", "m2", "m1"]


@pytest.fixture
def seeded(services: Services, boot: Bootstrap) -> Seeded:
    services.settings.insights.stats_settle_seconds = 0
    data = seed_sync(services, boot.account_id, FrozenClock())
    asyncio.run(rollups.consume(services))
    return data


def _list(client: TestClient, seeded: Seeded, query: str = "") -> dict[str, Any]:
    response = client.get(f"/api/accounts/{seeded.account_id}/email_logs?{query}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def _names(client: TestClient, seeded: Seeded, pairs: list[tuple[str, str]]) -> set[str]:
    body = _list(client, seeded, urlencode(pairs))
    assert body["total_count"] == len(body["messages"])
    return seeded.names([m["message_id"] for m in body["messages"]])


def _f(field: str, operator: str, *values: str) -> list[tuple[str, str]]:
    pairs = [(f"filters[{field}][operator]", operator)]
    if len(values) == 1:
        return [*pairs, (f"filters[{field}][value]", values[0])]
    return pairs + [(f"filters[{field}][value][]", v) for v in values]


def test_list_is_newest_first_with_the_contract_fields(client: TestClient, seeded: Seeded) -> None:
    body = _list(client, seeded)
    assert body["total_count"] == 7 and body["next_page_cursor"] is None
    assert [seeded.names([m["message_id"]]).pop() for m in body["messages"]] == ALL
    m1 = body["messages"][-1]
    assert m1["status"] == "delivered" and m1["from"] == "hi@shop.example"
    assert m1["to"] == "alice@gmail.com" and m1["sending_stream"] == "transactional"
    assert m1["sending_domain_id"] == seeded.shop_id and m1["category"] == "welcome"
    assert (m1["opens_count"], m1["clicks_count"]) == (2, 1)
    assert m1["sent_at"] == "2026-03-10T09:00:00.000Z"
    statuses = {seeded.names([m["message_id"]]).pop(): m["status"] for m in body["messages"]}
    assert statuses == {
        "m1": "delivered",
        "m2": "delivered",
        "m3": "not_delivered",
        "m4": "delivered",
        "m5": "delivered",
        "m6": "enqueued",
        "m7": "not_delivered",
    }


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        (_f("to", "ci_contain", "GMAIL"), {"m1", "m5"}),
        (_f("to", "ci_not_contain", "gmail", "yahoo"), {"m2", "m4", "m6", "m7"}),
        (_f("to", "ci_equal", "Bob@Acme.test"), {"m2"}),
        (_f("to", "ci_not_equal", "bob@acme.test"), {"m1", "m3", "m4", "m5", "m6", "m7"}),
        (_f("from", "ci_equal", "other@unregistered.test"), {"m7"}),
        (_f("from", "ci_contain", "news@"), {"m4", "m5"}),
        (_f("subject", "empty"), {"m6"}),
        (_f("subject", "not_empty"), {"m1", "m2", "m3", "m4", "m5", "m7"}),
        (_f("subject", "ci_equal", "hello"), {"m1", "m2", "m3", "m4", "m5", "m7"}),
        (_f("status", "equal", "not_delivered"), {"m3", "m7"}),
        (_f("status", "equal", "enqueued", "not_delivered"), {"m3", "m6", "m7"}),
        (_f("status", "not_equal", "delivered"), {"m3", "m6", "m7"}),
        (_f("events", "include_event", "open"), {"m1", "m2"}),
        (_f("events", "include_event", "spam", "bounce"), {"m3", "m4"}),
        (_f("events", "not_include_event", "delivery"), {"m3", "m6", "m7"}),
        (_f("opens_count", "greater_than", "0"), {"m1", "m2"}),
        (_f("opens_count", "equal", "0"), {"m3", "m4", "m5", "m6", "m7"}),
        (_f("clicks_count", "equal", "1"), {"m1"}),
        (_f("clicks_count", "less_than", "1"), {"m2", "m3", "m4", "m5", "m6", "m7"}),
        (_f("client_ip", "equal", "203.0.113.9"), {"m6"}),
        (_f("client_ip", "not_equal", "203.0.113.9"), {"m1", "m2", "m3", "m4", "m5", "m7"}),
        (_f("sending_ip", "contain", "192.0.2."), {"m1", "m2"}),
        (_f("sending_ip", "not_contain", "192.0.2."), {"m3", "m4", "m5", "m6", "m7"}),
        (_f("sending_ip", "equal", "198.51.100.7"), {"m3"}),
        (_f("email_service_provider_response", "ci_contain", "NO SUCH USER"), {"m3"}),
        (_f("recipient_mx", "ci_contain", "google.com"), {"m1", "m2"}),
        (_f("recipient_mx", "ci_equal", "mta5.am0.yahoodns.net"), {"m3"}),
        (_f("email_service_provider", "equal", "Yahoo", "Outlook"), {"m3", "m4"}),
        (_f("email_service_provider", "equal", "Google"), {"m1", "m5"}),
        (_f("category", "equal", "receipt"), {"m3", "m7"}),
        (_f("category", "not_equal", "welcome"), {"m3", "m4", "m5", "m6", "m7"}),
        (_f("sending_stream", "equal", "bulk"), {"m4", "m5"}),
        (_f("sending_stream", "not_equal", "bulk"), {"m1", "m2", "m3", "m6", "m7"}),
        ([("filters[sent_after]", "2026-03-11T00:00:00Z")], {"m5", "m6", "m7"}),
        ([("filters[sent_before]", "2026-03-10T09:01:00Z")], {"m1", "m2"}),
        (_f("to", "ci_contain", "gmail") + _f("sending_stream", "equal", "bulk"), {"m5"}),
        (_f("nonsense", "equal", "x"), set(ALL)),
    ],
)
def test_every_filter_and_operator(
    client: TestClient, seeded: Seeded, pairs: list[tuple[str, str]], expected: set[str]
) -> None:
    assert _names(client, seeded, pairs) == expected


def test_domain_filter(client: TestClient, seeded: Seeded) -> None:
    assert _names(client, seeded, _f("sending_domain_id", "equal", str(seeded.news_id))) == {
        "m4",
        "m5",
    }
    # m3 was sent as hi@Shop.example: domains match without regard to case.
    assert _names(client, seeded, _f("sending_domain_id", "not_equal", str(seeded.shop_id))) == {
        "m4",
        "m5",
        "m7",
    }
    assert _names(client, seeded, _f("sending_domain_id", "equal", "999999")) == set()


@pytest.mark.parametrize(
    "query",
    [
        # The Python SDK (encoded brackets), Node (raw brackets), Ruby (indexed).
        "filters%5Bcategory%5D%5Boperator%5D=equal"
        "&filters%5Bcategory%5D%5Bvalue%5D%5B%5D=digest&filters%5Bcategory%5D%5Bvalue%5D%5B%5D=welcome",
        "filters[category][operator]=equal&filters[category][value][]=digest"
        "&filters[category][value][]=welcome",
        "filters%5Bcategory%5D%5Boperator%5D=equal"
        "&filters%5Bcategory%5D%5Bvalue%5D%5B0%5D=digest&filters%5Bcategory%5D%5Bvalue%5D%5B1%5D=welcome",
    ],
    ids=["python", "node", "ruby"],
)
def test_three_array_encodings(client: TestClient, seeded: Seeded, query: str) -> None:
    body = _list(client, seeded, query)
    assert seeded.names([m["message_id"] for m in body["messages"]]) == {"m1", "m2", "m4", "m5"}


def test_bad_filters_answer_422(client: TestClient, seeded: Seeded) -> None:
    url = f"/api/accounts/{seeded.account_id}/email_logs?" + urlencode(_f("to", "equal", "x"))
    response = client.get(url)
    assert response.status_code == 422
    assert response.json() == {"errors": {"filters": "invalid"}}


def test_cursor_pagination(
    client: TestClient, seeded: Seeded, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "PAGE_SIZE", 3)
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        body = _list(client, seeded, f"search_after={cursor}" if cursor else "")
        assert body["total_count"] == 7
        seen += [m["message_id"] for m in body["messages"]]
        pages += 1
        cursor = body["next_page_cursor"]
        if cursor is None:
            break
    assert pages == 3 and [seeded.names([i]).pop() for i in seen] == ALL
    filtered = _list(
        client,
        seeded,
        urlencode([("search_after", seeded.ids["m4"]), *_f("to", "ci_contain", "o")]),
    )
    # After m4: m3 carol@yahoo.com, m2 bob@acme.test, m1 alice@gmail.com all contain "o".
    assert seeded.names([m["message_id"] for m in filtered["messages"]]) == {"m1", "m2", "m3"}
    # total_count ignores the cursor: every recipient but frank@example.net has an "o".
    assert filtered["total_count"] == 6
    bad = client.get(f"/api/accounts/{seeded.account_id}/email_logs?search_after=nope")
    assert bad.status_code == 400


def test_detail_with_events_and_raw_link(
    services: Services, client: TestClient, seeded: Seeded
) -> None:
    response = client.get(f"/api/accounts/{seeded.account_id}/email_logs/{seeded.ids['m3']}")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "not_delivered" and body["to"] == "carol@yahoo.com"
    [bounce] = body["events"]
    assert bounce["event_type"] == "bounce"
    assert bounce["details"] == {
        "sending_ip": "198.51.100.7",
        "recipient_mx": "mta5.am0.yahoodns.net",
        "email_service_provider": "Yahoo",
        "email_service_provider_status": "5.1.1",
        "email_service_provider_response": "550 5.1.1 No such user here",
        "bounce_category": "bad_mailbox",
    }
    m4 = client.get(f"/api/accounts/{seeded.account_id}/email_logs/{seeded.ids['m4']}").json()
    assert [e["event_type"] for e in m4["events"]] == ["soft_bounce", "delivery", "spam"]
    assert m4["events"][2]["details"] == {"spam_feedback_type": "abuse"}

    link = body["raw_message_url"]
    assert link.startswith(f"http://testserver/api/accounts/{seeded.account_id}/email_logs/")
    path = link.removeprefix("http://testserver")
    raw = client.get(path, headers={"Authorization": ""})  # the signature is the credential
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("message/rfc822")
    assert b"To: carol@yahoo.com" in raw.content

    # Tampered, moved to another message, or expired: refused.
    assert client.get(path[:-1] + ("0" if path[-1] != "0" else "1")).status_code == 403
    moved = path.replace(seeded.ids["m3"], seeded.ids["m2"])
    assert client.get(moved).status_code == 403
    assert isinstance(services.clock, FrozenClock)
    services.clock.advance(services.settings.insights.raw_link_seconds + 1)
    assert client.get(path).status_code == 403


def test_raw_link_with_a_non_ascii_signature_is_refused_not_a_500(
    client: TestClient, seeded: Seeded
) -> None:
    body = client.get(f"/api/accounts/{seeded.account_id}/email_logs/{seeded.ids['m1']}").json()
    path, _, query = body["raw_message_url"].removeprefix("http://testserver").partition("?")
    expires = dict(pair.split("=") for pair in query.split("&"))["expires"]
    for signature in ("é" * 64, "\u0661" * 64, "ǅ" * 64, "\ufb00" * 64, "f" * 63 + "é"):
        answer = client.get(
            path,
            params={"expires": expires, "signature": signature},
            headers={"Authorization": ""},  # no token: the link is open to anyone
        )
        assert answer.status_code == 403, (signature, answer.text)
        assert answer.json() == {"error": "This link is invalid or has expired"}


def test_raw_link_after_body_retention_says_the_body_is_gone(
    services: Services, client: TestClient, seeded: Seeded
) -> None:
    body = client.get(f"/api/accounts/{seeded.account_id}/email_logs/{seeded.ids['m1']}").json()
    path = body["raw_message_url"].removeprefix("http://testserver")
    asyncio.run(retention.set_policy(services, seeded.account_id, {"body_retention_days": 1}))
    # m1 was sent on 2026-03-10 09:00 and the clock is on 2026-03-11 09:04: its body is
    # past one day (the link, signed a moment ago, is still valid).
    swept = asyncio.run(retention.enforce(services))
    assert swept.bodies >= 1 and swept.messages == 0
    gone = client.get(path)
    assert gone.status_code == 410
    assert "no longer stored" in gone.json()["error"]
    # The log itself is still there.
    again = client.get(f"/api/accounts/{seeded.account_id}/email_logs/{seeded.ids['m1']}")
    assert again.status_code == 200


def test_export_csv_and_json(client: TestClient, seeded: Seeded) -> None:
    base = f"/api/accounts/{seeded.account_id}/email_logs/export"
    query = urlencode(_f("sending_stream", "equal", "bulk"))
    as_json = client.get(f"{base}?format=json&{query}")
    assert as_json.status_code == 200
    assert seeded.names([m["message_id"] for m in as_json.json()]) == {"m4", "m5"}
    as_csv = client.get(f"{base}?{query}")
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["to"] for r in rows} == {"dave@outlook.com", "erin@gmail.com"}
    assert {r["email_service_provider"] for r in rows} == {"Outlook", "Google"}
    everything = client.get(f"{base}?format=json").json()
    assert len(everything) == 7


def test_another_accounts_messages_are_not_found(
    services: Services, client: TestClient, seeded: Seeded
) -> None:
    other_id, other_token = other_account(services)
    theirs = {"Authorization": f"Bearer {other_token}"}
    m1 = seeded.ids["m1"]
    # The other tenant asks for our message through its own account: 404.
    assert (
        client.get(f"/api/accounts/{other_id}/email_logs/{m1}", headers=theirs).status_code == 404
    )
    assert client.get(f"/api/email_logs/{m1}", headers=theirs).status_code == 404
    listed = client.get(f"/api/accounts/{other_id}/email_logs", headers=theirs).json()
    assert listed["messages"] == [] and listed["total_count"] == 0
    # And through ours: the account is not theirs.
    assert (
        client.get(f"/api/accounts/{seeded.account_id}/email_logs", headers=theirs).status_code
        == 404
    )
    exported = client.get(f"/api/accounts/{other_id}/email_logs/export?format=json", headers=theirs)
    assert exported.json() == []
    # Our signed raw link, pointed at their account, does not verify.
    link = client.get(f"/api/accounts/{seeded.account_id}/email_logs/{m1}").json()
    path = link["raw_message_url"].removeprefix("http://testserver")
    moved = path.replace(f"/accounts/{seeded.account_id}/", f"/accounts/{other_id}/")
    assert client.get(moved, headers=theirs).status_code == 403


def test_scopes_apply(services: Services, client: TestClient, seeded: Seeded) -> None:
    from postroom.services.accounts import create_token

    send_only = services.db.write_sync(
        lambda c: create_token(services, c, seeded.account_id, "sender", ("send",))
    )
    headers = {"Authorization": f"Bearer {send_only}"}
    base = f"/api/accounts/{seeded.account_id}"
    assert client.get(f"{base}/email_logs", headers=headers).status_code == 403
    assert (
        client.get(
            f"{base}/stats?start_date=2026-03-10&end_date=2026-03-11", headers=headers
        ).status_code
        == 403
    )
    read_only = services.db.write_sync(
        lambda c: create_token(services, c, seeded.account_id, "reader", ("read",))
    )
    headers = {"Authorization": f"Bearer {read_only}"}
    assert client.get(f"{base}/email_logs", headers=headers).status_code == 200
    assert client.get(f"{base}/retention", headers=headers).status_code == 200
    assert (
        client.patch(
            f"{base}/retention", headers=headers, json={"log_retention_days": 3}
        ).status_code
        == 403
    )
    alerts_url = f"{base}/sending_domains/{seeded.shop_id}/alerts"
    assert client.get(alerts_url, headers=headers).status_code == 200
    assert client.patch(alerts_url, headers=headers, json={}).status_code == 403
