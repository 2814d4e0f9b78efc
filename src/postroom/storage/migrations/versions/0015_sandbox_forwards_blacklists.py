"""Sandbox forwards and blacklist reports (issue F14)

Revision ID: 0015
Revises: 0014

``sandbox_forwards`` records each forward of a captured message, so an inbox's
``forwarded_messages_count`` and the billing cycle's are counts of real forwards.
Inboxes that forwarded before this revision have no record of it and start at 0.
``sandbox_messages`` gains the DNS blocklist report, NULL until a message is checked.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.storage.tables import UTCDateTime

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "sandbox_forwards",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("inbox_id", _ID, nullable=False),
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_sandbox_forwards_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["inbox_id"],
            ["inboxes.id"],
            name=op.f("fk_sandbox_forwards_inbox_id_inboxes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sandbox_forwards")),
    )
    with op.batch_alter_table("sandbox_forwards", schema=None) as batch_op:
        batch_op.create_index("ix_sandbox_forwards_inbox", ["inbox_id"], unique=False)
        batch_op.create_index(
            "ix_sandbox_forwards_account_created", ["account_id", "created_at"], unique=False
        )
    with op.batch_alter_table("sandbox_messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("blacklists_report", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("blacklists_checked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sandbox_messages", schema=None) as batch_op:
        batch_op.drop_column("blacklists_checked_at")
        batch_op.drop_column("blacklists_report")
    with op.batch_alter_table("sandbox_forwards", schema=None) as batch_op:
        batch_op.drop_index("ix_sandbox_forwards_account_created")
        batch_op.drop_index("ix_sandbox_forwards_inbox")
    op.drop_table("sandbox_forwards")
