"""Asking DNS: the :class:`Resolver` contract, its dnspython and in-memory implementations,
and :func:`check_records`, which judges a sending domain's published records.

The contract, for every lookup:

- A name that does not exist (NXDOMAIN) or has no record of the type (NODATA) answers
  empty: ``[]``, or ``None`` for :meth:`Resolver.cname`. Callers never need to tell the
  two apart: for the records in :mod:`postroom.domain.dnsrecords` both mean "missing",
  and for MX routing both mean "no MX here, try the address records" (RFC 5321 §5.1;
  a nonexistent domain then has no addresses either).
- :class:`DnsUnavailable` means DNS could not say: timeout, SERVFAIL, REFUSED, an
  unreachable server. That is a transient state (defer mail, report ``network_error``),
  never a verdict.

Names are absolute (no search domains) and answers are never cached here, so a domain
owner who just published a record sees it on the next check. TXT answers join the
character-strings of each record (RFC 7208 §3.3, RFC 6376 §3.6.2.2 both require it),
so a 2048-bit DKIM key split across 255-byte strings comes back as one string.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import dns.asyncresolver
import dns.exception
import dns.name
import dns.nameserver
import dns.rdata
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.CNAME import CNAME
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.txtbase import TXTBase

from postroom.domain.dnsrecords import ExpectedRecord, RecordType, Status


class DnsUnavailable(Exception):
    """DNS could not answer (timeout, SERVFAIL, REFUSED, network error): try again later."""


class Resolver(Protocol):
    """The lookups Postroom needs; missing names answer empty, failures raise DnsUnavailable."""

    async def txt(self, name: str) -> list[str]:
        """TXT records at ``name``, each record's character-strings concatenated."""
        ...

    async def cname(self, name: str) -> str | None:
        """The CNAME target at ``name`` (lowercase, no trailing dot), or None."""
        ...

    async def mx(self, name: str) -> list[tuple[int, str]]:
        """``(preference, host)`` at ``name``, most preferred first; a null MX is ``(0, ".")``."""
        ...

    async def a(self, name: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``name`` (A and AAAA)."""
        ...


CheckResult = tuple[ExpectedRecord, Status, list[str]]


async def check_records(resolver: Resolver, records: Sequence[ExpectedRecord]) -> list[CheckResult]:
    """Look every record up concurrently and judge it: ``(record, status, answers)`` in order.

    A lookup DNS could not answer is ``network_error`` with no answers, not ``missing``:
    a flaky resolver must not make a verified domain look unpublished.
    """
    return list(await asyncio.gather(*(_check_one(resolver, record) for record in records)))


async def _check_one(resolver: Resolver, record: ExpectedRecord) -> CheckResult:
    try:
        answers = await _lookup(resolver, record)
    except DnsUnavailable:
        return record, Status.NETWORK_ERROR, []
    return record, record.check(answers), answers


async def _lookup(resolver: Resolver, record: ExpectedRecord) -> list[str]:
    if record.type is RecordType.CNAME:
        target = await resolver.cname(record.name)
        return [] if target is None else [target]
    return await resolver.txt(record.name)


def parse_server(server: str) -> tuple[str, int]:
    """``"HOST:PORT"``, ``"HOST"`` (port 53) or ``"[IPV6]:PORT"`` → ``(ip, port)``.

    HOST must be an IP address: the resolver needs one to reach, and resolving the
    name of the name server would need another name server.
    """
    host, port = server, "53"
    if server.startswith("["):
        host, _, rest = server[1:].partition("]")
        port = rest.removeprefix(":") or port
    elif server.count(":") == 1:
        host, _, port = server.partition(":")
    try:
        return str(ipaddress.ip_address(host)), int(port)
    except ValueError as exc:
        raise ValueError(f"DNS server must be IP[:PORT], got {server!r}") from exc


class DnsPythonResolver:
    """A :class:`Resolver` on dnspython's asyncio stub resolver.

    ``server`` (``"HOST:PORT"``) replaces the system's name servers (``/etc/resolv.conf``)
    with one; ``timeout`` bounds each lookup as a whole, retries included. Without
    ``server``, construction raises dnspython's ``NoResolverConfiguration`` when the
    system has no name server configured.
    """

    def __init__(self, server: str | None = None, timeout: float = 3.0) -> None:
        resolver = dns.asyncresolver.Resolver(configure=server is None)
        if server is not None:
            host, port = parse_server(server)
            resolver.nameservers = [dns.nameserver.Do53Nameserver(host, port)]
        # Absolute names only: a search domain would turn a missing record into a lookup
        # of "<name>.<search domain>", which may exist.
        resolver.search = []
        resolver.use_search_by_default = False
        resolver.timeout = timeout
        resolver.lifetime = timeout
        self._resolver = resolver

    async def txt(self, name: str) -> list[str]:
        answer = await self._query(name, dns.rdatatype.TXT)
        return [_txt_text(rdata) for rdata in answer if isinstance(rdata, TXTBase)]

    async def cname(self, name: str) -> str | None:
        answer = await self._query(name, dns.rdatatype.CNAME)
        targets = [_host(rdata.target) for rdata in answer if isinstance(rdata, CNAME)]
        return targets[0] if targets else None

    async def mx(self, name: str) -> list[tuple[int, str]]:
        answer = await self._query(name, dns.rdatatype.MX)
        hosts = [
            (rdata.preference, _host(rdata.exchange)) for rdata in answer if isinstance(rdata, MX)
        ]
        return sorted(hosts)

    async def a(self, name: str) -> list[str]:
        # Ask both families at once. One family failing is fine when the other answers
        # (some servers SERVFAIL on AAAA); with no address at all, the failure wins.
        queries = (self._query(name, rdtype) for rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA))
        addresses: list[str] = []
        failure: DnsUnavailable | None = None
        for result in await asyncio.gather(*queries, return_exceptions=True):
            if isinstance(result, DnsUnavailable):
                failure = result
            elif isinstance(result, BaseException):
                raise result
            else:
                addresses.extend(rdata.to_text() for rdata in result)
        if failure is not None and not addresses:
            raise failure
        return addresses

    async def _query(self, name: str, rdtype: dns.rdatatype.RdataType) -> list[dns.rdata.Rdata]:
        qname = _absolute(name)
        try:
            answer = await self._resolver.resolve(qname, rdtype, search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as exc:
            # NoNameservers (SERVFAIL/REFUSED from every server), LifetimeTimeout, and the rest.
            raise DnsUnavailable(f"{dns.rdatatype.to_text(rdtype)} {name}: {exc}") from exc
        return list(answer)


def _absolute(name: str) -> dns.name.Name:
    try:
        return dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise ValueError(f"not a DNS name: {name!r}") from exc


def _txt_text(rdata: TXTBase) -> str:
    # A TXT record is a list of <=255-byte strings; SPF and DKIM read them joined, with no
    # separator. Bytes that are not UTF-8 cannot match anything we publish anyway.
    return b"".join(rdata.strings).decode("utf-8", errors="replace")


def _host(name: dns.name.Name) -> str:
    # The root name stays "." so a null MX (RFC 7505) is recognisable.
    if name == dns.name.root:
        return "."
    return name.to_text(omit_final_dot=True).lower()


def _key(name: str) -> str:
    return name.rstrip(".").lower()


class StaticResolver:
    """An in-memory :class:`Resolver` for unit tests.

    ``records`` maps a name to ``{type: [values]}`` with values as the lookups return them:
    TXT strings, a CNAME target, ``"10 mx.example.com"`` for MX, addresses for A and AAAA.
    Names in ``unavailable`` raise :class:`DnsUnavailable`. Both attributes may be changed
    between lookups. CNAMEs are not followed.
    """

    def __init__(
        self,
        records: Mapping[str, Mapping[str, Sequence[str]]] | None = None,
        *,
        unavailable: Iterable[str] = (),
    ) -> None:
        self.records: dict[str, dict[str, list[str]]] = {
            _key(name): {rtype.upper(): list(values) for rtype, values in by_type.items()}
            for name, by_type in (records or {}).items()
        }
        self.unavailable: set[str] = {_key(name) for name in unavailable}

    async def txt(self, name: str) -> list[str]:
        return self._values(name, "TXT")

    async def cname(self, name: str) -> str | None:
        targets = self._values(name, "CNAME")
        return _key(targets[0]) if targets else None

    async def mx(self, name: str) -> list[tuple[int, str]]:
        hosts = (value.split(maxsplit=1) for value in self._values(name, "MX"))
        return sorted((int(preference), _key(host) or ".") for preference, host in hosts)

    async def a(self, name: str) -> list[str]:
        return self._values(name, "A") + self._values(name, "AAAA")

    def _values(self, name: str, rtype: str) -> list[str]:
        if _key(name) in self.unavailable:
            raise DnsUnavailable(f"{rtype} {name}: unavailable (static)")
        return list(self.records.get(_key(name), {}).get(rtype, []))
