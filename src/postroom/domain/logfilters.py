"""The email-logs filter language of spec §4.6, checked and typed (no SQL here).

``filters[sent_after]`` and ``filters[sent_before]`` bound the time; every other field
takes ``filters[<field>][operator]`` and ``filters[<field>][value]`` (one value or a
list). Unknown fields are ignored, as the contract says; a known field with an operator
it does not take, or a value of the wrong type, makes the whole request invalid (Mailtrap
answers ``422 {"errors": {"filters": "invalid"}}``).

A list under a positive operator (``equal``, ``ci_contain``, ``include_event``…) matches
when any value matches; under a negative one (``not_equal``…) when none does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from postroom.domain.querystring import QueryParams, integer

CI = ("ci_contain", "ci_not_contain", "ci_equal", "ci_not_equal")
EQ = ("equal", "not_equal")
CONTAIN = ("equal", "not_equal", "contain", "not_contain")
COUNT = ("equal", "greater_than", "less_than")
STATUSES = ("delivered", "not_delivered", "enqueued", "opted_out")
EVENT_TYPES = (
    "delivery",
    "open",
    "click",
    "soft_bounce",
    "bounce",
    "spam",
    "unsubscribe",
    "suspension",
    "reject",
)
STREAMS = ("transactional", "bulk")

# field -> (operators, value kind); value kinds are checked in _values().
FIELDS: dict[str, tuple[tuple[str, ...], str]] = {
    "to": (CI, "str"),
    "from": (CI, "str"),
    "subject": ((*CI, "empty", "not_empty"), "str"),
    "status": (EQ, "status"),
    "events": (("include_event", "not_include_event"), "event"),
    "clicks_count": (COUNT, "int"),
    "opens_count": (COUNT, "int"),
    "client_ip": (CONTAIN, "str"),
    "sending_ip": (CONTAIN, "str"),
    "email_service_provider_response": (CI, "str"),
    "recipient_mx": (CI, "str"),
    "email_service_provider": (EQ, "str"),
    "category": (EQ, "str"),
    "sending_domain_id": (EQ, "int"),
    "sending_stream": (EQ, "stream"),
}
# Other names of a field: the current contract's OpenAPI says domain_id, the SDKs and
# the older docs sending_domain_id.
ALIASES: dict[str, str] = {"domain_id": "sending_domain_id"}
NEGATIVE = frozenset(
    {"ci_not_contain", "ci_not_equal", "not_equal", "not_contain", "not_include_event"}
)
VALUELESS = frozenset({"empty", "not_empty"})


class InvalidFilters(ValueError):
    """A known filter with an operator or value it does not take."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition: ``field`` ``operator`` any/none of ``values``."""

    field: str
    operator: str
    values: tuple[str | int, ...]

    @property
    def negative(self) -> bool:
        return self.operator in NEGATIVE


@dataclass(frozen=True, slots=True)
class LogQuery:
    """What the client asked for: a time range and the conditions, all to hold."""

    sent_after: datetime | None = None
    sent_before: datetime | None = None
    filters: tuple[Filter, ...] = ()


def parse_filters(params: QueryParams) -> LogQuery:
    """Read ``filters[…]`` from parsed query parameters; raises InvalidFilters."""
    found: list[Filter] = []
    for given in params.children("filters"):
        field = ALIASES.get(given, given)
        if field not in FIELDS:  # sent_after and sent_before are read below
            continue
        found.append(_one(params, given, field))
    return LogQuery(
        sent_after=_time(params.one("filters", "sent_after")),
        sent_before=_time(params.one("filters", "sent_before")),
        filters=tuple(found),
    )


def _one(params: QueryParams, given: str, field: str) -> Filter:
    """The condition on ``field``, given as ``filters[<given>]`` (the field or an alias)."""
    operators, kind = FIELDS[field]
    operator = params.one("filters", given, "operator")
    if operator not in operators:
        raise InvalidFilters(f"{given}: operator {operator!r} is not allowed")
    raw = params.all("filters", given, "value")
    if operator in VALUELESS:
        return Filter(field, operator, ())
    if not raw:
        raise InvalidFilters(f"{field}: a value is required")
    return Filter(field, operator, tuple(_value(field, kind, v) for v in raw))


def _value(field: str, kind: str, raw: str) -> str | int:
    if kind == "int":
        try:
            return integer(raw)
        except ValueError:
            raise InvalidFilters(f"{field}: {raw!r} is not an integer") from None
    allowed = {"status": STATUSES, "event": EVENT_TYPES, "stream": STREAMS}.get(kind)
    if allowed is not None and raw not in allowed:
        raise InvalidFilters(f"{field}: {raw!r} is not one of {', '.join(allowed)}")
    return raw


def _time(raw: str | None) -> datetime | None:
    """An ISO 8601 instant (``Z`` or an offset; a bare date or naive time is UTC)."""
    if raw is None or raw == "":
        return None
    try:
        parsed = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise InvalidFilters(f"{raw!r} is not an ISO 8601 time") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
