"""Sandbox delivery: leased deliveries are captured into their account's default inbox.

A message with several recipients is captured once per inbox (as a test inbox shows it),
and every recipient's delivery is completed with a ``delivery`` event. Capture is
idempotent: a unique key on (inbox, message) means a delivery leased again after a crash
never shows up twice in the inbox.

Captured mail is DKIM-signed as it would leave for an MX (the active keys of the
sender's verified domain), so the inbox shows exactly what recipients would receive.

A worker round is handled as a whole: one read gathers every leased message and body
(``plan_capture``, off the writer thread), and one write transaction inserts the
captures, completes the deliveries and records the events (``apply_capture``), each with
one statement per table rather than per message.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Connection

from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.events.recorder import delivery_event
from postroom.mta.signing import Signer
from postroom.queue import leases
from postroom.sandbox.capture import captured_row
from postroom.services import Services
from postroom.storage.repos import messages as message_repo
from postroom.storage.repos import sandbox as sandbox_repo
from postroom.storage.tables import message_bodies, messages, sandbox_messages

NO_INBOX = "the account has no sandbox inbox to capture into"
NO_BODY = "the message body is no longer stored"


@dataclass(slots=True)
class CapturePlan:
    """What one round will write: captured rows, and deliveries by their outcome."""

    captures: list[dict[str, Any]] = field(default_factory=list)
    delivered: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[dict[str, Any], str]] = field(default_factory=list)


def plan_capture(
    services: Services, conn: Connection, leased: list[dict[str, Any]], now: datetime
) -> CapturePlan:
    """Read what capture needs for a round and build the inbox rows (off the writer)."""
    stored = _messages_with_bodies(conn, {row["message_id"] for row in leased})
    inbox_of = {
        account: sandbox_repo.default_inbox_id(conn, account)
        for account in {int(row["account_id"]) for row in leased}
    }
    plan = CapturePlan()
    planned: set[str] = set()
    signer = Signer(services, conn, int(now.timestamp()))
    for delivery in leased:
        message = stored.get(delivery["message_id"])
        inbox_id = inbox_of[int(delivery["account_id"])]
        if inbox_id is None or message is None:
            plan.rejected.append((delivery, NO_INBOX if inbox_id is None else NO_BODY))
            continue
        plan.delivered.append(delivery)
        if message["id"] not in planned:
            planned.add(message["id"])
            row = captured_row(
                message,
                signer.sign(message, bytes(message["raw"])),
                inbox_id=inbox_id,
                now=now,
            )
            plan.captures.append(row)
    return plan


def _messages_with_bodies(conn: Connection, ids: set[str]) -> dict[str, dict[str, Any]]:
    query = (
        select(messages, message_bodies.c.raw)
        .join(message_bodies, message_bodies.c.message_id == messages.c.id)
        .where(messages.c.id.in_(ids))
    )
    return {row["id"]: dict(row) for row in conn.execute(query).mappings()}


def apply_capture(services: Services, conn: Connection, plan: CapturePlan, now: datetime) -> int:
    """Insert the captures and complete the deliveries; returns deliveries completed."""
    queued = leases.still_queued(
        conn, [d["id"] for d in plan.delivered] + [d["id"] for d, _ in plan.rejected]
    )
    new_rows = _not_yet_captured(conn, plan.captures)
    sandbox_repo.insert_captured(conn, new_rows)
    for inbox_id, count in Counter(row["inbox_id"] for row in new_rows).items():
        sandbox_repo.bump_inbox(conn, inbox_id, count, now)
    delivered = [d for d in plan.delivered if d["id"] in queued]
    rejected = [(d, reason) for d, reason in plan.rejected if d["id"] in queued]
    leases.complete(conn, [d["id"] for d in delivered], DeliveryState.DELIVERED, now)
    for reason in {reason for _, reason in rejected}:
        ids = [d["id"] for d, r in rejected if r == reason]
        leases.complete(conn, ids, DeliveryState.REJECTED, now, reason)
    inbox_of = {row["message_id"]: row["inbox_id"] for row in plan.captures}
    events = [
        delivery_event(
            services.ids,
            d,
            EventKind.DELIVERY,
            {"inbox_id": inbox_of.get(d["message_id"]), "mode": "sandbox"},
            now,
        )
        for d in delivered
    ] + [
        delivery_event(
            services.ids, d, EventKind.REJECT, {"reject_reason": r, "mode": "sandbox"}, now
        )
        for d, r in rejected
    ]
    message_repo.insert_events(conn, events)
    return len(delivered) + len(rejected)


def _not_yet_captured(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # A delivery re-leased after a crash may find its message already in the inbox.
    if not rows:
        return []
    pairs = [(row["inbox_id"], row["message_id"]) for row in rows]
    query = select(sandbox_messages.c.inbox_id, sandbox_messages.c.message_id).where(
        tuple_(sandbox_messages.c.inbox_id, sandbox_messages.c.message_id).in_(pairs)
    )
    existing = {(r.inbox_id, r.message_id) for r in conn.execute(query)}
    return [row for row in rows if (row["inbox_id"], row["message_id"]) not in existing]
