"""Forward rules of an inbound inbox: their shape (the Python SDK's), checked, and matching.

Pure. A rule has a name, conditions and destinations. Every condition must hold for the
rule to forward a message (no conditions: every message). A condition compares one value
of the message, case-insensitively:

* ``sender``: the From address;
* ``recipient``: each To and Cc address; ``equal``, ``contains``, ``starts_with`` and
  ``ends_with`` hold when one of them does, ``not_equal`` when none is equal, ``empty``
  when there are none;
* ``header``: the header ``header_key`` (all its fields joined by ", "; absent is empty).

``empty`` and ``not_empty`` take no ``value``; the others need one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from postroom.domain.addresses import is_valid_email
from postroom.domain.headers import is_header_text

MATCH_TYPES = ("sender", "recipient", "header")
OPERATORS = ("equal", "not_equal", "contains", "starts_with", "ends_with", "empty", "not_empty")
NAME_MAX = 100
VALUE_MAX = 500
MAX_CONDITIONS = 20
MAX_DESTINATIONS = 10
_HEADER_KEY_MAX = 76


@dataclass(frozen=True, slots=True)
class Condition:
    match_type: str
    operator: str
    value: str | None = None
    header_key: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "match_type": self.match_type,
            "operator": self.operator,
            "value": self.value,
            "header_key": self.header_key,
        }


def _condition(item: object, at: str, errors: dict[str, list[str]]) -> Condition | None:
    if not isinstance(item, dict):
        errors.setdefault(at, []).append("must be an object")
        return None
    match_type, operator = item.get("match_type"), item.get("operator")
    value, header_key = item.get("value"), item.get("header_key")
    problems = []
    if match_type not in MATCH_TYPES:
        problems.append(f"match_type must be one of {', '.join(MATCH_TYPES)}")
    if operator not in OPERATORS:
        problems.append(f"operator must be one of {', '.join(OPERATORS)}")
    if operator in ("empty", "not_empty"):
        value = None
    elif not isinstance(value, str) or not value.strip():
        problems.append("value can't be blank")
    elif len(value) > VALUE_MAX:
        problems.append(f"value is too long (maximum is {VALUE_MAX} characters)")
    if match_type == "header":
        if (
            not isinstance(header_key, str)
            or not header_key.strip()
            or len(header_key) > _HEADER_KEY_MAX
            or ":" in header_key
            or not header_key.isascii()
            or not header_key.strip().isprintable()
            or " " in header_key.strip()
        ):
            problems.append("header_key must be a header name")
    else:
        header_key = None
    if problems:
        errors.setdefault(at, []).extend(problems)
        return None
    return Condition(
        str(match_type),
        str(operator),
        value.strip() if isinstance(value, str) else None,
        header_key.strip().lower() if isinstance(header_key, str) else None,
    )


def parse_conditions(value: object, errors: dict[str, list[str]]) -> list[Condition]:
    if value is None:
        return []
    if not isinstance(value, list):
        errors.setdefault("conditions", []).append("must be an array")
        return []
    if len(value) > MAX_CONDITIONS:
        errors.setdefault("conditions", []).append(f"at most {MAX_CONDITIONS} conditions")
        return []
    found = [_condition(item, f"conditions[{i}]", errors) for i, item in enumerate(value)]
    return [c for c in found if c is not None]


def parse_destinations(value: object, forbidden: str, errors: dict[str, list[str]]) -> list[str]:
    """The destination addresses (``[{"email"}]``), checked; ``forbidden`` (the inbox's
    own address) would loop."""
    if not isinstance(value, list) or not value:
        errors.setdefault("destinations", []).append("must list at least one address")
        return []
    if len(value) > MAX_DESTINATIONS:
        errors.setdefault("destinations", []).append(f"at most {MAX_DESTINATIONS} addresses")
        return []
    found: list[str] = []
    for i, item in enumerate(value):
        email = item.get("email") if isinstance(item, dict) else None
        if not isinstance(email, str) or len(email) > 320 or not is_valid_email(email.strip()):
            errors.setdefault(f"destinations[{i}]", []).append("email is invalid")
            continue
        email = email.strip()
        if email.lower() == forbidden.lower():
            errors.setdefault(f"destinations[{i}]", []).append(
                "is the inbox's own address (the rule would forward to itself)"
            )
        elif email.lower() not in (f.lower() for f in found):
            found.append(email)
    return found


def parse_name(value: object, errors: dict[str, list[str]]) -> str:
    if not isinstance(value, str) or not value.strip():
        errors.setdefault("name", []).append("can't be blank")
        return ""
    if len(value.strip()) > NAME_MAX:
        errors.setdefault("name", []).append(f"is too long (maximum is {NAME_MAX} characters)")
    elif not is_header_text(value.strip()):
        errors.setdefault("name", []).append("contains invalid characters")
    return value.strip()


def _holds(operator: str, values: list[str], wanted: str | None) -> bool:
    folded = [v.casefold() for v in values if v]
    want = (wanted or "").casefold()
    if operator == "empty":
        return not folded
    if operator == "not_empty":
        return bool(folded)
    if operator == "not_equal":
        return want not in folded
    tests: dict[str, Callable[[str], bool]] = {
        "equal": lambda v: v == want,
        "contains": lambda v: want in v,
        "starts_with": lambda v: v.startswith(want),
        "ends_with": lambda v: v.endswith(want),
    }
    return any(tests[operator](v) for v in folded)


def matches(conditions: list[Condition], summary: Mapping[str, Any]) -> bool:
    """Whether a message (its stored summary: from, to, cc, headers) meets every condition."""
    headers = summary.get("headers") or {}
    for condition in conditions:
        if condition.match_type == "sender":
            values = [str(summary.get("from") or "")]
        elif condition.match_type == "recipient":
            values = [str(a) for a in [*(summary.get("to") or []), *(summary.get("cc") or [])]]
        else:
            values = [str(headers.get(condition.header_key or "", ""))]
        if not _holds(condition.operator, values, condition.value):
            return False
    return True


def conditions_of(stored: object) -> list[Condition]:
    """The conditions of a stored rule (JSON written by :meth:`Condition.as_json`)."""
    items = stored if isinstance(stored, list) else []
    return [
        Condition(i["match_type"], i["operator"], i.get("value"), i.get("header_key"))
        for i in items
        if isinstance(i, dict)
    ]
