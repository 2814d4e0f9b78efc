"""Accounts, users, API token permissions, account accesses and the audit log (issue F11)

Revision ID: 0012
Revises: 0010

Self-contained (nothing from 0011): the lead may re-chain it after 0011.
Existing tokens and users get an account access with the permission their scopes or role
imply, so the accesses API lists them; the oldest admin token of the oldest account
becomes the installation admin's (organization 1), as the first token of a new
installation is.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

from postroom.storage.tables import UTCDateTime

revision = "0012"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.create_table(
        "audit_log",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("actor_type", sa.String(length=16), nullable=False),
        sa.Column("actor_id", sa.String(length=64), nullable=False),
        sa.Column("actor_name", sa.String(length=320), nullable=False),
        sa.Column("source_ip", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target_type", sa.String(length=32), nullable=False),
        sa.Column("target_id", sa.String(length=64), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index("ix_audit_log_account_id", ["account_id", "id"], unique=False)

    op.create_table(
        "account_accesses",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("specifier_type", sa.String(length=16), nullable=False),
        sa.Column("specifier_id", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_accesses_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_accesses")),
        sa.UniqueConstraint(
            "account_id", "specifier_type", "specifier_id", name="uq_account_accesses_specifier"
        ),
    )
    op.create_table(
        "invitations",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=255), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("accepted_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_invitations_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_invitations_token_hash")),
    )
    op.create_table(
        "access_permissions",
        sa.Column(
            "access_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("resource_type", sa.String(length=32), nullable=False),
        sa.Column("resource_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("access_level", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["access_id"],
            ["account_accesses.id"],
            name=op.f("fk_access_permissions_access_id_account_accesses"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "access_id", "resource_type", "resource_id", name=op.f("pk_access_permissions")
        ),
    )
    op.create_table(
        "user_recovery_codes",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_recovery_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_recovery_codes")),
    )
    with op.batch_alter_table("user_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_user_recovery_codes_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "user_sessions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("source_ip", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_sessions_user_id"), ["user_id"], unique=False)

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("daily_quota", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("monthly_quota", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("quota_mode", sa.String(length=8), server_default="hard", nullable=False)
        )

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_used_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("reset_at", UTCDateTime(), nullable=True))

    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("totp_secret", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("totp_enabled_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("disabled_at", UTCDateTime(), nullable=True))
    _accesses_for_existing()


# Access levels (postroom.domain.access): owner 1000, admin 100, viewer 10.
_ROLE_LEVELS = {"owner": 1000, "admin": 100, "viewer": 10}


def _accesses_for_existing() -> None:
    """An account access for every token and user made before this revision."""
    conn = op.get_bind()
    tokens = conn.execute(sa.text("SELECT id, account_id, scopes, created_at FROM api_tokens"))
    for token_id, account_id, scopes, created_at in tokens.fetchall():
        held = json.loads(scopes) if isinstance(scopes, str) else list(scopes or [])
        level = 100 if "admin" in held else 10 if "read" in held else None
        _access(conn, account_id, "ApiToken", token_id, created_at, level)
    _first_admin_token(conn)
    users = conn.execute(sa.text("SELECT id, account_id, role, created_at FROM users"))
    for user_id, account_id, role, created_at in users.fetchall():
        _access(conn, account_id, "User", user_id, created_at, _ROLE_LEVELS.get(role, 10))


def _first_admin_token(conn: sa.Connection) -> None:
    """The installation admin (organization 1) is the oldest live admin token of the
    oldest account, as on a new installation it is the first token."""
    rows = conn.execute(
        sa.text(
            "SELECT t.id, t.scopes FROM api_tokens t JOIN accounts a ON a.id = t.account_id"
            " WHERE t.revoked_at IS NULL ORDER BY a.id, t.id"
        )
    ).fetchall()
    for token_id, scopes in rows:
        held = json.loads(scopes) if isinstance(scopes, str) else list(scopes or [])
        if "admin" not in held:
            continue
        access_id = conn.execute(
            sa.text(
                "SELECT id FROM account_accesses"
                " WHERE specifier_type = 'ApiToken' AND specifier_id = :t"
            ),
            {"t": token_id},
        ).scalar_one()
        conn.execute(
            sa.text(
                "INSERT INTO access_permissions (access_id, resource_type, resource_id,"
                " access_level) VALUES (:i, 'organization', 1, 100)"
            ),
            {"i": access_id},
        )
        return


def _access(
    conn: sa.Connection,
    account_id: int,
    kind: str,
    specifier_id: int,
    created_at: object,
    level: int | None,
) -> None:
    values = {"a": account_id, "k": kind, "s": specifier_id, "c": created_at}
    conn.execute(
        sa.text(
            "INSERT INTO account_accesses (account_id, specifier_type, specifier_id, created_at)"
            " VALUES (:a, :k, :s, :c)"
        ),
        values,
    )
    if level is None:
        return
    access_id = conn.execute(
        sa.text(
            "SELECT id FROM account_accesses"
            " WHERE account_id = :a AND specifier_type = :k AND specifier_id = :s"
        ),
        values,
    ).scalar_one()
    conn.execute(
        sa.text(
            "INSERT INTO access_permissions (access_id, resource_type, resource_id, access_level)"
            " VALUES (:i, 'account', :a, :l)"
        ),
        {"i": access_id, "a": account_id, "l": level},
    )


def downgrade() -> None:
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_enabled_at")
        batch_op.drop_column("totp_secret")
        batch_op.drop_column("password_hash")

    with op.batch_alter_table("api_tokens", schema=None) as batch_op:
        batch_op.drop_column("reset_at")
        batch_op.drop_column("last_used_at")

    with op.batch_alter_table("accounts", schema=None) as batch_op:
        batch_op.drop_column("quota_mode")
        batch_op.drop_column("monthly_quota")
        batch_op.drop_column("daily_quota")
        batch_op.drop_column("disabled_at")

    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_sessions_user_id"))

    op.drop_table("user_sessions")
    with op.batch_alter_table("user_recovery_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_recovery_codes_user_id"))

    op.drop_table("user_recovery_codes")
    op.drop_table("access_permissions")
    op.drop_table("invitations")
    op.drop_table("account_accesses")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_log_account_id")

    op.drop_table("audit_log")
    op.drop_table("audit_head")
