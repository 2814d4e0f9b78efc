"""MTA-STS (RFC 8461) discovery for outbound delivery: which domains demand verified TLS.

Use: one :class:`MtaStsResolver` per delivery worker (its cache is per process); when
``settings.mta_sts.enabled`` is false it answers None without any lookup::

    sts = MtaStsResolver.from_settings(settings, services.get_resolver())
    policy = await sts.policy("example.com")     # Policy | None, never raises
    for host in route.hosts:
        plan = plan_mx(policy, host.name)
        if not plan.use: ...                     # enforce: this MX is not allowed
        SessionConfig(..., tls=plan.tls)         # "required" verifies the MX name
        if plan.report: ...                      # record the policy failure

How delivery must apply the answer (RFC 8461 §4, §5):

- ``mode: enforce`` — deliver only to MX hosts for which ``policy.allows_mx(host.name)``
  is true, and only over STARTTLS with a certificate that chains to a trusted CA, has
  not expired and is valid for the *MX host name* (subjectAltName; a wildcard covers one
  left-most label): the session's ``tls="required"`` with a verifying context such as
  :func:`postroom.services.egress.tls_context` (``settings.egress.ca_bundle``; no Common
  Name fallback) and the MX name, not the address, as ``server_hostname``. A host that
  offers no STARTTLS or a bad certificate is a temporary failure (``4.7.x``, deferred,
  never downgraded); when no MX host matches, the message is deferred, not sent elsewhere.
- ``mode: testing`` — deliver as without a policy (opportunistic TLS, every MX host),
  but record the failures the policy would have caused (host not listed, no STARTTLS,
  invalid certificate) for reporting (TLS-RPT, RFC 8460).
- ``mode: none`` or no policy (``None``) — opportunistic TLS as usual.

:func:`plan_mx` encodes the first two rules per MX host.

Discovery and caching (§3, §5.1), per lower-cased A-label domain:

1. Within ``recheck`` seconds (300 by default) of the last check the cached answer is
   returned with no network at all, so a busy domain costs one TXT lookup per interval.
2. Otherwise TXT ``_mta-sts.<domain>`` is read (:func:`~postroom.domain.mtasts.parse_txt`).
   When its ``id`` equals the cached policy's and that policy has not expired, the
   cached one stands. Otherwise ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` is
   fetched through :class:`~postroom.services.egress.EgressClient` (SSRF-checked
   addresses, certificate valid for ``mta-sts.<domain>``, no redirects, ≤ 64 KiB,
   HTTP 200 with ``text/plain``) and parsed strictly
   (:func:`~postroom.domain.mtasts.parse_policy`).
3. A policy is valid for ``max_age`` seconds after the fetch that produced it. Any
   failure — DNS, no or several records, fetch, TLS, status, syntax — keeps serving the
   cached policy until it expires (an attacker who blocks the lookup must not downgrade
   an ``enforce`` domain, §10.2) and is retried after ``recheck`` seconds; with nothing
   cached the answer is ``None``.

Concurrent calls for one domain share one discovery. ``clock`` is monotonic seconds
(tests pass a fake). Failures are logged at INFO with the reason.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from postroom.config import Settings
from postroom.domain.mtasts import Mode, Policy, PolicyError, parse_policy, parse_txt
from postroom.mta.session import TlsPolicy
from postroom.services.dns import DnsUnavailable, Resolver
from postroom.services.egress import EgressClient, EgressError

__all__ = ["MtaStsResolver", "Mode", "MxPlan", "Policy", "plan_mx"]

log = logging.getLogger(__name__)

WELL_KNOWN_PATH = "/.well-known/mta-sts.txt"
DEFAULT_RECHECK = 300.0
DEFAULT_MAX_BYTES = 64 * 1024  # RFC 8461 §3.3 suggests 64 KiB
DEFAULT_TIMEOUT = 60.0  # §3.3: "a timeout of at least one minute"
DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class MxPlan:
    """How delivery treats one MX host under a domain's policy (see the module docstring)."""

    use: bool  # False: enforce mode and the host is not listed; do not connect to it
    tls: TlsPolicy  # "required" (verified, named MX) in enforce mode, else "opportunistic"
    report: str | None = None  # a policy failure to record, if any


def plan_mx(policy: Policy | None, mx_host: str) -> MxPlan:
    """The plan for delivering to ``mx_host`` of a domain whose policy is ``policy``."""
    if policy is None or policy.mode is Mode.NONE:
        return MxPlan(use=True, tls="opportunistic")
    listed = policy.allows_mx(mx_host)
    if policy.mode is Mode.ENFORCE:
        if not listed:
            return MxPlan(use=False, tls="required", report=f"{mx_host} not in MTA-STS policy")
        return MxPlan(use=True, tls="required")
    report = None if listed else f"{mx_host} not in MTA-STS policy (testing)"
    return MxPlan(use=True, tls="opportunistic", report=report)


class _FetchFailed(Exception):
    """The policy host answered, but not with a usable policy."""


@dataclass(frozen=True)
class _Entry:
    policy: Policy | None  # the last valid policy, possibly expired
    expires: float  # when ``policy`` stops being valid (fetch time + max_age)
    checked: float  # when the TXT record was last looked at (or a discovery failed)

    def valid(self, now: float) -> Policy | None:
        return self.policy if self.policy is not None and now < self.expires else None


class MtaStsResolver:
    """Discovers, fetches and caches MTA-STS policies; see the module docstring."""

    def __init__(
        self,
        resolver: Resolver,
        fetcher: EgressClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        timeout: float = DEFAULT_TIMEOUT,
        recheck: float = DEFAULT_RECHECK,
        max_bytes: int = DEFAULT_MAX_BYTES,
        port: int = 443,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        enabled: bool = True,
    ) -> None:
        self._enabled = enabled
        self._resolver = resolver
        self._fetcher = fetcher
        self._clock = clock
        self._timeout = timeout
        self._recheck = recheck
        self._max_bytes = max_bytes
        self._port = port
        self._max_entries = max_entries
        self._cache: dict[str, _Entry] = {}
        self._inflight: dict[str, asyncio.Task[Policy | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, resolver: Resolver) -> MtaStsResolver:
        """The resolver the ``mta_sts`` and ``egress`` settings describe."""
        sts = settings.mta_sts
        return cls(
            resolver,
            EgressClient.from_settings(settings, resolver),
            timeout=sts.timeout,
            recheck=sts.recheck_seconds,
            max_bytes=sts.max_policy_bytes,
            port=sts.port,
            enabled=sts.enabled,
        )

    async def policy(self, domain: str) -> Policy | None:
        """The policy that applies to mail for ``domain`` now, or None; never raises.

        Always None, with no lookup at all, when the resolver is disabled.
        """
        key = _normalise(domain) if self._enabled else None
        if key is None:
            return None
        entry = self._cache.get(key)
        if entry is not None and self._clock() < entry.checked + self._recheck:
            return entry.valid(self._clock())
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(self._discover(key))
            self._inflight[key] = task
            task.add_done_callback(lambda _: self._inflight.pop(key, None))
        # Shielded: one caller giving up must not cancel the discovery the others await.
        return await asyncio.shield(task)

    def forget(self, domain: str) -> None:
        """Drop what is cached for ``domain`` (operators; tests)."""
        key = _normalise(domain)
        if key is not None:
            self._cache.pop(key, None)

    # --- discovery -----------------------------------------------------------------

    async def _discover(self, key: str) -> Policy | None:
        now = self._clock()
        entry = self._cache.get(key)
        cached = entry.valid(now) if entry is not None else None
        try:
            async with asyncio.timeout(self._timeout):
                fresh = await self._lookup(key, cached)
        except (DnsUnavailable, EgressError, ValueError, _FetchFailed, TimeoutError) as exc:
            # ValueError covers PolicyError and names DNS refuses.
            log.info("MTA-STS discovery for %s failed: %s", key, exc or type(exc).__name__)
            fresh = None
        if fresh is None or fresh is cached:
            # Nothing new: keep what we had (expired or not) and look again after recheck.
            policy, expires = (entry.policy, entry.expires) if entry else (None, now)
            self._store(key, _Entry(policy, expires, checked=now))
            return cached
        self._store(key, _Entry(fresh, expires=now + fresh.max_age, checked=now))
        return fresh

    async def _lookup(self, key: str, cached: Policy | None) -> Policy | None:
        """A newly fetched policy, ``cached`` when its id is current, None without a record."""
        policy_id = parse_txt(await self._resolver.txt(f"_mta-sts.{key}"))
        if policy_id is None:
            return None
        if cached is not None and cached.id == policy_id:
            return cached
        return await self._fetch(key, policy_id)

    async def _fetch(self, key: str, policy_id: str) -> Policy:
        port = "" if self._port == 443 else f":{self._port}"
        url = f"https://mta-sts.{key}{port}{WELL_KNOWN_PATH}"
        response = await self._fetcher.get(url, max_bytes=self._max_bytes, timeout=self._timeout)
        if response.status != 200:
            raise _FetchFailed(f"{url}: HTTP {response.status}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "text/plain":
            # §3.3: guards against hosts where users may upload arbitrary files.
            raise _FetchFailed(f"{url}: media type {media_type!r}, not text/plain")
        try:
            body = response.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(f"{url}: not UTF-8") from exc
        return parse_policy(body, policy_id)

    # --- cache ---------------------------------------------------------------------

    def _store(self, key: str, entry: _Entry) -> None:
        self._cache.pop(key, None)  # re-insert: insertion order stays oldest-first
        if len(self._cache) >= self._max_entries:
            del self._cache[next(iter(self._cache))]
        self._cache[key] = entry


def _normalise(domain: str) -> str | None:
    """The lower-case A-label form of ``domain``, or None for literals and non-names."""
    name = domain.strip().rstrip(".").lower()
    if not name or name.startswith("[") or "/" in name:
        return None
    try:
        name = name.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    return name
