"""Alembic environment: migrates the engine handed over by ``postroom.storage.migrate``.

On SQLite, altering a table means rebuilding it (Alembic's batch mode: copy, drop,
rename). Postroom's connections enforce foreign keys, and with them on, dropping a parent
table deletes its children through ``ON DELETE CASCADE`` (rebuilding ``inboxes`` would
empty ``sandbox_messages``). So foreign keys are off while migrations run, as SQLite's
own procedure for schema changes says, and checked before the commit.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from postroom.storage.search import is_search_object
from postroom.storage.tables import metadata

engine = context.config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `postroom db migrate`")


def _set_sqlite_foreign_keys(connection: Connection, on: bool) -> None:
    # A PRAGMA that changes foreign keys is a no-op inside a transaction: it goes to the
    # driver's connection, which runs outside one (the engine sets isolation_level=None).
    driver: Any = connection.connection.driver_connection
    driver.execute(f"PRAGMA foreign_keys={'ON' if on else 'OFF'}")


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Autogenerate compares the declared tables; the search indexes (storage/search.py)
    are built by migration 0016 alone, outside the metadata."""
    return not is_search_object(name)


def _check_foreign_keys(connection: Connection) -> None:
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"migration left rows whose parents are missing: {broken[:10]}")


with engine.connect() as connection:
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:
        _set_sqlite_foreign_keys(connection, on=False)
    try:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=sqlite,
            include_name=_include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                _check_foreign_keys(connection)
        connection.commit()
    finally:
        if sqlite:
            connection.rollback()
            _set_sqlite_foreign_keys(connection, on=True)
