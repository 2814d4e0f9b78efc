"""Retention: each account's email logs and raw bodies are deleted after its chosen days.

Two policies per account (null: the installation's default in ``settings.insights``):
``log_retention_days`` removes whole messages (deliveries, events, bodies) and
``body_retention_days`` only the raw bodies, which are the bulk of the bytes; body
retention is never longer than log retention in effect. The stats rollups are kept: they
hold no message content. Events that belong to no kept message (audit, alert, quota and
suppression events, which feed webhooks, and events whose message is gone) go with the
logs of their age, once the stats have folded them and no webhook still waits for them;
a domain's lifecycle events are its history and stay.

The scheduler calls :func:`enforce`; each batch is one short transaction of at most
``retention_batch`` messages, and a round does at most ``retention_batches`` of them, so
the writer goes back to acceptances between batches: retention never blocks sending.
Messages with a delivery still queued are left alone (the worker needs their body).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Connection

from postroom.errors import NotFound, ValidationFailed
from postroom.services import Services
from postroom.storage.repos import retention as repo
from postroom.storage.repos import rollups as rollup_repo

log = logging.getLogger("postroom.retention")

MAX_DAYS = 3650
STATS_CURSOR = "stats"


@dataclass(frozen=True, slots=True)
class Policy:
    """An account's retention in days, as set (None) and as in effect."""

    log_days: int | None
    body_days: int | None
    effective_log_days: int
    effective_body_days: int


@dataclass(slots=True)
class Swept:
    messages: int = 0
    bodies: int = 0
    events: int = 0


def effective(services: Services, log_days: int | None, body_days: int | None) -> Policy:
    defaults = services.settings.insights
    logs = log_days or defaults.log_retention_days
    bodies = min(body_days or defaults.body_retention_days, logs)
    return Policy(log_days, body_days, logs, bodies)


@dataclass(slots=True)
class _Budget:
    """Transactions a round may still spend."""

    left: int


def _cursor_and_policies(conn: Connection) -> tuple[int, list[dict[str, Any]]]:
    return rollup_repo.cursor(conn, STATS_CURSOR), repo.policies(conn)


async def enforce(services: Services) -> Swept:
    """Delete what every account's policy says is too old, in bounded batches."""
    now = services.clock.now()
    swept = Swept()
    budget = _Budget(services.settings.insights.retention_batches)
    cursor, accounts = await services.db.read(_cursor_and_policies)
    for account in accounts:
        policy = effective(services, account["log_retention_days"], account["body_retention_days"])
        account_id = int(account["id"])
        log_before = now - timedelta(days=policy.effective_log_days)
        body_before = now - timedelta(days=policy.effective_body_days)
        swept.messages += await _sweep(services, account_id, log_before, cursor, budget, False)
        swept.bodies += await _sweep(services, account_id, body_before, cursor, budget, True)
        swept.events += await _sweep_events(services, account_id, log_before, cursor, budget)
    if swept.messages or swept.bodies or swept.events:
        log.info(
            "retention removed %d message(s), %d body(ies) and %d other event(s)",
            swept.messages,
            swept.bodies,
            swept.events,
        )
    return swept


async def _sweep(
    services: Services,
    account_id: int,
    before: datetime,
    cursor: int,
    budget: _Budget,
    bodies: bool,
) -> int:
    """Remove messages (or only bodies) older than ``before``."""
    find = partial(
        repo.old_messages,
        account_id=account_id,
        before=before,
        cursor=cursor,
        limit=services.settings.insights.retention_batch,
        with_body=bodies,
    )
    remove = repo.delete_bodies if bodies else repo.delete_messages
    return await _in_batches(services, budget, find, remove)


async def _sweep_events(
    services: Services, account_id: int, before: datetime, cursor: int, budget: _Budget
) -> int:
    """Remove events older than ``before`` that no kept message owns."""
    find = partial(
        repo.old_loose_events,
        account_id=account_id,
        before=before,
        cursor=cursor,
        limit=services.settings.insights.retention_batch,
    )
    return await _in_batches(services, budget, find, repo.delete_events)


async def _in_batches(
    services: Services,
    budget: _Budget,
    find: Callable[[Connection], Sequence[Any]],
    remove: Callable[..., int],
) -> int:
    """Find and remove a batch per transaction until none is left or the round's budget
    is spent."""
    size = services.settings.insights.retention_batch
    removed = 0
    while budget.left > 0:
        budget.left -= 1
        ids = await services.db.read(find)
        if not ids:
            break
        removed += await services.db.write(partial(remove, ids=ids))
        if len(ids) < size:
            break
    return removed


def _days(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_DAYS:
        raise ValidationFailed([f"{name} must be a whole number of days from 1 to {MAX_DAYS}"])
    return value


async def get_policy(services: Services, account_id: int) -> Policy:
    row = await services.db.read(lambda c: repo.get_policy(c, account_id))
    if row is None:
        raise NotFound("account")
    return effective(services, row["log_retention_days"], row["body_retention_days"])


async def set_policy(services: Services, account_id: int, changes: dict[str, object]) -> Policy:
    """Apply ``log_retention_days`` / ``body_retention_days`` (null: back to the default)."""
    current = await get_policy(services, account_id)
    log_days = (
        _days(changes["log_retention_days"], "log_retention_days")
        if "log_retention_days" in changes
        else current.log_days
    )
    body_days = (
        _days(changes["body_retention_days"], "body_retention_days")
        if "body_retention_days" in changes
        else current.body_days
    )
    await services.db.write(lambda c: repo.set_policy(c, account_id, log_days, body_days))
    return effective(services, log_days, body_days)
