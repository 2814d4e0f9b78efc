"""Per-account gates at accept time: disabled accounts and sending quotas.

An account may carry a daily and a monthly quota (recipients accepted for delivery per
UTC day / calendar month; sandbox sends and Postroom's own mail do not count). In
``hard`` mode a send that would pass a quota is refused with the contract's 429 ("Rate
limit exceeded", ``Retry-After`` until the period ends); in ``soft`` mode it goes
through, and crossing 80 % and 100 % records a ``quota_warning`` event (webhooks, logs)
and mails the account's owners and admins once per threshold and period.

The account's settings are cached for a few seconds (``Services.account_states``), so
disabling it or changing a quota takes effect within that time; the counts are read on
every send that has a quota, so a hard cap holds exactly within one process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy import and_, func, not_, select
from sqlalchemy.engine import Connection

from postroom.domain.audit import Actor
from postroom.domain.events import EventKind
from postroom.errors import Forbidden, NotFound
from postroom.events.recorder import event_row
from postroom.services import Services
from postroom.services.ratelimit import RateLimited
from postroom.storage.repos import accounts as repo
from postroom.storage.repos import audit
from postroom.storage.repos import domains as domain_repo
from postroom.storage.tables import deliveries, messages, users

MODES = ("hard", "soft")
THRESHOLDS = (80, 100)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AccountState:
    disabled: bool
    daily: int | None
    monthly: int | None
    mode: str


@dataclass(frozen=True, slots=True)
class Crossing:
    """A soft quota's threshold that a send passed."""

    period: str  # "daily" or "monthly"
    percent: int
    quota: int
    used: int
    period_start: datetime


def periods(now: datetime) -> dict[str, tuple[datetime, datetime]]:
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    month = day.replace(day=1)
    next_month = (
        month.replace(year=month.year + 1, month=1)
        if month.month == 12
        else month.replace(month=month.month + 1)
    )
    return {"daily": (day, day + timedelta(days=1)), "monthly": (month, next_month)}


async def state(services: Services, account_id: int) -> AccountState:
    cached = services.account_states.get(account_id)
    if cached is not None and isinstance(cached[0], AccountState):
        return cached[0]

    def run(conn: Connection) -> AccountState:
        row = repo.get_account(conn, account_id) or {}
        return AccountState(
            row.get("disabled_at") is not None,
            row.get("daily_quota"),
            row.get("monthly_quota"),
            row.get("quota_mode") or "hard",
        )

    found = await services.db.read(run)
    services.account_states.put(account_id, (found,))
    return found


async def check(services: Services, account_id: int, recipients: int) -> list[Crossing]:
    """Refuse a disabled account (403) or a send past a hard quota (429); returns the soft
    thresholds this send crosses (announce them once it is stored)."""
    found = await state(services, account_id)
    if found.disabled:
        raise Forbidden("account disabled")
    quotas = {"daily": found.daily, "monthly": found.monthly}
    if not any(quotas.values()) or recipients <= 0:
        return []
    now = services.clock.now()
    spans = periods(now)
    crossings: list[Crossing] = []
    for period, quota in quotas.items():
        if not quota:
            continue
        start, end = spans[period]
        system = f"postroom@{services.settings.domains.mail_host}"
        used = await services.db.read(
            partial(_sent_since, account_id=account_id, since=start, system=system)
        )
        if found.mode == "hard" and used + recipients > quota:
            raise RateLimited(quota, retry_after=max(1, int((end - now).total_seconds())))
        for percent in THRESHOLDS:
            mark = quota * percent / 100
            if used < mark <= used + recipients:
                crossings.append(Crossing(period, percent, quota, used + recipients, start))
    return crossings


def _sent_since(conn: Connection, *, account_id: int, since: datetime, system: str) -> int:
    """Recipients accepted since ``since``, less Postroom's own notices (their category
    starts with ``postroom-`` and they come from ``system``, the installation's address,
    which an account can only send from in sandbox mode, where nothing leaves)."""
    notice = and_(messages.c.category.like("postroom-%"), messages.c.sender == system)
    query = (
        select(func.count())
        .select_from(deliveries.join(messages, messages.c.id == deliveries.c.message_id))
        .where(
            deliveries.c.account_id == account_id,
            deliveries.c.created_at >= since,
            not_(notice),
        )
    )
    return int(conn.execute(query).scalar_one())


async def announce(services: Services, account_id: int, crossings: list[Crossing]) -> None:
    """Record a ``quota_warning`` event per crossing and mail the account's admins."""
    if not crossings:
        return
    now = services.clock.now()

    def run(conn: Connection) -> list[str]:
        for crossing in crossings:
            details = {
                "period": crossing.period,
                "percent": crossing.percent,
                "quota": crossing.quota,
                "used": crossing.used,
            }
            row = event_row(
                services.ids, account_id, EventKind.QUOTA_WARNING, None, None, None, details, now
            )
            domain_repo.insert_events(conn, [row])
        query = select(users.c.email).where(
            users.c.account_id == account_id, users.c.role.in_(("owner", "admin"))
        )
        return [str(email) for email in conn.execute(query).scalars()]

    recipients = await services.db.write(run)
    from postroom.services import notices  # notices sends through accept (a cycle otherwise)

    for crossing in crossings:
        try:
            await notices.send_quota_warning(services, account_id, recipients, crossing)
        except Exception:
            log.exception("could not mail the quota warning of account %s", account_id)


def set_quotas(
    services: Services,
    account_id: int,
    actor: Actor,
    *,
    daily: int | None,
    monthly: int | None,
    mode: str,
) -> None:
    """Set (None: remove) an account's quotas and their mode; audited."""
    if mode not in MODES:
        raise ValueError(f"quota mode must be one of {', '.join(MODES)}")
    for value in (daily, monthly):
        if value is not None and value < 1:
            raise ValueError("a quota is a positive number of messages")

    def run(conn: Connection) -> None:
        before = repo.get_account(conn, account_id)
        if before is None:
            raise NotFound("account")
        repo.update_account(
            conn, account_id, daily_quota=daily, monthly_quota=monthly, quota_mode=mode
        )
        audit.append(
            conn,
            account_id=account_id,
            actor=actor,
            action="account.quotas_changed",
            target_type="account",
            target_id=account_id,
            before={
                "daily": before["daily_quota"],
                "monthly": before["monthly_quota"],
                "mode": before["quota_mode"],
            },
            after={"daily": daily, "monthly": monthly, "mode": mode},
            now=services.clock.now(),
        )

    services.db.write_sync(run)
    services.account_states.discard(account_id)
