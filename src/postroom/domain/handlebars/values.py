"""How JSON values behave in a template: lookup, truthiness, text and HTML escaping.

Lookups only index dicts and lists (never ``getattr``), so a template sees nothing but
the variables it was given. Text follows JavaScript, as Handlebars does (``true``,
``1.5``, arrays joined with commas); truthiness follows the contract (spec §6): ``""``,
``0``, null, ``false`` and empty objects and arrays are false.
"""

from __future__ import annotations

import re

_ESCAPES = {
    "&": "&amp;",
    "<": "&lt;",
    ">": "&gt;",
    '"': "&quot;",
    "'": "&#x27;",
    "`": "&#x60;",
    "=": "&#x3D;",
}
_NEEDS_ESCAPE = re.compile("[&<>\"'`=]")
_MAX_INDEX_DIGITS = 9
_MAX_JOIN_DEPTH = 32


def child(value: object, key: str) -> object:
    """``value[key]`` for an object, an array index or ``length``; None otherwise."""
    if type(value) is dict:
        return value.get(key)
    if isinstance(value, list):
        if key.isdigit() and key.isascii() and len(key) <= _MAX_INDEX_DIGITS:
            index = int(key)
            return value[index] if index < len(value) else None
        return len(value) if key == "length" else None
    if isinstance(value, str) and key == "length":
        return len(value)
    return None


def truthy(value: object) -> bool:
    """The contract's rule: false, 0, "", null, {} and [] are false; all else is true."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float | str | list | dict):
        return bool(value)
    return True


def to_text(value: object, depth: int = 0) -> str:
    """A value as Handlebars would print it (JavaScript's String())."""
    kind = type(value)
    if kind is str:
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return _integer(value)  # type: ignore[arg-type]
    if kind is float:
        return _number(value)  # type: ignore[arg-type]
    if kind is list:
        if depth >= _MAX_JOIN_DEPTH:
            return ""
        return ",".join(to_text(item, depth + 1) for item in value)  # type: ignore[attr-defined]
    if kind is dict:
        return "[object Object]"
    return ""


def _integer(value: int) -> str:
    try:
        return str(value)
    except ValueError:  # beyond Python's int-to-str digit limit: print as JavaScript would
        return "Infinity" if value > 0 else "-Infinity"


def _number(value: float) -> str:
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def escape(text: str) -> str:
    """Handlebars' HTML escaping: & < > " ' ` and =."""
    if _NEEDS_ESCAPE.search(text) is None:
        return text
    return _NEEDS_ESCAPE.sub(lambda m: _ESCAPES[m.group()], text)
