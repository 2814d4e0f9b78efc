"""Migration 0016 on data made at revision 0015, on SQLite and PostgreSQL: the search
indexes cover the rows already there and follow later inserts, updates and deletes; the
"contains" searches answer the same with them; the downgrade removes them cleanly."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from postroom.domain.logfilters import Filter, LogQuery
from postroom.storage import search
from postroom.storage.db import Database
from postroom.storage.migrate import alembic_config, current_revision, upgrade
from postroom.storage.repos import logs as log_repo
from postroom.storage.repos import sandbox as sandbox_repo

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def insert(conn: Connection, table: str, **values: Any) -> None:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    conn.execute(reflected.insert().values(**values))


def _message_row(n: int | str, subject: str) -> dict[str, Any]:
    return {
        "id": f"m{n}",
        "account_id": 1,
        "stream": "transactional",
        "sender": f"Sender{n}@Example.com",
        "subject": subject,
        "rfc_message_id": f"<{n}@x>",
        "size": 10,
        "created_at": T0,
    }


def _delivery_row(n: int | str, recipient: str) -> dict[str, Any]:
    return {
        "id": f"d{n}",
        "message_id": f"m{n}",
        "account_id": 1,
        "stream": "transactional",
        "recipient": recipient,
        "recipient_domain": recipient.rpartition("@")[2],
        "recipient_kind": "to",
        "position": 0,
        "state": "delivered",
        "priority": 0,
        "next_attempt_at": T0,
        "attempts": 1,
        "lease_count": 0,
        "created_at": T0,
        "updated_at": T0,
    }


def _captured_row(n: int, to_email: str, subject: str) -> dict[str, Any]:
    return {
        "id": n,
        "inbox_id": 1,
        "account_id": 1,
        "subject": subject,
        "from_email": "app@example.com",
        "from_name": "App",
        "to_email": to_email,
        "to_name": "",
        "mail_from": "app@example.com",
        "raw": b"x",
        "email_size": 1,
        "text_body_size": 0,
        "html_body_size": 0,
        "is_read": False,
        "created_at": T0,
        "updated_at": T0,
    }


def message(conn: Connection, n: int, recipient: str, subject: str) -> None:
    insert(conn, "messages", **_message_row(n, subject))
    insert(conn, "deliveries", **_delivery_row(n, recipient))


def captured(conn: Connection, n: int, to_email: str, subject: str) -> None:
    insert(conn, "sandbox_messages", **_captured_row(n, to_email, subject))


def recipients(conn: Connection, term: str) -> list[str]:
    query = LogQuery(filters=(Filter("to", "ci_contain", (term,)),))
    rows = log_repo.page(conn, 1, log_repo.conditions(conn, query, {}), None, 50)
    return sorted(r["recipient"] for r in rows)


def subjects(conn: Connection, term: str) -> list[str]:
    rows = sandbox_repo.list_messages(
        conn, 1, search=term, before_id=None, offset=0, limit=50, message_id=None
    )
    return sorted(r["subject"] for r in rows)


def test_search_indexes_on_existing_and_new_rows(db_url: str) -> None:
    db = Database.from_url(db_url)
    sqlite = db.engine.dialect.name == "sqlite"
    try:
        upgrade(db.engine, "0015")
        with db.engine.begin() as conn:
            insert(conn, "accounts", id=1, name="A", created_at=T0)
            insert(conn, "projects", id=1, account_id=1, name="P", created_at=T0, updated_at=T0)
            insert(
                conn,
                "inboxes",
                id=1,
                account_id=1,
                project_id=1,
                name="I",
                is_default=True,
                username="u1",
                email_username="e1",
                email_username_enabled=False,
                max_size=100,
                max_message_size=100,
                sent_messages_count=0,
                created_at=T0,
                updated_at=T0,
            )
            message(conn, 1, "Alice.Smith@Example.org", "Invoice 1")
            message(conn, 2, "bob@example.net", "Welcome")
            captured(conn, 1, "carol@example.com", "Your receipt")
            captured(conn, 2, "dave@example.com", "Password reset")
        upgrade(db.engine, "0016")
        with db.engine.begin() as conn:
            # Rows made before the migration are found (case-insensitive, any part).
            assert recipients(conn, "SMITH@exa") == ["Alice.Smith@Example.org"]
            assert recipients(conn, "example") == ["Alice.Smith@Example.org", "bob@example.net"]
            assert recipients(conn, "zz%") == []  # LIKE's wildcards are text here
            assert subjects(conn, "RECEIPT") == ["Your receipt"]
            assert subjects(conn, "dave@") == ["Password reset"]
            narrowed = search.narrowing(conn, "deliveries", ["recipient"], ["smith"])
            assert (narrowed is not None) is sqlite  # PostgreSQL's index serves the LIKE
            # Rows written after it: inserted, changed, deleted.
            message(conn, 3, "erin@example.org", "Later")
            conn.execute(sa.text("UPDATE deliveries SET recipient = 'frank@x.org' WHERE id = 'd2'"))
            conn.execute(sa.text("DELETE FROM deliveries WHERE id = 'd1'"))
            captured(conn, 3, "gina@example.com", "Fresh capture")
            conn.execute(sa.text("UPDATE sandbox_messages SET subject = 'Renamed' WHERE id = 2"))
            conn.execute(sa.text("DELETE FROM sandbox_messages WHERE id = 1"))
        with db.engine.connect() as conn:
            assert recipients(conn, "erin") == ["erin@example.org"]
            assert recipients(conn, "frank") == ["frank@x.org"]
            assert recipients(conn, "bob") == []
            assert recipients(conn, "smith") == []
            assert subjects(conn, "gina") == ["Fresh capture"]
            assert subjects(conn, "renamed") == ["Renamed"]
            assert subjects(conn, "password") == []
            assert subjects(conn, "receipt") == []
            if sqlite:
                # The index itself (not only the LIKE) has followed every change.
                found = conn.execute(
                    sa.text("SELECT rowid FROM deliveries_search WHERE deliveries_search MATCH :q"),
                    {"q": '"example.org"'},
                ).fetchall()
                rowid = conn.execute(sa.text("SELECT rowid FROM deliveries WHERE id = 'd3'"))
                assert [r[0] for r in found] == [rowid.scalar()]
            else:
                assert set(search.PG_INDEXES.values()) <= _pg_indexes(conn)
                assert _uses_trigram_index(conn)
            columns = {c["name"] for c in sa.inspect(conn).get_columns("user_sessions")}
            assert "account_id" in columns
        command.downgrade(alembic_config(db.engine), "0015")
        assert current_revision(db.engine) == "0015"
        with db.engine.connect() as conn:
            inspector = sa.inspect(conn)
            assert not any(search.is_search_object(t) for t in inspector.get_table_names())
            assert "account_id" not in {c["name"] for c in inspector.get_columns("user_sessions")}
            if sqlite:
                triggers = conn.execute(
                    sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
                ).fetchall()
                assert not any(search.is_search_object(t[0]) for t in triggers)
            else:
                assert not set(search.PG_INDEXES.values()) & _pg_indexes(conn)
        upgrade(db.engine)
        with db.engine.connect() as conn:
            assert recipients(conn, "erin") == ["erin@example.org"]
    finally:
        db.close()


def _pg_indexes(conn: Connection) -> set[str]:
    rows = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%gin%'"))
    return {r[0] for r in rows}


def _uses_trigram_index(conn: Connection) -> bool:
    """The statements the logs and sandbox searches send, with their parameters, are
    answered from the trigram indexes, once the tables are big enough for an index to
    beat reading them and the planner has their statistics."""
    mass = 3000
    _bulk(conn, "messages", [_message_row(f"bulk{n}", "Bulk") for n in range(mass)])
    _bulk(
        conn, "deliveries", [_delivery_row(f"bulk{n}", f"r{n}@bulk.example") for n in range(mass)]
    )
    _bulk(
        conn,
        "sandbox_messages",
        [_captured_row(100 + n, f"s{n}@bulk.example", "Bulk") for n in range(mass)],
    )
    for table in ("deliveries", "sandbox_messages"):
        # What autovacuum does: GIN's pending list (fast inserts) merged, statistics.
        conn.execute(
            sa.text("SELECT gin_clean_pending_list(:i ::regclass)"), {"i": search.PG_INDEXES[table]}
        )
        conn.exec_driver_sql(f"ANALYZE {table}")
    conn.commit()
    sent: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    sa.event.listen(conn, "before_cursor_execute", keep)
    assert recipients(conn, "erin") == ["erin@example.org"]
    assert subjects(conn, "gina") == ["Fresh capture"]
    sa.event.remove(conn, "before_cursor_execute", keep)
    wanted = {search.PG_INDEXES["deliveries"], search.PG_INDEXES["sandbox_messages"]}
    for statement, parameters in sent:
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {statement}", parameters))
        wanted -= {name for name in wanted if name in plan}
    conn.rollback()
    return not wanted


def _bulk(conn: Connection, table: str, rows: list[dict[str, Any]]) -> None:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    conn.execute(reflected.insert(), rows)
