"""Per-recipient copies of a stored message: its text parts replaced, every other byte kept.

A message is read once (:func:`text_leaves`): the MIME tree is walked over the raw bytes
(RFC 2046 §5.1.1 delimiters: ``CRLF--boundary`` at a line start, transport padding
allowed, ``--`` closing), each entity's header block read as the stdlib's compat32
header parser reads it (:func:`read_headers`: the same fields, without the parser's
per-call machinery, which was most of this module's cost), and the inline
``text/html`` and ``text/plain`` leaves decoded (7bit, 8bit, quoted-printable, base64;
any ASCII-compatible charset). A copy (:func:`splice`) puts new text in some leaves and
leaves every other byte where it was: headers, other parts, attachments, boundaries.
A replaced leaf is re-encoded in its charset, as base64 when it was base64 and
quoted-printable otherwise (its Content-Transfer-Encoding field is rewritten when that
changes it), so lines stay within RFC 5322's limits whatever URLs were put in. Leaves
that cannot be decoded, attached messages (``message/rfc822``) and attachments are
never touched.

The input is CRLF-only, as stored messages are (``domain.mime`` and ``domain.submitted``
make them so).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from postroom.domain.mime import quoted_printable
from postroom.domain.rawmail import has_bare_eol

_CRLF = b"\r\n"
_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_MAX_DEPTH = 20  # nesting of multiparts walked (the parser's own limit is far higher)
_BODY_LINE = 76
_UNSAFE_CHARSETS = ("utf-16", "utf-32", "utf-7")  # not ASCII-compatible: inserted URLs
# email.feedparser.headerRE's field alternative: a line starting so begins a field (an
# empty name, ":" first, is a defect the parser skips).
_FIELD_START = re.compile(rb"[\x21-\x39\x3b-\x7e]*:")
# The fields the walk reads (content type and its parameters, disposition, encoding).
_CONTENT_FIELDS = frozenset((b"content-type", b"content-disposition", b"content-transfer-encoding"))


@dataclass(frozen=True, slots=True)
class Leaf:
    """One inline text part: where its header block and body are, and its decoded text."""

    subtype: str  # "html" or "plain"
    header_start: int
    header_end: int  # the CRLF CRLF (or the lone CRLF of an empty header block) starts here
    body_start: int
    body_end: int
    cte: str
    charset: str
    text: str


def header_names(raw: bytes) -> set[str]:
    """Lower-case names of the fields in the message's own header block."""
    end = raw.find(_CRLF + _CRLF)
    block = raw[: end + 2] if end >= 0 else raw
    names = set()
    for line in block.split(_CRLF):
        if line[:1] not in (b" ", b"\t") and b":" in line:
            names.add(line.split(b":", 1)[0].strip().decode("ascii", "replace").lower())
    return names


def text_leaves(raw: bytes) -> list[Leaf]:
    """The inline text/html and text/plain leaves of ``raw`` that can be rewritten."""
    found: list[Leaf] = []
    _walk(raw, 0, len(raw), found, 0, top=True)
    return found


def splice(raw: bytes, replacements: Sequence[tuple[Leaf, str]]) -> bytes:
    """``raw`` with each leaf's body replaced by the new text (leaves in any order)."""
    pieces: list[bytes] = []
    at = 0
    for leaf, text in sorted(replacements, key=lambda item: item[0].header_start):
        cte, body = _encode(leaf, text)
        headers = raw[leaf.header_start : leaf.header_end]
        if cte != leaf.cte:
            headers = _set_cte(headers, cte)
        pieces += (raw[at : leaf.header_start], headers, raw[leaf.header_end : leaf.body_start])
        pieces.append(body)
        at = leaf.body_end
    pieces.append(raw[at:])
    return b"".join(pieces)


def prepend_headers(raw: bytes, fields: Sequence[tuple[str, str]]) -> bytes:
    """Header fields added above the message's own (values must be ASCII, pre-folded)."""
    added = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in fields)
    return added + raw


# --- reading ----------------------------------------------------------------------------


def _walk(raw: bytes, start: int, end: int, found: list[Leaf], depth: int, top: bool) -> None:
    if raw.startswith(_CRLF, start):
        header_end, body_start = start, start + 2  # no header fields at all
    else:
        split = raw.find(_CRLF + _CRLF, start, end)
        if split < 0:
            return
        header_end, body_start = split + 2, split + 4
    entity = _entity(raw[start:header_end])
    if entity.boundary is not None:
        if depth < _MAX_DEPTH:
            delimiter = entity.boundary.encode("latin-1")
            for part_start, part_end in _parts(raw, body_start, end, delimiter):
                _walk(raw, part_start, part_end, found, depth + 1, top=False)
        return
    if entity.subtype is None or entity.charset is None:
        return
    leaf = _leaf(raw, entity, start, header_end, body_start, end)
    if leaf is not None:
        found.append(leaf)


@dataclass(frozen=True, slots=True)
class _Entity:
    """What the walk needs from one header block."""

    boundary: str | None  # a multipart's (non-empty) boundary; None: not walked into
    subtype: str | None  # "html" or "plain" for an inline text leaf, else None
    cte: str
    charset: str | None  # the codec's name; None: unknown or not ASCII-compatible


@functools.lru_cache(maxsize=256)
def _entity(block: bytes) -> _Entity:
    """Read once per distinct header block: a message's parts carry the same few blocks
    (``Content-Type: text/html; charset=utf-8`` and its encoding), message after message,
    so most blocks of a round are read from this cache. A pure function of the bytes."""
    headers = read_headers(block, _CONTENT_FIELDS)
    kind = headers.get_content_type()
    if kind.startswith("multipart/"):
        boundary = headers.get_param("boundary")
        found = boundary if isinstance(boundary, str) and boundary else None
        return _Entity(found, None, "", None)
    if kind not in ("text/html", "text/plain") or headers.get_content_disposition() == "attachment":
        return _Entity(None, None, "", None)
    cte = str(headers.get("content-transfer-encoding", "7bit")).strip().lower()
    charset = headers.get_content_charset() or "us-ascii"
    try:
        name: str | None = codecs.lookup(charset).name
    except LookupError:
        name = None
    if name is not None and name.startswith(_UNSAFE_CHARSETS):
        name = None
    return _Entity(None, kind.split("/")[1], cte, name)


def read_headers(block: bytes, only: frozenset[bytes] | None = None) -> Message:
    """The fields of a header block, as ``BytesHeaderParser(policy=compat32)`` reads them
    (with ``only``, just the fields of those lower-case names, in the same order).

    The parser's rules (``email.feedparser``): fields are read up to the first line that
    is neither a field (``name:``), a continuation (space or tab first) nor a ``From ``
    line; ``From `` lines, a field with an empty name and continuations without a field
    before them are skipped; a value is the rest of its first line with leading blanks
    stripped, then its continuation lines with their line breaks, without the final one.
    A block with a CR or LF outside a CRLF (the parser breaks lines there too) goes to the
    parser itself. ``tests/unit/test_trackedmime_headers.py`` checks the two agree.
    """
    if has_bare_eol(block) or not block.endswith(_CRLF):
        parsed = _HEADER_PARSER.parsebytes(block)
        if only is None:
            return parsed
        message = Message(policy=compat32)
        for name, value in parsed.raw_items():
            if name.lower().encode("ascii", "surrogateescape") in only:
                message.set_raw(name, value)
        return message
    message = Message(policy=compat32)
    field: list[bytes] = []  # the current field's lines, each without its CRLF
    for line in block[:-2].split(_CRLF):
        if line[:1] in (b" ", b"\t"):
            if field:
                field.append(line)
            continue
        if field:
            _set_raw(message, field)
            field = []
        if line.startswith(b"From "):
            continue
        if _FIELD_START.match(line) is None:
            break  # the parser's "missing header/body separator": the rest is body
        if line[:1] != b":":
            field_name = line[: line.index(b":")]
            if only is None or field_name.lower() in only:
                field = [line]
    if field:
        _set_raw(message, field)
    return message


def _set_raw(message: Message, lines: list[bytes]) -> None:
    """compat32's ``header_source_parse``: the name as written, the value unfolded no
    further than the source is."""
    name, _, first = lines[0].partition(b":")
    value = _CRLF.join([first.lstrip(b" \t"), *lines[1:]]).rstrip(b"\r\n")
    text = value.decode("ascii", "surrogateescape")
    message.set_raw(name.decode("ascii"), text)


def _parts(raw: bytes, body_start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
    """(start, end) of each body part between the delimiters of ``boundary``."""
    delimiter = b"--" + boundary
    parts: list[tuple[int, int]] = []
    content_start: int | None = None
    search = max(body_start - 2, 0)  # a delimiter may follow the header block at once
    while True:
        i = raw.find(_CRLF + delimiter, search, end)
        if i < 0:
            return parts  # no close delimiter: the parts found so far
        after = i + 2 + len(delimiter)
        closing = raw.startswith(b"--", after)
        line_end = raw.find(_CRLF, after, end)
        padding = raw[after + 2 if closing else after : line_end if line_end >= 0 else end]
        if padding.strip(b" \t"):
            search = after  # "--boundary" followed by more text: not a delimiter line
            continue
        if content_start is not None:
            parts.append((content_start, i))
        if closing or line_end < 0:
            return parts
        content_start = line_end + 2
        search = line_end


def _leaf(
    raw: bytes, entity: _Entity, start: int, header_end: int, body_start: int, end: int
) -> Leaf | None:
    assert entity.subtype is not None and entity.charset is not None
    cte, name = entity.cte, entity.charset
    data = raw[body_start:end]
    try:
        if cte == "quoted-printable":
            data = binascii.a2b_qp(data)
        elif cte == "base64":
            data = base64.b64decode(data)
        elif cte not in ("7bit", "8bit", "binary"):
            return None
        text = data.decode(name)
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return None
    return Leaf(entity.subtype, start, header_end, body_start, end, cte, name, text)


# --- writing ----------------------------------------------------------------------------


def _encode(leaf: Leaf, text: str) -> tuple[str, bytes]:
    if leaf.cte == "base64":
        data = base64.b64encode(text.encode(leaf.charset))
        lines = [data[i : i + _BODY_LINE] for i in range(0, len(data), _BODY_LINE)]
        return "base64", _CRLF.join(lines) + _CRLF
    return "quoted-printable", quoted_printable(text, leaf.charset)


def _set_cte(block: bytes, cte: str) -> bytes:
    """A header block with its Content-Transfer-Encoding field (folded or not) replaced."""
    kept: list[bytes] = []
    skipping = False
    # A non-empty block ends with CRLF: the split's last item is empty.
    for line in block.split(_CRLF)[:-1]:
        if line[:1] in (b" ", b"\t") and skipping:
            continue
        skipping = line.split(b":", 1)[0].strip().lower() == b"content-transfer-encoding"
        if not skipping:
            kept.append(line)
    kept.append(f"Content-Transfer-Encoding: {cte}".encode("ascii"))
    return b"".join(line + _CRLF for line in kept)
