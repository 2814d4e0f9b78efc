"""Where to deliver mail for a recipient domain: MX routing with the destination "site".

The rules, in order (RFC 5321 §5.1, RFC 7505, RFC 5321 §4.1.3):

- An address literal (``[192.0.2.1]``, ``[IPv6:2001:db8::1]``) routes to that address
  directly, with no DNS at all.
- The domain's MX records, most preferred (lowest number) first. Hosts of equal
  preference are tried in a random order (RFC 5321 §5.1: "the sender-SMTP MUST randomize
  them to spread the load"); the randomness is a ``random.Random`` passed in, so tests
  can seed it.
- A domain whose only MX is "." (RFC 7505 "null MX", ``MX 0 .``) accepts no mail:
  :class:`NullMx`, a permanent failure. A "." next to real hosts is a misconfiguration
  RFC 7505 §3 forbids; it is ignored and the real hosts are used.
- No MX at all (NODATA or NXDOMAIN): the domain itself is the "implicit MX" with
  preference 0 when it has address records (RFC 5321 §5.1); otherwise there is no route,
  permanently (:class:`NoRoute` with ``permanent=True``).
- Each MX host's addresses are looked up, IPv4 then IPv6 (the resolver's ``a()`` order).
  Hosts without addresses are skipped. When *no* host has an address the failure is
  temporary: a domain that publishes MX records clearly means to receive mail, and a
  broken MX host name is far more often a DNS change in flight than a final verdict.
- DNS that cannot answer (:class:`DnsUnavailable`) is a temporary failure.

Every route carries a ``site``: the throttling key for the receiving operator. It is the
sorted set of the MX hosts' parent domains ("last two labels, three under a known
two-level public suffix", see :func:`site_of`), so every Google Workspace domain lands in
one bucket whatever its own name is. This is a deliberate simplification of the Public
Suffix List: a tiny built-in list of common two-level suffixes instead of the full list,
which is good enough for grouping MX hosts (operators run their MX under ordinary
registrable names) and needs no data file to keep up to date.

Caching: routes are cached per lower-cased domain for a fixed ``ttl`` (300 s by default),
failures for ``negative_ttl`` (60 s). A cache that honours the records' own TTLs would need
the :class:`~postroom.services.dns.Resolver` contract to return them; it does not today,
and a fixed short TTL is safe (DNS TTLs for MX are typically hours). Hosts of equal
preference are reshuffled on every :meth:`Router.route` call, cached or not, so the load
still spreads while the cache is warm.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from itertools import groupby

from postroom.services.dns import DnsUnavailable, Resolver

DEFAULT_TTL = 300.0
DEFAULT_NEGATIVE_TTL = 60.0
DEFAULT_MAX_ENTRIES = 10_000

# Second-level labels under which registrations happen one level deeper (example.co.uk).
# A tiny stand-in for the Public Suffix List; see the module docstring.
_TWO_LEVEL_SUFFIXES = frozenset(
    {
        "co.uk", "org.uk", "ac.uk", "gov.uk", "me.uk", "ltd.uk", "plc.uk",
        "com.au", "net.au", "org.au", "edu.au", "gov.au",
        "co.nz", "org.nz", "net.nz",
        "co.jp", "ne.jp", "or.jp", "ac.jp",
        "co.za", "org.za",
        "com.br", "net.br", "org.br",
        "co.in", "net.in", "org.in",
        "com.cn", "net.cn", "org.cn",
        "com.mx", "com.tr", "com.sg", "com.hk", "com.tw", "co.kr", "co.il",
    }
)  # fmt: skip

# Parent domains one operator runs its MX under, folded into one name so all its
# customers share a throttling bucket (Google: aspmx.l.google.com, aspmx2.googlemail.com).
_SAME_OPERATOR = {"googlemail.com": "google.com"}


@dataclass(frozen=True)
class MxHost:
    """One mail exchanger: its name, MX preference and addresses (IPv4 first, then IPv6)."""

    name: str
    preference: int
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """Where mail for ``domain`` goes: ``hosts`` in the order to try them.

    ``implicit`` is true when the domain has no MX and its own addresses are used (and
    for address literals). ``site`` is the throttling key shared by every domain one
    operator hosts.
    """

    domain: str
    hosts: tuple[MxHost, ...]
    site: str
    implicit: bool


class NullMx(Exception):
    """The domain publishes a null MX (RFC 7505): it accepts no mail. Permanent."""

    def __init__(self, domain: str) -> None:
        super().__init__(f"{domain}: domain accepts no mail (null MX, RFC 7505)")
        self.domain = domain


class NoRoute(Exception):
    """No host to deliver to; ``permanent`` says whether trying later can help."""

    def __init__(self, domain: str, reason: str, *, permanent: bool) -> None:
        super().__init__(f"{domain}: {reason}")
        self.domain = domain
        self.reason = reason
        self.permanent = permanent


RouteError = NullMx | NoRoute


@dataclass(frozen=True)
class _Entry:
    expires: float
    route: Route | None = None
    error: RouteError | None = None


class Router:
    """Finds the :class:`Route` for a recipient domain, with a small TTL cache.

    ``clock`` returns monotonic seconds (``time.monotonic`` by default); ``rng`` orders
    hosts of equal preference. ``port`` is the SMTP port every route is delivered to (25
    in production; tests point it at a loopback receiver).
    """

    def __init__(
        self,
        resolver: Resolver,
        *,
        port: int = 25,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        ttl: float = DEFAULT_TTL,
        negative_ttl: float = DEFAULT_NEGATIVE_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._resolver = resolver
        self._port = port
        self._clock = clock
        self._rng = rng if rng is not None else random.Random()
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._max_entries = max_entries
        self._cache: dict[str, _Entry] = {}

    @property
    def port(self) -> int:
        """The SMTP port to connect to on every routed address."""
        return self._port

    async def route(self, domain: str) -> Route:
        """The route for ``domain``; raises :class:`NullMx` or :class:`NoRoute`."""
        key = _normalise(domain)
        literal = _address_literal(key)
        if literal is not None:
            return literal
        entry = self._cached(key)
        if entry is None:
            entry = await self._resolve(key)
            self._store(key, entry)
        if entry.error is not None:
            raise _fresh(entry.error)
        assert entry.route is not None
        return replace(entry.route, hosts=_shuffled(entry.route.hosts, self._rng))

    def cached_hosts(self, domain: str) -> tuple[str, ...]:
        """The MX host names last resolved for ``domain`` (empty if none are cached)."""
        entry = self._cache.get(_normalise(domain))
        if entry is None or entry.route is None or entry.route.implicit:
            return ()
        return tuple(h.name for h in entry.route.hosts)

    def forget(self, domain: str) -> None:
        """Drop ``domain`` from the cache (e.g. after every host refused a connection)."""
        self._cache.pop(_normalise(domain), None)

    # --- cache ---------------------------------------------------------------------

    def _cached(self, key: str) -> _Entry | None:
        entry = self._cache.get(key)
        if entry is None or entry.expires <= self._clock():
            return None
        return entry

    def _store(self, key: str, entry: _Entry) -> None:
        if len(self._cache) >= self._max_entries:
            self._evict()
        self._cache.pop(key, None)  # re-insert so insertion order stays oldest-first
        self._cache[key] = entry

    def _evict(self) -> None:
        # Drop what has expired; if the cache is still full, drop the oldest entries.
        now = self._clock()
        for key in [k for k, e in self._cache.items() if e.expires <= now]:
            del self._cache[key]
        while len(self._cache) >= self._max_entries:
            del self._cache[next(iter(self._cache))]

    async def _resolve(self, domain: str) -> _Entry:
        now = self._clock()
        try:
            route = await _lookup(self._resolver, domain)
        except (NullMx, NoRoute) as error:
            # Temporary failures are cached too: a broken name server is not asked again
            # for every queued message to the domain within the next minute.
            return _Entry(expires=now + self._negative_ttl, error=error)
        return _Entry(expires=now + self._ttl, route=route)


# --- lookups -------------------------------------------------------------------------


async def _lookup(resolver: Resolver, domain: str) -> Route:
    """Resolve ``domain`` to a route with hosts sorted by preference (not yet shuffled)."""
    try:
        records = await resolver.mx(domain)
    except DnsUnavailable as exc:
        raise NoRoute(domain, f"MX lookup failed: {exc}", permanent=False) from exc
    except ValueError as exc:  # not a DNS name at all
        raise NoRoute(domain, f"invalid domain: {exc}", permanent=True) from exc
    if not records:
        return await _implicit_route(resolver, domain)
    exchanges = [(pref, host) for pref, host in records if host != "."]
    if not exchanges:
        raise NullMx(domain)
    hosts = await _with_addresses(resolver, sorted(exchanges))
    if not hosts:
        reason = "no MX host has an address (" + ", ".join(h for _, h in exchanges) + ")"
        raise NoRoute(domain, reason, permanent=False)
    return Route(domain=domain, hosts=hosts, site=site_of(h.name for h in hosts), implicit=False)


async def _implicit_route(resolver: Resolver, domain: str) -> Route:
    # RFC 5321 §5.1: no MX means the domain itself is the mail host, preference 0.
    try:
        addresses = await resolver.a(domain)
    except DnsUnavailable as exc:
        raise NoRoute(domain, f"address lookup failed: {exc}", permanent=False) from exc
    if not addresses:
        raise NoRoute(domain, "no MX and no address records", permanent=True)
    host = MxHost(name=domain, preference=0, addresses=_unique(addresses))
    return Route(domain=domain, hosts=(host,), site=site_of([domain]), implicit=True)


async def _with_addresses(
    resolver: Resolver, exchanges: Sequence[tuple[int, str]]
) -> tuple[MxHost, ...]:
    """The exchanges that have addresses, in the given order; looked up concurrently."""
    found = await asyncio.gather(*(_addresses(resolver, host) for _, host in exchanges))
    return tuple(
        MxHost(name=host, preference=pref, addresses=addresses)
        for (pref, host), addresses in zip(exchanges, found, strict=True)
        if addresses
    )


async def _addresses(resolver: Resolver, host: str) -> tuple[str, ...]:
    # One unresolvable MX host must not sink the others: it is skipped like a host with
    # no address, and only "no host at all" fails the route (temporarily).
    try:
        return _unique(await resolver.a(host))
    except (DnsUnavailable, ValueError):
        return ()


# --- helpers -------------------------------------------------------------------------


def site_of(hosts: Iterable[str]) -> str:
    """The throttling key for a set of MX host names: their sorted parent domains.

    ``aspmx.l.google.com`` and ``alt1.aspmx.l.google.com`` → ``google.com``;
    ``mx1.example.co.uk`` → ``example.co.uk``. Several operators join with ``","``.
    """
    return ",".join(sorted({_parent(host) for host in hosts}))


def _parent(host: str) -> str:
    labels = host.rstrip(".").lower().split(".")
    keep = 3 if ".".join(labels[-2:]) in _TWO_LEVEL_SUFFIXES else 2
    parent = ".".join(labels[-keep:])
    return _SAME_OPERATOR.get(parent, parent)


def _shuffled(hosts: tuple[MxHost, ...], rng: random.Random) -> tuple[MxHost, ...]:
    """Hosts in preference order, each run of equal preference in a random order."""
    ordered: list[MxHost] = []
    for _, group in groupby(hosts, key=lambda host: host.preference):
        same = list(group)
        rng.shuffle(same)
        ordered.extend(same)
    return tuple(ordered)


def _normalise(domain: str) -> str:
    return domain.strip().rstrip(".").lower()


def _address_literal(domain: str) -> Route | None:
    """A route for ``[192.0.2.1]`` / ``[IPv6:2001:db8::1]`` (RFC 5321 §4.1.3), else None."""
    if not domain.startswith("["):
        return None
    text = domain.removeprefix("[").removesuffix("]")
    is_v6 = text.startswith("ipv6:")
    try:
        address = ipaddress.ip_address(text.removeprefix("ipv6:"))
    except ValueError:
        address = None
    if not domain.endswith("]") or address is None or (address.version == 6) != is_v6:
        raise NoRoute(domain, "invalid address literal", permanent=True)
    host = MxHost(name=str(address), preference=0, addresses=(str(address),))
    return Route(domain=domain, hosts=(host,), site=str(address), implicit=True)


def _unique(addresses: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(addresses))


def _fresh(error: RouteError) -> RouteError:
    # A cached failure is raised as a new exception, so tracebacks of earlier raises
    # do not pile up on one shared object.
    if isinstance(error, NullMx):
        return NullMx(error.domain)
    return NoRoute(error.domain, error.reason, permanent=error.permanent)
