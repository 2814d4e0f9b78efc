"""trackedmime.read_headers reads a header block exactly as the stdlib's compat32 header
parser does (the walk used the parser; the reader replaced it for speed)."""

from __future__ import annotations

from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32

from hypothesis import example, given, settings
from hypothesis import strategies as st

from postroom.domain import trackedmime

PARSER = BytesHeaderParser(policy=compat32)

# Pieces of lines that exercise every branch of the parser's header loop: fields in any
# case, continuations, "From " envelope lines, empty names, lines that end the block.
NAMES = st.sampled_from(
    [
        b"Content-Type",
        b"content-type",
        b"CONTENT-TRANSFER-ENCODING",
        b"Content-Disposition",
        b"Subject",
        b"X-Odd!~",
        b"",
        b"From",
        b"From ",
        b"Bad Name",
        b"Caf\xc3\xa9",
    ]
)
VALUES = st.one_of(
    st.sampled_from(
        [
            b"text/html; charset=utf-8",
            b'multipart/mixed; boundary="=_b"',
            b"multipart/alternative;",
            b' boundary="x y"',
            b"\tcharset*=utf-8''%E2%82%AC",
            b"attachment; filename=a.txt",
            b"quoted-printable",
            b"  ",
            b"",
            b"a:b:c",
            b"\xe2\x82\xac",
        ]
    ),
    st.binary(max_size=20).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
)
LINE = st.one_of(
    st.tuples(NAMES, st.sampled_from([b":", b": ", b":\t", b" :"]), VALUES).map(b"".join),
    st.tuples(st.sampled_from([b" ", b"\t", b"  "]), VALUES).map(b"".join),
    st.sampled_from([b"From someone@example Mon Dec  7", b"no colon here", b":", b""]),
)
BLOCKS = st.lists(LINE, max_size=8).map(lambda lines: b"".join(x + b"\r\n" for x in lines))


def same(block: bytes) -> None:
    ours, theirs = trackedmime.read_headers(block), PARSER.parsebytes(block)
    assert isinstance(ours, Message)
    assert list(ours.raw_items()) == list(theirs.raw_items())
    only = frozenset((b"content-type", b"subject"))
    some = trackedmime.read_headers(block, only)
    wanted = [(n, v) for n, v in theirs.raw_items() if n.lower() in ("content-type", "subject")]
    assert list(some.raw_items()) == wanted
    for read in (
        Message.get_content_type,
        Message.get_content_disposition,
        Message.get_content_charset,
        lambda m: m.get_param("boundary"),
        lambda m: m.get("content-transfer-encoding", "7bit"),
    ):
        assert read(ours) == read(theirs)


@settings(max_examples=1000, deadline=None)
@given(BLOCKS)
@example(b"")
@example(b"\r\n")
@example(b"Content-Type: text/plain\r\n From x\r\n")
@example(b"From x\r\n continued\r\nContent-Type: text/html\r\n")
@example(b"Subject: a\r\nFrom x\r\n")
@example(b":x\r\n text/html\r\nContent-Type:\r\n  \r\n")
def test_crlf_blocks_read_as_the_parser_reads_them(block: bytes) -> None:
    same(block)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
@example(b"Content-Type: text/html\rContent-Type: text/plain\r\n")
@example(b"Content-Type: text/html\nX: y\r\n")
def test_any_bytes_read_as_the_parser_reads_them(block: bytes) -> None:
    same(block)


def test_a_built_message_header_block() -> None:
    block = (
        b"From: Shop <a@shop.example>\r\nSubject: Hi\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative;\r\n boundary="=_pr_1"\r\n'
    )
    message = trackedmime.read_headers(block)
    assert message.get_content_type() == "multipart/alternative"
    assert message.get_param("boundary") == "=_pr_1"
    same(block)
