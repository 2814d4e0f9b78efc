"""Administration commands: tokens, accounts, users and the audit log.

    postroom token list [--account ID]
    postroom token revoke TOKEN_ID
    postroom token reset TOKEN_ID
    postroom account create NAME
    postroom account rename ACCOUNT_ID NAME
    postroom account disable|enable ACCOUNT_ID
    postroom account set-quota ACCOUNT_ID [--daily N] [--monthly N] [--soft]
    postroom user create EMAIL [--account ID] [--role owner|admin|viewer] (password asked)
    postroom user passwd EMAIL (password asked)
    postroom user reset-mfa EMAIL
    postroom audit list [--account ID] [--limit N]
    postroom audit verify

Registered on cli/main.py's command groups (imported at the end of that module). Every
change is recorded in the audit log with the command line as its actor. Passwords are
read from the terminal (or ``POSTROOM_PASSWORD`` for scripts), never from arguments,
which other users of the machine can see.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table
from sqlalchemy.engine import Connection

from postroom.cli.main import (
    DatabaseUrl,
    DataDir,
    _existing,
    _open,
    account_app,
    app,
    err,
    out,
    token_app,
)
from postroom.domain.audit import Actor
from postroom.errors import Conflict, NotFound
from postroom.services import Services, quotas
from postroom.services import accounts as account_service
from postroom.services import tokens as token_service
from postroom.services import users as user_service
from postroom.storage.repos import accounts as account_repo
from postroom.storage.repos import audit as audit_repo

user_app = typer.Typer(help="Users (people who sign in to the dashboard).", no_args_is_help=True)
audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(audit_app, name="audit")

T = TypeVar("T")


def _run(
    data_dir: Any, database_url: Any, work: Callable[[Services], T], *, write: bool = True
) -> T:
    """Open the database, run ``work``, close; known refusals exit 1 with the reason."""
    services = _open(_existing(data_dir, database_url))
    try:
        return work(services)
    except (LookupError, ValueError, NotFound) as exc:
        err.print(f"[red]{exc or 'not found'}[/red]")
        raise typer.Exit(1) from None
    except Conflict as exc:
        for field, messages in exc.field_errors.items():
            err.print(f"[red]{field}: {'; '.join(messages)}[/red]")
        raise typer.Exit(1) from None
    finally:
        services.db.close()


def _stamp(value: datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


def _token_account(services: Services, token_id: int) -> int:
    def run(conn: Connection) -> int:
        found = account_repo.token_account(conn, token_id)
        if found is None:
            raise LookupError(f"no live token with id {token_id}")
        return found

    return services.db.read_sync(run)


@token_app.command("list")
def token_list(
    account: Annotated[int | None, typer.Option(help="Only this account's tokens.")] = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """List live tokens (never their values)."""

    def work(services: Services) -> list[dict[str, Any]]:
        ids = (
            [account]
            if account
            else [int(a["id"]) for a in account_service.list_accounts(services)]
        )
        rows: list[dict[str, Any]] = []
        for account_id in ids:
            rows += services.db.read_sync(token_service.listed(account_id))
        return rows

    table = Table("id", "account", "name", "scopes", "ends with", "expires", "last used")
    for row in _run(data_dir, database_url, work):
        table.add_row(
            str(row["id"]),
            str(row["account_id"]),
            row["name"],
            ",".join(row["scopes"]),
            row["last_4_digits"],
            _stamp(row["expires_at"]),
            _stamp(row["last_used_at"]),
        )
    out.print(table)


@token_app.command("revoke")
def token_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `token list`).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Stop a token now (servers notice within seconds)."""

    def work(services: Services) -> None:
        account_id = _token_account(services, token_id)
        services.db.write_sync(token_service.revoke(services, account_id, token_id, Actor.cli()))

    _run(data_dir, database_url, work)
    out.print(f"token {token_id} revoked")


@token_app.command("reset")
def token_reset(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `token list`).")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Replace a token: print the new value; the old one stops after a grace period."""

    def work(services: Services) -> str:
        account_id = _token_account(services, token_id)
        issued = services.db.write_sync(
            token_service.reset(services, account_id, token_id, Actor.cli(), None)
        )
        return issued.value

    print(_run(data_dir, database_url, work))


@account_app.command("create")
def account_create(
    name: Annotated[str, typer.Argument(help="The new account's name.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an account (with a default project and inbox); prints its id."""

    def work(services: Services) -> dict[str, Any]:
        return services.db.write_sync(account_service.create_account(services, name, Actor.cli()))

    row = _run(data_dir, database_url, work)
    print(row["id"])


@account_app.command("rename")
def account_rename(
    account_id: Annotated[int, typer.Argument(help="The account's id.")],
    name: Annotated[str, typer.Argument(help="Its new name.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Rename an account."""
    _change(data_dir, database_url, account_id, name=name)
    out.print(f"account {account_id} renamed")


@account_app.command("disable")
def account_disable(
    account_id: Annotated[int, typer.Argument(help="The account's id.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Stop an account: its tokens answer 401 and its mail is refused."""
    _change(data_dir, database_url, account_id, disabled=True)
    out.print(f"account {account_id} disabled")


@account_app.command("enable")
def account_enable(
    account_id: Annotated[int, typer.Argument(help="The account's id.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Re-enable a disabled account."""
    _change(data_dir, database_url, account_id, disabled=False)
    out.print(f"account {account_id} enabled")


@account_app.command("set-quota")
def account_set_quota(
    account_id: Annotated[int, typer.Argument(help="The account's id.")],
    daily: Annotated[int | None, typer.Option(help="Messages per UTC day (omit: none).")] = None,
    monthly: Annotated[
        int | None, typer.Option(help="Messages per calendar month (omit: none).")
    ] = None,
    soft: Annotated[
        bool, typer.Option(help="Only warn (80 %, 100 %) instead of refusing.")
    ] = False,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set an account's sending quotas (none given: remove them)."""

    def work(services: Services) -> None:
        quotas.set_quotas(
            services,
            account_id,
            Actor.cli(),
            daily=daily,
            monthly=monthly,
            mode="soft" if soft else "hard",
        )

    _run(data_dir, database_url, work)
    out.print(f"account {account_id}: quotas daily={daily or '-'} monthly={monthly or '-'}")


def _change(data_dir: Any, database_url: Any, account_id: int, **change: Any) -> None:
    def work(services: Services) -> None:
        services.db.write_sync(
            account_service.change_account(services, account_id, Actor.cli(), **change)
        )

    _run(data_dir, database_url, work)


def _password(confirm: bool = True) -> str:
    given = os.environ.get("POSTROOM_PASSWORD")
    if given:
        return given
    value: str = typer.prompt("Password", hide_input=True, confirmation_prompt=confirm)
    return value


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The user's email address (their login).")],
    account: Annotated[int | None, typer.Option(help="Account id (default: the first).")] = None,
    role: Annotated[str, typer.Option(help="owner, admin or viewer.")] = "owner",
    name: Annotated[str, typer.Option(help="Their name.")] = "",
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create a user with a password (asked for, or POSTROOM_PASSWORD)."""
    password = _password()

    def work(services: Services) -> int:
        target = account
        if target is None:
            known = account_service.list_accounts(services)
            if not known:
                raise LookupError("no account yet: run `postroom serve` once to create one")
            target = int(known[0]["id"])
        unit = user_service.create_user(services, target, email, password, role, Actor.cli(), name)
        return services.db.write_sync(unit)

    user_id = _run(data_dir, database_url, work)
    out.print(f"user {user_id} created")


@user_app.command("passwd")
def user_passwd(
    email: Annotated[str, typer.Argument(help="The user's email address.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Set a user's password (their sessions end)."""
    password = _password()

    def work(services: Services) -> int:
        return services.db.write_sync(
            user_service.set_password(services, email, password, Actor.cli())
        )

    _run(data_dir, database_url, work)
    out.print("password changed")


@user_app.command("reset-mfa")
def user_reset_mfa(
    email: Annotated[str, typer.Argument(help="The user's email address.")],
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Remove a user's second factor and recovery codes (e.g. a lost phone)."""

    def work(services: Services) -> int:
        return services.db.write_sync(user_service.reset_mfa(services, email, Actor.cli()))

    _run(data_dir, database_url, work)
    out.print("second factor removed")


@audit_app.command("list")
def audit_list(
    account: Annotated[int | None, typer.Option(help="Only this account's entries.")] = None,
    action: Annotated[str | None, typer.Option(help="Only this action.")] = None,
    limit: Annotated[int, typer.Option(help="How many, newest first.")] = 50,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Print the newest audit log entries."""

    def work(services: Services) -> list[dict[str, Any]]:
        return services.db.read_sync(
            lambda conn: audit_repo.entries(conn, account_id=account, action=action, limit=limit)
        )

    table = Table("id", "time", "account", "actor", "source", "action", "target")
    for row in _run(data_dir, database_url, work):
        table.add_row(
            str(row["id"]),
            _stamp(row["created_at"]),
            str(row["account_id"] or "-"),
            f"{row['actor_type']} {row['actor_id']} {row['actor_name']}".strip(),
            row["source_ip"] or "-",
            row["action"],
            f"{row['target_type']} {row['target_id']}",
        )
    out.print(table)


@audit_app.command("verify")
def audit_verify(data_dir: DataDir = None, database_url: DatabaseUrl = None) -> None:
    """Check the audit log's hash chain; exit 1 if an entry was altered or removed."""

    def work(services: Services) -> tuple[int, list[audit_repo.Problem]]:
        return services.db.read_sync(audit_repo.verify)

    checked, problems = _run(data_dir, database_url, work)
    for problem in problems:
        where = f"entry {problem.entry_id}" if problem.entry_id is not None else "the log"
        err.print(f"[red]{where}: {problem.reason}[/red]")
    if problems:
        raise typer.Exit(1)
    out.print(f"audit log intact: {checked} entries")
