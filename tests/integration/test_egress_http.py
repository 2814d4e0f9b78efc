"""The egress client against a real name server and a real HTTPS server on loopback.

The policy host names resolve (through the test name server) to 127.0.0.1, where a
trustme-certified server listens; loopback is only reachable because the tests allow
127.0.0.0/8, and the SSRF tests show that without that allowance not one connection
reaches the server.
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
from postroom.services.dns import DnsPythonResolver
from postroom.services.egress import (
    EgressClient,
    EgressError,
    EgressRefused,
    EgressResponse,
    ResponseTooLarge,
)

HOST = "mta-sts.example.com"
LOOPBACK = EgressPolicy.allowing(["127.0.0.0/8"])


class CountingResolver(DnsPythonResolver):
    """The real resolver, counting address lookups (one per request: no re-resolution)."""

    def __init__(self, server: str) -> None:
        super().__init__(server, timeout=2.0)
        self.lookups: list[str] = []

    async def a(self, name: str) -> list[str]:
        self.lookups.append(name)
        return await super().a(name)


@pytest.fixture
def https(tmp_path: Path) -> Iterator[LocalHttpsServer]:
    with LocalHttpsServer(tmp_path, [HOST]) as server:
        yield server


@pytest.fixture
def resolver(dns_server: LocalDnsServer) -> CountingResolver:
    dns_server.add_a(HOST, "127.0.0.1")
    return CountingResolver(dns_server.address)


def client(
    resolver: CountingResolver, https: LocalHttpsServer, policy: EgressPolicy = LOOPBACK
) -> EgressClient:
    return EgressClient(resolver, policy, ca_bundle=https.ca_path, connect_timeout=2.0)


def get(
    egress: EgressClient, url: str, max_bytes: int = 65536, timeout: float = 5.0
) -> EgressResponse:
    return asyncio.run(egress.get(url, max_bytes=max_bytes, timeout=timeout))


def test_fetches_by_name_dialling_the_checked_address_with_sni(
    https: LocalHttpsServer, resolver: CountingResolver
) -> None:
    https.reply("/x", body=b"hello")
    response = get(client(resolver, https), f"https://{HOST}:{https.port}/x")
    assert (response.status, response.body, response.address) == (200, b"hello", "127.0.0.1")
    assert https.requests == [("/x", f"{HOST}:{https.port}")]
    assert https.sni == [HOST]
    assert resolver.lookups == [HOST]  # resolved once; httpx never saw the name


def test_settings_build_the_same_client(
    https: LocalHttpsServer, resolver: CountingResolver
) -> None:
    settings = Settings(egress={"allowed_networks": ["127.0.0.0/8"], "ca_bundle": https.ca_path})
    https.reply("/x", body=b"ok")
    response = get(EgressClient.from_settings(settings, resolver), f"https://{HOST}:{https.port}/x")
    assert response.body == b"ok"


@pytest.mark.parametrize("address", ["127.0.0.1", "127.9.9.9"])
def test_loopback_is_refused_without_the_allowance_and_nothing_connects(
    https: LocalHttpsServer, dns_server: LocalDnsServer, address: str
) -> None:
    dns_server.add_a("evil.example.com", address)
    resolver = CountingResolver(dns_server.address)
    with pytest.raises(EgressRefused, match="loopback"):
        get(client(resolver, https, EgressPolicy()), f"https://evil.example.com:{https.port}/x")
    assert https.connections == 0


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1:{port}/",
        "https://[::1]:{port}/",
        "https://[::ffff:127.0.0.1]:{port}/",
        "https://[::ffff:7f00:1]:{port}/",
        "https://[64:ff9b::7f00:1]:{port}/",
        "https://[2002:7f00:1::]:{port}/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://10.0.0.1/",
        "https://100.64.0.1/",
        "https://0.0.0.0:{port}/",
    ],
)
def test_address_literals_are_checked_too(
    https: LocalHttpsServer, resolver: CountingResolver, url: str
) -> None:
    with pytest.raises(EgressRefused):
        get(client(resolver, https, EgressPolicy()), url.format(port=https.port))
    assert https.connections == 0
    assert resolver.lookups == []


def test_one_internal_address_among_public_ones_refuses_the_host(
    https: LocalHttpsServer, dns_server: LocalDnsServer
) -> None:
    dns_server.add_a("mixed.example.com", "8.8.8.8")
    dns_server.add_aaaa("mixed.example.com", "::1")
    resolver = CountingResolver(dns_server.address)
    with pytest.raises(EgressRefused, match="::1"):
        get(client(resolver, https, EgressPolicy()), "https://mixed.example.com/")


@pytest.mark.parametrize(
    "url",
    [
        "http://{host}:{port}/x",  # only https by default
        "ftp://{host}/x",
        "https://user@{host}:{port}/x",
        "file:///etc/passwd",
    ],
)
def test_other_schemes_and_credentials_are_refused(
    https: LocalHttpsServer, resolver: CountingResolver, url: str
) -> None:
    with pytest.raises(EgressRefused):
        get(client(resolver, https), url.format(host=HOST, port=https.port))
    assert https.connections == 0


def test_a_certificate_for_another_name_fails(tmp_path: Path, dns_server: LocalDnsServer) -> None:
    dns_server.add_a(HOST, "127.0.0.1")
    with LocalHttpsServer(tmp_path, ["other.example.net"]) as other:
        other.reply("/x", body=b"secret")
        with pytest.raises(EgressError, match="could not connect"):
            get(
                client(CountingResolver(dns_server.address), other),
                f"https://{HOST}:{other.port}/x",
            )
        assert other.requests == []


def test_an_untrusted_ca_fails(https: LocalHttpsServer, resolver: CountingResolver) -> None:
    https.reply("/x", body=b"secret")
    # The bundled public CAs do not know the trustme CA.
    egress = EgressClient(resolver, LOOPBACK, connect_timeout=2.0)
    with pytest.raises(EgressError):
        get(egress, f"https://{HOST}:{https.port}/x")
    assert https.requests == []


def test_redirects_are_returned_not_followed(
    https: LocalHttpsServer, resolver: CountingResolver
) -> None:
    https.reply("/x", status=302, headers={"Location": f"https://{HOST}:{https.port}/y"})
    https.reply("/y", body=b"elsewhere")
    response = get(client(resolver, https), f"https://{HOST}:{https.port}/x")
    assert response.status == 302
    assert [path for path, _ in https.requests] == ["/x"]


@pytest.mark.parametrize("length", [True, False])
def test_bodies_over_the_limit_are_refused(
    https: LocalHttpsServer, resolver: CountingResolver, length: bool
) -> None:
    https.reply("/big", body=b"x" * 70_000, length=length)
    https.reply("/fits", body=b"x" * 65_536, length=length)
    with pytest.raises(ResponseTooLarge):
        get(client(resolver, https), f"https://{HOST}:{https.port}/big")
    assert len(get(client(resolver, https), f"https://{HOST}:{https.port}/fits").body) == 65_536


def test_compressed_bodies_are_refused(https: LocalHttpsServer, resolver: CountingResolver) -> None:
    https.reply("/z", headers={"Content-Encoding": "gzip"}, body=b"\x1f\x8b")
    with pytest.raises(EgressError, match="compressed"):
        get(client(resolver, https), f"https://{HOST}:{https.port}/z")


def test_a_slow_server_times_out(https: LocalHttpsServer, resolver: CountingResolver) -> None:
    https.reply("/slow", body=b"late", delay=1.5)
    with pytest.raises(EgressError, match="timed out"):
        get(client(resolver, https), f"https://{HOST}:{https.port}/slow", timeout=0.5)


def test_names_without_addresses_fail(https: LocalHttpsServer, resolver: CountingResolver) -> None:
    with pytest.raises(EgressError, match="no address"):
        get(client(resolver, https), "https://nowhere.example.com/")


def test_the_next_address_is_tried_when_one_refuses_connections(
    tmp_path: Path, dns_server: LocalDnsServer
) -> None:
    # Nothing listens on 127.0.0.2 (the server binds 127.0.0.1 only): refused, then next.
    dns_server.add_a("two.example.com", "127.0.0.2")
    dns_server.add_a("two.example.com", "127.0.0.1")
    with LocalHttpsServer(tmp_path, ["two.example.com"]) as two:
        two.reply("/x", body=b"second")
        resolver = CountingResolver(dns_server.address)
        response = get(client(resolver, two), f"https://two.example.com:{two.port}/x")
    assert (response.body, response.address) == (b"second", "127.0.0.1")


def test_an_unanswering_name_server_is_an_egress_error(
    https: LocalHttpsServer, resolver: CountingResolver, dns_server: LocalDnsServer
) -> None:
    dns_server.drop = True
    with pytest.raises(EgressError, match="lookup failed|timed out"):
        get(client(resolver, https), f"https://{HOST}:{https.port}/x", timeout=5.0)
    assert https.connections == 0


def test_a_post_carries_its_body_and_headers(
    https: LocalHttpsServer, resolver: CountingResolver
) -> None:
    # The shape webhooks will use: POST, a JSON body, the caller's headers; Host stays ours.
    https.reply("/hook", status=204)
    egress = client(resolver, https)
    response = asyncio.run(
        egress.request(
            "POST",
            f"https://{HOST}:{https.port}/hook",
            content=b'{"event":"delivery"}',
            headers={"Content-Type": "application/json", "Host": "evil.internal"},
            max_bytes=1024,
            timeout=5.0,
        )
    )
    assert response.status == 204
    assert https.bodies == [b'{"event":"delivery"}']
    assert https.requests == [("/hook", f"{HOST}:{https.port}")]


def test_only_http_schemes_can_be_enabled(resolver: CountingResolver) -> None:
    with pytest.raises(ValueError):
        EgressClient(resolver, LOOPBACK, schemes=frozenset({"https", "gopher"}))
