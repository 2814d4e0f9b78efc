"""The three wire encodings of list filters parse to one shape (spec §4.6)."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from postroom.domain.querystring import parse

# The same filter set as each SDK puts it on the wire.
PY = (
    "filters%5Bto%5D%5Boperator%5D=ci_equal"
    "&filters%5Bto%5D%5Bvalue%5D%5B%5D=a%40x.com&filters%5Bto%5D%5Bvalue%5D%5B%5D=b%40x.com"
    "&filters%5Bsent_after%5D=2025-01-01T00%3A00%3A00Z"
)
NODE = (
    "filters[to][operator]=ci_equal&filters[to][value][]=a%40x.com"
    "&filters[to][value][]=b%40x.com&filters[sent_after]=2025-01-01T00:00:00Z"
)
RB = (
    "filters%5Bto%5D%5Boperator%5D=ci_equal"
    "&filters%5Bto%5D%5Bvalue%5D%5B1%5D=b%40x.com&filters%5Bto%5D%5Bvalue%5D%5B0%5D=a%40x.com"
    "&filters%5Bsent_after%5D=2025-01-01T00%3A00%3A00Z"
)


@pytest.mark.parametrize("query", [PY, NODE, RB], ids=["python", "node", "ruby"])
def test_every_encoding_reads_the_same(query: str) -> None:
    params = parse(query)
    assert params.all("filters", "to", "value") == ["a@x.com", "b@x.com"]
    assert params.one("filters", "to", "operator") == "ci_equal"
    assert params.one("filters", "sent_after") == "2025-01-01T00:00:00Z"
    assert params.children("filters") == ["to", "sent_after"]


def test_indexed_items_follow_their_index_not_their_arrival() -> None:
    query = "v%5B10%5D=c&v%5B2%5D=b&v%5B0%5D=a"
    assert parse(query).all("v") == ["a", "b", "c"]


def test_a_lone_value_and_plain_arrays() -> None:
    params = parse(urlencode([("filters[subject][value]", "Hi there"), ("ids[]", "1")]))
    assert params.all("filters", "subject", "value") == ["Hi there"]
    assert params.all("ids") == ["1"]
    assert params.one("missing") is None
    assert params.all("missing") == []


@pytest.mark.parametrize("key", ["a]b", "a[b", "[x]", "a[][b]", "a[b]c"])
def test_malformed_keys_are_ignored(key: str) -> None:
    assert parse(urlencode([(key, "1"), ("ok", "2")])).all("ok") == ["2"]
    assert parse(urlencode([(key, "1")])).children("a") == []


def test_too_many_pairs_is_refused() -> None:
    with pytest.raises(ValueError):
        parse("&".join(f"k{i}=v" for i in range(2000)))
