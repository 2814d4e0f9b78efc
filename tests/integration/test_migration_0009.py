"""Migration 0009 on data made at revision 0008, on SQLite and PostgreSQL.

- sandbox message ids: the old random 64-bit ids are renumbered below 2^53 in their old
  order, the ids idempotency keys replay follow them, and new ids continue above them
  (never reusing a deleted one); the SQLite table rebuilds keep every referring row;
- sending domains: one owner per domain (the verified one, else the oldest), whatever
  the spelling; the other copies go with their keys and are logged;
- inbox passwords: left in plain text by the migration (no key there), sealed at the
  next start, and still the same password for SMTP and the API.
"""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection, Engine

from postroom.config import Settings
from postroom.sandbox.credentials import seal_plaintext_passwords, smtp_password
from postroom.sandbox.smtp_login import InboxLogin, inbox_login
from postroom.services import Services
from postroom.storage.db import Database
from postroom.storage.migrate import alembic_config, current_revision, upgrade

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EPOCH_MS = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def old_snowflake(at: datetime, low: int) -> int:
    """A sandbox id as revision 0008's code made them: ms since 2020 << 22 | 22 random bits."""
    return ((int(at.timestamp() * 1000) - EPOCH_MS) << 22) | low


def insert(conn: Connection, table: str, **values: Any) -> None:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    conn.execute(reflected.insert().values(**values))


def seed_0008(engine: Engine) -> dict[str, Any]:
    """Data as revision 0008 stored it; returns what the test needs to find it again."""
    # Out of time order on purpose (4 is older than 3), as random low bits allow.
    sandbox = {
        "a": old_snowflake(T0, 3_000_000),
        "b": old_snowflake(T0 + timedelta(seconds=1), 5),
        "c": old_snowflake(T0 + timedelta(seconds=2), 4_000_000),
        "d": old_snowflake(T0 + timedelta(seconds=2), 7),
    }
    stamps = {"created_at": T0, "updated_at": T0}
    with engine.begin() as conn:
        for account in (1, 2):
            insert(conn, "accounts", id=account, name=f"A{account}", created_at=T0)
            insert(conn, "projects", id=account, account_id=account, name="P", **stamps)
            insert(
                conn,
                "inboxes",
                id=account,
                account_id=account,
                project_id=account,
                name="Inbox",
                is_default=True,
                username=f"user{account}",
                password=f"plainpass{account}",
                email_username=f"e{account}",
                email_username_enabled=False,
                max_size=1000,
                max_message_size=10_000_000,
                sent_messages_count=0,
                **stamps,
            )
        for key, sandbox_id in sandbox.items():
            insert(
                conn,
                "sandbox_messages",
                id=sandbox_id,
                inbox_id=1 if key != "d" else 2,
                account_id=1 if key != "d" else 2,
                subject=f"message {key}",
                from_email="a@example.com",
                from_name="",
                to_email="b@example.org",
                to_name="",
                mail_from="a@example.com",
                raw=b"Subject: x\r\n\r\nbody\r\n",
                email_size=20,
                text_body_size=4,
                html_body_size=0,
                is_read=False,
                **stamps,
            )
        insert(
            conn,
            "idempotency_keys",
            account_id=1,
            key="sandbox-send",
            fingerprint="f" * 64,
            outcomes=[{"message_ids": [str(sandbox["b"])]}, {"errors": ["bad"]}],
            created_at=T0,
        )
        insert(
            conn,
            "idempotency_keys",
            account_id=1,
            key="api-send",
            fingerprint="f" * 64,
            outcomes=[{"message_ids": ["0b7d3a2e-9c1f-4f7e-8a1d-2c3b4a5d6e7f"]}],
            created_at=T0,
        )
        domains = [
            # id, account, name, verified
            (1, 1, "example.com", False),  # the older, unverified copy
            (2, 2, "example.com", True),  # the copy DNS vouches for: it stays
            (3, 1, "bücher.example", False),  # the oldest of two spellings: it stays
            (4, 2, "xn--bcher-kva.example", False),
            (5, 2, "mail.example.com", False),  # a subdomain is another domain
        ]
        for domain_id, account, name, verified in domains:
            insert(
                conn,
                "sending_domains",
                id=domain_id,
                account_id=account,
                domain_name=name,
                open_tracking_enabled=False,
                click_tracking_enabled=False,
                auto_unsubscribe_link_enabled=False,
                custom_domain_tracking_enabled=False,
                health_alerts_enabled=True,
                critical_alerts_enabled=True,
                tracking_opt_out_enabled=False,
                inbound_enabled=False,
                dns_verified=verified,
                dns_verified_at=T0 if verified else None,
                dns_results={},
                **stamps,
            )
            insert(
                conn,
                "dkim_keys",
                domain_id=domain_id,
                generation=1,
                selector="pr1r",
                algorithm="rsa-sha256",
                private_key=b"sealed",
                public_record="v=DKIM1; p=",
                state="pending",
                created_at=T0,
            )
        insert(conn, "domain_alerts", domain_id=1, alert="dns", account_id=1, raised=True)
    return sandbox


@pytest.fixture
def migrated(db_url: str, caplog: pytest.LogCaptureFixture) -> Any:
    db = Database.from_url(db_url)
    upgrade(db.engine, "0008")
    sandbox = seed_0008(db.engine)
    with caplog.at_level(logging.WARNING, logger="postroom.migrations"):
        upgrade(db.engine)
    yield db, sandbox
    db.close()


def rows(db: Database, sql: str) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def test_sandbox_ids_are_renumbered_below_2_53_in_their_old_order(migrated: Any) -> None:
    db, old = migrated
    found = rows(db, "SELECT id, subject FROM sandbox_messages ORDER BY id")
    # The old order (by id, which was by time) is kept, from 2^32 + 1 up.
    by_old_id = sorted(old, key=old.get)
    assert [subject for _, subject in found] == [f"message {k}" for k in by_old_id]
    assert [i for i, _ in found] == [2**32 + n for n in range(1, 5)]
    assert all(i < 2**53 for i, _ in found)


def test_idempotent_answers_follow_the_renumbering(migrated: Any) -> None:
    db, old = migrated
    [new_b] = [
        i for i, s in rows(db, "SELECT id, subject FROM sandbox_messages") if s.endswith("b")
    ]
    answers = dict(rows(db, "SELECT key, outcomes FROM idempotency_keys"))

    def decoded(value: Any) -> Any:  # JSON comes back as text from a raw SELECT on SQLite
        return json.loads(value) if isinstance(value, str) else value

    assert decoded(answers["sandbox-send"]) == [{"message_ids": [str(new_b)]}, {"errors": ["bad"]}]
    assert decoded(answers["api-send"]) == [
        {"message_ids": ["0b7d3a2e-9c1f-4f7e-8a1d-2c3b4a5d6e7f"]}
    ]


def test_new_sandbox_ids_continue_and_are_never_reused(migrated: Any) -> None:
    db, _ = migrated
    table = sa.Table("sandbox_messages", sa.MetaData(), autoload_with=db.engine)
    values = {
        "inbox_id": 1,
        "account_id": 1,
        "subject": "new",
        "from_email": "a@example.com",
        "from_name": "",
        "to_email": "b@example.org",
        "to_name": "",
        "mail_from": "a@example.com",
        "raw": b"x",
        "email_size": 1,
        "text_body_size": 0,
        "html_body_size": 0,
        "is_read": False,
        "created_at": T0,
        "updated_at": T0,
    }

    def add(conn: Connection) -> int:
        return int(conn.execute(table.insert().values(**values).returning(table.c.id)).scalar_one())

    first = db.write_sync(add)
    assert first == 2**32 + 5
    db.write_sync(lambda conn: conn.execute(table.delete().where(table.c.id == first)))
    assert db.write_sync(add) == first + 1  # the deleted id is not handed out again


def test_captured_messages_survive_the_inbox_table_rebuild(migrated: Any) -> None:
    """SQLite rebuilds ``inboxes``; with foreign keys on, that would cascade-delete."""
    db, _ = migrated
    assert rows(db, "SELECT COUNT(*) FROM sandbox_messages") == [(4,)]
    assert rows(db, "SELECT COUNT(*) FROM inboxes") == [(2,)]


def test_one_owner_per_domain_keeps_the_verified_then_the_oldest(
    migrated: Any, caplog: pytest.LogCaptureFixture
) -> None:
    db, _ = migrated
    kept = rows(db, "SELECT id, account_id, ascii_name FROM sending_domains ORDER BY id")
    assert kept == [
        (2, 2, "example.com"),
        (3, 1, "xn--bcher-kva.example"),
        (5, 2, "mail.example.com"),
    ]
    assert rows(db, "SELECT domain_id FROM dkim_keys ORDER BY domain_id") == [(2,), (3,), (5,)]
    assert rows(db, "SELECT COUNT(*) FROM domain_alerts") == [(0,)]
    logged = caplog.get_records("setup")  # the migration ran in the fixture
    removed = [r.getMessage() for r in logged if r.name == "postroom.migrations"]
    assert len(removed) == 2
    assert "account 2 keeps it (domain id 2)" in removed[0]
    assert "account 1 (domain id 1" in removed[0]
    # The constraint holds from now on, in the database itself.
    with pytest.raises(sa.exc.IntegrityError), db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE sending_domains SET ascii_name = 'example.com' WHERE id = 5"))


def test_passwords_stay_plain_until_the_next_start_seals_them(migrated: Any, tmp_path: Any) -> None:
    db, _ = migrated
    assert rows(db, "SELECT id, password, password_sealed FROM inboxes ORDER BY id") == [
        (1, "plainpass1", None),
        (2, "plainpass2", None),
    ]
    services = Services(settings=Settings(storage={"data_dir": tmp_path / "data"}), db=db)
    # Before the seal, the old password works (a process that has not restarted yet).
    login = asyncio.run(inbox_login(services, "user1", b"plainpass1"))
    assert login == InboxLogin(1, 1)

    assert seal_plaintext_passwords(services) == 2
    stored = rows(db, "SELECT id, password, password_sealed FROM inboxes ORDER BY id")
    assert [(i, p) for i, p, _ in stored] == [(1, None), (2, None)]
    assert all(b"plainpass" not in bytes(sealed) for _, _, sealed in stored)
    sealer = services.get_sealer()
    assert [
        smtp_password(sealer, {"password": None, "password_sealed": s}) for *_, s in stored
    ] == [
        "plainpass1",
        "plainpass2",
    ]
    assert asyncio.run(inbox_login(services, "user2", b"plainpass2")) == InboxLogin(2, 2)
    assert asyncio.run(inbox_login(services, "user2", b"plainpass1")) is None
    assert seal_plaintext_passwords(services) == 0  # nothing left to seal


def test_downgrade_to_0008_and_up_again(migrated: Any, tmp_path: Any) -> None:
    db, _ = migrated
    downgrade(db.engine, "0008")
    assert current_revision(db.engine) == "0008"
    assert rows(db, "SELECT COUNT(*) FROM sandbox_messages") == [(4,)]
    upgrade(db.engine, "0009")
    assert current_revision(db.engine) == "0009"
    # Once sealed, passwords cannot be unsealed by a migration: refused, nothing changed.
    services = Services(settings=Settings(storage={"data_dir": tmp_path / "data"}), db=db)
    seal_plaintext_passwords(services)
    with pytest.raises(RuntimeError, match="downgrading past 0009 is not supported"):
        downgrade(db.engine, "0008")
    assert current_revision(db.engine) == "0009"
