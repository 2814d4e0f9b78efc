"""Checks on a finished message's bytes, made before it is accepted or parsed.

SMTP clients (submission) and remote MTAs (the inbound listener) hand Postroom finished
RFC 5322 messages. What these checks refuse is refused for good, with a 5xx reply that
names the problem and the line, because a 250 would be a promise Postroom cannot keep:

* **Unsendable bytes** (``554 5.6.0``): NUL, a bare CR or a bare LF, or a line over 998
  octets. Delivery sends only strict CRLF lines of at most 998 octets without NUL
  (:func:`postroom.mta.session.prepare_message`, RFC 5321 §2.3.8 and §4.5.3.1.6); a
  message accepted with them would fail at every attempt.
* **Header section too large** (``552 5.3.4``): more than ``max_header_fields`` fields or
  more than ``max_header_bytes`` bytes (Postfix's ``header_size_limit``, 100 KiB).
* **MIME nested too deeply** (``554 5.6.0``): more than ``max_mime_depth`` containers
  (multipart and ``message/*`` parts) inside each other (Postfix's
  ``mime_nesting_limit``, 100). The stdlib parser and what walks its result recurse per
  level and fail near 1,000 levels; :func:`mime_depth` counts the levels with a cheap
  scan of the header blocks and boundary lines, without parsing, so nothing deeper than
  the limit ever reaches a parser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

__all__ = ["RawLimits", "Unacceptable", "check_raw", "mime_depth", "unsendable"]

MAX_LINE = 998  # RFC 5322 §2.1.1 / RFC 5321 §4.5.3.1.6, CRLF excluded


@dataclass(frozen=True, slots=True)
class RawLimits:
    max_header_fields: int = 1000
    max_header_bytes: int = 102_400
    max_mime_depth: int = 100


class Unacceptable(ValueError):
    """A message refused for good; ``reply`` is the SMTP reply that says why."""

    def __init__(self, code: int, enhanced: str, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.enhanced = enhanced
        self.text = text

    @property
    def reply(self) -> str:
        return f"{self.code} {self.enhanced} {self.text}"


_BARE = re.compile(rb"(?<!\r)\n|\r(?!\n)")


def has_bare_eol(data: bytes) -> bool:
    """Whether ``data`` holds a CR not followed by LF or an LF not preceded by CR.

    Three counts in C rather than a look-around regex over every byte: the counts of CR,
    LF and CRLF are equal exactly when every CR and every LF belongs to a CRLF.
    """
    pairs = data.count(b"\r\n")
    return data.count(b"\r") != pairs or data.count(b"\n") != pairs


def _line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def unsendable(raw: bytes) -> str | None:
    """Why delivery could not send these bytes (NUL, bare CR/LF, long line), or None."""
    nul = raw.find(b"\0")
    if nul >= 0:
        return f"NUL character in line {_line_of(raw, nul)}"
    if has_bare_eol(raw):  # the regular expression runs only to say where
        bare = _BARE.search(raw)
        assert bare is not None
        what = "LF" if bare.group() == b"\n" else "CR"
        return f"bare {what} (not part of CRLF) in line {_line_of(raw, bare.start())}"
    if len(raw) > MAX_LINE:
        for number, line in enumerate(raw.split(b"\r\n"), 1):
            if len(line) > MAX_LINE:
                return f"line {number} is longer than {MAX_LINE} octets"
    return None


# One header field with its folded continuation lines (a loose ftext name, as parsers read).
_FIELD = re.compile(rb"[^\s:][^:\r\n]*:[^\r\n]*(?:\r?\n[ \t][^\r\n]*)*\r?\n")
_FIELDS = re.compile(rb"(?:" + _FIELD.pattern + rb")*")


def _header_block(raw: bytes, start: int) -> tuple[int, int]:
    """Where the header block at ``start`` ends, and where its entity's body starts."""
    found = _FIELDS.match(raw, start)
    end = found.end() if found else start
    if raw.startswith(b"\r\n", end):
        return end, end + 2
    if raw.startswith(b"\n", end):
        return end, end + 1
    return end, end  # no blank line: the body starts at the first line that is no field


def header_section(raw: bytes) -> tuple[int, int]:
    """The top-level header section's field count and size in bytes."""
    end, _ = _header_block(raw, 0)
    return len(_FIELD.findall(raw, 0, end)), end


_CONTENT_TYPE = re.compile(rb"(?im)^content-type[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)")
_BOUNDARY = re.compile(rb'(?i)(?:^|;)[ \t]*boundary[ \t]*=[ \t]*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


def _container(block: bytes) -> bytes | None | Literal[False]:
    """What an entity with these headers contains: a multipart's delimiter (``--B``),
    ``None`` for a nested message (``message/*``), ``False`` for a leaf."""
    found = _CONTENT_TYPE.search(block)
    if found is None:
        return False
    value = re.sub(rb"\r?\n", b"", found.group(1))
    kind = value.split(b";", 1)[0].strip().lower()
    if kind.startswith(b"message/") and kind != b"message/delivery-status":
        return None
    if not kind.startswith(b"multipart/"):
        return False
    boundary = _BOUNDARY.search(value.split(b";", 1)[1] if b";" in value else b"")
    if boundary is None:
        return False  # a multipart without a boundary is read as one text part
    return b"--" + (boundary.group(1) or boundary.group(2) or b"")


def mime_depth(raw: bytes, limit: int) -> int:
    """How deeply MIME containers nest (a text message: 0); stops counting past ``limit``.

    Follows the parser's reading: a header block says whether its entity is a multipart
    (its boundary opens a level) or a ``message/*`` (the next header block is one level
    down); a delimiter line of an open multipart closes every level opened inside it.
    Only delimiter candidates (lines starting with ``--``) and header blocks are looked
    at, so the cost grows with the parts, not the bytes.
    """
    stack: list[bytes | None] = []  # open containers, outermost first
    deepest = 0
    pos = 0
    while True:
        end, body = _header_block(raw, pos)
        inside = _container(raw[pos:end])
        if inside is not False:
            stack.append(inside)
            deepest = max(deepest, len(stack))
            if deepest > limit:
                return deepest
            if inside is None:  # a nested message: its headers start the body
                pos = body
                continue
        next_part = _next_part(raw, body, stack)
        if next_part is None:
            return deepest
        pos = next_part


def _next_part(raw: bytes, pos: int, stack: list[bytes | None]) -> int | None:
    """Where the next part's header block starts, closing what the delimiters close."""
    while True:
        if raw.startswith(b"--", pos):
            start = pos
        else:
            found = raw.find(b"\n--", pos)
            if found < 0:
                return None
            start = found + 1
        eol = raw.find(b"\n", start)
        line_end = len(raw) if eol < 0 else eol
        line = raw[start:line_end].rstrip(b"\r").rstrip(b" \t")
        pos = line_end + 1
        for level in range(len(stack) - 1, -1, -1):
            delimiter = stack[level]
            if delimiter is None or not line.startswith(delimiter):
                continue
            rest = line[len(delimiter) :]
            if rest == b"":
                del stack[level + 1 :]
                return pos
            if rest == b"--":
                del stack[level:]
                break
        if eol < 0 or not stack:
            return None


def check_raw(raw: bytes, limits: RawLimits) -> None:
    """Raise :class:`Unacceptable` when the message cannot be accepted as it is."""
    problem = unsendable(raw)
    if problem is not None:
        raise Unacceptable(554, "5.6.0", f"Message refused: {problem}")
    fields, size = header_section(raw)
    if fields > limits.max_header_fields:
        raise Unacceptable(
            552,
            "5.3.4",
            f"Message header too large: {fields} header fields "
            f"(at most {limits.max_header_fields})",
        )
    if size > limits.max_header_bytes:
        raise Unacceptable(
            552,
            "5.3.4",
            f"Message header too large: {size} bytes (at most {limits.max_header_bytes})",
        )
    depth = mime_depth(raw, limits.max_mime_depth)
    if depth > limits.max_mime_depth:
        raise Unacceptable(
            554,
            "5.6.0",
            f"Message refused: MIME parts nested more than {limits.max_mime_depth} levels deep",
        )
