"""Per-domain alert rules: what is measured, over what, and when an alert changes state.

Rates are measured over a sliding window of events (``alert_window_minutes``):

- ``bounce_rate`` = bounces / (deliveries + bounces)          (a health alert)
- ``deferral_rate`` = soft bounces / (deliveries + bounces + soft bounces)   (health)
- ``complaint_rate`` = spam complaints / deliveries           (critical)
- ``dns_lost``: the domain was verified and its DNS no longer verifies   (critical)

A rate is only judged once the window holds ``alert_min_volume`` attempts, so three
messages and one bounce are not a 33 % bounce rate. Hysteresis keeps one bad minute from
flooding anyone: an alert raises when the rate reaches its threshold, clears only once it
falls to ``clear_ratio`` × threshold, and neither happens within ``hold`` of the last
change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Alert(StrEnum):
    BOUNCE_RATE = "bounce_rate"
    DEFERRAL_RATE = "deferral_rate"
    COMPLAINT_RATE = "complaint_rate"
    DNS_LOST = "dns_lost"

    @property
    def critical(self) -> bool:
        """Critical alerts follow ``critical_alerts_enabled``, the others ``health_…``."""
        return self in (Alert.COMPLAINT_RATE, Alert.DNS_LOST)


@dataclass(frozen=True, slots=True)
class WindowCounts:
    delivered: int = 0
    bounced: int = 0
    soft_bounced: int = 0
    spam: int = 0


def measure(alert: Alert, counts: WindowCounts, min_volume: int) -> float | None:
    """The rate ``alert`` watches, or None when the window holds too little to judge."""
    if alert is Alert.BOUNCE_RATE:
        part, whole = counts.bounced, counts.delivered + counts.bounced
    elif alert is Alert.DEFERRAL_RATE:
        part = counts.soft_bounced
        whole = counts.delivered + counts.bounced + counts.soft_bounced
    elif alert is Alert.COMPLAINT_RATE:
        part, whole = counts.spam, counts.delivered
    else:
        raise ValueError("dns_lost is not a rate")
    return part / whole if whole >= min_volume else None


@dataclass(frozen=True, slots=True)
class State:
    raised: bool = False
    raised_at: datetime | None = None
    cleared_at: datetime | None = None


def decide(
    state: State,
    value: float | None,
    threshold: float,
    clear_ratio: float,
    hold: timedelta,
    now: datetime,
) -> bool | None:
    """True to raise, False to clear, None to leave the alert as it is."""
    if value is None:
        return None
    last_change = state.raised_at if state.raised else state.cleared_at
    if last_change is not None and now - last_change < hold:
        return None
    if not state.raised and value >= threshold:
        return True
    if state.raised and value <= threshold * clear_ratio:
        return False
    return None
