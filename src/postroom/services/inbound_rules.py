"""Forward rules of inbound inboxes: kept per inbox, run on each newly received message.

A rule (its shape and matching: :mod:`postroom.domain.forwardrules`) forwards every
message the inbox receives that meets its conditions to each of its destinations, after
the message is stored and before the inbound listener answers 250
(:func:`forward_received`). A forward is a new message sent as the account through
:func:`~postroom.services.resend.send_as_account` (so through ``accept_message``): From
the rule's ``from`` (Postroom's addition) or else the inbox's own address, which the
verified-From rule lets leave only in sandbox delivery mode or when the account has
verified the inbound domain; Reply-To the original sender; the original subject, bodies
and attachments; and ``X-Postroom-Forwarded: <hops>``.

Each destination's outcome is kept on the message (``forwards``: the SDK's
InboundForwardOutcome, ``forwarded`` with the sending message id or ``rejected`` with a
reason). Rejected: a destination that is the inbox's own address, a message whose
``X-Postroom-Forwarded`` is at ``inbound.max_forward_hops`` already (or unreadable), a
suppressed destination, and whatever ``accept_message`` refuses (an unverified From, a
quota, a size limit). A failure never undoes the receipt.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy.engine import Connection

from postroom.domain import forwardrules, inboundmail, threading
from postroom.domain.addresses import is_valid_email
from postroom.domain.headers import is_header_text
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.streams import Stream
from postroom.errors import Conflict, NotFound, PayloadTooLarge, PostroomError
from postroom.services import Services, inbound_mail, inbound_threads, suppressions
from postroom.services.accept import Origin
from postroom.services.resend import send_as_account
from postroom.storage.repos import inbound_mail as mail_repo
from postroom.storage.repos import inbound_threads as repo

log = logging.getLogger("postroom.inbound")
HOPS_HEADER = "X-Postroom-Forwarded"
_HOPS_KEY = HOPS_HEADER.lower()
_NUMBER = re.compile(r"\d{1,6}")


def _rule(conn: Connection, account_id: int, inbox_id: int, rule_id: int) -> dict[str, Any]:
    inbound_threads.require_inbox(conn, account_id, inbox_id)
    found = repo.rule(conn, inbox_id, rule_id)
    if found is None:
        raise NotFound("forward rule")
    return found


def _sender(value: object, errors: dict[str, list[str]]) -> tuple[str | None, str | None]:
    """Postroom's ``from``: ``{"email", "name"?}`` (or a bare address), or null."""
    if value is None:
        return None, None
    email, name = (
        (value.get("email"), value.get("name")) if isinstance(value, dict) else (value, None)
    )
    if not isinstance(email, str) or not is_valid_email(email.strip()):
        errors.setdefault("from", []).append("email is invalid")
        return None, None
    if name is not None and (not isinstance(name, str) or not is_header_text(name)):
        errors.setdefault("from", []).append("name is invalid")
        return None, None
    return email.strip(), (name.strip()[:200] or None) if isinstance(name, str) else None


def _values(
    services: Services, inbox: dict[str, Any], body: Mapping[str, Any], partial: bool
) -> dict[str, Any]:
    """The columns a create (all) or update (``partial``: those given) sets, checked."""
    errors: dict[str, list[str]] = {}
    values: dict[str, Any] = {}
    if not partial or "name" in body:
        values["name"] = forwardrules.parse_name(body.get("name"), errors)
    if not partial or "conditions" in body:
        found = forwardrules.parse_conditions(body.get("conditions"), errors)
        values["conditions"] = [c.as_json() for c in found]
    if not partial or "destinations" in body:
        own = inbound_mail.address_of(services, inbox)
        emails = forwardrules.parse_destinations(body.get("destinations"), own, errors)
        values["destinations"] = [{"email": e} for e in emails]
    if not partial or "from" in body:
        values["from_email"], values["from_name"] = _sender(body.get("from"), errors)
    if errors:
        raise Conflict(errors)
    return values


def _section(body: Mapping[str, Any]) -> Mapping[str, Any]:
    inner = body.get("forward_rule")
    return inner if isinstance(inner, dict) else body


async def list_rules(services: Services, account_id: int, inbox_id: int) -> list[dict[str, Any]]:
    def run(conn: Connection) -> list[dict[str, Any]]:
        inbound_threads.require_inbox(conn, account_id, inbox_id)
        return repo.rules_of(conn, inbox_id)

    return await services.db.read(run)


async def get_rule(
    services: Services, account_id: int, inbox_id: int, rule_id: int
) -> dict[str, Any]:
    return await services.db.read(lambda conn: _rule(conn, account_id, inbox_id, rule_id))


async def create_rule(
    services: Services, account_id: int, inbox_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        inbox = inbound_threads.require_inbox(conn, account_id, inbox_id)
        values = _values(services, inbox, _section(body), partial=False)
        row = {
            **values,
            "account_id": account_id,
            "inbox_id": inbox_id,
            "created_at": now,
            "updated_at": now,
        }
        return _rule(conn, account_id, inbox_id, repo.insert_rule(conn, row))

    return await services.db.write(run)


async def update_rule(
    services: Services, account_id: int, inbox_id: int, rule_id: int, body: Mapping[str, Any]
) -> dict[str, Any]:
    now = services.clock.now()

    def run(conn: Connection) -> dict[str, Any]:
        _rule(conn, account_id, inbox_id, rule_id)
        inbox = inbound_threads.require_inbox(conn, account_id, inbox_id)
        values = _values(services, inbox, _section(body), partial=True)
        repo.update_rule(conn, rule_id, {**values, "updated_at": now})
        return _rule(conn, account_id, inbox_id, rule_id)

    return await services.db.write(run)


async def delete_rule(services: Services, account_id: int, inbox_id: int, rule_id: int) -> None:
    def run(conn: Connection) -> None:
        _rule(conn, account_id, inbox_id, rule_id)
        repo.delete_rule(conn, rule_id)

    await services.db.write(run)


# --- running the rules --------------------------------------------------------------------


def hops_of(headers: Mapping[str, Any]) -> int | None:
    """How many forwards carried this message already (None: a value we cannot read,
    which counts as past any limit)."""
    value = headers.get(_HOPS_KEY)
    if value is None:
        return 0
    numbers = [part.strip() for part in str(value).split(",")]
    if not all(_NUMBER.fullmatch(n) for n in numbers):
        return None
    return max(int(n) for n in numbers)


def _outcome(rule: dict[str, Any], destination: str, **rest: Any) -> dict[str, Any]:
    return {
        "rule_id": int(rule["id"]),
        "rule_name": rule["name"],
        "destination": destination,
        "reason": None,
        "message_id": None,
        **rest,
    }


def _draft(
    inbox: dict[str, Any],
    own: str,
    rule: dict[str, Any],
    mail: inboundmail.ParsedMail,
    dest: str,
    hops: int,
) -> MessageDraft:
    original = mail.reply_to or mail.sender
    via = threading.one_line(f"{mail.sender or 'unknown sender'} via {inbox['name']}")[:200]
    sender = Address(rule["from_email"] or own, rule["from_name"] or via)
    reply_to = Address(original) if original and is_valid_email(original) else None
    return MessageDraft(
        sender=sender,
        to=(Address(dest),),
        reply_to=reply_to,
        subject=threading.one_line(mail.subject),
        text=mail.text if mail.text is not None or mail.html is not None else "",
        html=mail.html,
        attachments=threading.carried_attachments(mail),
        headers=((HOPS_HEADER, str(hops + 1)),),
    )


async def _forward(
    services: Services,
    inbox: dict[str, Any],
    rule: dict[str, Any],
    dest: str,
    mail: inboundmail.ParsedMail,
    hops: int | None,
) -> dict[str, Any]:
    own = inbound_mail.address_of(services, inbox)
    limit = services.settings.inbound.max_forward_hops
    if dest.lower() == own.lower():
        return _outcome(rule, dest, status="rejected", reason="the inbox's own address (a loop)")
    if hops is None or hops >= limit:
        reason = f"already forwarded {limit} times or more ({HOPS_HEADER}): a loop"
        return _outcome(rule, dest, status="rejected", reason=reason)
    account_id = int(inbox["account_id"])
    sender = str(rule["from_email"] or own)
    probe = {
        "id": "probe",
        "account_id": account_id,
        "recipient": dest,
        "stream": Stream.TRANSACTIONAL.value,
    }
    now = services.clock.now()
    found = await services.db.read(lambda conn: suppressions.screen(conn, [(probe, sender)], now))
    if found:
        reason = f"the destination is suppressed ({found['probe']})"
        return _outcome(rule, dest, status="rejected", reason=reason)
    origin = Origin(account_id, Stream.TRANSACTIONAL)
    try:
        draft = _draft(inbox, own, rule, mail, dest, hops)
        ids = await send_as_account(services, origin, draft, doing="forwarded")
    except PostroomError as exc:
        reason = "; ".join(getattr(exc, "errors", None) or [str(exc) or type(exc).__name__])
        if isinstance(exc, PayloadTooLarge):
            reason = "the message is over the sending size limit"
        return _outcome(rule, dest, status="rejected", reason=reason)
    except ValueError as exc:  # the serializer's last line of defence against bad headers
        return _outcome(rule, dest, status="rejected", reason=f"cannot be sent: {exc}")
    return _outcome(rule, dest, status="forwarded", message_id=ids[0])


async def _run_rules(
    services: Services, inbox: dict[str, Any], message_id: int, summary: dict[str, Any]
) -> list[dict[str, Any]]:
    """Run one inbox's rules on its copy of a message; the outcomes (none: no rule hit)."""
    inbox_id = int(inbox["id"])
    rules = await services.db.read(lambda conn: repo.rules_of(conn, inbox_id))
    chosen = [
        r
        for r in rules
        if forwardrules.matches(forwardrules.conditions_of(r["conditions"]), summary)
    ]
    if not chosen:
        return []
    row = await services.db.read(lambda conn: mail_repo.message(conn, inbox_id, message_id))
    if row is None:  # deleted in the meantime
        return []
    mail = await asyncio.to_thread(inboundmail.parse, bytes(row["raw"]))
    hops = hops_of(summary.get("headers") or {})
    outcomes = []
    for rule in chosen:
        for destination in rule["destinations"]:
            outcomes.append(
                await _forward(services, inbox, rule, str(destination["email"]), mail, hops)
            )
    await services.db.write(lambda conn: repo.set_forwards(conn, message_id, outcomes))
    return outcomes


async def forward_received(services: Services, received: inbound_mail.Received) -> int:
    """Run each inbox's rules on the message just stored there; how many were forwarded."""
    forwarded = 0
    for inbox, message_id in received.stored:
        outcomes = await _run_rules(services, inbox, message_id, received.summary)
        if not outcomes:
            continue
        done = sum(1 for o in outcomes if o["status"] == "forwarded")
        forwarded += done
        log.info(
            "inbound message %s: %d forward(s), %d rejected",
            message_id,
            done,
            len(outcomes) - done,
        )
    return forwarded
