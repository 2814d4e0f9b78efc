"""IP pools: an account's pool and the per-address daily volume of warm-up

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ip_pool", sa.String(length=64), nullable=True))
    op.create_table(
        "ip_volume",
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("sent", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address", "day", name=op.f("pk_ip_volume")),
    )


def downgrade() -> None:
    op.drop_table("ip_volume")
    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("ip_pool")
