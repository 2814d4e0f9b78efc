"""The one constructor of ``events`` rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from postroom.domain.events import EventKind
from postroom.domain.ids import IdFactory
from postroom.domain.streams import Stream


def event_row(
    ids: IdFactory | None,
    account_id: int,
    kind: EventKind,
    delivery_id: str | None,
    stream: Stream | str | None,
    recipient: str | None,
    details: dict[str, Any],
    now: datetime,
    *,
    event_id: str | None = None,
) -> dict[str, Any]:
    """An ``events`` row: ``delivery_id`` is the contract's message_id of one recipient.

    The row's own id is ``event_id`` when the caller drew it already (accept draws all of
    a message's ids at once), else a fresh one from ``ids``."""
    if event_id is None:
        assert ids is not None, "event_row needs ids or an event_id"
        event_id = ids.message_id()
    return {
        "event_id": event_id,
        "account_id": account_id,
        "kind": kind.value,
        "message_id": delivery_id,
        "stream": str(stream) if stream is not None else None,
        "recipient": recipient,
        "details": details,
        "created_at": now,
    }


def delivery_event(
    ids: IdFactory,
    delivery: Mapping[str, Any],
    kind: EventKind,
    details: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """An event about one ``deliveries`` row (its account, id, stream and recipient)."""
    return event_row(
        ids,
        int(delivery["account_id"]),
        kind,
        str(delivery["id"]),
        delivery["stream"],
        delivery["recipient"],
        details,
        now,
    )
