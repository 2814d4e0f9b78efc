"""A received message, parsed for inbound inboxes, and its spam score.

Pure: bytes in, facts out. The stdlib's ``email`` package (``policy.default``) parses,
tolerating what real mail gets wrong; nothing here raises on a malformed message (a part
that cannot be decoded is kept as an attachment of its raw bytes).

The spam score is the sum of the rules that hit (:data:`RULES`, documented in
docs/inbound.md); the listener refuses a message at ``inbound.spam_threshold``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, parseaddr
from typing import Any

# Headers kept in the API's ``headers`` (the contract: "selected headers, lowercased").
MAX_HEADERS = 100
HEADER_VALUE_MAX = 2000
MAX_ATTACHMENTS = 100
RISKY_EXTENSIONS = (".exe", ".scr", ".bat", ".cmd", ".com", ".pif", ".js", ".vbs", ".jar", ".msi")

# name: (score, description). Authentication results come from postroom.services.mailauth.
RULES: dict[str, tuple[float, str]] = {
    "SPF_FAIL": (3.0, "SPF says the sending host may not send for the MAIL FROM domain"),
    "SPF_SOFTFAIL": (1.0, "SPF soft-fails the sending host"),
    "DKIM_INVALID": (1.5, "a DKIM signature is present and none verifies"),
    "DMARC_FAIL": (3.0, "the From domain's DMARC check fails"),
    "NO_FROM": (2.0, "no From address"),
    "NO_MESSAGE_ID": (0.5, "no Message-ID header"),
    "NO_DATE": (0.5, "no Date header"),
    "EMPTY_MESSAGE": (1.0, "no subject and no body"),
    "HTML_ONLY": (0.5, "an HTML body without a text alternative"),
    "RISKY_ATTACHMENT": (5.0, "an executable attachment (.exe, .scr, .js, …)"),
}


@dataclass(slots=True)
class Attachment:
    attachment_id: str
    filename: str | None
    content_type: str
    disposition: str | None
    content_id: str | None
    data: bytes

    def as_json(self) -> dict[str, Any]:
        return {
            "attachment_id": self.attachment_id,
            "size": len(self.data),
            "filename": self.filename,
            "content_type": self.content_type,
            "content_disposition": self.disposition,
            "content_id": self.content_id,
        }


@dataclass(slots=True)
class ParsedMail:
    sender: str | None
    to: list[str]
    cc: list[str]
    reply_to: str | None
    subject: str | None
    message_id: str | None
    in_reply_to: str | None
    references: list[str]
    date: str | None
    headers: dict[str, str]
    text: str | None
    html: str | None
    attachments: list[Attachment] = field(default_factory=list)

    @property
    def from_domain(self) -> str:
        return (self.sender or "").rpartition("@")[2].lower()

    def summary(self) -> dict[str, Any]:
        """What the message list shows (stored as JSON beside the raw bytes)."""
        return {
            "from": self.sender,
            "to": self.to,
            "cc": self.cc,
            "reply_to": self.reply_to,
            "subject": self.subject,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": self.references,
            "headers": self.headers,
            "html_size": len(self.html.encode()) if self.html is not None else 0,
            "text_size": len(self.text.encode()) if self.text is not None else 0,
            "attachments": [a.as_json() for a in self.attachments],
        }


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _addresses(message: EmailMessage, name: str) -> list[str]:
    values = [str(v) for v in message.get_all(name, [])]
    return [addr for _, addr in getaddresses(values) if addr]


def _content(part: EmailMessage) -> str | None:
    try:
        content = part.get_content()
    except (LookupError, ValueError, AssertionError):
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return content if isinstance(content, str) else None


def parse(raw: bytes) -> ParsedMail:
    """The facts of ``raw`` (see the module doc)."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    headers: dict[str, str] = {}
    for name, value in list(message.items())[:MAX_HEADERS]:
        key = name.lower()
        text = str(value)[:HEADER_VALUE_MAX]
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    text_body: str | None = None
    html_body: str | None = None
    attachments: list[Attachment] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        assert isinstance(part, EmailMessage)
        kind = part.get_content_type()
        disposition = part.get_content_disposition()
        if disposition != "attachment" and kind == "text/plain" and text_body is None:
            text_body = _content(part)
            continue
        if disposition != "attachment" and kind == "text/html" and html_body is None:
            html_body = _content(part)
            continue
        if len(attachments) >= MAX_ATTACHMENTS:
            continue
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        content_id = _text(part.get("Content-ID"))
        attachments.append(
            Attachment(
                f"att-{len(attachments) + 1}",
                _text(part.get_filename()),
                kind,
                disposition if disposition in ("attachment", "inline") else None,
                content_id.strip("<>") if content_id else None,
                data,
            )
        )
    sender = parseaddr(str(message.get("From", "")))[1] or None
    reply = _addresses(message, "Reply-To")
    references = str(message.get("References", "") or "").split()
    return ParsedMail(
        sender=sender,
        to=_addresses(message, "To"),
        cc=_addresses(message, "Cc"),
        reply_to=reply[0] if reply else None,
        subject=_text(message.get("Subject")),
        message_id=_text(message.get("Message-ID")),
        in_reply_to=_text(message.get("In-Reply-To")),
        references=references,
        date=_text(message.get("Date")),
        headers=headers,
        text=text_body,
        html=html_body,
        attachments=attachments,
    )


def spam_rules(mail: ParsedMail, auth: dict[str, Any]) -> list[str]:
    """The names of the :data:`RULES` that hit, in their order."""
    spf = str(auth.get("spf", {}).get("result", "none"))
    dkim = auth.get("dkim", {})
    dmarc = str(auth.get("dmarc", {}).get("result", "none"))
    hits = {
        "SPF_FAIL": spf == "fail",
        "SPF_SOFTFAIL": spf == "softfail",
        "DKIM_INVALID": dkim.get("result") == "fail",
        "DMARC_FAIL": dmarc == "fail",
        "NO_FROM": not mail.sender,
        "NO_MESSAGE_ID": not mail.message_id,
        "NO_DATE": not mail.date,
        "EMPTY_MESSAGE": not mail.subject and not (mail.text or "").strip() and not mail.html,
        "HTML_ONLY": mail.html is not None and mail.text is None,
        "RISKY_ATTACHMENT": any(
            (a.filename or "").lower().endswith(RISKY_EXTENSIONS) for a in mail.attachments
        ),
    }
    return [name for name in RULES if hits[name]]


def spam_score(rules: list[str]) -> float:
    return round(sum(RULES[name][0] for name in rules), 2)
