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

A token's permissions (account accesses, domain/access.py) become the Principal's scopes
and limits here, once per lookup. A token of a disabled account, an expired or a revoked
one is refused like an unknown one (401). When a token was last used is written at most
once per ``TOUCH_SECONDS``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import access, tokens
from postroom.errors import Forbidden, StoreUnavailable, Unauthorized
from postroom.net.clients import client_key
from postroom.services import Services
from postroom.services.cache import TtlCache
from postroom.services.ratelimit import FailureThrottle, RateLimited
from postroom.storage.repos import accounts as repo

CACHE_SECONDS = 10.0
KNOWN_GOOD_SECONDS = 3600.0
CACHE_ENTRIES = 10_000
TOUCH_SECONDS = 60.0

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an account, through one token, with its scopes and limits."""

    account_id: int
    token_id: int
    token_name: str
    scopes: frozenset[str]
    # False: the token holds permissions on some domains/sandboxes only, so it may send
    # (within ``sender_domains``/``sandbox_ids``) and do nothing account-wide.
    account_wide: bool = True
    # None: any of the account's domains; else the ASCII names it may send From.
    sender_domains: frozenset[str] | None = None
    # None: any of the account's sandboxes; else the ones it may send into.
    sandbox_ids: frozenset[int] | None = None
    # The installation admin: may list, create, rename and disable accounts.
    organization_admin: bool = False

    def require(self, scope: str) -> None:
        """Raise Forbidden unless the token holds ``scope`` (admin holds every scope);
        only ``send`` is open to a token limited to some domains or sandboxes."""
        if scope != "send" and not self.account_wide:
            raise Forbidden(scope)
        if "admin" not in self.scopes and scope not in self.scopes:
            raise Forbidden(scope)

    def may_send_from(self, domain: str) -> bool:
        """Whether the token may send From ``domain`` (an ASCII, lower-case name)."""
        return self.sender_domains is None or domain in self.sender_domains

    def may_send_into(self, sandbox_id: int) -> bool:
        return self.sandbox_ids is None or sandbox_id in self.sandbox_ids

    def may_access(self, account_id: int) -> bool:
        return self.account_id == account_id


class Authenticator:
    """Turns a presented token into a Principal, or raises Unauthorized (or RateLimited)."""

    def __init__(self, services: Services) -> None:
        self._services = services
        self._cache: TtlCache[str, Principal] = TtlCache(CACHE_SECONDS, max_entries=CACHE_ENTRIES)
        self._refused: TtlCache[str, bool] = TtlCache(CACHE_SECONDS, max_entries=CACHE_ENTRIES)
        self._known_good: TtlCache[str, bool] = TtlCache(
            KNOWN_GOOD_SECONDS, max_entries=CACHE_ENTRIES
        )
        self._failures = FailureThrottle(services.settings.ratelimits.failed_auth)
        # When each token's use was last written (this process's view).
        self._touched: TtlCache[int, bool] = TtlCache(TOUCH_SECONDS, max_entries=CACHE_ENTRIES)

    async def authenticate(self, presented: str | None, client: str | None = None) -> Principal:
        """The principal of ``presented``; ``client`` (an address) counts failures."""
        cache_key = tokens.hash_secret(presented or "").hex()
        cached = self._cache.get(cache_key)
        if cached is not None:
            await self._touch(cached)
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
        await self._touch(principal)
        return principal

    def forget(self) -> None:
        """Drop every cached answer (after a token or account changed here)."""
        self._cache.clear()
        self._refused.clear()

    async def _touch(self, principal: Principal) -> None:
        """Record the token's last use, at most once per TOUCH_SECONDS per token."""
        if self._touched.get(principal.token_id):
            return
        self._touched.put(principal.token_id, True)
        now = self._services.clock.now()
        try:
            await self._services.db.write(
                lambda conn: repo.touch_tokens(conn, {principal.token_id: now})
            )
        except StoreUnavailable:
            # Bookkeeping only: the request itself goes on (or fails) on its own.
            log.warning("could not record the use of token %s", principal.token_id)

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
        account_id = int(row["account_id"])
        if repo.is_disabled(conn, account_id):
            raise Unauthorized()
        return principal_of(conn, row)


def principal_of(conn: Connection, row: dict[str, Any]) -> Principal:
    """The Principal of token ``row``: its permissions turned into scopes and limits."""
    account_id = int(str(row["account_id"]))
    granted = access.grant(repo.token_permissions(conn, row), _scopes(row["scopes"]))
    senders: frozenset[str] | None = None
    if granted.domain_ids is not None:
        names = repo.domain_names(conn, account_id, granted.domain_ids).values()
        senders = frozenset(_ascii(name) for name in names)
    sandboxes: frozenset[int] | None = None
    if granted.sandbox_ids is not None:
        projects = repo.project_inboxes(conn, account_id, granted.project_ids or ())
        sandboxes = frozenset(granted.sandbox_ids | projects)
    return Principal(
        account_id=account_id,
        token_id=int(str(row["id"])),
        token_name=str(row["name"]),
        scopes=granted.scopes,
        account_wide=granted.account_wide,
        sender_domains=senders,
        sandbox_ids=sandboxes,
        organization_admin=granted.organization_admin,
    )


def _scopes(value: object) -> list[str]:
    return [str(scope) for scope in value] if isinstance(value, list | tuple) else []


def _ascii(name: str) -> str:
    try:
        return name.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return name.lower()
