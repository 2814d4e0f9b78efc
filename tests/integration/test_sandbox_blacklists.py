"""Sandbox messages' ``blacklists_report_info`` over HTTP, on SQLite and PostgreSQL: the
sender's domain and the submitting client's address looked up in DNS blocklists served
by a real name server on loopback (tests/dnsserver.py), in the background after the
first read, stored, and parsed with the official Python SDK's model, in both families.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from mailtrap.models.messages import Blacklists, EmailMessage
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from postroom.api.app import create_app
from postroom.services import Services
from postroom.services.accounts import Bootstrap

PUBLIC_IP = "93.184.216.34"  # only ever a name in the loopback zone: nothing is sent to it
REVERSED = "34.216.184.93"


@pytest.fixture
def checks(services: Services, dns_server: LocalDnsServer) -> LocalDnsServer:
    sandbox = services.settings.sandbox
    sandbox.blacklist_checks = True
    sandbox.blacklist_timeout_seconds = 1.0
    services.settings.dns.server = dns_server.address
    return dns_server


@contextmanager
def calling_from(services: Services, boot: Bootstrap, ip: str) -> Iterator[TestClient]:
    """A client of the API whose requests come from ``ip``."""
    with TestClient(create_app(services), client=(ip, 40000)) as client:
        client.headers["Authorization"] = f"Bearer {boot.token}"
        yield client
        # Let checks still running finish before the client's event loop closes.
        deadline = time.monotonic() + 10
        while services.background and time.monotonic() < deadline:
            time.sleep(0.02)


@pytest.fixture
def public(services: Services, boot: Bootstrap, checks: LocalDnsServer) -> Iterator[TestClient]:
    """A client calling from a public address."""
    with calling_from(services, boot, PUBLIC_IP) as client:
        yield client


def send(client: TestClient, boot: Bootstrap, sender: str = "news@mail.spammy.com") -> int:
    body = {"from": {"email": sender}, "to": [{"email": "b@example.org"}], "subject": "Hi"}
    body["text"] = "x"
    answer = client.post(f"/api/send/{boot.inbox_id}", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["message_ids"][0])


def urls(boot: Bootstrap, message_id: int) -> list[str]:
    return [
        f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages/{message_id}",
        f"/api/sandboxes/{boot.inbox_id}/messages/{message_id}",
    ]


def settled(client: TestClient, url: str) -> dict[str, Any]:
    """The message's report once it is no longer pending."""
    deadline = time.monotonic() + 15
    while True:
        report: dict[str, Any] = client.get(url).json()["blacklists_report_info"]
        if report["result"] != "pending" or time.monotonic() > deadline:
            return report
        time.sleep(0.05)


def listed(report: dict[str, Any]) -> dict[str, bool]:
    return {entry["name"]: entry["in_black_list"] for entry in report["report"]}


def test_domain_and_ip_are_looked_up_and_the_report_stored(
    public: TestClient, boot: Bootstrap, checks: LocalDnsServer
) -> None:
    checks.add_a("spammy.com.dbl.spamhaus.org", "127.0.1.2")
    checks.add_a(f"{REVERSED}.zen.spamhaus.org", "127.0.0.4")
    checks.add_a(f"{REVERSED}.bl.spamcop.net", "127.0.0.2")
    message_id = send(public, boot)
    first = public.get(urls(boot, message_id)[0]).json()["blacklists_report_info"]
    # Capture never waits on DNS: the first read answers pending and starts the check.
    assert first == {"result": "pending", "domain": "spammy.com", "ip": PUBLIC_IP, "report": []}
    report = settled(public, urls(boot, message_id)[0])
    assert report["result"] == "success", report
    assert (report["domain"], report["ip"]) == ("spammy.com", PUBLIC_IP)
    assert listed(report) == {
        "dbl.spamhaus.org": True,
        "multi.surbl.org": False,
        "multi.uribl.com": False,
        "zen.spamhaus.org": True,
        "bl.spamcop.net": True,
        "b.barracudacentral.org": False,
        "psbl.surriel.com": False,
    }
    assert {e["url"] for e in report["report"]} >= {"https://check.spamhaus.org/"}
    assert "ip_not_checked" not in report and "domain_not_checked" not in report
    # Stored: the lists' answers changing does not change the report already made.
    checks.zone.clear()
    for url in urls(boot, message_id):
        message = public.get(url).json()
        assert message["blacklists_report_info"] == report
        parsed = EmailMessage(**message).blacklists_report_info
        assert isinstance(parsed, Blacklists) and parsed.result == "success"
        assert {r.name for r in parsed.report if r.in_black_list} == {
            "dbl.spamhaus.org",
            "zen.spamhaus.org",
            "bl.spamcop.net",
        }
    # The listing shows the same stored report.
    listing = public.get(f"/api/sandboxes/{boot.inbox_id}/messages").json()
    assert listing[0]["blacklists_report_info"] == report


def test_loopback_and_private_clients_are_not_looked_up(
    services: Services, boot: Bootstrap, checks: LocalDnsServer
) -> None:
    checks.add_a("127.0.0.1.zen.spamhaus.org", "127.0.0.2")  # would be "listed" if asked
    for ip, why in (("127.0.0.1", "loopback"), ("10.1.2.3", "private")):
        with calling_from(services, boot, ip) as client:
            message_id = send(client, boot, sender="a@clean.org")
            report = settled(client, urls(boot, message_id)[1])
            assert report["result"] == "success" and report["ip"] == ip
            assert why in report["ip_not_checked"]
            # Only the domain lists were asked.
            assert set(listed(report)) == {"dbl.spamhaus.org", "multi.surbl.org", "multi.uribl.com"}
            assert not any(listed(report).values())


def test_refusals_and_silence_are_errors_and_checked_again(
    public: TestClient, boot: Bootstrap, services: Services, checks: LocalDnsServer
) -> None:
    # URIBL answers 127.0.0.1 when it refuses a query; Spamhaus 127.255.255.x.
    checks.add_a("spammy.com.multi.uribl.com", "127.0.0.1")
    checks.add_a(f"{REVERSED}.zen.spamhaus.org", "127.255.255.254")
    message_id = send(public, boot)
    url = urls(boot, message_id)[1]
    report = settled(public, url)
    assert report["result"] == "error"
    errors = {e["name"]: e.get("error", "") for e in report["report"]}
    assert "refused" in errors["multi.uribl.com"] and "refused" in errors["zen.spamhaus.org"]
    assert errors["dbl.spamhaus.org"] == "" and not any(listed(report).values())

    # A name server that does not answer: every list is an error after the time limit.
    checks.drop = True
    other = send(public, boot)
    started = public.get(urls(boot, other)[0]).json()["blacklists_report_info"]
    assert started["result"] == "pending"
    silent = settled(public, urls(boot, other)[0])
    assert silent["result"] == "error"
    assert all("no answer" in e["error"] for e in silent["report"]), silent

    # An error is looked up again once it is old enough.
    checks.drop = False
    checks.zone.clear()
    services.settings.sandbox.blacklist_retry_seconds = 0
    public.get(urls(boot, other)[0])
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        again = public.get(urls(boot, other)[0]).json()["blacklists_report_info"]
        if again["result"] == "success":
            break
        time.sleep(0.05)
    assert again["result"] == "success" and not any(listed(again).values())


def test_checks_off_answer_false(client: TestClient, boot: Bootstrap, services: Services) -> None:
    assert services.settings.sandbox.blacklist_checks is False  # the test settings' default
    message_id = send(client, boot)
    message = client.get(urls(boot, message_id)[0]).json()
    assert message["blacklists_report_info"] is False
    assert EmailMessage(**message).blacklists_report_info is False
    assert services.background == {}
