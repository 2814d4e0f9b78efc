"""Parsing received mail for inbound inboxes, and the spam rules."""

from __future__ import annotations

from postroom.domain.inboundmail import parse, spam_rules, spam_score

PASS = {
    "spf": {"result": "pass"},
    "dkim": {"result": "pass"},
    "dmarc": {"result": "pass"},
}


def test_parse_multipart_with_attachments() -> None:
    raw = (
        b"From: =?utf-8?q?Ren=C3=A9?= <rene@example.com>\r\n"
        b"To: a@x.test, B <b@x.test>\r\n"
        b"Reply-To: r@example.com\r\n"
        b"Subject: =?utf-8?q?Caf=C3=A9?=\r\n"
        b"Message-ID: <m@example.com>\r\n"
        b"In-Reply-To: <p@example.com>\r\n"
        b"Date: Mon, 07 Dec 2026 00:00:00 +0000\r\n"
        b"X-Twice: one\r\n"
        b"X-Twice: two\r\n"
        b"Content-Type: multipart/mixed; boundary=B\r\n"
        b"\r\n"
        b"--B\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n"
        b"\r\n"
        b"Caf=C3=A9\r\n"
        b"--B\r\n"
        b"Content-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="run.exe"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b"\r\n"
        b"TVo=\r\n"
        b"--B--\r\n"
    )
    mail = parse(raw)
    assert mail.sender == "rene@example.com" and mail.from_domain == "example.com"
    assert mail.to == ["a@x.test", "b@x.test"] and mail.reply_to == "r@example.com"
    assert mail.subject == "Café" and mail.text is not None and mail.text.strip() == "Café"
    assert mail.html is None
    assert mail.headers["x-twice"] == "one, two"
    [attachment] = mail.attachments
    assert attachment.filename == "run.exe" and attachment.data == b"MZ"
    assert attachment.as_json()["content_disposition"] == "attachment"
    summary = mail.summary()
    assert summary["text_size"] == len(mail.text.encode()) and summary["html_size"] == 0
    assert spam_rules(mail, PASS) == ["RISKY_ATTACHMENT"]
    assert spam_score(["RISKY_ATTACHMENT"]) == 5.0


def test_a_bare_message_hits_the_shape_rules() -> None:
    mail = parse(b"Subject:\r\n\r\n")
    rules = spam_rules(mail, {"spf": {"result": "softfail"}, "dkim": {"result": "fail"}})
    assert rules == [
        "SPF_SOFTFAIL",
        "DKIM_INVALID",
        "NO_FROM",
        "NO_MESSAGE_ID",
        "NO_DATE",
        "EMPTY_MESSAGE",
    ]
    assert spam_score(rules) == 6.5


def test_html_only_and_undecodable_parts_do_not_raise() -> None:
    raw = (
        b"From: a@example.com\r\nContent-Type: text/html; charset=no-such-charset\r\n\r\n"
        b"<p>hi</p>\r\n"
    )
    mail = parse(raw)
    assert mail.html is not None and "hi" in mail.html and mail.text is None
    assert "HTML_ONLY" in spam_rules(mail, PASS)
