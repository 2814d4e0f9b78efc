"""domain/submitted.py: what a message submitted over SMTP keeps, loses and is refused for."""

from __future__ import annotations

from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import default

import pytest

from postroom.domain.messages import Address
from postroom.domain.submitted import Refused, complete_message, parse_submission
from postroom.submission.throttle import AuthThrottle

NOW = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def message(*headers: str, body: str = "Hello.\r\n") -> bytes:
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


BASIC = (
    "From: Shop <shop@example.com>",
    "To: Ann <ann@example.org>, bob@example.org",
    "Subject: Your order",
)


def test_envelope_decides_the_recipients_and_their_kind() -> None:
    raw = message(*BASIC, "Cc: carol@example.org")
    draft = parse_submission(
        raw, ["Ann@Example.org", "carol@example.org", "dave@example.net", "bob@example.org"]
    )
    assert draft.sender == Address("shop@example.com", "Shop")
    assert draft.to == (Address("Ann@Example.org", "Ann"), Address("bob@example.org"))
    assert draft.cc == (Address("carol@example.org"),)
    assert draft.bcc == (Address("dave@example.net"),)
    assert draft.subject == "Your order" and draft.text == "Hello.\n"
    assert draft.raw == raw  # nothing to change: the client's bytes, as they are


def test_bcc_return_path_and_mailtrap_headers_are_removed_with_their_folded_lines() -> None:
    raw = message(
        "Return-Path: <forged@example.com>",
        *BASIC,
        "Bcc: hidden@example.net,",
        " other-hidden@example.net",
        "X-MT-Category: Welcome",
        'X-MT-Custom-Variables: {"user_id": 7, "plan": ["pro", "x"], "nested": {"a": 1}}',
        "X-Keep: yes",
    )
    draft = parse_submission(raw, ["ann@example.org", "hidden@example.net"])
    assert draft.raw is not None
    assert b"hidden" not in draft.raw and b"X-MT-" not in draft.raw
    assert b"Return-Path" not in draft.raw and b"X-Keep: yes\r\n" in draft.raw
    assert draft.category == "Welcome"
    assert draft.custom_variables == {"user_id": 7, "plan": "pro"}


@pytest.mark.parametrize(
    "value",
    [
        "not json",
        "[1, 2]",
        '{"a": "' + "x" * 600 + '",\r\n "b": "' + "x" * 600 + '"}',
        # Nested deeper than the JSON decoder recurses: unreadable, not a 451 for ever.
        '{"a":' + "\r\n ".join(["[" * 900] * 4),
    ],
    ids=["bad", "array", "big", "deep"],
)
def test_unusable_custom_variables_are_ignored(value: str) -> None:
    raw = message(*BASIC, f"X-MT-Custom-Variables: {value}")
    assert parse_submission(raw, ["ann@example.org"]).custom_variables == {}


def test_long_category_is_refused() -> None:
    with pytest.raises(Refused, match="category"):
        parse_submission(message(*BASIC, "X-MT-Category: " + "c" * 256), ["ann@example.org"])


@pytest.mark.parametrize(
    ("headers", "kept"),
    [
        (("Message-ID: <abc@example.com>",), True),
        (("Message-ID: not-an-id",), False),
        (("Message-ID: <a@example.com>", "Message-ID: <b@example.com>"), False),
        (("Message-ID: <" + "a" * 250 + "@example.com>",), False),
    ],
)
def test_a_valid_single_message_id_is_kept_others_replaced(
    headers: tuple[str, ...], kept: bool
) -> None:
    draft = parse_submission(message(*BASIC, *headers), ["ann@example.org"])
    assert draft.raw is not None
    raw, message_id = complete_message(draft.raw, message_id="<ours@example.com>", date=NOW)
    parsed = BytesParser(policy=default).parsebytes(raw)
    assert message_id == ("<abc@example.com>" if kept else "<ours@example.com>")
    assert parsed.get_all("Message-ID") == [message_id]
    assert parsed["Date"] == "Thu, 26 Nov 2026 10:00:00 +0000"


def test_a_client_date_is_kept() -> None:
    raw = message(*BASIC, "Date: Wed, 25 Nov 2026 09:00:00 +0100")
    completed, _ = complete_message(raw, message_id="<ours@example.com>", date=NOW)
    assert BytesParser(policy=default).parsebytes(completed).get_all("Date") == [
        "Wed, 25 Nov 2026 09:00:00 +0100"
    ]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (message("Subject: no sender"), "From"),
        (message(*BASIC, "From: second@example.com"), "From"),
        (message("From: a@example.com, b@example.com", "Subject: x"), "From"),
        (message("From: not an address", "Subject: x"), "From"),
        (b"From: a@example.com\nSubject: x\r\n\r\nbody\r\n", "bare"),
        (b"From: a@example.com\r\nSubject: x\rY\r\n\r\nbody\r\n", "bare"),
        (b"From: a@example.com\r\nSubject: \x00\r\n\r\nbody\r\n", "NUL"),
        (message(*BASIC, "X-Long: " + "x" * 991), "998"),
        (message(*BASIC, "this is not a header"), "malformed"),
    ],
)
def test_refused_headers(raw: bytes, reason: str) -> None:
    with pytest.raises(Refused, match=reason):
        parse_submission(raw, ["ann@example.org"])


@pytest.mark.parametrize(
    "ending", [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\r\n\n"]
)
def test_smuggling_shapes_in_the_body_are_refused(ending: bytes) -> None:
    raw = message(*BASIC, body="text") + ending + b"MAIL FROM:<x>\r\n"
    with pytest.raises(Refused, match="bare"):
        parse_submission(raw, ["ann@example.org"])


def test_a_dot_line_with_crlf_and_lone_lf_elsewhere_in_a_line_are_accepted() -> None:
    # A (de-stuffed) line holding a dot, ended properly, is ordinary content.
    raw = message(*BASIC, body="before\r\n.\r\nafter\r\n")
    assert parse_submission(raw, ["ann@example.org"]).raw == raw


def test_utf8_headers() -> None:
    raw = message("From: Zoë <zoë@exämple.com>", "To: josé@exämple.org", "Subject: Grüße")
    draft = parse_submission(raw, ["josé@exämple.org"])
    assert draft.sender == Address("zoë@exämple.com", "Zoë")
    assert draft.subject == "Grüße" and draft.to == (Address("josé@exämple.org"),)


def test_auth_throttle_window_slides() -> None:
    now = [0.0]
    throttle = AuthThrottle(2, 60.0, clock=lambda: now[0])
    throttle.failed("192.0.2.1")
    assert not throttle.blocked("192.0.2.1")
    now[0] = 30.0
    throttle.failed("192.0.2.1")
    assert throttle.blocked("192.0.2.1") and not throttle.blocked("192.0.2.2")
    now[0] = 61.0  # the first failure left the window
    assert not throttle.blocked("192.0.2.1")
    now[0] = 91.0
    assert not throttle.blocked("192.0.2.1") and throttle._failures == {}


def test_auth_throttle_memory_is_bounded() -> None:
    throttle = AuthThrottle(1, 60.0, clock=lambda: 0.0, max_addresses=3)
    for n in range(10):
        throttle.failed(f"192.0.2.{n}")
    assert len(throttle._failures) <= 3 and throttle.blocked("192.0.2.9")
