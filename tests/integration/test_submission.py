"""SMTP submission with real clients (smtplib, swaks, raw sockets) against real listeners.

Each test starts the listeners of ``postroom serve`` (STARTTLS and implicit TLS, both
streams) on free loopback ports, with a private CA's certificate, over both database
backends, and checks what was stored: messages, one delivery per envelope recipient,
sandbox captures. The probes check the refusals: no AUTH before TLS, no relaying
without AUTH, wrong or under-scoped tokens, other tenants' inbox credentials, throttled
logins, SMTP smuggling and STARTTLS command injection.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
from smtp_submission import Ports, Raw, Tls, implicit_client, listeners, make_tls, starttls_client
from sqlalchemy import select
from sqlalchemy.engine import Connection
from starlette.testclient import TestClient

from postroom.config import DeliveryMode
from postroom.sandbox.credentials import smtp_password
from postroom.sandbox.inboxes import reset_credentials
from postroom.services import Services, suppressions
from postroom.services.accounts import Bootstrap, create_default_inbox, create_token
from postroom.storage.repos import accounts as account_repo
from postroom.storage.tables import (
    deliveries,
    events,
    inboxes,
    message_bodies,
    messages,
    sandbox_messages,
)

SWAKS = shutil.which("swaks")
SMTP_POLICY = default.clone(linesep="\r\n")


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def ports(services: Services, boot: Bootstrap, tls: Tls) -> Iterator[Ports]:
    with listeners(services, tls) as running:
        yield running


def mail(**headers: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = headers.pop("From", "App <app@example.com>")
    message["To"] = headers.pop("To", "Ann <ann@example.org>")
    message["Subject"] = headers.pop("Subject", "Hello over SMTP")
    for name, value in headers.items():
        message[name.replace("_", "-")] = value
    message.set_content("Body line one.\nBody line two.\n")
    return message


def query(services: Services, statement: Any) -> list[dict[str, Any]]:
    with services.db.engine.connect() as conn:
        return [dict(r) for r in conn.execute(statement).mappings()]


def raw_of(services: Services, message_id: str) -> bytes:
    rows = query(
        services, select(message_bodies.c.raw).where(message_bodies.c.message_id == message_id)
    )
    return bytes(rows[0]["raw"])


def other_tenant(services: Services, scopes: tuple[str, ...] = ("admin",)) -> tuple[int, str]:
    def run(conn: Connection) -> tuple[int, str]:
        account_id = account_repo.insert_account(conn, "Other", services.clock.now())
        create_default_inbox(services, conn, account_id)
        return account_id, create_token(services, conn, account_id, "other", scopes)

    return services.db.write_sync(run)


def token_with(services: Services, boot: Bootstrap, scopes: tuple[str, ...]) -> str:
    return services.db.write_sync(
        lambda conn: create_token(services, conn, boot.account_id, "scoped", scopes)
    )


def auth_plain(client: smtplib.SMTP, user: str, password: str) -> int:
    """One AUTH PLAIN attempt (smtplib's login() would try every mechanism in turn)."""
    blob = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
    return client.docmd("AUTH", f"PLAIN {blob}")[0]


# --- sending ------------------------------------------------------------------------------


def test_starttls_plain_auth_accepts_and_queues_one_delivery_per_envelope_recipient(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    message = mail(
        Cc="cc@example.org",
        Bcc="hidden@example.net",
        Message_ID="<client-id-1@example.com>",
        X_MT_Category="Password reset",
        X_MT_Custom_Variables='{"user_id": "42", "tags": ["a", "b"]}',
    )
    with starttls_client(ports.starttls, tls) as client:
        assert "PLAIN" in client.esmtp_features["auth"] and "LOGIN" in client.esmtp_features["auth"]
        assert client.esmtp_features["size"] == str(10 * 1024 * 1024)
        assert "8bitmime" in client.esmtp_features and "smtputf8" in client.esmtp_features
        client.login("api", boot.token)
        refused = client.send_message(
            message, to_addrs=["ann@example.org", "cc@example.org", "hidden@example.net"]
        )
        assert refused == {}
        code, reply = client.noop()
        assert code == 250
    [row] = query(services, select(messages))
    assert row["stream"] == "transactional"
    assert row["sender"] == "app@example.com" and row["sender_name"] == "App"
    assert row["subject"] == "Hello over SMTP"
    assert row["category"] == "Password reset"
    assert row["custom_variables"] == {"user_id": "42", "tags": "a"}
    assert row["rfc_message_id"] == "<client-id-1@example.com>"
    assert row["client_ip"] == "127.0.0.1"
    rows = query(
        services,
        select(deliveries)
        .where(deliveries.c.message_id == row["id"])
        .order_by(deliveries.c.position),
    )
    assert [(d["recipient"], d["recipient_kind"]) for d in rows] == [
        ("ann@example.org", "to"),
        ("cc@example.org", "cc"),
        ("hidden@example.net", "bcc"),
    ]
    assert len({d["id"] for d in rows}) == 3  # one message id per recipient
    raw = raw_of(services, row["id"])
    parsed = BytesParser(policy=default).parsebytes(raw)
    assert parsed["Bcc"] is None and b"hidden@example.net" not in raw
    assert parsed["X-MT-Category"] is None and parsed["X-MT-Custom-Variables"] is None
    assert parsed["Message-ID"] == "<client-id-1@example.com>" and parsed["Date"] is not None
    assert parsed.get_content().replace("\r\n", "\n") == "Body line one.\nBody line two.\n"


def test_reply_names_the_first_message_id(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    with starttls_client(ports.starttls, tls) as client:
        client.login("api", boot.token)
        client.mail("app@example.com")
        client.rcpt("ann@example.org")
        code, reply = client.data(mail().as_bytes(policy=SMTP_POLICY))
    [row] = query(services, select(messages))
    assert code == 250 and reply.decode().endswith(f"queued as {row['id']}")
    # no Message-ID from the client: Postroom's, on the From domain
    assert row["rfc_message_id"].endswith("@example.com>")
    assert f"Message-ID: {row['rfc_message_id']}".encode() in raw_of(services, row["id"])


def test_implicit_tls_login_auth_on_the_bulk_listener(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    with implicit_client(ports.bulk_implicit, tls) as client:
        client.login("api", boot.token)  # smtplib tries CRAM-MD5? no: PLAIN first
        client.send_message(mail())
    with implicit_client(ports.bulk_implicit, tls) as client:
        client.user, client.password = "api", boot.token
        client.auth("LOGIN", client.auth_login, initial_response_ok=False)
        client.send_message(mail(Subject="second"))
    rows = query(services, select(messages))
    assert [r["stream"] for r in rows] == ["bulk", "bulk"]


def test_utf8_message_and_address_with_smtputf8(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    message = mail(From="Zoë <zoë@exämple.com>", To="José <josé@exämple.org>", Subject="Grüße")
    with starttls_client(ports.starttls, tls) as client:
        client.login("api", boot.token)
        client.send_message(message, mail_options=["SMTPUTF8"])
    [row] = query(services, select(messages))
    assert row["sender"] == "zoë@exämple.com" and row["subject"] == "Grüße"
    [delivery] = query(services, select(deliveries))
    assert delivery["recipient"] == "josé@exämple.org" and delivery["recipient_kind"] == "to"


# --- sandbox inbox credentials ----------------------------------------------------------


def inbox_row(services: Services, inbox_id: int) -> dict[str, Any]:
    """An inbox row with its SMTP password unsealed (the database holds it sealed)."""
    [row] = query(services, select(inboxes).where(inboxes.c.id == inbox_id))
    return {**row, "password": smtp_password(services.get_sealer(), row)}


def test_inbox_credentials_capture_into_that_inbox(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    inbox = inbox_row(services, boot.inbox_id)
    with starttls_client(ports.starttls, tls) as client:
        client.login(inbox["username"], inbox["password"])
        client.send_message(
            mail(Bcc="secret@example.net"), to_addrs=["ann@example.org", "secret@example.net"]
        )
    [captured] = query(services, select(sandbox_messages))
    assert captured["inbox_id"] == boot.inbox_id and captured["account_id"] == boot.account_id
    assert captured["subject"] == "Hello over SMTP" and captured["client_ip"] == "127.0.0.1"
    assert b"secret@example.net" not in bytes(captured["raw"])
    assert query(services, select(deliveries)) == []  # captured, not queued


def test_inbox_passwords_are_not_in_the_database_yet_work_and_show(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports, client: TestClient
) -> None:
    """Inbox SMTP passwords are sealed at rest: no row (and, on SQLite, no byte of the
    database file or its WAL) holds one, while the API shows them and SMTP AUTH takes
    them."""
    base = f"/api/accounts/{boot.account_id}"
    project = client.post(f"{base}/projects", json={"project": {"name": "Sealed"}}).json()
    made = [
        client.post(
            f"{base}/projects/{project['id']}/inboxes", json={"inbox": {"name": f"Inbox {n}"}}
        ).json()
        for n in range(3)
    ]
    reset = client.patch(f"{base}/inboxes/{made[0]['id']}/reset_credentials").json()
    shown = [reset, *made[1:], client.get(f"{base}/inboxes/{boot.inbox_id}").json()]
    passwords = [inbox["password"] for inbox in shown]
    assert all(passwords) and made[0]["password"] != reset["password"]

    stored = query(services, select(inboxes))
    for password in [*passwords, made[0]["password"]]:
        for row in stored:
            for value in row.values():
                text = bytes(value) if isinstance(value, bytes | memoryview) else str(value)
                needle = password.encode() if isinstance(text, bytes) else password
                assert needle not in text, (password, row)
    if services.db.dialect == "sqlite":
        database = Path(services.db.engine.url.database or "")
        on_disk = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        assert on_disk and not [p for p in passwords if p.encode() in on_disk]

    for inbox in shown:
        with starttls_client(ports.starttls, tls) as smtp:
            smtp.login(inbox["username"], inbox["password"])
            smtp.send_message(mail(Subject=f"to {inbox['id']}"))
    captured = query(services, select(sandbox_messages.c.inbox_id, sandbox_messages.c.subject))
    assert sorted((r["inbox_id"], r["subject"]) for r in captured) == sorted(
        (inbox["id"], f"to {inbox['id']}") for inbox in shown
    )
    with starttls_client(ports.starttls, tls) as smtp:  # the old password stopped working
        assert auth_plain(smtp, made[0]["username"], made[0]["password"]) == 535


def test_inbox_credentials_are_checked_and_tenant_isolated(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    other_account, _ = other_tenant(services)
    [theirs_id] = query(services, select(inboxes.c.id).where(inboxes.c.account_id == other_account))
    theirs = inbox_row(services, theirs_id["id"])
    mine = inbox_row(services, boot.inbox_id)
    with starttls_client(ports.starttls, tls) as client:
        for user, password in [
            (mine["username"], theirs["password"]),  # my user name, their password
            (mine["username"], mine["password"] + "x"),
            ("nobody", mine["password"]),
        ]:
            assert auth_plain(client, user, password) == 535
        client.login(theirs["username"], theirs["password"])
        client.send_message(mail())
    [captured] = query(services, select(sandbox_messages))
    assert captured["inbox_id"] == theirs["id"] and captured["account_id"] == other_account


# --- refusals ----------------------------------------------------------------------------


def test_no_auth_before_tls_and_nothing_but_starttls_in_plaintext(
    boot: Bootstrap, ports: Ports
) -> None:
    with smtplib.SMTP("127.0.0.1", ports.starttls, timeout=10) as client:
        client.ehlo("client.test")
        assert client.has_extn("starttls") and not client.has_extn("auth")
        plain = base64.b64encode(f"\0api\0{boot.token}".encode()).decode()
        assert client.docmd("AUTH", f"PLAIN {plain}")[0] == 530
        assert client.docmd("MAIL", "FROM:<app@example.com>")[0] == 530


@pytest.mark.parametrize("secure", ["starttls", "implicit"])
def test_not_an_open_relay(tls: Tls, ports: Ports, secure: str) -> None:
    client = (
        starttls_client(ports.starttls, tls)
        if secure == "starttls"
        else implicit_client(ports.implicit, tls)
    )
    with client:
        assert client.has_extn("auth")
        code, _ = client.mail("app@example.com")
        assert code == 530
        code, _ = client.rcpt("victim@example.org")
        assert code == 530
        assert client.docmd("DATA")[0] == 530


def test_plaintext_loopback_setting_offers_auth_but_still_needs_it(
    services: Services, boot: Bootstrap
) -> None:
    with (
        listeners(services, None, allow_plaintext_loopback=True) as open_ports,
        smtplib.SMTP("127.0.0.1", open_ports.starttls, timeout=10) as client,
    ):
        client.ehlo("client.test")
        assert client.has_extn("auth") and not client.has_extn("starttls")
        assert client.mail("app@example.com")[0] == 530
        assert client.rcpt("victim@example.org")[0] == 530
        client.login("api", boot.token)
        client.send_message(mail())
    assert len(query(services, select(messages))) == 1


def test_wrong_token_and_read_scope_are_refused(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    read_only = token_with(services, boot, ("read",))
    with starttls_client(ports.starttls, tls) as client:
        for password in ["pr_" + "0" * 40, read_only, boot.token + "x"]:
            assert auth_plain(client, "api", password) == 535
    # Throttling never refuses the right token (tests/integration/test_smtp_auth_throttle.py).
    assert query(services, select(messages)) == []


def test_cross_tenant_token_sends_as_its_own_account(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    other_account, token = other_tenant(services, ("send",))
    with starttls_client(ports.starttls, tls) as client:
        client.login("api", token)
        client.send_message(mail())
    [row] = query(services, select(messages))
    assert row["account_id"] == other_account != boot.account_id


def test_mx_mode_refuses_a_from_domain_the_account_has_not_verified(
    services: Services, boot: Bootstrap, tls: Tls
) -> None:
    services.settings.delivery.mode = DeliveryMode.MX
    with listeners(services, tls) as running, starttls_client(running.starttls, tls) as client:
        client.login("api", boot.token)
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(mail())
        assert refused.value.smtp_code == 550 and b"5.7.1" in refused.value.smtp_error
    assert query(services, select(messages)) == []


def test_limits_recipients_size_and_header_rules(
    services: Services, boot: Bootstrap, tls: Tls
) -> None:
    with (
        listeners(services, tls, max_recipients=2) as running,
        starttls_client(running.starttls, tls) as client,
    ):
        client.login("api", boot.token)
        client.mail("app@example.com")
        assert client.rcpt("not an address")[0] in (501, 553)
        assert client.rcpt("a@example.org")[0] == 250
        assert client.rcpt("b@example.org")[0] == 250
        assert client.rcpt("c@example.org")[0] == 452
        client.rset()
        code, _ = client.mail("app@example.com", [f"SIZE={10 * 1024 * 1024 + 1}"])
        assert code == 552
        client.rset()
        client.mail("app@example.com")
        client.rcpt("a@example.org")
        code, reply = client.data(b"Subject: no sender\r\n\r\nbody\r\n")
        assert code == 550 and b"From" in reply
        client.mail("app@example.com")
        client.rcpt("a@example.org")
        code, reply = client.data(
            b"From: a@example.com\r\nSubject: x\nBcc: b@example.org\r\n\r\nbody\r\n"
        )
        assert code == 550
    assert query(services, select(messages)) == []


def test_too_many_commands_before_auth_close_the_session(
    tls: Tls, services: Services, boot: Bootstrap
) -> None:
    with listeners(services, tls, max_commands_before_auth=4) as running:
        raw = Raw(running.starttls)
        for _ in range(4):
            assert raw.command("NOOP")[0] == 250
        assert raw.command("NOOP")[0] == 421
        raw.close()


def test_session_time_limit_ends_even_a_busy_session(
    tls: Tls, services: Services, boot: Bootstrap
) -> None:
    with listeners(services, tls, session_timeout=0.6) as running:
        raw = Raw(running.starttls)
        assert raw.command("EHLO client.test")[0] == 250
        deadline = time.monotonic() + 5
        reply = (250, "")
        while reply[0] == 250 and time.monotonic() < deadline:
            reply = raw.command("NOOP")  # never idle, so only the session limit applies
            time.sleep(0.1)
        assert reply[0] == 421 and "time limit" in reply[1]
        raw.close()


def test_overlong_data_line_is_refused(services: Services, boot: Bootstrap, tls: Tls) -> None:
    with listeners(services, tls) as running:
        raw = authenticated_raw(running, tls, boot.token)
        assert raw.command("MAIL FROM:<app@example.com>")[0] == 250
        assert raw.command("RCPT TO:<ann@example.org>")[0] == 250
        assert raw.command("DATA")[0] == 354
        raw.send(b"From: app@example.com\r\n\r\n" + b"x" * 1200 + b"\r\n.\r\n")
        code, text = raw.reply()
        assert code == 500 and "too long" in text.lower()
        raw.close()
    assert query(services, select(messages)) == []


# --- smuggling and injection ----------------------------------------------------------


def authenticated_raw(ports: Ports, tls: Tls, token: str) -> Raw:
    raw = Raw(ports.implicit, tls, implicit=True)
    assert raw.command("EHLO client.test")[0] == 250
    plain = base64.b64encode(f"\0api\0{token}".encode()).decode()
    assert raw.command(f"AUTH PLAIN {plain}")[0] == 235
    return raw


SMUGGLING_ENDINGS = [b"\n.\n", b"\n.\r\n", b"\r\n.\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r"]


@pytest.mark.parametrize("ending", SMUGGLING_ENDINGS, ids=lambda e: repr(e)[2:-1])
def test_smuggled_end_of_data_injects_nothing(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports, ending: bytes
) -> None:
    raw = authenticated_raw(ports, tls, boot.token)
    assert raw.command("MAIL FROM:<app@example.com>")[0] == 250
    assert raw.command("RCPT TO:<ann@example.org>")[0] == 250
    assert raw.command("DATA")[0] == 354
    smuggled = (
        b"From: app@example.com\r\nTo: ann@example.org\r\nSubject: outer\r\n\r\nouter body"
        + ending
        + b"MAIL FROM:<admin@example.com>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\n"
        + b"From: admin@example.com\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n"
    )
    raw.send(smuggled)
    code, text = raw.reply()
    assert code == 550 and "5.6.0" in text
    # exactly one reply for the whole DATA: the injected commands were never commands
    assert raw.pending() == b""
    assert raw.command("QUIT")[0] == 221
    raw.close()
    assert query(services, select(messages)) == []
    assert query(services, select(deliveries)) == []


def test_starttls_command_injection_is_discarded(boot: Bootstrap, tls: Tls, ports: Ports) -> None:
    raw = Raw(ports.starttls)
    assert raw.command("EHLO client.test")[0] == 250
    # Commands pipelined after STARTTLS in plaintext must not run inside the TLS session.
    raw.send(b"STARTTLS\r\nMAIL FROM:<app@example.com>\r\nRCPT TO:<victim@example.org>\r\n")
    assert raw.reply()[0] == 220
    raw.buffer = b""
    raw.starttls(tls)
    code, _ = raw.command("NOOP")
    assert code == 250  # the first reply in TLS answers our NOOP, not an injected command
    assert raw.pending() == b""
    raw.close()


# --- swaks ---------------------------------------------------------------------------------


def swaks(port: int, *args: str) -> subprocess.CompletedProcess[str]:
    assert SWAKS, "swaks is not installed (Debian package swaks)"
    command = [SWAKS, "--server", f"127.0.0.1:{port}", "--helo", "client.test", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest.mark.parametrize("secure", ["--tls", "--tlsc"])
def test_swaks_each_mechanism_and_tls_mode(
    services: Services, boot: Bootstrap, ports: Ports, mechanism: str, secure: str
) -> None:
    port = ports.starttls if secure == "--tls" else ports.implicit
    done = swaks(
        port, secure, "--auth", mechanism, "--auth-user", "api", "--auth-password", boot.token,
        "--from", "app@example.com", "--to", "ann@example.org,hidden@example.net",
        "--header", "To: ann@example.org", "--header", "X-MT-Category: swaks",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "250 2.0.0 Ok: queued as" in done.stdout
    [row] = query(services, select(messages))
    assert row["category"] == "swaks"
    kinds = [
        d["recipient_kind"]
        for d in query(services, select(deliveries).order_by(deliveries.c.position))
    ]
    assert kinds == ["to", "bcc"]


def test_swaks_refusals(boot: Bootstrap, ports: Ports) -> None:
    common = ["--from", "app@example.com", "--to", "ann@example.org"]
    no_auth = swaks(ports.starttls, "--tls", *common)
    assert no_auth.returncode != 0 and "530" in no_auth.stdout
    wrong = swaks(
        ports.starttls, "--tls", "--auth", "PLAIN", "--auth-user", "api",
        "--auth-password", "pr_" + "1" * 40, *common,
    )  # fmt: skip
    assert wrong.returncode != 0 and "535" in wrong.stdout
    plaintext = swaks(
        ports.starttls, "--auth", "PLAIN", "--auth-user", "api", "--auth-password", boot.token,
        *common,
    )  # fmt: skip
    assert plaintext.returncode != 0


def test_serve_names_the_smtp_flag_when_its_port_is_taken(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from postroom.cli.main import app

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        free = []
        for _ in range(3):
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                free.append(probe.getsockname()[1])
        args = [
            "serve", "--data-dir", str(tmp_path), "--port", str(free[0]),
            "--bulk-port", str(free[1]), "--smtp-port", str(port),
            "--smtp-bulk-port", str(free[2]),
        ]  # fmt: skip
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert f"127.0.0.1:{port}" in result.output and "--smtp-port" in result.output


def test_data_over_the_size_limit_is_refused(services: Services, boot: Bootstrap, tls: Tls) -> None:
    services.settings.limits.max_message_bytes = 50_000
    with listeners(services, tls) as running, starttls_client(running.starttls, tls) as client:
        assert client.esmtp_features["size"] == "50000"
        client.login("api", boot.token)
        big = mail()
        big.set_content(("y" * 70 + "\n") * 800)  # ~57 KB
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(big)  # smtplib declares SIZE=: refused at MAIL
        assert refused.value.smtp_code == 552
        client.rset()
        client.mail("app@example.com")  # no SIZE declared: refused after DATA
        client.rcpt("ann@example.org")
        code, _ = client.data(big.as_bytes(policy=SMTP_POLICY))
        assert code == 552
    assert query(services, select(messages)) == []


def test_credentials_reset_mid_session_stop_the_next_message(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    inbox = inbox_row(services, boot.inbox_id)
    with starttls_client(ports.starttls, tls) as client:
        client.login(inbox["username"], inbox["password"])
        client.send_message(mail(Subject="before"))
        asyncio.run(reset_credentials(services, boot.account_id, boot.inbox_id))
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(mail(Subject="after"))
        assert refused.value.smtp_code == 535
    assert [r["subject"] for r in query(services, select(sandbox_messages))] == ["before"]


def test_a_suppressed_envelope_recipient_is_rejected_like_an_api_send(
    services: Services, boot: Bootstrap, tls: Tls, ports: Ports
) -> None:
    asyncio.run(
        suppressions.create(services, boot.account_id, "test", "gone@example.org", "transactional")
    )
    with starttls_client(ports.starttls, tls) as client:
        client.login("api", boot.token)
        refused = client.send_message(mail(), to_addrs=["ann@example.org", "gone@example.org"])
        assert refused == {}  # accepted, as the API accepts it: the rejection is recorded
    rows = {d["recipient"]: d for d in query(services, select(deliveries))}
    assert rows["gone@example.org"]["state"] == "suppressed"
    assert rows["ann@example.org"]["state"] == "queued"
    reasons = [
        e["details"].get("reject_reason", "")
        for e in query(services, select(events).where(events.c.kind == "reject"))
    ]
    assert reasons == ["Recipient in suppression list. Reason: manual import"]
