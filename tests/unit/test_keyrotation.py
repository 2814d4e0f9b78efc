"""The DKIM key lifecycle plan: publish, activate on DNS, retire after grace, rotate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from postroom.domain.keyrotation import KeyFacts, KeyState, RotationPlan, plan

T0 = datetime(2026, 1, 1, tzinfo=UTC)
RSA, ED = "rsa-sha256", "ed25519-sha256"


def _key(
    i: int,
    alg: str,
    gen: int,
    state: KeyState,
    *,
    activated_at: datetime | None = None,
    retiring_at: datetime | None = None,
    record_passes: bool = False,
) -> KeyFacts:
    return KeyFacts(i, alg, gen, state, T0, activated_at, retiring_at, record_passes)


def _plan(keys: list[KeyFacts], days: float = 0) -> RotationPlan:
    return plan(keys, T0 + timedelta(days=days), rotation_days=90, grace_days=7)


def test_pending_keys_wait_for_dns() -> None:
    """A published key does not sign until its record is served."""
    result = _plan([_key(1, RSA, 1, KeyState.PENDING), _key(2, ED, 1, KeyState.PENDING)])
    assert result.changes == {} and result.new_generation is None


def test_live_pending_key_activates_and_replaces_the_old_one() -> None:
    """When the new key's record passes it signs, and the old key starts retiring."""
    keys = [
        _key(1, RSA, 1, KeyState.ACTIVE, activated_at=T0, record_passes=True),
        _key(3, RSA, 2, KeyState.PENDING, record_passes=True),
        _key(2, ED, 1, KeyState.ACTIVE, activated_at=T0, record_passes=True),
        _key(4, ED, 2, KeyState.PENDING, record_passes=False),
    ]
    result = _plan(keys, days=1)
    assert result.changes == {3: KeyState.ACTIVE, 1: KeyState.RETIRING}


def test_retiring_key_is_retired_after_the_grace_period() -> None:
    keys = [_key(1, RSA, 1, KeyState.RETIRING, retiring_at=T0)]
    assert _plan(keys, days=6.9).changes == {}
    assert _plan(keys, days=7).changes == {1: KeyState.RETIRED}


def test_rotation_publishes_a_new_generation_when_keys_are_old() -> None:
    keys = [
        _key(1, RSA, 1, KeyState.ACTIVE, activated_at=T0),
        _key(2, ED, 1, KeyState.ACTIVE, activated_at=T0),
    ]
    assert _plan(keys, days=89).new_generation is None
    assert _plan(keys, days=90).new_generation == 2


def test_no_second_rotation_while_one_is_pending() -> None:
    keys = [
        _key(1, RSA, 1, KeyState.ACTIVE, activated_at=T0),
        _key(3, RSA, 2, KeyState.PENDING),
    ]
    assert _plan(keys, days=200).new_generation is None


def test_rotation_disabled_with_zero_days() -> None:
    keys = [_key(1, RSA, 1, KeyState.ACTIVE, activated_at=T0)]
    result = plan(keys, T0 + timedelta(days=1000), rotation_days=0, grace_days=7)
    assert result.new_generation is None
