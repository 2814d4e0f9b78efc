"""Sending streams: transactional and bulk mail travel separately end to end."""

from __future__ import annotations

from enum import StrEnum


class Stream(StrEnum):
    """A sending stream, spelled as the Mailtrap contract spells it."""

    TRANSACTIONAL = "transactional"
    BULK = "bulk"

    @property
    def priority(self) -> int:
        """Queue priority: lower is leased first, so transactional mail never waits on bulk."""
        return 0 if self is Stream.TRANSACTIONAL else 10
