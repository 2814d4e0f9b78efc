"""Conversation threads of an inbound inbox, and the headers and text of answers to them.

Pure: what the storage layer needs to group messages (:func:`thread_keys`,
:func:`subject_key`) and what a reply or forward says (:func:`reply_subject`,
:func:`reply_references`, :func:`quote_text`, …).

The grouping rule (docs/inbound.md "Threads"): a message belongs to the thread of any
earlier message of the same inbox whose Message-ID it names in In-Reply-To or References,
or which named its Message-ID (a reply that arrived before its parent joins the parent's
thread when the parent comes). Only a message with neither In-Reply-To nor References
falls back to its subject, and then only when the subject says it answers or forwards
something ("Re:", "Fwd:", …): it joins the most recently active thread of the inbox with
the same normalized subject, if that thread was active within :data:`SUBJECT_WINDOW`.
Anything else starts a thread.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from datetime import timedelta
from typing import Literal

from postroom.domain.inboundmail import ParsedMail
from postroom.domain.messages import Attachment

MAX_KEY_CHARS = 255  # the thread key column
MAX_REFERENCES = 20  # References kept in an answer (RFC 5322 §3.6.4 allows trimming)
SUBJECT_KEY_CHARS = 255
SUBJECT_WINDOW = timedelta(days=30)

_MSG_ID = re.compile(r"<[^<>\s]{1,253}>")
# "Re:", "RE :", "Fwd:", "FW:", "Aw:", "Sv:", "Antw:", "Re[2]:" and mailing-list tags.
_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|sv|antw|wg|tr)\s*(?:\[\d+\])?\s*:|\[[^\]]{1,40}\])\s*",
    re.IGNORECASE,
)
_ANSWER_PREFIX = re.compile(r"^\s*(?:re|fwd?|aw|sv|antw|wg|tr)\s*(?:\[\d+\])?\s*:", re.IGNORECASE)
_SPACE = re.compile(r"\s+")
_CONTENT_ID = re.compile(r"[!-;=?A-~]{1,200}(?:@[!-;=?A-~]{1,200})?")


def message_ids(value: str | None) -> list[str]:
    """The ``<…>`` msg-ids in a header value, in order, without duplicates."""
    found: list[str] = []
    for token in _MSG_ID.findall(value or ""):
        if token not in found:
            found.append(token)
    return found


def thread_keys(
    message_id: str | None, in_reply_to: str | None, references: Iterable[str]
) -> tuple[list[str], list[str]]:
    """(the message's own id, if usable; the ids it answers): the keys that tie it to a
    thread. References past :data:`MAX_REFERENCES` (the oldest) are dropped."""
    own = message_ids(message_id)[:1]
    answered: list[str] = []
    for key in message_ids(in_reply_to) + message_ids(" ".join(references))[-MAX_REFERENCES:]:
        if key not in answered and key not in own:
            answered.append(key)
    return own, answered


def subject_key(subject: str | None) -> str:
    """The subject without answer prefixes and list tags, case and spacing folded."""
    text = subject or ""
    while True:
        stripped = _PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return _SPACE.sub(" ", text).strip().casefold()[:SUBJECT_KEY_CHARS]


def is_answer_subject(subject: str | None) -> bool:
    """Whether the subject says it answers or forwards something (the fallback's gate)."""
    return _ANSWER_PREFIX.match(subject or "") is not None


def one_line(text: str | None) -> str:
    """A header-safe single line (no CR, LF or other control characters)."""
    return _SPACE.sub(" ", "".join(c if c.isprintable() else " " for c in text or "")).strip()


def reply_subject(subject: str | None) -> str:
    """``Re: <subject>``, not ``Re: Re: …``."""
    text = one_line(subject)
    return text if re.match(r"re\s*:", text, re.IGNORECASE) else f"Re: {text}".rstrip()


def forward_subject(subject: str | None) -> str:
    """``Fwd: <subject>``, not ``Fwd: Fwd: …``."""
    text = one_line(subject)
    return text if re.match(r"fwd?\s*:", text, re.IGNORECASE) else f"Fwd: {text}".rstrip()


def reply_references(
    message_id: str | None, in_reply_to: str | None, references: Iterable[str]
) -> tuple[str | None, str | None]:
    """(In-Reply-To, References) of an answer to a message with these headers
    (RFC 5322 §3.6.4): its References (or else its In-Reply-To) followed by its id."""
    own = message_ids(message_id)[:1]
    chain = message_ids(" ".join(references)) or message_ids(in_reply_to)[:1]
    chain = [k for k in chain if k not in own][-(MAX_REFERENCES - 1) :] + own
    return (own[0] if own else None), (" ".join(chain) if chain else None)


def quote_text(text: str | None, attribution: str) -> str:
    """The plain-text quote of an answered message: an attribution line, then ``> ``."""
    lines = (text or "").replace("\r\n", "\n").rstrip("\n").split("\n")
    return f"{attribution}\n" + "\n".join(f"> {line}" if line else ">" for line in lines)


def quote_html(body_html: str | None, text: str | None, attribution: str) -> str:
    """The HTML quote: the original HTML (or its text, escaped) in a blockquote."""
    inner = body_html if body_html is not None else f"<pre>{html.escape(text or '')}</pre>"
    return (
        f"<p>{html.escape(attribution)}</p>"
        f'<blockquote type="cite" style="margin:0 0 0 .8ex;border-left:1px solid #ccc;'
        f'padding-left:1ex">{inner}</blockquote>'
    )


def forward_header(fields: Iterable[tuple[str, str | None]]) -> str:
    """The "Forwarded message" block above a forwarded message's text."""
    lines = ["---------- Forwarded message ---------"]
    lines += [f"{name}: {one_line(value)}" for name, value in fields if value]
    return "\n".join(lines)


def carried_attachments(mail: ParsedMail) -> tuple[Attachment, ...]:
    """A received message's attachments (inline parts too), to send on with a forward:
    names and Content-IDs made header-safe, a Content-ID that is no msg-id dropped."""
    carried = []
    for item in mail.attachments:
        cid = (
            item.content_id if item.content_id and _CONTENT_ID.fullmatch(item.content_id) else None
        )
        inline = item.disposition == "inline" and cid is not None
        disposition: Literal["attachment", "inline"] = "inline" if inline else "attachment"
        carried.append(
            Attachment(
                content=item.data,
                filename=one_line(item.filename)[:255] or item.attachment_id,
                mimetype=item.content_type,
                disposition=disposition,
                content_id=cid,
            )
        )
    return tuple(carried)
