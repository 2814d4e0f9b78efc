"""The email-logs API's use cases (spec §4.6): list, detail, signed raw link, export.

A "message" of the contract is one recipient's delivery (its ``message_id`` is what
``/api/send`` answered). Pages are keyset-paginated, newest first; ``next_page_cursor``
is the last message's id, passed back as ``search_after``.

The raw message is served through a link signed with a key derived from the
installation secret (HMAC-SHA256 over account, message and expiry), valid
``raw_link_seconds``: whoever holds it may download that one body until it expires, as
with Mailtrap's pre-signed links. After body retention the link answers 410.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain.logfilters import LogQuery
from postroom.errors import NotFound
from postroom.services import Services
from postroom.storage.repos import logs as repo
from postroom.storage.repos import rollups as rollup_repo

PAGE_SIZE = 50
EXPORT_PAGE = 1000
LINK_PURPOSE = "email-logs-raw-link"

# The contract's details per event type; stored details may hold more (kept internal).
# Tracking events add Postroom's user_agent and machine (None: a person; the SDKs
# ignore keys they do not know).
DETAIL_KEYS: dict[str, tuple[str, ...]] = {
    "delivery": ("sending_ip", "recipient_mx", "email_service_provider"),
    "open": ("web_ip_address", "user_agent", "machine"),
    "unsubscribe": ("web_ip_address", "user_agent"),
    "click": ("click_url", "web_ip_address", "user_agent", "machine"),
    "bounce": (
        "sending_ip",
        "recipient_mx",
        "email_service_provider",
        "email_service_provider_status",
        "email_service_provider_response",
        "bounce_category",
    ),
    "spam": ("spam_feedback_type",),
    "suspension": ("reject_reason",),
    "reject": ("reject_reason",),
}
DETAIL_KEYS["soft_bounce"] = DETAIL_KEYS["bounce"]
# Tracking events (postroom.services.hits) store ``ip`` and ``url``: the contract's
# names for them. Older unsubscribe events (feedback reports) stored web_ip_address.
RENAMED = {"web_ip_address": "ip", "click_url": "url"}


class BadCursor(ValueError):
    """``search_after`` names no message of this account."""


@dataclass(frozen=True, slots=True)
class Page:
    messages: list[dict[str, Any]]
    total_count: int
    next_page_cursor: str | None


def _domains(conn: Connection, account_id: int) -> tuple[dict[int, str], dict[str, int]]:
    by_key = rollup_repo.domain_ids(conn, [account_id])
    return {i: n for (_, n), i in by_key.items()}, {n: i for (_, n), i in by_key.items()}


def message_json(row: dict[str, Any], domain_of: dict[str, int]) -> dict[str, Any]:
    """A Msg as spec §4.6 and the SDKs' model have it."""
    sender = str(row["sender"])
    domain_id = domain_of.get(sender.rpartition("@")[2].lower(), 0)
    return {
        "message_id": row["id"],
        "status": repo.STATUS_OF_STATE.get(row["state"], "not_delivered"),
        "subject": row["subject"],
        "rfc_message_id": row["rfc_message_id"],
        "in_reply_to": None,
        "references": None,
        "thread_id": None,
        "from": sender,
        "to": row["recipient"],
        "sent_at": _iso(row["created_at"]),
        "client_ip": row["client_ip"],
        "category": row["category"],
        "custom_variables": row["custom_variables"],
        "sending_stream": row["stream"],
        # Both names: the SDKs read sending_domain_id, the current contract says domain_id.
        "sending_domain_id": domain_id,
        "domain_id": domain_id,
        "template_id": row["template_id"],  # the email template rendered, if any
        "template_uuid": row["template_uuid"],
        "template_variables": row["template_variables"],
        "opens_count": int(row["opens_count"] or 0),
        "clicks_count": int(row["clicks_count"] or 0),
        # Postroom's additions (extras are ignored by the SDKs).
        "email_service_provider": row["mailbox_provider"],
        "sending_ip": row["sending_ip"],
        "recipient_mx": row["recipient_mx"],
    }


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def list_sync(conn: Connection, account_id: int, query: LogQuery, search_after: str | None) -> Page:
    names, ids = _domains(conn, account_id)
    where = repo.conditions(conn, query, names)
    after = None
    if search_after:
        after = repo.position(conn, account_id, search_after)
        if after is None:
            raise BadCursor(search_after)
    rows = repo.page(conn, account_id, where, after, PAGE_SIZE + 1)
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return Page(
        messages=[message_json(r, ids) for r in rows],
        total_count=repo.count(conn, account_id, where, query),
        next_page_cursor=rows[-1]["id"] if more and rows else None,
    )


async def list_messages(
    services: Services, account_id: int, query: LogQuery, search_after: str | None
) -> Page:
    return await services.db.read(lambda conn: list_sync(conn, account_id, query, search_after))


def event_json(row: dict[str, Any]) -> dict[str, Any]:
    details = row["details"] if isinstance(row["details"], dict) else {}
    keys = DETAIL_KEYS.get(row["kind"], ())
    return {
        "event_type": row["kind"],
        "created_at": _iso(row["created_at"]),
        "details": {k: details.get(RENAMED.get(k, k), details.get(k)) for k in keys},
    }


async def detail(
    services: Services, account_id: int, delivery_id: str, base_url: str
) -> dict[str, Any]:
    """One message with its events and a fresh signed raw link; NotFound elsewhere."""

    def read(conn: Connection) -> dict[str, Any]:
        row = repo.one(conn, account_id, delivery_id)
        if row is None:
            raise NotFound("message")
        _, ids = _domains(conn, account_id)
        shown = message_json(row, ids)
        shown["events"] = [
            event_json(e)
            for e in repo.message_events(conn, delivery_id)
            if e["kind"] in DETAIL_KEYS
        ]
        return shown

    shown = await services.db.read(read)
    shown["raw_message_url"] = raw_link(services, account_id, delivery_id, base_url)
    return shown


# --- the signed raw link -------------------------------------------------------------------


def _signature(services: Services, account_id: int, delivery_id: str, expires: int) -> str:
    key = services.get_sealer().derive(LINK_PURPOSE)
    signed = f"{account_id}:{delivery_id}:{expires}".encode()
    return hmac.new(key, signed, hashlib.sha256).hexdigest()


def raw_link(services: Services, account_id: int, delivery_id: str, base_url: str) -> str:
    now = services.clock.now()
    expires = int(now.timestamp()) + services.settings.insights.raw_link_seconds
    signature = _signature(services, account_id, delivery_id, expires)
    path = f"/api/accounts/{account_id}/email_logs/{delivery_id}/raw"
    return f"{base_url.rstrip('/')}{path}?expires={expires}&signature={signature}"


def link_valid(
    services: Services, account_id: int, delivery_id: str, expires: int, signature: str
) -> bool:
    """True when the signature is this installation's and the link has not expired."""
    if expires < services.clock.now().timestamp():
        return False
    expected = _signature(services, account_id, delivery_id, expires)
    # Bytes, not str: compare_digest refuses non-ASCII strings (TypeError), and the
    # signature comes from anyone holding (or guessing at) the link.
    presented = signature.lower().encode("utf-8", "surrogatepass")
    return hmac.compare_digest(expected.encode("ascii"), presented)


async def raw_body(services: Services, account_id: int, delivery_id: str) -> bytes | None:
    """The stored body; None once body retention removed it; NotFound if no such message."""
    exists, raw = await services.db.read(lambda c: repo.body_of(c, account_id, delivery_id))
    if not exists:
        raise NotFound("message")
    return raw


# --- export ----------------------------------------------------------------------------------


async def export_rows(
    services: Services, account_id: int, query: LogQuery
) -> AsyncIterator[dict[str, Any]]:
    """Every matching message, newest first, read a page at a time (bounded memory)."""

    def first(conn: Connection) -> tuple[list[Any], dict[str, int]]:
        names, ids = _domains(conn, account_id)
        return repo.conditions(conn, query, names), ids

    where, ids = await services.db.read(first)
    after: tuple[datetime, str] | None = None
    while True:
        rows = await services.db.read(
            partial(repo.page, account_id=account_id, where=where, after=after, limit=EXPORT_PAGE)
        )
        for row in rows:
            yield message_json(row, ids)
        if len(rows) < EXPORT_PAGE:
            return
        after = (rows[-1]["created_at"], rows[-1]["id"])
