"""Per-recipient copies: text leaves found over the raw bytes and replaced in place."""

from __future__ import annotations

import base64
import email
from datetime import UTC, datetime

from postroom.domain import trackedmime
from postroom.domain.messages import Address, Attachment, MessageDraft
from postroom.domain.mime import build_message

CRLF = "\r\n"


def lines(*parts: str) -> bytes:
    return CRLF.join(parts).encode("latin-1")


def test_a_built_message_keeps_every_byte_but_the_replaced_body() -> None:
    draft = MessageDraft(
        sender=Address("a@shop.example"),
        to=(Address("b@dest.example"),),
        subject="Hi",
        text="plain",
        html="<p>caf\u00e9 <a href='https://a.example/'>x</a></p>",
        attachments=(Attachment(b"https://a.example/", "f.txt", "text/plain", "attachment"),),
    )
    raw = build_message(draft, message_id="<m@shop.example>", date=datetime(2026, 1, 1, tzinfo=UTC))
    leaves = trackedmime.text_leaves(raw)
    assert [(leaf.subtype, leaf.cte) for leaf in leaves] == [
        ("plain", "7bit"),
        ("html", "quoted-printable"),
    ]  # the text/plain attachment is not a leaf to rewrite
    html = leaves[1]
    copy = trackedmime.splice(raw, [(html, html.text.replace("a.example", "t.example"))])
    parsed = email.message_from_bytes(copy)
    bodies = {p.get_content_type(): p for p in parsed.walk() if not p.is_multipart()}
    assert "t.example" in bodies["text/html"].get_payload(decode=True).decode()
    assert bodies["text/plain"].get_payload(decode=True) == b"https://a.example/"
    before, after = raw.split(b"Content-Type: text/html"), copy.split(b"Content-Type: text/html")
    assert before[0] == after[0]  # headers, text part and boundaries untouched
    assert raw[-200:] == copy[-200:]  # the attachment too


def test_a_7bit_leaf_becomes_quoted_printable_and_says_so() -> None:
    raw = lines(
        "From: a@shop.example",
        "Content-Type: text/html; charset=us-ascii",
        "Content-Transfer-Encoding: 7bit",
        "",
        "<a href='x'>x</a>",
        "",
    )
    [leaf] = trackedmime.text_leaves(raw)
    copy = trackedmime.splice(raw, [(leaf, "<a href='" + "u" * 200 + "'>x</a>\n")])
    assert b"Content-Transfer-Encoding: quoted-printable\r\n" in copy
    assert b"7bit" not in copy
    assert max(len(line) for line in copy.split(b"\r\n")) <= 76
    parsed = email.message_from_bytes(copy)
    assert parsed.get_payload(decode=True) == b"<a href='" + b"u" * 200 + b"'>x</a>\r\n"


def test_base64_leaves_stay_base64_and_nested_parts_are_found() -> None:
    html = base64.b64encode("<p>\u00fcber</p>".encode("iso-8859-1")).decode()
    raw = lines(
        "From: a@shop.example",
        'Content-Type: multipart/mixed; boundary="outer"',
        "",
        "preamble",
        "--outer",
        'Content-Type: multipart/alternative; boundary="inner"',
        "",
        "--inner",
        "Content-Type: text/html; charset=iso-8859-1",
        "Content-Transfer-Encoding: base64",
        "",
        html,
        "--inner--",
        "--outer",
        "Content-Type: message/rfc822",
        "",
        "Content-Type: text/html",
        "",
        "<a href='https://inside.example/'>attached</a>",
        "--outer--   ",
        "epilogue",
    )
    [leaf] = trackedmime.text_leaves(raw)
    assert leaf.cte == "base64" and leaf.text == "<p>\u00fcber</p>"
    copy = trackedmime.splice(raw, [(leaf, "<p>\u00fcber</p><img>")])
    parsed = email.message_from_bytes(copy)
    [html_part] = [p for p in parsed.walk() if p.get_content_type() == "text/html"][:1]
    assert html_part.get_payload(decode=True) == "<p>\u00fcber</p><img>".encode("iso-8859-1")
    assert copy.endswith(b"epilogue") and b"inside.example" in copy


def test_undecodable_leaves_are_left_alone() -> None:
    raw = lines("Content-Type: text/html; charset=utf-8", "", "\xff\xfe broken", "")
    assert trackedmime.text_leaves(raw) == []
    raw = lines("Content-Type: text/html; charset=utf-16", "", "x", "")
    assert trackedmime.text_leaves(raw) == []
    raw = lines("Content-Type: text/html; charset=nonsense", "", "x", "")
    assert trackedmime.text_leaves(raw) == []


def test_header_names_and_added_fields() -> None:
    raw = lines("From: a@b.example", "List-Unsubscribe:", " <mailto:x@y>", "", "body")
    assert trackedmime.header_names(raw) == {"from", "list-unsubscribe"}
    added = trackedmime.prepend_headers(raw, [("X-A", "1")])
    assert added == b"X-A: 1\r\n" + raw
