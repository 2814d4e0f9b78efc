"""The administration commands (cli/admin.py) on both backends: tokens, accounts, users,
and ``audit verify`` catching a row edited with SQL."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from postroom.cli.main import app
from postroom.config import Settings
from postroom.services import Services
from postroom.services import users as user_service
from postroom.services.accounts import bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from postroom.storage.tables import api_tokens, users

runner = CliRunner()


def _cli(args: list[str], db_url: str, tmp_path: Path, password: str | None = None) -> str:
    env = {"COLUMNS": "250", **({"POSTROOM_PASSWORD": password} if password else {})}
    result = runner.invoke(
        app, [*args, "--data-dir", str(tmp_path / "data"), "--database-url", db_url], env=env
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(args: list[str], db_url: str, tmp_path: Path) -> str:
    result = runner.invoke(
        app, [*args, "--data-dir", str(tmp_path / "data"), "--database-url", db_url]
    )
    assert result.exit_code == 1, result.output
    return result.output


def _services(db_url: str, tmp_path: Path) -> Services:
    settings = Settings(storage={"data_dir": tmp_path / "data", "database_url": db_url})
    db = Database.from_url(settings.database_url)
    upgrade(db.engine)
    return Services(settings=settings, db=db)


def test_tokens_accounts_and_audit_verify(db_url: str, tmp_path: Path) -> None:
    services = _services(db_url, tmp_path)
    assert bootstrap(services) is not None
    try:
        account_id = int(_cli(["account", "create", "Staging"], db_url, tmp_path).strip())
        token = _cli(
            ["token", "create", "--name", "ci", "--account", str(account_id), "--scope", "read"],
            db_url,
            tmp_path,
        ).strip()
        listed = _cli(["token", "list", "--account", str(account_id)], db_url, tmp_path)
        assert "ci" in listed and token[-4:] in listed and token not in listed
        token_id = services.db.read_sync(
            lambda conn: conn.execute(
                select(api_tokens.c.id).where(api_tokens.c.account_id == account_id)
            ).scalar_one()
        )
        new = _cli(["token", "reset", str(token_id)], db_url, tmp_path).strip()
        assert re.fullmatch(r"pr_[0-9a-f]{40}", new) and new != token
        assert "already been reset" in _fails(["token", "reset", str(token_id)], db_url, tmp_path)
        _cli(["token", "revoke", str(token_id)], db_url, tmp_path)
        assert "no live token" in _fails(["token", "revoke", str(token_id)], db_url, tmp_path)
        _cli(["account", "rename", str(account_id), "Production"], db_url, tmp_path)
        _cli(["account", "disable", str(account_id)], db_url, tmp_path)
        _cli(["account", "enable", str(account_id)], db_url, tmp_path)
        assert "Production" in _cli(["account", "list"], db_url, tmp_path)

        audit = _cli(["audit", "list", "--limit", "20"], db_url, tmp_path)
        for action in (
            "account.created",
            "api_token.reset",
            "api_token.revoked",
            "account.updated",
        ):
            assert action in audit
        assert "audit log intact" in _cli(["audit", "verify"], db_url, tmp_path)
        # An entry edited with SQL, as someone with database access would.
        services.db.write_sync(
            lambda conn: conn.exec_driver_sql(
                "UPDATE audit_log SET action = 'account.viewed' WHERE action = 'account.updated'"
            )
        )
        result = runner.invoke(
            app, ["audit", "verify", "--data-dir", str(tmp_path / "data"), "--database-url", db_url]
        )
        assert result.exit_code == 1
        assert "altered" in result.output
    finally:
        services.db.close()


def test_users_passwords_and_second_factor(db_url: str, tmp_path: Path) -> None:
    services = _services(db_url, tmp_path)
    assert bootstrap(services) is not None
    try:
        password = "correct horse battery"
        _cli(["user", "create", "ops@example.com", "--role", "admin"], db_url, tmp_path, password)
        row = services.db.read_sync(
            lambda conn: (
                conn.execute(select(users).where(users.c.email == "ops@example.com"))
                .mappings()
                .one()
            )
        )
        assert row["password_hash"].startswith("$argon2id$") and password not in str(dict(row))
        signed = services.db.write_sync(
            user_service.sign_in(services, "ops@example.com", password, None, "127.0.0.1")
        )
        assert services.db.read_sync(user_service.session_user(services, signed.token))
        _cli(["user", "passwd", "ops@example.com"], db_url, tmp_path, "another long secret")
        # The password change ended the session.
        assert services.db.read_sync(user_service.session_user(services, signed.token)) is None
        _cli(["user", "reset-mfa", "ops@example.com"], db_url, tmp_path)
        assert "is already taken" in _fails_with_password(
            ["user", "create", "OPS@example.com"], db_url, tmp_path
        )
    finally:
        services.db.close()


def _fails_with_password(args: list[str], db_url: str, tmp_path: Path) -> str:
    result = runner.invoke(
        app,
        [*args, "--data-dir", str(tmp_path / "data"), "--database-url", db_url],
        env={"POSTROOM_PASSWORD": "long enough password"},
    )
    assert result.exit_code == 1, result.output
    return result.output
