"""``postroom``: the command-line contract of DESIGN.md.

Local commands work on the database directly and honour ``--data-dir`` and
``--database-url`` exactly as ``serve`` does, so a script can create a token for the
instance it started::

    postroom serve [--processes N|auto] [--redis-url URL] [--health-port P]
                   [--log-format text|json]
                   [--data-dir D] [--database-url URL] [--host H] [--port P] [--inbound-port P]
                   [--bulk-port P] [--delivery-mode sandbox|mx|relay] [--tls-cert F --tls-key F]
                   [--dns-server HOST:PORT] [--smtp-port P] [--smtp-bulk-port P]
                   [--smtps-port P] [--smtps-bulk-port P] [--tracking-port P]
    postroom api | smtp | worker | scheduler   (one role alone; serve's options)
    postroom token create --name NAME [--account ID] [--scope admin|send|read ...]
                          [--domain NAME ...] [--expires-days N] [--installation-admin]
    postroom token list|revoke|reset                  (cli/admin.py)
    postroom account list
    postroom account create|rename|disable|enable     (cli/admin.py)
    postroom user create|passwd|reset-mfa             (cli/admin.py)
    postroom audit list|verify                        (cli/admin.py)
    postroom db migrate
    postroom domain list [--account ID]
    postroom domain verify DOMAIN_OR_ID [--account ID] [--dns-server HOST:PORT]
    postroom domain rotate DOMAIN_OR_ID [--account ID]
    postroom webhook list|log|replay|test|resume …   (cli/webhooks.py)

Remote commands go through the HTTP API of any Postroom (POSTROOM_URL, POSTROOM_TOKEN or
``postroom remote login``): ``postroom remote ...`` (cli/remote.py) and ``postroom mcp``
(cli/mcpserver.py).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy.engine import make_url

from postroom import __version__
from postroom.cli import datadir
from postroom.cli.remote import remote_app
from postroom.cli.roles import ALL_ROLES, Role, flags_of, label
from postroom.cli.supervisor import process_count
from postroom.config import DeliveryMode, Settings, load_settings
from postroom.domain.dnsrecords import Status
from postroom.errors import Conflict
from postroom.sandbox.credentials import seal_plaintext_passwords
from postroom.services import Services, modes
from postroom.services import accounts as account_service
from postroom.services import domains as domain_service
from postroom.services.dns import parse_server
from postroom.storage import processlock
from postroom.storage.datadir import secure_data_dir
from postroom.storage.db import Database, NonDurableDatabase, check_durability
from postroom.storage.migrate import upgrade
from postroom.storage.secrets import SecretKeyMissing, load_sealer

app = typer.Typer(help="Postroom: self-hosted Email API and MTA.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens.", no_args_is_help=True)
account_app = typer.Typer(help="Accounts.", no_args_is_help=True)
db_app = typer.Typer(help="The database.", no_args_is_help=True)
domain_app = typer.Typer(
    help="Sending domains: DNS verification and DKIM keys.", no_args_is_help=True
)
app.add_typer(token_app, name="token")
app.add_typer(account_app, name="account")
app.add_typer(db_app, name="db")
app.add_typer(domain_app, name="domain")
app.add_typer(remote_app, name="remote")

out = Console()
err = Console(stderr=True)


def _print_version(wanted: bool) -> None:
    if wanted:
        print(f"postroom {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_print_version, help="Print the version."
        ),
    ] = False,
) -> None:
    """Postroom: self-hosted Email API and MTA."""


DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="POSTROOM_STORAGE__DATA_DIR",
        help="Data directory (default ./postroom-data).",
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="POSTROOM_STORAGE__DATABASE_URL",
        help="Database URL (default: SQLite in the data directory).",
    ),
]
DnsServer = Annotated[
    str | None,
    typer.Option(
        "--dns-server",
        envvar="POSTROOM_DNS__SERVER",
        help="Name server to ask, as IP:PORT (default: the system's resolvers).",
    ),
]

RedisUrl = Annotated[
    str | None,
    typer.Option(
        envvar="POSTROOM_SCALE__REDIS_URL",
        help="Redis shared by every process (rate limits, site throttles, cache "
        "invalidation); unset: kept per process.",
    ),
]
HealthPort = Annotated[
    int | None,
    typer.Option(
        envvar="POSTROOM_SCALE__HEALTH_PORT",
        help="Port of a /healthz, /readyz and /metrics listener (roles without an API port).",
    ),
]
LogFormat = Annotated[
    str | None,
    typer.Option(envvar="POSTROOM_SCALE__LOG_FORMAT", help="Log lines: text or json."),
]


def _settings(data_dir: Path | None, database_url: str | None, **sections: Any) -> Settings:
    base = load_settings()
    storage = base.storage.model_copy(
        update={
            k: v
            for k, v in {"data_dir": data_dir, "database_url": database_url}.items()
            if v is not None
        }
    )
    updates: dict[str, Any] = {"storage": storage}
    for name, values in sections.items():
        section = getattr(base, name)
        updates[name] = section.model_copy(
            update={k: v for k, v in values.items() if v is not None}
        )
    return base.model_copy(update=updates)


def _existing(data_dir: Path | None, database_url: str | None, **sections: Any) -> Settings:
    """Settings of a command that works on an existing instance (see cli/datadir.py).

    Says on stderr which data directory it uses, and refuses, rather than create an
    empty database, when there is none.
    """
    settings = _settings(data_dir, database_url, **sections)
    choice = datadir.choose(settings)
    storage = settings.storage.model_copy(update={"data_dir": choice.path})
    settings = settings.model_copy(update={"storage": storage})
    line = f"postroom: data directory {choice.path.resolve()} ({choice.reason})"
    if settings.storage.database_url:
        line += f"; database {make_url(settings.database_url).render_as_string()}"
    err.print(line, highlight=False, markup=False, soft_wrap=True)
    try:
        datadir.require_database(settings)
    except datadir.NoDatabase as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        raise typer.Exit(1) from None
    return settings


def _check_dns_server(settings: Settings) -> None:
    """Refuse a malformed --dns-server now rather than at the first DNS check."""
    if settings.dns.server is not None:
        try:
            parse_server(settings.dns.server)
        except ValueError as exc:
            err.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None


def open_services(settings: Settings, migrate: bool = True) -> Services:
    db = Database.from_url(
        settings.database_url, commit_batch_max=settings.storage.commit_batch_max
    )
    try:
        check_durability(db.engine)
    except NonDurableDatabase as exc:
        err.print(f"[red]Refusing to run:[/red] {exc}. Fix the database settings and retry.")
        raise typer.Exit(2) from None
    if migrate:
        upgrade(db.engine)
    return Services(settings=settings, db=db)


_open = open_services


@app.command()
def serve(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    host: Annotated[
        str | None, typer.Option(envvar="POSTROOM_SERVER__HOST", help="Address to listen on.")
    ] = None,
    port: Annotated[
        int | None, typer.Option(envvar="POSTROOM_SERVER__PORT", help="Transactional API port.")
    ] = None,
    bulk_port: Annotated[
        int | None, typer.Option(envvar="POSTROOM_SERVER__BULK_PORT", help="Bulk API port.")
    ] = None,
    delivery_mode: Annotated[
        DeliveryMode | None,
        typer.Option(
            envvar="POSTROOM_DELIVERY__MODE",
            help="sandbox (capture in test inboxes), mx (to MX hosts) or relay (smarthost).",
        ),
    ] = None,
    tls_cert: Annotated[
        Path | None,
        typer.Option(envvar="POSTROOM_SERVER__TLS_CERT", help="PEM certificate: serve HTTPS."),
    ] = None,
    tls_key: Annotated[
        Path | None,
        typer.Option(envvar="POSTROOM_SERVER__TLS_KEY", help="PEM private key for --tls-cert."),
    ] = None,
    dns_server: DnsServer = None,
    inbound_port: Annotated[
        int | None,
        typer.Option(
            envvar="POSTROOM_BOUNCES__INBOUND_PORT",
            help="Inbound SMTP port for bounces and feedback reports (return-path domains).",
        ),
    ] = None,
    smtp_port: Annotated[
        int | None,
        typer.Option(
            envvar="POSTROOM_SUBMISSION__PORT",
            help="SMTP submission port, STARTTLS, transactional stream (0: off).",
        ),
    ] = None,
    smtp_bulk_port: Annotated[
        int | None,
        typer.Option(
            envvar="POSTROOM_SUBMISSION__BULK_PORT",
            help="SMTP submission port, STARTTLS, bulk stream (0: off).",
        ),
    ] = None,
    smtps_port: Annotated[
        int | None,
        typer.Option(
            envvar="POSTROOM_SUBMISSION__TLS_PORT",
            help="SMTP submission port, implicit TLS (needs --tls-cert), transactional (0: off).",
        ),
    ] = None,
    smtps_bulk_port: Annotated[
        int | None,
        typer.Option(
            envvar="POSTROOM_SUBMISSION__BULK_TLS_PORT",
            help="SMTP submission port, implicit TLS, bulk stream (0: off).",
        ),
    ] = None,
    tracking_port: Annotated[
        int | None,
        typer.Option(
            envvar="POSTROOM_TRACKING__PORT",
            help="Tracking listener port: open pixel, click redirects, unsubscribe (0: off).",
        ),
    ] = None,
    processes: Annotated[
        str | None,
        typer.Option(
            envvar="POSTROOM_SCALE__PROCESSES",
            help="Processes sharing the listeners, each playing every role: a number or "
            "'auto' (one per CPU core). More than one needs PostgreSQL.",
        ),
    ] = None,
    redis_url: RedisUrl = None,
    health_port: HealthPort = None,
    log_format: LogFormat = None,
) -> None:
    """Run every role: API and SMTP listeners, the worker and the scheduler."""
    _launch(ALL_ROLES, dict(locals()))


def _role_command(role: Role, doc: str) -> None:
    """Register ``postroom <role>``: serve's options (less --processes), one role."""

    def command(**options: Any) -> None:
        _launch(frozenset({role}), {"processes": None, **options})

    keep = [
        p
        for name, p in inspect.signature(serve, eval_str=True).parameters.items()
        if name != "processes"
    ]
    command.__signature__ = inspect.Signature(keep)  # type: ignore[attr-defined]
    command.__annotations__ = {k: v for k, v in serve.__annotations__.items() if k != "processes"}
    command.__doc__ = doc
    app.command(role.value)(command)


_role_command(
    Role.API, "Run the API role alone: the HTTP listeners (transactional, bulk, tracking)."
)
_role_command(
    Role.SMTP, "Run the SMTP role alone: the submission listeners and the inbound listener."
)
_role_command(Role.WORKER, "Run the worker role alone: delivery (and other background work).")
_role_command(Role.SCHEDULER, "Run the scheduler role alone (one leads at a time on PostgreSQL).")


def _launch(roles: frozenset[Role], options: dict[str, Any]) -> None:
    """Start a process playing ``roles`` (or, with --processes N, N supervised children)."""
    o = options
    settings = _settings(
        o["data_dir"],
        o["database_url"],
        server={
            "host": o["host"],
            "port": o["port"],
            "bulk_port": o["bulk_port"],
            "tls_cert": o["tls_cert"],
            "tls_key": o["tls_key"],
        },
        delivery={"mode": o["delivery_mode"]},
        dns={"server": o["dns_server"]},
        bounces={"inbound_port": o["inbound_port"]},
        submission={
            "port": o["smtp_port"],
            "bulk_port": o["smtp_bulk_port"],
            "tls_port": o["smtps_port"],
            "bulk_tls_port": o["smtps_bulk_port"],
        },
        tracking={"port": o["tracking_port"]},
        scale={
            "processes": o.get("processes"),
            "redis_url": o["redis_url"],
            "health_port": o["health_port"],
            "log_format": o["log_format"],
        },
    )
    _check_dns_server(settings)
    if settings.delivery.mode is DeliveryMode.RELAY and not settings.delivery.relay_host:
        err.print("[red]--delivery-mode relay needs delivery.relay_host.[/red]")
        raise typer.Exit(2)
    if bool(settings.server.tls_cert) != bool(settings.server.tls_key):
        err.print("[red]--tls-cert and --tls-key go together.[/red]")
        raise typer.Exit(2)
    if settings.scale.log_format not in ("text", "json"):
        err.print("[red]--log-format is text or json.[/red]")
        raise typer.Exit(2)
    try:
        count = process_count(settings.scale.processes) if roles == ALL_ROLES else 1
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if count > 1 and processlock.sqlite_path(settings.database_url) is not None:
        err.print(
            f"[red]Refusing --processes {count} on SQLite: {processlock.POSTGRES_HINT}.[/red]",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(2)
    from postroom.cli import logs
    from postroom.cli.runner import instance_name

    logs.configure(settings.scale.log_format, label(roles), instance_name())
    from postroom.cli import ports
    from postroom.cli.welcome import base_url, print_welcome
    from postroom.services.tracking import base_url as tracking_base

    # Implicit TLS needs a certificate: a configured one, or the self-signed one made below.
    smtp_tls = settings.smtp_tls_files() is not None or settings.submission.self_signed
    flags = flags_of(roles)
    listeners = [w for w in ports.wanted(settings, smtp_tls) if w.flag in flags]
    scale = settings.scale
    if scale.health_port:
        listeners.append(ports.Wanted(scale.health_host, scale.health_port, "--health-port"))
    try:
        sockets = ports.bind_all(listeners)
    except ports.PortsUnavailable as exc:
        err.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
        raise typer.Exit(2) from None
    health_socket = sockets.pop(scale.health_port, None) if scale.health_port else None
    # Everything this process writes (database, keys, certificates) is its user's alone;
    # an existing data directory that is readable by others is tightened, and logged.
    os.umask(0o077)
    secure_data_dir(settings.storage.data_dir)
    try:
        # One serving process per SQLite database (storage/processlock.py).
        held = processlock.hold(settings.database_url)
    except processlock.DatabaseInUse as exc:
        err.print(
            f"[red]Refusing to start: {escape(str(exc))}.[/red]", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2) from None
    if Role.SMTP in roles:
        settings = _with_smtp_certificate(settings)
    smtp_ports = [w.port for w in listeners if w.flag.startswith(("--smtp-", "--smtps-"))]
    services = open_services(settings)
    # The key that seals DKIM private keys at rest: made (0600, in the data directory) on
    # first start unless security.secret_key provides one.
    services.sealer = load_sealer(settings, create=True)
    # Inboxes made before passwords were sealed (migration 0009) are sealed now.
    seal_plaintext_passwords(services)
    # Later local commands run from elsewhere find this instance (cli/datadir.py).
    datadir.record(settings.storage.data_dir)

    boot = account_service.bootstrap(services)
    if boot is not None:
        print_welcome(out, settings, boot)
    else:
        out.print("Existing data found; create a token with: postroom token create --name NAME")
    shown = []
    if Role.API in roles:
        shown += [
            f"Transactional API: {base_url(settings, settings.server.port)}",
            f"Bulk API: {base_url(settings, settings.server.bulk_port)}",
        ]
    if Role.SMTP in roles:
        shown.append(f"SMTP submission: {', '.join(str(p) for p in smtp_ports) or 'off'}")
    if Role.API in roles:
        track = tracking_base(settings, None) if settings.tracking.port else "off"
        shown.append(f"Tracking: {track}")
    if Role.WORKER in roles:
        shown.append(f"Delivery: {settings.delivery.mode.value}")
    if roles != ALL_ROLES:
        shown.insert(0, f"Role: {label(roles)}")
    if count > 1:
        shown.append(f"Processes: {count}")
    shown.append(f"Data: {settings.storage.data_dir.resolve()}")
    out.print("  ".join(shown), highlight=False, soft_wrap=True)
    if count > 1:
        services.db.close()
        raise typer.Exit(_supervise(settings, sockets, count, health_socket))
    # Hand the GIL back to the event loop sooner than the default 5 ms: worker threads
    # (the group-commit writer, reads) otherwise hold request handling back (measured
    # +56% single-send throughput in bench/ingest.py).
    sys.setswitchinterval(0.0005)
    from postroom.cli.runner import serve as run_roles

    try:
        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(
                run_roles(services, sockets, roles, health_socket=health_socket, freeze=True)
            )
    finally:
        services.db.close()
        if held is not None:
            held.close()


def _supervise(settings: Settings, sockets: dict[int, Any], count: int, health: Any | None) -> int:
    """Run ``count`` children on the bound sockets until stopped (cli/supervisor.py); the
    health socket, if any, is shared too (whichever child accepts answers)."""
    import orjson

    from postroom.cli.supervisor import Supervisor

    fds = {str(port): sock.fileno() for port, sock in sockets.items()}
    health_fd = health.fileno() if health is not None else None
    dumped = settings.model_dump(mode="json")

    def payload(index: int) -> bytes:
        spec = {"settings": dumped, "fds": fds, "index": index, "health_fd": health_fd}
        return orjson.dumps(spec)

    inherited = {**sockets, -1: health} if health is not None else sockets
    supervisor = Supervisor(count, inherited, payload, max_delay=settings.scale.restart_max_delay)
    return supervisor.run()


def _with_smtp_certificate(settings: Settings) -> Settings:
    """Settings whose SMTP listeners have a certificate: the configured one, or else a
    self-signed one in the data directory (made on first start, see cli/selfsigned.py)."""
    sub = settings.submission
    if settings.smtp_tls_files() is not None or not sub.self_signed:
        return settings
    from postroom.cli import selfsigned

    pem = selfsigned.ensure(settings.storage.data_dir, sub.hostname or settings.domains.mail_host)
    update = {"tls_cert": pem.resolve(), "tls_key": pem.resolve()}
    return settings.model_copy(update={"submission": sub.model_copy(update=update)})


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Option(help="A name to recognise the token by.")],
    account: Annotated[int | None, typer.Option(help="Account id (default: the first).")] = None,
    scope: Annotated[
        list[str] | None,
        typer.Option(help="admin, send or read; repeat for several (default admin)."),
    ] = None,
    domain: Annotated[
        list[str] | None,
        typer.Option(help="Only send, and only From this sending domain (repeatable)."),
    ] = None,
    expires_days: Annotated[
        int | None, typer.Option(min=1, help="Expire after this many days (default never).")
    ] = None,
    installation_admin: Annotated[
        bool, typer.Option(help="Also manage every account (create, rename, disable).")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API token and print it, alone, on stdout."""
    services = _open(_existing(data_dir, database_url))
    expires = services.clock.now() + timedelta(days=expires_days) if expires_days else None
    try:
        value = account_service.issue_token(
            services,
            name,
            account,
            tuple(scope or ["admin"]),
            tuple(domain or ()),
            expires,
            installation_admin,
        )
    except (LookupError, ValueError) as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.db.close()
    print(value)


@account_app.command("list")
def account_list(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Print the accounts and their ids."""
    services = _open(_existing(data_dir, database_url))
    try:
        rows = account_service.list_accounts(services)
    finally:
        services.db.close()
    table = Table("id", "name", "created")
    for row in rows:
        table.add_row(str(row["id"]), row["name"], row["created_at"].isoformat())
    out.print(table)


@account_app.command("set-pool")
def account_set_pool(
    account_id: Annotated[int, typer.Argument(help="The account's id (see `account list`).")],
    pool: Annotated[
        str | None, typer.Argument(help="A pool of delivery.ip_pools; omit to clear.")
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Send an account's mail from its own IP pool (or, with no POOL, its stream's)."""
    services = _open(_existing(data_dir, database_url))
    try:
        account_service.set_ip_pool(services, account_id, pool)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.db.close()
    out.print(f"account {account_id}: IP pool {pool or '(the stream’s)'}")


@account_app.command("set-mode")
def account_set_mode(
    account_id: Annotated[int, typer.Argument(help="The account's id (see `account list`).")],
    mode: Annotated[
        DeliveryMode | None,
        typer.Argument(help="sandbox, mx or relay; omit to follow the stream's mode."),
    ] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Give an account its own delivery mode (e.g. keep a staging account in the sandbox)."""
    services = _open(_existing(data_dir, database_url))
    try:
        modes.set_for_account(services, account_id, mode)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    finally:
        services.db.close()
    out.print(f"account {account_id}: delivery mode {mode.value if mode else '(the stream’s)'}")


@db_app.command("migrate")
def db_migrate(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Bring the database to the current schema."""
    services = _open(_settings(data_dir, database_url), migrate=False)
    try:
        upgrade(services.db.engine)
        from postroom.storage.migrate import current_revision

        out.print(f"Database at revision {current_revision(services.db.engine)}.")
    finally:
        services.db.close()


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


# --- domain ---------------------------------------------------------------------------------

AccountOption = Annotated[
    int | None, typer.Option("--account", help="Account id (needed when names clash).")
]
DomainArgument = Annotated[str, typer.Argument(help="The domain's name or id.")]
_STATUS_STYLE = {Status.PASS: "green", Status.NETWORK_ERROR: "yellow", Status.UNCHECKED: "dim"}


def _domain_services(
    data_dir: Path | None, database_url: str | None, dns_server: str | None = None
) -> Services:
    """Services for a domain command, with the instance's existing secret key.

    The key is never created here: domains exist only once the API created one, so a
    missing key means the command is pointed at another instance's data directory.
    """
    # A malformed flag is refused before anything is looked up.
    _check_dns_server(_settings(data_dir, database_url, dns={"server": dns_server}))
    settings = _existing(data_dir, database_url, dns={"server": dns_server})
    services = _open(settings)
    try:
        services.sealer = load_sealer(settings)
    except SecretKeyMissing as exc:
        services.db.close()
        err.print(f"[red]{exc}[/red] (use the --data-dir of the instance that owns the domain)")
        raise typer.Exit(2) from None
    return services


def _locate(services: Services, domain: str, account: int | None) -> tuple[int, int]:
    try:
        return domain_service.find_for_operator(services, domain, account)
    except LookupError as exc:
        services.db.close()
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _print_statuses(view: domain_service.DomainView) -> None:
    table = Table("key", "type", "name", "status")
    for shown in view.records:
        style = _STATUS_STYLE.get(shown.status, "red")
        status = f"[{style}]{shown.status.value}[/{style}]"
        table.add_row(shown.key, shown.record.type.value, shown.record.name, status)
    out.print(table)


def _print_to_publish(records: list[domain_service.ShownRecord]) -> None:
    # One record per line, never folded: DKIM values are longer than a terminal line and
    # must reach the DNS panel intact when copied.
    for shown in records:
        record = shown.record
        line = f"{shown.key}: {record.name} {record.type.value} {record.value}"
        out.print(line, soft_wrap=True, highlight=False, markup=False)


@domain_app.command("list")
def domain_list(
    account: AccountOption = None, data_dir: DataDir = None, database_url: DatabaseUrl = None
) -> None:
    """Print the sending domains, their state and their signing selectors."""
    services = _open(_existing(data_dir, database_url))
    try:
        views = domain_service.list_for_operator(services, account)
    finally:
        services.db.close()
    table = Table("id", "account", "domain", "verified", "last check", "signing")
    for view in views:
        row = view.row
        checked = row["dns_checked_at"]
        signing = [k["selector"] for k in view.keys if k["state"] == "active"]
        table.add_row(
            str(row["id"]),
            str(row["account_id"]),
            row["domain_name"],
            "yes" if view.verified else "no",
            checked.isoformat(timespec="seconds") if checked else "never",
            " ".join(signing) or "-",
        )
    out.print(table)


@domain_app.command("verify")
def domain_verify(
    domain: DomainArgument,
    account: AccountOption = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    dns_server: DnsServer = None,
) -> None:
    """Check a domain's DNS records now; exit 0 when it is verified, 1 when not."""
    services = _domain_services(data_dir, database_url, dns_server)
    account_id, domain_id = _locate(services, domain, account)
    try:
        view = asyncio.run(domain_service.verify(services, account_id, domain_id))
    finally:
        services.db.close()
    _print_statuses(view)
    unpublished = [s for s in view.records if s.status is not Status.PASS]
    if unpublished:
        out.print("Records not passing (publish them as shown):")
        _print_to_publish(unpublished)
    name = view.row["domain_name"]
    if view.verified:
        out.print(f"[green]{name} is verified.[/green]")
        raise typer.Exit(0)
    out.print(f"[red]{name} is not verified.[/red]")
    raise typer.Exit(1)


@domain_app.command("rotate")
def domain_rotate(
    domain: DomainArgument,
    account: AccountOption = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Publish a new generation of DKIM keys; they sign once their records verify."""
    services = _domain_services(data_dir, database_url)
    account_id, domain_id = _locate(services, domain, account)
    try:
        view = asyncio.run(domain_service.rotate(services, account_id, domain_id))
    except Conflict as exc:
        err.print(f"[red]{'; '.join(m for ms in exc.field_errors.values() for m in ms)}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.db.close()
    out.print("Publish these records, then run `postroom domain verify`:")
    _print_to_publish([s for s in view.records if s.key.endswith("_next")])


@app.command()
def mcp(
    transport: Annotated[
        str,
        typer.Option(help="stdio (an assistant starts this command) or http (streamable HTTP)."),
    ] = "stdio",
    host: Annotated[str, typer.Option(help="Address of the HTTP transport.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the HTTP transport (path /mcp).")] = 8765,
) -> None:
    """Model Context Protocol server for AI assistants, on POSTROOM_URL with POSTROOM_TOKEN.

    Its tools call Postroom's HTTP API; sending tools only when the token may send.
    """
    if transport not in ("stdio", "http"):
        err.print("[red]--transport is stdio or http.[/red]")
        raise typer.Exit(2)
    from postroom.cli.client import PostroomClient, RemoteError, load_remote
    from postroom.cli.mcpserver import run

    if transport == "http" and host not in ("127.0.0.1", "::1", "localhost"):
        # Anyone who reaches the port acts with this token: say so.
        err.print(
            f"[yellow]Warning: the MCP endpoint on {escape(host)} has no authentication of "
            "its own; whoever reaches it acts with POSTROOM_TOKEN.[/yellow]"
        )

    try:
        with PostroomClient(load_remote()) as client:
            run(client, transport, host, port)
    except RemoteError as exc:
        err.print(f"[red]{escape(exc.message)}[/red]", highlight=False)
        raise typer.Exit(2 if exc.status == 0 else 1) from None


# Registered last: cli/webhooks.py uses the helpers above.
from postroom.cli.webhooks import webhook_app  # noqa: E402

app.add_typer(webhook_app, name="webhook")


def main() -> None:
    app()


# Token, account, user and audit commands live in their own module; it adds them to the
# groups above, so it is imported once they exist.
from postroom.cli import admin  # noqa: E402, F401
