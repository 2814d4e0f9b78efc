"""MIME serializer: turns a :class:`MessageDraft` into the RFC 5322 bytes we store and relay.

Why our own: ``email.message.EmailMessage`` costs ~1.6 ms per message (header objects,
policy look-ups, the refolding machinery), which dominates the send path. The drafts we
serialize are narrow — a fixed header set, text/html, attachments — so assembling the bytes
directly is an order of magnitude faster while still following RFC 5322, RFC 2045-2049,
RFC 2047 and RFC 2231. ``bench/mime.py`` measures both on the same message.

Documented choices:

* Line endings are CRLF only; text and html bodies have theirs normalised (CRLF, lone CR
  and lone LF all become CRLF) and get a final line break when they lack one, as the stdlib
  does. Empty strings count as absent bodies.
* Text parts are 7bit when that is safe (ASCII, lines <= 76, no trailing white space, no
  NUL), quoted-printable otherwise; attachments are always base64.
* Non-ASCII in the Subject, display names and custom header values becomes RFC 2047
  encoded-words (UTF-8, B encoding). The Subject round-trips exactly (edge white space and
  literal ``=?`` included); custom header values are stripped of edge white space and ASCII
  words pass verbatim, so structured values (List-Unsubscribe, ...) and values already
  encoded by the client (the Mailtrap contract asks clients to do so) survive intact.
  A custom Reply-To that is ASCII passes verbatim too; a non-ASCII one is parsed as an
  address list and re-encoded.
* Non-ASCII domains are converted to IDNA (Python's ``idna`` codec). A non-ASCII local part
  cannot be represented in 7-bit headers: it is emitted as raw UTF-8 (RFC 6532), which only
  SMTPUTF8-capable receivers accept.
* Validation happens upstream, but CR, LF or NUL in anything that reaches a header raises
  ``ValueError`` here: the serializer never emits an injected header. So do custom headers
  that would duplicate a header we own (From, To, Cc, Bcc, Subject, Date, Message-ID,
  MIME-Version, Content-Type, Content-Transfer-Encoding, Content-Disposition, Content-ID),
  except Reply-To, which replaces ``draft.reply_to``; so do unusable addresses, message
  ids and content ids, and header names that are not RFC 5322 field names (or over 76
  characters). Header lines aim at 78 characters and never exceed 998 octets.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
from collections.abc import Sequence
from datetime import datetime
from email.utils import format_datetime, getaddresses
from urllib.parse import quote

from postroom.domain.messages import Address, Attachment, MessageDraft

__all__ = ["build_message", "make_message_id", "quoted_printable"]

_CRLF = b"\r\n"
_FOLD_AT = 78  # RFC 5322 2.1.1: lines SHOULD stay within 78 characters
_BODY_LINE = 76  # RFC 2045 6.7/6.8: encoded body lines are at most 76 characters
_MAX_WORD = 900  # a plain word longer than this could break the 998-octet MUST: encode it
_MAX_SEP = 40  # longer white-space runs go inside an encoded-word, never at a line start
_MAX_ADDR = 900  # same reason for addr-specs (RFC 5321 caps real ones at 254 anyway)
_MAX_FIELD_NAME = 76
_EW_MAX = 75  # RFC 2047 2: an encoded-word is at most 75 characters
_EW_OVERHEAD = len("=?utf-8?b??=")
_EW_MIN = _EW_OVERHEAD + 8  # room for one 4-byte character (8 base64 characters)
# a display name's encoded-words fit any line, even after "Reply-To: " (10 + 12 + 56 = 78)
_NAME_EW_BYTES = (_FOLD_AT - len("Reply-To: ") - _EW_OVERHEAD) // 4 * 3

_FORBIDDEN = re.compile("[\r\n\x00]")
_WSP_SPLIT = re.compile(r"([ \t]+)")
_PHRASE_PIECES = re.compile(r"[ \t]*[^ \t]+|[ \t]+")  # each word with the white space before it
_VCHARS = re.compile(r"[!-~]+")
_QUOTABLE = re.compile(r"[\t -~]+")  # quoted-string content: printable ASCII and WSP
_QUOTABLE_UTF8 = re.compile(r"[ -~\u00a0-\U0010ffff]+")  # RFC 6532 quoted-string content
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext: printable ASCII except ':'
_ATEXT = r"A-Za-z0-9!#$%&'*+\-/=?^_`{|}~"
_ATOM_PHRASE = re.compile(rf"[{_ATEXT}]+(?: [{_ATEXT}]+)*")
_DOT_ATOM = re.compile(rf"[{_ATEXT}]+(?:\.[{_ATEXT}]+)*")
# RFC 6532 extends atext with every non-ASCII character
_UTF8_DOT_ATOM = re.compile(rf"[{_ATEXT}\u0080-\U0010ffff]+(?:\.[{_ATEXT}\u0080-\U0010ffff]+)*")
_QUOTED_STRING = re.compile(r'"(?:[ !#-\[\]-~\u0080-\U0010ffff]|\\[ -~])*"')
_DOMAIN_LITERAL = re.compile(r"\[[!-Z^-~]*\]")
_ID_PART = re.compile(r"[!-;=?A-~]+")  # VCHAR without < > @
_MESSAGE_ID = re.compile(r"<[!-;=?A-~]+@[!-;=?A-~]+>")
_TOKEN = r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+"  # RFC 2045 token
_MIMETYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_PLAIN_FILENAME = re.compile(r"[ !#-\[\]-~]{1,200}")  # printable ASCII without " and \
_RFC2231_SAFE = "!#$&+^`|"  # attribute-chars that urllib.parse.quote escapes by default

_RESERVED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "content-transfer-encoding",
        "content-disposition",
        "content-id",
    }
)

# A part under construction: its header lines (each ending in CRLF) and its body.
_Part = tuple[list[str], bytes]


def make_message_id(domain: str, unique: str) -> str:
    """Return ``<unique@domain>``; a non-ASCII domain is converted to IDNA."""
    host = _idna(_reject_breaks(domain, "message-id domain"))
    _reject_breaks(unique, "message-id")
    if not _DOT_ATOM.fullmatch(unique) or not _DOT_ATOM.fullmatch(host):
        raise ValueError(f"not a valid message-id: {unique!r}@{domain!r}")
    return f"<{unique}@{host}>"


def build_message(
    draft: MessageDraft,
    *,
    message_id: str,
    date: datetime,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """Serialize ``draft`` to RFC 5322 bytes (CRLF line endings, never a Bcc header)."""
    reply_to, custom = _split_custom_headers((*draft.headers, *extra_headers))
    lines = [_shared_address_header("From", (draft.sender,))]
    if draft.to:
        # Mostly one per message (a batch's requests name their own recipients): not cached.
        lines.append(_address_header("To", draft.to))
    if draft.cc:
        lines.append(_shared_address_header("Cc", draft.cc))
    if reply_to is not None:
        lines.append(_reply_to_header(reply_to))
    elif draft.reply_to is not None:
        lines.append(_shared_address_header("Reply-To", (draft.reply_to,)))
    lines.append(_unstructured_header("Subject", draft.subject, exact=True))
    lines.append(_date_header(date.isoformat(timespec="seconds")))
    lines.append(f"Message-ID: {_message_id(message_id)}\r\n")
    lines.append("MIME-Version: 1.0\r\n")
    lines.extend(_unstructured_header(name, value, exact=False) for name, value in custom)

    part_headers, body = _body(draft)
    lines.extend(part_headers)
    head = "".join(lines).encode("utf-8")  # UTF-8 only ever comes from RFC 6532 local parts
    if body and not body.endswith(_CRLF):
        return b"".join((head, _CRLF, body, _CRLF))
    return b"".join((head, _CRLF, body))


# --- validation -----------------------------------------------------------------------------


def _reject_breaks(value: str, what: str) -> str:
    # The last line of defence against header injection: upstream validation should have
    # refused these already, so failing loudly here beats emitting a forged header.
    if _FORBIDDEN.search(value):
        raise ValueError(f"{what} contains CR, LF or NUL: {value!r}")
    return value


@functools.lru_cache(maxsize=256)
def _split_custom_headers(
    headers: tuple[tuple[str, str], ...],
) -> tuple[str | None, tuple[tuple[str, str], ...]]:
    """Validate custom headers; pull out a Reply-To (it replaces ``draft.reply_to``).

    Cached, like the header lines below: see :data:`_shared_address_header`."""
    reply_to: str | None = None
    custom: list[tuple[str, str]] = []
    for name, value in headers:
        _reject_breaks(name, "header name")
        _reject_breaks(value, f"header {name!r}")
        if not _FIELD_NAME.fullmatch(name) or len(name) > _MAX_FIELD_NAME:
            raise ValueError(f"not a valid header name: {name!r}")
        lower = name.lower()
        if lower == "reply-to":
            if reply_to is not None:
                raise ValueError("Reply-To given twice")
            reply_to = value
        elif lower in _RESERVED:
            raise ValueError(f"header {name!r} is set by the serializer")
        else:
            custom.append((name, value))
    return reply_to, tuple(custom)


def _message_id(message_id: str) -> str:
    """``<left@right>``; the angle brackets are added when missing."""
    _reject_breaks(message_id, "message-id")
    if not message_id.startswith("<"):
        message_id = f"<{message_id}>"
    if not _MESSAGE_ID.fullmatch(message_id) or len(message_id) > _MAX_ADDR:
        raise ValueError(f"not a valid message-id: {message_id!r}")
    return message_id


def _idna(domain: str) -> str:
    if domain.isascii():
        return domain
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"domain cannot be converted to IDNA: {domain!r}") from exc


# --- header folding ---------------------------------------------------------------------------


class _Header:
    """One header field being folded: tokens are never split, folds go before white space."""

    __slots__ = ("parts", "col", "empty")

    def __init__(self, name: str) -> None:
        self.parts = [name, ":"]
        self.col = len(name) + 1
        self.empty = True  # never fold straight after the colon: parsers keep that blank

    def room(self, sep: str) -> int:
        """Characters left for a token placed after ``sep``, on this line or a fresh one."""
        room = _FOLD_AT - self.col - len(sep)
        return room if self.empty or room >= _EW_MIN else _FOLD_AT - len(sep)

    def add(self, sep: str, token: str, width: int | None = None) -> None:
        """Append ``sep`` (non-empty white space) and ``token``, folding first if needed."""
        width = len(token) if width is None else width
        if not self.empty and self.col + len(sep) + width > _FOLD_AT:
            self.parts.append("\r\n")  # the fold: CRLF before white space (RFC 5322 2.2.3)
            self.col = 0
        self.parts.append(sep)
        self.parts.append(token)
        self.col += len(sep) + width
        self.empty = False

    def done(self) -> str:
        self.parts.append("\r\n")
        return "".join(self.parts)


def _add_encoded(h: _Header, sep: str, text: str) -> None:
    """Add ``text`` as B encoded-words, each fitting its line and <= 75 characters."""
    data = text.encode("utf-8")
    pos, end = 0, len(data)
    while pos < end:
        room = min(h.room(sep), _EW_MAX)
        size = max((room - _EW_OVERHEAD) // 4 * 3, 4)  # 4 bytes: always one whole character
        cut = end
        if pos + size < end:
            cut = pos + size
            while data[cut] & 0xC0 == 0x80:  # never split a multibyte character (RFC 2047 5)
                cut -= 1
        h.add(sep, _encoded_word(data[pos:cut]))
        pos = cut
        sep = " "  # white space between adjacent encoded-words is not part of the text


@functools.lru_cache(maxsize=64)
def _date_header(stamp: str) -> str:
    """The Date header line for an ISO time to the second. A batch stamps hundreds of
    messages with the same second and ``format_datetime`` is slow, so each second is
    formatted once. The key is the ISO text, offset included: equal instants in two time
    zones compare (and hash) equal as datetimes but are written differently."""
    return f"Date: {format_datetime(datetime.fromisoformat(stamp))}\r\n"


@functools.lru_cache(maxsize=512)
def _unstructured_header(name: str, value: str, *, exact: bool) -> str:
    """Subject or a custom header: plain ASCII words verbatim, the others encoded.

    ``exact`` (the Subject) also encodes edge white space and words containing ``=?`` so
    the decoded value is exactly ``value``; otherwise those are stripped / kept verbatim.
    """
    h = _Header(name)
    _reject_breaks(value, name)
    if not exact:
        value = value.strip(" \t")
    parts = _WSP_SPLIT.split(value)
    words, seps = parts[0::2], parts[1::2]
    encode = [not _is_plain_word(w, exact) for w in words]
    if len(words) > 1:
        # parsers drop white space at either end: only an encoded-word keeps it
        if words[0] == "":
            encode[1] = True
        if words[-1] == "":
            encode[-2] = True
    for i, sep in enumerate(seps):
        if len(sep) > _MAX_SEP:
            encode[i] = encode[i + 1] = True
    if len(words) == 1 and words[0] == "":
        encode[0] = False  # empty value: nothing to add

    sep, i, n = " ", 0, len(words)
    while i < n:
        j = i
        if encode[i]:
            while j + 1 < n and encode[j + 1]:
                j += 1
            text = "".join(w + s for w, s in zip(words[i:j], seps[i:j], strict=True)) + words[j]
            _add_encoded(h, sep, text)
        elif words[i]:
            h.add(sep, words[i])
        sep = seps[j] if j < n - 1 else " "
        i = j + 1
    return h.done()


def _is_plain_word(word: str, exact: bool) -> bool:
    return (
        len(word) <= _MAX_WORD
        and _VCHARS.fullmatch(word) is not None
        # a literal "=?" could be decoded as an encoded-word by the reader
        and not (exact and "=?" in word)
    )


# --- addresses --------------------------------------------------------------------------------


def _address_header(name: str, addresses: Sequence[Address]) -> str:
    h = _Header(name)
    last = len(addresses) - 1
    for i, address in enumerate(addresses):
        _add_mailbox(h, address.name, address.email, "," if i < last else "")
    return h.done()


@functools.lru_cache(maxsize=256)
def _reply_to_header(value: str) -> str:
    """A custom Reply-To: ASCII passes verbatim, otherwise it is parsed and re-encoded."""
    mailboxes = getaddresses([value])
    if not mailboxes or any("@" not in email for _, email in mailboxes):
        raise ValueError(f"not a valid Reply-To: {value!r}")
    if value.isascii():  # possibly encoded by the client already: keep it as it is
        return _unstructured_header("Reply-To", value, exact=False)
    h = _Header("Reply-To")
    for i, (display, email) in enumerate(mailboxes):
        _add_mailbox(h, display, email, "," if i < len(mailboxes) - 1 else "")
    return h.done()


# The messages of a batch (its ``base``, or requests repeating the same fields) and of a
# template's sends share their From, Cc, Reply-To, Subject and custom headers. Each line is
# a pure function of its hashable arguments (strings, frozen Address tuples), so these
# bounded caches fold and encode it once: ~25 µs less per batch message (bench/ingest.py),
# the same bytes (tests/unit/test_mime.py compares them with the uncached functions).
# Errors are never cached: an invalid value raises again on every call.
_shared_address_header = functools.lru_cache(maxsize=256)(_address_header)


def _add_mailbox(h: _Header, name: str, email: str, trailer: str) -> None:
    spec = _addr_spec(email)
    if name:
        _add_phrase(h, _reject_breaks(name, "display name"))
        spec = f"<{spec}>"
    spec += trailer
    h.add(" ", spec, len(spec) if spec.isascii() else len(spec.encode("utf-8")))


def _add_phrase(h: _Header, name: str) -> None:
    """A display name: atoms as they are, quoted-string if needed, else encoded-words."""
    if "=?" not in name and len(name) <= _MAX_WORD:
        if _ATOM_PHRASE.fullmatch(name):
            for word in name.split(" "):
                h.add(" ", word)
            return
        if len(name) <= _BODY_LINE and _QUOTABLE.fullmatch(name):
            # specials (, ; " ...) need a quoted-string; only \ and " are escaped in it
            h.add(" ", '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"')
            return
    # non-ASCII, control characters, very long names, or a literal "=?" (readers would
    # decode it, even inside a quoted-string)
    _add_encoded_phrase(h, name)


def _add_encoded_phrase(h: _Header, name: str) -> None:
    """Encoded-words for a display name, cut where the name has white space if possible.

    RFC 2047 readers drop the white space between adjacent encoded-words, but some (the
    stdlib's phrase parser among them) keep a space there. So a name that fits is a single
    encoded-word, and longer ones are cut before their white space, where the extra space
    such readers add is harmless; only a word over _NAME_EW_BYTES is cut inside.
    """
    chunks: list[bytes] = []
    current = b""
    for piece in _PHRASE_PIECES.findall(name):
        data = piece.encode("utf-8")
        if len(current) + len(data) <= _NAME_EW_BYTES:
            current += data
            continue
        if current:
            chunks.append(current)
        while len(data) > _NAME_EW_BYTES:
            cut = _NAME_EW_BYTES
            while data[cut] & 0xC0 == 0x80:  # never split a multibyte character
                cut -= 1
            chunks.append(data[:cut])
            data = data[cut:]
        current = data
    chunks.append(current)
    for chunk in chunks:
        h.add(" ", _encoded_word(chunk))


def _encoded_word(data: bytes) -> str:
    return f"=?utf-8?b?{base64.b64encode(data).decode('ascii')}?="


def _addr_spec(email: str) -> str:
    _reject_breaks(email, "address")
    local, at, domain = email.rpartition("@")
    if not (at and local and domain):
        raise ValueError(f"not an address: {email!r}")
    domain = _idna(domain)
    if not (_DOT_ATOM.fullmatch(domain) or _DOMAIN_LITERAL.fullmatch(domain)):
        raise ValueError(f"not a valid domain: {email!r}")
    if not (_UTF8_DOT_ATOM.fullmatch(local) or _QUOTED_STRING.fullmatch(local)):
        if not _QUOTABLE_UTF8.fullmatch(local):
            raise ValueError(f"not a valid local part: {email!r}")
        local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
    spec = f"{local}@{domain}"
    if len(spec.encode("utf-8")) > _MAX_ADDR:
        raise ValueError(f"address too long: {email!r}")
    return spec


# --- body -------------------------------------------------------------------------------------


def _body(draft: MessageDraft) -> _Part:
    """Pick the structure: alternative > related > mixed, as the draft requires."""
    text, html = draft.text or None, draft.html or None
    stem = secrets.token_hex(12)
    # Boundaries contain "=_", which QP and base64 output never do; only 7bit text could
    # contain one, so a stem found in a body is simply drawn again.
    while (text and stem in text) or (html and stem in html):
        stem = secrets.token_hex(12)

    inline = [a for a in draft.attachments if html and a.disposition == "inline"]
    mixed = [a for a in draft.attachments if not (html and a.disposition == "inline")]

    part: _Part
    if html:
        part = _text_part("html", html)
        if inline:
            part = _multipart(
                "related",
                f"=_pr_{stem}_r",
                [part, *map(_attachment_part, inline)],
                'type="text/html"',
            )
        if text:
            part = _multipart("alternative", f"=_pr_{stem}_a", [_text_part("plain", text), part])
    else:
        part = _text_part("plain", text or "")
    if mixed:
        part = _multipart("mixed", f"=_pr_{stem}_m", [part, *map(_attachment_part, mixed)])
    return part


def _multipart(subtype: str, boundary: str, parts: list[_Part], param: str = "") -> _Part:
    h = _Header("Content-Type")
    h.add(" ", f"multipart/{subtype};")
    if param:
        h.add(" ", param + ";")
    h.add(" ", f'boundary="{boundary}"')
    delimiter = b"--" + boundary.encode("ascii")
    chunks: list[bytes] = []
    for headers, body in parts:
        # the CRLF before each delimiter belongs to the delimiter (RFC 2046 5.1.1)
        chunks += (delimiter, _CRLF, "".join(headers).encode("ascii"), _CRLF, body, _CRLF)
    chunks += (delimiter, b"--")
    return [h.done()], b"".join(chunks)


def _text_part(subtype: str, text: str) -> _Part:
    headers, body = _encoded_text(subtype, text)
    return list(headers), body


# A batch repeats its base bodies in every message, and a template renders the same body
# for many recipients: encoding each distinct body once makes those sends cheap. Keys
# are the (hashed-once) body strings; the cache is bounded.
@functools.lru_cache(maxsize=256)
def _encoded_text(subtype: str, text: str) -> tuple[tuple[str, ...], bytes]:
    if "\r" in text:  # normalise line endings to LF here, CRLF on output
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    if _is_7bit_safe(text):
        cte, body = "7bit", text.replace("\n", "\r\n").encode("ascii")
    else:
        cte, body = "quoted-printable", _quoted_printable(text.encode("utf-8"))
    headers = (
        f"Content-Type: text/{subtype}; charset=utf-8\r\n",
        f"Content-Transfer-Encoding: {cte}\r\n",
    )
    return headers, body


def _is_7bit_safe(text: str) -> bool:
    """ASCII, short lines, no NUL, and no trailing white space (relays may strip it)."""
    # str methods, not a regex: "[^\n]{77}" backtracks at every position (~10x slower)
    return (
        text.isascii()
        and "\x00" not in text
        and " \n" not in text
        and "\t\n" not in text
        and max(map(len, text.split("\n"))) <= _BODY_LINE
    )


def quoted_printable(text: str, charset: str = "utf-8") -> bytes:
    """``text`` encoded in ``charset`` as a quoted-printable body with CRLF line breaks."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if text and not text.endswith("\n"):
        text += "\n"
    return _quoted_printable(text.encode(charset))


def _quoted_printable(data: bytes) -> bytes:
    """QP of LF-terminated ``data`` with CRLF line breaks and lines of at most 76 characters.

    binascii.b2a_qp does the byte work in C but turns white space before a line break into
    ``=20`` after deciding the line fits, producing 77-78 character lines: those (and only
    those) get an extra soft break before that final escape.
    """
    out = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    if b" \n" in data or b"\t\n" in data:
        lines = out.split(b"\n")
        for i, line in enumerate(lines):
            if len(line) > _BODY_LINE:
                lines[i] = line[:-3] + b"=\n" + line[-3:]
        out = b"\n".join(lines)
    return out.replace(b"\n", _CRLF)  # the input has no CR, so every LF is a line break


def _attachment_part(attachment: Attachment) -> _Part:
    filename = _reject_breaks(attachment.filename, "filename")
    if attachment.disposition not in ("attachment", "inline"):  # typed, but not enforced
        raise ValueError(f"not a valid disposition: {attachment.disposition!r}")
    mimetype = attachment.mimetype
    if not _MIMETYPE.fullmatch(mimetype):
        mimetype = "application/octet-stream"
    headers = [
        _parameter_header("Content-Type", mimetype, _filename_params("name", filename)),
        "Content-Transfer-Encoding: base64\r\n",
        _parameter_header(
            "Content-Disposition", attachment.disposition, _filename_params("filename", filename)
        ),
    ]
    if attachment.content_id is not None:
        headers.append(f"Content-ID: {_content_id(attachment.content_id)}\r\n")
    encoded = base64.b64encode(attachment.content)
    body = _CRLF.join([encoded[i : i + _BODY_LINE] for i in range(0, len(encoded), _BODY_LINE)])
    return headers, body


def _content_id(content_id: str) -> str:
    cid = _reject_breaks(content_id, "content_id")
    if cid.startswith("<") and cid.endswith(">"):
        cid = cid[1:-1]
    if not _ID_PART.fullmatch(cid.replace("@", "")) or len(cid) > _MAX_ADDR:
        raise ValueError(f"not a valid content_id: {content_id!r}")
    return f"<{cid}>"


def _parameter_header(name: str, value: str, params: list[str]) -> str:
    h = _Header(name)
    tokens = [value, *params]
    for i, token in enumerate(tokens):
        h.add(" ", token + ";" if i < len(tokens) - 1 else token)
    return h.done()


def _filename_params(attribute: str, filename: str) -> list[str]:
    """``attribute="plain"``, or RFC 2231 ``attribute*=utf-8''...`` with continuations.

    Printable ASCII names up to 200 characters stay a plain quoted-string even past 78
    characters: that is what readers without RFC 2231 support understand.
    """
    if not filename:
        return []
    if _PLAIN_FILENAME.fullmatch(filename):
        return [f'{attribute}="{filename}"']
    encoded = quote(filename, safe=_RFC2231_SAFE)
    if len(encoded) <= 50:
        return [f"{attribute}*=utf-8''{encoded}"]
    # Continuations keep lines short; each section ends on a character boundary because
    # readers (the stdlib included) decode every section on its own.
    sections: list[str] = []
    current = "utf-8''"
    for char in filename:
        piece = quote(char, safe=_RFC2231_SAFE)
        if len(current) + len(piece) > 50:
            sections.append(current)
            current = ""
        current += piece
    sections.append(current)
    return [f"{attribute}*{i}*={section}" for i, section in enumerate(sections)]
