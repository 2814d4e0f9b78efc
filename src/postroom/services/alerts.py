"""Per-domain alerts: judged by the scheduler, mailed through Postroom, recorded as events.

Each round :func:`evaluate` measures every watched domain over the window (rules and
hysteresis in :mod:`postroom.domain.alerts`), and for each alert that changes state, in
one transaction, updates ``domain_alerts`` and records an ``alert_raised`` or
``alert_cleared`` event (so webhooks can carry them later); then it mails the domain's
``alert_recipient_email`` (else the account's admin) through
:func:`~postroom.services.accept.accept_message` as the installation's own mail.

Thresholds are per domain (``domain_alerts.threshold``), defaulting to
``settings.insights``; ``health_alerts_enabled`` gates bounce and deferral alerts,
``critical_alerts_enabled`` complaint and DNS alerts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain.alerts import Alert, State, WindowCounts, decide, measure
from postroom.domain.events import EventKind
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.streams import Stream
from postroom.errors import NotFound, ValidationFailed
from postroom.events.recorder import event_row
from postroom.services import Services
from postroom.services.accept import Origin, accept_message
from postroom.services.domains import valid_email
from postroom.storage.repos import alerts as repo
from postroom.storage.repos import messages as message_repo
from postroom.storage.tables import sending_domains

log = logging.getLogger("postroom.alerts")

ALERT_CATEGORY = "postroom-alert"


@dataclass(frozen=True, slots=True)
class Change:
    """One alert changing state on one domain."""

    domain: dict[str, Any]
    alert: Alert
    raised: bool
    value: float
    threshold: float


def default_threshold(services: Services, alert: Alert) -> float:
    s = services.settings.insights
    return {
        Alert.BOUNCE_RATE: s.alert_bounce_rate,
        Alert.DEFERRAL_RATE: s.alert_deferral_rate,
        Alert.COMPLAINT_RATE: s.alert_complaint_rate,
        Alert.DNS_LOST: 1.0,
    }[alert]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    domains: list[dict[str, Any]]
    counts: dict[int, dict[str, dict[str, int]]]
    failed: set[int]
    states: dict[tuple[int, str], dict[str, Any]]


def _read(conn: Connection, since: datetime) -> _Snapshot:
    domains = repo.watched_domains(conn)
    accounts = {int(d["account_id"]) for d in domains}
    return _Snapshot(
        domains,
        {a: repo.window_counts(conn, a, since) for a in accounts},
        repo.failed_domain_ids(conn, accounts) if accounts else set(),
        repo.states(conn, [int(d["id"]) for d in domains]),
    )


async def evaluate(services: Services) -> list[Change]:
    """Judge every watched domain; apply, record and mail the changes. Returns them."""
    settings = services.settings.insights
    now = services.clock.now()
    since = now - timedelta(minutes=settings.alert_window_minutes)
    snap = await services.db.read(lambda conn: _read(conn, since))
    changes = [c for d in snap.domains for c in _judge(services, snap, d, now)]
    for change in changes:
        recipient = await services.db.write(partial(_apply, services, change=change, now=now))
        await _notify(services, change, recipient)
    return changes


def _judge(
    services: Services, snap: _Snapshot, domain: dict[str, Any], now: datetime
) -> list[Change]:
    settings = services.settings.insights
    per_kind = snap.counts.get(int(domain["account_id"]), {}).get(
        str(domain["domain_name"]).lower(), {}
    )
    counts = WindowCounts(
        delivered=per_kind.get("delivery", 0),
        bounced=per_kind.get("bounce", 0),
        soft_bounced=per_kind.get("soft_bounce", 0),
        spam=per_kind.get("spam", 0),
    )
    found = []
    for alert in Alert:
        if not domain["critical_alerts_enabled" if alert.critical else "health_alerts_enabled"]:
            continue
        row = snap.states.get((int(domain["id"]), alert.value), {})
        threshold = row.get("threshold")
        if threshold is None:
            threshold = default_threshold(services, alert)
        if alert is Alert.DNS_LOST:
            lost = not domain["dns_verified"] and int(domain["id"]) in snap.failed
            value: float | None = 1.0 if lost else 0.0
        else:
            value = measure(alert, counts, settings.alert_min_volume)
        state = State(bool(row.get("raised", False)), row.get("raised_at"), row.get("cleared_at"))
        hold = timedelta(minutes=settings.alert_hold_minutes)
        verdict = decide(state, value, threshold, settings.alert_clear_ratio, hold, now)
        if verdict is not None and value is not None:
            found.append(Change(domain, alert, verdict, value, threshold))
    return found


def _apply(services: Services, conn: Connection, *, change: Change, now: datetime) -> str | None:
    """Record the change (state row + event); returns who should be told."""
    domain = change.domain
    stamp = {"raised_at": now} if change.raised else {"cleared_at": now}
    repo.upsert(
        conn,
        int(domain["id"]),
        change.alert.value,
        int(domain["account_id"]),
        raised=change.raised,
        value=change.value,
        **stamp,
    )
    recipient = domain["alert_recipient_email"] or repo.admin_email(conn, int(domain["account_id"]))
    details = {
        "domain_id": int(domain["id"]),
        "domain_name": domain["domain_name"],
        "alert": change.alert.value,
        "value": round(change.value, 4),
        "threshold": change.threshold,
        "window_minutes": services.settings.insights.alert_window_minutes,
        "recipient": recipient,
    }
    kind = EventKind.ALERT_RAISED if change.raised else EventKind.ALERT_CLEARED
    row = event_row(services.ids, int(domain["account_id"]), kind, None, None, None, details, now)
    message_repo.insert_events(conn, [row])
    return str(recipient) if recipient else None


def describe(change: Change, window_minutes: float) -> tuple[str, str]:
    """Subject and text of the alert mail."""
    name = change.domain["domain_name"]
    if change.alert is Alert.DNS_LOST:
        what = "DNS no longer verifies" if change.raised else "DNS verifies again"
        body = (
            f"The DNS records of {name} no longer verify: Postroom will not send as this "
            "domain in mx or relay mode until they do. Check the records with "
            "GET .../sending_domains/{id} and verify again."
            if change.raised
            else f"The DNS records of {name} verify again."
        )
        return f"[Postroom] {name}: {what}", body
    label = change.alert.value.replace("_", " ")
    state = "above" if change.raised else "back below"
    subject = (
        f"[Postroom] {name}: {label} {change.value:.1%} "
        f"({state} {change.threshold:.1%} over {window_minutes:g} min)"
    )
    text = (
        f"Over the last {window_minutes:g} minutes the {label} of mail sent as {name} was "
        f"{change.value:.2%}; the alert threshold is {change.threshold:.2%}.\n"
    )
    return subject, text


async def _notify(services: Services, change: Change, recipient: str | None) -> None:
    if recipient is None:
        log.warning("alert %s on %s: nobody to tell", change.alert, change.domain["domain_name"])
        return
    subject, text = describe(change, services.settings.insights.alert_window_minutes)
    draft = MessageDraft(
        sender=Address(f"postroom@{services.settings.domains.mail_host}", "Postroom"),
        to=(Address(recipient),),
        subject=subject,
        text=text,
        category=ALERT_CATEGORY,
    )
    origin = Origin(int(change.domain["account_id"]), Stream.TRANSACTIONAL, system=True)
    try:
        await accept_message(services, origin, draft)
    except (ValidationFailed, NotFound) as exc:
        log.warning("alert mail to %s not accepted: %s", recipient, exc)


# --- settings (the API) --------------------------------------------------------------------


def _rules(services: Services, conn: Connection, account_id: int, domain_id: int) -> dict[str, Any]:
    domain = (
        conn.execute(
            sending_domains.select().where(
                sending_domains.c.id == domain_id, sending_domains.c.account_id == account_id
            )
        )
        .mappings()
        .first()
    )
    if domain is None:
        raise NotFound("domain")
    states = repo.states(conn, [domain_id])
    alerts = {}
    for alert in Alert:
        row = states.get((domain_id, alert.value), {})
        threshold = row.get("threshold")
        alerts[alert.value] = {
            "threshold": default_threshold(services, alert) if threshold is None else threshold,
            "custom_threshold": threshold is not None,
            "raised": bool(row.get("raised", False)),
            "value": row.get("value"),
            "raised_at": row.get("raised_at"),
            "cleared_at": row.get("cleared_at"),
        }
    return {
        "domain_id": domain_id,
        "health_alerts_enabled": bool(domain["health_alerts_enabled"]),
        "critical_alerts_enabled": bool(domain["critical_alerts_enabled"]),
        "alert_recipient_email": domain["alert_recipient_email"],
        "window_minutes": services.settings.insights.alert_window_minutes,
        "alerts": alerts,
    }


async def get_rules(services: Services, account_id: int, domain_id: int) -> dict[str, Any]:
    return await services.db.read(lambda conn: _rules(services, conn, account_id, domain_id))


FLAGS = ("health_alerts_enabled", "critical_alerts_enabled")


def _check(changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, float | None]]:
    flags: dict[str, Any] = {}
    for flag in FLAGS:
        if flag in changes:
            if not isinstance(changes[flag], bool):
                raise ValidationFailed([f"{flag} must be true or false"])
            flags[flag] = changes[flag]
    if "alert_recipient_email" in changes:
        email = changes["alert_recipient_email"]
        flags["alert_recipient_email"] = None if email is None else valid_email(email)
    thresholds: dict[str, float | None] = {}
    given = changes.get("thresholds") or {}
    if not isinstance(given, dict):
        raise ValidationFailed(["thresholds must be an object of rates"])
    for name, value in given.items():
        if name not in {a.value for a in Alert} or name == Alert.DNS_LOST.value:
            raise ValidationFailed([f"unknown alert threshold: {name}"])
        ok = value is None or (
            isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= 1
        )
        if not ok:
            raise ValidationFailed([f"{name} threshold must be a rate in (0, 1] or null"])
        thresholds[name] = None if value is None else float(value)
    return flags, thresholds


async def set_rules(
    services: Services, account_id: int, domain_id: int, changes: dict[str, Any]
) -> dict[str, Any]:
    """Apply the flags, the recipient and ``thresholds`` (null: back to the default)."""
    flags, thresholds = _check(changes)

    def write(conn: Connection) -> dict[str, Any]:
        current = _rules(services, conn, account_id, domain_id)  # NotFound for other tenants
        if flags:
            conn.execute(
                sending_domains.update()
                .where(sending_domains.c.id == domain_id)
                .values(**flags, updated_at=services.clock.now())
            )
        for name, value in thresholds.items():
            repo.upsert(conn, domain_id, name, account_id, threshold=value)
        return current

    await services.db.write(write)
    return await get_rules(services, account_id, domain_id)
