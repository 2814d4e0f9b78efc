"""domain/mimepolicy.py: the remembering policy reads messages as ``policy.default`` does."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

from hypothesis import given, settings
from hypothesis import strategies as st

from postroom.domain.mimepolicy import MAX_REMEMBERED, MEMO

_TYPES = [
    "text/plain",
    'text/plain; charset="utf-8"',
    "text/plain; charset=iso-8859-1; format=flowed",
    "text/html; charset=UTF-8",
    "TEXT/HTML",
    "text/plain; charset=unknown-8bit",
    "text/plain;\r\n charset=us-ascii",
    "application/octet-stream; name=a.bin",
    "text/plain; charset=",
    "garbage",
]
_ENCODINGS = ["7bit", "8bit", "quoted-printable", "base64", "x-unknown", ""]
_BODIES = st.sampled_from(
    [b"hello\r\n", b"caf=C3=A9 =\r\nsoft\r\n", b"aGVsbG8=\r\n", b"\xe9t\xe9\r\n"]
)


@st.composite
def messages(draw: st.DrawFn) -> bytes:
    """Single-part or multipart/alternative messages with awkward headers."""

    def part() -> bytes:
        ctype = draw(st.sampled_from(_TYPES))
        cte = draw(st.sampled_from(_ENCODINGS))
        head = f"Content-Type: {ctype}\r\n"
        if cte:
            head += f"Content-Transfer-Encoding: {cte}\r\n"
        return head.encode() + b"\r\n" + draw(_BODIES)

    head = b"From: A <a@example.com>\r\nTo: b@example.org\r\nSubject: =?utf-8?q?h=C3=A9?=\r\n"
    if draw(st.booleans()):
        return head + part()
    parts = [part() for _ in range(draw(st.integers(1, 3)))]
    body = b"".join(b"--XX\r\n" + p for p in parts) + b"--XX--\r\n"
    return head + b'Content-Type: multipart/alternative; boundary="XX"\r\n\r\n' + body


def _reading(message: EmailMessage) -> list[object]:
    seen: list[object] = []
    for part in message.walk():
        seen += [str(part["Content-Type"]), part.get_content_type(), part.get_params()]
        seen += [part.get_content_charset(), part.get_filename(), len(part.defects)]
    for subtype in ("plain", "html"):
        try:
            body = message.get_body(preferencelist=(subtype,))
            seen.append(body.get_content() if body is not None else None)
        except (LookupError, ValueError, AttributeError, KeyError) as error:
            seen.append(type(error))
    seen += [str(message["Subject"]), str(message["From"])]
    return seen


@settings(max_examples=150, deadline=None)
@given(messages())
def test_messages_read_the_same_as_under_the_default_policy(raw: bytes) -> None:
    plain = BytesParser(policy=policy.default).parsebytes(raw)
    remembered = BytesParser(policy=MEMO).parsebytes(raw)
    assert isinstance(plain, EmailMessage) and isinstance(remembered, EmailMessage)
    assert _reading(remembered) == _reading(plain)
    assert remembered.as_bytes() == plain.as_bytes()


def test_a_changed_message_leaves_others_with_the_same_header_alone() -> None:
    raw = b"Content-Type: text/plain; charset=us-ascii\r\n\r\nhi\r\n"
    first, second = (BytesParser(policy=MEMO).parsebytes(raw) for _ in range(2))
    assert first["Content-Type"] is second["Content-Type"]  # the shared reading
    first.set_param("charset", "utf-8")
    assert first.get_content_charset() == "utf-8"
    assert second.get_content_charset() == "us-ascii"


def test_long_values_are_parsed_each_time() -> None:
    to = ", ".join(f"u{i}@example.org" for i in range(MAX_REMEMBERED // 10))
    message = BytesParser(policy=MEMO).parsebytes(f"To: {to}\r\n\r\n".encode())
    assert message["To"] is not message["To"]
    assert len(message["To"].addresses) == MAX_REMEMBERED // 10
