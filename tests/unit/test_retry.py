"""The retry schedule: exponential backoff, cap, window, jitter (reliability.md T2.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postroom.domain.retry import RetrySchedule, base_delay, expired, next_attempt

T0 = datetime(2026, 1, 1, tzinfo=UTC)
DEFAULT = RetrySchedule()


def _mid() -> float:
    return 0.5  # the jitter midpoint: no jitter


def _delay(schedule: RetrySchedule, attempts: int, *, now: datetime = T0, r: float = 0.5) -> float:
    when = next_attempt(schedule, attempts=attempts, first_attempt_at=T0, now=now, rand=lambda: r)
    assert when is not None
    return (when - now).total_seconds()


def test_delays_double_from_five_minutes_to_the_cap() -> None:
    delays = [_delay(DEFAULT, n) for n in range(1, 9)]
    assert delays == [300, 600, 1200, 2400, 4800, 9600, 14400, 14400]


def test_delay_counts_from_now_not_from_first_attempt() -> None:
    now = T0 + timedelta(hours=1)
    when = next_attempt(DEFAULT, attempts=1, first_attempt_at=T0, now=now, rand=_mid)
    assert when == now + timedelta(seconds=300)


def test_huge_attempt_counts_stay_at_the_cap() -> None:
    assert base_delay(DEFAULT, 10_000) == DEFAULT.max_delay
    assert base_delay(RetrySchedule(factor=1.0), 10**9) == 300


def test_attempts_start_at_one() -> None:
    with pytest.raises(ValueError):
        base_delay(DEFAULT, 0)


def test_past_the_window_the_delivery_fails_for_good() -> None:
    end = T0 + timedelta(seconds=DEFAULT.window)
    # A retry that lands exactly on the window end is still allowed ...
    at_end = end - timedelta(seconds=DEFAULT.max_delay)
    assert next_attempt(DEFAULT, attempts=20, first_attempt_at=T0, now=at_end, rand=_mid) == end
    # ... one second later it would land outside: give up.
    late = at_end + timedelta(seconds=1)
    assert next_attempt(DEFAULT, attempts=20, first_attempt_at=T0, now=late, rand=_mid) is None
    assert not expired(DEFAULT, T0, end)
    assert expired(DEFAULT, T0, end + timedelta(seconds=1))


def test_full_default_schedule_ends_within_the_window() -> None:
    now, attempts, times = T0, 1, []
    while (
        when := next_attempt(DEFAULT, attempts=attempts, first_attempt_at=T0, now=now, rand=_mid)
    ) is not None:
        times.append(when)
        now, attempts = when, attempts + 1
    assert times[-1] <= T0 + timedelta(seconds=DEFAULT.window)
    # The last attempt is within one (capped) interval of the window end.
    assert T0 + timedelta(seconds=DEFAULT.window - DEFAULT.max_delay) < times[-1]
    assert attempts - 1 == len(times) == 22


@given(
    attempts=st.integers(min_value=1, max_value=40),
    r=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_jitter_stays_within_bounds(attempts: int, r: float) -> None:
    base = base_delay(DEFAULT, attempts)
    delay = _delay(DEFAULT, attempts, r=r)
    # timedelta rounds to microseconds.
    assert base * 0.9 - 1e-5 <= delay <= base * 1.1 + 1e-5


def test_jitter_extremes() -> None:
    assert _delay(DEFAULT, 1, r=0.0) == pytest.approx(270)
    assert _delay(DEFAULT, 1, r=0.999999) == pytest.approx(330, abs=0.01)


def test_two_deliveries_deferred_in_the_same_second_retry_at_different_times() -> None:
    a = next_attempt(DEFAULT, attempts=3, first_attempt_at=T0, now=T0, rand=lambda: 0.31)
    b = next_attempt(DEFAULT, attempts=3, first_attempt_at=T0, now=T0, rand=lambda: 0.77)
    assert a is not None and b is not None
    assert abs((a - b).total_seconds()) >= 1


def test_seconds_scale_schedule_for_fast_tests() -> None:
    fast = RetrySchedule(first_delay=1, window=10, max_delay=4, jitter=0)
    now, attempts, delays = T0, 1, []
    while (
        when := next_attempt(fast, attempts=attempts, first_attempt_at=T0, now=now, rand=_mid)
    ) is not None:
        delays.append((when - now).total_seconds())
        now, attempts = when, attempts + 1
    assert delays == [1, 2, 4]  # at t=7 the next (4 s) would land at 11 > 10
    assert expired(fast, T0, T0 + timedelta(seconds=10.5))


@pytest.mark.parametrize(
    "kwargs",
    [{"first_delay": 0}, {"factor": 0.5}, {"max_delay": 1}, {"window": 0}, {"jitter": 1.0}],
)
def test_nonsense_schedules_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetrySchedule(**kwargs)
