"""SMTP submission against a real ``postroom serve``: swaks and smtplib as the clients.

- sandbox mode (the module's ``instance``): swaks over STARTTLS + AUTH with user ``api``
  and the first-start token; the worker captures the message into the default inbox. An
  inbox's SMTP credentials, as the Testing API reports them (username, password,
  smtp_ports), capture into that inbox. Unauthenticated, wrong and mixed-up credentials
  are refused.
- mx mode: a verified sending domain, a real name server and an aiosmtpd receiver on
  127.0.0.2; swaks submits to a To and a Bcc recipient, the receiver gets both envelope
  recipients, no Bcc header, and a DKIM signature.
- kill -9: concurrent smtplib sessions, SIGKILL mid-flight; every message answered
  ``250`` is in the queue after the restart (SQLite and PostgreSQL).
"""

from __future__ import annotations

import shutil
import smtplib
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

import httpx
import pytest
from server import Instance, Server, Store, TlsFiles, start_server

from dnsserver import LocalDnsServer
from smtppeers import Receiver, Receivers

SWAKS = shutil.which("swaks")
RECEIVER_HOST = "127.0.0.2"
SENDER_DOMAIN = "shop.test"
SMTP_POLICY = default.clone(linesep="\r\n")


def swaks(port: int, *args: str, tls: str = "--tls") -> subprocess.CompletedProcess[str]:
    assert SWAKS, "swaks is not installed (Debian package swaks)"
    command = [SWAKS, "--server", f"127.0.0.1:{port}", "--helo", "client.test", tls, *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def wait_for(probe: Callable[[], object], timeout: float = 15.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = probe()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


# --- sandbox mode ---------------------------------------------------------------------------


def test_swaks_starttls_auth_message_is_captured(instance: Instance) -> None:
    subject = f"swaks {uuid.uuid4().hex}"
    port = instance.server.smtp_ports[0]
    done = swaks(
        port, "--auth", "PLAIN", "--auth-user", "api", "--auth-password", instance.token,
        "--from", "app@example.com", "--to", "ann@example.org", "--header", f"Subject: {subject}",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    query = "SELECT inbox_id FROM sandbox_messages WHERE subject = :s"
    rows = wait_for(lambda: instance.store.rows(query, s=subject))
    assert rows == [(instance.inbox_id,)]


def test_inbox_smtp_credentials_from_the_testing_api_capture_into_that_inbox(
    instance: Instance,
) -> None:
    with instance.http() as http:
        project = http.post(
            f"/api/accounts/{instance.account_id}/projects", json={"project": {"name": "SMTP"}}
        ).json()
        inbox = http.post(
            f"/api/accounts/{instance.account_id}/projects/{project['id']}/inboxes",
            json={"inbox": {"name": "Printer"}},
        ).json()
    assert instance.server.smtp_ports[0] in inbox["smtp_ports"]
    assert instance.server.smtp_ports[2] in inbox["smtp_ports"]  # implicit TLS
    subject = f"printer {uuid.uuid4().hex}"
    done = swaks(
        instance.server.smtp_ports[2], "--auth", "LOGIN", "--auth-user", inbox["username"],
        "--auth-password", inbox["password"], "--from", "printer@office.example",
        "--to", "someone@example.org", "--header", f"Subject: {subject}", tls="--tlsc",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    query = "SELECT inbox_id FROM sandbox_messages WHERE subject = :s"
    assert instance.store.rows(query, s=subject) == [(inbox["id"],)]  # captured at once


def test_unauthenticated_wrong_and_mixed_credentials_are_refused(instance: Instance) -> None:
    port = instance.server.smtp_ports[0]
    common = ["--from", "app@example.com", "--to", "victim@example.org"]
    with instance.http() as http:
        [inbox] = [
            i
            for i in http.get(f"/api/accounts/{instance.account_id}/inboxes").json()
            if i["id"] == instance.inbox_id
        ]
    attempts = {
        "no auth": swaks(port, *common),
        "wrong token": swaks(port, "--auth", "PLAIN", "--auth-user", "api",
                             "--auth-password", "pr_" + "2" * 40, *common),
        "inbox user, token": swaks(port, "--auth", "PLAIN", "--auth-user", inbox["username"],
                                   "--auth-password", instance.token, *common),
        "api user, inbox password": swaks(port, "--auth", "LOGIN", "--auth-user", "api",
                                          "--auth-password", inbox["password"], *common),
    }  # fmt: skip
    for name, done in attempts.items():
        assert done.returncode != 0, name
        assert "530 5.7.0" in done.stdout or "535 5.7.8" in done.stdout, (name, done.stdout)


# --- mx mode ----------------------------------------------------------------------------------


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, int]]:
    """The recipients' MX on 127.0.0.2 (tests/smtppeers.py)."""
    receivers = Receivers()
    receivers.start(RECEIVER_HOST)
    try:
        yield receivers.primary, receivers.port
    finally:
        receivers.close()


def test_mx_mode_delivers_to_envelope_recipients_without_bcc(
    tmp_path: Path, tls_files: TlsFiles, receiver: tuple[Receiver, int]
) -> None:
    handler, receiver_port = receiver
    with LocalDnsServer() as dns:
        dns.add_mx("example.org", 10, "mx.example.org")
        dns.add_a("mx.example.org", RECEIVER_HOST)
        env = {
            "POSTROOM_DELIVERY__MODE": "mx",
            "POSTROOM_DNS__SERVER": dns.address,
            "POSTROOM_DELIVERY__PORT": str(receiver_port),
            "POSTROOM_DOMAINS__RSA_BITS": "1024",
        }
        server = start_server(
            tmp_path / "data", tls=(tls_files.cert_chain_pem, tls_files.key_pem), env=env
        )
        try:
            token = server.first_start_token()
            assert token, server.output()
            verify = ssl.create_default_context(cafile=str(tls_files.ca_pem))
            with httpx.Client(
                base_url=server.url(),
                verify=verify,
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            ) as http:
                account_id = http.get("/api/accounts").json()[0]["id"]
                base = f"/api/accounts/{account_id}/sending_domains"
                domain = http.post(
                    base, json={"sending_domain": {"domain_name": SENDER_DOMAIN}}
                ).json()
                dns.publish(domain["dns_records"])
                checked = http.post(f"{base}/{domain['id']}/verify").json()
                assert checked["dns_verified"] is True, checked
            done = swaks(
                server.smtp_ports[0], "--auth", "PLAIN", "--auth-user", "api",
                "--auth-password", token, "--from", f"orders@{SENDER_DOMAIN}",
                "--to", "ann@example.org,hidden@example.org",
                "--header", "To: Ann <ann@example.org>",
                "--header", "Bcc: hidden@example.org", "--header", "Subject: Your order",
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            wait_for(lambda: handler.received, timeout=30)
            unverified = swaks(
                server.smtp_ports[0], "--auth", "PLAIN", "--auth-user", "api",
                "--auth-password", token, "--from", "someone@elsewhere.test",
                "--to", "ann@example.org",
            )  # fmt: skip
            assert unverified.returncode != 0 and "550 5.7.1" in unverified.stdout
        finally:
            code = server.stop()
        assert code == 0, server.output()
    [(_, recipients, content)] = handler.received
    assert sorted(recipients) == ["ann@example.org", "hidden@example.org"]
    head = content.split(b"\r\n\r\n", 1)[0]
    assert b"\r\nBcc:" not in b"\r\n" + head and b"hidden@example.org" not in head
    assert b"DKIM-Signature:" in head and b"Subject: Your order" in head


# --- kill -9 ---------------------------------------------------------------------------------

SENDERS = 8


@pytest.mark.slow
def test_250_over_smtp_survives_kill_9(
    tmp_path: Path, tls_files: TlsFiles, database_url: str | None
) -> None:
    data_dir = tmp_path / "data"
    tls = (tls_files.cert_chain_pem, tls_files.key_pem)
    servers: list[Server] = []
    try:
        first = start_server(data_dir, tls=tls, database_url=database_url)
        servers.append(first)
        token = first.first_start_token()
        assert token, first.output()
        acknowledged: list[str] = []
        lock = threading.Lock()
        killed = threading.Event()
        context = ssl.create_default_context(cafile=str(tls_files.ca_pem))

        def sender(n: int) -> None:
            message = EmailMessage()
            message["From"] = "durable@example.com"
            message["To"] = "to@example.org"
            message["Subject"] = f"Survives kill -9 ({n})"
            message.set_content("A 250 means it is stored.\n")
            try:
                with smtplib.SMTP("127.0.0.1", first.smtp_ports[0], timeout=10) as client:
                    client.starttls(context=context)
                    client.login("api", token)
                    while not killed.is_set():
                        client.mail("durable@example.com")
                        client.rcpt("to@example.org")
                        code, reply = client.data(message.as_bytes(policy=SMTP_POLICY))
                        assert code == 250, reply
                        with lock:
                            acknowledged.append(reply.decode().rsplit(" ", 1)[1])
            except (OSError, smtplib.SMTPException):
                return  # the server died under us: unanswered, so not acknowledged

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(SENDERS)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(acknowledged) < 300:
            time.sleep(0.02)
        first.kill9()
        killed.set()
        for thread in threads:
            thread.join(15)
        assert acknowledged, first.output()

        second = start_server(data_dir, tls=tls, database_url=database_url)
        servers.append(second)
        store = Store(data_dir, database_url)
        try:
            stored = {row[0] for row in store.rows("SELECT id FROM messages")}
        finally:
            store.close()
        lost = set(acknowledged) - stored
        assert not lost, f"{len(lost)} of {len(acknowledged)} acknowledged messages lost"
        assert second.stop() == 0, second.output()
    finally:
        for server in servers:
            server.kill9()
