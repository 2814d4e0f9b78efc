"""Domain verification and DKIM rotation against a real name server on loopback.

The records a domain shows (``dns_records``) are published in tests/dnsserver.py's zone
exactly as a user would copy them, and Postroom asks that server through dnspython, so
the whole path (records → DNS → judgement → key lifecycle → events) runs for real, on
SQLite and PostgreSQL. Time moves with a FrozenClock: the rotation test walks a domain
through 90 days of key life and the grace period after it.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dkim as dkimpy  # type: ignore[import-untyped]
import pytest
from mailtrap.models.sending_domains import SendingDomain
from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient
from typer.testing import CliRunner

from dnsserver import LocalDnsServer
from postroom.cli.main import app as cli
from postroom.clock import FrozenClock
from postroom.domain import dkim
from postroom.services import Services
from postroom.services import domains as domain_service
from postroom.services.accounts import Bootstrap
from postroom.services.dns import DnsPythonResolver
from postroom.storage.tables import dkim_keys, events, sending_domains
from postroom.workers.scheduler import Scheduler

DAY = 86400.0
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MESSAGE = (
    b"From: Shop <shop@example.com>\r\n"
    b"To: ana@example.org\r\n"
    b"Subject: Your order\r\n"
    b"Message-ID: <m.1@example.com>\r\n"
    b"\r\n"
    b"Shipped.\r\n"
)


@pytest.fixture
def zone(services: Services, dns_server: LocalDnsServer) -> LocalDnsServer:
    """The name server Postroom asks (a short timeout keeps failure tests quick)."""
    services.resolver = DnsPythonResolver(dns_server.address, timeout=1.0)
    return dns_server


@pytest.fixture
def clock(services: Services) -> FrozenClock:
    services.clock = FrozenClock(T0)
    return services.clock


def base(boot: Bootstrap) -> str:
    return f"/api/accounts/{boot.account_id}/sending_domains"


def create(client: TestClient, boot: Bootstrap, name: str = "example.com") -> dict[str, Any]:
    response = client.post(base(boot), json={"sending_domain": {"domain_name": name}})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def verify(client: TestClient, boot: Bootstrap, domain_id: int) -> dict[str, Any]:
    response = client.post(f"{base(boot)}/{domain_id}/verify")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    SendingDomain(**body)
    return body


def get(client: TestClient, boot: Bootstrap, domain_id: int) -> dict[str, Any]:
    body: dict[str, Any] = client.get(f"{base(boot)}/{domain_id}").json()
    return body


def publish(zone: LocalDnsServer, domain: dict[str, Any], *keys: str) -> None:
    """Put the domain's records (all, or those of ``keys``) in the zone."""
    zone.publish(r for r in domain["dns_records"] if not keys or r["key"] in keys)


def records(domain: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["key"]: r for r in domain["dns_records"]}


def statuses(domain: dict[str, Any]) -> dict[str, str]:
    return {r["key"]: r["status"] for r in domain["dns_records"]}


def selectors(domain: dict[str, Any]) -> dict[str, str]:
    """Record key → selector, for the DKIM records shown."""
    return {
        r["key"]: r["name"].split(".")[0]
        for r in domain["dns_records"]
        if r["key"].startswith("dkim")
    }


def key_states(services: Services, domain_id: int) -> dict[str, str]:
    def run(conn: Connection) -> dict[str, str]:
        query = select(dkim_keys.c.selector, dkim_keys.c.state).where(
            dkim_keys.c.domain_id == domain_id
        )
        return {str(selector): str(state) for selector, state in conn.execute(query)}

    return services.db.read_sync(run)


def logged(services: Services, domain_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The domain's events, oldest first: (kind, details)."""

    def run(conn: Connection) -> list[tuple[str, dict[str, Any]]]:
        rows = conn.execute(select(events.c.kind, events.c.details).order_by(events.c.id))
        return [(kind, details) for kind, details in rows if details.get("domain_id") == domain_id]

    return services.db.read_sync(run)


def kinds_since(services: Services, domain_id: int, seen: int) -> list[tuple[str, str | None]]:
    """(kind, selector) of the events after the first ``seen``."""
    return [(k, d.get("selector")) for k, d in logged(services, domain_id)[seen:]]


def signing_selectors(services: Services, account_id: int, name: str = "example.com") -> list[str]:
    keys = services.db.read_sync(
        lambda conn: domain_service.signing_keys(services, conn, account_id, name)
    )
    return sorted(k.selector for k in keys)


def dkimpy_verdicts(zone: LocalDnsServer, signed: bytes, count: int) -> list[bool]:
    """dkimpy's verdict on each signature, its key records fetched from the zone."""
    dnsfunc = zone.dkim_dnsfunc()
    verifier = dkimpy.DKIM(signed)
    return [bool(verifier.verify(idx=i, dnsfunc=dnsfunc)) for i in range(count)]


# --- verification -------------------------------------------------------------------------


def test_publish_every_record_then_verify(
    client: TestClient, boot: Bootstrap, services: Services, zone: LocalDnsServer
) -> None:
    domain = create(client, boot)

    nothing = verify(client, boot, domain["id"])
    assert set(statuses(nothing).values()) == {"missing"}
    assert nothing["dns_verified"] is False and nothing["compliance_status"] == "unverified_dns"
    assert key_states(services, domain["id"]) == {"pr1r": "pending", "pr1e": "pending"}
    assert signing_selectors(services, boot.account_id) == []

    publish(zone, domain)  # a 2048-bit key: two TXT character-strings
    done = verify(client, boot, domain["id"])
    assert set(statuses(done).values()) == {"pass"}
    assert done["dns_verified"] is True and done["compliance_status"] == "compliant"
    assert done["dns_verified_at"] is not None and done["dns_verified_at"].endswith("Z")
    assert key_states(services, domain["id"]) == {"pr1r": "active", "pr1e": "active"}
    assert get(client, boot, domain["id"]) == done  # statuses are stored, not recomputed

    assert [(k, d.get("selector")) for k, d in logged(services, domain["id"])] == [
        ("dkim_published", "pr1r"),
        ("dkim_published", "pr1e"),
        ("dkim_activated", "pr1r"),
        ("dkim_activated", "pr1e"),
        ("domain_verified", None),
    ]
    # The signing path gets the active keys, and what they sign verifies against DNS.
    keys = services.db.read_sync(
        lambda conn: domain_service.signing_keys(services, conn, boot.account_id, "EXAMPLE.com")
    )
    assert sorted(k.selector for k in keys) == ["pr1e", "pr1r"]
    assert dkimpy_verdicts(zone, dkim.sign(MESSAGE, keys), 2) == [True, True]
    names = services.db.read_sync(
        lambda conn: domain_service.verified_domain_names(conn, boot.account_id)
    )
    assert names == {"example.com"}
    # Another account sending as the same domain gets nothing to sign with.
    assert signing_selectors(services, boot.account_id + 1) == []


def test_the_tracking_cname_is_not_required(
    client: TestClient, boot: Bootstrap, zone: LocalDnsServer
) -> None:
    domain = create(client, boot)
    publish(zone, domain, "verification", "spf", "dkim1", "dkim2", "dmarc")
    done = verify(client, boot, domain["id"])
    assert done["dns_verified"] is True
    assert statuses(done)["link_verification"] == "missing"


def test_a_wrong_key_record_fails_and_keeps_that_key_pending(
    client: TestClient, boot: Bootstrap, services: Services, zone: LocalDnsServer
) -> None:
    domain = create(client, boot)
    publish(zone, domain)
    zone.remove("pr1r._domainkey.example.com", "TXT")
    zone.add_txt("pr1r._domainkey.example.com", "v=DKIM1; k=rsa; p=AAAAB3NzaC1yc2E")
    done = verify(client, boot, domain["id"])
    assert statuses(done)["dkim1"] == "fail" and statuses(done)["dkim2"] == "pass"
    assert done["dns_verified"] is False
    assert key_states(services, domain["id"]) == {"pr1r": "pending", "pr1e": "active"}


def test_a_lost_record_unverifies(
    client: TestClient, boot: Bootstrap, services: Services, zone: LocalDnsServer
) -> None:
    domain = create(client, boot)
    publish(zone, domain)
    assert verify(client, boot, domain["id"])["dns_verified"] is True
    seen = len(logged(services, domain["id"]))

    zone.remove("example.com", "TXT")  # the SPF record
    lost = verify(client, boot, domain["id"])
    assert lost["dns_verified"] is False and lost["dns_verified_at"] is None
    assert statuses(lost)["spf"] == "missing"
    failed = logged(services, domain["id"])[seen:]
    assert [kind for kind, _ in failed] == ["domain_failed"]
    assert failed[0][1]["records"] == ["spf"]
    assert failed[0][1]["statuses"] == {"spf": "missing"}
    assert signing_selectors(services, boot.account_id) == []  # unverified: no signing
    # Keys stay active: the domain, not the key, lost its standing.
    assert key_states(services, domain["id"]) == {"pr1r": "active", "pr1e": "active"}

    publish(zone, domain, "spf")
    back = verify(client, boot, domain["id"])
    assert back["dns_verified"] is True
    assert kinds_since(services, domain["id"], seen + 1) == [("domain_verified", None)]


def test_a_failing_name_server_changes_nothing(
    client: TestClient, boot: Bootstrap, services: Services, zone: LocalDnsServer
) -> None:
    verified, pending = create(client, boot, "example.com"), create(client, boot, "new.example")
    publish(zone, verified)
    before = verify(client, boot, verified["id"])
    seen = len(logged(services, verified["id"]))

    zone.fail_with = "SERVFAIL"
    during = verify(client, boot, verified["id"])
    assert set(statuses(during).values()) == {"network_error"}
    assert during["dns_verified"] is True
    assert during["dns_verified_at"] == before["dns_verified_at"]
    assert logged(services, verified["id"])[seen:] == []
    assert signing_selectors(services, boot.account_id) == ["pr1e", "pr1r"]

    still = verify(client, boot, pending["id"])
    assert still["dns_verified"] is False
    assert key_states(services, pending["id"]) == {"pr1r": "pending", "pr1e": "pending"}

    zone.fail_with = None
    assert set(statuses(verify(client, boot, verified["id"])).values()) == {"pass"}


# --- keys at rest ---------------------------------------------------------------------------


def test_private_keys_are_sealed_at_rest(
    client: TestClient, boot: Bootstrap, services: Services
) -> None:
    domain = create(client, boot)
    rows = services.db.read_sync(
        lambda conn: conn.execute(
            select(dkim_keys.c.private_key, dkim_keys.c.public_record).where(
                dkim_keys.c.domain_id == domain["id"]
            )
        ).all()
    )
    assert len(rows) == 2
    for sealed, public in rows:
        assert b"PRIVATE KEY" not in bytes(sealed) and b"-----BEGIN" not in bytes(sealed)
        pem = services.get_sealer().open(bytes(sealed))
        assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        assert dkim.public_record(dkim.load_private_pem(pem)) == public


# --- rotation -------------------------------------------------------------------------------


def test_full_rotation(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    zone: LocalDnsServer,
    clock: FrozenClock,
) -> None:
    services.settings.domains.rsa_bits = 1024  # three generations' worth of keys
    scheduler = Scheduler(services)
    domain = create(client, boot)
    publish(zone, domain)
    assert verify(client, boot, domain["id"])["dns_verified"] is True
    seen = len(logged(services, domain["id"]))

    # Day 89: the scheduler re-checks (its last check is hours old), nothing is due yet.
    clock.advance(89 * DAY)
    asyncio.run(scheduler.run_once())
    assert key_states(services, domain["id"]) == {"pr1r": "active", "pr1e": "active"}
    assert logged(services, domain["id"])[seen:] == []

    # Day 90: the scheduler's check publishes generation 2 beside generation 1.
    clock.advance(1 * DAY)
    asyncio.run(scheduler.run_once())
    rotating = get(client, boot, domain["id"])
    assert selectors(rotating) == {
        "dkim1": "pr1r",
        "dkim2": "pr1e",
        "dkim1_next": "pr2r",
        "dkim2_next": "pr2e",
    }
    assert statuses(rotating)["dkim1_next"] == "unchecked"
    assert rotating["dns_verified"] is True  # generation 1 still signs
    assert kinds_since(services, domain["id"], seen) == [
        ("dkim_published", "pr2r"),
        ("dkim_published", "pr2e"),
    ]
    assert signing_selectors(services, boot.account_id) == ["pr1e", "pr1r"]
    seen += 2

    # The user publishes the new records; the next check switches signing over.
    clock.advance(3600)
    publish(zone, rotating, "dkim1_next", "dkim2_next")
    switched = verify(client, boot, domain["id"])
    assert selectors(switched) == {
        "dkim1": "pr2r",
        "dkim2": "pr2e",
        "dkim1_previous": "pr1r",
        "dkim2_previous": "pr1e",
    }
    assert set(statuses(switched).values()) == {"pass"}
    assert switched["dns_verified"] is True
    assert key_states(services, domain["id"]) == {
        "pr1r": "retiring",
        "pr1e": "retiring",
        "pr2r": "active",
        "pr2e": "active",
    }
    assert kinds_since(services, domain["id"], seen) == [
        ("dkim_activated", "pr2r"),
        ("dkim_activated", "pr2e"),
        ("dkim_retiring", "pr1r"),
        ("dkim_retiring", "pr1e"),
    ]
    assert signing_selectors(services, boot.account_id) == ["pr2e", "pr2r"]
    seen += 4
    switch_time = clock.now()

    # Within the grace period the old keys stay published.
    clock.advance(6 * DAY)
    assert "dkim1_previous" in selectors(verify(client, boot, domain["id"]))
    assert logged(services, domain["id"])[seen:] == []

    # Grace over: the old keys are retired and no longer listed.
    clock.advance(1 * DAY)
    done = verify(client, boot, domain["id"])
    assert selectors(done) == {"dkim1": "pr2r", "dkim2": "pr2e"}
    assert done["dns_verified"] is True
    assert kinds_since(services, domain["id"], seen) == [
        ("dkim_retired", "pr1r"),
        ("dkim_retired", "pr1e"),
    ]
    assert key_states(services, domain["id"])["pr1r"] == "retired"

    stamps = services.db.read_sync(
        lambda conn: {
            row.selector: row
            for row in conn.execute(select(dkim_keys).where(dkim_keys.c.domain_id == domain["id"]))
        }
    )
    assert stamps["pr1r"].activated_at == T0
    assert stamps["pr1r"].retiring_at == switch_time
    assert stamps["pr1r"].retired_at == switch_time + timedelta(days=7)
    assert stamps["pr2r"].activated_at == switch_time and stamps["pr2r"].retiring_at is None


def test_on_demand_rotation(
    client: TestClient, boot: Bootstrap, services: Services, zone: LocalDnsServer
) -> None:
    services.settings.domains.rsa_bits = 1024
    domain = create(client, boot)
    # Generation 1 is still pending: publishing another would only confuse the user.
    early = client.post(f"{base(boot)}/{domain['id']}/rotate_dkim")
    assert early.status_code == 422 and "pending" in early.json()["errors"]["base"][0]

    publish(zone, domain)
    verify(client, boot, domain["id"])
    rotated = client.post(f"/api/domains/{domain['id']}/rotate_dkim")  # the alias too
    assert rotated.status_code == 200, rotated.text
    assert selectors(rotated.json())["dkim1_next"] == "pr2r"
    SendingDomain(**rotated.json())
    assert client.post(f"{base(boot)}/{domain['id']}/rotate_dkim").status_code == 422

    publish(zone, rotated.json(), "dkim1_next", "dkim2_next")
    switched = verify(client, boot, domain["id"])
    assert selectors(switched)["dkim1"] == "pr2r"
    assert signing_selectors(services, boot.account_id) == ["pr2e", "pr2r"]


# --- the scheduler ----------------------------------------------------------------------------


def checked_at(services: Services, domain_id: int) -> datetime | None:
    return services.db.read_sync(
        lambda conn: conn.execute(
            select(sending_domains.c.dns_checked_at).where(sending_domains.c.id == domain_id)
        ).scalar()
    )


def test_scheduler_rechecks_on_its_cadence(
    client: TestClient,
    boot: Bootstrap,
    services: Services,
    zone: LocalDnsServer,
    clock: FrozenClock,
) -> None:
    scheduler = Scheduler(services)
    waiting, settled = create(client, boot, "waiting.example"), create(client, boot, "example.com")
    publish(zone, settled)

    asyncio.run(scheduler.run_once())  # never checked: both are due
    assert checked_at(services, waiting["id"]) == T0
    assert checked_at(services, settled["id"]) == T0
    assert get(client, boot, settled["id"])["dns_verified"] is True

    clock.advance(4 * 60)  # unverified domains every 5 minutes
    asyncio.run(scheduler.run_once())
    assert checked_at(services, waiting["id"]) == T0
    clock.advance(60)
    asyncio.run(scheduler.run_once())
    assert checked_at(services, waiting["id"]) == T0 + timedelta(minutes=5)
    assert checked_at(services, settled["id"]) == T0  # verified ones every 6 hours

    clock.advance(6 * 3600)
    asyncio.run(scheduler.run_once())
    assert checked_at(services, settled["id"]) == clock.now()


def test_scheduler_checks_a_bounded_batch(
    client: TestClient, boot: Bootstrap, services: Services, zone: LocalDnsServer
) -> None:
    services.settings.domains.rsa_bits = 1024
    first, second, third = (create(client, boot, f"d{i}.example") for i in range(3))
    assert asyncio.run(domain_service.recheck_due(services, limit=2)) == 2
    assert checked_at(services, third["id"]) is None
    assert asyncio.run(domain_service.recheck_due(services, limit=2)) == 1  # the one left
    assert checked_at(services, third["id"]) is not None
    assert {checked_at(services, d["id"]) is not None for d in (first, second)} == {True}


# --- the command line ---------------------------------------------------------------------


def test_cli_domain_verify_exit_codes(
    client: TestClient, boot: Bootstrap, services: Services, zone: LocalDnsServer
) -> None:
    runner = CliRunner()
    domain = create(client, boot)
    storage = services.settings.storage
    where = ["--data-dir", str(storage.data_dir), "--database-url", str(storage.database_url)]
    args = ["domain", "verify", "example.com", "--dns-server", zone.address, *where]

    missing = runner.invoke(cli, args)
    assert missing.exit_code == 1, missing.output
    assert "missing" in missing.stdout and "not verified" in missing.stdout

    publish(zone, domain)
    ok = runner.invoke(cli, args)
    assert ok.exit_code == 0, ok.output
    assert "pass" in ok.stdout and "is verified" in ok.stdout
    assert get(client, boot, domain["id"])["dns_verified"] is True

    by_id = runner.invoke(
        cli, ["domain", "verify", str(domain["id"]), "--dns-server", zone.address, *where]
    )
    assert by_id.exit_code == 0, by_id.output

    listed = runner.invoke(cli, ["domain", "list", *where])
    assert listed.exit_code == 0 and "example.com" in listed.stdout and "pr1r" in listed.stdout

    rotated = runner.invoke(cli, ["domain", "rotate", "example.com", *where])
    assert rotated.exit_code == 0, rotated.output
    assert "pr2r._domainkey.example.com" in rotated.stdout
    again = runner.invoke(cli, ["domain", "rotate", "example.com", *where])
    assert again.exit_code == 1 and "pending" in again.output

    unknown = runner.invoke(cli, ["domain", "verify", "nope.example", *where])
    assert unknown.exit_code == 2 and "no sending domain" in unknown.output


def test_cli_refuses_a_malformed_dns_server(tmp_path: Path) -> None:
    runner = CliRunner()
    bad = ["--dns-server", "ns.example.com:53", "--data-dir", str(tmp_path)]
    assert runner.invoke(cli, ["serve", *bad]).exit_code == 2
    assert runner.invoke(cli, ["domain", "verify", "example.com", *bad]).exit_code == 2
