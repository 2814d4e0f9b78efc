"""Installation settings: one typed schema, read from the environment and an optional TOML file.

Every field has a description; environment variables are spelled
``POSTROOM_<SECTION>__<KEY>`` (for example ``POSTROOM_SERVER__PORT=9000``) and win over
the TOML file named by ``POSTROOM_CONFIG``. Settings are passed explicitly
(``create_app(settings)``); nothing in Postroom reads a global settings object.
Per-account policy lives in the database, not here.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


class DeliveryMode(StrEnum):
    """Where accepted mail goes: captured in test inboxes, to MX hosts, or to a smarthost."""

    SANDBOX = "sandbox"
    MX = "mx"
    RELAY = "relay"


class ServerSettings(BaseModel):
    """The HTTP listeners."""

    host: str = Field("127.0.0.1", description="Address both API listeners bind to.")
    port: int = Field(8000, description="Port of the transactional API (and the dashboard).")
    bulk_port: int = Field(8001, description="Port of the bulk-stream API listener.")
    bulk_hosts: list[str] = Field(
        default_factory=lambda: ["bulk.api.mailtrap.io"],
        description="Host header names (without port) that select the bulk stream on any "
        "listener; host names starting with 'bulk.' also do.",
    )
    tls_cert: Path | None = Field(None, description="PEM certificate chain; enables HTTPS.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    public_url: str | None = Field(
        None, description="Base URL users reach the API at; defaults to the listener address."
    )


class StorageSettings(BaseModel):
    """Where state lives."""

    data_dir: Path = Field(
        Path("postroom-data"), description="Directory for the SQLite database and generated keys."
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL (sqlite:///… or postgresql+psycopg://…); defaults to "
        "SQLite in data_dir.",
    )
    commit_batch_max: int = Field(256, description="Most acceptances folded into one group commit.")


class DeliverySettings(BaseModel):
    """The delivery worker."""

    mode: DeliveryMode = Field(DeliveryMode.SANDBOX, description="sandbox, mx or relay.")
    worker_batch: int = Field(200, description="Deliveries leased per worker round.")
    lease_seconds: float = Field(
        120.0, description="How long a lease holds before another worker may take the delivery."
    )
    max_leases: int = Field(
        10, description="Leases a delivery may take (crash recoveries) before it is shunted."
    )
    poll_interval: float = Field(
        0.2, description="Seconds the worker sleeps when the queue has nothing due."
    )
    ehlo_name: str = Field(
        "mail.postroom.test", description="Name Postroom gives in EHLO when delivering."
    )
    port: int = Field(25, description="Destination SMTP port of MX hosts (tests use others).")
    connect_timeout: float = Field(30.0, description="Seconds to wait for a TCP connection.")
    command_timeout: float = Field(60.0, description="Seconds to wait for an SMTP reply.")
    retry_first_delay: float = Field(300.0, description="Seconds before the first retry.")
    retry_factor: float = Field(2.0, description="Each retry waits this many times longer.")
    retry_max_delay: float = Field(4 * 3600.0, description="Longest wait between retries (s).")
    retry_window: float = Field(
        72 * 3600.0, description="Seconds after acceptance when a delivery fails for good."
    )
    site_max_connections: int = Field(
        10, description="Connections per destination site not in the built-in table."
    )
    site_messages_per_connection: int = Field(
        100, description="Messages per connection for such a site."
    )
    site_messages_per_minute: float = Field(
        600.0,
        description="Messages per minute for such a site (large providers have "
        "their own limits in postroom.domain.throttle).",
    )
    relay_host: str | None = Field(None, description="Smarthost for relay mode.")
    relay_port: int = Field(587, description="Smarthost port.")
    relay_tls: str = Field(
        "starttls", description="Smarthost TLS: starttls, implicit (port 465 style) or none."
    )
    relay_username: str | None = Field(None, description="Smarthost AUTH user name.")
    relay_password: str | None = Field(None, description="Smarthost AUTH password.")


class SchedulerSettings(BaseModel):
    """Periodic housekeeping."""

    interval: float = Field(30.0, description="Seconds between scheduler rounds.")


class DnsSettings(BaseModel):
    """How Postroom resolves DNS (domain verification; later MX routing)."""

    server: str | None = Field(
        None,
        description="Resolver to ask, as HOST:PORT (e.g. 127.0.0.1:5353); the system "
        "resolver when unset.",
    )
    timeout: float = Field(3.0, description="Seconds to wait for one DNS answer.")


class DomainSettings(BaseModel):
    """Sending domains: the records users publish, verification and DKIM rotation."""

    mail_host: str = Field(
        "mail.postroom.test",
        description="This installation's mail host name: return-path and tracking CNAMEs "
        "point at it, and its SPF record is what users include.",
    )
    spf_include: str | None = Field(
        None, description="Domain users include in SPF; defaults to _spf.<mail_host>."
    )
    return_path_label: str = Field(
        "pr-bounces", description="Label of the return-path subdomain (pr-bounces.<domain>)."
    )
    tracking_label: str = Field(
        "pr-track", description="Label of the tracking subdomain (pr-track.<domain>)."
    )
    recheck_hours: float = Field(
        6.0, description="Hours between DNS re-checks of every domain by the scheduler."
    )
    pending_recheck_minutes: float = Field(
        5.0, description="Minutes between re-checks while a domain or new key awaits DNS."
    )
    dkim_rotation_days: float = Field(
        90.0, description="Days after which a signing key is rotated automatically (0: never)."
    )
    dkim_grace_days: float = Field(
        7.0, description="Days a replaced key stays published before it is retired."
    )
    rsa_bits: int = Field(2048, description="Size of generated RSA DKIM keys.")

    @property
    def spf_domain(self) -> str:
        return self.spf_include or f"_spf.{self.mail_host}"


class SecuritySettings(BaseModel):
    """Secrets Postroom keeps."""

    secret_key: str | None = Field(
        None,
        description="Fernet key (urlsafe base64, 32 bytes) that encrypts private keys at "
        "rest; when unset, read from (or created in) <data_dir>/secret.key.",
    )


class LimitSettings(BaseModel):
    """Request limits of the sending API (Mailtrap's published limits by default)."""

    max_message_bytes: int = Field(
        10 * 1024 * 1024, description="Largest message, attachments included (bytes)."
    )
    max_batch_bytes: int = Field(50 * 1024 * 1024, description="Largest /api/batch body (bytes).")
    max_recipients_per_field: int = Field(1000, description="Addresses allowed in to, cc or bcc.")
    max_batch_requests: int = Field(500, description="Messages allowed in one /api/batch call.")
    max_custom_variables_bytes: int = Field(
        1000, description="Largest custom_variables object, serialised as JSON (bytes)."
    )
    max_category_chars: int = Field(255, description="Longest category.")


class InsightSettings(BaseModel):
    """Email logs, stats rollups, retention and per-domain alerts."""

    log_retention_days: int = Field(
        30, ge=1, description="Days email logs are kept unless the account sets its own."
    )
    body_retention_days: int = Field(
        30, ge=1, description="Days raw message bodies are kept unless the account sets its own."
    )
    retention_batch: int = Field(500, ge=1, description="Messages deleted per transaction.")
    retention_batches: int = Field(
        20, ge=1, description="Most retention transactions per scheduler round."
    )
    raw_link_seconds: int = Field(
        3600, ge=1, description="Seconds a signed raw-message link stays valid."
    )
    stats_batch: int = Field(2000, ge=1, description="Events folded into rollups per transaction.")
    stats_batches: int = Field(
        50, ge=1, description="Most rollup transactions per scheduler round."
    )
    stats_settle_seconds: float = Field(
        2.0,
        ge=0,
        description="Events younger than this are left for the next round, so that a "
        "transaction that commits late (PostgreSQL) is not skipped.",
    )
    alert_window_minutes: float = Field(
        60.0, gt=0, description="Window over which alert rates are computed."
    )
    alert_min_volume: int = Field(
        50, ge=1, description="Fewest attempts in the window before a rate alert may fire."
    )
    alert_bounce_rate: float = Field(0.05, description="Default bounce-rate threshold (0-1).")
    alert_complaint_rate: float = Field(
        0.003, description="Default complaint (spam) rate threshold (0-1)."
    )
    alert_deferral_rate: float = Field(0.25, description="Default deferral-rate threshold (0-1).")
    alert_clear_ratio: float = Field(
        0.5,
        gt=0,
        le=1,
        description="A raised alert clears only once its rate falls to this fraction of "
        "the threshold (hysteresis).",
    )
    alert_hold_minutes: float = Field(
        30.0,
        ge=0,
        description="An alert stays raised (or cleared) at least this long before it may "
        "change again, so a bad minute does not flood anyone.",
    )


class Settings(BaseSettings):
    """All settings of one Postroom installation."""

    model_config = SettingsConfigDict(
        env_prefix="POSTROOM_", env_nested_delimiter="__", extra="ignore"
    )

    server: ServerSettings = Field(default_factory=ServerSettings, description="HTTP listeners.")
    storage: StorageSettings = Field(default_factory=StorageSettings, description="Storage.")
    delivery: DeliverySettings = Field(
        default_factory=DeliverySettings, description="Delivery worker."
    )
    scheduler: SchedulerSettings = Field(
        default_factory=SchedulerSettings, description="Scheduler."
    )
    limits: LimitSettings = Field(default_factory=LimitSettings, description="Sending limits.")
    dns: DnsSettings = Field(default_factory=DnsSettings, description="DNS resolution.")
    domains: DomainSettings = Field(
        default_factory=DomainSettings, description="Sending domains and DKIM."
    )
    security: SecuritySettings = Field(
        default_factory=SecuritySettings, description="Secrets at rest."
    )
    insights: InsightSettings = Field(
        default_factory=InsightSettings,
        description="Email logs, stats, retention and alerts.",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then environment, then the TOML file.
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_path = os.environ.get("POSTROOM_CONFIG")
        if toml_path:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_path))
        return tuple(sources)

    @property
    def database_url(self) -> str:
        """The configured database URL, or the SQLite file inside the data directory."""
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite:///{(self.storage.data_dir / 'postroom.db').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and TOML, with ``overrides`` on top."""
    return Settings(**overrides)
