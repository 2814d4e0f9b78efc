"""SendingStats (spec §4.3): counters and the rates the contract derives from them.

Denominators, as Mailtrap's recorded answers have them (the Ruby SDK's cassettes:
150 delivered, 8 bounced, 120 opened, 60 clicked, 2 spam → 0.95, 0.05, 0.8, 0.5, 0.013):

- ``delivery_rate`` = delivered / (delivered + bounced): of the messages that reached a
  final answer, the share accepted; ``bounce_rate`` = bounced / the same.
- ``open_count``/``open_rate`` = opened / delivered: unique opens by people (a message
  opened twice counts once; opens by machines such as Apple's privacy proxy or security
  scanners never count).
- ``click_rate`` = clicked / opened (unique clicks over unique opens).
- ``spam_rate`` = spam complaints / delivered.
- Postroom's extras: ``total_open_count``/``total_click_count`` (every open and click
  by people), ``machine_open_count``/``machine_click_count``, ``unsubscribe_count`` and
  ``unsubscribe_rate`` (unsubscribes / delivered).

A rate with a zero denominator is 0.0. Rates are rounded to four decimals.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

COUNTERS = (
    "delivered",
    "bounced",
    "soft_bounced",
    "rejected",
    "opened",
    "clicked",
    "spam",
    "unsubscribed",
    "opens",
    "clicks",
    "machine_opens",
    "machine_clicks",
)


@dataclass(slots=True)
class Counts:
    """Summed rollup counters."""

    delivered: int = 0
    bounced: int = 0
    soft_bounced: int = 0
    rejected: int = 0
    opened: int = 0
    clicked: int = 0
    spam: int = 0
    unsubscribed: int = 0
    opens: int = 0
    clicks: int = 0
    machine_opens: int = 0
    machine_clicks: int = 0

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    @classmethod
    def of(cls, row: Any) -> Counts:
        """From a row (mapping) holding every counter; NULL sums count as zero."""
        return cls(**{name: int(row[name] or 0) for name in COUNTERS})


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def sending_stats(c: Counts) -> dict[str, Any]:
    """The contract's SendingStats object."""
    final = c.delivered + c.bounced
    return {
        "delivery_count": c.delivered,
        "delivery_rate": rate(c.delivered, final),
        "bounce_count": c.bounced,
        "bounce_rate": rate(c.bounced, final),
        "open_count": c.opened,
        "open_rate": rate(c.opened, c.delivered),
        "click_count": c.clicked,
        "click_rate": rate(c.clicked, c.opened),
        "spam_count": c.spam,
        "spam_rate": rate(c.spam, c.delivered),
        # Postroom's extras (the SDKs ignore unknown keys): every open and click by
        # people, those of machines (privacy proxies, scanners; never in the counts
        # above), and unsubscribes.
        "total_open_count": c.opens,
        "total_click_count": c.clicks,
        "machine_open_count": c.machine_opens,
        "machine_click_count": c.machine_clicks,
        "unsubscribe_count": c.unsubscribed,
        "unsubscribe_rate": rate(c.unsubscribed, c.delivered),
    }
