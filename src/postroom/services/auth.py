"""Authenticate API tokens: look up by key id, compare the secret's hash in constant time.

Successful lookups are cached for a few seconds so the hot send path does not hit the
database on every request; a revoked token stops working within ``CACHE_SECONDS``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import Connection

from postroom.domain import tokens
from postroom.errors import Forbidden, Unauthorized
from postroom.services import Services
from postroom.services.cache import TtlCache
from postroom.storage.repos import accounts as repo

CACHE_SECONDS = 10.0


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
    """Turns a presented token into a Principal, or raises Unauthorized."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._cache: TtlCache[str, Principal] = TtlCache(CACHE_SECONDS)

    async def authenticate(self, presented: str | None) -> Principal:
        parts = tokens.split(presented or "")
        if parts is None:
            raise Unauthorized()
        cache_key = tokens.hash_secret(presented or "").hex()
        cached = self._cache.get(cache_key)
        if cached is not None:
            return cached
        principal = await self._services.db.read(lambda conn: self._lookup(conn, parts))
        self._cache.put(cache_key, principal)
        return principal

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
