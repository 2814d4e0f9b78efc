"""Use cases: the only layer that coordinates storage, queue and events for the entry points.

:class:`Services` bundles what every use case needs (settings, database, clock, id
factory) and two dependencies made on first use: the sealer that encrypts private keys
at rest and the DNS resolver. Entry points build one at start-up and pass it down
explicitly; tests may set ``sealer`` or ``resolver`` before the first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable
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
from postroom.services.shared import Invalidations
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
    # The token caches of this process's authenticators (services/auth.py register them).
    token_caches: list[TtlCache[str, Any]] = field(default_factory=list)
    # Cross-process invalidation (services/shared.py), made on first use with Redis.
    invalidations: Invalidations | None = None
    # Compiled email templates by (account, uuid), made on first use (TTL from settings).
    template_cache: TtlCache[tuple[int, str], CompiledEmailTemplate] | None = None
    # Background jobs a request started (sandbox blacklist checks), by key: referenced
    # here until done so the loop keeps them, and so one job runs once per process.
    background: dict[Hashable, asyncio.Task[None]] = field(default_factory=dict)

    def get_rate_limiter(self) -> RateLimiter:
        """The API's request rate limits (``ratelimits``), counted in this process, or in
        Redis for every process with ``scale.redis_url``."""
        if self.rate_limiter is None:
            self.rate_limiter = RateLimiter(self.settings.ratelimits, self.settings.scale.redis_url)
        return self.rate_limiter

    def get_template_cache(self) -> TtlCache[tuple[int, str], CompiledEmailTemplate]:
        """The compiled templates this process reuses for ``templates.cache_seconds``."""
        if self.template_cache is None:
            self.template_cache = TtlCache(self.settings.templates.cache_seconds)
        return self.template_cache

    def forget(self, cache: str, key: Hashable) -> None:
        """Drop ``key`` from the cache named ``cache`` here and, with ``scale.redis_url``,
        in every other process (services/shared.py). Names: ``tokens``,
        ``verified_senders``, ``account_modes``, ``templates``. ``key`` None drops the
        whole cache (a token revoked by id: its cache key is a hash of its secret)."""
        self.forget_here(cache, key)
        url = self.settings.scale.redis_url
        if url:
            if self.invalidations is None:
                self.invalidations = Invalidations(url)
            self.invalidations.publish(cache, key)

    def forget_here(self, cache: str, key: Any) -> None:
        """Drop ``key`` from this process's cache named ``cache`` (unknown names: none)."""
        named: dict[str, list[TtlCache[Any, Any]]] = {
            "tokens": list(self.token_caches),
            "verified_senders": [self.verified_senders],
            "account_modes": [self.account_modes],
            "templates": [self.template_cache] if self.template_cache is not None else [],
        }
        for each in named.get(cache, []):
            if key is None:
                each.clear()
            else:
                each.discard(key)

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
