"""The command-line contract: token create prints the token alone; list; migrate; serve guards."""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from postroom.cli import datadir
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


def _listening(count: int) -> list[socket.socket]:
    """``count`` sockets listening on free loopback ports (held open by the test)."""
    taken = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken.append(sock)
    return taken


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_serve_names_every_port_in_use_at_once(tmp_path: Path) -> None:
    """Two clashing listeners are reported together, each with the flag that moves it."""
    busy = _listening(2)
    try:
        api, smtp = (s.getsockname()[1] for s in busy)
        args = ["serve", "--data-dir", str(tmp_path / "data"), "--port", str(api)]
        args += ["--bulk-port", str(_free_port()), "--inbound-port", str(_free_port())]
        args += ["--smtp-port", str(smtp), "--smtp-bulk-port", str(_free_port())]
        args += ["--smtps-port", "0", "--smtps-bulk-port", "0"]
        result = runner.invoke(app, args)
    finally:
        for sock in busy:
            sock.close()
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"127.0.0.1:{api} (--port)" in text and f"127.0.0.1:{smtp} (--smtp-port)" in text
    # Nothing was started or created: the check comes before the database.
    assert not (tmp_path / "data").exists()


def test_serve_refuses_one_port_for_two_listeners(tmp_path: Path) -> None:
    port = _free_port()
    args = ["serve", "--data-dir", str(tmp_path / "data"), "--port", str(port)]
    args += ["--bulk-port", str(port), "--inbound-port", str(_free_port())]
    args += ["--smtp-port", "0", "--smtp-bulk-port", "0", "--smtps-port", "0"]
    args += ["--smtps-bulk-port", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert f"--port and --bulk-port both name port {port}" in text


# --- which data directory local commands use (cli/datadir.py) ------------------------------


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty working directory and an empty state home, as in a fresh shell."""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("POSTROOM_STORAGE__DATA_DIR", raising=False)
    return cwd


@pytest.mark.parametrize(
    "command", [["token", "create", "--name", "x"], ["account", "list"], ["domain", "list"]]
)
def test_commands_on_an_instance_never_create_a_database(
    elsewhere: Path, command: list[str]
) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == 1, result.output
    text = " ".join(result.stderr.split())
    assert "no Postroom database" in text and "--data-dir" in text
    assert f"data directory {elsewhere / 'postroom-data'} (the default)" in text
    assert list(elsewhere.iterdir()) == []


def test_token_create_uses_the_data_dir_serve_recorded(tmp_path: Path, elsewhere: Path) -> None:
    data = _booted(tmp_path)
    datadir.record(data)
    result = runner.invoke(app, ["token", "create", "--name", "from-elsewhere"])
    assert result.exit_code == 0, result.output
    assert re.fullmatch(r"pr_[0-9a-f]{40}\n", result.stdout)
    assert f"data directory {data.resolve()} (recorded by the last `postroom serve`" in " ".join(
        result.stderr.split()
    )
    assert list(elsewhere.iterdir()) == []


def test_a_postroom_data_here_wins_over_the_recorded_one(tmp_path: Path, elsewhere: Path) -> None:
    recorded = _booted(tmp_path / "recorded")
    datadir.record(recorded)
    here = _booted(tmp_path / "here")
    here.rename(elsewhere / "postroom-data")
    result = runner.invoke(app, ["account", "list"])
    assert result.exit_code == 0, result.output
    assert "./postroom-data in the current directory" in result.stderr


def test_data_dir_flag_wins_over_everything(tmp_path: Path, elsewhere: Path) -> None:
    datadir.record(_booted(tmp_path / "recorded"))
    (elsewhere / "postroom-data").mkdir()
    chosen = _booted(tmp_path / "chosen")
    result = runner.invoke(app, ["account", "list", "--data-dir", str(chosen)])
    assert result.exit_code == 0, result.output
    assert f"data directory {chosen.resolve()} (--data-dir" in " ".join(result.stderr.split())
