"""DnsPythonResolver against a real name server on loopback (tests/dnsserver.py).

Needs the ``dns_server`` fixture from tests/dnsserver.py (registered in tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import time

import dns.message
import dns.query
import pytest

from dnsserver import LocalDnsServer, free_udp_port
from postroom.domain.dnsrecords import ExpectedRecord, RecordType, Status, dkim_value
from postroom.domain.dnsrecords import expected_records as build_records
from postroom.services.dns import DnsPythonResolver, DnsUnavailable, check_records

# A 2048-bit RSA SubjectPublicKeyInfo is 294 bytes: 392 base64 characters, so the TXT
# value (~410 bytes) must travel as two character-strings.
KEY_2048 = base64.b64encode(bytes(range(256)) + bytes(38)).decode()
OTHER_KEY = base64.b64encode(bytes(reversed(range(256))) + bytes(38)).decode()


@pytest.fixture
def resolver(dns_server: LocalDnsServer) -> DnsPythonResolver:
    return DnsPythonResolver(dns_server.address, timeout=2.0)


# --- single lookups -------------------------------------------------------------------


def test_txt_joins_the_strings_of_a_dkim_sized_record(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver
) -> None:
    value = dkim_value(KEY_2048)
    assert len(KEY_2048) == 392 and len(value) > 255
    dns_server.add_txt("pr1._domainkey.example.com", value)
    dns_server.add_txt("example.com", "v=spf1 -all")
    dns_server.add_txt("example.com", "site-verification=abc")

    assert asyncio.run(resolver.txt("pr1._domainkey.example.com")) == [value]
    # On the wire it really is two character-strings (255 bytes, then the rest).
    query = dns.message.make_query("pr1._domainkey.example.com", "TXT")
    wire = dns.query.udp(query, "127.0.0.1", port=dns_server.port, timeout=2)
    assert [len(s) for s in wire.answer[0][0].strings] == [255, len(value) - 255]
    assert sorted(asyncio.run(resolver.txt("EXAMPLE.com."))) == [
        "site-verification=abc",
        "v=spf1 -all",
    ]


def test_an_answer_too_big_for_udp_comes_over_tcp(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver
) -> None:
    values = [f"{i}:" + "x" * 400 for i in range(4)]
    for value in values:
        dns_server.add_txt("big.example.com", value)
    assert sorted(asyncio.run(resolver.txt("big.example.com"))) == values


def test_cname(dns_server: LocalDnsServer, resolver: DnsPythonResolver) -> None:
    dns_server.add_cname("pr-bounces.example.com", "RP.Postroom.Test.")
    dns_server.add_txt("only-txt.example.com", "hello")

    assert asyncio.run(resolver.cname("pr-bounces.example.com")) == "rp.postroom.test"
    assert asyncio.run(resolver.cname("only-txt.example.com")) is None
    assert asyncio.run(resolver.cname("nowhere.example.com")) is None


def test_txt_follows_a_cname_inside_the_zone(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver
) -> None:
    dns_server.add_cname("pr1._domainkey.example.com", "pr1.keys.postroom.test")
    dns_server.add_txt("pr1.keys.postroom.test", dkim_value(KEY_2048))
    assert asyncio.run(resolver.txt("pr1._domainkey.example.com")) == [dkim_value(KEY_2048)]


def test_mx_most_preferred_first(dns_server: LocalDnsServer, resolver: DnsPythonResolver) -> None:
    dns_server.add_mx("example.com", 20, "mx2.example.com")
    dns_server.add_mx("example.com", 5, "MX0.example.com")
    dns_server.add_mx("example.com", 10, "mx1.example.com")
    dns_server.add_mx("nullmx.example", 0, ".")

    assert asyncio.run(resolver.mx("example.com")) == [
        (5, "mx0.example.com"),
        (10, "mx1.example.com"),
        (20, "mx2.example.com"),
    ]
    assert asyncio.run(resolver.mx("nullmx.example")) == [(0, ".")]


def test_a_returns_ipv4_then_ipv6(dns_server: LocalDnsServer, resolver: DnsPythonResolver) -> None:
    dns_server.add_a("mx.example.com", "192.0.2.10")
    dns_server.add_aaaa("mx.example.com", "2001:db8::10")
    dns_server.add_a("v4only.example.com", "192.0.2.11")

    assert asyncio.run(resolver.a("mx.example.com")) == ["192.0.2.10", "2001:db8::10"]
    assert asyncio.run(resolver.a("v4only.example.com")) == ["192.0.2.11"]


def test_missing_names_and_types_answer_empty(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver
) -> None:
    dns_server.add_a("example.com", "192.0.2.1")
    dns_server.add_txt("s1._domainkey.example.com", "v=DKIM1; p=")

    assert asyncio.run(resolver.txt("nowhere.example.com")) == []  # NXDOMAIN
    assert asyncio.run(resolver.txt("example.com")) == []  # NODATA
    assert asyncio.run(resolver.txt("_domainkey.example.com")) == []  # empty non-terminal
    assert asyncio.run(resolver.mx("example.com")) == []
    assert asyncio.run(resolver.a("nowhere.example.com")) == []


# --- failures ---------------------------------------------------------------------------


@pytest.mark.parametrize("rcode", ["SERVFAIL", "REFUSED"])
def test_server_failure_is_unavailable(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver, rcode: str
) -> None:
    dns_server.add_txt("example.com", "v=spf1 -all")
    dns_server.fail_with = rcode
    for lookup in (resolver.txt, resolver.cname, resolver.mx, resolver.a):
        with pytest.raises(DnsUnavailable):
            asyncio.run(lookup("example.com"))


def test_no_answer_is_unavailable_within_the_timeout(dns_server: LocalDnsServer) -> None:
    dns_server.drop = True
    resolver = DnsPythonResolver(dns_server.address, timeout=0.5)
    started = time.monotonic()
    with pytest.raises(DnsUnavailable):
        asyncio.run(resolver.txt("example.com"))
    assert time.monotonic() - started < 2.0


def test_no_server_listening_is_unavailable() -> None:
    resolver = DnsPythonResolver(f"127.0.0.1:{free_udp_port()}", timeout=0.5)
    with pytest.raises(DnsUnavailable):
        asyncio.run(resolver.mx("example.com"))


def test_zone_changes_are_seen_at_once(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver
) -> None:
    # No cache: a domain owner who just published a record sees it on the next check.
    assert asyncio.run(resolver.txt("example.com")) == []
    dns_server.add_txt("example.com", "v=spf1 -all")
    assert asyncio.run(resolver.txt("example.com")) == ["v=spf1 -all"]
    dns_server.remove("example.com", "TXT")
    assert asyncio.run(resolver.txt("example.com")) == []


# --- check_records end to end -----------------------------------------------------------


def expected() -> list[ExpectedRecord]:
    return build_records(
        "example.com",
        dkim=[("pr1", dkim_value(KEY_2048)), ("pr2", dkim_value(OTHER_KEY))],
        spf_include="_spf.postroom.test",
        return_path_label="pr-bounces-7f3a",
        return_path_target="rp.postroom.test",
        tracking_label="track",
        tracking_target="t.postroom.test",
    )


def publish(server: LocalDnsServer, records: list[ExpectedRecord]) -> None:
    for record in records:
        if record.type is RecordType.CNAME:
            server.add_cname(record.name, record.value)
        else:
            server.add_txt(record.name, record.value)


def statuses(resolver: DnsPythonResolver, records: list[ExpectedRecord]) -> dict[str, Status]:
    results = asyncio.run(check_records(resolver, records))
    return {record.key: status for record, status, _ in results}


def test_check_records_all_published_all_pass(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver
) -> None:
    records = expected()
    publish(dns_server, records)
    dns_server.add_txt("example.com", "google-site-verification=xyz")

    results = asyncio.run(check_records(resolver, records))
    assert [status for _, status, _ in results] == [Status.PASS] * len(records)
    assert results[2][2] == [dkim_value(KEY_2048)]


def test_check_records_missing_wrong_key_and_outage(
    dns_server: LocalDnsServer, resolver: DnsPythonResolver
) -> None:
    records = expected()
    publish(dns_server, records)
    dns_server.remove("_dmarc.example.com")
    dns_server.remove("pr1._domainkey.example.com")
    dns_server.add_txt("pr1._domainkey.example.com", dkim_value(OTHER_KEY))

    assert statuses(resolver, records) == {
        "return_path": Status.PASS,
        "spf": Status.PASS,
        "dkim1": Status.FAIL,
        "dkim2": Status.PASS,
        "dmarc": Status.MISSING,
        "tracking": Status.PASS,
    }
    dns_server.fail_with = "SERVFAIL"
    assert set(statuses(resolver, records).values()) == {Status.NETWORK_ERROR}
