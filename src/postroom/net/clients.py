"""Which connections count as one client, for per-client limits and throttles.

An IPv4 client is its address. An IPv6 client is its /64: one end site usually gets a
whole /64 (RFC 6177), so counting single IPv6 addresses would let one host rotate through
2^64 of them. An IPv4-mapped IPv6 address (a dual-stack listener) is the IPv4 client it
maps. Postfix's anvil does the same with ``smtpd_client_ipv6_prefix_length``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

IPV6_PREFIX = 64


def client_key(address: str) -> str:
    """The key that every connection, login and request of one client shares."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address  # not an IP (a Unix socket, a test transport): itself
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def peer_address(peer: Any) -> str:
    """The address part of a transport's ``peername`` ('' when there is none)."""
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "")
