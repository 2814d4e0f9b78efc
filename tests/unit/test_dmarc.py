"""DMARC evaluation (RFC 7489): records, organizational domains, alignment, policy."""

from __future__ import annotations

from postroom.domain.dmarc import evaluate, organizational_domain, parse_record


def test_organizational_domain_by_the_public_suffix_list() -> None:
    assert organizational_domain("mail.news.example.com") == "example.com"
    assert organizational_domain("a.b.example.co.uk") == "example.co.uk"
    assert organizational_domain("Example.COM.") == "example.com"
    assert organizational_domain("co.uk") == "co.uk"  # a suffix itself stays as it is


def test_parse_record_takes_the_one_dmarc_record() -> None:
    found = parse_record(["v=spf1 -all", "v=DMARC1; p=reject; sp=none; adkim=s"])
    assert found == {"v": "DMARC1", "p": "reject", "sp": "none", "adkim": "s"}
    assert parse_record(["v=spf1 -all"]) is None
    assert parse_record(["v=DMARC1; p=none", "v=DMARC1; p=reject"]) is None  # two: none


def test_alignment_relaxed_and_strict() -> None:
    record = {"p": "reject"}
    relaxed = evaluate("news.example.com", record, False, "pass", "bounce.example.com", [])
    assert relaxed.result == "pass"
    strict = evaluate(
        "news.example.com", {**record, "aspf": "s"}, False, "pass", "bounce.example.com", []
    )
    assert strict.result == "fail" and strict.policy == "reject"
    by_dkim = evaluate(
        "example.com", {**record, "adkim": "s"}, False, "fail", "x.test", ["example.com"]
    )
    assert by_dkim.result == "pass"
    other = evaluate("example.com", record, False, "pass", "other.test", ["other.test"])
    assert other.result == "fail"


def test_no_record_and_the_subdomain_policy() -> None:
    assert evaluate("example.com", None, False, "fail", "x.test", []).result == "none"
    found = evaluate("a.example.com", {"p": "reject", "sp": "quarantine"}, True, "fail", "x", [])
    assert (found.result, found.policy) == ("fail", "quarantine")
    own = evaluate("a.example.com", {"p": "reject", "sp": "none"}, False, "fail", "x", [])
    assert own.policy == "reject"  # the subdomain's own record: p applies
    odd = evaluate("example.com", {"p": "bounce"}, False, "fail", "x", [])
    assert odd.policy == "none"
