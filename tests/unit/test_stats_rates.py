"""SendingStats rates use Mailtrap's denominators (checked against its recorded answers)."""

from __future__ import annotations

from postroom.domain.stats import Counts, sending_stats


def test_rates_match_the_recorded_mailtrap_answer() -> None:
    # The Ruby SDK's cassette: 150 delivered, 8 bounced, 120 opened, 60 clicked, 2 spam
    # answered 0.95, 0.05, 0.8, 0.5, 0.013.
    stats = sending_stats(Counts(delivered=150, bounced=8, opened=120, clicked=60, spam=2))
    assert stats["delivery_count"] == 150 and stats["bounce_count"] == 8
    assert round(stats["delivery_rate"], 2) == 0.95
    assert round(stats["bounce_rate"], 2) == 0.05
    assert stats["open_rate"] == 0.8
    assert stats["click_rate"] == 0.5
    assert round(stats["spam_rate"], 3) == 0.013


def test_zero_denominators_give_zero_and_every_key_is_present() -> None:
    stats = sending_stats(Counts())
    assert set(stats) == {
        "delivery_count",
        "delivery_rate",
        "bounce_count",
        "bounce_rate",
        "open_count",
        "open_rate",
        "click_count",
        "click_rate",
        "spam_count",
        "spam_rate",
        # Postroom's extras (tracking, F10)
        "total_open_count",
        "total_click_count",
        "machine_open_count",
        "machine_click_count",
        "unsubscribe_count",
        "unsubscribe_rate",
    }
    assert all(value == 0 for value in stats.values())


def test_machines_and_totals_are_extras_beside_the_unique_counts() -> None:
    stats = sending_stats(
        Counts(delivered=10, opened=4, opens=9, clicked=2, clicks=3, machine_opens=6,
               machine_clicks=5, unsubscribed=1)
    )  # fmt: skip
    assert stats["open_count"] == 4 and stats["open_rate"] == 0.4
    assert stats["click_count"] == 2 and stats["click_rate"] == 0.5
    assert stats["total_open_count"] == 9 and stats["total_click_count"] == 3
    assert stats["machine_open_count"] == 6 and stats["machine_click_count"] == 5
    assert stats["unsubscribe_count"] == 1 and stats["unsubscribe_rate"] == 0.1


def test_soft_bounces_and_rejects_do_not_change_delivery_rate() -> None:
    stats = sending_stats(Counts(delivered=3, bounced=1, soft_bounced=9, rejected=4))
    assert stats["delivery_rate"] == 0.75 and stats["bounce_rate"] == 0.25
