"""MX routing (RFC 5321 §5.1, RFC 7505) on a StaticResolver: order, fallbacks, cache, sites."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence

import pytest

from postroom.mta.routing import MxHost, NoRoute, NullMx, Route, Router, site_of
from postroom.services.dns import DnsUnavailable, StaticResolver

Records = Mapping[str, Mapping[str, Sequence[str]]]


class FakeClock:
    """Monotonic seconds that move only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingResolver(StaticResolver):
    """A StaticResolver that counts MX lookups, to see the cache work."""

    def __init__(self, records: Records | None = None, *, unavailable: Sequence[str] = ()) -> None:
        super().__init__(records, unavailable=unavailable)
        self.mx_lookups = 0

    async def mx(self, name: str) -> list[tuple[int, str]]:
        self.mx_lookups += 1
        return await super().mx(name)


def route(router: Router, domain: str) -> Route:
    return asyncio.run(router.route(domain))


def names(r: Route) -> list[str]:
    return [host.name for host in r.hosts]


EXAMPLE: Records = {
    "example.com": {"MX": ["20 backup.example.net", "10 mx1.example.com", "10 mx2.example.com"]},
    "mx1.example.com": {"A": ["192.0.2.1"], "AAAA": ["2001:db8::1"]},
    "mx2.example.com": {"A": ["192.0.2.2"]},
    "backup.example.net": {"AAAA": ["2001:db8::99"]},
}


# --- ordering -------------------------------------------------------------------------


def test_hosts_come_in_preference_order_with_addresses_ipv4_first() -> None:
    r = route(Router(StaticResolver(EXAMPLE), rng=random.Random(1)), "example.com")

    assert r.domain == "example.com" and r.implicit is False
    assert [host.preference for host in r.hosts] == [10, 10, 20]
    assert r.hosts[-1] == MxHost("backup.example.net", 20, ("2001:db8::99",))
    mx1 = next(host for host in r.hosts if host.name == "mx1.example.com")
    assert mx1.addresses == ("192.0.2.1", "2001:db8::1")


def test_equal_preferences_are_shuffled_deterministically_by_the_rng() -> None:
    records: Records = {
        "example.com": {
            "MX": [f"10 mx{i}.example.com" for i in range(6)] + ["5 first.example.com"]
        },
        **{f"mx{i}.example.com": {"A": [f"192.0.2.{i}"]} for i in range(6)},
        "first.example.com": {"A": ["192.0.2.100"]},
    }
    orders = {
        tuple(names(route(Router(StaticResolver(records), rng=random.Random(seed)), "example.com")))
        for seed in range(20)
    }
    # The same seed gives the same order; different seeds spread the load.
    again = route(Router(StaticResolver(records), rng=random.Random(3)), "example.com")
    assert names(again) == names(
        route(Router(StaticResolver(records), rng=random.Random(3)), "example.com")
    )
    assert len(orders) > 1
    for order in orders:
        assert order[0] == "first.example.com"
        assert sorted(order[1:]) == [f"mx{i}.example.com" for i in range(6)]


def test_the_cached_route_is_reshuffled_on_every_call() -> None:
    records: Records = {
        "example.com": {"MX": [f"10 mx{i}.example.com" for i in range(6)]},
        **{f"mx{i}.example.com": {"A": [f"192.0.2.{i}"]} for i in range(6)},
    }
    resolver = CountingResolver(records)
    router = Router(resolver, rng=random.Random(7))
    orders = {tuple(names(route(router, "example.com"))) for _ in range(10)}
    assert resolver.mx_lookups == 1
    assert len(orders) > 1


# --- fallbacks and failures ----------------------------------------------------------


def test_no_mx_means_the_domain_itself_is_the_implicit_mx() -> None:
    resolver = StaticResolver({"example.org": {"A": ["198.51.100.7"], "AAAA": ["2001:db8::7"]}})
    r = route(Router(resolver), "Example.ORG.")

    assert r == Route(
        domain="example.org",
        hosts=(MxHost("example.org", 0, ("198.51.100.7", "2001:db8::7")),),
        site="example.org",
        implicit=True,
    )


def test_a_null_mx_refuses_mail_permanently() -> None:
    resolver = StaticResolver({"nomail.example": {"MX": ["0 ."], "A": ["192.0.2.9"]}})
    with pytest.raises(NullMx) as caught:
        route(Router(resolver), "nomail.example")
    assert caught.value.domain == "nomail.example"


def test_a_null_mx_beside_real_hosts_is_ignored() -> None:
    resolver = StaticResolver(
        {
            "odd.example": {"MX": ["0 .", "10 mx.odd.example"]},
            "mx.odd.example": {"A": ["192.0.2.3"]},
        }
    )
    assert names(route(Router(resolver), "odd.example")) == ["mx.odd.example"]


def test_no_mx_and_no_address_is_permanent() -> None:
    resolver = StaticResolver({"example.com": {"TXT": ["v=spf1 -all"]}})
    for domain in ("example.com", "does-not-exist.example"):
        with pytest.raises(NoRoute) as caught:
            route(Router(resolver), domain)
        assert caught.value.permanent is True


def test_dns_unavailable_is_temporary() -> None:
    resolver = StaticResolver({}, unavailable=["flaky.example"])
    with pytest.raises(NoRoute) as caught:
        route(Router(resolver), "flaky.example")
    assert caught.value.permanent is False


def test_implicit_mx_lookup_unavailable_is_temporary() -> None:
    class AddressesDown(StaticResolver):
        async def a(self, name: str) -> list[str]:
            raise DnsUnavailable("down")

    with pytest.raises(NoRoute) as caught:
        route(Router(AddressesDown({})), "example.com")
    assert caught.value.permanent is False


def test_hosts_without_addresses_are_skipped() -> None:
    records: Records = {
        "example.com": {
            "MX": ["10 dead.example.com", "20 gone.example.com", "30 live.example.com"]
        },
        "dead.example.com": {"TXT": ["no address here"]},
        "live.example.com": {"A": ["192.0.2.30"]},
    }
    resolver = StaticResolver(records, unavailable=["gone.example.com"])
    r = route(Router(resolver), "example.com")
    assert r.hosts == (MxHost("live.example.com", 30, ("192.0.2.30",)),)
    assert r.site == "example.com"


def test_every_mx_host_without_an_address_is_temporary() -> None:
    resolver = StaticResolver({"example.com": {"MX": ["10 dead.example.com"]}})
    with pytest.raises(NoRoute) as caught:
        route(Router(resolver), "example.com")
    assert caught.value.permanent is False
    assert "dead.example.com" in str(caught.value)


def test_an_address_literal_routes_directly_without_dns() -> None:
    router = Router(StaticResolver({}, unavailable=["[192.0.2.1]"]), port=2525)
    assert router.port == 2525
    r = route(router, "[192.0.2.1]")
    assert r.hosts == (MxHost("192.0.2.1", 0, ("192.0.2.1",)),) and r.implicit is True
    v6 = route(router, "[IPv6:2001:DB8::1]")
    assert v6.hosts[0].addresses == ("2001:db8::1",)
    for bad in ("[999.1.1.1]", "[2001:db8::1]", "[IPv6:192.0.2.1]", "[192.0.2.1"):
        with pytest.raises(NoRoute) as caught:
            route(router, bad)
        assert caught.value.permanent is True


# --- the cache -----------------------------------------------------------------------


def test_routes_are_cached_by_lowercased_domain_until_the_ttl_expires() -> None:
    clock = FakeClock()
    resolver = CountingResolver(EXAMPLE)
    router = Router(resolver, clock=clock, ttl=300)

    first = route(router, "example.com")
    route(router, "EXAMPLE.com.")
    clock.now += 299
    route(router, "example.com")
    assert resolver.mx_lookups == 1

    resolver.records["example.com"]["MX"] = ["10 mx2.example.com"]
    clock.now += 1
    changed = route(router, "example.com")
    assert resolver.mx_lookups == 2
    assert names(changed) == ["mx2.example.com"] and names(first) != names(changed)


def test_failures_are_cached_for_the_negative_ttl() -> None:
    clock = FakeClock()
    resolver = CountingResolver({}, unavailable=["example.com"])
    router = Router(resolver, clock=clock, negative_ttl=60)

    for _ in range(3):
        with pytest.raises(NoRoute):
            route(router, "example.com")
    assert resolver.mx_lookups == 1

    resolver.unavailable.clear()
    resolver.records["example.com"] = {"A": ["192.0.2.5"]}
    clock.now += 59
    with pytest.raises(NoRoute):
        route(router, "example.com")
    clock.now += 1
    assert route(router, "example.com").implicit is True
    assert resolver.mx_lookups == 2


def test_a_cached_null_mx_is_raised_again_as_null_mx() -> None:
    resolver = CountingResolver({"nomail.example": {"MX": ["0 ."]}})
    router = Router(resolver, clock=FakeClock())
    for _ in range(2):
        with pytest.raises(NullMx):
            route(router, "nomail.example")
    assert resolver.mx_lookups == 1


def test_forget_and_a_full_cache_drop_entries() -> None:
    resolver = CountingResolver({**EXAMPLE, "example.org": {"A": ["192.0.2.8"]}})
    router = Router(resolver, clock=FakeClock(), max_entries=1)
    route(router, "example.com")
    route(router, "example.org")  # evicts example.com
    route(router, "example.com")
    assert resolver.mx_lookups == 3
    router.forget("EXAMPLE.COM")
    route(router, "example.com")
    assert resolver.mx_lookups == 4


# --- sites ---------------------------------------------------------------------------

GOOGLE_MX = [
    "1 aspmx.l.google.com",
    "5 alt1.aspmx.l.google.com",
    "5 alt2.aspmx.l.google.com",
    "10 aspmx2.googlemail.com",
]
GOOGLE_HOSTS: Records = {
    host.split()[1]: {"A": ["192.0.2.50"]} for host in GOOGLE_MX + ["1 smtp.google.com"]
}


def test_two_google_hosted_domains_share_a_site() -> None:
    records: Records = {
        "acme.example": {"MX": GOOGLE_MX},
        "widgets.example.co.uk": {"MX": ["1 smtp.google.com"]},
        **GOOGLE_HOSTS,
    }
    router = Router(StaticResolver(records))
    acme, widgets = route(router, "acme.example"), route(router, "widgets.example.co.uk")
    assert acme.site == widgets.site == "google.com"


def test_different_providers_do_not_share_a_site() -> None:
    records: Records = {
        "acme.example": {"MX": GOOGLE_MX},
        "contoso.example": {"MX": ["0 contoso-example.mail.protection.outlook.com"]},
        "contoso-example.mail.protection.outlook.com": {"A": ["192.0.2.60"]},
        "shop.example": {"MX": ["10 mx1.hosting.example.co.uk", "20 mx.other.example"]},
        "mx1.hosting.example.co.uk": {"A": ["192.0.2.61"]},
        "mx.other.example": {"A": ["192.0.2.62"]},
        **GOOGLE_HOSTS,
    }
    router = Router(StaticResolver(records))
    sites = {d: route(router, d).site for d in ("acme.example", "contoso.example", "shop.example")}
    assert sites == {
        "acme.example": "google.com",
        "contoso.example": "outlook.com",
        "shop.example": "example.co.uk,other.example",
    }


@pytest.mark.parametrize(
    ("hosts", "site"),
    [
        (["mx.example.com"], "example.com"),
        (["a.mx.example.com.au", "b.mx.example.com.au"], "example.com.au"),
        (["MX1.Example.COM.", "mx2.example.com"], "example.com"),
        (["localhost"], "localhost"),
        (["co.uk"], "co.uk"),
    ],
)
def test_site_of_reduces_hosts_to_their_parent_domain(hosts: list[str], site: str) -> None:
    assert site_of(hosts) == site
