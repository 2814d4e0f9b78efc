"""Turn raw RFC 5322 bytes into a captured sandbox message row.

Capture happens off the accept path (in the delivery worker, or once per sandbox send),
so the stdlib parser's cost is acceptable here; it is also the most faithful reader of
what a mail client would show.
"""

from __future__ import annotations

from datetime import datetime
from email import policy
from email.headerregistry import Address as HeaderAddress
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

_PARSER = BytesParser(policy=policy.default)


def parse(raw: bytes) -> EmailMessage:
    message = _PARSER.parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _first_address(message: EmailMessage, header: str) -> tuple[str, str]:
    value = message.get(header)
    addresses: tuple[HeaderAddress, ...] = getattr(value, "addresses", ())
    if not addresses:
        return "", ""
    first = addresses[0]
    return first.addr_spec, first.display_name or ""


def _body_size(message: EmailMessage, subtype: str) -> int:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return 0
    content = part.get_content()
    return len(content.encode("utf-8")) if isinstance(content, str) else len(content)


def captured_row(
    raw: bytes,
    *,
    sandbox_id: int,
    inbox_id: int,
    account_id: int,
    message_id: str | None,
    mail_from: str,
    client_ip: str | None,
    now: datetime,
) -> dict[str, Any]:
    """The ``sandbox_messages`` row for ``raw`` captured into ``inbox_id``."""
    message = parse(raw)
    from_email, from_name = _first_address(message, "From")
    to_email, to_name = _first_address(message, "To")
    return {
        "id": sandbox_id,
        "inbox_id": inbox_id,
        "account_id": account_id,
        "message_id": message_id,
        "subject": str(message.get("Subject", "")),
        "from_email": from_email,
        "from_name": from_name,
        "to_email": to_email,
        "to_name": to_name,
        "mail_from": mail_from,
        "client_ip": client_ip,
        "raw": raw,
        "email_size": len(raw),
        "text_body_size": _body_size(message, "plain"),
        "html_body_size": _body_size(message, "html"),
        "is_read": False,
        "created_at": now,
        "updated_at": now,
    }
