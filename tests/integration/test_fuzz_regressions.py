"""Inputs the schemathesis run (tests/fuzz) found answering 500, each kept as a test.

Both backends: an integer past 64 bits overflowed SQLite's driver and PostgreSQL's
bigint alike.
"""

from __future__ import annotations

from starlette.testclient import TestClient

from postroom.services.accounts import Bootstrap

RANGE = "start_date=2026-03-10&end_date=2026-03-11"
HUGE = ("18446744073709551616", "9223372036854775808", "-9223372036854775809", "١٢")


def test_stats_domain_filter_past_64_bits_is_a_400(client: TestClient, boot: Bootstrap) -> None:
    for path in (f"/api/accounts/{boot.account_id}/stats/domains", "/api/stats", "/api/stats/date"):
        for name in ("sending_domain_ids[]", "domain_ids[]"):
            for value in HUGE:
                response = client.get(path, params=f"{RANGE}&{name}={value}")
                assert response.status_code == 400, (path, name, value, response.text)
                assert "error" in response.json()


def test_email_log_integer_filters_past_64_bits_are_invalid(
    client: TestClient, boot: Bootstrap
) -> None:
    for field, operator in (("sending_domain_id", "equal"), ("clicks_count", "greater_than")):
        for value in HUGE:
            query = f"filters[{field}][operator]={operator}&filters[{field}][value]={value}"
            response = client.get(f"/api/accounts/{boot.account_id}/email_logs?{query}")
            assert response.status_code == 422, (field, value, response.text)
            assert response.json() == {"errors": {"filters": "invalid"}}


# NUL is not text: PostgreSQL refuses it in every text value (SQLite stores it), so
# these answered 500 on PostgreSQL only.
NUL = "a\x00b"


def test_nul_in_a_query_string_is_a_400_in_the_family_shape(
    client: TestClient, boot: Bootstrap
) -> None:
    account = f"/api/accounts/{boot.account_id}"
    for path in (
        f"{account}/suppressions?email=a%00b",
        f"{account}/suppressions/history?email=a%00b",
        f"{account}/email_logs?filters[to][operator]=ci_contain&filters[to][value]=a%00b",
        f"{account}/stats?{RANGE}&categories[]=a%00b",
        f"{account}/inboxes/{boot.inbox_id}/messages?search=a%00b",
    ):
        response = client.get(path)
        assert response.status_code == 400, (path, response.text)
        assert response.json() == {"error": "NUL characters are not allowed in the query"}
    sent = client.post("/api/send?x=%00", json={})
    assert sent.status_code == 400
    assert sent.json() == {
        "success": False,
        "errors": ["NUL characters are not allowed in the query"],
    }


def test_nul_in_a_management_body_is_a_422(client: TestClient, boot: Bootstrap) -> None:
    account = f"/api/accounts/{boot.account_id}"
    template = {"name": NUL, "subject": "s", "category": "c", "body_text": "x"}
    for method, path, body in (
        ("POST", f"{account}/projects", {"project": {"name": NUL}}),
        ("PATCH", f"{account}/inboxes/{boot.inbox_id}", {"inbox": {"name": NUL}}),
        ("POST", f"{account}/email_templates", {"email_template": template}),
        (
            "POST",
            f"{account}/email_templates",
            {"email_template": {**template, "name": "n", "body_text": NUL}},
        ),
    ):
        response = client.request(method, path, json=body)
        assert response.status_code == 422, (path, response.text)
        assert response.json() == {"errors": {"base": ["NUL characters are not allowed"]}}
    # A literal backslash-u text is not a NUL.
    fine = client.post(f"{account}/projects", json={"project": {"name": "\\u0000 literal"}})
    assert fine.status_code == 200 and fine.json()["name"] == "\\u0000 literal"
