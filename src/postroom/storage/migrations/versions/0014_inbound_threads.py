"""Inbound threads, forward rules and answers sent from inboxes (issue F14)

Revision ID: 0014
Revises: 0013

Self-contained: it needs only the inbound tables of 0011. Messages received before it keep
``thread_id`` NULL (they belong to no thread; inbound email is not released before it).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from postroom.storage.tables import UTCDateTime

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", _BIG_ID, autoincrement=True, nullable=False)


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def _owned(table: str) -> list[Any]:
    """account_id and inbox_id, both cascading."""
    return [
        sa.Column("account_id", _BIG_ID, nullable=False),
        sa.Column("inbox_id", _BIG_ID, nullable=False),
        _fk(table, "account_id", "accounts"),
        _fk(table, "inbox_id", "inbound_inboxes"),
    ]


def upgrade() -> None:
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("thread_id", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("forwards", sa.JSON(), nullable=True))
    op.create_index("ix_inbound_messages_thread", "inbound_messages", ["thread_id", "id"])
    op.create_table(
        "inbound_threads",
        _id(),
        *_owned("inbound_threads"),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("subject_key", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_activity_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_threads")),
    )
    op.create_index(
        "ix_inbound_threads_activity", "inbound_threads", ["inbox_id", "last_activity_at", "id"]
    )
    op.create_index("ix_inbound_threads_subject", "inbound_threads", ["inbox_id", "subject_key"])
    op.create_table(
        "inbound_thread_keys",
        _id(),
        sa.Column("inbox_id", _BIG_ID, nullable=False),
        sa.Column("thread_id", _BIG_ID, nullable=False),
        sa.Column("rfc_id", sa.String(length=255), nullable=False),
        _fk("inbound_thread_keys", "inbox_id", "inbound_inboxes"),
        _fk("inbound_thread_keys", "thread_id", "inbound_threads"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_thread_keys")),
        sa.UniqueConstraint("inbox_id", "rfc_id", name="uq_inbound_thread_keys_inbox_rfc_id"),
    )
    op.create_index("ix_inbound_thread_keys_thread", "inbound_thread_keys", ["thread_id"])
    op.create_table(
        "inbound_sent",
        _id(),
        *_owned("inbound_sent"),
        sa.Column("thread_id", sa.BigInteger(), nullable=True),
        sa.Column("source_message_id", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_sent")),
    )
    op.create_index("ix_inbound_sent_thread", "inbound_sent", ["thread_id", "id"])
    op.create_index("ix_inbound_sent_inbox", "inbound_sent", ["inbox_id", "id"])
    op.create_table(
        "inbound_forward_rules",
        _id(),
        *_owned("inbound_forward_rules"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("conditions", sa.JSON(), nullable=False),
        sa.Column("destinations", sa.JSON(), nullable=False),
        sa.Column("from_email", sa.String(length=320), nullable=True),
        sa.Column("from_name", sa.String(length=200), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_forward_rules")),
    )
    op.create_index("ix_inbound_forward_rules_inbox", "inbound_forward_rules", ["inbox_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_forward_rules_inbox", table_name="inbound_forward_rules")
    op.drop_table("inbound_forward_rules")
    op.drop_index("ix_inbound_sent_inbox", table_name="inbound_sent")
    op.drop_index("ix_inbound_sent_thread", table_name="inbound_sent")
    op.drop_table("inbound_sent")
    op.drop_index("ix_inbound_thread_keys_thread", table_name="inbound_thread_keys")
    op.drop_table("inbound_thread_keys")
    op.drop_index("ix_inbound_threads_subject", table_name="inbound_threads")
    op.drop_index("ix_inbound_threads_activity", table_name="inbound_threads")
    op.drop_table("inbound_threads")
    op.drop_index("ix_inbound_messages_thread", table_name="inbound_messages")
    with op.batch_alter_table("inbound_messages", schema=None) as batch_op:
        batch_op.drop_column("forwards")
        batch_op.drop_column("thread_id")
