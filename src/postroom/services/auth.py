"""Authenticate API tokens: look up by key id, compare the secret's hash in constant time.

Lookups are cached for a few seconds either way: a token that authenticated, so the hot
send path does not hit the database on every request (a revoked token stops working
within ``CACHE_SECONDS``), and a token that did not, so a client repeating a wrong token
costs one read, not one per request. Both caches are bounded, so random tokens cannot
grow memory.

Failed authentications are counted per client address (``ratelimits.failed_auth``):
past the limit, a client's tokens are answered 429 without a lookup, except a token that
authenticated (from anywhere) in the last ``KNOWN_GOOD_SECONDS``, so a correct token
keeps working for everyone behind the same address while a guesser there is stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from postroom.domain import tokens
from postroom.errors import Forbidden, Unauthorized
from postroom.net.clients import client_key
from postroom.services import Services
from postroom.services.cache import TtlCache
from postroom.services.ratelimit import FailureThrottle, RateLimited
from postroom.storage.repos import accounts as repo

CACHE_SECONDS = 10.0
KNOWN_GOOD_SECONDS = 3600.0
CACHE_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an account, through one token, with its scopes."""

    account_id: int
    token_id: int
    token_name: str
    scopes: frozenset[str]

    def require(self, scope: str) -> None:
        """Raise Forbidden unless the token holds ``scope`` (admin holds every scope)."""
        if "admin" not in self.scopes and scope not in self.scopes:
            raise Forbidden(scope)

    def may_access(self, account_id: int) -> bool:
        return self.account_id == account_id


class Authenticator:
    """Turns a presented token into a Principal, or raises Unauthorized (or RateLimited)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._cache: TtlCache[str, Principal] = TtlCache(CACHE_SECONDS, max_entries=CACHE_ENTRIES)
        # services.forget("tokens", key) drops a token here too (and in other processes).
        services.token_caches.append(self._cache)
        self._refused: TtlCache[str, bool] = TtlCache(CACHE_SECONDS, max_entries=CACHE_ENTRIES)
        self._known_good: TtlCache[str, bool] = TtlCache(
            KNOWN_GOOD_SECONDS, max_entries=CACHE_ENTRIES
        )
        self._failures = FailureThrottle(
            services.settings.ratelimits.failed_auth, services.settings.scale.redis_url
        )

    async def authenticate(self, presented: str | None, client: str | None = None) -> Principal:
        """The principal of ``presented``; ``client`` (an address) counts failures."""
        cache_key = tokens.hash_secret(presented or "").hex()
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        key = client_key(client) if client is not None else None
        if key is not None and not self._known_good.get(cache_key):
            wait = self._failures.blocked(key)
            if wait is not None:
                raise RateLimited(self._failures.limit, retry_after=wait)
        try:
            principal = await self._lookup_cached(presented or "", cache_key)
        except Unauthorized:
            if key is not None:
                self._failures.failed(key)
            raise
        self._cache.put(cache_key, principal)
        self._known_good.put(cache_key, True)
        return principal

    async def _lookup_cached(self, presented: str, cache_key: str) -> Principal:
        parts = tokens.split(presented)
        if parts is None or self._refused.get(cache_key):
            raise Unauthorized()
        try:
            return await self._services.db.read(lambda conn: self._lookup(conn, parts))
        except Unauthorized:
            self._refused.put(cache_key, True)
            raise

    def _lookup(self, conn: Connection, parts: tokens.TokenParts) -> Principal:
        row = repo.token_by_key_id(conn, parts.key_id)
        if row is None or not tokens.secret_matches(parts.secret, row["secret_hash"]):
            raise Unauthorized()
        now = self._services.clock.now()
        if row["revoked_at"] is not None or (row["expires_at"] and row["expires_at"] <= now):
            raise Unauthorized()
        return Principal(
            account_id=int(row["account_id"]),
            token_id=int(row["id"]),
            token_name=row["name"],
            scopes=frozenset(row["scopes"]),
        )
