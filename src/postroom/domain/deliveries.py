"""Delivery states: the queue's state machine for one recipient of one message.

    queued ──lease──> leased ──> delivered
      ^                 │    ├─> rejected  (never attempted)
      └─── deferred ────┘    ├─> bounced   (5xx)
          (4xx: later)       ├─> failed    (retry window over)
                             └─> shunted   (leased too often: a crash loop)

A lease is not a state: a row is leased while ``lease_expires_at`` is in the future. A
worker that dies simply lets its leases expire and the rows become due again: leases,
never deletions.
"""

from __future__ import annotations

from enum import StrEnum


class DeliveryState(StrEnum):
    """Where one recipient's delivery stands."""

    QUEUED = "queued"
    DELIVERED = "delivered"
    REJECTED = "rejected"
    SUPPRESSED = "suppressed"  # the recipient is on the suppression list: never sent
    BOUNCED = "bounced"
    FAILED = "failed"
    SHUNTED = "shunted"

    @property
    def is_final(self) -> bool:
        return self is not DeliveryState.QUEUED


class RecipientKind(StrEnum):
    """Which header field named the recipient."""

    TO = "to"
    CC = "cc"
    BCC = "bcc"
