"""One serving process per SQLite database: refuse a second one with a clear message.

SQLite serialises writers inside one process (the group-commit writer); a second
process writing the same file would fight it for the file lock and fail requests with
"database is locked". So a process that serves a SQLite database (``postroom serve`` or a
single role) holds an exclusive ``flock`` on ``<database>.lock`` for its life, and a
second one is refused, naming PostgreSQL, which is what several processes (``serve
--processes N``, separate roles, several hosts) need. The kernel frees the lock when the
process ends, even by SIGKILL, so a crash never leaves a stale lock behind.

Short local commands (``postroom token create`` …) do not take it: they write once and
SQLite's busy timeout covers them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from sqlalchemy.engine import make_url

POSTGRES_HINT = (
    "several Postroom processes need PostgreSQL: start them with "
    "--database-url postgresql+psycopg://USER:PASSWORD@HOST/DB (docs/deploy.md)"
)


class DatabaseInUse(RuntimeError):
    """Another process serves this SQLite database."""


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL; None for other databases or in-memory SQLite."""
    parsed = make_url(url)
    if not parsed.get_backend_name().startswith("sqlite") or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def hold(url: str) -> IO[str] | None:
    """Take the serving lock of a SQLite database (None for other databases).

    Keep the returned file open for the life of the process; raises DatabaseInUse when
    another process holds it.
    """
    path = sqlite_path(url)
    if path is None:
        return None
    lock_path = path.with_name(path.name + ".lock")
    handle = open(lock_path, "a+")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise DatabaseInUse(
            f"another Postroom process (pid {holder}) already serves the SQLite database "
            f"{path}; {POSTGRES_HINT}"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle
