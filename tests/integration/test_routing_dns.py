"""MX routing against a real authoritative name server on loopback (tests/dnsserver.py)."""

from __future__ import annotations

import asyncio
import random

import pytest

from dnsserver import LocalDnsServer
from postroom.mta.routing import MxHost, NoRoute, NullMx, Route, Router
from postroom.services.dns import DnsPythonResolver


@pytest.fixture
def router(dns_server: LocalDnsServer) -> Router:
    return Router(DnsPythonResolver(dns_server.address, timeout=1.0), rng=random.Random(0))


def route(router: Router, domain: str) -> Route:
    return asyncio.run(router.route(domain))


def test_mx_hosts_by_preference_with_a_and_aaaa(dns_server: LocalDnsServer, router: Router) -> None:
    dns_server.add_mx("example.com", 20, "backup.example.net")
    dns_server.add_mx("example.com", 10, "mx1.example.com")
    dns_server.add_mx("example.com", 10, "mx2.example.com")
    dns_server.add_a("mx1.example.com", "192.0.2.1")
    dns_server.add_aaaa("mx1.example.com", "2001:db8::1")
    dns_server.add_a("mx2.example.com", "192.0.2.2")
    dns_server.add_aaaa("backup.example.net", "2001:db8::99")
    dns_server.add_mx("orphan.example.com", 5, "nowhere.example.com")

    r = route(router, "Example.com")

    assert r.domain == "example.com" and r.implicit is False
    assert sorted(r.hosts[:2], key=lambda host: host.name) == [
        MxHost("mx1.example.com", 10, ("192.0.2.1", "2001:db8::1")),
        MxHost("mx2.example.com", 10, ("192.0.2.2",)),
    ]
    assert r.hosts[2] == MxHost("backup.example.net", 20, ("2001:db8::99",))
    assert r.site == "example.com,example.net"


def test_no_mx_falls_back_to_the_domain_addresses(
    dns_server: LocalDnsServer, router: Router
) -> None:
    dns_server.add_a("example.org", "198.51.100.7")
    dns_server.add_aaaa("example.org", "2001:db8::7")
    r = route(router, "example.org")
    assert r.implicit is True
    assert r.hosts == (MxHost("example.org", 0, ("198.51.100.7", "2001:db8::7")),)


def test_null_mx(dns_server: LocalDnsServer, router: Router) -> None:
    dns_server.add_mx("nomail.example", 0, ".")
    dns_server.add_a("nomail.example", "192.0.2.9")
    with pytest.raises(NullMx):
        route(router, "nomail.example")


def test_nxdomain_is_a_permanent_no_route(dns_server: LocalDnsServer, router: Router) -> None:
    dns_server.add_a("example.com", "192.0.2.1")
    with pytest.raises(NoRoute) as caught:
        route(router, "does-not-exist.example.com")
    assert caught.value.permanent is True


def test_mx_hosts_without_addresses_are_temporary(
    dns_server: LocalDnsServer, router: Router
) -> None:
    dns_server.add_mx("example.com", 10, "nowhere.example.com")
    with pytest.raises(NoRoute) as caught:
        route(router, "example.com")
    assert caught.value.permanent is False


def test_servfail_is_a_temporary_no_route(dns_server: LocalDnsServer, router: Router) -> None:
    dns_server.add_mx("example.com", 10, "mx.example.com")
    dns_server.add_a("mx.example.com", "192.0.2.1")
    dns_server.fail_with = "SERVFAIL"
    with pytest.raises(NoRoute) as caught:
        route(router, "example.com")
    assert caught.value.permanent is False


def test_a_route_stays_cached_while_dns_changes(dns_server: LocalDnsServer) -> None:
    now = [0.0]
    router = Router(DnsPythonResolver(dns_server.address, timeout=1.0), clock=lambda: now[0])
    dns_server.add_mx("example.com", 10, "mx.example.com")
    dns_server.add_a("mx.example.com", "192.0.2.1")
    assert route(router, "example.com").hosts[0].addresses == ("192.0.2.1",)

    # The name server now fails, but the cached route keeps mail flowing until the TTL.
    dns_server.fail_with = "SERVFAIL"
    assert route(router, "example.com").hosts[0].addresses == ("192.0.2.1",)
    now[0] += 300
    with pytest.raises(NoRoute):
        route(router, "example.com")
