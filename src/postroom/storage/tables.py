"""The schema, as SQLAlchemy Core tables. Alembic migrations must match it (a test checks).

Identifiers: accounts, users, tokens, projects, inboxes and every other integer id are
database-assigned (autoincrement) and so stay far below 2^53, the largest integer a
JavaScript client holds exactly; messages and deliveries use UUID strings
(``message_ids`` in the contract). Sandbox message ids start above 2^32 (migration 0009
sets the start), as the contract's do, so clients that squeeze them into 32 bits fail
here as they would against Mailtrap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BigInteger ids that still autoincrement on SQLite (which only does so for INTEGER).
BigId = BigInteger().with_variant(Integer(), "sqlite")
Stamp = UTCDateTime()

accounts = Table(
    "accounts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("delivery_mode", String(16), nullable=True),
    # The IP pool (delivery.ip_pools) this account's mail leaves from; None: its stream's.
    Column("ip_pool", String(64), nullable=True),
    Column("created_at", Stamp, nullable=False),
    # Days email logs and raw bodies are kept (null: the installation's default).
    Column("log_retention_days", Integer, nullable=True),
    Column("body_retention_days", Integer, nullable=True),
    # A disabled account sends nothing and its tokens answer 401 (migration 0012).
    Column("disabled_at", Stamp, nullable=True),
    # Optional sending quotas (messages per UTC day / calendar month); null: none.
    Column("daily_quota", Integer, nullable=True),
    Column("monthly_quota", Integer, nullable=True),
    # "hard" refuses past the quota, "soft" only warns (at 80 % and 100 %).
    Column("quota_mode", String(8), nullable=False, server_default="hard"),
)

users = Table(
    "users",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(255), nullable=False, default=""),
    Column("role", String(16), nullable=False),
    Column("created_at", Stamp, nullable=False),
    # argon2id hash (services/users.py); null: the user has not set a password yet.
    Column("password_hash", String(255), nullable=True),
    # The TOTP secret, sealed (storage/secrets.py); set once the second factor is confirmed.
    Column("totp_secret", Text, nullable=True),
    Column("totp_enabled_at", Stamp, nullable=True),
    # The last TOTP time step accepted: a code is good once (no replay).
    Column("totp_last_step", BigInteger, nullable=True),
    Column("disabled_at", Stamp, nullable=True),
)

# One-time recovery codes of a user's second factor: only their SHA-256 is kept.
user_recovery_codes = Table(
    "user_recovery_codes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("code_hash", LargeBinary(32), nullable=False),
    Column("used_at", Stamp, nullable=True),
)

# Dashboard sessions: the cookie's value is shown once; only its SHA-256 is kept.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("source_ip", String(64), nullable=False, default=""),
    Column("created_at", Stamp, nullable=False),
    Column("expires_at", Stamp, nullable=False),
    Column("revoked_at", Stamp, nullable=True),
    # The account the dashboard acts in (chosen among the user's accesses); null: the
    # user's own account. An account deleted falls back to it.
    Column("account_id", ForeignKey("accounts.id", ondelete="SET NULL"), nullable=True),
)

# Invitations by link: the link's token is shown once; only its SHA-256 is kept.
invitations = Table(
    "invitations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("role", String(16), nullable=False),
    Column("token_hash", LargeBinary(32), nullable=False, unique=True),
    Column("created_by", String(255), nullable=False, default=""),
    Column("created_at", Stamp, nullable=False),
    Column("expires_at", Stamp, nullable=False),
    Column("accepted_at", Stamp, nullable=True),
)

# Who may touch an account (spec "account accesses"): a user, an invitation or an API
# token, with its permissions on the account's resources in ``access_permissions``.
account_accesses = Table(
    "account_accesses",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # "User", "Invite" or "ApiToken" (the contract's specifier_type).
    Column("specifier_type", String(16), nullable=False),
    Column("specifier_id", BigInteger, nullable=False),
    Column("created_at", Stamp, nullable=False),
    UniqueConstraint(
        "account_id", "specifier_type", "specifier_id", name="uq_account_accesses_specifier"
    ),
    # A user's accesses in every account: the dashboard's account switcher.
    Index("ix_account_accesses_specifier", "specifier_type", "specifier_id"),
)

# One row per (access, resource): access level 1000 owner, 100 admin, 10 viewer.
access_permissions = Table(
    "access_permissions",
    metadata,
    Column(
        "access_id",
        ForeignKey("account_accesses.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    # account, organization, domain, project or sandbox (domain/access.py).
    Column("resource_type", String(32), primary_key=True),
    Column("resource_id", BigInteger, primary_key=True, autoincrement=False),
    Column("access_level", Integer, nullable=False),
)

# The append-only audit trail (storage/repos/audit.py): each row's hash covers its
# content and the previous row's hash, so editing or deleting a row breaks the chain.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    # No foreign key: the record of an account outlives the account.
    Column("account_id", BigInteger, nullable=True),
    Column("created_at", Stamp, nullable=False),
    # "user", "token", "cli" or "system", with the actor's id and a readable name.
    Column("actor_type", String(16), nullable=False),
    Column("actor_id", String(64), nullable=False, default=""),
    Column("actor_name", String(320), nullable=False, default=""),
    Column("source_ip", String(64), nullable=False, default=""),
    Column("action", String(64), nullable=False),
    Column("target_type", String(32), nullable=False),
    Column("target_id", String(64), nullable=False, default=""),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_log_account_id", "account_id", "id"),
)

# The chain's head (one row): the last entry's id and hash, so deleting the newest
# entries is detected too.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", BigInteger, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    # The public half of the token; lookups go by it, then the secret's hash is compared.
    Column("key_id", String(32), nullable=False, unique=True),
    Column("secret_hash", LargeBinary(32), nullable=False),
    Column("last_4_digits", String(4), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("created_by", String(255), nullable=False, default=""),
    Column("created_at", Stamp, nullable=False),
    Column("expires_at", Stamp, nullable=True),
    Column("revoked_at", Stamp, nullable=True),
    # Recorded at most once a minute per token (services/auth.py).
    Column("last_used_at", Stamp, nullable=True),
    # Set when the token was reset (it then expires after a grace period; no second reset).
    Column("reset_at", Stamp, nullable=True),
)

projects = Table(
    "projects",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
)

inboxes = Table(
    "inboxes",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("project_id", ForeignKey("projects.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("is_default", Boolean, nullable=False, default=False),
    Column("username", String(64), nullable=False, unique=True),
    # Plaintext of inboxes made before migration 0009, until the next start seals it.
    Column("password", String(64), nullable=True),
    Column("email_username", String(64), nullable=False),
    Column("email_username_enabled", Boolean, nullable=False, default=False),
    Column("max_size", Integer, nullable=False),
    Column("max_message_size", Integer, nullable=False),
    Column("sent_messages_count", Integer, nullable=False, default=0),
    Column("last_message_sent_at", Stamp, nullable=True),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    # The SMTP password, sealed with the installation key (postroom.sandbox.credentials).
    Column("password_sealed", LargeBinary, nullable=True),
)

messages = Table(
    "messages",
    metadata,
    # One row per accepted message (one submission); deliveries are per recipient.
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("stream", String(16), nullable=False),
    Column("sender", String(320), nullable=False),
    # Facts about the built message, kept so readers (sandbox capture, logs) need not
    # parse the MIME again: the From name, the first recipient shown, body sizes.
    Column("sender_name", String(255), nullable=False, server_default=""),
    Column("first_to", String(320), nullable=False, server_default=""),
    Column("first_to_name", String(255), nullable=False, server_default=""),
    Column("text_size", Integer, nullable=False, server_default="0"),
    Column("html_size", Integer, nullable=False, server_default="0"),
    Column("subject", Text, nullable=False),
    Column("rfc_message_id", String(255), nullable=False),
    Column("category", String(255), nullable=True),
    Column("custom_variables", JSON, nullable=True),
    Column("template_uuid", String(64), nullable=True),
    Column("template_variables", JSON, nullable=True),
    # The template and version the message was rendered from (no foreign key: a deleted
    # template must not delete or rewrite the record of what was sent).
    Column("template_id", BigInteger, nullable=True),
    Column("template_version", Integer, nullable=True),
    Column("size", Integer, nullable=False),
    Column("client_ip", String(64), nullable=True),
    Column("created_at", Stamp, nullable=False),
    # Retention walks each account's oldest messages first.
    Index("ix_messages_account_created", "account_id", "created_at"),
)

message_bodies = Table(
    "message_bodies",
    metadata,
    # The blob store's database backend: raw RFC 5322 bytes, deletable by retention.
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("raw", LargeBinary, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    # The queue: one row per recipient. ``id`` is the contract's message_id.
    Column("id", String(36), primary_key=True),
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("stream", String(16), nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("recipient_domain", String(255), nullable=False),
    Column("recipient_kind", String(3), nullable=False),
    Column("position", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("priority", Integer, nullable=False),
    Column("next_attempt_at", Stamp, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("lease_count", Integer, nullable=False, default=0),
    Column("lease_owner", String(64), nullable=True),
    Column("lease_expires_at", Stamp, nullable=True),
    Column("last_response", Text, nullable=True),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    # Facts the stats consumer (postroom.services.rollups) copies from the delivery's
    # events, so email-log filters and stats need no scan of the event log.
    Column("mailbox_provider", String(64), nullable=True),
    Column("sending_ip", String(64), nullable=True),
    Column("recipient_mx", String(255), nullable=True),
    Column("opens_count", Integer, nullable=False, server_default="0"),
    Column("clicks_count", Integer, nullable=False, server_default="0"),
    # The first open and click by a person (postroom.services.tracking): set once, by a
    # conditional UPDATE, which is what makes an event "unique" across processes.
    Column("opened_at", Stamp, nullable=True),
    Column("clicked_at", Stamp, nullable=True),
    Index("ix_deliveries_due", "state", "priority", "next_attempt_at"),
    Index("ix_deliveries_message", "message_id"),
    Index("ix_deliveries_account_created", "account_id", "created_at", "id"),
)

sandbox_messages = Table(
    "sandbox_messages",
    metadata,
    # Time-ordered by insertion (listings page newest first by id); on SQLite
    # AUTOINCREMENT so the id of a deleted message is never handed out again.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("inbox_id", ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    # Set when captured from the queue; unique so a re-leased delivery never captures twice.
    Column("message_id", ForeignKey("messages.id", ondelete="SET NULL"), nullable=True),
    Column("subject", Text, nullable=False),
    Column("from_email", String(320), nullable=False),
    Column("from_name", String(255), nullable=False),
    Column("to_email", String(320), nullable=False),
    Column("to_name", String(255), nullable=False),
    Column("mail_from", String(320), nullable=False),
    Column("client_ip", String(64), nullable=True),
    Column("raw", LargeBinary, nullable=False),
    Column("email_size", Integer, nullable=False),
    Column("text_body_size", Integer, nullable=False),
    Column("html_body_size", Integer, nullable=False),
    Column("is_read", Boolean, nullable=False, default=False),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    # The DNS blocklist report (postroom.sandbox.blacklists), made after capture: NULL
    # until the first check has finished.
    Column("blacklists_report", JSON, nullable=True),
    Column("blacklists_checked_at", Stamp, nullable=True),
    UniqueConstraint("inbox_id", "message_id", name="uq_sandbox_messages_inbox_message"),
    Index("ix_sandbox_messages_inbox", "inbox_id", "id"),
    sqlite_autoincrement=True,
)

sandbox_forwards = Table(
    "sandbox_forwards",
    metadata,
    # One row per forward of a captured message (postroom.sandbox.forward), written in the
    # forward's acceptance transaction: an inbox's ``forwarded_messages_count`` and the
    # billing cycle's are counts over it (so cleaning an inbox's messages keeps them).
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("inbox_id", ForeignKey("inboxes.id", ondelete="CASCADE"), nullable=False),
    # The accepted copy (a ``messages`` id; no foreign key, retention deletes messages).
    Column("message_id", String(36), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Index("ix_sandbox_forwards_inbox", "inbox_id"),
    Index("ix_sandbox_forwards_account_created", "account_id", "created_at"),
)

events = Table(
    "events",
    metadata,
    # Append-only: rows are inserted, never updated. ``kind`` is a postroom EventKind.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("message_id", String(36), nullable=True),
    Column("stream", String(16), nullable=True),
    Column("recipient", String(320), nullable=True),
    Column("details", JSON, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Index("ix_events_message", "message_id"),
    Index("ix_events_account_time", "account_id", "created_at"),
)

sending_domains = Table(
    "sending_domains",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain_name", String(255), nullable=False),
    # The name as DNS holds it (IDNA A-labels, lower case, no trailing dot). Unique across
    # the installation: a sending domain has one owner (docs: "One owner per domain").
    Column("ascii_name", String(255), nullable=False),
    Column("open_tracking_enabled", Boolean, nullable=False, default=False),
    Column("click_tracking_enabled", Boolean, nullable=False, default=False),
    Column("auto_unsubscribe_link_enabled", Boolean, nullable=False, default=False),
    Column("custom_domain_tracking_enabled", Boolean, nullable=False, default=False),
    Column("health_alerts_enabled", Boolean, nullable=False, default=True),
    Column("critical_alerts_enabled", Boolean, nullable=False, default=True),
    Column("alert_recipient_email", String(320), nullable=True),
    Column("tracking_opt_out_enabled", Boolean, nullable=False, default=False),
    Column("inbound_enabled", Boolean, nullable=False, default=False),
    # Postroom's own: List-Unsubscribe headers on this domain's transactional mail too
    # (bulk mail always carries them).
    Column(
        "list_unsubscribe_transactional_enabled",
        Boolean,
        nullable=False,
        default=False,
        server_default=false(),
    ),
    Column("dns_verified", Boolean, nullable=False, default=False),
    Column("dns_verified_at", Stamp, nullable=True),
    Column("dns_checked_at", Stamp, nullable=True),
    # {record key: {"status": ..., "found": [...]}} from the last check.
    Column("dns_results", JSON, nullable=False),
    Column("company_info", JSON, nullable=True),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    UniqueConstraint("ascii_name", name="uq_sending_domains_ascii_name"),
)

dkim_keys = Table(
    "dkim_keys",
    metadata,
    # Lifecycle: pending (published, awaiting DNS) -> active (signs) -> retiring (still
    # published, no longer signs) -> retired. See postroom.services.domains.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("domain_id", ForeignKey("sending_domains.id", ondelete="CASCADE"), nullable=False),
    Column("generation", Integer, nullable=False),
    Column("selector", String(63), nullable=False),
    Column("algorithm", String(16), nullable=False),
    # Fernet-encrypted PKCS#8 PEM (postroom.storage.secrets).
    Column("private_key", LargeBinary, nullable=False),
    Column("public_record", Text, nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("activated_at", Stamp, nullable=True),
    Column("retiring_at", Stamp, nullable=True),
    Column("retired_at", Stamp, nullable=True),
    UniqueConstraint("domain_id", "selector", name="uq_dkim_keys_domain_selector"),
)

suppressions = Table(
    "suppressions",
    metadata,
    # Recipients Postroom will not send to (spec §4.2). ``sending_stream`` is the stream
    # the entry applies to, or "any" (hard bounces and complaints suppress across
    # streams); ``domain_name`` restricts an unsubscription to mail from that sending
    # domain. ``expires_at`` is set on entries derived from repeated soft bounces.
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("type", String(32), nullable=False),
    Column("sending_stream", String(16), nullable=False),
    Column("domain_name", String(255), nullable=False, server_default=""),
    # What made the entry: "bounce", "soft_bounce", "complaint", "unsubscribe", "api",
    # "import"; and who (a token's name, or "system").
    Column("origin", String(16), nullable=False),
    Column("created_by", String(255), nullable=False, server_default=""),
    # The facts of the message that caused it (empty strings when not known).
    Column("message_id", String(36), nullable=True),
    Column("message_bounce_category", String(32), nullable=False, server_default=""),
    Column("message_category", String(255), nullable=False, server_default=""),
    Column("message_client_ip", String(64), nullable=False, server_default=""),
    Column("message_created_at", Stamp, nullable=True),
    Column("message_esp_response", Text, nullable=False, server_default=""),
    Column("message_esp_server_type", String(64), nullable=False, server_default=""),
    Column("message_outgoing_ip", String(64), nullable=False, server_default=""),
    Column("message_recipient_mx_name", String(255), nullable=False, server_default=""),
    Column("message_sender_email", String(320), nullable=False, server_default=""),
    Column("message_subject", Text, nullable=False, server_default=""),
    Column("created_at", Stamp, nullable=False),
    Column("expires_at", Stamp, nullable=True),
    UniqueConstraint(
        "account_id",
        "email",
        "sending_stream",
        "domain_name",
        name="uq_suppressions_account_email_scope",
    ),
    Index("ix_suppressions_account_time", "account_id", "created_at", "id"),
)

suppression_log = Table(
    "suppression_log",
    metadata,
    # Append-only audit of every addition and removal, with who did it.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("suppression_id", String(36), nullable=False),
    Column("email", String(320), nullable=False),
    Column("action", String(16), nullable=False),  # added, removed, expired
    Column("type", String(32), nullable=False),
    Column("sending_stream", String(16), nullable=False),
    Column("origin", String(16), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Index("ix_suppression_log_account_time", "account_id", "created_at"),
)

bounce_strikes = Table(
    "bounce_strikes",
    metadata,
    # Mailbox-full bounces per recipient inside the current window: enough of them make
    # a suppression that expires (postroom.services.suppressions).
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("email", String(320), primary_key=True),
    Column("sending_stream", String(16), primary_key=True),
    Column("strikes", Integer, nullable=False),
    Column("window_start", Stamp, nullable=False),
)

ip_volume = Table(
    "ip_volume",
    metadata,
    # Recipients sent per local address per UTC day: the warm-up caps' memory
    # (postroom.domain.ippools), so a restart does not reset a warm-up day.
    Column("address", String(64), primary_key=True),
    Column("day", String(10), primary_key=True),  # YYYY-MM-DD
    Column("sent", BigInteger, nullable=False),
)

email_templates = Table(
    "email_templates",
    metadata,
    # The current version of each template; every version is kept in the next table.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("uuid", String(36), nullable=False, unique=True),
    Column("name", String(255), nullable=False),
    Column("category", String(255), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body_html", Text, nullable=True),
    Column("body_text", Text, nullable=True),
    Column("version", Integer, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    Index("ix_email_templates_account", "account_id", "id"),
)

email_template_versions = Table(
    "email_template_versions",
    metadata,
    # Append-only: what each version of a template said, for messages rendered from it.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("template_id", ForeignKey("email_templates.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("name", String(255), nullable=False),
    Column("category", String(255), nullable=False),
    Column("subject", Text, nullable=False),
    Column("body_html", Text, nullable=True),
    Column("body_text", Text, nullable=True),
    Column("created_at", Stamp, nullable=False),
    UniqueConstraint("template_id", "version", name="uq_email_template_versions_version"),
)

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # A client's Idempotency-Key per account, with the fingerprint of the request it came
    # with and the outcomes answered (postroom.services.idempotency); kept 24 h.
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("fingerprint", String(64), nullable=False),
    Column("outcomes", JSON, nullable=True),
    Column("created_at", Stamp, nullable=False),
    Index("ix_idempotency_keys_created_at", "created_at"),
)

event_cursors = Table(
    "event_cursors",
    metadata,
    # How far each consumer of the event log has read (events.id), e.g. "stats".
    Column("name", String(32), primary_key=True),
    Column("last_event_id", BigInteger, nullable=False),
    Column("updated_at", Stamp, nullable=False),
)

stats_daily = Table(
    "stats_daily",
    metadata,
    # Rollups kept incrementally from the event log: one row per account, day the
    # message was sent (UTC), sending domain (0: none), stream, category ('' : none) and
    # mailbox provider. Counters only ever grow; stats queries sum them.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("day", Date, nullable=False),
    Column("sending_domain_id", BigInteger, nullable=False),
    Column("stream", String(16), nullable=False),
    Column("category", String(255), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("delivered", BigInteger, nullable=False, server_default="0"),
    Column("bounced", BigInteger, nullable=False, server_default="0"),
    Column("soft_bounced", BigInteger, nullable=False, server_default="0"),
    Column("rejected", BigInteger, nullable=False, server_default="0"),
    Column("opened", BigInteger, nullable=False, server_default="0"),
    Column("clicked", BigInteger, nullable=False, server_default="0"),
    Column("spam", BigInteger, nullable=False, server_default="0"),
    Column("unsubscribed", BigInteger, nullable=False, server_default="0"),
    # Postroom's extras: every open and click by people (``opened``/``clicked`` count
    # the first of each delivery), and those of machines (privacy proxies, scanners).
    Column("opens", BigInteger, nullable=False, server_default="0"),
    Column("clicks", BigInteger, nullable=False, server_default="0"),
    Column("machine_opens", BigInteger, nullable=False, server_default="0"),
    Column("machine_clicks", BigInteger, nullable=False, server_default="0"),
    UniqueConstraint(
        "account_id",
        "day",
        "sending_domain_id",
        "stream",
        "category",
        "provider",
        name="uq_stats_daily_key",
    ),
)

domain_alerts = Table(
    "domain_alerts",
    metadata,
    # One row per (sending domain, alert kind): its threshold override and its state,
    # which gives the hysteresis (raised until the rate falls well below the threshold).
    Column("domain_id", ForeignKey("sending_domains.id", ondelete="CASCADE"), primary_key=True),
    Column("alert", String(32), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("threshold", Float, nullable=True),
    Column("raised", Boolean, nullable=False, default=False),
    Column("value", Float, nullable=True),
    Column("raised_at", Stamp, nullable=True),
    Column("cleared_at", Stamp, nullable=True),
)

tracked_links = Table(
    "tracked_links",
    metadata,
    # The links of a message that click tracking rewrote (postroom.mta.personalize): a
    # click token names (delivery, position) and the URL is read here, never from the
    # request, so the tracking listener can redirect only to what the message linked.
    Column("message_id", ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("position", Integer, primary_key=True, autoincrement=False),
    Column("url", Text, nullable=False),
    Column("created_at", Stamp, nullable=False),
)

tracking_opt_outs = Table(
    "tracking_opt_outs",
    metadata,
    # Recipients who asked a sending domain not to track them (spec §4.10): their mail
    # from that domain gets no open pixel and no rewritten links.
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain_id", ForeignKey("sending_domains.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("created_at", Stamp, nullable=False),
    UniqueConstraint("domain_id", "email", name="uq_tracking_opt_outs_domain_email"),
    Index("ix_tracking_opt_outs_account_time", "account_id", "created_at", "id"),
)

# --- contacts (issue F14; postroom.services.contacts) --------------------------------------

contact_fields = Table(
    "contact_fields",
    metadata,
    # An account's custom fields: contacts' ``fields`` are keyed by ``merge_tag``.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(80), nullable=False),
    Column("data_type", String(16), nullable=False),
    Column("merge_tag", String(80), nullable=False),
    Column("created_at", Stamp, nullable=False),
    UniqueConstraint("account_id", "merge_tag", name="uq_contact_fields_account_tag"),
)

contact_lists = Table(
    "contact_lists",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Index("ix_contact_lists_account", "account_id", "id"),
)

contacts = Table(
    "contacts",
    metadata,
    # One per (account, address); the address is kept lower-cased. ``unsubscribed`` is
    # the contact's own choice; suppressions make a contact "unsubscribed" too.
    Column("id", String(36), primary_key=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("unsubscribed", Boolean, nullable=False, default=False),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    UniqueConstraint("account_id", "email", name="uq_contacts_account_email"),
)

contact_list_members = Table(
    "contact_list_members",
    metadata,
    Column("list_id", ForeignKey("contact_lists.id", ondelete="CASCADE"), primary_key=True),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True),
    Index("ix_contact_list_members_contact", "contact_id"),
)

contact_imports = Table(
    "contact_imports",
    metadata,
    # One import job: its progress (rows done of rows given) and outcome counts.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_count", Integer, nullable=False),
    Column("processed_count", Integer, nullable=False),
    Column("created_count", Integer, nullable=False),
    Column("updated_count", Integer, nullable=False),
    Column("over_limit_count", Integer, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
)

contact_exports = Table(
    "contact_exports",
    metadata,
    # One export: the filters asked for and the CSV made from them.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("filters", JSON, nullable=False),
    Column("content", Text, nullable=True),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
)

contact_events = Table(
    "contact_events",
    metadata,
    # Append-only: what the account told us its contacts did (``UserLogin`` and so on).
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("params", JSON, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Index("ix_contact_events_contact", "contact_id", "id"),
)

# --- inbound (issue F14; postroom.services.inbound_mail) -------------------------------------

inbound_folders = Table(
    "inbound_folders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Index("ix_inbound_folders_account", "account_id", "id"),
)

inbound_inboxes = Table(
    "inbound_inboxes",
    metadata,
    # Mail to ``<local_part>@<inbound domain>`` lands here; local parts are unique.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("folder_id", ForeignKey("inbound_folders.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("local_part", String(64), nullable=False, unique=True),
    Column("created_at", Stamp, nullable=False),
    Index("ix_inbound_inboxes_folder", "folder_id", "id"),
)

inbound_messages = Table(
    "inbound_messages",
    metadata,
    # A received message: the raw bytes and what parsing and authentication found.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("inbox_id", ForeignKey("inbound_inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("mail_from", String(320), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("auth", JSON, nullable=False),
    Column("spam_score", Float, nullable=False),
    Column("size", Integer, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("received_at", Stamp, nullable=False),
    # Its conversation (inbound_threads; postroom.services.inbound_threads) and what its
    # inbox's forward rules did with it ([{rule_id, destination, status, …}], the SDK's
    # InboundForwardOutcome), once they ran.
    Column("thread_id", BigInteger, nullable=True),
    Column("forwards", JSON, nullable=True),
    Index("ix_inbound_messages_inbox", "inbox_id", "id"),
    Index("ix_inbound_messages_thread", "thread_id", "id"),
)

inbound_threads = Table(
    "inbound_threads",
    metadata,
    # A conversation of one inbox: received messages and the answers sent from it.
    # ``subject_key`` is the normalized subject (domain/threading.py's fallback).
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("inbox_id", ForeignKey("inbound_inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("subject", Text, nullable=True),
    Column("subject_key", String(255), nullable=False),
    Column("created_at", Stamp, nullable=False),
    Column("last_activity_at", Stamp, nullable=False),
    Index("ix_inbound_threads_activity", "inbox_id", "last_activity_at", "id"),
    Index("ix_inbound_threads_subject", "inbox_id", "subject_key"),
)

inbound_thread_keys = Table(
    "inbound_thread_keys",
    metadata,
    # Message-IDs seen in a thread (its messages' own and those they answer): a message
    # naming one of them joins that thread.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("inbox_id", ForeignKey("inbound_inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("thread_id", ForeignKey("inbound_threads.id", ondelete="CASCADE"), nullable=False),
    Column("rfc_id", String(255), nullable=False),
    UniqueConstraint("inbox_id", "rfc_id", name="uq_inbound_thread_keys_inbox_rfc_id"),
    Index("ix_inbound_thread_keys_thread", "thread_id"),
)

inbound_sent = Table(
    "inbound_sent",
    metadata,
    # A reply, reply-all or forward sent from an inbox through the API (accept_message):
    # ``message_id`` is the sending message id (deliveries.id of its first recipient),
    # ``summary`` what the thread shows (addresses, subject, bodies, attachment facts).
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("inbox_id", ForeignKey("inbound_inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("thread_id", BigInteger, nullable=True),
    Column("source_message_id", BigInteger, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("message_id", String(36), nullable=False),
    Column("summary", JSON, nullable=False),
    Column("size", Integer, nullable=False),
    Column("created_at", Stamp, nullable=False),
    Index("ix_inbound_sent_thread", "thread_id", "id"),
    Index("ix_inbound_sent_inbox", "inbox_id", "id"),
)

inbound_forward_rules = Table(
    "inbound_forward_rules",
    metadata,
    # Forward each newly received message of the inbox that meets ``conditions`` to
    # ``destinations`` (postroom.services.inbound_rules). ``from_email``/``from_name``:
    # the From of forwards (Postroom's addition; default the inbox's address).
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("inbox_id", ForeignKey("inbound_inboxes.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(100), nullable=False),
    Column("conditions", JSON, nullable=False),
    Column("destinations", JSON, nullable=False),
    Column("from_email", String(320), nullable=True),
    Column("from_name", String(200), nullable=True),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    Index("ix_inbound_forward_rules_inbox", "inbox_id", "id"),
)

webhooks = Table(
    "webhooks",
    metadata,
    # A customer's endpoint (spec `webhooks` tag): what it receives and its sealed signing
    # secret. ``paused_at`` is set when its deliveries kept failing past the retry window;
    # any update clears it (postroom.services.webhooks).
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("url", Text, nullable=False),
    Column("webhook_type", String(32), nullable=False),
    Column("payload_format", String(16), nullable=False),
    Column("sending_stream", String(16), nullable=True),
    Column("domain_id", BigInteger, nullable=True),
    Column("inbound_inbox_id", BigInteger, nullable=True),
    Column("event_types", JSON, nullable=False),
    Column("active", Boolean, nullable=False, default=True),
    Column("secret_sealed", LargeBinary, nullable=False),
    Column("paused_at", Stamp, nullable=True),
    Column("pause_reason", Text, nullable=True),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    Index("ix_webhooks_account", "account_id", "id"),
)

webhook_outbox = Table(
    "webhook_outbox",
    metadata,
    # The durable outbox: one row per event a webhook may want, written in the very
    # transaction that records the event (storage/repos/messages.insert_events). The
    # dispatcher turns rows into batches and deletes them in one transaction.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False),
    Column("account_id", BigInteger, nullable=False),
    Column("created_at", Stamp, nullable=False),
)

webhook_batches = Table(
    "webhook_batches",
    metadata,
    # One POST's worth of events for one webhook, with its stable id (webhook-id and the
    # X-Postroom-Batch header). Sent in ``seq`` order per webhook, one at a time, so
    # events reach a receiver in the order they happened; the body is kept until a 2xx.
    Column("seq", BigId, primary_key=True, autoincrement=True),
    Column("id", String(36), nullable=False, unique=True),
    Column("webhook_id", ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("state", String(16), nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("first_event_at", Stamp, nullable=False),
    Column("body", LargeBinary, nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", Stamp, nullable=False),
    Column("first_failed_at", Stamp, nullable=True),
    Column("lease_until", Stamp, nullable=True),
    Column("created_at", Stamp, nullable=False),
    Column("delivered_at", Stamp, nullable=True),
    Index("ix_webhook_batches_webhook_state", "webhook_id", "state", "seq"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    # The delivery log: every POST to a webhook (batches, replays, test events) with its
    # outcome, latency and the first bytes of the answer.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("webhook_id", ForeignKey("webhooks.id", ondelete="CASCADE"), nullable=False),
    Column("batch_id", String(36), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("started_at", Stamp, nullable=False),
    Column("status", Integer, nullable=True),
    Column("ok", Boolean, nullable=False),
    Column("error", Text, nullable=True),
    Column("latency_ms", Integer, nullable=False),
    Column("response_excerpt", Text, nullable=False),
    Index("ix_webhook_attempts_webhook_time", "webhook_id", "started_at", "id"),
)

# --- email campaigns (postroom.services.campaigns) --------------------------------------------

email_campaigns = Table(
    "email_campaigns",
    metadata,
    # A campaign: its draft (sender, inline template, audience, pace) and its lifecycle.
    # ``released`` counts recipients handed to sending so far (the throttle's ledger) and
    # ``slices`` numbers the slices taken, each sent under its own idempotency key.
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("account_id", ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("domain_id", ForeignKey("sending_domains.id", ondelete="SET NULL"), nullable=True),
    Column("name", String(255), nullable=False),
    Column("from_local_part", String(64), nullable=False),
    Column("from_display_name", String(255), nullable=True),
    Column("reply_to", JSON, nullable=True),
    Column("subject", Text, nullable=False),
    Column("body_html", Text, nullable=True),
    Column("body_text", Text, nullable=True),
    Column("merge_tags", JSON, nullable=False),
    Column("contact_list_ids", JSON, nullable=False),
    Column("delivery_mode", String(16), nullable=False),
    Column("emails_per_hour", Integer, nullable=True),
    Column("state", String(24), nullable=False),
    Column("state_reason", String(255), nullable=True),
    Column("state_error", Text, nullable=True),
    Column("scheduled_at", Stamp, nullable=True),
    Column("last_started_at", Stamp, nullable=True),
    Column("recipient_total_count", Integer, nullable=True),
    Column("released", Integer, nullable=False, default=0),
    Column("slices", Integer, nullable=False, default=0),
    Column("created_at", Stamp, nullable=False),
    Column("updated_at", Stamp, nullable=False),
    Index("ix_email_campaigns_account", "account_id", "id"),
    Index("ix_email_campaigns_state", "state"),
)

email_campaign_recipients = Table(
    "email_campaign_recipients",
    metadata,
    # The audience as resolved at launch, one row per contact, in sending order. A row
    # is pending (no slice), taken (``slice`` set, no outcome yet: resent under the same
    # idempotency key after a crash) or done (``message_id`` or ``error``).
    Column("campaign_id", ForeignKey("email_campaigns.id", ondelete="CASCADE"), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("email", String(320), nullable=False),
    Column("fields", JSON, nullable=False),
    Column("slice", Integer, nullable=True),
    Column("message_id", String(36), nullable=True),
    Column("error", Text, nullable=True),
    Column("sent_at", Stamp, nullable=True),
)
