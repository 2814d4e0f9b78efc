"""``postroom webhook …``: operators' view of webhooks, by id, across accounts.

    postroom webhook list [--account ID]
    postroom webhook log ID [--limit N]
    postroom webhook replay ID --since ISO --until ISO
    postroom webhook test ID
    postroom webhook resume ID

They work on the database directly (like ``postroom domain …``), with the instance's
secret key; ``test`` POSTs from this process through the same SSRF-safe client as the
server, with the same settings. Replayed batches are sent by the running server.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from postroom.cli import main as cli
from postroom.errors import Conflict
from postroom.services import Services
from postroom.services import webhooks as service
from postroom.storage.repos import webhooks as repo
from postroom.storage.secrets import SecretKeyMissing, load_sealer

webhook_app = typer.Typer(
    help="Webhooks: list, delivery log, replay, test, resume.", no_args_is_help=True
)

WebhookId = Annotated[int, typer.Argument(help="The webhook's id.", min=1)]
Stamp = Annotated[str, typer.Option(help="ISO 8601 time, e.g. 2026-03-01T12:00:00Z.")]


def _services(data_dir: Path | None, database_url: str | None) -> Services:
    settings = cli._existing(data_dir, database_url)
    services = cli._open(settings)
    try:
        services.sealer = load_sealer(settings)
    except SecretKeyMissing as exc:
        services.db.close()
        cli.err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return services


def _webhook(services: Services, webhook_id: int) -> dict[str, Any]:
    row = services.db.read_sync(lambda c: repo.find_by_id(c, webhook_id))
    if row is None:
        services.db.close()
        cli.err.print(f"[red]no webhook {webhook_id}[/red]")
        raise typer.Exit(2)
    return row


def _time(value: str, name: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        cli.err.print(f"[red]--{name} must be an ISO 8601 time[/red]")
        raise typer.Exit(2) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _stamp(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


@webhook_app.command("list")
def webhook_list(
    account: cli.AccountOption = None,
    data_dir: cli.DataDir = None,
    database_url: cli.DatabaseUrl = None,
) -> None:
    """Print the webhooks, their state and how many events wait for each."""
    services = _services(data_dir, database_url)
    try:
        rows = services.db.read_sync(lambda c: repo.list_webhooks(c, account))
        waiting = services.db.read_sync(
            lambda c: {int(r["id"]): repo.pending_count(c, int(r["id"])) for r in rows}
        )
    finally:
        services.db.close()
    table = Table("id", "account", "type", Column("url", overflow="fold"), "state", "pending")
    for row in rows:
        state = "inactive" if not row["active"] else "active"
        if row["paused_at"] is not None:
            state = f"paused {_stamp(row['paused_at'])}"
        table.add_row(
            str(row["id"]),
            str(row["account_id"]),
            row["webhook_type"],
            service.redacted(str(row["url"])),
            state,
            str(waiting[int(row["id"])][1]),
        )
    cli.out.print(table)


@webhook_app.command("log")
def webhook_log(
    webhook_id: WebhookId,
    limit: Annotated[int, typer.Option(min=1, max=10000, help="Entries shown.")] = 50,
    data_dir: cli.DataDir = None,
    database_url: cli.DatabaseUrl = None,
) -> None:
    """Print a webhook's delivery log, newest first."""
    services = _services(data_dir, database_url)
    try:
        row = _webhook(services, webhook_id)
        entries = asyncio.run(
            service.delivery_log(services, int(row["account_id"]), webhook_id, limit=limit)
        )
    finally:
        services.db.close()
    table = Table(
        "time",
        Column("batch", overflow="fold"),
        "kind",
        "attempt",
        "events",
        "status",
        "ms",
        "answer",
    )
    for e in entries:
        status = str(e["status"]) if e["status"] is not None else (e["error"] or "-")
        table.add_row(
            _stamp(e["started_at"]),
            str(e["batch_id"]),
            str(e["kind"]),
            str(e["attempt"]),
            str(e["event_count"]),
            status if e["ok"] else f"[red]{status}[/red]",
            str(e["latency_ms"]),
            str(e["response_excerpt"])[:60].replace("\n", " "),
        )
    cli.out.print(table)


@webhook_app.command("replay")
def webhook_replay(
    webhook_id: WebhookId,
    since: Stamp,
    until: Stamp,
    data_dir: cli.DataDir = None,
    database_url: cli.DatabaseUrl = None,
) -> None:
    """Queue the webhook's events recorded in [since, until) again, in new batches."""
    start, end = _time(since, "since"), _time(until, "until")
    services = _services(data_dir, database_url)
    try:
        row = _webhook(services, webhook_id)
        done = asyncio.run(service.replay(services, int(row["account_id"]), webhook_id, start, end))
    except Conflict as exc:
        cli.err.print(f"[red]{'; '.join(m for ms in exc.field_errors.values() for m in ms)}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.db.close()
    cli.out.print(f"queued {done.events} event(s) in {done.batches} batch(es)")


@webhook_app.command("test")
def webhook_test(
    webhook_id: WebhookId,
    data_dir: cli.DataDir = None,
    database_url: cli.DatabaseUrl = None,
) -> None:
    """POST one test event to the webhook now; exit 0 when it answered 2xx."""
    services = _services(data_dir, database_url)
    try:
        row = _webhook(services, webhook_id)
        entry = asyncio.run(service.send_test(services, int(row["account_id"]), webhook_id))
    finally:
        services.db.close()
    if entry["ok"]:
        cli.out.print(f"delivered: HTTP {entry['status']} in {entry['latency_ms']} ms")
        return
    cli.out.print(f"[red]not delivered: {entry['error']}[/red]")
    raise typer.Exit(1)


@webhook_app.command("resume")
def webhook_resume(
    webhook_id: WebhookId,
    data_dir: cli.DataDir = None,
    database_url: cli.DatabaseUrl = None,
) -> None:
    """Resume a paused webhook: its kept batches are sent at once."""
    services = _services(data_dir, database_url)
    try:
        row = _webhook(services, webhook_id)
        asyncio.run(service.update(services, int(row["account_id"]), webhook_id, {"webhook": {}}))
    finally:
        services.db.close()
    cli.out.print(f"webhook {webhook_id} resumed")
