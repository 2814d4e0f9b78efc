"""DKIM key lifecycle: when a key starts signing, when it stops, when it goes.

    pending ──its DNS record passes──> active ──a newer key of its algorithm──> retiring
    (published, not signing)          (signs)     became active                 (published,
                                                                                 not signing)
                                                         retiring ──grace over──> retired

Rotation without downtime follows from the order: a new generation is *published* first
(pending) and signs only once DNS serves it; the key it replaces stays in DNS for a grace
period, so mail signed just before the switch still verifies. Each algorithm (RSA, Ed25519)
rotates independently; a generation creates one key of each. Pure: the caller supplies
the keys, the DNS verdicts and the time, and applies the returned plan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum


class KeyState(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    RETIRING = "retiring"
    RETIRED = "retired"


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What the plan needs to know about one key."""

    id: int
    algorithm: str
    generation: int
    state: KeyState
    created_at: datetime
    activated_at: datetime | None = None
    retiring_at: datetime | None = None
    record_passes: bool = False


@dataclass(slots=True)
class RotationPlan:
    """State changes to apply, and whether to publish a new generation."""

    changes: dict[int, KeyState] = field(default_factory=dict)
    new_generation: int | None = None


def plan(
    keys: Sequence[KeyFacts],
    now: datetime,
    *,
    rotation_days: float,
    grace_days: float,
) -> RotationPlan:
    """Decide every transition due at ``now``."""
    result = RotationPlan()
    _activate(keys, result)
    _retire(keys, now, grace_days, result)
    result.new_generation = _rotation_due(keys, now, rotation_days, result)
    return result


def _activate(keys: Sequence[KeyFacts], result: RotationPlan) -> None:
    # The newest pending key whose record is live takes over its algorithm.
    ready = [k for k in keys if k.state is KeyState.PENDING and k.record_passes]
    for key in sorted(ready, key=lambda k: k.generation):
        for other in keys:
            if other.algorithm == key.algorithm and _state(other, result) is KeyState.ACTIVE:
                result.changes[other.id] = KeyState.RETIRING
        result.changes[key.id] = KeyState.ACTIVE


def _state(key: KeyFacts, result: RotationPlan) -> KeyState:
    """A key's state once the plan so far is applied."""
    return result.changes.get(key.id, key.state)


def _retire(
    keys: Sequence[KeyFacts], now: datetime, grace_days: float, result: RotationPlan
) -> None:
    grace = timedelta(days=grace_days)
    for key in keys:
        if key.state is KeyState.RETIRING and (key.retiring_at or now) + grace <= now:
            result.changes[key.id] = KeyState.RETIRED


def _rotation_due(
    keys: Sequence[KeyFacts], now: datetime, rotation_days: float, result: RotationPlan
) -> int | None:
    if rotation_days <= 0 or any(k.state is KeyState.PENDING for k in keys):
        return None
    active = [k for k in keys if _state(k, result) is KeyState.ACTIVE]
    if not active:
        return None
    oldest = min((k.activated_at or k.created_at) for k in active)
    if oldest + timedelta(days=rotation_days) > now:
        return None
    return max(k.generation for k in keys) + 1


def signing(keys: Sequence[KeyFacts]) -> list[KeyFacts]:
    """The keys that sign now: the active ones."""
    return [k for k in keys if k.state is KeyState.ACTIVE]
