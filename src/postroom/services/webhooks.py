"""Webhooks: configuration, the outbox → batch step, delivery, retries, pausing, replay.

How an event reaches a receiver, and why nothing is lost or sent twice:

1. **Outbox.** :func:`postroom.storage.repos.messages.insert_events` writes a
   ``webhook_outbox`` row with every deliverable event, in the transaction that records
   the event; a crash either keeps both or neither.
2. **Batching** (:func:`batch_outbox`). In one transaction the dispatcher reads the oldest
   outbox rows, finds the webhooks that want each event (:func:`~postroom.domain.webhooks.matches`),
   cuts each webhook's events, in order, into batches of ≤ ``batch_max_events``, renders
   and stores each batch's body under a new batch id, and deletes the outbox rows. A kill
   -9 before the commit leaves the outbox untouched; after it, the batches are durable.
3. **Sending** (:func:`send_due`). Per webhook, the oldest pending batch only (so a
   receiver sees events in the order they happened): leased, POSTed through the SSRF-safe
   :class:`~postroom.services.egress.EgressClient`, logged (``webhook_attempts``). A 2xx
   marks it delivered and it is never sent again; anything else (or a refused, failed or
   timed-out connection) schedules a retry with exponential backoff and jitter
   (``webhooks.retry_*``). The same bytes, signatures over them and ``webhook-id`` (the
   batch id) go out on every attempt; only ``webhook-timestamp`` is the attempt's.
   A crash between the receiver's 2xx and our commit re-sends that batch once: receivers
   that must not see an event twice dedupe on ``event_id`` or the batch id.
4. **Pausing.** When a batch has failed for longer than ``retry_window``, its webhook is
   paused, an ``audit`` event records it (so audit_log webhooks hear it) and, when
   ``webhooks.notification_email`` is set, a notice is mailed through Postroom itself.
   Batches keep collecting while paused; any update of the webhook resumes it and makes
   its pending batches due at once.

Replay (:func:`replay`) batches the account's recorded events of a time range again under
new batch ids (the ``event_id``s are the originals); :func:`send_test` posts one synthetic
event at once and logs it like any attempt.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from sqlalchemy.engine import Connection

from postroom.domain import webhooks as rules
from postroom.domain.egress import EgressPolicy
from postroom.domain.events import EventKind
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.retry import RetrySchedule, next_attempt
from postroom.domain.streams import Stream
from postroom.domain.webhooks import PayloadFormat, WebhookType
from postroom.errors import Conflict, NotFound, ValidationFailed
from postroom.events.recorder import event_row
from postroom.services import Services
from postroom.services.accept import Origin, accept_message
from postroom.services.egress import EgressClient, EgressError, EgressRefused
from postroom.storage.repos import domains as domain_repo
from postroom.storage.repos import messages as message_repo
from postroom.storage.repos import webhooks as repo

log = logging.getLogger("postroom.webhooks")

OUTBOX_ROUND = 5000  # outbox rows batched per transaction
EXCERPT_CHARS = 512
REPLAY_MAX_EVENTS = 100_000
NOTICE_CATEGORY = "postroom-webhook"
_STREAMS = {s.value for s in Stream}


# --- configuration ------------------------------------------------------------------------


@dataclass(frozen=True)
class Created:
    """A new webhook and its signing secret (shown once, never again)."""

    row: dict[str, Any]
    secret: str


def _errors(field: str, message: str) -> Conflict:
    return Conflict({field: [message]})


def _policy(services: Services) -> EgressPolicy:
    s = services.settings
    return EgressPolicy.allowing([*s.egress.allowed_networks, *s.webhooks.allowed_networks])


def check_url(services: Services, url: object) -> str:
    """A valid webhook URL (422 otherwise): static rules, and an IP literal must be allowed."""
    if not isinstance(url, str) or not url.strip():
        raise _errors("url", "can't be blank")
    url = url.strip()
    reason = rules.url_refusal(url, services.settings.webhooks.allowed_ports)
    if reason is None:
        host = (urlsplit(url).hostname or "").rstrip(".")
        try:
            reason = _policy(services).refusal(host)
        except ValueError:
            reason = None  # a name: its addresses are checked when connecting
    if reason is not None:
        raise _errors("url", f"is not allowed: {reason}")
    return url


def _int_or_none(body: Mapping[str, Any], field: str) -> int | None:
    value = body.get(field)
    if value is None:
        return None
    if type(value) is not int or not 1 <= value < 2**63:
        raise _errors(field, "must be a positive integer")
    return value


def _event_types(value: object) -> list[str]:
    if not isinstance(value, list) or not value:
        raise _errors("event_types", "can't be blank")
    unknown = [v for v in value if not isinstance(v, str) or v not in rules.CONFIG_NAMES]
    if unknown:
        raise _errors("event_types", f"contains unknown event types: {unknown}")
    return [name for name in rules.CONFIG_NAMES if name in value]  # canonical order, no dups


def _format(value: object) -> str:
    if not isinstance(value, str) or value not in {f.value for f in PayloadFormat}:
        raise _errors("payload_format", "must be json or jsonlines")
    return str(value)


def _active(value: object) -> bool:
    if not isinstance(value, bool):
        raise _errors("active", "must be true or false")
    return value


def _section(body: object) -> dict[str, Any]:
    if isinstance(body, dict) and isinstance(body.get("webhook"), dict):
        return dict(body["webhook"])
    raise ValidationFailed(["param is missing or the value is empty: webhook"])


def _validate_create(services: Services, body: object) -> dict[str, Any]:
    section = _section(body)
    wtype = section.get("webhook_type")
    if not isinstance(wtype, str) or wtype not in {t.value for t in WebhookType}:
        if wtype == "campaigns":
            raise _errors("webhook_type", "campaigns webhooks are not supported by Postroom")
        raise _errors("webhook_type", "is not included in the list")
    values: dict[str, Any] = {
        "url": check_url(services, section.get("url")),
        "webhook_type": wtype,
        "payload_format": _format(section.get("payload_format", "json")),
        "active": _active(section.get("active", True)),
        "sending_stream": None,
        "domain_id": None,
        "inbound_inbox_id": None,
        "event_types": [],
    }
    inbox = _int_or_none(section, "inbound_inbox_id")
    if wtype == WebhookType.EMAIL_SENDING:
        stream = section.get("sending_stream")
        if not isinstance(stream, str) or stream not in _STREAMS:
            raise _errors("sending_stream", "must be transactional or bulk")
        values["sending_stream"] = stream
        values["event_types"] = _event_types(section.get("event_types"))
        values["domain_id"] = _int_or_none(section, "domain_id")
    # Other types: sending_stream, event_types and domain_id are "applicable only" to
    # email_sending (spec), so they are ignored rather than refused.
    if wtype == WebhookType.INBOUND_RECEIVING:
        if inbox is None:
            raise _errors("inbound_inbox_id", "can't be blank")
        values["inbound_inbox_id"] = inbox
    elif inbox is not None:
        raise _errors("inbound_inbox_id", "must not be set for this webhook type")
    return values


def _validate_update(services: Services, row: Mapping[str, Any], body: object) -> dict[str, Any]:
    section = _section(body)
    values: dict[str, Any] = {}
    if "url" in section:
        values["url"] = check_url(services, section["url"])
    if "active" in section:
        values["active"] = _active(section["active"])
    if "payload_format" in section:
        values["payload_format"] = _format(section["payload_format"])
    wtype = row["webhook_type"]
    if "event_types" in section:
        if wtype != WebhookType.EMAIL_SENDING:
            raise _errors("event_types", "applies to email_sending webhooks only")
        values["event_types"] = _event_types(section["event_types"])
    if "inbound_inbox_id" in section:
        if wtype != WebhookType.INBOUND_RECEIVING:
            raise _errors("inbound_inbox_id", "applies to inbound_receiving webhooks only")
        inbox = _int_or_none(section, "inbound_inbox_id")
        if inbox is None:
            raise _errors("inbound_inbox_id", "can't be blank")
        values["inbound_inbox_id"] = inbox
    return values


async def _domain_owned(services: Services, account_id: int, domain_id: int | None) -> None:
    if domain_id is None:
        return
    found = await services.db.read(lambda c: domain_repo.get_domain(c, account_id, domain_id))
    if found is None:
        raise _errors("domain_id", "is not a sending domain of this account")


async def create(services: Services, account_id: int, body: object) -> Created:
    """Create a webhook (spec ``createWebhook``); its secret is returned once."""
    values = _validate_create(services, body)
    await _domain_owned(services, account_id, values["domain_id"])
    secret = services.ids.hex(16)
    now = services.clock.now()
    sealed = services.get_sealer().seal(secret.encode())

    def run(conn: Connection) -> dict[str, Any]:
        webhook_id = repo.insert_webhook(
            conn,
            account_id=account_id,
            secret_sealed=sealed,
            created_at=now,
            updated_at=now,
            **values,
        )
        row = repo.get_webhook(conn, account_id, webhook_id)
        assert row is not None
        return row

    return Created(await services.db.write(run), secret)


async def list_webhooks(services: Services, account_id: int) -> list[dict[str, Any]]:
    return await services.db.read(lambda c: repo.list_webhooks(c, account_id))


async def get(services: Services, account_id: int, webhook_id: int) -> dict[str, Any]:
    row = await services.db.read(lambda c: repo.get_webhook(c, account_id, webhook_id))
    if row is None:
        raise NotFound("webhook")
    return row


async def update(
    services: Services, account_id: int, webhook_id: int, body: object
) -> dict[str, Any]:
    """Change a webhook; any update also resumes a paused one (its batches due at once)."""
    row = await get(services, account_id, webhook_id)
    values = _validate_update(services, row, body)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        repo.update_webhook(
            conn, webhook_id, **values, paused_at=None, pause_reason=None, updated_at=now
        )
        if row["paused_at"] is not None or values.get("active"):
            repo.resume_batches(conn, webhook_id, now)
        fresh = repo.get_webhook(conn, account_id, webhook_id)
        assert fresh is not None
        return fresh

    return await services.db.write(run)


async def delete(services: Services, account_id: int, webhook_id: int) -> dict[str, Any]:
    """Delete a webhook with its pending batches and log; returns it as it was."""
    row = await get(services, account_id, webhook_id)
    await services.db.write(lambda c: repo.delete_webhook(c, webhook_id))
    return row


def secret_of(services: Services, row: Mapping[str, Any]) -> str:
    return services.get_sealer().open(bytes(row["secret_sealed"])).decode()


# --- outbox → batches ---------------------------------------------------------------------


def _sender_domain(sender: object) -> str:
    text = str(sender or "")
    return text.rpartition("@")[2].lower() if "@" in text else ""


def _facts(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with ``sending_domain_name`` and ``sending_domain_id`` of their message."""
    pairs = {(int(r["account_id"]), _sender_domain(r["sender"])) for r in rows if r.get("sender")}
    ids = repo.domain_ids(conn, pairs)
    for r in rows:
        name = _sender_domain(r.get("sender"))
        r["sending_domain_name"] = name
        r["sending_domain_id"] = ids.get((int(r["account_id"]), name))
    return rows


def _batch_rows(
    services: Services,
    webhook: Mapping[str, Any],
    matched: list[dict[str, Any]],
    kind: str,
    now: datetime,
) -> list[dict[str, Any]]:
    size = services.settings.webhooks.batch_max_events
    out = []
    for start in range(0, len(matched), size):
        chunk = matched[start : start + size]
        payloads = [rules.event_payload(e, e) for e in chunk]
        out.append(
            {
                "id": services.ids.message_id(),
                "webhook_id": webhook["id"],
                "kind": kind,
                "state": repo.PENDING,
                "event_count": len(chunk),
                "first_event_at": min(e["created_at"] for e in chunk),
                "body": rules.render_body(payloads, str(webhook["payload_format"])),
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
    return out


def _batch_round(services: Services, conn: Connection, now: datetime) -> int:
    taken = repo.take_outbox(conn, OUTBOX_ROUND)
    if not taken:
        return 0
    found = _facts(conn, [r for r in taken if r["event_id"] is not None])
    hooks = repo.enabled_for(conn, sorted({int(r["account_id"]) for r in found}))
    batches: list[dict[str, Any]] = []
    for hook in hooks:
        wants, account = rules.matcher(hook), hook["account_id"]
        matched = [e for e in found if e["account_id"] == account and wants(e)]
        batches += _batch_rows(services, hook, matched, "events", now)
    repo.insert_batches(conn, batches)
    repo.delete_outbox(conn, [int(r["outbox_id"]) for r in taken])
    return len(taken)


async def batch_outbox(services: Services) -> int:
    """Turn outbox rows into batches (one transaction per round); returns rows consumed."""
    total = 0
    while True:
        done = await services.db.write(
            lambda conn: _batch_round(services, conn, services.clock.now())
        )
        total += done
        if done < OUTBOX_ROUND:
            return total


# --- sending ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One POST: the HTTP status (None: no answer), why it failed, latency, answer excerpt."""

    ok: bool
    status: int | None
    error: str | None
    latency_ms: int
    excerpt: str


def egress_client(services: Services) -> EgressClient:
    """The SSRF-safe client webhooks use: http and https, the webhook allow-list."""
    s = services.settings
    return EgressClient(
        services.get_resolver(),
        _policy(services),
        ca_bundle=s.egress.ca_bundle,
        connect_timeout=min(s.egress.connect_timeout, s.webhooks.timeout),
        schemes=frozenset({"http", "https"}),
    )


def _split_credentials(url: str) -> tuple[str, dict[str, str]]:
    """The URL without ``user:pass@`` and, if it had them, the Basic Authorization header
    (spec §5.1 lets a webhook URL carry basic-auth credentials)."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url, {}
    user, password = unquote(parts.username or ""), unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=netloc)), {"Authorization": f"Basic {token}"}


def redacted(url: str) -> str:
    """The URL with any credentials replaced by ``***`` (for logs, notices and the CLI)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rpartition("@")[2]))


def signed_headers(
    secret: str, batch_id: str, body: bytes, payload_format: str, now: datetime, attempt: int
) -> dict[str, str]:
    """Every header of one POST: content type, both signatures, the batch id."""
    stamp = int(now.timestamp())
    jsonl = payload_format == PayloadFormat.JSONLINES.value
    return {
        "Content-Type": "application/jsonl" if jsonl else "application/json",
        "Mailtrap-Signature": rules.mailtrap_signature(secret, body),
        "webhook-id": batch_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": rules.standard_signature(secret, batch_id, stamp, body),
        "X-Postroom-Batch-Id": batch_id,
        "X-Postroom-Attempt": str(attempt),
    }


async def post(
    services: Services,
    client: EgressClient,
    webhook: Mapping[str, Any],
    batch_id: str,
    body: bytes,
    attempt: int,
) -> Outcome:
    """POST one body to the webhook; never raises for the receiver's faults."""
    s = services.settings.webhooks
    url, auth = _split_credentials(str(webhook["url"]))
    headers = {
        **signed_headers(
            secret_of(services, webhook),
            batch_id,
            body,
            str(webhook["payload_format"]),
            services.clock.now(),
            attempt,
        ),
        **auth,
    }
    started = time.perf_counter()
    try:
        reason = rules.url_refusal(url, s.allowed_ports)
        if reason is not None:
            raise EgressRefused(f"URL refused: {reason}")
        response = await client.request(
            "POST",
            url,
            max_bytes=s.max_response_bytes,
            timeout=s.timeout,
            headers=headers,
            content=body,
            truncate=True,
        )
    except EgressError as exc:
        elapsed = int((time.perf_counter() - started) * 1000)
        kind = "refused" if isinstance(exc, EgressRefused) else "failed"
        return Outcome(False, None, f"{kind}: {exc}"[:1000], elapsed, "")
    elapsed = int((time.perf_counter() - started) * 1000)
    excerpt = response.body[: EXCERPT_CHARS * 4].decode("utf-8", "replace")[:EXCERPT_CHARS]
    ok = 200 <= response.status < 300
    error = None if ok else f"HTTP {response.status}"
    return Outcome(ok, response.status, error, elapsed, excerpt)


def _schedule(services: Services) -> RetrySchedule:
    s = services.settings.webhooks
    return RetrySchedule(
        first_delay=s.retry_first_delay,
        factor=s.retry_factor,
        max_delay=max(s.retry_max_delay, s.retry_first_delay),
        window=s.retry_window,
        jitter=0.2,
    )


def _log_row(
    webhook_id: int,
    batch_id: str,
    kind: str,
    attempt: int,
    count: int,
    started: datetime,
    outcome: Outcome,
) -> dict[str, Any]:
    return {
        "webhook_id": webhook_id,
        "batch_id": batch_id,
        "kind": kind,
        "attempt": attempt,
        "event_count": count,
        "started_at": started,
        "status": outcome.status,
        "ok": outcome.ok,
        "error": outcome.error,
        "latency_ms": outcome.latency_ms,
        "response_excerpt": outcome.excerpt,
    }


@dataclass(frozen=True)
class Paused:
    webhook: dict[str, Any]
    reason: str


def _pause(
    services: Services, conn: Connection, webhook: Mapping[str, Any], reason: str, now: datetime
) -> None:
    """Pause the webhook and record the audit event (the outbox carries it on)."""
    repo.update_webhook(conn, int(webhook["id"]), paused_at=now, pause_reason=reason)
    details = {
        "event": "activity_log.webhook.paused",
        "description": f"Webhook {webhook['id']} was paused: {reason}",
        "actor": {"id": 0, "type": "system", "name": "Postroom"},
        "resource": {"id": webhook["id"], "type": "webhook", "name": redacted(str(webhook["url"]))},
        "changes": {"paused": {"from": False, "to": True}},
    }
    row = event_row(
        services.ids, int(webhook["account_id"]), EventKind.AUDIT, None, None, None, details, now
    )
    message_repo.insert_events(conn, [row])


def _lease_until(services: Services, now: datetime) -> datetime:
    # Longer than any POST can take (the timeout bounds the whole exchange), so a lease
    # outlives only a crashed dispatcher.
    return now + timedelta(seconds=services.settings.webhooks.timeout + 10)


async def _drain(
    services: Services,
    client: EgressClient,
    batch: dict[str, Any],
    rand: Callable[[], float],
    deadline: float,
) -> Paused | None:
    """Send ``batch``, then the webhook's next batches in order while they succeed and
    time is left. The transaction that records an attempt also leases the next batch,
    so each batch costs one commit besides the first lease."""
    now = services.clock.now()

    def claim(conn: Connection) -> dict[str, Any] | None:
        if not repo.lease_batch(conn, int(batch["seq"]), now, _lease_until(services, now)):
            return None  # another dispatcher has it
        return repo.find_by_id(conn, int(batch["webhook_id"]))

    webhook = await services.db.write(claim)
    if webhook is None:
        return None
    current: dict[str, Any] | None = batch
    while current is not None:
        paused, current = await _attempt(services, client, webhook, current, rand, deadline)
        if paused is not None:
            return paused
    return None


async def _attempt(
    services: Services,
    client: EgressClient,
    webhook: dict[str, Any],
    batch: dict[str, Any],
    rand: Callable[[], float],
    deadline: float,
) -> tuple[Paused | None, dict[str, Any] | None]:
    """POST one leased batch and record the outcome; returns (paused, next leased batch)."""
    started = services.clock.now()
    number = int(batch["attempts"]) + 1
    outcome = await post(services, client, webhook, str(batch["id"]), bytes(batch["body"]), number)
    done = services.clock.now()
    entry = _log_row(
        int(webhook["id"]),
        str(batch["id"]),
        str(batch["kind"]),
        number,
        int(batch["event_count"]),
        started,
        outcome,
    )
    more = time.monotonic() < deadline

    def record(conn: Connection) -> tuple[Paused | None, dict[str, Any] | None]:
        repo.insert_attempt(conn, **entry)
        if outcome.ok:
            repo.batch_delivered(conn, int(batch["seq"]), number, done)
            if not more:
                return None, None
            follower = repo.next_due(conn, int(webhook["id"]), done)
            if follower is None or not repo.lease_batch(
                conn, int(follower["seq"]), done, _lease_until(services, done)
            ):
                return None, None
            return None, follower
        first = batch["first_failed_at"] or started
        when = next_attempt(
            _schedule(services), attempts=number, first_attempt_at=first, now=done, rand=rand
        )
        if when is None:
            reason = f"deliveries failed since {first.isoformat()} ({outcome.error})"
            repo.batch_failed(conn, int(batch["seq"]), number, done, first)
            _pause(services, conn, webhook, reason, done)
            return Paused(webhook, reason), None
        repo.batch_failed(conn, int(batch["seq"]), number, when, first)
        return None, None

    result = await services.db.write(record)
    if not outcome.ok:
        log.info(
            "webhook %s batch %s attempt %d failed: %s",
            webhook["id"],
            batch["id"],
            number,
            outcome.error,
        )
    return result


async def _notify(services: Services, paused: Paused) -> None:
    address = services.settings.webhooks.notification_email
    log.warning("webhook %s paused: %s", paused.webhook["id"], paused.reason)
    if not address:
        return
    hook = paused.webhook
    draft = MessageDraft(
        sender=Address(f"postroom@{services.settings.domains.mail_host}", "Postroom"),
        to=(Address(address),),
        subject=f"Webhook {hook['id']} paused",
        text=(
            f"Postroom paused webhook {hook['id']} ({redacted(str(hook['url']))}) of account "
            f"{hook['account_id']}: {paused.reason}.\n\nIts events are kept. Fix the "
            "endpoint, then update the webhook (PATCH /api/webhooks/{id}, or "
            "`postroom webhook resume ID`) to resume delivery.\n"
        ),
        category=NOTICE_CATEGORY,
    )
    try:
        await accept_message(
            services, Origin(int(hook["account_id"]), Stream.TRANSACTIONAL, system=True), draft
        )
    except Exception:
        log.exception("could not mail the notice of paused webhook %s", hook["id"])


async def send_due(
    services: Services,
    client: EgressClient,
    rand: Callable[[], float] = random.random,
    budget: float = 10.0,
) -> int:
    """Send due batches, up to ``concurrency`` webhooks at once, each webhook's in order,
    until none is due or ``budget`` seconds have passed; returns how many webhook drains
    ran (each sends one or more batches).

    A webhook whose batch failed waits for its retry, so it drops out of the next pass
    while the others go on.
    """
    s = services.settings.webhooks
    attempted = 0
    started = time.monotonic()
    while time.monotonic() - started < budget:
        heads = await services.db.read(
            lambda c: repo.due_heads(c, services.clock.now(), s.concurrency)
        )
        if not heads:
            break
        deadline = started + budget
        results = await asyncio.gather(
            *(_drain(services, client, b, rand, deadline) for b in heads)
        )
        attempted += len(heads)
        for paused in results:
            if paused is not None:
                await _notify(services, paused)
    return attempted


async def purge(services: Services) -> int:
    """Forget delivered batches and log entries older than ``webhooks.log_days``."""
    before = services.clock.now() - timedelta(days=services.settings.webhooks.log_days)
    return await services.db.write(lambda c: repo.purge_delivered(c, before, 5000))


# --- log, replay, test --------------------------------------------------------------------


async def delivery_log(
    services: Services,
    account_id: int,
    webhook_id: int,
    *,
    limit: int = 100,
    before_id: int | None = None,
    since: datetime | None = None,
) -> list[dict[str, Any]]:
    await get(services, account_id, webhook_id)
    return await services.db.read(
        lambda c: repo.attempts(c, webhook_id, limit=limit, before_id=before_id, since=since)
    )


@dataclass(frozen=True)
class Replayed:
    events: int
    batches: int


def _kinds_for(webhook: Mapping[str, Any]) -> list[str]:
    wtype = webhook["webhook_type"]
    if wtype == WebhookType.AUDIT_LOG:
        return [EventKind.AUDIT.value]
    if wtype == WebhookType.INBOUND_RECEIVING:
        return [EventKind.INBOUND_RECEIVED.value]
    return [k.value for k in rules.SENDING_KINDS]


async def replay(
    services: Services, account_id: int, webhook_id: int, since: datetime, until: datetime
) -> Replayed:
    """Queue the events of [since, until) that the webhook wants again, in new batches."""
    if until <= since:
        raise _errors("until", "must be later than since")
    webhook = await get(services, account_id, webhook_id)
    kinds = _kinds_for(webhook)

    def run(conn: Connection) -> Replayed:
        now = services.clock.now()
        matched: list[dict[str, Any]] = []
        after = 0
        while len(matched) < REPLAY_MAX_EVENTS:
            rows = repo.events_between(conn, account_id, kinds, since, until, after, 5000)
            if not rows:
                break
            after = int(rows[-1]["id"])
            matched += [
                e
                for e in _facts(conn, rows)
                if rules.wants_outbox(str(e["kind"]), e["details"] or {})
                and rules.matches(webhook, e)
            ]
        if len(matched) > REPLAY_MAX_EVENTS:
            raise _errors("since", f"the range holds more than {REPLAY_MAX_EVENTS} events")
        batches = _batch_rows(services, webhook, matched, "replay", now)
        repo.insert_batches(conn, batches)
        return Replayed(len(matched), len(batches))

    return await services.db.write(run)


def sample_payload(webhook: Mapping[str, Any], event_id: str, now: datetime) -> dict[str, Any]:
    """The synthetic event of "send a test event": the webhook's first kind, example data."""
    wtype = webhook["webhook_type"]
    stamp = int(now.timestamp())
    if wtype == WebhookType.AUDIT_LOG:
        return {
            "event": "activity_log.test",
            "description": "A test event from Postroom",
            "actor": {"id": 0, "type": "system", "name": "Postroom"},
            "timestamp": stamp,
        }
    if wtype == WebhookType.INBOUND_RECEIVING:
        return {
            "event": EventKind.INBOUND_RECEIVED.value,
            "event_id": event_id,
            "timestamp": stamp,
            "inbox_id": webhook["inbound_inbox_id"],
            "test": True,
        }
    types = list(webhook["event_types"] or ["delivery"])
    kind = EventKind.from_config_name(types[0])
    return {
        "event": kind.payload_name,
        "message_id": "00000000-0000-4000-8000-000000000000",
        "email": "test@example.com",
        "event_id": event_id,
        "timestamp": stamp,
        "sending_stream": webhook["sending_stream"] or "transactional",
        "sending_domain_name": "example.com",
        "category": "Postroom test event",
    }


async def send_test(
    services: Services, account_id: int, webhook_id: int, client: EgressClient | None = None
) -> dict[str, Any]:
    """POST one test event to the webhook now; the attempt is logged and returned."""
    webhook = await get(services, account_id, webhook_id)
    now = services.clock.now()
    batch_id = services.ids.message_id()
    payload = sample_payload(webhook, services.ids.message_id(), now)
    body = rules.render_body([payload], str(webhook["payload_format"]))
    outcome = await post(services, client or egress_client(services), webhook, batch_id, body, 1)
    entry = _log_row(webhook_id, batch_id, "test", 1, 1, now, outcome)
    await services.db.write(lambda c: repo.insert_attempt(c, **entry))
    return entry


async def status(services: Services, account_id: int, webhook_id: int) -> dict[str, Any]:
    """Pending batches and events of a webhook, and why it is paused (if it is)."""
    row = await get(services, account_id, webhook_id)
    batches, events = await services.db.read(lambda c: repo.pending_count(c, webhook_id))
    return {
        "pending_batches": batches,
        "pending_events": events,
        "paused_at": row["paused_at"],
        "pause_reason": row["pause_reason"],
    }
