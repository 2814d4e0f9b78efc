"""Use cases: the only layer that coordinates storage, queue and events for the entry points.

:class:`Services` bundles what every use case needs (settings, database, clock, id
factory) and two dependencies made on first use: the sealer that encrypts private keys
at rest and the DNS resolver. Entry points build one at start-up and pass it down
explicitly; tests may set ``sealer`` or ``resolver`` before the first use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from postroom.clock import Clock, SystemClock
from postroom.config import Settings
from postroom.domain.emailtemplates import CompiledEmailTemplate
from postroom.domain.ids import IdFactory
from postroom.domain.rawmail import RawLimits
from postroom.services.cache import TtlCache
from postroom.services.dns import DnsPythonResolver, Resolver
from postroom.services.ratelimit import RateLimiter
from postroom.storage.db import Database
from postroom.storage.secrets import Sealer, load_sealer

SENDER_CACHE_SECONDS = 10.0


@dataclass
class Services:
    """The dependencies of the use cases, passed explicitly (never a global)."""

    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    ids: IdFactory = field(default_factory=IdFactory)
    # Made lazily: most processes (and most tests) never touch a key or a name server.
    sealer: Sealer | None = None
    resolver: Resolver | None = None
    # Each account's verified sending domains, re-read at most every few seconds: in mx
    # and relay modes every send checks its From against them.
    verified_senders: TtlCache[int, frozenset[str]] = field(
        default_factory=lambda: TtlCache(SENDER_CACHE_SECONDS)
    )
    # Each account's own delivery mode ("" for none), boxed so a cached "" is a hit.
    account_modes: TtlCache[int, tuple[str]] = field(
        default_factory=lambda: TtlCache(SENDER_CACHE_SECONDS)
    )
    # Each account's gates (services/quotas.py AccountState: disabled, quotas), boxed;
    # re-read every few seconds, so disabling an account stops its sending within that time.
    account_states: TtlCache[int, tuple[Any]] = field(
        default_factory=lambda: TtlCache(SENDER_CACHE_SECONDS)
    )
    rate_limiter: RateLimiter | None = None
    # Compiled email templates by (account, uuid), made on first use (TTL from settings).
    template_cache: TtlCache[tuple[int, str], CompiledEmailTemplate] | None = None

    def get_rate_limiter(self) -> RateLimiter:
        """The API's request rate limits (``ratelimits``), counted in this process."""
        if self.rate_limiter is None:
            self.rate_limiter = RateLimiter(self.settings.ratelimits)
        return self.rate_limiter

    def get_template_cache(self) -> TtlCache[tuple[int, str], CompiledEmailTemplate]:
        """The compiled templates this process reuses for ``templates.cache_seconds``."""
        if self.template_cache is None:
            self.template_cache = TtlCache(self.settings.templates.cache_seconds)
        return self.template_cache

    def raw_limits(self) -> RawLimits:
        """The limits a finished message's bytes are checked against (SMTP, inbound)."""
        limits = self.settings.limits
        return RawLimits(limits.max_header_fields, limits.max_header_bytes, limits.max_mime_depth)

    def get_sealer(self) -> Sealer:
        """The installation's sealer; its key file is created on first use if need be."""
        if self.sealer is None:
            self.sealer = load_sealer(self.settings, create=True)
        return self.sealer

    def get_resolver(self) -> Resolver:
        """The resolver of ``settings.dns`` (the system's name servers when unset)."""
        if self.resolver is None:
            dns = self.settings.dns
            self.resolver = DnsPythonResolver(dns.server, dns.timeout)
        return self.resolver
