"""``postroom remote …``: work with any Postroom through its HTTP API (cli/client.py).

Unlike the local commands these never open a database: they need the server's URL and a
token, from ``POSTROOM_URL``/``POSTROOM_TOKEN`` or from ``postroom remote login URL``
(saved 0600). ``SSL_CERT_FILE`` names a private CA to trust. Every command takes
``--json`` and then prints exactly the API's JSON answer (one document) on stdout.

Exit codes (README "Remote commands"):

- 0: done;
- 1: the server refused or failed the request (4xx/5xx; the message is on stderr);
- 2: bad usage or no configuration (no URL or token, unreadable file, bad JSON);
- 3: the server could not be reached (connection refused, TLS failure, timeout);
- 4: ``sandbox wait`` saw no message before its timeout.
"""

from __future__ import annotations

import csv
import io
import json
import re
import sys
import webbrowser
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from postroom.cli.client import (
    NotConfigured,
    PostroomClient,
    Remote,
    RemoteError,
    load_remote,
    save_remote,
)

OK, REFUSED, USAGE, UNREACHABLE, TIMED_OUT = 0, 1, 2, 3, 4

remote_app = typer.Typer(
    help="Work with a Postroom through its HTTP API (POSTROOM_URL, POSTROOM_TOKEN).",
    no_args_is_help=True,
)
logs_app = typer.Typer(help="Email logs.", no_args_is_help=True)
sandbox_app = typer.Typer(help="Sandbox (test inbox) messages.", no_args_is_help=True)
domains_app = typer.Typer(help="Sending domains.", no_args_is_help=True)
suppressions_app = typer.Typer(help="Suppressed addresses.", no_args_is_help=True)
templates_app = typer.Typer(help="Email templates as files in a folder.", no_args_is_help=True)
webhooks_app = typer.Typer(help="Webhooks: endpoints, test events, replay.", no_args_is_help=True)
remote_app.add_typer(logs_app, name="logs")
remote_app.add_typer(sandbox_app, name="sandbox")
remote_app.add_typer(domains_app, name="domains")
remote_app.add_typer(suppressions_app, name="suppressions")
remote_app.add_typer(templates_app, name="templates")
remote_app.add_typer(webhooks_app, name="webhooks")

out = Console(soft_wrap=True)
err = Console(stderr=True)

Json = Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")]


def _fail(message: str, code: int) -> typer.Exit:
    err.print(f"[red]{escape(message)}[/red]", highlight=False)
    return typer.Exit(code)


@contextmanager
def _client() -> Iterator[PostroomClient]:
    """A client on the configured remote; API failures become the documented exit codes."""
    try:
        remote = load_remote()
    except NotConfigured as exc:
        raise _fail(exc.message, USAGE) from None
    client = PostroomClient(remote)
    try:
        yield client
    except RemoteError as exc:
        if exc.status == 0:
            raise _fail(exc.message, UNREACHABLE) from None
        raise _fail(f"HTTP {exc.status}: {exc.message}", REFUSED) from None
    finally:
        client.close()


def _json(value: Any) -> None:
    # Plain print: Rich would wrap long lines and colour the document.
    print(json.dumps(value, indent=2, ensure_ascii=False))


def _table(rows: list[dict[str, Any]], columns: list[str], title: str | None = None) -> None:
    table = Table(title=title)
    for column in columns:
        # Fold, never cut: a DKIM key or an id must be copyable whole.
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(
            *(escape(str(row.get(c, "") if row.get(c) is not None else "")) for c in columns)
        )
    out.print(table)


# --- login -----------------------------------------------------------------------------


@remote_app.command("login")
def login(
    url: Annotated[str, typer.Argument(help="The Postroom API, e.g. https://mail.example.com")],
    token: Annotated[
        str | None,
        typer.Option(envvar="POSTROOM_TOKEN", help="API token (asked for when not given)."),
    ] = None,
) -> None:
    """Check URL and token against the server, then save them (0600) for later commands."""
    if not re.match(r"^https?://", url):
        raise _fail("the URL starts with http:// or https://", USAGE)
    token = token or typer.prompt("API token", hide_input=True)
    remote = Remote(url.rstrip("/"), token)
    with PostroomClient(remote) as client:
        try:
            me = client.whoami()
        except RemoteError as exc:
            code = UNREACHABLE if exc.status == 0 else REFUSED
            raise _fail(f"login failed: {exc.message}", code) from None
    path = save_remote(remote)
    out.print(
        f"Logged in to {escape(remote.url)} as token {escape(str(me.get('name')))} "
        f"(account {me.get('account_id')}, scopes {', '.join(me.get('scopes', []))}); "
        f"saved in {path}",
        highlight=False,
    )


@remote_app.command("whoami")
def whoami(as_json: Json = False) -> None:
    """The server and the token in use: account and scopes."""
    with _client() as client:
        me = client.whoami()
        if as_json:
            _json({"url": client.remote.url, **me})
            return
        out.print(
            f"{client.remote.url}: token {me.get('name')}, account {me.get('account_id')}, "
            f"scopes {', '.join(me.get('scopes', []))}",
            highlight=False,
        )


# --- send ------------------------------------------------------------------------------


def _variables(pairs: list[str]) -> dict[str, str]:
    result = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise _fail(f"--var takes NAME=VALUE, not {pair!r}", USAGE)
        result[name] = value
    return result


def _read_body(source: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        body = json.loads(text)
    except (OSError, ValueError) as exc:
        raise _fail(f"cannot read a JSON message from {source}: {exc}", USAGE) from None
    if not isinstance(body, dict):
        raise _fail("the JSON message must be an object (the /api/send body)", USAGE)
    return body


@remote_app.command("send")
def send(
    sender: Annotated[str | None, typer.Option("--from", help="Sender address.")] = None,
    to: Annotated[list[str] | None, typer.Option("--to", help="Recipient (repeat).")] = None,
    cc: Annotated[list[str] | None, typer.Option(help="Cc (repeat).")] = None,
    bcc: Annotated[list[str] | None, typer.Option(help="Bcc (repeat).")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject.")] = None,
    text: Annotated[str | None, typer.Option(help="Text body.")] = None,
    html: Annotated[str | None, typer.Option(help="HTML body.")] = None,
    category: Annotated[str | None, typer.Option(help="Category.")] = None,
    template_uuid: Annotated[str | None, typer.Option(help="Send a stored template.")] = None,
    var: Annotated[
        list[str] | None, typer.Option("--var", help="Template variable NAME=VALUE (repeat).")
    ] = None,
    file: Annotated[
        str | None,
        typer.Option(
            "--file",
            "-f",
            help="The /api/send JSON body from a file, or - for stdin; "
            "flags given override its fields.",
        ),
    ] = None,  # fmt: skip
    sandbox: Annotated[
        int | None, typer.Option(help="Capture in this sandbox inbox instead of delivering.")
    ] = None,
    as_json: Json = False,
) -> None:
    """Send one message (flags, a JSON file, or JSON on stdin)."""
    body: dict[str, Any] = _read_body(file) if file else {}
    if sender:
        body["from"] = {"email": sender}
    for key, addresses in (("to", to), ("cc", cc), ("bcc", bcc)):
        if addresses:
            body[key] = [{"email": a} for a in addresses]
    flags = {"subject": subject, "text": text, "html": html, "category": category,
             "template_uuid": template_uuid}  # fmt: skip
    body.update({k: v for k, v in flags.items() if v is not None})
    if var:
        body["template_variables"] = {**body.get("template_variables", {}), **_variables(var)}
    if "from" not in body or "to" not in body:
        raise _fail("a message needs --from and --to (or them in --file)", USAGE)
    with _client() as client:
        result = client.send_to_sandbox(sandbox, body) if sandbox else client.send(body)
    if as_json:
        _json(result)
    else:
        out.print(f"Sent: {', '.join(result.get('message_ids', []))}", highlight=False)


# --- logs ------------------------------------------------------------------------------


@logs_app.command("search")
def logs_search(
    to: Annotated[str | None, typer.Option(help="Recipient address.")] = None,
    sender: Annotated[str | None, typer.Option("--from", help="Sender address.")] = None,
    subject: Annotated[str | None, typer.Option(help="Subject contains.")] = None,
    status: Annotated[
        str | None, typer.Option(help="delivered, not_delivered, enqueued or opted_out.")
    ] = None,
    category: Annotated[str | None, typer.Option(help="Category.")] = None,
    since: Annotated[str | None, typer.Option(help="Sent after this ISO 8601 time.")] = None,
    cursor: Annotated[str | None, typer.Option(help="next_page_cursor of a previous page.")] = None,
    as_json: Json = False,
) -> None:
    """Search the email logs (newest first, one page)."""
    filters: dict[str, Any] = {}
    if to:
        filters["to"] = {"ci_equal": to}
    if sender:
        filters["from"] = {"ci_equal": sender}
    if subject:
        filters["subject"] = {"ci_contain": subject}
    if status:
        filters["status"] = {"equal": status}
    if category:
        filters["category"] = {"equal": category}
    if since:
        filters["sent_after"] = since
    with _client() as client:
        page = client.logs(filters=filters, search_after=cursor)
    if as_json:
        _json(page)
        return
    _table(page.get("messages", []), ["message_id", "sent_at", "status", "from", "to", "subject"])
    if page.get("next_page_cursor"):
        out.print(f"More: --cursor {page['next_page_cursor']}", highlight=False)


@logs_app.command("show")
def logs_show(message_id: str, as_json: Json = False) -> None:
    """One message's log with its events."""
    with _client() as client:
        entry = client.log(message_id)
    if as_json:
        _json(entry)
        return
    for key in ("message_id", "status", "subject", "from", "to", "sent_at", "category"):
        out.print(f"{key}: {escape(str(entry.get(key)))}", highlight=False)
    _table(
        [{"type": e.get("event_type"), "at": e.get("created_at"), **(e.get("details") or {})}
         for e in entry.get("events", [])],
        ["type", "at"],
        title="Events",
    )  # fmt: skip


# --- sandbox ---------------------------------------------------------------------------

Inbox = Annotated[
    int | None, typer.Option("--inbox", help="Inbox id (default: the default inbox).")
]
MESSAGE_COLUMNS = ["id", "sent_at", "from_email", "to_email", "subject"]


@sandbox_app.command("list")
def sandbox_list(
    inbox: Inbox = None,
    search: Annotated[str | None, typer.Option(help="Subject/from/to contains.")] = None,
    as_json: Json = False,
) -> None:
    """Captured messages, newest first."""
    with _client() as client:
        rows = client.messages(inbox or client.default_inbox_id(), search=search)
    if as_json:
        _json(rows)
    else:
        _table(rows, MESSAGE_COLUMNS)


def _show(client: PostroomClient, inbox: int, message_id: int, part: str, as_json: bool) -> None:
    if as_json:
        row = client.message(inbox, message_id)
        row["text"] = client.message_body(inbox, message_id, "txt")
        row["html"] = client.message_body(inbox, message_id, "htmlsource")
        _json(row)
        return
    if part == "raw":
        print(client.message_body(inbox, message_id, "raw"))
        return
    row = client.message(inbox, message_id)
    for key in ("id", "sent_at", "from_email", "to_email", "subject"):
        out.print(f"{key}: {escape(str(row.get(key)))}", highlight=False)
    kind = "htmlsource" if part == "html" else "txt"
    print()
    print(client.message_body(inbox, message_id, kind))


Part = Annotated[str, typer.Option(help="text, html or raw.")]


@sandbox_app.command("show")
def sandbox_show(
    message_id: int, inbox: Inbox = None, part: Part = "text", as_json: Json = False
) -> None:
    """One captured message: its headers and a body."""
    with _client() as client:
        _show(client, inbox or client.default_inbox_id(), message_id, part, as_json)


@sandbox_app.command("wait")
def sandbox_wait(
    to: Annotated[str | None, typer.Option(help="Only a message to this address.")] = None,
    inbox: Inbox = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait (exit 4 after).")] = 30,
    part: Part = "text",
    as_json: Json = False,
) -> None:
    """Wait for the next message (to an address) and show it."""
    with _client() as client:
        inbox_id = inbox or client.default_inbox_id()
        newest = max((int(r["id"]) for r in client.messages(inbox_id)), default=0)
        try:
            row = client.wait_for_message(inbox_id, to=to, after_id=newest, timeout=timeout)
        except TimeoutError as exc:
            raise _fail(str(exc), TIMED_OUT) from None
        _show(client, inbox_id, int(row["id"]), part, as_json)


@sandbox_app.command("open")
def sandbox_open(message_id: int, inbox: Inbox = None) -> None:
    """Open a message's HTML in the browser (saved to a temporary file first)."""
    import tempfile

    with _client() as client:
        html = client.message_body(inbox or client.default_inbox_id(), message_id, "htmlsource")
    with tempfile.NamedTemporaryFile("w", suffix=".html", delete=False, encoding="utf-8") as f:
        f.write(html)
    out.print(f"Opening {f.name}", highlight=False)
    webbrowser.open(f"file://{f.name}")


# --- domains ---------------------------------------------------------------------------


def _records(domain: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {k: r.get(k) for k in ("key", "type", "name", "value", "status")}
        for r in domain.get("dns_records") or []
    ]


@domains_app.command("list")
def domains_list(as_json: Json = False) -> None:
    """Sending domains and whether their DNS is verified."""
    with _client() as client:
        rows = client.domains()
    if as_json:
        _json(rows)
    else:
        _table(rows, ["id", "domain_name", "dns_verified", "compliance_status"])


@domains_app.command("add")
def domains_add(name: str, as_json: Json = False) -> None:
    """Add a sending domain and print the DNS records to publish."""
    with _client() as client:
        domain = client.add_domain(name)
    if as_json:
        _json(domain)
    else:
        out.print(f"Added {escape(name)} (id {domain.get('id')}). Publish:", highlight=False)
        _table(_records(domain), ["type", "name", "value"])


@domains_app.command("records")
def domains_records(domain: str, as_json: Json = False) -> None:
    """The DNS records of a domain (name or id) and their status."""
    with _client() as client:
        row = client.find_domain(domain)
    if as_json:
        _json(_records(row))
    else:
        _table(_records(row), ["key", "type", "name", "value", "status"])


@domains_app.command("verify")
def domains_verify(domain: str, as_json: Json = False) -> None:
    """Check a domain's DNS now (exit 1 if it is not verified)."""
    with _client() as client:
        row = client.verify_domain(int(client.find_domain(domain)["id"]))
    if as_json:
        _json(row)
    else:
        _table(_records(row), ["key", "type", "name", "status"])
    if not row.get("dns_verified"):
        raise typer.Exit(REFUSED)


@domains_app.command("rotate")
def domains_rotate(domain: str, as_json: Json = False) -> None:
    """Publish new DKIM keys for a domain (print the records to add)."""
    with _client() as client:
        row = client.rotate_domain(int(client.find_domain(domain)["id"]))
    if as_json:
        _json(row)
    else:
        _table(_records(row), ["key", "type", "name", "value", "status"])


# --- webhooks --------------------------------------------------------------------------

WEBHOOK_COLUMNS = ["id", "url", "webhook_type", "sending_stream", "active", "paused_at"]
EVENT_TYPES = "delivery,soft_bounce,bounce,suspension,unsubscribe,open,spam_complaint,click,reject"


@webhooks_app.command("list")
def webhooks_list(as_json: Json = False) -> None:
    """The account's webhooks (a paused one shows when and why)."""
    with _client() as client:
        rows = client.webhooks()
    if as_json:
        _json(rows)
    else:
        _table(rows, WEBHOOK_COLUMNS)


@webhooks_app.command("add")
def webhooks_add(
    url: str,
    events: Annotated[
        str, typer.Option(help="Comma-separated event types (email_sending webhooks).")
    ] = EVENT_TYPES,
    stream: Annotated[
        str, typer.Option(help="transactional or bulk (email_sending webhooks).")
    ] = "transactional",
    webhook_type: Annotated[
        str, typer.Option("--type", help="email_sending, audit_log or inbound_receiving.")
    ] = "email_sending",
    payload_format: Annotated[str, typer.Option("--format", help="json or jsonlines.")] = "json",
    as_json: Json = False,
) -> None:
    """Create a webhook and print its signing secret (shown this once only)."""
    body: dict[str, Any] = {
        "url": url,
        "webhook_type": webhook_type,
        "payload_format": payload_format,
    }
    if webhook_type == "email_sending":
        body["sending_stream"] = stream
        body["event_types"] = [e.strip() for e in events.split(",") if e.strip()]
    with _client() as client:
        made = client.add_webhook(body)
    if as_json:
        _json(made)
        return
    out.print(f"Webhook {made.get('id')} created for {escape(url)}.", highlight=False)
    out.print(
        f"Signing secret (shown once, keep it): {escape(str(made.get('signing_secret')))}",
        highlight=False,
    )


@webhooks_app.command("test")
def webhooks_test(webhook_id: int, as_json: Json = False) -> None:
    """Send one test event now (exit 1 if the endpoint did not answer 2xx)."""
    with _client() as client:
        attempt = client.test_webhook(webhook_id)
    data = attempt.get("data", attempt)
    if as_json:
        _json(attempt)
    else:
        _table([data], ["status", "latency_ms", "error", "response_excerpt"])
    if not data.get("ok", 200 <= int(data.get("status") or 0) < 300):
        raise typer.Exit(REFUSED)


@webhooks_app.command("replay")
def webhooks_replay(
    webhook_id: int,
    since: Annotated[str, typer.Option(help="ISO 8601 start of the range.")],
    until: Annotated[str, typer.Option(help="ISO 8601 end of the range.")],
    as_json: Json = False,
) -> None:
    """Send the webhook's events of a time range again (new batches, same event ids)."""
    with _client() as client:
        done = client.replay_webhook(webhook_id, since, until)
    if as_json:
        _json(done)
    else:
        out.print(escape(json.dumps(done.get("data", done))), highlight=False)


# --- suppressions ----------------------------------------------------------------------

SUPPRESSION_COLUMNS = ["id", "email", "type", "sending_stream", "created_at"]
IMPORT_CHUNK = 500  # rows per request: the progress bar moves and no body is too large


@suppressions_app.command("list")
def suppressions_list(
    email: Annotated[str | None, typer.Option(help="Only this address.")] = None,
    as_json: Json = False,
) -> None:
    """Suppressed addresses."""
    with _client() as client:
        rows = client.suppressions(email)
    if as_json:
        _json(rows)
    else:
        _table(rows, SUPPRESSION_COLUMNS)


@suppressions_app.command("add")
def suppressions_add(
    emails: Annotated[list[str], typer.Argument(help="Addresses to suppress.")],
    stream: Annotated[str, typer.Option(help="transactional or bulk.")] = "transactional",
    as_json: Json = False,
) -> None:
    """Suppress addresses."""
    added = []
    with _client() as client, Progress(console=err, transient=True) as progress:
        task = progress.add_task("Adding", total=len(emails))
        for email in emails:
            added.append(client.add_suppression(email, sending_stream=stream).get("data"))
            progress.advance(task)
    if as_json:
        _json(added)
    else:
        out.print(f"Suppressed {len(added)} address(es).")


@suppressions_app.command("remove")
def suppressions_remove(
    ids: Annotated[list[str], typer.Argument(help="Suppression ids (or addresses).")],
    as_json: Json = False,
) -> None:
    """Remove suppressions by id, or every suppression of an address."""
    removed = []
    with _client() as client, Progress(console=err, transient=True) as progress:
        task = progress.add_task("Removing", total=len(ids))
        for item in ids:
            targets = [r["id"] for r in client.suppressions(item)] if "@" in item else [item]
            for target in targets:
                client.remove_suppression(str(target))
                removed.append(str(target))
            progress.advance(task)
    if as_json:
        _json({"removed": removed})
    else:
        out.print(f"Removed {len(removed)} suppression(s).")


@suppressions_app.command("import")
def suppressions_import(
    file: Annotated[Path, typer.Argument(help="CSV with an email column (as export writes).")],
    as_json: Json = False,
) -> None:
    """Import suppressions from a CSV file, in chunks, with a progress bar."""
    try:
        rows = list(csv.reader(io.StringIO(file.read_text(encoding="utf-8-sig"))))
    except OSError as exc:
        raise _fail(f"cannot read {file}: {exc}", USAGE) from None
    if not rows:
        raise _fail(f"{file} is empty", USAGE)
    header, body = rows[0], rows[1:]
    results = []
    with _client() as client, Progress(console=err, transient=True) as progress:
        task = progress.add_task("Importing", total=len(body))
        for start in range(0, len(body), IMPORT_CHUNK):
            chunk = body[start : start + IMPORT_CHUNK]
            buffer = io.StringIO()
            csv.writer(buffer).writerows([header, *chunk])
            results.append(client.import_suppressions(buffer.getvalue()).get("data"))
            progress.advance(task, len(chunk))
    if as_json:
        _json(results)
    else:
        out.print(f"Imported {len(body)} row(s) from {file}.", highlight=False)


@suppressions_app.command("export")
def suppressions_export(
    file: Annotated[Path | None, typer.Argument(help="Write here (default: stdout).")] = None,
) -> None:
    """Export every suppression as CSV."""
    with _client() as client, Progress(console=err, transient=True) as progress:
        progress.add_task("Exporting", total=None)
        text = client.export_suppressions()
    if file is None:
        sys.stdout.write(text)
    else:
        file.write_text(text, encoding="utf-8")
        err.print(f"Wrote {max(0, text.count(chr(10)) - 1)} suppression(s) to {file}")


# --- templates -------------------------------------------------------------------------


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "template"


@templates_app.command("pull")
def templates_pull(
    folder: Annotated[Path, typer.Argument(help="Folder to write NAME.json/.html/.txt into.")],
    as_json: Json = False,
) -> None:
    """Write every template as files: SLUG.json (name, category, subject), SLUG.html and
    SLUG.txt (the bodies)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    with _client() as client:
        for item in client.templates():
            slug = _slug(str(item["name"]))
            meta = {k: item.get(k) for k in ("name", "category", "subject", "uuid")}
            (folder / f"{slug}.json").write_text(json.dumps(meta, indent=2) + "\n")
            (folder / f"{slug}.html").write_text(item.get("body_html") or "", encoding="utf-8")
            (folder / f"{slug}.txt").write_text(item.get("body_text") or "", encoding="utf-8")
            written.append(slug)
    if as_json:
        _json({"pulled": written})
    else:
        out.print(f"Pulled {len(written)} template(s) into {folder}.", highlight=False)


@templates_app.command("push")
def templates_push(
    folder: Annotated[Path, typer.Argument(help="Folder of SLUG.json (+ .html, .txt) files.")],
    as_json: Json = False,
) -> None:
    """Create or update (matched by name) a template for each SLUG.json in the folder."""
    files = sorted(folder.glob("*.json"))
    if not files:
        raise _fail(f"no *.json template in {folder}", USAGE)
    done: list[dict[str, Any]] = []
    with _client() as client:
        existing = {t["name"]: t for t in client.templates()}
        for meta_file in files:
            try:
                meta = json.loads(meta_file.read_text(encoding="utf-8"))
            except ValueError as exc:
                raise _fail(f"{meta_file}: {exc}", USAGE) from None
            fields = {k: meta[k] for k in ("name", "category", "subject") if k in meta}
            for suffix, key in ((".html", "body_html"), (".txt", "body_text")):
                body = meta_file.with_suffix(suffix)
                if body.exists():
                    fields[key] = body.read_text(encoding="utf-8")
            if "name" not in fields:
                fields["name"] = meta_file.stem
            found = existing.get(fields["name"])
            if found:
                row = client.update_template(int(found["id"]), fields)
                done.append({"name": fields["name"], "id": row["id"], "action": "updated"})
            else:
                row = client.create_template(fields)
                done.append({"name": fields["name"], "id": row["id"], "action": "created"})
    if as_json:
        _json(done)
    else:
        _table(done, ["name", "id", "action"])


# --- stats -----------------------------------------------------------------------------


CHART_WIDTH = 40


def chart(per_day: list[dict[str, Any]], title: str) -> Table:
    """A table of the days with a bar each: delivered (green) then bounced (red), scaled
    to the busiest day."""
    rows = [(str(r["date"]), r["stats"]) for r in per_day]
    peak = max([s.get("delivery_count", 0) + s.get("bounce_count", 0) for _, s in rows] + [1])
    table = Table(title=title)
    for column in ("date", "delivered", "bounced", "opened", "clicked", ""):
        table.add_column(column)
    for day, s in rows:
        delivered, bounced = s.get("delivery_count", 0), s.get("bounce_count", 0)
        bar = "[green]" + "█" * round(CHART_WIDTH * delivered / peak) + "[/green]"
        bar += "[red]" + "█" * round(CHART_WIDTH * bounced / peak) + "[/red]"
        table.add_row(day, str(delivered), str(bounced), str(s.get("open_count", 0)),
                      str(s.get("click_count", 0)), bar)  # fmt: skip
    return table


@remote_app.command("stats")
def stats(
    days: Annotated[int, typer.Option(help="How many days back from today.")] = 14,
    as_json: Json = False,
) -> None:
    """Sending stats per day with a terminal chart of deliveries and bounces."""
    today = datetime.now(UTC).date()
    start = (today - timedelta(days=max(1, days) - 1)).isoformat()
    with _client() as client:
        total = client.stats(start, today.isoformat())
        per_day = client.stats(start, today.isoformat(), "date")
    if as_json:
        _json({"total": total, "per_day": per_day})
        return
    out.print(chart(per_day, f"Sent {start} to {today.isoformat()}"))
    out.print(
        "Total: " + ", ".join(f"{k} {v}" for k, v in total.items() if k.endswith("_count")),
        highlight=False,
    )
