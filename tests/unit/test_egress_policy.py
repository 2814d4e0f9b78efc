"""The egress policy over the address space: every form of an internal address is refused.

Properties run over whole ranges (hypothesis draws addresses inside each network) and
over every IPv6 form that carries an IPv4 address (mapped, NAT64, 6to4), so a range
the policy forgets or a form it does not unwrap shows up as a counterexample.
"""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.domain.egress import EgressPolicy, parse_address

POLICY = EgressPolicy()

REFUSED_V4 = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
]
REFUSED_V6 = [
    "::/96",
    "::ffff:0:0:0/96",
    "64:ff9b:1::/48",
    "100::/64",
    "2001::/23",
    "2001:db8::/32",
    "fc00::/7",
    "fe80::/10",
    "fec0::/10",
    "ff00::/8",
]


def v4_in(networks: list[str]) -> st.SearchStrategy[ipaddress.IPv4Address]:
    return st.one_of(*(st.ip_addresses(v=4, network=net) for net in networks))


def v6_in(networks: list[str]) -> st.SearchStrategy[ipaddress.IPv6Address]:
    return st.one_of(*(st.ip_addresses(v=6, network=net) for net in networks))


def embedding_forms(v4: ipaddress.IPv4Address) -> list[ipaddress.IPv6Address]:
    """IPv4-mapped, NAT64 well-known prefix and 6to4 forms of ``v4``."""
    n = int(v4)
    return [
        ipaddress.IPv6Address((0xFFFF << 32) | n),
        ipaddress.IPv6Address((0x0064FF9B << 96) | n),
        ipaddress.IPv6Address((0x2002 << 112) | (n << 80)),
    ]


def public_v4() -> st.SearchStrategy[ipaddress.IPv4Address]:
    return st.ip_addresses(v=4).filter(
        lambda ip: not any(ip in ipaddress.ip_network(net) for net in REFUSED_V4) and ip.is_global
    )


@given(v4_in(REFUSED_V4))
def test_internal_ipv4_is_refused_in_every_form(address: ipaddress.IPv4Address) -> None:
    assert POLICY.refusal(address) is not None
    assert POLICY.refusal(str(address)) is not None
    for form in embedding_forms(address):
        assert not POLICY.permits(form), form
    # The deprecated IPv4-compatible form is refused whatever it carries.
    assert not POLICY.permits(ipaddress.IPv6Address(int(address)))


@given(v6_in(REFUSED_V6))
def test_internal_ipv6_is_refused(address: ipaddress.IPv6Address) -> None:
    assert not POLICY.permits(address)


@given(public_v4())
def test_public_ipv4_is_permitted_in_every_carrying_form(address: ipaddress.IPv4Address) -> None:
    assert POLICY.permits(address)
    for form in embedding_forms(address):
        assert POLICY.permits(form), form


@given(st.ip_addresses())
def test_a_permitted_address_is_public_unicast(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> None:
    if not POLICY.permits(address):
        return
    if isinstance(address, ipaddress.IPv6Address) and _carries_ipv4(address):
        return  # judged by the IPv4 address it carries (tested above)
    assert address.is_global
    assert not (address.is_multicast or address.is_reserved or address.is_private)


def _carries_ipv4(address: ipaddress.IPv6Address) -> bool:
    return (
        address.ipv4_mapped is not None
        or address.sixtofour is not None
        or (address in ipaddress.ip_network("64:ff9b::/96"))
    )


@given(st.ip_addresses(), st.integers(min_value=0, max_value=32))
def test_the_allow_list_wins(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address, bits: int
) -> None:
    prefix = min(bits * (address.max_prefixlen // 32), address.max_prefixlen)
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    assert EgressPolicy.allowing([network]).permits(address)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "0.0.0.0", "::", "::1", "::ffff:127.0.0.1", "::ffff:7f00:1",
        "64:ff9b::7f00:1", "2002:7f00:1::", "2002:a00:1::1", "169.254.169.254",
        "fd00:ec2::254", "100.100.100.200", "192.0.0.192", "10.1.2.3", "172.31.255.255",
        "192.168.1.1", "100.64.0.1", "198.18.0.1", "fc00::1", "fe80::1", "fec0::1",
        "224.0.0.1", "239.255.255.250", "ff02::1", "ff0e::1", "255.255.255.255",
        "240.0.0.1", "2001:db8::1", "2001::1", "::7f00:1", "::ffff:0:7f00:1",
        "3fff::1", "5f00::1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe",
    ],
)  # fmt: skip
def test_known_internal_targets_are_refused(address: str) -> None:
    assert POLICY.refusal(address) is not None


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808",
     "2002:808:808::1", "2a00:1450:4001:80b::200e"],
)  # fmt: skip
def test_public_targets_are_permitted(address: str) -> None:
    assert POLICY.permits(address)


@pytest.mark.parametrize(
    "text", ["127.1", "0x7f000001", "2130706433", "017700000001", "fe80::1%eth0", "localhost", ""]
)
def test_shorthand_and_scoped_forms_are_not_addresses(text: str) -> None:
    # Never parsed as an address (the libc shorthands are exactly how filters get
    # bypassed): the egress client treats such text as a host name and resolves it.
    with pytest.raises(ValueError):
        parse_address(text)


def test_allowing_loopback_permits_its_carrying_forms_but_nothing_else() -> None:
    policy = EgressPolicy.allowing(["127.0.0.0/8"])
    assert policy.permits("127.0.0.1")
    assert policy.permits("::ffff:127.0.0.1")
    assert not policy.permits("::1")
    assert not policy.permits("10.0.0.1")
    assert policy.refusal("::ffff:10.0.0.1") == "private (embedded 10.0.0.1)"
