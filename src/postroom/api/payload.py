"""The JSON bodies of ``POST /api/send`` and ``POST /api/batch``: parsed into drafts, or refused.

This is the API edge of the sending path. It takes the decoded JSON (whatever the client
sent), checks it against the Mailtrap wire contract and returns
:class:`~postroom.domain.messages.MessageDraft` objects; it raises
:class:`~postroom.errors.ValidationFailed` with *every* applicable contract error string
(clients fix all mistakes in one round trip, as with Mailtrap), or
:class:`~postroom.errors.PayloadTooLarge` when the message would exceed
``limits.max_message_bytes``. The raw body size (``limits.max_batch_bytes``) is the HTTP
layer's check, made before JSON decoding.

Conventions, applied to every field:

* ``null`` is the same as an absent key (no SDK sends ``null``; other clients do);
* for optional strings, and for the "either text or html" and template rules, an empty
  string is the same as an absent one (Nodemailer sends ``name: ""``);
* unknown keys are ignored, as Mailtrap does;
* a size over the limit wins over validation errors (the client must shrink it anyway).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import orjson

from postroom.config import LimitSettings
from postroom.domain.addresses import is_valid_email
from postroom.domain.headers import (
    IGNORED_HEADERS,
    check_header,
    is_header_text,
    parse_date,
    parse_message_id,
)
from postroom.domain.messages import Address, Attachment, MessageDraft, utf8_len
from postroom.errors import PayloadTooLarge, ValidationFailed

# Fields a batch ``base`` may carry; every one of them may also appear in a request.
BASE_FIELDS: frozenset[str] = frozenset(
    {
        "from",
        "reply_to",
        "subject",
        "text",
        "html",
        "attachments",
        "headers",
        "category",
        "custom_variables",
        "template_uuid",
        "template_variables",
    }
)
RECIPIENT_FIELDS = ("to", "cc", "bcc")

BatchItem = MessageDraft | ValidationFailed | PayloadTooLarge

# Standard base64 (RFC 4648 §4) once line breaks are removed; padding is optional.
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")
# RFC 6838 restricted-name, for the type and the subtype.
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w!#$&^.+-]{0,126}/[A-Za-z0-9][\w!#$&^.+-]{0,126}", re.ASCII)
# A Content-ID is an ASCII token; whitespace would break the cid: reference.
_CONTENT_ID = re.compile(r"[\x21-\x7e]{1,255}")
_MAX_TEMPLATE_UUID_CHARS = 255
_DEFAULT_MIMETYPE = "application/octet-stream"


def parse_send(body: object, limits: LimitSettings) -> MessageDraft:
    """Validate a ``/api/send`` body and return its draft.

    Raises ``ValidationFailed`` (all errors that apply) or ``PayloadTooLarge``.
    """
    return _MessageParser(_require_object(body), limits).parse()


def parse_batch(body: object, limits: LimitSettings) -> list[BatchItem]:
    """Validate a ``/api/batch`` body: one draft or per-message error per request, in order.

    Each request is merged over ``base`` (a field present in the request replaces the base
    field wholesale, even with ``null``) and then validated exactly like ``/api/send``.
    Raises ``ValidationFailed`` only for errors of the request as a whole.
    """
    obj = _require_object(body)
    errors: list[str] = []
    base = _batch_base(obj.get("base"), errors)
    requests = _batch_requests(obj.get("requests"), limits, errors)
    if errors:
        raise ValidationFailed(errors)
    return [_parse_batch_item(base, item, limits) for item in requests]


def _require_object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed(["request body must be a JSON object"])
    return body


def _batch_base(value: object, errors: list[str]) -> dict[str, Any]:
    """The usable part of ``base``; recipients are per request by contract."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        errors.append("'base' must be an object")
        return {}
    errors.extend(
        f"'base' must not contain '{name}'" for name in RECIPIENT_FIELDS if value.get(name)
    )
    return {key: val for key, val in value.items() if key in BASE_FIELDS}


def _batch_requests(value: object, limits: LimitSettings, errors: list[str]) -> list[object]:
    if value is None or value == []:
        errors.append("empty field: 'requests'")  # verbatim from the contract
        return []
    if not isinstance(value, list):
        errors.append("'requests' must be an array")
        return []
    if len(value) > limits.max_batch_requests:
        errors.append(f"'requests' must contain at most {limits.max_batch_requests} items")
        return []
    return value


def _parse_batch_item(base: dict[str, Any], item: object, limits: LimitSettings) -> BatchItem:
    if not isinstance(item, dict):
        return ValidationFailed(["request must be a JSON object"])
    try:
        return _MessageParser({**base, **item}, limits).parse()
    except (ValidationFailed, PayloadTooLarge) as exc:
        # Kept in a list of results: drop the traceback so it does not pin the frames.
        return exc.with_traceback(None)


def _present(value: object) -> bool:
    """Set to something: not absent, null or the empty string."""
    return value is not None and value != ""


def _prefixed(field: str) -> Callable[[str], str]:
    """Error wording for a single address: "'from' address is invalid"."""
    return lambda problem: f"'{field}' {problem}"


def _indexed(field: str, index: int) -> Callable[[str], str]:
    """Error wording for a list entry, as the contract has it: "address is invalid in 'to' 0"."""
    return lambda problem: f"{problem} in '{field}' {index}"


def _decode_base64(text: str) -> bytes | None:
    """Decode standard base64, with or without padding and line breaks; None if invalid."""
    compact = text.replace("\r", "").replace("\n", "")
    if _BASE64.fullmatch(compact) is None:
        return None
    stripped = compact.rstrip("=")
    if len(stripped) % 4 == 1:  # no number of padding characters can complete this
        return None
    try:
        return base64.b64decode(stripped + "=" * (-len(stripped) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None


def _base64_len(size: int) -> int:
    """Bytes the serializer needs for ``size`` bytes as base64 (line breaks aside)."""
    return (size + 2) // 3 * 4


def _json_size(value: object) -> int | None:
    """Compact JSON size in bytes, or None if the value cannot be stored as JSON."""
    try:
        return len(orjson.dumps(value))
    except orjson.JSONEncodeError:
        return None


def _body_size(body: str) -> int | None:
    """A body's UTF-8 size, or None when it cannot be mail.

    Bodies may hold line breaks, but NUL is not allowed in Internet mail (RFC 5322
    §2.3) and a lone surrogate cannot be encoded. Checked with string methods that run
    in C: a regular expression over a 5 KB body cost 40 µs, this costs well under 1.
    """
    if "\x00" in body:
        return None
    if body.isascii():
        return len(body)
    try:
        return len(body.encode("utf-8"))
    except UnicodeEncodeError:
        return None


# A batch names the same sender, Cc and Reply-To in each of its (up to 500) requests.
@functools.lru_cache(maxsize=1024)
def _valid_address(email: str, name: str | None) -> tuple[Address, int] | None:
    """The Address and its counted size when ``email`` and ``name`` (None: absent) pass
    :meth:`_MessageParser._checked_address`, else None (that method then says why).
    Pure, so cached: validating a repeated address costs a dictionary look-up."""
    if not is_valid_email(email) or (name is not None and not is_header_text(name)):
        return None
    name = name or ""
    return Address(email=email, name=name), utf8_len(email) + utf8_len(name) + 4


class _MessageParser:
    """Validates one message body, collecting every error, and builds its draft."""

    def __init__(self, body: dict[str, Any], limits: LimitSettings) -> None:
        self._body = body
        self._limits = limits
        self._errors: list[str] = []
        self._size = 0

    def parse(self) -> MessageDraft:
        """The draft; raises ValidationFailed or PayloadTooLarge. Error order follows
        the contract's example: from, recipients, subject, body, then the rest."""
        templated = _present(self._body.get("template_uuid"))
        sender = self._sender()
        to, cc, bcc = (self._recipients(field) for field in RECIPIENT_FIELDS)
        self._require_recipients()
        reply_to = self._reply_to()
        subject = self._subject(templated)
        text, html = self._bodies(templated)
        category = self._category(templated)
        template_uuid, template_variables = self._template_uuid(), self._template_variables()
        custom_variables = self._custom_variables()
        headers, message_id, date = self._headers()
        attachments = self._attachments()
        if self._errors or sender is None:
            raise ValidationFailed(self._errors)
        return MessageDraft(
            sender=sender,
            to=to,
            cc=cc,
            bcc=bcc,
            reply_to=reply_to,
            subject=subject,
            text=text,
            html=html,
            attachments=attachments,
            headers=headers,
            custom_variables=custom_variables,
            category=category,
            template_uuid=template_uuid,
            template_variables=template_variables,
            message_id=message_id,
            date=date,
        )

    # -- bookkeeping ---------------------------------------------------------------------

    def _error(self, message: str) -> None:
        self._errors.append(message)

    def _add_size(self, size: int) -> None:
        """Count ``size`` bytes towards the estimated message size; stop as soon as it is
        over the limit, so a huge message is not decoded to the end."""
        self._size += size
        if self._size > self._limits.max_message_bytes:
            raise PayloadTooLarge(
                f"message size exceeds the limit of {self._limits.max_message_bytes} bytes"
            )

    def _string(self, field: str) -> str | None:
        """The string at ``field``; None when absent or null, or (reported) of another type."""
        value = self._body.get(field)
        if value is None or isinstance(value, str):
            return value
        self._error(f"'{field}' must be a string")
        return None

    def _forbid_with_template(self, field: str) -> None:
        if _present(self._body.get(field)):
            self._error(f"'{field}' is not allowed with 'template_uuid'")

    # -- addresses -----------------------------------------------------------------------

    def _address(self, value: object, say: Callable[[str], str]) -> Address | None:
        """An Address object ``{"email", "name"?}``; None (reported) if it is not valid.

        A valid one is found in :func:`_valid_address`'s cache when the batch repeats it;
        anything else takes :meth:`_checked_address`, which words the errors."""
        if isinstance(value, dict):
            email, name = value.get("email"), value.get("name")
            if isinstance(email, str) and (name is None or isinstance(name, str)):
                valid = _valid_address(email, name)
                if valid is not None:
                    address, size = valid
                    self._add_size(size)
                    return address
        return self._checked_address(value, say)

    def _checked_address(self, value: object, say: Callable[[str], str]) -> Address | None:
        if not isinstance(value, dict):
            self._error(say("address is invalid"))
            return None
        email = value.get("email")
        if not isinstance(email, str) or not is_valid_email(email):
            self._error(say("address is invalid"))
            email = None
        name = self._display_name(value.get("name"), say)
        if email is None or name is None:
            return None
        self._add_size(utf8_len(email) + utf8_len(name) + 4)
        return Address(email=email, name=name)

    def _display_name(self, value: object, say: Callable[[str], str]) -> str | None:
        """The display name ("" when absent or null); None (reported) when unusable."""
        if value is None:
            return ""
        if not isinstance(value, str):
            self._error(say("name must be a string"))
            return None
        if not is_header_text(value):
            self._error(say("name contains invalid characters"))
            return None
        return value

    def _sender(self) -> Address | None:
        value = self._body.get("from")
        if value is None:
            self._error("'from' is required")
            return None
        return self._address(value, _prefixed("from"))

    def _recipients(self, field: str) -> tuple[Address, ...]:
        """``to``/``cc``/``bcc``: an array of addresses (a single object is accepted too)."""
        value = self._body.get(field)
        if value is None:
            return ()
        entries = [value] if isinstance(value, dict) else value
        if not isinstance(entries, list):
            self._error(f"'{field}' must be an array")
            return ()
        limit = self._limits.max_recipients_per_field
        if len(entries) > limit:
            self._error(f"'{field}' must contain at most {limit} addresses")
            return ()
        parsed = [self._address(entry, _indexed(field, i)) for i, entry in enumerate(entries)]
        return tuple(address for address in parsed if address is not None)

    def _require_recipients(self) -> None:
        # Only when nothing was given at all: a bad entry already has its own error.
        if all(self._body.get(field) in (None, []) for field in RECIPIENT_FIELDS):
            self._error("'to', 'cc' or 'bcc' address is required")

    def _reply_to(self) -> Address | None:
        value = self._body.get("reply_to")
        if isinstance(value, list):  # NODE's batch types send an array: use its first entry
            value = value[0] if value else None
        if value is None:
            return None
        return self._address(value, _prefixed("reply_to"))

    # -- content -------------------------------------------------------------------------

    def _subject(self, templated: bool) -> str:
        if templated:
            self._forbid_with_template("subject")
            return ""
        if not _present(self._body.get("subject")):
            self._error("'subject' is required")
            return ""
        subject = self._string("subject") or ""
        if not is_header_text(subject):
            self._error("'subject' contains invalid characters")
        self._add_size(utf8_len(subject))
        return subject

    def _bodies(self, templated: bool) -> tuple[str | None, str | None]:
        if templated:
            self._forbid_with_template("text")
            self._forbid_with_template("html")
            return None, None
        text, html = self._body_part("text"), self._body_part("html")
        if not (_present(self._body.get("text")) or _present(self._body.get("html"))):
            self._error("must specify either text or html body")
        return text, html

    def _body_part(self, field: str) -> str | None:
        value = self._string(field)
        if not value:
            return None
        size = _body_size(value)
        if size is None:
            self._error(f"'{field}' contains invalid characters")
            size = utf8_len(value)
        self._add_size(size)
        return value

    def _category(self, templated: bool) -> str | None:
        if templated:  # the template carries its own category
            self._forbid_with_template("category")
            return None
        category = self._string("category")
        if not category:
            return None
        limit = self._limits.max_category_chars
        if len(category) > limit:
            self._error(f"'category' must be at most {limit} characters")
        elif not is_header_text(category):  # it travels as X-MT-Category over SMTP
            self._error("'category' contains invalid characters")
        return category

    # -- templates and variables ---------------------------------------------------------

    def _template_uuid(self) -> str | None:
        """The template's id. Its format is not checked: an unknown id is the template
        service's error, and clients have sent non-UUID ids (the PY capture's "uuid-1")."""
        uuid = self._string("template_uuid")
        if not uuid:
            return None
        if len(uuid) > _MAX_TEMPLATE_UUID_CHARS or not is_header_text(uuid):
            self._error("'template_uuid' is invalid")
        return uuid

    def _template_variables(self) -> dict[str, Any] | None:
        value = self._body.get("template_variables")
        if value is None:
            return None
        if not isinstance(value, dict) or _json_size(value) is None:
            self._error("'template_variables' must be an object")
            return None
        return value

    def _custom_variables(self) -> dict[str, Any]:
        value = self._body.get("custom_variables")
        if value is None:
            return {}
        if not isinstance(value, dict):
            self._error("'custom_variables' must be an object")
            return {}
        size = _json_size(value)
        flat = all(isinstance(v, str | int | float) for v in value.values())  # bool is an int
        if not flat or size is None:
            self._error("'custom_variables' values must be strings, numbers or booleans")
        elif size > self._limits.max_custom_variables_bytes:
            limit = self._limits.max_custom_variables_bytes
            self._error(f"'custom_variables' must be at most {limit} bytes")
        return dict(value)

    # -- headers and attachments ---------------------------------------------------------

    def _headers(self) -> tuple[tuple[tuple[str, str], ...], str | None, datetime | None]:
        """The custom headers, and the client's own Message-ID and Date if it gave them.

        One rule (domain/headers.py): Reply-To, Message-ID and Date are kept (the last two
        validated), Content-Transfer-Encoding is replaced, the rest of Postroom's own
        headers are refused. The count and total size are capped like an SMTP message's
        header section (``limits.max_header_fields`` / ``max_header_bytes``).
        """
        value = self._body.get("headers")
        if value is None:
            return (), None, None
        if not isinstance(value, dict) or not all(
            isinstance(name, str) and isinstance(text, str) for name, text in value.items()
        ):
            self._error("'headers' must be an object of strings")
            return (), None, None
        if len(value) > self._limits.max_header_fields:
            self._error(f"'headers' must contain at most {self._limits.max_header_fields} fields")
            return (), None, None
        size = sum(len(name) + utf8_len(text) + 4 for name, text in value.items())
        if size > self._limits.max_header_bytes:
            self._error(f"'headers' must be at most {self._limits.max_header_bytes} bytes")
            return (), None, None
        self._add_size(size)
        kept: list[tuple[str, str]] = []
        message_id: str | None = None
        date: datetime | None = None
        for name, text in value.items():
            lower = name.lower()
            if lower in IGNORED_HEADERS:
                continue
            if lower == "message-id":
                message_id = self._message_id(name, text, message_id)
            elif lower == "date":
                date = self._date(name, text, date)
            else:
                problem = check_header(name, text)
                if problem is not None:
                    self._error(problem)
                kept.append((name, text))
        return tuple(kept), message_id, date

    def _message_id(self, name: str, text: str, earlier: str | None) -> str | None:
        if earlier is not None:
            self._error("header 'Message-ID' is given twice")
            return earlier
        found = parse_message_id(text)
        if found is None:
            self._error(
                f"header '{name}' must be one msg-id like <unique@sender.example> "
                "(printable ASCII, at most 255 characters)"
            )
        return found

    def _date(self, name: str, text: str, earlier: datetime | None) -> datetime | None:
        if earlier is not None:
            self._error("header 'Date' is given twice")
            return earlier
        found = parse_date(text)
        if found is None:
            self._error(
                f"header '{name}' must be an RFC 5322 date like Tue, 10 Mar 2026 09:00:00 +0000"
            )
        return found

    def _attachments(self) -> tuple[Attachment, ...]:
        value = self._body.get("attachments")
        if value is None:
            return ()
        if not isinstance(value, list):
            self._error("'attachments' must be an array")
            return ()
        parsed = [self._attachment(item, f"'attachments' {i}") for i, item in enumerate(value)]
        return tuple(attachment for attachment in parsed if attachment is not None)

    def _attachment(self, item: object, where: str) -> Attachment | None:
        if not isinstance(item, dict):
            self._error(f"{where} must be an object")
            return None
        errors_before = len(self._errors)
        content = self._attachment_content(item, where)
        filename = self._attachment_filename(item, where)
        mimetype = self._attachment_type(item, where)
        disposition = self._attachment_disposition(item, where)
        content_id = self._attachment_content_id(item, where)
        if len(self._errors) > errors_before:
            return None
        return Attachment(content, filename, mimetype, disposition, content_id)

    def _item_string(self, item: dict[str, Any], key: str, where: str) -> str | None:
        """An optional string of an attachment; None when absent, null, empty or mistyped."""
        value = item.get(key)
        if value is not None and not isinstance(value, str):
            self._error(f"{where}: '{key}' must be a string")
            return None
        return value or None

    def _attachment_content(self, item: dict[str, Any], where: str) -> bytes:
        # The contract says base64, but the Node SDK sends string content verbatim (a
        # Nodemailer attachment `content: "hello"` arrives as "hello"). Content that is
        # not valid base64 is therefore taken as the file's own text (UTF-8), as a lenient
        # server must; content that happens to be valid base64 cannot be told apart and
        # is decoded, which is what every other client means by it.
        raw = item.get("content")
        if raw is None:
            self._error(f"{where}: 'content' is required")
            return b""
        if not isinstance(raw, str):
            self._error(f"{where}: 'content' must be a string")
            return b""
        data = _decode_base64(raw)
        if data is None:
            data = raw.encode("utf-8", "surrogatepass")
        self._add_size(_base64_len(len(data)))
        return data

    def _attachment_filename(self, item: dict[str, Any], where: str) -> str:
        raw = item.get("filename")
        if not _present(raw):  # required even for inline parts
            self._error(f"{where}: 'filename' is required")
            return ""
        filename = self._item_string(item, "filename", where) or ""
        if filename and not is_header_text(filename):
            self._error(f"{where}: 'filename' contains invalid characters")
        return filename

    def _attachment_type(self, item: dict[str, Any], where: str) -> str:
        raw = self._item_string(item, "type", where)
        if raw is None:
            return _DEFAULT_MIMETYPE
        # Parameters ("; charset=…") are dropped: the serializer writes its own.
        mimetype = raw.partition(";")[0].strip()
        if _MIME_TYPE.fullmatch(mimetype) is None:
            self._error(f"{where}: 'type' is invalid")
        return mimetype

    def _attachment_disposition(
        self, item: dict[str, Any], where: str
    ) -> Literal["attachment", "inline"]:
        raw = item.get("disposition")
        if raw == "inline":
            return "inline"
        if _present(raw) and raw != "attachment":
            self._error(f"{where}: 'disposition' must be 'attachment' or 'inline'")
        return "attachment"

    def _attachment_content_id(self, item: dict[str, Any], where: str) -> str | None:
        content_id = self._item_string(item, "content_id", where)
        if content_id is not None and _CONTENT_ID.fullmatch(content_id) is None:
            self._error(f"{where}: 'content_id' contains invalid characters")
        return content_id
