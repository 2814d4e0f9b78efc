"""The command-line contract: token create prints the token alone; list; migrate; serve guards."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postroom.cli.main import app
from postroom.config import Settings
from postroom.services import Services
from postroom.services.accounts import bootstrap
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from postroom.storage.repos import accounts as account_repo

runner = CliRunner()


def _booted(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    settings = Settings(storage={"data_dir": data})
    db = Database.from_url(settings.database_url)
    upgrade(db.engine)
    bootstrap(Services(settings=settings, db=db))
    db.close()
    return data


def test_token_create_prints_only_the_token(tmp_path: Path) -> None:
    data = _booted(tmp_path)
    result = runner.invoke(
        app, ["token", "create", "--name", "ci", "--data-dir", str(data), "--scope", "send"]
    )
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"pr_[0-9a-f]{40}\n", result.stdout)


def test_token_create_without_accounts_says_what_to_do(tmp_path: Path) -> None:
    result = runner.invoke(app, ["token", "create", "--name", "x", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "postroom serve" in result.output


def test_token_create_refuses_unknown_scope(tmp_path: Path) -> None:
    data = _booted(tmp_path)
    result = runner.invoke(
        app, ["token", "create", "--name", "x", "--scope", "root", "--data-dir", str(data)]
    )
    assert result.exit_code == 1
    assert "unknown scope" in result.output


def test_account_list_and_migrate(tmp_path: Path) -> None:
    data = _booted(tmp_path)
    listed = runner.invoke(app, ["account", "list", "--data-dir", str(data)])
    assert listed.exit_code == 0 and "Postroom" in listed.stdout
    migrated = runner.invoke(
        app, ["db", "migrate", "--database-url", f"sqlite:///{tmp_path / 'other.db'}"]
    )
    assert migrated.exit_code == 0 and "Database at revision" in migrated.stdout


def test_serve_refuses_relay_mode_without_a_smarthost(tmp_path: Path) -> None:
    """Relay mode needs somewhere to relay to; serve says so instead of starting."""
    result = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--delivery-mode", "relay"])
    assert result.exit_code == 2
    assert "relay" in result.output.lower()


def test_serve_needs_both_tls_files(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--data-dir", str(tmp_path), "--tls-cert", "c.pem"])
    assert result.exit_code == 2


def test_account_set_pool_checks_the_pool_and_the_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _booted(tmp_path)
    monkeypatch.setenv(
        "POSTROOM_DELIVERY__IP_POOLS", '{"vip": {"addresses": [{"address": "192.0.2.7"}]}}'
    )
    unknown = runner.invoke(app, ["account", "set-pool", "1", "bulk", "--data-dir", str(data)])
    assert unknown.exit_code == 1 and "no IP pool named 'bulk'" in unknown.output
    missing = runner.invoke(app, ["account", "set-pool", "99", "vip", "--data-dir", str(data)])
    assert missing.exit_code == 1 and "no account with id 99" in missing.output
    ok = runner.invoke(app, ["account", "set-pool", "1", "vip", "--data-dir", str(data)])
    assert ok.exit_code == 0, ok.output
    settings = Settings(storage={"data_dir": data})
    db = Database.from_url(settings.database_url)
    try:
        assert db.read_sync(lambda c: account_repo.ip_pools(c, [1])) == {1: "vip"}
    finally:
        db.close()
    cleared = runner.invoke(app, ["account", "set-pool", "1", "--data-dir", str(data)])
    assert cleared.exit_code == 0, cleared.output


def test_account_set_mode(tmp_path: Path) -> None:
    data = _booted(tmp_path)
    bad = runner.invoke(
        app, ["account", "set-mode", "1", "carrier-pigeon", "--data-dir", str(data)]
    )
    assert bad.exit_code != 0
    missing = runner.invoke(app, ["account", "set-mode", "99", "mx", "--data-dir", str(data)])
    assert missing.exit_code == 1 and "no account with id 99" in missing.output
    ok = runner.invoke(app, ["account", "set-mode", "1", "sandbox", "--data-dir", str(data)])
    assert ok.exit_code == 0 and "delivery mode sandbox" in ok.output
    settings = Settings(storage={"data_dir": data})
    db = Database.from_url(settings.database_url)
    try:
        assert db.read_sync(lambda c: account_repo.delivery_modes(c, [1])) == {1: "sandbox"}
    finally:
        db.close()
