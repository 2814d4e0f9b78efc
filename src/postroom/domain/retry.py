"""When to retry a deferred delivery, and when to give up.

Norms (reference/reliability.md §2.1-2.3):

* RFC 5321 §4.5.4.1: mail that cannot be delivered "MUST be queued and periodically
  retried", the sender "MUST delay retrying a particular destination after one attempt has
  failed", and the retry parameters "MUST be configurable".
* Postfix backs off exponentially from ``minimal_backoff_time`` = 300 s, doubling per
  attempt, capped at ``maximal_backoff_time``; Exim and Postal also grow the interval
  geometrically and stop after a lifetime.
* T2.1: attempts follow the configured schedule (±5 %), expiry happens at the lifetime
  ± one interval, and jitter is present: two messages deferred in the same second must not
  retry in the same second (no thundering herd against a recovering MX).

What this module decides: the delay after the n-th failure is
``min(first_delay * factor ** (n - 1), max_delay)``, jittered by ±``jitter`` of itself, and
a delivery whose next attempt would fall past ``first_attempt_at + window`` fails for good.

The defaults (5 min, ×2, 4 h cap, 72 h window) are the brief's; RFC 5321 suggests a give-up
time of "at least 4-5 days", so a deployment that wants the RFC's letter configures a
longer ``window``. Pure: the clock and the randomness are passed in.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff parameters; all durations in seconds."""

    first_delay: float = 300.0
    factor: float = 2.0
    max_delay: float = 4 * 3600.0
    window: float = 72 * 3600.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        # A schedule that never advances (or goes backwards) would hammer the receiver.
        if self.first_delay <= 0:
            raise ValueError("first_delay must be positive")
        if self.factor < 1:
            raise ValueError("factor must be >= 1")
        if self.max_delay < self.first_delay:
            raise ValueError("max_delay must be >= first_delay")
        if self.window <= 0:
            raise ValueError("window must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")


def base_delay(schedule: RetrySchedule, attempts: int) -> float:
    """The un-jittered delay in seconds after the ``attempts``-th failed attempt (>= 1)."""
    if attempts < 1:
        raise ValueError("attempts counts failures so far and starts at 1")
    # Multiply step by step and stop at the cap: factor ** attempts would overflow a float
    # for a delivery retried thousands of times (e.g. with a seconds-scale test schedule).
    delay = schedule.first_delay
    if schedule.factor == 1:
        return min(delay, schedule.max_delay)
    for _ in range(attempts - 1):
        delay *= schedule.factor
        if delay >= schedule.max_delay:
            return schedule.max_delay
    return min(delay, schedule.max_delay)


def jittered(delay: float, jitter: float, r: float) -> float:
    """``delay`` scaled by a factor in ``[1 - jitter, 1 + jitter)`` chosen by ``r`` in [0, 1).

    ``r = 0.5`` is the midpoint: no jitter, which is what tests pin.
    """
    return delay * (1.0 + jitter * (2.0 * r - 1.0))


def deadline(schedule: RetrySchedule, first_attempt_at: datetime) -> datetime:
    """The last moment at which an attempt may still be made."""
    return first_attempt_at + timedelta(seconds=schedule.window)


def next_attempt(
    schedule: RetrySchedule,
    *,
    attempts: int,
    first_attempt_at: datetime,
    now: datetime,
    rand: Callable[[], float],
) -> datetime | None:
    """When to try again after the ``attempts``-th failure, or None to fail for good.

    The delay counts from ``now`` (the moment of the failure), so a worker that ran late
    does not squeeze the next attempt in early.
    """
    delay = jittered(base_delay(schedule, attempts), schedule.jitter, rand())
    when = now + timedelta(seconds=delay)
    if when > deadline(schedule, first_attempt_at):
        return None
    return when


def expired(schedule: RetrySchedule, first_attempt_at: datetime, now: datetime) -> bool:
    """True once the retry window is over: the delivery must not be attempted again."""
    return now > deadline(schedule, first_attempt_at)
