"""Engines with the durability Postroom promises, and the ``Database`` handle services use.

SQLite runs in WAL mode with ``synchronous=FULL`` (a committed acceptance survives power
loss, not only a crash) and ``BEGIN IMMEDIATE`` for writers, so a second process writing
the same file waits its turn instead of failing half-way. PostgreSQL runs with its
defaults (``synchronous_commit=on``); startup refuses a server that would lose commits.

All writes of one process go through a single :class:`~postroom.storage.writer.Writer`
thread that folds concurrent transactions into group commits; reads run on pooled
connections in worker threads.

When the database cannot be reached (PostgreSQL restarting, the network down, SQLite
locked past its busy timeout), every read and write raises
:class:`~postroom.errors.StoreUnavailable`, which the entry points answer as a temporary
failure (API 503, SMTP 451). The outage is logged once when it begins and once when an
operation succeeds again, not per request; the pool reconnects by itself
(``pool_pre_ping``), so recovery needs nothing from anyone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection
from sqlalchemy.engine.url import make_url

from postroom.errors import StoreUnavailable
from postroom.storage.availability import Availability, is_unavailable
from postroom.storage.datadir import private_sqlite
from postroom.storage.writer import Writer

T = TypeVar("T")

# Seconds libpq may spend connecting to PostgreSQL (TCP and startup): an address that
# drops packets would otherwise hold a worker thread for the kernel's SYN timeout (~2 min).
PG_CONNECT_TIMEOUT = 5


class NonDurableDatabase(RuntimeError):
    """The database is configured so that a commit may be lost; Postroom will not run on it."""


def normalise_url(url: str) -> str:
    """Map plain ``postgresql://`` URLs to the psycopg 3 driver Postroom ships with."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def make_engine(url: str) -> Engine:
    """Create an engine for ``url`` with Postroom's connection settings."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        # A file of ours (not memory, not a URI the caller opens its own way) is private:
        # it holds every message body.
        if database and database != ":memory:" and not parsed.query.get("uri"):
            private_sqlite(Path(database))
        return _sqlite_engine(url)
    timeout = {} if "connect_timeout" in parsed.query else {"connect_timeout": PG_CONNECT_TIMEOUT}
    return create_engine(
        url, pool_size=10, max_overflow=10, pool_pre_ping=True, connect_args=timeout
    )


def _sqlite_engine(url: str) -> Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers reserve the write lock up front; readers take a plain snapshot.
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def check_durability(engine: Engine) -> None:
    """Refuse to run on a store that acknowledges commits it may lose."""
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            sync = conn.exec_driver_sql("PRAGMA synchronous").scalar()
            if sync is not None and int(sync) < 2:
                raise NonDurableDatabase("SQLite synchronous must be FULL")
        elif engine.dialect.name == "postgresql":
            for name in ("fsync", "synchronous_commit"):
                value = conn.exec_driver_sql(f"SHOW {name}").scalar()
                if value in ("off", "local"):
                    raise NonDurableDatabase(f"PostgreSQL {name}={value} may lose commits")


class Database:
    """The storage handle of one process: an engine, its writer thread, async helpers."""

    def __init__(self, engine: Engine, *, commit_batch_max: int = 256) -> None:
        self.engine = engine
        self.writer = Writer(engine, max_batch=commit_batch_max)
        self.availability = Availability()

    @contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn "cannot reach the database" into StoreUnavailable, and note recoveries."""
        try:
            yield
        except Exception as error:
            if not is_unavailable(error):
                raise
            self.availability.failed(error)
            raise StoreUnavailable(str(error)) from error
        self.availability.succeeded()

    @classmethod
    def from_url(cls, url: str, *, commit_batch_max: int = 256) -> Database:
        return cls(make_engine(url), commit_batch_max=commit_batch_max)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def write(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a write transaction; returns once the transaction has committed."""
        with self._reachable():
            return await self.writer.submit(fn)

    async def write_many(
        self, many: Callable[[Connection, list[Any]], list[Any]], item: Any
    ) -> Any:
        """Like :meth:`write`, but ``many`` handles every item queued alongside in one call."""
        with self._reachable():
            return await self.writer.submit_many(many, item)

    def write_sync(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in its own write transaction from synchronous code (CLI, tests)."""
        with self._reachable():
            return self.writer.run_now(fn)

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` on a read connection in a worker thread."""
        return await asyncio.to_thread(self.read_sync, fn)

    def read_sync(self, fn: Callable[[Connection], T]) -> T:
        with self._reachable(), self.engine.connect() as conn:
            result = fn(conn)
            conn.rollback()
            return result

    def close(self) -> None:
        self.writer.stop()
        self.engine.dispose()
