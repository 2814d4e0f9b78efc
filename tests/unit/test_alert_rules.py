"""Alert rates, minimum volume and hysteresis (postroom.domain.alerts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from postroom.domain.alerts import Alert, State, WindowCounts, decide, measure

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
HOLD = timedelta(minutes=30)


def test_rates_and_their_denominators() -> None:
    counts = WindowCounts(delivered=90, bounced=10, soft_bounced=25, spam=1)
    assert measure(Alert.BOUNCE_RATE, counts, 50) == 0.1
    assert measure(Alert.DEFERRAL_RATE, counts, 50) == 0.2
    assert measure(Alert.COMPLAINT_RATE, counts, 50) == pytest.approx(1 / 90)


def test_too_little_volume_is_not_judged() -> None:
    assert measure(Alert.BOUNCE_RATE, WindowCounts(delivered=2, bounced=1), 50) is None
    assert decide(State(), None, 0.05, 0.5, HOLD, NOW) is None


def test_raise_at_threshold_and_clear_only_well_below_it() -> None:
    assert decide(State(), 0.05, 0.05, 0.5, HOLD, NOW) is True
    assert decide(State(), 0.049, 0.05, 0.5, HOLD, NOW) is None
    raised = State(raised=True, raised_at=NOW - timedelta(hours=1))
    assert decide(raised, 0.04, 0.05, 0.5, HOLD, NOW) is None  # below, but not well below
    assert decide(raised, 0.025, 0.05, 0.5, HOLD, NOW) is False


def test_no_change_within_the_hold_time() -> None:
    just_raised = State(raised=True, raised_at=NOW - timedelta(minutes=5))
    assert decide(just_raised, 0.0, 0.05, 0.5, HOLD, NOW) is None
    just_cleared = State(raised=False, cleared_at=NOW - timedelta(minutes=5))
    assert decide(just_cleared, 0.9, 0.05, 0.5, HOLD, NOW) is None
    assert decide(just_cleared, 0.9, 0.05, 0.5, HOLD, NOW + HOLD) is True
