"""The records a sending domain publishes, and every status rule that judges them."""

from __future__ import annotations

import asyncio

import pytest

from postroom.domain.dnsrecords import (
    ExpectedRecord,
    RecordKey,
    RecordType,
    Status,
    dkim_value,
    expected_records,
    parse_tag_list,
)
from postroom.services.dns import DnsUnavailable, StaticResolver, check_records, parse_server

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv1" + "A" * 40 + "IDAQAB"
OTHER_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAx9" + "B" * 40 + "IDAQAB"


def build(**overrides: object) -> list[ExpectedRecord]:
    arguments: dict[str, object] = {
        "dkim": [("pr1", dkim_value(KEY)), ("pr2", dkim_value(OTHER_KEY))],
        "spf_include": "_spf.postroom.test",
        "return_path_label": "pr-bounces-7f3a",
        "return_path_target": "rp.postroom.test",
        "tracking_label": "track",
        "tracking_target": "t.postroom.test",
    }
    arguments.update(overrides)
    return expected_records("Example.COM.", **arguments)  # type: ignore[arg-type]


def record(key: RecordKey) -> ExpectedRecord:
    return next(r for r in build() if r.key is key)


# --- the record set -----------------------------------------------------------------


def test_record_set_names_values_and_contract_keys() -> None:
    records = build()
    assert [(r.key.api_key, r.type, r.relative_name, r.value) for r in records] == [
        ("verification", "CNAME", "pr-bounces-7f3a", "rp.postroom.test"),
        ("spf", "TXT", "@", "v=spf1 include:_spf.postroom.test ~all"),
        ("dkim1", "TXT", "pr1._domainkey", f"v=DKIM1; k=rsa; p={KEY}"),
        ("dkim2", "TXT", "pr2._domainkey", f"v=DKIM1; k=rsa; p={OTHER_KEY}"),
        ("dmarc", "TXT", "_dmarc", "v=DMARC1; p=none; rua=mailto:dmarc@example.com"),
        ("link_verification", "CNAME", "track", "t.postroom.test"),
    ]
    assert [r.name for r in records] == [
        "pr-bounces-7f3a.example.com",
        "example.com",
        "pr1._domainkey.example.com",
        "pr2._domainkey.example.com",
        "_dmarc.example.com",
        "track.example.com",
    ]
    assert {r.domain for r in records} == {"example.com"}


def test_tracking_is_optional_and_one_dkim_selector_is_enough() -> None:
    records = build(tracking_label=None, tracking_target=None, dkim=[("s1", dkim_value(KEY))])
    assert [r.key for r in records] == ["return_path", "spf", "dkim1", "dmarc"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"dkim": []},
        {"dkim": [("a", dkim_value(KEY))] * 3},
        {"dkim": [("a", "not a key")]},
        {"tracking_target": None},
    ],
)
def test_builder_rejects_bad_input(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        build(**overrides)


def test_dkim_value_strips_whitespace_from_the_key() -> None:
    assert dkim_value("AB CD\nEF", "ed25519") == "v=DKIM1; k=ed25519; p=ABCDEF"


# --- SPF (RFC 7208) -----------------------------------------------------------------

SPF_CASES = [
    ([], Status.MISSING),
    (["google-site-verification=abc"], Status.MISSING),
    (["v=spf10 include:_spf.postroom.test"], Status.MISSING),
    (["v=spf1 include:_spf.postroom.test ~all"], Status.PASS),
    (["v=spf1 ip4:192.0.2.1 include:_SPF.Postroom.Test. -all", "other"], Status.PASS),
    (["V=SPF1 +include:_spf.postroom.test -all"], Status.PASS),
    (["v=spf1 include:_spf.google.com ~all"], Status.FAIL),
    (["v=spf1 ~include:_spf.postroom.test -all"], Status.FAIL),
    (["v=spf1 -all"], Status.FAIL),
    (["v=spf1 include:_spf.postroom.test ~all", "v=spf1 -all"], Status.FAIL),
]


@pytest.mark.parametrize(("answers", "status"), SPF_CASES)
def test_spf(answers: list[str], status: Status) -> None:
    assert record(RecordKey.SPF).check(answers) is status


# --- DKIM (RFC 6376) ----------------------------------------------------------------

DKIM_CASES = [
    ([], Status.MISSING),
    ([f"v=DKIM1; k=rsa; p={KEY}"], Status.PASS),
    ([f"p={KEY}"], Status.PASS),
    ([f"v=DKIM1;k=RSA;p={KEY[:20]} {KEY[20:50]}\t{KEY[50:]};"], Status.PASS),
    ([f"v=DKIM1; h=sha1:sha256; s=email; t=s; p={KEY}"], Status.PASS),
    ([f"v=DKIM1; k=rsa; p={OTHER_KEY}"], Status.FAIL),
    (["v=DKIM1; k=rsa; p="], Status.FAIL),
    ([f"v=DKIM1; k=ed25519; p={KEY}"], Status.FAIL),
    ([f"k=rsa; v=DKIM1; p={KEY}"], Status.FAIL),
    ([f"v=DKIM2; p={KEY}"], Status.FAIL),
    ([f"v=DKIM1; p={KEY}; p={KEY}"], Status.FAIL),
    ([f"v=DKIM1; s=tlsrpt; p={KEY}"], Status.FAIL),
    ([f"v=DKIM1; h=sha1; p={KEY}"], Status.FAIL),
    (["v=DKIM1; k=rsa"], Status.FAIL),
    (["hello world"], Status.FAIL),
    ([f"v=DKIM1; p={KEY}", f"v=DKIM1; p={OTHER_KEY}"], Status.FAIL),
]


@pytest.mark.parametrize(("answers", "status"), DKIM_CASES)
def test_dkim(answers: list[str], status: Status) -> None:
    assert record(RecordKey.DKIM1).check(answers) is status


def test_dkim2_is_judged_against_its_own_key() -> None:
    assert record(RecordKey.DKIM2).check([f"v=DKIM1; k=rsa; p={OTHER_KEY}"]) is Status.PASS
    assert record(RecordKey.DKIM2).check([f"v=DKIM1; k=rsa; p={KEY}"]) is Status.FAIL


# --- DMARC (RFC 7489) ---------------------------------------------------------------

DMARC_CASES = [
    ([], Status.MISSING),
    (["some-verification=1"], Status.MISSING),
    (["v=DMARC1; p=none"], Status.PASS),
    (["v=DMARC1; p=reject; rua=mailto:d@example.com; pct=50;"], Status.PASS),
    (["v=DMARC1;p=Quarantine", "unrelated"], Status.PASS),
    (["v=DMARC1"], Status.FAIL),
    (["v=DMARC1; p=block"], Status.FAIL),
    (["v=dmarc1; p=none"], Status.FAIL),
    (["v=DMARC1 p=none"], Status.FAIL),
    (["v=DMARC1; p=none; p=reject"], Status.FAIL),
    (["v=DMARC1; p=none", "v=DMARC1; p=reject"], Status.FAIL),
]


@pytest.mark.parametrize(("answers", "status"), DMARC_CASES)
def test_dmarc(answers: list[str], status: Status) -> None:
    assert record(RecordKey.DMARC).check(answers) is status


# --- CNAMEs: return path and tracking -----------------------------------------------

CNAME_CASES = [
    (RecordKey.RETURN_PATH, [], Status.MISSING),
    (RecordKey.RETURN_PATH, ["rp.postroom.test"], Status.PASS),
    (RecordKey.RETURN_PATH, ["RP.Postroom.Test."], Status.PASS),
    (RecordKey.RETURN_PATH, ["rp.elsewhere.test"], Status.FAIL),
    (RecordKey.TRACKING, ["t.postroom.test."], Status.PASS),
    (RecordKey.TRACKING, ["rp.postroom.test"], Status.FAIL),
    (RecordKey.TRACKING, [], Status.MISSING),
]


@pytest.mark.parametrize(("key", "answers", "status"), CNAME_CASES)
def test_cname(key: RecordKey, answers: list[str], status: Status) -> None:
    assert record(key).type is RecordType.CNAME
    assert record(key).check(answers) is status


# --- tag lists ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("v=DKIM1; p=ab==", {"v": "DKIM1", "p": "ab=="}),
        (" a = 1 ;b=;", {"a": "1", "b": ""}),
        ("", {}),
        ("a=1;;b=2", None),
        ("a", None),
        ("1a=2", None),
        ("a=1; a=2", None),
    ],
)
def test_parse_tag_list(text: str, parsed: dict[str, str] | None) -> None:
    assert parse_tag_list(text) == parsed


# --- check_records with the static resolver -----------------------------------------


def published() -> dict[str, dict[str, list[str]]]:
    return {
        "pr-bounces-7f3a.example.com": {"CNAME": ["rp.postroom.test."]},
        "example.com": {"TXT": ["v=spf1 include:_spf.postroom.test ~all"]},
        "pr1._domainkey.example.com": {"TXT": [dkim_value(KEY)]},
        "pr2._domainkey.example.com": {"TXT": [dkim_value(OTHER_KEY)]},
        "_dmarc.example.com": {"TXT": ["v=DMARC1; p=quarantine"]},
        "track.example.com": {"CNAME": ["t.postroom.test"]},
    }


def test_check_records_reports_each_record_in_order() -> None:
    resolver = StaticResolver(published(), unavailable=["_dmarc.example.com"])
    del resolver.records["track.example.com"]
    results = asyncio.run(check_records(resolver, build()))
    assert [(r.key, status) for r, status, _ in results] == [
        ("return_path", Status.PASS),
        ("spf", Status.PASS),
        ("dkim1", Status.PASS),
        ("dkim2", Status.PASS),
        ("dmarc", Status.NETWORK_ERROR),
        ("tracking", Status.MISSING),
    ]
    assert results[0][2] == ["rp.postroom.test"]
    assert results[4][2] == []


def test_static_resolver_lookups() -> None:
    resolver = StaticResolver(
        {"Example.com.": {"mx": ["20 b.example.com.", "10 A.example.com"], "A": ["192.0.2.1"]}},
        unavailable=["down.example"],
    )
    resolver.records["null.example"] = {"MX": ["0 ."], "AAAA": ["2001:db8::1"]}

    async def lookups() -> tuple[object, ...]:
        return (
            await resolver.mx("example.com"),
            await resolver.mx("null.example"),
            await resolver.a("example.com"),
            await resolver.a("null.example"),
            await resolver.txt("nowhere.example"),
            await resolver.cname("example.com"),
        )

    assert asyncio.run(lookups()) == (
        [(10, "a.example.com"), (20, "b.example.com")],
        [(0, ".")],
        ["192.0.2.1"],
        ["2001:db8::1"],
        [],
        None,
    )
    with pytest.raises(DnsUnavailable):
        asyncio.run(resolver.txt("down.example"))


@pytest.mark.parametrize(
    ("server", "parsed"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("10.0.0.53", ("10.0.0.53", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[::1]", ("::1", 53)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_server(server: str, parsed: tuple[str, int]) -> None:
    assert parse_server(server) == parsed


@pytest.mark.parametrize("server", ["ns.example.com:53", "127.0.0.1:port", ""])
def test_parse_server_rejects_names_and_bad_ports(server: str) -> None:
    with pytest.raises(ValueError):
        parse_server(server)
