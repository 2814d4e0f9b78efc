"""Substring search indexes; the dashboard session's current account (issue F12)

Revision ID: 0016
Revises: 0015

* Substring search (storage/search.py): on PostgreSQL the pg_trgm extension and a GIN
  trigram index on the searched columns of deliveries (recipient), messages (sender,
  subject) and sandbox_messages (subject, sender and recipient address and name); on
  SQLite an FTS5 trigram table per searched table, with its triggers, filled from the
  rows already there. Building them over a large database takes a while (see
  docs/benchmarks.md: seconds per million messages).
* ``user_sessions.account_id``: the account a dashboard session acts in (null: the
  user's own account), and an index finding a user's accesses in every account.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.storage import search

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # pg_trgm is a trusted extension (PostgreSQL 13+): a database owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        trgm_schema = bind.execute(
            sa.text(
                "SELECT extnamespace::regnamespace::text FROM pg_extension"
                " WHERE extname = 'pg_trgm'"
            )
        ).scalar_one()
        for table in search.SEARCHED:
            op.execute(search.pg_index_ddl(table, trgm_schema))
            # Statistics of the new index's expressions (lower(recipient)…) come with the
            # next ANALYZE; without them the planner takes any term for a rare one and
            # collects every match of a common one (1.6 s for "gmail.com" over a million
            # deliveries instead of 16 ms). Autovacuum may not analyze a big table soon.
            op.execute(f"ANALYZE {table}")
    else:
        for table in search.SEARCHED:
            search.install_sqlite(bind, table)
    with op.batch_alter_table("account_accesses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_account_accesses_specifier", ["specifier_type", "specifier_id"], unique=False
        )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
            )
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_user_sessions_account_id_accounts"),
            "accounts",
            ["account_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_user_sessions_account_id_accounts"), type_="foreignkey"
        )
        batch_op.drop_column("account_id")
    with op.batch_alter_table("account_accesses", schema=None) as batch_op:
        batch_op.drop_index("ix_account_accesses_specifier")
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        # The extension stays: other objects of the database may use it.
        for index in search.PG_INDEXES.values():
            op.execute(f"DROP INDEX IF EXISTS {index}")
    else:
        for table in search.SEARCHED:
            search.drop_sqlite(bind, table)
