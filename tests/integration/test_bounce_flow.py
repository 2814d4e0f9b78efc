"""Bounces and complaints end to end: real SMTP peers, real DNS, the inbound listener.

- Synchronous: an aiosmtpd receiver (the recipient's MX, found through the test name
  server) answers ``550 5.1.1`` at RCPT: a ``bounce`` event, a suppression across
  streams, and the next send to that address is rejected.
- Asynchronous: the receiver accepts; a DSN (shaped like Postfix's) is mailed over SMTP
  to Postroom's inbound listener at the signed return path the message was sent with:
  the same consequences for an accepted-then-bounced message.
- Complaints: an ARF report to the feedback-loop address, naming the original's return
  path, makes a ``spam`` event and a suppression.
- Refusals: forged return paths and unknown local parts are refused at RCPT; too large
  messages at DATA; auto-replies are accepted and ignored.

Mail is accepted in sandbox mode and the mode switched to ``mx`` for the worker round,
as in test_mx_delivery.py.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import aiosmtplib
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from dnsserver import LocalDnsServer
from postroom.clock import FrozenClock
from postroom.config import DeliveryMode
from postroom.inbound import listener
from postroom.mta import listen
from postroom.services import Services
from postroom.services.dns import DnsPythonResolver
from postroom.storage.tables import deliveries, events, suppressions
from postroom.workers.delivery import DeliveryWorker
from smtppeers import Receiver, Receivers


@pytest.fixture
def mx(services: Services, dns_server: LocalDnsServer) -> Iterator[Receiver]:
    """The recipients' MX (tests/smtppeers.py): accepts, or answers its scripted replies."""
    receivers = Receivers()
    receivers.start("127.0.0.2")
    dns_server.add_mx("dest.example", 10, "mx1.dest.example")
    dns_server.add_a("mx1.dest.example", "127.0.0.2")
    services.resolver = DnsPythonResolver(dns_server.address, timeout=1.0)
    services.clock = FrozenClock()
    cfg = services.settings.delivery
    cfg.port = receivers.port
    cfg.connect_timeout, cfg.command_timeout = 2.0, 5.0
    yield receivers.primary
    receivers.close()


# --- helpers ------------------------------------------------------------------------------


def _send(client: TestClient, services: Services, to: str, *, bulk: bool = False) -> str:
    services.settings.delivery.mode = DeliveryMode.SANDBOX
    body = {
        "from": {"email": "orders@shop.example"},
        "to": [{"email": to}],
        "subject": "Your order",
        "text": "Shipped.",
        "category": "orders",
    }
    headers = {"Host": "bulk.api.mailtrap.io"} if bulk else {}
    response = client.post("/api/send", json=body, headers=headers)
    assert response.status_code == 200, response.text
    services.settings.delivery.mode = DeliveryMode.MX
    [message_id] = response.json()["message_ids"]
    return str(message_id)


def _round(services: Services) -> None:
    asyncio.run(DeliveryWorker(services).run_once())


def _state(services: Services, delivery_id: str) -> str:
    query = select(deliveries.c.state).where(deliveries.c.id == delivery_id)
    return str(services.db.read_sync(lambda c: c.execute(query).scalar_one()))


def _events(services: Services, delivery_id: str) -> list[tuple[str, dict[str, Any]]]:
    query = (
        select(events.c.kind, events.c.details)
        .where(events.c.message_id == delivery_id)
        .order_by(events.c.id)
    )
    return [(r[0], dict(r[1])) for r in services.db.read_sync(lambda c: c.execute(query).all())]


def _suppressions(services: Services) -> list[dict[str, Any]]:
    query = select(suppressions).order_by(suppressions.c.created_at)
    return [dict(r) for r in services.db.read_sync(lambda c: c.execute(query).mappings().all())]


async def _smtp_session(
    port: int, mail_from: str, rcpts: list[str], raw: bytes
) -> tuple[list[int], int | None]:
    """RCPT reply codes, and the DATA reply code when a recipient was accepted."""
    smtp = aiosmtplib.SMTP(
        hostname="127.0.0.1", port=port, timeout=10, local_hostname="mx1.dest.example"
    )
    await smtp.connect()
    try:
        await smtp.mail(mail_from)
        codes = []
        for rcpt in rcpts:
            try:
                codes.append((await smtp.rcpt(rcpt)).code)
            except aiosmtplib.SMTPRecipientRefused as exc:
                codes.append(exc.code)
        if not any(code == 250 for code in codes):
            return codes, None
        try:
            return codes, (await smtp.data(raw)).code
        except aiosmtplib.SMTPDataError as exc:
            return codes, exc.code
        except aiosmtplib.SMTPResponseException as exc:
            return codes, exc.code
    finally:
        smtp.close()


def _inbound(
    services: Services, rcpts: list[str], raw: bytes, mail_from: str = ""
) -> tuple[list[int], int | None]:
    """Mail ``raw`` to Postroom's inbound listener (a real socket) and return the codes."""

    async def run() -> tuple[list[int], int | None]:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        sock.setblocking(False)
        port = int(sock.getsockname()[1])
        server = await listener.start(services, sock)
        try:
            return await _smtp_session(port, mail_from, rcpts, raw)
        finally:
            await listen.stop([server])

    return asyncio.run(run())


def _dsn(
    return_path: str,
    recipient: str,
    *,
    action: str = "failed",
    status: str = "5.1.1",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
) -> bytes:
    """A DSN as Postfix writes it, for a message the remote MX accepted first."""
    diag = diagnostic.format(r=recipient)
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@mailstore.dest.example (Mail Delivery System)\r\n"
        f"To: {return_path}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"\r\n'
        "\r\n"
        "--B0UND\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This is the mail system at host mailstore.dest.example.\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n"
        "\r\n"
        f"<{recipient}>: host mailstore.dest.example[192.0.2.7] said: {diag}\r\n"
        "\r\n"
        "--B0UND\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mailstore.dest.example\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mailstore.dest.example\r\n"
        f"Diagnostic-Code: {diag}\r\n"
        "\r\n"
        "--B0UND\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"Return-Path: <{return_path}>\r\n"
        "From: orders@shop.example\r\n"
        f"To: {recipient}\r\n"
        "Subject: Your order\r\n"
        "\r\n"
        "--B0UND--\r\n"
    ).encode()


def _arf(return_path: str, recipient: str, message_id: str) -> bytes:
    """An RFC 5965 abuse report as a mailbox provider's feedback loop sends it."""
    return (
        "From: feedback@fbl.dest.example\r\n"
        "To: fbl@pr-bounces.shop.example\r\n"
        "Subject: FW: Your order\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="ARF"\r\n'
        "\r\n"
        "--ARF\r\n"
        "Content-Type: text/plain\r\n"
        "\r\n"
        "This is an email abuse report for a message received from IP 127.0.0.1.\r\n"
        "\r\n"
        "--ARF\r\n"
        "Content-Type: message/feedback-report\r\n"
        "\r\n"
        "Feedback-Type: abuse\r\n"
        "User-Agent: DestFBL/1.0\r\n"
        "Version: 1\r\n"
        "Source-IP: 127.0.0.1\r\n"
        f"Original-Mail-From: <{return_path}>\r\n"
        "Original-Rcpt-To: <redacted@dest.example>\r\n"
        "\r\n"
        "--ARF\r\n"
        "Content-Type: message/rfc822\r\n"
        "\r\n"
        f"Return-Path: <{return_path}>\r\n"
        "From: orders@shop.example\r\n"
        "To: redacted@dest.example\r\n"
        f"Message-ID: {message_id}\r\n"
        "Subject: Your order\r\n"
        "\r\n"
        "Shipped.\r\n"
        "--ARF--\r\n"
    ).encode()


def _message_id(raw: bytes) -> str:
    """The Message-ID header of a message the MX received."""
    return next(
        line.split(b":", 1)[1].strip().decode()
        for line in raw.splitlines()
        if line.lower().startswith(b"message-id:")
    )


def _delivered(client: TestClient, services: Services, mx: Receiver, to: str) -> tuple[str, str]:
    """Send to ``to``, let the MX accept it; the delivery id and the return path used."""
    delivery_id = _send(client, services, to)
    _round(services)
    assert _state(services, delivery_id) == "delivered"
    [(mail_from, rcpts, _)] = [r for r in mx.received if r[1] == [to]]
    return delivery_id, mail_from


# --- synchronous ----------------------------------------------------------------------------


def test_550_5_1_1_bounces_suppresses_and_rejects_the_next_send(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    mx.replies["gone@dest.example"] = (
        "550 5.1.1 <gone@dest.example>: Recipient address rejected: User unknown"
    )
    first = _send(client, services, "gone@dest.example")
    _round(services)
    assert _state(services, first) == "bounced"
    [(_, _), (kind, details)] = _events(services, first)
    assert kind == "bounce"
    assert details["bounce_category"] == "bad_mailbox"
    assert details["email_service_provider_status"] == "5.1.1"
    assert details["response_code"] == 550

    [entry] = _suppressions(services)
    assert (entry["email"], entry["type"], entry["sending_stream"]) == (
        "gone@dest.example",
        "hard bounce",
        "any",
    )
    assert entry["message_id"] == first
    assert entry["message_subject"] == "Your order"
    assert entry["message_sender_email"] == "orders@shop.example"
    assert entry["message_category"] == "orders"
    assert entry["message_recipient_mx_name"] == "mx1.dest.example"
    assert entry["message_outgoing_ip"] == "127.0.0.1"
    assert entry["message_bounce_category"] == "bad_mailbox"

    again = _send(client, services, "gone@dest.example")
    bulk = _send(client, services, "gone@dest.example", bulk=True)  # across streams
    for delivery_id in (again, bulk):
        assert _state(services, delivery_id) == "suppressed"
        kinds = [k for k, _ in _events(services, delivery_id)]
        assert kinds == ["accepted", "reject"]
    _round(services)
    assert len(mx.received) == 0  # nothing was ever sent to the address again


def test_sender_side_refusals_never_suppress(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    mx.replies["ana@dest.example"] = (
        "550 5.7.1 Service unavailable; client [127.0.0.1] blocked using zen.spamhaus.org"
    )
    mx.replies["bo@dest.example"] = "450 4.1.1 <bo@dest.example>: Recipient address unknown"
    blocked = _send(client, services, "ana@dest.example")
    deferred = _send(client, services, "bo@dest.example")
    _round(services)
    assert _state(services, blocked) == "bounced"
    assert _events(services, blocked)[-1][1]["bounce_category"] == "spam_block"
    assert _events(services, deferred)[-1][0] == "soft_bounce"
    assert _suppressions(services) == []


# --- asynchronous: DSNs -------------------------------------------------------------------


def test_dsn_for_an_accepted_message_bounces_suppresses_and_rejects(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    delivery_id, return_path = _delivered(client, services, mx, "ana@dest.example")
    assert return_path.startswith("b+") and "@pr-bounces.shop.example" in return_path

    dsn = _dsn(return_path, "ana@dest.example")
    assert _inbound(services, [return_path], dsn) == ([250], 250)
    assert _state(services, delivery_id) == "bounced"
    kind, details = _events(services, delivery_id)[-1]
    assert kind == "bounce"
    assert details["bounce_category"] == "bad_mailbox"
    assert details["email_service_provider_status"] == "5.1.1"
    assert details["recipient_mx"] == "mailstore.dest.example"
    assert details["sending_ip"] == "127.0.0.1"  # from the delivery it bounced
    assert details["email_service_provider"] == "Other"
    assert details["response"].startswith("550 5.1.1")
    [entry] = _suppressions(services)
    assert (entry["email"], entry["type"]) == ("ana@dest.example", "hard bounce")

    # The same DSN again (MTAs retry) records nothing new.
    assert _inbound(services, [return_path], dsn) == ([250], 250)
    assert [k for k, _ in _events(services, delivery_id)].count("bounce") == 1
    assert _state(services, _send(client, services, "ana@dest.example")) == "suppressed"


def test_delay_notices_are_soft_and_change_nothing(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    delivery_id, return_path = _delivered(client, services, mx, "ana@dest.example")
    delayed = _dsn(
        return_path,
        "ana@dest.example",
        action="delayed",
        status="4.2.2",
        diagnostic="smtp; 452 4.2.2 <{r}>: Mailbox full",
    )
    assert _inbound(services, [return_path.upper()], delayed) == ([250], 250)
    assert _state(services, delivery_id) == "delivered"
    kind, details = _events(services, delivery_id)[-1]
    assert (kind, details["bounce_category"]) == ("soft_bounce", "mailbox_full")
    assert _suppressions(services) == []


# --- complaints ---------------------------------------------------------------------------


def test_arf_complaint_records_spam_and_suppresses(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    delivery_id, return_path = _delivered(client, services, mx, "ana@dest.example")
    [(_, _, raw)] = mx.received
    message_id = _message_id(raw)
    report = _arf(return_path, "ana@dest.example", message_id)
    assert _inbound(services, ["fbl@pr-bounces.shop.example"], report) == ([250], 250)
    kind, details = _events(services, delivery_id)[-1]
    assert (kind, details["spam_feedback_type"]) == ("spam", "abuse")
    [entry] = _suppressions(services)
    assert (entry["email"], entry["type"], entry["sending_stream"]) == (
        "ana@dest.example",
        "spam complaint",
        "any",
    )
    assert _state(services, _send(client, services, "ana@dest.example", bulk=True)) == "suppressed"


# --- refusals -----------------------------------------------------------------------------


def _forged(return_path: str) -> str:
    local, _, host = return_path.partition("@")
    mac = local[-10:]
    swapped = ("a" if mac[0] != "a" else "b") + mac[1:]
    return f"{local[:-10]}{swapped}@{host}"


def test_forged_return_paths_and_unknown_local_parts_are_refused(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    delivery_id, return_path = _delivered(client, services, mx, "ana@dest.example")
    forged = _forged(return_path)
    dsn = _dsn(forged, "ana@dest.example")
    assert _inbound(services, [forged], dsn) == ([550], None)
    assert _inbound(services, ["someone@pr-bounces.shop.example"], dsn) == ([550], None)
    # A DSN to a role address naming a forged return path in the original: accepted,
    # but it matches no delivery (the original's Message-ID is not in it either).
    assert _inbound(services, ["postmaster@pr-bounces.shop.example"], dsn) == ([250], 250)
    assert _state(services, delivery_id) == "delivered"
    assert [k for k, _ in _events(services, delivery_id)] == ["accepted", "delivery"]
    assert _suppressions(services) == []


def test_size_limit_and_auto_replies(client: TestClient, services: Services, mx: Receiver) -> None:
    delivery_id, return_path = _delivered(client, services, mx, "ana@dest.example")
    services.settings.bounces.max_message_bytes = 4096
    huge = _dsn(return_path, "ana@dest.example") + (b"x" * 76 + b"\r\n") * 100
    assert _inbound(services, [return_path], huge)[1] == 552
    vacation = (
        "From: Ana <ana@dest.example>\r\n"
        f"To: {return_path}\r\n"
        "Subject: Out of office\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "\r\n"
        "I am away until Monday.\r\n"
    ).encode()
    assert _inbound(services, [return_path], vacation) == ([250], 250)
    assert [k for k, _ in _events(services, delivery_id)] == ["accepted", "delivery"]
    assert _suppressions(services) == []


def test_a_recipient_cannot_forge_a_complaint_for_a_co_recipient(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    # Every recipient of a message knows its Message-ID and sees the To/Cc addresses: the
    # unsigned Message-ID fallback must not let one of them suppress another.
    services.settings.delivery.mode = DeliveryMode.SANDBOX
    body = {
        "from": {"email": "orders@shop.example"},
        "to": [{"email": "ana@dest.example"}, {"email": "bo@dest.example"}],
        "subject": "Your order",
        "text": "Shipped.",
    }
    response = client.post("/api/send", json=body)
    assert response.status_code == 200, response.text
    services.settings.delivery.mode = DeliveryMode.MX
    _round(services)
    raw = mx.received[0][2]
    message_id = _message_id(raw)
    report = _arf("someone@elsewhere.example", "bo@dest.example", message_id)
    report = report.replace(b"redacted@dest.example", b"bo@dest.example")
    assert _inbound(services, ["fbl@pr-bounces.shop.example"], report) == ([250], 250)
    assert _suppressions(services) == []
    assert _state(services, _send(client, services, "bo@dest.example")) != "suppressed"


def test_the_message_id_fallback_still_ties_a_single_recipient_report(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    delivery_id, _ = _delivered(client, services, mx, "ana@dest.example")
    [(_, _, raw)] = mx.received
    message_id = _message_id(raw)
    report = _arf("someone@elsewhere.example", "ana@dest.example", message_id)
    report = report.replace(b"redacted@dest.example", b"ana@dest.example")
    assert _inbound(services, ["fbl@pr-bounces.shop.example"], report) == ([250], 250)
    assert _events(services, delivery_id)[-1][0] == "spam"


def test_a_client_message_id_naming_another_message_ties_no_report(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    # Clients choose their Message-ID now (API headers, SMTP). One that merely contains
    # the UUID of another message (another tenant's, say) must not let a report about it
    # reach that message's delivery: only the Message-ID Postroom made, in full, counts.
    delivery_id, _ = _delivered(client, services, mx, "ana@dest.example")
    borrowed = f"<{delivery_id}@elsewhere.example>"
    report = _arf("someone@elsewhere.example", "ana@dest.example", borrowed)
    report = report.replace(b"redacted@dest.example", b"ana@dest.example")
    assert _inbound(services, ["fbl@pr-bounces.shop.example"], report) == ([250], 250)
    assert [kind for kind, _ in _events(services, delivery_id)] == ["accepted", "delivery"]


def test_over_long_report_fields_still_record_the_bounce(
    client: TestClient, services: Services, mx: Receiver
) -> None:
    # Remote-MTA is the reporting MTA's text: longer than the suppression's column, it must
    # not fail the transaction (a 451 forever, the bounce never recorded).
    delivery_id, return_path = _delivered(client, services, mx, "ana@dest.example")
    host = "m" * 300 + ".dest.example"
    dsn = _dsn(return_path, "ana@dest.example").replace(
        b"Remote-MTA: dns; mailstore.dest.example", f"Remote-MTA: dns; {host}".encode()
    )
    assert _inbound(services, [return_path], dsn) == ([250], 250)
    assert _state(services, delivery_id) == "bounced"
    [entry] = _suppressions(services)
    assert entry["message_recipient_mx_name"] == host[:255]
