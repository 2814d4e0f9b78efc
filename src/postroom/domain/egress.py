"""Which IP addresses outbound HTTP may reach: the egress (anti-SSRF) policy.

Every HTTP request Postroom makes to a name someone else controls (MTA-STS policy hosts,
later customers' webhook URLs) is checked here, address by address, after DNS and before
the connection (reliability.md §3.5). An address is refused when it is not a public
unicast destination:

- anything :mod:`ipaddress` does not call global, plus what it does call global but is
  not: multicast, reserved, IPv6 site-local — its answers also change between Python
  versions, so the ranges below are listed explicitly and the result is the same on all;
- IPv4: ``0.0.0.0/8`` (this network), RFC 1918 private, ``100.64.0.0/10`` (CGNAT, also
  Alibaba's metadata ``100.100.100.200``), ``127.0.0.0/8``, ``169.254.0.0/16``
  (link-local and the cloud metadata address ``169.254.169.254``), ``192.0.0.0/24``
  (IETF assignments; Oracle's metadata ``192.0.0.192``), the TEST-NETs, ``192.88.99.0/24``
  (6to4 relays), ``198.18.0.0/15`` (benchmarking), multicast, ``240.0.0.0/4`` and the
  broadcast address;
- IPv6: ``::``, ``::1``, the deprecated IPv4-compatible ``::/96`` and SIIT
  ``::ffff:0:0:0/96`` forms, ``64:ff9b:1::/48`` (local NAT64), ``100::/64`` (discard),
  ``2001::/23`` (IETF, Teredo included), documentation ``2001:db8::/32`` and
  ``3fff::/20``, ``5f00::/16`` (SRv6), ``fc00::/7`` (ULA; AWS's ``fd00:ec2::254``),
  ``fe80::/10``, ``fec0::/10``, multicast.

IPv6 forms that *carry* an IPv4 address are judged by that address, because that is
where the packets end up: IPv4-mapped ``::ffff:a.b.c.d`` (the socket connects to the
IPv4 host itself), NAT64 ``64:ff9b::/96`` and 6to4 ``2002::/16``. So
``[::ffff:127.0.0.1]``, ``[64:ff9b::7f00:1]`` and ``[2002:7f00:1::]`` are all loopback
(the GitLab and Mailpit advisories in reliability.md §3.5/§3.13 missed these).

The allow-list (``EgressPolicy.allowed``) wins over every rule: an operator may permit a
private network (an internal webhook receiver), and tests permit ``127.0.0.0/8`` to
serve policies on loopback. It is matched against the address and against the IPv4
address an embedding form carries.

Pure: no DNS, no sockets. :mod:`postroom.services.egress` applies it to real requests.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# (network, why it is refused). Explicit, so the verdict does not depend on the Python
# version's idea of is_global (3.11 and 3.13 disagree on several of these).
_REFUSED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ipaddress.ip_network(net), reason)
    for net, reason in (
        ("0.0.0.0/8", "this-network"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared (CGNAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("::ffff:0:0:0/96", "IPv4-translated (SIIT)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/23", "IETF protocol assignments"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "SRv6 SIDs"),
        ("fc00::/7", "unique local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def parse_address(value: str | IPAddress) -> IPAddress:
    """An address object from text (``ValueError`` if it is not one; no zone ids)."""
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    if "%" in value:
        # A scoped address (fe80::1%eth0) names an interface; never a public destination.
        raise ValueError(f"scoped address not allowed: {value!r}")
    return ipaddress.ip_address(value)


def embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv4-mapped, NAT64 (well-known prefix) or 6to4 address carries."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def category(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast destination, or None when it is one.

    Ignores the allow-list and embedded IPv4 addresses; see :meth:`EgressPolicy.refusal`.
    """
    for network, reason in _REFUSED:
        if address.version == network.version and address in network:
            return reason
    if address.is_multicast:
        return "multicast"
    if address.is_reserved:
        return "reserved"
    if not address.is_global:
        return "not globally routable"
    return None


@dataclass(frozen=True)
class EgressPolicy:
    """The destinations outbound HTTP may reach: public unicast, plus ``allowed``."""

    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str | IPNetwork]) -> EgressPolicy:
        """A policy that also permits ``networks`` (``"127.0.0.0/8"``, ``"fd00::/8"``…)."""
        return cls(tuple(ipaddress.ip_network(net, strict=False) for net in networks))

    def refusal(self, address: str | IPAddress) -> str | None:
        """Why ``address`` may not be reached (e.g. ``"loopback"``), or None if it may.

        Text that is not an IP address raises ``ValueError``.
        """
        ip = parse_address(address)
        if self._allows(ip):
            return None
        if isinstance(ip, ipaddress.IPv6Address):
            inner = embedded_ipv4(ip)
            if inner is not None:
                reason = self.refusal(inner)
                return None if reason is None else f"{reason} (embedded {inner})"
        return category(ip)

    def permits(self, address: str | IPAddress) -> bool:
        """True when outbound HTTP may connect to ``address``."""
        return self.refusal(address) is None

    def _allows(self, ip: IPAddress) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allowed)
