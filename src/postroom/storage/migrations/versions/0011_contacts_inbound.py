"""Contacts (fields, lists, imports, exports, events) and inbound mail (issue F14)

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from postroom.storage.tables import UTCDateTime

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _id() -> sa.Column[int]:
    return sa.Column("id", _BIG_ID, autoincrement=True, nullable=False)


def _account(table: str) -> list[Any]:
    return [
        sa.Column("account_id", _BIG_ID, nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f(f"fk_{table}_account_id_accounts"),
            ondelete="CASCADE",
        ),
    ]


def _fk(table: str, column: str, target: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "contact_fields",
        _id(),
        *_account("contact_fields"),
        sa.Column("name", sa.String(length=80), nullable=False),
        sa.Column("data_type", sa.String(length=16), nullable=False),
        sa.Column("merge_tag", sa.String(length=80), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_fields")),
        sa.UniqueConstraint("account_id", "merge_tag", name="uq_contact_fields_account_tag"),
    )
    op.create_table(
        "contact_lists",
        _id(),
        *_account("contact_lists"),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_lists")),
    )
    op.create_index("ix_contact_lists_account", "contact_lists", ["account_id", "id"])
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=36), nullable=False),
        *_account("contacts"),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("unsubscribed", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("account_id", "email", name="uq_contacts_account_email"),
    )
    op.create_table(
        "contact_list_members",
        sa.Column("list_id", _BIG_ID, nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        _fk("contact_list_members", "list_id", "contact_lists"),
        _fk("contact_list_members", "contact_id", "contacts"),
        sa.PrimaryKeyConstraint("list_id", "contact_id", name=op.f("pk_contact_list_members")),
    )
    op.create_index("ix_contact_list_members_contact", "contact_list_members", ["contact_id"])
    op.create_table(
        "contact_imports",
        _id(),
        *_account("contact_imports"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("total_count", sa.Integer(), nullable=False),
        sa.Column("processed_count", sa.Integer(), nullable=False),
        sa.Column("created_count", sa.Integer(), nullable=False),
        sa.Column("updated_count", sa.Integer(), nullable=False),
        sa.Column("over_limit_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_imports")),
    )
    op.create_table(
        "contact_exports",
        _id(),
        *_account("contact_exports"),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("filters", sa.JSON(), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_exports")),
    )
    op.create_table(
        "contact_events",
        _id(),
        *_account("contact_events"),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _fk("contact_events", "contact_id", "contacts"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contact_events")),
    )
    op.create_index("ix_contact_events_contact", "contact_events", ["contact_id", "id"])
    op.create_table(
        "inbound_folders",
        _id(),
        *_account("inbound_folders"),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_folders")),
    )
    op.create_index("ix_inbound_folders_account", "inbound_folders", ["account_id", "id"])
    op.create_table(
        "inbound_inboxes",
        _id(),
        *_account("inbound_inboxes"),
        sa.Column("folder_id", _BIG_ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("local_part", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        _fk("inbound_inboxes", "folder_id", "inbound_folders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_inboxes")),
        sa.UniqueConstraint("local_part", name=op.f("uq_inbound_inboxes_local_part")),
    )
    op.create_index("ix_inbound_inboxes_folder", "inbound_inboxes", ["folder_id", "id"])
    op.create_table(
        "inbound_messages",
        _id(),
        *_account("inbound_messages"),
        sa.Column("inbox_id", _BIG_ID, nullable=False),
        sa.Column("mail_from", sa.String(length=320), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("auth", sa.JSON(), nullable=False),
        sa.Column("spam_score", sa.Float(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        _fk("inbound_messages", "inbox_id", "inbound_inboxes"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbound_messages")),
    )
    op.create_index("ix_inbound_messages_inbox", "inbound_messages", ["inbox_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_inbound_messages_inbox", table_name="inbound_messages")
    op.drop_table("inbound_messages")
    op.drop_index("ix_inbound_inboxes_folder", table_name="inbound_inboxes")
    op.drop_table("inbound_inboxes")
    op.drop_index("ix_inbound_folders_account", table_name="inbound_folders")
    op.drop_table("inbound_folders")
    op.drop_index("ix_contact_events_contact", table_name="contact_events")
    op.drop_table("contact_events")
    op.drop_table("contact_exports")
    op.drop_table("contact_imports")
    op.drop_index("ix_contact_list_members_contact", table_name="contact_list_members")
    op.drop_table("contact_list_members")
    op.drop_table("contacts")
    op.drop_index("ix_contact_lists_account", table_name="contact_lists")
    op.drop_table("contact_lists")
    op.drop_table("contact_fields")
