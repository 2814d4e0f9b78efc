"""accept_message(): the one way in. Every API call and every SMTP submission ends here.

Steps, in order: authorize the sender for the account and delivery mode, build the MIME
message, check its size, then write the message, its body, one delivery row per
recipient (the queue) and one ``accepted`` event per recipient in a single transaction.
The caller answers only after that transaction has committed (the writer's group commit
resolves the future after COMMIT), so an acknowledged message survives ``kill -9``.

A message sent with ``template_uuid`` is rendered first: the account's template (looked
up once per call, compiled templates cached; see :mod:`postroom.services.templates`)
supplies subject, bodies and category, and the message records the template's id and
version.

A sandbox send (``Origin.inbox_id`` set) is captured straight into that inbox in the same
transaction instead of being queued: there is nothing to deliver.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection

from postroom.config import DeliveryMode
from postroom.domain.deliveries import DeliveryState
from postroom.domain.emailtemplates import CompiledEmailTemplate, RenderOptions
from postroom.domain.events import EventKind
from postroom.domain.handlebars import TemplateError
from postroom.domain.ids import IdFactory
from postroom.domain.messages import MessageDraft, utf8_len
from postroom.domain.mime import build_message, make_message_id
from postroom.domain.streams import Stream
from postroom.domain.submitted import complete_message
from postroom.errors import NotFound, PayloadTooLarge, Unauthorized, ValidationFailed
from postroom.events.recorder import event_row
from postroom.sandbox.capture import captured_row
from postroom.services import (
    Services,
    contacts,
    domains,
    idempotency,
    modes,
    quotas,
    suppressions,
    templates,
)
from postroom.storage.repos import messages as message_repo
from postroom.storage.repos import sandbox as sandbox_repo


@dataclass(frozen=True, slots=True)
class Origin:
    """Who submits, on which stream, from where, and (sandbox sends) into which inbox."""

    account_id: int
    stream: Stream
    client_ip: str | None = None
    inbox_id: int | None = None
    # Mail of the installation itself (notices): exempt from the verified-From rule.
    system: bool = False
    # The request's Idempotency-Key (postroom.services.idempotency), if it sent one.
    idempotency: idempotency.Claim | None = None
    # A domain-limited token's From domains (ASCII, lower case); None: the account's.
    sender_domains: frozenset[str] | None = None
    # A forward of a message captured in this inbox (postroom.sandbox.forward): the
    # forward is recorded in the acceptance's own transaction, so it counts if and only
    # if the copy was accepted.
    forwarded_from: int | None = None


@dataclass(slots=True)
class _Prepared:
    """One draft turned into rows, ready for the transaction."""

    message: dict[str, Any]
    raw: bytes
    deliveries: list[dict[str, Any]]
    events: list[dict[str, Any]]
    captured: dict[str, Any] | None = None


Outcome = list[str] | ValidationFailed | PayloadTooLarge

_QUEUED = DeliveryState.QUEUED.value


@dataclass(frozen=True, slots=True)
class _Templates:
    """The templates one call's drafts name, and how to render them."""

    found: templates.Resolved
    options: RenderOptions

    @property
    def light(self) -> bool:
        """Whether every template can be rendered inline without holding up the loop."""
        return all(isinstance(t, CompiledEmailTemplate) and t.light for t in self.found.values())

    def apply(self, draft: MessageDraft) -> tuple[MessageDraft, CompiledEmailTemplate | None]:
        """The draft with the template's rendering in place, and the template used."""
        uuid = draft.template_uuid
        if uuid is None:
            return draft, None
        template = self.found.get(uuid)
        if template is None:
            raise ValidationFailed([f"template with uuid '{uuid}' not found"])
        try:
            if isinstance(template, TemplateError):
                raise template
            rendered = template.render(draft.template_variables, self.options)
        except TemplateError as exc:
            problem = f"template with uuid '{uuid}' cannot be rendered: {exc}"
            raise ValidationFailed([problem]) from None
        rendered_draft = replace(
            draft,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            category=rendered.category,
        )
        return rendered_draft, template


async def accept_message(services: Services, origin: Origin, draft: MessageDraft) -> list[str]:
    """Accept one message; returns its message ids (one per recipient, to → cc → bcc)."""
    [outcome] = await accept_messages(services, origin, [draft])
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


async def accept_messages(
    services: Services, origin: Origin, drafts: Sequence[MessageDraft | Exception]
) -> list[Outcome | Exception]:
    """Accept several messages in one transaction; a failed item does not fail the others.

    Items that are already exceptions (validation failed upstream) pass through in place,
    so a batch's results stay in request order.
    """
    now = services.clock.now()
    if origin.idempotency is not None:
        replay = await _replay(services, origin, now)
        if replay is not None:
            return replay
    # MIME building (and, for sandbox sends, parsing) is CPU work: a lone message is
    # prepared inline, a batch (or a heavy template render) in a thread so the event loop
    # keeps answering.
    crossings = await _gates(services, origin, drafts)
    senders = await _allowed_senders(services, origin)
    used = await _templates(services, origin, drafts)
    if len(drafts) == 1 and used.light:
        prepared = _prepare_all(services, origin, senders, used, drafts, now)
    else:
        prepared = await asyncio.to_thread(
            _prepare_all, services, origin, senders, used, drafts, now
        )
    stored = await services.db.write_many(_store_many, (origin, prepared, now, services.ids))
    if isinstance(stored, idempotency.Replayed):
        # A concurrent request with the same key committed first: answer as it did.
        replay = await _replay(services, origin, now)
        if replay is None:  # pragma: no cover - the winner committed before we lost
            raise stored
        return replay
    if isinstance(stored, Exception):
        raise stored
    outcomes: list[Outcome | Exception] = stored
    await quotas.announce(services, origin.account_id, crossings)
    return outcomes


async def _gates(
    services: Services, origin: Origin, drafts: Sequence[MessageDraft | Exception]
) -> list[quotas.Crossing]:
    """A disabled account sends nothing (403); quotas count real sends only
    (services/quotas.py)."""
    if origin.system:
        return []
    recipients = 0
    if origin.inbox_id is None:
        recipients = sum(
            len(d.to) + len(d.cc) + len(d.bcc) for d in drafts if isinstance(d, MessageDraft)
        )
    return await quotas.check(services, origin.account_id, recipients)


async def _replay(
    services: Services, origin: Origin, now: datetime
) -> list[Outcome | Exception] | None:
    """The stored outcomes of an earlier request with this Idempotency-Key, if any."""
    claim = origin.idempotency
    assert claim is not None
    stored = await services.db.read(
        lambda conn: idempotency.lookup(conn, origin.account_id, claim, now)
    )
    return None if stored is None else list(idempotency.decode(stored))


async def _templates(
    services: Services, origin: Origin, drafts: Sequence[MessageDraft | Exception]
) -> _Templates:
    uuids = {d.template_uuid for d in drafts if isinstance(d, MessageDraft) and d.template_uuid}
    found = await templates.resolve(services, origin.account_id, uuids) if uuids else {}
    return _Templates(found, templates.render_options(services.settings.templates))


def _prepare_all(
    services: Services,
    origin: Origin,
    senders: frozenset[str] | None,
    used: _Templates,
    drafts: Sequence[MessageDraft | Exception],
    now: datetime,
) -> list[_Prepared | Exception]:
    prepared: list[_Prepared | Exception] = []
    for draft in drafts:
        if isinstance(draft, Exception):
            prepared.append(draft)
            continue
        try:
            prepared.append(_prepare(services, origin, senders, used, draft, now))
        except (ValidationFailed, PayloadTooLarge, Unauthorized) as exc:
            prepared.append(exc)
    return prepared


async def _allowed_senders(services: Services, origin: Origin) -> frozenset[str] | None:
    """The From domains this origin may use (:func:`_account_senders`), narrowed to a
    domain-limited token's own domains."""
    senders = await _account_senders(services, origin)
    if origin.sender_domains is None or origin.inbox_id is not None:
        return senders
    if senders is None:
        return origin.sender_domains
    return senders & origin.sender_domains


async def _account_senders(services: Services, origin: Origin) -> frozenset[str] | None:
    """The From domains the account may use, or None when any From is accepted.

    In sandbox delivery mode, and for sandbox sends, nothing leaves the machine, so any
    From is accepted. Sending for real needs a verified sending domain of the account;
    the set is cached for ``SENDER_CACHE_SECONDS``, so a domain that verifies (or stops
    verifying) takes effect within that time, as a revoked token does.
    """
    if origin.inbox_id is not None or origin.system:
        return None
    if await modes.for_account(services, origin.account_id, origin.stream) is DeliveryMode.SANDBOX:
        return None
    cached = services.verified_senders.get(origin.account_id)
    if cached is not None:
        return cached
    names = await services.db.read(
        lambda conn: domains.verified_domain_names(conn, origin.account_id)
    )
    allowed = frozenset(domains.ascii_name(name).lower() for name in names)
    services.verified_senders.put(origin.account_id, allowed)
    return allowed


def _authorize_sender(senders: frozenset[str] | None, draft: MessageDraft) -> None:
    # The parsed addr-spec's domain decides, never a display name or a raw header.
    if senders is None:
        return
    try:
        allowed = domains.ascii_name(draft.sender.domain).lower() in senders
    except UnicodeError:
        allowed = False
    if not allowed:
        raise Unauthorized()


def _prepare(
    services: Services,
    origin: Origin,
    senders: frozenset[str] | None,
    used: _Templates,
    draft: MessageDraft,
    now: datetime,
) -> _Prepared:
    draft, template = used.apply(draft)
    _authorize_sender(senders, draft)
    # Every id this message needs in one draw: its own (also its first delivery's), and
    # when queued the other deliveries' and one accepted event's per recipient.
    queued = origin.inbox_id is None
    fresh = services.ids.message_ids(2 * len(draft.recipients) if queued else 1)
    message_pk = fresh[0]
    rfc_id = draft.message_id or make_message_id(
        draft.sender.domain or "postroom.invalid", message_pk
    )
    if draft.raw is None:
        raw = build_message(draft, message_id=rfc_id, date=draft.date or now)
    else:  # submitted finished (SMTP): keep the client's bytes and its Message-ID
        raw, rfc_id = complete_message(draft.raw, message_id=rfc_id, date=now)
    if len(raw) > services.settings.limits.max_message_bytes:
        raise PayloadTooLarge("message exceeds the size limit")
    message = {
        "id": message_pk,
        "account_id": origin.account_id,
        "stream": origin.stream.value,
        "sender": draft.sender.email,
        "sender_name": draft.sender.name,
        "first_to": draft.to[0].email if draft.to else "",
        "first_to_name": draft.to[0].name if draft.to else "",
        "text_size": _size(draft.text),
        "html_size": _size(draft.html),
        "subject": draft.subject,
        "rfc_message_id": rfc_id,
        "category": draft.category,
        "custom_variables": draft.custom_variables or None,
        "template_uuid": draft.template_uuid,
        "template_variables": draft.template_variables,
        "template_id": template.id if template else None,
        "template_version": template.version if template else None,
        "size": len(raw),
        "client_ip": origin.client_ip,
        "created_at": now,
    }
    if origin.inbox_id is not None:
        captured = captured_row(message, raw, inbox_id=origin.inbox_id, now=now)
        return _Prepared(message, raw, [], [], captured)
    deliveries, events = _delivery_rows(origin, draft, fresh, now)
    return _Prepared(message, raw, deliveries, events)


def _size(body: str | None) -> int:
    return utf8_len(body) if body else 0


def _delivery_rows(
    origin: Origin, draft: MessageDraft, fresh: list[str], now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One queued delivery and one accepted event per recipient. ``fresh`` holds two ids
    per recipient: the deliveries' (the first is the message's own), then the events'."""
    deliveries, events = [], []
    message_pk, count = fresh[0], len(fresh) // 2
    # Enum members' .value goes through a descriptor: read once per message, not per row.
    stream, priority, queued = origin.stream.value, origin.stream.priority, _QUEUED
    for position, (kind, address) in enumerate(draft.recipients):
        delivery_id = fresh[position]
        deliveries.append(
            {
                "id": delivery_id,
                "message_id": message_pk,
                "account_id": origin.account_id,
                "stream": stream,
                "recipient": address.email,
                "recipient_domain": address.domain,
                "recipient_kind": kind,
                "position": position,
                "state": queued,
                "priority": priority,
                "next_attempt_at": now,
                "attempts": 0,
                "lease_count": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        events.append(
            event_row(
                None,
                origin.account_id,
                EventKind.ACCEPTED,
                delivery_id,
                origin.stream,
                address.email,
                {},
                now,
                event_id=fresh[count + position],
            )
        )
    return deliveries, events


def _store_many(
    conn: Connection,
    items: list[tuple[Origin, list[_Prepared | Exception], datetime, IdFactory]],
) -> list[list[Outcome | Exception] | Exception]:
    """Store every acceptance queued together: one INSERT per table for all of them."""
    gone = [
        origin.inbox_id is not None
        and not sandbox_repo.get_inbox(conn, origin.account_id, origin.inbox_id)
        for origin, _, _, _ in items
    ]
    replayed = [
        not missing and not _claim_key(conn, origin, prepared, now)
        for (origin, prepared, now, _), missing in zip(items, gone, strict=True)
    ]
    ready = [
        p
        for (_, prepared, _, _), missing, again in zip(items, gone, replayed, strict=True)
        if not missing and not again
        for p in prepared
        if isinstance(p, _Prepared)
    ]
    if ready:
        _reject_suppressed(conn, ready, items[0][2], items[0][3])
    # Sandbox sends carry no deliveries or events: they are captured below instead.
    message_repo.insert_accepted(
        conn,
        [p.message for p in ready],
        [{"message_id": p.message["id"], "raw": p.raw} for p in ready],
        [d for p in ready for d in p.deliveries],
        [e for p in ready for e in p.events],
    )
    results: list[list[Outcome | Exception] | Exception] = []
    for (origin, prepared, now, _), missing, again in zip(items, gone, replayed, strict=True):
        if missing:
            results.append(NotFound("inbox"))
        elif again:
            results.append(idempotency.Replayed("answered by an earlier request"))
        else:
            outcomes = _outcomes(conn, origin, prepared, now)
            if origin.forwarded_from is not None:
                _record_forwards(conn, origin, outcomes, now)
            if origin.idempotency is not None and any(isinstance(p, _Prepared) for p in prepared):
                idempotency.record(conn, origin.account_id, origin.idempotency.key, outcomes)
            results.append(outcomes)
    return results


def _record_forwards(
    conn: Connection, origin: Origin, outcomes: list[Outcome | Exception], now: datetime
) -> None:
    """One forward row per accepted copy (a forward is one message to one address)."""
    assert origin.forwarded_from is not None
    rows = [
        {
            "account_id": origin.account_id,
            "inbox_id": origin.forwarded_from,
            "message_id": outcome[0],
            "created_at": now,
        }
        for outcome in outcomes
        if isinstance(outcome, list) and outcome
    ]
    sandbox_repo.record_forwards(conn, rows)


def _claim_key(
    conn: Connection, origin: Origin, prepared: list[_Prepared | Exception], now: datetime
) -> bool:
    """Claim the request's Idempotency-Key; False when another request holds it.

    Nothing is claimed for a request with no message to store (every item failed
    validation): its retry is validated again and fails the same way.
    """
    if origin.idempotency is None or not any(isinstance(p, _Prepared) for p in prepared):
        return True
    return idempotency.claim(conn, origin.account_id, origin.idempotency, now)


def _reject_suppressed(
    conn: Connection, ready: list[_Prepared], now: datetime, ids: IdFactory
) -> None:
    """Suppressed recipients: accepted (they keep their message id), never sent.

    One indexed query for the whole group commit; the delivery row is stored already
    ``suppressed`` (the email log's ``opted_out``) with a ``reject`` event, so the worker
    never sees it.
    """
    candidates = [(d, str(p.message["sender"])) for p in ready for d in p.deliveries]
    if not candidates:
        return
    found = suppressions.screen(conn, candidates, now)
    found.update(_unsubscribed_contacts(conn, candidates, found))
    if not found:
        return
    for p in ready:
        for d in p.deliveries:
            kind = found.get(str(d["id"]))
            d.setdefault("last_response", None)  # one INSERT: every row has the same keys
            if kind is None:
                continue
            reason = suppressions.reject_reason(kind)
            d.update(state=DeliveryState.SUPPRESSED.value, last_response=reason)
            p.events.append(
                event_row(
                    ids,
                    int(d["account_id"]),
                    EventKind.REJECT,
                    str(d["id"]),
                    d["stream"],
                    d["recipient"],
                    {"reject_reason": reason},
                    now,
                )
            )


def _unsubscribed_contacts(
    conn: Connection, candidates: list[tuple[dict[str, Any], str]], found: dict[str, str]
) -> dict[str, str]:
    """Bulk-stream deliveries to contacts who unsubscribed (postroom.services.contacts)."""
    bulk = [d for d, _ in candidates if d["stream"] == Stream.BULK and str(d["id"]) not in found]
    if not bulk:
        return {}
    keys = {(int(d["account_id"]), contacts.normal_email(str(d["recipient"]))): d for d in bulk}
    gone = contacts.unsubscribed_among(conn, keys)
    return {
        str(d["id"]): contacts.CONTACT_UNSUBSCRIBED
        for d in bulk
        if (int(d["account_id"]), contacts.normal_email(str(d["recipient"]))) in gone
    }


def _outcomes(
    conn: Connection, origin: Origin, prepared: list[_Prepared | Exception], now: datetime
) -> list[Outcome | Exception]:
    if origin.inbox_id is not None:
        return _capture(conn, origin, prepared, now)
    return [p if isinstance(p, Exception) else [d["id"] for d in p.deliveries] for p in prepared]


def _capture(
    conn: Connection, origin: Origin, prepared: list[_Prepared | Exception], now: datetime
) -> list[Outcome | Exception]:
    assert origin.inbox_id is not None
    outcomes: list[Outcome | Exception] = []
    for item in prepared:
        if isinstance(item, Exception) or item.captured is None:
            outcomes.append(item if isinstance(item, Exception) else TypeError("not captured"))
            continue
        outcomes.append([str(sandbox_repo.insert_capture(conn, item.captured))])
    captured = sum(1 for outcome in outcomes if isinstance(outcome, list))
    sandbox_repo.bump_inbox(conn, origin.inbox_id, captured, now)
    return outcomes
