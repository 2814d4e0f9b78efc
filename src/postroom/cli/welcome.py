"""What ``postroom serve`` prints on first start: how to send a first email."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from urllib.parse import urlsplit

from rich.console import Console
from rich.panel import Panel

from postroom.cli.selfsigned import PEM_FILE
from postroom.config import Settings
from postroom.services.accounts import Bootstrap

# How long the printed inbox read waits for the first captured message.
WAIT_SECONDS = 5


def base_url(settings: Settings, port: int) -> str:
    cfg = settings.server
    if cfg.public_url:
        return cfg.public_url.rstrip("/")
    scheme = "https" if cfg.tls_cert else "http"
    host = "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host
    return f"{scheme}://{host}:{port}"


def curl_command(settings: Settings, token: str) -> str:
    url = base_url(settings, settings.server.port)
    body = (
        '{"from":{"email":"hello@example.com","name":"Postroom"},'
        '"to":[{"email":"you@example.com"}],'
        '"subject":"Hello from Postroom","text":"It works."}'
    )
    return (
        f"curl -sS {url}/api/send \\\n"
        f"  -H 'Authorization: Bearer {token}' \\\n"
        f"  -H 'Content-Type: application/json' \\\n"
        f"  -d '{body}'"
    )


def python_snippet(settings: Settings, boot: Bootstrap) -> str:
    url = base_url(settings, settings.server.port)
    host = url.split("://", 1)[1]
    plain_http = url.startswith("http://")
    lines = [
        "import mailtrap as mt",
        "import mailtrap.client",
    ]
    if plain_http:
        lines += [
            "import mailtrap.http",
            "# The SDK speaks HTTPS only; point it at plain HTTP for this local server.",
            "mailtrap.http.HttpClient._url = (\n"
            "    lambda self, p: f\"http://{self._host}/{p.lstrip('/')}\")",
        ]
    lines += [
        f'mailtrap.client.GENERAL_HOST = "{host}"',
        f'client = mt.MailtrapClient(token="{boot.token}", account_id={boot.account_id},',
        f'                           api_host="{host}")',
        'print(client.send(mt.Mail(sender=mt.Address(email="hello@example.com"),',
        '                          to=[mt.Address(email="you@example.com")],',
        '                          subject="Hello from Postroom", text="It works.")))',
    ]
    return "\n".join(lines)


def postroom_program() -> str:
    """How to run this very ``postroom`` again from a shell (its path when started as
    ``postroom``, else this Python with ``-m postroom``)."""
    started = Path(sys.argv[0])
    if started.name == "postroom" and started.exists():
        return shlex.quote(str(started.resolve()))
    return f"{shlex.quote(sys.executable)} -m postroom"


def user_command(settings: Settings) -> str:
    """The command that creates the first dashboard login for this server's database."""
    where = (
        '--database-url "$POSTROOM_STORAGE__DATABASE_URL"'
        if settings.storage.database_url
        else f"--data-dir {shlex.quote(str(settings.storage.data_dir.resolve()))}"
    )
    return f"{postroom_program()} user create you@example.com {where}"


def inbox_command(settings: Settings, boot: Bootstrap) -> str:
    """The GET that reads the captured mail back, waiting for it (capture is asynchronous)."""
    url = base_url(settings, settings.server.port)
    path = f"/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages?wait={WAIT_SECONDS}"
    return f"curl -sS '{url}{path}' \\\n  -H 'Authorization: Bearer {boot.token}'"


def swaks_command(settings: Settings, token: str) -> str | None:
    """The SMTP submission of a first email, or None when no STARTTLS listener runs."""
    sub = settings.submission
    if not sub.port or (settings.smtp_tls_files() is None and not sub.allow_plaintext_loopback):
        return None
    tls = "--tls " if settings.smtp_tls_files() is not None else ""
    return (
        f"swaks --server {_smtp_host(settings)} --port {sub.port} {tls}--auth PLAIN \\\n"
        f"  --auth-user api --auth-password '{token}' \\\n"
        "  --from hello@example.com --to you@example.com"
    )


def _smtp_host(settings: Settings) -> str:
    cfg = settings.server
    if cfg.public_url:
        return urlsplit(cfg.public_url).hostname or "127.0.0.1"
    return "127.0.0.1" if cfg.host in ("0.0.0.0", "::") else cfg.host


def print_welcome(console: Console, settings: Settings, boot: Bootstrap) -> None:
    console.print(
        Panel.fit(
            f"[bold]Postroom is ready.[/bold] "
            f"Account {boot.account_id}, admin {boot.admin_email}.\n"
            f"API token (shown once, keep it): [bold green]{boot.token}[/bold green]\n"
            f"Captured mail lands in sandbox inbox {boot.inbox_id}.",
            title="first start",
        )
    )

    def command(text: str) -> None:
        # Never folded or highlighted: what is printed must run when pasted.
        console.print(text, soft_wrap=True, highlight=False, markup=False)

    console.print("Send a first email with curl:")
    command(curl_command(settings, boot.token))
    console.print(
        f"\nRead it back from inbox {boot.inbox_id}. Capture is asynchronous (a moment after "
        f"the send answers), so wait={WAIT_SECONDS} waits up to {WAIT_SECONDS} s for a "
        "message; add &message_id=<one of the send's message_ids> to wait for that one:",
        highlight=False,
    )
    command(inbox_command(settings, boot))
    swaks = swaks_command(settings, boot.token)
    if swaks is not None:
        note = ""
        if settings.submission.tls_cert and settings.submission.tls_cert.name == PEM_FILE:
            note = f" (self-signed certificate {settings.submission.tls_cert}: don't verify it)"
        console.print(f"\nor over SMTP, STARTTLS and AUTH with user api{note}:", highlight=False)
        command(swaks)
    console.print("\nor with the official Mailtrap Python SDK (pip install mailtrap):")
    command(python_snippet(settings, boot))
    dashboard = base_url(settings, settings.server.port)
    console.print(
        f"\nThe dashboard is at {dashboard}/ : create your login first (it asks for a "
        "password, or reads POSTROOM_PASSWORD):",
        highlight=False,
    )
    command(user_command(settings))
