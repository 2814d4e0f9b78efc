"""Captured sandbox messages: listing, search, read state, and their MIME parts.

A message is looked up by (account, inbox, id) together, so a message of another inbox
or another tenant is NotFound. Parts (text, HTML, headers, attachments) are read from the
stored raw RFC 5322 bytes with the stdlib parser on every request: the raw message is the
single source of truth, and attachment ids are the 1-based position of the part among
the message's attachments, which is stable because a captured message never changes.
Reading a message starts its DNS blocklist check if it has none (sandbox/blacklists.py).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage, Message, MIMEPart
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from postroom.errors import Conflict, NotFound
from postroom.sandbox import blacklists
from postroom.sandbox.capture import parse
from postroom.services import Services
from postroom.storage.repos import sandbox as repo

T = TypeVar("T")

PAGE_SIZE = 30
# A listing may wait for mail to be captured: bounded, and polled (the worker that
# captures may be another process, so there is nothing in-process to wait on).
MAX_WAIT_SECONDS = 30.0
WAIT_POLL_SECONDS = 0.1
_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})
# A content type safe to echo in a response header (no parameters, no control characters).
_MIME_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*")


@dataclass(frozen=True, slots=True)
class AttachmentPart:
    """One attachment of a captured message, decoded."""

    id: int
    filename: str
    disposition: str
    content_type: str
    content_id: str | None
    transfer_encoding: str | None
    content: bytes


# --- rows -------------------------------------------------------------------------------


def _require_inbox(conn: Connection, account_id: int, inbox_id: int) -> None:
    if repo.get_inbox(conn, account_id, inbox_id) is None:
        raise NotFound("inbox")


def _require_message(
    conn: Connection, account_id: int, inbox_id: int, message_id: int, *, with_raw: bool = False
) -> dict[str, Any]:
    row = repo.get_message(conn, account_id, inbox_id, message_id, with_raw=with_raw)
    if row is None:
        raise NotFound("message")
    return row


async def list_messages(
    services: Services,
    account_id: int,
    inbox_id: int,
    *,
    search: str | None = None,
    last_id: int | None = None,
    page: int | None = None,
    message_id: str | None = None,
    wait: float = 0,
) -> list[dict[str, Any]]:
    """Up to 30 messages, newest first: before ``last_id`` if given (it wins), else ``page``.

    ``message_id`` keeps the capture of one sent message (see the repository). Capture
    from the queue is asynchronous, so a read right after a send may find nothing yet:
    ``wait`` (seconds, at most :data:`MAX_WAIT_SECONDS`) polls until the page has a
    message or the time is up.
    """
    offset = 0 if last_id is not None else (max(page or 1, 1) - 1) * PAGE_SIZE
    term = search.strip() if search else None
    wanted = message_id.strip() if message_id else None

    def run(conn: Connection) -> list[dict[str, Any]]:
        _require_inbox(conn, account_id, inbox_id)
        return repo.list_messages(
            conn,
            inbox_id,
            search=term,
            before_id=last_id,
            offset=offset,
            limit=PAGE_SIZE,
            message_id=wanted,
        )

    longest = min(MAX_WAIT_SECONDS, services.settings.limits.sandbox_max_wait_seconds)
    deadline = time.monotonic() + min(max(wait, 0.0), longest)
    while True:
        rows = await services.db.read(run)
        left = deadline - time.monotonic()
        if rows or left <= 0:
            blacklists.start(services, rows)
            return rows
        await asyncio.sleep(min(WAIT_POLL_SECONDS, left))


async def get_message(
    services: Services, account_id: int, inbox_id: int, message_id: int
) -> dict[str, Any]:
    row = await services.db.read(
        lambda conn: _require_message(conn, account_id, inbox_id, message_id)
    )
    blacklists.start(services, [row])
    return row


def parse_is_read(value: object) -> bool:
    """``is_read`` as the SDKs send it: Python sends "true"/"false", Node a boolean."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise Conflict({"is_read": ["is invalid"] if value is not None else ["can't be blank"]})


async def set_read(
    services: Services, account_id: int, inbox_id: int, message_id: int, is_read: bool
) -> dict[str, Any]:
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        _require_message(conn, account_id, inbox_id, message_id)
        repo.update_message(conn, message_id, is_read=is_read, updated_at=now)
        return _require_message(conn, account_id, inbox_id, message_id)

    return await services.db.write(run)


async def delete_message(
    services: Services, account_id: int, inbox_id: int, message_id: int
) -> dict[str, Any]:
    """Delete a message; returns it as it was."""

    def run(conn: Connection) -> dict[str, Any]:
        row = _require_message(conn, account_id, inbox_id, message_id)
        repo.delete_message(conn, message_id)
        return row

    return await services.db.write(run)


async def read_part(
    services: Services,
    account_id: int,
    inbox_id: int,
    message_id: int,
    extract: Callable[[bytes], T],
) -> tuple[dict[str, Any], T]:
    """The message row and ``extract(raw)``, parsed off the event loop (in the read thread)."""

    def run(conn: Connection) -> tuple[dict[str, Any], T]:
        row = _require_message(conn, account_id, inbox_id, message_id, with_raw=True)
        raw = bytes(row.pop("raw"))
        return row, extract(raw)

    return await services.db.read(run)


# --- parts ------------------------------------------------------------------------------


def _text_of(part: MIMEPart) -> str:
    """A text part's decoded content, even when its charset is unknown or mislabelled."""
    try:
        content = part.get_content()
    except (LookupError, UnicodeError, ValueError):
        content = None
    if isinstance(content, str):
        return content
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def body_text(raw: bytes, subtype: str) -> str:
    """The message's ``plain`` or ``html`` body ("" when it has none)."""
    part = parse(raw).get_body(preferencelist=(subtype,))
    if part is None or part.get_content_type() != f"text/{subtype}":
        return ""
    return _text_of(part)


def _decoded(message: EmailMessage, name: str, value: str) -> str:
    try:
        return str(message.policy.header_fetch_parse(name, value))
    except Exception:  # the stdlib's header parser has crashed on hostile input before
        return re.sub(r"\r?\n[ \t]*", " ", value).strip()


def mail_headers(raw: bytes) -> dict[str, str]:
    """Decoded header values by lower-case name (the first of repeated headers wins)."""
    message = parse(raw)
    headers: dict[str, str] = {}
    for name, value in message.raw_items():
        if name.lower() not in headers:
            headers[name.lower()] = _decoded(message, name, value)
    return headers


def _leaves(part: MIMEPart) -> Iterator[MIMEPart]:
    # message/rfc822 is one attachment (a forwarded mail), not parts to descend into.
    if part.is_multipart() and part.get_content_maintype() == "multipart":
        for child in part.get_payload():
            if isinstance(child, MIMEPart):
                yield from _leaves(child)
    else:
        yield part


def _is_body(part: MIMEPart, bodies: list[MIMEPart]) -> bool:
    return any(part is body for body in bodies)


def _attachment_parts(message: EmailMessage) -> list[MIMEPart]:
    bodies = [b for b in (message.get_body(("plain",)), message.get_body(("html",))) if b]
    if not message.is_multipart():
        return []
    return [p for p in _leaves(message) if not _is_body(p, bodies)]


def _content_bytes(part: MIMEPart) -> bytes:
    if part.get_content_maintype() == "message":
        inner = part.get_payload(0) if part.is_multipart() else part.get_payload()
        return inner.as_bytes() if isinstance(inner, Message) else str(inner).encode()
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _disposition(part: MIMEPart) -> str:
    disposition = part.get_content_disposition()
    if disposition in ("inline", "attachment"):
        return disposition
    # No Content-Disposition: a part referenced by Content-ID is shown inline.
    return "inline" if part.get("Content-ID") else "attachment"


def _safe_type(content_type: str) -> str:
    # The type is echoed in the download's Content-Type header: only a plain type/subtype.
    return content_type if _MIME_TYPE.fullmatch(content_type) else "application/octet-stream"


def _attachment(index: int, part: MIMEPart) -> AttachmentPart:
    content_id = str(part.get("Content-ID", "")).strip().strip("<>") or None
    encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower() or None
    return AttachmentPart(
        id=index,
        filename=str(part.get_filename() or ""),
        disposition=_disposition(part),
        content_type=_safe_type(part.get_content_type()),
        content_id=content_id,
        transfer_encoding=encoding,
        content=_content_bytes(part),
    )


def attachments(raw: bytes) -> list[AttachmentPart]:
    """The message's attachments in document order, ids 1, 2, … (never 0: SDKs test ids)."""
    parts = _attachment_parts(parse(raw))
    return [_attachment(index, part) for index, part in enumerate(parts, start=1)]


def attachment(raw: bytes, attachment_id: int) -> AttachmentPart:
    found = [a for a in attachments(raw) if a.id == attachment_id]
    if not found:
        raise NotFound("attachment")
    return found[0]
