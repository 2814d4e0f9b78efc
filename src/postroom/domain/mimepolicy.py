"""``policy.default`` with parsed header values remembered: the same reading, paid once.

Under the stdlib's modern policy, every access to a header of a parsed message
(``msg["Content-Type"]``; ``get_body`` and ``get_content`` ask for it many times) runs
the RFC 5322 header parser again and builds a new class for the header: reading the
bodies of one plain message parsed its ``Content-Type`` nine times, most of the cost of
an SMTP submission (docs/benchmarks.md, F13). Header objects are immutable, so one name
and unfolded value can share one object, across messages too (``Content-Type`` and its
siblings repeat from message to message). Only reads go through here: serialising a
parsed message folds from its source text, never from these objects.
"""

from __future__ import annotations

import re
from email.policy import EmailPolicy, default
from functools import lru_cache
from typing import Any

# What EmailPolicy.header_fetch_parse removes from a folded value before parsing it.
_LINE_BREAKS = re.compile(r"\n|\r")
# Longer values (a To: of a thousand addresses) are parsed each time, not kept.
MAX_REMEMBERED = 1000


@lru_cache(maxsize=4096)
def _remembered(name: str, value: str) -> Any:
    return default.header_factory(name, value)


class MemoPolicy(EmailPolicy):
    """``policy.default``, each (name, unfolded value) parsed once (a bounded LRU)."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if hasattr(value, "name"):  # already a header object, as EmailPolicy allows
            return value
        unfolded = "".join(_LINE_BREAKS.split(value))
        if len(unfolded) > MAX_REMEMBERED:
            return default.header_factory(name, unfolded)
        return _remembered(name, unfolded)


MEMO = MemoPolicy()
