"""MTA-STS discovery end to end: the real name server publishes ``_mta-sts`` TXT and the
policy host's address, a trustme-certified HTTPS server on loopback serves the policy.

Time is a fake monotonic clock; everything else is real (dnspython over UDP, httpx
over TLS). Loopback is reachable only because the tests allow 127.0.0.0/8.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from dnsserver import LocalDnsServer
from httpsserver import LocalHttpsServer
from postroom.config import Settings
from postroom.domain.egress import EgressPolicy
from postroom.domain.mtasts import Mode, Policy
from postroom.mta.mtasts import MtaStsResolver, MxPlan, plan_mx
from postroom.services.dns import DnsPythonResolver
from postroom.services.egress import EgressClient

DOMAIN = "example.com"
HOST = f"mta-sts.{DOMAIN}"
PATH = "/.well-known/mta-sts.txt"
ENFORCE = (
    b"version: STSv1\nmode: enforce\nmx: mx1.example.com\nmx: *.mx.example.net\nmax_age: 86400\n"
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class CountingResolver(DnsPythonResolver):
    def __init__(self, server: str) -> None:
        super().__init__(server, timeout=1.0)
        self.txt_lookups = 0

    async def txt(self, name: str) -> list[str]:
        self.txt_lookups += 1
        return await super().txt(name)


@pytest.fixture
def https(tmp_path: Path) -> Iterator[LocalHttpsServer]:
    with LocalHttpsServer(tmp_path, [HOST]) as server:
        server.reply(PATH, body=ENFORCE)
        yield server


@pytest.fixture
def dns(dns_server: LocalDnsServer) -> LocalDnsServer:
    dns_server.add_txt(f"_mta-sts.{DOMAIN}", "v=STSv1; id=20260101")
    dns_server.add_a(HOST, "127.0.0.1")
    return dns_server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def resolver(dns: LocalDnsServer) -> CountingResolver:
    return CountingResolver(dns.address)


def make(
    resolver: CountingResolver,
    https: LocalHttpsServer,
    clock: FakeClock,
    policy: EgressPolicy | None = None,
) -> MtaStsResolver:
    egress = EgressClient(
        resolver,
        policy if policy is not None else EgressPolicy.allowing(["127.0.0.0/8"]),
        ca_bundle=https.ca_path,
        connect_timeout=2.0,
    )
    return MtaStsResolver(
        resolver, egress, clock=clock, timeout=5.0, recheck=300.0, port=https.port
    )


def lookup(sts: MtaStsResolver, domain: str = DOMAIN) -> Policy | None:
    return asyncio.run(sts.policy(domain))


def set_id(dns: LocalDnsServer, policy_id: str) -> None:
    dns.remove(f"_mta-sts.{DOMAIN}", "TXT")
    dns.add_txt(f"_mta-sts.{DOMAIN}", f"v=STSv1; id={policy_id}")


# --- discovery and parsing --------------------------------------------------------------


def test_an_enforce_policy_is_discovered_and_fetched(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    policy = lookup(make(resolver, https, clock))
    assert policy == Policy(
        "20260101", Mode.ENFORCE, ("mx1.example.com", "*.mx.example.net"), 86400
    )
    assert https.requests == [(PATH, f"{HOST}:{https.port}")]
    assert https.sni == [HOST]
    assert policy.allows_mx("mx1.example.com") and policy.allows_mx("a.mx.example.net")
    assert not policy.allows_mx("mx.example.net") and not policy.allows_mx("a.b.mx.example.net")


@pytest.mark.parametrize("mode", ["testing", "none"])
def test_testing_and_none_policies(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock, mode: str
) -> None:
    https.reply(
        PATH,
        body=f"version: STSv1\r\nmode: {mode}\r\nmx: mx1.example.com\r\nmax_age: 600\r\n".encode(),
    )
    policy = lookup(make(resolver, https, clock))
    assert policy is not None and policy.mode == Mode(mode)


def test_plans_per_mx_host(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    policy = lookup(make(resolver, https, clock))
    assert plan_mx(policy, "mx1.example.com") == MxPlan(use=True, tls="required")
    assert plan_mx(policy, "rogue.example.org").use is False
    assert plan_mx(None, "rogue.example.org") == MxPlan(use=True, tls="opportunistic")
    testing = Policy("x", Mode.TESTING, ("mx1.example.com",), 60)
    assert plan_mx(testing, "rogue.example.org").use is True
    assert plan_mx(testing, "rogue.example.org").report is not None
    assert plan_mx(Policy("x", Mode.NONE, (), 60), "rogue.example.org").tls == "opportunistic"


def test_a_domain_without_a_record_has_no_policy_and_is_not_fetched(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    assert lookup(make(resolver, https, clock), "other.example") is None
    assert https.connections == 0


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        (200, {"Content-Type": "text/plain"}, b"version: STSv1\nmode: enforce\nmax_age: 5\n"),
        (200, {"Content-Type": "text/html"}, ENFORCE),
        (200, {"Content-Type": "text/plain"}, b"\xff\xfe" + ENFORCE),
        (404, {"Content-Type": "text/plain"}, ENFORCE),
        (500, {"Content-Type": "text/plain"}, ENFORCE),
    ],
)
def test_malformed_or_unusable_answers_give_no_policy(
    https: LocalHttpsServer,
    resolver: CountingResolver,
    clock: FakeClock,
    status: int,
    headers: dict[str, str],
    body: bytes,
) -> None:
    https.reply(PATH, status=status, headers=headers, body=body)
    assert lookup(make(resolver, https, clock)) is None
    assert len(https.requests) == 1


def test_redirects_are_not_followed(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    https.reply(PATH, status=301, headers={"Location": f"https://{HOST}:{https.port}/moved"})
    https.reply("/moved", body=ENFORCE)
    assert lookup(make(resolver, https, clock)) is None
    assert [path for path, _ in https.requests] == [PATH]


def test_an_oversized_policy_is_refused(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    https.reply(PATH, body=ENFORCE + b"x-pad: " + b"p" * 70_000 + b"\n", length=False)
    assert lookup(make(resolver, https, clock)) is None


# --- SSRF -------------------------------------------------------------------------------


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.7", "169.254.169.254"])
def test_a_policy_host_on_an_internal_address_is_refused_unless_allowed(
    https: LocalHttpsServer, dns: LocalDnsServer, clock: FakeClock, address: str
) -> None:
    dns.remove(HOST, "A")
    dns.add_a(HOST, address)
    resolver = CountingResolver(dns.address)
    assert lookup(make(resolver, https, clock, EgressPolicy())) is None
    assert https.connections == 0


def test_the_allow_list_admits_loopback(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    assert lookup(make(resolver, https, clock, EgressPolicy())) is None
    assert lookup(make(resolver, https, clock, EgressPolicy.allowing(["127.0.0.1/32"]))) is not None


def test_settings_build_a_working_resolver(
    https: LocalHttpsServer, resolver: CountingResolver
) -> None:
    settings = Settings(
        egress={"allowed_networks": ["127.0.0.0/8"], "ca_bundle": https.ca_path},
        mta_sts={"port": https.port, "timeout": 5.0},
    )
    policy = lookup(MtaStsResolver.from_settings(settings, resolver))
    assert policy is not None and policy.mode is Mode.ENFORCE


# --- caching ----------------------------------------------------------------------------


def test_within_recheck_nothing_is_asked_again(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    sts = make(resolver, https, clock)
    first = lookup(sts)
    clock.now += 299
    assert lookup(sts, "EXAMPLE.com.") is first
    assert (resolver.txt_lookups, len(https.requests)) == (1, 1)


def test_the_same_id_keeps_the_policy_without_refetching(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    sts = make(resolver, https, clock)
    first = lookup(sts)
    clock.now += 3600
    assert lookup(sts) is first
    assert (resolver.txt_lookups, len(https.requests)) == (2, 1)


def test_a_new_id_fetches_the_new_policy(
    https: LocalHttpsServer, dns: LocalDnsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    sts = make(resolver, https, clock)
    assert lookup(sts) is not None
    set_id(dns, "20260202")
    https.reply(PATH, body=b"version: STSv1\nmode: testing\nmx: mx9.example.com\nmax_age: 86400\n")
    clock.now += 301
    policy = lookup(sts)
    assert policy is not None and (policy.id, policy.mode) == ("20260202", Mode.TESTING)
    assert len(https.requests) == 2


def test_an_expired_policy_is_refetched_even_with_the_same_id(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    sts = make(resolver, https, clock)
    assert lookup(sts) is not None
    clock.now += 86400
    assert lookup(sts) is not None
    assert len(https.requests) == 2


def test_a_failed_refresh_keeps_serving_the_cached_policy_until_it_expires(
    https: LocalHttpsServer, dns: LocalDnsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    sts = make(resolver, https, clock)
    first = lookup(sts)
    set_id(dns, "20260303")
    https.reply(PATH, body=b"this is not a policy")
    clock.now += 301
    assert lookup(sts) is first
    clock.now += 299  # a failure is retried after recheck, not on every call
    assert lookup(sts) is first and len(https.requests) == 2
    clock.now = 1000.0 + 86400
    assert lookup(sts) is None


@pytest.mark.parametrize("failure", ["SERVFAIL", "removed"])
def test_dns_failure_or_a_removed_record_cannot_downgrade_a_cached_policy(
    https: LocalHttpsServer,
    dns: LocalDnsServer,
    resolver: CountingResolver,
    clock: FakeClock,
    failure: str,
) -> None:
    sts = make(resolver, https, clock)
    first = lookup(sts)
    if failure == "SERVFAIL":
        dns.fail_with = "SERVFAIL"
    else:
        dns.remove(f"_mta-sts.{DOMAIN}", "TXT")
    clock.now += 3600
    assert lookup(sts) is first
    assert len(https.requests) == 1


def test_concurrent_lookups_share_one_fetch(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock
) -> None:
    sts = make(resolver, https, clock)

    async def many() -> list[Policy | None]:
        return list(await asyncio.gather(*(sts.policy(DOMAIN) for _ in range(8))))

    policies = asyncio.run(many())
    assert all(p is policies[0] for p in policies) and policies[0] is not None
    assert (resolver.txt_lookups, len(https.requests)) == (1, 1)


@pytest.mark.parametrize("domain", ["[192.0.2.1]", "", "."])
def test_literals_and_empty_names_have_no_policy(
    https: LocalHttpsServer, resolver: CountingResolver, clock: FakeClock, domain: str
) -> None:
    assert lookup(make(resolver, https, clock), domain) is None
    assert resolver.txt_lookups == 0


def test_disabled_it_answers_none_without_asking(
    https: LocalHttpsServer, resolver: CountingResolver
) -> None:
    settings = Settings(
        egress={"allowed_networks": ["127.0.0.0/8"], "ca_bundle": https.ca_path},
        mta_sts={"port": https.port, "enabled": False},
    )
    assert lookup(MtaStsResolver.from_settings(settings, resolver)) is None
    assert (resolver.txt_lookups, https.connections) == (0, 0)
