"""Open and click tracking, unsubscribe, tracking opt-outs (issue F10)

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.storage.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_COUNTERS = ("opens", "clicks", "machine_opens", "machine_clicks")


def upgrade() -> None:
    op.create_table(
        "tracked_links",
        sa.Column("message_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name=op.f("fk_tracked_links_message_id_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("message_id", "position", name=op.f("pk_tracked_links")),
    )
    op.create_table(
        "tracking_opt_outs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", _BIG_ID, nullable=False),
        sa.Column("domain_id", _BIG_ID, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_tracking_opt_outs_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["sending_domains.id"],
            name=op.f("fk_tracking_opt_outs_domain_id_sending_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tracking_opt_outs")),
        sa.UniqueConstraint("domain_id", "email", name="uq_tracking_opt_outs_domain_email"),
    )
    op.create_index(
        "ix_tracking_opt_outs_account_time",
        "tracking_opt_outs",
        ["account_id", "created_at", "id"],
        unique=False,
    )
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opened_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("clicked_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("sending_domains", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "list_unsubscribe_transactional_enabled",
                sa.Boolean(),
                server_default=sa.false(),
                nullable=False,
            )
        )
    with op.batch_alter_table("stats_daily", schema=None) as batch_op:
        for name in _COUNTERS:
            batch_op.add_column(
                sa.Column(name, sa.BigInteger(), server_default="0", nullable=False)
            )


def downgrade() -> None:
    with op.batch_alter_table("stats_daily", schema=None) as batch_op:
        for name in reversed(_COUNTERS):
            batch_op.drop_column(name)
    with op.batch_alter_table("sending_domains", schema=None) as batch_op:
        batch_op.drop_column("list_unsubscribe_transactional_enabled")
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("clicked_at")
        batch_op.drop_column("opened_at")
    op.drop_index("ix_tracking_opt_outs_account_time", table_name="tracking_opt_outs")
    op.drop_table("tracking_opt_outs")
    op.drop_table("tracked_links")
