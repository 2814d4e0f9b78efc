"""Email campaigns

Revision ID: 0017
Revises: 0016

``email_campaigns`` holds each campaign's draft and lifecycle;
``email_campaign_recipients`` its audience as resolved at launch, with each recipient's
progress (the slice that took it, the message it became), so sending resumes after a
crash without losing or repeating anyone. Only new tables: nothing else changes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from postroom.storage.tables import UTCDateTime

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "email_campaigns",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("account_id", _ID, nullable=False),
        sa.Column("domain_id", _ID, nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("from_local_part", sa.String(length=64), nullable=False),
        sa.Column("from_display_name", sa.String(length=255), nullable=True),
        sa.Column("reply_to", sa.JSON(), nullable=True),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("body_html", sa.Text(), nullable=True),
        sa.Column("body_text", sa.Text(), nullable=True),
        sa.Column("merge_tags", sa.JSON(), nullable=False),
        sa.Column("contact_list_ids", sa.JSON(), nullable=False),
        sa.Column("delivery_mode", sa.String(length=16), nullable=False),
        sa.Column("emails_per_hour", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=24), nullable=False),
        sa.Column("state_reason", sa.String(length=255), nullable=True),
        sa.Column("state_error", sa.Text(), nullable=True),
        sa.Column("scheduled_at", UTCDateTime(), nullable=True),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("recipient_total_count", sa.Integer(), nullable=True),
        sa.Column("released", sa.Integer(), nullable=False),
        sa.Column("slices", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_email_campaigns_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["sending_domains.id"],
            name=op.f("fk_email_campaigns_domain_id_sending_domains"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_email_campaigns")),
    )
    with op.batch_alter_table("email_campaigns", schema=None) as batch_op:
        batch_op.create_index("ix_email_campaigns_account", ["account_id", "id"], unique=False)
        batch_op.create_index("ix_email_campaigns_state", ["state"], unique=False)
    op.create_table(
        "email_campaign_recipients",
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("seq", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("slice", sa.Integer(), nullable=True),
        sa.Column("message_id", sa.String(length=36), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["email_campaigns.id"],
            name=op.f("fk_email_campaign_recipients_campaign_id_email_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "seq", name=op.f("pk_email_campaign_recipients")),
    )


def downgrade() -> None:
    op.drop_table("email_campaign_recipients")
    with op.batch_alter_table("email_campaigns", schema=None) as batch_op:
        batch_op.drop_index("ix_email_campaigns_state")
        batch_op.drop_index("ix_email_campaigns_account")
    op.drop_table("email_campaigns")
