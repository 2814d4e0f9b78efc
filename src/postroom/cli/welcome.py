"""What ``postroom serve`` prints on first start: how to send a first email."""

from __future__ import annotations

from rich.console import Console
from rich.panel import Panel

from postroom.config import Settings
from postroom.services.accounts import Bootstrap


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


def print_welcome(console: Console, settings: Settings, boot: Bootstrap) -> None:
    url = base_url(settings, settings.server.port)
    console.print(
        Panel.fit(
            f"[bold]Postroom is ready.[/bold] "
            f"Account {boot.account_id}, admin {boot.admin_email}.\n"
            f"API token (shown once, keep it): [bold green]{boot.token}[/bold green]\n"
            f"Captured mail lands in sandbox inbox {boot.inbox_id}: "
            f"GET {url}/api/accounts/{boot.account_id}/inboxes/{boot.inbox_id}/messages",
            title="first start",
        )
    )
    console.print("Send a first email with curl:")
    console.print(curl_command(settings, boot.token), soft_wrap=True, highlight=False, markup=False)
    console.print("\nor with the official Mailtrap Python SDK (pip install mailtrap):")
    console.print(python_snippet(settings, boot), soft_wrap=True, highlight=False, markup=False)
