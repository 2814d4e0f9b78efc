"""Parsing and validation of the /api/send and /api/batch bodies against the wire contract."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.api import payload
from postroom.api.payload import parse_batch, parse_send
from postroom.config import LimitSettings
from postroom.domain.messages import Address, Attachment, MessageDraft
from postroom.errors import PayloadTooLarge, ValidationFailed

LIMITS = LimitSettings()
DROP = object()  # marks a key to remove from the valid body


def body(**changes: Any) -> dict[str, Any]:
    """A valid /api/send body with ``changes`` applied (``from_`` stands for ``from``)."""
    result: dict[str, Any] = {
        "from": {"email": "a@example.com", "name": "A"},
        "to": [{"email": "b@example.com"}],
        "subject": "Hi",
        "text": "Hello",
    }
    for key, value in changes.items():
        key = key.rstrip("_")
        if value is DROP:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def errors_of(payload: object, limits: LimitSettings = LIMITS) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        parse_send(payload, limits)
    return info.value.errors


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def attachment(**changes: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"content": b64(b"hello"), "filename": "a.txt"}
    result.update(changes)
    return {k: v for k, v in result.items() if v is not DROP}


def addresses(count: int) -> list[dict[str, str]]:
    return [{"email": f"u{i}@example.com"} for i in range(count)]


TEMPLATE_ONLY = {"subject": DROP, "text": DROP, "template_uuid": "uuid-1"}

# (id, body, the complete list of errors expected, in order)
ERROR_CASES: list[tuple[str, object, list[str]]] = [
    (
        "empty body: the contract's four errors",
        {},
        [
            "'from' is required",
            "'to', 'cc' or 'bcc' address is required",
            "'subject' is required",
            "must specify either text or html body",
        ],
    ),
    ("from null", body(from_=None), ["'from' is required"]),
    ("from bad", body(from_={"email": "nope"}), ["'from' address is invalid"]),
    ("from without email", body(from_={"name": "A"}), ["'from' address is invalid"]),
    ("from email not str", body(from_={"email": 5}), ["'from' address is invalid"]),
    ("from as string", body(from_="a@example.com"), ["'from' address is invalid"]),
    (
        "from name CRLF",
        body(from_={"email": "a@example.com", "name": "A\r\nBcc: x@example.com"}),
        ["'from' name contains invalid characters"],
    ),
    (
        "from name not str",
        body(from_={"email": "a@example.com", "name": 5}),
        ["'from' name must be a string"],
    ),
    (
        "from bad email and name",
        body(from_={"email": "x", "name": "\x00"}),
        ["'from' address is invalid", "'from' name contains invalid characters"],
    ),
    ("to bad", body(to=[{"email": "bad"}]), ["address is invalid in 'to' 0"]),
    (
        "to second bad",
        body(to=[{"email": "b@example.com"}, {"email": "b@@example.com"}]),
        ["address is invalid in 'to' 1"],
    ),
    ("cc bad", body(cc=[{"email": "x"}]), ["address is invalid in 'cc' 0"]),
    ("bcc bad", body(bcc=[{"email": "b@example.com"}, {}]), ["address is invalid in 'bcc' 1"]),
    ("to entry string", body(to=["b@example.com"]), ["address is invalid in 'to' 0"]),
    (
        "to header injection in email",
        body(to=[{"email": "b@example.com\r\nBcc: evil@example.com"}]),
        ["address is invalid in 'to' 0"],
    ),
    (
        "to name LF",
        body(to=[{"email": "b@example.com", "name": "B\nX"}]),
        ["name contains invalid characters in 'to' 0"],
    ),
    (
        "to name not str",
        body(to=[{"email": "b@example.com", "name": ["B"]}]),
        ["name must be a string in 'to' 0"],
    ),
    ("to not array", body(to="b@example.com"), ["'to' must be an array"]),
    ("cc not array", body(cc=5), ["'cc' must be an array"]),
    (
        "all recipients empty",
        body(to=[], cc=[], bcc=[]),
        ["'to', 'cc' or 'bcc' address is required"],
    ),
    ("recipients missing", body(to=DROP), ["'to', 'cc' or 'bcc' address is required"]),
    (
        "to over the limit",
        body(to=addresses(1001)),
        ["'to' must contain at most 1000 addresses"],
    ),
    (
        "bcc over the limit",
        body(bcc=addresses(1001)),
        ["'bcc' must contain at most 1000 addresses"],
    ),
    ("reply_to bad", body(reply_to={"email": "r"}), ["'reply_to' address is invalid"]),
    ("reply_to string", body(reply_to="r@example.com"), ["'reply_to' address is invalid"]),
    (
        "reply_to array bad",
        body(reply_to=[{"email": "r"}, {"email": "s@example.com"}]),
        ["'reply_to' address is invalid"],
    ),
    (
        "reply_to name CR",
        body(reply_to={"email": "r@example.com", "name": "R\r"}),
        ["'reply_to' name contains invalid characters"],
    ),
    ("subject missing", body(subject=DROP), ["'subject' is required"]),
    ("subject empty", body(subject=""), ["'subject' is required"]),
    ("subject null", body(subject=None), ["'subject' is required"]),
    ("subject not str", body(subject=5), ["'subject' must be a string"]),
    (
        "subject CRLF",
        body(subject="Hi\r\nBcc: evil@example.com"),
        ["'subject' contains invalid characters"],
    ),
    ("subject NUL", body(subject="Hi\x00"), ["'subject' contains invalid characters"]),
    ("subject U+2028", body(subject="Hi\u2028there"), ["'subject' contains invalid characters"]),
    ("subject NEL", body(subject="Hi\x85there"), ["'subject' contains invalid characters"]),
    ("no body", body(text=DROP), ["must specify either text or html body"]),
    ("empty bodies", body(text="", html=""), ["must specify either text or html body"]),
    ("text not str", body(text=5), ["'text' must be a string"]),
    ("html not str", body(html=["x"]), ["'html' must be a string"]),
    ("text NUL", body(text="a\x00b"), ["'text' contains invalid characters"]),
    ("html NUL", body(html="<p>\x00</p>"), ["'html' contains invalid characters"]),
    ("category too long", body(category="c" * 256), ["'category' must be at most 255 characters"]),
    ("category not str", body(category=5), ["'category' must be a string"]),
    ("category LF", body(category="a\nb"), ["'category' contains invalid characters"]),
    (
        "template with subject",
        body(**{**TEMPLATE_ONLY, "subject": "S"}),
        ["'subject' is not allowed with 'template_uuid'"],
    ),
    (
        "template with text",
        body(**{**TEMPLATE_ONLY, "text": "T"}),
        ["'text' is not allowed with 'template_uuid'"],
    ),
    (
        "template with html",
        body(**{**TEMPLATE_ONLY, "html": "<b>H</b>"}),
        ["'html' is not allowed with 'template_uuid'"],
    ),
    (
        "template with category",
        body(**{**TEMPLATE_ONLY, "category": "c"}),
        ["'category' is not allowed with 'template_uuid'"],
    ),
    (
        "template with everything",
        body(template_uuid="uuid-1", html="H", category="c"),
        [
            "'subject' is not allowed with 'template_uuid'",
            "'text' is not allowed with 'template_uuid'",
            "'html' is not allowed with 'template_uuid'",
            "'category' is not allowed with 'template_uuid'",
        ],
    ),
    (
        "template_uuid not str",
        body(**{**TEMPLATE_ONLY, "template_uuid": 5}),
        ["'template_uuid' must be a string"],
    ),
    (
        "template_uuid LF",
        body(**{**TEMPLATE_ONLY, "template_uuid": "u\n"}),
        ["'template_uuid' is invalid"],
    ),
    (
        "template_variables not object",
        body(**TEMPLATE_ONLY, template_variables=["x"]),
        ["'template_variables' must be an object"],
    ),
    (
        "custom_variables array",
        body(custom_variables=[1]),
        ["'custom_variables' must be an object"],
    ),
    (
        "custom_variables string",
        body(custom_variables="k=v"),
        ["'custom_variables' must be an object"],
    ),
    (
        "custom_variables nested",
        body(custom_variables={"a": {"b": 1}}),
        ["'custom_variables' values must be strings, numbers or booleans"],
    ),
    (
        "custom_variables null value",
        body(custom_variables={"a": None}),
        ["'custom_variables' values must be strings, numbers or booleans"],
    ),
    (
        "custom_variables over 1000 bytes",
        body(custom_variables={"k": "v" * 993}),  # {"k":"…"} = 1001 bytes
        ["'custom_variables' must be at most 1000 bytes"],
    ),
    ("headers array", body(headers=[["X-A", "1"]]), ["'headers' must be an object of strings"]),
    ("headers number value", body(headers={"X-A": 1}), ["'headers' must be an object of strings"]),
    ("header From", body(headers={"From": "x@example.com"}), ["header 'From' is reserved"]),
    ("header bcc", body(headers={"bcc": "x@example.com"}), ["header 'bcc' is reserved"]),
    (
        "header DKIM",
        body(headers={"DKIM-Signature": "v=1"}),
        ["header 'DKIM-Signature' is reserved"],
    ),
    (
        "header Content-Type",
        body(headers={"Content-Type": "x"}),
        ["header 'Content-Type' is reserved"],
    ),
    ("header name space", body(headers={"X Y": "1"}), ["header name 'X Y' is invalid"]),
    ("header name colon", body(headers={"X:Y": "1"}), ["header name 'X:Y' is invalid"]),
    ("header name empty", body(headers={"": "1"}), ["header name '' is invalid"]),
    ("header name CRLF", body(headers={"X\r\nY": "1"}), ["header name 'X\r\nY' is invalid"]),
    ("header name non-ASCII", body(headers={"X-É": "1"}), ["header name 'X-É' is invalid"]),
    (
        "header name too long",
        body(headers={"X" * 77: "1"}),
        [f"header name '{'X' * 77}' is invalid"],
    ),
    (
        "header value CRLF",
        body(headers={"X-Foo": "a\r\nBcc: evil@example.com"}),
        ["header 'X-Foo' contains invalid characters"],
    ),
    (
        "header value NUL",
        body(headers={"X-Foo": "\x00"}),
        ["header 'X-Foo' contains invalid characters"],
    ),
    ("header value too long", body(headers={"X-Foo": "v" * 992}), ["header 'X-Foo' is too long"]),
    (
        "several header errors, in order",
        body(headers={"X-Ok": "1", "To": "t@example.com", "Bad Name": "2", "X-B": "\n"}),
        [
            "header 'To' is reserved",
            "header name 'Bad Name' is invalid",
            "header 'X-B' contains invalid characters",
        ],
    ),
    (
        "attachments object",
        body(attachments={"content": "aGk="}),
        ["'attachments' must be an array"],
    ),
    ("attachment not object", body(attachments=["aGk="]), ["'attachments' 0 must be an object"]),
    (
        "attachment without content",
        body(attachments=[attachment(content=DROP)]),
        ["'attachments' 0: 'content' is required"],
    ),
    (
        "attachment content not str",
        body(attachments=[attachment(content=[1, 2])]),
        ["'attachments' 0: 'content' must be a string"],
    ),
    (
        "attachment without filename",
        body(attachments=[attachment(filename=DROP)]),
        ["'attachments' 0: 'filename' is required"],
    ),
    (
        "attachment empty filename",
        body(attachments=[attachment(filename="")]),
        ["'attachments' 0: 'filename' is required"],
    ),
    (
        "attachment filename not str",
        body(attachments=[attachment(filename=5)]),
        ["'attachments' 0: 'filename' must be a string"],
    ),
    (
        "attachment filename CRLF",
        body(attachments=[attachment(filename="a\r\nContent-Type: text/html")]),
        ["'attachments' 0: 'filename' contains invalid characters"],
    ),
    (
        "attachment disposition",
        body(attachments=[attachment(disposition="attached")]),
        ["'attachments' 0: 'disposition' must be 'attachment' or 'inline'"],
    ),
    (
        "attachment disposition case",
        body(attachments=[attachment(disposition="INLINE")]),
        ["'attachments' 0: 'disposition' must be 'attachment' or 'inline'"],
    ),
    (
        "attachment type",
        body(attachments=[attachment(type="text")]),
        ["'attachments' 0: 'type' is invalid"],
    ),
    (
        "attachment type LF",
        body(attachments=[attachment(type="text/plain\nX: y")]),
        ["'attachments' 0: 'type' is invalid"],
    ),
    (
        "attachment type not str",
        body(attachments=[attachment(type=5)]),
        ["'attachments' 0: 'type' must be a string"],
    ),
    (
        "attachment content_id space",
        body(attachments=[attachment(content_id="a b")]),
        ["'attachments' 0: 'content_id' contains invalid characters"],
    ),
    (
        "attachment content_id CRLF",
        body(attachments=[attachment(content_id="a\r\nb")]),
        ["'attachments' 0: 'content_id' contains invalid characters"],
    ),
    (
        "attachment content_id not str",
        body(attachments=[attachment(content_id=1)]),
        ["'attachments' 0: 'content_id' must be a string"],
    ),
    (
        "second attachment, every field wrong",
        body(
            attachments=[
                attachment(),
                {"content": "!!", "filename": "\x00", "type": "x", "disposition": "no"},
            ]
        ),
        [
            "'attachments' 1: 'filename' contains invalid characters",
            "'attachments' 1: 'type' is invalid",
            "'attachments' 1: 'disposition' must be 'attachment' or 'inline'",
        ],
    ),
    (
        "errors are collected across fields, in contract order",
        {
            "from": {"email": "bad"},
            "to": [{"email": "b@example.com"}, {"email": "x"}],
            "cc": [{"email": "y"}],
            "reply_to": {"email": "z"},
            "subject": "a\nb",
            "category": "c" * 300,
            "custom_variables": [],
            "headers": {"Subject": "s"},
            "attachments": [{}],
        },
        [
            "'from' address is invalid",
            "address is invalid in 'to' 1",
            "address is invalid in 'cc' 0",
            "'reply_to' address is invalid",
            "'subject' contains invalid characters",
            "must specify either text or html body",
            "'category' must be at most 255 characters",
            "'custom_variables' must be an object",
            "header 'Subject' is reserved",
            "'attachments' 0: 'content' is required",
            "'attachments' 0: 'filename' is required",
        ],
    ),
]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [pytest.param(payload, expected, id=name) for name, payload, expected in ERROR_CASES],
)
def test_errors(payload: object, expected: list[str]) -> None:
    assert errors_of(payload) == expected


@pytest.mark.parametrize("payload", [None, [], "x", 5, [{"from": {}}]])
def test_body_must_be_an_object(payload: object) -> None:
    assert errors_of(payload) == ["request body must be a JSON object"]


# -- accepted bodies -------------------------------------------------------------------------


def test_python_sdk_body() -> None:
    # CAP §3.4: client.send(Mail(...)) from the Python SDK.
    draft = parse_send(
        {
            "to": [{"email": "b@example.com"}],
            "from": {"email": "a@example.com", "name": "A"},
            "cc": [{"email": "c@example.com"}],
            "attachments": [
                {
                    "content": "aGVsbG8=",
                    "filename": "a.txt",
                    "disposition": "inline",
                    "type": "text/plain",
                    "content_id": "cid1",
                }
            ],
            "headers": {"X-Foo": "1"},
            "custom_variables": {"user_id": 5},
            "reply_to": {"email": "r@example.com"},
            "subject": "Hi",
            "text": "t",
            "html": "<b>h</b>",
            "category": "cat",
        },
        LIMITS,
    )
    assert draft == MessageDraft(
        sender=Address("a@example.com", "A"),
        to=(Address("b@example.com"),),
        cc=(Address("c@example.com"),),
        reply_to=Address("r@example.com"),
        subject="Hi",
        text="t",
        html="<b>h</b>",
        attachments=(Attachment(b"hello", "a.txt", "text/plain", "inline", "cid1"),),
        headers=(("X-Foo", "1"),),
        custom_variables={"user_id": 5},
        category="cat",
    )


def test_python_sdk_template_body() -> None:
    draft = parse_send(
        {
            "to": [{"email": "b@example.com"}],
            "from": {"email": "a@example.com"},
            "template_uuid": "uuid-1",
            "template_variables": {"user": {"name": "J"}},
        },
        LIMITS,
    )
    assert draft.template_uuid == "uuid-1"
    assert draft.template_variables == {"user": {"name": "J"}}
    assert (draft.subject, draft.text, draft.html, draft.category) == ("", None, None, None)


def test_nodemailer_body() -> None:
    # CAP §3.4: NODE's MailtrapTransport: empty names, empty cc/bcc arrays and headers.
    draft = parse_send(
        {
            "from": {"name": "", "email": "a@example.com"},
            "to": [{"name": "", "email": "b@example.com"}],
            "cc": [],
            "bcc": [],
            "headers": {},
            "subject": "S",
            "category": "c",
            "custom_variables": {"k": "v", "n": 1, "b": True},
            "text": "T",
        },
        LIMITS,
    )
    assert draft.sender == Address("a@example.com")
    assert draft.to == (Address("b@example.com"),)
    assert (draft.cc, draft.bcc, draft.headers) == ((), (), ())
    assert draft.custom_variables == {"k": "v", "n": 1, "b": True}


ACCEPT_CASES: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "to as a single object",
        body(to={"email": "b@example.com"}),
        {"to": (Address("b@example.com"),)},
    ),
    (
        "cc only",
        body(to=DROP, cc=[{"email": "c@example.com"}]),
        {"cc": (Address("c@example.com"),)},
    ),
    (
        "bcc only",
        body(to=[], bcc=[{"email": "d@example.com"}]),
        {"bcc": (Address("d@example.com"),)},
    ),
    (
        "reply_to array: first entry",
        body(reply_to=[{"email": "r@example.com", "name": "R"}, {"email": "s@example.com"}]),
        {"reply_to": Address("r@example.com", "R")},
    ),
    ("reply_to empty array", body(reply_to=[]), {"reply_to": None}),
    (
        "nulls are absent",
        body(
            cc=None,
            bcc=None,
            reply_to=None,
            html=None,
            category=None,
            headers=None,
            attachments=None,
            custom_variables=None,
            template_uuid=None,
            template_variables=None,
            from_={"email": "a@example.com", "name": None},
        ),
        {"sender": Address("a@example.com"), "cc": (), "html": None, "category": None},
    ),  # fmt: skip
    ("html only", body(text=DROP, html="<p>x</p>"), {"text": None, "html": "<p>x</p>"}),
    ("empty text, html given", body(text="", html="<p>x</p>"), {"text": None}),
    (
        "bodies keep their line breaks",
        body(text="a\r\nb\n", html="<p>\n</p>"),
        {"text": "a\r\nb\n"},
    ),
    (
        "non-ASCII everywhere",
        body(subject="Grüße ✓", from_={"email": "jörg@bücher.de", "name": "Jörg"}),
        {"subject": "Grüße ✓", "sender": Address("jörg@bücher.de", "Jörg")},
    ),  # fmt: skip
    ("tab in subject", body(subject="a\tb"), {"subject": "a\tb"}),
    (
        "encoded-word text is kept literally",
        body(subject="=?utf-8?q?a=0D=0Ab?="),
        {"subject": "=?utf-8?q?a=0D=0Ab?="},
    ),  # fmt: skip
    ("category at the limit", body(category="c" * 255), {"category": "c" * 255}),
    ("empty category is absent", body(category=""), {"category": None}),
    (
        "custom_variables at exactly 1000 bytes",
        body(custom_variables={"k": "v" * 992}),
        {"custom_variables": {"k": "v" * 992}},
    ),
    (
        "custom_variables scalars",
        body(custom_variables={"s": "x", "i": -1, "f": 1.5, "b": False}),
        {"custom_variables": {"s": "x", "i": -1, "f": 1.5, "b": False}},
    ),
    ("unknown keys are ignored", body(send_at="tomorrow", priority=1), {"subject": "Hi"}),
    (
        "headers in order; Content-Transfer-Encoding dropped; Reply-To allowed",
        body(
            headers={
                "List-Unsubscribe": "<https://x.example/u>",
                "content-TRANSFER-encoding": "7bit",
                "Reply-To": "a@example.com, b@example.com",
                "X-Free": "é",
            }
        ),
        {
            "headers": (
                ("List-Unsubscribe", "<https://x.example/u>"),
                ("Reply-To", "a@example.com, b@example.com"),
                ("X-Free", "é"),
            )
        },
    ),  # fmt: skip
    (
        "template_variables any JSON",
        body(**TEMPLATE_ONLY, template_variables={"a": [1, {"b": None}], "c": True}),
        {"template_variables": {"a": [1, {"b": None}], "c": True}, "template_uuid": "uuid-1"},
    ),
    (
        "template with empty subject/text/category is fine",
        body(**{**TEMPLATE_ONLY, "subject": "", "text": "", "category": ""}),
        {"subject": "", "text": None, "category": None},
    ),
]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [pytest.param(payload, expected, id=name) for name, payload, expected in ACCEPT_CASES],
)
def test_accepts(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    draft = parse_send(payload, LIMITS)
    assert {key: getattr(draft, key) for key in expected} == expected


@pytest.mark.parametrize("field", ["to", "cc", "bcc"])
def test_recipient_limit_is_inclusive(field: str) -> None:
    draft = parse_send(body(**{"to": DROP, field: addresses(1000)}), LIMITS)
    assert len(getattr(draft, field)) == 1000
    assert errors_of(body(**{"to": DROP, field: addresses(1001)})) == [
        f"'{field}' must contain at most 1000 addresses"
    ]


def test_limits_come_from_settings() -> None:
    limits = LimitSettings(
        max_recipients_per_field=2, max_category_chars=3, max_custom_variables_bytes=10
    )
    payload = body(to=addresses(3), category="abcd", custom_variables={"k": "123456"})
    assert errors_of(payload, limits) == [
        "'to' must contain at most 2 addresses",
        "'category' must be at most 3 characters",
        "'custom_variables' must be at most 10 bytes",
    ]


# -- attachments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "decoded"),
    [
        ("aGVsbG8=", b"hello"),
        ("aGVsbG8", b"hello"),  # padding omitted
        ("aGk", b"hi"),
        ("", b""),
        (b64(bytes(range(256))), bytes(range(256))),
        ("\r\n".join(["QUJD"] * 30), b"ABC" * 30),  # MIME-style line breaks
        ("QUJD\nQUJD\n", b"ABCABC"),
    ],
)
def test_base64_content(content: str, decoded: bytes) -> None:
    draft = parse_send(body(attachments=[attachment(content=content)]), LIMITS)
    assert draft.attachments[0].content == decoded


def test_attachment_defaults_and_type_parameters() -> None:
    draft = parse_send(
        body(
            attachments=[
                attachment(),
                attachment(
                    type="text/plain; charset=utf-8", disposition="inline", content_id="<c1>"
                ),
                attachment(type="", disposition="", content_id=""),
            ]
        ),
        LIMITS,
    )
    first, second, third = draft.attachments
    assert first == Attachment(b"hello", "a.txt", "application/octet-stream", "attachment", None)
    assert (second.mimetype, second.disposition, second.content_id) == (
        "text/plain",
        "inline",
        "<c1>",
    )
    assert (third.mimetype, third.disposition, third.content_id) == (
        "application/octet-stream",
        "attachment",
        None,
    )


# -- message size ----------------------------------------------------------------------------

SMALL = LimitSettings(max_message_bytes=10_000)


def test_attachment_size_counts_base64_overhead() -> None:
    # 7000 bytes are 9336 as base64; 7500 are 10000, which with the rest is over.
    parse_send(body(attachments=[attachment(content=b64(b"x" * 7000))]), SMALL)
    with pytest.raises(PayloadTooLarge):
        parse_send(body(attachments=[attachment(content=b64(b"x" * 7500))]), SMALL)


def test_size_sums_all_attachments() -> None:
    parts = [attachment(content=b64(b"x" * 3000)) for _ in range(3)]
    with pytest.raises(PayloadTooLarge):
        parse_send(body(attachments=parts), SMALL)


def test_body_size_is_utf8_bytes() -> None:
    parse_send(body(text="e" * 6000, html="<p>" + "e" * 3000), SMALL)
    with pytest.raises(PayloadTooLarge):
        parse_send(body(text="é" * 6000), SMALL)


def test_size_wins_over_validation_errors() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_send(body(from_=DROP, text="x" * 20_000), SMALL)


def test_default_limit_is_ten_megabytes() -> None:
    big = b64(b"\0" * (8 * 1024 * 1024))  # 8 MiB decoded: over 10 MiB as base64
    with pytest.raises(PayloadTooLarge):
        parse_send(body(attachments=[attachment(content=big)]), LIMITS)


# -- batch -----------------------------------------------------------------------------------


def test_python_sdk_batch() -> None:
    results = parse_batch(
        {
            "base": {"from": {"email": "a@example.com"}, "subject": "S", "text": "T"},
            "requests": [{"custom_variables": {"k": "v"}, "to": [{"email": "b@example.com"}]}],
        },
        LIMITS,
    )
    assert results == [
        MessageDraft(
            sender=Address("a@example.com"),
            to=(Address("b@example.com"),),
            subject="S",
            text="T",
            custom_variables={"k": "v"},
        )
    ]


def test_node_batch_without_base_and_reply_to_array() -> None:
    results = parse_batch(
        {"requests": [body(reply_to=[{"email": "r@example.com"}])]},
        LIMITS,
    )
    assert isinstance(results[0], MessageDraft)
    assert results[0].reply_to == Address("r@example.com")


def test_request_fields_replace_base_fields_wholesale() -> None:
    base = {
        "from": {"email": "a@example.com", "name": "Base"},
        "subject": "Base subject",
        "text": "Base text",
        "headers": {"X-Base": "1"},
        "custom_variables": {"base": "1"},
        "attachments": [attachment(filename="base.txt")],
    }
    request = {
        "to": [{"email": "b@example.com"}],
        "from": {"email": "c@example.com"},  # no name: the base name is not inherited
        "headers": {"X-Request": "2"},
        "custom_variables": {"request": "2"},
        "attachments": [attachment(filename="request.txt")],
    }
    (draft,) = parse_batch({"base": base, "requests": [request]}, LIMITS)
    assert isinstance(draft, MessageDraft)
    assert draft.sender == Address("c@example.com")
    assert draft.headers == (("X-Request", "2"),)
    assert draft.custom_variables == {"request": "2"}
    assert [a.filename for a in draft.attachments] == ["request.txt"]
    assert (draft.subject, draft.text) == ("Base subject", "Base text")


def test_request_null_clears_the_base_field() -> None:
    base = {"from": {"email": "a@example.com"}, "subject": "S", "text": "T"}
    request = {"to": [{"email": "b@example.com"}], "subject": None}
    (result,) = parse_batch({"base": base, "requests": [request]}, LIMITS)
    assert isinstance(result, ValidationFailed)
    assert result.errors == ["'subject' is required"]


def test_per_request_results_in_order() -> None:
    base = {"from": {"email": "a@example.com"}, "subject": "S", "text": "T"}
    requests: list[object] = [
        {"to": [{"email": "b@example.com"}]},
        {"to": [{"email": "bad"}], "subject": ""},
        "not an object",
        {"cc": [{"email": "c@example.com"}], "text": "x" * 20_000},
        {"template_uuid": "uuid-1", "to": [{"email": "d@example.com"}]},
        {"bcc": [{"email": "e@example.com"}]},
    ]
    results = parse_batch({"base": base, "requests": requests}, SMALL)
    assert [type(r) for r in results] == [
        MessageDraft,
        ValidationFailed,
        ValidationFailed,
        PayloadTooLarge,
        ValidationFailed,
        MessageDraft,
    ]
    errors = [r.errors for r in results if isinstance(r, ValidationFailed)]
    assert errors == [
        ["address is invalid in 'to' 0", "'subject' is required"],
        ["request must be a JSON object"],
        [
            "'subject' is not allowed with 'template_uuid'",
            "'text' is not allowed with 'template_uuid'",
        ],
    ]
    assert all(r.__traceback__ is None for r in results if isinstance(r, Exception))


def test_every_item_failing_is_still_a_list() -> None:
    results = parse_batch({"requests": [{}, {}]}, LIMITS)
    assert [len(r.errors) for r in results if isinstance(r, ValidationFailed)] == [4, 4]


def test_base_unknown_keys_are_ignored() -> None:
    base = {"from": {"email": "a@example.com"}, "subject": "S", "text": "T", "foo": "bar"}
    (draft,) = parse_batch(
        {"base": base, "requests": [{"to": [{"email": "b@example.com"}]}]}, LIMITS
    )
    assert isinstance(draft, MessageDraft)


def _batch_errors(payload: object, limits: LimitSettings = LIMITS) -> list[str]:
    with pytest.raises(ValidationFailed) as info:
        parse_batch(payload, limits)
    return info.value.errors


ONE_REQUEST = [body()]

BATCH_ERROR_CASES: list[tuple[str, object, list[str]]] = [
    ("body not object", [body()], ["request body must be a JSON object"]),
    ("requests missing", {"base": {}}, ["empty field: 'requests'"]),
    ("requests null", {"requests": None}, ["empty field: 'requests'"]),
    ("requests empty", {"requests": []}, ["empty field: 'requests'"]),
    ("requests object", {"requests": body()}, ["'requests' must be an array"]),
    (
        "too many requests",
        {"requests": [body()] * 501},
        ["'requests' must contain at most 500 items"],
    ),
    ("base not object", {"base": [], "requests": ONE_REQUEST}, ["'base' must be an object"]),
    (
        "base with to",
        {"base": {"to": [{"email": "b@example.com"}]}, "requests": ONE_REQUEST},
        ["'base' must not contain 'to'"],
    ),
    (
        "base with cc and bcc, and no requests",
        {"base": {"cc": [{"email": "c@example.com"}], "bcc": {"email": "d@example.com"}}},
        [
            "'base' must not contain 'cc'",
            "'base' must not contain 'bcc'",
            "empty field: 'requests'",
        ],
    ),
]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [pytest.param(payload, expected, id=name) for name, payload, expected in BATCH_ERROR_CASES],
)
def test_batch_general_errors(payload: object, expected: list[str]) -> None:
    assert _batch_errors(payload) == expected


def test_batch_limit_is_inclusive_and_configurable() -> None:
    assert len(parse_batch({"requests": [body()] * 500}, LIMITS)) == 500
    limits = LimitSettings(max_batch_requests=2)
    assert _batch_errors({"requests": [body()] * 3}, limits) == [
        "'requests' must contain at most 2 items"
    ]


def test_batch_base_template_applies_to_requests() -> None:
    base = {"from": {"email": "a@example.com"}, "template_uuid": "uuid-1"}
    requests = [
        {"to": [{"email": "b@example.com"}], "template_variables": {"n": i}} for i in range(2)
    ]
    drafts = parse_batch({"base": base, "requests": requests}, LIMITS)
    assert [d.template_variables for d in drafts if isinstance(d, MessageDraft)] == [
        {"n": 0},
        {"n": 1},
    ]


# -- header injection: a property over every string that reaches a header ------------------

INJECTIONS = [
    "\r",
    "\n",
    "\r\n",
    "\x00",
    "\u2028",
    "\u2029",
    "\x85",
    "\x0b",
    "=?utf-8?q?a=0D=0Ab?=",
    "=?utf-8?b?DQo=?=",
    "\r\nBcc: evil@example.com",
    "\n\n<script>",
]
LINE_BREAKING = ("\r", "\n", "\x00", "\u2028", "\u2029", "\x85", "\x0b")

nasty = st.one_of(
    st.text(max_size=20),
    st.sampled_from(INJECTIONS),
    st.builds(
        lambda head, injection, tail: head + injection + tail,
        st.text(max_size=8),
        st.sampled_from(INJECTIONS),
        st.text(max_size=8),
    ),
    st.builds(
        lambda local, injection: f"{local}{injection}@example.com",
        st.sampled_from(["b", "b.c", ""]),
        st.sampled_from(INJECTIONS),
    ),
)

TARGETS = [
    "subject",
    "from.name",
    "from.email",
    "to.email",
    "to.name",
    "cc.email",
    "reply_to.email",
    "reply_to.name",
    "header.name",
    "header.value",
    "attachment.filename",
    "attachment.content_id",
    "attachment.type",
    "category",
]


def _inject(payload: dict[str, Any], target: str, value: str) -> None:
    """Put ``value`` into the field named by ``target`` of a valid body."""
    if target == "header.name":
        payload["headers"] = {value: "1"}
    elif target == "header.value":
        payload["headers"] = {"X-Test": value}
    elif target.startswith("attachment."):
        payload["attachments"] = [attachment(**{target.split(".")[1]: value})]
    elif "." in target:
        field, key = target.split(".")
        entry = {"email": f"{field}@example.com", key: value}
        payload[field] = entry if field in ("from", "reply_to") else [entry]
    else:
        payload[target] = value


def _strings(value: object) -> Iterator[str]:
    """Every string inside a draft (dataclasses, tuples, dicts), bodies excluded."""
    if isinstance(value, str):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            if item.name not in ("text", "html"):
                yield from _strings(getattr(value, item.name))
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(key)
            yield from _strings(item)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(TARGETS), nasty), min_size=1, max_size=4))
def test_no_line_break_reaches_a_header(injections: list[tuple[str, str]]) -> None:
    payload = body()
    for target, value in injections:
        _inject(payload, target, value)
    try:
        draft = parse_send(payload, LIMITS)
    except ValidationFailed:
        return
    for text in _strings(draft):
        assert not any(ch in text for ch in LINE_BREAKING), text


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: (
            st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
        ),
    )
)
def test_any_json_is_parsed_or_refused(value: object) -> None:
    # Whatever JSON arrives in any field, the parser answers with a contract error, never
    # with an unexpected exception.
    for field in (
        "from",
        "to",
        "reply_to",
        "subject",
        "headers",
        "attachments",
        "custom_variables",
        "template_variables",
        "template_uuid",
    ):
        try:
            parse_send(body(**{field: value}), LIMITS)
        except ValidationFailed as exc:
            assert exc.errors


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("hello world", b"hello world"),  # the Node SDK's verbatim string content
        ("aGVsb", b"aGVsb"),  # not base64 (impossible length): the text itself
        ("-_-_", b"-_-_"),
        ("aGk=aGk=", b"aGk=aGk="),
        ("h\u00e9llo", "h\u00e9llo".encode()),
        ("aGVsbG8=", b"hello"),  # valid base64 is decoded, as the contract says
        ("aGVs\r\nbG8", b"hello"),  # line breaks and missing padding are fine
    ],
)
def test_attachment_content_that_is_not_base64_is_taken_as_text(
    content: str, expected: bytes
) -> None:
    draft = parse_send(body(attachments=[attachment(content=content)]), LimitSettings())
    assert draft.attachments[0].content == expected


# --- the cached address check (payload._valid_address) ------------------------------------

address_text = st.one_of(
    st.sampled_from(["a@example.com", "Ünï@exämple.com", "bad", "a@b", "", " a@example.com"]),
    st.text(alphabet='ab@.é\r\n\x00 <>"', max_size=12),
)
address_values = st.one_of(
    st.fixed_dictionaries(
        {
            "email": st.one_of(
                st.sampled_from(["a@example.com", "b.c@example.org", "Ünï@exämple.com"]),
                address_text,
                st.none(),
                st.integers(),
            )
        },
        optional={
            "name": st.one_of(
                st.sampled_from(["", "Ada", "Ünï Ädä", "A\r\nBcc: x", "A\x00", "\u2028"]),
                st.sampled_from(["A\r\nBcc: x", "A\x00", "\u2028"]),
                address_text,
                st.none(),
                st.integers(),
            )
        },
    ),
    st.none(),
    st.text(max_size=5),
)


@settings(max_examples=500)
@given(value=address_values, repeat=st.booleans())
def test_cached_address_check_matches_the_full_check(value: object, repeat: bool) -> None:
    """The Address, the errors and the counted size are what the uncached path gives,
    on a first look and on a repeat (from the cache)."""
    fast = payload._MessageParser({}, LIMITS)
    slow = payload._MessageParser({}, LIMITS)
    say = payload._prefixed("from")
    if repeat:
        fast._address(value, say)
        fast = payload._MessageParser({}, LIMITS)
    assert fast._address(value, say) == slow._checked_address(value, say)
    assert (fast._errors, fast._size) == (slow._errors, slow._size)
