"""The official ``mailtrap`` Python SDK against a real ``postroom serve`` over HTTPS.

One server per module (see conftest ``instance``): a private CA, both listeners, the
delivery worker capturing into the default sandbox inbox. The SDK is pointed at it the
way spec §8.1 documents (``api_host``, ``mailtrap.client.GENERAL_HOST``,
``REQUESTS_CA_BUNDLE``), and nothing else about it is patched.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import ssl
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from pathlib import Path
from typing import Any, TypeVar

import httpx
import mailtrap as mt
import pytest
from server import Instance, TlsFiles, printed_commands, printed_python, start_server

pytestmark = pytest.mark.slow

T = TypeVar("T")

SUBJECT = "Grüße 👋 テスト"
TEXT = "Hello Jörg,\nyour report is attached.\n"
HTML = '<p>Hello <b>Jörg</b>,</p><img src="cid:logo" alt="logo"><p>see attachment</p>'
SENDER = mt.Address(email="reports@example.com", name="Postroom Bericht")
TO = [mt.Address(email="alice@example.org", name="Alice"), mt.Address(email="bob@example.net")]
CC = [mt.Address(email="carol@example.org")]
BCC = [mt.Address(email="dave@example.org")]
REPLY_TO = mt.Address(email="support@example.com", name="Support")
PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def _png() -> bytes:
    """A valid 1x1 PNG (red pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


PNG = _png()


def _client(instance: Instance, **kwargs: Any) -> mt.MailtrapClient:
    kwargs.setdefault("api_host", instance.host)
    return mt.MailtrapClient(token=instance.token, account_id=str(instance.account_id), **kwargs)


def _eventually(fn: Callable[[], T | None], timeout: float = 10, what: str = "condition") -> T:
    """Call ``fn`` until it returns something other than None (API errors count as not yet)."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = fn()
        except mt.APIError as exc:
            last_error, value = exc, None
        if value is not None:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s; last error: {last_error!r}")


def _wait_queue_drained(instance: Instance) -> None:
    """Wait until the worker has taken every queued delivery (so inboxes stop changing)."""

    def drained() -> bool | None:
        queued = instance.store.scalar("SELECT count(*) FROM deliveries WHERE state = 'queued'")
        return True if queued == 0 else None

    _eventually(drained, what="empty delivery queue")


def _parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    return message


def _text(part: MIMEPart) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_send_full_message_is_captured_with_exact_mime(instance: Instance) -> None:
    """client.send() with every field: 4 ids, captured once, and the stored MIME is exact."""
    client = _client(instance)
    response = client.send(
        mt.Mail(
            sender=SENDER,
            to=TO,
            cc=CC,
            bcc=BCC,
            reply_to=REPLY_TO,
            subject=SUBJECT,
            text=TEXT,
            html=HTML,
            attachments=[
                mt.Attachment(
                    content=base64.b64encode(PNG),
                    filename="logo.png",
                    disposition=mt.Disposition.INLINE,
                    mimetype="image/png",
                    content_id="logo",
                ),
                mt.Attachment(
                    content=base64.b64encode(PDF),
                    filename="report.pdf",
                    disposition=mt.Disposition.ATTACHMENT,
                    mimetype="application/pdf",
                ),
            ],
            headers={"X-Campaign": "spring"},
            custom_variables={"user_id": 42, "plan": "pro"},
            category="reports",
        )
    )
    assert response["success"] is True
    ids = response["message_ids"]
    assert isinstance(ids, list) and len(ids) == 4 and len(set(ids)) == 4
    kinds = {
        row.id: (row.recipient_kind, row.recipient, row.stream)
        for row in instance.store.rows(
            "SELECT id, recipient_kind, recipient, stream FROM deliveries WHERE message_id = :m",
            m=ids[0],
        )
    }
    assert [kinds[i] for i in ids] == [
        ("to", "alice@example.org", "transactional"),
        ("to", "bob@example.net", "transactional"),
        ("cc", "carol@example.org", "transactional"),
        ("bcc", "dave@example.org", "transactional"),
    ]
    stored = instance.store.rows(
        "SELECT category, custom_variables FROM messages WHERE id = :m", m=ids[0]
    )[0]
    assert stored.category == "reports"
    assert json.loads(stored.custom_variables) == {"user_id": 42, "plan": "pro"}

    # The worker captures asynchronously into the default inbox: poll the SDK.
    messages_api = client.testing_api.messages

    def captured() -> Any:
        found = [m for m in messages_api.get_list(instance.inbox_id) if m.subject == SUBJECT]
        return found or None

    [summary] = _eventually(captured, what="capture of the sent message")
    assert summary.inbox_id == instance.inbox_id
    assert summary.from_email == "reports@example.com"
    assert summary.from_name == "Postroom Bericht"
    assert summary.to_email == "alice@example.org"
    assert summary.is_read is False
    assert summary.html_body_size > 0 and summary.text_body_size > 0

    base = f"/api/accounts/{instance.account_id}/inboxes/{instance.inbox_id}/messages/{summary.id}"
    with instance.http() as http:
        raw_response = http.get(f"{base}/body.raw")
        eml_response = http.get(f"{base}/body.eml")
    assert raw_response.status_code == 200, raw_response.text
    assert eml_response.status_code == 200, eml_response.text
    assert eml_response.headers["content-type"].startswith("message/rfc822")
    assert eml_response.content == raw_response.content
    message = _parse(raw_response.content)

    assert message["Subject"] == SUBJECT
    [sender] = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Postroom Bericht", "reports@example.com")
    to = [(a.display_name, a.addr_spec) for a in message["To"].addresses]
    assert to == [("Alice", "alice@example.org"), ("", "bob@example.net")]
    assert [a.addr_spec for a in message["Cc"].addresses] == ["carol@example.org"]
    assert "Bcc" not in message
    assert b"dave@example.org" not in raw_response.content
    [reply_to] = message["Reply-To"].addresses
    assert (reply_to.display_name, reply_to.addr_spec) == ("Support", "support@example.com")
    assert message["X-Campaign"] == "spring"
    assert message["Message-ID"] and message["Message-ID"].startswith("<")
    assert message["Date"] and message["Date"].datetime is not None
    assert message["MIME-Version"] == "1.0"

    # multipart/mixed [ alternative [ text, related [ html, inline png ] ], pdf ]
    assert message.get_content_type() == "multipart/mixed"
    alternative, pdf = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    plain, related = alternative.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert _text(plain) == TEXT
    assert related.get_content_type() == "multipart/related"
    html, image = related.iter_parts()
    assert html.get_content_type() == "text/html"
    assert _text(html).rstrip("\n") == HTML
    assert image.get_content_type() == "image/png"
    assert image["Content-ID"] == "<logo>"
    assert image.get_content_disposition() == "inline"
    assert image.get_content() == PNG
    assert pdf.get_content_type() == "application/pdf"
    assert pdf.get_content_disposition() == "attachment"
    assert pdf.get_filename() == "report.pdf"
    assert pdf.get_content() == PDF


def test_batch_send_reports_each_request(instance: Instance) -> None:
    """client.batch_send(): per-request results in order; an invalid request fails alone."""
    client = _client(instance)
    result = client.batch_send(
        mt.BatchSendEmailParams(
            base=mt.BatchMail(sender=SENDER, subject="Batch base", text="Base text"),
            requests=[
                mt.BatchEmailRequest(to=[mt.Address(email="one@example.org")]),
                mt.BatchEmailRequest(
                    to=[mt.Address(email="two@example.org")],
                    cc=[mt.Address(email="two-cc@example.org")],
                    subject="Overridden subject",
                    custom_variables={"n": 2},
                ),
                mt.BatchEmailRequest(to=[mt.Address(email="not-an-email")]),
            ],
        )
    )
    assert result["success"] is True
    first, second, third = result["responses"]
    assert first["success"] is True and len(first["message_ids"]) == 1
    assert second["success"] is True and len(second["message_ids"]) == 2
    assert third["success"] is False
    assert third["errors"] == ["address is invalid in 'to' 0"]
    assert not third.get("message_ids")
    subjects = {
        row.id: row.subject
        for row in instance.store.rows(
            "SELECT id, subject FROM messages WHERE id IN (:a, :b)",
            a=first["message_ids"][0],
            b=second["message_ids"][0],
        )
    }
    assert subjects == {
        first["message_ids"][0]: "Batch base",
        second["message_ids"][0]: "Overridden subject",
    }


def test_bulk_listener_puts_mail_on_the_bulk_stream(instance: Instance) -> None:
    """A client whose api_host is the bulk port sends on the bulk stream; the main port does not."""
    mail = mt.Mail(
        sender=SENDER, to=[mt.Address(email="news@example.org")], subject="News", text="Hi"
    )
    bulk_ids = _client(instance, api_host=instance.bulk_host).send(mail)["message_ids"]
    transactional_ids = _client(instance).send(mail)["message_ids"]
    assert isinstance(bulk_ids, list) and isinstance(transactional_ids, list)

    def streams(ids: list[str]) -> set[str]:
        rows = instance.store.rows(
            "SELECT d.stream, m.stream AS message_stream FROM deliveries d "
            "JOIN messages m ON m.id = d.message_id WHERE d.id = :i",
            i=ids[0],
        )
        return {s for row in rows for s in (row.stream, row.message_stream)}

    assert streams(bulk_ids) == {"bulk"}
    assert streams(transactional_ids) == {"transactional"}


def test_sandbox_send_and_sandbox_management_api(instance: Instance) -> None:
    """Sandbox send lands in the inbox at once; messages, attachments and inboxes APIs work."""
    sandbox = _client(instance, sandbox=True, inbox_id=str(instance.inbox_id))
    response = sandbox.send(
        mt.Mail(
            sender=SENDER,
            to=TO,
            bcc=BCC,
            subject="Sandbox ✓",
            text="Plain sandbox body",
            html="<p>HTML sandbox body</p>",
            attachments=[
                mt.Attachment(
                    content=base64.b64encode(PDF), filename="report.pdf", mimetype="application/pdf"
                )
            ],
        )
    )
    assert response["success"] is True
    [sandbox_id] = response["message_ids"]
    assert isinstance(sandbox_id, str) and sandbox_id.isdigit()
    mid = int(sandbox_id)

    testing = _client(instance).testing_api
    messages, inboxes = testing.messages, testing.inboxes
    iid = instance.inbox_id
    assert iid in [inbox.id for inbox in inboxes.get_list()]

    listed = {m.id: m for m in messages.get_list(iid)}
    assert mid in listed, "a sandbox send is captured before the API answers"
    assert listed[mid].subject == "Sandbox ✓"

    shown = messages.show_message(iid, mid)
    assert (shown.id, shown.inbox_id, shown.is_read) == (mid, iid, False)
    assert (shown.from_email, shown.from_name) == ("reports@example.com", "Postroom Bericht")
    assert shown.to_email == "alice@example.org"
    assert shown.smtp_information.ok is True
    assert messages.update(iid, mid, mt.UpdateEmailMessageParams(is_read=True)).is_read is True
    assert messages.show_message(iid, mid).is_read is True

    assert messages.get_text_message(iid, mid).strip() == "Plain sandbox body"
    assert "<p>HTML sandbox body</p>" in messages.get_html_source(iid, mid)
    assert "HTML sandbox body" in messages.get_html_message(iid, mid)
    raw = messages.get_raw_message(iid, mid)
    assert "Subject:" in raw and "report.pdf" in raw
    assert messages.get_message_as_eml(iid, mid).replace("\r\n", "\n") == raw.replace("\r\n", "\n")
    headers = {k.lower(): v for k, v in messages.get_mail_headers(iid, mid).items()}
    assert "alice@example.org" in str(headers["to"])
    assert "reports@example.com" in str(headers["from"])
    assert "subject" in headers

    [attachment] = testing.attachments.get_list(iid, mid)
    assert attachment.message_id == mid
    assert attachment.filename == "report.pdf"
    assert attachment.content_type == "application/pdf"
    assert attachment.attachment_type == mt.Disposition.ATTACHMENT
    assert attachment.attachment_size == len(PDF)
    again = testing.attachments.get(iid, mid, attachment.id)
    assert (again.id, again.filename) == (attachment.id, "report.pdf")

    deleted = messages.delete(iid, mid)
    assert deleted.id == mid
    assert mid not in [m.id for m in messages.get_list(iid)]
    with pytest.raises(mt.APIError) as gone:
        messages.show_message(iid, mid)
    assert gone.value.status == 404

    # Inboxes: get, all_read, clean. Let the worker finish earlier tests' captures first,
    # so nothing lands in the inbox behind our back.
    _wait_queue_drained(instance)
    for n in range(2):
        sandbox.send(mt.Mail(sender=SENDER, to=TO, subject=f"unread {n}", text="x"))
    inbox = inboxes.get_by_id(iid)
    assert inbox.id == iid and inbox.emails_count >= 2 and inbox.emails_unread_count >= 2
    read = inboxes.mark_as_read(iid)
    assert read.id == iid and read.emails_unread_count == 0
    assert all(m.is_read for m in messages.get_list(iid))
    cleaned = inboxes.clean(iid)
    assert cleaned.id == iid and cleaned.emails_count == 0
    assert messages.get_list(iid) == []


def test_first_start_instructions_work_as_printed(instance: Instance) -> None:
    """The curl command and Python snippet printed on first start send a message as shown."""
    stdout = instance.server.stdout
    assert instance.token in stdout
    curl = printed_commands(stdout, "curl ")[0]
    assert curl.splitlines()[0] == f"curl -sS https://127.0.0.1:{instance.server.port}/api/send \\"
    assert f"Authorization: Bearer {instance.token}" in curl

    argv = shlex.split(curl.replace("\\\n", " "))
    argv[1:1] = ["--cacert", str(instance.tls.ca_pem), "--max-time", "20"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout)
    assert body["success"] is True and len(body["message_ids"]) == 1

    snippet = printed_python(stdout)
    env = {**os.environ, "REQUESTS_CA_BUNDLE": str(instance.tls.ca_pem)}
    run = subprocess.run(
        [sys.executable, "-c", snippet],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert run.returncode == 0, f"{snippet}\n---\n{run.stderr}"
    assert "'success': True" in run.stdout, run.stdout
    assert "'message_ids': ['" in run.stdout


def test_first_start_creates_the_at_rest_key(instance: Instance) -> None:
    """serve made the key that seals DKIM private keys, readable by its owner only."""
    key = instance.server.data_dir / "secret.key"
    assert key.exists()
    assert key.stat().st_mode & 0o777 == 0o600


def test_sigterm_stops_promptly_while_a_client_keeps_its_connection(
    tmp_path: Path, tls_files: TlsFiles
) -> None:
    """SIGTERM stops an HTTPS server in < 10 s (exit 0) while a client idles on keep-alive."""
    server = start_server(tmp_path / "data", tls=(tls_files.cert_chain_pem, tls_files.key_pem))
    try:
        verify = ssl.create_default_context(cafile=str(tls_files.ca_pem))
        with httpx.Client(verify=verify, timeout=10) as http:
            # Like any requests.Session the SDK leaves behind: the connection stays pooled.
            assert http.get(f"{server.url()}/api/accounts").status_code == 401
            started = time.monotonic()
            code = server.stop(timeout=45)
            elapsed = time.monotonic() - started
    finally:
        server.kill9()
    assert code == 0, f"postroom serve exited {code} on SIGTERM\n{server.output()}"
    assert elapsed < 10, (
        f"SIGTERM took {elapsed:.1f} s with an idle HTTPS keep-alive connection open: uvicorn "
        "waits for every connection to close and asyncio's TLS close waits up to 30 s for "
        "the client's close_notify (a container stop with the default 10 s grace would "
        "SIGKILL the server)"
    )
