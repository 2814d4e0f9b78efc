"""Rails-style nested query parameters, in every encoding the SDKs put on the wire.

The contract's list filters arrive three ways (spec §4.6): the Python SDK percent-encodes
the brackets (``filters%5Bto%5D%5Bvalue%5D%5B%5D=a``), the Node SDK sends them raw
(``filters[to][value][]=a``) and the Ruby SDK numbers the items
(``filters%5Bto%5D%5Bvalue%5D%5B0%5D=a``). :func:`parse` reads all three into one shape:
the key's path without its list markers, mapped to the values in order, so
``filters[to][value][]``, ``filters[to][value][0]`` and a lone ``filters[to][value]``
all land on ``("filters", "to", "value")``.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

# A name followed by any number of bracketed segments; anything else is not nested.
_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")

# A query integer: ASCII digits (``int()`` would also take "١٢", " 12" and "1_2") that
# fit the 64-bit columns they are compared with.
_INTEGER = re.compile(r"-?[0-9]{1,19}")
INT64 = 2**63

MAX_PAIRS = 1000  # far above any real filter set; bounds the work a request can cause
MAX_DEPTH = 6

Path = tuple[str, ...]


class QueryParams:
    """Parsed parameters: a path (name and bracket segments) maps to its values."""

    def __init__(self, values: dict[Path, list[str]]) -> None:
        self._values = values

    def all(self, *path: str) -> list[str]:
        """Every value at ``path`` (empty when absent), in the order the client gave."""
        return list(self._values.get(path, []))

    def one(self, *path: str) -> str | None:
        """The first value at ``path``, or None."""
        found = self._values.get(path)
        return found[0] if found else None

    def children(self, *path: str) -> list[str]:
        """The distinct segment names directly under ``path`` (e.g. the filter fields)."""
        depth = len(path)
        seen: dict[str, None] = {}
        for key in self._values:
            if len(key) > depth and key[:depth] == path:
                seen.setdefault(key[depth], None)
        return list(seen)


def integer(raw: str) -> int:
    """A query value as a signed 64-bit integer; ValueError for anything else."""
    if _INTEGER.fullmatch(raw) is None or not -INT64 <= (value := int(raw)) < INT64:
        raise ValueError(f"{raw[:40]!r} is not a 64-bit integer")
    return value


def parse(query: str) -> QueryParams:
    """Parse a raw query string (percent-encoded or not) into :class:`QueryParams`."""
    # Indexed items ([0], [1]) are ordered by their index; the others keep arrival order.
    collected: dict[Path, list[tuple[int, int, str]]] = {}
    pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PAIRS)
    for arrival, (key, value) in enumerate(pairs):
        parsed = _split(key)
        if parsed is None:
            continue
        path, index = parsed
        collected.setdefault(path, []).append((index, arrival, value))
    return QueryParams(
        {path: [value for _, _, value in sorted(items)] for path, items in collected.items()}
    )


def _split(key: str) -> tuple[Path, int] | None:
    """``a[b][c][]`` → ((a, b, c), -1); ``a[b][3]`` → ((a, b), 3); malformed → None."""
    match = _KEY.match(key)
    if match is None:
        return None
    segments = _SEGMENT.findall(match.group(2))
    if len(segments) > MAX_DEPTH:
        return None
    index = -1
    if segments and (segments[-1] == "" or segments[-1].isdigit()):
        marker = segments.pop()
        index = int(marker) if marker else -1
    if "" in segments:
        return None
    return (match.group(1), *segments), index
