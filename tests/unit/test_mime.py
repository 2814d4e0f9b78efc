"""The MIME serializer, checked against the stdlib parser: properties first, then units."""

from __future__ import annotations

import base64
import email.policy
import email.utils
import itertools
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime
from email.errors import NonASCIILocalPartDefect, NonPrintableDefect, UndecodableBytesDefect
from email.header import decode_header, make_header
from email.headerregistry import AddressHeader
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Literal
from unittest.mock import patch

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from postroom.domain import mime
from postroom.domain.messages import Address, Attachment, MessageDraft
from postroom.domain.mime import build_message, make_message_id

DATE = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
MSG_ID = "<unique.1@postroom.test>"
ROOT = Path(__file__).resolve().parents[2]
EW = re.compile(rb"=\?utf-8\?b\?([A-Za-z0-9+/=]*)\?=")
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def build(draft: MessageDraft, **kwargs: Any) -> bytes:
    return build_message(draft, message_id=MSG_ID, date=DATE, **kwargs)


def parse(raw: bytes) -> EmailMessage:
    msg = BytesParser(policy=email.policy.default).parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def draft(**changes: Any) -> MessageDraft:
    base = MessageDraft(
        sender=Address("sender@example.com", "Sender"),
        to=(Address("to@example.com"),),
        subject="Hello",
        text="Hello, world\n",
    )
    return replace(base, **changes)


def header_block(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def normalize(text: str) -> str:
    """What a body reads back as: LF line endings and a final line break."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text if not text or text.endswith("\n") else text + "\n"


def idna(domain: str) -> str:
    return domain if domain.isascii() else domain.encode("idna").decode("ascii")


def utf8(value: str) -> str:
    """Undo the parser's surrogate escapes (raw UTF-8 local parts, RFC 6532)."""
    return value.encode("utf-8", "surrogateescape").decode("utf-8")


def collapse(name: str) -> str:
    """How the stdlib reads white space in an encoded display name.

    Its phrase parser turns a space or tab and any white space after it (``str.lstrip``:
    Unicode white space included) into a single space.
    """
    return re.sub(r"[ \t]\s*", " ", name)


def mailboxes(header: Any) -> list[tuple[str, str, str]]:
    assert isinstance(header, AddressHeader)
    return [(collapse(a.display_name), utf8(a.username), a.domain) for a in header.addresses]


def expected_mailboxes(addresses: tuple[Address, ...]) -> list[tuple[str, str, str]]:
    result = []
    for a in addresses:
        local, _, domain = a.email.rpartition("@")
        result.append((collapse(a.name), local, idna(domain)))
    return result


def child(msg: EmailMessage, index: int) -> EmailMessage:
    """The ``index``-th part of a multipart message."""
    parts = msg.get_payload()
    assert isinstance(parts, list)
    part = parts[index]
    assert isinstance(part, EmailMessage)
    return part


def filename(part: EmailMessage) -> str:
    """The exact filename (``get_filename()`` strips white space, NBSP included, and
    then one pair of surrounding quotes: a name ``"a"`` comes back from it as ``a``,
    though the RFC 2231 value on the wire is ``%22a%22``)."""
    value = part["Content-Disposition"].params["filename"]
    assert part["Content-Type"].params["name"] == value
    assert part.get_filename() == email.utils.unquote(value.strip())
    return str(value)


def leaf_parts(msg: EmailMessage) -> Iterator[EmailMessage]:
    for part in msg.walk():
        assert isinstance(part, EmailMessage)
        if not part.is_multipart():
            yield part


# --- strategies -------------------------------------------------------------------------------

UNSAFE = "\r\n\x00"
NO_SURROGATES: list[Literal["Cs", "Cc"]] = ["Cs"]
NO_CONTROLS: list[Literal["Cs", "Cc"]] = ["Cs", "Cc"]
any_char = st.characters(exclude_categories=NO_SURROGATES, exclude_characters=UNSAFE)
# Characters and fragments that exercise quoting, folding and encoded-word decisions.
tricky = st.sampled_from(
    [*" \t,;:\"\\()<>@.[]=?_-'*%", "=?", "?=", "é", "日本", "😀", "\u00a0", "\u3000"]
)
words = st.sampled_from(["ab", "Hello", "x" * 80, "  ", " " * 50])
header_text = st.lists(st.one_of(any_char, tricky, words), max_size=40).map("".join)
# no control characters: the stdlib reader treats some (\x0b, \x1c-\x1f) as white space
name_char = st.characters(exclude_categories=NO_CONTROLS)
names = st.lists(st.one_of(name_char, tricky), max_size=20).map("".join)


def _no_long_words(name: str) -> bool:
    """Each word fits one encoded-word: cut inside a word, the stdlib reader adds a space."""
    pieces = re.findall(r"[ \t]*[^ \t]+|[ \t]+", name)
    return all(len(piece.encode()) <= 42 for piece in pieces)


def _idna_ok(label: str) -> bool:
    try:
        return bool(label.encode("idna"))
    except UnicodeError:
        return False


ascii_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
idn_label = st.text(alphabet="abcéüßñøжд日本語", min_size=1, max_size=10).filter(_idna_ok)
domains = st.lists(st.one_of(ascii_label, idn_label), min_size=2, max_size=3).map(".".join)
ascii_local = st.from_regex(
    r"[A-Za-z0-9!#$%&'*+/^_`{|}~-]{1,12}(\.[A-Za-z0-9_-]{1,8})?", fullmatch=True
)
utf8_local = st.text(alphabet="abcéü日😀", min_size=1, max_size=8)
emails = st.builds(
    lambda local, domain: f"{local}@{domain}",
    st.one_of(ascii_local, ascii_local, utf8_local),
    domains,
)
addresses = st.builds(
    Address, email=emails, name=st.one_of(st.just(""), names.filter(_no_long_words))
)

body_piece = st.one_of(
    st.text(alphabet=st.one_of(any_char, st.sampled_from("\r\n .\t=\x00")), max_size=30),
    st.sampled_from(["\r", "\n", "\r\n", ".", "\n.\n", " \n", "\t\r\n", "=", "=\n", "From x"]),
    st.builds(
        lambda chunk, n: chunk * n,
        st.sampled_from(["a", "é", " ", "=", "日", "😀", "ab ", "a\t"]),
        st.integers(60, 200),
    ),
)
bodies = st.one_of(st.none(), st.lists(body_piece, max_size=8).map("".join))

filenames = st.text(
    alphabet=st.one_of(
        st.sampled_from(list("abc.XYZ019 \"\\;'%*=?()\t")),
        st.characters(min_codepoint=0x80, exclude_categories=NO_SURROGATES),
    ),
    min_size=1,
    max_size=90,
)
mimetypes = st.sampled_from(
    [
        "application/pdf",
        "image/png",
        "Text/CSV",
        "image/svg+xml",
        "application/vnd.ms-excel",
        "bogus",
        "text/plain; charset=utf-8",
        "a b/c",
        "",
    ]
)
content_ids = st.one_of(
    st.none(), st.from_regex(r"[A-Za-z0-9._-]{1,20}(@[a-z0-9.]{1,15})?", fullmatch=True)
)
attachments = st.builds(
    Attachment,
    content=st.binary(max_size=400),
    filename=filenames,
    mimetype=mimetypes,
    disposition=st.sampled_from(["attachment", "inline"]),
    content_id=content_ids,
)
# "=?" in a custom value is taken as already encoded by the client (tested separately)
custom_headers = st.lists(
    st.tuples(
        st.from_regex(r"X-[A-Za-z0-9-]{1,20}", fullmatch=True),
        header_text.map(lambda v: v.replace("=?", "=_")),
    ),
    max_size=4,
    unique_by=lambda h: h[0].lower(),
).map(tuple)
drafts = st.builds(
    MessageDraft,
    sender=addresses,
    to=st.lists(addresses, max_size=3).map(tuple),
    cc=st.lists(addresses, max_size=3).map(tuple),
    bcc=st.lists(addresses, max_size=2).map(tuple),
    reply_to=st.one_of(st.none(), addresses),
    subject=header_text,
    text=bodies,
    html=bodies,
    attachments=st.lists(attachments, max_size=3).map(tuple),
    headers=custom_headers,
)


# --- properties -------------------------------------------------------------------------------


def assert_wire_format(raw: bytes) -> None:
    """CRLF only, no line over 998 octets, a final CRLF."""
    assert raw.endswith(b"\r\n")
    lines = raw.split(b"\r\n")
    assert all(b"\r" not in line and b"\n" not in line for line in lines)
    assert max(map(len, lines)) <= 998


def expected_root_type(d: MessageDraft) -> str:
    inline = [a for a in d.attachments if d.html and a.disposition == "inline"]
    if len(inline) < len(d.attachments):
        return "multipart/mixed"
    if d.html and d.text:
        return "multipart/alternative"
    if d.html:
        return "multipart/related" if inline else "text/html"
    return "text/plain"


def expected_header_names(d: MessageDraft, root_type: str) -> list[str]:
    names = ["from"]
    names += ["to"] if d.to else []
    names += ["cc"] if d.cc else []
    names += ["reply-to"] if d.reply_to else []
    names += ["subject", "date", "message-id", "mime-version"]
    names += [name.lower() for name, _ in d.headers]
    names += ["content-type"]
    names += [] if root_type.startswith("multipart/") else ["content-transfer-encoding"]
    return names


def assert_no_defects(msg: EmailMessage, d: MessageDraft) -> None:
    shown = (d.sender, *d.to, *d.cc, *([d.reply_to] if d.reply_to else []))
    utf8_locals = not all(a.email.isascii() for a in shown)
    for part in msg.walk():
        assert part.defects == []
        for name, value in part.items():
            # control characters we were given, decoded faithfully, are reported as such
            defects = [x for x in value.defects if not isinstance(x, NonPrintableDefect)]
            if utf8_locals and name.lower() in {"from", "to", "cc", "reply-to"}:
                # RFC 6532 addresses: the stdlib parser reads them but flags them
                allowed = (NonASCIILocalPartDefect, UndecodableBytesDefect)
                defects = [x for x in defects if not isinstance(x, allowed)]
            assert not defects, (name, str(value), defects)


def assert_bodies(msg: EmailMessage, d: MessageDraft) -> None:
    bodies = {
        part.get_content_type(): part
        for part in leaf_parts(msg)
        if part.get_content_disposition() is None
    }
    expected: dict[str, str] = {}
    if d.text or not d.html:
        expected["text/plain"] = d.text or ""
    if d.html:
        expected["text/html"] = d.html
    assert sorted(bodies) == sorted(expected)
    for content_type, source in expected.items():
        part = bodies[content_type]
        assert part.get_content_charset() == "utf-8"
        content = part.get_content()
        assert content.replace("\r\n", "\n") == normalize(source)
        encoding = part["Content-Transfer-Encoding"]
        if encoding == "quoted-printable":
            payload = part.get_payload()
            assert isinstance(payload, str)
            assert max(map(len, payload.split("\r\n"))) <= 76
        else:
            assert encoding == "7bit"


def expected_type(mimetype: str) -> str:
    if re.fullmatch(r"[\w.+-]+/[\w.+-]+", mimetype):
        return mimetype.lower()
    return "application/octet-stream"


def assert_attachments(msg: EmailMessage, d: MessageDraft) -> None:
    inline = [a for a in d.attachments if d.html and a.disposition == "inline"]
    expected = inline + [a for a in d.attachments if a not in inline]
    parts = [p for p in leaf_parts(msg) if p.get_content_disposition() is not None]
    assert len(parts) == len(expected)
    for part, attachment in zip(parts, expected, strict=True):
        assert part.get_payload(decode=True) == attachment.content
        assert filename(part) == attachment.filename
        assert part.get_content_type() == expected_type(attachment.mimetype)
        assert part.get_content_disposition() == attachment.disposition
        cid = part["Content-ID"]
        assert (None if cid is None else str(cid)) == (
            None if attachment.content_id is None else f"<{attachment.content_id}>"
        )
        payload = part.get_payload()
        assert isinstance(payload, str)
        assert all(len(line) <= 76 for line in payload.split("\r\n"))


@PROPERTY
@given(d=drafts)
def test_round_trips_through_the_stdlib_parser(d: MessageDraft) -> None:
    raw = build(d)
    assert_wire_format(raw)
    msg = parse(raw)

    root_type = expected_root_type(d)
    assert msg.get_content_type() == root_type
    assert [k.lower() for k in msg] == expected_header_names(d, root_type)
    assert b"\r\nbcc:" not in header_block(raw).lower()

    assert str(msg["Subject"]) == d.subject
    assert mailboxes(msg["From"]) == expected_mailboxes((d.sender,))
    if d.to:
        assert mailboxes(msg["To"]) == expected_mailboxes(d.to)
    if d.cc:
        assert mailboxes(msg["Cc"]) == expected_mailboxes(d.cc)
    if d.reply_to:
        assert mailboxes(msg["Reply-To"]) == expected_mailboxes((d.reply_to,))
    for name, value in d.headers:
        assert str(msg[name]) == value.strip(" \t")
    assert str(msg["Message-ID"]) == MSG_ID

    assert_bodies(msg, d)
    assert_attachments(msg, d)
    assert_no_defects(msg, d)


# The header lines build_message memoizes (domain/mime.py: shared by a batch's messages).
CACHED = (
    "_split_custom_headers",
    "_unstructured_header",
    "_reply_to_header",
    "_shared_address_header",
)


def build_pinned(d: MessageDraft) -> bytes:
    """``build(d)`` with the boundary stems drawn from a counter, restarted per message."""
    counter = itertools.count()
    with patch.object(mime.secrets, "token_hex", lambda n: f"{next(counter):0{2 * n}x}"):
        return build(d)


@PROPERTY
@given(
    d=drafts,
    custom_reply_to=st.sampled_from([None, "help@example.com", "Süpport <s@exämple.com>"]),
    recipients=st.lists(st.lists(addresses, min_size=1, max_size=2).map(tuple), max_size=3),
)
def test_cached_header_lines_are_the_uncached_bytes(
    d: MessageDraft, custom_reply_to: str | None, recipients: list[tuple[Address, ...]]
) -> None:
    """A batch (one draft, each message its own To) built twice with the caches, the second
    time from them, is byte for byte what the uncached functions build."""
    if custom_reply_to is not None:
        d = replace(d, headers=(*d.headers, ("Reply-To", custom_reply_to)))
    batch = [d, *(replace(d, to=to) for to in recipients)]
    cached = [build_pinned(m) for m in batch] + [build_pinned(m) for m in batch]
    with ExitStack() as stack:
        for name in CACHED:
            uncached = getattr(mime, name).__wrapped__
            stack.enter_context(patch.object(mime, name, uncached))
        plain = [build_pinned(m) for m in batch]
    assert cached == plain * 2


@settings(max_examples=500, deadline=None)
@given(text=bodies, html=bodies)
def test_bodies_round_trip_with_short_lines(text: str | None, html: str | None) -> None:
    raw = build(draft(text=text, html=html))
    assert_wire_format(raw)
    msg = parse(raw)
    assert_bodies(msg, draft(text=text, html=html))
    assert all(part.defects == [] for part in msg.walk())


@settings(max_examples=500, deadline=None)
@given(subject=header_text, name=names)
def test_encoded_words_are_well_formed(subject: str, name: str) -> None:
    raw = build(draft(subject=subject, sender=Address("a@example.com", name)))
    head = header_block(raw)
    for line in head.split(b"\r\n"):
        if EW.search(line):
            assert len(line) <= 78, line  # folded, even with long words around
        for match in EW.finditer(line):
            assert len(match.group(0)) <= 75
            base64.b64decode(match.group(1)).decode("utf-8")  # no character is split
    msg = parse(raw)
    assert str(msg["Subject"]) == subject
    (address,) = msg["From"].addresses
    assert address.addr_spec == "a@example.com"
    if _no_long_words(name):
        assert collapse(address.display_name) == collapse(name)
    # An RFC 2047 decoder (white space between adjacent encoded-words dropped) is exact.
    field = re.match(rb"From: (.*?)\r\n(?! )", raw, re.S)
    assert field is not None
    phrase = field.group(1).replace(b"\r\n", b"").decode("ascii")
    if phrase.startswith("=?"):
        phrase = phrase.removesuffix(" <a@example.com>")
        assert str(make_header(decode_header(phrase))) == name


@PROPERTY
@given(name=filenames, content=st.binary(max_size=100))
@example(name='""', content=b"")  # quotes around the whole name (found by Hypothesis)
def test_filenames_round_trip(name: str, content: bytes) -> None:
    raw = build(draft(attachments=(Attachment(content, name, "application/pdf"),)))
    assert_wire_format(raw)
    msg = parse(raw)
    (part,) = [p for p in leaf_parts(msg) if p.get_content_disposition() == "attachment"]
    assert filename(part) == name
    assert part.get_payload(decode=True) == content
    assert all(p.defects == [] for p in msg.walk())
    assert not any(v.defects for v in part.values())


INJECTABLE = [
    "subject",
    "sender name",
    "sender email",
    "to name",
    "cc email",
    "reply_to name",
    "header name",
    "header value",
    "reply-to header",
    "extra header value",
    "filename",
    "content_id",
    "message_id",
]


def inject(field: str, value: str) -> tuple[MessageDraft, dict[str, Any]]:
    """A draft (and build kwargs) with ``value`` placed in ``field``."""
    d, kwargs = draft(), dict[str, Any]()
    match field:
        case "subject":
            d = draft(subject=value)
        case "sender name":
            d = draft(sender=Address("a@example.com", value))
        case "sender email":
            d = draft(sender=Address(f"a{value}@example.com"))
        case "to name":
            d = draft(to=(Address("b@example.com", value),))
        case "cc email":
            d = draft(cc=(Address(f"b@exa{value}mple.com"),))
        case "reply_to name":
            d = draft(reply_to=Address("r@example.com", value))
        case "header name":
            d = draft(headers=((f"X-{value}", "v"),))
        case "header value":
            d = draft(headers=(("X-Test", value),))
        case "reply-to header":
            d = draft(headers=(("Reply-To", f"r@example.com{value}"),))
        case "extra header value":
            kwargs = {"extra_headers": [("X-Extra", value)]}
        case "filename":
            d = draft(attachments=(Attachment(b"x", value),))
        case "content_id":
            d = draft(attachments=(Attachment(b"x", "x.png", "image/png", "inline", value),))
        case "message_id":
            kwargs = {"message_id": f"<a{value}@example.com>"}
    return d, kwargs


@PROPERTY
@given(
    field=st.sampled_from(INJECTABLE),
    before=header_text,
    bad=st.sampled_from(["\r", "\n", "\r\n", "\x00", "\r\nBcc: x@evil.test\r\n"]),
    after=header_text,
)
def test_cr_lf_nul_never_reach_a_header(field: str, before: str, bad: str, after: str) -> None:
    d, kwargs = inject(field, before + bad + after)
    with pytest.raises(ValueError):
        build_message(d, **{"message_id": MSG_ID, "date": DATE, **kwargs})


# --- body structures --------------------------------------------------------------------------

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
LOGO = Attachment(PNG, "logo.png", "image/png", "inline", "logo@postroom")
REPORT = Attachment(b"%PDF-1.4 ...", "report.pdf", "application/pdf")


def structure(part: EmailMessage) -> Any:
    """The tree of content types, e.g. ("multipart/mixed", ["text/plain", "application/pdf"])."""
    if part.is_multipart():
        children = part.get_payload()
        assert isinstance(children, list)
        return (
            part.get_content_type(),
            [structure(c) for c in children if isinstance(c, EmailMessage)],
        )
    return part.get_content_type()


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"text": "t", "html": None}, "text/plain"),
        ({"text": None, "html": "<p>h</p>"}, "text/html"),
        ({"text": "t", "html": "<p>h</p>"}, ("multipart/alternative", ["text/plain", "text/html"])),
        (
            {"text": None, "html": "<img src=cid:logo@postroom>", "attachments": (LOGO,)},
            ("multipart/related", ["text/html", "image/png"]),
        ),
        (
            {"text": "t", "html": "<img src=cid:logo@postroom>", "attachments": (LOGO,)},
            (
                "multipart/alternative",
                ["text/plain", ("multipart/related", ["text/html", "image/png"])],
            ),
        ),
        (
            {"text": "t", "html": None, "attachments": (REPORT,)},
            ("multipart/mixed", ["text/plain", "application/pdf"]),
        ),
        (
            {"text": "t", "html": "<p>h</p>", "attachments": (REPORT,)},
            (
                "multipart/mixed",
                [("multipart/alternative", ["text/plain", "text/html"]), "application/pdf"],
            ),
        ),
        (
            {"text": "t", "html": "<img src=cid:logo@postroom>", "attachments": (LOGO, REPORT)},
            (
                "multipart/mixed",
                [
                    (
                        "multipart/alternative",
                        ["text/plain", ("multipart/related", ["text/html", "image/png"])],
                    ),
                    "application/pdf",
                ],
            ),
        ),
        (
            {"text": "t", "html": None, "attachments": (LOGO,)},
            ("multipart/mixed", ["text/plain", "image/png"]),
        ),
        (
            {"text": None, "html": None, "attachments": (REPORT,)},
            ("multipart/mixed", ["text/plain", "application/pdf"]),
        ),
        ({"text": None, "html": None}, "text/plain"),
        ({"text": "", "html": ""}, "text/plain"),
    ],
)
def test_body_structures(changes: dict[str, Any], expected: Any) -> None:
    raw = build(draft(**changes))
    assert_wire_format(raw)
    msg = parse(raw)
    assert structure(msg) == expected
    assert all(part.defects == [] for part in msg.walk())


def test_related_parts_carry_cid_and_inline_disposition() -> None:
    msg = parse(build(draft(html="<img src=cid:logo@postroom>", attachments=(LOGO,))))
    related = child(msg, 1)
    assert related["Content-Type"].params["type"] == "text/html"
    image = child(related, 1)
    assert image["Content-ID"] == "<logo@postroom>"
    assert image.get_content_disposition() == "inline"
    assert image.get_filename() == "logo.png"
    assert image.get_payload(decode=True) == PNG


def test_inline_without_html_stays_inline_in_mixed() -> None:
    msg = parse(build(draft(attachments=(LOGO,))))
    image = child(msg, 1)
    assert image.get_content_disposition() == "inline"
    assert image["Content-ID"] == "<logo@postroom>"


def test_empty_message_is_an_empty_text_part() -> None:
    raw = build(draft(text=None))
    assert raw.endswith(b"Content-Transfer-Encoding: 7bit\r\n\r\n")
    assert parse(raw).get_content() == ""


def test_text_line_endings_are_normalized() -> None:
    raw = build(draft(text="a\rb\r\nc\nd"))
    assert raw.endswith(b"\r\n\r\na\r\nb\r\nc\r\nd\r\n")
    assert b"Content-Transfer-Encoding: 7bit" in raw


def test_quoted_printable_for_non_ascii_and_long_lines() -> None:
    text = "café " + "x" * 100 + "\ntrailing \nend"
    raw = build(draft(text=text))
    assert b"Content-Transfer-Encoding: quoted-printable" in raw
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert b"caf=C3=A9" in body
    assert b"trailing=20\r\n" in body
    assert all(len(line) <= 76 for line in body.split(b"\r\n"))
    assert parse(raw).get_content().replace("\r\n", "\n") == text + "\n"


def test_trailing_space_at_the_line_limit_stays_within_76() -> None:
    # binascii.b2a_qp turns that space into "=20" after deciding the line fits (78 chars)
    text = "é\n" + "a" * 75 + " \n" + "b" * 74 + "\t\n"
    raw = build(draft(text=text))
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(map(len, body.split(b"\r\n"))) <= 76
    assert parse(raw).get_content().replace("\r\n", "\n") == text


def test_boundary_is_redrawn_when_a_body_contains_it(monkeypatch: pytest.MonkeyPatch) -> None:
    stems = iter(["aaaa", "bbbb"])
    monkeypatch.setattr("postroom.domain.mime.secrets.token_hex", lambda _n: next(stems))
    text = "--=_pr_aaaa_a\n"
    raw = build(draft(text=text, html="<p>x</p>"))
    assert b'boundary="=_pr_bbbb_a"' in raw
    assert child(parse(raw), 0).get_content().replace("\r\n", "\n") == text


# --- headers ----------------------------------------------------------------------------------


def test_japanese_subject_is_rfc2047_encoded() -> None:
    subject = "日本語の件名: お知らせ"
    raw = build(draft(subject=subject))
    head = header_block(raw)
    assert head.isascii()
    assert b"Subject: =?utf-8?b?" in head
    assert str(parse(raw)["Subject"]) == subject


def test_long_subject_is_folded() -> None:
    subject = " ".join(f"word{i}" for i in range(60))
    raw = build(draft(subject=subject))
    lines = header_block(raw).split(b"\r\n")
    start = next(i for i, line in enumerate(lines) if line.startswith(b"Subject:"))
    folded = [lines[start]]
    folded += [line for line in lines[start + 1 : start + 20] if line[:1] in b" \t"]
    assert len(folded) > 3
    assert all(len(line) <= 78 for line in folded)
    assert str(parse(raw)["Subject"]) == subject


def test_subject_keeps_edge_white_space_and_literal_encoded_words() -> None:
    subject = "  =?utf-8?q?not_encoded?= x\t"
    assert str(parse(build(draft(subject=subject)))["Subject"]) == subject


def test_display_name_with_comma_is_quoted() -> None:
    raw = build(draft(to=(Address("john@example.com", 'Doe, John "JD" \\o/'),)))
    assert b'To: "Doe, John \\"JD\\" \\\\o/" <john@example.com>\r\n' in raw
    assert mailboxes(parse(raw)["To"]) == [('Doe, John "JD" \\o/', "john", "example.com")]


def test_plain_display_name_is_left_alone() -> None:
    raw = build(draft(sender=Address("a@example.com", "Alice Smith")))
    assert b"From: Alice Smith <a@example.com>\r\n" in raw


def test_non_ascii_display_name_and_idna_domain() -> None:
    raw = build(draft(to=(Address("jürgen@bücher.example", "Jürgen Müller"),)))
    head = header_block(raw)
    assert b"@xn--bcher-kva.example>" in head
    assert "jürgen@".encode() in head  # RFC 6532: the local part stays raw UTF-8
    ((name, local, domain),) = mailboxes(parse(raw)["To"])
    assert (name, local, domain) == ("Jürgen Müller", "jürgen", "xn--bcher-kva.example")


def test_local_part_needing_quotes() -> None:
    raw = build(draft(to=(Address("john doe@example.com"),)))
    assert b'To: "john doe"@example.com\r\n' in raw


def test_no_bcc_header_ever() -> None:
    raw = build(draft(bcc=(Address("hidden@example.com", "Hidden"),)))
    assert b"hidden" not in raw.lower()
    assert "Bcc" not in parse(raw)


def test_custom_headers_in_order_after_mime_version() -> None:
    raw = build(
        draft(headers=(("X-First", "1"), ("X-Second", "ünïcode value"))),
        extra_headers=[("X-Postroom-Id", "abc")],
    )
    msg = parse(raw)
    keys = list(msg.keys())
    assert keys[keys.index("MIME-Version") + 1 :][:3] == ["X-First", "X-Second", "X-Postroom-Id"]
    assert str(msg["X-Second"]) == "ünïcode value"
    assert header_block(raw).isascii()


def test_pre_encoded_custom_header_passes_verbatim() -> None:
    value = "=?utf-8?b?w6k=?= <https://example.com/u?a=?b>"
    raw = build(draft(headers=(("X-Pre", value),)))
    assert f"X-Pre: {value}\r\n".encode() in raw


def test_reply_to_header_replaces_draft_reply_to() -> None:
    d = draft(
        reply_to=Address("ignored@example.com"),
        headers=(("reply-to", "Ünï <u@example.com>, plain@example.com"),),
    )
    msg = parse(build(d))
    assert [k.lower() for k in msg].count("reply-to") == 1
    assert mailboxes(msg["Reply-To"]) == [
        ("Ünï", "u", "example.com"),
        ("", "plain", "example.com"),
    ]
    ascii_reply = parse(build(draft(headers=(("Reply-To", "a@x.test, B <b@x.test>"),))))
    assert mailboxes(ascii_reply["Reply-To"]) == [("", "a", "x.test"), ("B", "b", "x.test")]


def test_long_encoded_name_is_cut_at_white_space() -> None:
    name = "Jürgen Müller-Lüdenscheidt von und zu Großherzogtum Baden-Württemberg"
    raw = build(draft(sender=Address("j@example.com", name)))
    field = raw.split(b"\r\nTo:", 1)[0]
    words = EW.findall(field)
    assert len(words) > 1
    # every encoded-word after the first starts with the space it was cut before
    assert all(base64.b64decode(w).startswith(b" ") for w in words[1:])
    assert all(len(line) <= 78 for line in field.split(b"\r\n"))
    assert mailboxes(parse(raw)["From"]) == [(name, "j", "example.com")]
    assert str(make_header(decode_header(field.replace(b"\r\n", b"").decode()[6:-16]))) == name


@pytest.mark.parametrize(
    "address", ["no-at-sign", "@example.com", "a@", "a@exa mple.com", "a\x01b@example.com"]
)
def test_invalid_addresses_raise(address: str) -> None:
    with pytest.raises(ValueError):
        build(draft(to=(Address(address),)))


def test_utf8_local_part_needing_quotes() -> None:
    raw = build(draft(to=(Address("jö hn@example.com"),)))
    assert '"jö hn"@example.com'.encode() in raw


def test_reply_to_header_must_be_addresses_and_single() -> None:
    with pytest.raises(ValueError):
        build(draft(headers=(("Reply-To", "not an address"),)))
    with pytest.raises(ValueError):
        build(draft(headers=(("Reply-To", "a@x.test"), ("reply-to", "b@x.test"))))
    encoded = "=?utf-8?b?w6k=?= <e@x.test>"
    raw = build(draft(headers=(("Reply-To", encoded),)))
    assert f"Reply-To: {encoded}\r\n".encode() in raw
    assert mailboxes(parse(raw)["Reply-To"]) == [("é", "e", "x.test")]


def test_invalid_disposition_raises() -> None:
    bogus: Any = "attachment\r\nBcc: x@evil.test"
    with pytest.raises(ValueError):
        build(draft(attachments=(Attachment(b"x", "f", disposition=bogus),)))


@pytest.mark.parametrize("name", ["Bcc", "from", "Subject", "Content-Type", "MIME-Version"])
def test_reserved_custom_headers_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="set by the serializer"):
        build(draft(headers=((name, "x@example.com"),)))


@pytest.mark.parametrize("field", INJECTABLE)
@pytest.mark.parametrize("bad", ["\r", "\n", "\x00"])
def test_cr_lf_nul_raise(field: str, bad: str) -> None:
    d, kwargs = inject(field, f"x{bad}y")
    with pytest.raises(ValueError):
        build_message(d, **{"message_id": MSG_ID, "date": DATE, **kwargs})


@pytest.mark.parametrize(
    "header", [("X Space", "v"), ("X:Colon", "v"), ("", "v"), ("X-" + "a" * 80, "v")]
)
def test_invalid_header_names_raise(header: tuple[str, str]) -> None:
    with pytest.raises(ValueError):
        build(draft(headers=(header,)))


def test_date_and_message_id() -> None:
    msg = parse(build(draft()))
    assert msg["Date"].datetime == DATE
    assert msg["Message-ID"] == MSG_ID
    assert make_message_id("postroom.test", "abc.123") == "<abc.123@postroom.test>"
    assert make_message_id("bücher.example", "x") == "<x@xn--bcher-kva.example>"
    with pytest.raises(ValueError):
        make_message_id("example.com", "a b")
    bare = parse(build_message(draft(), message_id="bare@example.com", date=DATE))
    assert bare["Message-ID"] == "<bare@example.com>"


# --- attachments ------------------------------------------------------------------------------


def test_attachment_headers_and_base64_lines() -> None:
    data = bytes(range(256)) * 10
    raw = build(draft(attachments=(Attachment(data, "report.pdf", "application/pdf"),)))
    assert b'Content-Type: application/pdf; name="report.pdf"\r\n' in raw
    assert b'Content-Disposition: attachment; filename="report.pdf"\r\n' in raw
    part = child(parse(raw), 1)
    assert part.get_payload(decode=True) == data
    payload = part.get_payload()
    assert isinstance(payload, str)
    assert {len(line) for line in payload.split("\r\n")[:-1]} == {76}


def test_non_ascii_filename_uses_rfc2231() -> None:
    raw = build(draft(attachments=(Attachment(b"x", "résumé.pdf"),)))
    assert b"filename*=utf-8''r%C3%A9sum%C3%A9.pdf" in raw
    long_name = "請求書" * 20 + ".pdf"
    raw = build(draft(attachments=(Attachment(b"x", long_name),)))
    assert b"filename*0*=utf-8''" in raw
    assert all(len(line) <= 78 for line in raw.split(b"\r\n") if b"name*" in line)
    assert child(parse(raw), 1).get_filename() == long_name


@pytest.mark.parametrize(
    ("mimetype", "expected"),
    [
        ("image/svg+xml", "image/svg+xml"),
        ("", "application/octet-stream"),
        ("pdf", "application/octet-stream"),
        ("text/plain; charset=utf-8", "application/octet-stream"),
        ('a"b/c', "application/octet-stream"),
    ],
)
def test_mimetype_validation(mimetype: str, expected: str) -> None:
    msg = parse(build(draft(attachments=(Attachment(b"x", "f", mimetype),))))
    assert child(msg, 1).get_content_type() == expected


def test_bench_script_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "mime.py"), "20"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert "ratio" in result.stdout


def test_date_header_per_instant_and_offset() -> None:
    """The Date header is formatted once per second (mime._date_header): equal instants in
    different zones must still keep their own offset, and sub-seconds never change it."""
    from datetime import timedelta, timezone
    from email.utils import format_datetime

    utc = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    paris = utc.astimezone(timezone(timedelta(hours=2)))
    assert utc == paris
    for date in (utc, paris, utc.replace(microsecond=999999), paris, utc):
        raw = build_message(draft(), message_id=MSG_ID, date=date)
        assert f"\r\nDate: {format_datetime(date)}\r\n".encode() in raw
    assert b"+0200" in build_message(draft(), message_id=MSG_ID, date=paris)
