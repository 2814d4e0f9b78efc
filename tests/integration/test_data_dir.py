"""The data directory is private: 0700, and the database, its -wal/-shm and the secret key
0600, whatever the umask; an existing directory readable by others is tightened and the
change logged. Files are stat'ed after real writes through the real storage code."""

from __future__ import annotations

import logging
import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from postroom.config import Settings
from postroom.services import Services
from postroom.services.accounts import bootstrap
from postroom.storage.datadir import secure_data_dir
from postroom.storage.db import Database
from postroom.storage.migrate import upgrade
from postroom.storage.secrets import load_sealer


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Run the test under a permissive process umask, restored afterwards."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def test_a_new_data_dir_and_its_files_are_private_after_real_writes(
    tmp_path: Path, umask: int
) -> None:
    data_dir = tmp_path / "deep" / "data"
    database = data_dir / "postroom.db"
    settings = Settings(storage={"data_dir": data_dir})
    db = Database.from_url(f"sqlite:///{database}")
    try:
        upgrade(db.engine)
        services = Services(settings=settings, db=db)
        services.sealer = load_sealer(settings, create=True)
        assert bootstrap(services) is not None  # account, inbox, token: real writes
        # While the engine is open (and its pool holds connections), WAL files exist.
        with db.engine.connect() as conn:
            conn.exec_driver_sql("SELECT COUNT(*) FROM inboxes").scalar()
            files = {p.name: mode(p) for p in data_dir.iterdir()}
    finally:
        db.close()
    assert mode(data_dir) == 0o700
    assert files == {
        "postroom.db": 0o600,
        "postroom.db-wal": 0o600,
        "postroom.db-shm": 0o600,
        "secret.key": 0o600,
    }


def test_an_existing_loose_data_dir_is_tightened_at_start_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    data_dir.chmod(0o755)
    database = data_dir / "postroom.db"
    # An installation made before files were private: sqlite3 under umask 022 (0644),
    # a crash's leftover -wal/-shm beside it, and the key world-readable.
    previous = os.umask(0o022)
    try:
        with sqlite3.connect(database) as conn:
            conn.execute("CREATE TABLE t (x)")
        for name in ("postroom.db-wal", "postroom.db-shm", "secret.key", "notes.txt"):
            (data_dir / name).write_bytes(b"")
        (tmp_path / "elsewhere").write_text("not ours")
        (data_dir / "link").symlink_to(tmp_path / "elsewhere")
    finally:
        os.umask(previous)
    assert mode(database) == 0o644

    with caplog.at_level(logging.WARNING, logger="postroom.storage"):
        secure_data_dir(data_dir)
    assert mode(data_dir) == 0o700
    for name in ("postroom.db", "postroom.db-wal", "postroom.db-shm", "secret.key", "notes.txt"):
        assert mode(data_dir / name) == 0o600, name
    assert mode(tmp_path / "elsewhere") == 0o644  # a link's target is not ours to change
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert f"tightened the permissions of {data_dir} from 755 to 700" in logged
    assert f"{database} from 644 to 600" in logged
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="postroom.storage"):
        secure_data_dir(data_dir)
    assert caplog.records == []  # nothing left to say on the next start


def test_opening_an_existing_database_tightens_it_and_its_wal_files(tmp_path: Path) -> None:
    """Every command opens the database through the same code, not only ``serve``."""
    database = tmp_path / "custom" / "my.db"
    database.parent.mkdir()
    for suffix in ("", "-wal", "-shm"):
        path = database.with_name(database.name + suffix)
        path.write_bytes(b"")
        path.chmod(0o644)
    db = Database.from_url(f"sqlite:///{database}")
    try:
        upgrade(db.engine)
    finally:
        db.close()
    assert mode(database) == 0o600
    # A directory the operator chose for the file is theirs: left as it was.
    assert mode(database.parent) == stat.S_IMODE(0o777 & ~_current_umask())


def _current_umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current
