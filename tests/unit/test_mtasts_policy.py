"""MTA-STS TXT records and policy bodies (RFC 8461 §3.1, §3.2) and MX matching (§4.1)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.domain.mtasts import (
    MAX_AGE_LIMIT,
    Mode,
    Policy,
    PolicyError,
    mx_matches,
    parse_policy,
    parse_txt,
)

# --- TXT records ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20160831085700Z"], "20160831085700Z"),
        (["v=STSv1;id=abc"], "abc"),
        (["v=STSv1; id=abc;"], "abc"),
        (["v=STSv1 ;\tid=abc ; ext=val"], "abc"),
        (["v=spf1 -all", "v=STSv1; id=abc"], "abc"),  # other TXT records are discarded
        (["v=STSv1; id=first; id=second"], "first"),
        (["v=STSv1; id=" + "a" * 32], "a" * 32),
    ],
)
def test_txt_records_announce_an_id(records: list[str], expected: str) -> None:
    assert parse_txt(records) == expected


@pytest.mark.parametrize(
    "records",
    [
        [],
        ["v=spf1 -all"],
        ["v=STSv1; id=abc", "v=STSv1; id=def"],  # §3.1: not exactly one record
        ["v=STSv1"],
        ["v=STSv1;"],
        ["v=STSv1; ext=1"],  # no id
        ["v=STSv1; id="],
        ["v=STSv1; id=" + "a" * 33],
        ["v=STSv1; id=ab-c"],
        ["v=STSv1; id=abc;; ext=1"],
        ["v=STSv1; id=abc; bad"],
        ["v=STSv1; id=abc; x=a=b"],
        ["V=STSv1; id=abc"],  # case-sensitive
        ["v=STSv2; id=abc"],
        [" v=STSv1; id=abc"],
    ],
)
def test_txt_records_without_a_valid_single_record_announce_nothing(records: list[str]) -> None:
    assert parse_txt(records) is None


@given(st.lists(st.text(max_size=80), max_size=4))
def test_txt_parsing_never_fails_and_ids_are_bounded(records: list[str]) -> None:
    policy_id = parse_txt(records)
    assert policy_id is None or (policy_id.isalnum() and 1 <= len(policy_id) <= 32)


# --- policies -------------------------------------------------------------------------

ENFORCE = (
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
    "max_age: 604800\r\n"
)


def test_an_enforce_policy_parses() -> None:
    policy = parse_policy(ENFORCE, "id1")
    assert policy == Policy("id1", Mode.ENFORCE, ("mail.example.com", "*.example.net"), 604800)


@pytest.mark.parametrize("mode", ["testing", "enforce", "none"])
def test_each_mode_parses_with_lf_endings_and_no_final_newline(mode: str) -> None:
    body = f"version: STSv1\nmode: {mode}\nmx: mx.example.com\nmax_age: 86400"
    assert parse_policy(body, "x").mode == Mode(mode)


def test_mode_none_needs_no_mx() -> None:
    policy = parse_policy("version: STSv1\nmode: none\nmax_age: 0\n", "x")
    assert (policy.mode, policy.mx, policy.max_age) == (Mode.NONE, (), 0)


def test_unknown_fields_are_ignored_and_mx_are_lower_cased_once() -> None:
    body = (
        "version: STSv1\nmode: testing\nmx: MX.Example.COM\nmx: mx.example.com\n"
        "x-note: anything at all, even: colons\nmax_age:86400\n\n"
    )
    policy = parse_policy(body, "x")
    assert (policy.mx, policy.max_age) == (("mx.example.com",), 86400)


def test_the_first_of_repeated_fields_wins() -> None:
    body = "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 5\nmax_age: 9\n"
    policy = parse_policy(body, "x")
    assert (policy.mode, policy.max_age) == (Mode.TESTING, 5)


def test_max_age_is_bounded_to_a_year() -> None:
    body = "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: {}\n"
    assert parse_policy(body.format(MAX_AGE_LIMIT), "x").max_age == MAX_AGE_LIMIT
    with pytest.raises(PolicyError):
        parse_policy(body.format(MAX_AGE_LIMIT + 1), "x")


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<html>hello</html>",
        "mode: enforce\nmx: a.example\nmax_age: 5\n",  # no version
        "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 5\n",
        "version: STSv1\nmx: a.example\nmax_age: 5\n",  # no mode
        "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 5\n",  # values are case-sensitive
        "version: STSv1\nmode: report\nmx: a.example\nmax_age: 5\n",
        "version: STSv1\nMode: enforce\nmx: a.example\nmax_age: 5\n",  # 'Mode' is an extension
        "version: STSv1\nmode: enforce\nmax_age: 5\n",  # enforce without mx
        "version: STSv1\nmode: testing\nmx: a.example\n",  # no max_age
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1e5\n",
        "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 5\n",
        "version: STSv1\nmode: enforce\nmx: mx*.example\nmax_age: 5\n",
        "version: STSv1\nmode: enforce\nmx: -a.example\nmax_age: 5\n",
        "version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 5\n",
        "version: STSv1\nmode: enforce\nmx: [192.0.2.1]\nmax_age: 5\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\ngarbage line\n",
        "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 5\nx: bad\x01value\n",
        "version: STSv1\nmode: enforce\rmx: a.example\nmax_age: 5\n",  # bare CR
    ],
)
def test_malformed_policies_are_refused(body: str) -> None:
    with pytest.raises(PolicyError):
        parse_policy(body, "x")


@given(st.text(max_size=300))
def test_policy_parsing_fails_only_with_policy_error(body: str) -> None:
    try:
        policy = parse_policy(body, "x")
    except PolicyError:
        return
    assert 0 <= policy.max_age <= MAX_AGE_LIMIT
    assert policy.mode is Mode.NONE or policy.mx


# --- MX matching ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "MX1.Example.Com.", True),
        ("*.example.com", "example.com", False),
        ("*.example.com", "a.b.example.com", False),
        ("*.example.com", ".example.com", False),
        ("*.example.com", "mx1.example.org", False),
        ("*.example.com", "mx1example.com", False),
        ("*.example.com", "*.example.com", False),
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "Mail.Example.Com.", True),
        ("mail.example.com", "x.mail.example.com", False),
        ("mail.example.com", "example.com", False),
    ],
)
def test_mx_patterns_match_as_rfc_8461_says(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected


_LABEL = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@given(_LABEL, _LABEL, st.lists(_LABEL, min_size=1, max_size=3))
def test_a_wildcard_covers_exactly_one_label(extra: str, label: str, domain: list[str]) -> None:
    parent = ".".join(domain)
    policy = Policy("x", Mode.ENFORCE, (f"*.{parent}",), 60)
    assert policy.allows_mx(f"{label}.{parent}")
    assert not policy.allows_mx(parent)
    assert not policy.allows_mx(f"{extra}.{label}.{parent}")
