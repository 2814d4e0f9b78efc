"""Suppressions: the recipients Postroom refuses to send to, and Postroom's policy for them.

Entries are made from events, in the transaction that records the events:

- ``bounce`` with category bad_mailbox or bad_domain (never from a 4xx, never 5.7.x):
  "hard bounce", every stream, permanent.
- ``spam`` (an ARF or JMRP complaint): "spam complaint", every stream, permanent.
- ``unsubscribe``: "unsubscription", its stream and its sending domain only, permanent.
- ``soft_bounce``/``bounce`` with category mailbox_full, ``soft_bounce_threshold`` times
  within ``soft_bounce_window_days``: "hard bounce", its stream, expires after
  ``soft_bounce_ttl_days`` (reliability.md §2.4: suppress only after N over M days).

Entries are also made and removed through the API (spec §4.2) and CSV import; every
addition and removal is written to ``suppression_log`` with who did it ("system" for
automatic entries, the token's name otherwise). Expired entries stop applying at once
(the check compares ``expires_at``) and the scheduler removes them, logged as "expired".

Acceptance screens recipients with :func:`screen`: one indexed query per group commit.
A suppressed recipient's message is still accepted (the API answers its message id, as
Mailtrap does) and its delivery is ``rejected`` with a ``reject`` event whose reason
reads "Recipient in suppression list. Reason: <type>".
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain.addresses import is_valid_email
from postroom.domain.events import EventKind
from postroom.errors import Conflict, NotFound, ValidationFailed
from postroom.mta.classify import RECIPIENT_CATEGORIES, BounceCategory
from postroom.services import Services
from postroom.services.domains import valid_domain_name
from postroom.storage.repos import domains as domain_repo
from postroom.storage.repos import suppressions as repo

HARD_BOUNCE = "hard bounce"
SPAM_COMPLAINT = "spam complaint"
UNSUBSCRIPTION = "unsubscription"
MANUAL_IMPORT = "manual import"
TYPES = (HARD_BOUNCE, SPAM_COMPLAINT, UNSUBSCRIPTION, MANUAL_IMPORT)
ANY_STREAM = "any"
STREAMS = ("transactional", "bulk")
SYSTEM = "system"
PAGE_LIMIT = 1000
# One import is one transaction held in memory: bounded in rows, and in errors reported.
IMPORT_MAX_ROWS = 50_000
IMPORT_MAX_ERRORS = 100
HISTORY_LIMIT = 1000  # log entries of one address shown (the newest)
REASON = "Recipient in suppression list. Reason: {}"
CSV_FIELDS = (
    "email",
    "type",
    "sending_stream",
    "domain_name",
    "created_at",
    "expires_at",
    "message_bounce_category",
    "message_esp_response",
)
_RECIPIENT_CATEGORIES = {c.value for c in RECIPIENT_CATEGORIES}


def normal_email(email: str) -> str:
    return email.strip().lower()


def _domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower()


# --- acceptance ---------------------------------------------------------------------------


def screen(
    conn: Connection, candidates: Sequence[tuple[dict[str, Any], str]], now: datetime
) -> dict[str, str]:
    """Delivery id → suppression type, for the (delivery row, sender) pairs suppressed."""
    pairs = {(int(d["account_id"]), normal_email(d["recipient"])) for d, _ in candidates}
    entries = repo.active_for(conn, pairs, now)
    if not entries:
        return {}
    by_pair: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for entry in entries:
        by_pair.setdefault((int(entry["account_id"]), entry["email"]), []).append(entry)
    found: dict[str, str] = {}
    for delivery, sender in candidates:
        key = (int(delivery["account_id"]), normal_email(delivery["recipient"]))
        for entry in by_pair.get(key, ()):
            if _applies(entry, str(delivery["stream"]), _domain_of(sender)):
                found[str(delivery["id"])] = str(entry["type"])
                break
    return found


def _applies(entry: dict[str, Any], stream: str, sender_domain: str) -> bool:
    if entry["sending_stream"] not in (ANY_STREAM, stream):
        return False
    # Only unsubscriptions are domain-specific: a recipient who unsubscribed from one
    # brand's mail still gets the account's other domains' mail.
    domain = entry["domain_name"]
    return entry["type"] != UNSUBSCRIPTION or not domain or domain == sender_domain


def reject_reason(kind: str) -> str:
    return REASON.format(kind)


# --- from events --------------------------------------------------------------------------


def record_from_events(
    services: Services, conn: Connection, events: Iterable[dict[str, Any]], now: datetime
) -> int:
    """Make the entries the events call for, in the caller's transaction; returns how many."""
    wanted = [e for e in events if _policy(e) is not None]
    if not wanted:
        return 0
    facts = repo.message_facts(conn, [str(e["message_id"]) for e in wanted if e["message_id"]])
    cfg = services.settings.bounces
    made = 0
    for event in wanted:
        kind = _policy(event)
        fact = facts.get(str(event["message_id"]), {})
        email = normal_email(str(event["recipient"] or fact.get("recipient", "")))
        if not email:
            continue
        row = _row(services, event, fact, email, now)
        if kind == "strike":
            if cfg.soft_bounce_threshold <= 0:
                continue
            window = now - timedelta(days=cfg.soft_bounce_window_days)
            stream = str(event["stream"] or "transactional")
            strikes = repo.strike(conn, int(event["account_id"]), email, stream, window, now)
            if strikes < cfg.soft_bounce_threshold:
                continue
            repo.clear_strikes(conn, int(event["account_id"]), email, stream)
            row.update(
                type=HARD_BOUNCE,
                origin="soft_bounce",
                sending_stream=stream,
                expires_at=now + timedelta(days=cfg.soft_bounce_ttl_days),
            )
        elif isinstance(kind, dict):
            row.update(kind)
        made += repo.add(conn, row, SYSTEM, now)
    return made


def _policy(event: dict[str, Any]) -> dict[str, Any] | str | None:
    """The entry an event calls for: fields of the row, "strike", or None."""
    kind, details = event["kind"], event.get("details") or {}
    category = details.get("bounce_category")
    if kind == EventKind.SPAM.value:
        return {"type": SPAM_COMPLAINT, "origin": "complaint", "sending_stream": ANY_STREAM}
    if kind == EventKind.UNSUBSCRIBE.value:
        return {"type": UNSUBSCRIPTION, "origin": "unsubscribe"}
    if kind == EventKind.BOUNCE.value and not details.get("expired"):
        code = int(details.get("response_code") or 550)
        enhanced = str(details.get("enhanced_status") or "")
        # Never from a 4xx, never from a 5.7.x (sender-side policy): reliability.md T2.2.
        if category in _RECIPIENT_CATEGORIES and code >= 500 and not enhanced.startswith("5.7."):
            return {"type": HARD_BOUNCE, "origin": "bounce", "sending_stream": ANY_STREAM}
    if kind in (EventKind.BOUNCE.value, EventKind.SOFT_BOUNCE.value) and (
        category == BounceCategory.MAILBOX_FULL.value
    ):
        return "strike"
    return None


def _row(
    services: Services, event: dict[str, Any], fact: dict[str, Any], email: str, now: datetime
) -> dict[str, Any]:
    details = event.get("details") or {}
    sender = str(fact.get("sender") or "")
    return {
        "id": services.ids.message_id(),
        "account_id": int(event["account_id"]),
        "email": email,
        "sending_stream": str(event["stream"] or "transactional"),
        # An unsubscription is per sending domain; the rest apply to every domain.
        "domain_name": _domain_of(sender) if event["kind"] == EventKind.UNSUBSCRIBE else "",
        "created_by": SYSTEM,
        "message_id": event["message_id"],
        "message_bounce_category": str(details.get("bounce_category") or ""),
        "message_category": str(fact.get("category") or ""),
        "message_client_ip": str(fact.get("client_ip") or ""),
        "message_created_at": fact.get("created_at"),
        "message_esp_response": str(details.get("response") or "")[:2000],
        "message_esp_server_type": str(details.get("email_service_provider") or ""),
        "message_outgoing_ip": str(details.get("sending_ip") or ""),
        "message_recipient_mx_name": str(details.get("recipient_mx") or ""),
        "message_sender_email": sender,
        "message_subject": str(fact.get("subject") or "")[:2000],
        "created_at": now,
        "expires_at": None,
    }


# --- the API ------------------------------------------------------------------------------


def _manual_row(
    services: Services,
    account_id: int,
    email: str,
    stream: str,
    kind: str,
    domain_name: str,
    actor: str,
    origin: str,
    now: datetime,
) -> dict[str, Any]:
    return {
        "id": services.ids.message_id(),
        "account_id": account_id,
        "email": email,
        "type": kind,
        "sending_stream": stream,
        "domain_name": domain_name,
        "origin": origin,
        "created_by": actor[:255],
        "message_id": None,
        "created_at": now,
        "expires_at": None,
    }


def _check(email: str, stream: str, kind: str) -> dict[str, list[str]]:
    problems: dict[str, list[str]] = {}
    if not is_valid_email(email):
        problems["email"] = ["is invalid"]
    if stream not in STREAMS:
        problems["sending_stream"] = ["is not included in the list"]
    if kind not in TYPES:
        problems["type"] = ["is not included in the list"]
    return problems


async def create(
    services: Services,
    account_id: int,
    actor: str,
    email: str,
    stream: str,
    kind: str = MANUAL_IMPORT,
    domain_id: int | None = None,
) -> dict[str, Any]:
    """Add one entry by hand (or return the one its scope already has)."""
    email = normal_email(email)
    problems = _check(email, stream, kind)
    if problems:
        raise Conflict(problems)
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        domain_name = ""
        if domain_id is not None:
            domain = domain_repo.get_domain(conn, account_id, domain_id)
            if domain is None:
                raise Conflict({"domain_id": ["is invalid"]})
            domain_name = str(domain["domain_name"])
        row = _manual_row(services, account_id, email, stream, kind, domain_name, actor, "api", now)
        repo.add(conn, row, actor, now)
        found = repo.find_scope(conn, account_id, email, stream, domain_name)
        assert found is not None
        return found

    return await services.db.write(run)


async def remove(
    services: Services, account_id: int, actor: str, suppression_id: str
) -> dict[str, Any]:
    """Delete one entry of the account (logged with ``actor``); NotFound otherwise."""
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        row = repo.get(conn, account_id, suppression_id)
        if row is None:
            raise NotFound("suppression")
        repo.remove(conn, row, "removed", actor, now)
        return row

    return await services.db.write(run)


async def list_page(
    services: Services,
    account_id: int,
    *,
    email: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    last_id: str | None = None,
    limit: int = PAGE_LIMIT,
) -> list[dict[str, Any]]:
    """Up to ``limit`` entries, oldest first, after the entry ``last_id``."""

    def run(conn: Connection) -> list[dict[str, Any]]:
        after = None
        if last_id is not None:
            cursor = repo.get(conn, account_id, last_id)
            if cursor is None:
                raise ValidationFailed(["last_id is not a suppression of this account"])
            after = (cursor["created_at"], str(cursor["id"]))
        return repo.page(
            conn,
            account_id,
            email=normal_email(email) if email else None,
            start=start,
            end=end,
            after=after,
            limit=min(limit, PAGE_LIMIT),
        )

    return await services.db.read(run)


async def export_csv(services: Services, account_id: int) -> AsyncIterator[str]:
    """Every entry of the account as CSV (header row first), oldest first: one chunk a
    page, so an account's whole list is never held in memory at once."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    last: str | None = None
    while True:
        rows = await list_page(services, account_id, last_id=last)
        for row in rows:
            writer.writerow([_csv_cell(row.get(name)) for name in CSV_FIELDS])
        yield out.getvalue()
        out.seek(0)
        out.truncate()
        if len(rows) < PAGE_LIMIT:
            return
        last = str(rows[-1]["id"])


def _csv_cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    text = "" if value is None else str(value)
    # A cell starting with = + - @ runs as a formula in spreadsheets (CSV injection).
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _unreadable(reader: csv.DictReader[str], exc: csv.Error) -> ValidationFailed:
    # A file csv cannot read (a cell over its field size limit) is the client's error; the
    # record that failed starts on the line after those read.
    return ValidationFailed([f"line {reader.line_num + 1}: {exc}"])


def _records(reader: csv.DictReader[str]) -> Iterator[dict[str, Any]]:
    try:
        yield from reader
    except csv.Error as exc:
        raise _unreadable(reader, exc) from None


async def import_csv(services: Services, account_id: int, actor: str, text: str) -> dict[str, Any]:
    """Add the entries of a CSV (columns: email, and optionally sending_stream, type,
    domain_name); rows without a stream apply to both streams. One transaction."""
    reader = csv.DictReader(io.StringIO(text))
    try:
        fields = reader.fieldnames
    except csv.Error as exc:
        raise _unreadable(reader, exc) from None
    if fields is None or "email" not in [f.strip() for f in fields]:
        raise ValidationFailed(["the CSV needs a header row with an 'email' column"])
    now = services.clock.now()
    rows: list[dict[str, Any]] = []
    errors: list[str] = []
    failed = 0
    for number, item in enumerate(_records(reader), start=2):
        if number - 1 > IMPORT_MAX_ROWS:
            raise ValidationFailed([f"the CSV has more than {IMPORT_MAX_ROWS} rows; split it"])
        clean = {str(k).strip(): (v or "").strip() for k, v in item.items() if k}
        email = normal_email(clean.get("email", ""))
        kind = clean.get("type") or MANUAL_IMPORT
        domain_name, bad_domain = clean.get("domain_name", ""), False
        if domain_name:
            try:
                domain_name = valid_domain_name(domain_name)
            except Conflict:
                bad_domain = True
        streams = [clean["sending_stream"]] if clean.get("sending_stream") else list(STREAMS)
        for stream in streams:
            problems = _check(email, stream, kind)
            if bad_domain:
                problems["domain_name"] = ["is invalid"]
            if problems:
                failed += 1
                if len(errors) < IMPORT_MAX_ERRORS:
                    errors.append(
                        f"line {number}: " + "; ".join(f"{k} {v[0]}" for k, v in problems.items())
                    )
                break
            rows.append(
                _manual_row(
                    services,
                    account_id,
                    email,
                    stream,
                    kind,
                    domain_name,
                    actor,
                    "import",
                    now,
                )
            )

    def run(conn: Connection) -> int:
        return sum(repo.add(conn, row, actor, now) for row in rows)

    added = await services.db.write(run)
    if failed > len(errors):
        errors.append(f"… and {failed - len(errors)} more lines with errors")
    return {"imported": added, "skipped": len(rows) - added, "errors": errors}


async def expire_due(services: Services, batch: int = 500) -> int:
    """Remove entries whose time is over (they already stopped applying), logged."""
    now = services.clock.now()

    def run(conn: Connection) -> int:
        rows = repo.expired(conn, now, batch)
        for row in rows:
            repo.remove(conn, row, "expired", SYSTEM, now)
        return len(rows)

    return await services.db.write(run)


async def history(services: Services, account_id: int, email: str) -> list[dict[str, Any]]:
    """The audit trail of one address: its newest ``HISTORY_LIMIT`` additions and
    removals, oldest first, with who made them."""
    email = normal_email(email)
    return await services.db.read(lambda conn: repo.history(conn, account_id, email, HISTORY_LIMIT))
