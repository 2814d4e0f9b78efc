"""The email-logs filter table of spec §4.6: operators, value types, unknown fields."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from postroom.domain.logfilters import FIELDS, Filter, InvalidFilters, parse_filters
from postroom.domain.querystring import parse


def _parse(pairs: list[tuple[str, str]]) -> tuple[Filter, ...]:
    return parse_filters(parse(urlencode(pairs))).filters


def test_every_field_with_every_operator_parses() -> None:
    samples = {"int": "3", "status": "delivered", "event": "open", "stream": "bulk"}
    for field, (operators, kind) in FIELDS.items():
        for operator in operators:
            pairs = [(f"filters[{field}][operator]", operator)]
            if operator not in ("empty", "not_empty"):
                pairs.append((f"filters[{field}][value]", samples.get(kind, "x")))
            [found] = _parse(pairs)
            assert (found.field, found.operator) == (field, operator)


def test_values_are_typed_and_lists_kept() -> None:
    [ids] = _parse(
        [
            ("filters[sending_domain_id][operator]", "not_equal"),
            ("filters[sending_domain_id][value][]", "4"),
            ("filters[sending_domain_id][value][]", "7"),
        ]
    )
    assert ids.values == (4, 7) and ids.negative


def test_times_are_utc() -> None:
    query = parse_filters(
        parse(
            urlencode(
                [
                    ("filters[sent_after]", "2025-01-01T10:00:00+02:00"),
                    ("filters[sent_before]", "2025-01-02T00:00:00Z"),
                ]
            )
        )
    )
    assert query.sent_after == datetime(2025, 1, 1, 8, tzinfo=UTC)
    assert query.sent_before == datetime(2025, 1, 2, tzinfo=UTC)


def test_unknown_fields_are_ignored() -> None:
    assert _parse([("filters[colour][operator]", "equal"), ("filters[colour][value]", "x")]) == ()


@pytest.mark.parametrize(
    "pairs",
    [
        [("filters[to][operator]", "equal"), ("filters[to][value]", "a")],  # not a ci_ op
        [("filters[status][operator]", "equal"), ("filters[status][value]", "lost")],
        [("filters[opens_count][operator]", "greater_than"), ("filters[opens_count][value]", "x")],
        [("filters[events][operator]", "include_event"), ("filters[events][value]", "spam2")],
        [("filters[sending_stream][operator]", "equal"), ("filters[sending_stream][value]", "x")],
        [("filters[category][operator]", "equal")],  # no value
        [("filters[sent_after]", "yesterday")],
    ],
)
def test_known_fields_with_bad_operators_or_values_are_invalid(
    pairs: list[tuple[str, str]],
) -> None:
    with pytest.raises(InvalidFilters):
        parse_filters(parse(urlencode(pairs)))
