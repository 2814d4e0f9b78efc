"""Sending email campaigns: durable slices, a throttle, and the campaign's stats.

A started campaign's audience was stored when it launched
(:func:`postroom.services.campaigns.launch`), one row per recipient. Each round (the
scheduler's, and one right after a start) sends the campaign's next *slice*:

1. **take** — in one transaction, mark the next pending recipients with the slice's
   number and count them as released (an optimistic lock on the campaign: two rounds
   never take two slices on one count);
2. **send** — render each recipient's copy (the campaign's Handlebars template with the
   contact's fields as merge tags) and hand the slice to
   :func:`~postroom.services.accept.accept_messages` on the bulk stream, under the
   idempotency key ``email_campaign:<id>:<slice>``; acceptance screens suppressions and
   unsubscribed contacts and stores the messages with the key in one transaction;
3. **record** — store each recipient's message id (or error).

A crash between 1 and 2 leaves a taken slice without outcomes: the next round sends it.
A crash between 2 and 3 leaves the same, but its messages exist: the next round sends it
again under the same key, and acceptance answers the stored message ids instead of
sending twice. So no recipient is lost or mailed twice, as long as the round resumes
within ``limits.idempotency_hours`` (the key's lifetime).

The throttle: a ``rapid`` campaign releases up to :data:`ROUND_MAX` recipients per round;
a ``gradual`` one, by the time ``t`` seconds have passed since it started, at most
``floor(emails_per_hour * t / 3600) + 1`` in all (the first at once, the rest evenly).

Stats count the campaign's messages (the recipients' message ids): deliveries, hard
bounces, spam complaints and unsubscribes from the event log, sends from the queue rows,
and first opens and clicks by people from the deliveries' ``opened_at``/``clicked_at``
(machines' opens never count). Rates follow the sending stats' denominators
(:mod:`postroom.domain.stats`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain.emailtemplates import CompiledEmailTemplate, compile_email_template
from postroom.domain.events import EventKind
from postroom.domain.handlebars import TemplateError
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.stats import rate
from postroom.domain.streams import Stream
from postroom.errors import (
    Conflict,
    NotFound,
    PostroomError,
    StoreUnavailable,
    ValidationFailed,
)
from postroom.services import Services, campaigns, idempotency, templates
from postroom.services.accept import Origin, accept_messages
from postroom.storage.repos import campaigns as repo

log = logging.getLogger("postroom.campaigns")

ROUND_MAX = 500  # recipients one campaign releases per round at most
START_SLICE = 100  # released by the start request itself, before the scheduler's rounds
CAMPAIGNS_PER_ROUND = 20
# The contract's unsubscribe placeholder (an anchor's href), as Postroom's merge tag.
CONTRACT_UNSUBSCRIBE = "__unsubscribe_url__"


class _Lost(Exception):
    """Another round released a slice of this campaign first."""


@dataclass(frozen=True, slots=True)
class Slice:
    """Taken recipients of one campaign slice, not yet recorded."""

    number: int
    rows: list[dict[str, Any]]


# --- one round --------------------------------------------------------------------------


def allowance(row: dict[str, Any], now: datetime, limit: int) -> int:
    """How many more recipients the campaign may release now (at most ``limit``)."""
    if row["delivery_mode"] != campaigns.GRADUAL or not row["emails_per_hour"]:
        return limit
    elapsed = max(0.0, (now - row["last_started_at"]).total_seconds())
    due = int(int(row["emails_per_hour"]) * elapsed // 3600) + 1
    return max(0, min(limit, due - int(row["released"])))


async def take(services: Services, campaign: dict[str, Any], limit: int) -> Slice | None:
    """The slice to send next: a taken slice still unrecorded (after a crash), else the
    next pending recipients the throttle allows; None when there is nothing to send."""
    campaign_id = int(campaign["id"])
    unfinished = await services.db.read(lambda conn: repo.taken_unfinished(conn, campaign_id))
    if unfinished:
        return Slice(int(unfinished[0]["slice"]), unfinished)
    count = allowance(campaign, services.clock.now(), limit)
    if count <= 0:
        return None
    number = int(campaign["slices"]) + 1

    def run(conn: Connection) -> int:
        taken = repo.take_slice(conn, campaign_id, number, count)
        if taken and not repo.advance_release(conn, campaign_id, campaign, taken):
            raise _Lost()
        return taken

    try:
        if not await services.db.write(run):
            return None
    except _Lost:
        return None
    rows = await services.db.read(lambda conn: repo.taken_unfinished(conn, campaign_id))
    return Slice(number, rows) if rows else None


def _compiled(campaign: dict[str, Any]) -> CompiledEmailTemplate:
    def source(text: str | None) -> str | None:
        return text.replace(CONTRACT_UNSUBSCRIBE, "{{unsubscribe_url}}") if text else text

    return compile_email_template(
        id=int(campaign["id"]),
        uuid="",
        version=1,
        category=None,
        subject=str(campaign["subject"]),
        body_html=source(campaign["body_html"]),
        body_text=source(campaign["body_text"]),
    )


def drafts(
    services: Services, campaign: dict[str, Any], rows: Sequence[dict[str, Any]]
) -> list[MessageDraft | Exception]:
    """Each recipient's message, rendered with the contact's fields (or why it cannot be)."""
    template = _compiled(campaign)
    options = templates.render_options(services.settings.templates)
    sender = Address(
        f"{campaign['from_local_part']}@{campaign['domain_name']}",
        campaign["from_display_name"] or "",
    )
    reply = campaign["reply_to"] or {}
    reply_to = (
        Address(f"{reply['local_part']}@{reply['domain']}", reply.get("display_name") or "")
        if reply.get("local_part")
        else None
    )
    made: list[MessageDraft | Exception] = []
    for row in rows:
        try:
            rendered = template.render(dict(row["fields"] or {}), options)
        except TemplateError as exc:
            made.append(ValidationFailed([f"the template cannot be rendered: {exc}"]))
            continue
        made.append(
            MessageDraft(
                sender=sender,
                to=(Address(str(row["email"])),),
                reply_to=reply_to,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
            )
        )
    return made


def _claim(services: Services, campaign_id: int, part: Slice) -> idempotency.Claim:
    key = f"email_campaign:{campaign_id}:{part.number}"
    emails = "\n".join(str(r["email"]) for r in part.rows)
    ttl = timedelta(hours=services.settings.limits.idempotency_hours)
    return idempotency.Claim(key, idempotency.fingerprint(key.encode(), emails.encode()), ttl)


async def send(services: Services, campaign: dict[str, Any], part: Slice) -> list[Any]:
    """Hand the slice to acceptance; one outcome per row (message ids, or an error)."""
    campaign_id, account_id = int(campaign["id"]), int(campaign["account_id"])
    made = await asyncio.to_thread(drafts, services, campaign, part.rows)
    origin = Origin(account_id, Stream.BULK, idempotency=_claim(services, campaign_id, part))
    return list(await accept_messages(services, origin, made))


async def record(
    services: Services, campaign: dict[str, Any], part: Slice, outcomes: Sequence[Any]
) -> None:
    """Store each recipient's outcome; finish the campaign once everyone has one."""
    campaign_id, account_id = int(campaign["id"]), int(campaign["account_id"])
    now = services.clock.now()

    def run(conn: Connection) -> None:
        for row, outcome in zip(part.rows, outcomes, strict=True):
            if isinstance(outcome, list) and outcome:
                repo.record_outcome(
                    conn,
                    campaign_id,
                    int(row["seq"]),
                    message_id=str(outcome[0]),
                    error=None,
                    now=now,
                )
            else:
                problems = idempotency.item_errors(outcome) or [str(outcome)]
                repo.record_outcome(
                    conn,
                    campaign_id,
                    int(row["seq"]),
                    message_id=None,
                    error="; ".join(problems)[:1000],
                    now=now,
                )
        if repo.remaining(conn, campaign_id) == 0:
            _finish(conn, account_id, campaign_id, now)

    await services.db.write(run)


def _finish(conn: Connection, account_id: int, campaign_id: int, now: datetime) -> None:
    repo.update_campaign(
        conn,
        account_id,
        campaign_id,
        {"state": campaigns.FINISHED, "state_reason": "all recipients sent", "updated_at": now},
        states=(campaigns.STARTED,),
    )


async def _fail(services: Services, campaign: dict[str, Any], error: str) -> None:
    now = services.clock.now()
    values = {"state": campaigns.FAILED, "state_error": error[:1000], "updated_at": now}
    await services.db.write(
        lambda conn: repo.update_campaign(
            conn,
            int(campaign["account_id"]),
            int(campaign["id"]),
            values,
            states=(campaigns.STARTED, campaigns.SCHEDULED),
        )
    )
    log.warning("email campaign %s failed: %s", campaign["id"], error)


async def run_campaign(
    services: Services, account_id: int, campaign_id: int, limit: int = ROUND_MAX
) -> int:
    """One round of one campaign: send its next slice; how many recipients it recorded."""
    campaign = (await campaigns.get(services, account_id, campaign_id)).row
    if campaign["state"] != campaigns.STARTED:
        return 0
    if campaign["domain_name"] is None:
        await _fail(services, campaign, "the campaign's sending domain was deleted")
        return 0
    part = await take(services, campaign, limit)
    if part is None:
        if await services.db.read(lambda conn: repo.remaining(conn, campaign_id)) == 0:
            await services.db.write(
                lambda conn: _finish(conn, account_id, campaign_id, services.clock.now())
            )
        return 0
    try:
        outcomes = await send(services, campaign, part)
    except StoreUnavailable:
        raise
    except PostroomError as exc:  # the account may not send at all (disabled, over quota)
        await _fail(services, campaign, str(exc) or type(exc).__name__)
        return 0
    await record(services, campaign, part, outcomes)
    return len(part.rows)


# --- the scheduler's job ----------------------------------------------------------------


async def launch_due(services: Services) -> int:
    """Start the scheduled campaigns whose time has come (or fail those that cannot)."""
    now = services.clock.now()
    due = await services.db.read(lambda conn: repo.due_scheduled(conn, now, CAMPAIGNS_PER_ROUND))
    launched = 0
    for item in due:
        account_id, campaign_id = int(item["account_id"]), int(item["id"])
        found = (await campaigns.get(services, account_id, campaign_id)).row
        problems = await campaigns.sending_problems(services, found)
        if problems:
            text = "; ".join(f"{k} {' '.join(v)}" for k, v in problems.items())
            await _fail(services, found, text)
            continue
        if await campaigns.launch(services, account_id, campaign_id, (campaigns.SCHEDULED,)):
            launched += 1
    return launched


async def send_round(services: Services) -> int:
    """Launch due campaigns, then send one slice of each campaign being sent."""
    await launch_due(services)
    active = await services.db.read(lambda conn: repo.sending(conn, CAMPAIGNS_PER_ROUND * 10))
    sent = 0
    for item in active:
        try:
            sent += await run_campaign(services, int(item["account_id"]), int(item["id"]))
        except (StoreUnavailable, NotFound):
            raise
        except Exception:
            log.exception("email campaign %s: round failed", item["id"])
    return sent


# --- stats ------------------------------------------------------------------------------

_EVENT_KINDS = (
    EventKind.DELIVERY.value,
    EventKind.BOUNCE.value,
    EventKind.SPAM.value,
    EventKind.UNSUBSCRIBE.value,
)


def _day(value: str | None, name: str) -> date | None:
    if value is None or value == "":
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise Conflict({name: ["must be a date (YYYY-MM-DD)"]}) from None


async def stats(
    services: Services,
    account_id: int,
    campaign_id: int,
    start_date: str | None = None,
    end_date: str | None = None,
) -> dict[str, Any]:
    """The contract's EmailCampaignStats for the window (inclusive days, UTC)."""
    first, last = _day(start_date, "start_date"), _day(end_date, "end_date")
    if first and last and first > last:
        raise Conflict({"end_date": ["must not be before start_date"]})
    start = datetime.combine(first, time(), UTC) if first else None
    end = datetime.combine(last + timedelta(days=1), time(), UTC) if last else None
    found = await campaigns.get(services, account_id, campaign_id)

    def run(conn: Connection) -> tuple[dict[str, int], dict[str, int]]:
        if found.row["last_started_at"] is None:
            return {}, {}
        return (
            repo.event_counts(conn, campaign_id, _EVENT_KINDS, start, end),
            repo.delivery_counts(conn, campaign_id, start, end),
        )

    by_event, by_delivery = await services.db.read(run)
    delivered = by_event.get(EventKind.DELIVERY.value, 0)
    bounced = by_event.get(EventKind.BOUNCE.value, 0)
    spam = by_event.get(EventKind.SPAM.value, 0)
    unsubscribed = by_event.get(EventKind.UNSUBSCRIBE.value, 0)
    opened, clicked = by_delivery.get("opened", 0), by_delivery.get("clicked", 0)
    final = delivered + bounced
    return {
        "delivery_count": delivered,
        "open_count": opened,
        "click_count": clicked,
        "bounce_count": bounced,
        "unsubscription_count": unsubscribed,
        "sent_count": by_delivery.get("sent", 0),
        "spam_count": spam,
        "delivery_rate": rate(delivered, final),
        "open_rate": rate(opened, delivered),
        "click_rate": rate(clicked, opened),
        "bounce_rate": rate(bounced, final),
        "spam_rate": rate(spam, delivered),
        "unsubscription_rate": rate(unsubscribed, delivered),
    }
