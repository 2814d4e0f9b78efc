"""Inbound bounces and feedback reports: tie each to its delivery, record events, suppress.

The use case behind the inbound SMTP listener (:mod:`postroom.inbound`):

1. :func:`accepts_recipient` decides at ``RCPT TO``: a signed return path
   (:mod:`postroom.domain.returnpath`) that verifies, or one of the configured role local
   parts (``postmaster``, ``abuse``, ``fbl``). A return path with a wrong HMAC is
   refused like any unknown address: a forged bounce can never suppress anyone.
2. :func:`process` parses the message (:func:`postroom.mta.reports.parse_report`, in a
   worker thread) and finds the delivery it is about: the verified return path it was
   sent to; else the return path quoted in the returned original (ARF reports go to
   feedback-loop addresses but carry the original's ``Return-Path``), verified the same
   way; else, for a message with a single recipient only, the original's ``Message-ID``
   (``<first delivery id@domain>``) plus that recipient.
3. In one write transaction: the events (``bounce``, ``soft_bounce``, ``spam``,
   ``unsubscribe``) in the shapes the contract's webhook and email-log payloads need, the
   delivery marked ``bounced`` when an accepted message bounced for good, and the
   suppression entries the events call for (:mod:`postroom.services.suppressions`).

Auto-replies and unreadable mail are accepted and dropped: refusing them would only make
the sender's MTA bounce the bounce.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import returnpath
from postroom.domain.deliveries import DeliveryState
from postroom.domain.events import EventKind
from postroom.domain.providers import provider_of
from postroom.events.recorder import delivery_event
from postroom.mta.classify import BounceCategory, Outcome
from postroom.mta.reports import RecipientReport, Report, ReportKind, parse_report
from postroom.services import Services, suppressions
from postroom.storage.repos import inbound as repo
from postroom.storage.repos import messages as message_repo
from postroom.storage.repos import suppressions as suppression_repo

log = logging.getLogger("postroom.inbound")

# Postroom's own Message-IDs: <message uuid@sender domain> (domain/mime.py).
_MESSAGE_ID = re.compile(r"([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})@")


@dataclass(frozen=True)
class InboundResult:
    """What one inbound message led to (for logs and tests)."""

    kind: ReportKind
    delivery_id: str | None
    events: tuple[str, ...]
    suppressions: int


def _key(services: Services) -> bytes:
    return services.get_sealer().derive("return-path")


def delivery_for_address(services: Services, address: str) -> str | None:
    """The delivery a signed return path names, or None (not ours, or forged)."""
    label = services.settings.domains.return_path_label
    return returnpath.decode(address, key=_key(services), label=label)


def accepts_recipient(services: Services, address: str) -> bool:
    """Whether the inbound listener takes mail for ``address`` (``RCPT TO``)."""
    if delivery_for_address(services, address) is not None:
        return True
    local = address.strip().strip("<>").rpartition("@")[0].lower()
    return local in {part.lower() for part in services.settings.bounces.local_parts}


async def process(services: Services, rcpt_tos: list[str], raw: bytes) -> InboundResult:
    """Handle one inbound message received for ``rcpt_tos``."""
    report = await asyncio.to_thread(parse_report, raw)
    if report.kind in (ReportKind.AUTO_REPLY, ReportKind.OTHER):
        log.info("inbound %s ignored", report.kind.value)
        return InboundResult(report.kind, None, (), 0)
    verp = [d for d in (delivery_for_address(services, a) for a in rcpt_tos) if d]
    if not verp and report.original_return_path:
        found = delivery_for_address(services, report.original_return_path)
        verp = [found] if found else []
    now = services.clock.now()
    return await services.db.write(lambda conn: _apply(services, conn, report, verp, now))


def _apply(
    services: Services, conn: Connection, report: Report, verp: list[str], now: datetime
) -> InboundResult:
    delivery = _find_delivery(conn, report, verp)
    if delivery is None:
        log.info("inbound %s matches no delivery", report.kind.value)
        return InboundResult(report.kind, None, (), 0)
    events = _events(services, conn, report, delivery, now)
    made = suppressions.record_from_events(services, conn, events, now)
    message_repo.insert_events(conn, events)
    return InboundResult(report.kind, str(delivery["id"]), tuple(e["kind"] for e in events), made)


def _find_delivery(conn: Connection, report: Report, verp: list[str]) -> dict[str, Any] | None:
    if verp:
        return repo.delivery(conn, verp[0])
    # Unsigned fallback: the original's Message-ID names the message; the recipient picks
    # the delivery. Message-IDs are random UUIDs, but every recipient of a message knows
    # its Message-ID (and sees the To and Cc addresses), so the fallback only serves a
    # message with one delivery: then the only holder of the id is that recipient.
    # Clients may choose their Message-ID (API headers, SMTP): only the one Postroom made
    # for the message, equal to the report's in full, names it. A client's id that merely
    # contains another message's UUID (another tenant's, say) names nothing.
    quoted = (report.original_message_id or "").strip().strip("<>").lower()
    found = _MESSAGE_ID.match(quoted)
    if found is None:
        return None
    made = (repo.rfc_message_id(conn, found[1]) or "").strip("<>").lower()
    if made != quoted:
        return None
    rows = repo.deliveries_of_message(conn, found[1])
    if len(rows) == 1 and str(rows[0]["recipient"]).lower() in set(report.verdicts()):
        return rows[0]
    return None


def _events(
    services: Services,
    conn: Connection,
    report: Report,
    delivery: dict[str, Any],
    now: datetime,
) -> list[dict[str, Any]]:
    if report.kind is ReportKind.COMPLAINT:
        details = {"spam_feedback_type": report.feedback_type, "user_agent": report.user_agent}
        return [delivery_event(services.ids, delivery, EventKind.SPAM, details, now)]
    if report.kind is ReportKind.UNSUBSCRIBE:
        details = {"source": "feedback report", "web_ip_address": ""}
        return [delivery_event(services.ids, delivery, EventKind.UNSUBSCRIBE, details, now)]
    found = _recipient_report(report, str(delivery["recipient"]))
    if found is None or found.action in ("delivered", "relayed", "expanded"):
        return []
    return _bounce_events(services, conn, delivery, found, report, now)


def _recipient_report(report: Report, recipient: str) -> RecipientReport | None:
    """The part of the report about ``recipient`` (the only part, if there is one)."""
    for item in report.recipients:
        if item.recipient == recipient.lower():
            return item
    # Forwarding and aliasing rewrite Final-Recipient; the signed return path already
    # said which delivery this is.
    return report.recipients[0] if len(report.recipients) == 1 else None


def _bounce_events(
    services: Services,
    conn: Connection,
    delivery: dict[str, Any],
    found: RecipientReport,
    report: Report,
    now: datetime,
) -> list[dict[str, Any]]:
    c = found.classification
    final = found.final
    if final and delivery["state"] == DeliveryState.BOUNCED.value:
        return []  # the same bounce again (MTAs retry DSNs): already recorded
    sent = suppression_repo.last_delivery_details(conn, str(delivery["id"]))
    mx = found.remote_mta or str(sent.get("recipient_mx") or "")
    response = str(c)
    details: dict[str, Any] = {
        "sending_ip": str(sent.get("sending_ip") or ""),
        "recipient_mx": mx,
        "email_service_provider": provider_of(
            str(delivery["recipient_domain"]), [mx] if mx else []
        ),
        "email_service_provider_status": c.enhanced or str(c.code),
        "email_service_provider_response": response,
        "bounce_category": (c.category or BounceCategory.OTHER).value,
        "response": response,
        "response_code": c.code,
        "enhanced_status": c.enhanced,
        "source": "dsn",
        "reporting_mta": report.reporting_mta,
    }
    if not final:
        kind = EventKind.SOFT_BOUNCE
    else:
        kind = EventKind.BOUNCE
        if c.outcome is not Outcome.HARD_BOUNCE:
            details["expired"] = True  # a 4xx the remote MTA gave up on: final, not hard
        repo.mark_bounced(conn, str(delivery["id"]), response, now)
    return [delivery_event(services.ids, delivery, kind, details, now)]
