"""Per-site shaping: token bucket, connection slots, slow-down and recovery."""

from __future__ import annotations

import pytest

from postroom.domain.throttle import (
    DEFAULT_SITE_LIMITS,
    FALLBACK_SITE_LIMITS,
    SLOWDOWN_HOLDOFF,
    SiteLimits,
    SiteThrottle,
    Throttles,
    is_rate_limit_reply,
    limits_for,
    site_key,
)

SLOW = SiteLimits(max_connections=4, messages_per_connection=10, messages_per_minute=60)


def test_bucket_allows_a_burst_then_paces() -> None:
    t = SiteThrottle(SiteLimits(messages_per_minute=600))  # 10/s, burst of 10
    assert [t.try_take(0.0) for _ in range(10)] == [0.0] * 10
    assert t.try_take(0.0) == pytest.approx(0.1)
    assert t.try_take(0.05) == pytest.approx(0.05)
    assert t.try_take(0.1) == 0.0


def test_bucket_refills_continuously_and_caps_at_its_burst() -> None:
    t = SiteThrottle(SLOW)  # 1 message per second, burst of 1
    assert t.try_take(0.0) == 0.0
    assert t.try_take(0.0) == pytest.approx(1.0)
    assert t.try_take(0.25) == pytest.approx(0.75)
    assert t.try_take(1.0) == 0.0
    # A long idle period does not bank more than the burst.
    assert t.try_take(1000.0) == 0.0
    assert t.try_take(1000.0) == pytest.approx(1.0)


def test_waiting_does_not_consume_a_token() -> None:
    t = SiteThrottle(SLOW)
    t.try_take(0.0)
    for _ in range(5):
        assert t.try_take(0.5) == pytest.approx(0.5)
    assert t.try_take(1.0) == 0.0


def test_clock_going_backwards_does_not_refill() -> None:
    t = SiteThrottle(SLOW)
    t.try_take(10.0)
    assert t.try_take(5.0) == pytest.approx(1.0)


def test_connection_slots() -> None:
    t = SiteThrottle(SLOW)
    for _ in range(4):
        assert t.connection_available()
        t.open_connection()
    assert not t.connection_available()
    with pytest.raises(RuntimeError):
        t.open_connection()
    t.close_connection()
    assert t.connection_available()
    for _ in range(3):
        t.close_connection()
    with pytest.raises(RuntimeError):
        t.close_connection()
    assert t.messages_per_connection == 10


def test_421_halves_rate_and_connections() -> None:
    t = SiteThrottle(SiteLimits(max_connections=10, messages_per_minute=600))
    t.on_rate_limited(100.0)
    assert t.effective_rate == 300
    assert t.effective_connections == 5


def test_a_burst_of_pushback_halves_once() -> None:
    t = SiteThrottle(SiteLimits(max_connections=10, messages_per_minute=600))
    for i in range(10):  # ten parallel connections see the same 421 burst
        t.on_rate_limited(100.0 + i * 0.1)
    assert t.effective_rate == 300
    t.on_rate_limited(100.0 + SLOWDOWN_HOLDOFF + 1)
    assert t.effective_rate == 150


def test_slowdown_closes_no_open_connection_but_blocks_new_ones() -> None:
    t = SiteThrottle(SLOW)
    for _ in range(4):
        t.open_connection()
    t.on_rate_limited(0.0)
    assert t.effective_connections == 2
    assert t.open_connections == 4
    t.close_connection()
    t.close_connection()
    assert not t.connection_available()
    t.close_connection()
    assert t.connection_available()


def test_floors_one_message_per_minute_and_one_connection() -> None:
    t = SiteThrottle(SiteLimits(max_connections=10, messages_per_minute=600))
    for i in range(30):
        t.on_rate_limited(i * (SLOWDOWN_HOLDOFF + 1))
    assert t.effective_rate == 1.0
    assert t.effective_connections == 1
    assert t.connection_available()
    now = 30 * (SLOWDOWN_HOLDOFF + 1)
    t.try_take(now)
    assert t.try_take(now) == pytest.approx(60.0)


def test_slowed_rate_paces_sending() -> None:
    t = SiteThrottle(SLOW)  # 60/min
    t.on_rate_limited(0.0)  # 30/min: one every 2 s
    assert t.try_take(0.0) == 0.0
    assert t.try_take(0.0) == pytest.approx(2.0)


def test_gradual_recovery_to_the_configured_limit() -> None:
    limits = SiteLimits(max_connections=10, messages_per_minute=600)
    t = SiteThrottle(limits)
    t.on_rate_limited(0.0)
    assert (t.effective_rate, t.effective_connections) == (300, 5)
    t.on_success(60.0)  # one minute of successes: +10 % of the configured limits
    assert t.effective_rate == pytest.approx(360)
    assert t.effective_connections == 6
    for s in range(61, 241):  # successes every second for three more minutes
        t.on_success(float(s))
    assert t.effective_rate == pytest.approx(540, rel=1e-6)
    assert t.effective_connections == 9
    t.on_success(3600.0)
    assert t.effective_rate == 600
    assert t.effective_connections == 10
    t.on_success(7200.0)  # never above the configured limits
    assert t.effective_rate == 600
    assert t.effective_connections == 10


def test_pushback_restarts_recovery() -> None:
    t = SiteThrottle(SiteLimits(max_connections=10, messages_per_minute=600))
    t.on_rate_limited(0.0)
    t.on_success(3.0)
    assert t.effective_rate == pytest.approx(303)
    t.on_rate_limited(4.5)  # inside the hold-off: no halving, but recovery restarts
    assert t.effective_rate == pytest.approx(303)
    t.on_success(5.0)  # +0.5 s of recovery, not +2 s
    assert t.effective_rate == pytest.approx(303.5)
    t.on_rate_limited(60.0)  # a later burst halves again
    assert t.effective_rate == pytest.approx(151.75)


def test_success_without_slowdown_changes_nothing() -> None:
    t = SiteThrottle(SLOW)
    t.on_success(0.0)
    t.on_success(600.0)
    assert (t.effective_rate, t.effective_connections) == (60, 4)


def test_sites_are_independent() -> None:
    throttles = Throttles()
    gmail, other = throttles.for_site("google.com"), throttles.for_site("example.net")
    assert throttles.for_site("google.com") is gmail
    gmail.on_rate_limited(0.0)
    assert gmail.effective_rate == 600
    assert other.effective_rate == FALLBACK_SITE_LIMITS.messages_per_minute
    gmail.open_connection()
    assert other.open_connections == 0


def test_mx_hosts_roll_up_into_their_site() -> None:
    throttles = Throttles()
    assert throttles.for_site("ASPMX.L.Google.com.") is throttles.for_site("google.com")
    assert site_key("acme-com.mail.protection.outlook.com") == "protection.outlook.com"
    assert site_key("mta5.am0.yahoodns.net") == "yahoodns.net"
    assert site_key("mx.Example.org.") == "mx.example.org"


def test_defaults_google_vs_unknown() -> None:
    google = limits_for("gmail-smtp-in.l.google.com")
    assert google is DEFAULT_SITE_LIMITS["google.com"]
    assert limits_for("unknown.example") is FALLBACK_SITE_LIMITS
    assert google.messages_per_minute > FALLBACK_SITE_LIMITS.messages_per_minute
    assert google.max_connections > FALLBACK_SITE_LIMITS.max_connections
    yahoo = limits_for("yahoodns.net")
    assert yahoo.messages_per_minute < FALLBACK_SITE_LIMITS.messages_per_minute
    outlook = limits_for("outlook.com")
    assert yahoo.messages_per_minute < outlook.messages_per_minute < google.messages_per_minute


def test_custom_table_and_fallback() -> None:
    custom = SiteLimits(max_connections=1, messages_per_connection=1, messages_per_minute=2)
    throttles = Throttles(table={"example.com": custom}, fallback=SLOW)
    assert throttles.for_site("mx1.example.com").limits is custom
    assert throttles.for_site("google.com").limits is SLOW


def test_nonsense_limits_are_refused() -> None:
    with pytest.raises(ValueError):
        SiteLimits(max_connections=0)
    with pytest.raises(ValueError):
        SiteLimits(messages_per_minute=0.5)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (421, "4.7.0 Try again later, closing connection."),
        (421, "4.3.2 Service shutting down"),
        (421, "4.7.28 Our system has detected an unusual rate of unsolicited mail"),
        (421, "4.7.0 [TSS04] Messages from 192.0.2.1 temporarily deferred"),
        (450, "4.7.1 Rate limited, please slow down"),
        (451, "4.7.500 Server busy. Please try again later from [192.0.2.1]."),
        (451, "4.7.0 [TSS04] Messages temporarily deferred due to unexpected volume"),
        (452, "Too many connections from your IP"),
        (451, "Throttling failure: Maximum sending rate exceeded"),
        (450, "4.2.1 The user you are trying to contact is receiving mail at a RATE that ..."),
    ],
)
def test_rate_limit_replies(code: int, text: str) -> None:
    assert is_rate_limit_reply(code, text)


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (450, "4.2.0 Mailbox unavailable"),
        (451, "4.3.0 Local error in processing"),
        (452, "4.2.2 Mailbox full"),
        (452, "4.5.3 Too many recipients"),
        (451, "Could not generate a reply, separate issue"),
        (550, "5.7.1 Rate limit exceeded"),  # permanent: a bounce, not a slow-down
        (250, "OK"),
        (454, "Too many connections"),
    ],
)
def test_not_rate_limit_replies(code: int, text: str) -> None:
    assert not is_rate_limit_reply(code, text)
