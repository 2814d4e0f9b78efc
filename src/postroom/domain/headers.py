"""Client-supplied message headers: which names are Postroom's, and what is safe to write.

The API's ``headers`` object lets a client add headers such as ``List-Unsubscribe`` or a
multi-address ``Reply-To``. One rule decides every header Postroom itself writes:

* **kept** when Postroom can honour the client's value as given: ``Reply-To``,
  ``Message-ID`` (a valid RFC 5322 msg-id, :func:`parse_message_id`) and ``Date`` (a
  valid RFC 5322 date, :func:`parse_date`), as framework mailers set them; a malformed
  value is refused with a 400 that says what is expected;
* **replaced** when the value is a transport detail the serializer must choose per part:
  ``Content-Transfer-Encoding`` is accepted and replaced by the serializer's own
  (7bit, quoted-printable or base64), as the contract says Mailtrap does
  (:data:`IGNORED_HEADERS`);
* **refused** (400, ``header 'X' is reserved``) for everything else Postroom writes:
  addressing and subject (the JSON fields say them), MIME structure, trace fields and
  authentication results or signatures (:data:`RESERVED_HEADERS`), so a client can
  neither contradict the envelope nor forge a signature.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.utils import parsedate_to_datetime

# Lower-case names; compare with ``name.lower()``.
RESERVED_HEADERS: frozenset[str] = frozenset(
    {
        # Addressing and identity: derived from from/to/cc/bcc/subject and the message id.
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "sender",
        # MIME structure: the serializer builds it from the bodies and attachments.
        "mime-version",
        "content-type",
        "content-disposition",
        # Trace fields: written by MTAs, never by the author.
        "return-path",
        "received",
        # Authentication: Postroom signs; client-made signatures/results would be forgeries.
        "dkim-signature",
        "domainkey-signature",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "authentication-results",
    }
)

# Accepted and replaced: the serializer chooses each part's transfer encoding.
IGNORED_HEADERS: frozenset[str] = frozenset({"content-transfer-encoding"})
# Kept with the client's (validated) value instead of the one Postroom would write.
KEPT_HEADERS: frozenset[str] = frozenset({"message-id", "date"})

MAX_MESSAGE_ID = 255  # the messages.rfc_message_id column
# RFC 5322 §3.6.4 msg-id in its dot-atom form: "<" id-left "@" id-right ">", printable
# ASCII without specials that would break the brackets.
_MSG_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")

# RFC 5322 §2.2: a line is at most 998 octets; the name and ": " share it with the value.
MAX_LINE_CHARS = 998
# A name this short leaves room on a 78-character line for ": " and a folded value.
MAX_NAME_CHARS = 76

# ftext (RFC 5322 §3.6.8): printable ASCII except the colon.
_NAME = re.compile(rf"[\x21-\x39\x3b-\x7e]{{1,{MAX_NAME_CHARS}}}")

# Characters that could end a header line or that mail software treats as one: C0 controls
# except TAB (CR, LF, NUL among them), DEL, C1 controls (NEL \x85 included) and the Unicode
# line/paragraph separators (Python's ``str.splitlines`` — and so ``email`` — breaks there);
# also lone surrogates, which cannot be encoded at all.
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")

# Names are echoed in error messages; a hostile name must not bloat the response.
_SHOWN_NAME_CHARS = 80


def is_header_text(value: str) -> bool:
    """True if ``value`` can be placed in a header (after RFC 2047 encoding) without
    creating a new line: no CR, LF, NUL or other control or line-separator character.

    Used for every string that ends up in a header: subject, display names, filenames.
    """
    return _UNSAFE.search(value) is None


def check_header(name: str, value: str) -> str | None:
    """The contract error for a client header ``name: value``, or None if it is acceptable.

    Callers drop :data:`IGNORED_HEADERS` before calling this.
    """
    if _NAME.fullmatch(name) is None:
        return f"header name '{_shown(name)}' is invalid"
    if name.lower() in RESERVED_HEADERS:
        return f"header '{name}' is reserved"
    if not is_header_text(value):
        return f"header '{name}' contains invalid characters"
    if len(name) + 2 + len(value) > MAX_LINE_CHARS:
        return f"header '{name}' is too long"
    return None


def parse_message_id(value: str) -> str | None:
    """The msg-id ``<left@right>`` of a Message-ID value (edge space removed), or None."""
    text = value.strip()
    if len(text) > MAX_MESSAGE_ID or _MSG_ID.fullmatch(text) is None:
        return None
    return text


def parse_date(value: str) -> datetime | None:
    """The instant of an RFC 5322 date (``Tue, 10 Mar 2026 09:00:00 +0000``), or None.

    ``-0000`` (no zone information, RFC 5322 §3.3) gives a naive datetime, which the
    serializer writes back as ``-0000``.
    """
    text = value.strip()
    if not text or len(text) > 100 or not is_header_text(text):
        return None
    try:
        parsed = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if 1900 <= parsed.year <= 9999 else None


def _shown(name: str) -> str:
    """``name`` cut to a length fit for an error message."""
    if len(name) <= _SHOWN_NAME_CHARS:
        return name
    return name[:_SHOWN_NAME_CHARS] + "..."
