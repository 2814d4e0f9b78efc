"""Build captured sandbox message rows, and parse stored messages for the sandbox API.

Capture copies what acceptance already knew about the message (the ``messages`` row's
sender, first recipient and body sizes) rather than parsing the MIME again: the stdlib
parser costs milliseconds a message, and capture runs for every message in sandbox mode.
The sandbox API's readers (bodies, headers, attachments) do parse, on demand; a message
nested deeper than the MIME depth limit (one captured before the limit existed: SMTP
submission refuses them now) is read as its top-level headers and an opaque body, since
the stdlib's parser and what walks its parts recurse once per level.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from postroom.domain.rawmail import RawLimits, mime_depth

_PARSER = BytesParser(policy=policy.default)
_MAX_DEPTH = RawLimits().max_mime_depth


def parse(raw: bytes) -> EmailMessage:
    shallow = mime_depth(raw, _MAX_DEPTH) > _MAX_DEPTH
    message = _PARSER.parsebytes(raw, headersonly=shallow)
    assert isinstance(message, EmailMessage)
    return message


def captured_row(
    message: Mapping[str, Any],
    raw: bytes,
    *,
    inbox_id: int,
    now: datetime,
) -> dict[str, Any]:
    """The ``sandbox_messages`` row capturing ``message`` (a ``messages`` row) into an inbox.

    The row has no ``id``: the database numbers captured messages as they are inserted.
    """
    return {
        "inbox_id": inbox_id,
        "account_id": message["account_id"],
        "message_id": message["id"],
        "subject": message["subject"],
        "from_email": message["sender"],
        "from_name": message["sender_name"],
        "to_email": message["first_to"],
        "to_name": message["first_to_name"],
        "mail_from": message["sender"],
        "client_ip": message["client_ip"],
        "raw": raw,
        "email_size": len(raw),
        "text_body_size": message["text_size"],
        "html_body_size": message["html_size"],
        "is_read": False,
        "created_at": now,
        "updated_at": now,
    }
