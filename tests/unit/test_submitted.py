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


def _throttle(clock: list[float], **overrides: float) -> AuthThrottle:
    policy = {
        "max_failures": 2,
        "window": 60.0,
        "failure_delay": 1.0,
        "tarpit_after": 3,
        "max_delay": 8.0,
        **overrides,
    }
    return AuthThrottle(**policy, clock=lambda: clock[0])  # type: ignore[arg-type]


def test_auth_lockout_is_per_credentials_and_client_and_slides() -> None:
    now = [0.0]
    throttle = _throttle(now)
    wrong = throttle.credential("192.0.2.1", b"api", b"wrong")
    throttle.failed("192.0.2.1", wrong)
    assert not throttle.locked(wrong)
    now[0] = 30.0
    throttle.failed("192.0.2.1", wrong)
    assert throttle.locked(wrong)
    assert not throttle.locked(throttle.credential("192.0.2.1", b"api", b"right"))
    assert not throttle.locked(throttle.credential("192.0.2.2", b"api", b"wrong"))
    now[0] = 61.0  # the first failure left the window
    assert not throttle.locked(wrong)


def test_auth_tarpit_doubles_up_to_its_cap_and_spares_known_good_credentials() -> None:
    now = [0.0]
    throttle = _throttle(now)
    good = throttle.credential("192.0.2.1", b"api", b"right")
    throttle.succeeded(good)
    fresh = throttle.credential("192.0.2.1", b"api", b"other")
    delays = []
    for n in range(7):
        throttle.failed("192.0.2.1", throttle.credential("192.0.2.1", b"api", str(n).encode()))
        delays.append(throttle.delay("192.0.2.1", fresh))
    assert delays == [0.0, 0.0, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.delay("192.0.2.1", good) == 0.0
    assert throttle.delay("192.0.2.9", throttle.credential("192.0.2.9", b"api", b"x")) == 0.0


def test_one_client_repeating_its_wrong_password_locks_itself_and_slows_nobody() -> None:
    throttle = _throttle([0.0], tarpit_after=2)
    wrong = throttle.credential("192.0.2.1", b"api", b"old-token")
    for _ in range(20):
        throttle.failed("192.0.2.1", wrong)
    assert throttle.locked(wrong)
    neighbour = throttle.credential("192.0.2.1", b"api", b"new-login")
    assert throttle.delay("192.0.2.1", neighbour) == 0.0


def test_ipv6_clients_count_by_their_64() -> None:
    throttle = _throttle([0.0], tarpit_after=1)
    throttle.failed("2001:db8:1:2::1", throttle.credential("2001:db8:1:2::1", b"a", b"b"))
    neighbour = throttle.credential("2001:db8:1:2::ffff", b"a", b"c")
    assert throttle.delay("2001:db8:1:2::ffff", neighbour) == 1.0
    assert throttle.delay("2001:db8:1:3::1", neighbour) == 0.0


def test_auth_throttle_memory_is_bounded() -> None:
    throttle = AuthThrottle(
        max_failures=1,
        window=60.0,
        failure_delay=0.0,
        tarpit_after=1,
        max_delay=0.0,
        clock=lambda: 0.0,
        max_keys=3,
    )
    for n in range(10):
        address = f"192.0.2.{n}"
        throttle.failed(address, throttle.credential(address, b"api", b"x"))
    assert len(throttle._by_address) <= 3 and len(throttle._by_pair) <= 3
    assert throttle.locked(throttle.credential("192.0.2.9", b"api", b"x"))
