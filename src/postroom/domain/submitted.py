"""A message submitted over SMTP: checked, turned into a draft, and kept as the client sent it.

SMTP clients (framework mailers, printers) send finished RFC 5322 messages. Postroom keeps
the client's bytes rather than re-serialising them (a re-serialised message would lose
the client's own MIME structure and could break a signature the client made); what it
changes is header policy, applied to whole header fields:

* ``Bcc`` fields are removed: the envelope decides delivery, and a Bcc header would tell
  every recipient who else got the message.
* ``X-MT-Custom-Variables`` and ``X-MT-Category`` (the Mailtrap SMTP equivalents of the
  API's ``custom_variables`` and ``category``, spec §6) are read, then removed.
* ``Return-Path`` is removed: the MTA writes it on final delivery.
* A ``Message-ID`` is kept when there is exactly one and it is a valid msg-id that fits
  the store, as hosted relays keep the client's id; otherwise it is dropped and
  :func:`complete_message` adds Postroom's. ``Date`` is added when missing.

Refused (:class:`Refused`): bare CR or LF, NUL or over-long lines in the header block;
then (:class:`~postroom.domain.rawmail.Unacceptable`, before anything parses the MIME)
whatever delivery could not send anywhere in the message, a header section over the
limits and MIME nested past the limit (:mod:`postroom.domain.rawmail`);
a line made only of a dot next to a bare CR or LF anywhere, or a bare CR or LF
straight after a CRLF (what SMTP smuggling uses to end DATA early at a lenient next
hop); a missing or unusable ``From``; a category over
the limit. Recipients come from the envelope: each is ``to`` or ``cc`` when the header
names it, ``bcc`` otherwise.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, getaddresses
from typing import Any

from postroom.domain.addresses import is_valid_email
from postroom.domain.headers import parse_message_id
from postroom.domain.messages import Address, MessageDraft
from postroom.domain.mimepolicy import MEMO
from postroom.domain.rawmail import RawLimits, check_raw, has_bare_eol

__all__ = ["Refused", "complete_message", "parse_submission"]

MAX_HEADER_LINE = 998  # RFC 5322 2.1.1, CRLF excluded


class Refused(ValueError):
    """The message cannot be accepted; the text says why (it is shown to the client)."""


_DROPPED = frozenset({"bcc", "x-mt-custom-variables", "x-mt-category", "return-path"})
_BARE_EOL = rb"(?:(?<!\r)\n|\r(?!\n))"
# SMTP smuggling (CVE-2023-51764/5/6): a line holding only a dot next to a bare CR or LF
# ends DATA at a lenient next hop, which reads what follows as new commands. The SMTP
# layer ends DATA only at CRLF.CRLF and removes a line's leading dot (transparency), so
# the wire's CRLF "." LF arrives here as CRLF LF; the other forms keep their dot.
_SMUGGLED_DOT = re.compile(
    rb"%s\.(?:\r\n|\n|\r)|\r\n\.%s|\r\n%s" % (_BARE_EOL, _BARE_EOL, _BARE_EOL)
)
_FIELD_NAME = re.compile(rb"([!-9;-~]+)[ \t]*:")
_MESSAGE = BytesParser(policy=MEMO)


def split_fields(raw: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded lines and final CRLF) and the rest.

    The rest starts with the blank line that ends the header block (or is empty).
    """
    end = raw.find(b"\r\n\r\n")
    head, rest = (raw, b"") if end < 0 else (raw[: end + 2], raw[end + 2 :])
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1] if head.endswith(b"\r\n") else head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, rest


def field_name(field: bytes) -> str | None:
    """The lower-cased name of a header field, or None when the line is not a field."""
    match = _FIELD_NAME.match(field)
    return match.group(1).decode("ascii").lower() if match else None


def parse_submission(
    raw: bytes,
    recipients: Sequence[str],
    *,
    max_custom_variables_bytes: int = 1000,
    max_category_chars: int = 255,
    limits: RawLimits = RawLimits(),
) -> MessageDraft:
    """Check a message received over SMTP and return its draft (``draft.raw`` set).

    Raises :class:`Refused` or :class:`~postroom.domain.rawmail.Unacceptable` with the
    reason when the message is refused.
    """
    if has_bare_eol(raw) and _SMUGGLED_DOT.search(b"\r\n" + raw) is not None:
        raise Refused("bare CR or LF next to a line holding only a dot")
    fields, rest = split_fields(raw)
    head = b"".join(fields)
    if has_bare_eol(head) or b"\x00" in head:
        raise Refused("bare CR, LF or NUL in the message header")
    if any(len(line) > MAX_HEADER_LINE for line in head.split(b"\r\n")):
        raise Refused("header line longer than 998 octets")
    names = [field_name(field) for field in fields]
    if None in names:
        raise Refused("malformed header field")
    check_raw(raw, limits)

    parsed = _values(fields, names)
    sender = _sender(parsed)
    custom_variables = _custom_variables(parsed, max_custom_variables_bytes)
    category = _category(parsed, max_category_chars)
    drop_id = not _usable_message_id(parsed)
    kept = [
        field
        for field, name in zip(fields, names, strict=True)
        if name not in _DROPPED and not (drop_id and name == "message-id")
    ]
    body = b"".join(kept) + rest
    text, html = _bodies(body)

    to, cc = _named(parsed, "to"), _named(parsed, "cc")
    by_field: dict[str, list[Address]] = {"to": [], "cc": [], "bcc": []}
    for recipient in recipients:
        key = recipient.lower()
        kind = "to" if key in to else "cc" if key in cc else "bcc"
        name = to.get(key) or cc.get(key) or ""
        by_field[kind].append(Address(recipient, name))
    return MessageDraft(
        sender=sender,
        to=tuple(by_field["to"]),
        cc=tuple(by_field["cc"]),
        bcc=tuple(by_field["bcc"]),
        subject=_text(parsed, "subject"),
        text=text,
        html=html,
        custom_variables=custom_variables,
        category=category,
        raw=body,
    )


def complete_message(raw: bytes, *, message_id: str, date: datetime) -> tuple[bytes, str]:
    """Add the Message-ID and Date a submitted message lacks; returns it and its Message-ID.

    ``raw`` is a ``draft.raw`` (its Message-ID, if any, already checked by
    :func:`parse_submission`); ``message_id`` is used only when it has none.
    """
    fields, _ = split_fields(raw)
    found: str | None = None
    has_date = False
    for field in fields:
        name = field_name(field)
        if name == "message-id":
            found = field.split(b":", 1)[1].decode("ascii", "replace").strip()
        elif name == "date":
            has_date = True
    added = b""
    if found is None:
        added += f"Message-ID: {message_id}\r\n".encode("ascii")
    if not has_date:
        added += f"Date: {format_datetime(date)}\r\n".encode("ascii")
    return added + raw, found or message_id


# --- header values ------------------------------------------------------------------------


Headers = dict[str, list[str]]


def _values(fields: list[bytes], names: list[str | None]) -> Headers:
    """Each field's unfolded value by lower-cased name.

    UTF-8 headers (RFC 6532) are read as text; other 8-bit bytes only affect display
    values (addresses are validated), so they become U+FFFD rather than a refusal. The
    stdlib's header registry would parse the same in ~0.3 ms a field, most of the cost
    of a submission; these few fields need only ``getaddresses`` and RFC 2047 decoding.
    """
    values: Headers = {}
    for field, name in zip(fields, names, strict=True):
        if name is None:
            continue
        value = field.split(b":", 1)[1].decode("utf-8", "replace")
        values.setdefault(name, []).append(value.replace("\r\n", "").strip())
    return values


def _sender(parsed: Headers) -> Address:
    values = parsed.get("from", [])
    if len(values) != 1:
        raise Refused("the message needs exactly one From header")
    mailboxes = getaddresses(values)
    if len(mailboxes) != 1:
        raise Refused("the From header must hold one address")
    name, email = mailboxes[0]
    if not is_valid_email(email):
        raise Refused("the From address is invalid")
    return Address(email, _decoded(name))


def _named(parsed: Headers, name: str) -> dict[str, str]:
    """The addresses of a To or Cc header, lower-cased, mapped to their display names."""
    named: dict[str, str] = {}
    for display, email in getaddresses(parsed.get(name, [])):
        if "@" in email:
            named.setdefault(email.lower(), _decoded(display))
    return named


def _decoded(text: str) -> str:
    """RFC 2047 encoded-words decoded, line-breaking characters turned into spaces."""
    if "=?" in text:
        with contextlib.suppress(HeaderParseError, UnicodeError, LookupError, ValueError):
            text = str(make_header(decode_header(text)))
    return re.sub(r"[\x00-\x1f\x7f\u2028\u2029]", " ", text).strip()


def _text(parsed: Headers, name: str) -> str:
    values = parsed.get(name)
    return _decoded(values[0]) if values else ""


def _usable_message_id(parsed: Headers) -> bool:
    values = parsed.get("message-id", [])
    return len(values) == 1 and parse_message_id(values[0]) is not None


def _custom_variables(parsed: Headers, limit: int) -> dict[str, Any]:
    """``X-MT-Custom-Variables``: a JSON object; arrays give their first value.

    As Mailtrap does, an unreadable value or one over the size limit is ignored.
    """
    values = parsed.get("x-mt-custom-variables")
    if not values:
        return {}
    try:
        decoded = json.loads(values[0])
    except (ValueError, RecursionError):  # RecursionError: nested past the decoder's depth
        return {}
    if not isinstance(decoded, dict):
        return {}
    flat: dict[str, Any] = {}
    for key, item in decoded.items():
        if isinstance(item, list):
            if not item:
                continue
            item = item[0]
        if isinstance(item, str | int | float | bool) or item is None:
            flat[str(key)] = item
    if len(json.dumps(flat, separators=(",", ":")).encode("utf-8")) > limit:
        return {}
    return flat


def _category(parsed: Headers, limit: int) -> str | None:
    category = _text(parsed, "x-mt-category")
    if not category:
        return None
    if len(category) > limit:
        raise Refused(f"category is longer than {limit} characters")
    return category


def _bodies(raw: bytes) -> tuple[str | None, str | None]:
    """The text and html bodies, for their sizes in logs and the sandbox (never rebuilt)."""
    message = _MESSAGE.parsebytes(raw)
    assert isinstance(message, EmailMessage)
    found: list[str | None] = []
    for subtype in ("plain", "html"):
        try:
            part = message.get_body(preferencelist=(subtype,))
            content = part.get_content() if part is not None else None
        except (LookupError, ValueError, AttributeError, KeyError):
            content = None
        found.append(content.replace("\r\n", "\n") if isinstance(content, str) else None)
    return found[0], found[1]
