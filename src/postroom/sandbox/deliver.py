"""Sandbox delivery: leased deliveries are captured into their account's default inbox.

A message with several recipients is captured once per inbox (as a test inbox shows it),
and every recipient's delivery is completed with a ``delivery`` event. Capture is
idempotent: a unique key on (inbox, message) means a delivery leased again after a crash
never shows up twice in the inbox.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Connection

from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.events.recorder import event_row
from postroom.queue import leases
from postroom.sandbox.capture import captured_row
from postroom.services import Services
from postroom.storage.repos import messages as message_repo
from postroom.storage.repos import sandbox as sandbox_repo
from postroom.storage.tables import deliveries, messages

NO_INBOX = "the account has no sandbox inbox to capture into"
NO_BODY = "the message body is no longer stored"


def plan_capture(
    services: Services, conn: Connection, leased: list[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Read what capture needs and build the inbox rows (runs off the writer thread)."""
    by_message: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in leased:
        by_message[row["message_id"]].append(row)
    plans = []
    inbox_cache: dict[int, int | None] = {}
    for message_id, group in by_message.items():
        account_id = int(group[0]["account_id"])
        if account_id not in inbox_cache:
            inbox_cache[account_id] = sandbox_repo.default_inbox_id(conn, account_id)
        plans.append(_plan_one(services, conn, message_id, group, inbox_cache[account_id], now))
    return plans


def _plan_one(
    services: Services,
    conn: Connection,
    message_id: str,
    group: list[dict[str, Any]],
    inbox_id: int | None,
    now: datetime,
) -> dict[str, Any]:
    plan: dict[str, Any] = {"deliveries": group, "inbox_id": inbox_id, "row": None, "error": None}
    raw = message_repo.get_raw(conn, message_id)
    if inbox_id is None or raw is None:
        plan["error"] = NO_INBOX if inbox_id is None else NO_BODY
        return plan
    sender = conn.execute(
        select(messages.c.sender, messages.c.client_ip).where(messages.c.id == message_id)
    ).one()
    plan["row"] = captured_row(
        raw,
        sandbox_id=services.ids.snowflake(now),
        inbox_id=inbox_id,
        account_id=int(group[0]["account_id"]),
        message_id=message_id,
        mail_from=sender.sender,
        client_ip=sender.client_ip,
        now=now,
    )
    return plan


def apply_capture(
    services: Services, conn: Connection, plans: list[dict[str, Any]], now: datetime
) -> int:
    """Insert the captured messages and complete their deliveries; returns deliveries done."""
    done = 0
    for plan in plans:
        still_queued = _still_queued(conn, [d["id"] for d in plan["deliveries"]])
        group = [d for d in plan["deliveries"] if d["id"] in still_queued]
        if not group:
            continue
        if plan["error"]:
            _finish(
                services,
                conn,
                group,
                DeliveryState.REJECTED,
                EventKind.REJECT,
                {"reject_reason": plan["error"]},
                now,
            )
        else:
            inserted = sandbox_repo.insert_captured(conn, [plan["row"]])
            if inserted:
                sandbox_repo.bump_inbox(conn, plan["inbox_id"], 1, now)
            details = {"inbox_id": plan["inbox_id"], "mode": "sandbox"}
            _finish(
                services, conn, group, DeliveryState.DELIVERED, EventKind.DELIVERY, details, now
            )
        done += len(group)
    return done


def _still_queued(conn: Connection, ids: list[str]) -> set[str]:
    query = select(deliveries.c.id).where(
        deliveries.c.id.in_(ids), deliveries.c.state == DeliveryState.QUEUED.value
    )
    return {row[0] for row in conn.execute(query)}


def _finish(
    services: Services,
    conn: Connection,
    group: list[dict[str, Any]],
    state: DeliveryState,
    kind: EventKind,
    details: dict[str, Any],
    now: datetime,
) -> None:
    leases.complete(conn, [d["id"] for d in group], state, now, details.get("reject_reason"))
    message_repo.insert_events(
        conn,
        [
            event_row(
                services.ids,
                int(d["account_id"]),
                kind,
                d["id"],
                d["stream"],
                d["recipient"],
                details,
                now,
            )
            for d in group
        ],
    )
