"""The newcomer's path: ``postroom serve`` as the README runs it, and what it prints.

The server runs on the embedded default (no TLS flags: plain HTTP, SQLite in a data
directory) on free ports. Every command the first start prints is run as printed, with
bash: the curl send, the inbox read that waits for the capture, and the swaks SMTP
submission over STARTTLS with the self-signed certificate made for SMTP. Local commands
run from another directory find the server's data directory.
"""

from __future__ import annotations

import ipaddress
import json
import re
import smtplib
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from server import Server, cli_env, printed_commands, printed_python, start_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("newcomer") / "data")
    yield server
    code = server.stop()
    assert code == 0, f"postroom serve exited {code} on SIGTERM\n{server.output()}"


def _bash(command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, timeout=timeout, check=False
    )


def test_every_printed_command_works_as_printed(newcomer: Server) -> None:
    send, read = printed_commands(newcomer.stdout, "curl ")
    assert "Authorization: Bearer pr_" in read, read
    sent = _bash(send)
    assert sent.returncode == 0, sent.stderr
    answer = json.loads(sent.stdout)
    assert answer["success"] is True, answer

    # Straight after the send, as a newcomer would: the read waits for the capture.
    listed = _bash(read)
    assert listed.returncode == 0, listed.stderr
    messages = json.loads(listed.stdout)
    assert [m["subject"] for m in messages] == ["Hello from Postroom"], messages

    (swaks,) = printed_commands(newcomer.stdout, "swaks ")
    assert "--tls" in swaks
    submitted = _bash(swaks)
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    assert "250 2.0.0" in submitted.stdout, submitted.stdout

    # The read with the send's message_id picks that message out, now among two.
    base = read.split("'")[1]
    by_id = _bash(read.replace(base, f"{base}&message_id={answer['message_ids'][0]}"))
    assert [m["subject"] for m in json.loads(by_id.stdout)] == ["Hello from Postroom"]

    # The Python snippet, with its plain-HTTP patch for the SDK.
    snippet = printed_python(newcomer.stdout)
    run = subprocess.run(
        [sys.executable, "-c", snippet], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, f"{snippet}\n---\n{run.stderr}"
    assert "'success': True" in run.stdout, run.stdout

    # The dashboard's first login, created with the printed command, then signed in with.
    [create] = [line for line in newcomer.stdout.splitlines() if " user create " in line]
    made = _bash(f"POSTROOM_PASSWORD='a long enough passphrase' {create}", timeout=60)
    assert made.returncode == 0, made.stdout + made.stderr
    with httpx.Client(base_url=f"http://127.0.0.1:{newcomer.port}") as browser:
        page = browser.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text)
        assert csrf, page.text[:300]
        signed = browser.post(
            "/ui/login",
            data={"csrf": csrf.group(1), "email": "you@example.com",
                  "password": "a long enough passphrase"},
        )  # fmt: skip
        assert signed.status_code == 303 and signed.headers["location"] == "/", signed.text[:300]
        assert browser.get("/").status_code == 200


def test_smtp_gets_a_private_self_signed_certificate(newcomer: Server) -> None:
    pem = newcomer.data_dir / "smtp-selfsigned.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    certificate = x509.load_pem_x509_certificate(pem.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    addresses = set(names.get_values_for_type(x509.IPAddress))
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("::1")} <= addresses
    # STARTTLS presents it: a client that trusts exactly this file verifies the server.
    context = ssl.create_default_context(cafile=str(pem))
    with smtplib.SMTP("127.0.0.1", newcomer.smtp_ports[0], timeout=10) as client:
        client.starttls(context=context)
        assert "AUTH" in client.ehlo()[1].decode()
    # HTTP stays plain on the embedded default.
    assert newcomer.url().startswith("http://")


def test_the_certificate_is_reused_on_the_next_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_server(data)
    first.stop()
    made = (data / "smtp-selfsigned.pem").read_bytes()
    second = start_server(data)
    try:
        assert (data / "smtp-selfsigned.pem").read_bytes() == made
    finally:
        assert second.stop() == 0, second.output()


def test_local_commands_from_another_directory_find_the_server(tmp_path: Path) -> None:
    state = {"XDG_STATE_HOME": str(tmp_path / "state")}
    server = start_server(tmp_path / "instance" / "data", env=state)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "postroom", "token", "create", "--name", "later"],
            cwd=elsewhere,
            env=cli_env(state),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        assert server.stop() == 0, server.output()
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("pr_")
    assert str(server.data_dir.resolve()) in " ".join(done.stderr.split())
    assert list(elsewhere.iterdir()) == []
