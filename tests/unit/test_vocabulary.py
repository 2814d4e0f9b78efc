"""One event enum, spelled the contract's three ways at the edges (spec §5.2)."""

from __future__ import annotations

import pytest

from postroom.domain import tokens
from postroom.domain.events import EventKind


@pytest.mark.parametrize(
    ("kind", "payload", "config", "log"),
    [
        (EventKind.DELIVERY, "delivery", "delivery", "delivery"),
        (EventKind.SOFT_BOUNCE, "soft bounce", "soft_bounce", "soft_bounce"),
        (EventKind.BOUNCE, "bounce", "bounce", "bounce"),
        (EventKind.SPAM, "spam", "spam_complaint", "spam"),
        (EventKind.UNSUBSCRIBE, "unsubscribe", "unsubscribe", "unsubscribe"),
        (EventKind.OPEN, "open", "open", "open"),
        (EventKind.CLICK, "click", "click", "click"),
        (EventKind.SUSPENSION, "suspension", "suspension", "suspension"),
        (EventKind.REJECT, "reject", "reject", "reject"),
    ],
)
def test_spellings(kind: EventKind, payload: str, config: str, log: str) -> None:
    assert (kind.payload_name, kind.config_name, kind.log_name) == (payload, config, log)
    assert EventKind.from_config_name(config) is kind


def test_unknown_config_name_is_refused() -> None:
    with pytest.raises(ValueError):
        EventKind.from_config_name("spam complaint")


def test_token_round_trip_and_constant_time_check() -> None:
    value = tokens.compose("0123abcd", "f" * 32)
    parts = tokens.split(value)
    assert parts == tokens.TokenParts("0123abcd", "f" * 32)
    stored = tokens.hash_secret(parts.secret)
    assert tokens.secret_matches("f" * 32, stored)
    assert not tokens.secret_matches("e" * 32, stored)


@pytest.mark.parametrize("bad", ["", "pr_", "xx_" + "0" * 40, "pr_" + "0" * 39, "pr_" + "0" * 41])
def test_malformed_tokens_do_not_split(bad: str) -> None:
    assert tokens.split(bad) is None
