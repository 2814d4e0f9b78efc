"""The data directory and the files in it are private to the user Postroom runs as.

The SQLite database holds every message body and the installation's secrets sit beside
it (``secret.key``), so the directory is created 0700 and its files 0600, and an existing
directory whose permissions are looser is tightened at start, with a warning in the log
naming what changed (as ``postfix check`` reports a queue file it had to fix).

SQLite creates the ``-wal`` and ``-shm`` files itself, and its Unix VFS gives them the
permission bits of the database file (whatever the umask). So the database file is made
0600 before SQLite first opens it, and an existing database, ``-wal`` and ``-shm`` are
tightened; a umask around the open would instead change the whole (threaded) process.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("postroom.storage")

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
# The files SQLite keeps beside a database (WAL mode; the journal while it converts).
SQLITE_SUFFIXES = ("", "-wal", "-shm", "-journal")


def tighten(path: Path) -> bool:
    """Remove group and other permissions from ``path``; True when it had any.

    Symbolic links are left alone (their target is not necessarily ours), as are paths
    owned by another user, which only that user (or root) could change.
    """
    try:
        info = path.lstat()
    except FileNotFoundError:
        return False
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if stat.S_ISLNK(info.st_mode) or not loose:
        return False
    tight = stat.S_IMODE(info.st_mode) & 0o700
    try:
        path.chmod(tight)
    except PermissionError:
        log.warning("%s is readable by others (%o) and not ours to change", path, loose)
        return False
    log.warning(
        "tightened the permissions of %s from %o to %o (Postroom's files are private)",
        path,
        stat.S_IMODE(info.st_mode),
        tight,
    )
    return True


def private_directory(path: Path) -> None:
    """Create ``path`` (and missing parents) with mode 0700; an existing one is kept."""
    if not path.is_dir():
        path.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
        # mkdir's mode passes through the umask, which may take bits but never adds any.
        path.chmod(PRIVATE_DIR)


def private_file(path: Path) -> None:
    """Create an empty ``path`` with mode 0600 if missing, or tighten the existing one."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE))
    except FileExistsError:
        tighten(path)


def private_sqlite(database: Path) -> None:
    """Make a SQLite database's directory and files private before SQLite opens it."""
    private_directory(database.parent)
    private_file(database)
    for suffix in SQLITE_SUFFIXES[1:]:
        tighten(database.with_name(database.name + suffix))


def secure_data_dir(path: Path) -> None:
    """At start: the data directory 0700 (created, or tightened) and every file in it
    private. Only the directory's own entries are looked at, never deeper."""
    private_directory(path)
    tighten(path)
    for entry in path.iterdir():
        tighten(entry)
