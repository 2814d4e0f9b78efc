"""Installation settings: one typed schema, read from the environment and an optional TOML file.

Every field has a description; environment variables are spelled
``POSTROOM_<SECTION>__<KEY>`` (for example ``POSTROOM_SERVER__PORT=9000``) and win over
the TOML file named by ``POSTROOM_CONFIG``. Settings are passed explicitly
(``create_app(settings)``); nothing in Postroom reads a global settings object.
Per-account policy lives in the database, not here.
"""

from __future__ import annotations

import os
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, IPvAnyNetwork, model_validator
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


class SourceIpSettings(BaseModel):
    """One local address of an IP pool."""

    address: str = Field(description="Local IPv4/IPv6 address outbound connections bind to.")
    weight: int = Field(1, ge=1, description="Share of the pool's traffic (relative).")
    warmup_start: date | None = Field(
        None,
        description="First day (UTC) of this address's warm-up; unset for a warm address. "
        "Its daily volume follows delivery.warmup_caps from that day on.",
    )


class IpPoolSettings(BaseModel):
    """A named set of sending addresses."""

    addresses: list[SourceIpSettings] = Field(description="The pool's addresses.")


class DeliverySettings(BaseModel):
    """The delivery worker."""

    mode: DeliveryMode = Field(
        DeliveryMode.SANDBOX,
        description="sandbox, mx or relay: the default for accounts and streams without their own.",
    )
    stream_modes: dict[str, DeliveryMode] = Field(
        default_factory=dict,
        description="Mode per stream, e.g. {bulk = 'sandbox'}; an account's own mode "
        "(`postroom account set-mode`) wins.",
    )
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
    relay_ca_file: str | None = Field(
        None,
        description="PEM file of the CA that signed the smarthost's certificate, when it is "
        "a private one; the system's CAs otherwise. The smarthost's certificate is always "
        "verified (STARTTLS and implicit TLS).",
    )
    retry_window_by_stream: dict[str, float] = Field(
        default_factory=dict,
        description="Retry window (seconds) per stream, e.g. {bulk = 86400}; streams not "
        "named use retry_window.",
    )
    rounds_in_flight: int = Field(
        2,
        ge=1,
        description="Delivery rounds one worker runs at once: while one sends, the next "
        "leases, loads and DKIM-signs its batch.",
    )
    max_connections: int = Field(
        64, description="Outbound SMTP connections one worker keeps open at once, all sites."
    )
    round_seconds: float = Field(
        30.0,
        description="Longest a round waits on throttles; what a site cannot take by then "
        "is put back in the queue until the site has room (no attempt counted).",
    )
    ip_pools: dict[str, IpPoolSettings] = Field(
        default_factory=dict,
        description="Named pools of local sending addresses. A pool named 'default' serves "
        "every message without another pool; with no pools, the system picks the address.",
    )
    stream_pools: dict[str, str] = Field(
        default_factory=dict,
        description="Pool per stream, e.g. {bulk = 'bulk'}; an account's own pool "
        "(`postroom account set-pool`) wins.",
    )
    warmup_caps: list[int] = Field(
        # Roughly doubling from 50 a day to 300,000 over two weeks, then open: large
        # senders' published warm-up plans start at 50-200 a day per IP.
        default_factory=lambda: (
            [50, 100, 200, 400, 800, 1500, 3000, 6000, 10_000, 20_000]
            + [40_000, 80_000, 150_000, 300_000]
        ),
        description="Recipients per day a warming address may send: day 1, day 2, ...; "
        "no cap after the last day.",
    )


class EgressSettings(BaseModel):
    """Outbound HTTP (MTA-STS policies; later webhooks): where it may connect, whom it trusts."""

    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Networks outbound HTTP may reach although they are not public "
        '(e.g. ["10.1.2.0/24"] for an internal receiver); loopback, private, link-local, '
        "metadata and other non-public addresses are refused otherwise.",
    )
    ca_bundle: Path | None = Field(
        None,
        description="PEM file of the CAs that outbound HTTPS trusts, instead of the bundled "
        "public CAs (certifi).",
    )
    connect_timeout: float = Field(10.0, description="Seconds to wait for a TCP+TLS connection.")


class WebhookSettings(BaseModel):
    """Webhooks: batching, delivery, retries, pausing, and where they may connect."""

    flush_seconds: float = Field(
        1.0, gt=0, description="Seconds between rounds that batch new events and send them."
    )
    batch_max_events: int = Field(
        500, ge=1, le=500, description="Most events in one POST (the contract's 500)."
    )
    timeout: float = Field(30.0, gt=0, description="Seconds a receiver has to answer one POST.")
    max_response_bytes: int = Field(
        64 * 1024, ge=1024, description="Most bytes of a receiver's answer read (the rest dropped)."
    )
    concurrency: int = Field(16, ge=1, description="Webhooks sent to at the same time.")
    retry_first_delay: float = Field(30.0, gt=0, description="Seconds before the first retry.")
    retry_factor: float = Field(2.0, ge=1, description="Each retry waits this many times longer.")
    retry_max_delay: float = Field(
        3600.0, gt=0, description="Longest wait between two retries (seconds)."
    )
    retry_window: float = Field(
        24 * 3600.0,
        gt=0,
        description="Seconds a failing batch is retried before its webhook is paused "
        "(resumed by any update of the webhook).",
    )
    allowed_networks: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="Non-public networks webhook URLs may reach, besides "
        "egress.allowed_networks (e.g. an internal receiver).",
    )
    allowed_ports: list[int] = Field(
        default_factory=lambda: [80, 443],
        description="Ports webhook URLs may name (the contract's 80 and 443); empty: any.",
    )
    notification_email: str | None = Field(
        None,
        description="Address mailed (through Postroom itself) when a webhook is paused; "
        "unset: the pause is recorded as an audit event only.",
    )
    log_days: float = Field(
        30.0, gt=0, description="Days delivery-log entries and delivered batches are kept."
    )


class MtaStsSettings(BaseModel):
    """MTA-STS (RFC 8461): receivers' policies that demand verified TLS to listed MX hosts."""

    enabled: bool = Field(True, description="Look up and honour MTA-STS policies in mx mode.")
    timeout: float = Field(
        60.0, description="Seconds one policy discovery (TXT + HTTPS fetch) may take in all."
    )
    recheck_seconds: float = Field(
        300.0,
        description="Seconds before the _mta-sts TXT record of a domain is checked again "
        "(a policy is refetched only when its id changes or max_age runs out).",
    )
    max_policy_bytes: int = Field(64 * 1024, description="Largest policy body accepted.")
    port: int = Field(443, description="HTTPS port of policy hosts (tests use others).")


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
    max_header_fields: int = Field(
        1000,
        description="Header fields a message may carry: the API's `headers` object, the "
        "header section of a message submitted over SMTP or received by the inbound "
        "listener (more: 400 / 552 5.3.4).",
    )
    max_header_bytes: int = Field(
        102_400,
        description="Largest header section in bytes, as Postfix's header_size_limit "
        "(the API counts its `headers` names and values).",
    )
    max_mime_depth: int = Field(
        100,
        description="Deepest nesting of MIME containers (multipart and message/* parts) "
        "in a message submitted over SMTP or received by the inbound listener, as "
        "Postfix's mime_nesting_limit; deeper messages are refused for good (554 5.6.0).",
    )
    sandbox_max_wait_seconds: float = Field(
        30.0,
        ge=0,
        le=30,
        description="Longest a sandbox message listing may wait for mail (its `wait` "
        "parameter is cut to this; each waiting request holds a connection).",
    )
    idempotency_hours: float = Field(
        24.0,
        description="How long an Idempotency-Key of the sending API is remembered (a retry "
        "within it gets the first answer and sends nothing).",
    )


class TemplateSettings(BaseModel):
    """Email templates: limits and the mail policy applied when rendering them."""

    max_per_account: int = Field(200, description="Templates an account may keep.")
    max_body_chars: int = Field(10_000_000, description="Longest body_html or body_text.")
    max_render_chars: int = Field(
        10 * 1024 * 1024, description="Longest output of one rendered field (characters)."
    )
    max_render_steps: int = Field(
        1_000_000,
        description="Work one render may do (loop iterations weighted by their size); "
        "bounds templates that loop a lot without printing much.",
    )
    cache_seconds: float = Field(
        10.0,
        description="How long a process reuses a compiled template before re-reading it; "
        "changes made through the same process apply at once.",
    )
    inline_css: bool = Field(
        True, description="Inline <style> rules into style attributes of rendered HTML."
    )
    text_from_html: bool = Field(
        True, description="Generate the text part from the HTML when a template has none."
    )


# DNS blocklists a captured message is checked against (zone → where a listing is looked
# up by hand): the sender's registrable domain on the domain lists, the submitting
# client's address on the IP lists.
DOMAIN_BLOCKLISTS = {
    "dbl.spamhaus.org": "https://check.spamhaus.org/",
    "multi.surbl.org": "https://www.surbl.org/surbl-analysis",
    "multi.uribl.com": "https://admin.uribl.com/",
}
IP_BLOCKLISTS = {
    "zen.spamhaus.org": "https://check.spamhaus.org/",
    "bl.spamcop.net": "https://www.spamcop.net/bl.shtml",
    "b.barracudacentral.org": "https://www.barracudacentral.org/lookups",
    "psbl.surriel.com": "https://psbl.org/",
}


class SandboxSettings(BaseModel):
    """Sandbox message analysis: the spam scorer behind ``…/messages/{id}/spam_report``
    and the DNS blocklist check behind messages' ``blacklists_report_info``."""

    spamc_path: str = Field(
        "spamc",
        description="SpamAssassin's spamc client (a name on PATH or a path); without it "
        "spam reports answer 503 with what to install (Debian: spamc, spamassassin).",
    )
    spamd_host: str = Field("127.0.0.1", description="Where spamd listens (spamc -d).")
    spamd_port: int = Field(783, ge=1, le=65535, description="spamd's port (spamc -p).")
    spam_timeout_seconds: float = Field(
        30.0, gt=0, le=300, description="Longest a spam check may take before it fails."
    )
    blacklist_checks: bool = Field(
        True,
        description="Check each captured message's sender domain and client IP against "
        "DNS blocklists (the message's `blacklists_report_info`), in the background when "
        "the message is first read, through the `dns` resolver; off: the field is `false` "
        "and nothing is looked up.",
    )
    blacklist_domain_lists: dict[str, str] = Field(
        default_factory=lambda: dict(DOMAIN_BLOCKLISTS),
        description="Domain blocklists the sender's registrable domain is looked up in: "
        "DNS zone → the page where a listing can be checked by hand (the report's `url`).",
    )
    blacklist_ip_lists: dict[str, str] = Field(
        default_factory=lambda: dict(IP_BLOCKLISTS),
        description="IP blocklists the submitting client's address is looked up in "
        "(reversed octets, or nibbles for IPv6): DNS zone → the page to check a listing. "
        "Loopback, private and other non-public addresses are never looked up.",
    )
    blacklist_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description="Longest one message's blocklist lookups (made concurrently) may "
        "take; a list that has not answered by then is reported as an error.",
    )
    blacklist_retry_seconds: float = Field(
        600.0,
        ge=0,
        description="How old an `error` result must be before the next read of the "
        "message checks again.",
    )


class BounceSettings(BaseModel):
    """Bounces, complaints and suppressions: the inbound listener and the policy."""

    inbound_host: str = Field(
        "127.0.0.1",
        description="Address the inbound SMTP listener binds to (the return-path domains' "
        "MX must reach it; 0.0.0.0 in production).",
    )
    inbound_port: int = Field(
        2524, description="Port of the inbound SMTP listener for bounces and feedback reports."
    )
    inbound_enabled: bool = Field(True, description="Run the inbound listener in `serve`.")
    max_message_bytes: int = Field(
        10 * 1024 * 1024, description="Largest bounce or report accepted (SMTP SIZE)."
    )
    max_recipients: int = Field(100, description="Recipients accepted per inbound message.")
    inbound_idle_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds an inbound session may wait between commands (or between "
        "chunks of a message); then 421 and close (Postfix smtpd_timeout under stress: 10 s).",
    )
    inbound_session_timeout: float = Field(
        300.0, gt=0, description="Seconds an inbound session may last in all."
    )
    local_parts: list[str] = Field(
        default_factory=lambda: ["postmaster", "abuse", "fbl"],
        description="Local parts accepted besides signed return paths (feedback loops, "
        "RFC 2142 role addresses); every other local part is refused.",
    )
    soft_bounce_threshold: int = Field(
        3,
        description="Mailbox-full bounces of one recipient, within soft_bounce_window_days, "
        "that suppress it for soft_bounce_ttl_days (0: never).",
    )
    soft_bounce_window_days: float = Field(7.0, description="Window for counting them.")
    soft_bounce_ttl_days: float = Field(
        30.0, description="Days a soft-bounce suppression lasts before it expires."
    )


class InboundMailSettings(BaseModel):
    """Inbound email: inboxes with their own address, received on the inbound listener."""

    domain: str | None = Field(
        None,
        description="Domain of inbound inboxes' addresses (<inbox>@<domain>); its MX must "
        "point at domains.mail_host. Default: inbound.<domains.mail_host>.",
    )
    max_message_bytes: int = Field(
        10 * 1024 * 1024,
        gt=0,
        description="Largest message an inbound inbox accepts (552 past it).",
    )
    max_messages_per_inbox: int = Field(
        1000, gt=0, description="Messages kept per inbox; the oldest go when a new one comes."
    )
    spam_threshold: float = Field(
        5.0,
        description="Spam score (docs/inbound.md's rules) at which a message is refused "
        "with 550 5.7.1.",
    )
    check_authentication: bool = Field(
        True, description="Check SPF, DKIM and DMARC of received mail (DNS lookups)."
    )
    enforce_dmarc_reject: bool = Field(
        True, description="Refuse mail failing DMARC of a sender domain with p=reject."
    )
    max_forward_hops: int = Field(
        3,
        ge=1,
        le=20,
        description="Forward rules do not forward a message that Postroom's forwards already "
        "carried this many times (its X-Postroom-Forwarded header): no forwarding loops.",
    )

    def inbound_domain(self, mail_host: str) -> str:
        return (self.domain or f"inbound.{mail_host}").lower()


class SubmissionSettings(BaseModel):
    """The SMTP submission listeners: applications send with user ``api`` and a token."""

    port: int = Field(
        2525, description="STARTTLS submission port of the transactional stream (0: off)."
    )
    bulk_port: int = Field(
        2526, description="STARTTLS submission port of the bulk stream (0: off)."
    )
    tls_port: int = Field(
        4650,
        description="Implicit-TLS submission port of the transactional stream; needs the "
        "server's tls_cert (0: off).",
    )
    bulk_tls_port: int = Field(
        4651, description="Implicit-TLS submission port of the bulk stream (0: off)."
    )
    hostname: str | None = Field(
        None, description="Name in the greeting and EHLO reply; defaults to domains.mail_host."
    )
    tls_cert: Path | None = Field(
        None,
        description="PEM certificate chain of the SMTP listeners (STARTTLS and implicit TLS); "
        "defaults to server.tls_cert.",
    )
    tls_key: Path | None = Field(None, description="PEM private key for submission.tls_cert.")
    self_signed: bool = Field(
        True,
        description="When SMTP has no certificate (neither submission.tls_cert nor "
        "server.tls_cert), `serve` makes a self-signed one for localhost, 127.0.0.1 and ::1 "
        "(<data_dir>/smtp-selfsigned.pem, mode 0600, reused on later starts), so STARTTLS "
        "and AUTH work out of the box; clients must not verify it. HTTP stays as configured.",
    )
    allow_plaintext_loopback: bool = Field(
        False,
        description="Offer AUTH without TLS to clients on the loopback address (development "
        "only; other clients always need TLS first).",
    )
    max_recipients: int = Field(1000, description="RCPT commands accepted per message.")
    max_line_octets: int = Field(
        1000, description="Longest line of a message or command, CRLF included (RFC 5321: 1000)."
    )
    idle_timeout: float = Field(
        60.0,
        gt=0,
        description="Seconds a session may wait between commands (or between chunks of a "
        "message); then 421 and close.",
    )
    session_timeout: float = Field(600.0, gt=0, description="Seconds a session may last in all.")
    max_commands_before_auth: int = Field(
        10, description="Commands a client may send before it has authenticated."
    )
    auth_failures: int = Field(
        5,
        ge=1,
        description="Failed AUTH attempts with the same user name and password from one "
        "client before those credentials are answered 454 there without a lookup (other "
        "credentials from that client are still checked: a correct one always gets in).",
    )
    auth_failure_window: float = Field(
        300.0, gt=0, description="Seconds over which failed AUTH attempts are counted."
    )
    auth_failure_delay: float = Field(
        1.0,
        ge=0,
        description="Seconds every failed AUTH waits before its answer (Dovecot's "
        "auth_failure_delay, Postfix's smtpd_error_sleep_time).",
    )
    auth_tarpit_after: int = Field(
        10,
        ge=1,
        description="Failed AUTH attempts with distinct credentials from one client within "
        "the window after which each AUTH from it waits before it is checked, doubling from "
        "auth_failure_delay; credentials that succeeded from that client recently are "
        "exempt. Slows a credential spray without refusing anyone.",
    )
    auth_tarpit_max_delay: float = Field(
        15.0, ge=0, description="Longest wait of the tarpit (seconds)."
    )

    def listeners(self) -> list[tuple[str, int, bool]]:
        """(stream, port, implicit TLS) of each enabled listener."""
        wanted = [
            ("transactional", self.port, False),
            ("bulk", self.bulk_port, False),
            ("transactional", self.tls_port, True),
            ("bulk", self.bulk_tls_port, True),
        ]
        return [item for item in wanted if item[1]]


class ListenerCaps(BaseModel):
    """Connection caps of one listener."""

    max_connections: int = Field(
        ge=1,
        description="Connections open at once; past it a new one is answered at once (SMTP "
        "421, HTTP 503; closed on TLS ports) and closed.",
    )
    max_per_client: int = Field(
        ge=1,
        description="Connections open at once from one client address (IPv6: its /64). "
        "Behind a reverse proxy every client has the proxy's address: raise it there.",
    )


# Each listener's default caps: (max_connections, max_per_client).
_LISTENER_CAPS = {
    "api": (1000, 200),
    "bulk_api": (500, 200),
    "submission": (200, 50),
    "inbound": (200, 20),
    "tracking": (1000, 100),
}


def _caps(name: str) -> Any:
    total, per_client = _LISTENER_CAPS[name]
    return lambda: ListenerCaps(max_connections=total, max_per_client=per_client)


class ConnectionSettings(BaseModel):
    """Connection limits of every listener, so a flood on one port cannot starve another.

    The caps of all listeners plus ``reserved_files`` must fit under the process's
    open-file limit; ``postroom serve`` raises its soft limit to the hard one and, when
    that is still too low, scales every listener's caps down in proportion (and says so).
    """

    api: ListenerCaps = Field(
        default_factory=_caps("api"),
        description="The transactional API listener (and the dashboard): 1000 in all, "
        "200 per client.",
    )
    bulk_api: ListenerCaps = Field(
        default_factory=_caps("bulk_api"),
        description="The bulk API listener: 500 in all, 200 per client.",
    )
    submission: ListenerCaps = Field(
        default_factory=_caps("submission"),
        description="Each SMTP submission listener: 200 in all, 50 per client (Postfix: "
        "100 smtpd processes, smtpd_client_connection_count_limit 50).",
    )
    inbound: ListenerCaps = Field(
        default_factory=_caps("inbound"),
        description="The inbound SMTP listener (bounces and feedback reports; port 25 in "
        "production, open to anyone): 200 in all, 20 per client.",
    )
    tracking: ListenerCaps = Field(
        default_factory=_caps("tracking"),
        description="The tracking listener (open pixel, click redirects, unsubscribe "
        "pages; recipients' mail clients and their proxies): 1000 in all, 100 per client "
        "(a mail provider's image proxy is one client for many recipients).",
    )
    http_header_timeout: float = Field(
        20.0,
        gt=0,
        description="Seconds a client has to send a request's headers, counted from the "
        "connection (or from the first byte of the next request on a kept-alive one); "
        "then it is closed (nginx client_header_timeout, Apache mod_reqtimeout header=20).",
    )
    tls_handshake_timeout: float = Field(
        20.0, gt=0, description="Seconds a TLS handshake may take on implicit-TLS ports."
    )
    smtp_max_junk_commands: int = Field(
        100,
        ge=1,
        description="NOOP, RSET, VRFY, EXPN, HELP, HELO and EHLO commands an SMTP session "
        "may send, each; then 421 and close (Postfix smtpd_junk_command_limit).",
    )
    smtp_max_commands: int = Field(
        10_000,
        ge=1,
        description="Commands of any other one kind (MAIL, RCPT, DATA, ...) an SMTP "
        "session may send; bounds the work of one session besides its time limit.",
    )
    reserved_files: int = Field(
        256,
        ge=0,
        description="Open files kept out of the listeners' share for everything else: "
        "webhooks, DNS, MTA-STS fetches, log and database files (database connections and "
        "delivery.max_connections are added to it).",
    )
    warning_interval: float = Field(
        60.0,
        gt=0,
        description="Seconds between two warnings about one listener's refused "
        "connections; those in between are counted in the next warning.",
    )

    @model_validator(mode="before")
    @classmethod
    def _partial_caps(cls, data: Any) -> Any:
        """Let one cap be set alone (POSTROOM_CONNECTIONS__INBOUND__MAX_PER_CLIENT=5, or a
        TOML table with one key): the listener's other cap keeps its default."""
        if isinstance(data, dict):
            for name, (total, per_client) in _LISTENER_CAPS.items():
                given = data.get(name)
                if isinstance(given, dict):
                    data = {
                        **data,
                        name: {"max_connections": total, "max_per_client": per_client, **given},
                    }
        return data


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


class ScaleSettings(BaseModel):
    """Several processes and hosts: process count, shared state, health and logs."""

    processes: str = Field(
        "1",
        description="Processes `postroom serve` runs (each plays every role, sharing the "
        "listening sockets): a number, or 'auto' for one per CPU core. More than one "
        "needs PostgreSQL.",
    )
    redis_url: str | None = Field(
        None,
        description="Redis URL (redis://host:6379/0) shared by every process: API rate "
        "limits, per-site delivery throttles and connection budgets, and cache "
        "invalidation. Unset: each process keeps its own (fine for one process).",
    )
    redis_prefix: str = Field(
        "postroom",
        description="Prefix of this installation's site-budget keys in redis_url (several "
        "installations may share one Redis).",
    )
    site_slot_seconds: float = Field(
        30.0,
        gt=0,
        description="With redis_url: how long a worker's claim on a site's connection slot "
        "outlives the worker (renewed while it lives; a killed worker's claims free up "
        "after this).",
    )
    health_port: int = Field(
        0,
        description="Port of a small HTTP listener with /healthz, /readyz and /metrics, "
        "for roles without an API port (smtp, worker, scheduler); 0: none.",
    )
    health_host: str = Field("127.0.0.1", description="Address the health listener binds to.")
    log_format: str = Field(
        "text", description="Log lines as 'text' or 'json' (one JSON object per line)."
    )
    restart_max_delay: float = Field(
        30.0, gt=0, description="Longest wait before restarting a crashed child process (s)."
    )


class RateLimitSettings(BaseModel):
    """API request rate limits (the contract's §7), in `limits` notation ("10/minute")."""

    enabled: bool = Field(True, description="Answer 429 past the limits below.")
    per_token: str = Field(
        "150/10 seconds", description="Every general-host endpoint, per API token."
    )
    stats: str = Field("10/minute", description="Stats API, per account.")
    suppressions: str = Field("10/minute", description="Suppressions API, per account.")
    contacts: str = Field("200/minute", description="Contacts API (every endpoint), per account.")
    email_logs: str = Field("60/minute", description="Email log list and export, per account.")
    email_log: str = Field("1000/minute", description="One email log, per account.")
    sending: str | None = Field(
        None,
        description="The sending API, per token (e.g. '150/10 seconds' as Mailtrap's "
        "hosted service); unlimited when unset.",
    )
    failed_auth: str | None = Field(
        "10/minute",
        description="Failed authentications (401) per client address, on every host. Past "
        "it the client gets 429 with Retry-After and no database lookup, except with a "
        "token that authenticated in the last hour: a correct token keeps working. A "
        "guard against token guessing, so it applies even when `enabled` is false; unset "
        "to turn it off.",
    )


class TrackingSettings(BaseModel):
    """Open and click tracking, unsubscribe links and the tracking listener."""

    host: str | None = Field(
        None,
        description="Address the tracking listener binds to; server.host when unset "
        "(recipients' mail clients must reach it: 0.0.0.0 in production).",
    )
    port: int = Field(
        8002,
        description="Port of the tracking listener (open pixel, click redirects, "
        "unsubscribe and tracking opt-out pages); HTTPS with server.tls_cert (0: off).",
    )
    base_url: str | None = Field(
        None,
        description="Base URL tracking links use when the sending domain has no verified "
        "tracking CNAME (e.g. https://track.example.net); the listener's address otherwise.",
    )
    custom_domain_scheme: str = Field(
        "https",
        description="Scheme of links on a domain's own tracking host (pr-track.<domain>): "
        "https needs a certificate for that name where the listener is served.",
    )
    key_rotation_days: float = Field(
        30.0, gt=0, description="Days one key signs new tracking links before the next."
    )
    link_valid_days: float = Field(
        400.0,
        gt=0,
        description="Days a tracking link keeps working: tokens signed with a key older "
        "than this answer 404.",
    )
    rewrite_text_links: bool = Field(
        False, description="Also rewrite http(s) links in text/plain parts for click tracking."
    )
    max_links: int = Field(
        500, ge=1, description="Most distinct links of one message rewritten for clicks."
    )
    click_after_delivery_seconds: float = Field(
        2.0,
        ge=0,
        description="A click this soon after delivery is a link prefetcher's, not a person's.",
    )
    burst_seconds: float = Field(
        2.0,
        ge=0,
        description="Clicks of one recipient on several links within this time are a "
        "security scanner following every link.",
    )
    burst_links: int = Field(
        3,
        ge=2,
        description="Distinct links clicked within burst_seconds (or every link of a "
        "message with fewer) that make a burst.",
    )
    apple_ranges_file: Path | None = Field(
        None,
        description="Apple's iCloud Private Relay egress ranges (egress-ip-ranges.csv), "
        "through which Mail Privacy Protection fetches images: opens from them are "
        "flagged apple_mpp (besides the built-in user-agent signature).",
    )
    cache_seconds: float = Field(
        300.0,
        ge=0,
        description="How long the listener reuses what it read about a delivery and its "
        "links (they never change; retention may delete them).",
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
    bounces: BounceSettings = Field(
        default_factory=BounceSettings, description="Bounces, complaints and suppressions."
    )
    inbound: InboundMailSettings = Field(
        default_factory=InboundMailSettings,
        description="Inbound email inboxes (received on the inbound listener).",
    )
    egress: EgressSettings = Field(default_factory=EgressSettings, description="Outbound HTTP.")
    mta_sts: MtaStsSettings = Field(default_factory=MtaStsSettings, description="MTA-STS.")
    templates: TemplateSettings = Field(
        default_factory=TemplateSettings, description="Email templates."
    )
    sandbox: SandboxSettings = Field(
        default_factory=SandboxSettings, description="Sandbox message analysis."
    )
    ratelimits: RateLimitSettings = Field(
        default_factory=RateLimitSettings, description="API request rate limits."
    )
    submission: SubmissionSettings = Field(
        default_factory=SubmissionSettings, description="SMTP submission listeners."
    )
    insights: InsightSettings = Field(
        default_factory=InsightSettings,
        description="Email logs, stats, retention and alerts.",
    )
    tracking: TrackingSettings = Field(
        default_factory=TrackingSettings,
        description="Open and click tracking, unsubscribe and the tracking listener.",
    )
    connections: ConnectionSettings = Field(
        default_factory=ConnectionSettings,
        description="Connection caps and timeouts of every listener.",
    )
    webhooks: WebhookSettings = Field(
        default_factory=WebhookSettings, description="Webhook batching, delivery and retries."
    )
    scale: ScaleSettings = Field(
        default_factory=ScaleSettings,
        description="Processes, hosts and shared state (docs/deploy.md).",
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

    def smtp_tls_files(self) -> tuple[Path, Path] | None:
        """(certificate, key) of the SMTP listeners: their own, else the HTTP listeners'."""
        sub, server = self.submission, self.server
        if sub.tls_cert and sub.tls_key:
            return sub.tls_cert, sub.tls_key
        if server.tls_cert and server.tls_key:
            return server.tls_cert, server.tls_key
        return None

    @property
    def database_url(self) -> str:
        """The configured database URL, or the SQLite file inside the data directory."""
        if self.storage.database_url:
            return self.storage.database_url
        return f"sqlite:///{(self.storage.data_dir / 'postroom.db').resolve()}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment and TOML, with ``overrides`` on top."""
    return Settings(**overrides)
