"""The one constructor of ``events`` rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from postroom.domain.events import EventKind
from postroom.domain.ids import IdFactory
from postroom.domain.streams import Stream


def event_row(
    ids: IdFactory,
    account_id: int,
    kind: EventKind,
    delivery_id: str | None,
    stream: Stream | str | None,
    recipient: str | None,
    details: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """An ``events`` row: ``delivery_id`` is the contract's message_id of one recipient."""
    return {
        "event_id": ids.message_id(),
        "account_id": account_id,
        "kind": kind.value,
        "message_id": delivery_id,
        "stream": str(stream) if stream is not None else None,
        "recipient": recipient,
        "details": details,
        "created_at": now,
    }
