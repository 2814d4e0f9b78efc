"""Hardening: sandbox ids below 2^53, one owner per sending domain, sealed inbox passwords

Revision ID: 0009
Revises: 0008

Three changes found by outside testing (issue F8, items 9, 11 and 12):

- Sandbox message ids were random 64-bit "snowflakes" (about 9.2e17), beyond 2^53, the
  largest integer a JavaScript number holds exactly, so the Node SDK could not address
  them. They are now assigned by the database in insertion order, from 2^32 + 1 (above
  2^32 as Mailtrap's are, far below 2^53). Existing messages are renumbered in their
  old (time) order, and the ids stored in idempotency-key answers follow them.
- A sending domain had one owner per account; now one per installation, keyed by its
  DNS spelling (``ascii_name``: IDNA A-labels, lower case, no trailing dot). Where
  several accounts held the same domain, the one DNS vouches for keeps it (verified
  first, the earliest verified first, then the oldest); the others are removed with
  their DKIM keys and alerts, and each removal is logged as a warning.
- Sandbox inboxes' SMTP passwords get a sealed column. The seal needs the installation
  key, which a migration may not have (``postroom db migrate`` may run where only the
  database is configured), so existing plaintext passwords stay until the next
  ``postroom serve`` seals them (``postroom.sandbox.credentials``).
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

log = logging.getLogger("postroom.migrations")

# The first sandbox message id: above 2^32, as the contract's ids are.
SANDBOX_ID_FLOOR = 2**32


def upgrade() -> None:
    _inbox_password_columns()
    _one_owner_per_domain()
    _renumber_sandbox_messages()


def downgrade() -> None:
    _sandbox_ids_without_sequence()
    _domain_owner_per_account()
    _inbox_password_plaintext()


# --- inbox passwords -------------------------------------------------------------------------


def _inbox_password_columns() -> None:
    with op.batch_alter_table("inboxes") as batch:
        batch.add_column(sa.Column("password_sealed", sa.LargeBinary(), nullable=True))
        batch.alter_column("password", existing_type=sa.String(length=64), nullable=True)


def _inbox_password_plaintext() -> None:
    sealed = op.get_bind().execute(
        sa.text("SELECT COUNT(*) FROM inboxes WHERE password_sealed IS NOT NULL")
    )
    if sealed.scalar():
        raise RuntimeError(
            "inbox SMTP passwords are sealed with the installation key and a migration "
            "cannot unseal them: downgrading past 0009 is not supported"
        )
    with op.batch_alter_table("inboxes") as batch:
        batch.alter_column("password", existing_type=sa.String(length=64), nullable=False)
        batch.drop_column("password_sealed")


# --- sending domains -------------------------------------------------------------------------

_domains = sa.table(
    "sending_domains",
    sa.column("id", sa.BigInteger()),
    sa.column("account_id", sa.BigInteger()),
    sa.column("domain_name", sa.String()),
    sa.column("ascii_name", sa.String()),
    sa.column("dns_verified", sa.Boolean()),
    sa.column("dns_verified_at", sa.DateTime()),
)


def _dns_name(name: str) -> str:
    """The name as DNS holds it (the same rule as ``services.domains.ascii_name``)."""
    clean = name.strip().rstrip(".").lower()
    with contextlib.suppress(UnicodeError):
        return clean.encode("idna").decode("ascii") if not clean.isascii() else clean
    return clean


def _owner_first(row: Any) -> tuple[bool, str, int]:
    # Verified before unverified, the earliest verification first, then the oldest row.
    verified_at = row.dns_verified_at.isoformat() if row.dns_verified_at else "~"
    return (not row.dns_verified, verified_at, int(row.id))


def _one_owner_per_domain() -> None:
    with op.batch_alter_table("sending_domains") as batch:
        batch.add_column(sa.Column("ascii_name", sa.String(length=255), nullable=True))
    conn = op.get_bind()
    by_name: dict[str, list[Any]] = defaultdict(list)
    for row in conn.execute(sa.select(_domains)):
        by_name[_dns_name(row.domain_name)].append(row)
    for name, rows in by_name.items():
        owner, *others = sorted(rows, key=_owner_first)
        for row in others:
            _remove_domain(conn, row, owner, name)
        conn.execute(_domains.update().where(_domains.c.id == owner.id).values(ascii_name=name))
    with op.batch_alter_table("sending_domains") as batch:
        batch.alter_column("ascii_name", existing_type=sa.String(length=255), nullable=False)
        batch.drop_constraint("uq_sending_domains_account_name", type_="unique")
        batch.create_unique_constraint("uq_sending_domains_ascii_name", ["ascii_name"])


def _domain_owner_per_account() -> None:
    with op.batch_alter_table("sending_domains") as batch:
        batch.drop_constraint("uq_sending_domains_ascii_name", type_="unique")
        batch.create_unique_constraint(
            "uq_sending_domains_account_name", ["account_id", "domain_name"]
        )
        batch.drop_column("ascii_name")


def _remove_domain(conn: sa.Connection, row: Any, owner: Any, name: str) -> None:
    log.warning(
        "sending domain %s: account %s keeps it (domain id %s); removing the copy of "
        "account %s (domain id %s, verified: %s), since a domain has one owner",
        name,
        owner.account_id,
        owner.id,
        row.account_id,
        row.id,
        bool(row.dns_verified),
    )
    # Children first, whatever the backend's foreign-key enforcement during migrations.
    for child in ("dkim_keys", "domain_alerts"):
        conn.execute(sa.text(f"DELETE FROM {child} WHERE domain_id = :id"), {"id": row.id})
    conn.execute(_domains.delete().where(_domains.c.id == row.id))


# --- sandbox message ids ---------------------------------------------------------------------


def _renumber_sandbox_messages() -> None:
    conn = op.get_bind()
    conn.execute(
        sa.text(
            "CREATE TEMPORARY TABLE sandbox_id_map AS "
            "SELECT id AS old_id, ROW_NUMBER() OVER (ORDER BY id) + :floor AS new_id "
            "FROM sandbox_messages"
        ),
        {"floor": SANDBOX_ID_FLOOR},
    )
    # Through negative values: no new id can meet an old one mid-update.
    conn.execute(
        sa.text(
            "UPDATE sandbox_messages SET id = -(SELECT new_id FROM sandbox_id_map "
            "WHERE old_id = sandbox_messages.id)"
        )
    )
    conn.execute(sa.text("UPDATE sandbox_messages SET id = -id"))
    _renumber_idempotent_answers(conn)
    conn.execute(sa.text("DROP TABLE sandbox_id_map"))
    if conn.dialect.name == "sqlite":
        _sqlite_autoincrement()
    else:
        _postgresql_sequence()


def _renumber_idempotent_answers(conn: sa.Connection) -> None:
    """Idempotency keys replay the ids they answered: a sandbox send's must follow."""
    keys = sa.table(
        "idempotency_keys",
        sa.column("account_id", sa.BigInteger()),
        sa.column("key", sa.String()),
        sa.column("outcomes", sa.JSON()),
    )
    mapping = {
        str(old): str(new)
        for old, new in conn.execute(sa.text("SELECT old_id, new_id FROM sandbox_id_map"))
    }
    if not mapping:
        return
    for row in conn.execute(sa.select(keys).where(keys.c.outcomes.is_not(None))):
        outcomes = [
            {**item, "message_ids": [mapping.get(i, i) for i in item["message_ids"]]}
            if "message_ids" in item
            else item
            for item in row.outcomes
        ]
        if outcomes != row.outcomes:
            conn.execute(
                keys.update()
                .where(keys.c.account_id == row.account_id, keys.c.key == row.key)
                .values(outcomes=outcomes)
            )


def _next_sandbox_id_after(conn: sa.Connection) -> int:
    highest = conn.execute(sa.text("SELECT MAX(id) FROM sandbox_messages")).scalar()
    return max(int(highest or 0), SANDBOX_ID_FLOOR)


def _sqlite_autoincrement() -> None:
    # INTEGER PRIMARY KEY AUTOINCREMENT: the rowid, never reused after a delete.
    with op.batch_alter_table(
        "sandbox_messages", recreate="always", table_kwargs={"sqlite_autoincrement": True}
    ) as batch:
        batch.alter_column(
            "id", existing_type=sa.BigInteger(), type_=sa.Integer(), autoincrement=True
        )
    conn = op.get_bind()
    conn.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'sandbox_messages'"))
    conn.execute(
        sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('sandbox_messages', :seq)"),
        {"seq": _next_sandbox_id_after(conn)},
    )


def _postgresql_sequence() -> None:
    # What BIGSERIAL would have made: an owned sequence as the column's default.
    conn = op.get_bind()
    conn.execute(sa.text("CREATE SEQUENCE sandbox_messages_id_seq OWNED BY sandbox_messages.id"))
    conn.execute(
        sa.text(
            "ALTER TABLE sandbox_messages ALTER COLUMN id "
            "SET DEFAULT nextval('sandbox_messages_id_seq')"
        )
    )
    conn.execute(
        sa.text("SELECT setval('sandbox_messages_id_seq', :value)"),
        {"value": _next_sandbox_id_after(conn)},
    )


def _sandbox_ids_without_sequence() -> None:
    if op.get_bind().dialect.name == "sqlite":
        with op.batch_alter_table(
            "sandbox_messages", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ) as batch:
            batch.alter_column(
                "id", existing_type=sa.Integer(), type_=sa.BigInteger(), autoincrement=False
            )
        return
    op.execute("ALTER TABLE sandbox_messages ALTER COLUMN id DROP DEFAULT")
    op.execute("DROP SEQUENCE sandbox_messages_id_seq")
