"""text_leaves finds what the walk found when each header block went through the stdlib's
header parser (the reference below is that walk), on generated MIME trees: nested
multiparts, charsets (unknown, not ASCII-compatible), encodings, attachments, odd fields."""

from __future__ import annotations

import base64
import binascii
import codecs
import quopri
from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain import trackedmime
from postroom.domain.trackedmime import Leaf

PARSER = BytesHeaderParser(policy=compat32)
CRLF = b"\r\n"


def reference(raw: bytes) -> list[Leaf]:
    found: list[Leaf] = []
    _walk(raw, 0, len(raw), found, 0)
    return found


def _walk(raw: bytes, start: int, end: int, found: list[Leaf], depth: int) -> None:
    if raw.startswith(CRLF, start):
        header_end, body_start = start, start + 2
    else:
        split = raw.find(CRLF + CRLF, start, end)
        if split < 0:
            return
        header_end, body_start = split + 2, split + 4
    headers = PARSER.parsebytes(raw[start:header_end])
    kind = headers.get_content_type()
    if kind.startswith("multipart/"):
        boundary = headers.get_param("boundary")
        if isinstance(boundary, str) and boundary and depth < 20:
            parts = trackedmime._parts(raw, body_start, end, boundary.encode("latin-1"))
            for part_start, part_end in parts:
                _walk(raw, part_start, part_end, found, depth + 1)
        return
    if kind not in ("text/html", "text/plain") or headers.get_content_disposition() == "attachment":
        return
    cte = str(headers.get("content-transfer-encoding", "7bit")).strip().lower()
    charset = headers.get_content_charset() or "us-ascii"
    try:
        name = codecs.lookup(charset).name
    except LookupError:
        return
    if name.startswith(("utf-16", "utf-32", "utf-7")):
        return
    data = raw[body_start:end]
    try:
        if cte == "quoted-printable":
            data = binascii.a2b_qp(data)
        elif cte == "base64":
            data = base64.b64decode(data)
        elif cte not in ("7bit", "8bit", "binary"):
            return
        text = data.decode(name)
    except (binascii.Error, ValueError):
        return
    found.append(Leaf(kind.split("/")[1], start, header_end, body_start, end, cte, name, text))


TYPES = ["text/plain", "text/html", "TEXT/HTML", "image/png", "message/rfc822", "text/csv"]
CHARSETS = [None, "utf-8", "UTF-8", "iso-8859-1", "utf-16", "cp037", "x-bogus", '"us-ascii"']
CTES = [None, "7bit", "Quoted-Printable", "base64", "x-uuencode", " 8bit "]
DISPOSITIONS = [None, "inline", "attachment", 'attachment; filename="a.txt"']
EXTRA = [b"X-Note: hi", b"From someone", b"Bad line", b" orphan continuation", b":empty"]
TEXT = st.text(st.sampled_from('ab <>"=.:/é€\t{}_'), max_size=60)


@st.composite
def leaf(draw: st.DrawFn) -> bytes:
    lines = []
    if draw(st.booleans()):
        lines.append(draw(st.sampled_from(EXTRA)))
    ctype, charset = draw(st.sampled_from(TYPES)), draw(st.sampled_from(CHARSETS))
    field = f"Content-Type: {ctype}" + (f"; charset={charset}" if charset else "")
    lines.append(field.encode("ascii"))
    cte, disposition = draw(st.sampled_from(CTES)), draw(st.sampled_from(DISPOSITIONS))
    if cte:
        lines.append(f"Content-Transfer-Encoding: {cte}".encode("ascii"))
    if disposition:
        lines.append(f"Content-Disposition: {disposition}".encode("ascii"))
    data = draw(TEXT).encode(draw(st.sampled_from(["utf-8", "latin-1", "utf-16"])), "replace")
    kind = (cte or "7bit").strip().lower()
    if kind == "base64":
        body = base64.encodebytes(data).replace(b"\n", CRLF)
    elif kind == "quoted-printable":
        body = quopri.encodestring(data).replace(b"\n", CRLF)
    else:
        body = data.replace(b"\r", b"").replace(b"\n", CRLF)
    return b"".join(x + CRLF for x in lines) + CRLF + body


def multipart(children: st.SearchStrategy[bytes]) -> st.SearchStrategy[bytes]:
    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        boundary = draw(st.sampled_from(["b1", "=_b 2", "b3"]))
        parts = draw(st.lists(children, max_size=3))
        fold = draw(st.sampled_from([" ", CRLF.decode() + " "]))
        head = f'Content-Type: multipart/mixed;{fold}boundary="{boundary}"'.encode("ascii")
        delimiter = b"--" + boundary.encode("ascii")
        body = b"".join(delimiter + CRLF + part + CRLF for part in parts)
        return head + CRLF + CRLF + body + delimiter + b"--" + CRLF

    return build()


TREES = st.recursive(leaf(), multipart, max_leaves=6)


@settings(max_examples=400, deadline=None)
@given(TREES)
def test_the_walk_finds_what_the_parser_based_walk_found(raw: bytes) -> None:
    assert trackedmime.text_leaves(raw) == reference(raw)
    assert trackedmime.text_leaves(raw) == reference(raw)  # again, from the header cache
