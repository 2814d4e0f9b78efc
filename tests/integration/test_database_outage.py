"""While the database is unreachable the API answers 503 with Retry-After in the contract's
shapes, logs the outage once, and recovers by itself once the database is back.

A real PostgreSQL behind a TCP proxy that the test stops (the listener and every pooled
connection go at once, as in a PostgreSQL restart) and starts again on the same port.
The TestClient re-raises anything the app lets escape, which uvicorn would answer by
closing the connection: the test failing on it is the "drops connections" symptom.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from smtp_submission import listeners, make_tls, starttls_client
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient

from postroom.api.app import create_app
from postroom.config import Settings
from postroom.errors import StoreUnavailable
from postroom.services import Services
from postroom.services.accounts import Bootstrap, bootstrap, create_token
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from tcpproxy import TcpProxy

MAIL = {
    "from": {"email": "a@shop.example"},
    "to": [{"email": "b@dest.example"}],
    "subject": "s",
    "text": "t",
}
MESSAGE = b"From: a@shop.example\r\nTo: b@dest.example\r\nSubject: s\r\n\r\nbody\r\n"


@dataclass
class Outage:
    proxy: TcpProxy
    services: Services
    boot: Bootstrap
    client: TestClient


@pytest.fixture
def outage(db_url: str, settings: Settings) -> Iterator[Outage]:
    url = make_url(db_url)
    with TcpProxy((url.host or "127.0.0.1", url.port or 5432)) as proxy:
        proxied = url.set(host="127.0.0.1", port=proxy.port)
        db = Database.from_url(proxied.render_as_string(hide_password=False))
        upgrade(db.engine)
        services = Services(settings=settings, db=db)
        boot = bootstrap(services)
        assert boot is not None
        with TestClient(create_app(services)) as client:
            client.headers["Authorization"] = f"Bearer {boot.token}"
            yield Outage(proxy, services, boot, client)
        db.close()


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_503_with_retry_after_while_the_database_is_down_then_recovery(
    outage: Outage, caplog: pytest.LogCaptureFixture
) -> None:
    client, boot = outage.client, outage.boot
    unused = outage.services.db.write_sync(
        lambda conn: create_token(outage.services, conn, boot.account_id, "unused")
    )
    domains = f"/api/accounts/{boot.account_id}/sending_domains"
    assert client.post("/api/send", json=MAIL).status_code == 200
    assert client.get(domains).status_code == 200

    outage.proxy.stop()
    with caplog.at_level(logging.INFO, logger="postroom"):
        sent = client.post("/api/send", json=MAIL)
        assert sent.status_code == 503
        assert sent.json() == {"success": False, "errors": ["Service temporarily unavailable"]}
        assert int(sent.headers["Retry-After"]) > 0
        for _ in range(3):
            listed = client.get(domains)
            assert listed.status_code == 503
            assert listed.json() == {"errors": "Service temporarily unavailable"}
            assert int(listed.headers["Retry-After"]) > 0
        # A token that must be looked up: unavailable, not "wrong token".
        fresh = client.get(domains, headers={"Authorization": f"Bearer {unused}"})
        assert fresh.status_code == 503
        down = [r for r in caplog.records if "unreachable" in r.getMessage()]
        assert len(down) == 1 and down[0].levelno == logging.WARNING

        outage.proxy.start()
        assert client.post("/api/send", json=MAIL).status_code == 200
        assert client.get(domains).status_code == 200
        assert client.get(domains, headers={"Authorization": f"Bearer {unused}"}).status_code == 200
    assert any("reachable again" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_smtp_submission_answers_temporary_failures_during_the_outage(
    outage: Outage, tmp_path: Path
) -> None:
    tls = make_tls(tmp_path)
    with listeners(outage.services, tls) as running:
        with starttls_client(running.starttls, tls) as sending:
            sending.login("api", outage.boot.token)
            outage.proxy.stop()
            sending.mail("a@shop.example")
            sending.rcpt("b@dest.example")
            code, _ = sending.data(MESSAGE)
            assert code == 451
        unused = f"pr_{'1' * 40}"
        with starttls_client(running.starttls, tls) as client:
            blob = base64.b64encode(f"\0api\0{unused}".encode()).decode()
            assert client.docmd("AUTH", f"PLAIN {blob}")[0] == 454
        outage.proxy.start()
        with starttls_client(running.starttls, tls) as client:
            client.login("api", outage.boot.token)
            client.sendmail("a@shop.example", ["b@dest.example"], MESSAGE)


def test_sqlite_lock_timeouts_are_unavailability_and_bad_statements_are_not(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    holder = create_engine(url)
    waiter = Database(create_engine(url, connect_args={"timeout": 0.1}))
    with holder.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        conn.commit()
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        conn.exec_driver_sql("INSERT INTO t VALUES (1)")
        with pytest.raises(StoreUnavailable):
            waiter.write_sync(lambda c: c.exec_driver_sql("INSERT INTO t VALUES (2)"))
        conn.rollback()
    with pytest.raises(OperationalError):
        waiter.read_sync(lambda c: c.exec_driver_sql("SELECT nope FROM t"))
    waiter.close()
    holder.dispose()
