"""Reply, reply-all and forward of a received inbound message (the Python SDK's
``ReplyInboundMessageParams`` / ``ForwardInboundMessageParams``).

The request body is the sending API's (``from``, ``to``, ``cc``, ``bcc``, ``reply_to``,
``text``, ``html``, ``category``, ``attachments``, ``headers``, ``custom_variables``);
:func:`compose` fills in what an answer implies, the API validates the result as a send,
and :func:`send` sends it as the account through
:func:`~postroom.services.resend.send_as_account` (``accept_message``: delivery mode,
verified-From rule, suppressions, quotas) and records it in the message's thread.

What an answer implies (docs/inbound.md):

* ``from``: the inbox's address unless given (it leaves for real only when its domain is
  a verified sending domain of the account: give a ``from`` on one). When the From is
  not the inbox's address, Reply-To is the inbox's address (unless given), so the answer
  to the answer comes back into the thread.
* ``to``: reply and reply-all answer the original Reply-To (else From); reply-all copies
  the original To and Cc, less the inbox and the sender. Forward needs ``to``.
* Subject ``Re: …`` / ``Fwd: …``; reply and reply-all carry In-Reply-To and References
  (RFC 5322 §3.6.4), a forward References.
* Body: the caller's text and HTML, then the original quoted (``> `` lines and an HTML
  blockquote) for replies, or under a "Forwarded message" block for a forward, which also
  carries the original's attachments.
"""

from __future__ import annotations

import asyncio
import html
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy.engine import Connection

from postroom.domain import inboundmail, threading
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.mime import make_message_id
from postroom.errors import NotFound, ValidationFailed
from postroom.services import Services, inbound_mail, inbound_threads
from postroom.services.accept import Origin
from postroom.services.resend import send_as_account
from postroom.storage.repos import inbound_mail as mail_repo
from postroom.storage.repos import messages as message_repo

Kind = Literal["reply", "reply_all", "forward"]
KINDS: tuple[Kind, ...] = ("reply", "reply_all", "forward")
_THREAD_HEADERS = frozenset({"in-reply-to", "references"})


@dataclass(frozen=True, slots=True)
class Original:
    """The answered message: its inbox (and address), stored row and parsed mail."""

    inbox: dict[str, Any]
    address: str
    row: dict[str, Any]
    mail: inboundmail.ParsedMail


async def original(services: Services, account_id: int, inbox_id: int, message_id: int) -> Original:
    def run(conn: Connection) -> tuple[dict[str, Any], dict[str, Any]]:
        inbox = inbound_threads.require_inbox(conn, account_id, inbox_id)
        row = mail_repo.message(conn, inbox_id, message_id)
        if row is None:
            raise NotFound("inbound message")
        return inbox, row

    inbox, row = await services.db.read(run)
    mail = await asyncio.to_thread(inboundmail.parse, bytes(row["raw"]))
    return Original(inbox, inbound_mail.address_of(services, inbox), row, mail)


def _email_of(value: object) -> str | None:
    email = value.get("email") if isinstance(value, dict) else None
    return email.strip().lower() if isinstance(email, str) else None


def _absent(body: dict[str, Any], key: str) -> bool:
    return body.get(key) in (None, [], "")


def _attribution(mail: inboundmail.ParsedMail) -> str:
    who = mail.sender or "the sender"
    return threading.one_line(f"On {mail.date}, {who} wrote:" if mail.date else f"{who} wrote:")


def _bodies(
    kind: Kind, body: dict[str, Any], mail: inboundmail.ParsedMail
) -> tuple[str, str | None]:
    text = body.get("text") if isinstance(body.get("text"), str) else None
    given_html = body.get("html") if isinstance(body.get("html"), str) else None
    if kind == "forward":
        block = threading.forward_header(
            [
                ("From", mail.sender),
                ("Date", mail.date),
                ("Subject", mail.subject),
                ("To", ", ".join(mail.to)),
                ("Cc", ", ".join(mail.cc)),
            ]
        )
        quoted_text = f"{block}\n\n{mail.text or ''}".rstrip()
        quoted_html = f"<div>{html.escape(block).replace(chr(10), '<br>')}</div><br>" + (
            mail.html if mail.html is not None else f"<pre>{html.escape(mail.text or '')}</pre>"
        )
    else:
        quoted_text = threading.quote_text(mail.text, _attribution(mail))
        quoted_html = threading.quote_html(mail.html, mail.text, _attribution(mail))
    out_text = f"{text}\n\n{quoted_text}" if text else quoted_text
    if given_html is None and mail.html is None:
        return out_text, None
    lead = (
        given_html
        if given_html is not None
        else (f"<p>{html.escape(text).replace(chr(10), '<br>')}</p>" if text else "")
    )
    return out_text, f"{lead}{quoted_html}"


def compose(kind: Kind, body: object, found: Original) -> dict[str, Any]:
    """The send body of the answer: the caller's ``body`` with the defaults filled in."""
    if not isinstance(body, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    mail = found.mail
    out = {
        k: v for k, v in body.items() if k not in ("subject", "template_uuid", "template_variables")
    }
    if _absent(body, "from"):
        out["from"] = {"email": found.address}
    if _email_of(out["from"]) != found.address.lower() and _absent(body, "reply_to"):
        out["reply_to"] = {"email": found.address}
    answered = mail.reply_to or mail.sender
    if kind != "forward" and _absent(body, "to") and answered:
        out["to"] = [{"email": answered}]
    if kind == "reply_all" and _absent(body, "cc"):
        skip = {found.address.lower(), (_email_of(out["from"]) or "")}
        skip |= {e for e in (_email_of(t) for t in out.get("to") or []) if e}
        copied: list[dict[str, str]] = []
        for email in [*mail.to, *mail.cc]:
            if email.lower() not in skip:
                skip.add(email.lower())
                copied.append({"email": email})
        if copied:
            out["cc"] = copied
    subject = body.get("subject") if isinstance(body.get("subject"), str) else None
    if subject is None:
        subject = (threading.forward_subject if kind == "forward" else threading.reply_subject)(
            mail.subject
        )
    out["subject"] = subject
    out["text"], out["html"] = _bodies(kind, body, mail)
    # The caller's headers, less the two that place the answer in its thread (ours win).
    headers = body.get("headers")
    if headers is not None and not isinstance(headers, dict):
        out["headers"] = headers  # the send validation refuses it
        return out
    kept = {k: v for k, v in (headers or {}).items() if str(k).lower() not in _THREAD_HEADERS}
    in_reply_to, references = threading.reply_references(
        mail.message_id, mail.in_reply_to, mail.references
    )
    if kind != "forward" and in_reply_to:
        kept["In-Reply-To"] = in_reply_to
    if kind == "forward" and in_reply_to:
        kept["References"] = in_reply_to
    elif references:
        kept["References"] = references
    out["headers"] = kept or None
    return out


def finish(services: Services, kind: Kind, draft: MessageDraft, found: Original) -> MessageDraft:
    """The validated draft made an answer: its own Message-ID (known before sending, so
    replies to it find the thread) and, for a forward, the original's attachments."""
    message_id = draft.message_id or make_message_id(
        draft.sender.domain or "postroom.invalid", services.ids.hex(16)
    )
    attachments = draft.attachments
    if kind == "forward":
        attachments = (*attachments, *threading.carried_attachments(found.mail))
    return replace(draft, message_id=message_id, attachments=attachments)


def _addresses(items: tuple[Address, ...]) -> list[str]:
    return [a.email for a in items]


def _summary(draft: MessageDraft, in_reply_to: str | None, references: list[str]) -> dict[str, Any]:
    return {
        "from": draft.sender.email,
        "to": _addresses(draft.to),
        "cc": _addresses(draft.cc),
        "bcc": _addresses(draft.bcc),
        "reply_to": draft.reply_to.email if draft.reply_to else None,
        "subject": draft.subject,
        "message_id": draft.message_id,
        "in_reply_to": in_reply_to,
        "references": references,
        "text": draft.text,
        "html": draft.html,
        "attachments": [
            {
                "attachment_id": f"att-{i}",
                "size": len(a.content),
                "filename": a.filename,
                "content_type": a.mimetype,
                "content_disposition": a.disposition,
                "content_id": a.content_id,
            }
            for i, a in enumerate(draft.attachments, start=1)
        ],
    }


async def send(
    services: Services, origin: Origin, kind: Kind, draft: MessageDraft, found: Original
) -> list[str]:
    """Send the answer; record it in the original's thread. Its message ids."""
    ids = await send_as_account(services, origin, draft, doing="sent")
    header = {k.lower(): v for k, v in draft.headers}
    in_reply_to = header.get("in-reply-to")
    references = threading.message_ids(header.get("references"))
    own = threading.message_ids(draft.message_id)
    now = services.clock.now()

    def run(conn: Connection) -> None:
        stored = message_repo.get_message(conn, ids[0])
        row = {
            "account_id": found.inbox["account_id"],
            "inbox_id": found.inbox["id"],
            "thread_id": found.row.get("thread_id"),
            "source_message_id": found.row["id"],
            "kind": kind,
            "message_id": ids[0],
            "summary": _summary(draft, in_reply_to, references),
            "size": int(stored["size"]) if stored else 0,
            "created_at": now,
        }
        inbound_threads.add_sent(conn, row, own + threading.message_ids(in_reply_to) + references)

    await services.db.write(run)
    return ids
