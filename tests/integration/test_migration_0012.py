"""Migration 0012 on data made at revision 0010, on SQLite and PostgreSQL: existing tokens
and users get accesses matching their scopes and roles, the oldest admin token becomes
the installation admin's, and the downgrade goes back cleanly."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Connection

from postroom.storage.db import Database
from postroom.storage.migrate import alembic_config, current_revision, upgrade

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def insert(conn: Connection, table: str, **values: Any) -> None:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)
    conn.execute(reflected.insert().values(**values))


def test_accesses_for_existing_tokens_and_users(db_url: str) -> None:
    db = Database.from_url(db_url)
    try:
        upgrade(db.engine, "0010")
        with db.engine.begin() as conn:
            for account_id in (1, 2):
                insert(conn, "accounts", id=account_id, name=f"A{account_id}", created_at=T0)
            insert(
                conn, "users", id=1, account_id=1, email="o@x", name="", role="owner", created_at=T0
            )
            for token_id, account_id, scopes in (
                (1, 1, ["send"]),
                (2, 1, ["admin"]),
                (3, 2, ["admin"]),
                (4, 2, ["read"]),
            ):
                insert(
                    conn,
                    "api_tokens",
                    id=token_id,
                    account_id=account_id,
                    name="t",
                    key_id=f"k{token_id}",
                    secret_hash=b"\0" * 32,
                    last_4_digits="0000",
                    scopes=scopes,
                    created_by="",
                    created_at=T0,
                )
        upgrade(db.engine, "0012")
        with db.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT a.specifier_type, a.specifier_id, p.resource_type, p.resource_id,"
                    " p.access_level FROM account_accesses a LEFT JOIN access_permissions p"
                    " ON p.access_id = a.id ORDER BY a.specifier_type, a.specifier_id,"
                    " p.resource_type"
                )
            ).fetchall()
        assert [tuple(r) for r in rows] == [
            ("ApiToken", 1, None, None, None),  # send-only: no resources
            ("ApiToken", 2, "account", 1, 100),
            ("ApiToken", 2, "organization", 1, 100),  # the installation admin
            ("ApiToken", 3, "account", 2, 100),
            ("ApiToken", 4, "account", 2, 10),
            ("User", 1, "account", 1, 1000),
        ]
        command.downgrade(alembic_config(db.engine), "0010")
        assert current_revision(db.engine) == "0010"
        with db.engine.connect() as conn:
            assert "account_accesses" not in sa.inspect(conn).get_table_names()
            scopes = conn.execute(sa.text("SELECT scopes FROM api_tokens WHERE id = 1")).scalar()
        assert (json.loads(scopes) if isinstance(scopes, str) else scopes) == ["send"]
        upgrade(db.engine)
    finally:
        db.close()
