"""domain/rawmail.py: unsendable bytes, header section size, MIME depth without parsing."""

from __future__ import annotations

import re
from email import policy
from email.message import EmailMessage, Message
from email.parser import BytesParser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain.rawmail import (
    RawLimits,
    Unacceptable,
    check_raw,
    has_bare_eol,
    header_section,
    mime_depth,
    unsendable,
)

SMTP = policy.default.clone(linesep="\r\n")
HEAD = b"From: a@example.com\r\nTo: b@example.org\r\nSubject: s\r\n"


def nested(levels: int, kind: str = "multipart") -> bytes:
    """A message with ``levels`` containers inside each other, built by hand."""
    body = b"Content-Type: text/plain\r\n\r\nleaf\r\n"
    for level in range(levels):
        if kind == "multipart":
            b = f"b{level}".encode()
            body = (
                b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n'
                b"preamble\r\n--" + b + b"\r\n" + body + b"--" + b + b"--\r\n"
            )
        else:
            body = b"Content-Type: message/rfc822\r\n\r\n" + body
    return HEAD + body


def test_unsendable_names_the_problem_and_the_line() -> None:
    assert unsendable(HEAD + b"\r\nok\r\n") is None
    assert unsendable(HEAD + b"\r\nline\r\nwith \x00 nul\r\n") == "NUL character in line 6"
    assert unsendable(HEAD + b"\r\nbare\nlf\r\n") == "bare LF (not part of CRLF) in line 5"
    assert unsendable(HEAD + b"\r\nbare\rcr\r\n") == "bare CR (not part of CRLF) in line 5"
    assert unsendable(HEAD + b"\r\n" + b"x" * 999 + b"\r\n") == "line 5 is longer than 998 octets"
    assert unsendable(HEAD + b"\r\n" + b"x" * 998 + b"\r\n") is None


def test_header_section_counts_folded_fields_once() -> None:
    raw = b"A: 1\r\nB: 2\r\n  continued\r\nC: 3\r\n\r\nD: not a header\r\n"
    assert header_section(raw) == (3, len(b"A: 1\r\nB: 2\r\n  continued\r\nC: 3\r\n"))


def test_depth_of_plain_nested_and_sibling_parts() -> None:
    assert mime_depth(HEAD + b"\r\nplain\r\n", 100) == 0
    for levels in (1, 2, 7, 100):
        assert mime_depth(nested(levels), 100) == levels
        assert mime_depth(nested(levels, "message"), 100) == levels
    siblings = EmailMessage(policy=SMTP)
    siblings.set_content("x")
    for i in range(50):
        siblings.add_attachment(f"p{i}".encode(), maintype="application", subtype="x")
    assert mime_depth(siblings.as_bytes(), 100) == 1


def test_depth_stops_counting_past_the_limit_on_a_thousand_levels() -> None:
    assert mime_depth(nested(1000), 100) == 101
    assert mime_depth(nested(1000, "message"), 100) == 101


@st.composite
def trees(draw: st.DrawFn, depth: int = 0) -> Message:
    """A random MIME tree: leaves, multiparts and attached messages."""
    kind = draw(st.sampled_from(["leaf", "multi", "message"] if depth < 6 else ["leaf"]))
    message = EmailMessage(policy=SMTP)
    if kind == "leaf":
        message.set_content(draw(st.sampled_from(["x", "--not a delimiter", "a\n--b\n"])))
    elif kind == "multi":
        message.make_mixed()
        for _ in range(draw(st.integers(1, 3))):
            message.attach(draw(trees(depth + 1)))
    else:
        message.set_content(draw(trees(depth + 1)))
    return message


def _depth(message: Message) -> int:
    payload = message.get_payload()
    if not isinstance(payload, list):
        return 0
    inner = [_depth(p) for p in payload if isinstance(p, Message)]
    return 1 + max(inner, default=0)


@settings(max_examples=150, deadline=None)
@given(trees())
def test_depth_agrees_with_the_stdlib_parser(tree: Message) -> None:
    raw = tree.as_bytes(policy=SMTP)
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    assert mime_depth(raw, 100) == _depth(parsed)


def test_check_raw_replies() -> None:
    limits = RawLimits(max_header_fields=4, max_header_bytes=200, max_mime_depth=2)
    check_raw(nested(2), limits)
    with pytest.raises(Unacceptable) as nul:
        check_raw(HEAD + b"\r\n\x00\r\n", limits)
    assert nul.value.reply == "554 5.6.0 Message refused: NUL character in line 5"
    with pytest.raises(Unacceptable) as many:
        check_raw(HEAD + b"X: 1\r\nY: 2\r\n\r\nbody\r\n", limits)
    assert many.value.reply == ("552 5.3.4 Message header too large: 5 header fields (at most 4)")
    with pytest.raises(Unacceptable) as big:
        check_raw(b"X: " + b"y" * 300 + b"\r\n\r\nbody\r\n", limits)
    assert big.value.reply.startswith("552 5.3.4 Message header too large: 305 bytes")
    with pytest.raises(Unacceptable) as deep:
        check_raw(nested(3), limits)
    assert deep.value.reply == (
        "554 5.6.0 Message refused: MIME parts nested more than 2 levels deep"
    )


@given(st.lists(st.sampled_from([b"\r", b"\n", b"\r\n", b"a", b".", b"\r\n.\r\n"]), max_size=12))
def test_bare_eol_counts_agree_with_the_look_around_regex(pieces: list[bytes]) -> None:
    data = b"".join(pieces)
    assert has_bare_eol(data) == bool(re.search(rb"(?<!\r)\n|\r(?!\n)", data))
