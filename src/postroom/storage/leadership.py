"""Leadership: exactly one holder of a named role across every process and host.

The scheduler's jobs (shunting, DNS re-checks, rollups, retention, alerts) must not run
twice at once. On PostgreSQL the holder keeps a session-level advisory lock
(``pg_try_advisory_lock``) on a connection of its own: when its process dies, however
abruptly, the server ends that session and frees the lock, and the next candidate to
try takes it over (its next round, so within one scheduler interval). A host that
vanishes without closing its TCP connection is noticed by the server's TCP keepalives
(``tcp_keepalives_idle`` etc., docs/deploy.md).

On SQLite only one process may serve a database at all (storage/processlock.py), so the
lock is this process's by construction.

Blocking calls: run :meth:`Leadership.try_lead` in a worker thread.
"""

from __future__ import annotations

import contextlib
import logging
import zlib

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger("postroom.leadership")


def lock_key(conn: Connection, name: str) -> int:
    """A stable advisory-lock key for ``name`` in the schema ``conn`` works in.

    Advisory locks are per database cluster, not per schema: installations (or test
    runs) in several schemas of one database must not share a scheduler.
    """
    where = conn.execute(text("SELECT current_database() || '.' || current_schema()")).scalar()
    return 0x706F7374_00000000 | zlib.crc32(f"{where}/{name}".encode())


class Leadership:
    """Whether this process leads ``name``; :meth:`try_lead` (re)checks and takes it."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine = engine
        self.name = name
        self.key = 0
        self.leading = False
        self._conn: Connection | None = None

    def try_lead(self) -> bool:
        """Take the lock if it is free, or confirm it is still ours; True while leading."""
        if self.engine.dialect.name != "postgresql":
            self.leading = True
            return True
        try:
            if self._conn is None:
                conn = self.engine.connect()
                # No transaction stays open on the lock's connection between checks.
                self._conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                self.key = lock_key(self._conn, self.name)
            if self.leading:
                # A broken connection means the server already freed our lock.
                self._conn.execute(text("SELECT 1"))
            else:
                taken = self._conn.execute(
                    text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}
                ).scalar()
                if taken:
                    log.info("this process now leads %s", self.name)
                self.leading = bool(taken)
        except SQLAlchemyError:
            if self.leading:
                log.warning("lost the %s lock (database connection failed)", self.name)
            self._drop()
        return self.leading

    def release(self) -> None:
        """Give the lock up (closing the session frees it) so another takes over now."""
        self._drop()

    def _drop(self) -> None:
        self.leading = False
        conn, self._conn = self._conn, None
        if conn is not None:
            # A pooled connection would keep the session (and the lock); a dead one
            # has lost both already.
            with contextlib.suppress(SQLAlchemyError):
                conn.invalidate()
                conn.close()
